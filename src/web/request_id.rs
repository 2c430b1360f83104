//! Request ids, and who asked, for logs and the audit trail.
//!
//! Every request gets an id: the `X-Request-Id` it arrived with when the connection's peer is
//! a configured trusted proxy and the value is a plain token (up to 128 characters of letters,
//! digits and `-_.:+/=`), otherwise a new random one. The id is answered in `X-Request-Id`,
//! written in the access log, sent to the backend of a proxied request in place of whatever
//! the client sent, and carried by every audit line of the request.

use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};

use crate::config::TrustedProxies;
use crate::core::audit::Event;
use crate::state::AppState;
use crate::web::limits::client_ip;

/// The header, lower case.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id taken from a trusted proxy.
const MAX_LEN: usize = 128;

/// A request's id, kept in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub Rc<str>);

/// Whether `value` may be passed on as an id: a plain token, nothing a log reader or a
/// backend could mistake for structure.
fn acceptable(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(b))
}

/// The id for `req`: a trusted proxy's, or a new one.
fn choose(req: &ServiceRequest, trusted: &TrustedProxies) -> Rc<str> {
    let peer_trusted = !trusted.is_empty() && req.peer_addr().is_some_and(|peer| trusted.contains(peer.ip()));
    if peer_trusted {
        let mut given = req.headers().get_all(X_REQUEST_ID);
        if let (Some(value), None) = (given.next(), given.next()) {
            if acceptable(value.as_bytes()) {
                if let Ok(text) = value.to_str() {
                    return Rc::from(text);
                }
            }
        }
    }
    Rc::from(crate::secret::random_token(12))
}

/// The middleware: assigns the id and answers it.
pub async fn assign(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = match req.app_data::<web::Data<AppState>>() {
        Some(state) => choose(&req, &state.settings.trusted_proxies),
        None => Rc::from(crate::secret::random_token(12)),
    };
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(res)
}

/// The id of `req` (`-` outside the middleware, e.g. in unit tests).
pub fn of(req: &HttpRequest) -> Rc<str> {
    req.extensions().get::<RequestId>().map(|id| id.0.clone()).unwrap_or_else(|| Rc::from("-"))
}

/// Who asked: the request's id and the client's address, for audit events.
pub struct Caller {
    request_id: Rc<str>,
    client_ip: Option<String>,
}

impl Caller {
    /// The caller of `req`.
    pub fn of(req: &HttpRequest, trusted: &TrustedProxies) -> Self {
        Caller { request_id: of(req), client_ip: client_ip(req, trusted).map(|ip| ip.to_string()) }
    }

    /// An event of kind `event` from this caller.
    pub fn event(&self, event: &'static str) -> Event<'_> {
        Event::new(event, &self.request_id, self.client_ip.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_plain_tokens_are_passed_on() {
        assert!(acceptable(b"7f3c-11ab.req:1/2+3="));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"a b"));
        assert!(!acceptable(b"a\"b"));
        assert!(!acceptable(b"line\nbreak"));
        assert!(!acceptable(&[b'a'; 129]));
    }
}
