//! The streaming forward (checklist C2, C3, C5): the response body comes back chunk by chunk,
//! nothing is decompressed. A request body of up to 64 KiB with a `Content-Length` (every
//! ordinary MCP message, and a body the step-up check had to read) is read whole and goes out
//! in the same write as the head, unchanged; larger and chunked bodies go out as they arrive.
//!
//! The service's `timeout` bounds only the wait for the backend's response head (connect,
//! request, head): a response body may stream far longer (an SSE stream can live for hours).
//! The client's request body is bounded by `limits.body_timeout_ms` ([`super::slow_body`]), a
//! stream holds its [`StreamSlot`] for as long as its response body lives, and an event stream
//! ends itself cleanly when the gateway drains ([`super::draining`]).

use std::future::poll_fn;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use prometheus::IntGauge;

use super::client::{self, BackendUrl, Client, ClientError, ResponseHead};
use super::draining::Draining;
use super::error::ProxyError;
use super::headers;
use super::slow_body::{Deadline, Idle, Unread};
use super::streams::{Gauged, Held, StreamSlot};
use crate::config::ServiceSettings;
use crate::core::drain::Drain;
use crate::core::model::AccessClaims;
use crate::web::request_id;

/// What the service needs to know about the exchange besides the request itself.
pub struct Target<'a> {
    /// Service id (named in errors and logs).
    pub id: &'a str,
    /// The service's settings.
    pub service: &'a ServiceSettings,
    /// The service's backend (`None`: its URL does not parse, or its TLS setting failed).
    pub backend: Option<&'a Backend>,
    /// `X-Forwarded-Proto` / `-Host`, from the gateway's issuer.
    pub origin: &'a headers::ForwardedOrigin,
    /// `limits.body_timeout_ms` (`None`: no limit).
    pub body_timeout: Option<Duration>,
    /// The shutdown drain, which ends event streams cleanly.
    pub drain: &'a Drain,
    /// The service's gauge of open event streams.
    pub open_streams: &'a IntGauge,
}

/// A service's backend: where it is, and the worker's client for its TLS setting.
pub struct Backend {
    /// The backend URL, parsed.
    pub url: BackendUrl,
    /// The client (shared by the worker's backends with the same TLS setting).
    pub client: Client,
}

/// The request body to send on.
pub enum Body {
    /// The client's body, streamed as it arrives (the normal case).
    Stream(web::Payload),
    /// A body the gateway had to read whole to authorize it (step-up), sent as read.
    Buffered(Bytes),
}

