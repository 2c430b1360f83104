//! Validation of loaded [`Settings`]: a bad configuration stops startup with one line that
//! names the key and the problem, instead of failing later at the first request.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{ProviderSettings, ServiceSettings, Settings};

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

/// Provider kinds the gateway knows.
pub const PROVIDER_KINDS: [&str; 6] = ["google", "github", "okta", "custom", "oidc", "dev"];

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
    let kind = check_provider(settings)?;
    check_services(settings, kind)?;
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

fn check_storage(settings: &Settings) -> Result<(), ConfigError> {
    let storage = &settings.storage;
    match storage.kind.as_str() {
        "memory" => Ok(()),
        "redis" => match storage.redis.url.as_deref() {
            Some(url) if !url.starts_with("redis://") && !url.starts_with("rediss://") => {
                Err(ConfigError::new("storage.redis.url", "must start with redis:// or rediss://"))
            }
            _ => Ok(()),
        },
        "vault" => check_vault(settings),
        other => Err(ConfigError::new(
            "storage.type",
            format!("unknown storage type {other:?} (expected memory, redis or vault)"),
        )),
    }
}

fn check_vault(settings: &Settings) -> Result<(), ConfigError> {
    let vault = &settings.storage.vault;
    check_url("storage.vault.url", &vault.url)?;
    match vault.auth_method.as_str() {
        "token" => require_secret("storage.vault.token", vault.token.as_ref()),
        "approle" => {
            require("storage.vault.role_id", vault.role_id.as_deref().unwrap_or_default())?;
            require_secret("storage.vault.secret_id", vault.secret_id.as_ref())
        }
        other => Err(ConfigError::new(
            "storage.vault.auth_method",
            format!("unknown auth method {other:?} (expected token or approle)"),
        )),
    }
}

