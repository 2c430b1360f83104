//! Issue 13, the proxy's findings, each replayed as the attacker did it: step-up skipped with
//! another HTTP method (item 4), backend HTML on the gateway's origin (item 6), pre-claimed MCP
//! session ids (item 7), and spoofed headers toward the backend / gateway cookies set by the
//! backend (item 9).

use std::collections::BTreeMap;

use actix_web::{web, App, HttpResponse};
use awc::http::Method;

use crate::backend::TestBackend;
use crate::helpers::{serve, TestApp};
use crate::proxy::{body_json, claims, echoed, gateway, header, service, sign};

/// A `tools/call` of the tool that needs a step-up scope.
const DELETE_REPO: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{}}}"#;

/// A backend doing what a hostile or careless MCP server may do, on 127.0.0.1 port 0.
struct Hostile {
    address: String,
    handle: actix_web::dev::ServerHandle,
}

impl Hostile {
    async fn start() -> Hostile {
        let (port, handle) = serve(|_| {
            || {
                App::new()
                    .route("/html", web::route().to(html))
                    .route("/fixed-session", web::route().to(fixed_session))
                    .route("/cookies", web::route().to(cookies))
            }
        });
        Hostile { address: format!("http://127.0.0.1:{port}"), handle }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A page that would run script on the gateway's origin, with a permissive CSP of its own.
async fn html() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", "default-src * 'unsafe-inline'"))
        .body("<script>fetch('/oauth/authorize').then(r => r.text()).then(alert)</script>")
}

/// The same session id for everybody (a backend an attacker primed, or a broken one).
async fn fixed_session() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Mcp-Session-Id", "fixed-session-1"))
        .json(serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {}}))
}

/// Cookies named like the gateway's, in other spellings, and one of the backend's own.
async fn cookies() -> HttpResponse {
    let mut res = HttpResponse::Ok();
    for cookie in [
        "mcpgw_session=evil; Path=/",
        "MCPGW_SESSION=evil; Path=/",
        "Mcpgw_Consent=evil; Path=/",
        "__HOST-mcpgw_session=evil; Path=/; Secure",
        "__host-MCPGW_consent=evil; Path=/; Secure",
        "=mcpgw_session=evil; Path=/",
        "app_pref=dark; Path=/",
    ] {
        res.append_header(("Set-Cookie", cookie));
    }
    res.json(serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {}}))
}

fn bearer(app: &TestApp, service_id: &str, sub: &str, scope: &str) -> (&'static str, String) {
    let mut c = claims(app, service_id);
    c.sub = sub.into();
    c.scope = scope.into();
    ("Authorization", format!("Bearer {}", sign(app, &c)))
}

/// `scoped` → the test backend's `/record`: every `tools/call` of `delete_repo` needs `admin`.
async fn scoped_gateway(backend: &TestBackend) -> TestApp {
    let url = backend.url("/record");
    gateway(|s| {
        let mut scoped = service(url);
        scoped.scopes = vec!["read".into()];
        scoped.tool_scopes = BTreeMap::from([("delete_repo".to_owned(), vec!["admin".to_owned()])]);
        s.mcp_services.insert("scoped".into(), scoped);
        s.cors.allow_origins = vec!["https://app.example".into()];
    })
    .await
}

#[actix_web::test]
async fn item4_step_up_cannot_be_skipped_with_another_method() {
    let backend = TestBackend::start().await;
    let app = scoped_gateway(&backend).await;
    let token = bearer(&app, "scoped", "dev_alice", "read");
    let mut outcomes = Vec::new();
    for method in ["PUT", "PATCH", "GET", "DELETE", "post", "FROBNICATE"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let res = app
            .client()
            .request(method.clone(), app.url("/scoped/mcp"))
            .insert_header(token.clone())
            .content_type("application/json")
            .send_body(DELETE_REPO)
            .await
            .unwrap();
        outcomes.push((method.to_string(), res.status().as_u16(), header(&res, "allow")));
    }
    let allow = Some("GET, POST, DELETE".to_owned());
    assert_eq!(
        outcomes,
        [
            ("PUT".to_owned(), 405, allow.clone()),
            ("PATCH".to_owned(), 405, allow.clone()),
            ("GET".to_owned(), 403, None),
            ("DELETE".to_owned(), 403, None),
            ("post".to_owned(), 405, allow.clone()),
            ("FROBNICATE".to_owned(), 405, allow),
        ],
        "every variant must be refused at the gateway"
    );
    let seen: Vec<String> = backend.recorded().into_iter().map(|r| r.body).collect();
    assert!(seen.is_empty(), "the backend executed: {seen:?}");
}

