//! The actor layer: thin adapters between the HTTP handlers and the ground-floor services.
//!
//! - [`messages`]: what handlers send and what they get back.
//! - [`state`]: the four state actors, one-line handlers over the services.
//! - [`supervisor`]: the storage supervisor (backend health, signing-key poll, revocation
//!   purge, the memory-fallback warning).
//!
//! [`start`] runs once at startup, outside `HttpServer::new`: it builds each service once and
//! starts one instance of every state actor on each of several arbiter threads, behind a
//! round-robin [`Pool`]. The services are shared by all instances, so the state is one; only
//! the CPU work is spread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::dev::{Request, ToEnvelope};
use actix::prelude::*;

use crate::config::Settings;
use crate::core::cimd::DocumentFetcher;
use crate::core::clients::ClientStore;
use crate::core::codes::CodeStore;
use crate::core::consent::ConsentStore;
use crate::core::jwt::KeyRing;
use crate::core::signing_keys::{retention_secs, RotationKey};
use crate::core::tokens::TokenService;
use crate::core::upstream_grant::IdentityCheck;
use crate::core::{Clock, OAuthError, RevocationSet};
use crate::storage::Backend;

pub mod messages;
pub mod state;
pub mod supervisor;

pub use messages::*;
pub use state::{AuthCodes, ClientRegistry, Sessions, Tokens};
pub use supervisor::StorageSupervisor;

/// Instances of one actor, each on its own arbiter thread; messages go round-robin.
pub struct Pool<A: Actor> {
    addrs: Arc<[Addr<A>]>,
    next: Arc<AtomicUsize>,
}

impl<A: Actor> Clone for Pool<A> {
    fn clone(&self) -> Self {
        Pool { addrs: self.addrs.clone(), next: self.next.clone() }
    }
}

impl<A: Actor> Pool<A> {
    fn new(addrs: Vec<Addr<A>>) -> Self {
        Pool { addrs: addrs.into(), next: Arc::new(AtomicUsize::new(0)) }
    }

    /// Sends `msg` to the next instance and waits for its reply, as [`Addr::send`].
    pub fn send<M>(&self, msg: M) -> Request<A, M>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        self.addrs[i].send(msg)
    }

    /// How many instances run.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Never true: a pool is started with at least one instance.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

/// Handles of the running actors, started once at startup.
#[derive(Clone)]
pub struct Actors {
    /// Client registry.
    pub clients: Pool<ClientRegistry>,
    /// Pending authorizations, upstream login states and codes.
    pub codes: Pool<AuthCodes>,
    /// Refresh-token families, revocations, token issuance.
    pub tokens: Pool<Tokens>,
    /// Consent grants.
    pub sessions: Pool<Sessions>,
    /// The storage supervisor (backend health).
    pub supervisor: Addr<StorageSupervisor>,
}

/// What the actors run on.
pub struct Wiring {
    /// The connected backend.
    pub backend: Backend,
    /// Whether it is memory standing in for the configured backend.
    pub fallback: bool,
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// The gateway's clock.
    pub clock: Clock,
    /// The local revocation set the proxy checks.
    pub revoked: RevocationSet,
    /// The signing keys.
    pub keys: KeyRing,
    /// The key refresh-token successors are derived with.
    pub rotation: RotationKey,
    /// How client metadata documents are fetched.
    pub fetcher: Arc<dyn DocumentFetcher>,
    /// Arbiter threads to spread the state actors over (at least one).
    pub threads: usize,
    /// Who refreshes ask the provider again (`tokens.upstream_recheck`); none: never asked.
    pub identity: Option<Arc<dyn IdentityCheck>>,
}

