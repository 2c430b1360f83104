//! `ALL /{service}/mcp`: the hot path of the gateway.
//!
//! In order: the service must exist (404), a browser `Origin` must be allowed (403), the
//! bearer token must be valid for this service (401, checked locally: no storage round trip,
//! no actor message), then the request is streamed to the backend and the answer streamed
//! back. CORS preflights never get here: the CORS middleware answers them.

pub mod auth;
pub mod error;
pub mod forward;
pub mod headers;
pub mod origin;

use actix_web::{web, HttpRequest, HttpResponse};

use self::auth::TokenCache;
use self::error::ProxyError;
use self::forward::Target;
use crate::state::AppState;

/// Registers `/{service}/mcp`. Runs once per worker (inside the `HttpServer` factory), so the
/// backend client and the verified-token cache created here are per worker: no locks shared
/// between threads on the hot path.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{service}/mcp")
            .app_data(web::Data::new(TokenCache::default()))
            .app_data(web::Data::new(forward::backend_client()))
            .to(proxy),
    );
}

async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    cache: web::Data<TokenCache>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ProxyError> {
    let id = req.match_info().get("service").unwrap_or_default();
    let settings = &state.settings;
    let service = settings.mcp_services.get(id).ok_or_else(|| ProxyError::unknown_service(id))?;
    origin::check(req.headers(), &settings.cors, settings.debug)?;
    let user = match service.auth_required {
        true => Some(auth::authenticate(req.headers(), id, service, &state, &cache)?),
        false => None,
    };
    // Session binding (checklist A13) slots in here: given `user` and the request's
    // `Mcp-Session-Id`, refuse a session opened by another user. It needs storage shared
    // across instances, so it is not done yet.
    let target = Target { id, service, issuer: &settings.issuer };
    forward::forward(&client, &req, payload, &target, user.as_deref()).await
}