/// Forwards `req` with `body` to the service and streams the answer back. `slot` (a `GET`'s
/// stream slot) is kept by an event-stream answer's body and let go otherwise.
pub async fn forward(
    req: &HttpRequest,
    body: Body,
    target: &Target<'_>,
    user: Option<&AccessClaims>,
    slot: Option<StreamSlot>,
) -> Result<HttpResponse, ProxyError> {
    let Some(backend) = target.backend else {
        log::error!("service '{}': no usable backend (see the startup log)", target.id);
        return Err(ProxyError::BadGateway(target.id.to_owned()));
    };
    let peer: Option<IpAddr> = req.peer_addr().map(|a| a.ip());
    // At most the client's headers, six forwarding headers, five `x-user-*`, the request id
    // and `Content-Length`: one allocation, never a regrowth.
    let mut out = http::HeaderMap::with_capacity(req.headers().len() + 13);
    headers::copy_request_headers(req.headers(), &mut out);
    headers::add_forwarded(req.headers(), peer, target.origin, &mut out);
    if let Some(user) = user {
        headers::add_user_headers(user, &mut out);
    }
    // The request's own id, not whatever the client sent (`crate::web::request_id`).
    if let Ok(id) = http::HeaderValue::from_str(&request_id::of(req)) {
        out.append(client::convert::X_REQUEST_ID, id);
    }
    let request = client::Request { method: req.method(), query: req.query_string(), headers: out };
    let body = match (request_body(req.headers()), body) {
        (RequestBody::None, _) => client::RequestBody::None,
        (_, Body::Buffered(bytes)) => client::RequestBody::Full(bytes),
        (RequestBody::Sized(len), Body::Stream(mut payload)) => {
            let ready = match arrived(&mut payload, len, len <= WHOLE_BODY_LIMIT, target.body_timeout).await {
                Ok(ready) => ready,
                Err(Cut::TimedOut) => return Err(body_timeout(target.id, Some(payload))),
                Err(Cut::Broken) => return Err(ProxyError::BadRequest("the request body could not be read")),
            };
            match ready.len() as u64 == len {
                true => client::RequestBody::Full(ready),
                false => {
                    client::RequestBody::Sized { len, ready, rest: Idle::new(payload, target.body_timeout) }
                }
            }
        }
        (RequestBody::Chunked, Body::Stream(payload)) => {
            client::RequestBody::Chunked(Idle::new(payload, target.body_timeout))
        }
    };
    let send = backend.client.send(&backend.url, request, body);
    let result = match target.service.timeout {
        0 => send.await,
        ms => actix_web::rt::time::timeout(Duration::from_millis(ms), send).await.map_err(|_| {
            log::warn!("service '{}': no response head within {ms} ms", target.id);
            ProxyError::Timeout(target.id.to_owned())
        })?,
    };
    let (head, body) = result.map_err(|failure| match failure.err {
        ClientError::RequestBodyStalled => body_timeout(target.id, failure.body.map(Idle::into_inner)),
        err => {
            log::warn!("service '{}': backend request failed: {err}", target.id);
            ProxyError::BadGateway(target.id.to_owned())
        }
    })?;
    // An event stream without a length ends itself when the gateway drains: a `GET` (nothing
    // in progress on it) at once, anything else shortly before the drain time is up.
    let mut head = head;
    if req.method() == Method::HEAD {
        // No body comes, but the answer says how long a `GET`'s would be.
        head.body_length = content_length(&head.headers);
    }
    let event_stream = headers::is_event_stream(&head.headers);
    let body = Gauged::new(body, event_stream.then(|| target.open_streams.clone()));
    let drains = event_stream && head.body_length.is_none();
    let signal = || match req.method() == Method::GET {
        true => target.drain.begun(),
        false => target.drain.closing(),
    };
    Ok(match (slot, drains) {
        (Some(slot), true) => stream_back(head, Draining::new(Held::new(body, slot), signal())),
        (None, true) => stream_back(head, Draining::new(body, signal())),
        // A slot is only kept by an event stream's body.
        (_, false) => stream_back(head, body),
    })
}

/// `body` read whole when it is a sized body of up to [`WHOLE_BODY_LIMIT`] bytes (what
/// [`forward`] would read anyway), so that it can be inspected first; others stay streamed.
pub async fn read_small(
    req: &HttpRequest,
    body: Body,
    service_id: &str,
    limit: Option<Duration>,
) -> Result<Body, ProxyError> {
    let Body::Stream(mut payload) = body else { return Ok(body) };
    let RequestBody::Sized(len) = request_body(req.headers()) else { return Ok(Body::Stream(payload)) };
    if len > WHOLE_BODY_LIMIT {
        return Ok(Body::Stream(payload));
    }
    match arrived(&mut payload, len, true, limit).await {
        Ok(bytes) => Ok(Body::Buffered(bytes)),
        Err(Cut::TimedOut) => Err(body_timeout(service_id, Some(payload))),
        Err(Cut::Broken) => Err(ProxyError::BadRequest("the request body could not be read")),
    }
}

/// The 408 for a body that did not arrive in time, holding what is left of it.
fn body_timeout(id: &str, payload: Option<web::Payload>) -> ProxyError {
    log::info!("service '{id}': the request body did not arrive in time; 408");
    ProxyError::BodyTimeout(payload.map(Unread::new).unwrap_or_default())
}

/// Sized request bodies up to this many bytes (every ordinary MCP message) are read whole
/// before they are sent: they go out with the head in one write, and can be sent again when a
/// reused backend connection turns out closed. Larger ones stream as they arrive.
const WHOLE_BODY_LIMIT: u64 = 64 * 1024;

