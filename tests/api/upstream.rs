//! The upstream leg, driven directly: `prepare` → `authorize_url` → the provider's redirect →
//! `complete`, for each provider kind against the test IdP (and the dev provider's own page).

use mcp_gateway::config::Settings;
use mcp_gateway::core::model::{UpstreamLogin, UserInfo};
use mcp_gateway::core::pkce::challenge_s256;
use mcp_gateway::upstream::{Prepared, Upstream, UpstreamError};

use crate::helpers::{base_settings, spawn_app};
use crate::idp::{IdTokenFault, SigningAlg, TestIdp, CLIENT_ID};

/// A gateway issuer for tests that never start the gateway: the IdP only checks the shape of
/// the redirect URI (loopback, `/oauth/callback`).
const GATEWAY: &str = "http://127.0.0.1:9";

fn settings_for(idp: &TestIdp, kind: &str) -> Settings {
    let mut settings = base_settings();
    settings.issuer = GATEWAY.into();
    idp.configure(&mut settings, kind);
    settings
}

async fn upstream_for(idp: &TestIdp, kind: &str) -> Upstream {
    Upstream::from_settings(&settings_for(idp, kind)).await.expect("upstream builds")
}

fn login_for(prepared: &Prepared) -> UpstreamLogin {
    UpstreamLogin {
        pending_id: "pending-1".into(),
        pkce_verifier: prepared.pkce_verifier.clone(),
        nonce: prepared.nonce.clone(),
        expires_at: i64::MAX,
    }
}

/// Runs one login through the IdP; `adjust` may spoil the stored login before `complete`.
async fn log_in_with(
    idp: &TestIdp,
    upstream: &Upstream,
    adjust: impl FnOnce(&mut UpstreamLogin),
) -> Result<UserInfo, UpstreamError> {
    let prepared = upstream.prepare();
    let url = upstream.authorize_url("upstream-state-1", &prepared);
    assert!(url.starts_with(&idp.url("/")), "authorize URL points at the IdP: {url}");
    let callback = idp.login(&url).await;
    assert_eq!(callback.state, "upstream-state-1");
    assert!(callback.location.starts_with(&format!("{GATEWAY}/oauth/callback?")));
    let mut login = login_for(&prepared);
    adjust(&mut login);
    upstream.complete(&callback.code, &login).await.map(|signed_in| signed_in.user)
}

async fn log_in(idp: &TestIdp, upstream: &Upstream) -> Result<UserInfo, UpstreamError> {
    log_in_with(idp, upstream, |_| {}).await
}

fn assert_user(user: &UserInfo, kind: &str, sub: &str, email: &str, name: &str, avatar: &str) {
    assert_eq!(user.id, format!("{kind}_{sub}"));
    assert_eq!(user.sub, sub);
    assert_eq!(user.provider, kind);
    assert_eq!(user.email.as_deref(), Some(email));
    assert_eq!(user.name.as_deref(), Some(name));
    assert_eq!(user.avatar.as_deref(), Some(avatar));
}

#[actix_web::test]
async fn oidc_by_discovery_logs_in_with_an_rs256_id_token() {
    let idp = TestIdp::start().await;
    idp.set_user(
        "248289761001",
        Some("jane@example.org"),
        Some("Jane Doe"),
        Some("https://p.example/jane.png"),
    );
    let upstream = upstream_for(&idp, "oidc").await;
    assert_eq!(upstream.kind(), "oidc");

    let prepared = upstream.prepare();
    let url = upstream.authorize_url("s-1", &prepared);
    let callback = idp.login(&url).await;
    let user = upstream.complete(&callback.code, &login_for(&prepared)).await.expect("login completes").user;

    assert_user(&user, "oidc", "248289761001", "jane@example.org", "Jane Doe", "https://p.example/jane.png");
    let sent = &idp.authorizations()[0];
    assert_eq!(sent.client_id, CLIENT_ID);
    assert_eq!(sent.redirect_uri, format!("{GATEWAY}/oauth/callback"));
    assert_eq!(sent.code_challenge, challenge_s256(&prepared.pkce_verifier));
    assert_eq!(sent.nonce, prepared.nonce);
    assert!(prepared.nonce.is_some(), "OIDC logins carry a nonce");
    assert_eq!(sent.scope.as_deref(), Some("openid email profile"));
}

