//! `/{service}/mcp`: the bearer check, the header rules and the streaming forward, against the
//! test backend (checklist A1, A2, A8, A9, A11, A12, C1–C6).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mcp_gateway::config::{ServiceSettings, Settings};
use mcp_gateway::core::model::AccessClaims;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend::{BackendOptions, TestBackend};
use crate::helpers::{spawn_app_with, TestApp};

pub fn service(url: String) -> ServiceSettings {
    ServiceSettings {
        name: "Test service".into(),
        url,
        oauth_provider: None,
        auth_required: true,
        scopes: Vec::new(),
        timeout: 30_000,
        tool_scopes: BTreeMap::new(),
        access: None,
        tool_access: BTreeMap::new(),
        ca_file: None,
        insecure_skip_verify: false,
    }
}

/// The gateway with the services `adjust` adds, on one worker so that a second request
/// with the same token meets that worker's verified-token cache.
pub async fn gateway(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.runtime.workers = 1;
        adjust(s);
    })
    .await
}

/// A gateway with `svc` → the backend's `/mcp`.
async fn gateway_for(backend: &TestBackend) -> TestApp {
    let url = backend.url("/mcp");
    gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await
}

pub fn claims(app: &TestApp, service_id: &str) -> AccessClaims {
    let now = app.state.clock.now();
    AccessClaims {
        iss: app.settings.issuer.clone(),
        sub: "dev_alice".into(),
        aud: app.settings.resource_uri(service_id),
        exp: now + 3600,
        iat: now,
        jti: format!("jti-{}", rand::random::<u64>()),
        fid: format!("fid-{}", rand::random::<u64>()),
        client_id: "client-1".into(),
        scope: "read".into(),
        email: Some("alice@example.com".into()),
        name: Some("Alice Example".into()),
        provider: "dev".into(),
        avatar: Some("https://example.com/alice.png".into()),
        denied_tools: Vec::new(),
    }
}

pub fn sign(app: &TestApp, claims: &AccessClaims) -> String {
    app.state.keys.sign(claims).expect("sign")
}

pub fn token_for(app: &TestApp, service_id: &str) -> String {
    sign(app, &claims(app, service_id))
}

pub fn header(res: &awc::ClientResponse<impl Sized>, name: &str) -> Option<String> {
    res.headers().get(name).map(|v| v.to_str().expect("ascii header").to_owned())
}

/// The first value of `name` in the backend's echo.
pub fn echoed<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

