//! Enterprise-Managed Authorization (issue 11 §1): the JWT bearer grant with an Identity
//! Assertion JWT Authorization Grant. The enterprise identity provider is the test's: RS256
//! and ES256 keys made here, its JWK Set served over HTTP (or written inline), its assertions
//! signed here. Every broken claim is `invalid_grant`; a good one gives a token for the one
//! service it names, with no refresh token, and the access rules apply to the person.

use mcp_gateway::config::{AccessRule, Settings, TrustedIssuer};
use serde_json::{json, Value};

use crate::backend::TestBackend;
use crate::flow::{add_service, Reply};
use crate::helpers::{spawn_app_with, TestApp};
use crate::machine::{call, JwksServer, TestKey};
use crate::proxy::echoed;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const IDP: &str = "https://acme.idp.example";
const TYP: &str = "oauth-id-jag+jwt";

/// Services `calc` (read, write) and `other` → the backend's echo; the IdP trusted with the
/// keys at `jwks_uri`; `adjust` last.
async fn gateway(backend: &TestBackend, jwks_uri: &str, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let (uri, echo) = (jwks_uri.to_owned(), backend.url("/echo"));
    spawn_app_with(move |s| {
        add_service(s, "calc", &["read", "write"]);
        add_service(s, "other", &["read"]);
        for id in ["calc", "other"] {
            s.mcp_services.get_mut(id).unwrap().url = echo.clone();
        }
        s.runtime.workers = 1;
        s.runtime.allow_private_cimd = true;
        s.enterprise.id_jag.trusted_issuers =
            vec![TrustedIssuer { issuer: IDP.into(), jwks_uri: Some(uri), jwks: None }];
        adjust(s);
    })
    .await
}

/// The claims of a good ID-JAG for `client_id` and service `calc`, as of the app's clock.
fn claims(app: &TestApp, client_id: &str) -> Value {
    let now = app.state.clock.now();
    json!({
        "iss": IDP, "sub": "u-1001", "aud": app.settings.issuer, "client_id": client_id,
        "resource": app.settings.resource_uri("calc"), "scope": "read",
        "email": "alice@acme.example", "name": "Alice",
        "exp": now + 300, "iat": now, "jti": format!("jag-{}", rand::random::<u64>()),
    })
}

fn jag(key: &TestKey, claims: &Value) -> String {
    key.sign_with_header(json!({"typ": TYP, "kid": key.kid()}), claims)
}

/// Presents `assertion` as the public client `client_id` (extra form fields in `extra`).
async fn present(app: &TestApp, client_id: &str, assertion: &str, extra: &[(&str, &str)]) -> Reply {
    let mut form = vec![("grant_type", GRANT), ("assertion", assertion), ("client_id", client_id)];
    form.extend_from_slice(extra);
    app.post_form("/oauth/token", &form, None).await
}

async fn public_client(app: &TestApp) -> String {
    app.register_client(&["http://127.0.0.1:9999/callback"]).await.client_id
}

fn assert_refused(reply: &Reply, why: &str) {
    assert_eq!(reply.status, 400, "{why}: {}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_grant", "{why}: {}", reply.body);
}

/// `claims` with the entries of `change` set, a `null` one removed.
fn patched(mut claims: Value, change: &Value) -> Value {
    for (k, v) in change.as_object().unwrap() {
        match v {
            Value::Null => drop(claims.as_object_mut().unwrap().remove(k)),
            v => claims[k] = v.clone(),
        }
    }
    claims
}

#[actix_web::test]
async fn a_valid_assertion_gives_a_token_for_its_one_service_and_no_refresh_token() {
    let backend = TestBackend::start().await;
    let (rsa, ec) = (TestKey::rs256("okta-rsa"), TestKey::es256("okta-ec"));
    let idp = JwksServer::start(&[&rsa, &ec]);
    let app = gateway(&backend, &idp.url, |_| {}).await;
    let client = public_client(&app).await;
    for key in [&rsa, &ec] {
        let reply = present(&app, &client, &jag(key, &claims(&app, &client)), &[]).await;
        assert_eq!(reply.status, 200, "{} {}", key.alg, reply.body);
        let body = reply.json();
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(body["scope"], "read", "{body}");
        let token = body["access_token"].as_str().unwrap();
        let (status, echo) = call(&app, "calc", token).await;
        assert_eq!(status, 200, "{echo}");
        assert_eq!(echoed(&echo, "x-user-email"), Some("alice@acme.example"));
        assert_eq!(echoed(&echo, "x-user-provider"), Some("id-jag"));
        assert_eq!(echoed(&echo, "x-user-id"), Some("id-jag_https://acme.idp.example#u-1001"));
        assert_eq!(call(&app, "other", token).await.0, 401, "bound to the one service");
    }
    // A resource parameter, when sent, must be the assertion's.
    let other = app.settings.resource_uri("other");
    let reply =
        present(&app, &client, &jag(&ec, &claims(&app, &client)), &[("resource", other.as_str())]).await;
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (400, json!("invalid_target")),
        "{}",
        reply.body
    );
    // Scopes: requested ∩ the assertion's.
    let mut wide = claims(&app, &client);
    wide["scope"] = json!("read write");
    let reply = present(&app, &client, &jag(&ec, &wide), &[("scope", "write admin")]).await;
    assert_eq!(reply.json()["scope"], "write", "{}", reply.body);
}