fn check_session_secret(settings: &Settings) -> Result<(), ConfigError> {
    let secret = settings.session_secret.expose_secret();
    if secret.is_empty() {
        // Memory storage loses everything on restart anyway; a generated secret is fine there.
        return match settings.storage.kind.as_str() {
            "memory" => Ok(()),
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
fn check_provider(settings: &Settings) -> Result<&str, ConfigError> {
    let kinds: Vec<&str> = settings.oauth_providers.keys().map(String::as_str).collect();
    let [kind] = kinds.as_slice() else {
        let found = if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") };
        return Err(ConfigError::new(
            "oauth_providers",
            format!("exactly one provider must be configured, found {found}"),
        ));
    };
    let key = format!("oauth_providers.{kind}");
    if !PROVIDER_KINDS.contains(kind) {
        return Err(ConfigError::new(
            key,
            format!("unknown provider kind (expected one of {})", PROVIDER_KINDS.join(", ")),
        ));
    }
    let provider = settings.oauth_providers.get(*kind).cloned().unwrap_or_default();
    check_provider_fields(&key, kind, &provider)?;
    check_provider_urls(&key, &provider)?;
    if *kind == "dev" && !is_loopback_host(&settings.host) {
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

fn check_provider_fields(key: &str, kind: &str, p: &ProviderSettings) -> Result<(), ConfigError> {
    let field = |name: &str| format!("{key}.{name}");
    match kind {
        "google" | "github" => {
            require(&field("client_id"), &p.client_id)?;
            require_secret(&field("client_secret"), p.client_secret.as_ref())
        }
        "okta" => {
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
        "custom" => {
            require(&field("authorization_url"), p.authorization_url.as_deref().unwrap_or_default())?;
            require(&field("token_url"), p.token_url.as_deref().unwrap_or_default())?;
            require(&field("userinfo_url"), p.userinfo_url.as_deref().unwrap_or_default())?;
            require(&field("client_id"), &p.client_id)
        }
        "oidc" => {
            require(&field("issuer"), p.issuer.as_deref().unwrap_or_default())?;
            require(&field("client_id"), &p.client_id)
        }
        _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD_SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// A valid configuration: google provider, one service, a real secret, no debug.
    fn base() -> String {
        format!(
            r#"
host: "127.0.0.1"
session_secret: "{GOOD_SECRET}"
oauth_providers:
  google:
    client_id: "id"
    client_secret: "secret"
mcp_services:
  calc:
    name: "Calculator"
    url: "http://localhost:3001/mcp"
    oauth_provider: "google"
"#
        )
    }

    /// `yaml` layered over `base()` the simple way (top-level keys replace whole).
    fn settings(over: &str) -> Settings {
        ::config::Config::builder()
            .add_source(::config::File::from_str(&base(), ::config::FileFormat::Yaml))
            .add_source(::config::File::from_str(over, ::config::FileFormat::Yaml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    /// `base()` with its provider map replaced by the one in `providers`, and no services.
    fn with_providers(providers: &str) -> Settings {
        let only: Settings = ::config::Config::builder()
            .add_source(::config::File::from_str(providers, ::config::FileFormat::Yaml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        let mut s = settings("");
        s.oauth_providers = only.oauth_providers;
        s.mcp_services.clear();
        s
    }

    fn error(settings: &Settings) -> ConfigError {
        validate(settings).expect_err("configuration should be refused")
    }

    #[test]
    fn the_base_configuration_is_valid() {
        validate(&settings("")).unwrap();
    }

    #[test]
    fn the_error_is_one_line_naming_key_and_problem() {
        let err = ConfigError::new("a.b", "line one\n   line two");
        assert_eq!(err.to_string(), "config error: a.b: line one line two");
    }

    #[test]
    fn exactly_one_provider() {
        let two = with_providers("oauth_providers: {google: {client_id: a, client_secret: b}, github: {client_id: a, client_secret: b}}");
        let err = error(&two);
        assert_eq!(err.key, "oauth_providers");
        assert_eq!(err.problem, "exactly one provider must be configured, found github, google");
        let mut none = settings("");
        none.oauth_providers.clear();
        assert_eq!(error(&none).problem, "exactly one provider must be configured, found none");
    }

    #[test]
    fn unknown_provider_kind() {
        let err = error(&with_providers("oauth_providers: {facebook: {client_id: a}}"));
        assert_eq!(err.key, "oauth_providers.facebook");
        assert!(err.problem.starts_with("unknown provider kind"), "{err}");
    }

    #[test]
    fn every_provider_kind_needs_its_fields() {
        let cases = [
            ("{google: {client_secret: s}}", "oauth_providers.google.client_id"),
            ("{google: {client_id: a}}", "oauth_providers.google.client_secret"),
            ("{github: {client_id: a, client_secret: ''}}", "oauth_providers.github.client_secret"),
            ("{okta: {client_id: a}}", "oauth_providers.okta.domain"),
            ("{okta: {domain: dev-1.okta.com}}", "oauth_providers.okta.client_id"),
            ("{custom: {client_id: a, token_url: 'https://t', userinfo_url: 'https://u'}}", "oauth_providers.custom.authorization_url"),
            ("{custom: {client_id: a, authorization_url: 'https://a', userinfo_url: 'https://u'}}", "oauth_providers.custom.token_url"),
            ("{custom: {client_id: a, authorization_url: 'https://a', token_url: 'https://t'}}", "oauth_providers.custom.userinfo_url"),
            ("{custom: {authorization_url: 'https://a', token_url: 'https://t', userinfo_url: 'https://u'}}", "oauth_providers.custom.client_id"),
            ("{oidc: {client_id: a}}", "oauth_providers.oidc.issuer"),
            ("{oidc: {issuer: 'https://idp.example.com'}}", "oauth_providers.oidc.client_id"),
        ];
        for (providers, key) in cases {
            let err = error(&with_providers(&format!("oauth_providers: {providers}")));
            assert_eq!(err.key, key, "{providers}");
        }
        for providers in [
            "{okta: {domain: dev-1.okta.com, client_id: a}}",
            "{okta: {issuer: 'https://dev-1.okta.com/oauth2/default', client_id: a}}",
            "{custom: {client_id: a, authorization_url: 'https://a', token_url: 'https://t', userinfo_url: 'https://u'}}",
            "{oidc: {issuer: 'https://idp.example.com/realms/x', client_id: a}}",
            "{dev: {}}",
        ] {
            validate(&with_providers(&format!("oauth_providers: {providers}"))).unwrap();
        }
    }

    #[test]
    fn provider_urls_must_be_http_urls() {
        let err =
            error(&with_providers("oauth_providers: {oidc: {issuer: 'idp.example.com', client_id: a}}"));
        assert_eq!(err.key, "oauth_providers.oidc.issuer");
        let custom = "{custom: {client_id: a, authorization_url: 'ftp://a', token_url: 'https://t', userinfo_url: 'https://u'}}";
        let err = error(&with_providers(&format!("oauth_providers: {custom}")));
        assert_eq!(err.key, "oauth_providers.custom.authorization_url");
    }

    #[test]
    fn a_service_must_use_the_configured_provider() {
        let mut s = settings("");
        s.mcp_services.get_mut("calc").unwrap().oauth_provider = Some("github".into());
        let err = error(&s);
        assert_eq!(err.key, "mcp_services.calc.oauth_provider");
        assert!(err.problem.contains("\"github\"") && err.problem.contains("\"google\""), "{err}");
        s.mcp_services.get_mut("calc").unwrap().oauth_provider = None;
        validate(&s).unwrap();
    }

    #[test]
    fn service_urls_must_be_absolute_http_urls() {
        for url in ["localhost:3001/mcp", "/mcp", "ftp://host/mcp", "", "http://user:pw@host/mcp", "http://"]
        {
            let mut s = settings("");
            s.mcp_services.get_mut("calc").unwrap().url = url.into();
            let err = error(&s);
            assert_eq!(err.key, "mcp_services.calc.url", "{url}");
            assert!(!err.problem.contains("pw@"), "credentials are not echoed: {err}");
        }
    }

    #[test]
    fn the_issuer_must_be_an_http_url_without_query_or_fragment() {
        for issuer in
            ["gateway.example.com", "https://gw.example.com/?x=1", "https://gw.example.com#top", "ws://gw"]
        {
            let err = error(&settings(&format!("issuer: '{issuer}'")));
            assert_eq!(err.key, "issuer", "{issuer}");
        }
        validate(&settings("issuer: 'https://gw.example.com/mcp/'")).unwrap();
    }

    #[test]
    fn example_and_short_secrets_need_debug() {
        for secret in ["your-dev-secret-change-in-production", "production-secret-key", "change-me", "short"]
        {
            let over = format!("session_secret: '{secret}'");
            let err = error(&settings(&over));
            assert_eq!(err.key, "session_secret", "{secret}");
            validate(&settings(&format!("{over}\ndebug: true"))).unwrap();
        }
        validate(&settings(&format!("session_secret: '{}'", "x".repeat(32)))).unwrap();
    }

    #[test]
    fn an_empty_secret_is_fine_only_with_memory_storage() {
        validate(&settings("session_secret: ''")).unwrap();
        for kind in ["redis", "vault"] {
            let over =
                format!("session_secret: ''\ndebug: true\nstorage: {{type: {kind}, vault: {{token: t}}}}");
            let err = error(&settings(&over));
            assert_eq!(err.key, "session_secret", "{kind}");
            assert!(err.problem.contains(kind), "{err}");
        }
    }

    #[test]
    fn unknown_storage_type() {
        let err = error(&settings("storage: {type: postgres}"));
        assert_eq!(err.key, "storage.type");
        assert!(err.problem.contains("memory, redis or vault"), "{err}");
        validate(&settings("storage: {type: redis}")).unwrap();
    }

    #[test]
    fn storage_connection_settings_are_checked() {
        let err = error(&settings("storage: {type: redis, redis: {url: 'http://redis:6379'}}"));
        assert_eq!(err.key, "storage.redis.url");
        assert_eq!(error(&settings("storage: {type: vault}")).key, "storage.vault.token");
        let err = error(&settings("storage: {type: vault, vault: {auth_method: approle, role_id: r}}"));
        assert_eq!(err.key, "storage.vault.secret_id");
        let err = error(&settings("storage: {type: vault, vault: {auth_method: kubernetes}}"));
        assert_eq!(err.key, "storage.vault.auth_method");
        validate(&settings(
            "storage: {type: vault, vault: {auth_method: approle, role_id: r, secret_id: s}}",
        ))
        .unwrap();
    }

    #[test]
    fn the_dev_provider_needs_a_loopback_host() {
        for host in ["0.0.0.0", "192.168.1.5", "gateway.example.com", "::"] {
            let mut s = with_providers("oauth_providers: {dev: {}}");
            s.host = host.into();
            let err = error(&s);
            assert_eq!(err.key, "oauth_providers.dev", "{host}");
            assert!(err.problem.contains("loopback"), "{err}");
        }
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"] {
            let mut s = with_providers("oauth_providers: {dev: {}}");
            s.host = host.into();
            validate(&s).unwrap();
        }
    }

    #[test]
    fn code_ttl_is_at_most_ten_minutes() {
        let err = error(&settings("tokens: {code_ttl: 601}"));
        assert_eq!(err.key, "tokens.code_ttl");
        assert_eq!(error(&settings("tokens: {code_ttl: 0}")).key, "tokens.code_ttl");
        validate(&settings("tokens: {code_ttl: 600}")).unwrap();
        assert_eq!(error(&settings("tokens: {access_token_ttl: 0}")).key, "tokens.access_token_ttl");
    }

    #[test]
    fn service_ids_are_plain_and_do_not_shadow_gateway_paths() {
        for id in ["bad id", "a/b", "ü", "a.b"] {
            let mut s = settings("");
            let calc = s.mcp_services.remove("calc").unwrap();
            s.mcp_services.insert(id.into(), calc);
            assert_eq!(error(&s).key, format!("mcp_services.{id}"), "{id}");
        }
        for id in RESERVED_SERVICE_IDS.iter().copied().chain(["OAuth", "Health"]) {
            let mut s = settings("");
            let calc = s.mcp_services.remove("calc").unwrap();
            s.mcp_services.insert(id.into(), calc);
            let err = error(&s);
            assert!(err.problem.contains("collides with a gateway path"), "{id}: {err}");
        }
        let mut s = settings("");
        let calc = s.mcp_services.remove("calc").unwrap();
        s.mcp_services.insert("my_Service-2".into(), calc);
        validate(&s).unwrap();
    }

    #[test]
    fn tool_scopes_entries_need_at_least_one_plain_scope() {
        let with = |name: &str, scopes: &[&str]| {
            let mut s = settings("");
            let calc = s.mcp_services.get_mut("calc").unwrap();
            calc.tool_scopes.insert(name.into(), scopes.iter().map(|x| (*x).to_owned()).collect());
            s
        };
        assert_eq!(error(&with("tools/call", &[])).key, "mcp_services.calc.tool_scopes.tools/call");
        assert_eq!(error(&with("delete", &["a b"])).key, "mcp_services.calc.tool_scopes.delete");
        assert_eq!(error(&with("delete", &[""])).key, "mcp_services.calc.tool_scopes.delete");
        assert_eq!(error(&with(" ", &["x"])).key, "mcp_services.calc.tool_scopes");
        validate(&with("tools/call", &["tools"])).unwrap();
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let mut s = settings("");
        s.mcp_services.get_mut("calc").unwrap().timeout = 0;
        assert_eq!(error(&s).key, "mcp_services.calc.timeout");
    }
}
