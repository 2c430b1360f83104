//! The authorization endpoint and the consent page (checklist B4–B8, B14, B15).

use crate::flow::{add_service, spawn_with_service, AuthRequest, Browser, ConsentForm, TestClient, REDIRECT};
use crate::helpers::{spawn_app_with, TestApp};

/// A client this browser's person already approved (consent, login, code) for `service`:
/// errors of its later requests are redirected back to it (RFC 9700 §4.11.2; a client nobody
/// approved gets an error page instead, see `attacks_browser`).
async fn approved_client(app: &TestApp, service: &str) -> (TestClient, Browser) {
    let mut browser = Browser::new();
    let client = app.register_client(&[REDIRECT]).await;
    let request = AuthRequest::new(app, &client, Some(service));
    let back = app.approve_and_login(&mut browser, &request, "alice@example.com").await;
    assert!(back.location_query().contains_key("code"), "approved: {}", back.location());
    (client, browser)
}

#[actix_web::test]
async fn unregistered_redirect_gets_an_error_page_not_a_redirect() {
    // Arrange
    let app = spawn_with_service().await;
    let client = app.register_client(&[REDIRECT]).await;
    let request =
        AuthRequest::new(&app, &client, Some("svc")).with("redirect_uri", Some("https://evil.example/cb"));

    // Act
    let reply = app.authorize(&mut Browser::new(), &request).await;

    // Assert
    assert_eq!(reply.status, 400);
    assert!(reply.header("location").is_none());
    assert!(reply.header("content-type").unwrap().starts_with("text/html"));
    assert!(!reply.body.contains("evil.example"));
}

#[actix_web::test]
async fn unknown_or_missing_client_gets_an_error_page() {
    let app = spawn_with_service().await;
    let client = app.register_client(&[REDIRECT]).await;

    for request in [
        AuthRequest::new(&app, &client, Some("svc")).with("client_id", Some("no-such-client")),
        AuthRequest::new(&app, &client, Some("svc")).with("client_id", None),
    ] {
        let reply = app.authorize(&mut Browser::new(), &request).await;
        assert_eq!(reply.status, 400);
        assert!(reply.header("location").is_none());
    }
}

#[actix_web::test]
async fn repeated_parameters_get_an_error_page() {
    let app = spawn_with_service().await;
    let client = app.register_client(&[REDIRECT]).await;
    let query = format!("/oauth/authorize?client_id={0}&client_id={0}&response_type=code", client.client_id);

    let reply = app.browse(&mut Browser::new(), &query).await;

    assert_eq!(reply.status, 400);
    assert!(reply.header("location").is_none());
}

#[actix_web::test]
async fn loopback_redirect_matches_on_any_port() {
    let app = spawn_with_service().await;
    let client = app.register_client(&["http://127.0.0.1/callback"]).await;
    let request = AuthRequest::new(&app, &client, Some("svc"))
        .with("redirect_uri", Some("http://127.0.0.1:51004/callback"));

    let reply = app.authorize(&mut Browser::new(), &request).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    ConsentForm::from_page(&reply);
}

#[actix_web::test]
async fn the_only_registered_redirect_is_used_when_none_is_sent() {
    let app = spawn_with_service().await;
    let (client, mut browser) = approved_client(&app, "svc").await;
    let request =
        AuthRequest::new(&app, &client, Some("svc")).with("redirect_uri", None).with("code_challenge", None);

    let reply = app.authorize(&mut browser, &request).await;

    assert!(reply.location().starts_with(REDIRECT), "{}", reply.location());
}

/// Asserts an error redirect to the client with `error`, the state and the issuer.
fn assert_error_redirect(reply: &crate::flow::Reply, error: &str, issuer: &str) {
    assert_eq!(reply.status, 302, "{}", reply.body);
    assert!(reply.location().starts_with(REDIRECT), "{}", reply.location());
    let q = reply.location_query();
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{q:?}");
    assert!(q.contains_key("error_description"));
    assert_eq!(q.get("state").map(String::as_str), Some("st-123 /+?"), "state echoed unchanged");
    assert_eq!(q.get("iss").map(String::as_str), Some(issuer), "iss in error responses (B6)");
}

