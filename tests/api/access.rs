//! Access rules (issue 10 §1): who may use which service and which tool. Each rule kind is
//! met and missed at login (emails, domains of verified emails, Google's `hd`, groups from a
//! configurable claim, GitHub organizations and teams), a service's own rule replaces the
//! default, a rule that changes ends a grant at its next refresh, and `tool_access` refuses
//! calls before the backend sees them and hides the tools from `tools/list`, in JSON and in
//! event streams.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse};
use bytes::Bytes;
use mcp_gateway::config::{AccessRule, Settings};
use mcp_gateway::startup::Application;
use mcp_gateway::storage::Backend;
use serde_json::{json, Value};

use crate::flow::{add_service, AuthRequest, Browser, ConsentForm, Reply, REDIRECT};
use crate::helpers::{base_settings, serve, spawn_app_with, TestApp};
use crate::idp::TestIdp;
use crate::proxy::{body_json, claims, gateway, header, service, sign};

pub fn rule(value: Value) -> AccessRule {
    serde_json::from_value(value).expect("an access rule")
}

pub fn trail_path() -> PathBuf {
    std::env::temp_dir().join(format!("mcp-gateway-access-test-{}.jsonl", rand::random::<u64>()))
}

pub fn audit_to(settings: &mut Settings, path: &Path) {
    settings.audit.enabled = true;
    settings.audit.path = path.to_str().map(str::to_owned);
}

/// The audit lines of `event`, waiting up to 2 s for at least `want`.
pub async fn events(path: &Path, event: &str, want: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..40 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["event"] == event)
            .collect();
        if found.len() >= want {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    found
}

/// The code in a callback's redirect to the client; panics with the page otherwise.
pub fn code_of(reply: &Reply) -> String {
    assert!(reply.is_redirect(), "no redirect: {} {}", reply.status, reply.body);
    reply.location_query().get("code").cloned().unwrap_or_else(|| panic!("no code: {}", reply.location()))
}

/// A refused login: 403, a page naming `account` and `service`, no code anywhere.
fn assert_refused(reply: &Reply, account: &str, service: &str) {
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.header("location").is_none(), "no redirect to the client");
    assert!(reply.body.contains(account), "names the account: {}", reply.body);
    assert!(reply.body.contains(service), "names the service: {}", reply.body);
    assert!(!reply.body.contains("code="), "{}", reply.body);
}

/// A dev-provider login of `email` for `service`, to the callback's answer.
async fn dev_login(app: &TestApp, service: &str, email: &str) -> Reply {
    let client = app.register_client(&[REDIRECT]).await;
    let request = AuthRequest::new(app, &client, Some(service));
    app.approve_and_login(&mut Browser::new(), &request, email).await
}

/// A login at the test IdP for `service`: consent, the IdP's redirect, the callback.
pub async fn idp_login(app: &TestApp, idp: &TestIdp, service: &str) -> Reply {
    let mut browser = Browser::new();
    let client = app.register_client(&[REDIRECT]).await;
    let request = AuthRequest::new(app, &client, Some(service));
    let page = app.authorize(&mut browser, &request).await;
    let approved = app.consent(&mut browser, &ConsentForm::from_page(&page), "approve").await;
    let back = idp.login(&approved.location()).await;
    app.browse(&mut browser, &back.location).await
}

/// A gateway with the test IdP as its `kind` provider and one service, `svc`.
pub async fn idp_gateway(idp: &TestIdp, kind: &str, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s| {
        idp.configure(s, kind);
        add_service(s, "svc", &[]);
        adjust(s);
    })
    .await
}

