//! The client compatibility switches: `cimd.enabled` and `cimd.allowed_domains`,
//! `registration.enabled` and `registration.allowed_redirect_hosts`, and what a client asking
//! for every advertised scope gets.

use serde_json::json;

use crate::flow::{add_service, AuthRequest, Browser, Reply, REDIRECT};
use crate::helpers::{spawn_app_with, TestApp};

/// A token request of the metadata-document client `id` (its document is never served: the
/// refusals tested here come before any fetch, or are the fetch failing).
async fn as_document_client(app: &TestApp, id: &str) -> Reply {
    let form =
        [("grant_type", "authorization_code"), ("client_id", id), ("code", "x"), ("code_verifier", "y")];
    app.post_form("/oauth/token", &form, None).await
}

fn description(reply: &Reply) -> String {
    reply.json()["error_description"].as_str().unwrap_or_default().to_owned()
}

#[actix_web::test]
async fn cimd_can_be_switched_off_and_limited_to_domains() {
    let off = spawn_app_with(|s| {
        add_service(s, "svc", &[]);
        s.runtime.allow_private_cimd = true;
        s.cimd.enabled = false;
    })
    .await;
    let meta = off.get("/.well-known/oauth-authorization-server").await.json();
    assert_eq!(meta["client_id_metadata_document_supported"], false);
    let reply = as_document_client(&off, "http://127.0.0.1:9/client.json").await;
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (401, json!("invalid_client")),
        "{}",
        reply.body
    );
    assert!(description(&reply).contains("not accepted"), "{}", reply.body);

    let limited = spawn_app_with(|s| {
        add_service(s, "svc", &[]);
        s.runtime.allow_private_cimd = true;
        s.cimd.allowed_domains = vec!["*.example.com".into(), "localhost".into()];
    })
    .await;
    let reply = as_document_client(&limited, "http://127.0.0.1:9/client.json").await;
    assert!(description(&reply).contains("configured domains"), "{}", reply.body);
    // A listed host passes the rule and is fetched (nothing listens there: a fetch failure).
    let reply = as_document_client(&limited, "http://localhost:9/client.json").await;
    assert_eq!(reply.status, 401);
    assert!(description(&reply).contains("could not be fetched"), "{}", reply.body);
}

#[actix_web::test]
async fn registration_can_be_switched_off() {
    let app = spawn_app_with(|s| {
        add_service(s, "svc", &[]);
        s.registration.enabled = false;
    })
    .await;
    let meta = app.get("/.well-known/oauth-authorization-server").await.json();
    assert!(meta.get("registration_endpoint").is_none(), "{meta}");
    for path in ["/oauth/register", "/register"] {
        let reply = app.post_form(path, &[("client_name", "x"), ("redirect_uris", REDIRECT)], None).await;
        assert_eq!((reply.status, reply.json()["error"].clone()), (403, json!("access_denied")), "{path}");
    }
    let reply = app.register_json(&json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
}

#[actix_web::test]
async fn registered_redirects_are_limited_to_the_allowed_hosts_and_loopback() {
    let app = spawn_app_with(|s| {
        add_service(s, "svc", &[]);
        s.registration.allowed_redirect_hosts = vec!["app.example".into(), "*.corp.example".into()];
    })
    .await;
    for ok in [
        "https://app.example/cb",
        "https://a.corp.example/cb",
        "http://127.0.0.1/cb",
        "http://localhost:1234/cb",
        "cursor://anysphere.cursor-retrieval/oauth/callback",
    ] {
        let reply = app.register_json(&json!({"redirect_uris": [ok]})).await;
        assert_eq!(reply.status, 201, "{ok}: {}", reply.body);
    }
    for bad in ["https://evil.example/cb", "https://corp.example/cb", "https://app.example.evil/cb"] {
        let reply = app.register_json(&json!({"redirect_uris": ["https://app.example/cb", bad]})).await;
        assert_eq!(
            (reply.status, reply.json()["error"].clone()),
            (400, json!("invalid_redirect_uri")),
            "{bad}"
        );
    }
}

#[actix_web::test]
async fn a_client_asking_for_every_advertised_scope_gets_the_services_share() {
    let app = spawn_app_with(|s| {
        add_service(s, "svc", &["read", "write"]);
        add_service(s, "deploy", &["deploy"]);
    })
    .await;
    let meta = app.get("/.well-known/oauth-authorization-server").await.json();
    let every: Vec<&str> =
        meta["scopes_supported"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(every, ["deploy", "read", "write"]);
    let client = app.register_client(&[REDIRECT]).await;
    let all = every.join(" ");
    let request = AuthRequest::new(&app, &client, Some("svc")).with("scope", Some(&all));
    let mut browser = Browser::new();
    let back = app.approve_and_login(&mut browser, &request, "scopes@example.com").await;
    let code = back.location_query().get("code").cloned().unwrap_or_else(|| panic!("{}", back.location()));
    let reply = app.exchange_code(&client, &code, &request.pkce.verifier, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "read write");
    // No scope at all: the service's base scopes.
    let request = AuthRequest::new(&app, &client, Some("svc"));
    let back = app.approve_and_login(&mut Browser::new(), &request, "plain@example.com").await;
    let reply = app.exchange_code(&client, &back.location_query()["code"], &request.pkce.verifier, &[]).await;
    assert_eq!(reply.json()["scope"], "read write");
}
