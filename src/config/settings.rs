//! Typed settings. Field names follow the older gateway's `config.yaml` so its files load
//! unchanged; fields it did not have carry defaults.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_aux::field_attributes::{deserialize_bool_from_anything, deserialize_number_from_string};

use super::access::AccessRule;
use super::clients::{CimdSettings, Clients, RegistrationSettings};
use super::kinds::{ProviderKind, StorageKind, VaultAuth};
use super::limits::{LimitSettings, TrustedProxies};
use super::observability::{AuditSettings, LogSettings, MetricsSettings};

/// Everything the gateway is configured with. `Serialize` (for `check-config`) prints every
/// secret as `[redacted]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
    /// Address to listen on.
    #[serde(default = "default_host")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (tests).
    #[serde(default = "default_port", deserialize_with = "deserialize_number_from_string")]
    pub port: u16,
    /// Public base URL of the gateway; the OAuth `issuer` and the root of every canonical
    /// resource URI. Empty means `http://{host}:{port}` (set after binding).
    #[serde(default)]
    pub issuer: String,
    /// Key for signing cookies and CSRF tokens. The example value is refused unless `debug`.
    /// Empty (the default) is allowed only with memory storage: a random one is generated at
    /// startup, so sessions do not survive a restart.
    #[serde(default = "empty_secret", serialize_with = "redact")]
    pub session_secret: SecretString,
    /// Development mode: relaxes the example-secret and `Origin` checks; never in production.
    #[serde(default, deserialize_with = "deserialize_bool_from_anything")]
    pub debug: bool,
    /// Cross-origin settings for browser-based clients.
    #[serde(default)]
    pub cors: CorsSettings,
    /// Where state lives.
    #[serde(default)]
    pub storage: StorageSettings,
    /// Exactly one upstream identity provider, keyed by kind:
    /// `google`, `github`, `okta`, `custom`, `oidc` or `dev`.
    #[serde(default)]
    pub oauth_providers: BTreeMap<String, ProviderSettings>,
    /// The MCP services behind the gateway, keyed by the id used in `/{id}/mcp`.
    #[serde(default)]
    pub mcp_services: BTreeMap<String, ServiceSettings>,
    /// Who may use the services that have no `access` of their own; none: anyone with an
    /// account at the provider.
    #[serde(default)]
    pub access: Option<AccessRule>,
    /// Token and code lifetimes.
    #[serde(default)]
    pub tokens: TokenSettings,
    /// Actor and worker sizing.
    #[serde(default)]
    pub runtime: RuntimeSettings,
    /// Rate limits per client IP, caps and expiry of what strangers can create.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Reverse proxies in front of the gateway whose `X-Forwarded-For` names the client.
    #[serde(default)]
    pub trusted_proxies: TrustedProxies,
    /// The form of log lines.
    #[serde(default)]
    pub log: LogSettings,
    /// The audit trail.
    #[serde(default)]
    pub audit: AuditSettings,
    /// The Prometheus metrics listener.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Pre-registered clients (machine clients, confidential web apps), keyed by client id.
    #[serde(default)]
    pub clients: Clients,
    /// Enterprise-Managed Authorization: trusted identity providers for ID-JAG grants.
    #[serde(default)]
    pub enterprise: super::EnterpriseSettings,
    /// Client ID Metadata Documents.
    #[serde(default)]
    pub cimd: CimdSettings,
    /// Dynamic client registration.
    #[serde(default)]
    pub registration: RegistrationSettings,
    /// The admin API.
    #[serde(default)]
    pub admin: AdminSettings,
}

/// `admin`: the JSON admin API under `/admin/` (grants and clients), off unless `token` is set.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AdminSettings {
    /// The bearer token the API requires (at least 32 characters).
    #[serde(serialize_with = "redact_opt")]
    pub token: Option<SecretString>,
}