#[actix_web::test]
async fn pkce_is_required_with_s256() {
    let app = spawn_with_service().await;
    let (client, mut browser) = approved_client(&app, "svc").await;

    for request in [
        AuthRequest::new(&app, &client, Some("svc")).with("code_challenge", None),
        AuthRequest::new(&app, &client, Some("svc")).with("code_challenge_method", Some("plain")),
        AuthRequest::new(&app, &client, Some("svc")).with("code_challenge_method", None),
        AuthRequest::new(&app, &client, Some("svc")).with("code_challenge", Some("short")),
    ] {
        let reply = app.authorize(&mut browser, &request).await;
        assert_error_redirect(&reply, "invalid_request", &app.address);
    }
}

#[actix_web::test]
async fn other_response_types_are_unsupported() {
    let app = spawn_with_service().await;
    let (client, mut browser) = approved_client(&app, "svc").await;
    let request = AuthRequest::new(&app, &client, Some("svc")).with("response_type", Some("token"));

    let reply = app.authorize(&mut browser, &request).await;

    assert_error_redirect(&reply, "unsupported_response_type", &app.address);
}

#[actix_web::test]
async fn unknown_resource_is_invalid_target() {
    let app = spawn_with_service().await;
    let (client, mut browser) = approved_client(&app, "svc").await;
    let other = format!("{}/nope/mcp", app.address);
    let request = AuthRequest::new(&app, &client, Some("svc")).with("resource", Some(&other));

    let reply = app.authorize(&mut browser, &request).await;

    assert_error_redirect(&reply, "invalid_target", &app.address);
}

#[actix_web::test]
async fn unknown_scope_is_invalid_scope() {
    let app = spawn_with_service().await;
    let (client, mut browser) = approved_client(&app, "svc").await;
    let request = AuthRequest::new(&app, &client, Some("svc")).with("scope", Some("read admin"));

    let reply = app.authorize(&mut browser, &request).await;

    assert_error_redirect(&reply, "invalid_scope", &app.address);
}

#[actix_web::test]
async fn missing_resource_binds_the_only_service() {
    let app = spawn_with_service().await;
    let client = app.register_client(&[REDIRECT]).await;
    let request = AuthRequest::new(&app, &client, None);

    let reply = app.authorize(&mut Browser::new(), &request).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains(&format!("{}/svc/mcp", app.address)));
}

#[actix_web::test]
async fn missing_resource_with_two_services_lets_the_person_pick_one() {
    // Arrange: this browser already approved the client for `a`; the next request names none.
    let app = spawn_app_with(|s| {
        add_service(s, "a", &[]);
        add_service(s, "b", &["read"]);
    })
    .await;
    let (client, mut browser) = approved_client(&app, "a").await;
    let request = AuthRequest::new(&app, &client, None);

    // Act
    let page = app.authorize(&mut browser, &request).await;

    // Assert: no silent reuse of the consent for `a`, but a choice of both services.
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("name=\"service\" value=\"a\""), "{}", page.body);
    assert!(page.body.contains("name=\"service\" value=\"b\""));
    assert!(page.body.contains(&app.settings.resource_uri("b")));
    let form = ConsentForm::from_page(&page);
    let fields = [
        ("pending_id", form.pending_id.as_str()),
        ("csrf", form.csrf.as_str()),
        ("action", "approve"),
        ("service", "b"),
    ];
    let approved = app.post_form_as(&mut browser, "/oauth/consent", &fields).await;
    assert!(approved.is_redirect(), "{} {}", approved.status, approved.body);
    let back = app.login(&mut browser, &approved.location(), "Alice", "alice@example.com").await;
    let code = back.location_query().get("code").cloned().unwrap_or_else(|| panic!("{}", back.location()));
    let reply = app.exchange_code(&client, &code, &request.pkce.verifier, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let introspected = app.introspect(&client, &token).await.json();
    assert_eq!(introspected["aud"], app.settings.resource_uri("b"), "bound to the pick only");
    assert_eq!(introspected["scope"], "read", "the picked service's base scopes");
}

