//! `GET /oauth/authorize` (and `/authorize` for 2025-03-26 clients).
//!
//! The order of checks is the security boundary. Until the client and its redirect URI are
//! known good, every failure is an HTML error page: redirecting anywhere else would make the
//! gateway an open redirector. After that, errors go back to the client's redirect URI with
//! `state` and `iss` (RFC 9207, checklist B6), but only when that URI is vouched for (RFC 9700
//! §4.11.2: a metadata document client, or one this browser's user approved); for a client
//! anyone could have just registered, the error page names the error instead.
//!
//! The service and scopes a request is for are decided in [`target`]. A request without
//! `resource` (checklist B8; some clients send none) is bound to the one service when there is
//! one, since the client cannot have come from another; with several, the person picks the
//! service on the consent page and the token is still bound to exactly that one. A step-up
//! scope is granted only when asked for (after a 403 `insufficient_scope` named it).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::actors::{GetClient, HasApprovedClient, HasConsent, SaveLogin};
use crate::core::model::{Client, ClientSource, PendingAuthorization};
use crate::core::OAuthError;
use crate::core::{pkce, redirect_uri};
use crate::oauth::respond::{error_page_naming, error_redirect, failure_page};
use crate::oauth::{consent, cookies, target};
use crate::state::AppState;
use crate::web::error_page;
use crate::web::limits::{self, Endpoint};

/// The authorization request's query. Every field is optional so a missing one gets our own
/// error; a repeated one fails to parse (RFC 6749 §3.1: parameters must not repeat).
#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

/// Step 1: the client and the redirect URI, or an error page.
async fn check_client(state: &AppState, q: &AuthorizeQuery) -> Result<(Client, String), HttpResponse> {
    let bad = |msg: &str| error_page(StatusCode::BAD_REQUEST, "Invalid authorization request", msg);
    let client_id = q
        .client_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("The request names no client (client_id is missing)."))?;
    let client = match state.actors.clients.send(GetClient { client_id: client_id.to_owned() }).await {
        Ok(Ok(Some(client))) => client,
        Ok(Ok(None)) => return Err(bad("This application is not registered with the gateway.")),
        Ok(Err(e)) => return Err(page_for(&e)),
        Err(e) => return Err(page_for(&OAuthError::from(e))),
    };
    let uri = match q.redirect_uri.as_deref() {
        Some(uri) if redirect_uri::matches_any(&client.redirect_uris, uri) => uri.to_owned(),
        Some(_) => return Err(bad("The redirect URI is not registered for this application.")),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(bad("The request has no redirect_uri and the application registered several.")),
    };
    Ok((client, uri))
}

/// An error page for a failure before the redirect URI is trusted. A client that cannot be
/// used (a metadata document that failed its rules) is the request's fault: 400, not the
/// token endpoint's 401.
fn page_for(err: &OAuthError) -> HttpResponse {
    match err {
        OAuthError::InvalidClient(why) => {
            let message = format!("The application cannot be used with this gateway: {why}.");
            error_page(StatusCode::BAD_REQUEST, "Invalid authorization request", &message)
        }
        _ => failure_page(err),
    }
}

/// Step 2: everything else, as an OAuth error for the redirect URI.
fn check_request(
    state: &AppState,
    q: &AuthorizeQuery,
    client: &Client,
    uri: String,
) -> Result<PendingAuthorization, OAuthError> {
    match q.response_type.as_deref() {
        None => return Err(OAuthError::InvalidRequest("response_type is required".into())),
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::UnsupportedResponseType("only response_type=code is supported".into()))
        }
    }
    if !client.response_types.iter().any(|r| r == "code") {
        return Err(OAuthError::UnauthorizedClient("client did not register response_type code".into()));
    }
    let challenge = q
        .code_challenge
        .as_deref()
        .ok_or_else(|| OAuthError::InvalidRequest("code_challenge is required (PKCE with S256)".into()))?;
    if q.code_challenge_method.as_deref() != Some("S256") {
        return Err(OAuthError::InvalidRequest("code_challenge_method must be S256".into()));
    }
    if !pkce::is_valid_challenge(challenge) {
        return Err(OAuthError::InvalidRequest("code_challenge is not a base64url SHA-256 value".into()));
    }
    let (service_id, resource, scope) =
        target::for_request(&state.settings, q.resource.as_deref(), q.scope.as_deref())?;
    // A configured client may use its own services only, and must name one (no picking).
    if client.source == ClientSource::Configured {
        let allowed = state.settings.clients.get(&client.client_id).map(|c| &c.services);
        if !allowed.is_some_and(|services| services.contains(&service_id)) {
            return Err(OAuthError::InvalidTarget("resource is not a service this client may use".into()));
        }
    }
    let login_ttl = i64::try_from(state.settings.tokens.login_ttl).unwrap_or(600);
    Ok(PendingAuthorization {
        id: crate::secret::random_token(24),
        client_id: client.client_id.clone(),
        redirect_uri: uri,
        state: q.state.clone(),
        code_challenge: challenge.to_owned(),
        scope,
        service_id,
        resource,
        consented: false,
        remembered_user: None,
        browser_hash: None,
        account: false,
        expires_at: state.clock.now() + login_ttl,
    })
}

