//! The real `mcp-gateway` binary: exit codes, one-line config errors, `check-config` redaction,
//! the example configs, and the default config starting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-gateway");

/// Values of every secret handed to the binary; none may appear in its output.
const SECRETS: [(&str, &str); 8] = [
    ("SESSION_SECRET", "session-secret-7f3a9c1e5b2d8f4a6c0e1b3d5f7a9c2e"),
    ("GOOGLE_CLIENT_SECRET", "google-secret-a1b2c3"),
    ("GITHUB_CLIENT_SECRET", "github-secret-d4e5f6"),
    ("OKTA_CLIENT_SECRET", "okta-secret-g7h8i9"),
    ("CUSTOM_CLIENT_SECRET", "custom-secret-j1k2l3"),
    ("OIDC_CLIENT_SECRET", "oidc-secret-m4n5o6"),
    ("REDIS_PASSWORD", "redis-password-p7q8r9"),
    ("VAULT_TOKEN", "vault-token-s1t2u3"),
];

/// Non-secret variables the example configs read.
const PLAIN_ENV: [(&str, &str); 7] = [
    ("GOOGLE_CLIENT_ID", "google-id"),
    ("GITHUB_CLIENT_ID", "github-id"),
    ("OKTA_CLIENT_ID", "okta-id"),
    ("OKTA_DOMAIN", "dev-123.okta.com"),
    ("CUSTOM_CLIENT_ID", "custom-id"),
    ("OIDC_CLIENT_ID", "oidc-id"),
    ("OIDC_ISSUER", "https://idp.example.com/realms/main"),
];

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// A scratch directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mcp-gateway-cli-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean environment: only the shipped config directory.
fn gateway() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("MCP_CONFIG_DIR", config_dir()).stdin(Stdio::null());
    cmd
}

