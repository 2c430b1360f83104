//! `GET /oauth/callback`: the upstream provider sends the browser back here with `code` and
//! `state` (or `error` and `state`). The state and the pending authorization are both taken
//! (single use); the browser must hold the login cookie of the one that approved the request
//! (else an error page, and nothing else happens); then the gateway learns who logged in,
//! checks consent for that user, issues its own code and redirects to the client with `code`,
//! `state` and `iss`.
//!
//! Remembered consent is decided from the browser's session cookie before the login, so the
//! person who actually logs in may differ from the cookie's user. In that case, when the real
//! user has not approved this client for this service and scopes, no code is issued: the consent page is shown again for a
//! fresh request, and approving it sends the browser through the provider once more. Asking
//! again (rather than redirecting `access_denied`) lets a shared browser switch accounts
//! without the client seeing an error.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::actors::{GetClient, IssueCode, RecordConsent, SaveLogin, TakeLogin, TakeUpstream};
use crate::core::access;
use crate::core::audit::Event;
use crate::core::model::{AuthCode, PendingAuthorization, UpstreamGrant, UserInfo};
use crate::core::OAuthError;
use crate::oauth::authorize::has_consent;
use crate::oauth::respond::{error_redirect, failure_page, redirect_with};
use crate::oauth::{account, consent, cookies};
use crate::state::AppState;
use crate::upstream::{SignedIn, UpstreamError};
use crate::web::error_page;
use crate::web::limits::{self, Endpoint};
use crate::web::request_id::Caller;

/// The provider's redirect back.
#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn expired_page() -> HttpResponse {
    error_page(
        StatusCode::BAD_REQUEST,
        "Sign-in expired",
        "This sign-in has expired or was already completed. Start again from your application.",
    )
}

/// The answer to a browser that did not approve the request it brings back: no code, no
/// error redirect, no cookie. Most often a sign-in link opened in another browser (or sent by
/// someone else, which is the attack this stops).
fn other_browser_page() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "Sign-in not completed",
        "This sign-in was not started in this browser, so the gateway did not complete it. If you \
         did not start it yourself, someone may have sent you this link: ignore it. Start again \
         from your application, in the browser where you approve access.",
    )
}

/// The answer to a person the service's access rule does not admit: no code, no redirect to
/// the client (which would only learn `access_denied`), and a page saying which account was
/// refused for which service, so a person signed in with the wrong account can tell.
fn not_allowed_page(state: &AppState, user: &UserInfo, service_id: &str) -> HttpResponse {
    let service = state.settings.mcp_services.get(service_id).map_or(service_id, |s| s.name.as_str());
    let account = user.email.as_deref().or(user.name.as_deref()).unwrap_or(user.id.as_str());
    // `error_page` escapes both.
    error_page(
        StatusCode::FORBIDDEN,
        "Access not allowed",
        &format!(
            "The account {account} is not allowed to use {service}. If you have another account \
             that is, sign out of the identity provider and start again from your application; \
             otherwise ask the gateway's administrator for access."
        ),
    )
}

/// The pending authorization the upstream `state` belongs to, consuming both.
async fn take_pending(
    state: &AppState,
    upstream_state: &str,
) -> Result<Option<(PendingAuthorization, crate::core::model::UpstreamLogin)>, OAuthError> {
    let now = state.clock.now();
    let taken = state.actors.codes.send(TakeUpstream { state: upstream_state.to_owned() }).await??;
    let Some(login) = taken.filter(|l| l.expires_at >= now) else {
        return Ok(None);
    };
    let pending = state.actors.codes.send(TakeLogin { id: login.pending_id.clone() }).await??;
    Ok(pending.filter(|p| p.expires_at >= now).map(|p| (p, login)))
}

/// What the provider's answer means for the client: the user, or an error to redirect.
async fn identify(
    state: &AppState,
    q: &CallbackQuery,
    login: &crate::core::model::UpstreamLogin,
) -> Result<SignedIn, OAuthError> {
    if let Some(error) = &q.error {
        log::info!("identity provider returned error '{}'", error.chars().take(64).collect::<String>());
        return Err(OAuthError::AccessDenied("the identity provider did not sign the user in".into()));
    }
    let code = q
        .code
        .as_deref()
        .ok_or_else(|| OAuthError::AccessDenied("the identity provider returned no code".into()))?;
    state.upstream.complete(code, login).await.map_err(|e| {
        log::warn!("upstream login failed: {e}");
        match e {
            UpstreamError::Rejected(_) => {
                OAuthError::AccessDenied("the identity provider's answer was refused".into())
            }
            _ => OAuthError::ServerError("sign-in with the identity provider failed".into()),
        }
    })
}

/// Whether `user` may get a code for this request without being asked (again).
async fn consent_given(
    state: &AppState,
    pending: &PendingAuthorization,
    user: &UserInfo,
) -> Result<bool, OAuthError> {
    if pending.consented {
        let msg = RecordConsent {
            user_id: user.id.clone(),
            client_id: pending.client_id.clone(),
            service_id: pending.service_id.clone(),
            scopes: pending.scope.split_whitespace().map(str::to_owned).collect(),
        };
        state.actors.sessions.send(msg).await??;
        return Ok(true);
    }
    if pending.remembered_user.as_deref() == Some(user.id.as_str()) {
        return Ok(true);
    }
    has_consent(state, &user.id, pending).await
}

