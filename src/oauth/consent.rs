//! The consent step (MCP confused-deputy rule, checklist B14/B15). The gateway logs users in
//! upstream with one static client id, so an upstream session alone must never let a new
//! client get tokens: a user first sees a page naming the client, where its redirect goes, the
//! service and the scopes, and must approve it. The approval is remembered for that service and
//! those scopes only (`actors::sessions`): another service or a new scope asks again.
//!
//! The form is protected by a CSRF token bound to the pending request and to a random value in
//! an `HttpOnly` cookie set when the page was shown, so a form posted from another browser (or
//! a cross-site page) fails. The page cannot be framed (`html_page` headers). The upstream
//! `state` is created only after approval, together with a login cookie for the approving
//! browser (see [`start_upstream`]): the callback completes the request for that browser only.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::actors::{BeginUpstream, GetLogin, SaveLogin, TakeLogin};
use crate::config::Settings;
use crate::core::audit::Event;
use crate::core::model::{Client, ClientSource, PendingAuthorization, UpstreamLogin};
use crate::core::OAuthError;
use crate::core::{cimd, redirect_uri};
use crate::oauth::respond::{error_redirect, failure_page};
use crate::oauth::{cookies, target};
use crate::state::AppState;
use crate::web::limits::{self, Endpoint};
use crate::web::request_id::Caller;
use crate::web::{error_page, html_escape, html_page, render};

const TEMPLATE: &str = include_str!("../../static/consent.html");

/// Shown when the redirect goes to this computer: any local program can register such a URI.
const LOOPBACK_WARNING: &str = "<p class=\"warning\">The app runs on this computer: its redirect \
goes to localhost. Approve only if you just started this sign-in from an application you trust.</p>";

/// What the page shows for the redirect URI: its host, or its scheme for private-use schemes.
fn redirect_display(uri: &str) -> (String, bool) {
    match url::Url::parse(uri) {
        Ok(url) => {
            let shown = match url.host_str() {
                Some(host) if !host.is_empty() => host.to_owned(),
                _ => format!("{}:", url.scheme()),
            };
            (shown, redirect_uri::is_loopback(&url))
        }
        Err(_) => (uri.to_owned(), false),
    }
}

/// How the page names the client. A metadata document's `client_name` is only the client's
/// claim, so its host is shown with it ("Claude (claude.ai)"): a document elsewhere cannot pass
/// for another application by name alone.
fn client_label(client: &Client) -> String {
    let name = client.client_name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let host = match client.source {
        ClientSource::MetadataDocument => cimd::display_host(&client.client_id),
        ClientSource::Registered | ClientSource::Configured => None,
    };
    match (name, host) {
        (Some(name), Some(host)) => format!("{name} ({host})"),
        (None, Some(host)) => host,
        (Some(name), None) => name.to_owned(),
        (None, None) => "Unnamed client".to_owned(),
    }
}

/// What approving grants, in words: the service, the person, and the scopes when there are
/// some ("(none)" read as if nothing at all were granted).
fn grant_text(service_name: Option<&str>, scope: &str) -> String {
    let service = service_name.unwrap_or("the service you choose");
    let mut text = format!("Use {service} as you: the account you sign in with next.");
    if !scope.is_empty() {
        text.push_str(&format!(" Permissions: {}.", scope.replace(' ', ", ")));
    }
    text
}

/// Escapes operator text for trusted HTML that `render` then passes through: braces too, so
/// a service name cannot form a placeholder.
fn trusted_text(s: &str) -> String {
    html_escape(s).replace('{', "&#123;").replace('}', "&#125;")
}