pub async fn body_json(
    res: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Value {
    let bytes = res.body().await.expect("body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("json body: {}", String::from_utf8_lossy(&bytes)))
}

async fn post_with_token(app: &TestApp, path: &str, token: &str) -> u16 {
    let res = app
        .client()
        .post(app.url(path))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send_body("{}")
        .await
        .expect("request");
    res.status().as_u16()
}

#[actix_web::test]
async fn a1_no_token_gets_the_challenge_for_post_get_and_delete() {
    let backend = TestBackend::start().await;
    let url = backend.url("/mcp");
    let app = gateway(|s| {
        let mut scoped = service(url.clone());
        scoped.scopes = vec!["read".into(), "offline_access".into(), "write".into()];
        s.mcp_services.insert("scoped".into(), scoped);
        s.mcp_services.insert("plain".into(), service(url));
    })
    .await;
    let issuer = &app.settings.issuer;
    let expected_scoped = format!(
        "Bearer resource_metadata=\"{issuer}/.well-known/oauth-protected-resource/scoped/mcp\", scope=\"read write\""
    );
    let expected_plain =
        format!("Bearer resource_metadata=\"{issuer}/.well-known/oauth-protected-resource/plain/mcp\"");

    for method in ["POST", "GET", "DELETE"] {
        for (svc, expected) in [("scoped", &expected_scoped), ("plain", &expected_plain)] {
            let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
            let mut res =
                app.client().request(method.clone(), app.url(&format!("/{svc}/mcp"))).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 401, "{method} {svc}");
            assert_eq!(
                header(&res, "www-authenticate").as_deref(),
                Some(expected.as_str()),
                "{method} {svc}"
            );
            let body = body_json(&mut res).await;
            assert!(body["error"].is_string(), "small JSON body");
        }
    }
}

#[actix_web::test]
async fn a2_expired_token_is_invalid_token_even_when_cached() {
    let backend = TestBackend::start().await;
    let app = gateway_for(&backend).await;
    let token = token_for(&app, "svc");
    assert_eq!(post_with_token(&app, "/svc/mcp", &token).await, 200, "fresh token works (and is cached)");

    app.state.clock.advance(3600 + 60);
    let mut res = app
        .client()
        .post(app.url("/svc/mcp"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let challenge = header(&res, "www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer resource_metadata=\""), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("error_description=\""), "{challenge}");
    assert_eq!(body_json(&mut res).await["error"], "invalid_token");
}

#[actix_web::test]
async fn garbage_and_foreign_tokens_are_invalid_token() {
    let backend = TestBackend::start().await;
    let app = gateway_for(&backend).await;
    let mut forged = claims(&app, "svc");
    forged.iss = "https://evil.example".into();
    for token in ["not-a-jwt".to_owned(), sign(&app, &forged)] {
        let res = app
            .client()
            .post(app.url("/svc/mcp"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send_body("{}")
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
        assert!(header(&res, "www-authenticate").unwrap().contains("error=\"invalid_token\""));
    }
}

/// `token` with one bit of its signature's `r` flipped: the same header and claims, a
/// signature that no longer verifies (and is still low-S).
fn with_broken_signature(token: &str, bit: usize) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[1 + bit / 8] ^= 1 << (bit % 8);
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes))
}

#[actix_web::test]
async fn remembered_forgeries_stay_refused_and_never_shadow_the_real_token() {
    // Arrange: the gateway remembers signatures it refused; an attacker who knows a victim's
    // claims (not their signature) sends forgeries of exactly those claims first.
    let backend = TestBackend::start().await;
    let url = backend.url("/mcp");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
        s.runtime.token_cache_size = 8;
    })
    .await;
    let real = token_for(&app, "svc");
    let call = |token: String| {
        app.client()
            .post(app.url("/svc/mcp"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Content-Type", "application/json"))
            .send_body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
    };

    // Act + assert: one forgery, again and again, is refused the same way every time.
    let forged = with_broken_signature(&real, 3);
    for _ in 0..3 {
        let res = call(forged.clone()).await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
        assert!(header(&res, "www-authenticate").unwrap().contains("error=\"invalid_token\""));
    }
    // More forgeries of the same claims than the cache holds (8).
    for bit in 8..8 + 64 {
        assert_eq!(call(with_broken_signature(&real, bit)).await.unwrap().status().as_u16(), 401);
    }
    // The real token, sharing every claim with the forgeries, still passes, and keeps passing.
    for _ in 0..2 {
        let res = call(real.clone()).await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "the real token was refused after its forgeries");
    }
    assert_eq!(
        call(forged).await.unwrap().status().as_u16(),
        401,
        "a forgery was let in after the real token"
    );
}

#[actix_web::test]
async fn a8_token_for_one_service_is_refused_by_another() {
    let backend = TestBackend::start().await;
    let url = backend.url("/mcp");
    let app = gateway(|s| {
        s.mcp_services.insert("a".into(), service(url.clone()));
        s.mcp_services.insert("b".into(), service(url));
    })
    .await;
    let token_a = token_for(&app, "a");
    assert_eq!(post_with_token(&app, "/a/mcp", &token_a).await, 200);
    let res = app
        .client()
        .post(app.url("/b/mcp"))
        .insert_header(("Authorization", format!("Bearer {token_a}")))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(header(&res, "www-authenticate").unwrap().contains("error=\"invalid_token\""));
}

#[actix_web::test]
async fn a9_token_in_the_query_is_not_accepted() {
    let backend = TestBackend::start().await;
    let app = gateway_for(&backend).await;
    let token = token_for(&app, "svc");
    let res =
        app.client().post(app.url(&format!("/svc/mcp?access_token={token}"))).send_body("{}").await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let challenge = header(&res, "www-authenticate").unwrap();
    assert!(!challenge.contains("error="), "treated as no token: {challenge}");
}

