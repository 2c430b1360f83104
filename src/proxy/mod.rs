//! `ALL /{service}/mcp`: the hot path of the gateway.
//!
//! In order: the service must exist (404), the method must be one of the Streamable HTTP
//! transport's (405 otherwise; a plain `OPTIONS` is answered here), a browser `Origin` must be
//! allowed (403), the bearer token must be valid for this service (401, checked locally: no
//! storage round trip, no actor message), an `Mcp-Session-Id` must belong to the token's user
//! (403, one local map read once the session is known: [`session`]), the operation must be
//! within the token's scopes on services with `tool_scopes` (403: [`stepup`]), a tool the
//! access rules deny the user is not called (a JSON-RPC error: [`tools`]), a `GET` (an SSE
//! stream) must find its token below its cap of open streams (429: [`streams`]); then the
//! request is streamed to the backend (its body bounded in time: [`slow_body`]) and the answer
//! streamed back (without the denied tools in `tools/list`), and a session id the backend
//! hands out is bound to the user (502 when it is already another user's). CORS preflights (an
//! `OPTIONS` with `Access-Control-Request-Method`) never get here: the CORS middleware answers
//! them.

pub mod audit;
pub mod auth;
pub mod client;
pub mod draining;
pub mod error;
pub mod forward;
pub mod headers;
pub mod jsonrpc;
pub mod origin;
pub mod slow_body;
pub mod stepup;
pub mod streams;
pub mod tools;

use std::cell::OnceCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::http::header::{self as http_header, HeaderMap, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use self::auth::TokenCache;
use self::client::{BackendUrl, Client, TlsOptions};
use self::error::ProxyError;
use self::forward::{Backend, Body, Target};
use self::headers::ForwardedOrigin;
use crate::actors::GetClient;
use crate::config::{ServiceSettings, Settings};
use crate::core::mcp_sessions::Verdict;
use crate::core::metrics::{McpMethod, ServiceMetrics};
use crate::core::model::AccessClaims;
use crate::state::AppState;
use crate::web::request_id::Caller;

/// The MCP session header (lower case, as `HeaderMap` lookups want it).
const MCP_SESSION_ID: &str = "mcp-session-id";

/// What each worker keeps for the proxy: its verified-token cache, and what is derived from
/// the settings once rather than per request (its backend clients among it). One per worker
/// (created inside the `HttpServer` factory), so the hot path shares no locks between threads.
#[derive(Default)]
struct Worker {
    cache: TokenCache,
    names: audit::ClientNames,
    prepared: OnceCell<Prepared>,
}

/// Derived from the settings on a worker's first proxied request.
struct Prepared {
    origin: ForwardedOrigin,
    backends: HashMap<String, Option<Backend>>,
    body_timeout: Option<Duration>,
    /// Whether metrics are served (then small `POST` bodies are read for their MCP method).
    metrics_on: bool,
}

impl Prepared {
    fn new(settings: &Settings) -> Self {
        // One client (one connection pool) per TLS setting: most deployments have one.
        let mut clients: HashMap<TlsOptions, Option<Client>> = HashMap::new();
        let backends = settings
            .mcp_services
            .iter()
            .map(|(id, s)| {
                let tls =
                    TlsOptions { ca_file: s.ca_file.clone(), insecure_skip_verify: s.insecure_skip_verify };
                let client = clients
                    .entry(tls)
                    .or_insert_with_key(|tls| {
                        Client::new(tls)
                            .inspect_err(|e| log::error!("service '{id}': backend TLS setting: {e}"))
                            .ok()
                    })
                    .clone();
                let url = BackendUrl::parse(&s.url)
                    .inspect_err(|_| {
                        log::error!("service '{id}': backend url is not an absolute http(s) URL")
                    })
                    .ok();
                let backend = url.zip(client).map(|(url, client)| Backend { url, client });
                (id.clone(), backend)
            })
            .collect();
        Prepared {
            origin: ForwardedOrigin::from_issuer(&settings.issuer),
            backends,
            body_timeout: slow_body::limit(settings.limits.body_timeout_ms),
            metrics_on: settings.metrics.listen.is_some(),
        }
    }
}

/// `refused`, after reading (and dropping) a small request body: actix closes a connection
/// whose request body was left unread, so a client retrying with a stale token would pay a
/// new TCP handshake for every refusal. The read is bounded like any other (64 KiB, the body
/// timeout); a body that does not arrive in time gets its 408 instead, which closes.
async fn refuse_keeping_the_connection(
    req: &HttpRequest,
    payload: web::Payload,
    id: &str,
    prepared: &Prepared,
    refused: ProxyError,
) -> ProxyError {
    if !forward::carries_body(req.headers()) {
        return refused;
    }
    match forward::read_small(req, Body::Stream(payload), id, prepared.body_timeout).await {
        Ok(_) => refused,
        Err(timeout) => timeout,
    }
}

/// Registers `/{service}/mcp`. Runs once per worker.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/{service}/mcp").app_data(web::Data::new(Worker::default())).to(proxy));
}

