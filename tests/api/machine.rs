//! Machine clients: the clients of the configuration, the client credentials grant with a
//! secret (Basic and form) and with `private_key_jwt` (ES256 and RS256 keys made here, served
//! from a JWKS server of the test), and every way an assertion can be wrong: replayed on this
//! or another instance, wrong audience, expired, living too long, signed with another key,
//! without `kid`, from a rotated key set.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use mcp_gateway::config::{AccessRule, ClientSettings, Settings};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::backend::TestBackend;
use crate::flow::{add_service, Reply};
use crate::helpers::{serve, spawn_app_with, TestApp};
use crate::proxy::echoed;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SECRET: &str = "ci-bot-secret-0123456789";

/// Signs the bytes of a JWT.
type SignFn = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// A private key of the test and its public JWK.
pub struct TestKey {
    /// `ES256` or `RS256`.
    pub alg: &'static str,
    /// The public JWK (with `kid`).
    pub jwk: Value,
    sign: SignFn,
}

impl TestKey {
    /// A fresh P-256 key.
    pub fn es256(kid: &str) -> TestKey {
        let secret = loop {
            if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        let mut jwk = serde_json::to_value(secret.public_key().to_jwk()).unwrap();
        jwk["kid"] = json!(kid);
        let signing = p256::ecdsa::SigningKey::from(secret);
        let sign = move |msg: &[u8]| {
            use p256::ecdsa::signature::Signer;
            let sig: p256::ecdsa::Signature = signing.sign(msg);
            sig.to_bytes().to_vec()
        };
        TestKey { alg: "ES256", jwk, sign: Box::new(sign) }
    }

    /// A fresh 2048-bit RSA key.
    pub fn rs256(kid: &str) -> TestKey {
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use aws_lc_rs::signature::KeyPair as _;
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let jwk = json!({"kty": "RSA", "kid": kid, "n": n, "e": e});
        let sign = move |msg: &[u8]| {
            let mut sig = vec![0u8; pair.public_modulus_len()];
            let rng = aws_lc_rs::rand::SystemRandom::new();
            pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig).unwrap();
            sig
        };
        TestKey { alg: "RS256", jwk, sign: Box::new(sign) }
    }

    /// The key's `kid`.
    pub fn kid(&self) -> &str {
        self.jwk["kid"].as_str().unwrap()
    }

    /// A JWT of `claims` with `header` (the `alg` is filled in).
    pub fn sign_with_header(&self, mut header: Value, claims: &Value) -> String {
        header["alg"] = json!(self.alg);
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = (self.sign)(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig));
        token
    }

    /// A JWT of `claims` with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(json!({"typ": "JWT", "kid": self.kid()}), claims)
    }
}

/// A JWKS server: serves whatever set it holds now, counting requests.
pub struct JwksServer {
    /// `http://127.0.0.1:{port}/jwks.json`.
    pub url: String,
    keys: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl JwksServer {
    /// Serves the public keys of `keys`.
    pub fn start(keys: &[&TestKey]) -> JwksServer {
        let set = Arc::new(Mutex::new(jwks(keys)));
        let hits = Arc::new(AtomicUsize::new(0));
        let (shared, counter) = (set.clone(), hits.clone());
        let (port, handle) = serve(|_| {
            move || {
                let (shared, counter) = (shared.clone(), counter.clone());
                App::new().route(
                    "/jwks.json",
                    web::get().to(move || {
                        let (shared, counter) = (shared.clone(), counter.clone());
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let body = shared.lock().unwrap().clone();
                            HttpResponse::Ok().content_type("application/json").body(body.to_string())
                        }
                    }),
                )
            }
        });
        JwksServer { url: format!("http://127.0.0.1:{port}/jwks.json"), keys: set, hits, handle }
    }

    /// Serves `keys` from now on.
    pub fn replace(&self, keys: &[&TestKey]) {
        *self.keys.lock().unwrap() = jwks(keys);
    }

