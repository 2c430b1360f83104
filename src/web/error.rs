//! How an [`OAuthError`] reaches a client: the status the RFCs ask for and an RFC 6749 §5.2
//! JSON body (`error`, `error_description`), never cached.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::core::OAuthError;

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
}
