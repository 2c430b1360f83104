//! Unit tests of `tokens`.

use super::*;
use crate::core::signing_keys::RotationKey;
use crate::core::store::MemoryStore;
use crate::core::testing;

struct Fixture {
    svc: Arc<TokenService<MemoryStore>>,
    clock: Clock,
    revoked: RevocationSet,
    keys: KeyRing,
}

fn fixture() -> Result<Fixture, OAuthError> {
    fixture_with(&testing::settings())
}

fn fixture_with(settings: &std::sync::Arc<crate::config::Settings>) -> Result<Fixture, OAuthError> {
    let clock = Clock::default();
    let revoked = RevocationSet::default();
    let keys = KeyRing::new(
        crate::core::jwt::SigningKeys::generate("http://gw.test", clock.now())
            .map_err(OAuthError::internal)?,
    );
    let svc = TokenService::new(
        testing::memory(),
        settings.clone(),
        clock.clone(),
        keys.clone(),
        RotationKey::from_bytes(b"test-rotation-key-0123456789abcdef"),
        revoked.clone(),
    );
    Ok(Fixture { svc: Arc::new(svc), clock, revoked, keys })
}

impl Fixture {
    fn claims(&self, t: &TokenResponse) -> Result<AccessClaims, OAuthError> {
        self.keys
            .verify(&t.access_token, "http://gw.test/svc/mcp", self.clock.now())
            .map_err(OAuthError::internal)
    }

    async fn rotate(&self, rt: &str) -> Result<TokenResponse, OAuthError> {
        self.svc.rotate(req(rt, "c1")).await
    }

    async fn active(&self, token: &str) -> Result<bool, OAuthError> {
        Ok(self.svc.introspect(token).await?["active"] == json!(true))
    }
}

fn req<'a>(rt: &'a str, client_id: &'a str) -> RefreshRequest<'a> {
    RefreshRequest { refresh_token: rt, client_id, resource: None, scope: None }
}

fn code_of<T>(r: Result<T, OAuthError>) -> &'static str {
    r.map(|_| "ok").unwrap_or_else(|e| e.code())
}

#[tokio::test]
async fn issued_tokens_carry_the_codes_grant() -> Result<(), OAuthError> {
    let f = fixture()?;
    let t = f.svc.issue(testing::auth_code("fam-1")).await?;
    assert_eq!((t.token_type.as_str(), t.expires_in, t.scope.as_str()), ("Bearer", 3600, "read write"));
    let c = f.claims(&t)?;
    assert_eq!((c.iss.as_str(), c.sub.as_str(), c.fid.as_str()), ("http://gw.test", "dev_alice", "fam-1"));
    assert_eq!((c.client_id.as_str(), c.email.as_deref()), ("c1", Some("alice@example.com")));
    assert_eq!(c.exp - c.iat, 3600);
    assert_eq!(t.refresh_token.len(), 43, "32 random bytes");
    let stored: Option<RefreshRecord> =
        store_json::get(&f.svc.backend, &keys::refresh(&t.refresh_token)).await?;
    assert!(stored.is_none(), "refresh tokens are stored only hashed");
    Ok(())
}

#[tokio::test]
async fn each_rotation_returns_a_new_pair_of_the_same_family() -> Result<(), OAuthError> {
    let f = fixture()?;
    let first = f.svc.issue(testing::auth_code("fam-1")).await?;
    let second = f.rotate(&first.refresh_token).await?;
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(f.claims(&second)?.jti, f.claims(&first)?.jti);
    assert_eq!(f.claims(&second)?.fid, "fam-1");
    let third = f.rotate(&second.refresh_token).await?;
    assert_ne!(third.refresh_token, second.refresh_token);
    Ok(())
}

#[tokio::test]
async fn a_duplicate_in_the_grace_window_gets_the_identical_pair() -> Result<(), OAuthError> {
    let f = fixture()?;
    let first = f.svc.issue(testing::auth_code("fam-1")).await?;
    let a = f.rotate(&first.refresh_token).await?;
    f.clock.advance(5);
    let b = f.rotate(&first.refresh_token).await?;
    assert_eq!(a.refresh_token, b.refresh_token);
    assert_eq!(f.claims(&a)?, f.claims(&b)?, "same claims, same jti");
    // The pair handed out twice is one pair: it rotates normally.
    assert_eq!(code_of(f.rotate(&b.refresh_token).await), "ok");
    Ok(())
}

