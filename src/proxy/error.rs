//! What the proxy answers when it does not forward: small JSON bodies in the RFC 6749 shape
//! (`error`, `error_description`), with the bearer challenge on 401 and on a step-up 403. Backend failures name the
//! service only; the backend URL and the underlying error go to the log, never to the client.
//! Every answer carries the same content guards as a forwarded response
//! ([`headers::guard_response`]).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use super::headers;
use super::slow_body::Unread;
use bytes::Bytes;
use serde_json::Value;

use crate::core::error::ErrorBody;

/// Longest service id echoed back in a 404 (the id comes from the request path).
const MAX_ECHOED_ID: usize = 64;

/// The gateway's own answer to a request calling a denied tool, and what it refused (for the
/// audit trail). Built by [`super::tools`].
#[derive(Debug)]
pub struct DeniedCalls {
    /// The JSON-RPC answer (one response, or an array for a batch).
    pub answer: Bytes,
    /// Each refused call: the tool name (if readable) and its JSON-RPC id.
    pub refused: Vec<(Option<String>, Option<Value>)>,
}

impl DeniedCalls {
    /// The JSON-RPC answer, as the backend would have sent it (200, JSON).
    pub fn response(&self) -> HttpResponse {
        let mut res = HttpResponse::Ok();
        res.content_type("application/json").insert_header((header::CACHE_CONTROL, "no-store"));
        headers::guard_response(&mut res);
        res.body(self.answer.clone())
    }
}

/// Why the proxy answered itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No service with this id is configured.
    #[error("unknown service '{0}'")]
    UnknownService(String),
    /// A method the Streamable HTTP transport does not use (it has POST, GET and DELETE).
    #[error("the MCP endpoint accepts only GET, POST and DELETE")]
    MethodNotAllowed,
    /// A present `Origin` that is neither allowed nor loopback (DNS-rebinding defence).
    #[error("origin not allowed")]
    ForbiddenOrigin,
    /// No usable bearer token. `challenge` is the full `WWW-Authenticate` value.
    #[error("{code}: {description}")]
    Unauthorized {
        /// `WWW-Authenticate` header value.
        challenge: String,
        /// Body `error` code.
        code: &'static str,
        /// Body `error_description`.
        description: &'static str,
    },
    /// The token lacks scopes this request needs (step-up, RFC 6750 §3.1).
    #[error("insufficient_scope: missing {}", missing.join(" "))]
    InsufficientScope {
        /// `WWW-Authenticate` value: every scope needed, the token's and the missing ones.
        challenge: String,
        /// The scopes the token lacks.
        missing: Vec<String>,
    },
    /// The request calls a tool the user may not use (`tool_access`): answered with a
    /// JSON-RPC error, HTTP 200, and never forwarded (`super::tools`).
    #[error("a tool this user may not call")]
    ToolDenied(Box<DeniedCalls>),
    /// The request's `Mcp-Session-Id` names a session another user opened.
    #[error("this MCP session belongs to another user")]
    ForeignSession,
    /// The request is malformed in a way the gateway must understand to authorize it.
    #[error("{0}")]
    BadRequest(&'static str),
    /// The body is larger than the gateway reads to check it.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The client did not send its request body within `limits.body_timeout_ms`; the 408 holds
    /// what is left of the body so that its connection is closed.
    #[error("the request body did not arrive in time")]
    BodyTimeout(Unread),
    /// The token's family already holds `limits.max_streams_per_token` (the number) open
    /// streams.
    #[error("this token already holds {0} open streams; close one before opening another")]
    TooManyStreams(usize),
    /// A check needed the storage backend and it did not answer (fail closed).
    #[error("the gateway cannot check this request right now, retry later")]
    Unavailable,
    /// The backend did not send a response head within the service's timeout.
    #[error("service '{0}' did not answer in time")]
    Timeout(String),
    /// The backend could not be reached or broke the exchange.
    #[error("service '{0}' is unavailable")]
    BadGateway(String),
    /// The backend handed the user a session id bound to another user (a pre-claimed id):
    /// forwarding it would put two users in one session.
    #[error("service '{0}' handed out a session id that is bound to another user")]
    SessionOfAnotherUser(String),
}

impl ProxyError {
    /// 404 for `id`, echoing at most [`MAX_ECHOED_ID`] characters of it.
    pub fn unknown_service(id: &str) -> Self {
        ProxyError::UnknownService(id.chars().take(MAX_ECHOED_ID).collect())
    }

    fn code(&self) -> &'static str {
        match self {
            ProxyError::UnknownService(_) => "not_found",
            ProxyError::MethodNotAllowed => "method_not_allowed",
            ProxyError::ForbiddenOrigin => "forbidden",
            ProxyError::Unauthorized { code, .. } => code,
            ProxyError::InsufficientScope { .. } => "insufficient_scope",
            ProxyError::ForeignSession => "forbidden",
            ProxyError::ToolDenied(_) => "access_denied",
            ProxyError::BadRequest(_) | ProxyError::PayloadTooLarge(_) => "invalid_request",
            ProxyError::BodyTimeout(_) => "request_timeout",
            // The gateway's other 429s (rate limits) use the same code.
            ProxyError::Unavailable | ProxyError::TooManyStreams(_) => "temporarily_unavailable",
            ProxyError::Timeout(_) => "gateway_timeout",
            ProxyError::BadGateway(_) | ProxyError::SessionOfAnotherUser(_) => "bad_gateway",
        }
    }
}