/// CORS, as in the older gateway.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct CorsSettings {
    /// Origins allowed to call the gateway from a browser. `"*"` allows any origin for CORS,
    /// but the `Origin` check of the proxy stays on unless `debug` is set.
    pub allow_origins: Vec<String>,
    /// Whether browsers may send credentials.
    pub allow_credentials: bool,
    /// Methods allowed in CORS requests.
    pub allow_methods: Vec<String>,
    /// Request headers allowed in CORS requests (`"*"` for any).
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts; `WWW-Authenticate` and `Mcp-Session-Id` always are.
    pub expose_headers: Vec<String>,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            allow_origins: Vec::new(),
            allow_credentials: false,
            allow_methods: ["GET", "POST", "DELETE", "OPTIONS"].map(String::from).to_vec(),
            allow_headers: [
                "Authorization",
                "Content-Type",
                "Accept",
                "MCP-Protocol-Version",
                "Mcp-Session-Id",
                "Last-Event-ID",
                "Mcp-Method",
                "Mcp-Name",
            ]
            .map(String::from)
            .to_vec(),
            expose_headers: vec!["WWW-Authenticate".into(), "Mcp-Session-Id".into()],
        }
    }
}

/// Storage backend selection.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct StorageSettings {
    /// `memory`, `redis` or `vault`.
    #[serde(rename = "type")]
    pub kind: StorageKind,
    /// Start on memory (with a warning every minute) when the backend cannot be reached.
    #[serde(deserialize_with = "deserialize_bool_from_anything")]
    pub fallback_to_memory: bool,
    /// Redis connection, when `type: redis`.
    pub redis: RedisSettings,
    /// Vault connection, when `type: vault`.
    pub vault: VaultSettings,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            kind: StorageKind::Memory,
            fallback_to_memory: false,
            redis: RedisSettings::default(),
            vault: VaultSettings::default(),
        }
    }
}

/// Redis connection settings (older gateway's names plus `url` and `key_prefix`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RedisSettings {
    /// Full `redis://` or `rediss://` URL; overrides host/port/password/db/ssl when set.
    #[serde(serialize_with = "redact_url_password")]
    pub url: Option<String>,
    /// Host name.
    pub host: String,
    /// Port.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub port: u16,
    /// Password, if any.
    #[serde(serialize_with = "redact_opt")]
    pub password: Option<SecretString>,
    /// Database number.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub db: i64,
    /// Use TLS.
    #[serde(deserialize_with = "deserialize_bool_from_anything")]
    pub ssl: bool,
    /// Pool size.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub max_connections: u32,
    /// Prefix of every key the gateway writes.
    pub key_prefix: String,
    /// Connect timeout in milliseconds.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub connect_timeout_ms: u64,
    /// Per-command timeout in milliseconds.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub command_timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: None,
            host: "localhost".into(),
            port: 6379,
            password: None,
            db: 0,
            ssl: false,
            max_connections: 20,
            key_prefix: "mcp-gateway:".into(),
            connect_timeout_ms: 2000,
            command_timeout_ms: 2000,
        }
    }
}

/// Vault (KV v2) connection settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct VaultSettings {
    /// Vault address, e.g. `https://vault.example.com:8200`.
    pub url: String,
    /// Token, for `auth_method: token`.
    #[serde(serialize_with = "redact_opt")]
    pub token: Option<SecretString>,
    /// KV v2 mount.
    pub mount_point: String,
    /// Path under the mount where the gateway keeps its entries.
    pub path_prefix: String,
    /// Enterprise namespace, if any.
    pub namespace: Option<String>,
    /// `token` or `approle`.
    pub auth_method: VaultAuth,
    /// AppRole role id.
    pub role_id: Option<String>,
    /// AppRole secret id.
    #[serde(serialize_with = "redact_opt")]
    pub secret_id: Option<SecretString>,
    /// AppRole mount.
    pub approle_mount: String,
    /// Per-request timeout in milliseconds (also bounds the startup check).
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub timeout_ms: u64,
    /// Seconds between sweeps that delete expired entries (KV v2 has no TTL); 0 disables.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub sweep_interval_secs: u64,
}

