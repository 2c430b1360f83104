//! Unit tests of `load`.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mcp-gateway-load-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("config")).unwrap();
        TempDir(dir)
    }

    /// Writes `config/{name}` (or `name` when it contains a slash) and returns its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = if name.contains('/') { self.0.join(name) } else { self.0.join("config").join(name) };
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Options whose config directory is this one's `config/`, plus `env`.
    fn options(&self, env: &[(&str, &str)]) -> LoadOptions {
        let mut map: HashMap<String, String> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        map.insert("MCP_CONFIG_DIR".into(), self.0.join("config").display().to_string());
        LoadOptions { env: map, ..LoadOptions::default() }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const DEFAULT: &str = r#"
host: "127.0.0.1"
port: 8080
storage:
  type: memory
  redis:
    host: "redis-default"
    port: 6000
oauth_providers:
  dev: {}
mcp_services:
  everything:
    name: "Everything (example)"
    url: "http://127.0.0.1:3001/mcp"
"#;

const GOOGLE: &str = r#"
session_secret: "0123456789abcdef0123456789abcdef-google"
oauth_providers:
  google:
    client_id: "${GOOGLE_CLIENT_ID}"
    client_secret: "${GOOGLE_CLIENT_SECRET}"
mcp_services:
  calculator:
    name: "Calculator Service"
    url: "http://localhost:3001"
    oauth_provider: "google"
"#;

fn keys<V>(map: &std::collections::BTreeMap<String, V>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

fn secret(value: &Option<SecretString>) -> &str {
    value.as_ref().map(ExposeSecret::expose_secret).unwrap_or("<none>")
}

#[test]
fn the_shipped_default_config_runs_as_is() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let env = HashMap::from([("MCP_CONFIG_DIR".to_owned(), dir.display().to_string())]);
    let settings = load(&LoadOptions { env, ..LoadOptions::default() }).unwrap();
    assert_eq!((settings.host.as_str(), settings.port), ("127.0.0.1", 8080));
    assert_eq!(keys(&settings.oauth_providers), ["dev"]);
    assert_eq!(keys(&settings.mcp_services), ["everything"]);
    let everything = &settings.mcp_services["everything"];
    assert_eq!(everything.name, "Everything (example)");
    assert_eq!(everything.url, "http://127.0.0.1:3001/mcp");
    assert!(everything.auth_required);
    assert_eq!(settings.storage.kind, crate::config::StorageKind::Memory);
    assert!(!settings.debug, "default.yaml must not switch debug on for every layer above it");
    assert!(settings.session_secret.expose_secret().is_empty());
}

#[test]
fn a_config_file_replaces_providers_and_services_whole() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("mine.yaml", GOOGLE);
    let options = LoadOptions {
        config_file: Some(file),
        ..dir.options(&[("GOOGLE_CLIENT_ID", "id-1"), ("GOOGLE_CLIENT_SECRET", "s3cret")])
    };
    let settings = load(&options).unwrap();
    assert_eq!(keys(&settings.oauth_providers), ["google"]);
    assert_eq!(keys(&settings.mcp_services), ["calculator"]);
    let google = &settings.oauth_providers["google"];
    assert_eq!(google.client_id, "id-1");
    assert_eq!(secret(&google.client_secret), "s3cret");
    // Everything else still comes from below.
    assert_eq!(settings.host, "127.0.0.1");
    assert_eq!(settings.storage.redis.host, "redis-default");
}

#[test]
fn a_config_file_without_providers_keeps_the_lower_ones() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("mine.yaml", "port: 9000\n");
    let settings = load(&LoadOptions { config_file: Some(file), ..dir.options(&[]) }).unwrap();
    assert_eq!(settings.port, 9000);
    assert_eq!(keys(&settings.oauth_providers), ["dev"]);
    assert_eq!(keys(&settings.mcp_services), ["everything"]);
}