/// Runs to completion, killing the process if it is still running after 30 s (a config that
/// should have been refused but started a server).
fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("{what}: still running after 30 s; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

/// Starting with `yaml` as `--config` (plus `args`) exits 2 with one line naming `key`.
fn assert_refused(yaml: &str, args: &[&str], key: &str) {
    let scratch = Scratch::new();
    let file = scratch.file("config.yaml", yaml);
    eprintln!("case: {yaml:?} {args:?}");
    let out = run(gateway().arg("--config").arg(&file).args(["--port", "0"]).args(args));
    let lines = stderr_lines(&out);
    assert_eq!(out.status.code(), Some(2), "{yaml}\nstderr: {lines:?}");
    assert_eq!(lines.len(), 1, "exactly one line for {yaml}: {lines:?}");
    assert!(lines[0].starts_with(&format!("config error: {key}: ")), "{yaml}\n{}", lines[0]);
}

const GOOD_SECRET: &str = "session_secret: \"0123456789abcdef0123456789abcdef\"\n";

#[test]
fn bad_configs_stop_startup_with_one_line_and_exit_2() {
    let google = "oauth_providers:\n  google: {client_id: a, client_secret: b}\n";
    let cases: Vec<(String, &[&str], &str)> = vec![
        (format!("{GOOD_SECRET}oauth_providers:\n  google: {{client_id: a, client_secret: b}}\n  github: {{client_id: a, client_secret: b}}\n"), &[], "oauth_providers"),
        (format!("{GOOD_SECRET}oauth_providers: {{}}\n"), &[], "oauth_providers"),
        (format!("{GOOD_SECRET}oauth_providers:\n  facebook: {{client_id: a}}\n"), &[], "oauth_providers.facebook"),
        (format!("{GOOD_SECRET}oauth_providers:\n  google: {{client_id: a}}\n"), &[], "oauth_providers.google.client_secret"),
        (format!("{GOOD_SECRET}oauth_providers:\n  okta: {{client_id: a}}\n"), &[], "oauth_providers.okta.domain"),
        (format!("{GOOD_SECRET}oauth_providers:\n  custom: {{client_id: a}}\n"), &[], "oauth_providers.custom.authorization_url"),
        (format!("{GOOD_SECRET}oauth_providers:\n  oidc: {{client_id: a}}\n"), &[], "oauth_providers.oidc.issuer"),
        (format!("{GOOD_SECRET}{google}mcp_services:\n  calc: {{name: C, url: 'http://c', oauth_provider: github}}\n"), &[], "mcp_services.calc.oauth_provider"),
        (format!("{GOOD_SECRET}{google}mcp_services:\n  calc: {{name: C, url: 'calc:3001/mcp'}}\n"), &[], "mcp_services.calc.url"),
        (format!("{GOOD_SECRET}{google}issuer: 'https://gw.example.com/?a=b'\n"), &[], "issuer"),
        (format!("{GOOD_SECRET}{google}issuer: 'gw.example.com'\n"), &[], "issuer"),
        (format!("session_secret: your-dev-secret-change-in-production\n{google}"), &[], "session_secret"),
        (format!("session_secret: production-secret-key\n{google}"), &[], "session_secret"),
        (format!("session_secret: change-me\n{google}"), &[], "session_secret"),
        (format!("session_secret: only-31-characters-long-0000000\n{google}"), &[], "session_secret"),
        (format!("{google}storage: {{type: redis}}\n"), &[], "session_secret"),
        (format!("{GOOD_SECRET}{google}storage: {{type: postgres}}\n"), &[], "storage.type"),
        ("oauth_providers:\n  dev: {}\n".to_owned(), &["--host", "0.0.0.0"], "oauth_providers.dev"),
        ("host: 0.0.0.0\n".to_owned(), &[], "oauth_providers.dev"),
        (format!("{GOOD_SECRET}{google}tokens: {{code_ttl: 601}}\n"), &[], "tokens.code_ttl"),
        (format!("{GOOD_SECRET}{google}mcp_services:\n  'my service': {{name: C, url: 'http://c'}}\n"), &[], "mcp_services.my service"),
        (format!("{GOOD_SECRET}{google}mcp_services:\n  oauth: {{name: C, url: 'http://c'}}\n"), &[], "mcp_services.oauth"),
        (format!("{GOOD_SECRET}{google}mcp_services:\n  .well-known: {{name: C, url: 'http://c'}}\n"), &[], "mcp_services..well-known"),
        ("tokens: {code_ttl: soon}\n".to_owned(), &[], "tokens.code_ttl"),
        (format!("{GOOD_SECRET}{google}tokens: {{acess_token_ttl: 5}}\n"), &[], "tokens.acess_token_ttl"),
        (format!("{GOOD_SECRET}{google}mcp_services:\n  calc: {{name: C, url: 'http://c', scope: [a]}}\n"), &[], "mcp_services.calc.scope"),
        (format!("{GOOD_SECRET}{google}issuer: 'http://gw.example.com'\n"), &[], "issuer"),
        (format!("{GOOD_SECRET}{google}host: 10.0.0.5\n"), &[], "issuer"),
    ];
    for (yaml, args, key) in cases {
        assert_refused(&yaml, args, key);
    }
}

#[test]
fn the_example_secret_is_accepted_with_debug() {
    let scratch = Scratch::new();
    let file = scratch.file("c.yaml", "session_secret: change-me\n");
    let out = run(gateway().args(["check-config", "--debug", "--config"]).arg(&file));
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
}

#[test]
fn invalid_yaml_and_missing_files_exit_2_with_one_line() {
    let scratch = Scratch::new();
    let file = scratch.file("broken.yaml", "oauth_providers: [unclosed\n  x: {\n");
    for args in [
        vec!["--config".to_owned(), file.display().to_string()],
        vec!["--config".into(), "/nonexistent/c.yaml".into()],
    ] {
        let out = run(gateway().args(&args));
        let lines = stderr_lines(&out);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with(&format!("config error: {}: ", args[1])), "{}", lines[0]);
    }
    // No default.yaml and no --config.
    let out = run(gateway().env("MCP_CONFIG_DIR", &scratch.0));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_lines(&out)[0].contains("default.yaml: not found"));
}

#[test]
fn check_config_exits_2_on_a_bad_config_and_prints_nothing() {
    let out = run(gateway().args(["check-config", "--host", "0.0.0.0"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(stderr_lines(&out).len(), 1);
}

/// `check-config` with every example file, all secrets supplied through the environment.
#[test]
fn every_example_config_passes_check_config_with_secrets_redacted() {
    for name in example_names() {
        for format in ["yaml", "json"] {
            let file = config_dir().join(format!("{name}.yaml"));
            let mut cmd = gateway();
            cmd.args(["check-config", "--format", format, "--config"]).arg(&file);
            cmd.envs(SECRETS).envs(PLAIN_ENV);
            let out = run(&mut cmd);
            let stdout = String::from_utf8(out.stdout.clone()).unwrap();
            assert_eq!(out.status.code(), Some(0), "{name}: {:?}", stderr_lines(&out));
            for (var, secret) in SECRETS {
                assert!(!stdout.contains(secret), "{name} ({format}) printed {var}:\n{stdout}");
            }
            if name != "default" {
                assert!(stdout.contains("[redacted]"), "{name}:\n{stdout}");
            }
            if format == "json" {
                serde_json::from_str::<serde_json::Value>(&stdout).unwrap();
            }
        }
    }
}

/// Every `*.yaml` in `config/`, by name.
fn example_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(config_dir())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".yaml").map(str::to_owned))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    names
}

