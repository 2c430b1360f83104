//! `bench-backend`: the tiny MCP backend the benchmarks proxy to. It must never be the
//! bottleneck, so every handler does the least a real server would: parse the JSON-RPC request
//! to echo its `id`, answer with a small fixed result.
//!
//! Routes:
//! - `POST /mcp`: JSON-RPC `tools/call` → plain JSON result.
//! - `POST /sse/{events}/{interval_ms}`: `text/event-stream` with `events` progress
//!   notifications `interval_ms` apart, each stamped with its send time (`sent_ns`, Unix
//!   nanoseconds, taken just before the event is handed to the server), then the result.
//! - `POST /hold`: `text/event-stream` that sends one event at once and then stays open (a
//!   comment every 15 s) until the client goes away: the open-streams benchmark.
//! - `GET /health`: `ok`.
//!
//! Usage: `bench-backend [--port P] [--workers N]` (port 0 picks one; the bound port is
//! printed as `listening 127.0.0.1:P` on stdout).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    let mut port: u16 = 0;
    let mut workers: usize = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--port" => port = value.parse()?,
            "--workers" => workers = value.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    actix_web::rt::System::new().block_on(serve(port, workers))
}

async fn serve(port: u16, workers: usize) -> Result<(), BoxError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(|| {
        App::new()
            .route("/mcp", web::post().to(mcp))
            .route("/sse/{events}/{interval_ms}", web::post().to(sse))
            .route("/hold", web::post().to(hold))
            .route("/health", web::get().to(|| async { "ok" }))
    })
    .workers(workers)
    .backlog(4096)
    .max_connections(100_000)
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    // The harness waits for this line to learn the port.
    let mut out = std::io::stdout();
    writeln!(out, "listening {addr}")?;
    out.flush()?;
    server.await?;
    Ok(())
}

/// The request's JSON-RPC `id`, re-serialised; `null` when absent or unparsable.
fn request_id(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .map_or_else(|| "null".to_owned(), |id| id.to_string())
}

fn result_json(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"ok"}}],"isError":false}}}}"#
    )
}

async fn mcp(body: Bytes) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(result_json(&request_id(&body)))
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn event_stream(body: impl Stream<Item = Bytes> + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(body.map(Ok::<_, actix_web::Error>))
}

/// `events` stamped progress notifications, then the result. The stamp is taken when the
/// stream is polled for the event, i.e. when the server is ready to write it.
async fn sse(path: web::Path<(u32, u64)>, body: Bytes) -> HttpResponse {
    let (events, interval_ms) = path.into_inner();
    let id = request_id(&body);
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let progress = stream::unfold((ticker, 0u32), move |(mut ticker, i)| async move {
        if i >= events {
            return None;
        }
        ticker.tick().await;
        let event = format!(
            "event: message\nid: {i}\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":1,\"progress\":{i},\"total\":{events},\"sent_ns\":{}}}}}\n\n",
            now_ns()
        );
        Some((Bytes::from(event), (ticker, i + 1)))
    });
    let last =
        stream::once(async move { Bytes::from(format!("event: message\ndata: {}\n\n", result_json(&id))) });
    event_stream(progress.chain(last))
}

/// One event now, then a keep-alive comment every 15 s for as long as the client listens.
async fn hold() -> HttpResponse {
    let first = stream::once(async {
        Bytes::from(format!(
            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"sent_ns\":{}}}}}\n\n",
            now_ns()
        ))
    });
    let keepalive = stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        Some((Bytes::from_static(b": keepalive\n\n"), ()))
    });
    event_stream(first.chain(keepalive))
}
