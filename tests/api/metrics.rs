//! Metrics (issue 12, part 1): `/metrics` only on the listener `metrics.listen` names, in the
//! Prometheus text format, counting a real flow (logins, tokens, refresh reuse, revocations,
//! rate limits, denials, proxied requests by method and status class, backend errors and
//! timeouts, open event streams, storage operations) with labels no caller can choose, and the
//! delay of revocations between instances on Redis.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures_util::StreamExt;
use mcp_gateway::config::{Rate, RedisSettings, StorageKind, StorageSettings};

use crate::backend::TestBackend;
use crate::flow::{Browser, REDIRECT};
use crate::helpers::TestApp;
use crate::proxy::{gateway, service, token_for};
use crate::servers::RedisServer;

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{}}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

/// One scrape: each sample line (`name{labels}`) with its value.
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    /// The value of `sample` (`name{label="v",...}` with labels in the exposition's order:
    /// alphabetical), 0 when absent.
    fn get(&self, sample: &str) -> f64 {
        self.samples.get(sample).copied().unwrap_or(0.0)
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let port = app.metrics_port.expect("metrics listener");
    let mut res = app.client().get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let content_type = res.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = String::from_utf8(res.body().limit(4 << 20).await.unwrap().to_vec()).unwrap();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(name, value)| (name.to_owned(), value.parse().unwrap()))
        .collect();
    Scrape { text, samples }
}