/// The variables an example's header comment tells to `export`, with a plausible value each:
/// the header's own value when it gives one, otherwise one made up from the name.
fn documented_variables(text: &str) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let Some(exports) = line.trim_start_matches('#').trim().strip_prefix("export ") else { continue };
        for word in exports.split_whitespace() {
            let Some((name, value)) = word.split_once('=') else { continue };
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                continue;
            }
            let value = if value.is_empty() || value.starts_with("...") || value.starts_with("$(") {
                format!("{}-value-0123456789abcdef0123456789abcdef", name.to_ascii_lowercase())
            } else {
                value.to_owned()
            };
            vars.push((name.to_owned(), value));
        }
    }
    vars
}

/// `${VAR}` references without a `:-default`: what a file cannot do without.
fn required_references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let end = after.find('}').unwrap_or(after.len());
            if !after[..end].contains(":-") {
                found.push(after[..end].to_owned());
            }
            rest = &after[end..];
        }
    }
    found
}

/// Each example passes `check-config` with exactly the variables its header comment documents
/// (and no others), and documents every variable it needs.
#[test]
fn every_example_config_passes_check_config_with_its_documented_variables() {
    for name in example_names() {
        let file = config_dir().join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&file).unwrap();
        let vars = documented_variables(&text);
        for needed in required_references(&text) {
            assert!(
                vars.iter().any(|(v, _)| *v == needed),
                "{name}.yaml needs ${{{needed}}} but its header does not say so"
            );
        }
        let mut cmd = gateway();
        cmd.args(["check-config", "--format", "json", "--config"]).arg(&file);
        cmd.envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(0), "{name} with {vars:?}: {:?}", stderr_lines(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let issuer = json["issuer"].as_str().unwrap();
        assert!(
            issuer.starts_with("https://")
                || issuer.starts_with("http://localhost:")
                || issuer.starts_with("http://127.0.0.1:"),
            "{name}: {issuer}"
        );
    }
}

#[test]
fn unknown_keys_in_the_environment_stop_startup_and_check_config() {
    for args in [&["--port", "0"][..], &["check-config"][..]] {
        let out = run(gateway().args(args).env("MCP_GATEWAY__TOKENS__ACESS_TOKEN_TTL", "5"));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert_eq!(
            stderr_lines(&out),
            ["config error: tokens.acess_token_ttl: unknown key (did you mean tokens.access_token_ttl?)"]
        );
    }
}

#[test]
fn list_keys_can_be_set_from_the_environment() {
    for value in ["https://a.example,https://b.example", r#"["https://a.example","https://b.example"]"#] {
        let out = run(gateway()
            .args(["check-config", "--format", "json"])
            .env("MCP_GATEWAY__CORS__ALLOW_ORIGINS", value));
        assert_eq!(out.status.code(), Some(0), "{value}: {:?}", stderr_lines(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            json["cors"]["allow_origins"],
            serde_json::json!(["https://a.example", "https://b.example"])
        );
    }
}

#[test]
fn check_config_shows_the_effective_layered_values() {
    let mut cmd = gateway();
    cmd.args(["check-config", "--format", "json", "--port", "9999"])
        .env("MCP_GATEWAY_HOST", "localhost")
        .env("MCP_GATEWAY__STORAGE__REDIS__HOST", "redis.internal")
        .env("MCP_GATEWAY__SESSION_SECRET", "x-secret-from-env-0123456789abcdef01234");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["host"], "localhost");
    assert_eq!(json["port"], 9999);
    // The values really used: the issuer computed from host and port, the worker count.
    assert_eq!(json["issuer"], "http://localhost:9999");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(json["runtime"]["workers"], cores);
    assert_eq!(json["storage"]["redis"]["host"], "redis.internal");
    assert_eq!(json["session_secret"], "[redacted]");
    assert_eq!(json["oauth_providers"].as_object().unwrap().keys().collect::<Vec<_>>(), ["dev"]);
    assert_eq!(json["mcp_services"]["everything"]["url"], "http://127.0.0.1:3001/mcp");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("x-secret-from-env"));
}

