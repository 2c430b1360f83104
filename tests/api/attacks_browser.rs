//! Attacks through the browser legs of the flow (issue 13): a sign-in link forwarded to a
//! victim (the pending authorization must be bound to the browser that approved it), and
//! error redirects to a client nobody approved (an open redirector, RFC 9700 §4.11.2).

use actix_web::{web, App, HttpResponse};

use crate::flow::{spawn_with_service, AuthRequest, Browser, ConsentForm, Reply, TestClient, REDIRECT};
use crate::helpers::{serve, spawn_app_with, TestApp};

/// The attacker's client's redirect URI.
const EVIL: &str = "https://evil.example/cb";

/// The cookie binding a sign-in to the browser that approved it (plain name: tests run on http).
const LOGIN_COOKIE: &str = "mcpgw_login";

/// Asserts the callback refused the browser: an HTML page saying to start again, no redirect
/// (so no code and no error for the client), and no cookie that would remember anyone.
fn assert_refused_callback(reply: &Reply) {
    assert!(
        reply.status == 403 || reply.status == 400,
        "expected a refusal page, got {} Location={:?}",
        reply.status,
        reply.header("location")
    );
    assert!(reply.header("location").is_none(), "no redirect: {:?}", reply.header("location"));
    assert!(reply.header("content-type").unwrap_or("").starts_with("text/html"));
    assert!(reply.body.contains("Start again from your application"), "{}", reply.body);
    assert!(!reply.body.contains("name=\"pending_id\""), "not a consent page: {}", reply.body);
    let cookies: Vec<&str> =
        reply.headers.iter().filter(|(n, _)| n == "set-cookie").map(|(_, v)| v.as_str()).collect();
    assert!(!cookies.iter().any(|c| c.contains("mcpgw_session")), "no session set: {cookies:?}");
}

/// Registers a client redirecting to `redirect`.
async fn client_for(app: &TestApp, redirect: &str) -> TestClient {
    app.register_client(&[redirect]).await
}

/// Authorize and approve `request` in `browser`: the provider's login URL it was sent to.
async fn approve(app: &TestApp, browser: &mut Browser, request: &AuthRequest) -> String {
    let page = app.authorize(browser, request).await;
    let approved = app.consent(browser, &ConsentForm::from_page(&page), "approve").await;
    assert!(approved.is_redirect(), "approve: {} {}", approved.status, approved.body);
    approved.location()
}

// ---- 1. A forwarded sign-in link ------------------------------------------------------------

#[actix_web::test]
async fn a_sign_in_link_forwarded_to_a_victim_gives_the_attacker_no_code() {
    // Arrange: the attacker approves its own client in its own browser and keeps the link to
    // the provider's login page instead of logging in.
    let app = spawn_with_service().await;
    let evil = client_for(&app, EVIL).await;
    let mut attacker = Browser::new();
    let link = approve(&app, &mut attacker, &AuthRequest::new(&app, &evil, Some("svc"))).await;

    // Act: the victim, in a browser with no gateway cookies, opens the link and logs in.
    let mut victim = Browser::new();
    let reply = app.login(&mut victim, &link, "Victim", "victim@example.com").await;

    // Assert: no code for the victim reaches evil.example, and nothing is remembered.
    assert!(
        !reply.header("location").is_some_and(|l| l.contains("code=")),
        "a code for the victim went to the attacker: {:?}",
        reply.header("location")
    );
    assert_refused_callback(&reply);
    assert!(!victim.has("mcpgw_session"), "the victim's browser got no session");

    // The victim's account holds no remembered consent for the attacker's client: once the
    // victim has a session of their own, the attacker's client still gets the consent page.
    let own = client_for(&app, REDIRECT).await;
    let back = app
        .approve_and_login(&mut victim, &AuthRequest::new(&app, &own, Some("svc")), "victim@example.com")
        .await;
    assert!(back.location_query().contains_key("code"), "{}", back.location());
    let page = app.authorize(&mut victim, &AuthRequest::new(&app, &evil, Some("svc"))).await;
    assert_eq!(page.status, 200, "consent asked: {:?}", page.header("location"));
    ConsentForm::from_page(&page);
}

