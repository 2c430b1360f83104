//! The whole flow and the token endpoint (checklist B6, B7, B9, B10, B11).

use crate::flow::{add_service, spawn_with_service, AuthRequest, Browser, ConsentForm, REDIRECT};
use crate::helpers::spawn_app_with;

#[actix_web::test]
async fn full_flow_issues_a_token_for_the_service() {
    // Arrange
    let app = spawn_with_service().await;
    let issuer = app.get("/.well-known/oauth-authorization-server").await.json()["issuer"].clone();
    let mut browser = Browser::new();
    let client = app.register_client(&[REDIRECT]).await;
    let request = AuthRequest::new(&app, &client, Some("svc")).with("scope", Some("read"));

    // Act
    let back = app.approve_and_login(&mut browser, &request, "alice@example.com").await;
    let q = back.location_query();
    let reply = app.exchange_code(&client, &q["code"], &request.pkce.verifier, &[]).await;

    // Assert
    assert!(back.location().starts_with(REDIRECT));
    assert_eq!(q["state"], "st-123 /+?");
    assert_eq!(serde_json::json!(q["iss"]), issuer, "iss equals the metadata issuer (A4, B6)");
    assert!(browser.has("mcpgw_session"), "session cookie set");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    assert_eq!(body["scope"], "read");
    assert!(body["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));
    let resource = format!("{}/svc/mcp", app.address);
    let claims = app
        .state
        .keys
        .verify(body["access_token"].as_str().unwrap(), &resource, app.state.clock.now())
        .expect("token verifies for the service");
    assert_eq!(claims.aud, resource);
    assert_eq!(claims.iss, app.address);
    assert!(claims.sub.starts_with("dev_"));
    assert_eq!(claims.client_id, client.client_id);
    assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
}

#[actix_web::test]
async fn the_same_browser_user_and_client_skip_consent_the_second_time() {
    // Arrange
    let app = spawn_with_service().await;
    let mut browser = Browser::new();
    let (client, _, _) = app.code_for(&mut browser, "alice@example.com").await;
    let other_client = app.register_client(&[REDIRECT]).await;

    // Act
    let again = app.authorize(&mut browser, &AuthRequest::new(&app, &client, Some("svc"))).await;
    let other = app.authorize(&mut browser, &AuthRequest::new(&app, &other_client, Some("svc"))).await;

    // Assert
    assert!(again.is_redirect(), "consent remembered: {}", again.body);
    assert!(again.location().contains("/oauth/dev/login"));
    let code = app.login(&mut browser, &again.location(), "Alice", "alice@example.com").await;
    assert!(code.location_query().contains_key("code"));
    assert_eq!(other.status, 200, "another client asks again");
    ConsentForm::from_page(&other);
}

#[actix_web::test]
async fn remembered_consent_of_another_user_does_not_issue_a_code() {
    // Arrange: alice approved this client in this browser; bob logs in on it next.
    let app = spawn_with_service().await;
    let mut browser = Browser::new();
    let (client, _, _) = app.code_for(&mut browser, "alice@example.com").await;
    let request = AuthRequest::new(&app, &client, Some("svc"));
    let skipped = app.authorize(&mut browser, &request).await;

    // Act
    let as_bob = app.login(&mut browser, &skipped.location(), "Bob", "bob@example.com").await;

    // Assert: bob sees the consent page; approving it sends him through login again.
    assert_eq!(as_bob.status, 200, "no code for bob: {:?}", as_bob.header("location"));
    let form = ConsentForm::from_page(&as_bob);
    let approved = app.consent(&mut browser, &form, "approve").await;
    let back = app.login(&mut browser, &approved.location(), "Bob", "bob@example.com").await;
    let code = back.location_query()["code"].clone();
    let tokens = app.exchange_code(&client, &code, &request.pkce.verifier, &[]).await.json();
    let claims = app
        .state
        .keys
        .verify(
            tokens["access_token"].as_str().unwrap(),
            &format!("{}/svc/mcp", app.address),
            app.state.clock.now(),
        )
        .unwrap();
    assert_eq!(claims.email.as_deref(), Some("bob@example.com"));
}

#[actix_web::test]
async fn wrong_pkce_verifier_is_invalid_grant() {
    let app = spawn_with_service().await;
    let (client, _, code) = app.code_for(&mut Browser::new(), "a@example.com").await;

    let reply = app.exchange_code(&client, &code, &crate::flow::Pkce::new().verifier, &[]).await;

    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "invalid_grant");
}

#[actix_web::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    // Arrange
    let app = spawn_with_service().await;
    let (client, request, code) = app.code_for(&mut Browser::new(), "a@example.com").await;
    let first = app.exchange_code(&client, &code, &request.pkce.verifier, &[]).await.json();
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(app.introspect(&client, access).await.json()["active"], true);

    // Act
    let replay = app.exchange_code(&client, &code, &request.pkce.verifier, &[]).await;

    // Assert
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert_eq!(app.introspect(&client, access).await.json()["active"], false, "first access token revoked");
    let refresh = app.refresh(&client, first["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(refresh.json()["error"], "invalid_grant", "its refresh token too");
}

#[actix_web::test]
async fn redirect_uri_must_match_the_authorization_request() {
    let app = spawn_with_service().await;
    let (client, request, code) = app.code_for(&mut Browser::new(), "a@example.com").await;

    let reply = app
        .exchange_code(&client, &code, &request.pkce.verifier, &[("redirect_uri", "http://127.0.0.1/other")])
        .await;

    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "invalid_grant");
}

#[actix_web::test]
async fn code_of_another_client_is_invalid_grant() {
    let app = spawn_with_service().await;
    let (_, request, code) = app.code_for(&mut Browser::new(), "a@example.com").await;
    let thief = app.register_client(&[REDIRECT]).await;

    let reply = app.exchange_code(&thief, &code, &request.pkce.verifier, &[]).await;

    assert_eq!(reply.json()["error"], "invalid_grant");
}

#[actix_web::test]
async fn expired_code_is_invalid_grant() {
    let app = spawn_with_service().await;
    let (client, request, code) = app.code_for(&mut Browser::new(), "a@example.com").await;
    app.state.clock.advance(app.settings.tokens.code_ttl as i64 + 5);

    let reply = app.exchange_code(&client, &code, &request.pkce.verifier, &[]).await;

    assert_eq!(reply.json()["error"], "invalid_grant");
}

#[actix_web::test]
async fn token_resource_must_be_the_authorized_one_up_to_normalization() {
    // Arrange
    let app = spawn_app_with(|s| {
        add_service(s, "svc", &[]);
        add_service(s, "b", &[]);
    })
    .await;
    let (client, request, code) = app.code_for(&mut Browser::new(), "a@example.com").await;
    let (client2, request2, code2) = app.code_for(&mut Browser::new(), "a@example.com").await;
    let other = format!("{}/b/mcp", app.address);
    let same = format!("{}/svc/mcp/", app.address.replace("http://", "HTTP://"));

    // Act
    let mismatch = app.exchange_code(&client, &code, &request.pkce.verifier, &[("resource", &other)]).await;
    let tolerated =
        app.exchange_code(&client2, &code2, &request2.pkce.verifier, &[("resource", &same)]).await;

    // Assert
    assert_eq!(mismatch.status, 400);
    assert_eq!(mismatch.json()["error"], "invalid_target");
    assert_eq!(tolerated.status, 200, "{}", tolerated.body);
}

#[actix_web::test]
async fn refresh_rotates_and_reuse_after_the_grace_window_kills_the_family() {
    // Arrange
    let app = spawn_with_service().await;
    let (client, first) = app.tokens_for(&mut Browser::new(), "a@example.com").await;

    // Act
    let rotated = app
        .refresh(&client, &first.refresh_token, &[("resource", &format!("{}/svc/mcp", app.address))])
        .await;
    app.state.clock.advance(app.settings.tokens.refresh_grace as i64 + 5);
    let reuse = app.refresh(&client, &first.refresh_token, &[]).await;

    // Assert
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.header("cache-control"), Some("no-store"));
    let second = rotated.json();
    let new_refresh = second["refresh_token"].as_str().unwrap();
    assert_ne!(new_refresh, first.refresh_token);
    assert_eq!(reuse.status, 400);
    assert_eq!(reuse.json()["error"], "invalid_grant");
    let after = app.refresh(&client, new_refresh, &[]).await;
    assert_eq!(after.json()["error"], "invalid_grant", "the family is dead");
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(app.introspect(&client, access).await.json()["active"], false);
}

