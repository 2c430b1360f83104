//! A bounded in-process cache of validated metadata documents (draft §5.2: respect HTTP
//! caching headers). Only successes are kept: a failed fetch is retried on the next request,
//! so one bad moment of the client's server does not lock its users out.
//!
//! One cache per process, owned by the client registry and so shared by every worker. A plain
//! mutex is enough: it is held for a map operation, never across an `.await`.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::core::model::Client;

/// Kept this long when the response says nothing about caching.
pub const DEFAULT_TTL: u64 = 300;
/// Never kept longer than this, whatever `max-age` says.
pub const MAX_TTL: u64 = 24 * 3600;
/// Most documents kept.
pub const CAPACITY: usize = 1000;

/// Seconds a response with this `Cache-Control` value may be reused: 0 for `no-store`,
/// `no-cache` (it may not be reused without revalidation, which this cache does not do) and
/// `max-age=0`; `max-age` capped at [`MAX_TTL`]; [`DEFAULT_TTL`] otherwise.
pub fn lifetime(cache_control: Option<&str>) -> u64 {
    let mut max_age = None;
    for directive in cache_control.unwrap_or("").split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return 0;
        }
        if let Some(value) = directive.strip_prefix("max-age=") {
            max_age = value.trim_matches('"').parse::<u64>().ok().or(max_age);
        }
    }
    max_age.unwrap_or(DEFAULT_TTL).min(MAX_TTL)
}

/// Documents by client id, each with the Unix time it expires.
#[derive(Default)]
pub struct DocumentCache {
    entries: Mutex<HashMap<String, (Client, i64)>>,
}

impl DocumentCache {
    /// The cached client for `client_id`, if still fresh at `now`.
    pub fn get(&self, client_id: &str, now: i64) -> Option<Client> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(client_id).filter(|(_, until)| *until > now).map(|(client, _)| client.clone())
    }

    /// Keeps `client` until `until`. When full, expired entries go first, then the one that
    /// expires soonest.
    pub fn put(&self, client: Client, now: i64, until: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(&client.client_id) {
            entries.retain(|_, (_, t)| *t > now);
            if entries.len() >= CAPACITY {
                let soonest = entries.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| k.clone());
                if let Some(key) = soonest {
                    entries.remove(&key);
                }
            }
        }
        entries.insert(client.client_id.clone(), (client, until));
    }

    /// Number of entries (fresh or not).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::ClientSource;

    fn client(id: &str) -> Client {
        Client {
            client_id: id.into(),
            client_secret_hash: None,
            client_name: None,
            redirect_uris: vec![],
            token_endpoint_auth_method: "none".into(),
            grant_types: vec![],
            response_types: vec![],
            scope: None,
            application_type: None,
            client_uri: None,
            logo_uri: None,
            client_id_issued_at: 0,
            source: ClientSource::MetadataDocument,
            last_used: 0,
        }
    }

    #[test]
    fn lifetimes_follow_cache_control() {
        assert_eq!(lifetime(None), DEFAULT_TTL);
        assert_eq!(lifetime(Some("public")), DEFAULT_TTL);
        assert_eq!(lifetime(Some("public, max-age=60")), 60);
        assert_eq!(lifetime(Some("Max-Age=\"90\"")), 90);
        assert_eq!(lifetime(Some("max-age=999999999")), MAX_TTL);
        assert_eq!(lifetime(Some("max-age=0")), 0);
        assert_eq!(lifetime(Some("max-age=60, no-store")), 0);
        assert_eq!(lifetime(Some("no-cache")), 0);
        assert_eq!(lifetime(Some("max-age=abc")), DEFAULT_TTL);
    }

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let cache = DocumentCache::default();
        cache.put(client("a"), 0, 100);
        assert!(cache.get("a", 99).is_some());
        assert!(cache.get("a", 100).is_none());
        for i in 0..CAPACITY + 10 {
            cache.put(client(&i.to_string()), 0, 1000 + i as i64);
        }
        assert_eq!(cache.len(), CAPACITY);
        // The soonest to expire were dropped, the latest kept.
        assert!(cache.get("0", 1).is_none());
        assert!(cache.get(&(CAPACITY + 9).to_string(), 1).is_some());
    }
}
