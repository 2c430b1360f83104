//! Header rules (checklist A11, A12, C2, C4): what reaches the backend and what comes back.
//!
//! Everything passes except what would leak the client's credentials (`Authorization`,
//! `Proxy-Authorization`, the gateway's own cookies), what only describes one hop (RFC 9110
//! §7.6.1), what the gateway itself vouches for (`x-user-*`, `X-Forwarded-*`, `Forwarded`,
//! `X-Real-IP`), and framing (`Content-Length`, `Host`, `Expect`), which the outgoing connection
//! sets anew. `Origin` is dropped too: the gateway has already judged it (DNS-rebinding
//! defence, checklist C1), and a backend with its own Origin check (the Python SDK's default)
//! would otherwise refuse the browser origins the gateway allows.
//!
//! Header names with an underscore are dropped as well (nginx's default): CGI and WSGI servers
//! map `x_user_id` and `x-user-id` to the same `HTTP_X_USER_ID`, so an underscore spelling
//! would smuggle any of the headers above (or a second `Mcp-Session-Id`) past a name check.
//!
//! Every response gets `Content-Security-Policy: sandbox` and `X-Content-Type-Options: nosniff`
//! ([`guard_response`]): a backend's HTML would otherwise run with the authorization server's
//! origin (its cookies, its consent pages).

use std::fmt::Write as _;
use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::HttpResponseBuilder;
use bytes::Bytes;

use super::client::convert;
use crate::core::model::AccessClaims;

/// The methods of the Streamable HTTP transport: the `Allow` of a 405 and of `OPTIONS`.
pub const ALLOWED_METHODS: &str = "GET, POST, DELETE";

/// Prefixes of the cookie names the gateway sets (`src/oauth/cookies.rs`: every name starts
/// with `mcpgw_`, `__Host-` prefixed over https). Compared case-insensitively: browsers match
/// the `__Host-` prefix that way, and a backend must not get near the names in any spelling.
const GATEWAY_COOKIE_PREFIXES: [&[u8]; 3] = [b"mcpgw_", b"__Host-mcpgw_", b"__Secure-mcpgw_"];

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
                | "forwarded"
                | "x-real-ip"
                | "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-forwarded-host"
                | "x-forwarded-port"
                | "x-request-id"
        )
        || name.starts_with("x-user-")
        || name.as_bytes().contains(&b'_')
        || listed.iter().any(|l| l == name)
}

/// Where outgoing request headers go: the backend request's head, in hyper's `http` 1 types
/// (the backend client's), so that the rules build it directly and nothing is converted twice.
pub trait HeaderSink {
    /// Adds one header line.
    fn add(&mut self, name: http::HeaderName, value: http::HeaderValue);
}

impl HeaderSink for http::HeaderMap {
    fn add(&mut self, name: http::HeaderName, value: http::HeaderValue) {
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
                out.add(http::header::COOKIE, kept);
            }
            continue;
        }
        if let (Some(name), Some(value)) = (convert::request_name(name), convert::request_value(value)) {
            out.add(name, value);
        }
    }
}

/// The `Cookie` value without the gateway's cookies; `None` when nothing is left.
fn without_gateway_cookies(value: &HeaderValue) -> Option<http::HeaderValue> {
    let bytes = value.as_bytes();
    // Fast path: most requests carry no gateway cookie to a backend.
    if !bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"mcpgw_")) {
        return convert::request_value(value);
    }
    let kept: Vec<&[u8]> = bytes
        .split(|b| *b == b';')
        .map(|pair| pair.trim_ascii())
        .filter(|pair| !pair.is_empty() && !is_gateway_cookie(pair))
        .collect();
    if kept.is_empty() {
        return None;
    }
    http::HeaderValue::from_bytes(&kept.join(&b"; "[..])).ok()
}

