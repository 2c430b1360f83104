//! Several gateway instances sharing one store, over HTTP: three `Application`s in this
//! process, each with its own actors, local revocation set, key ring and HTTP clients, on one
//! Redis (under a key prefix of their own) or one OpenBao dev server. They share an issuer,
//! `http://gw.test`, as instances behind one load balancer would; every step of a flow is sent
//! to the instance the test picks, and the gateway's own absolute URLs (dev login, callback)
//! are re-aimed at that instance.
//!
//! Needs redis-server and OpenBao's `bao` (scripts/test-services.sh); every server a test
//! starts listens on 127.0.0.1 and is stopped when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The flow helpers are shared with the `api` tests; not every helper is used here.
#![allow(dead_code)]

#[path = "api/backend.rs"]
mod backend;
#[path = "api/flow.rs"]
mod flow;
#[path = "api/helpers.rs"]
mod helpers;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use backend::TestBackend;
use flow::{add_service, AuthRequest, Browser, ConsentForm, Reply, TestClient, REDIRECT};
use helpers::{spawn_app_with, TestApp};
use mcp_gateway::admin::cli::AdminCommand;
use mcp_gateway::config::{RedisSettings, Settings, StorageKind, StorageSettings, VaultSettings};
use mcp_gateway::core::signing_keys::KEY_ACTIVATION_DELAY;
use mcp_gateway::startup::rotate_keys;
use secrecy::SecretString;

/// The issuer every instance shares (the load balancer's address).
const ISSUER: &str = "http://gw.test";

// ---------------------------------------------------------------------------------------------
// Servers

#[path = "support/servers.rs"]
mod servers;

use servers::{unique, Bao, RedisOptions, RedisServer, BAO_ROOT_TOKEN};

/// A redis-server of the test's own that keeps its data across a kill and restart.
async fn persistent_redis() -> RedisServer {
    RedisServer::start_with(RedisOptions { persistent: true, ..RedisOptions::default() }).await
}

fn redis_storage(port: u16, prefix: &str) -> StorageSettings {
    StorageSettings {
        kind: StorageKind::Redis,
        redis: RedisSettings {
            host: "127.0.0.1".into(),
            port,
            key_prefix: format!("{prefix}:"),
            // Generous: this machine is busy; an outage still answers 503 within a second.
            connect_timeout_ms: 1000,
            command_timeout_ms: 1000,
            ..RedisSettings::default()
        },
        ..StorageSettings::default()
    }
}

fn vault_storage(bao: &Bao, prefix: &str) -> StorageSettings {
    StorageSettings {
        kind: StorageKind::Vault,
        vault: VaultSettings {
            url: bao.url(),
            token: Some(SecretString::from(BAO_ROOT_TOKEN)),
            path_prefix: prefix.into(),
            ..VaultSettings::default()
        },
        ..StorageSettings::default()
    }
}

// ---------------------------------------------------------------------------------------------
// A cluster of gateways

/// One gateway instance's settings: the shared issuer, service `svc` proxying to `backend`,
/// and `storage`.
fn instance_settings(s: &mut Settings, storage: &StorageSettings, backend: &TestBackend) {
    add_service(s, "svc", &["read", "write"]);
    if let Some(svc) = s.mcp_services.get_mut("svc") {
        svc.url = backend.url("/mcp");
    }
    s.issuer = ISSUER.into();
    s.storage = storage.clone();
    s.runtime.workers = 1;
}

/// Starts `n` gateways on `storage`, plus the MCP backend they proxy to.
async fn cluster(n: usize, storage: &StorageSettings) -> (Vec<TestApp>, TestBackend) {
    let backend = TestBackend::start().await;
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(spawn_app_with(|s| instance_settings(s, storage, &backend)).await);
    }
    (apps, backend)
}

/// The path and query of one of the gateway's absolute URLs (`http://gw.test/...`), to send
/// to whichever instance the test picks.
fn on_instance(url: &str) -> String {
    let rest = url.strip_prefix(ISSUER).unwrap_or_else(|| panic!("not a gateway URL: {url}"));
    rest.to_owned()
}

