//! Checks of the configured `clients` and of the `cimd` and `registration` switches. A client
//! that could never authenticate, or that names a service or grant the gateway does not
//! have, stops startup instead of failing at its first token request.

use secrecy::ExposeSecret;
use url::Url;

use super::{check_url, ConfigError};
use crate::config::{ClientSettings, Settings};

/// Grant types a configured client may list.
pub const CLIENT_GRANT_TYPES: [&str; 4] = [
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
];

/// Client authentication methods a configured client may use.
pub const CLIENT_AUTH_METHODS: [&str; 3] = ["private_key_jwt", "client_secret_basic", "client_secret_post"];

/// Longest configured client id.
const MAX_ID_LEN: usize = 200;

/// Every configured client, then the host lists.
pub fn check_clients(settings: &Settings) -> Result<(), ConfigError> {
    for (id, client) in &settings.clients {
        check_client(settings, id, client)?;
    }
    check_hosts("cimd.allowed_domains", &settings.cimd.allowed_domains)?;
    check_hosts("registration.allowed_redirect_hosts", &settings.registration.allowed_redirect_hosts)
}

fn check_client(settings: &Settings, id: &str, client: &ClientSettings) -> Result<(), ConfigError> {
    let key = format!("clients.{id}");
    // Registered ids are base64url and metadata document ids are URLs: an id with only these
    // characters and no `:` can be neither, so nobody can register or present it.
    if id.is_empty()
        || id.len() > MAX_ID_LEN
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ConfigError::new(key, "a client id may contain only letters, digits, '-', '_' and '.'"));
    }
    if client.name.trim().is_empty() {
        return Err(ConfigError::new(format!("{key}.name"), "is required (it names the client to backends)"));
    }
    for grant in &client.grant_types {
        if !CLIENT_GRANT_TYPES.contains(&grant.as_str()) {
            return Err(ConfigError::new(
                format!("{key}.grant_types"),
                format!("unknown grant type {grant:?} (expected {})", CLIENT_GRANT_TYPES.join(", ")),
            ));
        }
    }
    check_auth(settings, &key, client)?;
    check_redirects(&key, client)?;
    if client.services.is_empty() {
        return Err(ConfigError::new(format!("{key}.services"), "names no service"));
    }
    for service in &client.services {
        if !settings.mcp_services.contains_key(service) {
            return Err(ConfigError::new(
                format!("{key}.services"),
                format!("names {service:?}, which is not in mcp_services"),
            ));
        }
    }
    if client.scopes.iter().any(|s| s.is_empty() || s.chars().any(char::is_whitespace)) {
        return Err(ConfigError::new(
            format!("{key}.scopes"),
            "scopes must be non-empty and contain no spaces",
        ));
    }
    Ok(())
}

fn check_auth(settings: &Settings, key: &str, client: &ClientSettings) -> Result<(), ConfigError> {
    let method = client.token_endpoint_auth_method.as_str();
    let field = format!("{key}.token_endpoint_auth_method");
    if !CLIENT_AUTH_METHODS.contains(&method) {
        return Err(ConfigError::new(
            field,
            format!(
                "must be one of {} (configured clients are confidential)",
                CLIENT_AUTH_METHODS.join(", ")
            ),
        ));
    }
    let secret = client.client_secret.as_ref().map(|s| s.expose_secret().trim().is_empty());
    if method == "private_key_jwt" {
        match (&client.jwks, &client.jwks_uri) {
            (None, None) => {
                return Err(ConfigError::new(field, "private_key_jwt needs jwks or jwks_uri; both are unset"))
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(format!("{key}.jwks"), "set jwks or jwks_uri, not both"))
            }
            (Some(jwks), None) => check_inline_jwks(key, jwks)?,
            (None, Some(uri)) => check_jwks_uri(settings, key, uri)?,
        }
        if secret.is_some() {
            return Err(ConfigError::new(format!("{key}.client_secret"), "is not used with private_key_jwt"));
        }
        return Ok(());
    }
    if secret.unwrap_or(true) {
        return Err(ConfigError::new(
            format!("{key}.client_secret"),
            format!("{method} needs a client_secret (an unset ${{VAR}} expands to empty)"),
        ));
    }
    if client.jwks.is_some() || client.jwks_uri.is_some() {
        return Err(ConfigError::new(format!("{key}.jwks"), format!("is not used with {method}")));
    }
    Ok(())
}