#[actix_web::test]
async fn a_service_pick_that_is_missing_or_unknown_binds_nothing() {
    let app = spawn_app_with(|s| {
        add_service(s, "a", &[]);
        add_service(s, "b", &[]);
    })
    .await;
    let (client, mut browser) = approved_client(&app, "a").await;
    let request = AuthRequest::new(&app, &client, None);
    let form = ConsentForm::from_page(&app.authorize(&mut browser, &request).await);
    let post = |service: Option<&'static str>| {
        let mut fields = vec![
            ("pending_id", form.pending_id.clone()),
            ("csrf", form.csrf.clone()),
            ("action", "approve".to_owned()),
        ];
        if let Some(service) = service {
            fields.push(("service", service.to_owned()));
        }
        fields
    };

    let none = post(None);
    let none: Vec<(&str, &str)> = none.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let missing = app.post_form_as(&mut browser, "/oauth/consent", &none).await;
    let unknown = post(Some("c"));
    let unknown: Vec<(&str, &str)> = unknown.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let wrong = app.post_form_as(&mut browser, "/oauth/consent", &unknown).await;

    assert_eq!(missing.status, 400, "{}", missing.body);
    assert!(missing.body.contains("Choose the service"));
    assert_error_redirect(&wrong, "invalid_target", &app.address);
}

#[actix_web::test]
async fn services_without_auth_can_still_be_authorized() {
    let app = spawn_app_with(|s| {
        add_service(s, "open", &[]);
        s.mcp_services.get_mut("open").unwrap().auth_required = false;
    })
    .await;
    let client = app.register_client(&[REDIRECT]).await;

    let reply = app.authorize(&mut Browser::new(), &AuthRequest::new(&app, &client, Some("open"))).await;

    assert_eq!(reply.status, 200);
}

#[actix_web::test]
async fn consent_page_cannot_be_framed_and_names_client_host_service_and_scopes() {
    // Arrange
    let app = spawn_with_service().await;
    let reply = app
        .register_json(&serde_json::json!({
            "client_name": "<b>Evil</b> & Co",
            "redirect_uris": ["https://app.example/oauth/cb"],
        }))
        .await;
    let client = crate::flow::TestClient {
        client_id: reply.json()["client_id"].as_str().unwrap().to_owned(),
        client_secret: None,
        redirect_uri: "https://app.example/oauth/cb".into(),
    };
    let request = AuthRequest::new(&app, &client, Some("svc")).with("scope", Some("read"));
    let mut browser = Browser::new();

    // Act
    let page = app.authorize(&mut browser, &request).await;

    // Assert
    assert_eq!(page.status, 200);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(page.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
    assert!(page.body.contains("&lt;b&gt;Evil&lt;/b&gt; &amp; Co"), "client name escaped");
    assert!(!page.body.contains("<b>Evil"));
    assert!(page.body.contains(&client.client_id));
    assert!(page.body.contains("app.example"));
    assert!(page.body.contains("svc service"));
    assert!(page.body.contains("read") && !page.body.contains("write"));
    assert!(page.body.contains("Use svc service as you"), "says what approving grants");
    assert!(!page.body.contains("(none)"));
    assert!(!page.body.contains("runs on this computer"), "no loopback warning for https hosts");
    assert!(browser.has("mcpgw_consent"), "binding cookie set");
    let set_cookie = page.header("set-cookie").unwrap();
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Path=/")
    );
}

#[actix_web::test]
async fn consent_page_warns_about_localhost_and_unnamed_clients() {
    let app = spawn_with_service().await;
    let reply =
        app.register_json(&serde_json::json!({ "redirect_uris": ["http://localhost:3000/cb"] })).await;
    let client = crate::flow::TestClient {
        client_id: reply.json()["client_id"].as_str().unwrap().to_owned(),
        client_secret: None,
        redirect_uri: "http://localhost:3000/cb".into(),
    };

    let page = app.authorize(&mut Browser::new(), &AuthRequest::new(&app, &client, Some("svc"))).await;

    assert_eq!(page.status, 200);
    assert!(page.body.contains("runs on this computer"));
    assert!(page.body.contains("localhost"));
    assert!(page.body.contains("Unnamed client"));
}

#[actix_web::test]
async fn consent_with_a_bad_csrf_token_or_from_another_browser_is_refused() {
    // Arrange
    let app = spawn_with_service().await;
    let client = app.register_client(&[REDIRECT]).await;
    let mut browser = Browser::new();
    let page = app.authorize(&mut browser, &AuthRequest::new(&app, &client, Some("svc"))).await;
    let form = ConsentForm::from_page(&page);
    let forged = ConsentForm { csrf: "A".repeat(43), ..form.clone() };

    // Act
    let bad_token = app.consent(&mut browser, &forged, "approve").await;
    let other_browser = app.consent(&mut Browser::new(), &form, "approve").await;
    let still_good = app.consent(&mut browser, &form, "approve").await;

    // Assert
    for reply in [&bad_token, &other_browser] {
        assert_eq!(reply.status, 403, "{}", reply.body);
        assert!(reply.header("location").is_none());
    }
    assert!(still_good.is_redirect(), "the real form still works: {}", still_good.body);
    assert!(still_good.location().contains("/oauth/dev/login"));
}