/// Kills the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Any HTTP response to `GET /health`.
fn http_answer(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn the_default_config_starts_and_answers_http() {
    let port = free_port();
    let child = gateway()
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        if let Some(answer) = http_answer(port) {
            break answer;
        }
        if let Some(status) = running.0.try_wait().unwrap() {
            let mut err = String::new();
            running.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("exited with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "no HTTP answer on port {port} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    running.0.kill().unwrap();
    running.0.wait().unwrap();
    let mut err = String::new();
    running.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("set session_secret so sessions survive restarts"), "{err}");
}

#[test]
fn rotate_keys_refuses_memory_storage() {
    let out = run(gateway().arg("rotate-keys"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a shared storage backend"));
}

/// Against the machine's Redis (scripts/test-services.sh starts it): each run adds one key to
/// the set kept under a prefix of its own, and the earlier key stays for verification.
#[test]
fn rotate_keys_adds_a_key_to_the_shared_set() {
    let scratch = Scratch::new();
    let prefix = format!("cli-rotate-{}-{}:", std::process::id(), free_port());
    let yaml = format!(
        "{GOOD_SECRET}storage:\n  type: redis\n  redis: {{ host: 127.0.0.1, port: 6379, key_prefix: \"{prefix}\" }}\n"
    );
    let file = scratch.file("redis.yaml", &yaml);
    let first = run(gateway().arg("--config").arg(&file).arg("rotate-keys"));
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    let second = run(gateway().arg("--config").arg(&file).arg("rotate-keys"));
    assert_eq!(second.status.code(), Some(0), "{}", String::from_utf8_lossy(&second.stderr));
    let first_kid = key_id(&first);
    let second_out = String::from_utf8_lossy(&second.stdout).into_owned();
    assert_ne!(first_kid, key_id(&second));
    assert!(second_out.contains(&first_kid), "the first key is kept in the set: {second_out}");
    let audited: Value =
        second_out.lines().nth(1).and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
    assert_eq!(
        (audited["event"].as_str(), audited["action"].as_str(), audited["outcome"].as_str()),
        (Some("admin_action"), Some("rotate_keys"), Some("success")),
        "the audit line follows the answer: {second_out}"
    );
}

#[test]
fn the_grants_and_clients_commands_refuse_memory_storage() {
    for args in [&["grants", "list"][..], &["clients", "list"], &["grants", "revoke", "--user", "a@b.c"]] {
        let out = run(gateway().args(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("use its admin API"), "{args:?}");
    }
}

/// Against the machine's Redis, under a prefix of its own: nothing to list yet, JSON for
/// scripts, the audit line on standard error (standard output is the answer), and a
/// revocation naming nobody is refused.
#[test]
fn the_grants_and_clients_commands_answer_from_the_shared_store() {
    let scratch = Scratch::new();
    let prefix = format!("cli-grants-{}-{}:", std::process::id(), free_port());
    let yaml = format!(
        "{GOOD_SECRET}storage:\n  type: redis\n  redis: {{ host: 127.0.0.1, port: 6379, key_prefix: \"{prefix}\" }}\n"
    );
    let file = scratch.file("redis.yaml", &yaml);
    let listed = run(gateway().arg("--config").arg(&file).args(["grants", "list", "--json"]));
    assert_eq!(listed.status.code(), Some(0), "{}", String::from_utf8_lossy(&listed.stderr));
    let answer: Value = serde_json::from_slice(&listed.stdout).expect("stdout is the JSON answer alone");
    assert_eq!(answer, serde_json::json!({ "grants": [] }));
    let audited: Value = String::from_utf8_lossy(&listed.stderr)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    assert_eq!(
        (audited["action"].as_str(), audited["request_id"].as_str()),
        (Some("list_grants"), Some("cli"))
    );

    let clients = run(gateway().arg("--config").arg(&file).args(["clients", "list"]));
    assert_eq!(String::from_utf8_lossy(&clients.stdout), "no registered clients\n");
    let everyone = run(gateway().arg("--config").arg(&file).args(["grants", "revoke"]));
    assert_eq!(everyone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&everyone.stderr).contains("name a user, a client, a service or a grant"));
}

/// `log.format: json`: every line the running gateway writes to stderr is one JSON object.
#[test]
fn json_logs_are_one_object_per_line() {
    let port = free_port();
    let child = gateway()
        .args(["--port", &port.to_string()])
        .env("MCP_GATEWAY__LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_answer(port).is_none() {
        assert!(Instant::now() < deadline, "no HTTP answer on port {port} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    running.0.kill().unwrap();
    running.0.wait().unwrap();
    let mut err = String::new();
    running.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    assert!(lines.len() >= 2, "{err}");
    for line in &lines {
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
        assert!(
            line["level"].is_string() && line["target"].is_string() && line["message"].is_string(),
            "{line}"
        );
    }
    assert!(lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("listening on"))), "{err}");
}

fn key_id(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(3).unwrap_or_default().to_owned()
}

/// `healthcheck` (the container's health check): 1 while nothing answers, 0 once the gateway
/// on this config's port is ready, 1 for an answer that is not 2xx, whatever `--url` it asks.
#[test]
fn healthcheck_exits_0_only_for_a_ready_gateway() {
    let port = free_port();
    let ask = |extra: &[&str]| {
        run(gateway().args(["--port", &port.to_string(), "healthcheck", "--timeout", "2"]).args(extra))
    };

    let before = ask(&[]);
    assert_eq!(
        before.status.code(),
        Some(1),
        "nothing listens yet: {}",
        String::from_utf8_lossy(&before.stderr)
    );

    let child = gateway()
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let out = ask(&[]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ready.status.code(), Some(0), "{}", String::from_utf8_lossy(&ready.stderr));
    assert!(String::from_utf8_lossy(&ready.stdout).contains(&format!("http://127.0.0.1:{port}/ready")));

    let missing = ask(&["--url", &format!("http://127.0.0.1:{port}/no-such-page")]);
    assert_eq!(missing.status.code(), Some(1), "a 404 is not healthy");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

/// `clients:` entries that could never work stop startup, each naming its key; good ones are
/// listed by `check-config` with their secret redacted.
#[test]
fn configured_clients_are_checked_and_listed_with_secrets_redacted() {
    let base = format!(
        "{GOOD_SECRET}oauth_providers:\n  google: {{client_id: a, client_secret: b}}\nmcp_services:\n  calc: {{name: C, url: 'http://c'}}\n"
    );
    let client =
        |body: &str| format!("{base}clients:\n  ci-bot: {{name: CI bot, services: [calc], {body}}}\n");
    let cases = [
        (client("token_endpoint_auth_method: private_key_jwt"), "clients.ci-bot.token_endpoint_auth_method"),
        (client("token_endpoint_auth_method: client_secret_basic"), "clients.ci-bot.client_secret"),
        (client("token_endpoint_auth_method: client_secret_post, client_secret: ''"), "clients.ci-bot.client_secret"),
        (client("token_endpoint_auth_method: none"), "clients.ci-bot.token_endpoint_auth_method"),
        (
            format!("{base}clients:\n  ci-bot: {{name: B, services: [nope], token_endpoint_auth_method: client_secret_basic, client_secret: s}}\n"),
            "clients.ci-bot.services",
        ),
        (
            client("token_endpoint_auth_method: client_secret_basic, client_secret: s, grant_types: [password]"),
            "clients.ci-bot.grant_types",
        ),
        (
            client("token_endpoint_auth_method: client_secret_basic, client_secret: s, grant_types: [authorization_code]"),
            "clients.ci-bot.redirect_uris",
        ),
        (
            client("token_endpoint_auth_method: private_key_jwt, jwks_uri: 'http://keys.example/jwks.json'"),
            "clients.ci-bot.jwks_uri",
        ),
        (client("token_endpoint_auth_method: private_key_jwt, jwks: {keys: []}"), "clients.ci-bot.jwks"),
        (client("token_endpoint_auth_method: client_secret_basic, client_secret: s, colour: red"), "clients.ci-bot.colour"),
        (
            format!("{base}clients:\n  'https://x/y': {{name: B, services: [calc], token_endpoint_auth_method: client_secret_basic, client_secret: s}}\n"),
            "clients.https://x/y",
        ),
    ];
    for (yaml, key) in cases {
        assert_refused(&yaml, &[], key);
    }

    let scratch = Scratch::new();
    let good = format!(
        "{base}clients:\n  ci-bot: {{name: CI bot, services: [calc], scopes: [read], token_endpoint_auth_method: client_secret_basic, client_secret: '${{CI_BOT_SECRET}}'}}\n  \
         signer: {{name: Signer, services: [calc], token_endpoint_auth_method: private_key_jwt, jwks_uri: 'https://ci.example.com/jwks.json'}}\n"
    );
    let file = scratch.file("config.yaml", &good);
    let out = run(gateway()
        .args(["check-config", "--format", "json", "--config"])
        .arg(&file)
        .env("CI_BOT_SECRET", "bot-secret-v4lue"));
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains("bot-secret-v4lue"), "{stdout}");
    let value: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["clients"]["ci-bot"]["client_secret"], "[redacted]");
    assert_eq!(value["clients"]["ci-bot"]["name"], "CI bot");
    assert_eq!(value["clients"]["signer"]["jwks_uri"], "https://ci.example.com/jwks.json");
}