#[tokio::test]
async fn reuse_after_grace_revokes_the_family_including_its_newest_token() -> Result<(), OAuthError> {
    let f = fixture()?;
    let first = f.svc.issue(testing::auth_code("fam-1")).await?;
    let second = f.rotate(&first.refresh_token).await?;
    f.clock.advance(11);
    assert_eq!(code_of(f.rotate(&first.refresh_token).await), "invalid_grant");
    assert!(f.revoked.contains("fam-1"), "proxy drops the family's access tokens");
    assert_eq!(code_of(f.rotate(&second.refresh_token).await), "invalid_grant");
    assert!(!f.active(&second.access_token).await?);
    assert!(!f.active(&second.refresh_token).await?);
    Ok(())
}

#[tokio::test]
async fn a_token_presented_by_another_client_is_burnt() -> Result<(), OAuthError> {
    let f = fixture()?;
    let first = f.svc.issue(testing::auth_code("fam-1")).await?;
    assert_eq!(code_of(f.svc.rotate(req(&first.refresh_token, "c2")).await), "invalid_grant");
    assert!(f.revoked.contains("fam-1"));
    assert_eq!(code_of(f.rotate(&first.refresh_token).await), "invalid_grant");
    assert!(!f.active(&first.access_token).await?);
    Ok(())
}

#[tokio::test]
async fn resource_mismatch_is_invalid_target_and_keeps_the_token() -> Result<(), OAuthError> {
    let f = fixture()?;
    let first = f.svc.issue(testing::auth_code("fam-1")).await?;
    let other =
        RefreshRequest { resource: Some("http://gw.test/other/mcp"), ..req(&first.refresh_token, "c1") };
    assert_eq!(code_of(f.svc.rotate(other).await), "invalid_target");
    let same = RefreshRequest { resource: Some("http://gw.test/svc/mcp"), ..req(&first.refresh_token, "c1") };
    assert_eq!(code_of(f.svc.rotate(same).await), "ok", "the token survived the bad request");
    Ok(())
}

#[tokio::test]
async fn scope_can_be_narrowed_but_not_widened() -> Result<(), OAuthError> {
    let f = fixture()?;
    let first = f.svc.issue(testing::auth_code("fam-1")).await?;
    let wider = RefreshRequest { scope: Some("read admin"), ..req(&first.refresh_token, "c1") };
    assert_eq!(code_of(f.svc.rotate(wider).await), "invalid_scope");
    let narrow = RefreshRequest { scope: Some(" read "), ..req(&first.refresh_token, "c1") };
    let second = f.svc.rotate(narrow).await?;
    assert_eq!((second.scope.as_str(), f.claims(&second)?.scope.as_str()), ("read", "read"));
    // RFC 6749 §6: the refresh token keeps the original grant.
    let third = f.rotate(&second.refresh_token).await?;
    assert_eq!(third.scope, "read write");
    Ok(())
}

#[tokio::test]
async fn expired_unknown_and_revoked_refresh_tokens_fail() -> Result<(), OAuthError> {
    let f = fixture()?;
    assert_eq!(code_of(f.rotate("never-issued").await), "invalid_grant");
    let t = f.svc.issue(testing::auth_code("fam-1")).await?;
    f.clock.advance(30 * 24 * 3600 + 1);
    assert_eq!(code_of(f.rotate(&t.refresh_token).await), "invalid_grant");
    let u = f.svc.issue(testing::auth_code("fam-2")).await?;
    f.svc.revoke_family("fam-2").await?;
    assert_eq!(code_of(f.rotate(&u.refresh_token).await), "invalid_grant");
    assert_eq!(code_of(f.svc.issue(testing::auth_code("fam-2")).await), "invalid_grant");
    Ok(())
}

/// Fifty copies of one refresh request at once. Exactly one wins the take and rotates;
/// every other one finds the rotation marker (looking again if it came before the
/// marker) and, inside the grace window, gets the SAME pair. The family stays usable.
/// Each request runs on its own thread, as the state actors do on their arbiters (a rotation
/// that may ask the provider again is not `Send`, so it runs where it started).
#[tokio::test]
async fn fifty_concurrent_rotations_agree_on_one_pair() -> Result<(), OAuthError> {
    let f = fixture()?;
    let first = f.svc.issue(testing::auth_code("fam-1")).await?;
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (svc, rt) = (f.svc.clone(), first.refresh_token.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                let runtime = runtime.map_err(OAuthError::internal)?;
                runtime.block_on(svc.rotate(req(&rt, "c1")))
            })
        })
        .collect();
    let mut pairs = BTreeSet::new();
    for thread in threads {
        let t = thread.join().map_err(|_| OAuthError::internal("rotation thread panicked"))??;
        pairs.insert((t.refresh_token.clone(), f.claims(&t)?.jti));
    }
    assert_eq!(pairs.len(), 1, "every successful duplicate got the same pair");
    assert!(!f.revoked.contains("fam-1"));
    let (rt, _) = pairs.into_iter().next().ok_or_else(|| OAuthError::internal("no pair"))?;
    assert_eq!(code_of(f.rotate(&rt).await), "ok");
    Ok(())
}

