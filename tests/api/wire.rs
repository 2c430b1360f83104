//! The proxy's backend client on the wire: response framings (chunked, close-delimited, no
//! body) and keep-alive reuse, against scripted raw-TCP backends that write exactly the bytes a
//! test gives them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::TestApp;
use crate::proxy::{gateway, service, token_for};

/// What the backend does with one request: write these pieces (pausing between them so they
/// arrive in separate reads), then close the connection or wait for the next request.
struct Reply {
    pieces: Vec<&'static [u8]>,
    close: bool,
}

/// A backend answering per `script(connection index, request index on that connection)`.
struct Wire {
    port: u16,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Wire {
    async fn start(script: fn(usize, usize) -> Reply) -> Wire {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (acc, reqs) = (accepted.clone(), requests.clone());
        actix_web::rt::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let conn = acc.fetch_add(1, Ordering::SeqCst);
                let reqs = reqs.clone();
                actix_web::rt::spawn(serve(sock, conn, script, reqs));
            }
        });
        Wire { port, accepted, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut sock: TcpStream,
    conn: usize,
    script: fn(usize, usize) -> Reply,
    requests: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    for n in 0.. {
        let Some(request) = read_request(&mut sock, &mut buf).await else {
            return;
        };
        requests.lock().unwrap().push(request);
        let reply = script(conn, n);
        for (i, piece) in reply.pieces.iter().enumerate() {
            if i > 0 {
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            if sock.write_all(piece).await.is_err() {
                return;
            }
        }
        if reply.close {
            return;
        }
    }
}

/// One request (head and `Content-Length` body) as text; `None` when the peer closed.
pub async fn read_request<R: AsyncRead + Unpin>(sock: &mut R, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let request: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return Some(String::from_utf8_lossy(&request).into_owned());
            }
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn wire_gateway(wire: &Wire) -> TestApp {
    let url = wire.url();
    gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await
}

/// POSTs a small JSON-RPC body; the status and the body as text.
async fn call(app: &TestApp) -> (u16, String) {
    let mut res = app
        .client()
        .post(app.url("/svc/mcp"))
        .insert_header(("Authorization", format!("Bearer {}", token_for(app, "svc"))))
        .insert_header(("Content-Type", "application/json"))
        .send_body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .await
        .expect("request");
    let body = res.body().await.expect("body");
    (res.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
}

#[actix_web::test]
async fn chunked_responses_are_decoded_across_reads_and_the_connection_is_reused() {
    let wire = Wire::start(|_, _| Reply {
        pieces: vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\n{\"a\":",
            b"\r\n3\r\n1}\n\r\n0\r\nx-trailer: t\r\n",
            b"\r\n",
        ],
        close: false,
    })
    .await;
    let app = wire_gateway(&wire).await;
    for _ in 0..3 {
        assert_eq!(call(&app).await, (200, "{\"a\":1}\n".to_owned()));
    }
    assert_eq!(wire.accepted(), 1, "one keep-alive connection carries all three");
    let requests = wire.requests.lock().unwrap().clone();
    assert!(requests[0].starts_with("POST /mcp HTTP/1.1\r\n"), "{}", requests[0]);
    assert!(requests[0].contains("content-length: 40\r\n"), "{}", requests[0]);
    assert!(requests[0].ends_with(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), "{}", requests[0]);
    assert!(!requests[0].to_ascii_lowercase().contains("authorization"), "{}", requests[0]);
}

#[actix_web::test]
async fn a_body_delimited_by_close_arrives_whole_and_its_connection_is_not_reused() {
    let wire = Wire::start(|_, _| Reply {
        pieces: vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello ", b"world"],
        close: true,
    })
    .await;
    let app = wire_gateway(&wire).await;
    assert_eq!(call(&app).await, (200, "hello world".to_owned()));
    assert_eq!(call(&app).await, (200, "hello world".to_owned()));
    assert_eq!(wire.accepted(), 2);
}

#[actix_web::test]
async fn a_pooled_connection_the_backend_closed_is_not_used() {
    // Keep-alive by the protocol's default, but the backend closes right after answering.
    let wire = Wire::start(|_, _| Reply {
        pieces: vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"],
        close: true,
    })
    .await;
    let app = wire_gateway(&wire).await;
    for _ in 0..3 {
        assert_eq!(call(&app).await, (200, "ok".to_owned()));
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(wire.accepted(), 3);
}

/// Each connection answers its first request, then reads the next one whole and closes without
/// a word: the race of a backend closing an idle connection as the gateway reuses it, and
/// also a backend that ran a `tools/call` and died before answering.
fn answers_once(_: usize, n: usize) -> Reply {
    match n {
        0 => Reply { pieces: vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"], close: false },
        _ => Reply { pieces: vec![], close: true },
    }
}

#[actix_web::test]
async fn a_post_the_backend_received_whole_is_never_sent_twice() {
    let wire = Wire::start(answers_once).await;
    let app = wire_gateway(&wire).await;
    assert_eq!(call(&app).await, (200, "ok".to_owned()));
    let (status, _) = call(&app).await;

    assert_eq!(status, 502, "the backend may have run it: no second copy");
    assert_eq!(wire.requests.lock().unwrap().len(), 2, "two calls, two requests, none repeated");
    assert_eq!(wire.accepted(), 1);
}

#[actix_web::test]
async fn a_get_is_sent_again_when_a_reused_connection_breaks_before_any_answer() {
    let wire = Wire::start(answers_once).await;
    let app = wire_gateway(&wire).await;
    let token = token_for(&app, "svc");
    for _ in 0..3 {
        let mut res = app.client().get(app.url("/svc/mcp")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.body().await.unwrap(), "ok");
    }
    assert_eq!(wire.accepted(), 3, "each retry of an idempotent request opened a new connection");
}

#[actix_web::test]
async fn no_content_has_no_body_and_keeps_the_connection() {
    let wire = Wire::start(|_, _| Reply {
        pieces: vec![b"HTTP/1.1 204 No Content\r\nmcp-session-id: s-1\r\n\r\n"],
        close: false,
    })
    .await;
    let app = wire_gateway(&wire).await;
    assert_eq!(call(&app).await, (204, String::new()));
    assert_eq!(call(&app).await, (204, String::new()));
    assert_eq!(wire.accepted(), 1);
}

#[actix_web::test]
async fn a_malformed_response_is_502() {
    let wire = Wire::start(|_, _| Reply { pieces: vec![b"this is not http\r\n\r\n"], close: true }).await;
    let app = wire_gateway(&wire).await;
    let (status, body) = call(&app).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("'svc'"), "{body}");
}

#[actix_web::test]
async fn transfer_encoding_wins_over_a_content_length_beside_it() {
    // RFC 9112 §6.3: with both, the body is chunked and the length is to be ignored.
    let wire = Wire::start(|_, _| Reply {
        pieces: vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n5\r\nhello\r\n",
            b"0\r\n\r\n",
        ],
        close: false,
    })
    .await;
    let app = wire_gateway(&wire).await;
    for _ in 0..2 {
        assert_eq!(call(&app).await, (200, "hello".to_owned()), "not cut at 3 bytes, and it ends");
    }
    assert_eq!(wire.accepted(), 1);
}

#[actix_web::test]
async fn a_204_or_304_with_a_content_length_has_a_head_and_no_body() {
    let wire = Wire::start(|_, n| Reply {
        pieces: vec![match n {
            0 => b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
            1 => b"HTTP/1.1 304 Not Modified\r\ncontent-length: 7\r\netag: \"x\"\r\n\r\n",
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        }],
        close: false,
    })
    .await;
    let app = wire_gateway(&wire).await;
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(3), call(&app)).await.expect("a 204 answer");
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(3), call(&app)).await.expect("a 304 answer");
    assert_eq!((status, body.as_str()), (304, ""));
    assert_eq!(call(&app).await, (200, "ok".to_owned()), "the connection stayed in step");
    assert_eq!(wire.accepted(), 1);
}

