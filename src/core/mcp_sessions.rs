//! Session binding (checklist A13): `Mcp-Session-Id` is never authentication, so a session is
//! bound to the user who opened it, and another user's token with that session id is refused
//! before anything reaches the backend.
//!
//! The binding lives in the storage backend (key [`keys::mcp_session`], by service and by the
//! hash of the session id) so every gateway instance sharing the backend agrees, and in a
//! bounded map per process that every worker reads, so the hot path is one read lock and one
//! hash lookup. The store is touched only when this process does not know a session yet, when
//! a backend hands out a session id, and to extend a live binding's TTL (at most once per
//! session per [`RENEW_AFTER_SECS`] per process).
//!
//! Choices:
//! - A session id the store does not know is claimed by the first user presenting it (trust
//!   on first use, atomically with `put_if_absent`). Normally a binding is written when the
//!   backend's response carries the id, so this only covers sessions opened before the binding
//!   existed (a deployment, an expired binding, a store write that failed), without a store
//!   round trip on every later request.
//! - Fail closed: when the store cannot answer for a session id this process does not know,
//!   the request gets 503 with `Retry-After`; it is never forwarded unchecked.
//! - Services with `auth_required: false` have no users, so their sessions are not bound.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::keys;
use super::store::{json, Store, StoreError};
use crate::config::Settings;

/// How long a binding lives in the store after it was last written.
pub const BINDING_TTL_SECS: i64 = 24 * 3600;
/// A live binding used this long after it was last written is written again (TTL extended).
pub const RENEW_AFTER_SECS: i64 = BINDING_TTL_SECS / 2;
/// The least time a binding read from the store is trusted locally, whatever its age, so a
/// clock skew between instances cannot turn every request into a store read.
const MIN_LOCAL_SECS: i64 = 60;
/// Bindings each service keeps in memory; the oldest is forgotten first (and read back from
/// the store when its session shows up again).
pub const LOCAL_CAPACITY: usize = 65_536;

/// A binding as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The token `sub` of the user who opened the session.
    pub user_id: String,
    /// Gateway time the record was last written.
    pub renewed_at: i64,
}

/// What checking a session found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The session is this user's (or not bound at all: open services).
    Allowed,
    /// The session belongs to another user.
    Forbidden,
}

/// Session → user bindings of every authenticated service, shared by the workers of one
/// process, over the store `S`. The outer map is fixed at startup (one entry per service with
/// `auth_required: true`), so a lookup borrows the request's strings and allocates nothing.
pub struct SessionBindings<S> {
    store: S,
    services: HashMap<String, Local>,
    capacity: usize,
}

/// One service's bindings. A `std` lock: every critical section is a map call with no
/// `.await` inside.
#[derive(Default)]
struct Local {
    inner: RwLock<LocalInner>,
}

#[derive(Default)]
struct LocalInner {
    map: HashMap<Box<str>, Binding>,
    // Insertion order for eviction; may name sessions already replaced or dropped.
    order: VecDeque<Box<str>>,
}

struct Binding {
    user: Box<str>,
    // Local trust ends here; an atomic so a renewal needs only the read lock.
    expires_at: AtomicI64,
}

/// What the local map knows about a session.
enum Known {
    /// Bound to this user; `renew` when the store's TTL should be extended now.
    Same { renew: bool },
    /// Bound to someone else.
    Other,
    /// Unknown here, or known too long ago to be trusted: ask the store.
    Unknown,
}

impl<S: Store> SessionBindings<S> {
    /// Empty bindings for the services of `settings` that require a token, kept in `store`.
    pub fn new(store: S, settings: &Settings) -> Self {
        Self::with_capacity(store, settings, LOCAL_CAPACITY)
    }

    /// As [`SessionBindings::new`], keeping at most `capacity` bindings per service locally.
    pub fn with_capacity(store: S, settings: &Settings, capacity: usize) -> Self {
        let services = settings
            .mcp_services
            .iter()
            .filter(|(_, s)| s.auth_required)
            .map(|(id, _)| (id.clone(), Local::default()))
            .collect();
        SessionBindings { store, services, capacity: capacity.max(1) }
    }

    /// Whether `user` may use `session_id` of `service_id`. One local read when this process
    /// knows the session; otherwise one store lookup (and a claim when the store does not know
    /// it either), after which the answer is cached.
    pub async fn check(
        &self,
        service_id: &str,
        session_id: &str,
        user: &str,
        now: i64,
    ) -> Result<Verdict, StoreError> {
        let Some(local) = self.services.get(service_id) else {
            return Ok(Verdict::Allowed);
        };
        match local.known(session_id, user, now) {
            Known::Same { renew: false } => Ok(Verdict::Allowed),
            Known::Same { renew: true } => {
                renew(&self.store, service_id, session_id, user, now).await;
                Ok(Verdict::Allowed)
            }
            Known::Other => Ok(Verdict::Forbidden),
            Known::Unknown => {
                let record = claim(&self.store, service_id, session_id, user, now).await?;
                local.insert(session_id, &record, now, self.capacity);
                Ok(verdict(&record, user))
            }
        }
    }

