//! The proxy's HTTP client for backends: hyper's HTTP/1.1 client with hyper-util's pool
//! (chosen over awc and over the earlier hand-written client: `bench/PROFILE.md`, "The backend
//! client"), one per worker and per TLS setting.
//!
//! What it guarantees, and where that comes from:
//! - RFC 9112 framing (hyper): `Transfer-Encoding` wins over `Content-Length`, which is then
//!   dropped; no body on 1xx/204/304 or for `HEAD`; a malformed length (`+5`) is an error.
//! - Full duplex (hyper): the answer is read while the request body is still being sent, so
//!   an early 413 or 401 from the backend reaches the client instead of a 502.
//! - No request is sent twice once its bytes went out (hyper-util only retries a request that
//!   a pooled connection closed before it was written); [`send`] itself tries once more only a
//!   request without a body whose method is idempotent (RFC 9110 §9.2.2).
//! - The pool: idle connections are kept [`IDLE_KEEP_ALIVE`] and reaped by hyper-util's timer;
//!   one the backend closed is dropped as soon as its connection task reads the close (no
//!   `CLOSE_WAIT`); `TCP_NODELAY`, immediate ACKs while an answer is still coming
//!   ([`quickack`]) and TCP keepalive on every connection, so an event stream
//!   from a host that vanished ends; bounded connect time and head size.

mod backend_url;
pub mod convert;
mod length;
mod quickack;
mod response;
mod tls;
mod upload;

use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use bytes::Bytes;
use futures_util::Stream;

use crate::core::error::chain;
use hyper::body::Body as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Pooled;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use self::backend_url::BackendUrl;
pub use self::length::content_length;
pub use self::response::ResponseBody;
pub use self::tls::TlsOptions;

use self::quickack::QuickAckConnector;
use self::upload::Upload;

/// How long an idle pooled connection is kept: below the 5 s idle timeout of common backend
/// servers (actix-web, uvicorn, Node), so a connection the backend is about to close is rarely
/// picked.
const IDLE_KEEP_ALIVE: Duration = Duration::from_secs(3);
/// Idle connections kept per backend.
const MAX_IDLE_PER_ORIGIN: usize = 1024;
/// TCP connect limit, independent of the service timeout (which bounds the whole wait for
/// the response head, TLS handshake included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive: probes after this much silence, then every [`KEEPALIVE_INTERVAL`]; a
/// backend host that vanished (no FIN, no RST) is noticed within about a minute and a half
/// instead of never, which ends an event stream from it.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 5;
/// The largest response head accepted (hyper's read buffer limit, so also the largest piece
/// of body read at once).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Why a backend exchange failed (logged; the client sees 502).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The backend URL is not an absolute http(s) URL.
    #[error("backend url is not an absolute http or https URL")]
    BadUrl,
    /// TCP connect or TLS handshake failed.
    #[error("connect: {0}")]
    Connect(String),
    /// Sending the request or reading the answer failed, or the answer is not valid HTTP/1.1.
    #[error("exchange: {0}")]
    Exchange(String),
    /// The request body failed (the client went away or broke its framing).
    #[error("request body: {0}")]
    RequestBody(String),
    /// The client paused its request body for longer than the body timeout.
    #[error("request body: nothing arrived within the body timeout")]
    RequestBodyStalled,
}

/// A failed exchange, with the client's body stream when it stalled (the 408 holds it).
pub struct Failure<S> {
    /// What failed.
    pub err: ClientError,
    /// The request body, given back when it stalled.
    pub body: Option<S>,
}

/// The request to send, head already filtered by the header rules.
pub struct Request<'a> {
    /// Method.
    pub method: &'a Method,
    /// The client's query string (the backend URL's own query comes first).
    pub query: &'a str,
    /// Headers to send besides `Host` and the body's framing, already in hyper's type (the
    /// header rules build it directly, so nothing is converted here).
    pub headers: http::HeaderMap,
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
    /// 1xx, 204, 304), as hyper framed it; `None` for a chunked or close-delimited body. The
    /// one place the response's framing is decided.
    pub body_length: Option<u64>,
}

/// A worker's client for the backends that share one TLS setting. Cheap to clone (the pool is
/// shared).
#[derive(Clone)]
pub struct Client {
    pooled: Pooled<hyper_rustls::HttpsConnector<QuickAckConnector>, Upload>,
}

