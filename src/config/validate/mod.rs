//! Validation of loaded [`Settings`]: a bad configuration stops startup with one line that
//! names the key and the problem, instead of failing later at the first request.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use url::{Host, Url};

mod access;

use super::effective::effective_issuer;
use super::{ProviderKind, ProviderSettings, ServiceSettings, Settings, StorageKind, VaultAuth};

/// A configuration problem: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error: {key}: {problem}")]
pub struct ConfigError {
    /// Dotted path of the offending key (`oauth_providers.google.client_id`), or the file.
    pub key: String,
    /// What is wrong, in one line.
    pub problem: String,
}

impl ConfigError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        // One line, always: a multi-line cause (a YAML parser's snippet) would break log lines.
        let problem = problem.into().split_whitespace().collect::<Vec<_>>().join(" ");
        ConfigError { key: key.into(), problem }
    }
}

/// First path segments the gateway serves itself; a service with such an id would be shadowed.
pub const RESERVED_SERVICE_IDS: [&str; 8] =
    ["oauth", ".well-known", "services", "health", "static", "authorize", "token", "register"];

/// Session secrets published in examples; refused unless `debug: true`.
pub const EXAMPLE_SECRETS: [&str; 3] =
    ["your-dev-secret-change-in-production", "production-secret-key", "change-me"];

/// Shortest session secret accepted outside `debug`.
pub const MIN_SECRET_LEN: usize = 32;

/// Longest authorization code lifetime allowed (seconds; OAuth 2.1 recommends ten minutes).
pub const MAX_CODE_TTL: u64 = 600;

/// Checks everything startup relies on. Returns the first problem found.
pub fn validate(settings: &Settings) -> Result<(), ConfigError> {
    check_storage(settings)?;
    check_session_secret(settings)?;
    check_listen(settings)?;
    check_metrics(settings)?;
    check_admin(settings)?;
    let kind = check_provider(settings)?;
    check_issuer_is_https(settings)?;
    check_services(settings, kind.as_str())?;
    access::check(settings, kind)?;
    clients::check_clients(settings)?;
    clients::check_trusted_issuers(settings)?;
    check_tokens(settings)
}

fn check_listen(settings: &Settings) -> Result<(), ConfigError> {
    if settings.host.trim().is_empty() {
        return Err(ConfigError::new("host", "must not be empty"));
    }
    if !settings.issuer.trim().is_empty() {
        check_url("issuer", &settings.issuer)?;
        if settings.issuer.contains('?') || settings.issuer.contains('#') {
            return Err(ConfigError::new("issuer", "must not contain a query or fragment (RFC 8414)"));
        }
    }
    Ok(())
}

/// `metrics.listen` is an `IP:port` to bind, and not the gateway's own port on its host.
fn check_metrics(settings: &Settings) -> Result<(), ConfigError> {
    let Some(listen) = settings.metrics.listen.as_deref() else { return Ok(()) };
    let addr: std::net::SocketAddr = listen.trim().parse().map_err(|_| {
        ConfigError::new(
            "metrics.listen",
            format!("'{listen}' is not an IP:port address (e.g. 127.0.0.1:9464)"),
        )
    })?;
    if addr.port() == settings.port && addr.ip().to_string() == settings.host {
        return Err(ConfigError::new("metrics.listen", "must differ from the gateway's own host and port"));
    }
    Ok(())
}

/// `admin.token`, when set, is a real secret: the API it opens revokes anyone's access.
fn check_admin(settings: &Settings) -> Result<(), ConfigError> {
    let Some(token) = &settings.admin.token else { return Ok(()) };
    let token = token.expose_secret();
    if token.trim().chars().count() < MIN_SECRET_LEN {
        return Err(ConfigError::new(
            "admin.token",
            format!("is shorter than {MIN_SECRET_LEN} characters (e.g. openssl rand -base64 48)"),
        ));
    }
    if EXAMPLE_SECRETS.contains(&token) || token == settings.session_secret.expose_secret() {
        return Err(ConfigError::new("admin.token", "must be a secret of its own"));
    }
    Ok(())
}

