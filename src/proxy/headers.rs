//! Header rules (checklist A11, A12, C2, C4): what reaches the backend and what comes back.
//!
//! Everything passes except what would leak the client's credentials (`Authorization`,
//! `Proxy-Authorization`, the gateway's own cookies), what only describes one hop (RFC 9110
//! §7.6.1), what the gateway itself vouches for (`x-user-*`, `X-Forwarded-*`), and framing
//! (`Content-Length`, `Host`, `Expect`), which the outgoing connection sets anew. `Origin` is
//! dropped too: the gateway has already judged it (DNS-rebinding defence, checklist C1), and a
//! backend with its own Origin check (the Python SDK's default) would otherwise refuse the
//! browser origins the gateway allows.

use std::fmt::Write as _;
use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::core::model::AccessClaims;

/// Cookie names the gateway sets; they never reach a backend.
const GATEWAY_COOKIE_PREFIXES: [&str; 2] = ["mcpgw_", "__Host-mcpgw_"];

/// RFC 9110 §7.6.1 hop-by-hop headers (plus the non-standard `Proxy-Connection`).
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade" | "proxy-connection"
    )
}

/// Header names listed in `Connection`, lower-cased: they are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn dropped_from_request(name: &str, listed: &[String]) -> bool {
    is_hop_by_hop(name)
        || matches!(
            name,
            "authorization"
                | "proxy-authorization"
                | "host"
                | "origin"
                | "content-length"
                | "expect"
                | "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-forwarded-host"
        )
        || name.starts_with("x-user-")
        || listed.iter().any(|l| l == name)
}

/// Where outgoing request headers go: the request head being built (a list, in order) or a
/// `HeaderMap`.
pub trait HeaderSink {
    /// Adds one header line.
    fn add(&mut self, name: HeaderName, value: HeaderValue);
}

impl HeaderSink for Vec<(HeaderName, HeaderValue)> {
    fn add(&mut self, name: HeaderName, value: HeaderValue) {
        self.push((name, value));
    }
}

impl HeaderSink for HeaderMap {
    fn add(&mut self, name: HeaderName, value: HeaderValue) {
        self.append(name, value);
    }
}

/// Copies the client's headers that may reach the backend into `out`.
pub fn copy_request_headers(incoming: &HeaderMap, out: &mut impl HeaderSink) {
    let listed = connection_listed(incoming);
    for (name, value) in incoming.iter() {
        if dropped_from_request(name.as_str(), &listed) {
            continue;
        }
        if name == header::COOKIE {
            if let Some(kept) = without_gateway_cookies(value) {
                out.add(header::COOKIE, kept);
            }
            continue;
        }
        out.add(name.clone(), value.clone());
    }
}

/// The `Cookie` value without the gateway's cookies; `None` when nothing is left.
fn without_gateway_cookies(value: &HeaderValue) -> Option<HeaderValue> {
    let bytes = value.as_bytes();
    // Fast path: most requests carry no gateway cookie to a backend.
    if !bytes.windows(6).any(|w| w == b"mcpgw_") {
        return Some(value.clone());
    }
    let kept: Vec<&[u8]> = bytes
        .split(|b| *b == b';')
        .map(|pair| pair.trim_ascii())
        .filter(|pair| !pair.is_empty() && !is_gateway_cookie(pair))
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&kept.join(&b"; "[..])).ok()
}

fn is_gateway_cookie(pair: &[u8]) -> bool {
    let name = pair.split(|b| *b == b'=').next().unwrap_or_default().trim_ascii();
    GATEWAY_COOKIE_PREFIXES.iter().any(|p| name.starts_with(p.as_bytes()))
}

/// Adds `x-user-*` from the token's claims; a header whose claim is absent is left out.
pub fn add_user_headers(claims: &AccessClaims, out: &mut impl HeaderSink) {
    let fields = [
        ("x-user-id", Some(claims.sub.as_str())),
        ("x-user-email", claims.email.as_deref()),
        ("x-user-name", claims.name.as_deref()),
        ("x-user-provider", Some(claims.provider.as_str())),
        ("x-user-avatar", claims.avatar.as_deref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value.and_then(header_value) {
            out.add(HeaderName::from_static(name), value);
        }
    }
}

/// `value` as a header value, control characters dropped (a display name from an upstream
/// provider must not fail the request or split a header). `None` when nothing is left.
fn header_value(value: &str) -> Option<HeaderValue> {
    // Fast path: already clean (the usual case), so no copy to filter.
    let bytes = value.as_bytes();
    if bytes.iter().all(|b| *b >= 0x20 && *b != 0x7f)
        && bytes.first().is_some_and(|b| !b.is_ascii_whitespace())
        && bytes.last().is_some_and(|b| !b.is_ascii_whitespace())
    {
        return HeaderValue::from_str(value).ok();
    }
    let clean: Vec<u8> = value.bytes().filter(|b| *b >= 0x20 && *b != 0x7f).collect();
    let clean = clean.trim_ascii();
    if clean.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(clean).ok()
}

/// `X-Forwarded-Proto` and `X-Forwarded-Host` as the issuer gives them: the public URL the
/// client used, which a client cannot spoof. Derived once, not per request.
#[derive(Debug, Default)]
pub struct ForwardedOrigin {
    proto: Option<HeaderValue>,
    host: Option<HeaderValue>,
}

impl ForwardedOrigin {
    /// From the gateway's issuer URL.
    pub fn from_issuer(issuer: &str) -> Self {
        let Ok(url) = url::Url::parse(issuer) else {
            return Self::default();
        };
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => String::new(),
        };
        Self { proto: header_value(url.scheme()), host: header_value(&host) }
    }
}