impl Client {
    /// A client verifying https backends as `tls` says; an error names an unreadable `ca_file`.
    pub fn new(tls: &TlsOptions) -> Result<Self, String> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        tcp.set_keepalive(Some(KEEPALIVE_IDLE));
        tcp.set_keepalive_interval(Some(KEEPALIVE_INTERVAL));
        tcp.set_keepalive_retries(Some(KEEPALIVE_RETRIES));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls::client_config(tls)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(QuickAckConnector(tcp));
        let pooled = Pooled::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_KEEP_ALIVE)
            .pool_max_idle_per_host(MAX_IDLE_PER_ORIGIN)
            .http1_max_buf_size(MAX_HEAD_BYTES)
            .build(connector);
        Ok(Self { pooled })
    }

    /// Sends `req` to `url`; returns the response head and the body stream.
    pub async fn send<S, E>(
        &self,
        url: &BackendUrl,
        req: Request<'_>,
        body: RequestBody<S>,
    ) -> Result<(ResponseHead, ResponseBody), Failure<S>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + 'static,
        E: Into<ClientError> + 'static,
    {
        let fail = |err| Failure { err, body: None };
        let uri = url.uri_with(req.query).map_err(fail)?;
        let method = convert::method(req.method).ok_or(ClientError::BadUrl).map_err(fail)?;
        let idempotent = matches!(*req.method, Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS);
        let (first, again, broken) = match body {
            RequestBody::None => (Upload::empty(), Some(Bytes::new()), None),
            RequestBody::Full(bytes) => (Upload::full(bytes.clone()), Some(bytes), None),
            RequestBody::Sized { len, ready, rest } => {
                let (upload, broken) = Upload::streamed(ready, rest, Some(len));
                (upload, None, Some(broken))
            }
            RequestBody::Chunked(rest) => {
                let (upload, broken) = Upload::streamed(Bytes::new(), rest, None);
                (upload, None, Some(broken))
            }
        };
        // Only a request that may be sent again keeps a copy of its head (not a `POST`).
        let again = again.filter(|_| idempotent).map(|bytes| (bytes, req.headers.clone()));
        let first = build_request(method.clone(), uri.clone(), req.headers, first);
        let err = match self.pooled.request(first).await {
            Ok(res) => return Ok(into_parts(res)),
            Err(err) => err,
        };
        if let Some((err, body)) = broken.and_then(|b| b.borrow_mut().take()) {
            return Err(Failure { err, body });
        }
        // A request without a body whose method is idempotent may be sent again after a
        // failure before any answer (a reused connection the backend had just closed).
        match again {
            Some((bytes, headers)) if !err.is_connect() => {
                log::debug!("backend exchange failed before an answer ({}), trying once more", chain(&err));
                let retry = build_request(method, uri, headers, Upload::full(bytes));
                self.pooled.request(retry).await.map(into_parts).map_err(|e| fail(classify(&e)))
            }
            _ => Err(fail(classify(&err))),
        }
    }
}

/// The hyper request: the head the header rules built, plus the length of a sized body as
/// `Content-Length`; hyper adds `Host` from the URI.
fn build_request(
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Upload,
) -> http::Request<Upload> {
    let len = body.size_hint().exact().filter(|len| *len > 0);
    let mut req = http::Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    if let Some(len) = len {
        req.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    }
    req
}

/// The response head in actix's types and the body stream.
fn into_parts(res: http::Response<hyper::body::Incoming>) -> (ResponseHead, ResponseBody) {
    let (mut parts, body) = res.into_parts();
    let ack = parts.extensions.remove::<quickack::AckNow>();
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        // hyper has checked both; a name or value actix would not take is left out.
        if let (Some(name), Some(value)) = (convert::response_name(name), convert::response_value(value)) {
            headers.append(name, value);
        }
    }
    let body_length = body.size_hint().exact();
    (ResponseHead { status, headers, body_length }, ResponseBody { body, ack })
}

/// A failed exchange as the log should tell it.
fn classify(err: &hyper_util::client::legacy::Error) -> ClientError {
    match err.is_connect() {
        true => ClientError::Connect(chain(err)),
        false => ClientError::Exchange(chain(err)),
    }
}