/// The issuer in use, configured or computed from host and port, is `https`, except on
/// loopback or with `debug`: tokens, cookies and the upstream callback travel through it.
fn check_issuer_is_https(settings: &Settings) -> Result<(), ConfigError> {
    if settings.debug {
        return Ok(());
    }
    let issuer = effective_issuer(settings, settings.port);
    let Ok(url) = Url::parse(&issuer) else { return Ok(()) };
    let loopback = match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() != "http" || loopback {
        return Ok(());
    }
    let rule = "http is allowed only on loopback (127.0.0.1, ::1, localhost) or with debug: true";
    let problem = if settings.issuer.trim().is_empty() {
        format!("is empty, so it would be {issuer}, plain http on a non-loopback host: set it to the gateway's public https URL ({rule})")
    } else {
        format!("is plain http on a non-loopback host: use https ({rule})")
    };
    Err(ConfigError::new("issuer", problem))
}

fn check_storage(settings: &Settings) -> Result<(), ConfigError> {
    let storage = &settings.storage;
    match storage.kind {
        StorageKind::Memory => Ok(()),
        StorageKind::Redis => match storage.redis.url.as_deref() {
            Some(url) if !url.starts_with("redis://") && !url.starts_with("rediss://") => {
                Err(ConfigError::new("storage.redis.url", "must start with redis:// or rediss://"))
            }
            _ => Ok(()),
        },
        StorageKind::Vault => check_vault(settings),
    }
}

fn check_vault(settings: &Settings) -> Result<(), ConfigError> {
    let vault = &settings.storage.vault;
    check_url("storage.vault.url", &vault.url)?;
    match vault.auth_method {
        VaultAuth::Token => require_secret("storage.vault.token", vault.token.as_ref()),
        VaultAuth::AppRole => {
            require("storage.vault.role_id", vault.role_id.as_deref().unwrap_or_default())?;
            require_secret("storage.vault.secret_id", vault.secret_id.as_ref())
        }
    }
}

fn check_session_secret(settings: &Settings) -> Result<(), ConfigError> {
    let secret = settings.session_secret.expose_secret();
    if secret.is_empty() {
        // Memory storage loses everything on restart anyway; a generated secret is fine there.
        return match settings.storage.kind {
            StorageKind::Memory => Ok(()),
            kind => Err(ConfigError::new(
                "session_secret",
                format!("is required with storage type {kind} (sessions must survive restarts)"),
            )),
        };
    }
    if settings.debug {
        return Ok(());
    }
    if EXAMPLE_SECRETS.contains(&secret) {
        return Err(ConfigError::new(
            "session_secret",
            "is the example value from the documentation; set a random secret of at least 32 \
             characters (allowed only with debug: true)",
        ));
    }
    if secret.chars().count() < MIN_SECRET_LEN {
        return Err(ConfigError::new(
            "session_secret",
            format!("is shorter than {MIN_SECRET_LEN} characters (allowed only with debug: true)"),
        ));
    }
    Ok(())
}

/// Checks the provider map and returns the one provider's kind.
fn check_provider(settings: &Settings) -> Result<ProviderKind, ConfigError> {
    let kinds: Vec<&str> = settings.oauth_providers.keys().map(String::as_str).collect();
    let [kind] = kinds.as_slice() else {
        let found = if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") };
        return Err(ConfigError::new(
            "oauth_providers",
            format!("exactly one provider must be configured, found {found}"),
        ));
    };
    let key = format!("oauth_providers.{kind}");
    let provider = settings.oauth_providers.get(*kind).cloned().unwrap_or_default();
    let kind: ProviderKind = kind.parse().map_err(|_| {
        ConfigError::new(
            &key,
            format!("unknown provider kind (expected one of {})", ProviderKind::expected()),
        )
    })?;
    check_provider_fields(&key, kind, &provider)?;
    check_provider_urls(&key, &provider)?;
    if kind == ProviderKind::Dev && !is_loopback_host(&settings.host) {
        return Err(ConfigError::new(
            key,
            format!(
                "the dev provider lets anyone log in as anyone, so it is refused unless host is \
                 loopback (127.0.0.1, ::1, localhost); host is {:?}",
                settings.host
            ),
        ));
    }
    Ok(kind)
}