impl Default for VaultSettings {
    fn default() -> Self {
        VaultSettings {
            url: "http://127.0.0.1:8200".into(),
            token: None,
            mount_point: "secret".into(),
            path_prefix: "mcp-gateway".into(),
            namespace: None,
            auth_method: VaultAuth::Token,
            role_id: None,
            secret_id: None,
            approle_mount: "approle".into(),
            timeout_ms: 5000,
            sweep_interval_secs: 60,
        }
    }
}

/// One upstream identity provider. Which fields matter depends on the kind (the map key).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct ProviderSettings {
    /// Client id registered at the provider.
    pub client_id: String,
    /// Client secret registered at the provider.
    #[serde(serialize_with = "redact_opt")]
    pub client_secret: Option<SecretString>,
    /// Scopes requested upstream.
    pub scopes: Vec<String>,
    /// Authorization endpoint (`custom`; optional override elsewhere).
    pub authorization_url: Option<String>,
    /// Token endpoint (`custom`; optional override elsewhere).
    pub token_url: Option<String>,
    /// Userinfo endpoint (`custom`; optional override elsewhere).
    pub userinfo_url: Option<String>,
    /// OIDC issuer for discovery (`oidc`; also accepted by `okta`).
    pub issuer: Option<String>,
    /// Okta domain, e.g. `dev-123.okta.com` (`okta`).
    pub domain: Option<String>,
    /// The ID token / userinfo claim holding the person's groups (an array of strings or one
    /// string), for `access.groups`; none means `groups`.
    pub groups_claim: Option<String>,
}

/// One MCP service behind the gateway.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServiceSettings {
    /// Display name.
    pub name: String,
    /// Backend URL the proxy forwards `/{id}/mcp` to.
    pub url: String,
    /// The provider kind users of this service log in with; must be the configured one.
    #[serde(default)]
    pub oauth_provider: Option<String>,
    /// Whether a token is required; `false` proxies anonymously.
    #[serde(default = "default_true", deserialize_with = "deserialize_bool_from_anything")]
    pub auth_required: bool,
    /// Scopes this service knows; advertised in its protected-resource metadata.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Milliseconds to wait for the backend's response head.
    #[serde(default = "default_timeout_ms", deserialize_with = "deserialize_number_from_string")]
    pub timeout: u64,
    /// Step-up: scopes needed per MCP method or tool name.
    #[serde(default)]
    pub tool_scopes: BTreeMap<String, Vec<String>>,
    /// Who may use this service, replacing the top-level `access`.
    #[serde(default)]
    pub access: Option<AccessRule>,
    /// Who may call each tool (by name), on top of the service's rule.
    #[serde(default)]
    pub tool_access: BTreeMap<String, AccessRule>,
    /// PEM file of CA certificates trusted for this https backend besides the public roots
    /// (a backend with a certificate from a private CA).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Accept any certificate from this https backend. Development only: refused unless
    /// `debug` is set.
    #[serde(default, deserialize_with = "deserialize_bool_from_anything")]
    pub insecure_skip_verify: bool,
}

/// Lifetimes of what the gateway issues, in seconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct TokenSettings {
    /// Access token lifetime.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub access_token_ttl: u64,
    /// Refresh token lifetime (each rotation starts a new one).
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub refresh_token_ttl: u64,
    /// Window in which presenting a just-rotated refresh token again returns the same new pair
    /// instead of revoking the family.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub refresh_grace: u64,
    /// Authorization code lifetime (at most 600).
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub code_ttl: u64,
    /// How long a started login (consent page, upstream round trip) may take.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub login_ttl: u64,
    /// How long a remembered consent and the browser session cookie last.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub consent_ttl: u64,
    /// The longest a grant (a refresh-token family) lives, however often it is used; then the
    /// person signs in again.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub grant_max_age: u64,
    /// At a refresh this long after the provider was last asked, the gateway asks it again
    /// (refreshes the person's upstream token, or reads the person with it) before issuing;
    /// a refusal ends the grant. 0 turns the re-check off.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub upstream_recheck: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            access_token_ttl: 3600,
            refresh_token_ttl: 30 * 24 * 3600,
            refresh_grace: 10,
            code_ttl: 60,
            login_ttl: 600,
            consent_ttl: 90 * 24 * 3600,
            grant_max_age: 30 * 24 * 3600,
            upstream_recheck: 3600,
        }
    }
}