/// Authorize (with consent) on `at`, log in on the dev page on `login_on`, and come back
/// through the upstream callback on `callback_on`; returns the code.
async fn code_across(
    at: &TestApp,
    login_on: &TestApp,
    callback_on: &TestApp,
    request: &AuthRequest,
) -> String {
    let mut browser = Browser::new();
    let page = at.authorize(&mut browser, request).await;
    let form = ConsentForm::from_page(&page);
    let approved = at.consent(&mut browser, &form, "approve").await;
    assert!(approved.is_redirect(), "approve: {} {}", approved.status, approved.body);
    let upstream = url::Url::parse(&approved.location()).unwrap();
    let q: std::collections::BTreeMap<String, String> = upstream.query_pairs().into_owned().collect();
    let fields = [
        ("state", q["state"].as_str()),
        ("code_challenge", q["code_challenge"].as_str()),
        ("name", "Multi User"),
        ("email", "multi@example.com"),
    ];
    let submitted = login_on.post_form_as(&mut browser, "/oauth/dev/login", &fields).await;
    assert!(submitted.is_redirect(), "dev login: {} {}", submitted.status, submitted.body);
    let back = callback_on.browse(&mut browser, &on_instance(&submitted.location())).await;
    back.location_query().get("code").cloned().unwrap_or_else(|| panic!("no code: {}", back.location()))
}

/// A client registered on `apps[0]` and a code for it obtained across the instances.
async fn new_code(apps: &[TestApp]) -> (TestClient, AuthRequest, String) {
    let client = apps[0].register_client(&[REDIRECT]).await;
    let request = AuthRequest::new(&apps[0], &client, Some("svc"));
    let code =
        code_across(&apps[1 % apps.len()], &apps[1 % apps.len()], &apps[2 % apps.len()], &request).await;
    (client, request, code)
}

fn token_pair(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status, 200, "token endpoint: {}", reply.body);
    let body = reply.json();
    (body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned())
}