fn check_provider_fields(key: &str, kind: ProviderKind, p: &ProviderSettings) -> Result<(), ConfigError> {
    let field = |name: &str| format!("{key}.{name}");
    match kind {
        ProviderKind::Google | ProviderKind::GitHub => {
            require(&field("client_id"), &p.client_id)?;
            require_secret(&field("client_secret"), p.client_secret.as_ref())
        }
        ProviderKind::Okta => {
            let domain = p.domain.as_deref().unwrap_or_default().trim();
            let issuer = p.issuer.as_deref().unwrap_or_default().trim();
            if domain.is_empty() && issuer.is_empty() {
                return Err(ConfigError::new(
                    field("domain"),
                    "okta needs domain (e.g. dev-123.okta.com) or issuer; both are empty",
                ));
            }
            if domain.contains(char::is_whitespace) {
                return Err(ConfigError::new(field("domain"), "must be a host name"));
            }
            require(&field("client_id"), &p.client_id)
        }
        ProviderKind::Custom => {
            require(&field("authorization_url"), p.authorization_url.as_deref().unwrap_or_default())?;
            require(&field("token_url"), p.token_url.as_deref().unwrap_or_default())?;
            require(&field("userinfo_url"), p.userinfo_url.as_deref().unwrap_or_default())?;
            require(&field("client_id"), &p.client_id)
        }
        ProviderKind::Oidc => {
            require(&field("issuer"), p.issuer.as_deref().unwrap_or_default())?;
            require(&field("client_id"), &p.client_id)
        }
        ProviderKind::Dev => Ok(()),
    }
}

fn check_provider_urls(key: &str, p: &ProviderSettings) -> Result<(), ConfigError> {
    let urls = [
        ("authorization_url", &p.authorization_url),
        ("token_url", &p.token_url),
        ("userinfo_url", &p.userinfo_url),
        ("issuer", &p.issuer),
    ];
    for (name, url) in urls {
        if let Some(url) = url.as_deref().filter(|u| !u.trim().is_empty()) {
            check_url(&format!("{key}.{name}"), url)?;
        }
    }
    Ok(())
}

fn check_services(settings: &Settings, provider: &str) -> Result<(), ConfigError> {
    for (id, service) in &settings.mcp_services {
        check_service(id, service, provider)?;
        check_service_tls(id, service, settings.debug)?;
    }
    Ok(())
}

fn check_service(id: &str, service: &ServiceSettings, provider: &str) -> Result<(), ConfigError> {
    let key = format!("mcp_services.{id}");
    if RESERVED_SERVICE_IDS.iter().any(|r| r.eq_ignore_ascii_case(id)) {
        return Err(ConfigError::new(
            key,
            format!("service id {id:?} collides with a gateway path ({})", RESERVED_SERVICE_IDS.join(", ")),
        ));
    }
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ConfigError::new(key, "service id may contain only letters, digits, '-' and '_'"));
    }
    check_url(&format!("{key}.url"), &service.url)?;
    if let Some(named) = service.oauth_provider.as_deref().filter(|p| !p.is_empty()) {
        if named != provider {
            return Err(ConfigError::new(
                format!("{key}.oauth_provider"),
                format!("names {named:?} but the configured provider is {provider:?}"),
            ));
        }
    }
    if service.timeout == 0 {
        return Err(ConfigError::new(format!("{key}.timeout"), "must be greater than 0 (milliseconds)"));
    }
    check_tool_scopes(&key, service)
}