#[actix_web::test]
async fn every_broken_claim_is_invalid_grant() {
    let backend = TestBackend::start().await;
    let key = TestKey::es256("k1");
    let idp = JwksServer::start(&[&key]);
    let app = gateway(&backend, &idp.url, |_| {}).await;
    let client = public_client(&app).await;
    let now = app.state.clock.now();
    let broken: Vec<(&str, Value)> = vec![
        ("untrusted iss", json!({"iss": "https://evil.example"})),
        ("wrong aud", json!({"aud": "https://other-gateway.example"})),
        ("another client", json!({"client_id": "someone-else"})),
        ("unknown resource", json!({"resource": "https://elsewhere.example/mcp"})),
        ("no resource", json!({"resource": null})),
        ("expired", json!({"exp": now - 120})),
        ("iat in the future", json!({"iat": now + 600})),
        ("no iat", json!({"iat": null})),
        ("lives too long", json!({"exp": now + 2 * 3600})),
        ("no jti", json!({"jti": null})),
        ("no sub", json!({"sub": null})),
    ];
    for (why, change) in broken {
        let c = patched(claims(&app, &client), &change);
        assert_refused(&present(&app, &client, &jag(&key, &c), &[]).await, why);
    }
    // The JOSE type: a plain JWT (an ID token, say) is not an ID-JAG.
    let id_token = key.sign_with_header(json!({"typ": "JWT", "kid": "k1"}), &claims(&app, &client));
    assert_refused(&present(&app, &client, &id_token, &[]).await, "typ JWT");
    // Signed with a key the issuer does not have, under its kid or a made-up one.
    let stranger = TestKey::es256("k1");
    assert_refused(&present(&app, &client, &jag(&stranger, &claims(&app, &client)), &[]).await, "wrong key");
    let unknown = TestKey::es256("nobody");
    assert_refused(&present(&app, &client, &jag(&unknown, &claims(&app, &client)), &[]).await, "unknown kid");
    // Replayed: the same jti twice.
    let once = jag(&key, &claims(&app, &client));
    assert_eq!(present(&app, &client, &once, &[]).await.status, 200);
    assert_refused(&present(&app, &client, &once, &[]).await, "replayed jti");
    // Not a JWT at all, or none.
    assert_refused(&present(&app, &client, "not.a.jwt", &[]).await, "garbage");
    let reply = app.post_form("/oauth/token", &[("grant_type", GRANT), ("client_id", &client)], None).await;
    assert_eq!(reply.json()["error"], "invalid_request", "{}", reply.body);
}

