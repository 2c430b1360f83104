//! `POST /oauth/revoke` (RFC 7009). The client authenticates like at the token endpoint. The
//! answer is 200 whether or not the token was known, so the endpoint cannot be used to probe
//! for valid tokens; a refresh token revokes its whole family.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::actors::Revoke;
use crate::error::OAuthError;
use crate::oauth::token::authenticate_client;
use crate::state::AppState;

/// The revocation request.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    token: Option<String>,
    /// A hint only (RFC 7009 §2.1); the gateway recognises both kinds itself.
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<RevokeForm>,
) -> Result<HttpResponse, OAuthError> {
    let form = form.into_inner();
    let client =
        authenticate_client(&state, &req, form.client_id.as_deref(), form.client_secret.as_deref()).await?;
    let token = form
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
    state.actors.tokens.send(Revoke { token, client_id: client.client_id }).await??;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).finish())
}

/// Registers `POST /oauth/revoke` (and `/revoke`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/revoke", web::post().to(revoke)).route("/revoke", web::post().to(revoke));
}
