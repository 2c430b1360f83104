//! Issue 12: `GET /ready` (storage answers, signing keys loaded, no shutdown begun), graceful
//! shutdown (short requests finish, event streams end cleanly within the drain time, SIGINT
//! and SIGTERM both drain, a second signal exits at once), and `/favicon.ico`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_gateway::config::{RedisSettings, Settings, StorageKind, StorageSettings};
use mcp_gateway::startup::{Application, Shutdown};
use mcp_gateway::storage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend::TestBackend;
use crate::helpers::{base_settings, spawn_app, TestApp};
use crate::proxy::{header, service, token_for};
use crate::servers::{free_port, unique, wait_for_port, RedisServer};

/// Drain time of the in-process graceful-stop test, seconds.
const DRAIN_SECS: u64 = 2;

/// A gateway running in this test, with what stops it and what it returned.
struct Running {
    app: TestApp,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts `app` as `spawn_app` does, keeping its shutdown handle and its server task.
fn serve(app: Application) -> Running {
    let (test_app, shutdown) = (TestApp::of(&app), app.shutdown_handle());
    let server = actix_web::rt::spawn(app.run_until_stopped());
    Running { app: test_app, shutdown, server }
}

/// One worker (one place where every connection lives), `adjust` applied.
fn settings(adjust: impl FnOnce(&mut Settings)) -> Settings {
    let mut settings = base_settings();
    settings.runtime.workers = 1;
    adjust(&mut settings);
    settings
}

/// An event stream read off a raw connection, so that the test sees how it ended: with the
/// chunked terminator (cleanly) or by the connection closing without one (cut off).
struct EventStream {
    conn: tokio::net::TcpStream,
    /// Bytes after the response head not yet decoded.
    raw: Vec<u8>,
    /// Decoded body so far.
    body: Vec<u8>,
}

/// How an [`EventStream`] ended.
#[derive(Debug, PartialEq)]
enum End {
    /// The chunked terminator arrived.
    Clean,
    /// The connection closed (or failed) before it.
    CutOff,
    /// Nothing ended it within 10 s.
    StillOpen,
}

impl EventStream {
    /// Sends `method path` (a JSON-RPC body for POST, `token` as bearer) and reads the response
    /// head (200, chunked, `text/event-stream`) and the first event.
    async fn open(port: u16, method: &str, path: &str, token: Option<&str>) -> EventStream {
        let body = if method == "POST" { r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"# } else { "" };
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\
             Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut stream = EventStream { conn, raw: Vec::new(), body: Vec::new() };
        let head_end = loop {
            if let Some(i) = stream.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(stream.fill().await, "closed before the response head");
        };
        let head = String::from_utf8_lossy(&stream.raw[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("transfer-encoding: chunked") && head.contains("text/event-stream"), "{head}");
        stream.raw.drain(..head_end);
        while !String::from_utf8_lossy(&stream.body).contains("data: ") {
            assert_eq!(stream.decode(), None, "ended before the first event");
            assert!(stream.fill().await, "closed before the first event");
        }
        stream
    }

    /// Reads more bytes; false at end of stream or on an error.
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        match tokio::time::timeout(Duration::from_secs(10), self.conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
            _ => false,
        }
    }

    /// Decodes whole chunks; `Some(())` once the terminator has been decoded.
    fn decode(&mut self) -> Option<()> {
        loop {
            let line = self.raw.windows(2).position(|w| w == b"\r\n")?;
            let size = std::str::from_utf8(&self.raw[..line]).ok()?;
            let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                return (self.raw.len() >= line + 4).then_some(());
            }
            if self.raw.len() < line + 2 + size + 2 {
                return None;
            }
            self.body.extend_from_slice(&self.raw[line + 2..line + 2 + size]);
            self.raw.drain(..line + 2 + size + 2);
        }
    }

    /// Reads until the stream ends: how, when, and the whole decoded body.
    async fn read_to_end(&mut self) -> (End, Instant, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let end = loop {
            if self.decode().is_some() {
                break End::Clean;
            }
            if Instant::now() > deadline {
                break End::StillOpen;
            }
            if !self.fill().await {
                break if Instant::now() > deadline { End::StillOpen } else { End::CutOff };
            }
        };
        (end, Instant::now(), String::from_utf8_lossy(&self.body).into_owned())
    }

