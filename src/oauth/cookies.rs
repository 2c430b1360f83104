//! The gateway's browser cookies: the session cookie (who logged in on this browser, for
//! remembered consent), the consent binding cookie (a random value that ties a consent
//! form's CSRF token to the browser the page was shown to) and the login cookie (a random
//! value whose hash is stored with an approved request, so that only the browser that
//! approved it can complete it at the callback: a forwarded sign-in link is worthless).
//!
//! Values are signed with HMAC-SHA256 under `session_secret`, with a purpose label in the MAC
//! so one cookie's value can never be replayed as another's. Every cookie is `HttpOnly`,
//! `SameSite=Lax` (the provider's callback is a top-level GET, which Lax still carries) and
//! `Path=/`; over https it is also `Secure` with the `__Host-` prefix. Names start with
//! `mcpgw_`, the prefix the proxy strips before forwarding to a backend.

use actix_web::cookie::{time::Duration, Cookie, SameSite};
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::secret::{constant_time_eq, hash_token, hmac_b64, random_token};

/// Base name of the session cookie.
pub const SESSION: &str = "mcpgw_session";
/// Base name of the consent binding cookie.
pub const BINDING: &str = "mcpgw_consent";
/// Base name of the login cookie.
pub const LOGIN: &str = "mcpgw_login";
/// The `/account` page's session.
pub const ACCOUNT: &str = "mcpgw_account";
/// How long an `/account` sign-in lasts (seconds).
pub const ACCOUNT_TTL: u64 = 3600;

/// The cookie name as sent: `__Host-` prefixed when the gateway is served over https.
pub fn name(settings: &Settings, base: &str) -> String {
    if settings.is_https() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn mac(settings: &Settings, purpose: &str, payload: &str) -> String {
    let message = format!("{purpose}\n{payload}");
    hmac_b64(settings.session_secret.expose_secret().as_bytes(), message.as_bytes())
}

/// `payload.mac`.
fn sign(settings: &Settings, purpose: &str, payload: &str) -> String {
    format!("{payload}.{}", mac(settings, purpose, payload))
}

/// The payload of a signed value, if its MAC checks out.
fn verify(settings: &Settings, purpose: &str, value: &str) -> Option<String> {
    let (payload, tag) = value.rsplit_once('.')?;
    constant_time_eq(&mac(settings, purpose, payload), tag).then(|| payload.to_owned())
}

fn build(settings: &Settings, base: &str, value: String, max_age_secs: u64) -> Cookie<'static> {
    let max_age = Duration::seconds(i64::try_from(max_age_secs).unwrap_or(i64::MAX / 1000));
    Cookie::build(name(settings, base), value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(settings.is_https())
        .max_age(max_age)
        .finish()
}

/// The session cookie naming `user_id`, valid for `tokens.consent_ttl` from `now`. The
/// expiry is inside the signed value too, so a kept cookie does not outlive it.
pub fn session_cookie(settings: &Settings, user_id: &str, now: i64) -> Cookie<'static> {
    user_cookie(settings, SESSION, "session", user_id, now, settings.tokens.consent_ttl)
}

/// The user id of a valid, unexpired session cookie.
pub fn session_user(req: &HttpRequest, settings: &Settings, now: i64) -> Option<String> {
    cookie_user(req, settings, SESSION, "session", now)
}

/// The `/account` page's own session: a fresh sign-in, for [`ACCOUNT_TTL`] seconds (the
/// consent session above is long-lived and may be another person's on a shared browser).
pub fn account_cookie(settings: &Settings, user_id: &str, now: i64) -> Cookie<'static> {
    user_cookie(settings, ACCOUNT, "account", user_id, now, ACCOUNT_TTL)
}

/// The user id of a valid, unexpired account cookie.
pub fn account_user(req: &HttpRequest, settings: &Settings, now: i64) -> Option<String> {
    cookie_user(req, settings, ACCOUNT, "account", now)
}