#[actix_web::test]
async fn revoked_token_or_family_is_refused_even_when_cached() {
    let backend = TestBackend::start().await;
    let app = gateway_for(&backend).await;
    let now = app.state.clock.now();
    let by_jti = claims(&app, "svc");
    let by_fid = claims(&app, "svc");
    let (t1, t2) = (sign(&app, &by_jti), sign(&app, &by_fid));
    assert_eq!(post_with_token(&app, "/svc/mcp", &t1).await, 200);
    assert_eq!(post_with_token(&app, "/svc/mcp", &t2).await, 200);

    app.state.revoked.insert(&by_jti.jti, now + 3600);
    app.state.revoked.insert(&by_fid.fid, now + 3600);
    assert_eq!(post_with_token(&app, "/svc/mcp", &t1).await, 401);
    assert_eq!(post_with_token(&app, "/svc/mcp", &t2).await, 401);
    assert_eq!(post_with_token(&app, "/svc/mcp", &token_for(&app, "svc")).await, 200, "others unaffected");
}

#[actix_web::test]
async fn a11_a12_c2_c4_header_rules() {
    let backend = TestBackend::start().await;
    let app = gateway_for(&backend).await;
    let token = token_for(&app, "svc");
    let mut res = app
        .client()
        .post(app.url("/svc/mcp?cursor=7&access_token=leak"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Proxy-Authorization", "Basic c2VjcmV0"))
        .insert_header(("x-user-id", "admin"))
        .insert_header(("X-User-Role", "root"))
        .insert_header(("Cookie", "mcpgw_session=s1; __Host-mcpgw_csrf=c1; app_pref=dark"))
        .insert_header(("Keep-Alive", "timeout=5"))
        .insert_header(("TE", "trailers"))
        .insert_header(("Proxy-Connection", "keep-alive"))
        .insert_header(("Mcp-Session-Id", "s-123"))
        .insert_header(("MCP-Protocol-Version", "2025-11-25"))
        .insert_header(("Last-Event-ID", "42"))
        .insert_header(("Mcp-Method", "tools/call"))
        .insert_header(("Mcp-Name", "add"))
        .insert_header(("Mcp-Param-Foo", "bar"))
        .insert_header(("Accept", "application/json, text/event-stream"))
        .content_type("application/json")
        .send_body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "mcp-session-id").as_deref(), Some("s-123"), "session id comes back");
    let echo = body_json(&mut res).await;
    let headers = echo["headers"].as_object().unwrap();

    // A11: no token passthrough, in the header or the query.
    assert!(!headers.contains_key("authorization"));
    assert!(!headers.contains_key("proxy-authorization"));
    assert_eq!(echo["query"], "cursor=7");
    // A12: the gateway's identity, not the client's.
    assert_eq!(echoed(&echo, "x-user-id"), Some("dev_alice"));
    assert_eq!(echo["headers"]["x-user-id"].as_array().unwrap().len(), 1);
    assert!(!headers.contains_key("x-user-role"));
    assert_eq!(echoed(&echo, "x-user-email"), Some("alice@example.com"));
    assert_eq!(echoed(&echo, "x-user-name"), Some("Alice Example"));
    assert_eq!(echoed(&echo, "x-user-provider"), Some("dev"));
    assert_eq!(echoed(&echo, "x-user-avatar"), Some("https://example.com/alice.png"));
    // Gateway cookies dropped, others kept.
    assert_eq!(echoed(&echo, "cookie"), Some("app_pref=dark"));
    // Hop-by-hop dropped; Host is the backend's.
    for hop in ["keep-alive", "te", "proxy-connection"] {
        assert!(!headers.contains_key(hop), "{hop} forwarded");
    }
    assert_eq!(echoed(&echo, "host"), Some(format!("127.0.0.1:{}", backend.port).as_str()));
    assert_eq!(echoed(&echo, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(echoed(&echo, "x-forwarded-proto"), Some("http"));
    assert_eq!(echoed(&echo, "x-forwarded-host"), Some(format!("127.0.0.1:{}", app.port).as_str()));
    // C2, C4: MCP headers pass unchanged.
    for (name, value) in [
        ("mcp-session-id", "s-123"),
        ("mcp-protocol-version", "2025-11-25"),
        ("last-event-id", "42"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "add"),
        ("mcp-param-foo", "bar"),
        ("accept", "application/json, text/event-stream"),
        ("content-type", "application/json"),
    ] {
        assert_eq!(echoed(&echo, name), Some(value), "{name}");
    }
    assert_eq!(echo["body"], r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#);
    assert_eq!(echoed(&echo, "content-length"), Some("46"), "a sized body stays sized");
    assert_eq!(echo["method"], "POST");
}

/// awc never sends a caller's `Connection` header, so this speaks HTTP/1.1 by hand.
#[actix_web::test]
async fn headers_named_in_connection_are_dropped() {
    let backend = TestBackend::start().await;
    let app = gateway_for(&backend).await;
    let token = token_for(&app, "svc");
    let body = "{}";
    let request = format!(
        "POST /svc/mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close, X-Hop\r\nX-Hop: secret\r\nX-Kept: yes\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        app.port,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let json_start = raw.find("{\"").unwrap();
    let echo: Value = serde_json::from_str(raw[json_start..].trim()).unwrap();
    assert_eq!(echoed(&echo, "x-kept"), Some("yes"));
    assert!(echo["headers"].get("x-hop").is_none(), "x-hop forwarded: {echo}");
    assert!(echo["headers"].get("connection").is_none_or(|v| !v.to_string().contains("X-Hop")));
}

#[actix_web::test]
async fn auth_not_required_forwards_without_token_and_without_identity() {
    let backend = TestBackend::start().await;
    let url = backend.url("/mcp");
    let app = gateway(|s| {
        let mut open = service(url);
        open.auth_required = false;
        s.mcp_services.insert("open".into(), open);
    })
    .await;
    let mut res = app
        .client()
        .post(app.url("/open/mcp"))
        .insert_header(("Authorization", "Bearer something-for-someone-else"))
        .insert_header(("x-user-id", "admin"))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let echo = body_json(&mut res).await;
    assert!(echo["headers"].get("authorization").is_none());
    assert!(echo["headers"].get("x-user-id").is_none());

    let res = app.client().post(app.url("/open/mcp")).send_body("{}").await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[actix_web::test]
async fn unknown_service_is_404_json() {
    let app = gateway(|_| {}).await;
    let mut res = app.client().post(app.url("/nope/mcp")).send_body("{}").await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(
        body_json(&mut res).await,
        serde_json::json!({"error": "not_found", "error_description": "unknown service 'nope'"})
    );
}

#[actix_web::test]
async fn c1_foreign_origin_is_403_and_loopback_or_listed_origins_pass() {
    let backend = TestBackend::start().await;
    let url = backend.url("/mcp");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
        s.cors.allow_origins = vec!["https://app.example".into()];
    })
    .await;
    let token = token_for(&app, "svc");
    let send = |origin: &'static str| {
        app.client()
            .post(app.url("/svc/mcp"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Origin", origin))
            .send_body("{}")
    };
    let mut res = send("https://evil.example").await.unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(body_json(&mut res).await["error"], "forbidden");
    assert_eq!(send("http://localhost:6274").await.unwrap().status().as_u16(), 200);
    assert_eq!(send("http://127.0.0.1:3000").await.unwrap().status().as_u16(), 200);
    let mut allowed = send("https://app.example").await.unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
    let echo = body_json(&mut allowed).await;
    assert_eq!(
        echoed(&echo, "origin"),
        None,
        "the gateway judged the Origin; the backend must not re-judge it"
    );
}

#[actix_web::test]
async fn wildcard_origin_does_not_open_the_origin_check_outside_debug() {
    let backend = TestBackend::start().await;
    let url = backend.url("/mcp");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
        s.cors.allow_origins = vec!["*".into()];
        s.debug = false;
    })
    .await;
    let res = app
        .client()
        .post(app.url("/svc/mcp"))
        .insert_header(("Authorization", format!("Bearer {}", token_for(&app, "svc"))))
        .insert_header(("Origin", "https://evil.example"))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
}

#[actix_web::test]
async fn c6_preflight_needs_no_token_and_challenge_headers_are_exposed() {
    let backend = TestBackend::start().await;
    let url = backend.url("/mcp");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
        s.cors.allow_origins = vec!["https://app.example".into()];
    })
    .await;
    let res = app
        .client()
        .request(awc::http::Method::OPTIONS, app.url("/svc/mcp"))
        .insert_header(("Origin", "https://app.example"))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .insert_header((
            "Access-Control-Request-Headers",
            "authorization, mcp-protocol-version, mcp-session-id",
        ))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "preflight: {}", res.status());
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some("https://app.example"));
    let allowed = header(&res, "access-control-allow-headers").unwrap().to_ascii_lowercase();
    for h in ["authorization", "mcp-protocol-version", "mcp-session-id"] {
        assert!(allowed.contains(h), "{h} not allowed: {allowed}");
    }

    let res = app
        .client()
        .post(app.url("/svc/mcp"))
        .insert_header(("Origin", "https://app.example"))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let exposed = header(&res, "access-control-expose-headers").unwrap().to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate") && exposed.contains("mcp-session-id"), "{exposed}");
}