    /// Requests so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// A configured client.
pub fn client(method: &str, services: &[&str], scopes: &[&str]) -> ClientSettings {
    ClientSettings {
        name: "CI bot".into(),
        grant_types: vec!["client_credentials".into()],
        token_endpoint_auth_method: method.into(),
        client_secret: method.starts_with("client_secret").then(|| SecretString::from(SECRET)),
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        ..ClientSettings::default()
    }
}

/// Services `calc` (read, write) and `other` → the backend's echo; clients `ci-bot`
/// (Basic secret, calc), `ci-post` (form secret, calc and other) and, with `jwks_url`,
/// `jwt-bot` (private_key_jwt, calc).
fn settings(s: &mut Settings, backend: &TestBackend, jwks_url: Option<&str>) {
    add_service(s, "calc", &["read", "write"]);
    add_service(s, "other", &["read"]);
    for id in ["calc", "other"] {
        s.mcp_services.get_mut(id).unwrap().url = backend.url("/echo");
    }
    s.runtime.workers = 1;
    s.runtime.allow_private_cimd = true;
    s.clients.insert("ci-bot".into(), client("client_secret_basic", &["calc"], &["read"]));
    s.clients.insert("ci-post".into(), client("client_secret_post", &["calc", "other"], &[]));
    if let Some(url) = jwks_url {
        let mut jwt = client("private_key_jwt", &["calc"], &[]);
        jwt.jwks_uri = Some(url.to_owned());
        s.clients.insert("jwt-bot".into(), jwt);
    }
}

async fn gateway(backend: &TestBackend, jwks_url: Option<&str>) -> TestApp {
    spawn_app_with(|s| settings(s, backend, jwks_url)).await
}

/// Claims of a good assertion of `jwt-bot` for `app`, as of its clock.
fn assertion_claims(app: &TestApp) -> Value {
    let now = app.state.clock.now();
    json!({
        "iss": "jwt-bot", "sub": "jwt-bot", "aud": app.url("/oauth/token"),
        "exp": now + 120, "iat": now, "jti": format!("jti-{}", rand::random::<u64>()),
    })
}

async fn with_assertion(app: &TestApp, assertion: &str) -> Reply {
    let resource = app.settings.resource_uri("calc");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
        ("resource", resource.as_str()),
    ];
    app.post_form("/oauth/token", &form, None).await
}

