//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, MCP 2025-11-25,
//! checklist B13): a client identifies itself with an `https` URL as its `client_id`, and the
//! metadata a registration would have given is fetched from that URL.
//!
//! This file holds the rules that need no network: the grammar of a client id URL and the
//! content rules of the document, plus the [`DocumentFetcher`] port through which the
//! registry gets a document (the guarded GET itself is `crate::fetch`). [`cache`] keeps
//! documents as long as their HTTP caching headers allow. The client registry ties them
//! together.
//!
//! Only public clients: a document cannot carry a secret (anyone can read it), so its
//! `token_endpoint_auth_method` must be `none`; `private_key_jwt` is refused too: the gateway
//! verifies client assertions only for the clients of its configuration, whose keys the
//! operator vouches for (`crate::core::machine`).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use url::{Host, Url};

use super::model::ClientMetadata;

pub mod cache;

/// Longest a fetch may take, DNS to last byte.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest document read.
pub const MAX_DOCUMENT: usize = 64 * 1024;

/// A fetched document and how long it may be cached (0: not at all).
#[derive(Debug)]
pub struct Fetched {
    /// The raw body, at most [`MAX_DOCUMENT`] bytes.
    pub body: Bytes,
    /// Seconds the document may be reused, from `Cache-Control` ([`cache::lifetime`]).
    pub cache_for: u64,
}

/// A fetch in flight. Not `Send`: the HTTP client behind it may be bound to its thread.
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Fetched, CimdError>> + 'a>>;

/// How the registry gets a metadata document: a GET of `url` with the guards of draft §8.6
/// (public addresses only unless `allow_private`, no redirects, [`MAX_DOCUMENT`] and
/// [`TIMEOUT`] bounds).
pub trait DocumentFetcher: Send + Sync + 'static {
    /// Fetches `url`.
    fn fetch<'a>(&'a self, url: &'a Url, allow_private: bool) -> FetchFuture<'a>;
}

/// Why a metadata document client could not be used. The text is safe to show to the client:
/// it names the rule, never a resolved address or a response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimdError {
    /// The client id is not an acceptable document URL.
    #[error("client_id URL: {0}")]
    BadUrl(&'static str),
    /// The host is a private, loopback, link-local or otherwise non-public address literal. (A
    /// name resolving to one is reported as [`CimdError::Unreachable`], so the message does
    /// not reveal how internal names resolve.)
    #[error("the client_id host does not resolve to a public address")]
    NotPublic,
    /// DNS, connection or TLS failure (the detail is only logged).
    #[error("the metadata document could not be fetched")]
    Unreachable(String),
    /// The document server answered a redirect.
    #[error("the metadata document server answered a redirect; redirects are not followed")]
    Redirect,
    /// Any status other than 200.
    #[error("the metadata document server answered HTTP {0}")]
    Status(u16),
    /// Not `application/json` (or `+json`).
    #[error("the metadata document is not served as JSON")]
    NotJson,
    /// Over [`MAX_DOCUMENT`].
    #[error("the metadata document is larger than 64 KiB")]
    TooLarge,
    /// Slower than [`TIMEOUT`].
    #[error("the metadata document took too long to fetch")]
    Timeout,
    /// The document breaks a content rule.
    #[error("metadata document: {0}")]
    Invalid(String),
}

