//! Authorization codes and everything before them: owns pending authorization requests
//! (between `/oauth/authorize` and the upstream callback), upstream `state` values, issued
//! codes and the markers of redeemed codes.
//!
//! Codes and states are stored only under their hash and are single use through
//! [`Store::take`]: of any number of concurrent redemptions of one
//! code, on any number of instances, exactly one finds it. Each record's lifetime is stamped
//! here from settings (the handler's `expires_at` is replaced), checked against the clock on
//! read, and also given to the backend as a TTL so it forgets the record.
//!
//! A redemption that finds neither the code nor its used-marker looks for the marker again a
//! few times over about half a second before calling the code invalid: a concurrent
//! redemption may have taken the code and not yet written the marker, and the replay must be
//! recognised (its family revoked) even then.

use std::sync::Arc;
use std::time::Duration;

use super::clock::{secs, Clock};
use super::error::OAuthError;
use super::model::{keys, AuthCode, PendingAuthorization, Redemption, UpstreamLogin};
use super::store::{json, ttl, Store, RECHECK_MS};
use crate::config::{Settings, MAX_CODE_TTL};
use crate::secret::{hash_token, random_token};

/// How long past a code's own lifetime its redemption is remembered at least.
const USED_CODE_MARGIN: u64 = 3600;

