//! Outbound fetches a stranger can point at any URL, with the guards that keeps safe. Today:
//! the guarded GET of a Client ID Metadata Document, the implementation of
//! [`DocumentFetcher`].
//! A client id is a URL chosen by whoever starts an
//! authorization, so this is a server-side request forgery surface (draft §8.6):
//!
//! - The host is resolved here and every address checked; the request then connects to a
//!   checked address (`ClientRequest::address`) instead of resolving again, so a DNS answer
//!   that changes between check and connect (rebinding) cannot reach an internal service.
//!   TLS still verifies the certificate against the URL's host.
//! - Redirects are not followed: a 3xx is an error (it could point anywhere).
//! - The body is read up to [`MAX_DOCUMENT`] and the whole fetch bounded by [`TIMEOUT`].
//!
//! `awc::Client` is `!Send`; the registry's handlers run as `ResponseFuture`s on the actor's
//! thread, so each fetch builds its own client there, as `crate::upstream` does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use awc::error::PayloadError;
use awc::http::header;
use url::{Host, Url};

use crate::core::cimd::cache::lifetime;
use crate::core::cimd::{CimdError, DocumentFetcher, FetchFuture, Fetched, MAX_DOCUMENT, TIMEOUT};

const USER_AGENT: &str = concat!("mcp-gateway/", env!("CARGO_PKG_VERSION"));

/// The metadata document fetcher the gateway runs with.
#[derive(Debug, Default, Clone, Copy)]
pub struct GuardedFetch;

impl DocumentFetcher for GuardedFetch {
    fn fetch<'a>(&'a self, url: &'a Url, allow_private: bool) -> FetchFuture<'a> {
        Box::pin(fetch(url, allow_private))
    }
}

/// Fetches `url`; `allow_private` (development) skips the address check.
pub async fn fetch(url: &Url, allow_private: bool) -> Result<Fetched, CimdError> {
    tokio::time::timeout(TIMEOUT, fetch_unbounded(url, allow_private))
        .await
        .unwrap_or(Err(CimdError::Timeout))
}

async fn fetch_unbounded(url: &Url, allow_private: bool) -> Result<Fetched, CimdError> {
    let addr = resolve(url, allow_private).await?;
    let client = awc::Client::builder().disable_redirects().timeout(TIMEOUT).finish();
    let mut res = client
        .get(url.as_str())
        .address(addr)
        .insert_header((header::ACCEPT, "application/json"))
        .insert_header((header::USER_AGENT, USER_AGENT))
        .send()
        .await
        .map_err(|e| CimdError::Unreachable(e.to_string()))?;
    let status = res.status();
    if status.is_redirection() {
        return Err(CimdError::Redirect);
    }
    if status != awc::http::StatusCode::OK {
        return Err(CimdError::Status(status.as_u16()));
    }
    let content_type = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !is_json(content_type.unwrap_or("")) {
        return Err(CimdError::NotJson);
    }
    let cache_for = lifetime(res.headers().get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()));
    // `limit` refuses an announced length over the cap up front and stops a stream that
    // grows past it while reading.
    let body = res.body().limit(MAX_DOCUMENT).await.map_err(|e| match e {
        PayloadError::Overflow => CimdError::TooLarge,
        other => CimdError::Unreachable(other.to_string()),
    })?;
    Ok(Fetched { body, cache_for })
}

/// `application/json` or any `+json` type, parameters ignored.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Resolves the URL's host and returns an address to connect to; every resolved address must
/// be public unless `allow_private`.
async fn resolve(url: &Url, allow_private: bool) -> Result<SocketAddr, CimdError> {
    let port = url.port_or_known_default().ok_or(CimdError::BadUrl("has no port"))?;
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(Host::Domain(domain)) => tokio::net::lookup_host((domain, port))
            .await
            .map_err(|e| CimdError::Unreachable(format!("resolving {domain}: {e}")))?
            .collect(),
        None => return Err(CimdError::BadUrl("must have a host")),
    };
    // All, not any: with one private answer among public ones the connection could still
    // land on the private one. For a name, the refusal reads like any failed fetch: telling
    // the client that a name resolves to a private address would make this an oracle for
    // mapping the gateway's internal DNS. (An address literal reveals nothing it did not say.)
    if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(match url.host() {
            Some(Host::Domain(domain)) => {
                CimdError::Unreachable(format!("{domain} resolves to a non-public address"))
            }
            _ => CimdError::NotPublic,
        });
    }
    addrs.first().copied().ok_or_else(|| CimdError::Unreachable("no address".into()))
}

/// Whether `ip` is a globally routable unicast address: not private, loopback, link-local,
/// shared (CGNAT), documentation, benchmarking, multicast, reserved or unspecified, and for
/// IPv6 not a form that embeds such an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || a >= 224
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // Only global unicast (2000::/3) can be public at all.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s[0] {
        // 6to4 carries an IPv4 address in bits 16..48.
        0x2002 => is_public_v4(embedded(s[1], s[2])),
        // Teredo (2001:0::/32), benchmarking (2001:2::/48), ORCHID and documentation.
        0x2001 => !(s[1] == 0 || s[1] == 2 || (0x10..0x30).contains(&s[1]) || s[1] == 0x0db8),
        // Documentation (3fff::/20).
        0x3fff => s[1] >= 0x1000,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
            "64:ff9b::a00:1",
            "100::1",
            "2001:db8::1",
            "2001::1",
            "2002:7f00:1::1",
            "2002:a00:1::1",
            "3fff::1",
        ] {
            assert!(!public(ip), "{ip} counted as public");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "::ffff:8.8.8.8",
            "2606:4700::1111",
            "2002:808:808::1",
            "2a00:1450::1",
        ] {
            assert!(public(ip), "{ip} counted as private");
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/client-metadata+json"));
        assert!(!is_json("text/html"));
        assert!(!is_json("text/json+html"));
        assert!(!is_json(""));
    }

    #[actix_rt::test]
    async fn private_addresses_are_refused_before_connecting() {
        for url in ["https://127.0.0.1:9/c", "https://[::1]:9/c", "https://10.0.0.1/c"] {
            let url = Url::parse(url).unwrap();
            assert_eq!(resolve(&url, false).await.err(), Some(CimdError::NotPublic), "{url}");
        }
        let name = Url::parse("https://localhost:9/c").unwrap();
        let refused = resolve(&name, false).await.err();
        assert!(matches!(refused, Some(CimdError::Unreachable(_))), "{refused:?}");
        let shown = refused.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(shown, "the metadata document could not be fetched", "nothing about the address");
        let url = Url::parse("https://127.0.0.1:9/c").unwrap();
        assert!(resolve(&url, true).await.is_ok());
    }
}