#[actix_web::test]
async fn an_idle_connection_the_backend_closed_is_closed_without_waiting_for_traffic() {
    // The backend answers, then half-closes (FIN) and waits to see the gateway close its side:
    // a pool that only looks at idle connections when the next request comes would leave the
    // socket in CLOSE_WAIT for as long as no one calls this service.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<Duration>();
    actix_web::rt::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        read_request(&mut sock, &mut buf).await.unwrap();
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        sock.shutdown().await.unwrap();
        let since = std::time::Instant::now();
        let mut rest = [0u8; 16];
        let _ = sock.read(&mut rest).await;
        let _ = closed_tx.send(since.elapsed());
    });
    let url = format!("http://127.0.0.1:{port}/mcp");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;
    assert_eq!(call(&app).await, (200, "ok".to_owned()));

    let took =
        tokio::time::timeout(Duration::from_secs(3), closed_rx).await.expect("closed within 3 s").unwrap();
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// A gateway whose `svc` backend takes one connection, reads a request head, writes `answer`
/// and then neither reads nor closes for 5 s; with the gateway's port on that connection.
async fn answer_once_then_hold(answer: &'static [u8]) -> (TestApp, tokio::sync::oneshot::Receiver<u16>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (peer_tx, peer_rx) = tokio::sync::oneshot::channel::<u16>();
    actix_web::rt::spawn(async move {
        let (mut sock, peer) = listener.accept().await.unwrap();
        let _ = peer_tx.send(peer.port());
        read_head(&mut sock).await;
        sock.write_all(answer).await.unwrap();
        actix_web::rt::time::sleep(Duration::from_secs(5)).await;
    });
    let url = format!("http://127.0.0.1:{port}/mcp");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;
    (app, peer_rx)
}