/// Whether the cookie `pair` (`name=value`, or a whole `Set-Cookie` value) is one of the
/// gateway's, by name, in any case. A nameless cookie (`=mcpgw_session=x`) counts by the text
/// after the `=`: a browser sends it back as `mcpgw_session=x`.
fn is_gateway_cookie(pair: &[u8]) -> bool {
    let pair = pair.trim_ascii_start();
    let pair = pair.strip_prefix(b"=").unwrap_or(pair).trim_ascii_start();
    let end = pair.iter().position(|b| matches!(b, b'=' | b';')).unwrap_or(pair.len());
    let name = pair[..end].trim_ascii_end();
    GATEWAY_COOKIE_PREFIXES.iter().any(|p| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p))
}

/// Adds `x-user-*` from the token's claims; a header whose claim is absent is left out.
pub fn add_user_headers(claims: &AccessClaims, out: &mut impl HeaderSink) {
    let fields = [
        (convert::X_USER_ID, Some(claims.sub.as_str())),
        (convert::X_USER_EMAIL, claims.email.as_deref()),
        (convert::X_USER_NAME, claims.name.as_deref()),
        (convert::X_USER_PROVIDER, Some(claims.provider.as_str())),
        (convert::X_USER_AVATAR, claims.avatar.as_deref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value.and_then(header_value) {
            out.add(name, value);
        }
    }
}

/// `value` as a header value, control characters dropped (a display name from an upstream
/// provider must not fail the request or split a header). `None` when nothing is left.
fn header_value(value: &str) -> Option<http::HeaderValue> {
    // Fast path: already clean (the usual case), so no copy to filter.
    let bytes = value.as_bytes();
    if bytes.iter().all(|b| *b >= 0x20 && *b != 0x7f)
        && bytes.first().is_some_and(|b| !b.is_ascii_whitespace())
        && bytes.last().is_some_and(|b| !b.is_ascii_whitespace())
    {
        return http::HeaderValue::from_str(value).ok();
    }
    let clean: Vec<u8> = value.bytes().filter(|b| *b >= 0x20 && *b != 0x7f).collect();
    let clean = clean.trim_ascii();
    if clean.is_empty() {
        return None;
    }
    http::HeaderValue::from_bytes(clean).ok()
}

/// What the issuer says about the public URL the client used, which a client cannot spoof:
/// `X-Forwarded-Proto`, `-Host`, `-Port` and the `host`/`proto` of `Forwarded`. Derived once,
/// not per request.
#[derive(Debug, Default)]
pub struct ForwardedOrigin {
    proto: Option<http::HeaderValue>,
    host: Option<http::HeaderValue>,
    port: Option<http::HeaderValue>,
    // `host="…";proto=…` (RFC 7239 §4; `host` quoted, it may hold a `:`), empty when unknown.
    forwarded: String,
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
        let port = url.port_or_known_default().map(|p| p.to_string());
        let forwarded = match host.is_empty() || host.contains(['"', '\\']) {
            true => String::new(),
            false => format!("host=\"{host}\";proto={}", url.scheme()),
        };
        Self {
            proto: header_value(url.scheme()),
            host: header_value(&host),
            port: port.as_deref().and_then(header_value),
            forwarded,
        }
    }
}