#[actix_web::test]
async fn deny_redirects_access_denied_and_ends_the_request() {
    let app = spawn_with_service().await;
    let client = app.register_client(&[REDIRECT]).await;
    let mut browser = Browser::new();
    let page = app.authorize(&mut browser, &AuthRequest::new(&app, &client, Some("svc"))).await;
    let form = ConsentForm::from_page(&page);

    let denied = app.consent(&mut browser, &form, "deny").await;
    let approve_after = app.consent(&mut browser, &form, "approve").await;

    assert_error_redirect(&denied, "access_denied", &app.address);
    assert_eq!(approve_after.status, 400, "the denied request is gone");
    assert!(approve_after.header("location").is_none());
}

#[actix_web::test]
async fn consent_expires_with_the_login_ttl() {
    let app = spawn_with_service().await;
    let client = app.register_client(&[REDIRECT]).await;
    let mut browser = Browser::new();
    let page = app.authorize(&mut browser, &AuthRequest::new(&app, &client, Some("svc"))).await;
    let form = ConsentForm::from_page(&page);
    app.state.clock.advance(app.settings.tokens.login_ttl as i64 + 5);

    let late = app.consent(&mut browser, &form, "approve").await;

    assert_eq!(late.status, 400);
    assert!(late.header("location").is_none());
}

#[actix_web::test]
async fn root_authorize_alias_works() {
    let app = spawn_with_service().await;
    let (client, mut browser) = approved_client(&app, "svc").await;
    let request = AuthRequest::new(&app, &client, Some("svc")).with("scope", Some("read"));
    let query = app.authorize(&mut Browser::new(), &request).await;

    let alias = app
        .browse(
            &mut browser,
            &format!(
                "/authorize?client_id={}&response_type=token&redirect_uri={}",
                client.client_id, REDIRECT
            ),
        )
        .await;

    assert_eq!(query.status, 200);
    assert_eq!(alias.location_query()["error"], "unsupported_response_type");
}

/// Authorize and approve: the URL of the dev login page, whose `state` is the upstream state.
async fn upstream_url(app: &crate::helpers::TestApp, browser: &mut Browser) -> String {
    let client = app.register_client(&[REDIRECT]).await;
    let page = app.authorize(browser, &AuthRequest::new(app, &client, Some("svc"))).await;
    let approved = app.consent(browser, &ConsentForm::from_page(&page), "approve").await;
    approved.location()
}

fn upstream_state(upstream: &str) -> String {
    let url = url::Url::parse(upstream).unwrap();
    url.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned()
}

#[actix_web::test]
async fn callback_with_an_unknown_state_is_an_error_page() {
    let app = spawn_with_service().await;

    let unknown = app.browse(&mut Browser::new(), "/oauth/callback?code=x&state=nope").await;
    let missing = app.browse(&mut Browser::new(), "/oauth/callback?code=x").await;

    for reply in [unknown, missing] {
        assert_eq!(reply.status, 400);
        assert!(reply.header("location").is_none());
        assert!(reply.header("content-type").unwrap().starts_with("text/html"));
    }
}

#[actix_web::test]
async fn provider_error_redirects_access_denied_and_the_state_is_single_use() {
    // Arrange
    let app = spawn_with_service().await;
    let mut browser = Browser::new();
    let state = upstream_state(&upstream_url(&app, &mut browser).await);
    let path = format!("/oauth/callback?error=access_denied&state={state}");

    // Act
    let first = app.browse(&mut browser, &path).await;
    let again = app.browse(&mut browser, &path).await;

    // Assert
    assert_error_redirect(&first, "access_denied", &app.address);
    assert_eq!(again.status, 400, "state already used");
    assert!(again.header("location").is_none());
}

#[actix_web::test]
async fn a_bad_upstream_code_gives_no_code_to_the_client() {
    let app = spawn_with_service().await;
    let mut browser = Browser::new();
    let state = upstream_state(&upstream_url(&app, &mut browser).await);

    let reply = app.browse(&mut browser, &format!("/oauth/callback?code=forged.code&state={state}")).await;

    assert!(reply.is_redirect());
    let q = reply.location_query();
    assert!(!q.contains_key("code"));
    assert!(matches!(q["error"].as_str(), "access_denied" | "server_error"), "{q:?}");
    assert_eq!(q["iss"], app.address);
}