#[test]
fn other_sections_merge_key_by_key_and_empty_keys_do_not_wipe() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("mine.yaml", "storage:\n  redis:\n    port: 7000\ncors:\nissuer:\n");
    let settings = load_unvalidated(&LoadOptions { config_file: Some(file), ..dir.options(&[]) }).unwrap();
    assert_eq!(settings.storage.redis.host, "redis-default");
    assert_eq!(settings.storage.redis.port, 7000);
    assert_eq!(settings.storage.kind, crate::config::StorageKind::Memory);
    assert!(!settings.cors.allow_methods.is_empty(), "an empty `cors:` keeps the defaults");
}

#[test]
fn the_mcp_env_layer_sits_between_default_and_config_file() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    dir.write("staging.yaml", "port: 8100\nhost: \"::1\"\n");
    let file = dir.write("mine.yaml", "port: 8200\n");
    let env = [("MCP_ENV", "staging")];
    let settings = load(&dir.options(&env)).unwrap();
    assert_eq!((settings.host.as_str(), settings.port), ("::1", 8100));
    let settings = load(&LoadOptions { config_file: Some(file), ..dir.options(&env) }).unwrap();
    assert_eq!((settings.host.as_str(), settings.port), ("::1", 8200));
}

#[test]
fn a_missing_mcp_env_file_is_fine_but_a_bad_name_is_not() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    assert_eq!(load(&dir.options(&[("MCP_ENV", "nowhere")])).unwrap().port, 8080);
    let err = load(&dir.options(&[("MCP_ENV", "../etc/passwd")])).unwrap_err();
    assert_eq!(err.key, "MCP_ENV");
}

#[test]
fn mcp_config_path_is_used_and_the_flag_wins_over_it() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let from_env = dir.write("env.yaml", "port: 8301\n");
    let from_flag = dir.write("flag.yaml", "port: 8302\n");
    let env = [("MCP_CONFIG_PATH", from_env.to_str().unwrap())];
    assert_eq!(load(&dir.options(&env)).unwrap().port, 8301);
    let options = LoadOptions { config_file: Some(from_flag), ..dir.options(&env) };
    assert_eq!(load(&options).unwrap().port, 8302);
}

#[test]
fn nested_environment_variables_override_single_keys() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("mine.yaml", GOOGLE);
    let env = [
        ("GOOGLE_CLIENT_ID", "id-from-file"),
        ("MCP_GATEWAY__STORAGE__REDIS__HOST", "redis.internal"),
        ("MCP_GATEWAY__STORAGE__REDIS__KEY_PREFIX", "gw:"),
        ("MCP_GATEWAY__TOKENS__CODE_TTL", "120"),
        ("MCP_GATEWAY__OAUTH_PROVIDERS__GOOGLE__CLIENT_SECRET", "from-env"),
        ("MCP_GATEWAY__MCP_SERVICES__CALCULATOR__TIMEOUT", "5000"),
    ];
    let settings = load(&LoadOptions { config_file: Some(file), ..dir.options(&env) }).unwrap();
    assert_eq!(settings.storage.redis.host, "redis.internal");
    assert_eq!(settings.storage.redis.port, 6000);
    assert_eq!(settings.storage.redis.key_prefix, "gw:");
    assert_eq!(settings.tokens.code_ttl, 120);
    // Inside the winning map: the file's client_id stays, only the secret changes.
    let google = &settings.oauth_providers["google"];
    assert_eq!(google.client_id, "id-from-file");
    assert_eq!(secret(&google.client_secret), "from-env");
    assert_eq!(settings.mcp_services["calculator"].timeout, 5000);
    assert_eq!(settings.mcp_services["calculator"].name, "Calculator Service");
}