/// The gateway's forwarding headers: `X-Forwarded-For` (the client's chain plus the peer),
/// `X-Real-IP` (the peer), `Forwarded` (one element, the gateway's: `for` the peer, `host`
/// and `proto` from `origin`) and `X-Forwarded-Proto` / `-Host` / `-Port` from `origin`. The
/// client's own `Forwarded`, `X-Real-IP` and `X-Forwarded-Port` never pass
/// ([`copy_request_headers`]); its `X-Forwarded-For` chain does, with the peer appended, so a
/// backend trusting one proxy reads the last element.
pub fn add_forwarded(
    incoming: &HeaderMap,
    peer: Option<IpAddr>,
    origin: &ForwardedOrigin,
    out: &mut impl HeaderSink,
) {
    // One buffer holds the `X-Forwarded-For` value followed by the `Forwarded` value; the three
    // peer headers are slices of it, so together they cost what `X-Forwarded-For` alone did.
    let mut buf = String::with_capacity(96 + origin.forwarded.len());
    for hop in incoming.get_all(header::X_FORWARDED_FOR).filter_map(|v| v.to_str().ok()) {
        let hop = hop.trim();
        if hop.is_empty() {
            continue;
        }
        if !buf.is_empty() {
            buf.push_str(", ");
        }
        buf.push_str(hop);
    }
    let mut real_ip = None;
    if let Some(peer) = peer {
        if !buf.is_empty() {
            buf.push_str(", ");
        }
        let start = buf.len();
        // Infallible for a String.
        let _ = write!(buf, "{peer}");
        real_ip = Some(start..buf.len());
    }
    let forwarded_for = buf.len();
    if let Some(peer) = peer {
        // Quoted: an IPv6 node must be (RFC 7239 §6), and quoting is always allowed.
        let _ = match peer {
            IpAddr::V4(ip) => write!(buf, "for=\"{ip}\""),
            IpAddr::V6(ip) => write!(buf, "for=\"[{ip}]\""),
        };
        if !origin.forwarded.is_empty() {
            buf.push(';');
        }
    }
    buf.push_str(&origin.forwarded);
    let buf = Bytes::from(buf);
    let value = |range: std::ops::Range<usize>| match range.is_empty() {
        true => None,
        false => http::HeaderValue::from_maybe_shared(buf.slice(range)).ok(),
    };
    if let Some(v) = value(0..forwarded_for) {
        out.add(convert::X_FORWARDED_FOR, v);
    }
    if let Some(v) = real_ip.and_then(value) {
        out.add(convert::X_REAL_IP, v);
    }
    if let Some(v) = value(forwarded_for..buf.len()) {
        out.add(http::header::FORWARDED, v);
    }
    for (name, v) in [
        (convert::X_FORWARDED_PROTO, &origin.proto),
        (convert::X_FORWARDED_HOST, &origin.host),
        (convert::X_FORWARDED_PORT, &origin.port),
    ] {
        if let Some(v) = v {
            out.add(name, v.clone());
        }
    }
}

/// The backend's response headers that may reach the client: hop-by-hop headers, framing
/// (`Content-Length` is set again from the body), attempts to set the gateway's own cookies,
/// and the content policy the gateway sets itself ([`guard_response`]) are left out.
pub fn response_headers(backend: &HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    let listed = connection_listed(backend);
    backend.iter().filter(move |(name, value)| {
        let n = name.as_str();
        !(is_hop_by_hop(n)
            || matches!(
                n,
                "content-length"
                    | "content-security-policy"
                    | "content-security-policy-report-only"
                    | "x-content-type-options"
            )
            || listed.iter().any(|l| l == n)
            || (*name == header::SET_COOKIE && is_gateway_cookie(value.as_bytes())))
    })
}