#[actix_web::test]
async fn c3_sse_events_reach_the_client_one_by_one() {
    let backend = TestBackend::start().await;
    let url = backend.url("/sse");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;
    let token = token_for(&app, "svc");
    let mut res = app
        .client()
        .get(app.url("/svc/mcp?n=3&delay_ms=800"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Accept", "text/event-stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(header(&res, "cache-control").as_deref(), Some("no-cache"));
    let first = res.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"n\":0"));
    assert!(backend.events_sent() < 3, "first event arrived only after the backend sent the last one");

    let mut all = first.to_vec();
    while let Some(chunk) = res.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    let all = String::from_utf8(all).unwrap();
    assert_eq!(all.matches("data: ").count(), 3, "{all}");
}

#[actix_web::test]
async fn c3_a_stream_longer_than_the_service_timeout_is_not_cut() {
    let backend = TestBackend::start().await;
    let url = backend.url("/sse");
    let app = gateway(|s| {
        let mut svc = service(url);
        svc.timeout = 300;
        s.mcp_services.insert("svc".into(), svc);
    })
    .await;
    let token = token_for(&app, "svc");
    let started = Instant::now();
    let mut res = app
        .client()
        .post(app.url("/svc/mcp?n=4&delay_ms=400"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body = res.body().limit(1 << 20).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1200), "the stream really outlived the timeout");
    assert_eq!(String::from_utf8_lossy(&body).matches("data: ").count(), 4);
}