/// Issue 13, item 10: a provider that does not say it verified the address gives no email
/// (backends trust `x-user-email`); saying `false` is no better. The login itself succeeds.
#[actix_web::test]
async fn an_email_the_provider_did_not_verify_is_dropped() {
    for (kind, verified) in [("custom", None), ("oidc", None), ("custom", Some(false))] {
        let idp = TestIdp::start().await;
        idp.set_email_verified(verified);
        let upstream = upstream_for(&idp, kind).await;
        let user = log_in(&idp, &upstream).await.expect("login completes");
        assert_eq!(user.email, None, "{kind} with email_verified {verified:?}");
        assert_eq!(user.id, format!("{kind}_idp-user-1"));
    }
}

#[actix_web::test]
async fn oidc_accepts_es256_id_tokens() {
    let idp = TestIdp::start().await;
    idp.set_signing_alg(SigningAlg::Es256);
    let upstream = upstream_for(&idp, "oidc").await;
    let user = log_in(&idp, &upstream).await.expect("ES256 login completes");
    assert_eq!(user.id, "oidc_idp-user-1");
}

#[actix_web::test]
async fn a_rotated_provider_key_is_fetched_on_first_sight() {
    let idp = TestIdp::start().await;
    let upstream = upstream_for(&idp, "oidc").await;
    idp.set_signing_alg(SigningAlg::Es256);
    idp.rotate_ec_key();
    let user = log_in(&idp, &upstream).await.expect("the new key is fetched from the JWKS");
    assert_eq!(user.id, "oidc_idp-user-1");
}

#[actix_web::test]
async fn okta_with_an_issuer_uses_discovery() {
    let idp = TestIdp::start().await;
    let upstream = upstream_for(&idp, "okta").await;
    let user = log_in(&idp, &upstream).await.expect("okta login completes");
    assert_user(
        &user,
        "okta",
        "idp-user-1",
        "ann@example.org",
        "Ann Example",
        "https://pictures.example.org/ann.png",
    );
}

#[actix_web::test]
async fn custom_reads_userinfo_and_sends_no_nonce() {
    let idp = TestIdp::start().await;
    idp.set_user("u-77", Some("bob@example.org"), Some("Bob"), Some("https://p.example/bob.png"));
    let upstream = upstream_for(&idp, "custom").await;
    assert!(upstream.prepare().nonce.is_none());
    let user = log_in(&idp, &upstream).await.expect("custom login completes");
    assert_user(&user, "custom", "u-77", "bob@example.org", "Bob", "https://p.example/bob.png");
    assert_eq!(idp.token_auth_methods(), ["basic"]);
}

#[actix_web::test]
async fn google_with_overridden_urls_reads_userinfo() {
    let idp = TestIdp::start().await;
    let mut settings = settings_for(&idp, "google");
    settings.oauth_providers.get_mut("google").expect("google").scopes =
        vec!["openid".into(), "email".into()];
    let upstream = Upstream::from_settings(&settings).await.expect("google builds");
    let user = log_in(&idp, &upstream).await.expect("google login completes");
    assert_eq!(user.id, "google_idp-user-1");
    assert_eq!(idp.authorizations()[0].scope.as_deref(), Some("openid email"));
}

#[actix_web::test]
async fn github_with_a_private_email_reads_the_primary_verified_one() {
    let idp = TestIdp::start().await;
    idp.set_user("583231", Some("octo@example.org"), None, Some("https://avatars.example/u/583231"));
    idp.set_email_private(true);
    let upstream = upstream_for(&idp, "github").await;
    let user = log_in(&idp, &upstream).await.expect("github login completes");
    // No `name` on the profile: the login stands in.
    assert_user(
        &user,
        "github",
        "583231",
        "octo@example.org",
        "login-583231",
        "https://avatars.example/u/583231",
    );
    assert_eq!(idp.authorizations()[0].scope.as_deref(), Some("read:user user:email"));
    assert_eq!(idp.token_auth_methods(), ["post"], "GitHub gets the secret in the form");
}

