//! `POST /oauth/token` (and `/token` for 2025-03-26 clients): the authorization-code grant
//! with PKCE and RFC 8707 `resource`, and the refresh-token grant with rotation; the client
//! credentials grant and `private_key_jwt` of configured clients live in
//! [`client_credentials`]. Form bodies
//! only (RFC 6749 §3.2); a repeated parameter fails to parse and is `invalid_request`.
//!
//! `redirect_uri`, when sent, must equal the one the code was issued for. OAuth 2.1 lets a
//! client leave it out (PKCE binds the code to the client that started the flow), so a missing
//! one is accepted.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;

use crate::actors::{AuthenticateClient, IssueTokens, RedeemCode, RevokeFamily, RotateRefresh};
use crate::core::audit::{self, Event};
use crate::core::machine::id_jag::GRANT_TYPE;
use crate::core::model::Redemption;
use crate::core::model::{Client, TokenResponse};
use crate::core::pkce;
use crate::core::OAuthError;
use crate::oauth::metadata::id_jag_enabled;
use crate::oauth::{client_credentials, id_jag, resource};
use crate::state::AppState;
use crate::web::limits::{self, Endpoint};
use crate::web::request_id::Caller;

/// The token request. All fields optional so a missing one gets a precise error.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    /// The JWT bearer grant's `assertion` (an ID-JAG).
    assertion: Option<String>,
}

/// `(client_id, client_secret)` from an `Authorization: Basic` header (RFC 6749 §2.3.1: both
/// form-urlencoded before base64). `Ok(None)` when the header is absent or not Basic.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::InvalidClient("malformed Basic credentials".into());
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// Authenticates the client of a token, revocation or introspection request: HTTP Basic, or
/// `client_id` (+ `client_secret`) in the form. Using both is refused (RFC 6749 §2.3).
async fn authenticate_client(
    state: &AppState,
    req: &HttpRequest,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Client, OAuthError> {
    let (client_id, client_secret) = match basic_credentials(req)? {
        Some((id, secret)) => {
            if form_secret.is_some() {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method, not two".into(),
                ));
            }
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::InvalidClient("client_id differs from the Basic credentials".into()));
            }
            (id, Some(secret))
        }
        None => {
            let id = form_id.filter(|id| !id.is_empty()).ok_or_else(|| {
                OAuthError::InvalidClient("client authentication required (client_id or HTTP Basic)".into())
            })?;
            (id.to_owned(), form_secret.map(str::to_owned))
        }
    };
    state.actors.clients.send(AuthenticateClient { client_id, client_secret }).await?
}

/// The body of a revocation (RFC 7009 §2.1) or introspection (RFC 7662 §2.1) request: the
/// token and, unless HTTP Basic is used, the client's credentials.
#[derive(Debug, Deserialize)]
pub struct TokenRequestForm {
    token: Option<String>,
    /// A hint only; the gateway recognises both kinds of token itself.
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// The one client authentication of the token, revocation and introspection endpoints: a
/// signed `client_assertion` (RFC 7523, `private_key_jwt`) when the request carries one,
/// else HTTP Basic or the form's `client_id` / `client_secret`.
pub async fn authenticate_request(
    state: &AppState,
    req: &HttpRequest,
    params: client_credentials::AssertionParams<'_>,
) -> Result<Client, OAuthError> {
    if params.present() {
        return client_credentials::authenticate(state, req, params).await;
    }
    authenticate_client(state, req, params.client_id, params.client_secret).await
}

/// The prologue of the revocation and introspection endpoints: authenticates the client
/// (first, so an unauthenticated caller learns nothing), then requires a non-empty `token`.
pub async fn authenticated_token(
    state: &AppState,
    req: &HttpRequest,
    form: TokenRequestForm,
) -> Result<(Client, String), OAuthError> {
    let params = client_credentials::AssertionParams {
        client_id: form.client_id.as_deref(),
        client_secret: form.client_secret.as_deref(),
        assertion_type: form.client_assertion_type.as_deref(),
        assertion: form.client_assertion.as_deref(),
    };
    let client = authenticate_request(state, req, params).await?;
    let token = form
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
    Ok((client, token))
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest(format!("{name} is required")))
}

fn may_use(client: &Client, grant: &str) -> Result<(), OAuthError> {
    if client.grant_types.iter().any(|g| g == grant) {
        Ok(())
    } else {
        Err(OAuthError::UnauthorizedClient(format!("client did not register grant type {grant}")))
    }
}

/// `resource` from the form, normalized; an unparseable one is `invalid_target`.
fn requested_resource(form: &TokenForm) -> Result<Option<String>, OAuthError> {
    match form.resource.as_deref() {
        None => Ok(None),
        Some(r) => resource::normalize(r)
            .map(Some)
            .ok_or_else(|| OAuthError::InvalidTarget("resource is not an absolute http(s) URI".into())),
    }
}