// ---- Remembered consent covers what was consented to ----------------------------------------

/// `svc` (base scopes `read`, `write`; step-up scope `admin`) and `other` (`read`).
async fn spawn_with_two_services() -> crate::helpers::TestApp {
    spawn_app_with(|s| {
        add_service(s, "svc", &["read", "write"]);
        add_service(s, "other", &["read"]);
        if let Some(svc) = s.mcp_services.get_mut("svc") {
            svc.tool_scopes.insert("delete_repo".into(), vec!["admin".into()]);
        }
    })
    .await
}

/// `request` shows the consent page; approve it and log in as alice: a code comes back.
async fn consent_and_login(app: &crate::helpers::TestApp, browser: &mut Browser, request: &AuthRequest) {
    let page = app.authorize(browser, request).await;
    assert_eq!(page.status, 200, "consent page expected: {:?}", page.header("location"));
    let approved = app.consent(browser, &ConsentForm::from_page(&page), "approve").await;
    let back = app.login(browser, &approved.location(), "Alice", "alice@example.com").await;
    assert!(back.location_query().contains_key("code"), "{}", back.location());
}

/// Whether `request` goes straight to the provider (consent remembered) rather than the page.
async fn skips_consent(app: &crate::helpers::TestApp, browser: &mut Browser, request: &AuthRequest) -> bool {
    let reply = app.authorize(browser, request).await;
    if reply.is_redirect() {
        assert!(reply.location().contains("/oauth/dev/login"), "{}", reply.location());
        return true;
    }
    ConsentForm::from_page(&reply);
    false
}

#[actix_web::test]
async fn remembered_consent_skips_only_the_same_service_and_a_subset_of_its_scopes() {
    // Arrange: alice approved `read write` of svc for this client.
    let app = spawn_with_two_services().await;
    let client = app.register_client(&[REDIRECT]).await;
    let mut browser = Browser::new();
    let svc = |scope: &str| AuthRequest::new(&app, &client, Some("svc")).with("scope", Some(scope));
    consent_and_login(&app, &mut browser, &svc("read write")).await;

    // Act + Assert
    assert!(skips_consent(&app, &mut browser, &svc("read")).await, "a subset of svc");
    assert!(skips_consent(&app, &mut browser, &svc("write read")).await, "the same set");
    assert!(skips_consent(&app, &mut browser, &AuthRequest::new(&app, &client, Some("svc"))).await);
    let step_up = app.authorize(&mut browser, &svc("read admin")).await;
    assert_eq!(step_up.status, 200, "a new scope asks again");
    assert!(step_up.body.contains("admin"), "the page names the new scope");
    let other = AuthRequest::new(&app, &client, Some("other")).with("scope", Some("read"));
    let other_page = app.authorize(&mut browser, &other).await;
    assert_eq!(other_page.status, 200, "another service asks again");
    assert!(other_page.body.contains("other service"));
}

#[actix_web::test]
async fn approving_more_adds_to_the_remembered_consent() {
    // Arrange
    let app = spawn_with_two_services().await;
    let client = app.register_client(&[REDIRECT]).await;
    let mut browser = Browser::new();
    let svc = |scope: &str| AuthRequest::new(&app, &client, Some("svc")).with("scope", Some(scope));
    let other = AuthRequest::new(&app, &client, Some("other")).with("scope", Some("read"));

    // Act: approve `read write`, then the step-up `read admin`, then the other service.
    consent_and_login(&app, &mut browser, &svc("read write")).await;
    consent_and_login(&app, &mut browser, &svc("read admin")).await;
    consent_and_login(&app, &mut browser, &other).await;

    // Assert: the union of svc's approvals is remembered, and svc's survive other's.
    for scope in ["admin", "read admin", "write admin", "read write admin", "read"] {
        assert!(skips_consent(&app, &mut browser, &svc(scope)).await, "svc {scope}");
    }
    assert!(skips_consent(&app, &mut browser, &other).await, "other read");
    // The remembered skip still ends in a code for the client.
    let skipped = app.authorize(&mut browser, &svc("write admin")).await;
    let back = app.login(&mut browser, &skipped.location(), "Alice", "alice@example.com").await;
    assert!(back.location_query().contains_key("code"), "{}", back.location());
}
