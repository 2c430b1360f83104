//! The proxy's HTTP/1.1 client for backends: a per-worker pool of keep-alive connections, a
//! request writer and a streaming response reader.
//!
//! It replaces a general-purpose client on the hot path because the gateway's cost per request
//! is measured against a plain proxy hop (benchmark issue 5): the request head and a body that
//! has already arrived go out in one write; the response head is parsed in place; an idle
//! connection, pooled or streaming (an open SSE stream), holds no read or write buffer — body
//! bytes are read into a stack buffer and handed on as exactly-sized chunks.
//!
//! Framing follows RFC 9112 §6: no body for `HEAD`, 1xx, 204 and 304; else `Transfer-Encoding:
//! chunked` (decoded here, re-framed by the server), else `Content-Length`, else until close.
//! A connection goes back to the pool only after its whole response was read and when the
//! backend did not ask to close it. A pooled connection the backend has meanwhile closed is
//! noticed before reuse, and a request whose body is known in full is retried once on a new
//! connection when a reused one fails before any response byte.

mod backend_url;
mod body;
mod chunked;
mod encode;
mod exchange;
mod head;
mod pool;

use std::io;
use std::rc::Rc;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use bytes::Bytes;
use futures_util::Stream;

pub use self::backend_url::{BackendUrl, Origin};
pub use self::body::ResponseBody;
pub use self::head::content_length;
pub use self::pool::Pool;

use self::body::finish;
use self::chunked::Chunk;
use self::encode::encode_head;
use self::exchange::{exchange, Failure};

/// Why a backend exchange failed (logged; the client sees 502).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The backend URL is not an absolute http(s) URL.
    #[error("backend url is not an absolute http or https URL")]
    BadUrl,
    /// TCP connect (or TLS handshake) failed or timed out.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// Reading or writing failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The request body failed (the client went away or broke its framing).
    #[error("request body: {0}")]
    RequestBody(String),
    /// The client paused its request body for longer than the body timeout.
    #[error("request body: nothing arrived within the body timeout")]
    RequestBodyStalled,
    /// The backend's response is not valid HTTP/1.1.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

/// The request to send, head already filtered by the header rules.
pub struct Request<'a> {
    /// Method.
    pub method: &'a Method,
    /// Request target (path and query).
    pub target: &'a str,
    /// Headers to send besides `Host` and the body's framing.
    pub headers: &'a [(HeaderName, HeaderValue)],
}

/// The request body.
pub enum RequestBody<S> {
    /// No body.
    None,
    /// A body known in full.
    Full(Bytes),
    /// `len` bytes that arrive from `S`; the first ones may already be in `ready`.
    Sized { len: u64, ready: Bytes, rest: S },
    /// A body of unknown length from `S`, sent chunked.
    Chunked(S),
}

/// A backend's response head.
pub struct ResponseHead {
    /// Status.
    pub status: StatusCode,
    /// Headers as received.
    pub headers: HeaderMap,
    /// The body's length when it is known up front (0 for a response that has none: `HEAD`,
    /// 1xx, 204, 304), as this client framed it (RFC 9112 §6.3: `Transfer-Encoding` wins over
    /// `Content-Length`); `None` for a chunked or close-delimited body. The one place the
    /// response's framing is decided: the backend's own `Content-Length` header is not.
    pub body_length: Option<u64>,
}

/// Sends `req` to `url` over a pooled or new connection; returns the response head and a
/// body stream that returns the connection to `pool` once read to its end.
pub async fn send<S, E>(
    pool: &Rc<Pool>,
    url: &BackendUrl,
    req: Request<'_>,
    body: RequestBody<S>,
) -> Result<(ResponseHead, ResponseBody), ClientError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<ClientError>,
{
    let head = encode_head(&req, url, &body);
    let no_body = *req.method == Method::HEAD;
    let idempotent = matches!(*req.method, Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS);
    let mut body = body;
    // A pooled connection the backend closed between our check and its write fails before any
    // response byte: a body known in full is then sent once more on a new connection, when
    // the backend cannot have run it or running it twice is harmless (see `exchange`).
    if let Some(conn) = pool.take(&url.origin) {
        match exchange(conn, &head, &mut body, idempotent).await {
            Ok((conn, response_head, rest)) => {
                return Ok(finish(pool, url, conn, response_head, rest, no_body));
            }
            Err(Failure { err, retryable: true })
                if matches!(body, RequestBody::None | RequestBody::Full(_)) =>
            {
                log::debug!("pooled backend connection failed ({err}), retrying on a new one");
            }
            Err(Failure { err, .. }) => return Err(err),
        }
    }
    let conn = pool.connect(&url.origin).await?;
    let (conn, response_head, rest) =
        exchange(conn, &head, &mut body, idempotent).await.map_err(|f| f.err)?;
    Ok(finish(pool, url, conn, response_head, rest, no_body))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes remain.
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}