/// Status of a proxied MCP call with `token` on `app`.
async fn proxy(app: &TestApp, token: &str) -> u16 {
    let res = app
        .client()
        .post(app.url("/svc/mcp"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", "application/json"))
        .send_body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .await
        .expect("proxy call");
    res.status().as_u16()
}

/// Waits until `app` refuses `token` with 401; returns how long that took.
async fn until_refused(app: &TestApp, token: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if proxy(app, token).await == 401 {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "token still accepted on {} after {within:?}", app.address);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `kid` in a JWT's header.
fn kid(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

// ---------------------------------------------------------------------------------------------
// The flow across three instances

/// Register on the first, authorize on the second, upstream callback on the third, token
/// exchange on the first, refresh on the second, proxy on the third; revoke on the first and
/// the token is refused on the other two within a second.
async fn flow_across_three(storage: StorageSettings) {
    let (apps, _backend) = cluster(3, &storage).await;
    let (a, b, c) = (&apps[0], &apps[1], &apps[2]);

    let client = a.register_client(&[REDIRECT]).await;
    let request = AuthRequest::new(a, &client, Some("svc"));
    let code = code_across(b, b, c, &request).await;
    let (first_access, first_refresh) =
        token_pair(&a.exchange_code(&client, &code, &request.pkce.verifier, &[]).await);
    let (access, refresh) = token_pair(&b.refresh(&client, &first_refresh, &[]).await);
    assert_ne!(refresh, first_refresh);
    for app in &apps {
        assert_eq!(proxy(app, &access).await, 200, "proxy on {}", app.address);
    }
    assert_eq!(proxy(c, &first_access).await, 200, "the first access token is still live");

    // Revoking the access token on A: B and C refuse it within a second, without asking
    // storage per request (they verified it before and cached it).
    assert_eq!(a.revoke(&client, &access).await.status, 200);
    assert_eq!(proxy(a, &access).await, 401, "refused at once where it was revoked");
    for app in [b, c] {
        let took = until_refused(app, &access, Duration::from_secs(1)).await;
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    assert_eq!(proxy(c, &first_access).await, 200, "revoking one access token leaves the others");

    // Revoking the refresh token on A kills the family everywhere: its access tokens at every
    // proxy, its refresh token at every token endpoint.
    assert_eq!(a.revoke(&client, &refresh).await.status, 200);
    for app in [b, c] {
        until_refused(app, &first_access, Duration::from_secs(1)).await;
    }
    let again = c.refresh(&client, &refresh, &[]).await;
    assert_eq!((again.status, again.json()["error"].as_str()), (400, Some("invalid_grant")));
}

#[actix_web::test]
async fn three_instances_on_redis_share_one_flow_and_revocations() {
    flow_across_three(redis_storage(6379, &unique("flow"))).await;
}

#[actix_web::test]
async fn three_instances_on_vault_share_one_flow_and_revocations() {
    let bao = Bao::start().await;
    flow_across_three(vault_storage(&bao, &unique("flow"))).await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency across instances

/// Fifty concurrent redemptions of one code, spread over three instances: exactly one takes
/// the code. Every other one is a replay (RFC 6749 §4.1.2), which revokes what the code
/// issued; so the winner either got tokens that are revoked moments later everywhere, or was
/// refused because a replay's revocation came first. Never two token responses.
#[actix_web::test]
async fn fifty_concurrent_redemptions_across_three_instances_yield_one_winner() {
    let (apps, _backend) = cluster(3, &redis_storage(6379, &unique("redeem"))).await;
    let (client, request, code) = new_code(&apps).await;
    let attempts = (0..50).map(|i| apps[i % 3].exchange_code(&client, &code, &request.pkce.verifier, &[]));
    let replies = futures_util::future::join_all(attempts).await;

    let described = |r: &Reply| r.json()["error_description"].as_str().unwrap_or("").to_owned();
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    let refused_winner = replies.iter().filter(|r| described(r) == "authorization code was revoked").count();
    let replays = replies.iter().filter(|r| described(r) == "authorization code was already used").count();
    let summary: Vec<(u16, String)> = replies.iter().map(|r| (r.status, described(r))).collect();
    assert!(ok.len() <= 1, "never two token responses: {summary:?}");
    assert_eq!(ok.len() + refused_winner, 1, "exactly one redemption took the code: {summary:?}");
    assert_eq!(replays, 49, "every other one was recognised as a replay: {summary:?}");
    if let Some(reply) = ok.first() {
        let (access, refresh) = token_pair(reply);
        for app in &apps {
            until_refused(app, &access, Duration::from_secs(1)).await;
        }
        let again = apps[1].refresh(&client, &refresh, &[]).await;
        assert_eq!(again.json()["error"], "invalid_grant");
    }
}

#[actix_web::test]
async fn fifty_concurrent_refreshes_across_three_instances_rotate_once() {
    let (apps, _backend) = cluster(3, &redis_storage(6379, &unique("refresh"))).await;
    let (client, request, code) = new_code(&apps).await;
    let (_, refresh) = token_pair(&apps[0].exchange_code(&client, &code, &request.pkce.verifier, &[]).await);

    let attempts = (0..50).map(|i| apps[i % 3].refresh(&client, &refresh, &[]));
    let replies = futures_util::future::join_all(attempts).await;
    let mut new_refresh = BTreeSet::new();
    let mut signed_parts = BTreeSet::new();
    let mut access = String::new();
    for reply in &replies {
        let (token, next) = token_pair(reply);
        new_refresh.insert(next);
        // The signature's nonce is random: the same header and claims (and `jti`) is the same
        // access token.
        signed_parts.insert(token.rsplit_once('.').unwrap().0.to_owned());
        access = token;
    }
    assert_eq!(new_refresh.len(), 1, "every duplicate got the same new refresh token");
    assert_eq!(signed_parts.len(), 1, "and an access token of the same claims");
    // The family is not revoked: the pair works on every instance.
    for app in &apps {
        assert_eq!(proxy(app, &access).await, 200);
    }
    let next = new_refresh.into_iter().next().unwrap();
    token_pair(&apps[2].refresh(&client, &next, &[]).await);
}

// ---------------------------------------------------------------------------------------------
// Key rotation on a running cluster

#[actix_web::test]
async fn rotate_keys_on_a_running_cluster_old_tokens_verify_and_new_ones_verify_everywhere() {
    let (apps, _backend) = cluster(3, &redis_storage(6379, &unique("keys"))).await;
    let (client, request, code) = new_code(&apps).await;
    let (old_access, refresh) =
        token_pair(&apps[0].exchange_code(&client, &code, &request.pkce.verifier, &[]).await);
    let old_kid = kid(&old_access);

    let rotation = rotate_keys(&apps[0].settings).await.expect("rotate-keys");
    assert_ne!(rotation.kid, old_kid);
    assert_eq!(rotation.kept, vec![old_kid.clone(), rotation.kid.clone()]);

    // Every instance learns the new key (JWKS, verification) before anyone signs with it.
    let deadline = Instant::now() + Duration::from_secs(6);
    while !apps.iter().all(|app| app.state.keys.current().stored().len() == 2) {
        assert!(Instant::now() < deadline, "the new key did not reach every instance");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for app in &apps {
        assert_eq!(app.state.keys.current().active_kid(), old_kid, "not signing with it yet");
        assert_eq!(app.get("/.well-known/jwks.json").await.json()["keys"].as_array().unwrap().len(), 2);
    }

    // Past the activation time every instance signs with the new key.
    for app in &apps {
        app.state.clock.advance(KEY_ACTIVATION_DELAY + 1);
    }
    let deadline = Instant::now() + Duration::from_secs(6);
    while !apps.iter().all(|app| app.state.keys.current().active_kid() == rotation.kid) {
        assert!(Instant::now() < deadline, "the new key did not start signing everywhere");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (new_access, _) = token_pair(&apps[1].refresh(&client, &refresh, &[]).await);
    assert_eq!(kid(&new_access), rotation.kid);
    for app in &apps {
        assert_eq!(proxy(app, &new_access).await, 200, "new token on {}", app.address);
        assert_eq!(proxy(app, &old_access).await, 200, "old token on {}", app.address);
    }
    let introspected = apps[2].introspect(&client, &old_access).await.json();
    assert_eq!(introspected["active"], serde_json::json!(true));
}

/// Issue 13, item 11: under load on three instances, one restarted after Redis had lost its
/// data created a new signing key and the others replaced theirs with it, so every access
/// token in use was refused at once. Running instances only ever add keys.
#[actix_web::test]
async fn a_store_that_lost_its_keys_does_not_invalidate_live_tokens() {
    let storage = redis_storage(6379, &unique("lost"));
    let (mut apps, backend) = cluster(2, &storage).await;
    let (client, request, code) = new_code(&apps).await;
    let (old_access, _) =
        token_pair(&apps[0].exchange_code(&client, &code, &request.pkce.verifier, &[]).await);
    let old_kid = kid(&old_access);

    // The store loses everything; an instance (re)starts on it and makes a new key set.
    let store = mcp_gateway::storage::connect(&storage).await.expect("redis");
    mcp_gateway::core::store::Store::delete(&store, "signing-keys").await.expect("wipe the keys");
    apps.push(spawn_app_with(|s| instance_settings(s, &storage, &backend)).await);
    let new_kid = apps[2].state.keys.current().active_kid().to_owned();
    assert_ne!(new_kid, old_kid);

    // The running instances follow the store: the new key signs everywhere...
    let deadline = Instant::now() + Duration::from_secs(6);
    while !apps.iter().all(|app| app.state.keys.current().active_kid() == new_kid) {
        assert!(Instant::now() < deadline, "the new key did not reach every instance");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and the tokens they issued before keep working where the old key is known.
    for app in &apps[..2] {
        assert_eq!(proxy(app, &old_access).await, 200, "old token on {}", app.address);
    }
}

// ---------------------------------------------------------------------------------------------
// Backend outage

#[actix_web::test]
async fn redis_outage_gives_503_keeps_proxying_and_heals_without_a_restart() {
    let mut redis = persistent_redis().await;
    let (apps, _backend) = cluster(2, &redis_storage(redis.port, &unique("outage"))).await;
    let (client, request, code) = new_code(&apps).await;
    let (access, refresh) =
        token_pair(&apps[0].exchange_code(&client, &code, &request.pkce.verifier, &[]).await);
    assert_eq!(apps[0].get("/health").await.status, 200);

    redis.kill();
    for app in &apps {
        let reply = app.refresh(&client, &refresh, &[]).await;
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(reply.header("retry-after").is_some(), "Retry-After is set");
        assert_eq!(reply.json()["error"], "temporarily_unavailable");
        assert!(!reply.body.contains("127.0.0.1"), "nothing internal leaks: {}", reply.body);
        let registered = app.register_json(&serde_json::json!({ "redirect_uris": [REDIRECT] })).await;
        assert_eq!(
            (registered.status, registered.json()["error"].as_str()),
            (503, Some("temporarily_unavailable"))
        );
        for reply in [app.revoke(&client, &access).await, app.introspect(&client, &refresh).await] {
            assert_eq!(
                (reply.status, reply.json()["error"].as_str()),
                (503, Some("temporarily_unavailable"))
            );
        }
        let health = app.get("/health").await;
        assert_eq!(health.status, 503, "{}", health.body);
        assert_eq!(health.json()["storage"]["healthy"], serde_json::json!(false));
        // Proxying with an issued token needs no storage.
        assert_eq!(proxy(app, &access).await, 200);
    }

    redis.spawn().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = apps[1].refresh(&client, &refresh, &[]).await;
        if reply.status != 503 {
            break reply;
        }
        assert!(Instant::now() < deadline, "still 503 after Redis came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (new_access, _) = token_pair(&reply);
    assert_eq!(proxy(&apps[0], &new_access).await, 200);
    assert_eq!(apps[0].get("/health").await.status, 200);
    // Revocations flow again after the outage.
    assert_eq!(apps[1].revoke(&client, &new_access).await.status, 200);
    until_refused(&apps[0], &new_access, Duration::from_secs(2)).await;
}

/// Asserts the browser got the retryable outage page: 503, `Retry-After: 5`, HTML, no redirect.
fn assert_outage_page(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("5"), "{what}");
    assert!(reply.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{what}");
    assert!(reply.header("location").is_none(), "{what}");
    assert!(reply.body.contains("temporarily unavailable"), "{what}: {}", reply.body);
    assert!(!reply.body.contains("127.0.0.1"), "nothing internal leaks: {}", reply.body);
}

#[actix_web::test]
async fn redis_outage_gives_browser_endpoints_a_retryable_page() {
    // Arrange: a consent page shown, and another request approved up to the provider.
    let mut redis = persistent_redis().await;
    let (apps, _backend) = cluster(1, &redis_storage(redis.port, &unique("browser-outage"))).await;
    let app = &apps[0];
    let client = app.register_client(&[REDIRECT]).await;
    let request = AuthRequest::new(app, &client, Some("svc"));
    let mut browser = Browser::new();
    let form = ConsentForm::from_page(&app.authorize(&mut browser, &request).await);
    let second = ConsentForm::from_page(&app.authorize(&mut browser, &request).await);
    let upstream = app.consent(&mut browser, &second, "approve").await.location();
    let upstream = url::Url::parse(&upstream).unwrap();
    let state = upstream.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let callback = format!("/oauth/callback?code=x&state={state}");

    // Act
    redis.kill();
    let authorize = app.authorize(&mut browser, &request).await;
    let consent = app.consent(&mut browser, &form, "approve").await;
    let callback = app.browse(&mut browser, &callback).await;

    // Assert
    assert_outage_page(&authorize, "authorize");
    assert_outage_page(&consent, "consent");
    assert_outage_page(&callback, "callback");
}

// ---------------------------------------------------------------------------------------------
// Cutting people off: the admin API and the `grants` command

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

/// Two instances on `storage` with the admin API on.
async fn admin_cluster(storage: &StorageSettings) -> (Vec<TestApp>, TestBackend) {
    let backend = TestBackend::start().await;
    let mut apps = Vec::new();
    for _ in 0..2 {
        apps.push(
            spawn_app_with(|s| {
                instance_settings(s, storage, &backend);
                s.admin.token = Some(SecretString::from(ADMIN_TOKEN));
            })
            .await,
        );
    }
    (apps, backend)
}

/// An admin API call: status and JSON body.
async fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let req = app.client().request(method, app.url(path)).bearer_auth(token);
    let mut res = match body {
        Some(body) => req.send_json(&body).await,
        None => req.send().await,
    }
    .expect("admin call");
    let status = res.status().as_u16();
    let bytes = res.body().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// A second client of the same person, with its tokens.
async fn tokens_of_new_client(apps: &[TestApp]) -> (TestClient, String, String) {
    let (client, request, code) = new_code(apps).await;
    let (access, refresh) =
        token_pair(&apps[0].exchange_code(&client, &code, &request.pkce.verifier, &[]).await);
    (client, access, refresh)
}

#[actix_web::test]
async fn the_admin_api_cuts_a_person_off_on_every_instance_within_a_second() {
    let storage = redis_storage(6379, &unique("admin"));
    let (apps, _backend) = admin_cluster(&storage).await;
    let (a, b) = (&apps[0], &apps[1]);
    let (first, first_access, first_refresh) = tokens_of_new_client(&apps).await;
    let (second, second_access, _) = tokens_of_new_client(&apps).await;
    for token in [&first_access, &second_access] {
        assert_eq!(proxy(b, token).await, 200);
    }

    // Strangers get nothing, and leave an audited failure.
    for token in ["", "wrong", &ADMIN_TOKEN[1..], &format!("{ADMIN_TOKEN}x")] {
        let (status, body) = admin(a, "GET", "/admin/grants", token, None).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{token:?}");
    }

    let (status, listed) = admin(a, "GET", "/admin/grants?user=MULTI@example.com", ADMIN_TOKEN, None).await;
    assert_eq!(status, 200, "{listed}");
    let grants = listed["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 2, "{listed}");
    assert!(grants.iter().all(|g| g["service_id"] == "svc" && g["email"] == "multi@example.com"));
    assert!(!listed.to_string().contains(&first_refresh), "no token in a listing");
    let (_, only_first) =
        admin(a, "GET", &format!("/admin/grants?client={}", first.client_id), ADMIN_TOKEN, None).await;
    assert_eq!(only_first["grants"].as_array().map(Vec::len), Some(1));

    // Revoking one client's grant on A: B refuses its tokens within a second; the other grant lives.
    let (status, body) = admin(
        a,
        "POST",
        "/admin/grants/revoke",
        ADMIN_TOKEN,
        Some(serde_json::json!({ "client": first.client_id })),
    )
    .await;
    assert_eq!((status, body["revoked"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
    let took = until_refused(b, &first_access, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    let refused = b.refresh(&first, &first_refresh, &[]).await;
    assert_eq!((refused.status, refused.json()["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(proxy(b, &second_access).await, 200, "the other grant is untouched");

    // Revoking everyone is not one request.
    let (status, body) =
        admin(a, "POST", "/admin/grants/revoke", ADMIN_TOKEN, Some(serde_json::json!({}))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));

    // Deleting the second client: its registration, its grant, its consents.
    let (_, clients) = admin(b, "GET", "/admin/clients", ADMIN_TOKEN, None).await;
    let ids: Vec<&str> =
        clients["clients"].as_array().unwrap().iter().filter_map(|c| c["client_id"].as_str()).collect();
    assert!(ids.contains(&first.client_id.as_str()) && ids.contains(&second.client_id.as_str()), "{clients}");
    assert!(!clients.to_string().contains("secret"), "no secret hash listed: {clients}");
    let (status, deleted) =
        admin(b, "DELETE", &format!("/admin/clients/{}", second.client_id), ADMIN_TOKEN, None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["registered"], true);
    assert_eq!(deleted["grants_revoked"].as_array().map(Vec::len), Some(1));
    assert_eq!(deleted["consents_forgotten"], 1);
    until_refused(a, &second_access, Duration::from_secs(1)).await;
    let (_, after) = admin(a, "GET", "/admin/grants?user=multi@example.com", ADMIN_TOKEN, None).await;
    assert_eq!(after["grants"].as_array().map(Vec::len), Some(0), "{after}");
}

#[actix_web::test]
async fn the_grants_command_revokes_on_running_instances_within_a_second() {
    let storage = redis_storage(6379, &unique("cli-grants"));
    let (apps, _backend) = cluster(2, &storage).await;
    let (_, access, _) = tokens_of_new_client(&apps).await;
    assert_eq!(proxy(&apps[1], &access).await, 200);

    // What `mcp-gateway grants revoke --user multi@example.com` runs, against the store alone.
    let mut settings = helpers::base_settings();
    settings.storage = storage.clone();
    settings.issuer = ISSUER.into();
    add_service(&mut settings, "svc", &[]);
    let (actors, audit) = mcp_gateway::startup::admin_wiring(&settings).await.expect("store reachable");
    let admin = mcp_gateway::admin::Admin {
        actors: &actors,
        audit: &audit,
        request_id: "cli".into(),
        client_ip: None,
    };
    let user = mcp_gateway::core::tokens::GrantFilter {
        user: Some("multi@example.com".into()),
        ..Default::default()
    };
    let listed = mcp_gateway::admin::cli::run(&admin, AdminCommand::ListGrants(user.clone())).await.unwrap();
    assert!(listed.to_text().contains("multi@example.com"), "{}", listed.to_text());
    let revoked = mcp_gateway::admin::cli::run(&admin, AdminCommand::RevokeGrants(user)).await.unwrap();
    assert_eq!(revoked.to_json()["revoked"].as_array().map(Vec::len), Some(1));

    for app in &apps {
        let took = until_refused(app, &access, Duration::from_secs(1)).await;
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
}