/// Why a body read stopped short.
enum Cut {
    /// The client broke its framing or went away.
    Broken,
    /// `limit` passed.
    TimedOut,
}

/// What of a `len`-byte body has arrived: all of it when `whole` (within `limit`), else what
/// is there without waiting.
async fn arrived(
    payload: &mut web::Payload,
    len: u64,
    whole: bool,
    limit: Option<Duration>,
) -> Result<Bytes, Cut> {
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut got = 0u64;
    let mut deadline = Deadline::default();
    poll_fn(|cx| {
        while got < len {
            match Pin::new(&mut *payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    got += chunk.len() as u64;
                    match (&mut joined, first.take()) {
                        (Some(joined), _) => joined.extend_from_slice(&chunk),
                        (None, None) => first = Some(chunk),
                        (None, Some(earlier)) => {
                            let mut both = BytesMut::with_capacity(len.min(1 << 20) as usize);
                            both.extend_from_slice(&earlier);
                            both.extend_from_slice(&chunk);
                            joined = Some(both);
                        }
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    log::debug!("request body failed: {err}");
                    return Poll::Ready(Err(Cut::Broken));
                }
                Poll::Ready(None) => break,
                Poll::Pending if !whole => break,
                Poll::Pending if deadline.expired(limit, cx) => return Poll::Ready(Err(Cut::TimedOut)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    })
    .await?;
    Ok(match joined {
        Some(joined) => joined.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// Whether the request carries a body the backend would receive, whatever its method.
pub fn carries_body(headers: &HeaderMap) -> bool {
    !matches!(request_body(headers), RequestBody::None | RequestBody::Sized(0))
}

/// How the client framed its body; the backend gets the same framing.
#[derive(Debug, PartialEq, Eq)]
enum RequestBody {
    None,
    Sized(u64),
    Chunked,
}

fn request_body(headers: &HeaderMap) -> RequestBody {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return RequestBody::Chunked;
    }
    match content_length(headers) {
        Some(len) => RequestBody::Sized(len),
        None if headers.contains_key(header::CONTENT_LENGTH) => RequestBody::Chunked,
        None => RequestBody::None,
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    client::content_length(headers.get(header::CONTENT_LENGTH)?.as_bytes())
}

/// Tells a buffering reverse proxy (nginx) to pass each event on at once.
const X_ACCEL_BUFFERING: header::HeaderName = header::HeaderName::from_static("x-accel-buffering");

/// The backend's status, headers and body, streamed, with the gateway's content guards. A
/// client that goes away drops this body, which closes the backend connection (and frees a
/// stream slot the body holds).
fn stream_back<B>(head: ResponseHead, body: B) -> HttpResponse
where
    B: Stream<Item = Result<Bytes, ClientError>> + Unpin + 'static,
{
    let mut builder = HttpResponse::build(head.status);
    for (name, value) in headers::response_headers(&head.headers) {
        builder.append_header((name.clone(), value.clone()));
    }
    headers::guard_response(&mut builder);
    if headers::is_event_stream(&head.headers) {
        // Tell buffering reverse proxies in front of the gateway to pass each event on.
        builder.insert_header((X_ACCEL_BUFFERING, HeaderValue::from_static("no")));
        builder.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    }
    let no_body = head.status.is_informational()
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED;
    match head.body_length {
        // The body (already complete) is dropped here; its connection went back to the pool.
        _ if no_body => builder.finish(),
        Some(len) => builder.body(SizedStream::new(len, body)),
        None => builder.streaming(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_framing_follows_the_client() {
        let mut h = HeaderMap::new();
        assert_eq!(request_body(&h), RequestBody::None);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(request_body(&h), RequestBody::Sized(12));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert_eq!(request_body(&h), RequestBody::Chunked);
    }

    #[test]
    fn an_empty_sized_body_is_no_body() {
        let mut h = HeaderMap::new();
        assert!(!carries_body(&h));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(!carries_body(&h));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        assert!(carries_body(&h));
        h.remove(header::CONTENT_LENGTH);
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert!(carries_body(&h));
    }
}