#[test]
fn host_port_and_debug_follow_the_documented_precedence() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let nested = [("MCP_GATEWAY__HOST", "127.0.0.2"), ("MCP_GATEWAY__PORT", "9001")];
    let settings = load(&dir.options(&nested)).unwrap();
    assert_eq!((settings.host.as_str(), settings.port), ("127.0.0.2", 9001));

    let legacy = [nested[0], nested[1], ("MCP_GATEWAY_HOST", "127.0.0.3"), ("MCP_GATEWAY_PORT", "9002")];
    let settings = load(&dir.options(&legacy)).unwrap();
    assert_eq!((settings.host.as_str(), settings.port), ("127.0.0.3", 9002));

    let options = LoadOptions { host: Some("localhost".into()), port: Some(0), ..dir.options(&legacy) };
    let settings = load(&options).unwrap();
    assert_eq!((settings.host.as_str(), settings.port), ("localhost", 0));

    assert!(load(&dir.options(&[("MCP_DEBUG", "true")])).unwrap().debug);
    assert!(!load(&dir.options(&[("MCP_DEBUG", "0")])).unwrap().debug);
    let options = LoadOptions { debug: true, ..dir.options(&[("MCP_DEBUG", "false")]) };
    assert!(load(&options).unwrap().debug);
}

#[test]
fn bad_legacy_variables_name_themselves() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    assert_eq!(load(&dir.options(&[("MCP_GATEWAY_PORT", "80a")])).unwrap_err().key, "MCP_GATEWAY_PORT");
    assert_eq!(load(&dir.options(&[("MCP_DEBUG", "maybe")])).unwrap_err().key, "MCP_DEBUG");
}

#[test]
fn default_yaml_is_required_only_without_a_config_file() {
    let dir = TempDir::new();
    let err = load(&dir.options(&[])).unwrap_err();
    assert!(err.key.ends_with("default.yaml"), "{err}");
    assert!(err.problem.starts_with("not found"), "{err}");
    let file = dir.write("mine.yaml", "oauth_providers:\n  dev: {}\n");
    let settings = load(&LoadOptions { config_file: Some(file), ..dir.options(&[]) }).unwrap();
    assert_eq!(keys(&settings.oauth_providers), ["dev"]);
}

#[test]
fn a_missing_config_file_is_an_error() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.0.join("absent.yaml");
    let err = load(&LoadOptions { config_file: Some(file.clone()), ..dir.options(&[]) }).unwrap_err();
    assert_eq!(err.key, file.display().to_string());
}

#[test]
fn invalid_yaml_names_the_file_in_one_line() {
    let dir = TempDir::new();
    let path = dir.write("default.yaml", "host: [unclosed\nport: 1\n");
    let err = load(&dir.options(&[])).unwrap_err();
    assert_eq!(err.key, path.display().to_string());
    assert!(err.problem.starts_with("invalid YAML"), "{err}");
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn wrong_types_name_the_key_without_echoing_the_value() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("mine.yaml", "storage:\n  redis:\n    port: hunter2\n");
    let err = load(&LoadOptions { config_file: Some(file.clone()), ..dir.options(&[]) }).unwrap_err();
    assert_eq!(err.key, "storage.redis.port");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    std::fs::write(&file, "oauth_providers:\n  dev:\n    scopes: \"hunter2\"\n").unwrap();
    let err = load(&LoadOptions { config_file: Some(file), ..dir.options(&[]) }).unwrap_err();
    assert_eq!(err.key, "oauth_providers.dev.scopes");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_service_without_url_is_reported_by_key() {
    let dir = TempDir::new();
    dir.write("default.yaml", "mcp_services:\n  calc:\n    name: Calc\n");
    let err = load(&dir.options(&[])).unwrap_err();
    assert_eq!(err.key, "mcp_services.calc.url");
}

#[test]
fn variables_expand_in_parsed_values_so_yaml_syntax_in_secrets_survives() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("mine.yaml", GOOGLE);
    let tricky = "x: y\n# not: a comment\n  - z \"q\" ${OTHER}";
    let env = [("GOOGLE_CLIENT_ID", "id"), ("GOOGLE_CLIENT_SECRET", tricky), ("OTHER", "no")];
    let settings = load(&LoadOptions { config_file: Some(file), ..dir.options(&env) }).unwrap();
    assert_eq!(secret(&settings.oauth_providers["google"].client_secret), tricky);
    assert_eq!(keys(&settings.mcp_services), ["calculator"]);
}

