//! Crossing between actix's `http` 0.2 types and hyper's `http` 1 types, which hold the same
//! bytes but are different types. A header name either type has already checked is mapped to
//! a constant of the other for the names an MCP exchange carries: `from_bytes` would re-parse
//! it, and copy every name it does not know (`mcp-session-id`, `x-user-id`, …) into a new
//! allocation on every request. Values are copied once (neither type gives its bytes away).

use actix_web::http::header as actix;
use actix_web::http::Method;
use http::header as h1;

/// `mcp-session-id` (MCP Streamable HTTP).
pub const MCP_SESSION_ID: h1::HeaderName = h1::HeaderName::from_static("mcp-session-id");
/// `mcp-protocol-version` (MCP Streamable HTTP).
pub const MCP_PROTOCOL_VERSION: h1::HeaderName = h1::HeaderName::from_static("mcp-protocol-version");
/// `last-event-id` (SSE resumption).
pub const LAST_EVENT_ID: h1::HeaderName = h1::HeaderName::from_static("last-event-id");
/// The gateway's identity headers.
pub const X_USER_ID: h1::HeaderName = h1::HeaderName::from_static("x-user-id");
pub const X_USER_EMAIL: h1::HeaderName = h1::HeaderName::from_static("x-user-email");
pub const X_USER_NAME: h1::HeaderName = h1::HeaderName::from_static("x-user-name");
pub const X_USER_PROVIDER: h1::HeaderName = h1::HeaderName::from_static("x-user-provider");
pub const X_USER_AVATAR: h1::HeaderName = h1::HeaderName::from_static("x-user-avatar");
/// The gateway's forwarding headers that `http` has no constant for.
pub const X_FORWARDED_FOR: h1::HeaderName = h1::HeaderName::from_static("x-forwarded-for");
pub const X_REAL_IP: h1::HeaderName = h1::HeaderName::from_static("x-real-ip");
pub const X_FORWARDED_PROTO: h1::HeaderName = h1::HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: h1::HeaderName = h1::HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_PORT: h1::HeaderName = h1::HeaderName::from_static("x-forwarded-port");
/// The request's id (`crate::web::request_id`).
pub const X_REQUEST_ID: h1::HeaderName = h1::HeaderName::from_static("x-request-id");

const A_MCP_SESSION_ID: actix::HeaderName = actix::HeaderName::from_static("mcp-session-id");
const A_X_ACCEL_BUFFERING: actix::HeaderName = actix::HeaderName::from_static("x-accel-buffering");

/// A client's request header name, as hyper's type.
pub fn request_name(name: &actix::HeaderName) -> Option<h1::HeaderName> {
    let known = match name.as_str() {
        "accept" => h1::ACCEPT,
        "accept-encoding" => h1::ACCEPT_ENCODING,
        "accept-language" => h1::ACCEPT_LANGUAGE,
        "cache-control" => h1::CACHE_CONTROL,
        "content-type" => h1::CONTENT_TYPE,
        "cookie" => h1::COOKIE,
        "user-agent" => h1::USER_AGENT,
        "mcp-session-id" => MCP_SESSION_ID,
        "mcp-protocol-version" => MCP_PROTOCOL_VERSION,
        "last-event-id" => LAST_EVENT_ID,
        other => return h1::HeaderName::from_bytes(other.as_bytes()).ok(),
    };
    Some(known)
}

/// A header value, as hyper's type (the same bytes, copied once).
pub fn request_value(value: &actix::HeaderValue) -> Option<h1::HeaderValue> {
    h1::HeaderValue::from_bytes(value.as_bytes()).ok()
}

/// A backend's response header name, as actix's type.
pub fn response_name(name: &h1::HeaderName) -> Option<actix::HeaderName> {
    let known = match name.as_str() {
        "content-type" => actix::CONTENT_TYPE,
        "content-length" => actix::CONTENT_LENGTH,
        "transfer-encoding" => actix::TRANSFER_ENCODING,
        "connection" => actix::CONNECTION,
        "cache-control" => actix::CACHE_CONTROL,
        "date" => actix::DATE,
        "server" => actix::SERVER,
        "mcp-session-id" => A_MCP_SESSION_ID,
        "x-accel-buffering" => A_X_ACCEL_BUFFERING,
        other => return actix::HeaderName::from_bytes(other.as_bytes()).ok(),
    };
    Some(known)
}

/// A backend's header value, as actix's type (copied once).
pub fn response_value(value: &h1::HeaderValue) -> Option<actix::HeaderValue> {
    actix::HeaderValue::from_bytes(value.as_bytes()).ok()
}

/// The method, as hyper's type; `None` for an extension method that does not convert.
pub fn method(method: &Method) -> Option<http::Method> {
    let known = match *method {
        Method::POST => http::Method::POST,
        Method::GET => http::Method::GET,
        Method::DELETE => http::Method::DELETE,
        Method::HEAD => http::Method::HEAD,
        Method::OPTIONS => http::Method::OPTIONS,
        Method::PUT => http::Method::PUT,
        Method::PATCH => http::Method::PATCH,
        _ => return http::Method::from_bytes(method.as_str().as_bytes()).ok(),
    };
    Some(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_bytes_both_ways() {
        for name in
            ["accept", "content-type", "mcp-session-id", "mcp-protocol-version", "last-event-id", "x-custom"]
        {
            let actix_name = actix::HeaderName::from_bytes(name.as_bytes()).expect("name");
            assert_eq!(request_name(&actix_name).expect("converts").as_str(), name);
            let h1_name = h1::HeaderName::from_bytes(name.as_bytes()).expect("name");
            assert_eq!(response_name(&h1_name).expect("converts").as_str(), name);
        }
        for name in ["date", "server", "transfer-encoding", "x-accel-buffering"] {
            let h1_name = h1::HeaderName::from_bytes(name.as_bytes()).expect("name");
            assert_eq!(response_name(&h1_name).expect("converts").as_str(), name);
        }
    }

    #[test]
    fn methods_and_values_convert() {
        for m in ["GET", "POST", "DELETE", "HEAD", "OPTIONS", "PUT", "PATCH", "PROPFIND"] {
            let actix_method = Method::from_bytes(m.as_bytes()).expect("method");
            assert_eq!(method(&actix_method).expect("converts").as_str(), m);
        }
        let v = actix::HeaderValue::from_static("text/event-stream; q=1");
        assert_eq!(request_value(&v).expect("converts").as_bytes(), v.as_bytes());
        let v = h1::HeaderValue::from_bytes(b"caf\xc3\xa9").expect("value");
        assert_eq!(response_value(&v).expect("converts").as_bytes(), v.as_bytes());
    }
}