#[tokio::test]
async fn revoking_an_access_token_marks_its_jti() -> Result<(), OAuthError> {
    let f = fixture()?;
    let t = f.svc.issue(testing::auth_code("fam-1")).await?;
    let jti = f.claims(&t)?.jti;
    f.svc.revoke(&t.access_token, "c2").await?;
    assert!(!f.revoked.contains(&jti), "another client's token is left alone");
    assert!(f.active(&t.access_token).await?);
    f.svc.revoke(&t.access_token, "c1").await?;
    assert!(f.revoked.contains(&jti));
    assert!(!f.active(&t.access_token).await?);
    // Only that access token: the refresh token still works.
    assert!(f.active(&t.refresh_token).await?);
    assert_eq!(code_of(f.rotate(&t.refresh_token).await), "ok");
    // Revocation is also in storage, for other instances and after a restart.
    let fresh = TokenService::new(
        f.svc.backend.clone(),
        testing::settings(),
        f.clock.clone(),
        f.keys.clone(),
        RotationKey::from_bytes(b"test-rotation-key-0123456789abcdef"),
        RevocationSet::default(),
    );
    assert_eq!(fresh.introspect(&t.access_token).await?["active"], json!(false));
    Ok(())
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() -> Result<(), OAuthError> {
    let f = fixture()?;
    let t = f.svc.issue(testing::auth_code("fam-1")).await?;
    f.svc.revoke(&t.refresh_token, "c2").await?;
    assert!(f.active(&t.refresh_token).await?, "another client's token is left alone");
    f.svc.revoke(&t.refresh_token, "c1").await?;
    assert!(f.revoked.contains("fam-1"));
    assert!(!f.active(&t.access_token).await?);
    assert_eq!(code_of(f.rotate(&t.refresh_token).await), "invalid_grant");
    // Unknown tokens are not an error (RFC 7009 §2.2).
    f.svc.revoke("garbage", "c1").await?;
    Ok(())
}

#[tokio::test]
async fn introspection_reports_live_tokens_and_nothing_else() -> Result<(), OAuthError> {
    let f = fixture()?;
    let t = f.svc.issue(testing::auth_code("fam-1")).await?;
    let access = f.svc.introspect(&t.access_token).await?;
    assert_eq!(access["active"], json!(true));
    assert_eq!(access["token_type"], json!("Bearer"));
    assert_eq!(access["client_id"], json!("c1"));
    assert_eq!(access["sub"], json!("dev_alice"));
    assert_eq!(access["aud"], json!("http://gw.test/svc/mcp"));
    assert_eq!(access["scope"], json!("read write"));
    assert_eq!(access["username"], json!("alice@example.com"));
    let refresh = f.svc.introspect(&t.refresh_token).await?;
    assert_eq!(refresh["active"], json!(true));
    assert_eq!(refresh["token_type"], json!("refresh_token"));
    assert_eq!(refresh["client_id"], json!("c1"));
    for junk in ["", "garbage", "a.b.c"] {
        assert_eq!(f.svc.introspect(junk).await?, json!({"active": false}));
    }
    f.clock.advance(3601);
    assert_eq!(f.svc.introspect(&t.access_token).await?, json!({"active": false}), "expired");
    assert!(f.active(&t.refresh_token).await?, "refresh outlives access");
    Ok(())
}

#[tokio::test]
async fn a_grant_ends_at_its_maximum_age_however_often_it_is_used() -> Result<(), OAuthError> {
    // Issue 10: with refresh_token_ttl 4, refreshing every 3 s kept a family alive for ever.
    let mut settings = (*testing::settings()).clone();
    settings.tokens.refresh_token_ttl = 4;
    settings.tokens.grant_max_age = 12;
    let f = fixture_with(&std::sync::Arc::new(settings))?;
    let mut rt = f.svc.issue(testing::auth_code("fam-1")).await?.refresh_token;
    for _ in 0..3 {
        f.clock.advance(3);
        rt = f.rotate(&rt).await?.refresh_token;
    }
    // 9 s in; the last token was issued with 3 s of the grant left, not 4.
    f.clock.advance(3);
    assert_eq!(code_of(f.rotate(&rt).await), "invalid_grant", "12 s: the grant is over");
    Ok(())
}

/// An identity check that answers what the test sets, counting the questions.
struct Scripted {
    answer: std::sync::Mutex<Option<Recheck>>,
    asked: std::sync::atomic::AtomicUsize,
}

impl IdentityCheck for Scripted {
    fn recheck<'a>(
        &'a self,
        _user: &'a super::super::model::UserInfo,
        _grant: &'a super::super::model::UpstreamGrant,
    ) -> futures_util::future::LocalBoxFuture<'a, Recheck> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let answer = self.answer.lock().ok().and_then(|mut a| a.take());
        Box::pin(async move { answer.unwrap_or_else(|| Recheck::Unavailable("no answer set".into())) })
    }
}