#[actix_web::test]
async fn c3_client_disconnect_drops_the_backend_stream() {
    let backend = TestBackend::start().await;
    let url = backend.url("/sse");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;
    let token = token_for(&app, "svc");
    let mut res = app
        .client()
        .get(app.url("/svc/mcp?n=1000&delay_ms=50"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    let _ = res.next().await.unwrap().unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    assert!(!backend.sse.dropped_early.load(std::sync::atomic::Ordering::SeqCst), "still streaming");
    drop(res);

    let deadline = Instant::now() + Duration::from_secs(5);
    while !backend.sse.dropped_early.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "backend still streaming after the client left");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(backend.events_sent() < 1000);
}

#[actix_web::test]
async fn c5_backend_statuses_pass_through_unchanged() {
    let backend = TestBackend::start_with(BackendOptions { get_status: 405 }).await;
    let (mcp, accepted, missing) = (backend.url("/mcp"), backend.url("/accepted"), backend.url("/missing"));
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(mcp));
        s.mcp_services.insert("acc".into(), service(accepted));
        s.mcp_services.insert("gone".into(), service(missing));
    })
    .await;
    let auth = |svc: &str| ("Authorization", format!("Bearer {}", token_for(&app, svc)));

    let res = app.client().get(app.url("/svc/mcp")).insert_header(auth("svc")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 405, "GET without a stream");
    let mut res = app.client().delete(app.url("/svc/mcp")).insert_header(auth("svc")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 204);
    assert!(res.body().await.unwrap().is_empty());
    let mut res =
        app.client().post(app.url("/acc/mcp")).insert_header(auth("acc")).send_body("{}").await.unwrap();
    assert_eq!(res.status().as_u16(), 202);
    assert!(res.body().await.unwrap().is_empty());
    let mut res =
        app.client().post(app.url("/gone/mcp")).insert_header(auth("gone")).send_body("{}").await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(res.body().await.unwrap(), "no such session", "the backend's own 404");
}

