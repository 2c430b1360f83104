//! The shared storage backends behind the [`Store`] port of the ground floor: Redis and
//! Vault / OpenBao KV v2, plus the [`Backend`] the supervisor picks at startup (memory being
//! [`MemoryStore`], the port's in-process implementation), which also counts and times every
//! operation for the metrics.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::config::{StorageKind, StorageSettings};
use crate::core::metrics::{Metrics, StoreMetrics, StoreOp};
use crate::core::revocation::{Revocation, RevocationSet};
use crate::core::store::{MemoryStore, Revocations, Store, StoreError};

pub mod rate;
pub mod redis;
pub mod vault;

pub use rate::Limiter;
pub use redis::RedisStore;
pub use vault::VaultStore;

/// The backend chosen at startup, with the metrics of its operations once
/// [`Backend::measured`].
#[derive(Clone)]
pub struct Backend {
    engine: Engine,
    metrics: Option<StoreMetrics>,
}

/// What stores the data. An enum rather than a trait object: dispatch stays static and the
/// traits keep their native `async` methods.
#[derive(Clone)]
pub enum Engine {
    /// In-process map; lost on restart, one instance only.
    Memory(MemoryStore),
    /// Redis (or a Redis-compatible server); shared by every gateway instance.
    Redis(RedisStore),
    /// Vault / OpenBao KV v2; shared by every gateway instance.
    Vault(VaultStore),
}

impl From<Engine> for Backend {
    fn from(engine: Engine) -> Self {
        Backend { engine, metrics: None }
    }
}

impl Backend {
    /// A new in-process store.
    pub fn memory() -> Self {
        Engine::Memory(MemoryStore::new()).into()
    }

    /// What stores the data.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Which kind of backend this is.
    pub fn kind(&self) -> StorageKind {
        match self.engine {
            Engine::Memory(_) => StorageKind::Memory,
            Engine::Redis(_) => StorageKind::Redis,
            Engine::Vault(_) => StorageKind::Vault,
        }
    }

    /// The configured name of this backend, for `/health` and logs.
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Counts and times every operation in `metrics` (and, on Redis, how long revocations
    /// take to arrive from other instances).
    pub fn measured(mut self, metrics: &Metrics) -> Self {
        let store = metrics.storage(self.name());
        if let Engine::Redis(redis) = &mut self.engine {
            redis.report_to(store.clone());
        }
        self.metrics = Some(store);
        self
    }

    async fn timed<T>(
        &self,
        op: StoreOp,
        run: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let Some(metrics) = &self.metrics else { return run.await };
        let started = Instant::now();
        let result = run.await;
        metrics.observe(op, result.is_ok(), started.elapsed());
        result
    }
}

macro_rules! dispatch {
    ($self:ident, $op:expr, $s:ident => $e:expr) => {
        $self.timed($op, async {
            match &$self.engine {
                Engine::Memory($s) => $e,
                Engine::Redis($s) => $e,
                Engine::Vault($s) => $e,
            }
        })
    };
}

impl Store for Backend {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), StoreError> {
        dispatch!(self, StoreOp::Put, s => s.put(key, value, ttl).await).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, StoreOp::PutIfAbsent, s => s.put_if_absent(key, value, ttl).await).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, StoreOp::Get, s => s.get(key).await).await
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, StoreOp::Take, s => s.take(key).await).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        dispatch!(self, StoreOp::Delete, s => s.delete(key).await).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, StoreOp::Ping, s => s.ping().await).await
    }
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self, StoreOp::Keys, s => s.keys(prefix).await).await
    }
}

impl Revocations for Backend {
    async fn publish_revocation(&self, rev: &Revocation) -> Result<(), StoreError> {
        dispatch!(self, StoreOp::PublishRevocation, s => s.publish_revocation(rev).await).await
    }
    fn watch_revocations(&self, into: RevocationSet) {
        match &self.engine {
            Engine::Memory(s) => s.watch_revocations(into),
            Engine::Redis(s) => s.watch_revocations(into),
            Engine::Vault(s) => s.watch_revocations(into),
        }
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
        StorageKind::Memory => Ok(Backend::memory()),
        StorageKind::Redis => Ok(Engine::Redis(RedisStore::connect(&settings.redis).await?).into()),
        StorageKind::Vault => Ok(Engine::Vault(VaultStore::connect(&settings.vault).await?).into()),
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
            Ok(Connected { backend: Backend::memory(), fallback: true })
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
