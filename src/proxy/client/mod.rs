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

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// How long an idle pooled connection is kept: below the 5 s idle timeout of common backend
/// servers (actix-web, uvicorn, Node), so a connection the backend is about to close is rarely
/// picked.
const IDLE_KEEP_ALIVE: Duration = Duration::from_secs(3);
/// Idle connections kept per backend; more are closed when they come back.
const MAX_IDLE_PER_ORIGIN: usize = 1024;
/// TCP connect (and TLS handshake) limit, independent of the service timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most response header lines accepted.
const MAX_HEADERS: usize = 128;
/// Longest chunk extension or trailer section accepted in a chunked body.
const MAX_CHUNK_META: usize = 16 * 1024;
/// Read size for response bodies (a stack buffer; each read becomes one exactly-sized chunk).
const READ_CHUNK: usize = 16 * 1024;

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
    /// The backend's response is not valid HTTP/1.1.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

/// A backend's address, parsed once from a service's `url`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    tls: bool,
    host: String,
    port: u16,
}

/// A service's backend URL, parsed once.
#[derive(Debug)]
pub struct BackendUrl {
    /// Shared with the response bodies that hand their connection back to the pool.
    origin: Rc<Origin>,
    /// `Host` header value (the URL's host, and its port unless it is the scheme's default).
    authority: HeaderValue,
    /// Path and query of the URL, as the request target.
    target: String,
}

impl BackendUrl {
    /// Parses an absolute http(s) URL.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let url = url::Url::parse(url).map_err(|_| ClientError::BadUrl)?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(ClientError::BadUrl),
        };
        let host = match url.host().ok_or(ClientError::BadUrl)? {
            url::Host::Domain(d) => d.to_owned(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        let port = url.port_or_known_default().ok_or(ClientError::BadUrl)?;
        let host_str = url.host_str().ok_or(ClientError::BadUrl)?;
        let authority = match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_owned(),
        };
        let authority = HeaderValue::from_str(&authority).map_err(|_| ClientError::BadUrl)?;
        let mut target = url.path().to_owned();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        Ok(Self { origin: Rc::new(Origin { tls, host, port }), authority, target })
    }

    /// The request target with the client's query appended, minus any `access_token`
    /// parameter (a token in the query is never accepted, and never passed on either).
    pub fn target_with(&self, client_query: &str) -> Cow<'_, str> {
        let query = without_access_token(client_query);
        match (query.is_empty(), self.target.contains('?')) {
            (true, _) => Cow::Borrowed(&self.target),
            (false, true) => Cow::Owned(format!("{}&{query}", self.target)),
            (false, false) => Cow::Owned(format!("{}?{query}", self.target)),
        }
    }
}

