//! JWK Sets fetched from a URL (a client's `jwks_uri`, a trusted issuer's keys), through the
//! same guarded fetch as metadata documents ([`DocumentFetcher`]: public addresses only, no
//! redirects, size and time bounds).
//!
//! A set is kept for its HTTP cache lifetime, within [`MIN_TTL`]..[`MAX_TTL`]. A token whose key
//! is not in the set (the signer rotated) makes the caller ask again with `refresh`; that
//! refetch happens at most once per [`REFETCH_EVERY`] per URL, so a stranger sending assertions
//! with made-up key ids cannot turn the gateway into a request generator. When a fetch fails
//! the keys already held keep being used until they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use url::Url;

use super::assertion::{self, AssertionError};
use crate::core::cimd::{CimdError, DocumentFetcher};

/// Shortest time a fetched set is kept, whatever its headers say (seconds).
pub const MIN_TTL: i64 = 60;
/// Longest time a fetched set is kept (seconds).
pub const MAX_TTL: i64 = 24 * 3600;
/// Least time between two fetches of one URL asked for by an unknown key (seconds).
pub const REFETCH_EVERY: i64 = 30;
/// Most URLs remembered (the configured ones are few; this only bounds mistakes).
const MAX_ENTRIES: usize = 1000;

/// Where a signer's public keys are (a `private_key_jwt` client, a trusted identity issuer).
#[derive(Debug, Clone)]
pub enum KeySource {
    /// No keys (a secret-based client).
    None,
    /// Keys written in the configuration.
    Inline(Vec<Jwk>),
    /// A JWK Set URL.
    Remote(Url),
}

impl KeySource {
    /// The keys a configuration entry names: its inline `jwks` (a set that does not parse,
    /// which validation refuses, holds no key) or else its `jwks_uri`.
    pub fn from_config(jwks: Option<&serde_json::Value>, jwks_uri: Option<&str>) -> Self {
        match (jwks, jwks_uri) {
            (Some(jwks), _) => KeySource::Inline(
                serde_json::from_value::<JwkSet>(jwks.clone()).map(|s| s.keys).unwrap_or_default(),
            ),
            (None, Some(uri)) => Url::parse(uri.trim()).map(KeySource::Remote).unwrap_or(KeySource::None),
            (None, None) => KeySource::None,
        }
    }
}

/// Why a signed assertion did not verify against its signer's keys.
#[derive(Debug)]
pub enum KeyError {
    /// The assertion failed (no key verifies it, bad header, …).
    Assertion(AssertionError),
    /// The signer's remote key set could not be fetched.
    Unreachable,
}

struct Entry {
    keys: Arc<Vec<Jwk>>,
    fetched_at: i64,
    expires_at: i64,
}

/// Fetched key sets by URL, shared by every actor instance of the process.
#[derive(Clone, Default)]
pub struct JwksCache {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwksCache")
    }
}

impl JwksCache {
    /// The keys at `url` as of `now`: cached while fresh (and, with `refresh`, unless the last
    /// fetch was under [`REFETCH_EVERY`] ago), else fetched.
    pub async fn keys(
        &self,
        fetcher: &dyn DocumentFetcher,
        url: &Url,
        allow_private: bool,
        now: i64,
        refresh: bool,
    ) -> Result<Arc<Vec<Jwk>>, CimdError> {
        let cached = self.cached(url, now, refresh);
        if let Some((keys, true)) = &cached {
            return Ok(keys.clone());
        }
        let stale = cached.map(|(keys, _)| keys);
        match fetch(fetcher, url, allow_private).await {
            Ok((keys, cache_for)) => {
                let keys = Arc::new(keys);
                self.store(url, keys.clone(), now, cache_for);
                Ok(keys)
            }
            Err(e) => {
                log::warn!("JWKS {url}: {e}");
                // Note the attempt, so a failing server is not asked again at once.
                if let Some(keys) = &stale {
                    self.touch(url, now);
                    return Ok(keys.clone());
                }
                Err(e)
            }
        }
    }

