//! The shared storage backends behind the [`Store`] port of the ground floor: Redis and
//! Vault / OpenBao KV v2, plus the [`Backend`] enum the supervisor picks at startup (memory
//! being [`MemoryStore`], the port's in-process implementation).

use std::time::Duration;

use crate::config::{StorageKind, StorageSettings};
use crate::core::revocation::{Revocation, RevocationSet};
use crate::core::store::{MemoryStore, Revocations, Store, StoreError};

pub mod rate;
pub mod redis;
pub mod vault;

pub use rate::Limiter;
pub use redis::RedisStore;
pub use vault::VaultStore;

/// The backend chosen at startup. An enum rather than a trait object: dispatch stays static
/// and the traits keep their native `async` methods.
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
    /// Which kind of backend this is.
    pub fn kind(&self) -> StorageKind {
        match self {
            Backend::Memory(_) => StorageKind::Memory,
            Backend::Redis(_) => StorageKind::Redis,
            Backend::Vault(_) => StorageKind::Vault,
        }
    }

    /// The configured name of this backend, for `/health` and logs.
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
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
}

impl Revocations for Backend {
    async fn publish_revocation(&self, rev: &Revocation) -> Result<(), StoreError> {
        dispatch!(self, s => s.publish_revocation(rev).await)
    }
    fn watch_revocations(&self, into: RevocationSet) {
        dispatch!(self, s => s.watch_revocations(into))
    }
}

/// Why the configured backend cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "storage type '{kind}' cannot be used: {cause}. Fix the storage settings, or set \
     storage.fallback_to_memory: true to start on memory (state is then lost on restart and not \
     shared between instances)"
)]
pub struct ConnectError {
    /// The configured backend.
    pub kind: StorageKind,
    /// What failed.
    pub cause: StoreError,
}

/// Connects the backend named by `settings.kind`. Fails when it cannot be reached.
pub async fn connect(settings: &StorageSettings) -> Result<Backend, StoreError> {
    match settings.kind {
        StorageKind::Memory => Ok(Backend::Memory(MemoryStore::new())),
        StorageKind::Redis => Ok(Backend::Redis(RedisStore::connect(&settings.redis).await?)),
        StorageKind::Vault => Ok(Backend::Vault(VaultStore::connect(&settings.vault).await?)),
    }
}

/// A backend ready for use: connected and answering, or memory standing in for it.
pub struct Connected {
    /// The backend.
    pub backend: Backend,
    /// True when memory stands in for an unreachable configured backend
    /// (`storage.fallback_to_memory`).
    pub fallback: bool,
}

/// Connects the configured backend and checks that it answers (a lazily connecting pool would
/// otherwise "succeed" here). When it cannot be used, falls back to memory only if
/// `storage.fallback_to_memory` is set.
pub async fn connect_checked(settings: &StorageSettings) -> Result<Connected, ConnectError> {
    let connected = match connect(settings).await {
        Ok(backend) => backend.ping().await.map(|()| backend),
        Err(e) => Err(e),
    };
    match connected {
        Ok(backend) => Ok(Connected { backend, fallback: false }),
        Err(e) if settings.fallback_to_memory => {
            log::error!("storage type '{}' cannot be used ({e}); falling back to memory", settings.kind);
            Ok(Connected { backend: Backend::Memory(MemoryStore::new()), fallback: true })
        }
        Err(cause) => Err(ConnectError { kind: settings.kind, cause }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(kind: StorageKind, fallback: bool) -> StorageSettings {
        let mut s = StorageSettings { kind, fallback_to_memory: fallback, ..Default::default() };
        // Loopback port 1: nothing listens there, so a real backend fails fast.
        s.redis.url = Some("redis://127.0.0.1:1".into());
        s.redis.connect_timeout_ms = 300;
        s.vault.url = "http://127.0.0.1:1".into();
        s
    }

    #[tokio::test]
    async fn memory_connects_without_fallback() -> Result<(), ConnectError> {
        let connected = connect_checked(&storage(StorageKind::Memory, false)).await?;
        assert_eq!(connected.backend.name(), "memory");
        assert!(!connected.fallback);
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_backend_is_refused_unless_fallback_is_set() -> Result<(), ConnectError> {
        let err = connect_checked(&storage(StorageKind::Redis, false)).await.err();
        assert!(matches!(&err, Some(ConnectError { kind: StorageKind::Redis, .. })), "{err:?}");
        let connected = connect_checked(&storage(StorageKind::Redis, true)).await?;
        assert_eq!(connected.backend.name(), "memory");
        assert!(connected.fallback);
        Ok(())
    }
}