fn rechecked_fixture() -> Result<(Fixture, Arc<Scripted>), OAuthError> {
    let f = fixture()?;
    let scripted = Arc::new(Scripted { answer: std::sync::Mutex::new(None), asked: Default::default() });
    let svc = Arc::try_unwrap(f.svc).map_err(|_| OAuthError::internal("shared"))?;
    let svc = Arc::new(svc.with_identity_check(scripted.clone()));
    Ok((Fixture { svc, ..f }, scripted))
}

fn code_with_upstream(family: &str, checked_at: i64) -> AuthCode {
    let mut code = testing::auth_code(family);
    code.upstream = Some(super::super::model::UpstreamGrant { sealed: "v1.x".into(), checked_at });
    code
}

#[tokio::test]
async fn a_confirmation_about_another_person_ends_the_grant() -> Result<(), OAuthError> {
    let (f, scripted) = rechecked_fixture()?;
    let first = f.svc.issue(code_with_upstream("fam-1", f.clock.now())).await?;
    let mut other = testing::auth_code("x").user;
    other.id = "dev_mallory".into();
    *scripted.answer.lock().map_err(|_| OAuthError::internal("lock"))? =
        Some(Recheck::Confirmed { user: Box::new(other), sealed: "v1.y".into() });
    f.clock.advance(3601);
    let refused = f.rotate(&first.refresh_token).await;
    assert!(
        matches!(&refused, Err(OAuthError::AccessRevoked { reason: REASON_UPSTREAM_REFUSED, .. })),
        "{refused:?}"
    );
    assert!(f.revoked.contains("fam-1"));
    assert_eq!(scripted.asked.load(std::sync::atomic::Ordering::Relaxed), 1);
    Ok(())
}

#[tokio::test]
async fn a_confirmation_brings_fresh_facts_and_restarts_the_interval() -> Result<(), OAuthError> {
    let (f, scripted) = rechecked_fixture()?;
    let first = f.svc.issue(code_with_upstream("fam-1", f.clock.now())).await?;
    let mut fresh = testing::auth_code("x").user;
    fresh.email = Some("alice@new.example".into());
    *scripted.answer.lock().map_err(|_| OAuthError::internal("lock"))? =
        Some(Recheck::Confirmed { user: Box::new(fresh), sealed: "v1.fresh".into() });
    f.clock.advance(3601);
    let second = f.rotate(&first.refresh_token).await?;
    assert_eq!(f.claims(&second)?.email.as_deref(), Some("alice@new.example"));
    let stored: Option<RefreshRecord> =
        store_json::get(&f.svc.backend, &keys::refresh(&hash_token(&second.refresh_token))).await?;
    let upstream = stored.and_then(|r| r.upstream).ok_or_else(|| OAuthError::internal("no upstream"))?;
    assert_eq!((upstream.sealed.as_str(), upstream.checked_at), ("v1.fresh", f.clock.now()));
    // Records without an upstream grant (the dev provider's) are never asked about.
    let dev = f.svc.issue(testing::auth_code("fam-2")).await?;
    f.clock.advance(10 * 3600);
    f.rotate(&dev.refresh_token).await?;
    assert_eq!(scripted.asked.load(std::sync::atomic::Ordering::Relaxed), 1);
    Ok(())
}
