//! `limits:` and `trusted_proxies:`: what a stranger may spend. Rates are token buckets per
//! client IP and endpoint; caps bound what one registration or the pending-login table can
//! hold; unused registrations expire.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_aux::field_attributes::deserialize_number_from_string;

/// One token bucket: `per_minute` requests a minute on average, bursts of up to `burst`.
/// `per_minute: 0` switches the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct Rate {
    /// Sustained requests per minute per client IP.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub per_minute: u32,
    /// Requests allowed at once before the sustained rate applies.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub burst: u32,
}

impl Rate {
    const fn new(per_minute: u32, burst: u32) -> Self {
        Rate { per_minute, burst }
    }

    /// Whether this limit is on.
    pub fn is_on(&self) -> bool {
        self.per_minute > 0
    }
}

/// Limits on what unauthenticated callers can make the gateway do and keep.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct LimitSettings {
    /// `POST /oauth/register`.
    pub register: Rate,
    /// `POST /oauth/token`.
    pub token: Rate,
    /// `GET /oauth/authorize`.
    pub authorize: Rate,
    /// `POST /oauth/consent`.
    pub consent: Rate,
    /// `GET /oauth/callback`.
    pub callback: Rate,
    /// Largest registration request body, bytes.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub max_registration_bytes: usize,
    /// Most redirect URIs one client may register.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub max_redirect_uris: usize,
    /// Seconds a registered client that is never used is kept; every use starts it again.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub unused_client_ttl: u64,
    /// Sign-ins (pending authorizations) one instance holds at once.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub max_pending_authorizations: usize,
    /// Milliseconds the proxy gives a client to send a request body: the whole body when the
    /// gateway reads it before forwarding (sized bodies up to 64 KiB, step-up checks), and the
    /// longest pause between two pieces of a body it streams. Past it, 408 and the connection
    /// is closed. `0` switches it off.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub body_timeout_ms: u64,
    /// SSE streams (`GET` on a service) one token family may hold open at once on this
    /// instance; past it, 429 before anything reaches the backend. `0` switches it off.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub max_streams_per_token: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            register: Rate::new(10, 20),
            token: Rate::new(120, 60),
            authorize: Rate::new(60, 30),
            consent: Rate::new(30, 20),
            callback: Rate::new(30, 20),
            max_registration_bytes: 16 * 1024,
            max_redirect_uris: 20,
            unused_client_ttl: 30 * 24 * 3600,
            max_pending_authorizations: 10_000,
            body_timeout_ms: 10_000,
            max_streams_per_token: 32,
        }
    }
}

/// Proxies whose `X-Forwarded-For` is believed: addresses or CIDR networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether `ip` is one of them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// One entry: `10.0.0.0/8`, `192.0.2.7`, `::1`.
    fn from_str(entry: &str) -> Result<Self, String> {
        Ok(TrustedProxies(vec![parse_net(entry)?]))
    }
}

fn parse_net(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{entry:?} is not an IP address or CIDR network"))
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(de)?;
        let nets = entries.iter().map(|e| parse_net(e)).collect::<Result<Vec<_>, _>>();
        nets.map(TrustedProxies).map_err(serde::de::Error::custom)
    }
}

impl Serialize for TrustedProxies {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_addresses_or_networks() {
        let list: TrustedProxies =
            serde_json::from_value(serde_json::json!(["10.0.0.0/8", "::1", "192.0.2.7"]))
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(list.contains("10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(list.contains(IpAddr::from([192, 0, 2, 7])));
        assert!(!list.contains(IpAddr::from([192, 0, 2, 8])));
        assert!(serde_json::from_value::<TrustedProxies>(serde_json::json!(["10.0.0.0/33"])).is_err());
        assert!(serde_json::from_value::<TrustedProxies>(serde_json::json!(["proxy.local"])).is_err());
        assert_eq!(
            serde_json::to_value(&list).ok(),
            Some(serde_json::json!(["10.0.0.0/8", "::1/128", "192.0.2.7/32"]))
        );
    }
}