#[actix_web::test]
async fn a_forwarded_link_from_a_remembered_consent_is_refused_too() {
    // Arrange: the attacker approved its client before, so its browser skips the consent page
    // and goes straight to the provider; that link is the one forwarded.
    let app = spawn_with_service().await;
    let evil = client_for(&app, EVIL).await;
    let mut attacker = Browser::new();
    let first = app
        .approve_and_login(&mut attacker, &AuthRequest::new(&app, &evil, Some("svc")), "mallory@example.com")
        .await;
    assert!(first.location_query().contains_key("code"));
    let skipped = app.authorize(&mut attacker, &AuthRequest::new(&app, &evil, Some("svc"))).await;
    assert!(skipped.is_redirect(), "consent remembered: {}", skipped.body);
    let link = skipped.location();

    // Act
    let mut victim = Browser::new();
    let reply = app.login(&mut victim, &link, "Victim", "victim@example.com").await;

    // Assert: refused outright, not even a consent page for the attacker's client.
    assert_refused_callback(&reply);
    assert!(!victim.has("mcpgw_session"));
}

#[actix_web::test]
async fn a_callback_with_the_cookie_of_another_authorization_is_refused() {
    // Arrange: two browsers each approve a request; the attacker holds its own valid binding
    // cookie and the victim's link to the provider.
    let app = spawn_with_service().await;
    let client = client_for(&app, REDIRECT).await;
    let mut attacker = Browser::new();
    let attackers_link = approve(&app, &mut attacker, &AuthRequest::new(&app, &client, Some("svc"))).await;
    let mut victim = Browser::new();
    let victims_link = approve(&app, &mut victim, &AuthRequest::new(&app, &client, Some("svc"))).await;

    // Act: the attacker completes the victim's authorization in its own browser (its account
    // would be injected into the victim's client), and a forged cookie tries too.
    let swapped = app.login(&mut attacker, &victims_link, "Mallory", "mallory@example.com").await;
    let mut forger = Browser::new();
    let forged_link = approve(&app, &mut forger, &AuthRequest::new(&app, &client, Some("svc"))).await;
    forger.set(LOGIN_COOKIE, "forged.value");
    let forged = app.login(&mut forger, &forged_link, "Mallory", "mallory@example.com").await;

    // Assert
    assert_refused_callback(&swapped);
    assert_refused_callback(&forged);
    // The attacker's own authorization, in its own browser, still completes.
    let own = app.login(&mut attacker, &attackers_link, "Mallory", "mallory@example.com").await;
    assert!(own.location_query().contains_key("code"), "{}", own.location());
}

#[actix_web::test]
async fn one_browser_still_completes_sign_ins_even_two_at_once() {
    // Arrange: two clients start signing in from the same browser before either finishes.
    let app = spawn_with_service().await;
    let (a, b) = (client_for(&app, REDIRECT).await, client_for(&app, REDIRECT).await);
    let mut browser = Browser::new();
    let page = app.authorize(&mut browser, &AuthRequest::new(&app, &a, Some("svc"))).await;
    let approved = app.consent(&mut browser, &ConsentForm::from_page(&page), "approve").await;
    let link_b = approve(&app, &mut browser, &AuthRequest::new(&app, &b, Some("svc"))).await;

    // Act
    let back_a = app.login(&mut browser, &approved.location(), "Alice", "alice@example.com").await;
    let back_b = app.login(&mut browser, &link_b, "Alice", "alice@example.com").await;

    // Assert: the binding cookie is HttpOnly, SameSite=Lax (the provider's redirect back is a
    // cross-site top-level navigation) and host-wide; both sign-ins end with a code.
    let set = approved
        .headers
        .iter()
        .find(|(n, v)| n == "set-cookie" && v.starts_with(&format!("{LOGIN_COOKIE}=")))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("approval sets {LOGIN_COOKIE}: {:?}", approved.headers));
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");
    for back in [back_a, back_b] {
        assert!(back.location().starts_with(REDIRECT), "{}", back.location());
        assert!(back.location_query().contains_key("code"), "{}", back.location());
    }
    assert!(browser.has("mcpgw_session"), "the approving browser remembers its user");
}

