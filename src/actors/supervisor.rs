//! The storage supervisor: owns the choice of storage backend and its health. At startup it
//! connects the configured backend (refusing to start when it cannot be reached, unless
//! `storage.fallback_to_memory` is set), loads or creates the signing keys there, and starts
//! the four state actors on it, each under an [`actix::Supervisor`] that restarts it should it
//! stop. It starts the backend's revocation watcher (revocations made by any instance reach
//! this one's local set), re-reads the signing keys every [`KEY_POLL`] (key rotation), pings
//! the backend every ten seconds, and answers [`GetHealth`] with a fresh check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{Actors, AuthCodes, ClientRegistry, GetHealth, Sessions, StorageHealth, Tokens};
use crate::actors::clients::ClientStore;
use crate::actors::codes::CodeStore;
use crate::actors::sessions::SessionStore;
use crate::actors::tokens::TokenService;
use crate::config::{Settings, StorageSettings};
use crate::oauth::jwt::KeyRing;
use crate::startup::StartupError;
use crate::state::{Clock, RevocationSet};
use crate::storage::{self, Backend, MemoryStore, Store, StoreError};

pub use super::keys::{load_signing_keys, rotate_keys, KeyRotation, KEY_POLL};

/// Storage types the gateway knows. Anything else is a typo and never falls back to memory.
const KNOWN_BACKENDS: [&str; 3] = ["memory", "redis", "vault"];
/// How often the backend is pinged for `/health`.
const PING_EVERY: Duration = Duration::from_secs(10);
/// How often the memory-fallback warning is repeated while it is in effect.
const FALLBACK_WARN_EVERY: Duration = Duration::from_secs(60);
/// A health check younger than this answers [`GetHealth`] without asking the backend again.
const HEALTH_FRESH: Duration = Duration::from_millis(250);

/// The supervisor actor: backend health for `/health`, and the signing-key poll.
pub struct StorageSupervisor {
    backend: Backend,
    configured: String,
    fallback: bool,
    healthy: bool,
    pinging: bool,
    checked_at: Option<Instant>,
    keys: Option<KeyWatch>,
}

/// What the key poll needs.
struct KeyWatch {
    ring: KeyRing,
    issuer: String,
    clock: Clock,
    busy: bool,
}

impl StorageSupervisor {
    /// A supervisor watching `backend`; `fallback` when it stands in for the configured
    /// backend `configured`.
    pub fn new(backend: Backend, configured: &str, fallback: bool) -> Self {
        StorageSupervisor {
            backend,
            configured: configured.to_owned(),
            fallback,
            healthy: true,
            pinging: false,
            checked_at: None,
            keys: None,
        }
    }