/// Waits (up to 2 s) until `sample` reaches `want` in a scrape.
async fn eventually(app: &TestApp, sample: &str, want: f64) -> Scrape {
    for _ in 0..40 {
        let s = scrape(app).await;
        if s.get(sample) >= want {
            return s;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let s = scrape(app).await;
    panic!("{sample} never reached {want}:\n{}", s.text);
}

async fn post(app: &TestApp, path: &str, token: &str, body: &'static str) -> u16 {
    let res = app
        .client()
        .post(app.url(path))
        .bearer_auth(token)
        .content_type("application/json")
        .send_body(body)
        .await
        .unwrap();
    res.status().as_u16()
}

#[actix_web::test]
async fn metrics_are_off_unless_their_own_listener_is_configured() {
    let app = gateway(|_| {}).await;
    assert_eq!(app.metrics_port, None);
    let res = app.client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 404, "never on the public port");
}

#[actix_web::test]
async fn a_scrape_counts_a_real_flow_its_failures_and_the_proxied_traffic() {
    let backend = TestBackend::start().await;
    let (echo, sse, slow) =
        (backend.url("/echo"), backend.url("/sse?n=1000&delay_ms=100"), backend.url("/slow?ms=2000"));
    let app = gateway(|s| {
        s.metrics.listen = Some("127.0.0.1:0".into());
        s.limits.register = Rate { per_minute: 1, burst: 2 };
        s.mcp_services.insert("svc".into(), service(echo.clone()));
        s.mcp_services.insert("events".into(), service(sse));
        let mut slow = service(slow);
        slow.timeout = 200;
        s.mcp_services.insert("slow".into(), slow);
        s.mcp_services.insert("dead".into(), service("http://127.0.0.1:9/mcp".into()));
        let mut scoped = service(echo);
        scoped.tool_scopes = BTreeMap::from([("tools/call".to_owned(), vec!["tools".to_owned()])]);
        s.mcp_services.insert("scoped".into(), scoped);
    })
    .await;

    // A whole sign-in, a refresh, the first refresh token again (reuse), a revocation.
    let mut browser = Browser::new();
    let (client, tokens) = app.tokens_for(&mut browser, "alice@example.com").await;
    let refreshed = app.refresh(&client, &tokens.refresh_token, &[]).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    app.state.clock.advance(app.settings.tokens.refresh_grace as i64 + 5);
    let reused = app.refresh(&client, &tokens.refresh_token, &[]).await;
    assert_eq!(reused.status, 400);
    assert_eq!(app.revoke(&client, &tokens.access_token).await.status, 200);
    // The rate limit of registrations: two in the bucket, the third refused.
    let _second = app.register_client(&[REDIRECT]).await;
    let third = app.register_json(&serde_json::json!({ "redirect_uris": [REDIRECT] })).await;
    assert_eq!(third.status, 429);
    // A sign-in that fails: the callback with a state nobody issued.
    let _ = app.browse(&mut browser, "/oauth/callback?state=nobody-issued-this&code=x").await;

    // Proxied traffic: calls, a list, a denial, backend failures, a stranger's service name.
    let token = token_for(&app, "svc");
    for _ in 0..3 {
        assert_eq!(post(&app, "/svc/mcp", &token, CALL).await, 200);
    }
    assert_eq!(post(&app, "/svc/mcp", &token, LIST).await, 200);
    assert_eq!(post(&app, "/svc/mcp", "not-a-token", CALL).await, 401);
    assert_eq!(post(&app, "/scoped/mcp", &token_for(&app, "scoped"), CALL).await, 403);
    assert_eq!(post(&app, "/dead/mcp", &token_for(&app, "dead"), CALL).await, 502);
    assert_eq!(post(&app, "/slow/mcp", &token_for(&app, "slow"), CALL).await, 504);
    assert_eq!(post(&app, "/..%2Fadmin%22evil/mcp", &token, CALL).await, 404);

    // An event stream open while scraped, then closed.
    let mut stream =
        app.client().get(app.url("/events/mcp")).bearer_auth(token_for(&app, "events")).send().await.unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let _first_event = stream.next().await;
    let open = scrape(&app).await;
    drop(stream);

    let s = eventually(&app, r#"mcp_gateway_sse_streams_open{service="events"}"#, 0.0).await;
    assert_eq!(open.get(r#"mcp_gateway_sse_streams_open{service="events"}"#), 1.0, "{}", open.text);
    for (sample, want) in [
        (r#"mcp_gateway_logins_total{outcome="success",provider="dev"}"#, 1.0),
        (r#"mcp_gateway_logins_total{outcome="failure",provider="_other"}"#, 1.0),
        (r#"mcp_gateway_consents_granted_total{service="svc"}"#, 1.0),
        (r#"mcp_gateway_tokens_issued_total{service="svc"}"#, 1.0),
        (r#"mcp_gateway_tokens_refreshed_total{service="svc"}"#, 1.0),
        ("mcp_gateway_refresh_reuse_detected_total", 1.0),
        (r#"mcp_gateway_tokens_revoked_total{token_type="access_token"}"#, 1.0),
        ("mcp_gateway_clients_registered_total", 2.0),
        (r#"mcp_gateway_rate_limited_total{endpoint="register"}"#, 1.0),
        (r#"mcp_gateway_access_denied_total{reason="insufficient_scope",service="scoped"}"#, 1.0),
        (r#"mcp_gateway_proxy_requests_total{method="tools/call",service="svc",status="2xx"}"#, 3.0),
        (r#"mcp_gateway_proxy_requests_total{method="tools/list",service="svc",status="2xx"}"#, 1.0),
        (r#"mcp_gateway_proxy_requests_total{method="unknown",service="svc",status="4xx"}"#, 1.0),
        // Refused before its body was read for the metrics.
        (r#"mcp_gateway_proxy_requests_total{method="unknown",service="scoped",status="4xx"}"#, 1.0),
        (r#"mcp_gateway_proxy_requests_total{method="tools/call",service="dead",status="5xx"}"#, 1.0),
        (r#"mcp_gateway_proxy_requests_total{method="stream",service="events",status="2xx"}"#, 1.0),
        (r#"mcp_gateway_proxy_requests_total{method="unknown",service="_other",status="4xx"}"#, 1.0),
        (r#"mcp_gateway_proxy_request_duration_seconds_count{method="tools/call",service="svc"}"#, 3.0),
        (r#"mcp_gateway_backend_errors_total{service="dead"}"#, 1.0),
        (r#"mcp_gateway_backend_timeouts_total{service="slow"}"#, 1.0),
        (r#"mcp_gateway_storage_operations_total{backend="memory",operation="put",outcome="ok"}"#, 1.0),
        (r#"mcp_gateway_storage_operations_total{backend="memory",operation="take",outcome="ok"}"#, 1.0),
    ] {
        assert!(s.get(sample) >= want, "{sample} below {want}:\n{}", s.text);
    }
    assert!(s
        .text
        .contains(&format!(r#"mcp_gateway_build_info{{version="{}"}} 1"#, env!("CARGO_PKG_VERSION"))));
    assert_eq!(s.get(r#"mcp_gateway_tokens_issued_total{service="svc"}"#), 1.0, "exact counts");
    assert!(!s.text.contains("evil") && !s.text.contains("admin"), "no caller-chosen label:\n{}", s.text);
    for secret in [&tokens.access_token, &tokens.refresh_token, &client.client_id] {
        assert!(!s.text.contains(secret.as_str()));
    }
}

#[actix_web::test]
async fn a_revocation_on_one_instance_is_timed_on_arrival_at_another() {
    let backend = TestBackend::start().await;
    let redis = RedisServer::start().await;
    let storage_settings = StorageSettings {
        kind: StorageKind::Redis,
        redis: RedisSettings {
            url: Some(format!("redis://127.0.0.1:{}", redis.port)),
            key_prefix: format!("metrics-test-{}:", redis.port),
            ..RedisSettings::default()
        },
        ..StorageSettings::default()
    };
    let url = backend.url("/echo");
    let instance = || {
        gateway(|s| {
            s.metrics.listen = Some("127.0.0.1:0".into());
            s.storage = storage_settings.clone();
            s.mcp_services.insert("svc".into(), service(url.clone()));
        })
    };
    let (first, second) = (instance().await, instance().await);
    let mut browser = Browser::new();
    let (client, tokens) = first.tokens_for(&mut browser, "alice@example.com").await;

    assert_eq!(first.revoke(&client, &tokens.refresh_token).await.status, 200);

    let s = eventually(&second, "mcp_gateway_revocation_propagation_seconds_count", 1.0).await;
    assert!(s.get("mcp_gateway_revocation_propagation_seconds_sum") < 5.0, "{}", s.text);
    let published = scrape(&first).await;
    assert!(
        published.get(
            r#"mcp_gateway_storage_operations_total{backend="redis",operation="publish_revocation",outcome="ok"}"#
        ) >= 1.0,
        "{}",
        published.text
    );
}
