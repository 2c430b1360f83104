//! The one error type of the HTTP boundary: every failure a client can see becomes an RFC 6749
//! §5.2 JSON body (`error`, `error_description`) with the status the RFCs ask for. Causes go to
//! the log, never into the response.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

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
            OAuthError::InvalidGrant(_) => "invalid_grant",
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

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
            OAuthError::AccessDenied(_) | OAuthError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            OAuthError::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        match self {
            OAuthError::InvalidClient(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"mcp-gateway\""));
            }
            OAuthError::TemporarilyUnavailable(_) => {
                res.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        res.json(self.body())
    }
}

impl From<crate::storage::StoreError> for OAuthError {
    fn from(err: crate::storage::StoreError) -> Self {
        match err {
            crate::storage::StoreError::Unavailable(cause) => {
                log::warn!("storage unavailable: {cause}");
                OAuthError::TemporarilyUnavailable("storage backend unavailable, retry later".into())
            }
            other => OAuthError::internal(other),
        }
    }
}

impl From<actix::MailboxError> for OAuthError {
    fn from(err: actix::MailboxError) -> Self {
        OAuthError::internal(format!("actor mailbox: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_rfc_6749() {
        assert_eq!(OAuthError::InvalidGrant("x".into()).status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(OAuthError::InvalidClient("x".into()).status_code(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            OAuthError::TemporarilyUnavailable("x".into()).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = OAuthError::internal("password=hunter2");
        assert_eq!(err.description(), "internal error");
    }
}