    /// Also keeps `ring` in step with the key set stored in the backend (key rotation).
    pub fn with_key_poll(mut self, ring: KeyRing, issuer: &str, clock: Clock) -> Self {
        self.keys = Some(KeyWatch { ring, issuer: issuer.to_owned(), clock, busy: false });
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
        let (backend, ring, issuer, now) =
            (self.backend.clone(), watch.ring.clone(), watch.issuer.clone(), watch.clock.now());
        let poll = async move { super::keys::refresh_keys(&backend, &ring, &issuer, now).await }
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
        if self.keys.is_some() && !matches!(self.backend, Backend::Memory(_)) {
            ctx.run_interval(KEY_POLL, |act, ctx| act.poll_keys(ctx));
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

/// Connects the configured backend and checks it answers. Returns the backend and whether it
/// is the memory fallback. An unknown `storage.type` is always refused.
pub async fn connect_backend(settings: &StorageSettings) -> Result<(Backend, bool), StartupError> {
    let kind = settings.kind.as_str();
    if !KNOWN_BACKENDS.contains(&kind) {
        return Err(StartupError::Storage(format!(
            "unknown storage type '{kind}': expected one of {}",
            KNOWN_BACKENDS.join(", ")
        )));
    }
    // Pinging as well as connecting: a lazily connecting pool would otherwise "succeed" here.
    let connected = match storage::connect(settings).await {
        Ok(backend) => backend.ping().await.map(|()| backend),
        Err(e) => Err(e),
    };
    match connected {
        Ok(backend) => Ok((backend, false)),
        Err(e) if settings.fallback_to_memory => {
            log::error!("storage type '{kind}' cannot be used ({e}); falling back to memory");
            Ok((Backend::Memory(MemoryStore::new()), true))
        }
        Err(e) => Err(StartupError::Storage(format!(
            "storage type '{kind}' cannot be used: {e}. Fix the storage settings, or set \
             storage.fallback_to_memory: true to start on memory (state is then lost on restart \
             and not shared between instances)"
        ))),
    }
}

/// Connects storage, loads the signing keys, starts following revocations and starts the
/// supervisor and the four state actors, once. Must run inside the actix system (startup
/// does).
pub async fn start(
    settings: Arc<Settings>,
    clock: Clock,
    revoked: RevocationSet,
) -> Result<(Actors, KeyRing), StartupError> {
    let (backend, fallback) = connect_backend(&settings.storage).await?;
    start_on(backend, fallback, settings, clock, revoked).await
}

/// [`start`] on a backend already connected (`fallback` when it stands in for the configured
/// one). Startup uses it to keep a handle on the backend for the proxy's session bindings;
/// tests use it to run two gateways on one shared store.
pub async fn start_on(
    backend: Backend,
    fallback: bool,
    settings: Arc<Settings>,
    clock: Clock,
    revoked: RevocationSet,
) -> Result<(Actors, KeyRing), StartupError> {
    let keys = KeyRing::new(load_signing_keys(&backend, &settings.issuer, clock.now()).await?);
    backend.watch_revocations(revoked.clone());
    let actors = start_actors(backend, fallback, settings, clock, revoked, keys.clone());
    Ok((actors, keys))
}

fn start_actors(
    backend: Backend,
    fallback: bool,
    settings: Arc<Settings>,
    clock: Clock,
    revoked: RevocationSet,
    keys: KeyRing,
) -> Actors {
    let clients = Arc::new(ClientStore::new(backend.clone(), settings.clone(), clock.clone()));
    let codes = Arc::new(CodeStore::new(backend.clone(), settings.clone(), clock.clone()));
    let sessions = Arc::new(SessionStore::new(backend.clone(), settings.clone(), clock.clone()));
    let tokens =
        Arc::new(TokenService::new(backend.clone(), settings.clone(), clock.clone(), keys.clone(), revoked));
    let supervisor = StorageSupervisor::new(backend, &settings.storage.kind, fallback)
        .with_key_poll(keys, &settings.issuer, clock)
        .start();
    Actors {
        clients: Supervisor::start(move |_| ClientRegistry::new(clients)),
        codes: Supervisor::start(move |_| AuthCodes::new(codes)),
        tokens: Supervisor::start(move |_| Tokens::new(tokens)),
        sessions: Supervisor::start(move |_| Sessions::new(sessions)),
        supervisor,
    }
}

/// Shared fixtures for the actors' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use crate::config::Settings;
    use crate::oauth::model::{AuthCode, UserInfo};
    use crate::storage::{Backend, MemoryStore};

    /// Default settings with a fixed issuer and one service.
    pub fn settings() -> Arc<Settings> {
        let value = serde_json::json!({
            "session_secret": "test-secret-0123456789abcdef0123456789abcdef",
            "issuer": "http://gw.test",
            "mcp_services": { "svc": { "name": "Service", "url": "http://127.0.0.1:9/mcp" } },
        });
        match serde_json::from_value(value) {
            Ok(settings) => Arc::new(settings),
            Err(e) => panic!("test settings: {e}"),
        }
    }

    /// A fresh memory backend.
    pub fn memory() -> Backend {
        Backend::Memory(MemoryStore::new())
    }

    /// A code record of client `c1` for `svc`, starting family `family_id`.
    pub fn auth_code(family_id: &str) -> AuthCode {
        let mut user = UserInfo::new("dev", "alice");
        user.email = Some("alice@example.com".into());
        AuthCode {
            client_id: "c1".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: "challenge".into(),
            service_id: "svc".into(),
            resource: "http://gw.test/svc/mcp".into(),
            scope: "read write".into(),
            user,
            family_id: family_id.into(),
            expires_at: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::{
        ClientMetadata, GetClient, IssueCode, IssueTokens, RedeemCode, Redemption, RegisterClient,
    };
    use crate::error::OAuthError;

    fn storage(kind: &str, fallback: bool) -> StorageSettings {
        let mut s = StorageSettings { kind: kind.into(), fallback_to_memory: fallback, ..Default::default() };
        // Loopback port 1: nothing listens there, so a real backend fails fast.
        s.redis.url = Some("redis://127.0.0.1:1".into());
        s.redis.connect_timeout_ms = 300;
        s.vault.url = "http://127.0.0.1:1".into();
        s
    }

    #[tokio::test]
    async fn memory_connects_without_fallback() -> Result<(), StartupError> {
        let (backend, fallback) = connect_backend(&storage("memory", false)).await?;
        assert_eq!(backend.name(), "memory");
        assert!(!fallback);
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_backend_is_refused_unless_fallback_is_set() -> Result<(), StartupError> {
        let err = connect_backend(&storage("redis", false)).await.err();
        assert!(
            matches!(&err, Some(StartupError::Storage(m)) if m.contains("fallback_to_memory")),
            "{err:?}"
        );
        let (backend, fallback) = connect_backend(&storage("redis", true)).await?;
        assert_eq!(backend.name(), "memory");
        assert!(fallback);
        Ok(())
    }

    #[tokio::test]
    async fn unknown_backend_is_refused_even_with_fallback() {
        for fallback in [false, true] {
            let err = connect_backend(&storage("reddis", fallback)).await.err();
            assert!(
                matches!(&err, Some(StartupError::Storage(m)) if m.contains("unknown storage type")),
                "{err:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn instances_starting_together_agree_on_one_signing_key() -> Result<(), StartupError> {
        let backend = testing::memory();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let backend = backend.clone();
                tokio::spawn(async move { load_signing_keys(&backend, "http://gw.test", 1000).await })
            })
            .collect();
        let mut kids = std::collections::BTreeSet::new();
        for task in tasks {
            let keys = task.await.map_err(|e| StartupError::Storage(e.to_string()))??;
            kids.insert(keys.stored().iter().map(|k| k.kid.clone()).collect::<Vec<_>>());
        }
        assert_eq!(kids.len(), 1, "every instance loaded the same key set");
        let again = load_signing_keys(&backend, "http://gw.test", 2000).await?;
        assert!(kids.contains(&again.stored().iter().map(|k| k.kid.clone()).collect::<Vec<_>>()));
        Ok(())
    }

    #[actix_rt::test]
    async fn started_actors_answer_their_messages() -> Result<(), OAuthError> {
        let settings = testing::settings();
        let (actors, keys) = start(settings, Clock::default(), RevocationSet::default())
            .await
            .map_err(OAuthError::internal)?;
        let meta = ClientMetadata { redirect_uris: vec!["http://127.0.0.1/cb".into()], ..Default::default() };
        let reg = actors.clients.send(RegisterClient(meta)).await??;
        let id = reg.client.client_id.clone();
        assert!(actors.clients.send(GetClient { client_id: id }).await??.is_some());

        let code = actors.codes.send(IssueCode(testing::auth_code("fam-a"))).await??;
        let Redemption::Redeemed(record) = actors.codes.send(RedeemCode { code }).await?? else {
            panic!("fresh code redeems");
        };
        let tokens = actors.tokens.send(IssueTokens(*record)).await??;
        let claims = keys.verify(&tokens.access_token, "http://gw.test/svc/mcp", Clock::default().now());
        assert_eq!(claims.map(|c| c.fid).ok().as_deref(), Some("fam-a"));

        let health = actors.supervisor.send(GetHealth).await?;
        assert_eq!((health.backend, health.healthy, health.fallback), ("memory", true, false));
        Ok(())
    }
}