#[actix_web::test]
async fn email_rules_admit_listed_addresses_in_any_case_and_refuse_others_at_login() {
    let trail = trail_path();
    let app = spawn_app_with(|s| {
        add_service(s, "svc", &[]);
        s.access = Some(rule(json!({"emails": ["Alice@Example.com"]})));
        audit_to(s, &trail);
    })
    .await;

    code_of(&dev_login(&app, "svc", "alice@EXAMPLE.com").await);
    let refused = dev_login(&app, "svc", "mallory<b>@example.com").await;

    assert_refused(&refused, "mallory&lt;b&gt;@example.com", "svc service");
    assert!(!refused.body.contains("<b>"), "names are escaped");
    let denied = events(&trail, "access_denied", 1).await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["reason"], "access_rule");
    assert_eq!(denied[0]["service"], "svc");
}

#[actix_web::test]
async fn domain_rules_match_only_verified_emails() {
    let idp = TestIdp::start().await;
    idp.set_user("u-1", Some("ann@example.org"), Some("Ann"), None);
    let app = idp_gateway(&idp, "oidc", |s| s.access = Some(rule(json!({"domains": ["example.org"]})))).await;

    code_of(&idp_login(&app, &idp, "svc").await);
    idp.set_email_verified(Some(false));
    let refused = idp_login(&app, &idp, "svc").await;
    // Without a verified address the account is named by its display name.
    assert_refused(&refused, "Ann", "svc service");
    idp.set_email_verified(Some(true));
    idp.set_user("u-2", Some("eve@sub.example.org"), Some("Eve"), None);
    assert_refused(&idp_login(&app, &idp, "svc").await, "eve@sub.example.org", "svc service");
}

#[actix_web::test]
async fn google_hosted_domain_counts_as_a_verified_domain() {
    let idp = TestIdp::start().await;
    idp.set_email_verified(Some(false));
    idp.set_extra_claims(json!({"hd": "example.com"}));
    let app =
        idp_gateway(&idp, "google", |s| s.access = Some(rule(json!({"domains": ["example.com"]})))).await;

    code_of(&idp_login(&app, &idp, "svc").await);
    idp.set_extra_claims(json!({"hd": "other.com"}));
    assert_refused(&idp_login(&app, &idp, "svc").await, "Ann Example", "svc service");
}

#[actix_web::test]
async fn groups_are_read_from_the_configured_claim_as_a_list_or_one_string() {
    let idp = TestIdp::start().await;
    let app = idp_gateway(&idp, "oidc", |s| {
        if let Some(p) = s.oauth_providers.get_mut("oidc") {
            p.groups_claim = Some("roles".into());
        }
        s.access = Some(rule(json!({"groups": ["finance"]})));
    })
    .await;

    idp.set_extra_claims(json!({"roles": ["staff", "finance"]}));
    code_of(&idp_login(&app, &idp, "svc").await);
    idp.set_extra_claims(json!({"roles": "finance"}));
    code_of(&idp_login(&app, &idp, "svc").await);
    idp.set_extra_claims(json!({"roles": "staff", "groups": ["finance"]}));
    assert_refused(&idp_login(&app, &idp, "svc").await, "ann@example.org", "svc service");
}

#[actix_web::test]
async fn groups_default_to_the_groups_claim() {
    let idp = TestIdp::start().await;
    let app = idp_gateway(&idp, "custom", |s| s.access = Some(rule(json!({"groups": ["staff"]})))).await;
    idp.set_extra_claims(json!({"groups": ["staff"]}));
    code_of(&idp_login(&app, &idp, "svc").await);
    idp.set_extra_claims(json!({"groups": ["Staff"]}));
    assert_refused(&idp_login(&app, &idp, "svc").await, "ann@example.org", "svc service");
}

