//! Rate limits at the endpoints a stranger can call without credentials: which client the
//! request comes from, and the 429 it gets past its endpoint's bucket.
//!
//! The client is the connection's peer, unless the peer is a configured trusted proxy: then it
//! is the rightmost `X-Forwarded-For` entry that is not a trusted proxy itself (everything left
//! of it could have been written by the client). IPv6 clients are counted per /64, the block a
//! single subscriber usually gets.

use std::net::IpAddr;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};

use crate::config::{LimitSettings, Rate, TrustedProxies};
use crate::core::rate::{Decision, RateLimiter as _};
use crate::state::AppState;
use crate::web::error_page;

/// The limited endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /oauth/register`.
    Register,
    /// `POST /oauth/token`.
    Token,
    /// `GET /oauth/authorize`.
    Authorize,
    /// `POST /oauth/consent`.
    Consent,
    /// `GET /oauth/callback`.
    Callback,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Register => "register",
            Endpoint::Token => "token",
            Endpoint::Authorize => "authorize",
            Endpoint::Consent => "consent",
            Endpoint::Callback => "callback",
        }
    }

    fn rate(self, limits: &LimitSettings) -> Rate {
        match self {
            Endpoint::Register => limits.register,
            Endpoint::Token => limits.token,
            Endpoint::Authorize => limits.authorize,
            Endpoint::Consent => limits.consent,
            Endpoint::Callback => limits.callback,
        }
    }

    /// Browser endpoints answer with a page, the others with JSON.
    fn is_browser(self) -> bool {
        matches!(self, Endpoint::Authorize | Endpoint::Consent | Endpoint::Callback)
    }
}

/// The address the request comes from (see the module docs).
pub fn client_ip(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if trusted.is_empty() || !trusted.contains(peer) {
        return Some(peer);
    }
    let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok());
    let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).map(str::trim).collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(ip) => continue,
            Ok(ip) => return Some(ip),
            // Garbage where an address should be: nothing further left can be believed.
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

/// The bucket key of a client: the address, or its /64 for IPv6.
fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Takes a token from this client's bucket for `endpoint`; the 429 to send when there is none.
/// A store that cannot answer lets the request through (its own storage calls will answer 503
/// if the store is really down): a limiter must not become the outage.
pub async fn check(state: &AppState, endpoint: Endpoint, req: &HttpRequest) -> Result<(), HttpResponse> {
    let rate = endpoint.rate(&state.settings.limits);
    if !rate.is_on() {
        return Ok(());
    }
    let Some(ip) = client_ip(req, &state.settings.trusted_proxies) else { return Ok(()) };
    let key = format!("rate:{}:{}", endpoint.name(), client_key(ip));
    let now_ms = state.clock.now().saturating_mul(1000) + sub_second_ms();
    match state.limiter.take(&key, rate, now_ms).await {
        Ok(Decision::Allowed) => Ok(()),
        Ok(Decision::Limited { retry_after }) => {
            log::info!("rate limit: {} from {ip}", endpoint.name());
            state.metrics.rate_limited(endpoint.name());
            Err(too_many(endpoint, retry_after))
        }
        Err(e) => {
            log::warn!("rate limit not checked ({}): {e}", endpoint.name());
            Ok(())
        }
    }
}

/// Milliseconds into the current second (the gateway clock counts whole seconds).
fn sub_second_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::from(since.subsec_millis())
}

fn too_many(endpoint: Endpoint, retry_after: u64) -> HttpResponse {
    let mut res = if endpoint.is_browser() {
        error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            &format!(
                "Too many sign-in requests from your network. Wait {retry_after} seconds and try again."
            ),
        )
    } else {
        HttpResponse::TooManyRequests().insert_header((header::CACHE_CONTROL, "no-store")).json(
            serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": format!("too many requests from this address; retry in {retry_after} s"),
            }),
        )
    };
    if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, value);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn trusted(list: &[&str]) -> TrustedProxies {
        serde_json::from_value(serde_json::json!(list)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn request(peer: &str, xff: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::default()
            .peer_addr(format!("{peer}:5000").parse().unwrap_or_else(|e| panic!("{e}")));
        if let Some(xff) = xff {
            req = req.insert_header(("x-forwarded-for", xff));
        }
        req.to_http_request()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let none = TrustedProxies::default();
        let lb = trusted(&["10.0.0.0/8"]);
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(client_ip(&request("203.0.113.9", Some("1.2.3.4")), &none), ip("203.0.113.9"), "spoofed");
        assert_eq!(client_ip(&request("10.0.0.2", Some("1.2.3.4")), &lb), ip("1.2.3.4"));
        // The client wrote the leftmost entries; the proxy appended the real one.
        assert_eq!(client_ip(&request("10.0.0.2", Some("6.6.6.6, 1.2.3.4")), &lb), ip("1.2.3.4"));
        assert_eq!(client_ip(&request("10.0.0.2", Some("1.2.3.4, 10.0.0.7")), &lb), ip("1.2.3.4"), "chain");
        assert_eq!(client_ip(&request("10.0.0.2", Some("junk")), &lb), ip("10.0.0.2"));
        assert_eq!(client_ip(&request("10.0.0.2", None), &lb), ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap_or(IpAddr::from([0; 16]));
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(client_key("::ffff:192.0.2.1".parse().unwrap_or(a)), "192.0.2.1");
    }
}
