//! Issue 13, item 8 ("Slow bodies and unbounded streams"), replayed as the attacker did it: a
//! request body trickled at one byte a second held a gateway connection (and, once forwarded, a
//! backend one) for as long as the client liked, and one token opened SSE streams without end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse};
use bytes::Bytes;
use futures_util::stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::TestBackend;
use crate::helpers::{serve, TestApp};
use crate::proxy::{body_json, gateway, header, service, token_for};

/// The body timeout the tests configure; an answer must come well before the client is done.
const BODY_TIMEOUT_MS: u64 = 1500;

/// What a trickling client saw: how long until the gateway answered or closed, and the bytes.
struct Trickled {
    elapsed: Duration,
    answer: String,
    /// Whether the gateway ended the connection (EOF or reset) within the wait.
    closed: bool,
}

/// Sends `head` (a full request head, blank line included), then `body` one byte a second,
/// and reads whatever comes back for up to 6 s.
async fn trickle(app: &TestApp, head: String, body: &'static [u8]) -> Trickled {
    let sock = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    sock.set_nodelay(true).unwrap();
    let (mut read, mut write) = sock.into_split();
    write.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let writer = actix_web::rt::spawn(async move {
        for byte in body {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        }
        // Keep the write half open: a half-close would end the body early.
        actix_web::rt::time::sleep(Duration::from_secs(60)).await;
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let wait = actix_web::rt::time::timeout(Duration::from_secs(6), async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    let closed = wait.await.is_ok();
    writer.abort();
    Trickled { elapsed: started.elapsed(), answer: String::from_utf8_lossy(&got).into_owned(), closed }
}

/// `svc` (no step-up: the proxy reads small bodies whole) and `scoped` (step-up: every POST
/// body is read to find its tools), both → the test backend's `/record`, with a short body
/// timeout.
async fn slow_body_gateway(backend: &TestBackend) -> TestApp {
    let url = backend.url("/record");
    gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url.clone()));
        let mut scoped = service(url);
        scoped.tool_scopes = BTreeMap::from([("delete_repo".to_owned(), vec!["admin".to_owned()])]);
        s.mcp_services.insert("scoped".into(), scoped);
        s.limits.body_timeout_ms = BODY_TIMEOUT_MS;
    })
    .await
}

fn assert_cut_off(what: &str, seen: &Trickled) {
    assert!(
        seen.closed && seen.elapsed < Duration::from_secs(4),
        "{what}: the connection was still open after {:?} (answer so far: {:?})",
        seen.elapsed,
        seen.answer
    );
    assert!(
        seen.answer.is_empty() || seen.answer.starts_with("HTTP/1.1 408"),
        "{what}: expected 408 or a bare close, got {:?}",
        seen.answer
    );
    assert!(seen.elapsed >= Duration::from_millis(BODY_TIMEOUT_MS - 100), "{what}: cut off too early");
}