#[actix_web::test]
async fn github_orgs_and_teams_are_read_with_read_org_at_login() {
    let idp = TestIdp::start().await;
    let app = idp_gateway(&idp, "github", |s| {
        add_service(s, "platform", &[]);
        s.access = Some(rule(json!({"github_orgs": ["acme"]})));
        if let Some(platform) = s.mcp_services.get_mut("platform") {
            platform.access = Some(rule(json!({"github_teams": ["acme/platform"]})));
        }
    })
    .await;

    idp.set_github_memberships(&["other", "ACME"], &["acme/docs"]);
    code_of(&idp_login(&app, &idp, "svc").await);
    assert_refused(&idp_login(&app, &idp, "platform").await, "ann@example.org", "platform service");
    idp.set_github_memberships(&["other"], &["acme/platform"]);
    code_of(&idp_login(&app, &idp, "platform").await);
    assert_refused(&idp_login(&app, &idp, "svc").await, "ann@example.org", "svc service");

    let scope = idp.authorizations()[0].scope.clone().unwrap_or_default();
    assert!(scope.split(' ').any(|s| s == "read:org"), "read:org is asked for: {scope}");
    assert!(idp.github_calls().iter().any(|c| c.starts_with("/user/teams?")), "{:?}", idp.github_calls());
}

#[actix_web::test]
async fn github_memberships_are_not_asked_for_without_github_rules() {
    let idp = TestIdp::start().await;
    let app = idp_gateway(&idp, "github", |_| {}).await;
    code_of(&idp_login(&app, &idp, "svc").await);
    let scope = idp.authorizations()[0].scope.clone().unwrap_or_default();
    assert!(!scope.contains("read:org"), "{scope}");
    assert!(idp.github_calls().is_empty());
}

#[actix_web::test]
async fn a_service_rule_replaces_the_default() {
    let app = spawn_app_with(|s| {
        add_service(s, "svc", &[]);
        add_service(s, "calc", &[]);
        s.access = Some(rule(json!({"emails": ["alice@example.com"]})));
        if let Some(calc) = s.mcp_services.get_mut("calc") {
            calc.access = Some(rule(json!({"domains": ["finance.example"]})));
        }
    })
    .await;

    code_of(&dev_login(&app, "svc", "alice@example.com").await);
    assert_refused(&dev_login(&app, "calc", "alice@example.com").await, "alice@example.com", "calc service");
    code_of(&dev_login(&app, "calc", "bob@finance.example").await);
    assert_refused(
        &dev_login(&app, "svc", "bob@finance.example").await,
        "bob@finance.example",
        "svc service",
    );
}

/// A gateway on `store` (shared with others), as `adjust` configures it.
async fn instance(store: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = base_settings();
    add_service(&mut settings, "svc", &[]);
    adjust(&mut settings);
    let app = Application::build_with_backend(settings, store).await.expect("app builds");
    let test_app = TestApp::of(&app);
    actix_web::rt::spawn(app.run_until_stopped());
    test_app
}

#[actix_web::test]
async fn a_changed_rule_ends_the_grant_at_its_next_refresh() {
    let store = Backend::memory();
    let before = instance(store.clone(), |_| {}).await;
    let (client, tokens) = before.tokens_for(&mut Browser::new(), "alice@example.com").await;
    let first = before.refresh(&client, &tokens.refresh_token, &[]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let refresh_token = first.json()["refresh_token"].as_str().unwrap().to_owned();

    // The same store and keys, restarted with a rule alice no longer meets.
    let trail = trail_path();
    let issuer = before.settings.issuer.clone();
    let after = instance(store, |s| {
        s.issuer = issuer;
        s.access = Some(rule(json!({"emails": ["bob@example.com"]})));
        audit_to(s, &trail);
    })
    .await;
    let refused = after.refresh(&client, &refresh_token, &[]).await;

    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.json()["error"], "invalid_grant");
    assert_eq!(events(&trail, "access_denied", 1).await[0]["reason"], "access_rule");
    let revoked = events(&trail, "grant_revoked", 1).await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["user_id"], tokens_user(&tokens));
    // The family is gone for good, on every instance.
    let again = before.refresh(&client, &refresh_token, &[]).await;
    assert_eq!(again.json()["error"], "invalid_grant", "{}", again.body);
}

fn tokens_user(tokens: &crate::flow::Tokens) -> Value {
    use base64::Engine as _;
    let payload = tokens.access_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["sub"].clone()
}