#[actix_web::test]
async fn refresh_for_another_resource_is_invalid_target() {
    let app = spawn_app_with(|s| {
        add_service(s, "svc", &[]);
        add_service(s, "b", &[]);
    })
    .await;
    let (client, first) = app.tokens_for(&mut Browser::new(), "a@example.com").await;

    let reply =
        app.refresh(&client, &first.refresh_token, &[("resource", &format!("{}/b/mcp", app.address))]).await;

    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "invalid_target");
}

#[actix_web::test]
async fn grant_type_errors() {
    let app = spawn_with_service().await;
    let client = app.register_client(&[REDIRECT]).await;
    let id = client.client_id.as_str();

    let unsupported =
        app.post_form("/oauth/token", &[("grant_type", "password"), ("client_id", id)], None).await;
    let missing = app.post_form("/oauth/token", &[("client_id", id)], None).await;
    let no_code =
        app.post_form("/oauth/token", &[("grant_type", "authorization_code"), ("client_id", id)], None).await;
    let no_client = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "authorization_code"), ("code", "x"), ("code_verifier", "y")],
            None,
        )
        .await;

    assert_eq!(unsupported.status, 400);
    assert_eq!(unsupported.json()["error"], "unsupported_grant_type");
    assert_eq!(missing.json()["error"], "invalid_request");
    assert_eq!(no_code.json()["error"], "invalid_request");
    assert_eq!(no_client.status, 401);
    assert_eq!(no_client.json()["error"], "invalid_client");
}

#[actix_web::test]
async fn malformed_token_requests_are_invalid_request_json() {
    let app = spawn_with_service().await;

    let json_body =
        app.post_raw("/oauth/token", "application/json", b"{\"grant_type\":\"authorization_code\"}").await;
    let repeated = app
        .post_raw(
            "/oauth/token",
            "application/x-www-form-urlencoded",
            b"grant_type=refresh_token&grant_type=x",
        )
        .await;
    let garbage =
        app.post_raw("/oauth/token", "application/x-www-form-urlencoded", b"\xff\xfe%%%=&&==").await;

    for reply in [json_body, repeated, garbage] {
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_request", "{}", reply.body);
    }
}

#[actix_web::test]
async fn root_token_alias_works() {
    let app = spawn_with_service().await;

    let reply = app.post_form("/token", &[("grant_type", "password")], None).await;

    assert_eq!(reply.json()["error"], "unsupported_grant_type");
}