#[test]
fn unset_variables_expand_to_empty_and_validation_names_the_field() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("mine.yaml", GOOGLE);
    let err = load(&LoadOptions { config_file: Some(file), ..dir.options(&[]) }).unwrap_err();
    assert_eq!(err.key, "oauth_providers.google.client_id");
}

#[test]
fn ensure_session_secret_fills_only_an_empty_secret() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let mut settings = load(&dir.options(&[])).unwrap();
    assert!(ensure_session_secret(&mut settings));
    let generated = settings.session_secret.expose_secret().to_owned();
    assert!(generated.len() >= 43);
    assert!(!ensure_session_secret(&mut settings));
    assert_eq!(settings.session_secret.expose_secret(), generated);
    let mut other = load(&dir.options(&[])).unwrap();
    ensure_session_secret(&mut other);
    assert_ne!(other.session_secret.expose_secret(), generated);
}

/// The seed README's quick start `config.yaml`, verbatim.
const SEED_QUICK_START: &str = r#"# Gateway settings
host: "localhost"
port: 8080
issuer: "http://localhost:8080"
session_secret: "your-dev-secret-change-in-production"
debug: true

# OAuth provider
oauth_providers:
  google:
    client_id: "${GOOGLE_CLIENT_ID}"
    client_secret: "${GOOGLE_CLIENT_SECRET}"
    scopes: ["openid", "email", "profile"]

# Example service (replace with your MCP service)
mcp_services:
  calculator:
    name: "Calculator Service"
    url: "http://localhost:3001"
    oauth_provider: "google"
    auth_required: true
    scopes: ["read", "calculate"]
"#;

/// The seed README's production snippets (gateway settings, production CORS, provider,
/// services, Redis storage), verbatim and concatenated.
const SEED_PRODUCTION: &str = r#"host: "0.0.0.0"
port: 8080
issuer: "https://mcp-gateway.example.com"
session_secret: "production-secret-key"
debug: false
cors:
  allow_origins: 
    - "https://myapp.example.com"
    - "https://dashboard.example.com"
  allow_credentials: true
  allow_methods: ["GET", "POST", "OPTIONS"]
  allow_headers: 
    - "Authorization"
    - "Content-Type"
    - "MCP-Protocol-Version"
oauth_providers:
  google:
    client_id: "${GOOGLE_CLIENT_ID}"
    client_secret: "${GOOGLE_CLIENT_SECRET}"
    scopes: ["openid", "email", "profile"]
mcp_services:
  calculator:
    name: "Calculator Service"
    url: "http://calculator:3001"
    oauth_provider: "google"  # Must match the configured OAuth provider
    auth_required: true
    scopes: ["read", "calculate"]
    timeout: 30000
  
  # All authenticated services must use the same OAuth provider
  weather:
    name: "Weather Service"
    url: "http://weather:3002"
    oauth_provider: "google"  # Same as above
    auth_required: true
    scopes: ["read"]
storage:
  type: "redis"
  redis:
    host: "${REDIS_HOST:-localhost}"
    port: 6379
    password: "${REDIS_PASSWORD}"
    ssl: true
    max_connections: 20
"#;

const GOOGLE_ENV: [(&str, &str); 2] = [("GOOGLE_CLIENT_ID", "gid"), ("GOOGLE_CLIENT_SECRET", "gsecret")];

#[test]
fn the_seed_quick_start_config_loads_unchanged() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("config.yaml", SEED_QUICK_START);
    let settings = load(&LoadOptions { config_file: Some(file), ..dir.options(&GOOGLE_ENV) }).unwrap();
    assert_eq!((settings.host.as_str(), settings.port), ("localhost", 8080));
    assert_eq!(settings.issuer, "http://localhost:8080");
    assert!(settings.debug);
    assert_eq!(keys(&settings.oauth_providers), ["google"]);
    let google = &settings.oauth_providers["google"];
    assert_eq!((google.client_id.as_str(), secret(&google.client_secret)), ("gid", "gsecret"));
    assert_eq!(google.scopes, ["openid", "email", "profile"]);
    let calc = &settings.mcp_services["calculator"];
    assert_eq!(keys(&settings.mcp_services), ["calculator"]);
    assert_eq!(
        (calc.url.as_str(), calc.oauth_provider.as_deref()),
        ("http://localhost:3001", Some("google"))
    );
    assert_eq!(calc.scopes, ["read", "calculate"]);
    assert_eq!(calc.timeout, 30_000);
}