/// `ca_file` must hold certificates and `insecure_skip_verify` needs `debug`; both only mean
/// something for an https backend, so on an http one they are mistakes worth naming.
fn check_service_tls(id: &str, service: &ServiceSettings, debug: bool) -> Result<(), ConfigError> {
    let key = format!("mcp_services.{id}");
    let https = service.url.trim_start().to_ascii_lowercase().starts_with("https:");
    if let Some(path) = &service.ca_file {
        if !https {
            return Err(ConfigError::new(
                format!("{key}.ca_file"),
                "is set but the backend url is not https",
            ));
        }
        super::read_certificates(path).map_err(|e| ConfigError::new(format!("{key}.ca_file"), e))?;
    }
    if service.insecure_skip_verify {
        if !debug {
            return Err(ConfigError::new(
                format!("{key}.insecure_skip_verify"),
                "turns off certificate checks; it is refused unless debug: true (development only)",
            ));
        }
        if !https {
            return Err(ConfigError::new(
                format!("{key}.insecure_skip_verify"),
                "is set but the backend url is not https",
            ));
        }
    }
    Ok(())
}

/// Each `tool_scopes` entry names at least one scope, and scopes are single tokens: an empty
/// list would read as a rule but require nothing, and a blank or spaced scope could never be
/// granted (scopes travel space-separated).
fn check_tool_scopes(key: &str, service: &ServiceSettings) -> Result<(), ConfigError> {
    for (name, scopes) in &service.tool_scopes {
        let entry = format!("{key}.tool_scopes.{name}");
        if name.trim().is_empty() {
            return Err(ConfigError::new(format!("{key}.tool_scopes"), "a method or tool name is empty"));
        }
        if scopes.is_empty() {
            return Err(ConfigError::new(entry, "lists no scope; name at least one or remove the entry"));
        }
        if scopes.iter().any(|s| s.is_empty() || s.chars().any(char::is_whitespace)) {
            return Err(ConfigError::new(entry, "scopes must be non-empty and contain no spaces"));
        }
    }
    Ok(())
}

fn check_tokens(settings: &Settings) -> Result<(), ConfigError> {
    let tokens = &settings.tokens;
    if tokens.code_ttl == 0 || tokens.code_ttl > MAX_CODE_TTL {
        return Err(ConfigError::new(
            "tokens.code_ttl",
            format!("must be between 1 and {MAX_CODE_TTL} seconds, is {}", tokens.code_ttl),
        ));
    }
    for (name, value) in [
        ("access_token_ttl", tokens.access_token_ttl),
        ("refresh_token_ttl", tokens.refresh_token_ttl),
        ("login_ttl", tokens.login_ttl),
    ] {
        if value == 0 {
            return Err(ConfigError::new(format!("tokens.{name}"), "must be greater than 0 seconds"));
        }
    }
    Ok(())
}

fn require(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::new(key, "is required but empty (an unset ${VAR} expands to empty)"));
    }
    Ok(())
}

fn require_secret(key: &str, value: Option<&SecretString>) -> Result<(), ConfigError> {
    require(key, value.map(ExposeSecret::expose_secret).unwrap_or_default())
}

/// An absolute http(s) URL with a host. The value is not echoed: a URL may carry a password.
fn check_url(key: &str, value: &str) -> Result<(), ConfigError> {
    require(key, value)?;
    let url = Url::parse(value.trim())
        .map_err(|e| ConfigError::new(key, format!("is not a valid absolute URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(key, "must not contain credentials"));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(key, format!("must be an http or https URL, not {}:", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(key, "has no host"));
    }
    Ok(())
}

/// 127.0.0.0/8, ::1 (with or without brackets) and `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

mod clients;
#[cfg(test)]
mod tests;