/// Reads from `sock` until a whole response head has arrived; the head as text.
async fn read_head<R: AsyncRead + Unpin>(sock: &mut R) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed before a response head: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[actix_web::test]
async fn an_answer_sent_before_the_body_was_read_reaches_the_client() {
    // A backend refusing an upload (413, or 401) answers after the head and does not read the
    // body. A client that writes the whole body before reading would wait on a full socket
    // until the backend gives up and closes, then report a 502; full duplex passes the 413 on.
    // Not reading for a while, as a busy or deliberately lingering server does.
    let (app, _) = answer_once_then_hold(
        b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo big!",
    )
    .await;
    // 8 MiB, more than the socket buffers on both hops hold, sent while the answer is read.
    let len = 8 << 20;
    let mut sock = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let head = format!(
        "POST /svc/mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n",
        token_for(&app, "svc")
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = sock.into_split();
    actix_web::rt::spawn(async move {
        let piece = vec![b' '; 64 * 1024];
        for _ in 0..len / piece.len() {
            if write.write_all(&piece).await.is_err() {
                return;
            }
        }
    });
    let answer = tokio::time::timeout(Duration::from_secs(3), read_head(&mut read))
        .await
        .expect("the 413 arrives while the body is still being sent");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[actix_web::test]
async fn a_length_that_is_not_digits_is_a_malformed_answer() {
    // `+5` parses as 5 with a lenient integer parser; RFC 9110 §8.6 allows digits only, and two
    // parsers reading one message differently is how responses get smuggled.
    let wire = Wire::start(|_, _| Reply {
        pieces: vec![b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello"],
        close: true,
    })
    .await;
    let app = wire_gateway(&wire).await;
    let (status, body) = call(&app).await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("hello"), "{body}");
}

#[actix_web::test]
async fn an_oversized_response_head_is_refused() {
    fn huge_head(_: usize, _: usize) -> Reply {
        static HEAD: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            format!("HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\n\r\nok", "a".repeat(200 * 1024))
                .into_bytes()
        });
        Reply { pieces: vec![HEAD.as_slice()], close: true }
    }
    let wire = Wire::start(huge_head).await;
    let app = wire_gateway(&wire).await;
    let (status, _) = call(&app).await;
    assert_eq!(status, 502, "a 200 KiB head is not buffered whole");
}

/// The `timer_active` field of the IPv4 socket whose local port is `port` in
/// `/proc/net/tcp`: 2 while a keepalive timer runs on an idle connection.
fn tcp_timer_of(port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let is_ours = fields.get(1)?.ends_with(&local) && fields.get(3)? == &"01";
        is_ours.then(|| fields.get(5).map(|t| t[..2].to_owned())).flatten()
    })
}