#[test]
fn the_seed_production_config_loads_and_only_its_example_secret_is_refused() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("production.yaml", SEED_PRODUCTION);
    let options = LoadOptions { config_file: Some(file), ..dir.options(&GOOGLE_ENV) };
    let err = load(&options).unwrap_err();
    assert_eq!(err.key, "session_secret");

    let settings = load_unvalidated(&options).unwrap();
    assert_eq!(settings.storage.kind, crate::config::StorageKind::Redis);
    assert_eq!(settings.storage.redis.host, "localhost");
    assert_eq!(secret(&settings.storage.redis.password), "");
    assert!(settings.storage.redis.ssl);
    assert_eq!(settings.storage.redis.max_connections, 20);
    assert_eq!(settings.cors.allow_origins.len(), 2);
    assert!(settings.cors.allow_credentials);
    assert_eq!(keys(&settings.mcp_services), ["calculator", "weather"]);

    let mut env = options.env.clone();
    env.insert("REDIS_HOST".into(), "redis.prod".into());
    env.insert("MCP_GATEWAY__SESSION_SECRET".into(), "a-real-secret-of-forty-characters-000000".into());
    let settings = load(&LoadOptions { env, ..options }).unwrap();
    assert_eq!(settings.storage.redis.host, "redis.prod");
}

/// Loads `yaml` as the `--config` file over `DEFAULT`, with `env`, and returns the error.
fn refused(yaml: &str, env: &[(&str, &str)]) -> ConfigError {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("mine.yaml", yaml);
    match load(&LoadOptions { config_file: Some(file), ..dir.options(env) }) {
        Ok(_) => panic!("should be refused: {yaml} {env:?}"),
        Err(e) => e,
    }
}

#[test]
fn unknown_keys_in_files_are_refused_with_the_closest_known_key() {
    let cases = [
        ("tokens:\n  acess_token_ttl: 5\n", "tokens.acess_token_ttl: unknown key (did you mean tokens.access_token_ttl?)"),
        ("storage:\n  redis:\n    hots: r\n", "storage.redis.hots: unknown key (did you mean storage.redis.host?)"),
        (
            "mcp_services:\n  calc:\n    name: C\n    url: 'http://c'\n    scope: [read]\n",
            "mcp_services.calc.scope: unknown key (did you mean mcp_services.calc.scopes?)",
        ),
        (
            "oauth_providers:\n  google:\n    client_id: a\n    clientsecret: b\n",
            "oauth_providers.google.clientsecret: unknown key (did you mean oauth_providers.google.client_secret?)",
        ),
        (
            "cors:\n  allow-origins: ['https://a']\n",
            "cors.allow-origins: unknown key (did you mean cors.allow_origins?)",
        ),
        // A typo that also leaves a required field missing names the typo, not the missing field.
        (
            "mcp_services:\n  calc:\n    nmae: C\n    url: 'http://c'\n",
            "mcp_services.calc.nmae: unknown key (did you mean mcp_services.calc.name?)",
        ),
        (
            "limits:\n  register: {per_minute: 1, burts: 2}\n",
            "limits.register.burts: unknown key (did you mean limits.register.burst?)",
        ),
        // A known key in the wrong place points to where it belongs.
        ("access_token_ttl: 5\n", "access_token_ttl: unknown key (did you mean tokens.access_token_ttl?)"),
        ("redis:\n  host: r\n", "redis: unknown key (did you mean storage.redis?)"),
        // Nothing close: no guess.
        ("colour: blue\n", "colour: unknown key"),
        ("storage:\n  zzz: 1\n", "storage.zzz: unknown key"),
        // Written without a value, it is still a mistake.
        ("tokens:\n  acess_token_ttl:\n", "tokens.acess_token_ttl: unknown key (did you mean tokens.access_token_ttl?)"),
    ];
    for (yaml, expected) in cases {
        let err = refused(yaml, &[]);
        assert_eq!(err.to_string(), format!("config error: {expected}"), "{yaml}");
    }
}