/// Process sizing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RuntimeSettings {
    /// HTTP worker threads; 0 means one per core.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub workers: usize,
    /// Mailbox capacity of each state actor.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub mailbox_capacity: usize,
    /// Entries kept in the proxy's verified-token cache.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub token_cache_size: usize,
    /// Allow Client ID Metadata Documents on private and loopback addresses (development).
    #[serde(deserialize_with = "deserialize_bool_from_anything")]
    pub allow_private_cimd: bool,
    /// Seconds a stopping gateway drains: it accepts no new connection and `/ready` answers
    /// 503, requests in flight may finish, `GET` event streams end at once and `POST` event
    /// streams shortly before the time is up; then what is left is closed.
    #[serde(deserialize_with = "deserialize_number_from_string")]
    pub shutdown_timeout: u64,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            workers: 0,
            mailbox_capacity: 1024,
            token_cache_size: 10_000,
            allow_private_cimd: false,
            shutdown_timeout: 30,
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    8080
}
fn default_true() -> bool {
    true
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn empty_secret() -> SecretString {
    SecretString::from("")
}

/// What `Serialize` prints instead of a secret. An empty secret prints as empty: that it is
/// unset is worth seeing and reveals nothing.
pub const REDACTED: &str = "[redacted]";

fn redact<S: serde::Serializer>(secret: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    ser.serialize_str(if secret.expose_secret().is_empty() { "" } else { REDACTED })
}

fn redact_opt<S: serde::Serializer>(secret: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => redact(secret, ser),
        None => ser.serialize_none(),
    }
}

/// A `redis://user:password@host` URL with the password replaced; an unparsable URL is hidden
/// whole, since where its password sits is unknown.
fn redact_url_password<S: serde::Serializer>(url: &Option<String>, ser: S) -> Result<S::Ok, S::Error> {
    let Some(raw) = url else { return ser.serialize_none() };
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let hidden = parsed.set_password(Some(REDACTED)).map(|()| parsed.to_string());
            ser.serialize_str(hidden.as_deref().unwrap_or(REDACTED))
        }
        Ok(_) => ser.serialize_str(raw),
        Err(_) => ser.serialize_str(REDACTED),
    }
}

impl Settings {
    /// The one configured upstream provider: its kind and settings. Validation guarantees
    /// exactly one, of a known kind.
    pub fn provider(&self) -> Option<(ProviderKind, &ProviderSettings)> {
        let (kind, provider) = self.oauth_providers.iter().next()?;
        Some((kind.parse().ok()?, provider))
    }

    /// `{issuer}/{service}/mcp`: the canonical resource URI and the `aud` of its tokens.
    pub fn resource_uri(&self, service_id: &str) -> String {
        format!("{}/{}/mcp", self.issuer, service_id)
    }

    /// Whether `uri` is `resource_uri(service_id)`, without building it (checked on every
    /// proxied request).
    pub fn is_resource_uri(&self, uri: &str, service_id: &str) -> bool {
        uri.strip_prefix(self.issuer.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.strip_suffix("/mcp"))
            .is_some_and(|id| id == service_id)
    }

    /// Whether the gateway is served over https (decides `Secure` and `__Host-` cookies).
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_check_agrees_with_the_built_uri() {
        let value = serde_json::json!({ "session_secret": "test-secret-0123456789abcdef0123456789abcdef" });
        let mut s: Settings = serde_json::from_value(value).expect("settings");
        s.issuer = "https://gw.example/base".into();
        assert!(s.is_resource_uri(&s.resource_uri("svc"), "svc"));
        for wrong in [
            "https://gw.example/base/other/mcp",
            "https://gw.example/base/svc/mcp/",
            "https://gw.example/base/svc",
            "https://gw.example/svc/mcp",
            "https://gw.example/basesvc/mcp",
            "https://gw.example/base//svc/mcp",
            "",
        ] {
            assert!(!s.is_resource_uri(wrong, "svc"), "{wrong}");
        }
    }
}