    /// Records that the backend handed `session_id` to `user` (its response carried the
    /// header). Nothing to do when this process already knows the binding; otherwise the
    /// binding is written to the store. Returns the verdict for `user`: `Forbidden` means the
    /// session was already bound to someone else, and that binding stays.
    pub async fn bind(
        &self,
        service_id: &str,
        session_id: &str,
        user: &str,
        now: i64,
    ) -> Result<Verdict, StoreError> {
        // The same steps as a check: a backend that repeats the header on every response
        // costs nothing once the binding is known.
        self.check(service_id, session_id, user, now).await
    }

    /// Bindings this process holds for `service_id` (tests, metrics).
    pub fn local_len(&self, service_id: &str) -> usize {
        self.services.get(service_id).map_or(0, |l| l.read().map.len())
    }
}

impl Local {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, LocalInner> {
        // Every write is a single map call, so a poisoned lock still holds a consistent map.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn known(&self, session_id: &str, user: &str, now: i64) -> Known {
        let inner = self.read();
        let Some(binding) = inner.map.get(session_id) else {
            return Known::Unknown;
        };
        let expires_at = binding.expires_at.load(Ordering::Relaxed);
        if now >= expires_at {
            return Known::Unknown;
        }
        if *binding.user != *user {
            return Known::Other;
        }
        // Renew once the binding is half-way through its TTL; the exchange makes sure only
        // one of several concurrent requests does it.
        let renew = expires_at - now < BINDING_TTL_SECS - RENEW_AFTER_SECS
            && binding
                .expires_at
                .compare_exchange(expires_at, now + BINDING_TTL_SECS, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        Known::Same { renew }
    }

    fn insert(&self, session_id: &str, record: &SessionRecord, now: i64, capacity: usize) {
        let expires_at = record.renewed_at.saturating_add(BINDING_TTL_SECS).max(now + MIN_LOCAL_SECS);
        let binding =
            Binding { user: record.user_id.as_str().into(), expires_at: AtomicI64::new(expires_at) };
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        while inner.order.len() >= capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.map.remove(&old);
                }
                None => break,
            }
        }
        inner.map.insert(session_id.into(), binding);
        inner.order.push_back(session_id.into());
    }
}

fn verdict(record: &SessionRecord, user: &str) -> Verdict {
    if record.user_id == user {
        Verdict::Allowed
    } else {
        Verdict::Forbidden
    }
}

fn store_key(service_id: &str, session_id: &str) -> String {
    keys::mcp_session(service_id, &crate::secret::hash_token(session_id))
}

fn ttl() -> Option<Duration> {
    Some(Duration::from_secs(BINDING_TTL_SECS.unsigned_abs()))
}

/// The stored binding of the session, or a new one for `user` when there is none. Of several
/// users claiming one session at once (on any instance), `put_if_absent` lets one win and the
/// others read the winner.
async fn claim<S: Store>(
    store: &S,
    service_id: &str,
    session_id: &str,
    user: &str,
    now: i64,
) -> Result<SessionRecord, StoreError> {
    let key = store_key(service_id, session_id);
    if let Some(record) = json::get::<_, SessionRecord>(store, &key).await? {
        return Ok(record);
    }
    let fresh = SessionRecord { user_id: user.to_owned(), renewed_at: now };
    if json::put_if_absent(store, &key, &fresh, ttl()).await? {
        return Ok(fresh);
    }
    json::get(store, &key)
        .await?
        .ok_or_else(|| StoreError::Backend("a session binding vanished while it was claimed".into()))
}

