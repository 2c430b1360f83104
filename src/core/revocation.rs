//! Revocations as the proxy sees them: a local set checked on every request (never a storage
//! round trip), and the message that carries one revocation to every instance.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

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

/// Revoked token ids (`jti`) and token families (`fid`), each with the time after which the
/// entry is moot because the tokens it names have expired. Checked on every proxied request,
/// so it is a local read lock, never a storage round trip.
#[derive(Clone, Default)]
pub struct RevocationSet {
    inner: Arc<RwLock<HashMap<String, i64>>>,
}

impl RevocationSet {
    /// Marks `id` (a `jti` or a family id) revoked until `until` (Unix seconds).
    pub fn insert(&self, id: &str, until: i64) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.insert(id.to_owned(), until);
    }

    /// Whether `id` is revoked.
    pub fn contains(&self, id: &str) -> bool {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.contains_key(id)
    }

    /// Drops entries whose tokens have all expired.
    pub fn purge(&self, now: i64) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_forgotten_once_moot() {
        let set = RevocationSet::default();
        set.insert("fam", 100);
        assert!(set.contains("fam"));
        set.purge(99);
        assert!(set.contains("fam"));
        set.purge(100);
        assert!(!set.contains("fam"));
    }
}
