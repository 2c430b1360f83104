//! A test MCP backend on 127.0.0.1 port 0: echoes what it received, streams SSE events with
//! recorded send times, records requests and opens sessions, answers slowly, or answers
//! 404/405/202/204, so proxy tests can see exactly what the gateway forwards and how it
//! streams.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;

use crate::helpers::serve;

/// What the SSE route recorded.
#[derive(Default)]
pub struct SseLog {
    /// When each event was handed to the server for sending.
    pub sent: Mutex<Vec<Instant>>,
    /// Set when a stream was dropped before it sent all its events (client went away).
    pub dropped_early: AtomicBool,
}

/// One request the `/record` route received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `x-user-id` the gateway sent, if any.
    pub user: Option<String>,
    /// `mcp-session-id` of the request, if any.
    pub session: Option<String>,
    /// `content-length` of the request, if any.
    pub content_length: Option<String>,
    /// `transfer-encoding` of the request, if any.
    pub transfer_encoding: Option<String>,
    /// The body as received.
    pub body: String,
}

/// What `/record` saw, in order.
#[derive(Default)]
pub struct RecordLog {
    /// Every request.
    pub requests: Mutex<Vec<Recorded>>,
    next_session: std::sync::atomic::AtomicUsize,
}

/// Knobs of the backend.
#[derive(Clone)]
pub struct BackendOptions {
    /// Status of `GET /mcp` (an MCP server without a GET stream answers 405).
    pub get_status: u16,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions { get_status: 405 }
    }
}

/// A running backend.
pub struct TestBackend {
    /// `http://127.0.0.1:{port}`.
    pub address: String,
    /// The bound port.
    pub port: u16,
    /// Shared with the SSE route.
    pub sse: Arc<SseLog>,
    /// Shared with the `/record` route.
    pub record: Arc<RecordLog>,
    handle: actix_web::dev::ServerHandle,
}

impl TestBackend {
    /// Starts a backend with default options.
    pub async fn start() -> TestBackend {
        Self::start_with(BackendOptions::default()).await
    }

    /// Starts a backend with `options`.
    pub async fn start_with(options: BackendOptions) -> TestBackend {
        let sse = Arc::new(SseLog::default());
        let shared = sse.clone();
        let record = Arc::new(RecordLog::default());
        let record_shared = record.clone();
        let (port, handle) = serve(|_| {
            move || {
                App::new()
                    .app_data(web::Data::new(options.clone()))
                    .app_data(web::Data::from(shared.clone()))
                    .app_data(web::Data::from(record_shared.clone()))
                    .route("/record", web::route().to(record_request))
                    .route("/mcp", web::post().to(echo_with_session))
                    .route("/mcp", web::get().to(get_mcp))
                    .route("/mcp", web::delete().to(|| async { HttpResponse::NoContent().finish() }))
                    .route("/echo", web::route().to(echo))
                    .route("/accepted", web::route().to(|| async { HttpResponse::Accepted().finish() }))
                    .route("/sse", web::route().to(sse_events))
                    .route("/slow", web::route().to(slow))
                    .route(
                        "/missing",
                        web::route().to(|| async { HttpResponse::NotFound().body("no such session") }),
                    )
            }
        });
        TestBackend { address: format!("http://127.0.0.1:{port}"), port, sse, record, handle }
    }

    /// `{address}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// What `/record` received so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.record.requests.lock().expect("lock").clone()
    }

    /// How many SSE events have been sent so far.
    pub fn events_sent(&self) -> usize {
        self.sse.sent.lock().expect("lock").len()
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        // Stop accepting at once; the future is not needed.
        drop(self.handle.stop(false));
    }
}

/// What the echo routes answer: exactly what arrived.
fn echo_json(req: &HttpRequest, body: &Bytes) -> serde_json::Value {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    serde_json::json!({
        "method": req.method().as_str(),
        "path": req.path(),
        "query": req.query_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(body),
    })
}

async fn echo(req: HttpRequest, body: Bytes) -> HttpResponse {
    HttpResponse::Ok().json(echo_json(&req, &body))
}

async fn echo_with_session(req: HttpRequest, body: Bytes) -> HttpResponse {
    HttpResponse::Ok().insert_header(("Mcp-Session-Id", "s-123")).json(echo_json(&req, &body))
}

/// Records the request; a request without `Mcp-Session-Id` opens a new session (`sess-N` in
/// the response header, like an `initialize`), one with it is answered without the header.
async fn record_request(req: HttpRequest, body: Bytes, log: web::Data<RecordLog>) -> HttpResponse {
    let get =
        |name: &str| req.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let recorded = Recorded {
        user: get("x-user-id"),
        session: get("mcp-session-id"),
        content_length: get("content-length"),
        transfer_encoding: get("transfer-encoding"),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let opens = recorded.session.is_none();
    log.requests.lock().expect("lock").push(recorded);
    let mut res = HttpResponse::Ok();
    if opens {
        let n = log.next_session.fetch_add(1, Ordering::SeqCst);
        res.insert_header(("Mcp-Session-Id", format!("sess-{n}")));
    }
    res.json(serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {}}))
}

async fn get_mcp(options: web::Data<BackendOptions>) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(options.get_status).expect("status");
    HttpResponse::build(status).finish()
}

#[derive(Deserialize)]
struct SseQuery {
    n: usize,
    delay_ms: u64,
}

/// Notes in the log when a stream is dropped before its last event.
struct DropGuard {
    log: Arc<SseLog>,
    done: bool,
}

impl DropGuard {
    fn finish(&mut self) {
        self.done = true;
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.done {
            self.log.dropped_early.store(true, Ordering::SeqCst);
        }
    }
}

/// `n` events, `delay_ms` apart (the first at once), each send time recorded.
async fn sse_events(query: web::Query<SseQuery>, log: web::Data<SseLog>) -> HttpResponse {
    let SseQuery { n, delay_ms } = query.into_inner();
    let guard = DropGuard { log: log.into_inner(), done: false };
    let events = stream::unfold((0usize, guard), move |(i, mut guard)| async move {
        if i == n {
            guard.finish();
            return None;
        }
        if i > 0 {
            actix_web::rt::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        guard.log.sent.lock().expect("lock").push(Instant::now());
        let event = Bytes::from(format!("event: message\nid: {i}\ndata: {{\"n\":{i}}}\n\n"));
        Some((Ok::<_, actix_web::Error>(event), (i + 1, guard)))
    });
    HttpResponse::Ok().content_type("text/event-stream").streaming(events)
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn slow(query: web::Query<SlowQuery>) -> HttpResponse {
    actix_web::rt::time::sleep(Duration::from_millis(query.ms)).await;
    HttpResponse::Ok().body("finally")
}
