//! Nothing secret reaches the log (issue 13): a whole OAuth flow and its usual failures run
//! against a gateway in this process while a global logger captures every record at `Trace`;
//! then no token, code, state, verifier, client secret, cookie value, CSRF token, MCP session
//! id or the `session_secret` seen on the wire may appear in any captured line.
//!
//! This file is its own test binary, so the global logger is this file's. The gateway and a
//! tiny backend run on their own thread (one actix system); the test drives them with a small
//! blocking HTTP/1.1 client, so the test's own HTTP client logs nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use mcp_gateway::config::Settings;
use mcp_gateway::core::pkce;
use mcp_gateway::startup::Application;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// The capturing logger
// ---------------------------------------------------------------------------------------------

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Appends every record, whatever its level or target, as `LEVEL target: message`.
struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LINES.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }

    fn flush(&self) {}
}

fn install_logger() {
    static LOGGER: Capture = Capture;
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        log::set_logger(&LOGGER).expect("no other logger in this binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

// ---------------------------------------------------------------------------------------------
// A blocking HTTP/1.1 client with a cookie jar
// ---------------------------------------------------------------------------------------------

/// An HTTP answer, read whole.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn location(&self) -> String {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location; status {} body {}", self.status, self.body))
            .to_owned()
    }

    fn location_query(&self) -> BTreeMap<String, String> {
        let url = url::Url::parse(&self.location()).expect("absolute Location");
        url.query_pairs().into_owned().collect()
    }

    fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }
}

#[path = "support/blocking_http.rs"]
mod blocking_http;

/// One request on a fresh connection ([`blocking_http::send`]), its body as text.
fn send(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
    let answer = blocking_http::send(addr, method, target, headers, body);
    let body = answer.text();
    Reply { status: answer.status, headers: answer.headers, body }
}

fn encode_form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

/// Every value the test saw on the wire that must never be logged, with what it is.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        // Shorter values (an empty cookie that deletes one, say) would match by accident.
        if value.len() >= 8 && !self.0.iter().any(|(_, v)| v == value) {
            self.0.push((what.to_owned(), value.to_owned()));
        }
    }
}

/// The gateway as a browser and as a client see it: one cookie jar, and every cookie value
/// the gateway sets is recorded as a secret.
struct Session {
    addr: SocketAddr,
    cookies: BTreeMap<String, String>,
    secrets: Secrets,
}

impl Session {
    fn record(&mut self, reply: &Reply) {
        for (name, value) in &reply.headers {
            if name == "set-cookie" {
                let pair = value.split(';').next().unwrap_or("");
                if let Some((k, v)) = pair.split_once('=') {
                    self.cookies.insert(k.trim().to_owned(), v.trim().to_owned());
                    self.secrets.add(&format!("cookie {}", k.trim()), v.trim());
                }
            }
        }
    }

    fn cookie_header(&self) -> Vec<(&'static str, String)> {
        if self.cookies.is_empty() {
            return Vec::new();
        }
        let jar = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        vec![("Cookie", jar)]
    }