#[actix_web::test]
async fn refreshes_judge_the_memberships_recorded_at_login() {
    let idp = TestIdp::start().await;
    idp.set_extra_claims(json!({"groups": ["finance"]}));
    let store = Backend::memory();
    let first = instance(store.clone(), |s| idp.configure(s, "oidc")).await;
    let client = first.register_client(&[REDIRECT]).await;
    let mut browser = Browser::new();
    let request = AuthRequest::new(&first, &client, Some("svc"));
    let page = first.authorize(&mut browser, &request).await;
    let approved = first.consent(&mut browser, &ConsentForm::from_page(&page), "approve").await;
    let back = idp.login(&approved.location()).await;
    let code = code_of(&first.browse(&mut browser, &back.location).await);
    let issued = first.exchange_code(&client, &code, &request.pkce.verifier, &[]).await;
    let refresh_token = issued.json()["refresh_token"].as_str().unwrap().to_owned();
    // The provider forgets the group; the grant still holds what login saw.
    idp.set_extra_claims(json!({}));

    let issuer = first.settings.issuer.clone();
    let finance_only = |groups: Value| {
        let issuer = issuer.clone();
        let idp = &idp;
        move |s: &mut Settings| {
            idp.configure(s, "oidc");
            s.issuer = issuer;
            s.access = Some(rule(json!({ "groups": groups })));
        }
    };
    let admits = instance(store.clone(), finance_only(json!(["finance"]))).await;
    let kept = admits.refresh(&client, &refresh_token, &[]).await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    let next = kept.json()["refresh_token"].as_str().unwrap().to_owned();

    let refuses = instance(store, finance_only(json!(["ops"]))).await;
    let refused = refuses.refresh(&client, &next, &[]).await;
    assert_eq!(refused.json()["error"], "invalid_grant", "{}", refused.body);
}

/// A small MCP backend for the tool tests: `tools/list` lists `add` and `wipe`, any other
/// call succeeds; `?sse` answers as an event stream cut in the middle of an event. Every body
/// it receives is kept.
struct ToolsBackend {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    _handle: actix_web::dev::ServerHandle,
}

impl ToolsBackend {
    fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = seen.clone();
        let (port, handle) = serve(|_| {
            move || {
                App::new()
                    .app_data(web::Data::new(shared.clone()))
                    .route("/mcp", web::route().to(answer_tools))
            }
        });
        ToolsBackend { port, seen, _handle: handle }
    }

    fn url(&self, query: &str) -> String {
        format!("http://127.0.0.1:{}/mcp{query}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn answer_one(message: &Value) -> Value {
    let result = match message["method"].as_str() {
        Some("tools/list") => json!({"tools": [
            {"name": "add", "description": "adds", "inputSchema": {"type": "object"}},
            {"name": "wipe", "description": "wipes everything", "inputSchema": {"type": "object"}},
        ]}),
        _ => json!({"content": [{"type": "text", "text": "done"}]}),
    };
    json!({"jsonrpc": "2.0", "id": message["id"], "result": result})
}

async fn answer_tools(
    req: HttpRequest,
    body: Bytes,
    seen: web::Data<Arc<Mutex<Vec<String>>>>,
) -> HttpResponse {
    seen.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = match &message {
        Value::Array(items) => Value::Array(items.iter().map(answer_one).collect()),
        one => answer_one(one),
    };
    if !req.query_string().contains("sse") {
        return HttpResponse::Ok().json(answer);
    }
    let event = format!(": ping\n\nevent: message\r\nid: 7\r\ndata: {answer}\r\n\r\n");
    let (a, b) = event.split_at(event.len() / 2);
    let chunks = vec![Ok::<_, actix_web::Error>(Bytes::from(a.to_owned())), Ok(Bytes::from(b.to_owned()))];
    HttpResponse::Ok().content_type("text/event-stream").streaming(futures_util::stream::iter(chunks))
}

/// A gateway with `json` and `sse` in front of `backend`, `wipe` open to root only.
async fn tools_gateway(backend: &ToolsBackend, trail: &Path) -> TestApp {
    let (json_url, sse_url) = (backend.url(""), backend.url("?sse"));
    gateway(|s| {
        for (id, url) in [("json", json_url), ("sse", sse_url)] {
            let mut svc = service(url);
            svc.tool_access.insert("wipe".into(), rule(json!({"emails": ["root@example.com"]})));
            s.mcp_services.insert(id.into(), svc);
        }
        audit_to(s, trail);
    })
    .await
}

/// A token for `service` denied `denied`.
fn token_denied(app: &TestApp, service: &str, denied: &[&str]) -> String {
    let mut c = claims(app, service);
    c.denied_tools = denied.iter().map(|d| (*d).to_owned()).collect();
    sign(app, &c)
}

async fn post(app: &TestApp, service: &str, token: &str, body: &'static str) -> (u16, Option<String>, Bytes) {
    let mut res = app
        .client()
        .post(app.url(&format!("/{service}/mcp")))
        .bearer_auth(token)
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Accept", "application/json, text/event-stream"))
        .send_body(body)
        .await
        .expect("POST");
    let length = header(&res, "content-length");
    let body = res.body().limit(1 << 22).await.expect("body");
    (res.status().as_u16(), length, body)
}

const CALL_WIPE: &str =
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"wipe","arguments":{}}}"#;
const CALL_ADD: &str =
    r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"add","arguments":{}}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":"l-1","method":"tools/list"}"#;