/// The proxied echo of `/{service}/mcp` with `token`: status and body.
pub async fn call(app: &TestApp, service: &str, token: &str) -> (u16, Value) {
    let mut res = app
        .client()
        .post(app.url(&format!("/{service}/mcp")))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .content_type("application/json")
        .send_body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .await
        .unwrap();
    let body = res.body().await.unwrap();
    (res.status().as_u16(), serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn assert_error(reply: &Reply, status: u16, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.json()["error"], error, "{}", reply.body);
}

#[actix_web::test]
async fn a_secret_client_gets_a_token_for_its_service_only_and_the_backend_sees_the_client() {
    let backend = TestBackend::start().await;
    let app = gateway(&backend, None).await;
    let calc = app.settings.resource_uri("calc");

    let basic = [("grant_type", "client_credentials"), ("resource", calc.as_str())];
    let reply = app.post_form("/oauth/token", &basic, Some(("ci-bot", SECRET))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!((body["token_type"].as_str(), body["scope"].as_str()), (Some("Bearer"), Some("read")));
    assert!(body.get("refresh_token").is_none(), "no refresh token for client credentials: {body}");
    let token = body["access_token"].as_str().unwrap().to_owned();

    let (status, echo) = call(&app, "calc", &token).await;
    assert_eq!(status, 200);
    assert_eq!(echoed(&echo, "x-user-id"), Some("client:ci-bot"));
    assert_eq!(echoed(&echo, "x-user-provider"), Some("client"));
    assert_eq!(echoed(&echo, "x-user-name"), Some("CI bot"));
    assert_eq!(echoed(&echo, "x-user-email"), None);
    assert_eq!(call(&app, "other", &token).await.0, 401, "bound to its one service");

    // The form method; a client with one service may leave out `resource`... this one has
    // two, so it must name one, and gets every scope of it when it asks for none.
    let post = [("grant_type", "client_credentials"), ("client_id", "ci-post"), ("client_secret", SECRET)];
    assert_error(&app.post_form("/oauth/token", &post, None).await, 400, "invalid_request");
    let other = app.settings.resource_uri("other");
    let mut named = post.to_vec();
    named.push(("resource", other.as_str()));
    let reply = app.post_form("/oauth/token", &named, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "read");
    let basic_without_resource = [("grant_type", "client_credentials")];
    let reply = app.post_form("/oauth/token", &basic_without_resource, Some(("ci-bot", SECRET))).await;
    assert_eq!(reply.status, 200, "the only service: {}", reply.body);
}

#[actix_web::test]
async fn wrong_secrets_unknown_clients_and_grants_not_allowed_are_refused() {
    let backend = TestBackend::start().await;
    let app = gateway(&backend, None).await;
    let calc = app.settings.resource_uri("calc");
    let other = app.settings.resource_uri("other");
    let form = [("grant_type", "client_credentials"), ("resource", calc.as_str())];

    for (id, secret) in [("ci-bot", "wrong"), ("ci-bot", ""), ("nobody", SECRET), ("ci-bot", &SECRET[1..])] {
        let reply = app.post_form("/oauth/token", &form, Some((id, secret))).await;
        assert_error(&reply, 401, "invalid_client");
    }
    // A registered (public) client may not use the grant.
    let registered = app.register_client(&["http://127.0.0.1/cb"]).await;
    let mut public = form.to_vec();
    public.push(("client_id", registered.client_id.as_str()));
    assert_error(&app.post_form("/oauth/token", &public, None).await, 400, "unauthorized_client");
    // Its own service only, its own scopes only.
    let elsewhere = [("grant_type", "client_credentials"), ("resource", other.as_str())];
    let reply = app.post_form("/oauth/token", &elsewhere, Some(("ci-bot", SECRET))).await;
    assert_error(&reply, 400, "invalid_target");
    let mut too_much = form.to_vec();
    too_much.push(("scope", "write"));
    assert_error(
        &app.post_form("/oauth/token", &too_much, Some(("ci-bot", SECRET))).await,
        400,
        "invalid_scope",
    );
    let mut narrowed = form.to_vec();
    narrowed.push(("scope", "read write"));
    let reply = app.post_form("/oauth/token", &narrowed, Some(("ci-bot", SECRET))).await;
    assert_eq!(reply.json()["scope"], "read", "narrowed to what it may have: {}", reply.body);
    // Its id is not for registrations to take, nor a secret for an assertion client.
    assert!(app.state.settings.clients.contains_key("ci-bot"));
}

#[actix_web::test]
async fn private_key_jwt_with_es256_and_rs256_keys_and_single_use_jti() {
    let backend = TestBackend::start().await;
    let (ec, rsa) = (TestKey::es256("ec-1"), TestKey::rs256("rsa-1"));
    let server = JwksServer::start(&[&ec, &rsa]);
    let app = gateway(&backend, Some(&server.url)).await;

    for key in [&ec, &rsa] {
        let assertion = key.sign(&assertion_claims(&app));
        let reply = with_assertion(&app, &assertion).await;
        assert_eq!(reply.status, 200, "{}: {}", key.alg, reply.body);
        let token = reply.json()["access_token"].as_str().unwrap().to_owned();
        let (status, echo) = call(&app, "calc", &token).await;
        assert_eq!((status, echoed(&echo, "x-user-id")), (200, Some("client:jwt-bot")));
        // The same assertion again: its jti is spent.
        assert_error(&with_assertion(&app, &assertion).await, 401, "invalid_client");
    }
    assert_eq!(server.hits(), 1, "the key set is cached");
}

#[actix_web::test]
async fn bad_assertions_are_invalid_client() {
    let backend = TestBackend::start().await;
    let (key, stranger) = (TestKey::es256("ec-1"), TestKey::es256("ec-1"));
    let server = JwksServer::start(&[&key]);
    let app = gateway(&backend, Some(&server.url)).await;
    let now = app.state.clock.now();
    let with = |change: Value| {
        let mut claims = assertion_claims(&app);
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let cases = [
        ("wrong aud", key.sign(&with(json!({"aud": "https://elsewhere.example/token"})))),
        ("expired", key.sign(&with(json!({"exp": now - 120, "iat": now - 300})))),
        ("exp too far", key.sign(&with(json!({"exp": now + 3600})))),
        ("no exp", key.sign(&with(json!({"exp": null})))),
        ("iat in the future", key.sign(&with(json!({"iat": now + 600})))),
        ("no jti", key.sign(&with(json!({"jti": null})))),
        ("sub differs", key.sign(&with(json!({"sub": "ci-bot"})))),
        ("another client's id", key.sign(&with(json!({"iss": "ci-bot", "sub": "ci-bot"})))),
        ("wrong key, same kid", stranger.sign(&assertion_claims(&app))),
        (
            "unsigned",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode(assertion_claims(&app).to_string())
            ),
        ),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    for (what, assertion) in cases {
        let reply = with_assertion(&app, &assertion).await;
        assert_eq!(
            (reply.status, reply.json()["error"].clone()),
            (401, json!("invalid_client")),
            "{what}: {}",
            reply.body
        );
    }
    // The issuer is an accepted audience too, also inside an array.
    let reply =
        with_assertion(&app, &key.sign(&with(json!({"aud": ["x", app.settings.issuer.clone()]})))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // An assertion and a secret at once is one method too many.
    let resource = app.settings.resource_uri("calc");
    let both = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", &key.sign(&assertion_claims(&app))),
        ("client_secret", SECRET),
        ("resource", resource.as_str()),
    ];
    assert_error(&app.post_form("/oauth/token", &both, None).await, 400, "invalid_request");
}

#[actix_web::test]
async fn an_assertion_without_kid_is_tried_against_each_key_and_a_new_kid_refetches_the_set() {
    let backend = TestBackend::start().await;
    let (first, second) = (TestKey::es256("one"), TestKey::rs256("two"));
    let server = JwksServer::start(&[&first, &second]);
    let app = gateway(&backend, Some(&server.url)).await;

    // The TypeScript SDK's PrivateKeyJwtProvider sends no kid: the second key matches.
    let no_kid = second.sign_with_header(json!({"typ": "JWT"}), &assertion_claims(&app));
    let reply = with_assertion(&app, &no_kid).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // The client rotates to a key the gateway has not seen: it fetches the set again, but not
    // more than once in a while however many unknown kids arrive.
    let rotated = TestKey::es256("three");
    server.replace(&[&rotated]);
    let too_soon = with_assertion(&app, &rotated.sign(&assertion_claims(&app))).await;
    assert_error(&too_soon, 401, "invalid_client");
    assert_eq!(server.hits(), 1, "a refetch right after a fetch is refused");
    app.state.clock.advance(31);
    let reply = with_assertion(&app, &rotated.sign(&assertion_claims(&app))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(server.hits(), 2);
}

#[actix_web::test]
async fn an_inline_jwks_works_without_any_fetch() {
    let backend = TestBackend::start().await;
    let key = TestKey::es256("inline");
    let app = spawn_app_with(|s| {
        settings(s, &backend, None);
        let mut jwt = client("private_key_jwt", &["calc"], &[]);
        jwt.jwks = Some(jwks(&[&key]));
        s.clients.insert("jwt-bot".into(), jwt);
    })
    .await;
    let reply = with_assertion(&app, &key.sign(&assertion_claims(&app))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn a_jti_is_single_use_across_instances_sharing_redis() {
    let backend = TestBackend::start().await;
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]);
    let prefix = format!("machine-test-{}-{}:", std::process::id(), rand::random::<u32>());
    let on_redis = |s: &mut Settings| {
        settings(s, &backend, Some(&server.url));
        s.storage = crate::helpers::redis_storage(&prefix);
    };
    let a = spawn_app_with(on_redis).await;
    let b = spawn_app_with(on_redis).await;
    let assertion = key.sign(&assertion_claims(&a));
    assert_eq!(with_assertion(&a, &assertion).await.status, 200);
    assert_error(&with_assertion(&b, &assertion).await, 401, "invalid_client");
}

#[actix_web::test]
async fn metadata_names_the_grant_the_method_and_the_algorithms() {
    let backend = TestBackend::start().await;
    let app = gateway(&backend, None).await;
    let m = app.get("/.well-known/oauth-authorization-server").await.json();
    let has = |field: &str, value: &str| m[field].as_array().unwrap().iter().any(|v| v == value);
    assert!(has("grant_types_supported", "client_credentials"), "{m}");
    assert!(has("token_endpoint_auth_methods_supported", "private_key_jwt"), "{m}");
    for alg in ["RS256", "ES256"] {
        assert!(has("token_endpoint_auth_signing_alg_values_supported", alg), "{m}");
    }
    // Without a configured client that may use it, the grant is not advertised.
    let plain = spawn_app_with(|s| add_service(s, "calc", &[])).await;
    let m = plain.get("/.well-known/oauth-authorization-server").await.json();
    assert!(!m["grant_types_supported"].as_array().unwrap().iter().any(|v| v == "client_credentials"), "{m}");
}

#[actix_web::test]
async fn a_client_credentials_token_is_audited_with_the_client_and_service() {
    let backend = TestBackend::start().await;
    let path = std::env::temp_dir().join(format!(
        "machine-audit-{}-{}.log",
        std::process::id(),
        rand::random::<u32>()
    ));
    let audit_path = path.to_str().map(str::to_owned);
    let app = spawn_app_with(|s| {
        settings(s, &backend, None);
        s.audit.enabled = true;
        s.audit.path = audit_path;
    })
    .await;
    let form = [("grant_type", "client_credentials")];
    assert_eq!(app.post_form("/oauth/token", &form, Some(("ci-bot", SECRET))).await.status, 200);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let issued: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event"] == "token_issued")
        .collect();
    assert_eq!(issued.len(), 1, "{text}");
    let line = &issued[0];
    assert_eq!((line["client_id"].as_str(), line["client_name"].as_str()), (Some("ci-bot"), Some("CI bot")));
    assert_eq!((line["service"].as_str(), line["user_id"].as_str()), (Some("calc"), Some("client:ci-bot")));
    assert_eq!(line["provider"], "client");
    assert!(!text.contains(SECRET), "no secret in the trail");
}

#[actix_web::test]
async fn access_rules_admit_a_machine_client_only_by_name() {
    let backend = TestBackend::start().await;
    let app = spawn_app_with(|s| {
        settings(s, &backend, None);
        // A person's entries never let a client in; only `clients` does, per service.
        s.access = Some(AccessRule { emails: vec!["root@example.com".into()], ..AccessRule::default() });
        s.mcp_services.get_mut("other").unwrap().access =
            Some(AccessRule { clients: vec!["ci-post".into()], ..AccessRule::default() });
        s.mcp_services.get_mut("other").unwrap().tool_access.insert(
            "wipe".into(),
            AccessRule { emails: vec!["root@example.com".into()], ..AccessRule::default() },
        );
    })
    .await;
    let (calc, other) = (app.settings.resource_uri("calc"), app.settings.resource_uri("other"));
    fn ask(resource: &str) -> Vec<(&str, &str)> {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "ci-post"),
            ("client_secret", SECRET),
            ("resource", resource),
        ]
    }

    assert_error(&app.post_form("/oauth/token", &ask(&calc), None).await, 400, "unauthorized_client");
    let reply = app.post_form("/oauth/token", &ask(&other), None).await;
    assert_eq!(reply.status, 200, "listed by name: {}", reply.body);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let claims = app.state.keys.verify(&token, &other, app.state.clock.now()).unwrap();
    assert_eq!(claims.denied_tools, ["wipe"], "tool rules apply to clients too");
}

#[actix_web::test]
async fn a_configured_web_client_gets_codes_for_its_own_services_only() {
    let backend = TestBackend::start().await;
    let app = spawn_app_with(|s| {
        settings(s, &backend, None);
        let mut web = client("client_secret_basic", &["calc"], &[]);
        web.grant_types = vec!["authorization_code".into()];
        web.redirect_uris = vec![crate::flow::REDIRECT.into()];
        s.clients.insert("web-app".into(), web);
    })
    .await;
    let web = crate::flow::TestClient {
        client_id: "web-app".into(),
        client_secret: Some(SECRET.into()),
        redirect_uri: crate::flow::REDIRECT.into(),
    };
    let mut browser = crate::flow::Browser::new();
    let own = app.authorize(&mut browser, &crate::flow::AuthRequest::new(&app, &web, Some("calc"))).await;
    assert_eq!(own.status, 200, "the consent page for its own service: {}", own.body);
    for other in [Some("other"), None] {
        let page = app.authorize(&mut browser, &crate::flow::AuthRequest::new(&app, &web, other)).await;
        assert!(!page.body.contains("name=\"pending_id\""), "no consent page for {other:?}: {}", page.body);
        assert!(
            page.body.contains("invalid_target") || page.location().contains("error=invalid_target"),
            "{other:?}: {} {} {}",
            page.status,
            page.location(),
            page.body
        );
    }
}

#[actix_web::test]
async fn a_private_key_jwt_client_revokes_and_introspects_with_an_assertion() {
    let backend = TestBackend::start().await;
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]);
    let app = gateway(&backend, Some(&server.url)).await;
    let reply = with_assertion(&app, &key.sign(&assertion_claims(&app))).await;
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let authenticated = |path: &'static str, assertion: String| {
        let token = token.clone();
        let app = &app;
        async move {
            let form = [
                ("token", token.as_str()),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
            ];
            app.post_form(path, &form, None).await
        }
    };

    let live = authenticated("/oauth/introspect", key.sign(&assertion_claims(&app))).await;
    assert_eq!((live.status, live.json()["active"].as_bool()), (200, Some(true)), "{}", live.body);
    // A spent assertion authenticates nothing, here either.
    let once = key.sign(&assertion_claims(&app));
    assert_eq!(authenticated("/oauth/revoke", once.clone()).await.status, 200);
    assert_error(&authenticated("/oauth/revoke", once).await, 401, "invalid_client");
    let after = authenticated("/oauth/introspect", key.sign(&assertion_claims(&app))).await;
    assert_eq!(after.json()["active"], false, "revoked");
    assert_eq!(call(&app, "calc", &token).await.0, 401);
}