#[actix_web::test]
async fn a_wrong_pkce_verifier_is_refused_by_the_provider() {
    let idp = TestIdp::start().await;
    let upstream = upstream_for(&idp, "oidc").await;
    let result = log_in_with(&idp, &upstream, |login| login.pkce_verifier = "x".repeat(43)).await;
    assert!(matches!(result, Err(UpstreamError::Request(_))), "{result:?}");
}

#[actix_web::test]
async fn a_failing_token_endpoint_surfaces_as_a_request_error() {
    let idp = TestIdp::start().await;
    let upstream = upstream_for(&idp, "custom").await;
    idp.set_token_endpoint_failing(true);
    let result = log_in(&idp, &upstream).await;
    assert!(matches!(result, Err(UpstreamError::Request(_))), "{result:?}");
}

#[actix_web::test]
async fn spoiled_id_tokens_are_refused() {
    let idp = TestIdp::start().await;
    let upstream = upstream_for(&idp, "oidc").await;
    for fault in [
        IdTokenFault::BadSignature,
        IdTokenFault::WrongNonce,
        IdTokenFault::WrongAudience,
        IdTokenFault::WrongIssuer,
        IdTokenFault::Expired,
        IdTokenFault::Missing,
    ] {
        idp.set_id_token_fault(fault);
        let result = log_in(&idp, &upstream).await;
        assert!(matches!(result, Err(UpstreamError::Rejected(_))), "{fault:?}: {result:?}");
    }
    idp.set_id_token_fault(IdTokenFault::None);
    assert!(log_in(&idp, &upstream).await.is_ok(), "the same setup works without the fault");
}

#[actix_web::test]
async fn a_login_without_the_nonce_it_was_sent_with_is_refused() {
    let idp = TestIdp::start().await;
    let upstream = upstream_for(&idp, "oidc").await;
    let result = log_in_with(&idp, &upstream, |login| login.nonce = Some("another-nonce".into())).await;
    assert!(matches!(result, Err(UpstreamError::Rejected(_))), "{result:?}");
}

#[actix_web::test]
async fn an_unreachable_oidc_provider_fails_startup() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("port").port();
    drop(closed);
    let idp = TestIdp::start().await;
    let mut settings = settings_for(&idp, "oidc");
    settings.oauth_providers.get_mut("oidc").expect("oidc").issuer = Some(format!("http://127.0.0.1:{port}"));
    let result = Upstream::from_settings(&settings).await;
    assert!(matches!(result, Err(UpstreamError::Request(_))), "{result:?}");
}

#[actix_web::test]
async fn the_dev_provider_refuses_a_non_loopback_host() {
    let mut settings = base_settings();
    settings.host = "0.0.0.0".into();
    let result = Upstream::from_settings(&settings).await;
    assert!(matches!(result, Err(UpstreamError::Config(_))), "{result:?}");
}

// ---- dev provider, through its page on a running gateway ------------------------------------

/// GETs the dev page at `url`, posts the form, returns `(code, state)` from the redirect.
async fn dev_form_login(
    app: &crate::helpers::TestApp,
    url: &str,
    name: &str,
    email: &str,
) -> (String, String) {
    let mut page = app.client().get(url).send().await.expect("dev page");
    assert_eq!(page.status().as_u16(), 200);
    let html = String::from_utf8(page.body().await.expect("body").to_vec()).expect("UTF-8");
    let parsed = url::Url::parse(url).expect("URL");
    let param = |k: &str| parsed.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).expect(k);
    let (state, challenge) = (param("state"), param("code_challenge"));
    assert!(html.contains(&format!("value=\"{state}\"")), "the page carries the state");
    let form = [("state", state.as_str()), ("code_challenge", &challenge), ("name", name), ("email", email)];
    let res = app.client().post(app.url("/oauth/dev/login")).send_form(&form).await.expect("dev POST");
    assert_eq!(res.status().as_u16(), 303);
    let location = res.headers().get("location").expect("Location").to_str().expect("ASCII").to_owned();
    assert!(location.starts_with(&app.url("/oauth/callback?")), "{location}");
    let parsed = url::Url::parse(&location).expect("URL");
    let param = |k: &str| parsed.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).expect(k);
    (param("code"), param("state"))
}