    /// A browser `GET` of a path or absolute URL on the gateway.
    fn browse(&mut self, path_or_url: &str) -> Reply {
        let target = match url::Url::parse(path_or_url) {
            Ok(url) => match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            },
            Err(_) => path_or_url.to_owned(),
        };
        let reply = send(self.addr, "GET", &target, &self.cookie_header(), b"");
        self.record(&reply);
        reply
    }

    /// A browser form `POST`.
    fn submit(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let mut headers = self.cookie_header();
        headers.push(("Content-Type", "application/x-www-form-urlencoded".into()));
        let reply = send(self.addr, "POST", path, &headers, &encode_form(form));
        self.record(&reply);
        reply
    }

    /// A client's form `POST` (no cookies).
    fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let headers = [("Content-Type", "application/x-www-form-urlencoded".to_owned())];
        let reply = send(self.addr, "POST", path, &headers, &encode_form(form));
        self.record(&reply);
        reply
    }

    fn register(&mut self, body: Value) -> (String, Option<String>) {
        let headers = [("Content-Type", "application/json".to_owned())];
        let reply = send(self.addr, "POST", "/oauth/register", &headers, body.to_string().as_bytes());
        assert_eq!(reply.status, 201, "registration: {}", reply.body);
        let body = reply.json();
        let secret = body["client_secret"].as_str().map(str::to_owned);
        if let Some(secret) = &secret {
            self.secrets.add("client secret", secret);
        }
        (body["client_id"].as_str().unwrap().to_owned(), secret)
    }

    /// Authorize (with `state` and a fresh PKCE pair) → consent page → approve (unless
    /// remembered) → dev login → callback. Returns the code and the verifier.
    fn authorize_and_login(&mut self, client_id: &str, resource: &str, email: &str) -> (String, String) {
        let verifier = format!("{}{}", random_hex(), random_hex());
        let state = format!("client-state-{}", random_hex());
        self.secrets.add("PKCE verifier", &verifier);
        self.secrets.add("client state", &state);
        let query = encode_form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("state", &state),
            ("code_challenge", &pkce::challenge_s256(&verifier)),
            ("code_challenge_method", "S256"),
            ("scope", "read"),
            ("resource", resource),
        ]);
        let page = self.browse(&format!("/oauth/authorize?{}", String::from_utf8(query).unwrap()));
        let upstream = if page.is_redirect() {
            page.location()
        } else {
            assert_eq!(page.status, 200, "consent page: {}", page.body);
            let pending_id = hidden_field(&page.body, "pending_id").expect("pending_id field");
            let csrf = hidden_field(&page.body, "csrf").expect("csrf field");
            self.secrets.add("CSRF token", &csrf);
            let approved = self.submit(
                "/oauth/consent",
                &[("pending_id", &pending_id), ("csrf", &csrf), ("action", "approve")],
            );
            assert!(approved.is_redirect(), "approve: {} {}", approved.status, approved.body);
            approved.location()
        };
        let up: BTreeMap<String, String> =
            url::Url::parse(&upstream).unwrap().query_pairs().into_owned().collect();
        assert!(upstream.contains("/oauth/dev/login"), "not the dev login: {upstream}");
        self.secrets.add("upstream state", &up["state"]);
        let login_page = self.browse(&upstream);
        assert_eq!(login_page.status, 200, "dev login page: {}", login_page.body);
        let submitted = self.submit(
            "/oauth/dev/login",
            &[
                ("state", &up["state"]),
                ("code_challenge", &up["code_challenge"]),
                ("name", "Log Tester"),
                ("email", email),
            ],
        );
        assert!(submitted.is_redirect(), "dev login: {} {}", submitted.status, submitted.body);
        self.secrets.add("dev login code", &submitted.location_query()["code"]);
        let back = self.browse(&submitted.location());
        assert!(back.is_redirect(), "callback: {} {}", back.status, back.body);
        let q = back.location_query();
        assert_eq!(q.get("state"), Some(&state), "state echoed: {}", back.location());
        let code = q.get("code").unwrap_or_else(|| panic!("no code: {}", back.location())).clone();
        self.secrets.add("authorization code", &code);
        (code, verifier)
    }

    /// Records the tokens of a token response (whole, the signature segment, the first 16
    /// characters of the refresh token) and returns `(access, refresh)`.
    fn tokens(&mut self, reply: &Reply) -> (String, String) {
        assert_eq!(reply.status, 200, "token: {}", reply.body);
        let body = reply.json();
        let access = body["access_token"].as_str().unwrap().to_owned();
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        self.secrets.add("access token", &access);
        self.secrets.add("access token signature", access.rsplit('.').next().unwrap());
        self.secrets.add("access token claims segment", access.split('.').nth(1).unwrap());
        self.secrets.add("refresh token", &refresh);
        self.secrets.add("refresh token prefix", &refresh.chars().take(16).collect::<String>());
        (access, refresh)
    }

    fn proxy(&mut self, token: &str, session: Option<&str>) -> Reply {
        self.proxy_body(token, session, br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
    }

    fn proxy_body(&mut self, token: &str, session: Option<&str>, body: &[u8]) -> Reply {
        let mut headers = vec![
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/json".to_owned()),
            ("Accept", "application/json, text/event-stream".to_owned()),
        ];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s.to_owned()));
        }
        let reply = send(self.addr, "POST", "/svc/mcp", &headers, body);
        if let Some(id) = reply.header("mcp-session-id") {
            self.secrets.add("MCP session id", id);
        }
        reply
    }
}