#[test]
fn several_unknown_keys_are_named_in_one_line() {
    let err = refused("zeta: 1\ntokens:\n  acess_token_ttl: 5\nalpha: 2\n", &[]);
    assert_eq!(err.key, "alpha");
    assert_eq!(err.problem, "unknown key (also unknown: tokens.acess_token_ttl, zeta)");
}

#[test]
fn unknown_keys_in_environment_variables_are_refused_the_same_way() {
    let err = refused("port: 8080\n", &[("MCP_GATEWAY__TOKENS__ACESS_TOKEN_TTL", "5")]);
    assert_eq!(
        err.to_string(),
        "config error: tokens.acess_token_ttl: unknown key (did you mean tokens.access_token_ttl?)"
    );
    let err = refused("port: 8080\n", &[("MCP_GATEWAY__MCP_SERVICES__EVERYTHING__TIMEOUTT", "5")]);
    assert_eq!(err.key, "mcp_services.everything.timeoutt");
    assert_eq!(err.problem, "unknown key (did you mean mcp_services.everything.timeout?)");
    let err = refused("port: 8080\n", &[("MCP_GATEWAY__ISUER", "https://gw.example.com")]);
    assert_eq!(err.to_string(), "config error: isuer: unknown key (did you mean issuer?)");
}

/// Every key the README documents, each set once. Options that default to none included.
const EVERY_KEY: &str = r#"
host: "127.0.0.1"
port: 8080
issuer: "https://gw.example.com"
session_secret: "0123456789abcdef0123456789abcdef-every"
debug: false
cors:
  allow_origins: ["https://app.example.com"]
  allow_credentials: true
  allow_methods: ["GET", "POST"]
  allow_headers: ["Authorization"]
  expose_headers: ["WWW-Authenticate"]
storage:
  type: redis
  fallback_to_memory: false
  redis:
    url: "redis://redis:6379/0"
    host: redis
    port: 6379
    password: pw
    db: 0
    ssl: false
    max_connections: 20
    key_prefix: "gw:"
    connect_timeout_ms: 2000
    command_timeout_ms: 2000
  vault:
    url: "https://vault:8200"
    auth_method: approle
    token: t
    role_id: r
    secret_id: s
    approle_mount: approle
    mount_point: secret
    path_prefix: mcp-gateway
    namespace: ns
    timeout_ms: 5000
    sweep_interval_secs: 60
oauth_providers:
  okta:
    client_id: id
    client_secret: s
    scopes: [openid]
    authorization_url: "https://dev-1.okta.com/a"
    token_url: "https://dev-1.okta.com/t"
    userinfo_url: "https://dev-1.okta.com/u"
    issuer: "https://dev-1.okta.com/oauth2/default"
    domain: dev-1.okta.com
mcp_services:
  calc:
    name: Calc
    url: "http://calc:3001/mcp"
    oauth_provider: okta
    auth_required: true
    scopes: [read]
    tool_scopes: {"tools/call": [write]}
    timeout: 30000
tokens:
  access_token_ttl: 3600
  refresh_token_ttl: 2592000
  refresh_grace: 10
  code_ttl: 60
  login_ttl: 600
  consent_ttl: 7776000
runtime:
  workers: 2
  mailbox_capacity: 1024
  token_cache_size: 10000
  allow_private_cimd: false
limits:
  register: {per_minute: 10, burst: 20}
  token: {per_minute: 120, burst: 60}
  authorize: {per_minute: 60, burst: 30}
  consent: {per_minute: 30, burst: 20}
  callback: {per_minute: 30, burst: 20}
  max_registration_bytes: 16384
  max_redirect_uris: 20
  max_pending_authorizations: 10000
  unused_client_ttl: 2592000
