//! Dynamic client registration (checklist B12, B3).

use serde_json::json;

use crate::flow::{spawn_with_service, AuthRequest, Browser};

#[actix_web::test]
async fn json_registration_returns_201_with_metadata_and_no_secret_for_public_clients() {
    // Arrange
    let app = spawn_with_service().await;
    let body = json!({
        "client_name": "My MCP Client",
        "redirect_uris": ["http://127.0.0.1/cb", "https://app.example/cb"],
        "application_type": "native",
    });

    // Act
    let reply = app.register_json(&body).await;

    // Assert
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let c = reply.json();
    assert!(c["client_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(c["client_id_issued_at"].as_i64().is_some());
    assert_eq!(c["redirect_uris"], json!(["http://127.0.0.1/cb", "https://app.example/cb"]));
    assert_eq!(c["token_endpoint_auth_method"], "none");
    assert_eq!(c["client_name"], "My MCP Client");
    assert_eq!(c["application_type"], "native");
    assert!(c["grant_types"].as_array().unwrap().iter().any(|g| g == "authorization_code"));
    assert_eq!(c["response_types"], json!(["code"]));
    assert!(c.get("client_secret").is_none());
}

#[actix_web::test]
async fn form_registration_as_the_older_gateway_documented() {
    let app = spawn_with_service().await;

    let reply = app
        .post_form(
            "/oauth/register",
            &[
                ("client_name", "Form Client"),
                ("redirect_uris", "http://localhost:8080/callback"),
                ("redirect_uris", "http://127.0.0.1/a http://127.0.0.1/b"),
            ],
            None,
        )
        .await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    let c = reply.json();
    assert_eq!(c["client_name"], "Form Client");
    assert_eq!(
        c["redirect_uris"],
        json!(["http://localhost:8080/callback", "http://127.0.0.1/a", "http://127.0.0.1/b"])
    );
}

#[actix_web::test]
async fn secret_clients_get_a_secret_once() {
    let app = spawn_with_service().await;

    let reply = app
        .register_json(&json!({
            "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    let c = reply.json();
    assert!(c["client_secret"].as_str().is_some_and(|s| s.len() >= 32));
    assert_eq!(c["client_secret_expires_at"], 0);
    assert_eq!(c["token_endpoint_auth_method"], "client_secret_basic");
}

#[actix_web::test]
async fn bad_redirect_uri_is_invalid_redirect_uri() {
    let app = spawn_with_service().await;

    for uri in ["http://evil.example/cb", "javascript:alert(1)", "not a uri"] {
        let reply = app.register_json(&json!({ "redirect_uris": [uri] })).await;
        assert_eq!(reply.status, 400, "{uri}");
        assert_eq!(reply.json()["error"], "invalid_redirect_uri", "{uri}");
    }
}

#[actix_web::test]
async fn bad_metadata_is_invalid_client_metadata() {
    let app = spawn_with_service().await;

    let bad_method = app
        .register_json(&json!({ "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt" }))
        .await;
    let wrong_shape = app.register_json(&json!({ "redirect_uris": "https://a.example/cb" })).await;

    assert_eq!(bad_method.status, 400);
    assert_eq!(bad_method.json()["error"], "invalid_client_metadata");
    assert_eq!(wrong_shape.status, 400);
    assert_eq!(wrong_shape.json()["error"], "invalid_client_metadata");
}

#[actix_web::test]
async fn garbage_bodies_are_400_json_not_panics() {
    let app = spawn_with_service().await;

    let broken_json = app.post_raw("/oauth/register", "application/json", b"{\"redirect_uris\": [").await;
    let plain_text = app.post_raw("/oauth/register", "text/plain", b"hello").await;
    let binary = app.post_raw("/oauth/register", "application/json", b"\xff\xfe\x00\x01").await;

    for reply in [broken_json, plain_text, binary] {
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_request");
    }
}

#[actix_web::test]
async fn root_register_alias_works() {
    let app = spawn_with_service().await;

    let res = app
        .client()
        .post(app.url("/register"))
        .send_json(&json!({ "redirect_uris": ["http://127.0.0.1/cb"] }))
        .await
        .unwrap();

    assert_eq!(res.status().as_u16(), 201);
}

#[actix_web::test]
async fn application_type_web_and_native_are_echoed_and_others_refused() {
    let app = spawn_with_service().await;

    for kind in ["web", "native"] {
        let reply = app
            .register_json(&json!({ "redirect_uris": ["https://app.example/cb"], "application_type": kind }))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert_eq!(reply.json()["application_type"], kind);
    }
    let bad = app
        .register_json(&json!({ "redirect_uris": ["https://app.example/cb"], "application_type": "desktop" }))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "invalid_client_metadata");
}

/// Redirect URIs real MCP clients register, each with the one they then send: the code comes
/// back to it with `iss`, and the token endpoint accepts it.
#[actix_web::test]
async fn redirect_uris_real_clients_use_register_and_complete_the_flow() {
    let app = spawn_with_service().await;
    let cases = [
        // VS Code and Claude Code: a loopback port picked per run.
        ("http://127.0.0.1/callback", "http://127.0.0.1:33418/callback"),
        ("http://127.0.0.1:33418/callback", "http://127.0.0.1/callback"),
        ("http://127.0.0.1:33418/callback", "http://127.0.0.1:40001/callback"),
        ("http://localhost:6274/oauth/callback", "http://localhost:6275/oauth/callback"),
        ("https://vscode.dev/redirect", "https://vscode.dev/redirect"),
        ("https://claude.ai/api/mcp/auth_callback", "https://claude.ai/api/mcp/auth_callback"),
        (
            "cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback",
            "cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback",
        ),
        ("claude://oauth/callback", "claude://oauth/callback"),
        ("com.example.app:/oauth2redirect", "com.example.app:/oauth2redirect"),
    ];
    for (registered, sent) in cases {
        let mut client = app.register_client(&[registered]).await;
        client.redirect_uri = sent.to_owned();
        let request = AuthRequest::new(&app, &client, Some("svc"));

        let back = app.approve_and_login(&mut Browser::new(), &request, "rd@example.com").await;

        let location = back.location();
        assert!(location.starts_with(sent), "{registered} → {sent}: back to {location}");
        let q = back.location_query();
        assert_eq!(q["iss"], app.address, "{sent}");
        let token = app.exchange_code(&client, &q["code"], &request.pkce.verifier, &[]).await;
        assert_eq!(token.status, 200, "{sent}: {}", token.body);
    }
}

#[actix_web::test]
async fn http_redirects_off_loopback_and_dangerous_schemes_are_refused() {
    let app = spawn_with_service().await;

    for uri in [
        "http://vscode.dev/redirect",
        "http://192.168.1.10/cb",
        "http://localhost.evil.example/cb",
        "data:text/html,hi",
        "file:///etc/passwd",
        "https://claude.ai/cb#x",
    ] {
        let reply = app.register_json(&json!({ "redirect_uris": [uri] })).await;
        assert_eq!(reply.status, 400, "{uri}");
        assert_eq!(reply.json()["error"], "invalid_redirect_uri", "{uri}");
    }
}