/// The value of `<input ... name="{name}" value="...">` in `html`.
fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].replace("&amp;", "&"))
}

fn borrow<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

const REDIRECT: &str = "http://127.0.0.1/callback";

// ---------------------------------------------------------------------------------------------
// The gateway and its backend
// ---------------------------------------------------------------------------------------------

/// Starts a backend answering `OK` (with an `Mcp-Session-Id`) and the gateway in front of it
/// (its audit trail appended to `audit_path`), on one actix system on its own thread. Returns
/// the gateway's address and session secret.
fn start(audit_path: &str) -> (SocketAddr, String) {
    let audit_path = audit_path.to_owned();
    let session_secret = format!("logs-session-secret-{}", random_hex());
    let secret = session_secret.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let session_id = format!("mcp-session-{}", random_hex());
            let backend = HttpServer::new(move || {
                let session_id = session_id.clone();
                App::new().default_service(web::to(move || {
                    let session_id = session_id.clone();
                    async move {
                        HttpResponse::Ok()
                            .insert_header(("Mcp-Session-Id", session_id))
                            .content_type("text/plain")
                            .body("OK")
                    }
                }))
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .expect("backend binds");
            let backend_port = backend.addrs()[0].port();
            actix_web::rt::spawn(backend.run());
            let off = json!({ "per_minute": 0, "burst": 0 });
            let settings: Settings = serde_json::from_value(json!({
                "host": "127.0.0.1",
                "port": 0,
                "session_secret": secret,
                "debug": true,
                "oauth_providers": { "dev": {} },
                "mcp_services": {
                    "svc": {
                        "name": "Logged service",
                        "url": format!("http://127.0.0.1:{backend_port}/mcp"),
                        "scopes": ["read"],
                    },
                },
                "runtime": { "workers": 2 },
                "audit": { "path": audit_path },
                "limits": {
                    "register": off, "token": off, "authorize": off, "consent": off, "callback": off,
                },
            }))
            .expect("settings deserialize");
            let app = Application::build(settings).await.expect("gateway builds");
            tx.send(app.port()).unwrap();
            app.run_until_stopped().await
        })
    });
    let port = rx.recv_timeout(Duration::from_secs(60)).expect("gateway started");
    (SocketAddr::from(([127, 0, 0, 1], port)), session_secret)
}

