//! Small pieces every HTTP handler shares: extractor error handling (style guide item 8),
//! HTML pages rendered from `static/` templates with escaping, and security headers.

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::core::OAuthError;

pub mod error;
pub mod limits;
pub mod metrics;
pub mod request_id;

/// Makes form, JSON and query parse failures `invalid_request` JSON instead of actix's text.
pub fn configure_extractors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::FormConfig::default().limit(64 * 1024).error_handler(extractor_error))
        .app_data(web::JsonConfig::default().limit(64 * 1024).error_handler(extractor_error))
        .app_data(web::QueryConfig::default().error_handler(extractor_error));
}

fn extractor_error(err: impl std::fmt::Display, _req: &HttpRequest) -> actix_web::Error {
    log::debug!("rejected request body or query: {err}");
    OAuthError::InvalidRequest(format!("malformed request: {}", first_line(&err.to_string()))).into()
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("");
    // Parser messages name fields, never values; still, keep them short.
    match line.char_indices().nth(160) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Fills `{{name}}` placeholders in `template`, escaping each value. One pass over the
/// template: text inside a value is never taken for a placeholder. Unknown placeholders stay.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            rest = &rest[start..];
            break;
        };
        let name = &after[..end];
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(&html_escape(value)),
            None => out.push_str(&rest[start..start + 4 + end]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The policy of the gateway's own pages (`static/*.html`). They load one stylesheet
/// (`/static/style.css`), no script, no inline style and no image, so everything else is
/// `'none'`; `base-uri 'none'` keeps an injected `<base>` from moving the relative form and
/// stylesheet URLs. `form-action` is wider than `'self'` on purpose: browsers check it on every
/// redirect after a form post too, and the consent and dev-login forms end in redirects to the
/// upstream provider and to the client's redirect URI (https, or http on loopback).
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'";

/// An HTML response that cannot be framed or cached.
pub fn html_page(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

/// The error page (`static/error.html`): for failures that must not redirect, such as an
/// unknown client or an unregistered redirect URI.
pub fn error_page(status: actix_web::http::StatusCode, title: &str, message: &str) -> HttpResponse {
    let body = render(include_str!("../../static/error.html"), &[("title", title), ("message", message)]);
    html_page(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn render_is_one_pass() {
        let out = render("{{a}} {{b}} {{c}}", &[("a", "{{b}}"), ("b", "x")]);
        assert_eq!(out, "{{b}} x {{c}}");
        assert_eq!(render("tail {{open", &[]), "tail {{open");
    }

    #[test]
    fn pages_need_nothing_the_policy_blocks() {
        let pages = [
            include_str!("../../static/consent.html"),
            include_str!("../../static/dev-login.html"),
            include_str!("../../static/error.html"),
            include_str!("../../static/index.html"),
        ];
        for page in pages {
            assert!(page.contains(r#"<link rel="stylesheet" href="/static/style.css">"#));
            for blocked in ["<script", " style=", "<style", "<img", "<iframe", "<base", "javascript:"] {
                assert!(!page.contains(blocked), "{blocked} would be blocked by {PAGE_CSP}");
            }
            let inline_handler = page.match_indices(" on").any(|(i, _)| {
                let rest = &page[i + 3..];
                let name = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
                name > 0 && rest[name..].starts_with('=')
            });
            assert!(!inline_handler, "an inline event handler would be blocked by {PAGE_CSP}");
            let forms = page.matches("<form").count();
            assert_eq!(forms, page.matches(r#"action="/oauth/"#).count(), "forms post to the gateway");
        }
        assert!(!include_str!("../../static/style.css").contains("url("), "no image or font loads");
    }

    #[test]
    fn render_escapes_values() {
        assert_eq!(render("<p>{{x}}</p>", &[("x", "<b>")]), "<p>&lt;b&gt;</p>");
    }
}
