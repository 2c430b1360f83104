//! Unit tests of `validate`.

use super::*;
use crate::config::AccessRule;

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

/// The error loading refuses `yaml` (over `base()`) with: names chosen from a closed set
/// (storage type, auth method) are parsed with the rest of the file.
fn parse_error(over: &str) -> ConfigError {
    let parsed = ::config::Config::builder()
        .add_source(::config::File::from_str(&base(), ::config::FileFormat::Yaml))
        .add_source(::config::File::from_str(over, ::config::FileFormat::Yaml))
        .build()
        .and_then(|c| c.try_deserialize::<Settings>());
    match parsed {
        Ok(_) => panic!("configuration should be refused: {over}"),
        Err(e) => super::super::load::from_config_error(e, "config"),
    }
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
        (
            "{custom: {client_id: a, token_url: 'https://t', userinfo_url: 'https://u'}}",
            "oauth_providers.custom.authorization_url",
        ),
        (
            "{custom: {client_id: a, authorization_url: 'https://a', userinfo_url: 'https://u'}}",
            "oauth_providers.custom.token_url",
        ),
        (
            "{custom: {client_id: a, authorization_url: 'https://a', token_url: 'https://t'}}",
            "oauth_providers.custom.userinfo_url",
        ),
        (
            "{custom: {authorization_url: 'https://a', token_url: 'https://t', userinfo_url: 'https://u'}}",
            "oauth_providers.custom.client_id",
        ),
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
    let err = error(&with_providers("oauth_providers: {oidc: {issuer: 'idp.example.com', client_id: a}}"));
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
    for url in ["localhost:3001/mcp", "/mcp", "ftp://host/mcp", "", "http://user:pw@host/mcp", "http://"] {
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
    for secret in ["your-dev-secret-change-in-production", "production-secret-key", "change-me", "short"] {
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
        let over = format!("session_secret: ''\ndebug: true\nstorage: {{type: {kind}, vault: {{token: t}}}}");
        let err = error(&settings(&over));
        assert_eq!(err.key, "session_secret", "{kind}");
        assert!(err.problem.contains(kind), "{err}");
    }
}

#[test]
fn unknown_storage_type() {
    let err = parse_error("storage: {type: postgres}");
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
    let err = parse_error("storage: {type: vault, vault: {auth_method: kubernetes}}");
    assert_eq!(err.key, "storage.vault.auth_method");
    validate(&settings("storage: {type: vault, vault: {auth_method: approle, role_id: r, secret_id: s}}"))
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

#[test]
fn a_non_loopback_http_issuer_needs_debug() {
    for issuer in ["http://gw.example.com", "http://10.0.0.5:8080/base", "HTTP://gw.example.com"] {
        let over = format!("issuer: '{issuer}'");
        let err = error(&settings(&over));
        assert_eq!(err.key, "issuer", "{issuer}");
        assert!(err.problem.contains("https"), "{err}");
        validate(&settings(&format!("{over}\ndebug: true"))).unwrap();
    }
    for issuer in [
        "http://localhost:8080",
        "http://127.0.0.1:8080",
        "http://127.1.2.3",
        "http://[::1]:9000/gw",
        "https://gw.example.com",
        "",
    ] {
        validate(&settings(&format!("issuer: '{issuer}'"))).unwrap();
    }
}

#[test]
fn an_empty_issuer_on_a_non_loopback_host_would_be_http_and_needs_debug() {
    let mut s = settings("");
    s.host = "10.0.0.5".into();
    let err = error(&s);
    assert_eq!(err.key, "issuer");
    assert!(err.problem.contains("http://10.0.0.5:8080"), "{err}");
    s.debug = true;
    validate(&s).unwrap();
    // The wildcard addresses compute a loopback issuer.
    for host in ["0.0.0.0", "::", "localhost"] {
        let mut s = settings("");
        s.host = host.into();
        validate(&s).unwrap();
    }
    let mut s = settings("issuer: 'https://gw.example.com'");
    s.host = "10.0.0.5".into();
    validate(&s).unwrap();
}

#[test]
fn the_metrics_listener_is_an_address_of_its_own() {
    assert!(validate(&settings("metrics: { listen: \"127.0.0.1:9464\" }")).is_ok());
    assert!(validate(&settings("metrics: { listen: \"[::1]:9464\" }")).is_ok());
    for bad in ["localhost:9464", "9464", "127.0.0.1", "127.0.0.1:8000"] {
        let e = error(&settings(&format!("port: 8000\nmetrics: {{ listen: \"{bad}\" }}")));
        assert_eq!(e.key, "metrics.listen", "{bad}");
    }
}

#[test]
fn the_admin_token_is_a_long_secret_of_its_own() {
    assert!(validate(&settings("admin: { token: \"0123456789abcdef0123456789abcdefXY\" }")).is_ok());
    for bad in ["short", GOOD_SECRET] {
        let e = error(&settings(&format!("admin: {{ token: \"{bad}\" }}")));
        assert_eq!(e.key, "admin.token", "{bad}");
    }
}

#[test]
fn access_rules_must_name_someone_and_fit_the_provider() {
    validate(&settings("access: {emails: [a@example.com], domains: [example.com], groups: [staff]}"))
        .unwrap();
    let cases = [
        ("access: {emails: []}", "access", "names nobody"),
        ("access: {emails: [nobody]}", "access.emails", "not an email"),
        ("access: {domains: ['@example.com']}", "access.domains", "not a domain"),
        ("access: {groups: ['']}", "access.groups", "non-empty"),
        ("access: {github_orgs: [acme]}", "access.github_orgs", "needs the github provider"),
        ("access: {github_teams: [acme/platform]}", "access.github_teams", "needs the github provider"),
    ];
    for (over, key, problem) in cases {
        let err = error(&settings(over));
        assert_eq!(err.key, key, "{over}: {err}");
        assert!(err.problem.contains(problem), "{over}: {err}");
    }
    let mut s = settings("");
    s.mcp_services.get_mut("calc").unwrap().tool_access.insert("wipe".into(), AccessRule::default());
    assert_eq!(error(&s).key, "mcp_services.calc.tool_access.wipe");
    let mut s = settings("");
    s.mcp_services.get_mut("calc").unwrap().access = Some(AccessRule::default());
    assert_eq!(error(&s).key, "mcp_services.calc.access");
}

#[test]
fn github_rules_need_github_and_teams_need_org_and_slug() {
    let github = |over: &str| {
        let mut s = with_providers("oauth_providers: {github: {client_id: a, client_secret: b}}");
        s.access = settings(over).access;
        s
    };
    validate(&github("access: {github_orgs: [acme], github_teams: [acme/platform]}")).unwrap();
    for (over, key) in [
        ("access: {github_teams: [platform]}", "access.github_teams"),
        ("access: {github_teams: [acme/]}", "access.github_teams"),
        ("access: {github_teams: [a/b/c]}", "access.github_teams"),
        ("access: {github_orgs: [acme/platform]}", "access.github_orgs"),
    ] {
        assert_eq!(error(&github(over)).key, key, "{over}");
    }
}

#[test]
fn backend_tls_options_are_checked() {
    let service = |s: &mut Settings| s.mcp_services["calc"].clone();
    // insecure_skip_verify: development only, and only for an https backend.
    let mut s = settings("");
    let mut calc = service(&mut s);
    calc.url = "https://backend.internal/mcp".into();
    calc.insecure_skip_verify = true;
    s.mcp_services.insert("calc".into(), calc.clone());
    let err = error(&s);
    assert_eq!(err.key, "mcp_services.calc.insecure_skip_verify");
    assert!(err.problem.contains("debug"), "{err}");
    s.debug = true;
    assert!(validate(&s).is_ok(), "{:?}", validate(&s));
    calc.url = "http://backend.internal/mcp".into();
    s.mcp_services.insert("calc".into(), calc.clone());
    assert_eq!(error(&s).key, "mcp_services.calc.insecure_skip_verify");

    // ca_file: an https backend, and a file holding certificates.
    let mut s = settings("");
    let mut calc = service(&mut s);
    calc.ca_file = Some("/nonexistent/ca.pem".into());
    s.mcp_services.insert("calc".into(), calc.clone());
    assert!(error(&s).problem.contains("not https"), "{}", error(&s));
    calc.url = "https://backend.internal/mcp".into();
    s.mcp_services.insert("calc".into(), calc.clone());
    let err = error(&s);
    assert_eq!(err.key, "mcp_services.calc.ca_file");
    assert!(err.problem.contains("/nonexistent/ca.pem"), "{err}");
    let dir = std::env::temp_dir().join(format!("mcp-gateway-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    calc.ca_file = Some(empty.to_string_lossy().into_owned());
    s.mcp_services.insert("calc".into(), calc);
    assert!(error(&s).problem.contains("no PEM certificate"), "{}", error(&s));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn trusted_issuers_need_one_key_source_and_a_unique_url() {
    use crate::config::TrustedIssuer;
    let issuer = |uri: Option<&str>, jwks: Option<serde_json::Value>| TrustedIssuer {
        issuer: "https://idp.example".into(),
        jwks_uri: uri.map(str::to_owned),
        jwks,
    };
    let key = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
    let mut s = settings("");
    s.enterprise.id_jag.trusted_issuers = vec![issuer(Some("https://idp.example/keys"), None)];
    assert!(validate(&s).is_ok(), "{:?}", validate(&s));
    s.enterprise.id_jag.trusted_issuers = vec![issuer(None, Some(key.clone()))];
    assert!(validate(&s).is_ok(), "{:?}", validate(&s));
    for (trusted, problem) in [
        (vec![issuer(None, None)], "needs jwks or jwks_uri"),
        (vec![issuer(Some("https://idp.example/keys"), Some(key.clone()))], "not both"),
        (vec![issuer(Some("http://idp.example/keys"), None)], "must be https"),
        (vec![issuer(None, Some(serde_json::json!({"keys": []})))], "holds no key"),
        (vec![issuer(None, Some(key.clone())), issuer(None, Some(key.clone()))], "listed twice"),
        (vec![TrustedIssuer { issuer: "not a url".into(), ..issuer(None, Some(key.clone())) }], "URL"),
    ] {
        s.enterprise.id_jag.trusted_issuers = trusted;
        let err = error(&s);
        assert!(err.key.starts_with("enterprise.id_jag.trusted_issuers["), "{err}");
        assert!(err.problem.contains(problem), "{problem}: {err}");
    }
}