/// Whether `user_id` approved what `pending` asks for: its client, its service and every one
/// of its scopes.
pub async fn has_consent(
    state: &AppState,
    user_id: &str,
    pending: &PendingAuthorization,
) -> Result<bool, OAuthError> {
    let msg = HasConsent {
        user_id: user_id.to_owned(),
        client_id: pending.client_id.clone(),
        service_id: pending.service_id.clone(),
        scopes: pending.scope.split_whitespace().map(str::to_owned).collect(),
    };
    state.actors.sessions.send(msg).await?
}

/// The user of this browser's session cookie, if they approved this request's client, service
/// and scopes before.
async fn remembered_user(
    state: &AppState,
    req: &HttpRequest,
    pending: &PendingAuthorization,
) -> Result<Option<String>, OAuthError> {
    let Some(user_id) = cookies::session_user(req, &state.settings, state.clock.now()) else {
        return Ok(None);
    };
    Ok(has_consent(state, &user_id, pending).await?.then_some(user_id))
}

/// Step 3: save the request, then consent page or (consent remembered) straight upstream.
async fn proceed(
    state: &AppState,
    req: &HttpRequest,
    mut pending: PendingAuthorization,
    client: &Client,
) -> Result<HttpResponse, OAuthError> {
    // A request still to be bound to a service has no remembered consent: the person picks.
    if !pending.service_id.is_empty() {
        pending.remembered_user = remembered_user(state, req, &pending).await?;
    }
    if pending.remembered_user.is_some() {
        // Skipping the page stands for approving it, so the request is bound to this browser
        // the same way (`start_upstream` saves it with the browser's hash).
        return consent::start_upstream(state, req, pending).await;
    }
    state.actors.codes.send(SaveLogin(pending.clone())).await??;
    Ok(consent::consent_page(state, req, &pending, client))
}

/// Whether an error may go back to `client` without anyone clicking anything (RFC 9700
/// §4.11.2): only when its redirect URI is vouched for. A Client ID Metadata Document was
/// fetched from the client's own URL, so its owner published that redirect URI. A registered
/// client is vouched for only by a person who approved it: this browser's user holds a live
/// remembered consent for it. Anyone can register `https://evil.example/cb`, and redirecting
/// its errors would make the gateway an open redirector.
async fn may_redirect_errors(
    state: &AppState,
    req: &HttpRequest,
    client: &Client,
) -> Result<bool, OAuthError> {
    if client.source == ClientSource::MetadataDocument {
        return Ok(true);
    }
    let Some(user_id) = cookies::session_user(req, &state.settings, state.clock.now()) else {
        return Ok(false);
    };
    let msg = HasApprovedClient { user_id, client_id: client.client_id.clone() };
    state.actors.sessions.send(msg).await?
}

/// The answer to a failed request once the client and redirect URI are known: an error
/// redirect when the client is vouched for, the error page naming the error otherwise.
async fn refuse(
    state: &AppState,
    req: &HttpRequest,
    client: &Client,
    uri: &str,
    err: &OAuthError,
    client_state: Option<&str>,
) -> HttpResponse {
    match may_redirect_errors(state, req, client).await {
        Ok(true) => error_redirect(&state.settings, uri, err, client_state),
        Ok(false) => error_page_naming(err),
        Err(lookup) => failure_page(&lookup),
    }
}

async fn authorize(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(refused) = limits::check(&state, Endpoint::Authorize, &req).await {
        return refused;
    }
    let q = match web::Query::<AuthorizeQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid authorization request",
                "The request is malformed or repeats a parameter.",
            )
        }
    };
    let (client, uri) = match check_client(&state, &q).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let result = match check_request(&state, &q, &client, uri.clone()) {
        Ok(pending) => proceed(&state, &req, pending, &client).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(res) => res,
        Err(e) => refuse(&state, &req, &client, &uri, &e, q.state.as_deref()).await,
    }
}

/// Registers `/oauth/authorize` and `/authorize`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/authorize", web::get().to(authorize)).route("/authorize", web::get().to(authorize));
}
