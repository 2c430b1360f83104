//! `tokens.upstream_recheck` (issue 10 §2): at a refresh more than the interval after the
//! provider last confirmed the person, the gateway asks the provider again (its refresh-token
//! grant, or its API with the kept access token) and judges the access rules on what it says
//! now. A refusal ends the grant everywhere; an unreachable provider is trusted for one more
//! interval, then refreshes wait for it. The provider's tokens are stored sealed.

use serde_json::{json, Value};

use crate::access::{audit_to, code_of, events, idp_gateway, rule, trail_path};
use crate::flow::{AuthRequest, Browser, ConsentForm, TestClient, REDIRECT};
use crate::helpers::{redis_storage, TestApp};
use crate::idp::TestIdp;

/// The default interval, one hour.
const INTERVAL: i64 = 3600;

/// A grant at the test IdP for service `svc`: the client and its first refresh and access token.
struct Signed {
    client: TestClient,
    refresh_token: String,
    access_token: String,
}

/// Moves the gateway's clock and the IdP's by `secs`.
fn advance(app: &TestApp, idp: &TestIdp, secs: i64) {
    app.state.clock.advance(secs);
    idp.advance(secs);
}

async fn sign_in(app: &TestApp, idp: &TestIdp) -> Signed {
    let client = app.register_client(&[REDIRECT]).await;
    let mut browser = Browser::new();
    let request = AuthRequest::new(app, &client, Some("svc"));
    let page = app.authorize(&mut browser, &request).await;
    let approved = app.consent(&mut browser, &ConsentForm::from_page(&page), "approve").await;
    let back = idp.login(&approved.location()).await;
    let code = code_of(&app.browse(&mut browser, &back.location).await);
    let issued = app.exchange_code(&client, &code, &request.pkce.verifier, &[]).await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    let body = issued.json();
    let text = |name: &str| body[name].as_str().unwrap_or_else(|| panic!("{name}: {body}")).to_owned();
    Signed { client, refresh_token: text("refresh_token"), access_token: text("access_token") }
}

/// Refreshes `signed`, keeping the new refresh token on success; returns the answer's body
/// with its status under `"status"`.
async fn refresh(app: &TestApp, signed: &mut Signed) -> Value {
    let reply = app.refresh(&signed.client, &signed.refresh_token, &[]).await;
    let mut body = reply.json();
    if reply.status == 200 {
        signed.refresh_token = body["refresh_token"].as_str().expect("refresh_token").to_owned();
        signed.access_token = body["access_token"].as_str().expect("access_token").to_owned();
    }
    body["status"] = json!(reply.status);
    body
}

#[actix_web::test]
async fn the_provider_is_asked_only_after_the_interval_and_its_fresh_groups_are_judged() {
    let idp = TestIdp::start().await;
    idp.set_extra_claims(json!({"groups": ["finance"]}));
    let app = idp_gateway(&idp, "oidc", |s| s.access = Some(rule(json!({"groups": ["finance"]})))).await;
    let mut signed = sign_in(&app, &idp).await;

    advance(&app, &idp, INTERVAL - 60);
    assert_eq!(refresh(&app, &mut signed).await["status"], 200);
    assert_eq!(idp.refreshes(), 0, "inside the interval the provider is not asked");

    advance(&app, &idp, 120);
    assert_eq!(refresh(&app, &mut signed).await["status"], 200);
    assert_eq!(idp.refreshes(), 1, "past the interval it is asked once");
    assert_eq!(refresh(&app, &mut signed).await["status"], 200);
    assert_eq!(idp.refreshes(), 1, "and the interval starts again from that check");

    // The provider drops the group: the next check brings it to the access rule.
    idp.set_extra_claims(json!({}));
    advance(&app, &idp, INTERVAL + 1);
    let refused = refresh(&app, &mut signed).await;
    assert_eq!((refused["status"].clone(), refused["error"].clone()), (json!(400), json!("invalid_grant")));
    assert_eq!(idp.refreshes(), 2);
    let again = refresh(&app, &mut signed).await;
    assert_eq!(again["error"], "invalid_grant", "the family is revoked: {again}");
}

