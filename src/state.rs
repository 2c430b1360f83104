//! What every handler shares: settings, signing keys, the upstream provider, the clock, the
//! local revocation set, the actor addresses, the storage backend and the proxy's MCP session
//! bindings. Built once in [`crate::startup`] and handed
//! to each worker as `web::Data<AppState>`; everything inside is an `Arc` or an `Addr`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::actors::Actors;
use crate::config::Settings;
use crate::oauth::jwt::KeyRing;
use crate::proxy::session::SessionBindings;
use crate::storage::Backend;
use crate::upstream::Upstream;

/// Seconds since the Unix epoch, shifted by an offset tests can move (style guide item 12:
/// expiry tests advance the clock instead of sleeping).
#[derive(Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        real + self.offset.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every clone of it) forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
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

/// Shared application state.
#[derive(Clone)]
pub struct AppState {
    /// Validated settings; `issuer` is final (no trailing slash).
    pub settings: Arc<Settings>,
    /// Keys access tokens are signed and checked with (swapped whole on key rotation).
    pub keys: KeyRing,
    /// The one upstream identity provider.
    pub upstream: Arc<Upstream>,
    /// The gateway's clock.
    pub clock: Clock,
    /// Locally known revocations.
    pub revoked: RevocationSet,
    /// Addresses of the state actors.
    pub actors: Actors,
    /// The storage backend the actors run on, for the proxy's rare direct reads and writes
    /// (MCP session bindings); never touched on the hot path of a request.
    pub store: Backend,
    /// MCP session → user bindings known to this process, shared by every worker (checklist
    /// A13).
    pub mcp_sessions: Arc<SessionBindings>,
}