    /// Whether at least `n` more events arrive within `within`, the stream still open.
    async fn flows(&mut self, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let target = String::from_utf8_lossy(&self.body).matches("data: ").count() + n;
        while String::from_utf8_lossy(&self.body).matches("data: ").count() < target {
            if self.decode().is_some() || Instant::now() > deadline || !self.fill().await {
                return false;
            }
        }
        true
    }
}

/// `POST url` with an optional bearer token, read to the end: status, body, when it completed.
async fn short_request(
    client: awc::Client,
    url: String,
    token: Option<String>,
) -> Result<(u16, String, Instant), String> {
    let mut req = client.post(url);
    if let Some(token) = token {
        req = req.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut res = req.send_body("{}").await.map_err(|e| format!("{e}"))?;
    let body = res.body().await.map_err(|e| format!("{e}"))?;
    Ok((res.status().as_u16(), String::from_utf8_lossy(&body).into_owned(), Instant::now()))
}

/// Sends `GET /ready` on a fresh connection: `Some(status line)`, or `None` when no answer came
/// (connection refused or closed without one).
async fn ready_status_line(port: u16) -> Option<String> {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    conn.write_all(b"GET /ready HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut raw)).await;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    raw.lines().next().filter(|l| l.starts_with("HTTP/")).map(str::to_owned)
}

#[actix_web::test]
async fn ready_is_200_when_storage_answers_and_the_signing_key_is_loaded() {
    let app = spawn_app().await;

    let ready = app.get("/ready").await;
    let info = app.get("/").await;

    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.header("cache-control"), Some("no-store"));
    let body = ready.json();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["failed"], serde_json::json!([]));
    assert_eq!(body["storage"]["backend"], "memory");
    assert_eq!(body["storage"]["healthy"], true);
    assert_eq!(body["signing_keys"], "loaded");
    assert_eq!(body["shutting_down"], false);
    assert_eq!(info.json()["endpoints"]["ready"], format!("{}/ready", app.address));
}

#[actix_web::test]
async fn ready_is_503_naming_storage_while_the_store_is_down_and_200_again_after() {
    let mut redis = RedisServer::start().await;
    let storage_settings = StorageSettings {
        kind: StorageKind::Redis,
        redis: RedisSettings {
            url: Some(format!("redis://127.0.0.1:{}", redis.port)),
            connect_timeout_ms: 1500,
            command_timeout_ms: 1500,
            key_prefix: format!("{}:", unique("ready")),
            ..RedisSettings::default()
        },
        ..StorageSettings::default()
    };
    let store = storage::connect(&storage_settings).await.expect("redis connects");
    let built = Application::build_with_backend(settings(|s| s.storage = storage_settings), store).await;
    let running = serve(built.expect("app builds"));
    let app = &running.app;
    assert_eq!(app.get("/ready").await.status, 200);

    redis.kill();
    // A health check younger than a quarter second may still be reused: ask until it is not.
    let deadline = Instant::now() + Duration::from_secs(5);
    let down = loop {
        let reply = app.get("/ready").await;
        if reply.status != 200 || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(down.status, 503, "{}", down.body);
    let body = down.json();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failed"], serde_json::json!(["storage"]), "{body}");
    assert_eq!(body["storage"]["backend"], "redis");
    assert_eq!(body["storage"]["healthy"], false);
    assert_eq!(body["signing_keys"], "loaded");
    assert_eq!(down.header("cache-control"), Some("no-store"));

    redis.spawn().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = app.get("/ready").await;
        if reply.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {} after Redis came back: {}", reply.status, reply.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn favicon_is_a_small_icon_cached_for_long() {
    let app = spawn_app().await;

    let mut res = app.client().get(app.url("/favicon.ico")).send().await.unwrap();
    let icon = res.body().await.unwrap();

    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-type").as_deref(), Some("image/x-icon"));
    let cache = header(&res, "cache-control").unwrap();
    let max_age: u64 = cache
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max-age in {cache}"));
    assert!(cache.contains("public") && max_age >= 86_400, "{cache}");
    // ICONDIR: reserved 0, type 1 (icon), one image; its entry: 16x16, data inside the file.
    assert!(icon.len() < 1024, "{} bytes", icon.len());
    assert_eq!(&icon[..6], &[0, 0, 1, 0, 1, 0]);
    assert_eq!((icon[6], icon[7]), (16, 16), "16x16");
    let size = u32::from_le_bytes([icon[14], icon[15], icon[16], icon[17]]) as usize;
    let offset = u32::from_le_bytes([icon[18], icon[19], icon[20], icon[21]]) as usize;
    assert_eq!(offset + size, icon.len(), "the image fills the rest of the file");
}

/// Graceful stop: no new connections (so no `/ready` answers 200), a short request in flight
/// completes, a `GET` event stream (nothing in progress on it) ends cleanly at once, a `POST`
/// event stream (a tool call in progress) keeps flowing and ends cleanly before the drain
/// time is up, and the server has stopped soon after.
#[actix_web::test]
async fn graceful_stop_finishes_short_requests_and_ends_event_streams_cleanly_within_the_drain_time() {
    let backend = TestBackend::start().await;
    let (sse, slow) = (backend.url("/sse"), backend.url("/slow"));
    let adjust = |s: &mut Settings| {
        s.mcp_services.insert("events".into(), service(sse));
        s.mcp_services.insert("slow".into(), service(slow));
    };
    let adjust = |s: &mut Settings| {
        adjust(s);
        s.runtime.shutdown_timeout = DRAIN_SECS;
    };
    let built = Application::build(settings(adjust)).await;
    let Running { app, shutdown, server } = serve(built.expect("app builds"));
    let (events_token, slow_token) = (token_for(&app, "events"), token_for(&app, "slow"));
    let path = "/events/mcp?n=1000&delay_ms=100";
    let mut listen = EventStream::open(app.port, "GET", path, Some(&events_token)).await;
    let mut call = EventStream::open(app.port, "POST", path, Some(&events_token)).await;
    let (port, slow_url) = (app.port, app.url("/slow/mcp?ms=800"));
    let short = actix_web::rt::spawn(short_request(app.client(), slow_url, Some(slow_token)));
    // The short request reaches the backend, which answers 800 ms later.
    tokio::time::sleep(Duration::from_millis(250)).await;

    let stopped_at = Instant::now();
    let stopping = actix_web::rt::spawn(shutdown.stop(true));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready_while_draining = ready_status_line(port).await;
    let (listen_end, listen_ended, _) = listen.read_to_end().await;
    let (call_end, call_ended, call_body) = call.read_to_end().await;
    let short = short.await.unwrap();
    let served = tokio::time::timeout(Duration::from_secs(DRAIN_SECS + 3), server).await;
    let server_done = Instant::now();
    drop(stopping);

    // No new connection gets a ready answer once the drain has begun.
    assert!(
        ready_while_draining.as_deref().is_none_or(|l| l.contains(" 503")),
        "GET /ready while draining: {ready_while_draining:?}"
    );
    // The short request finished normally.
    let (status, body, done) = short.expect("the short request completed");
    assert_eq!((status, body.as_str()), (200, "finally"));
    assert!(done > stopped_at, "it really was in flight when the stop began");
    // The GET stream ended cleanly at once.
    let listen_open = listen_ended - stopped_at;
    assert_eq!(
        (&listen_end, listen_open < Duration::from_millis(900)),
        (&End::Clean, true),
        "GET stream after {listen_open:?}"
    );
    // The POST stream kept flowing, then ended cleanly between events, within the drain time.
    let call_open = call_ended - stopped_at;
    assert_eq!(call_end, End::Clean, "POST stream after {call_open:?}");
    assert!(
        call_open > Duration::from_millis(900),
        "POST stream given the drain time: ended after {call_open:?}"
    );
    assert!(
        call_open < Duration::from_secs(DRAIN_SECS),
        "POST stream ended within the drain time: {call_open:?}"
    );
    assert!(
        call_body.ends_with("\n\n"),
        "whole events only: {:?}",
        &call_body[call_body.len().saturating_sub(80)..]
    );
    // The server stopped; the backend streams behind were dropped, not leaked.
    let served = served.expect("server stopped within the drain time").unwrap();
    assert!(served.is_ok(), "{served:?}");
    assert!(server_done - stopped_at < Duration::from_secs(DRAIN_SECS + 2));
    assert!(backend.sse.dropped_early.load(std::sync::atomic::Ordering::SeqCst));
}

/// The `mcp-gateway` binary, killed when dropped.
struct Gateway {
    child: Child,
    dir: PathBuf,
}

impl Gateway {
    /// Starts the binary on `port` with the services `services` (YAML lines under
    /// `mcp_services:`), waiting until it listens.
    async fn start(port: u16, services: &str) -> Gateway {
        let dir = std::env::temp_dir().join(unique("ready-bin"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("gateway.yaml");
        let yaml = format!(
            "host: 127.0.0.1\nport: {port}\nsession_secret: \"test-secret-0123456789abcdef0123456789abcdef\"\n\
             debug: true\noauth_providers:\n  dev: {{}}\nmcp_services:\n{services}"
        );
        std::fs::write(&config, yaml).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
            .env_clear()
            .env("MCP_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let gateway = Gateway { child, dir };
        wait_for_port(port, "mcp-gateway").await;
        gateway
    }

    /// Sends `signal` (`INT`, `TERM`) to the process.
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{signal}");
    }

    /// Waits up to `limit` for the process to exit: its status and its log.
    async fn exit_within(&mut self, limit: Duration) -> (Option<std::process::ExitStatus>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut log = String::new();
        if status.is_some() {
            let _ = self.child.stderr.take().map(|mut e| e.read_to_string(&mut log));
        }
        (status, log)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGINT drains like SIGTERM (before, actix-web stopped at once on SIGINT): the request in
/// flight completes, the `GET` event stream ends cleanly, the `POST` one keeps flowing; a
/// second signal then exits at once instead of waiting out the drain time.
#[actix_web::test]
async fn the_binary_drains_on_sigint_and_a_second_signal_exits_at_once() {
    let backend = TestBackend::start().await;
    let port = free_port();
    let services = format!(
        "  events: {{ name: Events, url: \"{}\", auth_required: false }}\n  \
         slow: {{ name: Slow, url: \"{}\", auth_required: false }}\n",
        backend.url("/sse"),
        backend.url("/slow")
    );
    let mut gateway = Gateway::start(port, &services).await;
    let path = "/events/mcp?n=1000&delay_ms=100";
    let mut listen = EventStream::open(port, "GET", path, None).await;
    let mut call = EventStream::open(port, "POST", path, None).await;
    let slow_url = format!("http://127.0.0.1:{port}/slow/mcp?ms=800");
    let short = actix_web::rt::spawn(short_request(awc::Client::default(), slow_url, None));
    tokio::time::sleep(Duration::from_millis(250)).await;

    gateway.signal("INT");
    let signalled = Instant::now();
    let (listen_end, listen_ended, _) = listen.read_to_end().await;
    let short = short.await.unwrap();
    // The tool call's stream still flows a second after the signal.
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(signalled.elapsed())).await;
    let flowing = call.flows(2, Duration::from_secs(1)).await;
    let (still_running, _) = gateway.exit_within(Duration::ZERO).await;
    if still_running.is_none() {
        gateway.signal("INT");
    }
    let second = Instant::now();
    let (status, log) = gateway.exit_within(Duration::from_secs(5)).await;
    let exited = second.elapsed();

    assert_eq!(
        short.as_ref().map(|(s, b, _)| (*s, b.as_str())),
        Ok((200, "finally")),
        "in-flight request: {log}"
    );
    let listen_open = listen_ended - signalled;
    assert_eq!(
        (&listen_end, listen_open < Duration::from_secs(1)),
        (&End::Clean, true),
        "GET stream after {listen_open:?}: {log}"
    );
    assert!(flowing, "the POST stream kept flowing while draining: {log}");
    assert!(still_running.is_none(), "draining, not exited: {log}");
    assert!(status.is_some_and(|s| s.success()), "second SIGINT: exit within {exited:?}, {status:?}: {log}");
    assert!(log.contains("draining"), "{log}");
}