/// Counts and times every proxied request ([`crate::core::metrics`]): by service, by the MCP
/// method found in its body (when the body was read) and by status class, and the backend's
/// failures.
async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, ProxyError> {
    let started = Instant::now();
    let id = req.match_info().get("service").unwrap_or_default();
    let metrics = state.metrics.service(id);
    let mut method = match *req.method() {
        Method::GET | Method::HEAD => McpMethod::Stream,
        Method::DELETE => McpMethod::Delete,
        Method::POST => McpMethod::Unknown,
        _ => McpMethod::Other,
    };
    let result = serve(&req, payload, &state, &worker, id, metrics, &mut method).await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(e) => {
            match e {
                ProxyError::Timeout(_) => metrics.backend_timeouts.inc(),
                ProxyError::BadGateway(_) => metrics.backend_errors.inc(),
                // Refused while its body was read for the tool rules: a tool call.
                ProxyError::ToolDenied(_) => method = McpMethod::ToolsCall,
                _ => {}
            }
            actix_web::ResponseError::status_code(e)
        }
    };
    metrics.observe(method, status.as_u16(), started.elapsed());
    result
}

async fn serve(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    worker: &Worker,
    id: &str,
    metrics: &ServiceMetrics,
    method: &mut McpMethod,
) -> Result<HttpResponse, ProxyError> {
    let settings = &state.settings;
    let service = settings.mcp_services.get(id).ok_or_else(|| ProxyError::unknown_service(id))?;
    if let Some(answer) = check_method(req.method())? {
        return Ok(answer);
    }
    origin::check(req.headers(), &settings.cors, settings.debug)?;
    let prepared = worker.prepared.get_or_init(|| Prepared::new(settings));
    let user = match service.auth_required {
        true => match auth::authenticate(req.headers(), id, service, state, &worker.cache) {
            Ok(claims) => Some(claims),
            Err(refused) => {
                return Err(refuse_keeping_the_connection(req, payload, id, prepared, refused).await)
            }
        },
        false => None,
    };
    let mut body = match &user {
        Some(claims) => admit(req, payload, id, service, state, claims).await.inspect_err(|e| {
            let caller = Caller::of(req, &settings.trusted_proxies);
            audit::denied(&state.audit, &caller, id, claims, e);
        })?,
        None => Body::Stream(payload),
    };
    // A body is read (when small enough) for the trail's tool calls and the metrics' method.
    let audited = state.audit.is_on() && user.is_some();
    let mut calls = None;
    if req.method() == Method::POST && (audited || prepared.metrics_on) {
        body = forward::read_small(req, body, id, prepared.body_timeout).await?;
        let (found, seen) = audit::inspect(match &body {
            Body::Buffered(bytes) => Some(bytes),
            Body::Stream(_) => None,
        });
        *method = seen;
        if let (Some(claims), true) = (&user, audited) {
            let caller = Caller::of(req, &settings.trusted_proxies);
            calls =
                Some(audit::Pending::new(&state.audit, caller, id, claims, found)).filter(|p| !p.is_empty());
        }
    }
    let slot = streams::reserve(req.method(), user.as_deref(), settings.limits.max_streams_per_token)?;
    let backend = prepared.backends.get(id).and_then(Option::as_ref);
    let target = Target {
        id,
        service,
        backend,
        origin: &prepared.origin,
        body_timeout: prepared.body_timeout,
        drain: &state.drain,
        open_streams: &metrics.open_streams,
    };
    let sent = forward::forward(req, body, &target, user.as_deref(), slot);
    let Some(mut calls) = calls else {
        return finish(req, sent.await?, id, state, user.as_deref()).await;
    };
    let res = match worker.names.get(calls.client_id(), Instant::now()) {
        Some(name) => {
            calls.set_client_name(name);
            sent.await
        }
        None => {
            // The client's name is looked up while the backend works on the call.
            let (res, name) = futures_util::future::join(sent, client_name(state, &calls)).await;
            if let Some(name) = name {
                worker.names.put(calls.client_id(), name.clone(), Instant::now());
                calls.set_client_name(name);
            }
            res
        }
    };
    let res = match res {
        Ok(res) => finish(req, res, id, state, user.as_deref()).await,
        Err(e) => Err(e),
    };
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            Ok(res.map_body(|_, body| audit::Recorded::new(body, calls, status)).map_into_boxed_body())
        }
        Err(e) => {
            calls.record(actix_web::ResponseError::status_code(&e).as_u16());
            Err(e)
        }
    }
}

/// After the backend answered: a session id it handed out is bound to the user, and tools the
/// user may not call are hidden ([`tools`]). On refusal `res` is dropped unsent: its body with
/// it, which closes the backend connection, and the session id never reaches the client.
async fn finish(
    req: &HttpRequest,
    res: HttpResponse,
    id: &str,
    state: &AppState,
    user: Option<&AccessClaims>,
) -> Result<HttpResponse, ProxyError> {
    let Some(claims) = user else { return Ok(res) };
    bind_new_session(res.headers(), id, state, claims).await?;
    tools::hide_denied(req, res, id, claims).await
}