/// Builds the services once and starts the supervisor and `threads` instances of each state
/// actor, one per new arbiter. Must run inside the actix system (startup does).
pub fn start(w: Wiring) -> std::io::Result<Actors> {
    let Wiring { backend, fallback, settings, clock, revoked, keys, rotation, fetcher, threads, identity } =
        w;
    let mailbox = settings.runtime.mailbox_capacity;
    let clients = Arc::new(ClientStore::new(backend.clone(), settings.clone(), clock.clone(), fetcher));
    let codes = Arc::new(CodeStore::new(backend.clone(), settings.clone(), clock.clone()));
    let consent = Arc::new(ConsentStore::new(backend.clone(), settings.clone(), clock.clone()));
    let tokens = TokenService::new(
        backend.clone(),
        settings.clone(),
        clock.clone(),
        keys.clone(),
        rotation,
        revoked.clone(),
    );
    let tokens = Arc::new(match identity {
        Some(identity) => tokens.with_identity_check(identity),
        None => tokens,
    });
    let (mut c, mut a, mut t, mut s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..threads.max(1) {
        // The arbiter's thread runs until the actix system stops; its handle is not needed.
        let arbiter = Arbiter::try_new()?.handle();
        let (clients, codes, tokens, consent) =
            (clients.clone(), codes.clone(), tokens.clone(), consent.clone());
        c.push(Supervisor::start_in_arbiter(&arbiter, move |_| ClientRegistry::new(clients, mailbox)));
        a.push(Supervisor::start_in_arbiter(&arbiter, move |_| AuthCodes::new(codes, mailbox)));
        t.push(Supervisor::start_in_arbiter(&arbiter, move |_| Tokens::new(tokens, mailbox)));
        s.push(Supervisor::start_in_arbiter(&arbiter, move |_| Sessions::new(consent, mailbox)));
    }
    let supervisor = StorageSupervisor::new(backend, settings.storage.kind, fallback, clock)
        .with_key_poll(keys, &settings.issuer, retention_secs(settings.tokens.access_token_ttl))
        .with_revocation_purge(revoked)
        .start();
    Ok(Actors {
        clients: Pool::new(c),
        codes: Pool::new(a),
        tokens: Pool::new(t),
        sessions: Pool::new(s),
        supervisor,
    })
}

impl From<MailboxError> for OAuthError {
    fn from(err: MailboxError) -> Self {
        OAuthError::internal(format!("actor mailbox: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{ClientMetadata, Redemption};
    use crate::core::signing_keys::load_signing_keys;
    use crate::core::testing;
    use crate::fetch::GuardedFetch;

    #[actix_rt::test]
    async fn started_actors_answer_their_messages_on_every_instance() -> Result<(), OAuthError> {
        let settings = testing::settings();
        let (clock, backend) = (Clock::default(), Backend::memory());
        let keys =
            load_signing_keys(&backend, &settings.issuer, clock.now()).await.map_err(OAuthError::internal)?;
        let keys = KeyRing::new(keys);
        let actors = start(Wiring {
            backend,
            fallback: false,
            settings,
            clock: clock.clone(),
            revoked: RevocationSet::default(),
            keys: keys.clone(),
            rotation: RotationKey::from_bytes(b"test-rotation-key-0123456789abcdef"),
            fetcher: Arc::new(GuardedFetch),
            threads: 2,
            identity: None,
        })
        .map_err(OAuthError::internal)?;
        assert_eq!((actors.clients.len(), actors.tokens.len()), (2, 2));

        // Two registrations land on the two instances; each sees the other's client: the
        // state is the service's, not the instance's.
        let meta =
            || ClientMetadata { redirect_uris: vec!["http://127.0.0.1/cb".into()], ..Default::default() };
        let a = actors.clients.send(RegisterClient(meta())).await??.client.client_id;
        let b = actors.clients.send(RegisterClient(meta())).await??.client.client_id;
        for id in [&a, &b, &a, &b] {
            assert!(actors.clients.send(GetClient { client_id: id.clone() }).await??.is_some());
        }

        let code = actors.codes.send(IssueCode(testing::auth_code("fam-a"))).await??;
        let Redemption::Redeemed(record) = actors.codes.send(RedeemCode { code: code.clone() }).await??
        else {
            panic!("fresh code redeems");
        };
        assert!(matches!(actors.codes.send(RedeemCode { code }).await??, Redemption::Replayed { .. }));
        let tokens = actors.tokens.send(IssueTokens(*record)).await??;
        let claims = keys.verify(&tokens.access_token, "http://gw.test/svc/mcp", clock.now());
        assert_eq!(claims.map(|c| c.fid).ok().as_deref(), Some("fam-a"));

        let health = actors.supervisor.send(GetHealth).await?;
        assert_eq!((health.backend, health.healthy, health.fallback), ("memory", true, false));
        Ok(())
    }
}