#[test]
fn no_secret_reaches_the_log_or_the_audit_trail() {
    install_logger();
    let audit_path = std::env::temp_dir().join(format!("mcp-gateway-audit-{}.jsonl", random_hex()));
    let (addr, session_secret) = start(audit_path.to_str().unwrap());
    let mut s = Session { addr, cookies: BTreeMap::new(), secrets: Secrets::default() };
    s.secrets.add("session_secret", &session_secret);
    let resource = format!("http://127.0.0.1:{}/svc/mcp", addr.port());
    let (client_id, _) = s.register(json!({ "client_name": "Log test", "redirect_uris": [REDIRECT] }));
    let (conf_id, conf_secret) = s.register(json!({
        "client_name": "Log test (confidential)",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "client_secret_post",
    }));
    let conf_secret = conf_secret.expect("client_secret_post gets a secret");

    // A code redeemed with the wrong PKCE verifier, then replayed with the right one.
    let (code, verifier) = s.authorize_and_login(&client_id, &resource, "ann@example.org");
    let wrong_verifier = format!("wrong-verifier-{}", random_hex());
    s.secrets.add("wrong PKCE verifier", &wrong_verifier);
    let exchange = |code: &str, verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("code_verifier", verifier.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("client_id", client_id.clone()),
        ]
    };
    let bad = s.post_form("/oauth/token", &borrow(&exchange(&code, &wrong_verifier)));
    assert_eq!(bad.status, 400, "bad verifier: {}", bad.body);
    assert_eq!(bad.json()["error"], "invalid_grant");
    let replay = s.post_form("/oauth/token", &borrow(&exchange(&code, &verifier)));
    assert_eq!(replay.status, 400, "used code: {}", replay.body);

    // The flow that works: code → tokens → refresh → proxied requests.
    let (code, verifier) = s.authorize_and_login(&client_id, &resource, "ann@example.org");
    let form = exchange(&code, &verifier);
    let reply = s.post_form("/oauth/token", &borrow(&form));
    let (_access, refresh) = s.tokens(&reply);
    let refreshed = s.post_form(
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", &client_id)],
    );
    let (access, refresh) = s.tokens(&refreshed);
    let first = s.proxy(&access, None);
    assert_eq!((first.status, first.body.as_str()), (200, "OK"), "proxied request");
    let session_id = first.header("mcp-session-id").expect("backend session id").to_owned();
    let second = s.proxy(&access, Some(&session_id));
    assert_eq!(second.status, 200, "proxied request in the session: {}", second.body);
    let argument = format!("tool-argument-{}", random_hex());
    s.secrets.add("tool argument", &argument);
    let call = json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {"name": "lookup", "arguments": {"query": argument}}});
    let called = s.proxy_body(&access, Some(&session_id), call.to_string().as_bytes());
    assert_eq!(called.status, 200, "tools/call: {}", called.body);

    // A sign-in whose state the gateway never issued.
    let stray =
        s.browse(&format!("/oauth/callback?code=stray-{}&state=stray-{}", random_hex(), random_hex()));
    assert_eq!(stray.status, 400, "unknown state: {}", stray.body);

    // Refused at the proxy: a forged signature, and garbage.
    let (signed, signature) = access.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{signed}.{flipped}{}", &signature[1..]);
    s.secrets.add("forged access token", &forged);
    assert_eq!(s.proxy(&forged, None).status, 401, "forged token");
    let garbage = format!("not-a-token-{}", random_hex());
    s.secrets.add("garbage bearer token", &garbage);
    assert_eq!(s.proxy(&garbage, None).status, 401, "garbage token");

    // Introspect, revoke, introspect again; then the used code again (revokes its family).
    let active = s.post_form("/oauth/introspect", &[("token", &access), ("client_id", &client_id)]);
    assert_eq!(active.json()["active"], true, "introspection: {}", active.body);
    let revoked = s.post_form("/oauth/revoke", &[("token", &refresh), ("client_id", &client_id)]);
    assert_eq!(revoked.status, 200, "revocation: {}", revoked.body);
    let inactive = s.post_form("/oauth/introspect", &[("token", &refresh), ("client_id", &client_id)]);
    assert_eq!(inactive.json()["active"], false, "after revocation: {}", inactive.body);
    let replay = s.post_form("/oauth/token", &borrow(&form));
    assert_eq!(replay.status, 400, "replayed code: {}", replay.body);
    let stale = s.post_form(
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", &client_id)],
    );
    assert_eq!(stale.status, 400, "revoked refresh token: {}", stale.body);

    // A confidential client (client_secret_post): a wrong secret, then the right one.
    let (code, verifier) = s.authorize_and_login(&conf_id, &resource, "bob@example.org");
    let wrong_secret = format!("wrong-secret-{}", random_hex());
    s.secrets.add("wrong client secret", &wrong_secret);
    for (secret, status) in [(wrong_secret.as_str(), 401), (conf_secret.as_str(), 200)] {
        let reply = s.post_form(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
                ("redirect_uri", REDIRECT),
                ("client_id", &conf_id),
                ("client_secret", secret),
            ],
        );
        assert_eq!(reply.status, status, "confidential exchange: {}", reply.body);
        if status == 200 {
            let (access, refresh) = s.tokens(&reply);
            let auth = [("client_id", conf_id.as_str()), ("client_secret", conf_secret.as_str())];
            let seen = s.post_form("/oauth/introspect", &[&[("token", access.as_str())][..], &auth].concat());
            assert_eq!(seen.json()["active"], true, "confidential introspection: {}", seen.body);
            let gone = s.post_form("/oauth/revoke", &[&[("token", refresh.as_str())][..], &auth].concat());
            assert_eq!(gone.status, 200, "confidential revocation: {}", gone.body);
        }
    }
    // Ann's live refresh token presented by the other client: a leak, so reuse is detected.
    let (code, verifier) = s.authorize_and_login(&client_id, &resource, "ann@example.org");
    let reply = s.post_form("/oauth/token", &borrow(&exchange(&code, &verifier)));
    let (_, anns) = s.tokens(&reply);
    let stolen = s.post_form(
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &anns),
            ("client_id", &conf_id),
            ("client_secret", &conf_secret),
        ],
    );
    assert_eq!(stolen.json()["error"], "invalid_grant", "stolen refresh: {}", stolen.body);
    let health = send(addr, "GET", "/health", &[], b"");
    assert_eq!(health.status, 200);

    // Give the access log a moment: it is written when a response is done.
    std::thread::sleep(Duration::from_millis(200));
    let lines = LINES.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut leaks = Vec::new();
    for line in &lines {
        for (what, value) in &s.secrets.0 {
            if line.contains(value.as_str()) {
                leaks.push(format!("{what} ({value}) in: {line}"));
            }
        }
    }
    println!("checked {} log lines against {} secret values", lines.len(), s.secrets.0.len());
    assert!(leaks.is_empty(), "secrets in the log:\n{}", leaks.join("\n"));
    assert!(lines.len() > 20, "only {} log lines captured: the check would be vacuous", lines.len());
    let gateway_lines = lines.iter().filter(|l| l.contains("mcp_gateway")).count();
    assert!(gateway_lines > 0, "no line from the gateway itself: {lines:#?}");

    // The audit trail: the events of the flow, each line JSON with a time, a request id and
    // the client's address, and no secret anywhere.
    let trail = std::fs::read_to_string(&audit_path).expect("audit file written");
    let _ = std::fs::remove_file(&audit_path);
    let events: Vec<Value> =
        trail.lines().map(|l| serde_json::from_str(l).expect("an audit line is JSON")).collect();
    for (what, value) in &s.secrets.0 {
        assert!(!trail.contains(value.as_str()), "{what} ({value}) in the audit trail:\n{trail}");
    }
    for event in &events {
        assert!(event["time"].as_str().is_some_and(|t| t.ends_with('Z')), "time: {event}");
        assert!(event["request_id"].as_str().is_some_and(|r| r.len() >= 8), "request id: {event}");
        assert_eq!(event["client_ip"], "127.0.0.1", "client ip: {event}");
    }
    let of = |kind: &str| events.iter().filter(|e| e["event"] == kind).collect::<Vec<_>>();
    assert_eq!(of("client_registered").len(), 2, "{trail}");
    assert!(of("login").iter().any(|e| e["outcome"] == "success" && e["user_email"] == "ann@example.org"));
    assert!(of("login")
        .iter()
        .any(|e| e["outcome"] == "failure" && e["reason"] == "unknown_or_expired_state"));
    assert!(of("consent_granted")
        .iter()
        .any(|e| e["client_id"] == client_id.as_str() && e["service"] == "svc"));
    let issued = of("token_issued");
    assert!(issued
        .iter()
        .any(|e| e["user_email"] == "bob@example.org" && e["client_name"] == "Log test (confidential)"));
    assert_eq!(of("token_refreshed").len(), 1, "{trail}");
    assert!(of("grant_revoked").iter().any(|e| e["reason"] == "authorization_code_replayed"));
    assert!(of("token_revoked")
        .iter()
        .any(|e| e["reason"] == "refresh_token" && e["client_id"] == client_id.as_str()));
    assert_eq!(of("refresh_reuse_detected").len(), 1, "{trail}");
    let calls = of("tool_call");
    assert_eq!(calls.len(), 1, "only the tools/call is one: {trail}");
    let call = calls[0];
    assert_eq!(
        (call["tool"].as_str(), call["jsonrpc_id"].as_i64(), call["status"].as_u64()),
        (Some("lookup"), Some(42), Some(200))
    );
    assert_eq!(
        (call["user_email"].as_str(), call["service"].as_str()),
        (Some("ann@example.org"), Some("svc"))
    );
    assert_eq!(call["client_name"], "Log test");
    assert!(call["duration_ms"].is_u64(), "{call}");
    println!("checked {} audit lines", events.len());
}
