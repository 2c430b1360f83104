//! `enterprise:` — Enterprise-Managed Authorization (MCP authorization extension, 2026-06-18):
//! the identity providers whose Identity Assertion JWT Authorization Grants (ID-JAG) the token
//! endpoint accepts.

use serde::{Deserialize, Serialize};

/// Enterprise settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct EnterpriseSettings {
    /// Identity Assertion JWT Authorization Grants.
    pub id_jag: IdJagSettings,
}

/// Which ID-JAGs are accepted.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct IdJagSettings {
    /// The enterprise identity providers trusted to vouch for people; none: the grant is off.
    pub trusted_issuers: Vec<TrustedIssuer>,
}

/// One trusted identity provider.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TrustedIssuer {
    /// Its issuer identifier, exactly as in the `iss` of its assertions.
    pub issuer: String,
    /// Its JWK Set URL (fetched like a metadata document, cached per `Cache-Control`).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Its public keys written here instead (`{ keys: [...] }`).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
}
