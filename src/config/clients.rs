//! Settings of the clients the operator configures (machine clients and confidential web
//! apps known without registration), and the switches that say which self-service clients the
//! gateway accepts: Client ID Metadata Documents (`cimd`) and dynamic registration
//! (`registration`).

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_aux::field_attributes::deserialize_bool_from_anything;

/// One pre-registered client, keyed by its `client_id` in `clients`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ClientSettings {
    /// Display name: the consent page, `x-user-name` of its machine tokens, the audit trail.
    pub name: String,
    /// `client_credentials`, `authorization_code`, `refresh_token`; default
    /// `[client_credentials]`.
    pub grant_types: Vec<String>,
    /// `private_key_jwt`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// Where the client's public keys are (`private_key_jwt`): fetched with the same guards as
    /// metadata documents, cached, fetched again for an unknown `kid`.
    pub jwks_uri: Option<String>,
    /// The client's public keys inline (`private_key_jwt`), a JWK Set: `{keys: [...]}`.
    pub jwks: Option<serde_json::Value>,
    /// The secret of the `client_secret_*` methods; held in memory only as a keyed hash.
    #[serde(serialize_with = "redact_opt")]
    pub client_secret: Option<SecretString>,
    /// Redirect URIs, for `authorization_code`.
    pub redirect_uris: Vec<String>,
    /// Ids of the services (`mcp_services`) the client may get tokens for.
    pub services: Vec<String>,
    /// Scopes the client may be granted (at most); empty means any scope of its services.
    pub scopes: Vec<String>,
}

/// `cimd`: Client ID Metadata Documents.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct CimdSettings {
    /// Accept `https` client ids naming a metadata document (and advertise it).
    #[serde(deserialize_with = "deserialize_bool_from_anything")]
    pub enabled: bool,
    /// Hosts metadata documents may live on: an exact host, or `*.example.com` for any
    /// subdomain. Empty: any public host.
    pub allowed_domains: Vec<String>,
}

impl Default for CimdSettings {
    fn default() -> Self {
        CimdSettings { enabled: true, allowed_domains: Vec::new() }
    }
}

/// `registration`: RFC 7591 dynamic client registration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RegistrationSettings {
    /// Serve `POST /oauth/register` (and advertise `registration_endpoint`).
    #[serde(deserialize_with = "deserialize_bool_from_anything")]
    pub enabled: bool,
    /// Hosts registered `http(s)` redirect URIs may point at (exact, or `*.suffix`). Empty:
    /// any. Loopback redirects (native apps, RFC 8252) and private-use schemes are always
    /// accepted: they never leave the person's machine.
    pub allowed_redirect_hosts: Vec<String>,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        RegistrationSettings { enabled: true, allowed_redirect_hosts: Vec::new() }
    }
}

/// Whether `host` is listed in `patterns`: equal ignoring case, or under a `*.suffix` entry
/// (`*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`).
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.trim().to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => host == p,
        }
    })
}

/// A secret as `check-config` prints it: `[redacted]` (the value of `settings::REDACTED`,
/// repeated here so this file and `settings.rs` do not import each other).
fn redact_opt<S: serde::Serializer>(secret: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    match secret {
        Some(s) if !s.expose_secret().is_empty() => ser.serialize_str("[redacted]"),
        Some(_) => ser.serialize_str(""),
        None => ser.serialize_none(),
    }
}

/// The configured clients, by id.
pub type Clients = BTreeMap<String, ClientSettings>;

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn hosts_match_exactly_or_by_wildcard_suffix() {
        let list = vec!["app.example".to_owned(), "*.corp.example".to_owned()];
        assert!(host_allowed(&list, "app.example"));
        assert!(host_allowed(&list, "APP.example."));
        assert!(host_allowed(&list, "a.corp.example"));
        assert!(host_allowed(&list, "a.b.corp.example"));
        assert!(!host_allowed(&list, "corp.example"));
        assert!(!host_allowed(&list, "evilcorp.example"));
        assert!(!host_allowed(&list, "app.example.evil"));
        assert!(!host_allowed(&[], "app.example"));
    }
}
