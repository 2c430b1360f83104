//! The storage port: the small key-value trait the services keep their records in, the
//! revocation broadcast beside it, typed JSON helpers, the in-process implementation and the
//! acceptance suite every implementation must pass. The Redis and Vault backends live in
//! `crate::storage`, which depends on this module and never the other way round.
//!
//! Records are JSON under namespaced keys ([`crate::core::model::keys`]). Single use (codes,
//! refresh tokens, login states) comes from [`Store::take`], which removes and returns in one
//! storage operation, so it also holds across gateway instances sharing a backend. Records
//! carry their own expiry as well, checked against the gateway's [`Clock`](super::Clock); the
//! TTL given here only lets the backend forget them.

use std::future::Future;
use std::time::Duration;

use super::revocation::{Revocation, RevocationSet};

pub mod acceptance;
pub mod memory;

pub use memory::MemoryStore;

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

    /// The keys that start with `prefix`, in no particular order. For administration (listing
    /// grants and clients), never on a request path: it walks the keyspace. A key may have
    /// expired by the time it is read; [`Store::get`] says.
    fn keys(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// The revocation broadcast: how a revocation made on one instance reaches the local
/// [`RevocationSet`] of every other instance sharing the backend.
pub trait Revocations: Send + Sync + 'static {
    /// Announces a revocation to every instance watching this backend (including this one).
    fn publish_revocation(&self, rev: &Revocation) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Starts a background task (on the current tokio runtime) that inserts every revocation
    /// published on this backend, by any instance, into `into`: first those already
    /// published and still kept, then new ones as they come, within a second. It survives
    /// backend outages (catching up afterwards) and ends once the store is dropped.
    fn watch_revocations(&self, into: RevocationSet);
}

/// Pauses (ms) before looking again for a record a concurrent request is about to write (a
/// rotation marker, a used-code marker): one storage round trip, longer under load. About
/// half a second in all, paid only by requests that find nothing.
pub const RECHECK_MS: [u64; 6] = [10, 20, 40, 80, 160, 320];

/// A backend TTL of `secs` seconds.
pub fn ttl(secs: u64) -> Option<Duration> {
    Some(Duration::from_secs(secs))
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