fn without_access_token(query: &str) -> String {
    if !query.contains("access_token") {
        return query.to_owned();
    }
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("access_token"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A connection to a backend.
enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether an idle connection can carry another request: the backend has neither closed it
    /// nor sent anything unasked. No system call unless the socket was reported readable. A TLS
    /// connection is not probed (a byte read past TLS would break its record stream; a server
    /// may send session tickets late): the retry covers it.
    fn is_reusable(&self) -> bool {
        match self {
            Conn::Plain(tcp) => {
                let mut probe = [0u8; 1];
                matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Conn::Tls(_) => true,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One backend's idle connections with the time each was returned, oldest first.
type IdleQueue = VecDeque<(Conn, Instant)>;

/// Idle keep-alive connections of one worker, by backend. Shared (`Rc`) with the response
/// bodies that hand their connection back.
#[derive(Default)]
pub struct Pool {
    idle: RefCell<HashMap<Rc<Origin>, IdleQueue>>,
    tls: OnceCell<tokio_rustls::TlsConnector>,
}

impl Pool {
    /// The most recently used live idle connection to `origin`; stale ones are closed.
    fn take(&self, origin: &Origin) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let queue = idle.get_mut(origin)?;
        let now = Instant::now();
        while let Some((conn, since)) = queue.pop_back() {
            if now.duration_since(since) >= IDLE_KEEP_ALIVE {
                // Everything older is stale too.
                queue.clear();
                return None;
            }
            if conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, origin: &Rc<Origin>, conn: Conn) {
        let mut idle = self.idle.borrow_mut();
        let queue = match idle.get_mut(origin) {
            Some(queue) => queue,
            None => idle.entry(origin.clone()).or_default(),
        };
        let now = Instant::now();
        while queue.front().is_some_and(|(_, since)| now.duration_since(*since) >= IDLE_KEEP_ALIVE) {
            queue.pop_front();
        }
        if queue.len() < MAX_IDLE_PER_ORIGIN {
            queue.push_back((conn, now));
        }
    }

    async fn connect(&self, origin: &Origin) -> Result<Conn, ClientError> {
        let connect = async {
            let tcp = match origin.host.parse::<IpAddr>() {
                Ok(ip) => TcpStream::connect(SocketAddr::new(ip, origin.port)).await?,
                Err(_) => TcpStream::connect((origin.host.as_str(), origin.port)).await?,
            };
            tcp.set_nodelay(true)?;
            if !origin.tls {
                return Ok(Conn::Plain(tcp));
            }
            let name = ServerName::try_from(origin.host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tls = self.tls_connector().connect(name, tcp).await?;
            Ok(Conn::Tls(Box::new(tls)))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(result) => result.map_err(ClientError::Connect),
            Err(_) => Err(ClientError::Connect(io::ErrorKind::TimedOut.into())),
        }
    }

    fn tls_connector(&self) -> &tokio_rustls::TlsConnector {
        self.tls.get_or_init(|| {
            let roots = tokio_rustls::rustls::RootCertStore::from_iter(
                webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
            );
            let mut config = tokio_rustls::rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            tokio_rustls::TlsConnector::from(Arc::new(config))
        })
    }
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
    E: std::fmt::Display,
{
    let head = encode_head(&req, url, &body);
    let no_body = *req.method == Method::HEAD;
    let mut body = body;
    // A pooled connection the backend closed between our check and its write fails before any
    // response byte: a body known in full is then sent once more on a new connection.
    if let Some(conn) = pool.take(&url.origin) {
        match exchange(conn, &head, &mut body).await {
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
    let (conn, response_head, rest) = exchange(conn, &head, &mut body).await.map_err(|f| f.err)?;
    Ok(finish(pool, url, conn, response_head, rest, no_body))
}

struct Failure {
    err: ClientError,
    /// Nothing of a response arrived: the request can be sent again if its body can.
    retryable: bool,
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure { err, retryable: false }
    }
}

/// Writes the request and reads the response head. Returns the bytes read past the head.
async fn exchange<S, E>(
    mut conn: Conn,
    head: &BytesMut,
    body: &mut RequestBody<S>,
) -> Result<(Conn, ParsedHead, Bytes), Failure>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let retryable = |err: io::Error| Failure { err: ClientError::Io(err), retryable: true };
    // A streamed body is consumed as it is sent; `None` and `Full` stay for a retry.
    match body {
        RequestBody::None => conn.write_all(head).await.map_err(retryable)?,
        RequestBody::Full(bytes) => write_two(&mut conn, head, bytes).await.map_err(retryable)?,
        RequestBody::Sized { len, ready, rest } => {
            let len = *len;
            write_two(&mut conn, head, ready).await.map_err(ClientError::Io)?;
            let mut sent = ready.len() as u64;
            while sent < len {
                let chunk = next_chunk(rest)
                    .await?
                    .ok_or_else(|| ClientError::RequestBody(format!("ended after {sent} of {len} bytes")))?;
                let take = chunk.len().min((len - sent) as usize);
                conn.write_all(&chunk[..take]).await.map_err(ClientError::Io)?;
                sent += take as u64;
            }
        }
        RequestBody::Chunked(rest) => {
            conn.write_all(head).await.map_err(ClientError::Io)?;
            while let Some(chunk) = next_chunk(rest).await? {
                if chunk.is_empty() {
                    continue;
                }
                let mut framed = BytesMut::with_capacity(chunk.len() + 20);
                framed.put_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                framed.put_slice(&chunk);
                framed.put_slice(b"\r\n");
                conn.write_all(&framed).await.map_err(ClientError::Io)?;
            }
            conn.write_all(b"0\r\n\r\n").await.map_err(ClientError::Io)?;
        }
    }
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let n = match conn.read_buf(&mut buf).await {
            Ok(n) => n,
            Err(err) => return Err(Failure { err: ClientError::Io(err), retryable: buf.is_empty() }),
        };
        if n == 0 {
            let err = ClientError::Io(io::ErrorKind::UnexpectedEof.into());
            return Err(Failure { err, retryable: buf.is_empty() });
        }
        while let Some((parsed, len)) = parse_head(&buf)? {
            buf.advance(len);
            // Interim responses (100 Continue, 103 Early Hints) are skipped; the gateway never
            // asks for an upgrade, so 101 is an error.
            if parsed.status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(ClientError::Malformed("unexpected 101 Switching Protocols").into());
            }
            if parsed.status.is_informational() {
                continue;
            }
            // What came with the head is kept on its own when small, so the head's buffer is
            // freed now rather than when the body is done (an SSE stream may stay open).
            let rest = match buf.len() {
                0 => Bytes::new(),
                n if n <= 1024 => Bytes::copy_from_slice(&buf),
                _ => buf.freeze(),
            };
            return Ok((conn, parsed, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(ClientError::Malformed("response head too large").into());
        }
    }
}

async fn write_two(conn: &mut Conn, head: &[u8], body: &[u8]) -> io::Result<()> {
    if body.len() <= 16 * 1024 {
        // One write for head and body: one segment on the wire for a typical MCP request.
        let mut one = Vec::with_capacity(head.len() + body.len());
        one.extend_from_slice(head);
        one.extend_from_slice(body);
        return conn.write_all(&one).await;
    }
    conn.write_all(head).await?;
    conn.write_all(body).await
}

async fn next_chunk<S, E>(stream: &mut S) -> Result<Option<Bytes>, ClientError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    match std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await {
        Some(Ok(chunk)) => Ok(Some(chunk)),
        Some(Err(err)) => Err(ClientError::RequestBody(err.to_string())),
        None => Ok(None),
    }
}

/// The request head: request line, `Host`, the given headers and the body's framing.
fn encode_head<S>(req: &Request<'_>, url: &BackendUrl, body: &RequestBody<S>) -> BytesMut {
    let mut size = req.method.as_str().len() + req.target.len() + url.authority.len() + 64;
    for (name, value) in req.headers {
        size += name.as_str().len() + value.len() + 4;
    }
    let mut head = BytesMut::with_capacity(size);
    head.put_slice(req.method.as_str().as_bytes());
    head.put_u8(b' ');
    head.put_slice(req.target.as_bytes());
    head.put_slice(b" HTTP/1.1\r\nhost: ");
    head.put_slice(url.authority.as_bytes());
    head.put_slice(b"\r\n");
    for (name, value) in req.headers {
        head.put_slice(name.as_str().as_bytes());
        head.put_slice(b": ");
        head.put_slice(value.as_bytes());
        head.put_slice(b"\r\n");
    }
    match body {
        RequestBody::None => {}
        RequestBody::Full(bytes) => put_content_length(&mut head, bytes.len() as u64),
        RequestBody::Sized { len, .. } => put_content_length(&mut head, *len),
        RequestBody::Chunked(_) => head.put_slice(b"transfer-encoding: chunked\r\n"),
    }
    head.put_slice(b"\r\n");
    head
}

fn put_content_length(head: &mut BytesMut, len: u64) {
    head.put_slice(b"content-length: ");
    head.put_slice(len.to_string().as_bytes());
    head.put_slice(b"\r\n");
}

struct ParsedHead {
    status: StatusCode,
    headers: HeaderMap,
    /// HTTP/1.1 and no `Connection: close`.
    keep_alive: bool,
    framing: Framing,
}

/// A complete response head at the start of `buf` and its length, `None` when more is needed.
fn parse_head(buf: &[u8]) -> Result<Option<(ParsedHead, usize)>, ClientError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ClientError::Malformed("too many headers")),
        Err(_) => return Err(ClientError::Malformed("invalid response head")),
    };
    let status = res
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ClientError::Malformed("invalid status"))?;
    let mut headers = HeaderMap::with_capacity(res.headers.len());
    let mut keep_alive = res.version == Some(1);
    let mut chunked = false;
    let mut length: Option<u64> = None;
    for h in res.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| ClientError::Malformed("header name"))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| ClientError::Malformed("header value"))?;
        if name == actix_web::http::header::CONNECTION {
            keep_alive &= !has_token(h.value, "close");
        } else if name == actix_web::http::header::TRANSFER_ENCODING {
            // Only a final `chunked` coding frames the body; anything else reads until close.
            chunked = last_token_is(h.value, "chunked");
            keep_alive &= chunked;
        } else if name == actix_web::http::header::CONTENT_LENGTH {
            let parsed = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
            match (parsed, length) {
                (Some(v), None) => length = Some(v),
                (Some(v), Some(seen)) if v == seen => {}
                _ => return Err(ClientError::Malformed("invalid Content-Length")),
            }
        }
        headers.append(name, value);
    }
    let framing = if chunked {
        Framing::Chunked(Chunk::Size { size: 0, digits: 0 })
    } else if headers.contains_key(actix_web::http::header::TRANSFER_ENCODING) {
        Framing::UntilClose
    } else {
        match length {
            Some(len) => Framing::Length(len),
            None => Framing::UntilClose,
        }
    };
    Ok(Some((ParsedHead { status, headers, keep_alive, framing }, len)))
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(|t| t.trim_ascii())
}

