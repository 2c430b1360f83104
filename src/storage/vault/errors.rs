//! How vaultrs errors map onto [`StoreError`]: unreachable or overloaded is `Unavailable`, any
//! other answer a backend error; separate so every Vault call classifies failures the same way.

use rustify::errors::ClientError as RestError;
use vaultrs::error::ClientError;

use crate::core::error::chain;
use crate::core::store::StoreError;

/// The HTTP status of a Vault error answer, if it was one.
fn status(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError { source: RestError::ServerResponseError { code, .. } } => Some(*code),
        _ => None,
    }
}

pub(super) fn is_not_found(e: &ClientError) -> bool {
    status(e) == Some(404)
}

pub(super) fn is_cas_mismatch(e: &ClientError) -> bool {
    match e {
        ClientError::APIError { code: 400, errors } => errors.iter().any(|m| m.contains("check-and-set")),
        _ => false,
    }
}

/// Unreachable, timed out, sealed or overloaded (5xx, 429) is `Unavailable`; every other
/// answer (denied, bad request) is a backend error.
pub(super) fn classify(e: ClientError) -> StoreError {
    if let Some(code) = status(&e) {
        let detail = match &e {
            ClientError::APIError { errors, .. } if !errors.is_empty() => errors.join("; "),
            _ => String::new(),
        };
        let message = format!("Vault answered {code} {detail}").trim_end().to_owned();
        return if code >= 500 || code == 429 {
            StoreError::Unavailable(message)
        } else {
            StoreError::Backend(message)
        };
    }
    match &e {
        ClientError::RestClientError {
            source: source @ (RestError::RequestError { .. } | RestError::ResponseError { .. }),
        } => StoreError::Unavailable(chain(source)),
        _ => StoreError::Backend(chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, errors: &[&str]) -> ClientError {
        ClientError::APIError { code, errors: errors.iter().map(|e| e.to_string()).collect() }
    }

    #[test]
    fn errors_split_into_unavailable_and_backend() {
        assert!(matches!(classify(api(503, &["Vault is sealed"])), StoreError::Unavailable(_)));
        assert!(matches!(classify(api(429, &[])), StoreError::Unavailable(_)));
        assert!(matches!(classify(api(403, &["permission denied"])), StoreError::Backend(_)));
        let gone = ClientError::RestClientError {
            source: RestError::ServerResponseError { code: 404, content: None },
        };
        assert!(is_not_found(&gone) && is_not_found(&api(404, &[])));
        assert!(!is_not_found(&api(400, &[])));
    }

    #[test]
    fn only_a_check_and_set_refusal_is_a_lost_race() {
        let cas = api(400, &["check-and-set parameter did not match the current version"]);
        assert!(is_cas_mismatch(&cas));
        assert!(!is_cas_mismatch(&api(400, &["invalid request"])));
        assert!(!is_cas_mismatch(&api(500, &["check-and-set"])));
    }
}