impl ResponseError for ProxyError {
    fn status_code(&self) -> StatusCode {
        match self {
            ProxyError::UnknownService(_) => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::ForbiddenOrigin => StatusCode::FORBIDDEN,
            ProxyError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::InsufficientScope { .. } | ProxyError::ForeignSession => StatusCode::FORBIDDEN,
            // A JSON-RPC error travels in a 200, as an MCP server's own would.
            ProxyError::ToolDenied(_) => StatusCode::OK,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::TooManyStreams(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadGateway(_) | ProxyError::SessionOfAnotherUser(_) => StatusCode::BAD_GATEWAY,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ProxyError::ToolDenied(denied) = self {
            return denied.response();
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        match self {
            ProxyError::Unauthorized { challenge, .. } | ProxyError::InsufficientScope { challenge, .. } => {
                // The challenge is built from config and fixed text; a service id that is not
                // a valid header value falls back to the bare scheme rather than failing.
                let value = HeaderValue::from_str(challenge).unwrap_or(HeaderValue::from_static("Bearer"));
                res.insert_header((header::WWW_AUTHENTICATE, value));
            }
            // A stream's end cannot be foreseen: 5 s is a polite pause before trying again.
            ProxyError::Unavailable | ProxyError::TooManyStreams(_) => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
            }
            ProxyError::BodyTimeout(_) => {
                // The rest of the body may still trickle in: the connection cannot be reused.
                res.force_close();
            }
            ProxyError::MethodNotAllowed => {
                res.insert_header((header::ALLOW, HeaderValue::from_static(headers::ALLOWED_METHODS)));
            }
            _ => {}
        }
        headers::guard_response(&mut res);
        let description = match self {
            ProxyError::Unauthorized { description, .. } => (*description).to_owned(),
            ProxyError::InsufficientScope { missing, .. } => {
                format!("this request needs the scope(s): {}", missing.join(" "))
            }
            other => other.to_string(),
        };
        if let ProxyError::InsufficientScope { missing, .. } = self {
            return res.json(ScopeBody {
                error: self.code(),
                error_description: &description,
                missing_scopes: missing,
            });
        }
        let res = res.json(ErrorBody { error: self.code(), error_description: &description });
        match self {
            ProxyError::BodyTimeout(unread) => unread.close_after(res),
            _ => res,
        }
    }
}

/// The 403 body of a step-up refusal: the RFC 6749 fields plus the missing scopes as a list.
#[derive(serde::Serialize)]
struct ScopeBody<'a> {
    error: &'a str,
    error_description: &'a str,
    missing_scopes: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_failure() {
        assert_eq!(ProxyError::unknown_service("x").status_code(), StatusCode::NOT_FOUND);
        assert_eq!(ProxyError::ForbiddenOrigin.status_code(), StatusCode::FORBIDDEN);
        assert_eq!(ProxyError::Timeout("x".into()).status_code(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(ProxyError::BadGateway("x".into()).status_code(), StatusCode::BAD_GATEWAY);
        assert_eq!(ProxyError::ForeignSession.status_code(), StatusCode::FORBIDDEN);
        assert_eq!(ProxyError::PayloadTooLarge(1).status_code(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(ProxyError::Unavailable.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ProxyError::BadRequest("x").status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(ProxyError::MethodNotAllowed.status_code(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(ProxyError::BodyTimeout(Unread::default()).status_code(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(ProxyError::TooManyStreams(3).status_code(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ProxyError::SessionOfAnotherUser("x".into()).status_code(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn answers_carry_the_content_guards_and_405_its_allow() {
        let res = ProxyError::MethodNotAllowed.error_response();
        let get = |name| res.headers().get(name).and_then(|v| v.to_str().ok());
        assert_eq!(get(header::ALLOW), Some("GET, POST, DELETE"));
        assert_eq!(get(header::CONTENT_SECURITY_POLICY), Some("sandbox"));
        assert_eq!(get(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"));
    }

    #[test]
    fn a_body_timeout_closes_and_a_stream_refusal_says_when_to_retry() {
        let res = ProxyError::BodyTimeout(Unread::default()).error_response();
        assert!(!res.head().keep_alive(), "408 closes the connection");
        let res = ProxyError::TooManyStreams(3).error_response();
        assert_eq!(res.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("5"));
    }

    #[test]
    fn long_service_ids_are_truncated() {
        let ProxyError::UnknownService(id) = ProxyError::unknown_service(&"a".repeat(500)) else {
            panic!("wrong variant");
        };
        assert_eq!(id.len(), MAX_ECHOED_ID);
    }
}