#[actix_web::test]
async fn dev_form_logs_in_with_a_signed_code() {
    let app = spawn_app().await;
    let upstream = app.state.upstream.clone();
    assert_eq!(upstream.kind(), "dev");
    let prepared = upstream.prepare();
    let url = upstream.authorize_url("dev-state-1", &prepared);
    assert!(url.starts_with(&app.url("/oauth/dev/login?")), "{url}");

    let (code, state) = dev_form_login(&app, &url, "Dee Veloper", "Dee@Example.org").await;
    assert_eq!(state, "dev-state-1");
    let user = upstream.complete(&code, &login_for(&prepared)).await.expect("dev login completes").user;

    assert!(user.id.starts_with("dev_") && user.id.len() > 10, "{}", user.id);
    assert!(!user.id.contains('@'), "the email stays out of the id");
    assert_eq!(user.email.as_deref(), Some("Dee@Example.org"));
    assert_eq!(user.name.as_deref(), Some("Dee Veloper"));
    // Same email (any case), same user.
    let again = upstream.prepare();
    let url = upstream.authorize_url("dev-state-2", &again);
    let (code, _) = dev_form_login(&app, &url, "Dee", "dee@example.org").await;
    assert_eq!(upstream.complete(&code, &login_for(&again)).await.expect("second login").user.id, user.id);
}

#[actix_web::test]
async fn dev_codes_that_are_tampered_with_or_expired_are_refused() {
    let app = spawn_app().await;
    let upstream = app.state.upstream.clone();
    let prepared = upstream.prepare();
    let url = upstream.authorize_url("dev-state-1", &prepared);
    let (code, _) = dev_form_login(&app, &url, "Mallory", "mallory@example.org").await;
    let login = login_for(&prepared);

    let (payload, sig) = code.split_once('.').expect("payload.sig");
    let mut forged = payload.as_bytes().to_vec();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = format!("{}.{sig}", String::from_utf8(forged).expect("ASCII"));
    assert!(matches!(upstream.complete(&forged, &login).await, Err(UpstreamError::Rejected(_))));
    assert!(matches!(
        upstream.complete(&format!("{payload}.x{sig}"), &login).await,
        Err(UpstreamError::Rejected(_))
    ));

    let other = upstream.prepare();
    let result = upstream.complete(&code, &login_for(&other)).await;
    assert!(matches!(result, Err(UpstreamError::Rejected(_))), "a code is bound to its login's PKCE");

    app.state.clock.advance(mcp_gateway::upstream::DEV_CODE_TTL_SECS + 1);
    assert!(matches!(upstream.complete(&code, &login).await, Err(UpstreamError::Rejected(_))), "expired");
}

#[actix_web::test]
async fn dev_page_refuses_bad_input() {
    let app = spawn_app().await;
    let res =
        app.client().get(app.url("/oauth/dev/login?state=s&code_challenge=short")).send().await.expect("GET");
    assert_eq!(res.status().as_u16(), 400);
    let challenge = challenge_s256(&"v".repeat(43));
    let form =
        [("state", "s"), ("code_challenge", challenge.as_str()), ("name", "N"), ("email", "not-an-email")];
    let res = app.client().post(app.url("/oauth/dev/login")).send_form(&form).await.expect("POST");
    assert_eq!(res.status().as_u16(), 400, "a bad email re-shows the form");
}

#[actix_web::test]
async fn dev_pages_are_absent_with_another_provider() {
    let idp = TestIdp::start().await;
    let app = crate::helpers::spawn_app_with(|s| idp.configure(s, "custom")).await;
    let challenge = challenge_s256(&"v".repeat(43));
    let url = app.url(&format!("/oauth/dev/login?state=s&code_challenge={challenge}"));
    let res = app.client().get(url).send().await.expect("GET");
    assert_eq!(res.status().as_u16(), 404);
}
