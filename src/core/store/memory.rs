//! In-process storage: one map behind a mutex. Every operation is a short critical section
//! with no `.await` inside, so a plain `std::sync::Mutex` is right here; expired entries read
//! as absent and are swept lazily once the map has grown past a threshold. Revocations are
//! handed straight to the sets watching this store: memory storage is one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Revocations, Store, StoreError};
use crate::core::clock::Clock;
use crate::core::revocation::{Revocation, RevocationSet};

/// The memory backend. Cloning shares the same map.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    revocations: Arc<Mutex<Published>>,
}

/// Revocations published on this store and the sets watching it.
#[derive(Default)]
struct Published {
    published: Vec<Revocation>,
    watchers: Vec<RevocationSet>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    next_sweep: usize,
}

struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map half-written (each operation
        // is a single map call), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of live entries (for tests and `/health`).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.lock().map.values().filter(|e| e.live(now)).count()
    }

    /// Whether no live entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn insert(&mut self, key: &str, value: Vec<u8>, ttl: Option<Duration>) {
        let now = Instant::now();
        if self.map.len() >= self.next_sweep {
            self.map.retain(|_, e| e.live(now));
            self.next_sweep = (self.map.len() * 2).max(1024);
        }
        self.map.insert(key.to_owned(), Entry { value, expires: ttl.map(|t| now + t) });
    }

    fn live(&self, key: &str) -> Option<&Entry> {
        self.map.get(key).filter(|e| e.live(Instant::now()))
    }
}

impl Store for MemoryStore {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.lock().insert(key, value, ttl);
        Ok(())
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner.live(key).is_some() {
            return Ok(false);
        }
        inner.insert(key, value, ttl);
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().live(key).map(|e| e.value.clone()))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        Ok(self.lock().map.remove(key).filter(|e| e.live(now)).map(|e| e.value))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().map.remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let now = Instant::now();
        let inner = self.lock();
        Ok(inner
            .map
            .iter()
            .filter(|(k, e)| k.starts_with(prefix) && e.live(now))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

impl Revocations for MemoryStore {
    async fn publish_revocation(&self, rev: &Revocation) -> Result<(), StoreError> {
        let mut revs = self.revocations.lock().unwrap_or_else(|p| p.into_inner());
        // `until` is gateway-clock time, which never runs behind the real clock: an entry
        // moot by the real clock is moot for every instance.
        let now = Clock::default().now();
        revs.published.retain(|r| r.until > now);
        revs.published.push(rev.clone());
        for set in &revs.watchers {
            set.insert(&rev.id, rev.until);
        }
        Ok(())
    }

    fn watch_revocations(&self, into: RevocationSet) {
        let mut revs = self.revocations.lock().unwrap_or_else(|p| p.into_inner());
        for rev in &revs.published {
            into.insert(&rev.id, rev.until);
        }
        revs.watchers.push(into);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_passes_the_acceptance_suite() -> Result<(), StoreError> {
        super::super::acceptance::run_all(Arc::new(MemoryStore::new()), "mem").await
    }
}