pub(super) fn check_inline_jwks(key: &str, jwks: &serde_json::Value) -> Result<(), ConfigError> {
    let parsed: Result<jsonwebtoken::jwk::JwkSet, _> = serde_json::from_value(jwks.clone());
    match parsed {
        Ok(set) if !set.keys.is_empty() => Ok(()),
        Ok(_) => Err(ConfigError::new(format!("{key}.jwks"), "holds no key")),
        Err(e) => Err(ConfigError::new(format!("{key}.jwks"), format!("is not a JWK Set ({e})"))),
    }
}

/// `https`; plain `http` only on loopback with `runtime.allow_private_cimd` (tests, development).
pub(super) fn check_jwks_uri(settings: &Settings, key: &str, uri: &str) -> Result<(), ConfigError> {
    let field = format!("{key}.jwks_uri");
    check_url(&field, uri)?;
    let url = Url::parse(uri.trim()).map_err(|e| ConfigError::new(&field, e.to_string()))?;
    if url.scheme() != "https" && !settings.runtime.allow_private_cimd {
        return Err(ConfigError::new(field, "must be https (http only with runtime.allow_private_cimd)"));
    }
    Ok(())
}

fn check_redirects(key: &str, client: &ClientSettings) -> Result<(), ConfigError> {
    let wants_code = client.grant_types.iter().any(|g| g == "authorization_code");
    if wants_code && client.redirect_uris.is_empty() {
        return Err(ConfigError::new(
            format!("{key}.redirect_uris"),
            "authorization_code needs redirect_uris",
        ));
    }
    if !wants_code && !client.redirect_uris.is_empty() {
        return Err(ConfigError::new(
            format!("{key}.redirect_uris"),
            "are used only with the authorization_code grant",
        ));
    }
    if client.grant_types.iter().any(|g| g == "refresh_token") && !wants_code {
        return Err(ConfigError::new(format!("{key}.grant_types"), "refresh_token needs authorization_code"));
    }
    for uri in &client.redirect_uris {
        // The registration rules (https, loopback http, private-use schemes) apply again when
        // the registry loads the client; here only what needs no knowledge of them.
        let parsed = Url::parse(uri.trim())
            .map_err(|e| ConfigError::new(format!("{key}.redirect_uris"), format!("{uri:?}: {e}")))?;
        if parsed.fragment().is_some() {
            return Err(ConfigError::new(format!("{key}.redirect_uris"), "must not contain a fragment"));
        }
    }
    Ok(())
}

fn check_hosts(key: &str, hosts: &[String]) -> Result<(), ConfigError> {
    for host in hosts {
        let bare = host.trim().strip_prefix("*.").unwrap_or(host.trim());
        if bare.is_empty() || bare.contains(['/', ':', '*', ' ', '@']) {
            return Err(ConfigError::new(key, format!("{host:?} is not a host name or *.suffix")));
        }
    }
    Ok(())
}

/// `enterprise.id_jag.trusted_issuers`: each an http(s) issuer named once, with exactly one of
/// `jwks_uri` (held to the rules of a client's) and an inline `jwks`.
pub fn check_trusted_issuers(settings: &Settings) -> Result<(), ConfigError> {
    let mut seen: Vec<&str> = Vec::new();
    for (i, trusted) in settings.enterprise.id_jag.trusted_issuers.iter().enumerate() {
        let key = format!("enterprise.id_jag.trusted_issuers[{i}]");
        check_url(&format!("{key}.issuer"), &trusted.issuer)?;
        if seen.contains(&trusted.issuer.as_str()) {
            return Err(ConfigError::new(
                format!("{key}.issuer"),
                format!("{} is listed twice", trusted.issuer),
            ));
        }
        seen.push(&trusted.issuer);
        match (&trusted.jwks, &trusted.jwks_uri) {
            (None, None) => return Err(ConfigError::new(key, "needs jwks or jwks_uri; both are unset")),
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(format!("{key}.jwks"), "set jwks or jwks_uri, not both"))
            }
            (Some(jwks), None) => check_inline_jwks(&key, jwks)?,
            (None, Some(uri)) => check_jwks_uri(settings, &key, uri)?,
        }
    }
    Ok(())
}
