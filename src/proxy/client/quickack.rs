//! Immediate ACKs on backend connections, when an answer is still coming. Many MCP backends
//! (uvicorn under the Python SDK, among them) write an answer in small pieces — head, each
//! event, the chunked terminator — without `TCP_NODELAY`, so each piece after the first waits
//! for the ACK of the one before; Linux delays that ACK by up to 40 ms on a request/response
//! connection. A client reading the backend directly can ACK at once; the gateway must too, or
//! it adds ~40 ms to every call such a backend answers in pieces (`bench/sdk_latency.sh`).
//!
//! Only then, though: an answer that arrived whole is ACKed by the next request on the
//! connection, and a pure ACK sent at once after every read cost the proxy hop 4–7 % of its
//! CPU (`bench/PROFILE.md`). So the ACK is asked for by the one who knows more is coming: the
//! response body ([`super::ResponseBody`]), whenever it has to wait for the backend. Each
//! connection hands out an [`AckNow`] (in every response's extensions, through hyper-util's
//! connection metadata); [`AckNow::request`] wakes the connection's task, whose next read sets
//! `TCP_QUICKACK`, which sends the pending ACK now. Not covered: a backend that splits the
//! response *head* itself over several small writes with Nagle on (the body is not there to
//! ask yet); the servers MCP backends run on write a head in one piece.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// [`HttpConnector`] whose connections ACK at once when asked ([`AckNow`]).
#[derive(Clone)]
pub struct QuickAckConnector(pub HttpConnector);

/// A backend TCP connection that ACKs what it has received at once when asked.
pub struct QuickAck {
    io: TokioIo<TcpStream>,
    ack: AckNow,
}

/// Asks one backend connection to ACK what it has received, now: for a response body that is
/// waiting for more of the answer.
#[derive(Clone)]
pub struct AckNow(Arc<Wanted>);

/// Shared by a connection and its [`AckNow`]s.
#[derive(Default)]
struct Wanted {
    /// An ACK was asked for since the connection last read.
    wanted: AtomicBool,
    /// The connection's task, while its read waits.
    reader: AtomicWaker,
}

impl AckNow {
    /// The connection ACKs at once what it has received (on its next read, which this wakes).
    pub fn request(&self) {
        self.0.wanted.store(true, Ordering::Release);
        self.0.reader.wake();
    }
}

impl tower_service::Service<http::Uri> for QuickAckConnector {
    type Response = QuickAck;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAck, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(QuickAck { io, ack: AckNow(Arc::default()) })
        })
    }
}

impl Read for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.ack.0.wanted.swap(false, Ordering::Acquire) {
            // A failure only loses the early ACK; the delayed one still comes.
            let _ = socket2::SockRef::from(self.io.inner()).set_tcp_quickack(true);
        }
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if polled.is_pending() {
            self.ack.0.reader.register(cx.waker());
        }
        polled
    }
}

impl Write for QuickAck {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        // hyper-util puts a clone of it in the extensions of every response on the connection.
        self.io.connected().extra(self.ack.clone())
    }
}