/// The CSRF token of the account page's revoke form for `grant_id`, tied to `user_id`.
pub fn account_csrf(settings: &Settings, user_id: &str, grant_id: &str) -> String {
    mac(settings, "account-csrf", &format!("{user_id}\n{grant_id}"))
}

fn user_cookie(
    settings: &Settings,
    base: &str,
    purpose: &str,
    user_id: &str,
    now: i64,
    ttl: u64,
) -> Cookie<'static> {
    let expires = now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
    let payload = format!("{}~{expires}", URL_SAFE_NO_PAD.encode(user_id));
    build(settings, base, sign(settings, purpose, &payload), ttl)
}

fn cookie_user(
    req: &HttpRequest,
    settings: &Settings,
    base: &str,
    purpose: &str,
    now: i64,
) -> Option<String> {
    let cookie = req.cookie(&name(settings, base))?;
    let payload = verify(settings, purpose, cookie.value())?;
    let (user, expires) = payload.split_once('~')?;
    if expires.parse::<i64>().ok()? < now {
        return None;
    }
    String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()
}

/// The browser binding value of a valid binding cookie.
pub fn binding(req: &HttpRequest, settings: &Settings) -> Option<String> {
    let cookie = req.cookie(&name(settings, BINDING))?;
    verify(settings, "binding", cookie.value())
}

/// A fresh binding value and the cookie carrying it (lives as long as a login may take).
pub fn new_binding(settings: &Settings) -> (String, Cookie<'static>) {
    let value = random_token(24);
    let cookie = build(settings, BINDING, sign(settings, "binding", &value), settings.tokens.login_ttl);
    (value, cookie)
}

/// The login value of this browser and the cookie to (re)set with it, living as long as a
/// login may take from now. A valid value the browser already holds is kept: one value per
/// browser, not per request, so two sign-ins started in one browser at once (two MCP clients
/// connecting) both complete. Another browser never learns it (`HttpOnly`, random).
pub fn login_binding(req: &HttpRequest, settings: &Settings) -> (String, Cookie<'static>) {
    let value = req
        .cookie(&name(settings, LOGIN))
        .and_then(|c| verify(settings, "login", c.value()))
        .unwrap_or_else(|| random_token(32));
    let cookie = build(settings, LOGIN, sign(settings, "login", &value), settings.tokens.login_ttl);
    (value, cookie)
}

/// Whether the browser that sent `req` holds the login value whose hash is `stored`.
/// No stored hash matches no browser.
pub fn login_matches(req: &HttpRequest, settings: &Settings, stored: Option<&str>) -> bool {
    let Some(stored) = stored else { return false };
    let Some(value) = req.cookie(&name(settings, LOGIN)).and_then(|c| verify(settings, "login", c.value()))
    else {
        return false;
    };
    constant_time_eq(&hash_token(&value), stored)
}

/// The consent form's CSRF token: HMAC over the pending authorization id and the browser
/// binding, so a token is good for one request on one browser only.
pub fn csrf_token(settings: &Settings, pending_id: &str, binding: &str) -> String {
    mac(settings, "csrf", &format!("{pending_id}\n{binding}"))
}