trusted_proxies: ["10.0.0.0/8"]
"#;

#[test]
fn every_documented_key_is_known() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("every.yaml", EVERY_KEY);
    let settings = load(&LoadOptions { config_file: Some(file), ..dir.options(&[]) }).unwrap();
    assert_eq!(settings.storage.vault.namespace.as_deref(), Some("ns"));
    assert_eq!(settings.oauth_providers["okta"].domain.as_deref(), Some("dev-1.okta.com"));
}

/// What `check-config` prints (every field, whatever the types gain later) loads again: the
/// printed names and the accepted names are one set.
#[test]
fn the_printed_configuration_loads_again_without_unknown_keys() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("every.yaml", EVERY_KEY);
    let settings = load(&LoadOptions { config_file: Some(file), ..dir.options(&[]) }).unwrap();
    let printed = crate::config::render(&settings, crate::config::OutputFormat::Yaml).unwrap();
    let again = dir.write("printed.yaml", &printed);
    load_unvalidated(&LoadOptions { config_file: Some(again), ..dir.options(&[]) })
        .unwrap_or_else(|e| panic!("{e}\n{printed}"));
}

#[test]
fn list_keys_take_comma_separated_or_json_values_from_the_environment() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let env = [
        ("MCP_GATEWAY__CORS__ALLOW_ORIGINS", "https://a, https://b"),
        ("MCP_GATEWAY__CORS__EXPOSE_HEADERS", r#"["X-One", "X-Two,Three"]"#),
        ("MCP_GATEWAY__CORS__ALLOW_METHODS", "[]"),
        ("MCP_GATEWAY__TRUSTED_PROXIES", "10.0.0.0/8,::1"),
        ("MCP_GATEWAY__MCP_SERVICES__EVERYTHING__SCOPES", "read,write"),
        ("MCP_GATEWAY__MCP_SERVICES__EVERYTHING__TOOL_SCOPES__DELETE", "admin"),
    ];
    let settings = load(&dir.options(&env)).unwrap();
    assert_eq!(settings.cors.allow_origins, ["https://a", "https://b"]);
    assert_eq!(settings.cors.expose_headers, ["X-One", "X-Two,Three"]);
    assert!(settings.cors.allow_methods.is_empty());
    assert!(settings.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
    assert!(settings.trusted_proxies.contains("::1".parse().unwrap()));
    let everything = &settings.mcp_services["everything"];
    assert_eq!(everything.scopes, ["read", "write"]);
    assert_eq!(everything.tool_scopes["delete"], ["admin"]);
    // Not a list: a comma stays part of the value.
    let settings = load(&dir.options(&[("MCP_GATEWAY__STORAGE__REDIS__KEY_PREFIX", "a,b")])).unwrap();
    assert_eq!(settings.storage.redis.key_prefix, "a,b");
}

#[test]
fn a_broken_json_list_in_the_environment_names_the_key_without_echoing_it() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let err =
        load(&dir.options(&[("MCP_GATEWAY__CORS__ALLOW_ORIGINS", r#"["https://hunter2","#)])).unwrap_err();
    assert_eq!(err.key, "cors.allow_origins");
    assert!(err.problem.contains("MCP_GATEWAY__CORS__ALLOW_ORIGINS"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn environment_variables_reach_map_entries_whatever_their_case_in_the_file() {
    let dir = TempDir::new();
    dir.write("default.yaml", DEFAULT);
    let file = dir.write("mine.yaml", "mcp_services:\n  myService:\n    name: Mine\n    url: 'http://m'\n");
    let env = [("MCP_GATEWAY__MCP_SERVICES__MYSERVICE__TIMEOUT", "5000")];
    let settings = load(&LoadOptions { config_file: Some(file), ..dir.options(&env) }).unwrap();
    assert_eq!(keys(&settings.mcp_services), ["myService"]);
    assert_eq!(settings.mcp_services["myService"].timeout, 5000);
}
