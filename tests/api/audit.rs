//! Request ids and the audit trail of proxied traffic (issue 12, parts 2 and 3): every answer
//! carries an `X-Request-Id` the backend also gets (a client's own is replaced unless it came
//! through a trusted proxy), `traceparent` passes unchanged, and each `tools/call` leaves one
//! audit line whatever its framing (JSON or an event stream, sized or chunked), with denials
//! recorded too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use serde_json::Value;

use crate::backend::TestBackend;
use crate::helpers::TestApp;
use crate::proxy::{body_json, claims, echoed, gateway, header, service, sign, token_for};

const CALL: &str =
    r#"{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"add","arguments":{"a":1}}}"#;

fn trail_path() -> PathBuf {
    std::env::temp_dir().join(format!("mcp-gateway-audit-test-{}.jsonl", rand::random::<u64>()))
}

/// The audit lines written so far, waiting up to 2 s for at least `want`.
async fn trail(path: &Path, want: usize) -> Vec<Value> {
    for _ in 0..40 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
        if lines.len() >= want {
            return lines;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {want} audit lines in {}", path.display());
}

/// A gateway auditing to `path`, with `echo` (JSON), `sse` (an event stream) and `scoped`
/// (`tools/call` needs the `tools` scope) in front of `backend`.
async fn audited(backend: &TestBackend, path: &Path) -> TestApp {
    let (echo, sse) = (backend.url("/echo"), backend.url("/sse?n=2&delay_ms=20"));
    let path = path.to_str().map(str::to_owned);
    gateway(|s| {
        s.audit.enabled = true;
        s.audit.path = path;
        s.mcp_services.insert("echo".into(), service(echo.clone()));
        s.mcp_services.insert("sse".into(), service(sse));
        let mut scoped = service(echo);
        scoped.tool_scopes = BTreeMap::from([("tools/call".to_owned(), vec!["tools".to_owned()])]);
        s.mcp_services.insert("scoped".into(), scoped);
    })
    .await
}

#[actix_web::test]
async fn every_answer_has_an_id_the_backend_gets_too_and_traceparent_passes() {
    let backend = TestBackend::start().await;
    let app = audited(&backend, &trail_path()).await;
    let token = token_for(&app, "echo");
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let send = |id: &'static str| {
        app.client()
            .post(app.url("/echo/mcp"))
            .bearer_auth(&token)
            .insert_header(("X-Request-Id", id))
            .insert_header(("traceparent", trace))
            .content_type("application/json")
            .send_body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
    };

    let mut first = send("chosen-by-the-client").await.unwrap();
    let mut second = send("chosen-by-the-client").await.unwrap();
    let health = app.client().get(app.url("/health")).send().await.unwrap();

    let (id1, id2) = (header(&first, "x-request-id").unwrap(), header(&second, "x-request-id").unwrap());
    assert_ne!(id1, "chosen-by-the-client", "a stranger does not name requests");
    assert_ne!(id1, id2, "each request its own id");
    assert!(id1.len() >= 16, "{id1}");
    assert!(header(&health, "x-request-id").is_some(), "every route answers an id");
    let (echo1, echo2) = (body_json(&mut first).await, body_json(&mut second).await);
    assert_eq!(echoed(&echo1, "x-request-id"), Some(id1.as_str()), "the backend sees the same id");
    assert_eq!(echo1["headers"]["x-request-id"].as_array().map(Vec::len), Some(1));
    assert_eq!(echoed(&echo2, "x-request-id"), Some(id2.as_str()));
    assert_eq!(echoed(&echo1, "traceparent"), Some(trace), "traceparent unchanged");
}

#[actix_web::test]
async fn a_trusted_proxy_names_the_request_with_a_plain_token_only() {
    let backend = TestBackend::start().await;
    let url = backend.url("/echo");
    let app = gateway(|s| {
        s.mcp_services.insert("echo".into(), service(url));
        s.trusted_proxies = serde_json::from_value(serde_json::json!(["127.0.0.1/32"])).unwrap();
    })
    .await;
    let token = token_for(&app, "echo");
    let send = |id: &'static str| {
        app.client()
            .post(app.url("/echo/mcp"))
            .bearer_auth(&token)
            .insert_header(("X-Request-Id", id))
            .content_type("application/json")
            .send_body("{}")
    };

    let mut kept = send("lb-7f3c.11").await.unwrap();
    let replaced = send("two words").await.unwrap();

    assert_eq!(header(&kept, "x-request-id").as_deref(), Some("lb-7f3c.11"));
    assert_eq!(echoed(&body_json(&mut kept).await, "x-request-id"), Some("lb-7f3c.11"));
    assert_ne!(header(&replaced, "x-request-id").as_deref(), Some("two words"));
}

