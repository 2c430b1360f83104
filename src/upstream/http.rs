//! Outgoing HTTP for the upstream leg, over awc.
//!
//! `oauth2` speaks `http` 1.x and awc speaks `http` 0.2, so requests and responses are
//! converted by hand (method, URI, headers, status, body). `awc::Client` is `!Send` while
//! [`super::Upstream`] is shared across worker threads, so each call builds its own client;
//! these calls happen once per login, where the cost does not matter.
//!
//! Error messages never carry response bodies: a token endpoint's body can hold tokens.

use std::time::Duration;

use awc::http::header::{HeaderName, HeaderValue};
use oauth2::basic::BasicErrorResponse;
use oauth2::{HttpRequest, HttpResponse, RequestTokenError};

use super::UpstreamError;

/// How long one upstream request may take, connect to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest upstream response body read.
pub const MAX_BODY: usize = 1024 * 1024;
/// GitHub's API refuses requests without one.
const USER_AGENT: &str = concat!("mcp-gateway/", env!("CARGO_PKG_VERSION"));

/// A failed upstream HTTP request (connection, timeout, oversized body, unconvertible parts).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

fn client() -> awc::Client {
    // Redirects are not followed: a token or userinfo endpoint has no reason to send one, and
    // following it would carry credentials to wherever it points.
    awc::Client::builder().timeout(TIMEOUT).disable_redirects().finish()
}

/// The `oauth2` crate's HTTP client: one request over a fresh awc client.
pub async fn send(request: HttpRequest) -> Result<HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let method = awc::http::Method::from_bytes(parts.method.as_str().as_bytes())
        .map_err(|e| HttpError(format!("method: {e}")))?;
    let mut req = client().request(method, parts.uri.to_string());
    for (name, value) in &parts.headers {
        let name = HeaderName::from_bytes(name.as_str().as_bytes()).map_err(|e| HttpError(e.to_string()))?;
        let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|e| HttpError(e.to_string()))?;
        req = req.append_header((name, value));
    }
    req = req.insert_header((awc::http::header::USER_AGENT, USER_AGENT));
    let mut res = req.send_body(body).await.map_err(|e| HttpError(format!("{}: {e}", origin(&parts.uri))))?;
    let body = res.body().limit(MAX_BODY).await.map_err(|e| HttpError(format!("reading response: {e}")))?;
    let mut out = http::Response::builder().status(res.status().as_u16());
    for (name, value) in res.headers() {
        out = out.header(name.as_str(), value.as_bytes());
    }
    out.body(body.to_vec()).map_err(|e| HttpError(format!("response: {e}")))
}

/// `scheme://host:port` of a URI: enough to say which server failed, never a query string.
fn origin(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}"),
        _ => "provider".to_owned(),
    }
}

/// `GET url` expecting a JSON answer, with the access token as a bearer when given.
pub async fn get_json(url: &str, bearer: Option<&str>) -> Result<serde_json::Value, UpstreamError> {
    let mut req = client()
        .get(url)
        .insert_header((awc::http::header::ACCEPT, "application/json"))
        .insert_header((awc::http::header::USER_AGENT, USER_AGENT));
    if let Some(token) = bearer {
        req = req.insert_header((awc::http::header::AUTHORIZATION, format!("Bearer {token}")));
    }
    let where_ = url::Url::parse(url).map(|u| format!("{}{}", u.origin().ascii_serialization(), u.path()));
    let where_ = where_.unwrap_or_else(|_| "provider".into());
    let mut res = req.send().await.map_err(|e| UpstreamError::Request(format!("{where_}: {e}")))?;
    let status = res.status().as_u16();
    if matches!(status, 401 | 403) && bearer.is_some() {
        return Err(UpstreamError::Denied(format!("{where_} answered {status}")));
    }
    if !res.status().is_success() {
        return Err(UpstreamError::Request(format!("{where_} answered {status}")));
    }
    let body =
        res.body().limit(MAX_BODY).await.map_err(|e| UpstreamError::Request(format!("{where_}: {e}")))?;
    serde_json::from_slice(&body).map_err(|_| UpstreamError::Request(format!("{where_} did not answer JSON")))
}

/// A token endpoint failure as an [`UpstreamError`], without the response body.
pub fn describe_token_error(err: RequestTokenError<HttpError, BasicErrorResponse>) -> UpstreamError {
    match err {
        RequestTokenError::ServerResponse(resp) => {
            UpstreamError::Request(format!("token endpoint refused the code: {}", resp.error().as_ref()))
        }
        RequestTokenError::Request(e) => UpstreamError::Request(format!("token endpoint unreachable: {e}")),
        // The body may hold tokens (GitHub answers errors with 200 too): name the failure only.
        RequestTokenError::Parse(_, _) => {
            UpstreamError::Request("token endpoint answer not understood".into())
        }
        RequestTokenError::Other(msg) => UpstreamError::Request(format!("token endpoint: {msg}")),
    }
}