/// A fresh copy of `pending` for the consent page, shown to the user who really logged in.
async fn ask_again(
    state: &AppState,
    req: &HttpRequest,
    pending: PendingAuthorization,
) -> Result<HttpResponse, OAuthError> {
    let login_ttl = i64::try_from(state.settings.tokens.login_ttl).unwrap_or(600);
    let fresh = PendingAuthorization {
        id: crate::secret::random_token(24),
        consented: false,
        remembered_user: None,
        // Bound again when approved (`consent::start_upstream`).
        browser_hash: None,
        expires_at: state.clock.now() + login_ttl,
        ..pending
    };
    let client = state.actors.clients.send(GetClient { client_id: fresh.client_id.clone() }).await??;
    let client =
        client.ok_or_else(|| OAuthError::AccessDenied("the client is no longer registered".into()))?;
    state.actors.codes.send(SaveLogin(fresh.clone())).await??;
    Ok(consent::consent_page(state, req, &fresh, &client))
}

/// Issues the gateway's code and redirects to the client, remembering the user on this browser.
async fn finish(
    state: &AppState,
    pending: &PendingAuthorization,
    user: UserInfo,
    upstream: Option<UpstreamGrant>,
) -> Result<HttpResponse, OAuthError> {
    let code_ttl = i64::try_from(state.settings.tokens.code_ttl.min(600)).unwrap_or(60);
    let now = state.clock.now();
    let user_id = user.id.clone();
    let record = AuthCode {
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.code_challenge.clone(),
        service_id: pending.service_id.clone(),
        resource: pending.resource.clone(),
        scope: pending.scope.clone(),
        user,
        family_id: crate::secret::random_token(16),
        expires_at: now + code_ttl,
        upstream,
    };
    let code = state.actors.codes.send(IssueCode(record)).await??;
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = pending.state.as_deref() {
        params.push(("state", s));
    }
    params.push(("iss", state.settings.issuer.as_str()));
    let mut res = redirect_with(&pending.redirect_uri, &params);
    if let Err(e) = res.add_cookie(&cookies::session_cookie(&state.settings, &user_id, now)) {
        log::error!("cannot set session cookie: {e}");
    }
    Ok(res)
}

async fn complete(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    q: &CallbackQuery,
    pending: PendingAuthorization,
    login: crate::core::model::UpstreamLogin,
) -> Result<HttpResponse, OAuthError> {
    let SignedIn { user, upstream } = match identify(state, q, &login).await {
        Ok(signed_in) => signed_in,
        Err(e) => {
            state.audit.record(Event {
                outcome: Some("failure"),
                reason: Some(e.code()),
                provider: Some(state.upstream.kind()),
                client_id: Some(&pending.client_id),
                service: Some(&pending.service_id),
                ..caller.event("login")
            });
            return Err(e);
        }
    };
    let person = |event| Event {
        user_id: Some(&user.id),
        user_email: user.email.as_deref(),
        provider: Some(&user.provider),
        client_id: Some(&pending.client_id),
        service: Some(&pending.service_id),
        ..caller.event(event)
    };
    state.audit.record(Event { outcome: Some("success"), ..person("login") });
    if pending.account {
        return account::signed_in(state, &user);
    }
    if !access::may_use_service(&state.settings, &pending.service_id, &user) {
        log::info!("user {} refused by the access rule of service {}", user.id, pending.service_id);
        state.audit.record(Event { reason: Some("access_rule"), ..person("access_denied") });
        return Ok(not_allowed_page(state, &user, &pending.service_id));
    }
    if !consent_given(state, &pending, &user).await? {
        log::info!("remembered consent was for another user; asking {} again", user.id);
        return ask_again(state, req, pending).await;
    }
    if pending.consented {
        state.audit.record(Event { scope: Some(&pending.scope), ..person("consent_granted") });
    }
    finish(state, &pending, user, upstream).await
}

async fn callback(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(refused) = limits::check(&state, Endpoint::Callback, &req).await {
        return refused;
    }
    let Ok(q) = web::Query::<CallbackQuery>::from_query(req.query_string()) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid sign-in response",
            "The identity provider's response is malformed.",
        );
    };
    let caller = Caller::of(&req, &state.settings.trusted_proxies);
    let failed = |reason, client_id: Option<&str>| {
        let event =
            Event { outcome: Some("failure"), reason: Some(reason), client_id, ..caller.event("login") };
        state.audit.record(event);
    };
    let Some(upstream_state) = q.state.as_deref() else {
        failed("no_state", None);
        return expired_page();
    };
    let (pending, login) = match take_pending(&state, upstream_state).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            failed("unknown_or_expired_state", None);
            return expired_page();
        }
        Err(e) => return failure_page(&e),
    };
    // Before the provider's code is redeemed and anything is recorded or redirected: only the
    // browser that approved the request may complete it. Both records are already consumed,
    // so a refused attempt also ends the request for everyone.
    if !cookies::login_matches(&req, &state.settings, pending.browser_hash.as_deref()) {
        log::warn!(
            "callback refused: a browser that did not approve the request (client {})",
            pending.client_id
        );
        failed("browser_did_not_approve", Some(&pending.client_id));
        return other_browser_page();
    }
    let result = complete(&state, &req, &caller, &q, pending.clone(), login).await;
    result.unwrap_or_else(|e| match pending.account {
        true => failure_page(&e),
        false => error_redirect(&state.settings, &pending.redirect_uri, &e, pending.state.as_deref()),
    })
}

/// Registers `GET /oauth/callback`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/callback", web::get().to(callback));
}
