//! Step-up authorization (checklist A10): `tool_scopes` per MCP method or tool, read from the
//! 2026-07-28 `Mcp-Method` / `Mcp-Name` headers and from the JSON-RPC body.

use std::collections::BTreeMap;

use futures_util::StreamExt;

use crate::backend::TestBackend;
use crate::flow::{AuthRequest, Browser};
use crate::helpers::TestApp;
use crate::proxy::{body_json, claims, gateway, header, service, sign};

const DELETE: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{}}}"#;
const ECHO: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}"#;

/// `scoped` (tool_scopes: every `tools/call` needs `tools`, the `delete_repo` tool also
/// `admin` and `write`) and `plain` (no tool_scopes), both → the backend's `/record`.
async fn scoped_gateway(backend: &TestBackend) -> TestApp {
    let url = backend.url("/record");
    gateway(|s| {
        let mut scoped = service(url.clone());
        scoped.tool_scopes = BTreeMap::from([
            ("tools/call".to_owned(), vec!["tools".to_owned()]),
            ("delete_repo".to_owned(), vec!["admin".to_owned(), "write".to_owned()]),
        ]);
        s.mcp_services.insert("scoped".into(), scoped);
        s.mcp_services.insert("plain".into(), service(url));
    })
    .await
}

fn token(app: &TestApp, service_id: &str, scope: &str) -> String {
    let mut c = claims(app, service_id);
    c.scope = scope.into();
    sign(app, &c)
}

fn post(app: &TestApp, service_id: &str, token: &str) -> awc::ClientRequest {
    app.client()
        .post(app.url(&format!("/{service_id}/mcp")))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .content_type("application/json")
}

/// Asserts a step-up 403: the challenge asks for `needed`, the body names `missing`.
async fn assert_step_up(
    res: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
    app: &TestApp,
    needed: &str,
    missing: &[&str],
) {
    assert_eq!(res.status().as_u16(), 403);
    let challenge = header(res, "www-authenticate").expect("challenge");
    let issuer = &app.settings.issuer;
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains(&format!("scope=\"{needed}\"")), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{issuer}/.well-known/oauth-protected-resource/scoped/mcp\""
        )),
        "{challenge}"
    );
    let body = body_json(res).await;
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["missing_scopes"], serde_json::json!(missing));
    for scope in missing {
        assert!(body["error_description"].as_str().unwrap().contains(scope), "{body}");
    }
}

#[actix_web::test]
async fn headers_alone_refuse_a_tool_before_the_body_is_read() {
    let backend = TestBackend::start().await;
    let app = scoped_gateway(&backend).await;
    // A body far over the inspection limit: a refusal from the headers never reads it.
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 << 20));
    let mut res = post(&app, "scoped", &token(&app, "scoped", "read tools"))
        .insert_header(("Mcp-Method", "tools/call"))
        .insert_header(("Mcp-Name", "delete_repo"))
        .send_body(huge)
        .await
        .unwrap();
    assert_step_up(&mut res, &app, "read tools admin write", &["admin", "write"]).await;
    assert!(backend.recorded().is_empty(), "the backend saw the refused request");
}

#[actix_web::test]
async fn the_body_is_read_when_there_are_no_headers() {
    let backend = TestBackend::start().await;
    let app = scoped_gateway(&backend).await;
    let mut res = post(&app, "scoped", &token(&app, "scoped", "read")).send_body(DELETE).await.unwrap();
    assert_step_up(&mut res, &app, "read tools admin write", &["tools", "admin", "write"]).await;
    assert!(backend.recorded().is_empty());
}