fn tool_names(answer: &Value) -> Vec<String> {
    answer["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn a_denied_tool_call_gets_a_json_rpc_error_and_never_reaches_the_backend() {
    let backend = ToolsBackend::start();
    let trail = trail_path();
    let app = tools_gateway(&backend, &trail).await;
    // A real login: the token's denied tools come from the rules at issue time.
    let client = app.register_client(&[REDIRECT]).await;
    let request = AuthRequest::new(&app, &client, Some("json"));
    let code = code_of(&app.approve_and_login(&mut Browser::new(), &request, "alice@example.com").await);
    let issued = app.exchange_code(&client, &code, &request.pkce.verifier, &[]).await;
    let token = issued.json()["access_token"].as_str().unwrap().to_owned();

    let (status, _, body) = post(&app, "json", &token, CALL_WIPE).await;

    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["jsonrpc"], "2.0");
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert!(backend.seen().is_empty(), "the backend never saw it: {:?}", backend.seen());
    let denied = events(&trail, "access_denied", 1).await;
    assert_eq!((denied[0]["tool"].as_str(), denied[0]["jsonrpc_id"].as_i64()), (Some("wipe"), Some(7)));
    let (status, _, _) = post(&app, "json", &token, CALL_ADD).await;
    assert_eq!(status, 200);
    assert_eq!(backend.seen(), [CALL_ADD], "allowed tools pass");
    // Someone the rule admits may call it.
    let root = {
        let mut c = claims(&app, "json");
        c.email = Some("root@example.com".into());
        sign(&app, &c)
    };
    assert_eq!(post(&app, "json", &root, CALL_WIPE).await.0, 200);
    assert_eq!(backend.seen().len(), 2);
}