/// The service rows: the bound service and its resource, or, when the client named none and
/// several exist, a choice of every configured service (the token is still bound to one).
fn service_rows(settings: &Settings, pending: &PendingAuthorization) -> String {
    if let Some(service) = settings.mcp_services.get(&pending.service_id) {
        return format!(
            "<dt>Service</dt><dd>{}</dd>\n      <dt>Resource</dt><dd><code>{}</code></dd>",
            trusted_text(&service.name),
            trusted_text(&pending.resource)
        );
    }
    let mut rows = String::from(
        "<dt>Service</dt><dd><fieldset class=\"services\"><legend>The application did not say which \
         service it needs. Choose one:</legend>",
    );
    for (id, service) in &settings.mcp_services {
        rows.push_str(&format!(
            "<label><input type=\"radio\" name=\"service\" value=\"{}\" required> <span>{} \
             <code>{}</code></span></label>",
            trusted_text(id),
            trusted_text(&service.name),
            trusted_text(&settings.resource_uri(id))
        ));
    }
    rows.push_str("</fieldset></dd>");
    rows
}

/// The consent page for `pending`, setting the binding cookie if the browser lacks one.
pub fn consent_page(
    state: &AppState,
    req: &HttpRequest,
    pending: &PendingAuthorization,
    client: &Client,
) -> HttpResponse {
    let settings = &state.settings;
    let (binding, new_cookie) = match cookies::binding(req, settings) {
        Some(b) => (b, None),
        None => {
            let (b, c) = cookies::new_binding(settings);
            (b, Some(c))
        }
    };
    let csrf = cookies::csrf_token(settings, &pending.id, &binding);
    let (host, loopback) = redirect_display(&pending.redirect_uri);
    let bound = settings.mcp_services.get(&pending.service_id).map(|s| s.name.as_str());
    let service_name = bound.unwrap_or("a service of this gateway");
    let client_name = client_label(client);
    let grant = grant_text(bound, &pending.scope);
    // Trusted HTML goes in before `render`, which escapes every value and fills placeholders
    // in one pass (text inside a client's values is never a placeholder).
    let template = TEMPLATE
        .replace("{{localhost_warning}}", if loopback { LOOPBACK_WARNING } else { "" })
        .replace("{{service_rows}}", &service_rows(settings, pending));
    let body = render(
        &template,
        &[
            ("pending_id", pending.id.as_str()),
            ("csrf", csrf.as_str()),
            ("service_name", service_name),
            ("grant", grant.as_str()),
            ("redirect_host", host.as_str()),
            ("client_id", client.client_id.as_str()),
            ("client_name", client_name.as_str()),
        ],
    );
    let mut res = html_page(StatusCode::OK, body);
    if let Some(cookie) = new_cookie {
        if let Err(e) = res.add_cookie(&cookie) {
            log::error!("cannot set consent cookie: {e}");
        }
    }
    res
}

/// Sends the browser of `req` to the provider for an approved request (approved on the page,
/// or remembered). The request is bound to this browser first: the login cookie is (re)set
/// and only its hash is saved with the request, and the callback completes the request only
/// for a browser holding it. Without that, anyone given the provider link (or the IdP's URL)
/// would log in *for* the client of whoever approved.
pub async fn start_upstream(
    state: &AppState,
    req: &HttpRequest,
    mut pending: PendingAuthorization,
) -> Result<HttpResponse, OAuthError> {
    let (browser, cookie) = cookies::login_binding(req, &state.settings);
    pending.browser_hash = Some(crate::secret::hash_token(&browser));
    state.actors.codes.send(SaveLogin(pending.clone())).await??;
    let prepared = state.upstream.prepare();
    let login_ttl = i64::try_from(state.settings.tokens.login_ttl).unwrap_or(600);
    let login = UpstreamLogin {
        pending_id: pending.id.clone(),
        pkce_verifier: prepared.pkce_verifier.clone(),
        nonce: prepared.nonce.clone(),
        expires_at: state.clock.now() + login_ttl,
    };
    let upstream_state = state.actors.codes.send(BeginUpstream(login)).await??;
    let url = state.upstream.authorize_url(&upstream_state, &prepared);
    if url.is_empty() {
        return Err(OAuthError::internal("upstream provider produced no authorization URL"));
    }
    let mut res = HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, url))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .finish();
    // Without the cookie the callback would refuse this browser: fail here, visibly.
    res.add_cookie(&cookie).map_err(OAuthError::internal)?;
    Ok(res)
}