#[actix_web::test]
async fn backend_connections_have_tcp_keepalive() {
    // Without keepalive an event stream from a backend host that vanished (no FIN, no RST)
    // never ends. The kernel shows a keepalive timer on the gateway's side of the connection.
    let (app, peer_rx) = answer_once_then_hold(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await;
    let res = app
        .client()
        .get(app.url("/svc/mcp"))
        .insert_header(("Authorization", format!("Bearer {}", token_for(&app, "svc"))))
        .insert_header(("Accept", "text/event-stream"))
        .send()
        .await
        .expect("stream opens");
    assert_eq!(res.status(), 200);
    let gateway_port = peer_rx.await.unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        tcp_timer_of(gateway_port).as_deref(),
        Some("02"),
        "keepalive timer on the backend connection"
    );
}

#[actix_web::test]
async fn a_refused_post_keeps_its_connection() {
    // A 401 to a POST whose body was never read used to close the connection, so every
    // refused call of a client with a stale token cost a new TCP handshake too. A small body
    // is read and dropped instead; both refusals below come on one connection.
    let wire = Wire::start(answers_once).await;
    let app = wire_gateway(&wire).await;
    let valid = token_for(&app, "svc");
    let bad = format!("{}AAAA", &valid[..valid.len() - 4]);
    let mut sock = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;
    for token in [bad.as_str(), "not-a-jwt", bad.as_str()] {
        let request = format!(
            "POST /svc/mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(request.as_bytes()).await.expect("the connection is still open");
        let head =
            tokio::time::timeout(Duration::from_secs(3), read_head(&mut sock)).await.expect("an answer");
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
        // The JSON error body follows the head; drain it before the next request.
        let len: usize = head
            .to_ascii_lowercase()
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .expect("a sized error body");
        let already = head.len() - head.find("\r\n\r\n").unwrap() - 4;
        let mut rest = vec![0u8; len - already];
        sock.read_exact(&mut rest).await.unwrap();
    }
    assert_eq!(wire.accepted(), 0, "nothing reached the backend");
}

#[actix_web::test]
async fn a_client_leaving_a_silent_event_stream_frees_the_backend_connection() {
    // The backend opens an event stream, sends one event and then stays silent (an MCP server
    // with nothing to notify), watching for the gateway to close. The client leaves: by
    // closing its socket with the event unread (a reset), or by shutting down its sending side
    // (a FIN). A gateway that only notices a departed client when it next writes to it keeps
    // both sockets (and the token's stream slot) for as long as the backend is silent: every
    // reconnecting client would leave a pair behind.
    for reset in [true, false] {
        let took = leave_a_silent_stream(reset).await;
        assert!(took < Duration::from_secs(5), "reset {reset}: {took:?}");
    }
}

/// How long after the client left (closing with `reset`, or shutting down its sending side)
/// the gateway closed its connection to a silent event-stream backend.
async fn leave_a_silent_stream(reset: bool) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<Duration>();
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel::<()>();
    actix_web::rt::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        read_head(&mut sock).await;
        let event = b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n";
        let head =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        sock.write_all(head).await.unwrap();
        sock.write_all(format!("{:x}\r\n", event.len()).as_bytes()).await.unwrap();
        sock.write_all(event).await.unwrap();
        sock.write_all(b"\r\n").await.unwrap();
        let _ = sent_tx.send(());
        let since = std::time::Instant::now();
        let mut rest = [0u8; 64];
        while matches!(sock.read(&mut rest).await, Ok(n) if n > 0) {}
        let _ = closed_tx.send(since.elapsed());
    });
    let url = format!("http://127.0.0.1:{port}/mcp");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;
    let token = token_for(&app, "svc");

    let mut client = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let request = format!(
        "GET /svc/mcp HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tokio::time::timeout(Duration::from_secs(5), sent_rx).await.expect("the backend sent its event").unwrap();
    let kept = match reset {
        true => {
            drop(client);
            None
        }
        false => {
            client.shutdown().await.unwrap();
            Some(client)
        }
    };
    let took = tokio::time::timeout(Duration::from_secs(5), closed_rx)
        .await
        .expect("the backend connection was closed within 5 s of the client leaving")
        .unwrap();
    drop(kept);
    took
}
