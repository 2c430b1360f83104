//! The answers the browser-facing endpoints (authorize, consent, callback) share: a redirect
//! back to the client, an RFC 6749 §4.1.2.1 error redirect, and the error page shown when
//! redirecting is not safe or not useful.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;

use crate::config::Settings;
use crate::core::OAuthError;
use crate::web::error_page;

/// A 302 to `redirect_uri` with `params` appended to its query (existing query kept).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> HttpResponse {
    let location = match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.to_string()
        }
        // Validated at registration and on this request; never expected.
        Err(_) => {
            return error_page(StatusCode::BAD_REQUEST, "Invalid redirect", "The redirect URI is invalid.")
        }
    };
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The error page for a failure shown to the browser itself. A storage outage is a 503 with
/// `Retry-After: 5`, as at the JSON endpoints: the person can retry the same step shortly.
pub fn failure_page(err: &OAuthError) -> HttpResponse {
    use actix_web::ResponseError as _;
    if !matches!(err, OAuthError::TemporarilyUnavailable(_)) {
        return error_page(err.status_code(), "Sign-in is unavailable", err.description());
    }
    let mut res = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is temporarily unavailable",
        "The gateway cannot reach its storage right now. Wait a few seconds and try again; if \
         the sign-in has expired by then, start again from your application.",
    );
    res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    res
}

/// The page shown instead of an error redirect when the client's redirect URI is not vouched
/// for (RFC 9700 §4.11.2): it names the OAuth error so the person (or the developer) can tell
/// what was wrong. A storage outage still gets the retryable page.
pub fn error_page_naming(err: &OAuthError) -> HttpResponse {
    use actix_web::ResponseError as _;
    if matches!(err, OAuthError::TemporarilyUnavailable(_)) {
        return failure_page(err);
    }
    let message = format!(
        "The application's sign-in request was refused ({}: {}). Start again from your application; \
         if this keeps happening, tell its developer.",
        err.code(),
        err.description()
    );
    error_page(err.status_code(), "Invalid authorization request", &message)
}

/// An RFC 6749 §4.1.2.1 error response: `error`, `error_description`, `state`, `iss`. A storage
/// outage is the exception: it gets the retryable 503 page ([`failure_page`]) instead, since
/// the browser can retry the step in place while a redirect would end the client's flow.
pub fn error_redirect(
    settings: &Settings,
    redirect_uri: &str,
    err: &OAuthError,
    state: Option<&str>,
) -> HttpResponse {
    if matches!(err, OAuthError::TemporarilyUnavailable(_)) {
        return failure_page(err);
    }
    let mut params = vec![("error", err.code()), ("error_description", err.description())];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", settings.issuer.as_str()));
    redirect_with(redirect_uri, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_a_retryable_page_not_a_redirect() {
        let s: Settings =
            serde_json::from_value(serde_json::json!({ "session_secret": "s", "issuer": "http://gw" }))
                .unwrap_or_else(|e| panic!("settings: {e}"));
        let outage = OAuthError::TemporarilyUnavailable("storage backend unavailable".into());
        for res in [failure_page(&outage), error_redirect(&s, "http://127.0.0.1/cb", &outage, Some("st"))] {
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(res.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"5"[..]));
            assert!(res.headers().get(header::LOCATION).is_none());
            let html = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            assert!(html.is_some_and(|t| t.starts_with("text/html")), "{html:?}");
        }
        let page = error_page_naming(&outage);
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE, "an outage stays retryable");
        let unsupported = OAuthError::UnsupportedResponseType("only code".into());
        let page = error_page_naming(&unsupported);
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        assert!(page.headers().get(header::LOCATION).is_none());
        let denied = OAuthError::AccessDenied("no".into());
        let res = error_redirect(&s, "http://127.0.0.1/cb", &denied, Some("st"));
        assert_eq!(res.status(), StatusCode::FOUND, "other errors still go back to the client");
        assert!(res.headers().get(header::RETRY_AFTER).is_none());
        assert!(failure_page(&denied).headers().get(header::RETRY_AFTER).is_none());
    }
}
