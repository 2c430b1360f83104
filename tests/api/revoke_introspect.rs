//! RFC 7009 revocation and RFC 7662 introspection (checklist B17).

use crate::flow::{spawn_with_service, Browser, TestClient, REDIRECT};

#[actix_web::test]
async fn introspection_describes_an_active_token() {
    let app = spawn_with_service().await;
    let (client, tokens) = app.tokens_for(&mut Browser::new(), "a@example.com").await;

    let reply = app.introspect(&client, &tokens.access_token).await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["aud"], format!("{}/svc/mcp", app.address));
}

#[actix_web::test]
async fn revoking_an_access_token_makes_it_inactive() {
    let app = spawn_with_service().await;
    let (client, tokens) = app.tokens_for(&mut Browser::new(), "a@example.com").await;

    let revoked = app.revoke(&client, &tokens.access_token).await;

    assert_eq!(revoked.status, 200);
    assert_eq!(
        app.introspect(&client, &tokens.access_token).await.json(),
        serde_json::json!({ "active": false })
    );
}

#[actix_web::test]
async fn revoking_a_refresh_token_ends_its_family() {
    let app = spawn_with_service().await;
    let (client, tokens) = app.tokens_for(&mut Browser::new(), "a@example.com").await;

    let revoked = app.revoke(&client, &tokens.refresh_token).await;

    assert_eq!(revoked.status, 200);
    assert_eq!(app.refresh(&client, &tokens.refresh_token, &[]).await.json()["error"], "invalid_grant");
}

#[actix_web::test]
async fn unknown_tokens_revoke_fine_and_introspect_inactive() {
    let app = spawn_with_service().await;
    let client = app.register_client(&[REDIRECT]).await;

    let revoked = app.revoke(&client, "no-such-token").await;
    let introspected = app.introspect(&client, "eyJ.garbage.x").await;

    assert_eq!(revoked.status, 200);
    assert_eq!(introspected.status, 200);
    assert_eq!(introspected.json(), serde_json::json!({ "active": false }));
}

#[actix_web::test]
async fn introspection_requires_client_authentication() {
    let app = spawn_with_service().await;
    let (_, tokens) = app.tokens_for(&mut Browser::new(), "a@example.com").await;

    let anonymous =
        app.post_form("/oauth/introspect", &[("token", tokens.access_token.as_str())], None).await;
    let unknown = app
        .post_form(
            "/oauth/introspect",
            &[("token", tokens.access_token.as_str()), ("client_id", "nobody")],
            None,
        )
        .await;

    for reply in [anonymous, unknown] {
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_client");
        assert!(reply.header("www-authenticate").is_some());
    }
}

#[actix_web::test]
async fn another_clients_token_looks_inactive() {
    let app = spawn_with_service().await;
    let (_, tokens) = app.tokens_for(&mut Browser::new(), "a@example.com").await;
    let other = app.register_client(&[REDIRECT]).await;

    let reply = app.introspect(&other, &tokens.access_token).await;

    assert_eq!(reply.json(), serde_json::json!({ "active": false }));
}

#[actix_web::test]
async fn confidential_clients_authenticate_with_basic_or_post() {
    // Arrange
    let app = spawn_with_service().await;
    let reg = app
        .register_json(&serde_json::json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await
        .json();
    let client = TestClient {
        client_id: reg["client_id"].as_str().unwrap().to_owned(),
        client_secret: reg["client_secret"].as_str().map(str::to_owned),
        redirect_uri: REDIRECT.into(),
    };
    let secret = client.client_secret.clone().unwrap();

    // Act
    let basic =
        app.post_form("/oauth/introspect", &[("token", "x")], Some((&client.client_id, &secret))).await;
    let post = app
        .post_form(
            "/oauth/introspect",
            &[("token", "x"), ("client_id", &client.client_id), ("client_secret", &secret)],
            None,
        )
        .await;
    let wrong =
        app.post_form("/oauth/introspect", &[("token", "x")], Some((&client.client_id, "wrong"))).await;
    let none = app.introspect(&client, "x").await;

    // Assert
    assert_eq!(basic.status, 200, "{}", basic.body);
    assert_eq!(post.status, 200, "{}", post.body);
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("www-authenticate"), Some("Basic realm=\"mcp-gateway\""));
    assert_eq!(none.status, 401, "a secret client must send its secret");
}

#[actix_web::test]
async fn revoke_requires_a_known_client_and_a_token() {
    let app = spawn_with_service().await;
    let client = app.register_client(&[REDIRECT]).await;

    let no_client = app.post_form("/oauth/revoke", &[("token", "x")], None).await;
    let no_token = app.post_form("/oauth/revoke", &[("client_id", client.client_id.as_str())], None).await;

    assert_eq!(no_client.status, 401);
    assert_eq!(no_token.status, 400);
    assert_eq!(no_token.json()["error"], "invalid_request");
}
