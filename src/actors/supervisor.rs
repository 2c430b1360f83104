//! The storage supervisor: owns the chosen storage backend's health. Startup connects the
//! backend (`crate::storage::connect_checked`: refused when unreachable unless
//! `storage.fallback_to_memory` is set) and hands it to [`super::start`], which starts this
//! actor and the state actors on it, each under an [`actix::Supervisor`] that restarts it
//! should it stop. This actor re-reads the signing keys every [`KEY_POLL`] (key rotation),
//! drops local revocations whose tokens have all expired, pings the backend every ten
//! seconds, repeats the memory-fallback warning, and answers [`GetHealth`] with a fresh check.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::messages::{GetHealth, StorageHealth};
use crate::config::StorageKind;
use crate::core::jwt::KeyRing;
use crate::core::signing_keys::{refresh_keys, KEY_POLL};
use crate::core::store::{Store, StoreError};
use crate::core::{Clock, RevocationSet};
use crate::storage::Backend;

/// How often local revocations whose tokens have all expired are dropped.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// How often the backend is pinged for `/health`.
const PING_EVERY: Duration = Duration::from_secs(10);
/// How often the memory-fallback warning is repeated while it is in effect.
const FALLBACK_WARN_EVERY: Duration = Duration::from_secs(60);
/// A health check younger than this answers [`GetHealth`] without asking the backend again.
const HEALTH_FRESH: Duration = Duration::from_millis(250);

/// The supervisor actor: backend health for `/health`, and the signing-key poll.
pub struct StorageSupervisor {
    backend: Backend,
    configured: StorageKind,
    fallback: bool,
    healthy: bool,
    pinging: bool,
    checked_at: Option<Instant>,
    clock: Clock,
    keys: Option<KeyWatch>,
    revoked: Option<RevocationSet>,
}

/// What the key poll needs.
struct KeyWatch {
    ring: KeyRing,
    issuer: String,
    /// How long a key that left the store keeps verifying.
    retain_secs: i64,
    busy: bool,
}

impl StorageSupervisor {
    /// A supervisor watching `backend`; `fallback` when it stands in for the configured
    /// backend `configured`.
    pub fn new(backend: Backend, configured: StorageKind, fallback: bool, clock: Clock) -> Self {
        StorageSupervisor {
            backend,
            configured,
            fallback,
            healthy: true,
            pinging: false,
            checked_at: None,
            clock,
            keys: None,
            revoked: None,
        }
    }

    /// Also keeps `ring` in step with the key set stored in the backend (key rotation).
    /// A key that leaves the store keeps verifying for `retain_secs`.
    pub fn with_key_poll(mut self, ring: KeyRing, issuer: &str, retain_secs: i64) -> Self {
        self.keys = Some(KeyWatch { ring, issuer: issuer.to_owned(), retain_secs, busy: false });
        self
    }

    /// Also drops entries of `revoked` once the tokens they name have all expired.
    pub fn with_revocation_purge(mut self, revoked: RevocationSet) -> Self {
        self.revoked = Some(revoked);
        self
    }

    /// What `/health` reports.
    pub fn health(&self) -> StorageHealth {
        StorageHealth { backend: self.backend.name(), healthy: self.healthy, fallback: self.fallback }
    }

    fn ping(&mut self, ctx: &mut Context<Self>) {
        // A ping slower than the interval must not pile up behind itself.
        if self.pinging {
            return;
        }
        self.pinging = true;
        let backend = self.backend.clone();
        let ping = async move { backend.ping().await }.into_actor(self).map(|res, act, _| {
            act.pinging = false;
            act.record(res);
        });
        ctx.spawn(ping);
    }

    fn record(&mut self, res: Result<(), StoreError>) {
        self.checked_at = Some(Instant::now());
        match (&res, self.healthy) {
            (Err(e), true) => log::error!("storage backend {} stopped answering: {e}", self.backend.name()),
            (Ok(()), false) => log::info!("storage backend {} answers again", self.backend.name()),
            _ => {}
        }
        self.healthy = res.is_ok();
    }

    fn poll_keys(&mut self, ctx: &mut Context<Self>) {
        let Some(watch) = self.keys.as_mut().filter(|w| !w.busy) else { return };
        watch.busy = true;
        let (backend, ring, issuer, now, retain) = (
            self.backend.clone(),
            watch.ring.clone(),
            watch.issuer.clone(),
            self.clock.now(),
            watch.retain_secs,
        );
        let poll = async move { refresh_keys(&backend, &ring, &issuer, now, retain).await }
            .into_actor(self)
            .map(|res, act, _| {
                if let Some(watch) = act.keys.as_mut() {
                    watch.busy = false;
                }
                if let Err(e) = res {
                    // The health ping reports an outage; this only matters if it persists.
                    log::debug!("signing keys not re-read: {e}");
                }
            });
        ctx.spawn(poll);
    }

    fn warn_fallback(&self) {
        log::warn!(
            "storage type '{}' is unreachable: running on MEMORY storage (storage.fallback_to_memory). \
             Every client, code and token is lost on restart and not shared with other instances.",
            self.configured
        );
    }
}

impl Actor for StorageSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(PING_EVERY, |act, ctx| act.ping(ctx));
        // Memory keys live only here: there is no shared set to follow.
        if self.keys.is_some() && self.backend.kind() != StorageKind::Memory {
            ctx.run_interval(KEY_POLL, |act, ctx| act.poll_keys(ctx));
        }
        if self.revoked.is_some() {
            ctx.run_interval(PURGE_EVERY, |act, _| {
                if let Some(revoked) = &act.revoked {
                    revoked.purge(act.clock.now());
                }
            });
        }
        if self.fallback {
            self.warn_fallback();
            ctx.run_interval(FALLBACK_WARN_EVERY, |act, _| act.warn_fallback());
        }
    }
}

/// Answers from a check at most [`HEALTH_FRESH`] old, asking the backend otherwise, so
/// `/health` reflects an outage (or a recovery) at once rather than up to [`PING_EVERY`] late.
impl Handler<GetHealth> for StorageSupervisor {
    type Result = ResponseActFuture<Self, StorageHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Self::Context) -> Self::Result {
        if self.checked_at.is_some_and(|t| t.elapsed() < HEALTH_FRESH) {
            return Box::pin(fut::ready(self.health()));
        }
        let backend = self.backend.clone();
        Box::pin(async move { backend.ping().await }.into_actor(self).map(|res, act, _| {
            act.record(res);
            act.health()
        }))
    }
}