/// Adds the content guards of every answer under `/{service}/mcp`. `sandbox` makes a browser
/// treat a backend page as a unique opaque origin with no script, forms or plugins (JSON and
/// SSE clients ignore it); `nosniff` keeps a JSON or text body from being taken for HTML.
pub fn guard_response(res: &mut HttpResponseBuilder) {
    res.insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox")));
    res.insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")));
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
            denied_tools: Vec::new(),
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
            ("x_user_id", "admin"),
            ("X-User_Email", "root@evil.example"),
            ("mcp_session_id", "s-2"),
            ("x_forwarded_for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-port", "1"),
            ("mcp-session-id", "s-1"),
            ("mcp-param-foo", "bar"),
            ("accept", "text/event-stream"),
        ]);
        let mut out = http::HeaderMap::new();
        copy_request_headers(&incoming, &mut out);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(out.len(), 3, "{names:?}");
        assert_eq!(out.get("mcp-session-id").map(|v| v.as_bytes()), Some(&b"s-1"[..]));
        assert!(out.contains_key("mcp-param-foo") && out.contains_key("accept"));
    }

    #[test]
    fn only_gateway_cookies_are_removed() {
        let incoming =
            map(&[("cookie", "a=1; mcpgw_session=x;__Host-mcpgw_consent=y; MCPGW_login=z; b=2; c_mcpgw_=3")]);
        let mut out = http::HeaderMap::new();
        copy_request_headers(&incoming, &mut out);
        assert_eq!(out.get(http::header::COOKIE).and_then(|v| v.to_str().ok()), Some("a=1; b=2; c_mcpgw_=3"));

        let mut out = http::HeaderMap::new();
        copy_request_headers(&map(&[("cookie", "mcpgw_session=x")]), &mut out);
        assert!(!out.contains_key(http::header::COOKIE));
    }

    #[test]
    fn user_headers_come_from_claims_without_control_characters() {
        let mut out = http::HeaderMap::new();
        add_user_headers(&claims(), &mut out);
        assert_eq!(out.get("x-user-id").map(|v| v.as_bytes()), Some(&b"dev_alice"[..]));
        assert_eq!(out.get("x-user-name").map(|v| v.as_bytes()), Some("AlX-Evil: 1ice José".as_bytes()));
        assert!(!out.contains_key("x-user-avatar"));
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn forwarded_headers_append_the_peer_and_use_the_issuer() {
        let mut out = http::HeaderMap::new();
        let peer = "10.0.0.2".parse().ok();
        let origin = ForwardedOrigin::from_issuer("https://gw.example:8443");
        add_forwarded(&map(&[("x-forwarded-for", "1.2.3.4")]), peer, &origin, &mut out);
        let get = |name| out.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(get("x-forwarded-for"), Some("1.2.3.4, 10.0.0.2"));
        assert_eq!(get("x-real-ip"), Some("10.0.0.2"));
        assert_eq!(get("forwarded"), Some("for=\"10.0.0.2\";host=\"gw.example:8443\";proto=https"));
        assert_eq!(get("x-forwarded-proto"), Some("https"));
        assert_eq!(get("x-forwarded-host"), Some("gw.example:8443"));
        assert_eq!(get("x-forwarded-port"), Some("8443"));
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn forwarded_quotes_ipv6_and_copes_without_a_peer() {
        let origin = ForwardedOrigin::from_issuer("https://gw.example");
        let mut out = http::HeaderMap::new();
        add_forwarded(&HeaderMap::new(), "::1".parse().ok(), &origin, &mut out);
        let get =
            |out: &http::HeaderMap, name| out.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(get(&out, "x-forwarded-for").as_deref(), Some("::1"));
        assert_eq!(get(&out, "x-real-ip").as_deref(), Some("::1"));
        assert_eq!(get(&out, "forwarded").as_deref(), Some("for=\"[::1]\";host=\"gw.example\";proto=https"));
        assert_eq!(get(&out, "x-forwarded-port").as_deref(), Some("443"));

        let mut out = http::HeaderMap::new();
        add_forwarded(&HeaderMap::new(), None, &origin, &mut out);
        assert_eq!(get(&out, "forwarded").as_deref(), Some("host=\"gw.example\";proto=https"));
        assert!(!out.contains_key("x-forwarded-for") && !out.contains_key("x-real-ip"));
    }

    #[test]
    fn response_keeps_session_id_and_drops_framing_and_gateway_cookies() {
        let backend = map(&[
            ("mcp-session-id", "s-1"),
            ("content-length", "10"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "mcpgw_session=evil; Path=/"),
            ("set-cookie", "MCPGW_Session=evil; Path=/"),
            ("set-cookie", "__host-Mcpgw_consent=evil; Secure; Path=/"),
            ("set-cookie", " = mcpgw_login=evil"),
            ("set-cookie", "mcpgw_session"),
            ("set-cookie", "app=1"),
            ("content-security-policy", "default-src *"),
            ("content-security-policy-report-only", "default-src 'none'; report-uri /r"),
            ("x-content-type-options", "sniff-please"),
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
