//! MCP sessions bound to the user who opened them (checklist A13): another user's token with
//! that `Mcp-Session-Id` is refused before the backend sees it, on this gateway and on another
//! one sharing the storage backend; with the store down, an unknown session fails closed.

use mcp_gateway::config::{RedisSettings, Settings, StorageSettings};
use mcp_gateway::startup::Application;
use mcp_gateway::storage::{self, Backend};

use crate::backend::TestBackend;
use crate::helpers::{base_settings, TestApp};
use crate::proxy::{body_json, claims, gateway, header, service, sign};
use crate::servers::RedisServer;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

fn token_of(app: &TestApp, sub: &str) -> String {
    let mut c = claims(app, "svc");
    c.sub = sub.into();
    sign(app, &c)
}

/// Sends `body` to `/svc/mcp` as `sub`, with `session` if given.
async fn send(
    app: &TestApp,
    sub: &str,
    session: Option<&str>,
    body: &'static str,
) -> awc::ClientResponse<
    impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
> {
    let mut req = app
        .client()
        .post(app.url("/svc/mcp"))
        .insert_header(("Authorization", format!("Bearer {}", token_of(app, sub))))
        .content_type("application/json");
    if let Some(id) = session {
        req = req.insert_header(("Mcp-Session-Id", id));
    }
    req.send_body(body).await.unwrap()
}

/// Users the backend saw, in order.
fn users_seen(backend: &TestBackend) -> Vec<String> {
    backend.recorded().into_iter().map(|r| r.user.unwrap_or_default()).collect()
}

async fn assert_foreign_session(
    res: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) {
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(
        body_json(res).await,
        serde_json::json!({"error": "forbidden", "error_description": "this MCP session belongs to another user"})
    );
}

#[actix_web::test]
async fn a13_another_users_token_cannot_use_a_session() {
    let backend = TestBackend::start().await;
    let url = backend.url("/record");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;

    let res = send(&app, "dev_alice", None, INITIALIZE).await;
    assert_eq!(res.status().as_u16(), 200);
    let session = header(&res, "mcp-session-id").expect("the backend opened a session");

    let mut res = send(&app, "dev_bob", Some(&session), LIST).await;
    assert_foreign_session(&mut res).await;
    assert_eq!(users_seen(&backend), ["dev_alice"], "bob's request reached the backend");

    let res = send(&app, "dev_alice", Some(&session), LIST).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(users_seen(&backend), ["dev_alice", "dev_alice"]);
    assert_eq!(backend.recorded()[1].session.as_deref(), Some(session.as_str()));

    // Bob's own session is his.
    let res = send(&app, "dev_bob", None, INITIALIZE).await;
    let bobs = header(&res, "mcp-session-id").unwrap();
    assert_ne!(bobs, session);
    assert_eq!(send(&app, "dev_bob", Some(&bobs), LIST).await.status().as_u16(), 200);
    assert_foreign_session(&mut send(&app, "dev_alice", Some(&bobs), LIST).await).await;
}

#[actix_web::test]
async fn a_session_the_gateway_never_saw_opened_belongs_to_its_first_user() {
    let backend = TestBackend::start().await;
    let url = backend.url("/record");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;
    // E.g. opened before this gateway bound sessions: the first user to present it claims it.
    assert_eq!(send(&app, "dev_alice", Some("opened-earlier"), LIST).await.status().as_u16(), 200);
    assert_foreign_session(&mut send(&app, "dev_bob", Some("opened-earlier"), LIST).await).await;
    assert_eq!(users_seen(&backend), ["dev_alice"]);
}

#[actix_web::test]
async fn sessions_of_open_services_are_not_bound() {
    let backend = TestBackend::start().await;
    let url = backend.url("/record");
    let app = gateway(|s| {
        let mut open = service(url);
        open.auth_required = false;
        s.mcp_services.insert("open".into(), open);
    })
    .await;
    for _ in 0..2 {
        let res = app
            .client()
            .post(app.url("/open/mcp"))
            .insert_header(("Mcp-Session-Id", "sess-0"))
            .send_body(LIST);
        assert_eq!(res.await.unwrap().status().as_u16(), 200);
    }
    assert_eq!(app.state.mcp_sessions.local_len("open"), 0);
}