    /// The cached keys and whether they may be used without fetching.
    fn cached(&self, url: &Url, now: i64, refresh: bool) -> Option<(Arc<Vec<Jwk>>, bool)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(url.as_str())?;
        let fresh = entry.expires_at > now;
        let recently = now - entry.fetched_at < REFETCH_EVERY;
        Some((entry.keys.clone(), fresh && (!refresh || recently)))
    }

    fn store(&self, url: &Url, keys: Arc<Vec<Jwk>>, now: i64, cache_for: u64) {
        let ttl = i64::try_from(cache_for).unwrap_or(MAX_TTL).clamp(MIN_TTL, MAX_TTL);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(url.as_str()) {
            entries.retain(|_, e| e.expires_at > now);
        }
        if entries.len() < MAX_ENTRIES {
            entries.insert(url.as_str().to_owned(), Entry { keys, fetched_at: now, expires_at: now + ttl });
        }
    }

    /// The claims of `token` (with its checked `header`) once its signature verifies with one
    /// of `source`'s keys; a remote set is fetched again (rate-bounded, see the module docs)
    /// when none of its keys does, which picks up a signer's rotated key.
    pub async fn verify(
        &self,
        fetcher: &dyn DocumentFetcher,
        source: &KeySource,
        allow_private: bool,
        now: i64,
        token: &str,
        header: &jsonwebtoken::Header,
    ) -> Result<serde_json::Value, KeyError> {
        let url = match source {
            KeySource::None => return Err(KeyError::Assertion(AssertionError::Signature)),
            KeySource::Inline(keys) => {
                return assertion::verify(token, header, keys).map_err(KeyError::Assertion)
            }
            KeySource::Remote(url) => url,
        };
        let keys =
            self.keys(fetcher, url, allow_private, now, false).await.map_err(|_| KeyError::Unreachable)?;
        match assertion::verify(token, header, &keys) {
            Err(AssertionError::Signature) => {
                let keys = self
                    .keys(fetcher, url, allow_private, now, true)
                    .await
                    .map_err(|_| KeyError::Unreachable)?;
                assertion::verify(token, header, &keys).map_err(KeyError::Assertion)
            }
            other => other.map_err(KeyError::Assertion),
        }
    }

    fn touch(&self, url: &Url, now: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get_mut(url.as_str()) {
            entry.fetched_at = now;
            entry.expires_at = entry.expires_at.max(now + REFETCH_EVERY);
        }
    }
}

async fn fetch(
    fetcher: &dyn DocumentFetcher,
    url: &Url,
    allow_private: bool,
) -> Result<(Vec<Jwk>, u64), CimdError> {
    let fetched = fetcher.fetch(url, allow_private).await?;
    let set: JwkSet = serde_json::from_slice(&fetched.body)
        .map_err(|_| CimdError::Invalid("the JWKS is not a JWK Set".into()))?;
    Ok((set.keys, fetched.cache_for))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;

    use super::*;
    use crate::core::cimd::{FetchFuture, Fetched};

    /// Serves a set of one key whose `kid` counts the fetches.
    #[derive(Default)]
    struct Counting(AtomicUsize, std::sync::atomic::AtomicBool);

    impl DocumentFetcher for Counting {
        fn fetch<'a>(&'a self, _: &'a Url, _: bool) -> FetchFuture<'a> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            let fail = self.1.load(Ordering::SeqCst);
            Box::pin(async move {
                if fail {
                    return Err(CimdError::Status(500));
                }
                let body = format!(
                    r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k{n}","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}]}}"#
                );
                Ok(Fetched { body: Bytes::from(body), cache_for: 0 })
            })
        }
    }

    fn kid(keys: &[Jwk]) -> Option<String> {
        keys.first().and_then(|k| k.common.key_id.clone())
    }

    #[tokio::test]
    async fn sets_are_cached_and_refetched_at_most_every_so_often() -> Result<(), CimdError> {
        let (cache, fetcher) = (JwksCache::default(), Counting::default());
        let url = Url::parse("https://keys.example/jwks.json").map_err(|_| CimdError::BadUrl("url"))?;
        assert_eq!(kid(&cache.keys(&fetcher, &url, false, 1000, false).await?).as_deref(), Some("k0"));
        assert_eq!(kid(&cache.keys(&fetcher, &url, false, 1001, false).await?).as_deref(), Some("k0"));
        // An unknown kid right after a fetch: no new request.
        assert_eq!(kid(&cache.keys(&fetcher, &url, false, 1010, true).await?).as_deref(), Some("k0"));
        assert_eq!(
            kid(&cache.keys(&fetcher, &url, false, 1000 + REFETCH_EVERY, true).await?).as_deref(),
            Some("k1")
        );
        // Expired: fetched again; a failing server leaves the old keys in use.
        fetcher.1.store(true, Ordering::SeqCst);
        let later = 1000 + REFETCH_EVERY + MIN_TTL + 1;
        assert_eq!(kid(&cache.keys(&fetcher, &url, false, later, false).await?).as_deref(), Some("k1"));
        assert_eq!(fetcher.0.load(Ordering::SeqCst), 3);
        let other = Url::parse("https://other.example/jwks.json").map_err(|_| CimdError::BadUrl("url"))?;
        assert!(cache.keys(&fetcher, &other, false, later, false).await.is_err());
        Ok(())
    }
}