/// The registered name of the calling client, for the audit trail: `Some(None)` when it has
/// none (or is gone), `None` when the registry could not be asked (not remembered).
async fn client_name(state: &AppState, calls: &audit::Pending) -> Option<audit::Name> {
    let msg = GetClient { client_id: calls.client_id().to_owned() };
    let client = state.actors.clients.send(msg).await.ok()?.ok()?;
    Some(client.and_then(|client| client.client_name).map(Rc::from))
}

/// The Streamable HTTP transport uses POST, GET and DELETE (and HEAD is GET without a body).
/// Anything else is refused before the token is even looked at: the gateway's checks are
/// written for these methods, while a backend framework may route `PUT`, `PATCH`, `post` or an
/// invented method to its POST handler and execute a body the gateway never judged. A plain
/// `OPTIONS` (not a CORS preflight, which the middleware answers before this) gets the `Allow`
/// list and is not forwarded.
fn check_method(method: &Method) -> Result<Option<HttpResponse>, ProxyError> {
    if method == Method::POST || method == Method::GET || method == Method::DELETE || method == Method::HEAD {
        return Ok(None);
    }
    if method == Method::OPTIONS {
        let mut res = HttpResponse::NoContent();
        res.insert_header((http_header::ALLOW, HeaderValue::from_static(headers::ALLOWED_METHODS)));
        headers::guard_response(&mut res);
        return Ok(Some(res.finish()));
    }
    Err(ProxyError::MethodNotAllowed)
}

/// What an authenticated request must pass besides its token: its MCP session must be its
/// user's (A13), its operation within the token's scopes (A10), and its tool calls allowed to
/// the user ([`tools`]). Returns the body to send.
async fn admit(
    req: &HttpRequest,
    payload: web::Payload,
    id: &str,
    service: &ServiceSettings,
    state: &AppState,
    claims: &AccessClaims,
) -> Result<Body, ProxyError> {
    if let Some(session_id) = session_id(req.headers())? {
        let verdict = state.mcp_sessions.check(id, session_id, &claims.sub, state.clock.now());
        match verdict.await {
            Ok(Verdict::Allowed) => {}
            Ok(Verdict::Forbidden) => {
                log::warn!("service '{id}': refused user '{}' on another user's MCP session", claims.sub);
                return Err(ProxyError::ForeignSession);
            }
            Err(err) => {
                log::warn!("service '{id}': MCP session binding unavailable, request refused: {err}");
                return Err(ProxyError::Unavailable);
            }
        }
    }
    let body = match service.tool_scopes.is_empty() {
        true => Body::Stream(payload),
        false => {
            let gate = stepup::Gate {
                settings: &state.settings,
                service_id: id,
                service,
                token_scope: &claims.scope,
            };
            gate.admit(req, payload).await?
        }
    };
    tools::admit(req, body, &state.settings, claims).await
}

/// The request's `Mcp-Session-Id`, if any. 400 when repeated or not visible ASCII: the
/// gateway and the backend must agree on which session is meant.
fn session_id(headers: &HeaderMap) -> Result<Option<&str>, ProxyError> {
    let mut values = headers.get_all(MCP_SESSION_ID);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProxyError::BadRequest("more than one Mcp-Session-Id header"));
    }
    first.to_str().map(Some).map_err(|_| ProxyError::BadRequest("malformed Mcp-Session-Id header"))
}

/// Binds a session id the backend handed out (typically on `initialize`) to the user. A
/// session id already bound to another user (pre-claimed, or a backend handing everybody the
/// same id) is refused with 502 and never forwarded: the user would otherwise share a session
/// with its owner. So is a response with several or malformed ids, which the gateway could not
/// bind (and a client could not send back). A store failure is only logged: the response
/// already happened at the backend, and the next request with this id is checked against the
/// store again (fail closed there).
async fn bind_new_session(
    headers: &HeaderMap,
    id: &str,
    state: &AppState,
    claims: &AccessClaims,
) -> Result<(), ProxyError> {
    let mut values = headers.get_all(MCP_SESSION_ID);
    let Some(first) = values.next() else {
        return Ok(());
    };
    let session_id = match (first.to_str(), values.next()) {
        (Ok(session_id), None) => session_id,
        _ => {
            log::warn!("service '{id}': the backend sent several or malformed Mcp-Session-Id headers");
            return Err(ProxyError::BadGateway(id.to_owned()));
        }
    };
    match state.mcp_sessions.bind(id, session_id, &claims.sub, state.clock.now()).await {
        Ok(Verdict::Allowed) => Ok(()),
        Ok(Verdict::Forbidden) => {
            log::warn!(
                "service '{id}': the backend handed user '{}' a session bound to another user; refused",
                claims.sub
            );
            Err(ProxyError::SessionOfAnotherUser(id.to_owned()))
        }
        Err(err) => {
            log::warn!("service '{id}': could not bind a new MCP session: {err}");
            Ok(())
        }
    }
}