#[actix_web::test]
async fn item8_a_small_body_trickled_a_byte_a_second_gets_408_and_never_reaches_the_backend() {
    let backend = TestBackend::start().await;
    let app = slow_body_gateway(&backend).await;
    for svc in ["svc", "scoped"] {
        let token = token_for(&app, svc);
        let head = format!(
            "POST /{svc}/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        );
        let seen = trickle(&app, head, &[b' '; 100]).await;
        assert_cut_off(svc, &seen);
        if !seen.answer.is_empty() {
            assert!(seen.answer.contains("\"error\""), "{svc}: a short JSON body: {:?}", seen.answer);
        }
    }
    assert!(backend.recorded().is_empty(), "the backend received {:?}", backend.recorded());
}

#[actix_web::test]
async fn item8_a_streamed_body_that_stalls_is_cut_off_at_the_body_timeout() {
    let backend = TestBackend::start().await;
    let app = slow_body_gateway(&backend).await;
    let token = token_for(&app, "svc");
    // Chunked: the gateway streams it to the backend as it arrives. One chunk, then a byte a
    // second of the next chunk's size line (the client never gets anywhere).
    let head = format!(
        "POST /svc/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n"
    );
    let seen = trickle(&app, head, b"0000000000000000").await;
    // Bytes keep coming, but no piece of body completes: before the fix the backend connection
    // was held for the service timeout (30 s here; for ever with `timeout: 0`), and the
    // client's connection as long as it kept sending.
    assert_cut_off("chunked", &seen);
    // Sized but over 64 KiB: streamed too. 70 KiB of 100 KiB arrive at once, then nothing (a
    // streamed body that keeps moving, even a byte at a time, is bounded by the service's
    // `timeout` instead: the body timeout is the longest pause).
    let head = format!(
        "POST /svc/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 102400\r\n\r\n{}",
        " ".repeat(70 * 1024)
    );
    let seen = trickle(&app, head, b"").await;
    assert_cut_off("large", &seen);
    assert!(backend.recorded().is_empty(), "the backend received {:?}", backend.recorded());
}

/// A backend whose `GET` opens an SSE stream that sends an event every 100 ms until the client
/// leaves, counting the streams it was asked for.
struct Streams {
    address: String,
    opened: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl Streams {
    async fn start() -> Streams {
        let opened = Arc::new(AtomicUsize::new(0));
        let counter = opened.clone();
        let (port, handle) = serve(|_| {
            move || {
                let counter = counter.clone();
                App::new().route(
                    "/mcp",
                    web::get().to(move || {
                        counter.fetch_add(1, Ordering::SeqCst);
                        async { events() }
                    }),
                )
            }
        });
        Streams { address: format!("http://127.0.0.1:{port}/mcp"), opened, handle }
    }

    fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn events() -> HttpResponse {
    let ticks = stream::unfold(0u64, |i| async move {
        if i > 0 {
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        let event = Bytes::from(format!("event: message\ndata: {{\"n\":{i}}}\n\n"));
        Some((Ok::<_, actix_web::Error>(event), i + 1))
    });
    HttpResponse::Ok().content_type("text/event-stream").streaming(ticks)
}

/// An open SSE stream through the gateway: the socket (dropping it closes the stream) and the
/// status of its response head.
struct OpenStream {
    status: u16,
    _sock: TcpStream,
}

/// `GET /svc/mcp` with `token` on a raw connection; reads the response head.
async fn open_stream(app: &TestApp, token: &str) -> OpenStream {
    let mut sock = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    sock.set_nodelay(true).unwrap();
    let req = format!(
        "GET /svc/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "the gateway closed before a response head");
            head.extend_from_slice(&buf[..n]);
        }
    };
    actix_web::rt::time::timeout(Duration::from_secs(5), read_head).await.expect("a response head");
    let text = String::from_utf8_lossy(&head);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    OpenStream { status, _sock: sock }
}

#[actix_web::test]
async fn item8_one_token_cannot_open_sse_streams_without_end() {
    let backend = Streams::start().await;
    let url = backend.address.clone();
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
        s.limits.max_streams_per_token = 3;
    })
    .await;
    let token = token_for(&app, "svc");

    let mut held = Vec::new();
    for i in 0..3 {
        let stream = open_stream(&app, &token).await;
        assert_eq!(stream.status, 200, "stream {i} within the cap");
        held.push(stream);
    }
    assert_eq!(backend.opened(), 3);

    // The fourth: refused at the gateway, the backend never asked.
    let mut res = app
        .client()
        .get(app.url("/svc/mcp"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Accept", "text/event-stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429, "a fourth stream with the same token");
    assert!(header(&res, "retry-after").is_some(), "429 says when to retry");
    let body = body_json(&mut res).await;
    assert!(body["error"].is_string(), "a JSON error body: {body}");
    assert_eq!(backend.opened(), 3, "the refused stream never reached the backend");

    // Another token is unaffected.
    let other = token_for(&app, "svc");
    let stream = open_stream(&app, &other).await;
    assert_eq!(stream.status, 200, "another token's stream");
    drop(stream);

    // Closing one frees its slot (the gateway notices when the next event cannot be sent).
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    let reopened = loop {
        let stream = open_stream(&app, &token).await;
        if stream.status == 200 || Instant::now() > deadline {
            break stream;
        }
        drop(stream);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(reopened.status, 200, "a slot is free again once a stream closed");
    held.push(reopened);

    // And the cap still holds.
    let again = open_stream(&app, &token).await;
    assert_eq!(again.status, 429, "still three at most");
}