#[actix_web::test]
async fn a_person_disabled_at_the_provider_loses_the_grant_at_the_next_check() {
    let idp = TestIdp::start().await;
    let trail = trail_path();
    let app = idp_gateway(&idp, "oidc", |s| audit_to(s, &trail)).await;
    let mut signed = sign_in(&app, &idp).await;
    let live = signed.access_token.clone();
    assert_eq!(app.introspect(&signed.client, &live).await.json()["active"], true);

    idp.disable_user(&idp.user().sub);
    // Nothing changes until the interval is over: the rule is one re-check per interval.
    assert_eq!(refresh(&app, &mut signed).await["status"], 200);
    advance(&app, &idp, INTERVAL + 1);
    let refused = refresh(&app, &mut signed).await;

    assert_eq!(refused["error"], "invalid_grant", "{refused}");
    let description = refused["error_description"].as_str().unwrap_or_default();
    assert!(description.contains("identity provider"), "{description}");
    let revoked = events(&trail, "grant_revoked", 1).await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["reason"], "upstream_refused");
    assert_eq!(revoked[0]["user_id"], format!("oidc_{}", idp.user().sub));
    // Every token of the family stops, not only the refresh token.
    assert_eq!(app.introspect(&signed.client, &signed.access_token).await.json()["active"], false);
    assert_eq!(refresh(&app, &mut signed).await["error"], "invalid_grant");
}

#[actix_web::test]
async fn refresh_tokens_revoked_at_the_provider_end_the_grant() {
    let idp = TestIdp::start().await;
    let app = idp_gateway(&idp, "okta", |_| {}).await;
    let mut signed = sign_in(&app, &idp).await;
    idp.revoke_refresh_tokens();
    advance(&app, &idp, INTERVAL + 1);
    assert_eq!(refresh(&app, &mut signed).await["error"], "invalid_grant");
    assert_eq!(refresh(&app, &mut signed).await["error"], "invalid_grant");
}

#[actix_web::test]
async fn an_unreachable_provider_is_trusted_for_one_more_interval_then_refreshes_wait_for_it() {
    let idp = TestIdp::start().await;
    let app = idp_gateway(&idp, "oidc", |_| {}).await;
    let mut signed = sign_in(&app, &idp).await;
    idp.set_token_endpoint_failing(true);

    advance(&app, &idp, INTERVAL + 1);
    assert_eq!(refresh(&app, &mut signed).await["status"], 200, "one more interval on the last check");
    advance(&app, &idp, INTERVAL);
    let waiting = refresh(&app, &mut signed).await;
    assert_eq!(waiting["status"], 503, "{waiting}");
    assert_eq!(waiting["error"], "temporarily_unavailable");
    assert_eq!(refresh(&app, &mut signed).await["status"], 503, "the token was put back");

    idp.set_token_endpoint_failing(false);
    assert_eq!(refresh(&app, &mut signed).await["status"], 200, "the grant resumes");
    assert_eq!(idp.refreshes(), 1);
}

#[actix_web::test]
async fn without_a_refresh_token_the_person_is_read_with_the_kept_access_token() {
    for kind in ["github", "custom"] {
        let idp = TestIdp::start().await;
        idp.set_refresh_tokens(false);
        let app = idp_gateway(&idp, kind, |_| {}).await;
        let mut signed = sign_in(&app, &idp).await;
        advance(&app, &idp, INTERVAL + 1);
        assert_eq!(refresh(&app, &mut signed).await["status"], 200, "{kind}");
        assert_eq!(idp.refreshes(), 0, "{kind}");

        idp.disable_user(&idp.user().sub);
        advance(&app, &idp, INTERVAL + 1);
        assert_eq!(
            refresh(&app, &mut signed).await["error"],
            "invalid_grant",
            "{kind}: the API answered 401"
        );
    }
}

