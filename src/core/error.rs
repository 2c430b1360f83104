//! The error vocabulary of the OAuth services: the RFC 6749 §5.2 error codes (plus RFC 7591,
//! RFC 8707 and RFC 6750 ones), each with a description safe to show the client. Causes go to
//! the log, never into the description. The HTTP status and body are given at the web edge
//! (`crate::web::error`).

use serde::Serialize;

use super::store::StoreError;

/// An OAuth error as a client sees it.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// Missing, repeated or malformed parameter.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Client authentication failed or the client is unknown.
    #[error("invalid_client: {0}")]
    InvalidClient(String),
    /// The code, refresh token or PKCE verifier is invalid, expired, used or revoked.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// A refresh token was reused (after its grace window, or by another client): its family
    /// (the payload) is revoked. The client sees a plain `invalid_grant`; the audit trail
    /// records the detection.
    #[error("invalid_grant: refresh token reuse detected (family {0})")]
    RefreshReused(String),
    /// At a refresh, the person no longer passes the service's access rule, or the identity
    /// provider no longer confirms their sign-in: the family is revoked. The client sees
    /// `invalid_grant`; the audit trail records why.
    #[error("invalid_grant: {reason} (family {family_id})")]
    AccessRevoked {
        /// Why, for the audit trail: [`REASON_ACCESS_RULE`] or [`REASON_UPSTREAM_REFUSED`].
        reason: &'static str,
        /// The revoked family.
        family_id: String,
        /// Whose it was.
        user_id: String,
        /// The service the rule is of.
        service_id: String,
    },
    /// The client may not use this grant or response type.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// `grant_type` is not one this server supports.
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(String),
    /// `response_type` is not `code`.
    #[error("unsupported_response_type: {0}")]
    UnsupportedResponseType(String),
    /// The requested scope is unknown or exceeds what was granted.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// RFC 8707: the `resource` is unknown or differs from the one authorized.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    /// RFC 7591: a redirect URI in a registration is not acceptable.
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    /// RFC 7591: other client metadata is not acceptable.
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// The person (or the upstream provider) refused.
    #[error("access_denied: {0}")]
    AccessDenied(String),
    /// Bearer token missing scope (RFC 6750 §3.1); used by the proxy.
    #[error("insufficient_scope: {0}")]
    InsufficientScope(String),
    /// Storage backend unreachable: 503 with `Retry-After`.
    #[error("temporarily_unavailable: {0}")]
    TemporarilyUnavailable(String),
    /// Anything else. The cause is logged; the client sees a generic description.
    #[error("server_error: {0}")]
    ServerError(String),
}

/// What a client is told when the person lost access to the service.
pub const ACCESS_REVOKED: &str = "the user may no longer use this service; sign in again";
/// What a client is told when the identity provider no longer confirms the person.
pub const UPSTREAM_REFUSED: &str = "the identity provider no longer confirms this sign-in; sign in again";
/// [`OAuthError::AccessRevoked`]: the service's access rule refused the person.
pub const REASON_ACCESS_RULE: &str = "access_rule";
/// [`OAuthError::AccessRevoked`]: the identity provider refused at a re-check.
pub const REASON_UPSTREAM_REFUSED: &str = "upstream_refused";

/// What a client is told of any refresh token it may not use.
pub const REFRESH_INVALID: &str = "refresh token is invalid, expired or revoked";

impl OAuthError {
    /// Logs `cause` and returns a `server_error` that does not reveal it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        log::error!("internal error: {cause}");
        OAuthError::ServerError("internal error".into())
    }

    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) | OAuthError::RefreshReused(_) | OAuthError::AccessRevoked { .. } => {
                "invalid_grant"
            }
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType(_) => "unsupported_response_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            OAuthError::InvalidClientMetadata(_) => "invalid_client_metadata",
            OAuthError::AccessDenied(_) => "access_denied",
            OAuthError::InsufficientScope(_) => "insufficient_scope",
            OAuthError::TemporarilyUnavailable(_) => "temporarily_unavailable",
            OAuthError::ServerError(_) => "server_error",
        }
    }

    /// The human-readable description sent as `error_description`.
    pub fn description(&self) -> &str {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidClient(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::UnsupportedResponseType(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::InvalidTarget(d)
            | OAuthError::InvalidRedirectUri(d)
            | OAuthError::InvalidClientMetadata(d)
            | OAuthError::AccessDenied(d)
            | OAuthError::InsufficientScope(d)
            | OAuthError::TemporarilyUnavailable(d)
            | OAuthError::ServerError(d) => d,
            OAuthError::RefreshReused(_) => REFRESH_INVALID,
            OAuthError::AccessRevoked { reason: REASON_UPSTREAM_REFUSED, .. } => UPSTREAM_REFUSED,
            OAuthError::AccessRevoked { .. } => ACCESS_REVOKED,
        }
    }

    /// The JSON body of RFC 6749 §5.2.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody { error: self.code(), error_description: self.description() }
    }
}

/// RFC 6749 §5.2 error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// The error code.
    pub error: &'a str,
    /// A short, safe description.
    pub error_description: &'a str,
}

impl From<StoreError> for OAuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                log::warn!("storage unavailable: {cause}");
                OAuthError::TemporarilyUnavailable("storage backend unavailable, retry later".into())
            }
            other => OAuthError::internal(other),
        }
    }
}

/// An error and its causes on one line (client libraries hide "connection refused" in the
/// chain).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = OAuthError::internal("password=hunter2");
        assert_eq!(err.description(), "internal error");
    }

    #[test]
    fn an_unreachable_store_asks_to_retry() {
        let err = OAuthError::from(StoreError::Unavailable("connection refused".into()));
        assert_eq!(err.code(), "temporarily_unavailable");
        assert!(!err.description().contains("refused"));
    }
}
