//! `ALL /{service}/mcp`: the hot path of the gateway.
//!
//! In order: the service must exist (404), a browser `Origin` must be allowed (403), the
//! bearer token must be valid for this service (401, checked locally: no storage round trip,
//! no actor message), an `Mcp-Session-Id` must belong to the token's user (403, one local map
//! read once the session is known: [`session`]), the operation must be within the token's
//! scopes on services with `tool_scopes` (403: [`stepup`]); then the request is streamed to the
//! backend and the answer streamed back, and a session id the backend hands out is bound to
//! the user. CORS preflights never get here: the CORS middleware answers them.

pub mod auth;
pub mod client;
pub mod error;
pub mod forward;
pub mod headers;
pub mod origin;
pub mod stepup;

use std::cell::OnceCell;
use std::collections::HashMap;
use std::rc::Rc;

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};

use self::auth::TokenCache;
use self::client::{BackendUrl, Pool};
use self::error::ProxyError;
use self::forward::{Body, Target};
use self::headers::ForwardedOrigin;
use crate::config::{ServiceSettings, Settings};
use crate::core::mcp_sessions::Verdict;
use crate::core::model::AccessClaims;
use crate::state::AppState;

/// The MCP session header (lower case, as `HeaderMap` lookups want it).
const MCP_SESSION_ID: &str = "mcp-session-id";

/// What each worker keeps for the proxy: its backend connections, its verified-token cache,
/// and what is derived from the settings once rather than per request. One per worker (created
/// inside the `HttpServer` factory), so the hot path shares no locks between threads.
#[derive(Default)]
struct Worker {
    pool: Rc<Pool>,
    cache: TokenCache,
    prepared: OnceCell<Prepared>,
}

/// Derived from the settings on a worker's first proxied request.
struct Prepared {
    origin: ForwardedOrigin,
    backends: HashMap<String, Option<BackendUrl>>,
}

impl Prepared {
    fn new(settings: &Settings) -> Self {
        let backends = settings
            .mcp_services
            .iter()
            .map(|(id, s)| (id.clone(), BackendUrl::parse(&s.url).ok()))
            .collect();
        Prepared { origin: ForwardedOrigin::from_issuer(&settings.issuer), backends }
    }
}

/// Registers `/{service}/mcp`. Runs once per worker.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/{service}/mcp").app_data(web::Data::new(Worker::default())).to(proxy));
}

async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, ProxyError> {
    let id = req.match_info().get("service").unwrap_or_default();
    let settings = &state.settings;
    let service = settings.mcp_services.get(id).ok_or_else(|| ProxyError::unknown_service(id))?;
    origin::check(req.headers(), &settings.cors, settings.debug)?;
    let user = match service.auth_required {
        true => Some(auth::authenticate(req.headers(), id, service, &state, &worker.cache)?),
        false => None,
    };
    let body = match &user {
        Some(claims) => admit(&req, payload, id, service, &state, claims).await?,
        None => Body::Stream(payload),
    };
    let prepared = worker.prepared.get_or_init(|| Prepared::new(settings));
    let backend = prepared.backends.get(id).and_then(Option::as_ref);
    let target = Target { id, service, backend, origin: &prepared.origin };
    let res = forward::forward(&worker.pool, &req, body, &target, user.as_deref()).await?;
    if let Some(claims) = &user {
        bind_new_session(res.headers(), id, &state, claims).await;
    }
    Ok(res)
}

/// What an authenticated request must pass besides its token: its MCP session must be its
/// user's (A13), and its operation within the token's scopes (A10). Returns the body to send.
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
    if service.tool_scopes.is_empty() {
        return Ok(Body::Stream(payload));
    }
    let gate =
        stepup::Gate { settings: &state.settings, service_id: id, service, token_scope: &claims.scope };
    gate.admit(req, payload).await
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
/// store failure is only logged: the response already happened at the backend, and the next
/// request with this id is checked against the store again (fail closed there).
async fn bind_new_session(headers: &HeaderMap, id: &str, state: &AppState, claims: &AccessClaims) {
    let Some(session_id) = headers.get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()) else {
        return;
    };
    match state.mcp_sessions.bind(id, session_id, &claims.sub, state.clock.now()).await {
        Ok(Verdict::Allowed) => {}
        Ok(Verdict::Forbidden) => {
            log::warn!(
                "service '{id}': the backend handed user '{}' a session bound to another user",
                claims.sub
            )
        }
        Err(err) => log::warn!("service '{id}': could not bind a new MCP session: {err}"),
    }
}
