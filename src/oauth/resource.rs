//! RFC 8707 `resource` handling: normalization and mapping to a service.
//!
//! Clients differ in small ways (an upper-case host, a trailing slash, a default port), so a
//! resource is compared after normalization; the token's `aud` is always the canonical form
//! `{issuer}/{service}/mcp`.

use url::Url;

use crate::config::Settings;

/// Normalizes an absolute `http(s)` URI: lower-case scheme and host (the `url` crate does),
/// default port dropped, trailing slashes of the path removed. `None` for anything else,
/// including URIs with a fragment (RFC 8707 §2).
pub fn normalize(uri: &str) -> Option<String> {
    let url = Url::parse(uri.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() || url.host_str().is_none() {
        return None;
    }
    let mut out = format!("{}://{}", url.scheme(), url.host_str()?);
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path().trim_end_matches('/'));
    if let Some(q) = url.query() {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

/// The id of the service whose canonical URI equals `resource` after normalization.
pub fn service_for(settings: &Settings, resource: &str) -> Option<String> {
    let wanted = normalize(resource)?;
    settings
        .mcp_services
        .keys()
        .find(|id| normalize(&settings.resource_uri(id)).as_deref() == Some(wanted.as_str()))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tolerates_case_trailing_slash_and_default_port() {
        let canonical = normalize("http://gw.example:8080/svc/mcp");
        assert_eq!(canonical.as_deref(), Some("http://gw.example:8080/svc/mcp"));
        assert_eq!(normalize("HTTP://GW.Example:8080/svc/mcp/"), canonical);
        assert_eq!(normalize("https://gw.example:443/svc/mcp"), normalize("https://gw.example/svc/mcp"));
        assert_ne!(normalize("http://gw.example:8080/SVC/mcp"), canonical, "paths stay case-sensitive");
    }

    #[test]
    fn refuses_non_http_and_fragments() {
        assert_eq!(normalize("urn:x:y"), None);
        assert_eq!(normalize("https://gw/svc/mcp#frag"), None);
        assert_eq!(normalize("relative/path"), None);
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent(host in "[a-zA-Z]{1,12}(\\.[a-zA-Z]{1,5})?", path in "(/[a-zA-Z0-9]{1,6}){0,3}/?", port in proptest::option::of(1u16..)) {
            let uri = match port { Some(p) => format!("https://{host}:{p}{path}"), None => format!("https://{host}{path}") };
            let once = normalize(&uri).expect("valid");
            prop_assert_eq!(normalize(&once), Some(once.clone()));
            prop_assert!(!once.ends_with('/') || once.ends_with("://"));
            prop_assert_eq!(normalize(&uri.to_uppercase().replacen("HTTPS", "https", 1)).map(|s| s.to_lowercase()), Some(once.to_lowercase()));
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = normalize(&s);
        }
    }
}