#[actix_web::test]
async fn each_tool_call_leaves_one_line_for_json_and_event_stream_answers() {
    let backend = TestBackend::start().await;
    let path = trail_path();
    let app = audited(&backend, &path).await;
    let call = |service: &'static str| {
        app.client()
            .post(app.url(&format!("/{service}/mcp")))
            .bearer_auth(token_for(&app, service))
            .insert_header(("Accept", "application/json, text/event-stream"))
            .content_type("application/json")
            .send_body(CALL)
    };

    let mut json = call("echo").await.unwrap();
    let _ = json.body().await.unwrap();
    let mut events = call("sse").await.unwrap();
    let streamed = events.body().await.unwrap();
    let lines = trail(&path, 2).await;

    assert!(String::from_utf8_lossy(&streamed).contains("\"n\":1"), "the stream went through");
    let services: Vec<&str> = lines.iter().filter_map(|l| l["service"].as_str()).collect();
    assert_eq!(services, ["echo", "sse"], "{lines:#?}");
    for line in &lines {
        assert_eq!(line["event"], "tool_call");
        assert_eq!((line["tool"].as_str(), line["jsonrpc_id"].as_str()), (Some("add"), Some("call-1")));
        assert_eq!((line["status"].as_u64(), line["user_id"].as_str()), (Some(200), Some("dev_alice")));
        assert_eq!(line["user_email"], "alice@example.com");
        assert_eq!(line["client_id"], "client-1");
        assert!(line["request_id"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(!line.to_string().contains("arguments") && line.get("a").is_none(), "no arguments: {line}");
    }
    assert!(lines[1]["duration_ms"].as_u64() >= Some(20), "until the stream ended: {}", lines[1]);
    let _ = std::fs::remove_file(&path);
}

#[actix_web::test]
async fn a_chunked_call_is_recorded_unread_and_a_refused_one_as_a_denial() {
    let backend = TestBackend::start().await;
    let path = trail_path();
    let app = audited(&backend, &path).await;
    let chunks = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(CALL.as_bytes()))]);

    let mut chunked = app
        .client()
        .post(app.url("/echo/mcp"))
        .bearer_auth(token_for(&app, "echo"))
        .content_type("application/json")
        .send_stream(chunks)
        .await
        .unwrap();
    let _ = chunked.body().await.unwrap();
    let mut read_only = claims(&app, "scoped");
    read_only.scope = "read".into();
    let refused = app
        .client()
        .post(app.url("/scoped/mcp"))
        .bearer_auth(sign(&app, &read_only))
        .content_type("application/json")
        .send_body(CALL)
        .await
        .unwrap();
    let lines = trail(&path, 2).await;

    assert_eq!(chunked.status().as_u16(), 200);
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(lines[0]["event"], "tool_call", "{lines:#?}");
    assert_eq!(lines[0]["reason"], "body_not_inspected");
    assert!(lines[0].get("tool").is_none());
    assert_eq!(lines[1]["event"], "access_denied");
    assert_eq!(
        (lines[1]["reason"].as_str(), lines[1]["service"].as_str()),
        (Some("insufficient_scope"), Some("scoped"))
    );
    let _ = std::fs::remove_file(&path);
}

#[actix_web::test]
async fn a_person_denying_consent_is_recorded() {
    let path = trail_path();
    let audit_path = path.to_str().map(str::to_owned);
    let app = crate::helpers::spawn_app_with(|s| {
        s.audit.enabled = true;
        s.audit.path = audit_path;
        crate::flow::add_service(s, "svc", &[]);
    })
    .await;
    let client = app.register_client(&[crate::flow::REDIRECT]).await;
    let mut browser = crate::flow::Browser::new();
    let request = crate::flow::AuthRequest::new(&app, &client, Some("svc"));
    let page = app.authorize(&mut browser, &request).await;

    let denied = app.consent(&mut browser, &crate::flow::ConsentForm::from_page(&page), "deny").await;
    let lines = trail(&path, 2).await;

    assert_eq!(denied.location_query().get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(lines[0]["event"], "client_registered");
    assert_eq!(lines[1]["event"], "access_denied", "{lines:#?}");
    assert_eq!(lines[1]["reason"], "denied_on_consent_page");
    assert_eq!(
        (lines[1]["client_id"].as_str(), lines[1]["service"].as_str()),
        (Some(client.client_id.as_str()), Some("svc"))
    );
    let _ = std::fs::remove_file(&path);
}