#[actix_web::test]
async fn every_message_of_a_batch_is_checked() {
    let backend = TestBackend::start().await;
    let app = scoped_gateway(&backend).await;
    let batch = format!(r#"[{{"jsonrpc":"2.0","id":9,"method":"tools/list"}},{ECHO},{DELETE}]"#);
    let mut res =
        post(&app, "scoped", &token(&app, "scoped", "tools")).send_body(batch.clone()).await.unwrap();
    assert_step_up(&mut res, &app, "tools admin write", &["admin", "write"]).await;
    assert!(backend.recorded().is_empty());

    let res = post(&app, "scoped", &token(&app, "scoped", "tools admin write"))
        .send_body(batch.clone())
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(backend.recorded()[0].body, batch, "the batch reached the backend byte for byte");
}

#[actix_web::test]
async fn offline_access_is_never_asked_for_in_a_step_up() {
    let backend = TestBackend::start().await;
    let app = scoped_gateway(&backend).await;
    let mut res =
        post(&app, "scoped", &token(&app, "scoped", "offline_access tools")).send_body(DELETE).await.unwrap();
    assert_step_up(&mut res, &app, "tools admin write", &["admin", "write"]).await;
}

#[actix_web::test]
async fn a_token_with_the_scopes_passes_with_headers_or_without() {
    let backend = TestBackend::start().await;
    let app = scoped_gateway(&backend).await;
    let token = token(&app, "scoped", "tools admin write");
    let res = post(&app, "scoped", &token)
        .insert_header(("Mcp-Method", "tools/call"))
        .insert_header(("Mcp-Name", "delete_repo"))
        .send_body(DELETE)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let res = post(&app, "scoped", &token).send_body(DELETE).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // Only `tools`: the echo tool needs nothing more.
    let res = post(&app, "scoped", &self::token(&app, "scoped", "tools")).send_body(ECHO).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let seen: Vec<String> = backend.recorded().into_iter().map(|r| r.body).collect();
    assert_eq!(seen, [DELETE, DELETE, ECHO]);
}

#[actix_web::test]
async fn headers_that_disagree_with_the_body_are_refused() {
    let backend = TestBackend::start().await;
    let app = scoped_gateway(&backend).await;
    // The headers claim the harmless tool, the body calls the dangerous one.
    let mut res = post(&app, "scoped", &token(&app, "scoped", "tools"))
        .insert_header(("Mcp-Method", "tools/call"))
        .insert_header(("Mcp-Name", "echo"))
        .send_body(DELETE)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(body_json(&mut res).await["error"], "invalid_request");
    assert!(backend.recorded().is_empty());
}

#[actix_web::test]
async fn unreadable_and_oversized_bodies_are_refused_not_forwarded() {
    let backend = TestBackend::start().await;
    let app = scoped_gateway(&backend).await;
    let token = token(&app, "scoped", "tools admin write");
    let res = post(&app, "scoped", &token).send_body("{\"method\":\"tools/call\",").await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let huge = format!("{{\"method\":\"tools/list\",\"pad\":\"{}\"}}", "x".repeat(2 << 20));
    let res = post(&app, "scoped", &token).send_body(huge).await.unwrap();
    assert_eq!(res.status().as_u16(), 413);
    // Chunked, so the gateway only finds out while reading.
    let chunks = (0..40).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 * 1024])));
    let res = post(&app, "scoped", &token).send_stream(futures_util::stream::iter(chunks)).await.unwrap();
    assert_eq!(res.status().as_u16(), 413);
    assert!(backend.recorded().is_empty());
}

#[actix_web::test]
async fn only_services_with_tool_scopes_have_their_body_read() {
    let backend = TestBackend::start().await;
    let app = scoped_gateway(&backend).await;
    let chunks = || {
        futures_util::stream::iter(
            [r#"{"jsonrpc":"2.0","id":1,"#, r#""method":"tools/call","#, r#""params":{"name":"echo"}}"#]
                .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from_static(c.as_bytes()))),
        )
    };
    // Without tool_scopes: streamed as sent (still chunked at the backend), no scope needed.
    let res = post(&app, "plain", &token(&app, "plain", "")).send_stream(chunks()).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // With tool_scopes: read whole, then forwarded unchanged with its length.
    let res = post(&app, "scoped", &token(&app, "scoped", "tools")).send_stream(chunks()).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let seen = backend.recorded();
    assert_eq!(seen[0].transfer_encoding.as_deref(), Some("chunked"));
    assert_eq!(seen[0].content_length, None);
    assert_eq!(seen[1].transfer_encoding, None);
    assert_eq!(seen[1].content_length.as_deref(), Some(ECHO.len().to_string().as_str()));
    assert_eq!(seen[0].body, seen[1].body);
}