#[actix_web::test]
async fn slow_backend_head_is_504_naming_the_service() {
    let backend = TestBackend::start().await;
    let url = backend.url("/slow?ms=3000");
    let app = gateway(|s| {
        let mut svc = service(url);
        svc.timeout = 200;
        s.mcp_services.insert("slow".into(), svc);
    })
    .await;
    let started = Instant::now();
    let mut res = app
        .client()
        .post(app.url("/slow/mcp"))
        .insert_header(("Authorization", format!("Bearer {}", token_for(&app, "slow"))))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 504);
    assert!(started.elapsed() < Duration::from_millis(2000));
    let body = body_json(&mut res).await;
    let text = body.to_string();
    assert!(text.contains("'slow'"), "{text}");
    assert!(!text.contains("127.0.0.1"), "backend address leaked: {text}");
}

#[actix_web::test]
async fn unreachable_backend_is_502_naming_the_service() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = gateway(|s| {
        s.mcp_services.insert("down".into(), service(format!("http://127.0.0.1:{closed_port}/mcp")));
    })
    .await;
    let mut res = app
        .client()
        .post(app.url("/down/mcp"))
        .insert_header(("Authorization", format!("Bearer {}", token_for(&app, "down"))))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 502);
    let text = body_json(&mut res).await.to_string();
    assert!(text.contains("'down'"), "{text}");
    assert!(!text.contains(&closed_port.to_string()), "backend address leaked: {text}");
}

/// The backend connections are not capped per host (general-purpose clients often allow 100):
/// long-lived streams beyond a cap would wait for a free connection. 150 concurrent streams
/// must all get their head at once. (One token opens them all, so its cap of open streams,
/// `limits.max_streams_per_token`, is raised for this test.)
#[actix_web::test]
async fn more_than_100_concurrent_streams_all_start() {
    let backend = TestBackend::start().await;
    let url = backend.url("/sse");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
        s.limits.max_streams_per_token = 200;
    })
    .await;
    let token = token_for(&app, "svc");
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(1000))
        .timeout(Duration::from_secs(2))
        .finish();
    let streams = (0..150).map(|_| {
        client
            .get(app.url("/svc/mcp?n=2&delay_ms=4000"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
    });
    let results = futures_util::future::join_all(streams).await;
    let started = results.iter().filter(|r| matches!(r, Ok(res) if res.status().as_u16() == 200)).count();
    assert_eq!(started, 150, "streams that got their head within 2 s");
}

#[actix_web::test]
async fn head_requests_keep_the_length_and_the_connection_usable() {
    let backend = TestBackend::start().await;
    let url = backend.url("/echo");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;
    let auth = ("Authorization", format!("Bearer {}", token_for(&app, "svc")));
    let client = app.client();
    for _ in 0..3 {
        let mut res = client.head(app.url("/svc/mcp")).insert_header(auth.clone()).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert!(res.body().await.unwrap().is_empty());
    }
    let mut res = client.get(app.url("/svc/mcp")).insert_header(auth).send().await.unwrap();
    assert_eq!(body_json(&mut res).await["method"], "GET");
}

#[actix_web::test]
async fn a_chunked_request_body_is_streamed_to_the_backend() {
    let backend = TestBackend::start().await;
    let app = gateway_for(&backend).await;
    let chunks = ["{\"jsonrpc\":", "\"2.0\",", "\"id\":1}"]
        .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from_static(c.as_bytes())));
    let mut res = app
        .client()
        .post(app.url("/svc/mcp"))
        .insert_header(("Authorization", format!("Bearer {}", token_for(&app, "svc"))))
        .send_stream(futures_util::stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let echo = body_json(&mut res).await;
    assert_eq!(echo["body"], "{\"jsonrpc\":\"2.0\",\"id\":1}");
    assert_eq!(echoed(&echo, "transfer-encoding"), Some("chunked"));
}
