//! `POST /oauth/introspect` (RFC 7662). Client authentication is required (§2.1: the endpoint
//! must not become a token-scanning oracle); anything inactive, unknown, or issued to another
//! client answers `{"active": false}` and nothing more.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::actors::Introspect;
use crate::core::OAuthError;
use crate::oauth::token::{authenticated_token, TokenRequestForm};
use crate::state::AppState;

/// Whether the actor's answer may be shown to `client_id`: active and not issued to another
/// client.
fn visible_to(answer: &serde_json::Value, client_id: &str) -> bool {
    let owner = answer.get("client_id").and_then(serde_json::Value::as_str);
    answer.get("active").and_then(serde_json::Value::as_bool) == Some(true)
        && owner.is_none_or(|o| o == client_id)
}

async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<TokenRequestForm>,
) -> Result<HttpResponse, OAuthError> {
    let (client, token) = authenticated_token(&state, &req, form.into_inner()).await?;
    let answer = state.actors.tokens.send(Introspect { token }).await??;
    let body =
        if visible_to(&answer, &client.client_id) { answer } else { serde_json::json!({ "active": false }) };
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(body))
}

/// Registers `POST /oauth/introspect` (and `/introspect`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/introspect", web::post().to(introspect))
        .route("/introspect", web::post().to(introspect));
}

#[cfg(test)]
mod tests {
    use super::visible_to;
    use serde_json::json;

    #[test]
    fn only_active_tokens_of_the_caller_are_shown() {
        assert!(visible_to(&json!({"active": true, "client_id": "a"}), "a"));
        assert!(!visible_to(&json!({"active": true, "client_id": "b"}), "a"));
        assert!(!visible_to(&json!({"active": false, "client_id": "a"}), "a"));
        assert!(visible_to(&json!({"active": true}), "a"));
    }
}
