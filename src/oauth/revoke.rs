//! `POST /oauth/revoke` (RFC 7009). The client authenticates like at the token endpoint. The
//! answer is 200 whether or not the token was known, so the endpoint cannot be used to probe
//! for valid tokens; a refresh token revokes its whole family.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::actors::Revoke;
use crate::core::audit::Event;
use crate::core::OAuthError;
use crate::oauth::token::{authenticated_token, TokenRequestForm};
use crate::state::AppState;
use crate::web::request_id::Caller;

async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<TokenRequestForm>,
) -> Result<HttpResponse, OAuthError> {
    let (client, token) = authenticated_token(&state, &req, form.into_inner()).await?;
    let client_id = client.client_id.clone();
    let revoked = state.actors.tokens.send(Revoke { token, client_id: client.client_id }).await??;
    if let Some(revoked) = revoked {
        let caller = Caller::of(&req, &state.settings.trusted_proxies);
        state.audit.record(Event {
            reason: Some(revoked.token_type),
            user_id: Some(&revoked.user_id),
            client_id: Some(&client_id),
            grant_id: Some(&revoked.grant_id),
            ..caller.event("token_revoked")
        });
    }
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).finish())
}

/// Registers `POST /oauth/revoke` (and `/revoke`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/revoke", web::post().to(revoke)).route("/revoke", web::post().to(revoke));
}
