//! Storage: a small key-value trait with expiry and atomic take, and its backends.
//!
//! The state actors keep JSON records here under namespaced keys. Single use (codes, refresh
//! tokens, login states) comes from [`Store::take`], which removes and returns in one storage
//! operation, so it also holds across gateway instances sharing a backend. Records carry their
//! own expiry as well, checked against the gateway's [`Clock`](crate::state::Clock); the TTL
//! given here only lets the backend forget them.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state::RevocationSet;

pub mod memory;
pub mod redis;
pub mod vault;

pub use memory::MemoryStore;
pub use redis::RedisStore;
pub use vault::VaultStore;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached right now; callers answer 503.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered something unexpected.
    #[error("backend error: {0}")]
    Backend(String),
    /// A stored record did not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// A revocation as announced to every gateway instance: a revoked access token id (`jti`) or
/// token family id, and the Unix time (gateway clock) after which it is moot because every
/// token it names has expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The `jti` or family id.
    pub id: String,
    /// Unix seconds after which the entry can be forgotten.
    pub until: i64,
}

/// What every backend offers. Values are opaque bytes (JSON records).
pub trait Store: Send + Sync + 'static {
    /// Stores `value` under `key`, replacing any previous value.
    fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores `value` only if `key` is absent; returns whether it was stored.
    fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Reads `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Removes `key` and returns what it held, in one atomic operation: of any number of
    /// concurrent takes of one key, at most one gets the value.
    fn take(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Removes `key` if present.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Checks the backend answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Announces a revocation to every instance watching this backend (including this one).
    fn publish_revocation(&self, rev: &Revocation) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Starts a background task (on the current tokio runtime) that inserts every revocation
    /// published on this backend, by any instance, into `into`: first those already
    /// published and still kept, then new ones as they come, within a second. It survives
    /// backend outages (catching up afterwards) and ends once the store is dropped.
    fn watch_revocations(&self, into: RevocationSet);
}

/// The backend chosen at startup by the storage supervisor. An enum rather than a trait
/// object: dispatch stays static and the trait keeps its native `async` methods.
#[derive(Clone)]
pub enum Backend {
    /// In-process map; lost on restart, one instance only.
    Memory(MemoryStore),
    /// Redis (or a Redis-compatible server); shared by every gateway instance.
    Redis(RedisStore),
    /// Vault / OpenBao KV v2; shared by every gateway instance.
    Vault(VaultStore),
}

impl Backend {
    /// The configured name of this backend, for `/health` and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
            Backend::Vault(_) => "vault",
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Backend::Memory($s) => $e,
            Backend::Redis($s) => $e,
            Backend::Vault($s) => $e,
        }
    };
}

impl Store for Backend {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), StoreError> {
        dispatch!(self, s => s.put(key, value, ttl).await)
    }
    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.put_if_absent(key, value, ttl).await)
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, s => s.get(key).await)
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, s => s.take(key).await)
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.delete(key).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }
    async fn publish_revocation(&self, rev: &Revocation) -> Result<(), StoreError> {
        dispatch!(self, s => s.publish_revocation(rev).await)
    }
    fn watch_revocations(&self, into: RevocationSet) {
        dispatch!(self, s => s.watch_revocations(into))
    }
}

/// Connects the backend named by `settings.kind`. Fails when it cannot be reached; the storage
/// supervisor decides whether to fall back to memory.
pub async fn connect(settings: &crate::config::StorageSettings) -> Result<Backend, StoreError> {
    match settings.kind.as_str() {
        "memory" => Ok(Backend::Memory(MemoryStore::new())),
        "redis" => Ok(Backend::Redis(RedisStore::connect(&settings.redis).await?)),
        "vault" => Ok(Backend::Vault(VaultStore::connect(&settings.vault).await?)),
        other => Err(StoreError::Backend(format!("storage type '{other}' is not available"))),
    }
}

/// Typed JSON helpers over any [`Store`].
pub mod json {
    use super::{Store, StoreError};
    use serde::{de::DeserializeOwned, Serialize};
    use std::time::Duration;

    /// Serializes `value` and stores it.
    pub async fn put<S: Store, T: Serialize>(
        store: &S,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        store.put(key, bytes, ttl).await
    }

    /// Serializes `value` and stores it only if `key` is absent.
    pub async fn put_if_absent<S: Store, T: Serialize>(
        store: &S,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        store.put_if_absent(key, bytes, ttl).await
    }

    /// Reads and decodes `key`.
    pub async fn get<S: Store, T: DeserializeOwned>(store: &S, key: &str) -> Result<Option<T>, StoreError> {
        decode(store.get(key).await?)
    }

    /// Takes and decodes `key`.
    pub async fn take<S: Store, T: DeserializeOwned>(store: &S, key: &str) -> Result<Option<T>, StoreError> {
        decode(store.take(key).await?)
    }

    fn decode<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> Result<Option<T>, StoreError> {
        bytes.map(|b| serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
    }
}

/// The acceptance suite every backend runs (style guide item 5); public so the backend tests
/// under `tests/` reach it. Each test takes a fresh,
/// empty store; keys are unique per call so backends shared between tests do not collide.
pub mod acceptance {
    use super::{Revocation, Store, StoreError};
    use crate::state::RevocationSet;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Runs every check against `store`; `prefix` keeps keys apart between runs.
    pub async fn run_all<S: Store>(store: Arc<S>, prefix: &str) -> Result<(), StoreError> {
        put_get_delete(&*store, prefix).await?;
        take_is_single_use(&*store, prefix).await?;
        concurrent_takes_yield_one(store.clone(), prefix).await?;
        put_if_absent_only_once(&*store, prefix).await?;
        ttl_expires(&*store, prefix).await?;
        revocations_fan_out(&*store, &*store, prefix).await?;
        store.ping().await
    }

    /// A revocation published on `publisher` reaches a set watched through `watcher` (another
    /// connection to the same backend, or the same store) within a second, and one published
    /// before the watch started is caught up.
    pub async fn revocations_fan_out<S: Store>(
        publisher: &S,
        watcher: &S,
        p: &str,
    ) -> Result<(), StoreError> {
        let far = i64::MAX / 4;
        let early = Revocation { id: format!("{p}:rev-early"), until: far };
        publisher.publish_revocation(&early).await?;
        let set = RevocationSet::default();
        watcher.watch_revocations(set.clone());
        let late = Revocation { id: format!("{p}:rev-late"), until: far };
        // Give the watcher its first read, so `late` is really delivered as news.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let published = Instant::now();
        publisher.publish_revocation(&late).await?;
        while !(set.contains(&early.id) && set.contains(&late.id)) {
            assert!(published.elapsed() < Duration::from_secs(1), "revocation not seen within a second");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    async fn put_get_delete<S: Store>(s: &S, p: &str) -> Result<(), StoreError> {
        let k = format!("{p}:pgd");
        s.put(&k, b"one".to_vec(), None).await?;
        assert_eq!(s.get(&k).await?.as_deref(), Some(&b"one"[..]));
        s.put(&k, b"two".to_vec(), None).await?;
        assert_eq!(s.get(&k).await?.as_deref(), Some(&b"two"[..]));
        s.delete(&k).await?;
        assert_eq!(s.get(&k).await?, None);
        s.delete(&k).await
    }

    async fn take_is_single_use<S: Store>(s: &S, p: &str) -> Result<(), StoreError> {
        let k = format!("{p}:take");
        s.put(&k, b"v".to_vec(), Some(Duration::from_secs(60))).await?;
        assert_eq!(s.take(&k).await?.as_deref(), Some(&b"v"[..]));
        assert_eq!(s.take(&k).await?, None);
        assert_eq!(s.get(&k).await?, None);
        Ok(())
    }

    async fn concurrent_takes_yield_one<S: Store>(s: Arc<S>, p: &str) -> Result<(), StoreError> {
        let k = format!("{p}:race");
        s.put(&k, b"v".to_vec(), Some(Duration::from_secs(60))).await?;
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (s, k) = (s.clone(), k.clone());
                async move { s.take(&k).await }
            })
            .collect();
        let results = futures_util::future::join_all(tasks).await;
        let mut wins = 0;
        for r in results {
            if r?.is_some() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1, "exactly one concurrent take wins");
        Ok(())
    }

    async fn put_if_absent_only_once<S: Store>(s: &S, p: &str) -> Result<(), StoreError> {
        let k = format!("{p}:pia");
        s.delete(&k).await?;
        assert!(s.put_if_absent(&k, b"a".to_vec(), Some(Duration::from_secs(60))).await?);
        assert!(!s.put_if_absent(&k, b"b".to_vec(), Some(Duration::from_secs(60))).await?);
        assert_eq!(s.get(&k).await?.as_deref(), Some(&b"a"[..]));
        s.delete(&k).await
    }

    async fn ttl_expires<S: Store>(s: &S, p: &str) -> Result<(), StoreError> {
        let k = format!("{p}:ttl");
        s.put(&k, b"v".to_vec(), Some(Duration::from_millis(1100))).await?;
        assert!(s.get(&k).await?.is_some());
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(s.get(&k).await?, None, "expired entries read as absent");
        assert_eq!(s.take(&k).await?, None);
        Ok(())
    }
}
