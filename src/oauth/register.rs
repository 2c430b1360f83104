//! RFC 7591 dynamic client registration at `POST /oauth/register` (and `/register` for
//! 2025-03-26 clients). JSON is the standard; `application/x-www-form-urlencoded` with
//! `client_name` and `redirect_uris` (repeated, or space/comma separated) is accepted too, as
//! the older gateway documented it. Validation belongs to the client registry actor.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::actors::RegisterClient;
use crate::core::audit::{self, Event};
use crate::core::model::{ClientMetadata, Registered};
use crate::core::OAuthError;
use crate::state::AppState;
use crate::web::limits::{self, Endpoint};
use crate::web::request_id::Caller;

/// The 201 body: the stored metadata, and the secret once for secret-based methods.
#[derive(Debug, Serialize)]
struct RegistrationResponse {
    client_id: String,
    client_id_issued_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_expires_at: Option<i64>,
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: String,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    application_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logo_uri: Option<String>,
}

impl From<Registered> for RegistrationResponse {
    fn from(reg: Registered) -> Self {
        let c = reg.client;
        RegistrationResponse {
            client_id: c.client_id,
            client_id_issued_at: c.client_id_issued_at,
            client_secret_expires_at: reg.client_secret.as_ref().map(|_| 0),
            client_secret: reg.client_secret,
            redirect_uris: c.redirect_uris,
            token_endpoint_auth_method: c.token_endpoint_auth_method,
            grant_types: c.grant_types,
            response_types: c.response_types,
            client_name: c.client_name,
            application_type: c.application_type,
            scope: c.scope,
            client_uri: c.client_uri,
            logo_uri: c.logo_uri,
        }
    }
}

/// Parses a JSON body. Broken JSON is a malformed request; well-formed JSON of the wrong shape
/// (a string where a list belongs) is unacceptable metadata.
fn parse_json(body: &[u8]) -> Result<ClientMetadata, OAuthError> {
    serde_json::from_slice::<ClientMetadata>(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            OAuthError::InvalidClientMetadata(format!("client metadata has the wrong shape: {e}"))
        }
        _ => OAuthError::InvalidRequest("request body is not valid JSON".into()),
    })
}

/// Splits a form list value: repeated fields and space- or comma-separated values both work.
fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(|c: char| c.is_whitespace() || c == ','))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a form body into the same metadata a JSON body would give.
fn parse_form(body: &[u8]) -> ClientMetadata {
    let mut meta = ClientMetadata::default();
    let mut lists: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        let value = value.into_owned();
        match key.as_ref() {
            "client_name" => meta.client_name = Some(value),
            "token_endpoint_auth_method" => meta.token_endpoint_auth_method = Some(value),
            "scope" => meta.scope = Some(value),
            "application_type" => meta.application_type = Some(value),
            "client_uri" => meta.client_uri = Some(value),
            "logo_uri" => meta.logo_uri = Some(value),
            k @ ("redirect_uris" | "redirect_uris[]" | "grant_types" | "response_types") => {
                lists.entry(k.trim_end_matches("[]").to_owned()).or_default().push(value);
            }
            _ => {}
        }
    }
    meta.redirect_uris = lists.get("redirect_uris").map(|v| split_list(v)).unwrap_or_default();
    meta.grant_types = lists.get("grant_types").map(|v| split_list(v));
    meta.response_types = lists.get("response_types").map(|v| split_list(v));
    meta
}

/// Chooses the parser by `Content-Type`; without one, a body starting with `{` is JSON.
fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<ClientMetadata, OAuthError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase())
        .unwrap_or_default();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok(parse_form(body));
    }
    let looks_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if content_type.contains("json") || (content_type.is_empty() && looks_json) {
        return parse_json(body);
    }
    Err(OAuthError::InvalidRequest(
        "send client metadata as application/json (or application/x-www-form-urlencoded)".into(),
    ))
}

async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    if !state.settings.registration.enabled {
        // 403 with an OAuth error rather than 404: a client that tries anyway learns that the
        // gateway refuses registration, not that it mistyped a path.
        return Err(OAuthError::AccessDenied(
            "dynamic client registration is disabled on this gateway".into(),
        ));
    }
    if let Err(refused) = limits::check(&state, Endpoint::Register, &req).await {
        return Ok(refused);
    }
    let max = state.settings.limits.max_registration_bytes;
    if body.len() > max {
        return Err(OAuthError::InvalidClientMetadata(format!("client metadata is limited to {max} bytes")));
    }
    let metadata = parse_body(&req, &body)?;
    let registered = state.actors.clients.send(RegisterClient(metadata)).await??;
    log::info!("registered client {}", registered.client.client_id);
    let client = &registered.client;
    let caller = Caller::of(&req, &state.settings.trusted_proxies);
    state.audit.record(Event {
        client_id: Some(&client.client_id),
        client_name: client.client_name.as_deref().map(audit::short),
        ..caller.event("client_registered")
    });
    Ok(HttpResponse::build(StatusCode::CREATED)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(RegistrationResponse::from(registered)))
}

/// Registers `/oauth/register` and `/register`. The payload limit is the hard ceiling; the
/// handler applies the configured `limits.max_registration_bytes` below it.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let limit = web::PayloadConfig::new(64 * 1024);
    cfg.service(web::resource("/oauth/register").app_data(limit.clone()).route(web::post().to(register)))
        .service(web::resource("/register").app_data(limit).route(web::post().to(register)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_lists_accept_repeats_spaces_and_commas() {
        let meta = parse_form(
            b"client_name=My+Client&redirect_uris=http%3A%2F%2F127.0.0.1%2Fa+http%3A%2F%2F127.0.0.1%2Fb\
              &redirect_uris=http%3A%2F%2F127.0.0.1%2Fc,http%3A%2F%2F127.0.0.1%2Fd",
        );
        assert_eq!(meta.client_name.as_deref(), Some("My Client"));
        assert_eq!(
            meta.redirect_uris,
            ["http://127.0.0.1/a", "http://127.0.0.1/b", "http://127.0.0.1/c", "http://127.0.0.1/d"]
        );
        assert_eq!(meta.grant_types, None);
    }

    #[test]
    fn json_errors_are_classified() {
        assert!(matches!(parse_json(b"{not json"), Err(OAuthError::InvalidRequest(_))));
        assert!(matches!(
            parse_json(br#"{"redirect_uris": "https://a.example/cb"}"#),
            Err(OAuthError::InvalidClientMetadata(_))
        ));
        assert!(parse_json(br#"{"redirect_uris": ["https://a.example/cb"], "extra": 1}"#).is_ok());
    }
}