/// Whether `token` is the CSRF token for `pending_id` on the browser that sent `req`.
pub fn csrf_valid(req: &HttpRequest, settings: &Settings, pending_id: &str, token: &str) -> bool {
    binding(req, settings).is_some_and(|b| constant_time_eq(&csrf_token(settings, pending_id, &b), token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn settings(issuer: &str) -> Settings {
        let yaml = format!("session_secret: s3cret\nissuer: \"{issuer}\"\n");
        serde_yaml_settings(&yaml)
    }

    fn serde_yaml_settings(yaml: &str) -> Settings {
        config::Config::builder()
            .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .unwrap_or_else(|e| panic!("test settings: {e}"))
    }

    #[test]
    fn session_round_trips_and_expires() {
        let s = settings("http://127.0.0.1:1");
        let cookie = session_cookie(&s, "dev_alice:x", 1000);
        let req = TestRequest::default().cookie(cookie.clone()).to_http_request();
        assert_eq!(session_user(&req, &s, 1000).as_deref(), Some("dev_alice:x"));
        let late = 1000 + i64::try_from(s.tokens.consent_ttl).unwrap_or(0) + 1;
        assert_eq!(session_user(&req, &s, late), None);
    }

    #[test]
    fn tampered_or_foreign_values_are_refused() {
        let s = settings("http://127.0.0.1:1");
        let good = session_cookie(&s, "dev_alice", 1000);
        let forged = good.value().replacen(
            &URL_SAFE_NO_PAD.encode("dev_alice"),
            &URL_SAFE_NO_PAD.encode("dev_bob"),
            1,
        );
        let req = TestRequest::default().cookie(Cookie::new(SESSION, forged)).to_http_request();
        assert_eq!(session_user(&req, &s, 1000), None);
        // A binding cookie's value is not a session.
        let (_, binding_cookie) = new_binding(&s);
        let req = TestRequest::default()
            .cookie(Cookie::new(SESSION, binding_cookie.value().to_owned()))
            .to_http_request();
        assert_eq!(session_user(&req, &s, 1000), None);
    }

    #[test]
    fn https_cookies_are_secure_host_prefixed() {
        let s = settings("https://gw.example");
        let cookie = session_cookie(&s, "u", 1);
        assert_eq!(cookie.name(), "__Host-mcpgw_session");
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
        assert_eq!(cookie.path(), Some("/"));
        let plain = session_cookie(&settings("http://127.0.0.1:1"), "u", 1);
        assert_eq!(plain.name(), "mcpgw_session");
        assert_eq!(plain.secure(), Some(false));
    }

    #[test]
    fn the_login_value_is_kept_per_browser_and_matched_by_hash() {
        let s = settings("https://gw.example");
        let fresh = TestRequest::default().to_http_request();
        let (value, cookie) = login_binding(&fresh, &s);
        assert_eq!(cookie.name(), "__Host-mcpgw_login");
        assert_eq!((cookie.secure(), cookie.http_only()), (Some(true), Some(true)));
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
        let stored = hash_token(&value);
        let same = TestRequest::default().cookie(cookie.clone()).to_http_request();
        assert_eq!(login_binding(&same, &s).0, value, "kept for a second sign-in");
        assert!(login_matches(&same, &s, Some(&stored)));
        assert!(!login_matches(&same, &s, None), "no stored hash matches nothing");
        assert!(!login_matches(&fresh, &s, Some(&stored)), "no cookie");
        let other = TestRequest::default().cookie(login_binding(&fresh, &s).1).to_http_request();
        assert!(!login_matches(&other, &s, Some(&stored)), "another browser");
        // Another cookie's signed value, or an unsigned one, is not a login value.
        let (_, binding_cookie) = new_binding(&s);
        let foreign = Cookie::new("__Host-mcpgw_login", binding_cookie.value().to_owned());
        let req = TestRequest::default().cookie(foreign).to_http_request();
        assert_ne!(login_binding(&req, &s).0, binding_cookie.value().split('.').next().unwrap_or(""));
        let bare = TestRequest::default().cookie(Cookie::new("__Host-mcpgw_login", value)).to_http_request();
        assert!(!login_matches(&bare, &s, Some(&stored)));
    }

    #[test]
    fn csrf_is_bound_to_browser_and_request() {
        let s = settings("http://127.0.0.1:1");
        let (value, cookie) = new_binding(&s);
        let token = csrf_token(&s, "p1", &value);
        let req = TestRequest::default().cookie(cookie).to_http_request();
        assert!(csrf_valid(&req, &s, "p1", &token));
        assert!(!csrf_valid(&req, &s, "p2", &token));
        let other_browser = TestRequest::default().cookie(new_binding(&s).1).to_http_request();
        assert!(!csrf_valid(&other_browser, &s, "p1", &token));
        let no_cookie = TestRequest::default().to_http_request();
        assert!(!csrf_valid(&no_cookie, &s, "p1", &token));
    }
}