async fn authorization_code(
    state: &AppState,
    caller: &Caller,
    form: &TokenForm,
    client: &Client,
) -> Result<TokenResponse, OAuthError> {
    let code = required(&form.code, "code")?;
    let verifier = required(&form.code_verifier, "code_verifier")?;
    let wanted = requested_resource(form)?;
    let record = match state.actors.codes.send(RedeemCode { code: code.to_owned() }).await?? {
        Redemption::Redeemed(record) => record,
        Redemption::Replayed { family_id } => {
            // RFC 6749 §4.1.2: a replayed code revokes what its first use issued.
            log::warn!("authorization code replayed; revoking its token family");
            state.actors.tokens.send(RevokeFamily { family_id: family_id.clone() }).await??;
            state.audit.record(Event {
                reason: Some("authorization_code_replayed"),
                client_id: Some(&client.client_id),
                grant_id: Some(&family_id),
                ..caller.event("grant_revoked")
            });
            return Err(OAuthError::InvalidGrant("authorization code was already used".into()));
        }
        Redemption::Invalid => {
            return Err(OAuthError::InvalidGrant("authorization code is invalid or expired".into()))
        }
    };
    if record.client_id != client.client_id {
        return Err(OAuthError::InvalidGrant("authorization code was issued to another client".into()));
    }
    if form.redirect_uri.as_deref().is_some_and(|r| r != record.redirect_uri) {
        return Err(OAuthError::InvalidGrant("redirect_uri differs from the authorization request".into()));
    }
    if !pkce::verify_s256(&record.code_challenge, verifier) {
        return Err(OAuthError::InvalidGrant("code_verifier does not match the code_challenge".into()));
    }
    if wanted.is_some_and(|w| Some(w) != resource::normalize(&record.resource)) {
        return Err(OAuthError::InvalidTarget("resource differs from the one authorized".into()));
    }
    state.actors.tokens.send(IssueTokens(*record)).await?
}

async fn refresh(state: &AppState, form: &TokenForm, client: &Client) -> Result<TokenResponse, OAuthError> {
    let msg = RotateRefresh {
        refresh_token: required(&form.refresh_token, "refresh_token")?.to_owned(),
        client_id: client.client_id.clone(),
        resource: requested_resource(form)?,
        scope: form.scope.clone().filter(|s| !s.trim().is_empty()),
    };
    state.actors.tokens.send(msg).await?
}

async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, OAuthError> {
    if let Err(refused) = limits::check(&state, Endpoint::Token, &req).await {
        return Ok(refused);
    }
    let form = form.into_inner();
    let grant = required(&form.grant_type, "grant_type")?;
    let jwt_bearer = grant == GRANT_TYPE && id_jag_enabled(&state.settings);
    if !jwt_bearer && !matches!(grant, "authorization_code" | "refresh_token" | "client_credentials") {
        return Err(OAuthError::UnsupportedGrantType(format!("grant_type {grant} is not supported")));
    }
    let assertion = client_credentials::AssertionParams {
        client_id: form.client_id.as_deref(),
        client_secret: form.client_secret.as_deref(),
        assertion_type: form.client_assertion_type.as_deref(),
        assertion: form.client_assertion.as_deref(),
    };
    let client = authenticate_request(&state, &req, assertion).await?;
    // The identity assertion names the client it was issued to: the identity provider's
    // decision, so a client needs no registered grant type for it (see `id_jag`).
    if !jwt_bearer {
        may_use(&client, grant)?;
    }
    let caller = Caller::of(&req, &state.settings.trusted_proxies);
    let (result, event) = match grant {
        "authorization_code" => (authorization_code(&state, &caller, &form, &client).await, "token_issued"),
        "client_credentials" => {
            let (resource, scope) = (form.resource.as_deref(), form.scope.as_deref());
            (client_credentials::grant(&state, &client, resource, scope), "token_issued")
        }
        _ if jwt_bearer => {
            let (resource, scope) = (form.resource.as_deref(), form.scope.as_deref());
            let issued = id_jag::grant(&state, &client, form.assertion.as_deref(), resource, scope).await;
            (issued, "token_issued")
        }
        _ => (refresh(&state, &form, &client).await, "token_refreshed"),
    };
    let tokens = result.inspect_err(|e| match e {
        OAuthError::RefreshReused(family) => {
            let reuse = Event {
                client_id: Some(&client.client_id),
                grant_id: Some(family),
                ..caller.event("refresh_reuse_detected")
            };
            state.audit.record(reuse);
        }
        OAuthError::AccessRevoked { reason, family_id, user_id, service_id } => {
            for event in ["access_denied", "grant_revoked"] {
                state.audit.record(Event {
                    reason: Some(reason),
                    user_id: Some(user_id),
                    client_id: Some(&client.client_id),
                    service: Some(service_id),
                    grant_id: Some(family_id),
                    ..caller.event(event)
                });
            }
        }
        _ => {}
    })?;
    if let Some(claims) = &tokens.claims {
        state.audit.record(Event {
            user_id: Some(&claims.sub),
            user_email: claims.email.as_deref(),
            provider: Some(&claims.provider),
            client_id: Some(&claims.client_id),
            client_name: client.client_name.as_deref().map(audit::short),
            service: resource::service_for(&state.settings, &claims.aud).as_deref(),
            scope: Some(&claims.scope),
            grant_id: Some(&claims.fid),
            ..caller.event(event)
        });
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(tokens))
}

/// Registers `/oauth/token` and `/token`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/token", web::post().to(token)).route("/token", web::post().to(token));
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let value = format!("Basic {}", STANDARD.encode("my%3Aclient:s%2Bcret"));
        let req = TestRequest::default().insert_header((header::AUTHORIZATION, value)).to_http_request();
        let creds = basic_credentials(&req).ok().flatten();
        assert_eq!(creds, Some(("my:client".into(), "s+cret".into())));
    }

    #[test]
    fn malformed_basic_is_invalid_client_and_bearer_is_ignored() {
        for bad in ["Basic !!!", "Basic", &format!("Basic {}", STANDARD.encode("nocolon"))] {
            let req = TestRequest::default().insert_header((header::AUTHORIZATION, bad)).to_http_request();
            assert!(matches!(basic_credentials(&req), Err(OAuthError::InvalidClient(_))), "{bad}");
        }
        let req = TestRequest::default().insert_header((header::AUTHORIZATION, "Bearer x")).to_http_request();
        assert!(matches!(basic_credentials(&req), Ok(None)));
    }
}
