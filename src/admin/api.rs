//! The JSON admin API, registered only when `admin.token` is set:
//!
//! - `GET /admin/grants?user=&client=&service=` → `{"grants": [...]}`
//! - `POST /admin/grants/revoke` with `{"user"|"client"|"service"|"grant": ...}` →
//!   `{"revoked": [...]}` (at least one field: revoking everyone is not one request)
//! - `GET /admin/clients` → `{"clients": [...]}`
//! - `DELETE /admin/clients/{id}` → what was deleted
//!
//! Every request needs `Authorization: Bearer {admin.token}`, compared in constant time (as
//! hashes, so not even the length leaks); a wrong or missing token is 401 and an audited
//! `admin_action` failure. Answers are `no-store`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::Admin;
use crate::core::audit::Event;
use crate::core::tokens::GrantFilter;
use crate::core::OAuthError;
use crate::secret::{constant_time_eq, hash_token};
use crate::state::AppState;
use crate::web::request_id::Caller;

/// Registers the routes when the settings turn the API on.
pub fn routes(cfg: &mut web::ServiceConfig, enabled: bool) {
    if !enabled {
        return;
    }
    cfg.route("/admin/grants", web::get().to(list_grants))
        .route("/admin/grants/revoke", web::post().to(revoke_grants))
        .route("/admin/clients", web::get().to(list_clients))
        .route("/admin/clients/{id}", web::delete().to(delete_client));
}

/// The filter fields, from the query (listing) or the JSON body (revoking).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterFields {
    user: Option<String>,
    client: Option<String>,
    service: Option<String>,
    grant: Option<String>,
}

impl From<FilterFields> for GrantFilter {
    fn from(f: FilterFields) -> Self {
        let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        GrantFilter { user: set(f.user), client: set(f.client), service: set(f.service), grant: set(f.grant) }
    }
}

/// The operations for `req`, once its bearer token is the admin token.
fn authorized<'a>(state: &'a AppState, req: &HttpRequest) -> Result<Admin<'a>, Box<HttpResponse>> {
    let caller = Caller::of(req, &state.settings.trusted_proxies);
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let expected = state.settings.admin.token.as_ref().map(|t| hash_token(t.expose_secret()));
    let ok = matches!((presented, expected), (Some(p), Some(e)) if constant_time_eq(&hash_token(p), &e));
    let event = caller.event("admin_action");
    if !ok {
        state.audit.record(Event { outcome: Some("failure"), reason: Some("bad_admin_token"), ..event });
        return Err(Box::new(HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="mcp-gateway admin""#))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "error": "invalid_token", "error_description": "the admin token is missing or wrong" }))));
    }
    let (request_id, client_ip) = (event.request_id.to_owned(), event.client_ip.clone());
    Ok(Admin { actors: &state.actors, audit: &state.audit, request_id, client_ip })
}

fn answer(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(body)
}

async fn list_grants(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<FilterFields>,
) -> Result<HttpResponse, OAuthError> {
    let admin = match authorized(&state, &req) {
        Ok(admin) => admin,
        Err(refused) => return Ok(*refused),
    };
    let grants = admin.grants(query.into_inner().into()).await?;
    Ok(answer(json!({ "grants": grants })))
}

async fn revoke_grants(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<FilterFields>,
) -> Result<HttpResponse, OAuthError> {
    let admin = match authorized(&state, &req) {
        Ok(admin) => admin,
        Err(refused) => return Ok(*refused),
    };
    let revoked = admin.revoke(body.into_inner().into()).await?;
    Ok(answer(json!({ "revoked": revoked })))
}

async fn list_clients(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, OAuthError> {
    let admin = match authorized(&state, &req) {
        Ok(admin) => admin,
        Err(refused) => return Ok(*refused),
    };
    let clients = admin.clients().await?;
    Ok(answer(json!({ "clients": clients })))
}

async fn delete_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    let admin = match authorized(&state, &req) {
        Ok(admin) => admin,
        Err(refused) => return Ok(*refused),
    };
    let deleted = admin.delete_client(&id).await?;
    Ok(answer(json!(deleted)))
}