/// Pending authorizations, upstream login states and codes over the store `S`.
pub struct CodeStore<S> {
    backend: S,
    settings: Arc<Settings>,
    clock: Clock,
    /// Pending authorizations this process saved and their expiry: the cap
    /// `limits.max_pending_authorizations` (a map, so re-saving one does not count twice).
    pending: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl<S: Store> CodeStore<S> {
    /// A code store over `backend`.
    pub fn new(backend: S, settings: Arc<Settings>, clock: Clock) -> Self {
        CodeStore { backend, settings, clock, pending: Default::default() }
    }

    fn login_ttl(&self) -> u64 {
        self.settings.tokens.login_ttl
    }

    /// `tokens.code_ttl`; config validation refuses more than [`MAX_CODE_TTL`] (OAuth 2.1
    /// §4.1.2: ten minutes), and the cap here keeps that true for settings built in code.
    fn code_ttl(&self) -> u64 {
        self.settings.tokens.code_ttl.min(MAX_CODE_TTL)
    }

    /// Stores (or replaces) a pending authorization for `tokens.login_ttl` from now. Refused
    /// with `temporarily_unavailable` while this process already holds
    /// `limits.max_pending_authorizations` live ones: sign-ins started and abandoned by a
    /// stranger from many addresses must not grow the store without bound.
    pub async fn save_login(&self, mut login: PendingAuthorization) -> Result<(), OAuthError> {
        let now = self.clock.now();
        login.expires_at = now + secs(self.login_ttl());
        self.count_pending(&login.id, login.expires_at, now)?;
        json::put(&self.backend, &keys::login(&login.id), &login, ttl(self.login_ttl())).await?;
        Ok(())
    }

    fn count_pending(&self, id: &str, expires_at: i64, now: i64) -> Result<(), OAuthError> {
        let cap = self.settings.limits.max_pending_authorizations;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= cap && !pending.contains_key(id) {
            pending.retain(|_, until| *until > now);
            if pending.len() >= cap {
                log::warn!("{cap} sign-ins in progress on this instance; refusing new ones until some end");
                return Err(OAuthError::TemporarilyUnavailable(
                    "too many sign-ins in progress, retry in a few minutes".into(),
                ));
            }
        }
        pending.insert(id.to_owned(), expires_at);
        Ok(())
    }

    /// A live pending authorization, if any.
    pub async fn get_login(&self, id: &str) -> Result<Option<PendingAuthorization>, OAuthError> {
        let login: Option<PendingAuthorization> = json::get(&self.backend, &keys::login(id)).await?;
        Ok(login.filter(|l| l.expires_at > self.clock.now()))
    }

    /// Removes a pending authorization and returns it if it was live (single use).
    pub async fn take_login(&self, id: &str) -> Result<Option<PendingAuthorization>, OAuthError> {
        let login: Option<PendingAuthorization> = json::take(&self.backend, &keys::login(id)).await?;
        Ok(login.filter(|l| l.expires_at > self.clock.now()))
    }

    /// Stores `login` under a fresh random upstream `state` and returns the state.
    pub async fn begin_upstream(&self, mut login: UpstreamLogin) -> Result<String, OAuthError> {
        let state = random_token(32);
        login.expires_at = self.clock.now() + secs(self.login_ttl());
        json::put(&self.backend, &keys::upstream_state(&state), &login, ttl(self.login_ttl())).await?;
        Ok(state)
    }

    /// Removes what `state` points to and returns it if it was live (single use).
    pub async fn take_upstream(&self, state: &str) -> Result<Option<UpstreamLogin>, OAuthError> {
        let login: Option<UpstreamLogin> = json::take(&self.backend, &keys::upstream_state(state)).await?;
        Ok(login.filter(|l| l.expires_at > self.clock.now()))
    }

    /// Stores `code` for `tokens.code_ttl` (at most 600 s) under the hash of a fresh random
    /// code, and returns the code.
    pub async fn issue_code(&self, mut code: AuthCode) -> Result<String, OAuthError> {
        let plain = random_token(32);
        code.expires_at = self.clock.now() + secs(self.code_ttl());
        json::put(&self.backend, &keys::code(&hash_token(&plain)), &code, ttl(self.code_ttl())).await?;
        Ok(plain)
    }

    /// Redeems a code. The atomic take decides single use; a successful redemption then
    /// leaves a marker naming the token family, so a later replay can be told from an unknown
    /// code and the family revoked. A replay racing the winner (after its take, before its
    /// marker write) finds the marker when it looks again (see the module docs); only a
    /// winner stalled for longer than all the pauses together leaves it [`Redemption::Invalid`]:
    /// refused all the same, just without revoking the family.
    pub async fn redeem(&self, code: &str) -> Result<Redemption, OAuthError> {
        let hash = hash_token(code);
        let found: Option<AuthCode> = json::take(&self.backend, &keys::code(&hash)).await?;
        match found {
            Some(code) if code.expires_at > self.clock.now() => {
                let remember = self.settings.tokens.refresh_token_ttl.max(self.code_ttl() + USED_CODE_MARGIN);
                json::put(&self.backend, &keys::used_code(&hash), &code.family_id, ttl(remember)).await?;
                Ok(Redemption::Redeemed(Box::new(code)))
            }
            // Expired: void, and no token was ever issued from it, so nothing to revoke.
            Some(_) => Ok(Redemption::Invalid),
            None => self.replayed(&hash).await,
        }
    }

    /// The code was not there: a replay if its used-marker is (or shortly becomes) there.
    async fn replayed(&self, hash: &str) -> Result<Redemption, OAuthError> {
        let mut pauses = RECHECK_MS.iter();
        loop {
            if let Some(family_id) = json::get::<_, String>(&self.backend, &keys::used_code(hash)).await? {
                return Ok(Redemption::Replayed { family_id });
            }
            match pauses.next() {
                Some(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
                None => return Ok(Redemption::Invalid),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::MemoryStore;
    use crate::core::testing;

    fn store() -> (CodeStore<MemoryStore>, Clock) {
        let clock = Clock::default();
        (CodeStore::new(testing::memory(), testing::settings(), clock.clone()), clock)
    }

    fn pending(id: &str) -> PendingAuthorization {
        PendingAuthorization {
            id: id.into(),
            client_id: "c1".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            state: Some("xyz".into()),
            code_challenge: "challenge".into(),
            scope: "read".into(),
            service_id: "svc".into(),
            resource: "http://gw.test/svc/mcp".into(),
            consented: false,
            remembered_user: None,
            browser_hash: None,
            account: false,
            expires_at: 0,
        }
    }

    fn upstream() -> UpstreamLogin {
        UpstreamLogin { pending_id: "p1".into(), pkce_verifier: "v".into(), nonce: None, expires_at: 0 }
    }

    fn is_redeemed(r: &Redemption) -> bool {
        matches!(r, Redemption::Redeemed(_))
    }

    #[tokio::test]
    async fn pending_authorizations_are_capped_per_instance() -> Result<(), OAuthError> {
        let mut settings = (*testing::settings()).clone();
        settings.limits.max_pending_authorizations = 3;
        let clock = Clock::default();
        let s = CodeStore::new(testing::memory(), Arc::new(settings), clock.clone());
        for id in ["a", "b", "c"] {
            s.save_login(pending(id)).await?;
        }
        s.save_login(pending("a")).await?;
        let refused = s.save_login(pending("d")).await;
        assert!(matches!(refused, Err(OAuthError::TemporarilyUnavailable(_))), "{refused:?}");
        // Once they have expired, there is room again.
        clock.advance(601);
        s.save_login(pending("d")).await?;
        Ok(())
    }

    #[tokio::test]
    async fn logins_are_read_taken_once_and_expire() -> Result<(), OAuthError> {
        let (s, clock) = store();
        s.save_login(pending("p1")).await?;
        assert_eq!(s.get_login("p1").await?.map(|l| l.client_id), Some("c1".into()));
        assert!(s.get_login("p1").await?.is_some(), "get does not consume");
        assert!(s.take_login("p1").await?.is_some());
        assert!(s.take_login("p1").await?.is_none(), "take is single use");
        s.save_login(pending("p2")).await?;
        clock.advance(601);
        assert!(s.get_login("p2").await?.is_none(), "expired after login_ttl");
        assert!(s.take_login("p2").await?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn upstream_states_are_random_single_use_and_expire() -> Result<(), OAuthError> {
        let (s, clock) = store();
        let a = s.begin_upstream(upstream()).await?;
        let b = s.begin_upstream(upstream()).await?;
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 random bytes");
        assert_eq!(s.take_upstream(&a).await?.map(|u| u.pending_id), Some("p1".into()));
        assert!(s.take_upstream(&a).await?.is_none());
        clock.advance(601);
        assert!(s.take_upstream(&b).await?.is_none(), "expired");
        assert!(s.take_upstream("unknown").await?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn a_code_redeems_once_then_is_recognised_as_replayed() -> Result<(), OAuthError> {
        let (s, _) = store();
        let code = s.issue_code(testing::auth_code("fam-1")).await?;
        match s.redeem(&code).await? {
            Redemption::Redeemed(c) => {
                assert_eq!(c.family_id, "fam-1");
                assert_eq!(c.client_id, "c1");
            }
            other => panic!("expected Redeemed, got {other:?}"),
        }
        match s.redeem(&code).await? {
            Redemption::Replayed { family_id } => assert_eq!(family_id, "fam-1"),
            other => panic!("expected Replayed, got {other:?}"),
        }
        assert!(matches!(s.redeem("never-issued").await?, Redemption::Invalid));
        Ok(())
    }

    #[tokio::test]
    async fn codes_are_stored_hashed() -> Result<(), OAuthError> {
        let backend = testing::memory();
        let s = CodeStore::new(backend.clone(), testing::settings(), Clock::default());
        let code = s.issue_code(testing::auth_code("f")).await?;
        assert!(json::get::<_, AuthCode>(&backend, &keys::code(&code)).await?.is_none());
        assert!(json::get::<_, AuthCode>(&backend, &keys::code(&hash_token(&code))).await?.is_some());
        assert_eq!(backend.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn codes_expire_after_code_ttl() -> Result<(), OAuthError> {
        let (s, clock) = store();
        let code = s.issue_code(testing::auth_code("f")).await?;
        clock.advance(61);
        assert!(matches!(s.redeem(&code).await?, Redemption::Invalid));
        // An expired code started no family: a second attempt is not a "replay" either.
        assert!(matches!(s.redeem(&code).await?, Redemption::Invalid));
        Ok(())
    }

    #[tokio::test]
    async fn code_ttl_is_capped_at_ten_minutes() -> Result<(), OAuthError> {
        let mut settings = (*testing::settings()).clone();
        settings.tokens.code_ttl = 3600;
        let clock = Clock::default();
        let s = CodeStore::new(testing::memory(), Arc::new(settings), clock.clone());
        let code = s.issue_code(testing::auth_code("f")).await?;
        clock.advance(601);
        assert!(matches!(s.redeem(&code).await?, Redemption::Invalid));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_redemptions_yield_exactly_one_success() -> Result<(), OAuthError> {
        let (s, _) = store();
        let s = Arc::new(s);
        let code = s.issue_code(testing::auth_code("fam-race")).await?;
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (s, code) = (s.clone(), code.clone());
                tokio::spawn(async move { s.redeem(&code).await })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            let r = task.await.map_err(OAuthError::internal)??;
            if is_redeemed(&r) {
                wins += 1;
            } else {
                assert!(matches!(r, Redemption::Replayed { .. }), "every loser is a replay: {r:?}");
            }
        }
        assert_eq!(wins, 1);
        assert!(matches!(s.redeem(&code).await?, Redemption::Replayed { .. }));
        Ok(())
    }
}