#[actix_web::test]
async fn github_memberships_are_read_again_at_the_check() {
    let idp = TestIdp::start().await;
    idp.set_refresh_tokens(false);
    idp.set_github_memberships(&["acme"], &[]);
    let app = idp_gateway(&idp, "github", |s| s.access = Some(rule(json!({"github_orgs": ["acme"]})))).await;
    let mut signed = sign_in(&app, &idp).await;
    idp.set_github_memberships(&["elsewhere"], &[]);
    assert_eq!(refresh(&app, &mut signed).await["status"], 200, "the login's memberships until the check");
    advance(&app, &idp, INTERVAL + 1);
    assert_eq!(refresh(&app, &mut signed).await["error"], "invalid_grant");
}

#[actix_web::test]
async fn a_zero_interval_never_asks() {
    let idp = TestIdp::start().await;
    let app = idp_gateway(&idp, "oidc", |s| s.tokens.upstream_recheck = 0).await;
    let mut signed = sign_in(&app, &idp).await;
    idp.disable_user(&idp.user().sub);
    advance(&app, &idp, 10 * INTERVAL);
    assert_eq!(refresh(&app, &mut signed).await["status"], 200);
    assert_eq!(idp.refreshes(), 0);
}

/// Every value the gateway keeps under `prefix` in the local Redis.
async fn stored_values(prefix: &str) -> Vec<String> {
    let client = redis::Client::open("redis://127.0.0.1:6379").expect("redis URL");
    let mut conn = client.get_multiplexed_async_connection().await.expect("local Redis");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.expect("KEYS");
    let mut values = Vec::new();
    for key in keys {
        if let Ok(Some(value)) = redis::cmd("GET").arg(&key).query_async::<Option<String>>(&mut conn).await {
            values.push(value);
        }
    }
    values
}

#[actix_web::test]
async fn upstream_tokens_are_stored_sealed_and_any_instance_can_check_with_them() {
    let prefix = format!("recheck-test-{}:", rand::random::<u64>());
    let idp = TestIdp::start().await;
    let first = idp_gateway(&idp, "oidc", |s| s.storage = redis_storage(&prefix)).await;
    let mut signed = sign_in(&first, &idp).await;

    let issued = idp.issued_tokens();
    assert_eq!(issued.len(), 2, "the IdP's access and refresh token");
    let stored = stored_values(&prefix).await;
    assert!(stored.iter().any(|v| v.contains("\"sealed\":\"v1.")), "the grant keeps them sealed");
    for token in &issued {
        assert!(!stored.iter().any(|v| v.contains(token.as_str())), "an IdP token is stored in the clear");
    }

    // Another instance on the same store (and the same session_secret) opens and re-checks.
    let issuer = first.settings.issuer.clone();
    let second = idp_gateway(&idp, "oidc", |s| {
        s.storage = redis_storage(&prefix);
        s.issuer = issuer;
    })
    .await;
    advance(&second, &idp, INTERVAL + 1);
    assert_eq!(refresh(&second, &mut signed).await["status"], 200);
    assert_eq!(idp.refreshes(), 1);
    for token in idp.issued_tokens() {
        assert!(!stored_values(&prefix).await.iter().any(|v| v.contains(token.as_str())));
    }

    // An instance with another session_secret cannot open them: that is a refusal, not a pass.
    let issuer = first.settings.issuer.clone();
    let other = idp_gateway(&idp, "oidc", |s| {
        s.storage = redis_storage(&prefix);
        s.issuer = issuer;
        s.session_secret = "another-session-secret-0123456789abcdef".to_owned().into();
    })
    .await;
    advance(&other, &idp, 2 * INTERVAL + 2);
    assert_eq!(refresh(&other, &mut signed).await["error"], "invalid_grant");
}