fn has_token(value: &[u8], token: &str) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

fn last_token_is(value: &[u8], token: &str) -> bool {
    tokens(value).filter(|t| !t.is_empty()).last().is_some_and(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

fn finish(
    pool: &Rc<Pool>,
    url: &BackendUrl,
    conn: Conn,
    parsed: ParsedHead,
    rest: Bytes,
    head_request: bool,
) -> (ResponseHead, ResponseBody) {
    let status = parsed.status;
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body { Framing::Length(0) } else { parsed.framing };
    // A body that ends with the connection leaves nothing to reuse.
    let keep_alive = parsed.keep_alive && framing != Framing::UntilClose;
    let mut body = ResponseBody {
        conn: Some(conn),
        pool: Rc::clone(pool),
        origin: Rc::clone(&url.origin),
        keep_alive,
        buffered: rest,
        framing,
    };
    body.release_if_done();
    (ResponseHead { status, headers: parsed.headers }, body)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes remain.
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

/// Where a chunked body's decoder is (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex chunk size.
    Size {
        size: u64,
        digits: u8,
    },
    /// Skipping a chunk extension (`len` bytes so far).
    Ext {
        size: u64,
        len: usize,
    },
    /// Expecting the LF that ends the size line.
    SizeLf {
        size: u64,
    },
    /// This many data bytes remain in the chunk.
    Data(u64),
    /// Expecting CR LF after the data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (`len` trailer bytes so far).
    TrailerStart {
        len: usize,
    },
    /// Inside a trailer line.
    Trailer {
        len: usize,
    },
    /// Expecting the LF of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

enum Decoded {
    Data(Bytes),
    NeedMore,
    Done,
}

/// Decodes what `buf` holds of a chunked body, consuming framing bytes, returning data as
/// slices of `buf` (no copy).
fn decode_chunked(state: &mut Chunk, buf: &mut Bytes) -> Result<Decoded, ClientError> {
    let bad = || ClientError::Malformed("invalid chunked encoding");
    loop {
        match *state {
            Chunk::Done => return Ok(Decoded::Done),
            Chunk::Data(remaining) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = remaining.min(buf.len() as u64);
                *state = if n == remaining { Chunk::DataCr } else { Chunk::Data(remaining - n) };
                return Ok(Decoded::Data(buf.split_to(n as usize)));
            }
            _ => {}
        }
        let Some(&b) = buf.first() else {
            return Ok(Decoded::NeedMore);
        };
        buf.advance(1);
        *state = match (*state, b) {
            (Chunk::Size { size, digits }, b) if b.is_ascii_hexdigit() => {
                if digits >= 15 {
                    return Err(bad());
                }
                let digit = (b as char).to_digit(16).map(u64::from).unwrap_or_default();
                Chunk::Size { size: size * 16 + digit, digits: digits + 1 }
            }
            (Chunk::Size { size, digits }, b';' | b' ' | b'\t') if digits > 0 => Chunk::Ext { size, len: 0 },
            (Chunk::Size { size, digits }, b'\r') if digits > 0 => Chunk::SizeLf { size },
            (Chunk::Ext { size, .. }, b'\r') => Chunk::SizeLf { size },
            (Chunk::Ext { size, len }, b) if b != b'\n' && len < MAX_CHUNK_META => {
                Chunk::Ext { size, len: len + 1 }
            }
            (Chunk::SizeLf { size: 0 }, b'\n') => Chunk::TrailerStart { len: 0 },
            (Chunk::SizeLf { size }, b'\n') => Chunk::Data(size),
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => Chunk::Size { size: 0, digits: 0 },
            (Chunk::TrailerStart { .. }, b'\r') => Chunk::EndLf,
            (Chunk::TrailerStart { len } | Chunk::Trailer { len }, b'\n') => Chunk::TrailerStart { len },
            (Chunk::TrailerStart { len } | Chunk::Trailer { len }, _) if len < MAX_CHUNK_META => {
                Chunk::Trailer { len: len + 1 }
            }
            (Chunk::EndLf, b'\n') => Chunk::Done,
            _ => return Err(bad()),
        };
    }
}

/// A backend response body, streamed; returns its connection to the pool when read to its end
/// (dropping it early closes the connection).
pub struct ResponseBody {
    conn: Option<Conn>,
    pool: Rc<Pool>,
    origin: Rc<Origin>,
    keep_alive: bool,
    /// Bytes read but not yet handed on (or, when chunked, not yet decoded).
    buffered: Bytes,
    framing: Framing,
}

impl ResponseBody {
    fn is_done(&self) -> bool {
        matches!(self.framing, Framing::Length(0) | Framing::Chunked(Chunk::Done))
    }

    /// Hands the connection back once the body is complete (and nothing extra was sent).
    fn release_if_done(&mut self) {
        if !self.is_done() {
            return;
        }
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && self.buffered.is_empty() {
                self.pool.put(&self.origin, conn);
            }
        }
    }

    /// The next piece of body from what is already buffered, if any.
    fn next_buffered(&mut self) -> Result<Option<Bytes>, ClientError> {
        match &mut self.framing {
            Framing::Length(remaining) => {
                if self.buffered.is_empty() || *remaining == 0 {
                    return Ok(None);
                }
                let n = (*remaining).min(self.buffered.len() as u64);
                *remaining -= n;
                Ok(Some(take_front(&mut self.buffered, n as usize)))
            }
            Framing::UntilClose => {
                Ok(if self.buffered.is_empty() { None } else { Some(std::mem::take(&mut self.buffered)) })
            }
            Framing::Chunked(state) => {
                let decoded = decode_chunked(state, &mut self.buffered)?;
                if self.buffered.is_empty() {
                    // An empty `Bytes` still holds its buffer alive (the 4 KiB the head was
                    // read into): let it go, an open stream may idle for hours.
                    self.buffered = Bytes::new();
                }
                match decoded {
                    Decoded::Data(data) => Ok(Some(data)),
                    Decoded::NeedMore | Decoded::Done => Ok(None),
                }
            }
        }
    }
}

/// The first `n` bytes of `buf`; an emptied `buf` lets go of its buffer.
fn take_front(buf: &mut Bytes, n: usize) -> Bytes {
    if n == buf.len() {
        return std::mem::take(buf);
    }
    buf.split_to(n)
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.next_buffered() {
                Ok(Some(data)) => {
                    this.release_if_done();
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(None) => {}
                Err(err) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(err)));
                }
            }
            if this.is_done() {
                this.release_if_done();
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let mut space = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut read = ReadBuf::uninit(&mut space);
            if let Err(err) = ready!(Pin::new(conn).poll_read(cx, &mut read)) {
                this.conn = None;
                return Poll::Ready(Some(Err(err.into())));
            }
            if read.filled().is_empty() {
                this.conn = None;
                if matches!(this.framing, Framing::UntilClose) {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()))));
            }
            let fresh = Bytes::copy_from_slice(read.filled());
            if this.buffered.is_empty() {
                this.buffered = fresh;
            } else {
                let mut joined = BytesMut::with_capacity(this.buffered.len() + fresh.len());
                joined.put_slice(&this.buffered);
                joined.put_slice(&fresh);
                this.buffered = joined.freeze();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(parts: &[&[u8]]) -> Result<(Vec<u8>, bool), ClientError> {
        let mut state = Chunk::Size { size: 0, digits: 0 };
        let mut out = Vec::new();
        for part in parts {
            let mut buf = Bytes::copy_from_slice(part);
            loop {
                match decode_chunked(&mut state, &mut buf)? {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::NeedMore => break,
                    Decoded::Done => return Ok((out, buf.is_empty())),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire: &[u8] = b"5;ext=1\r\nhello\r\nB\r\n, world!!!!\r\n0\r\nx-trailer: 1\r\n\r\n";
        for split in 0..wire.len() {
            let (a, b) = wire.split_at(split);
            let (data, clean) = decode_all(&[a, b]).expect("valid");
            assert_eq!(data, b"hello, world!!!!", "split at {split}");
            assert!(clean);
        }
        let (data, _) = decode_all(&[b"0\r\n\r\n"]).expect("empty body");
        assert!(data.is_empty());
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        for wire in [&b"x\r\n"[..], b"\r\n", b"5\r\nhelloXX", b"5\nhello", b"ffffffffffffffff1\r\n"] {
            assert!(decode_all(&[wire]).is_err(), "{}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn response_heads_parse_with_their_framing() {
        let (head, len) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nabc")
            .expect("valid")
            .expect("complete");
        assert_eq!((head.status, len, head.keep_alive), (StatusCode::OK, 46, true));
        assert_eq!(head.framing, Framing::Length(3));
        assert_eq!(head.headers.get("x-a").map(|v| v.as_bytes()), Some(&b"1"[..]));

        let (head, _) = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert!(matches!(head.framing, Framing::Chunked(_)) && head.keep_alive);

        let (head, _) = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n")
            .expect("ok")
            .expect("c");
        assert!(!head.keep_alive);
        let (head, _) = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").expect("ok").expect("c");
        assert!(!head.keep_alive);
        let (head, _) = parse_head(b"HTTP/1.1 200 OK\r\n\r\n").expect("ok").expect("c");
        assert_eq!(head.framing, Framing::UntilClose);

        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").expect("partial").is_none());
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn backend_urls_parse_once_and_take_the_client_query() {
        let url = BackendUrl::parse("http://127.0.0.1:9000/mcp").expect("url");
        assert_eq!(*url.origin, Origin { tls: false, host: "127.0.0.1".into(), port: 9000 });
        assert_eq!(url.authority.as_bytes(), b"127.0.0.1:9000");
        assert_eq!(url.target_with("a=1&access_token=x&b=2"), "/mcp?a=1&b=2");
        assert_eq!(url.target_with("access_token=x"), "/mcp");
        let url = BackendUrl::parse("https://[::1]/base/mcp?k=v").expect("url");
        assert_eq!(*url.origin, Origin { tls: true, host: "::1".into(), port: 443 });
        assert_eq!(url.authority.as_bytes(), b"[::1]");
        assert_eq!(url.target_with("a=1"), "/base/mcp?k=v&a=1");
        assert!(BackendUrl::parse("ftp://x/").is_err() && BackendUrl::parse("not a url").is_err());
    }

    #[test]
    fn request_heads_carry_host_headers_and_framing() {
        let url = BackendUrl::parse("http://b.example:8080/mcp").expect("url");
        let headers = [(HeaderName::from_static("x-user-id"), HeaderValue::from_static("alice"))];
        let req = Request { method: &Method::POST, target: "/mcp?q=1", headers: &headers };
        let body: RequestBody<futures_util::stream::Empty<Result<Bytes, io::Error>>> =
            RequestBody::Full(Bytes::from_static(b"{}"));
        let head = encode_head(&req, &url, &body);
        assert_eq!(
            &head[..],
            b"POST /mcp?q=1 HTTP/1.1\r\nhost: b.example:8080\r\nx-user-id: alice\r\ncontent-length: 2\r\n\r\n"
        );
    }
}
