//! Issue 14: a proxied call answered with a stream must not wait for Nagle's algorithm. The
//! official Python SDK answers `tools/call` with `text/event-stream`, chunked, and writes the
//! head, each event and the terminator separately, without `TCP_NODELAY`: each of those small
//! writes after the first waits for the gateway's ACK, which Linux delays by about 40 ms unless
//! the gateway ACKs at once (`TCP_QUICKACK`); and on the gateway's side towards the client,
//! without `TCP_NODELAY` its own small writes wait for the client's delayed ACK. This is the one timed test: it guards a
//! 40 ms stall, with a 20 ms bar on the median of ten calls on loopback.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::proxy::{gateway, service, token_for};

/// A backend that answers every request like the Python SDK: head, one event, terminator, each
/// its own write, a moment apart.
async fn sse_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    actix_web::rt::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            // No TCP_NODELAY, like uvicorn under the Python SDK: each write after the first
            // waits for the ACK of the one before, which a delayed ACK holds back ~40 ms.
            actix_web::rt::spawn(async move {
                let mut buf = Vec::new();
                let event = "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n\r\n";
                let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                while read_message(&mut sock, &mut buf, false).await.is_some() {
                    let pieces: [&[u8]; 3] = [
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
                        chunk.as_bytes(),
                        b"0\r\n\r\n",
                    ];
                    for piece in pieces {
                        if sock.write_all(piece).await.is_err() {
                            return;
                        }
                        // The SDK does work between its writes: they reach the gateway apart.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            });
        }
    });
    port
}

/// Reads one HTTP message from `sock` (a request with a `Content-Length` body, or a response
/// with a chunked body when `chunked`); `None` when the peer closed.
async fn read_message(sock: &mut TcpStream, buf: &mut Vec<u8>, chunked: bool) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let done = if chunked {
                buf[end + 4..].windows(5).position(|w| w == b"0\r\n\r\n").map(|p| end + 4 + p + 5)
            } else {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                (buf.len() >= end + 4 + len).then_some(end + 4 + len)
            };
            if let Some(done) = done {
                return Some(buf.drain(..done).collect());
            }
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[actix_web::test]
async fn a_streamed_answer_is_not_held_back_by_nagle() {
    let port = sse_backend().await;
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(format!("http://127.0.0.1:{port}/mcp")));
    })
    .await;
    let token = token_for(&app, "svc");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    let request = format!(
        "POST /svc/mcp HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         content-length: {}\r\n\r\n{body}",
        app.port,
        body.len()
    );
    // One keep-alive client, calls one after the other, as an MCP session makes them.
    let mut client = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let mut buf = Vec::new();
    let mut times = Vec::new();
    for _ in 0..11 {
        let started = Instant::now();
        client.write_all(request.as_bytes()).await.unwrap();
        let reply = read_message(&mut client, &mut buf, true)
            .await
            .unwrap_or_else(|| panic!("no reply; read: {}", String::from_utf8_lossy(&buf)));
        times.push(started.elapsed());
        assert!(reply.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&reply));
    }
    // The first call also opens the backend connection.
    times.remove(0);
    times.sort();
    let median = times[times.len() / 2];
    eprintln!("streamed tools/call through the gateway: median {median:?}");
    assert!(median < Duration::from_millis(20), "median {median:?} of {times:?}");
}