/// `X-Forwarded-For` (the client's chain plus the peer), and `X-Forwarded-Proto` /
/// `X-Forwarded-Host` from `origin`.
pub fn add_forwarded(
    incoming: &HeaderMap,
    peer: Option<IpAddr>,
    origin: &ForwardedOrigin,
    out: &mut impl HeaderSink,
) {
    let mut forwarded_for = String::new();
    for hop in incoming.get_all(header::X_FORWARDED_FOR).filter_map(|v| v.to_str().ok()) {
        if !forwarded_for.is_empty() {
            forwarded_for.push_str(", ");
        }
        forwarded_for.push_str(hop.trim());
    }
    if let Some(peer) = peer {
        if !forwarded_for.is_empty() {
            forwarded_for.push_str(", ");
        }
        // Infallible for a String.
        let _ = write!(forwarded_for, "{peer}");
    }
    if let Some(v) = header_value(&forwarded_for) {
        out.add(header::X_FORWARDED_FOR, v);
    }
    if let Some(v) = &origin.proto {
        out.add(HeaderName::from_static("x-forwarded-proto"), v.clone());
    }
    if let Some(v) = &origin.host {
        out.add(HeaderName::from_static("x-forwarded-host"), v.clone());
    }
}

/// The backend's response headers that may reach the client: hop-by-hop headers, framing
/// (`Content-Length` is set again from the body) and attempts to set the gateway's own cookies
/// are left out.
pub fn response_headers(backend: &HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    let listed = connection_listed(backend);
    backend.iter().filter(move |(name, value)| {
        let n = name.as_str();
        !(is_hop_by_hop(n)
            || n == "content-length"
            || listed.iter().any(|l| l == n)
            || (*name == header::SET_COOKIE && is_gateway_cookie(value.as_bytes())))
    })
}

/// Whether the response is a Server-Sent Events stream.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "http://gw".into(),
            sub: "dev_alice".into(),
            aud: "http://gw/a/mcp".into(),
            exp: 0,
            iat: 0,
            jti: "j".into(),
            fid: "f".into(),
            client_id: "c".into(),
            scope: String::new(),
            email: Some("a@example.com".into()),
            name: Some("Al\r\nX-Evil: 1\u{7f}ice José".into()),
            provider: "dev".into(),
            avatar: None,
        }
    }

    #[test]
    fn credentials_hop_by_hop_and_user_headers_are_dropped() {
        let incoming = map(&[
            ("authorization", "Bearer t"),
            ("proxy-authorization", "Basic x"),
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("host", "gw"),
            ("origin", "https://app.example"),
            ("x-user-id", "admin"),
            ("X-User-Role", "root"),
            ("mcp-session-id", "s-1"),
            ("mcp-param-foo", "bar"),
            ("accept", "text/event-stream"),
        ]);
        let mut out = HeaderMap::new();
        copy_request_headers(&incoming, &mut out);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(out.len(), 3, "{names:?}");
        assert_eq!(out.get("mcp-session-id").map(|v| v.as_bytes()), Some(&b"s-1"[..]));
        assert!(out.contains_key("mcp-param-foo") && out.contains_key("accept"));
    }

    #[test]
    fn only_gateway_cookies_are_removed() {
        let incoming = map(&[("cookie", "a=1; mcpgw_session=x;__Host-mcpgw_consent=y; b=2")]);
        let mut out = HeaderMap::new();
        copy_request_headers(&incoming, &mut out);
        assert_eq!(out.get(header::COOKIE).and_then(|v| v.to_str().ok()), Some("a=1; b=2"));

        let mut out = HeaderMap::new();
        copy_request_headers(&map(&[("cookie", "mcpgw_session=x")]), &mut out);
        assert!(!out.contains_key(header::COOKIE));
    }

    #[test]
    fn user_headers_come_from_claims_without_control_characters() {
        let mut out = HeaderMap::new();
        add_user_headers(&claims(), &mut out);
        assert_eq!(out.get("x-user-id").map(|v| v.as_bytes()), Some(&b"dev_alice"[..]));
        assert_eq!(out.get("x-user-name").map(|v| v.as_bytes()), Some("AlX-Evil: 1ice José".as_bytes()));
        assert!(!out.contains_key("x-user-avatar"));
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn forwarded_headers_append_the_peer_and_use_the_issuer() {
        let mut out = HeaderMap::new();
        let peer = "10.0.0.2".parse().ok();
        let origin = ForwardedOrigin::from_issuer("https://gw.example:8443");
        add_forwarded(&map(&[("x-forwarded-for", "1.2.3.4")]), peer, &origin, &mut out);
        assert_eq!(out.get("x-forwarded-for").and_then(|v| v.to_str().ok()), Some("1.2.3.4, 10.0.0.2"));
        assert_eq!(out.get("x-forwarded-proto").and_then(|v| v.to_str().ok()), Some("https"));
        assert_eq!(out.get("x-forwarded-host").and_then(|v| v.to_str().ok()), Some("gw.example:8443"));
    }

    #[test]
    fn response_keeps_session_id_and_drops_framing_and_gateway_cookies() {
        let backend = map(&[
            ("mcp-session-id", "s-1"),
            ("content-length", "10"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "mcpgw_session=evil; Path=/"),
            ("set-cookie", "app=1"),
        ]);
        let mut kept: Vec<(String, String)> = response_headers(&backend)
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            vec![("mcp-session-id".into(), "s-1".into()), ("set-cookie".into(), "app=1".into())],
        );
    }

    #[test]
    fn event_streams_are_recognised() {
        assert!(is_event_stream(&map(&[("content-type", "Text/Event-Stream; charset=utf-8")])));
        assert!(!is_event_stream(&map(&[("content-type", "application/json")])));
    }
}
