//! `/account`: a person's own grants, with a Revoke button each (issue 10, part 3).
//!
//! The page has a sign-in of its own: without a valid account cookie, `GET /account` sends the
//! browser through the upstream provider exactly like an approved authorization (bound to this
//! browser by the login cookie, single-use state), and the callback, seeing an account sign-in,
//! sets the account cookie (an hour) and comes back here instead of issuing a code. Revoking is
//! a form post carrying a CSRF token tied to the person and the grant; only the person's own
//! grants can be revoked, and each revocation is a `grant_revoked` audit line (reason
//! `revoked_by_user`).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::actors::{GetClient, ListGrants, RevokeGrants};
use crate::core::model::{PendingAuthorization, UserInfo};
use crate::core::tokens::{Grant, GrantFilter};
use crate::core::OAuthError;
use crate::oauth::consent::start_upstream;
use crate::oauth::cookies;
use crate::oauth::respond::failure_page;
use crate::secret::constant_time_eq;
use crate::state::AppState;
use crate::web::limits::{self, Endpoint};
use crate::web::request_id::Caller;
use crate::web::{error_page, html_escape, html_page, render};

const TEMPLATE: &str = include_str!("../../static/account.html");

/// Registers `GET /account` and `POST /account/revoke`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/account", web::get().to(page)).route("/account/revoke", web::post().to(revoke));
}

/// After the provider's callback for an account sign-in: the cookie, and back to the page.
pub fn signed_in(state: &AppState, user: &UserInfo) -> Result<HttpResponse, OAuthError> {
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/account"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish();
    res.add_cookie(&cookies::account_cookie(&state.settings, &user.id, state.clock.now()))
        .map_err(OAuthError::internal)?;
    Ok(res)
}

async fn page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(user) = cookies::account_user(&req, &state.settings, state.clock.now()) else {
        return sign_in(&state, &req).await.unwrap_or_else(|e| failure_page(&e));
    };
    match grants_of(&state, &user).await {
        Ok(grants) => html_page(StatusCode::OK, render_page(&state, &user, &grants).await),
        Err(e) => failure_page(&e),
    }
}

/// Starts the account sign-in at the provider.
async fn sign_in(state: &AppState, req: &HttpRequest) -> Result<HttpResponse, OAuthError> {
    if let Err(refused) = limits::check(state, Endpoint::Authorize, req).await {
        return Ok(refused);
    }
    let login_ttl = i64::try_from(state.settings.tokens.login_ttl).unwrap_or(600);
    let pending = PendingAuthorization {
        id: crate::secret::random_token(24),
        client_id: String::new(),
        redirect_uri: String::new(),
        state: None,
        code_challenge: String::new(),
        scope: String::new(),
        service_id: String::new(),
        resource: String::new(),
        consented: true,
        remembered_user: None,
        browser_hash: None,
        account: true,
        expires_at: state.clock.now() + login_ttl,
    };
    start_upstream(state, req, pending).await
}

/// The person's live grants (exactly theirs: the filter's user also matches emails and
/// subjects, which another person's id could equal).
async fn grants_of(state: &AppState, user_id: &str) -> Result<Vec<Grant>, OAuthError> {
    let filter = GrantFilter { user: Some(user_id.to_owned()), ..GrantFilter::default() };
    let grants = state.actors.tokens.send(ListGrants(filter)).await??;
    Ok(grants.into_iter().filter(|g| g.user_id == user_id).collect())
}

fn time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| unix.to_string())
}

async fn render_page(state: &AppState, user: &str, grants: &[Grant]) -> String {
    let mut rows = String::new();
    for g in grants {
        let client = state.actors.clients.send(GetClient { client_id: g.client_id.clone() }).await;
        let name = match client {
            Ok(Ok(Some(c))) => c.client_name.unwrap_or(c.client_id),
            _ => g.client_id.clone(),
        };
        let service =
            state.settings.mcp_services.get(&g.service_id).map_or(g.service_id.as_str(), |s| &s.name);
        rows.push_str(&format!(
            "<tr><td data-label=\"Application\">{}</td><td data-label=\"Service\">{}</td>\
             <td data-label=\"Since\">{}</td><td data-label=\"Last used\">{}</td><td><form method=\"post\" \
             action=\"/account/revoke\"><input type=\"hidden\" name=\"grant_id\" value=\"{}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Revoke</button>\
             </form></td></tr>\n",
            trusted(&name),
            trusted(service),
            time(g.created_at),
            time(g.last_used_at),
            trusted(&g.grant_id),
            trusted(&cookies::account_csrf(&state.settings, user, &g.grant_id)),
        ));
    }
    let table = match rows.is_empty() {
        true => "<p>No application has access as you.</p>".to_owned(),
        false => format!(
            "<table class=\"grants\"><thead><tr><th>Application</th><th>Service</th><th>Since</th>\
             <th>Last used</th><th></th></tr></thead><tbody>\n{rows}</tbody></table>"
        ),
    };
    let shown = grants.iter().find_map(|g| g.email.as_deref()).unwrap_or(user);
    render(&TEMPLATE.replace("{{grants}}", &table), &[("user", shown)])
}

/// Escaped for HTML that `render` then passes through (braces too: no placeholders).
fn trusted(s: &str) -> String {
    html_escape(s).replace('{', "&#123;").replace('}', "&#125;")
}

#[derive(Deserialize)]
struct RevokeForm {
    grant_id: String,
    csrf: String,
}

async fn revoke(state: web::Data<AppState>, req: HttpRequest, form: web::Form<RevokeForm>) -> HttpResponse {
    if let Err(refused) = limits::check(&state, Endpoint::Consent, &req).await {
        return refused;
    }
    let Some(user) = cookies::account_user(&req, &state.settings, state.clock.now()) else {
        return error_page(
            StatusCode::FORBIDDEN,
            "Signed out",
            "Your account sign-in has ended. Open /account again.",
        );
    };
    let expected = cookies::account_csrf(&state.settings, &user, &form.grant_id);
    if !constant_time_eq(&expected, &form.csrf) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form is not valid any more. Open /account again.",
        );
    }
    let result = async {
        let own = grants_of(&state, &user).await?.into_iter().find(|g| g.grant_id == form.grant_id);
        let Some(grant) = own else { return Ok(None) };
        let filter = GrantFilter { grant: Some(grant.grant_id.clone()), ..GrantFilter::default() };
        state.actors.tokens.send(RevokeGrants(filter)).await??;
        Ok::<_, OAuthError>(Some(grant))
    }
    .await;
    match result {
        Ok(revoked) => {
            if let Some(g) = revoked {
                let caller = Caller::of(&req, &state.settings.trusted_proxies);
                state.audit.record(g.revoked_event("revoked_by_user", caller.event("grant_revoked")));
            }
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/account"))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        Err(e) => failure_page(&e),
    }
}