/// Writes the binding again to extend its TTL. A failure is only logged: the binding is still
/// live in the store for at least half its TTL, and the next use tries again.
async fn renew<S: Store>(store: &S, service_id: &str, session_id: &str, user: &str, now: i64) {
    let record = SessionRecord { user_id: user.to_owned(), renewed_at: now };
    if let Err(err) = json::put(store, &store_key(service_id, session_id), &record, ttl()).await {
        log::warn!("service '{service_id}': could not renew an MCP session binding: {err}");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::ServiceSettings;
    use crate::core::store::MemoryStore;

    fn settings() -> Settings {
        let service = |auth_required| ServiceSettings {
            name: "S".into(),
            url: "http://127.0.0.1:9/mcp".into(),
            oauth_provider: None,
            auth_required,
            scopes: Vec::new(),
            timeout: 1000,
            tool_scopes: BTreeMap::new(),
            access: None,
            tool_access: BTreeMap::new(),
            ca_file: None,
            insecure_skip_verify: false,
        };
        let value = serde_json::json!({ "session_secret": "test-secret-0123456789abcdef0123456789abcdef" });
        let mut s: Settings = serde_json::from_value(value).expect("settings");
        s.mcp_services.insert("svc".into(), service(true));
        s.mcp_services.insert("open".into(), service(false));
        s
    }

    fn bindings(store: &MemoryStore) -> SessionBindings<MemoryStore> {
        SessionBindings::new(store.clone(), &settings())
    }

    #[tokio::test]
    async fn the_opener_keeps_the_session_and_others_are_refused() -> Result<(), StoreError> {
        let b = bindings(&MemoryStore::new());
        assert_eq!(b.bind("svc", "s1", "alice", 100).await?, Verdict::Allowed);
        assert_eq!(b.check("svc", "s1", "bob", 101).await?, Verdict::Forbidden);
        assert_eq!(b.check("svc", "s1", "alice", 102).await?, Verdict::Allowed);
        // The same session id of another service is another session.
        assert_eq!(b.check("other", "s1", "bob", 103).await?, Verdict::Allowed);
        Ok(())
    }

    #[tokio::test]
    async fn open_services_are_not_bound() -> Result<(), StoreError> {
        let b = bindings(&MemoryStore::new());
        assert_eq!(b.bind("open", "s1", "alice", 100).await?, Verdict::Allowed);
        assert_eq!(b.check("open", "s1", "bob", 100).await?, Verdict::Allowed);
        assert_eq!(b.local_len("open"), 0);
        Ok(())
    }

    #[tokio::test]
    async fn another_process_learns_the_binding_from_the_store_once() -> Result<(), StoreError> {
        let store = MemoryStore::new();
        let first = bindings(&store);
        let second = bindings(&store);
        first.bind("svc", "s1", "alice", 100).await?;
        assert_eq!(second.check("svc", "s1", "bob", 101).await?, Verdict::Forbidden);
        assert_eq!(second.local_len("svc"), 1, "cached after one store read");
        // With the store gone, the cached answer still holds (no round trip per request).
        store.delete(&store_key("svc", "s1")).await?;
        assert_eq!(second.check("svc", "s1", "bob", 102).await?, Verdict::Forbidden);
        assert_eq!(second.check("svc", "s1", "alice", 102).await?, Verdict::Allowed);
        Ok(())
    }

    #[tokio::test]
    async fn the_session_id_is_stored_hashed() -> Result<(), StoreError> {
        let store = MemoryStore::new();
        bindings(&store).bind("svc", "secret-session", "alice", 1).await?;
        assert!(store.get(&keys::mcp_session("svc", "secret-session")).await?.is_none());
        let key = store_key("svc", "secret-session");
        assert!(!key.contains("secret-session"));
        assert!(store.get(&key).await?.is_some());
        Ok(())
    }

    #[tokio::test]
    async fn a_half_expired_binding_is_renewed_once() -> Result<(), StoreError> {
        let store = MemoryStore::new();
        let b = bindings(&store);
        b.bind("svc", "s1", "alice", 0).await?;
        let later = RENEW_AFTER_SECS + 5;
        assert_eq!(b.check("svc", "s1", "alice", later).await?, Verdict::Allowed);
        let record: Option<SessionRecord> = json::get(&store, &store_key("svc", "s1")).await?;
        assert_eq!(record.map(|r| r.renewed_at), Some(later));
        // A second use right after finds nothing to renew.
        assert!(matches!(b.services["svc"].known("s1", "alice", later + 1), Known::Same { renew: false }));
        Ok(())
    }

    #[tokio::test]
    async fn a_stale_local_binding_is_read_again() -> Result<(), StoreError> {
        let store = MemoryStore::new();
        let b = bindings(&store);
        b.bind("svc", "s1", "alice", 0).await?;
        // A day later the local entry is no longer trusted; the store (here: still holding
        // the record) answers again.
        assert!(matches!(b.services["svc"].known("s1", "bob", BINDING_TTL_SECS), Known::Unknown));
        assert_eq!(b.check("svc", "s1", "bob", BINDING_TTL_SECS).await?, Verdict::Forbidden);
        Ok(())
    }

    #[tokio::test]
    async fn the_local_map_stays_bounded() -> Result<(), StoreError> {
        let store = MemoryStore::new();
        let b = SessionBindings::with_capacity(store.clone(), &settings(), 4);
        for i in 0..20 {
            b.bind("svc", &format!("s{i}"), "alice", 1).await?;
        }
        assert_eq!(b.local_len("svc"), 4);
        // An evicted binding is still enforced, from the store.
        assert_eq!(b.check("svc", "s0", "bob", 2).await?, Verdict::Forbidden);
        Ok(())
    }
}