/// Whether `client_id` is meant as a metadata document URL. Registered ids are base64url and
/// never contain `:`, so anything that looks like an http(s) URL is one (an `http` URL is
/// then refused by [`parse_client_id`] unless loopback is allowed).
pub fn is_client_id_url(client_id: &str) -> bool {
    let lower = client_id.get(..8).unwrap_or(client_id).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Checks the client id URL (draft §3): `https`, a host, a path, no fragment, no user info,
/// no `.` or `..` segments. `allow_private` (the `runtime.allow_private_cimd` development
/// switch) also accepts `http` on loopback so tests can serve documents without TLS.
pub fn parse_client_id(client_id: &str, allow_private: bool) -> Result<Url, CimdError> {
    if client_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CimdError::BadUrl("must not contain whitespace"));
    }
    // The URL parser reads `\` as `/` in https URLs, so `a\..\c.json` would pass the dot-segment
    // check below and then be fetched as `/c.json`: one document under many client ids.
    if client_id.contains('\\') {
        return Err(CimdError::BadUrl("must not contain a backslash"));
    }
    // Dot segments are checked on the raw text: the parser would silently remove them.
    let after_scheme = client_id.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    let raw_path = after_scheme.find('/').map(|i| &after_scheme[i..]).unwrap_or("");
    let raw_path = raw_path.split(['?', '#']).next().unwrap_or("");
    if raw_path.split('/').any(|seg| {
        matches!(seg.to_ascii_lowercase().as_str(), "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e.")
    }) {
        return Err(CimdError::BadUrl("must not contain . or .. path segments"));
    }
    let url = Url::parse(client_id).map_err(|_| CimdError::BadUrl("not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private && is_loopback_host(&url) => {}
        _ => return Err(CimdError::BadUrl("must use https")),
    }
    if url.host().is_none() {
        return Err(CimdError::BadUrl("must have a host"));
    }
    if url.fragment().is_some() || client_id.contains('#') {
        return Err(CimdError::BadUrl("must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CimdError::BadUrl("must not contain credentials"));
    }
    if url.path().is_empty() || url.path() == "/" {
        return Err(CimdError::BadUrl("must have a path"));
    }
    Ok(url)
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The host (with an explicit port) of a client id URL, as the consent page shows it next to
/// the document's `client_name`: the name is the client's claim, the host is what vouches.
pub fn display_host(client_id: &str) -> Option<String> {
    let url = Url::parse(client_id).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// Parses a fetched document into client metadata, checking what is specific to documents:
/// a JSON object, `client_id` equal to the URL it was fetched from (byte for byte, draft §4),
/// no `client_secret`, and `token_endpoint_auth_method` `none`. The registration rules
/// (redirect URIs, grant types, ...) are the registry's, applied afterwards.
pub fn parse_document(body: &[u8], client_id: &str) -> Result<ClientMetadata, CimdError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| CimdError::Invalid("not valid JSON".into()))?;
    let object = value.as_object().ok_or_else(|| CimdError::Invalid("not a JSON object".into()))?;
    match object.get("client_id").and_then(serde_json::Value::as_str) {
        Some(id) if id == client_id => {}
        Some(_) => {
            return Err(CimdError::Invalid("client_id differs from the URL it was fetched from".into()))
        }
        None => return Err(CimdError::Invalid("client_id is missing".into())),
    }
    if object.contains_key("client_secret") || object.contains_key("client_secret_expires_at") {
        return Err(CimdError::Invalid("a public document must not contain a client_secret".into()));
    }
    if !object.contains_key("redirect_uris") {
        return Err(CimdError::Invalid("redirect_uris is required".into()));
    }
    let meta: ClientMetadata = serde_json::from_value(value)
        .map_err(|e| CimdError::Invalid(format!("wrong shape: {}", first_words(&e.to_string()))))?;
    match meta.token_endpoint_auth_method.as_deref() {
        None | Some("none") => Ok(meta),
        Some(_) => Err(CimdError::Invalid(
            "token_endpoint_auth_method must be none (metadata document clients are public)".into(),
        )),
    }
}

/// serde's message names the field and the expected type; cap it anyway.
fn first_words(s: &str) -> &str {
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_grammar() {
        for ok in [
            "https://claude.ai/oauth/client.json",
            "https://app.example:8443/c",
            "https://app.example/c?v=1",
            "https://app.example/a/b/",
        ] {
            assert!(parse_client_id(ok, false).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("https://app.example", "must have a path"),
            ("https://app.example/", "must have a path"),
            ("https://app.example/c#frag", "must not contain a fragment"),
            ("https://user:pw@app.example/c", "must not contain credentials"),
            ("https://user@app.example/c", "must not contain credentials"),
            ("https://app.example/a/../c", "must not contain . or .. path segments"),
            ("https://app.example/./c", "must not contain . or .. path segments"),
            ("https://app.example/a/%2E%2E/c", "must not contain . or .. path segments"),
            ("https://app.example/a/..", "must not contain . or .. path segments"),
            ("http://app.example/c", "must use https"),
            ("http://127.0.0.1:8000/c", "must use https"),
            ("https://app.example/ c", "must not contain whitespace"),
            ("https://", "not an absolute URL"),
        ] {
            assert_eq!(parse_client_id(bad, false), Err(CimdError::BadUrl(why)), "{bad}");
        }
        // The development switch opens http on loopback only.
        assert!(parse_client_id("http://127.0.0.1:8000/c", true).is_ok());
        assert!(parse_client_id("http://localhost:8000/c", true).is_ok());
        assert!(parse_client_id("http://app.example/c", true).is_err());
    }

    #[test]
    fn only_url_shaped_ids_are_documents() {
        assert!(is_client_id_url("https://a.example/c"));
        assert!(is_client_id_url("HTTP://a.example/c"));
        assert!(!is_client_id_url("abcDEF123_-"));
        assert!(!is_client_id_url("é"));
    }

    #[test]
    fn display_host_keeps_an_explicit_port() {
        assert_eq!(display_host("https://claude.ai/oauth/client.json").as_deref(), Some("claude.ai"));
        assert_eq!(display_host("http://127.0.0.1:4000/c").as_deref(), Some("127.0.0.1:4000"));
        assert_eq!(display_host("not a url"), None);
    }

    #[test]
    fn document_rules() {
        let id = "https://app.example/c.json";
        let doc = |extra: &str| {
            format!(r#"{{"client_id": "{id}", "redirect_uris": ["https://app.example/cb"]{extra}}}"#)
        };
        let meta = parse_document(doc(r#", "client_name": "App""#).as_bytes(), id).unwrap();
        assert_eq!(meta.client_name.as_deref(), Some("App"));
        assert!(parse_document(doc(r#", "token_endpoint_auth_method": "none""#).as_bytes(), id).is_ok());
        for bad in [
            doc(r#", "token_endpoint_auth_method": "client_secret_basic""#),
            doc(r#", "token_endpoint_auth_method": "private_key_jwt""#),
            doc(r#", "client_secret": "s""#),
            doc(r#", "redirect_uris": "https://app.example/cb""#),
            format!(r#"{{"client_id": "{id}/", "redirect_uris": []}}"#),
            format!(r#"{{"client_id": "{id}"}}"#),
            r#"{"redirect_uris": []}"#.to_owned(),
            "[]".to_owned(),
            "nope".to_owned(),
        ] {
            assert!(matches!(parse_document(bad.as_bytes(), id), Err(CimdError::Invalid(_))), "{bad}");
        }
    }
}
