//! Issue 13, item 3: what a stranger can make the gateway do and keep. Each test performs the
//! attack and fails on a gateway without limits.

use serde_json::{json, Value};

use crate::flow::REDIRECT;
use crate::helpers::{spawn_app, spawn_app_with, TestApp};

fn metadata() -> Value {
    json!({ "client_name": "Flood", "redirect_uris": [REDIRECT] })
}

async fn register_with_forwarded_for(app: &TestApp, forwarded_for: &str) -> u16 {
    let req = app.client().post(app.url("/oauth/register")).insert_header(("X-Forwarded-For", forwarded_for));
    req.send_json(&metadata()).await.expect("POST").status().as_u16()
}

#[actix_web::test]
async fn a_registration_flood_from_one_address_is_refused() {
    // Arrange: the default limits (10 a minute, bursts of 20).
    let app = spawn_app().await;

    // Act
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(app.register_json(&metadata()).await);
    }

    // Assert
    let created = statuses.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 20, "the burst, then nothing");
    let refused = statuses.last().expect("replies");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["error"], "temporarily_unavailable");
    let retry: u64 = refused.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
}

#[actix_web::test]
async fn oversized_registrations_are_refused_before_anything_is_kept() {
    // Arrange: 45 KB of metadata, as in the flood that grew RSS by 146 MB.
    let app = spawn_app().await;
    let mut body = metadata();
    body["padding"] = Value::String("x".repeat(45 * 1024));

    // Act
    let reply = app.register_json(&body).await;

    // Assert
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_client_metadata");
    assert!(reply.json()["error_description"].as_str().unwrap().contains("16384 bytes"));
}

#[actix_web::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_buy_a_fresh_bucket() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for i in 0..25 {
        statuses.push(register_with_forwarded_for(&app, &format!("198.51.100.{i}")).await);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 20, "{statuses:?}");
}

#[actix_web::test]
async fn behind_a_trusted_proxy_every_client_has_its_own_bucket() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = serde_json::from_value(json!(["127.0.0.1"])).unwrap();
    })
    .await;
    for i in 0..25 {
        assert_eq!(register_with_forwarded_for(&app, &format!("198.51.100.{i}")).await, 201, "client {i}");
    }
    // One client, many requests: limited like any other.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(register_with_forwarded_for(&app, "6.6.6.6, 203.0.113.5").await);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 20, "{statuses:?}");
}

#[actix_web::test]
async fn the_token_endpoint_is_limited_too() {
    let app = spawn_app_with(|s| {
        s.limits.token = serde_json::from_value(json!({ "per_minute": 6, "burst": 2 })).unwrap();
    })
    .await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_id", "nobody")];
    let first = app.post_form("/oauth/token", &form, None).await;
    let second = app.post_form("/oauth/token", &form, None).await;
    let third = app.post_form("/oauth/token", &form, None).await;
    assert_eq!((first.status, second.status), (401, 401), "unknown client, but counted");
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(third.header("retry-after"), Some("10"));
}

#[actix_web::test]
async fn a_registration_nobody_uses_expires_and_use_keeps_one_alive() {
    // Arrange
    let app = spawn_app_with(|s| crate::flow::add_service(s, "svc", &[])).await;
    let abandoned = app.register_client(&[REDIRECT]).await;
    let used = app.register_client(&[REDIRECT]).await;
    let introspect = |client: &crate::flow::TestClient| {
        let form = [("token", "x".to_owned()), ("client_id", client.client_id.clone())];
        let app = &app;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_form("/oauth/introspect", &form, None).await.status
        }
    };

    // Act: 20 days pass, one client is used, 20 more days pass.
    app.state.clock.advance(20 * 24 * 3600);
    assert_eq!(introspect(&used).await, 200, "in use");
    app.state.clock.advance(20 * 24 * 3600);

    // Assert
    assert_eq!(introspect(&used).await, 200, "its use kept it");
    assert_eq!(introspect(&abandoned).await, 401, "40 days unused: gone");
}

#[actix_web::test]
async fn browser_endpoints_answer_a_flood_with_a_page() {
    let app = spawn_app_with(|s| crate::flow::add_service(s, "svc", &[])).await;
    let client = app.register_client(&[REDIRECT]).await;
    let request = crate::flow::AuthRequest::new(&app, &client, Some("svc"));
    let mut last = None;
    for _ in 0..31 {
        last = Some(app.authorize(&mut crate::flow::Browser::new(), &request).await);
    }
    let last = last.expect("replies");
    assert_eq!(last.status, 429, "the 31st sign-in start in a burst of 30");
    assert!(last.header("content-type").unwrap_or("").starts_with("text/html"));
    assert!(last.header("retry-after").is_some());
    assert!(last.header("location").is_none());
    let mut callback = None;
    for path in ["/oauth/callback?code=x&state=y"; 21] {
        callback = Some(app.browse(&mut crate::flow::Browser::new(), path).await.status);
    }
    assert_eq!(callback, Some(429), "the 21st callback");
}