#[actix_web::test]
async fn repeated_or_malformed_session_headers_are_refused() {
    let backend = TestBackend::start().await;
    let url = backend.url("/record");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;
    let res = app
        .client()
        .post(app.url("/svc/mcp"))
        .insert_header(("Authorization", format!("Bearer {}", token_of(&app, "dev_bob"))))
        .append_header(("Mcp-Session-Id", "a"))
        .append_header(("Mcp-Session-Id", "b"))
        .send_body(LIST)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert!(backend.recorded().is_empty());
}

/// A gateway on `backend` (shared with other gateways) with `svc` → `url`. The issuer is fixed
/// so tokens are valid on every instance, as behind one public URL.
async fn instance(backend: Backend, url: &str, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = base_settings();
    settings.issuer = "http://gateway.test".into();
    settings.runtime.workers = 1;
    settings.mcp_services.insert("svc".into(), service(url.to_owned()));
    adjust(&mut settings);
    let app = Application::build_with_backend(settings, backend).await.expect("app builds");
    let test_app = TestApp::of(&app);
    actix_web::rt::spawn(app.run_until_stopped());
    test_app
}

#[actix_web::test]
async fn a_session_opened_on_one_instance_is_refused_to_others_on_another() {
    let backend = TestBackend::start().await;
    let url = backend.url("/record");
    let store = Backend::memory();
    let first = instance(store.clone(), &url, |_| {}).await;
    let second = instance(store, &url, |_| {}).await;

    let res = send(&first, "dev_alice", None, INITIALIZE).await;
    let session = header(&res, "mcp-session-id").unwrap();
    assert_eq!(second.state.mcp_sessions.local_len("svc"), 0, "nothing shared but the store");

    assert_foreign_session(&mut send(&second, "dev_bob", Some(&session), LIST).await).await;
    assert_eq!(send(&second, "dev_alice", Some(&session), LIST).await.status().as_u16(), 200);
    assert_eq!(second.state.mcp_sessions.local_len("svc"), 1, "learnt once, then cached");
    assert_eq!(users_seen(&backend), ["dev_alice", "dev_alice"]);
}

#[actix_web::test]
async fn with_the_store_down_only_sessions_known_locally_pass() {
    let backend = TestBackend::start().await;
    let url = backend.url("/record");
    let mut redis = RedisServer::start().await;
    let storage_settings = StorageSettings {
        kind: mcp_gateway::config::StorageKind::Redis,
        redis: RedisSettings {
            url: Some(format!("redis://127.0.0.1:{}", redis.port)),
            connect_timeout_ms: 1500,
            command_timeout_ms: 1500,
            key_prefix: format!("sessions-test-{}:", redis.port),
            ..RedisSettings::default()
        },
        ..StorageSettings::default()
    };
    let store = storage::connect(&storage_settings).await.expect("redis connects");
    let app = instance(store, &url, |_| {}).await;
    let res = send(&app, "dev_alice", None, INITIALIZE).await;
    let session = header(&res, "mcp-session-id").unwrap();

    redis.kill();

    // Known here: one local read, no store needed, either way.
    assert_eq!(send(&app, "dev_alice", Some(&session), LIST).await.status().as_u16(), 200);
    assert_foreign_session(&mut send(&app, "dev_bob", Some(&session), LIST).await).await;
    // Unknown here: the store must answer, and cannot: refused, not forwarded unchecked.
    let mut res = send(&app, "dev_bob", Some("unknown-session"), LIST).await;
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(header(&res, "retry-after").as_deref(), Some("5"));
    assert_eq!(body_json(&mut res).await["error"], "temporarily_unavailable");
    assert_eq!(users_seen(&backend), ["dev_alice", "dev_alice"]);
}