#[actix_web::test]
async fn item4_options_preflight_and_bodyless_get_delete_still_work() {
    let backend = TestBackend::start().await;
    let app = scoped_gateway(&backend).await;
    // A CORS preflight is the CORS middleware's, before any token check.
    let res = app
        .client()
        .request(Method::OPTIONS, app.url("/scoped/mcp"))
        .insert_header(("Origin", "https://app.example"))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "preflight: {}", res.status());
    // A plain OPTIONS is answered by the gateway, never forwarded.
    let res = app.client().request(Method::OPTIONS, app.url("/scoped/mcp")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(header(&res, "allow").as_deref(), Some("GET, POST, DELETE"));
    // GET (the server's stream) and DELETE (end of session) without a body need no step-up.
    let token = bearer(&app, "scoped", "dev_alice", "read");
    for method in [Method::GET, Method::DELETE] {
        let res = app.client().request(method.clone(), app.url("/scoped/mcp")).insert_header(token.clone());
        assert_eq!(res.send().await.unwrap().status().as_u16(), 200, "{method}");
    }
    assert_eq!(backend.recorded().len(), 2, "only the GET and the DELETE reached the backend");
}

#[actix_web::test]
async fn item6_backend_html_is_sandboxed_and_not_sniffed() {
    let hostile = Hostile::start().await;
    let backend = TestBackend::start().await;
    let (html_url, sse_url) = (hostile.url("/html"), backend.url("/sse"));
    let app = gateway(|s| {
        let mut open = service(html_url);
        open.auth_required = false;
        s.mcp_services.insert("open".into(), open);
        s.mcp_services.insert("svc".into(), service(sse_url));
    })
    .await;
    let mut res = app.client().get(app.url("/open/mcp")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let csp: Vec<&str> =
        res.headers().get_all("content-security-policy").map(|v| v.to_str().unwrap()).collect();
    assert_eq!(csp, ["sandbox"], "the backend's own CSP is replaced");
    assert_eq!(header(&res, "x-content-type-options").as_deref(), Some("nosniff"));
    assert!(res.body().await.unwrap().starts_with(b"<script>"), "the body itself passes unchanged");

    // An SSE stream gets the same headers and still streams.
    let mut res = app
        .client()
        .get(app.url("/svc/mcp?n=2&delay_ms=0"))
        .insert_header(bearer(&app, "svc", "dev_alice", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-security-policy").as_deref(), Some("sandbox"));
    assert_eq!(header(&res, "x-content-type-options").as_deref(), Some("nosniff"));
    let body = res.body().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&body).matches("data: ").count(), 2);
}

#[actix_web::test]
async fn item6_gateway_pages_carry_a_strict_csp() {
    let app = gateway(|_| {}).await;
    let mut res = app.client().get(app.url("/oauth/authorize")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let csp = header(&res, "content-security-policy").expect("a CSP on the error page");
    let directives: BTreeMap<&str, &str> = csp
        .split(';')
        .filter_map(|d| d.trim().split_once(' ').or(Some((d.trim(), ""))))
        .filter(|(name, _)| !name.is_empty())
        .collect();
    assert_eq!(directives.get("default-src"), Some(&"'none'"), "{csp}");
    assert_eq!(directives.get("style-src"), Some(&"'self'"), "{csp}");
    assert_eq!(directives.get("img-src"), Some(&"'self' data:"), "{csp}");
    assert_eq!(directives.get("frame-ancestors"), Some(&"'none'"), "{csp}");
    assert_eq!(directives.get("base-uri"), Some(&"'none'"), "{csp}");
    assert!(directives.get("form-action").is_some_and(|v| v.starts_with("'self'")), "{csp}");
    assert!(!directives.contains_key("script-src"), "no script is allowed: {csp}");
    assert_eq!(header(&res, "x-content-type-options").as_deref(), Some("nosniff"));
    let page = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(page.contains(r#"<link rel="stylesheet" href="/static/style.css">"#));
    assert!(!page.contains("<script") && !page.contains("style="), "the CSP would block it");
    // The one thing the page loads is allowed by `style-src 'self'` and served.
    let res = app.client().get(app.url("/static/style.css")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[actix_web::test]
async fn item7_a_session_id_bound_to_another_user_is_never_handed_out() {
    let hostile = Hostile::start().await;
    let url = hostile.url("/fixed-session");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;
    let initialize = |sub: &str| {
        app.client()
            .post(app.url("/svc/mcp"))
            .insert_header(bearer(&app, "svc", sub, ""))
            .content_type("application/json")
            .send_body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
    };
    let res = initialize("dev_mallory").await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "mcp-session-id").as_deref(), Some("fixed-session-1"));

    let mut res = initialize("dev_alice").await.unwrap();
    let status = res.status().as_u16();
    let session = header(&res, "mcp-session-id");
    let body = res.body().await.unwrap();
    assert_eq!((status, session), (502, None), "{}", String::from_utf8_lossy(&body));
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "bad_gateway");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("'svc'") && description.contains("another user"), "{description}");
    assert!(!body.to_string().contains("fixed-session-1"), "the id leaked in the body: {body}");

    // The user it is bound to keeps using it.
    let res = initialize("dev_mallory").await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[actix_web::test]
async fn item9_spoofed_identity_and_forwarding_headers_never_reach_the_backend() {
    let backend = TestBackend::start().await;
    let url = backend.url("/echo");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url.clone()));
        let mut open = service(url);
        open.auth_required = false;
        s.mcp_services.insert("open".into(), open);
    })
    .await;
    let spoofed = [
        ("x_user_id", "admin"),
        ("X_User_Email", "root@evil.example"),
        ("x_user_name", "Admin"),
        ("x_user_provider", "google"),
        ("x-user_avatar", "https://evil.example/a.png"),
        ("x_forwarded_for", "6.6.6.6"),
        ("X_Forwarded_Host", "evil.example"),
        ("mcp_session_id", "someone-elses"),
        ("Forwarded", "for=6.6.6.6;host=evil.example;proto=https"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Forwarded-Port", "6666"),
    ];
    for (svc, user) in [("svc", Some("dev_alice")), ("open", None)] {
        let mut req = app.client().post(app.url(&format!("/{svc}/mcp")));
        if user.is_some() {
            req = req.insert_header(bearer(&app, svc, "dev_alice", ""));
        }
        for (name, value) in spoofed {
            req = req.insert_header((name, value));
        }
        let mut res = req.send_body("{}").await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{svc}");
        let echo = body_json(&mut res).await;
        let headers = echo["headers"].as_object().unwrap();
        let underscored: Vec<&String> = headers.keys().filter(|k| k.contains('_')).collect();
        assert!(underscored.is_empty(), "{svc}: {underscored:?} reached the backend");
        let text = echo["headers"].to_string();
        assert!(!text.contains("6.6.6.6") && !text.contains("evil.example"), "{svc}: {text}");
        assert_eq!(echoed(&echo, "x-user-id"), user, "{svc}");
        let host = format!("127.0.0.1:{}", app.port);
        assert_eq!(echoed(&echo, "x-real-ip"), Some("127.0.0.1"), "{svc}");
        assert_eq!(echoed(&echo, "x-forwarded-port"), Some(app.port.to_string().as_str()), "{svc}");
        let forwarded = format!("for=\"127.0.0.1\";host=\"{host}\";proto=http");
        assert_eq!(echoed(&echo, "forwarded"), Some(forwarded.as_str()), "{svc}");
        assert_eq!(echo["headers"]["forwarded"].as_array().map(Vec::len), Some(1), "{svc}");
    }
}

#[actix_web::test]
async fn item9_a_backend_cannot_set_the_gateways_cookies() {
    let hostile = Hostile::start().await;
    let url = hostile.url("/cookies");
    let app = gateway(|s| {
        s.mcp_services.insert("svc".into(), service(url));
    })
    .await;
    let res = app
        .client()
        .post(app.url("/svc/mcp"))
        .insert_header(bearer(&app, "svc", "dev_alice", ""))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let set: Vec<&str> = res.headers().get_all("set-cookie").map(|v| v.to_str().unwrap()).collect();
    assert_eq!(set, ["app_pref=dark; Path=/"]);
}
