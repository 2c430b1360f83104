//! The streaming forward (checklist C2, C3, C5): the request body goes out as it arrives, the
//! response body comes back chunk by chunk, nothing is buffered or decompressed. The one
//! exception is a POST whose body the step-up check had to read (services with
//! `tool_scopes`): those bytes go out unchanged, with a `Content-Length`.
//!
//! The service's `timeout` bounds only the wait for the backend's response head: awc's own
//! timeout is disabled on the client because its deadline would also cut a response body that
//! streams longer (an SSE stream can live for hours).

use std::net::IpAddr;
use std::time::Duration;

use actix_web::body::{self, SizedStream};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Uri;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::error::ProxyError;
use super::headers;
use crate::config::ServiceSettings;
use crate::oauth::model::AccessClaims;

/// Connections per backend host per worker: no cap (awc's `0`). Every open SSE stream holds
/// one, and a cap makes streams beyond it wait for a slot until they time out; the listener's
/// own connection limit and the file-descriptor limit bound it instead.
const CONNECTIONS_PER_HOST: usize = 0;
/// How long an idle pooled backend connection is kept: below the 5 s idle timeout of common
/// backend servers (actix-web, uvicorn, Node), so the pool does not hand out a connection the
/// backend has just closed (seen as sporadic 502s in the benchmarks with 30 s).
const IDLE_KEEP_ALIVE: Duration = Duration::from_secs(3);
/// TCP connect (and TLS handshake) limit, independent of the service timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The per-worker HTTP client for backends.
pub fn backend_client() -> awc::Client {
    let connector = awc::Connector::new()
        .limit(CONNECTIONS_PER_HOST)
        .conn_keep_alive(IDLE_KEEP_ALIVE)
        .timeout(CONNECT_TIMEOUT)
        .handshake_timeout(CONNECT_TIMEOUT);
    awc::Client::builder()
        .connector(connector)
        // The head deadline is applied around `send` instead (see the module doc).
        .disable_timeout()
        // A backend redirect goes back to the client; following it would carry the user's
        // identity headers to wherever the backend points.
        .disable_redirects()
        // No awc User-Agent: the client's own passes through.
        .no_default_headers()
        .finish()
}

/// What the service needs to know about the exchange besides the request itself.
pub struct Target<'a> {
    /// Service id (named in errors and logs).
    pub id: &'a str,
    /// The service's settings.
    pub service: &'a ServiceSettings,
    /// `X-Forwarded-Proto` / `-Host`, from the gateway's issuer.
    pub origin: &'a headers::ForwardedOrigin,
}

/// The request body to send on.
pub enum Body {
    /// The client's body, streamed as it arrives (the normal case).
    Stream(web::Payload),
    /// A body the gateway had to read whole to authorize it (step-up), sent as read.
    Buffered(Bytes),
}

/// Forwards `req` with `body` to the service and streams the answer back.
pub async fn forward(
    client: &awc::Client,
    req: &HttpRequest,
    body: Body,
    target: &Target<'_>,
    user: Option<&AccessClaims>,
) -> Result<HttpResponse, ProxyError> {
    let uri = backend_uri(&target.service.url, req.query_string()).ok_or_else(|| {
        log::error!("service '{}': backend url is not a valid URI", target.id);
        ProxyError::BadGateway(target.id.to_owned())
    })?;
    let mut out = client.request(req.method().clone(), uri).no_decompress();
    let peer: Option<IpAddr> = req.peer_addr().map(|a| a.ip());
    headers::copy_request_headers(req.headers(), out.headers_mut());
    headers::add_forwarded(req.headers(), peer, target.origin, out.headers_mut());
    if let Some(user) = user {
        headers::add_user_headers(user, out.headers_mut());
    }
    let send = match (request_body(req.headers()), body) {
        (RequestBody::None, _) => out.send_body(body::None::new()),
        (_, Body::Buffered(bytes)) => out.send_body(bytes),
        (RequestBody::Sized(len), Body::Stream(payload)) => out.send_body(SizedStream::new(len, payload)),
        (RequestBody::Chunked, Body::Stream(payload)) => out.send_stream(payload),
    };
    let result = match target.service.timeout {
        0 => send.await,
        ms => actix_web::rt::time::timeout(Duration::from_millis(ms), send).await.map_err(|_| {
            log::warn!("service '{}': no response head within {ms} ms", target.id);
            ProxyError::Timeout(target.id.to_owned())
        })?,
    };
    let res = result.map_err(|err| {
        log::warn!("service '{}': backend request failed: {err}", target.id);
        ProxyError::BadGateway(target.id.to_owned())
    })?;
    Ok(stream_back(res))
}

/// The service URL with the client's query appended, minus any `access_token` parameter (a
/// token in the query is never accepted, and never passed on either).
fn backend_uri(base: &str, query: &str) -> Option<Uri> {
    let query = without_access_token(query);
    let url = match (query.is_empty(), base.contains('?')) {
        (true, _) => base.to_owned(),
        (false, true) => format!("{base}&{query}"),
        (false, false) => format!("{base}?{query}"),
    };
    url.parse::<Uri>().ok()
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
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The backend's status, headers and body, streamed. A client that goes away drops this body,
/// which drops the backend response and closes its connection.
fn stream_back(res: awc::ClientResponse) -> HttpResponse {
    let mut builder = HttpResponse::build(res.status());
    for (name, value) in headers::response_headers(res.headers()) {
        builder.append_header((name.clone(), value.clone()));
    }
    if headers::is_event_stream(res.headers()) {
        // Tell buffering reverse proxies in front of the gateway to pass each event on.
        builder.insert_header((
            header::HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        ));
        builder.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    }
    match content_length(res.headers()) {
        Some(len) => builder.body(SizedStream::new(len, res)),
        None => builder.streaming(res),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_appended_without_access_token() {
        let uri = backend_uri("http://b:1/mcp", "a=1&access_token=x&b=2");
        assert_eq!(uri.map(|u| u.to_string()).as_deref(), Some("http://b:1/mcp?a=1&b=2"));
        let uri = backend_uri("http://b:1/mcp?k=v", "a=1");
        assert_eq!(uri.map(|u| u.to_string()).as_deref(), Some("http://b:1/mcp?k=v&a=1"));
        let uri = backend_uri("http://b:1/mcp", "access_token=x");
        assert_eq!(uri.map(|u| u.to_string()).as_deref(), Some("http://b:1/mcp"));
        assert!(backend_uri("not a uri", "").is_none());
    }

    #[test]
    fn body_framing_follows_the_client() {
        let mut h = HeaderMap::new();
        assert_eq!(request_body(&h), RequestBody::None);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(request_body(&h), RequestBody::Sized(12));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert_eq!(request_body(&h), RequestBody::Chunked);
    }
}