#[actix_web::test]
async fn tools_list_hides_denied_tools_in_json_and_in_event_streams() {
    let backend = ToolsBackend::start();
    let app = tools_gateway(&backend, &trail_path()).await;

    let (status, length, body) = post(&app, "json", &token_denied(&app, "json", &["wipe"]), LIST).await;
    assert_eq!(status, 200);
    assert_eq!(tool_names(&serde_json::from_slice(&body).unwrap()), ["add"]);
    assert_eq!(length, Some(body.len().to_string()), "Content-Length fits the rewritten body");

    let (status, _, body) = post(&app, "sse", &token_denied(&app, "sse", &["wipe"]), LIST).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.starts_with(": ping\n\nevent: message\r\nid: 7\r\ndata: "), "framing kept: {text:?}");
    assert!(text.ends_with("\n\r\n"), "{text:?}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    assert_eq!(tool_names(&serde_json::from_str(data).unwrap()), ["add"]);
    assert!(!text.contains("wipe"), "{text}");

    // Nothing denied: the answers pass as the backend sent them.
    let (_, _, body) = post(&app, "sse", &token_denied(&app, "sse", &[]), LIST).await;
    assert!(String::from_utf8_lossy(&body).contains("wipe"));
    let (_, _, body) = post(&app, "json", &token_denied(&app, "json", &[]), LIST).await;
    assert_eq!(tool_names(&serde_json::from_slice(&body).unwrap()), ["add", "wipe"]);
}

#[actix_web::test]
async fn a_denied_tool_hidden_in_a_batch_refuses_the_batch() {
    let backend = ToolsBackend::start();
    let app = tools_gateway(&backend, &trail_path()).await;
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":2,"method":"tools\u002fcall","params":{"name":"wipe"}}]"#;

    let (status, _, body) = post(&app, "json", &token_denied(&app, "json", &["wipe"]), batch).await;

    assert_eq!(status, 200);
    let answers: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answers[0]["id"], 1);
    assert!(answers[0]["error"]["code"].is_i64(), "{answers}");
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(answers[1]["error"]["code"], -32602);
    assert_eq!(answers.as_array().unwrap().len(), 2, "no answer to a notification");
    assert!(backend.seen().is_empty(), "{:?}", backend.seen());
}

#[actix_web::test]
async fn bodies_the_gateway_cannot_read_are_refused_when_tools_are_denied() {
    let backend = ToolsBackend::start();
    let app = tools_gateway(&backend, &trail_path()).await;
    let denied = token_denied(&app, "json", &["wipe"]);

    for bad in [
        "not json at all",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"wipe"}}"#,
    ] {
        let (status, _, body) = post(&app, "json", &denied, bad).await;
        assert_eq!(status, 400, "{bad}: {}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("not JSON-RPC the gateway can read"));
    }
    // Two names: which one the backend would run cannot be known, so the call is refused.
    let two_names = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","name":"wipe"}}"#;
    let (_, _, body) = post(&app, "json", &denied, two_names).await;
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], -32602);
    // Too large to read, and chunked so that no length gives it away.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"wipe","pad":"{}"}}}}"#,
        "x".repeat(2 << 20)
    );
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        big.as_bytes().chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let res = app
        .client()
        .post(app.url("/json/mcp"))
        .bearer_auth(&denied)
        .insert_header(("Content-Type", "application/json"))
        .send_stream(futures_util::stream::iter(chunks))
        .await
        .expect("POST");
    assert_eq!(res.status().as_u16(), 413);
    assert!(backend.seen().is_empty(), "{:?}", backend.seen());

    // Someone denied nothing is not inspected at all: the odd body goes through.
    let (status, _, _) = post(&app, "json", &token_denied(&app, "json", &[]), "not json at all").await;
    assert_eq!(status, 200);
    assert_eq!(backend.seen(), ["not json at all"]);
}

#[actix_web::test]
async fn a_refused_call_records_access_denied_and_plain_bodies_stay_json() {
    let backend = ToolsBackend::start();
    let app = tools_gateway(&backend, &trail_path()).await;
    let mut res = app
        .client()
        .post(app.url("/json/mcp"))
        .bearer_auth(token_denied(&app, "json", &["wipe"]))
        .insert_header(("Content-Type", "application/json"))
        .send_body(CALL_WIPE)
        .await
        .expect("POST");
    assert_eq!(header(&res, "content-type").as_deref(), Some("application/json"));
    assert_eq!(body_json(&mut res).await["error"]["data"]["reason"], "access_rule");
}