#[actix_web::test]
async fn responses_of_a_scoped_service_still_stream() {
    let backend = TestBackend::start().await;
    let url = backend.url("/sse");
    let app = gateway(|s| {
        let mut svc = service(url);
        svc.tool_scopes = BTreeMap::from([("tools/call".to_owned(), vec!["tools".to_owned()])]);
        s.mcp_services.insert("scoped".into(), svc);
    })
    .await;
    let mut res = app
        .client()
        .post(app.url("/scoped/mcp?n=3&delay_ms=800"))
        .insert_header(("Authorization", format!("Bearer {}", token(&app, "scoped", "tools"))))
        .send_body(ECHO)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let first = res.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"n\":0"));
    assert!(backend.events_sent() < 3, "the first event waited for the last");
    // A GET (the server's stream) has no body to read and passes.
    let res = app
        .client()
        .get(app.url("/scoped/mcp?n=1&delay_ms=0"))
        .insert_header(("Authorization", format!("Bearer {}", token(&app, "scoped", ""))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

/// The scope a `WWW-Authenticate` challenge names.
fn challenged_scope(challenge: &str) -> String {
    let start = challenge.find("scope=\"").expect("scope in challenge") + "scope=\"".len();
    let end = challenge[start..].find('"').expect("closing quote");
    challenge[start..start + end].to_owned()
}

#[actix_web::test]
async fn a_client_steps_up_by_asking_for_the_scopes_the_challenge_names() {
    // Arrange: `svc` grants `read` by default; deleting a repo needs `admin` too.
    let backend = TestBackend::start().await;
    let url = backend.url("/record");
    let app = gateway(|s| {
        let mut svc = service(url);
        svc.scopes = vec!["read".to_owned()];
        svc.tool_scopes = BTreeMap::from([("delete_repo".to_owned(), vec!["admin".to_owned()])]);
        s.mcp_services.insert("svc".into(), svc);
    })
    .await;
    let mut browser = Browser::new();
    let (client, first) = app.tokens_for(&mut browser, "alice@example.com").await;
    assert_eq!(first.body["scope"], "read", "no scope asked: the base scopes only");
    let mut refused = post(&app, "svc", &first.access_token).send_body(DELETE).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let scope = challenged_scope(&header(&refused, "www-authenticate").unwrap());
    assert_eq!(body_json(&mut refused).await["missing_scopes"], serde_json::json!(["admin"]));

    // Act: authorize again with the challenge's scope.
    let request = AuthRequest::new(&app, &client, Some("svc")).with("scope", Some(&scope));
    let back = app.approve_and_login(&mut browser, &request, "alice@example.com").await;
    let code = back.location_query()["code"].clone();
    let reply = app.exchange_code(&client, &code, &request.pkce.verifier, &[]).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "read admin");
    let stepped_up = reply.json()["access_token"].as_str().unwrap().to_owned();
    let res = post(&app, "svc", &stepped_up).send_body(DELETE).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(backend.recorded().len(), 1, "only the stepped-up call reached the backend");
    // Scopes nobody configured are still refused.
    let unknown = AuthRequest::new(&app, &client, Some("svc")).with("scope", Some("read root"));
    let answer = app.authorize(&mut browser, &unknown).await;
    assert_eq!(answer.location_query()["error"], "invalid_scope");
}
