//! The `dev` provider's login page (`GET`/`POST /oauth/dev/login`): asks for a name and an
//! email and sends the browser back to `/oauth/callback` with a code the provider
//! (`crate::upstream`) signed. Anyone can be anyone, so the provider only runs on loopback and
//! these routes answer 404 for every other provider.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::state::AppState;
use crate::web::{error_page, html_page, render};

const MAX_NAME: usize = 200;
const MAX_EMAIL: usize = 254;

/// `GET` and `POST /oauth/dev/login`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/dev/login", web::get().to(login_page))
        .route("/oauth/dev/login", web::post().to(login_submit));
}

/// Query of the login page.
#[derive(Debug, Deserialize)]
struct PageQuery {
    state: String,
    code_challenge: String,
}

/// The login form.
#[derive(Debug, Deserialize)]
struct LoginForm {
    state: String,
    code_challenge: String,
    name: String,
    email: String,
}

fn not_here() -> HttpResponse {
    error_page(StatusCode::NOT_FOUND, "Not found", "This gateway does not use the development login.")
}

fn bad_link() -> HttpResponse {
    error_page(StatusCode::BAD_REQUEST, "Invalid login link", "Start the login again from your application.")
}

fn page(status: StatusCode, form: &LoginForm, error: &str) -> HttpResponse {
    let body = render(
        include_str!("../../static/dev-login.html"),
        &[
            ("state", &form.state),
            ("code_challenge", &form.code_challenge),
            ("name", &form.name),
            ("email", &form.email),
            ("error", error),
        ],
    );
    html_page(status, body)
}

fn link_is_sane(state: &str, challenge: &str) -> bool {
    !state.is_empty() && state.len() <= 512 && crate::core::pkce::is_valid_challenge(challenge)
}

async fn login_page(state: web::Data<AppState>, query: web::Query<PageQuery>) -> HttpResponse {
    if state.upstream.dev().is_none() {
        return not_here();
    }
    let PageQuery { state: up_state, code_challenge } = query.into_inner();
    if !link_is_sane(&up_state, &code_challenge) {
        return bad_link();
    }
    let form = LoginForm { state: up_state, code_challenge, name: String::new(), email: String::new() };
    page(StatusCode::OK, &form, "")
}

async fn login_submit(state: web::Data<AppState>, form: web::Form<LoginForm>) -> HttpResponse {
    let Some(dev) = state.upstream.dev() else { return not_here() };
    let mut form = form.into_inner();
    if !link_is_sane(&form.state, &form.code_challenge) {
        return bad_link();
    }
    form.name = form.name.trim().to_owned();
    form.email = form.email.trim().to_owned();
    if let Err(problem) = check_person(&form.name, &form.email) {
        return page(StatusCode::BAD_REQUEST, &form, problem);
    }
    let code = match dev.issue(&form.name, &form.email, &form.code_challenge, state.clock.now()) {
        Ok(code) => code,
        Err(e) => {
            log::error!("dev login code not issued: {e}");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Login failed", "Try again.");
        }
    };
    let query = serde_urlencoded::to_string([("code", code.as_str()), ("state", form.state.as_str())])
        .unwrap_or_default();
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, format!("{}/oauth/callback?{query}", dev.issuer)))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Whether the form's name and email are usable; the problem to show otherwise.
fn check_person(name: &str, email: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err("Enter a name of at most 200 characters.");
    }
    let shape_ok =
        email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if !shape_ok || email.len() > MAX_EMAIL || email.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("Enter a valid email address.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_checks() {
        assert!(check_person("Ann", "a@x.org").is_ok());
        assert!(check_person("", "a@x.org").is_err());
        assert!(check_person("Ann", "ax.org").is_err());
        assert!(check_person("Ann", "a @x.org").is_err());
        assert!(check_person(&"n".repeat(201), "a@x.org").is_err());
    }
}