#[actix_web::test]
async fn a_key_the_issuer_rotated_in_is_fetched_once() {
    let backend = TestBackend::start().await;
    let old = TestKey::rs256("2026-11");
    let idp = JwksServer::start(&[&old]);
    let app = gateway(&backend, &idp.url, |_| {}).await;
    let client = public_client(&app).await;
    assert_eq!(present(&app, &client, &jag(&old, &claims(&app, &client)), &[]).await.status, 200);
    assert_eq!(idp.hits(), 1);
    let new = TestKey::rs256("2026-12");
    idp.replace(&[&old, &new]);
    // An unknown kid right after a fetch is not a reason to ask again; a little later it is.
    assert_refused(&present(&app, &client, &jag(&new, &claims(&app, &client)), &[]).await, "too soon");
    assert_eq!(idp.hits(), 1);
    app.state.clock.advance(31);
    let reply = present(&app, &client, &jag(&new, &claims(&app, &client)), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(idp.hits(), 2, "one refetch for the new kid");
}

#[actix_web::test]
async fn access_rules_apply_to_the_person_of_the_assertion() {
    let backend = TestBackend::start().await;
    let key = TestKey::es256("k1");
    let idp = JwksServer::start(&[&key]);
    let rule: AccessRule = serde_json::from_value(json!({"domains": ["acme.example"]})).unwrap();
    let app = gateway(&backend, &idp.url, move |s| {
        s.mcp_services.get_mut("calc").unwrap().access = Some(rule);
    })
    .await;
    let client = public_client(&app).await;
    assert_eq!(present(&app, &client, &jag(&key, &claims(&app, &client)), &[]).await.status, 200);
    for (why, change) in [
        ("another domain", json!({"email": "mallory@evil.example"})),
        ("unverified email", json!({"email_verified": false})),
        ("no email", json!({"email": null})),
    ] {
        let c = patched(claims(&app, &client), &change);
        let reply = present(&app, &client, &jag(&key, &c), &[]).await;
        assert_refused(&reply, why);
        assert!(reply.body.contains("access rule"), "{why}: {}", reply.body);
    }
}

#[actix_web::test]
async fn an_inline_key_set_works_without_any_fetch_and_metadata_advertises_the_profile() {
    let backend = TestBackend::start().await;
    let key = TestKey::rs256("inline");
    let jwk = key.jwk.clone();
    let app = gateway(&backend, "http://127.0.0.1:9/unused", move |s| {
        s.enterprise.id_jag.trusted_issuers[0].jwks_uri = None;
        s.enterprise.id_jag.trusted_issuers[0].jwks = Some(json!({"keys": [jwk]}));
    })
    .await;
    let client = public_client(&app).await;
    assert_eq!(present(&app, &client, &jag(&key, &claims(&app, &client)), &[]).await.status, 200);
    let m = app.get("/.well-known/oauth-authorization-server").await.json();
    assert!(m["grant_types_supported"].as_array().unwrap().iter().any(|g| g == GRANT), "{m}");
    assert_eq!(
        m["authorization_grant_profiles_supported"],
        json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );

    // Without a trusted issuer: not advertised, and the grant type is unsupported.
    let plain = spawn_app_with(|s| add_service(s, "calc", &[])).await;
    let m = plain.get("/.well-known/oauth-authorization-server").await.json();
    assert!(m.get("authorization_grant_profiles_supported").is_none(), "{m}");
    assert!(!m["grant_types_supported"].as_array().unwrap().iter().any(|g| g == GRANT), "{m}");
    let client = public_client(&plain).await;
    let reply = present(&plain, &client, &jag(&key, &claims(&plain, &client)), &[]).await;
    assert_eq!(reply.json()["error"], "unsupported_grant_type", "{}", reply.body);
}

#[actix_web::test]
async fn a_jti_is_single_use_across_instances_sharing_redis() {
    // Two instances behind one issuer name share Redis: an assertion redeemed at one is
    // refused at the other.
    let backend = TestBackend::start().await;
    let key = TestKey::es256("k1");
    let idp = JwksServer::start(&[&key]);
    let prefix = format!("idjag-test-{}-{}:", std::process::id(), rand::random::<u32>());
    let on_redis = |s: &mut Settings| {
        s.issuer = "http://gateway.test".into();
        s.storage = crate::helpers::redis_storage(&prefix);
    };
    let a = gateway(&backend, &idp.url, on_redis).await;
    let b = gateway(&backend, &idp.url, on_redis).await;
    let client = public_client(&a).await;
    let once = jag(&key, &claims(&a, &client));
    assert_eq!(present(&a, &client, &once, &[]).await.status, 200);
    assert_refused(&present(&b, &client, &once, &[]).await, "replayed on the other instance");
    let fresh = present(&b, &client, &jag(&key, &claims(&b, &client)), &[]).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
}

#[actix_web::test]
async fn a_configured_client_must_list_the_grant_and_stays_within_its_services_and_scopes() {
    // An operator who limited a client to `calc` and `read` means it, whoever vouches for the
    // person: an ID-JAG for another service or scope does not widen it.
    let backend = TestBackend::start().await;
    let key = TestKey::es256("k1");
    let idp = JwksServer::start(&[&key]);
    let app = gateway(&backend, &idp.url, |s| {
        let mut limited = crate::machine::client("client_secret_basic", &["calc"], &["read"]);
        limited.grant_types = vec![GRANT.into()];
        s.clients.insert("portal".into(), limited);
        s.clients.insert("ci-bot".into(), crate::machine::client("client_secret_basic", &["calc"], &[]));
    })
    .await;
    let with_secret = |id: &'static str, assertion: String, scope: &'static str| {
        let app = &app;
        async move {
            let form = [("grant_type", GRANT), ("assertion", assertion.as_str()), ("scope", scope)];
            app.post_form("/oauth/token", &form, Some((id, "ci-bot-secret-0123456789"))).await
        }
    };
    let mut wide = claims(&app, "portal");
    wide["scope"] = json!("read write");
    let reply = with_secret("portal", jag(&key, &wide), "read write").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "read", "the client's own scope limit holds: {}", reply.body);
    let for_other = patched(claims(&app, "portal"), &json!({"resource": app.settings.resource_uri("other")}));
    assert_refused(
        &with_secret("portal", jag(&key, &for_other), "").await,
        "a service the client may not use",
    );
    // A configured client that does not list the grant may not use it.
    let reply = with_secret("ci-bot", jag(&key, &claims(&app, "ci-bot")), "").await;
    assert_eq!(reply.json()["error"], "unauthorized_client", "{}", reply.body);
}
