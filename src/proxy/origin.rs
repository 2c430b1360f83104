//! DNS-rebinding defence (checklist C1): a browser page on an attacker's domain that resolves
//! to the gateway still sends its own `Origin`, so a present `Origin` must be one the operator
//! listed or a loopback page. Requests without `Origin` (non-browser clients) pass.

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap};

use super::error::ProxyError;
use crate::config::CorsSettings;

/// Refuses a present `Origin` that is neither listed in `cors.allow_origins` nor loopback.
/// `"*"` in the list switches the check off only in `debug` mode.
pub fn check(headers: &HeaderMap, cors: &CorsSettings, debug: bool) -> Result<(), ProxyError> {
    let Some(value) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = value.to_str().map_err(|_| ProxyError::ForbiddenOrigin)?;
    if is_loopback(origin) || is_listed(origin, &cors.allow_origins, debug) {
        Ok(())
    } else {
        log::info!("refused request from origin {origin:?}");
        Err(ProxyError::ForbiddenOrigin)
    }
}

fn is_listed(origin: &str, allowed: &[String], debug: bool) -> bool {
    let origin = origin.trim_end_matches('/');
    allowed.iter().any(|a| (a == "*" && debug) || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// `http(s)://` on `localhost`, a loopback IPv4 address or `[::1]`, any port.
fn is_loopback(origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn with_origin(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_str(origin).expect("valid"));
        headers
    }

    fn cors(origins: &[&str]) -> CorsSettings {
        CorsSettings { allow_origins: origins.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    #[test]
    fn no_origin_passes() {
        assert!(check(&HeaderMap::new(), &cors(&[]), false).is_ok());
    }

    #[test]
    fn loopback_origins_pass_on_any_port() {
        for o in ["http://localhost:3000", "https://127.0.0.1", "http://[::1]:6274", "http://LOCALHOST"] {
            assert!(check(&with_origin(o), &cors(&[]), false).is_ok(), "{o}");
        }
    }

    #[test]
    fn foreign_origins_are_refused() {
        for o in ["https://evil.example", "null", "http://localhost.evil.example", "file://localhost"] {
            assert!(check(&with_origin(o), &cors(&[]), false).is_err(), "{o}");
        }
    }

    #[test]
    fn listed_origins_pass() {
        let c = cors(&["https://app.example/"]);
        assert!(check(&with_origin("https://app.example"), &c, false).is_ok());
        assert!(check(&with_origin("https://other.example"), &c, false).is_err());
    }

    #[test]
    fn wildcard_opens_only_in_debug() {
        let c = cors(&["*"]);
        assert!(check(&with_origin("https://evil.example"), &c, false).is_err());
        assert!(check(&with_origin("https://evil.example"), &c, true).is_ok());
    }
}