// ---- 2. Error redirects only to a client the person approved ---------------------------------

/// Asserts an HTML error page naming `error`, with no redirect anywhere.
fn assert_error_page(reply: &Reply, error: &str) {
    assert_eq!(reply.status, 400, "Location={:?} body={}", reply.header("location"), reply.body);
    assert!(reply.header("location").is_none(), "no redirect: {:?}", reply.header("location"));
    assert!(reply.header("content-type").unwrap_or("").starts_with("text/html"));
    assert!(reply.body.contains(error), "the page names {error}: {}", reply.body);
    assert!(!reply.body.contains("evil.example"), "{}", reply.body);
}

#[actix_web::test]
async fn errors_for_a_client_nobody_approved_are_a_page_not_a_redirect() {
    // Arrange: a freshly registered client, never approved by anyone.
    let app = spawn_with_service().await;
    let evil = client_for(&app, EVIL).await;
    let request = || AuthRequest::new(&app, &evil, Some("svc"));
    let other_resource = format!("{}/nope/mcp", app.address);

    // Act
    let token = app.authorize(&mut Browser::new(), &request().with("response_type", Some("token"))).await;
    let no_pkce = app.authorize(&mut Browser::new(), &request().with("code_challenge", None)).await;
    let target = app.authorize(&mut Browser::new(), &request().with("resource", Some(&other_resource))).await;

    // Assert
    assert_error_page(&token, "unsupported_response_type");
    assert_error_page(&no_pkce, "invalid_request");
    assert_error_page(&target, "invalid_target");
}

#[actix_web::test]
async fn errors_still_redirect_to_a_client_this_person_approved() {
    // Arrange: this browser's user approved the client; another browser's user did not.
    let app = spawn_with_service().await;
    let client = client_for(&app, REDIRECT).await;
    let mut browser = Browser::new();
    let back = app
        .approve_and_login(&mut browser, &AuthRequest::new(&app, &client, Some("svc")), "a@example.com")
        .await;
    assert!(back.location_query().contains_key("code"));
    let bad = AuthRequest::new(&app, &client, Some("svc")).with("response_type", Some("token"));

    // Act
    let approved = app.authorize(&mut browser, &bad).await;
    let stranger = app.authorize(&mut Browser::new(), &bad).await;

    // Assert
    assert_eq!(approved.status, 302, "{}", approved.body);
    assert!(approved.location().starts_with(REDIRECT));
    assert_eq!(approved.location_query()["error"], "unsupported_response_type");
    assert_eq!(approved.location_query()["iss"], app.address);
    assert_error_page(&stranger, "unsupported_response_type");
}

/// A document server for one Client ID Metadata Document at `/client.json`.
async fn serve_document() -> (String, actix_web::dev::ServerHandle) {
    let document = |port: u16| {
        let id = format!("http://127.0.0.1:{port}/client.json");
        serde_json::json!({ "client_id": id, "client_name": "Doc", "redirect_uris": [REDIRECT] })
    };
    let (port, handle) = serve(|port| {
        let body = document(port);
        move || {
            let body = body.clone();
            App::new().route(
                "/client.json",
                web::get().to(move || {
                    let body = body.clone();
                    async move { HttpResponse::Ok().json(body) }
                }),
            )
        }
    });
    (format!("http://127.0.0.1:{port}/client.json"), handle)
}

#[actix_web::test]
async fn errors_redirect_to_a_metadata_document_client() {
    // Arrange: the document was fetched, so the redirect URI is the one its owner published.
    let (id, server) = serve_document().await;
    let app = spawn_app_with(|s| {
        crate::flow::add_service(s, "svc", &["read"]);
        s.runtime.allow_private_cimd = true;
    })
    .await;
    let client = TestClient { client_id: id, client_secret: None, redirect_uri: REDIRECT.into() };
    let bad = AuthRequest::new(&app, &client, Some("svc")).with("response_type", Some("token"));

    // Act
    let reply = app.authorize(&mut Browser::new(), &bad).await;

    // Assert
    assert_eq!(reply.status, 302, "{}", reply.body);
    assert_eq!(reply.location_query()["error"], "unsupported_response_type");
    server.stop(false).await;
}