/// The consent form.
#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    pending_id: Option<String>,
    csrf: Option<String>,
    action: Option<String>,
    /// The service picked, when the client named none.
    service: Option<String>,
}

fn refused(status: StatusCode, message: &str) -> HttpResponse {
    error_page(status, "Consent not accepted", message)
}

async fn decide(
    state: &AppState,
    req: &HttpRequest,
    pending: PendingAuthorization,
    approve: bool,
    picked: Option<&str>,
) -> HttpResponse {
    let settings = &state.settings;
    let result = if approve {
        approve_request(state, req, pending.clone(), picked).await
    } else {
        // Single use: a denied request cannot be approved later from another tab.
        let _ = state.actors.codes.send(TakeLogin { id: pending.id.clone() }).await;
        let caller = Caller::of(req, &settings.trusted_proxies);
        state.audit.record(Event {
            reason: Some("denied_on_consent_page"),
            client_id: Some(&pending.client_id),
            service: Some(pending.service_id.as_str()).filter(|s| !s.is_empty()),
            ..caller.event("access_denied")
        });
        Err(OAuthError::AccessDenied("the user denied the request".into()))
    };
    result.unwrap_or_else(|e| error_redirect(settings, &pending.redirect_uri, &e, pending.state.as_deref()))
}

/// Approval: binds the picked service when the client named none, then goes upstream.
async fn approve_request(
    state: &AppState,
    req: &HttpRequest,
    pending: PendingAuthorization,
    picked: Option<&str>,
) -> Result<HttpResponse, OAuthError> {
    let pending = if pending.service_id.is_empty() {
        let Some(service_id) = picked.filter(|p| !p.is_empty()) else {
            return Ok(refused(StatusCode::BAD_REQUEST, "Choose the service the application may use."));
        };
        target::bind_service(&state.settings, pending, service_id)?
    } else {
        pending
    };
    start_upstream(state, req, PendingAuthorization { consented: true, ..pending }).await
}

async fn submit(state: web::Data<AppState>, req: HttpRequest, form: web::Form<ConsentForm>) -> HttpResponse {
    if let Err(refused) = limits::check(&state, Endpoint::Consent, &req).await {
        return refused;
    }
    let form = form.into_inner();
    let (Some(pending_id), Some(csrf)) = (form.pending_id, form.csrf) else {
        return refused(StatusCode::BAD_REQUEST, "The consent form is incomplete.");
    };
    // Checked before any storage access: a forged post learns nothing.
    if !cookies::csrf_valid(&req, &state.settings, &pending_id, &csrf) {
        return refused(
            StatusCode::FORBIDDEN,
            "The consent form could not be verified. Start the sign-in again from your application.",
        );
    }
    let approve = match form.action.as_deref() {
        Some("approve") => true,
        Some("deny") => false,
        _ => return refused(StatusCode::BAD_REQUEST, "Choose Allow or Deny."),
    };
    let pending = match state.actors.codes.send(GetLogin { id: pending_id }).await {
        Ok(Ok(Some(p))) if p.expires_at >= state.clock.now() => p,
        Ok(Ok(_)) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "This sign-in request has expired. Start again from your application.",
            )
        }
        Ok(Err(e)) => return failure_page(&e),
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, OAuthError::from(e).description()),
    };
    decide(&state, &req, pending, approve, form.service.as_deref()).await
}

/// Registers `POST /oauth/consent`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/consent", web::post().to(submit));
}

#[cfg(test)]
mod tests {
    use super::redirect_display;

    #[test]
    fn redirect_display_names_host_and_flags_loopback() {
        assert_eq!(redirect_display("https://claude.ai/cb"), ("claude.ai".into(), false));
        assert_eq!(redirect_display("http://127.0.0.1:5000/cb"), ("127.0.0.1".into(), true));
        assert_eq!(redirect_display("http://localhost/cb"), ("localhost".into(), true));
        assert_eq!(redirect_display("com.example.app:/cb"), ("com.example.app:".into(), false));
    }
}
