//! Client ID Metadata Documents (checklist B13): a client whose `client_id` is the URL of its
//! metadata document, served here by a test server on 127.0.0.1 that counts its hits. The
//! gateway runs with `runtime.allow_private_cimd` (the development switch that lets it fetch
//! from loopback over http) except where the test is that loopback is refused.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::flow::{add_service, AuthRequest, Browser, Reply, TestClient, REDIRECT};
use crate::helpers::{self, spawn_app_with, TestApp};

/// What the document server answers on one path.
#[derive(Clone)]
struct Doc {
    status: u16,
    content_type: &'static str,
    cache_control: Option<&'static str>,
    location: Option<String>,
    body: String,
    /// Sent as a chunked stream without `Content-Length`.
    chunked: bool,
}

impl Doc {
    fn json(body: &Value) -> Doc {
        Doc {
            status: 200,
            content_type: "application/json",
            cache_control: None,
            location: None,
            body: body.to_string(),
            chunked: false,
        }
    }

    fn cache(mut self, value: &'static str) -> Doc {
        self.cache_control = Some(value);
        self
    }
}

#[derive(Default)]
struct Served {
    docs: Mutex<HashMap<String, Doc>>,
    hits: Mutex<HashMap<String, usize>>,
}

/// A server of metadata documents on 127.0.0.1 port 0, stopped when dropped.
struct DocServer {
    address: String,
    served: Arc<Served>,
    handle: actix_web::dev::ServerHandle,
}

async fn serve(req: HttpRequest, served: web::Data<Served>) -> HttpResponse {
    let path = req.path().to_owned();
    *served.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let Some(doc) = served.docs.lock().unwrap().get(&path).cloned() else {
        return HttpResponse::NotFound().finish();
    };
    let mut res = HttpResponse::build(actix_web::http::StatusCode::from_u16(doc.status).unwrap());
    res.insert_header(("Content-Type", doc.content_type));
    if let Some(cc) = doc.cache_control {
        res.insert_header(("Cache-Control", cc));
    }
    if let Some(location) = doc.location {
        res.insert_header(("Location", location));
    }
    if doc.chunked {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            doc.body.into_bytes().chunks(4096).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        return res.streaming(futures_util::stream::iter(chunks));
    }
    res.body(doc.body)
}

impl DocServer {
    async fn start() -> DocServer {
        let served = Arc::new(Served::default());
        let shared = served.clone();
        let (port, handle) = helpers::serve(|_| {
            move || App::new().app_data(web::Data::from(shared.clone())).default_service(web::to(serve))
        });
        DocServer { address: format!("http://127.0.0.1:{port}"), served, handle }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Serves `doc` at `path`; returns the document's URL.
    fn put(&self, path: &str, doc: Doc) -> String {
        self.served.docs.lock().unwrap().insert(path.to_owned(), doc);
        self.url(path)
    }

    /// Serves a valid document for the client id `{address}{path}`, with `extra` merged in.
    fn put_client(&self, path: &str, extra: Value) -> String {
        let url = self.url(path);
        let mut body = json!({
            "client_id": url,
            "client_name": "Test CIMD",
            "redirect_uris": [REDIRECT],
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.put(path, Doc::json(&body))
    }

    fn hits(&self, path: &str) -> usize {
        self.served.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for DocServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn gateway(allow_private: bool) -> TestApp {
    spawn_app_with(|s| {
        add_service(s, "svc", &["read", "write"]);
        s.runtime.allow_private_cimd = allow_private;
    })
    .await
}

fn client(id: &str) -> TestClient {
    TestClient { client_id: id.to_owned(), client_secret: None, redirect_uri: REDIRECT.to_owned() }
}

/// The authorization request of a fresh browser for the document client `id`.
async fn authorize(app: &TestApp, id: &str) -> Reply {
    app.authorize(&mut Browser::new(), &AuthRequest::new(app, &client(id), Some("svc"))).await
}

/// Asserts an HTML error page (never a redirect) that mentions `why`.
fn assert_refused_page(reply: &Reply, why: &str) {
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.header("location").is_none(), "an error page, not a redirect");
    assert!(reply.header("content-type").unwrap_or("").starts_with("text/html"));
    assert!(reply.body.contains(why), "page should say {why:?}: {}", reply.body);
}

#[actix_web::test]
async fn a_document_client_goes_through_consent_login_token_refresh_and_revocation() {
    // Arrange
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    let id = docs.put_client("/oauth/client.json", json!({}));
    let client = client(&id);
    let request = AuthRequest::new(&app, &client, Some("svc"));
    let mut browser = Browser::new();

    // Act
    let back = app.approve_and_login(&mut browser, &request, "cimd@example.com").await;
    let q = back.location_query();
    let reply = app.exchange_code(&client, &q["code"], &request.pkce.verifier, &[]).await;

    // Assert
    assert!(back.location().starts_with(REDIRECT), "{}", back.location());
    assert_eq!(q["iss"], app.address);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let tokens = reply.json();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let introspected = app.introspect(&client, access).await.json();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["client_id"], id.as_str());
    let refreshed = app.refresh(&client, refresh, &[]).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let revoked = app.revoke(&client, refreshed.json()["refresh_token"].as_str().unwrap()).await;
    assert_eq!(revoked.status, 200);
    // Consent is remembered for this document client in this browser.
    let again = app.authorize(&mut browser, &AuthRequest::new(&app, &client, Some("svc"))).await;
    assert!(again.is_redirect(), "remembered consent goes straight upstream: {}", again.body);
}

#[actix_web::test]
async fn the_consent_page_shows_the_document_name_with_the_host() {
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    let id = docs.put_client("/c.json", json!({ "client_name": "Claude" }));

    let page = authorize(&app, &id).await;

    assert_eq!(page.status, 200, "{}", page.body);
    let host = docs.address.trim_start_matches("http://");
    assert!(page.body.contains(&format!("Claude ({host})")), "{}", page.body);
    assert!(page.body.contains(&id), "the client id URL is shown too");
}

#[actix_web::test]
async fn the_metadata_advertises_documents() {
    let app = gateway(false).await;

    let m = app.get("/.well-known/oauth-authorization-server").await.json();

    assert_eq!(m["client_id_metadata_document_supported"], true);
    assert!(m["token_endpoint_auth_methods_supported"].as_array().unwrap().iter().any(|v| v == "none"));
}

#[actix_web::test]
async fn a_document_naming_another_client_id_is_refused_everywhere() {
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    let id = docs.url("/c.json");
    docs.put(
        "/c.json",
        Doc::json(&json!({ "client_id": docs.url("/other.json"), "redirect_uris": [REDIRECT] })),
    );

    let page = authorize(&app, &id).await;
    let token = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_id", &id)],
            None,
        )
        .await;
    let revoke = app.post_form("/oauth/revoke", &[("token", "x"), ("client_id", &id)], None).await;
    let introspect = app.post_form("/oauth/introspect", &[("token", "x"), ("client_id", &id)], None).await;

    assert_refused_page(&page, "client_id differs from the URL");
    for reply in [token, revoke, introspect] {
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_client");
    }
}

#[actix_web::test]
async fn a_redirect_uri_missing_from_the_document_gets_an_error_page() {
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    let id = docs.put_client("/c.json", json!({ "redirect_uris": ["https://app.example/cb"] }));

    let page = app.authorize(&mut Browser::new(), &AuthRequest::new(&app, &client(&id), Some("svc"))).await;

    assert_refused_page(&page, "redirect URI is not registered");
    // The loopback rule of registered clients applies too: any port.
    let request = AuthRequest::new(&app, &client(&id), Some("svc"))
        .with("redirect_uri", Some("https://app.example/cb"));
    assert_eq!(app.authorize(&mut Browser::new(), &request).await.status, 200);
    let id = docs.put_client("/loop.json", json!({ "redirect_uris": ["http://127.0.0.1/cb"] }));
    let request = AuthRequest::new(&app, &client(&id), Some("svc"))
        .with("redirect_uri", Some("http://127.0.0.1:43117/cb"));
    assert_eq!(app.authorize(&mut Browser::new(), &request).await.status, 200);
}

#[actix_web::test]
async fn redirects_from_the_document_server_are_not_followed() {
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    let target = docs.put_client("/real.json", json!({}));
    let id = docs.put("/moved.json", Doc { status: 302, location: Some(target), ..Doc::json(&json!({})) });

    let page = authorize(&app, &id).await;

    assert_refused_page(&page, "redirects are not followed");
    assert_eq!(docs.hits("/real.json"), 0, "the redirect target was never fetched");
}

#[actix_web::test]
async fn oversized_documents_are_refused_announced_or_streamed() {
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    let padding = "x".repeat(70 * 1024);
    let big =
        |path: &str| json!({ "client_id": docs.url(path), "redirect_uris": [REDIRECT], "pad": padding });
    let announced = docs.put("/big.json", Doc::json(&big("/big.json")));
    let streamed = docs.put("/stream.json", Doc { chunked: true, ..Doc::json(&big("/stream.json")) });

    for id in [announced, streamed] {
        assert_refused_page(&authorize(&app, &id).await, "larger than 64 KiB");
    }
}

#[actix_web::test]
async fn secret_based_and_non_json_documents_are_refused() {
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    let basic =
        docs.put_client("/basic.json", json!({ "token_endpoint_auth_method": "client_secret_basic" }));
    let jwt = docs.put_client("/jwt.json", json!({ "token_endpoint_auth_method": "private_key_jwt" }));
    let secret = docs.put_client("/secret.json", json!({ "client_secret": "shh" }));
    let html = docs.put("/html.json", Doc { content_type: "text/html", ..Doc::json(&json!({})) });
    let bad_redirect = docs.put_client("/http.json", json!({ "redirect_uris": ["http://evil.example/cb"] }));

    assert_refused_page(&authorize(&app, &basic).await, "token_endpoint_auth_method must be none");
    assert_refused_page(&authorize(&app, &jwt).await, "token_endpoint_auth_method must be none");
    assert_refused_page(&authorize(&app, &secret).await, "must not contain a client_secret");
    assert_refused_page(&authorize(&app, &html).await, "not served as JSON");
    assert_refused_page(&authorize(&app, &bad_redirect).await, "only on loopback");
}

#[actix_web::test]
async fn bad_client_id_urls_are_refused_without_a_fetch() {
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    docs.put_client("/c.json", json!({}));

    for (id, why) in [
        (docs.url(""), "must have a path"),
        (format!("{}#frag", docs.url("/c.json")), "must not contain a fragment"),
        (docs.url("/a/../c.json"), "must not contain . or .. path segments"),
        (docs.url("/c.json").replace("http://", "http://user:pw@"), "must not contain credentials"),
        ("http://app.example/c.json".to_owned(), "must use https"),
    ] {
        assert_refused_page(&authorize(&app, &id).await, why);
    }
    assert_eq!(docs.hits("/c.json"), 0);
}

#[actix_web::test]
async fn documents_are_cached_for_their_max_age() {
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    let id = docs.put_client("/c.json", json!({}));
    let mut doc = docs.served.docs.lock().unwrap()["/c.json"].clone();
    doc = doc.cache("public, max-age=60");
    docs.put("/c.json", doc);

    assert_eq!(authorize(&app, &id).await.status, 200);
    assert_eq!(authorize(&app, &id).await.status, 200);
    assert_eq!(docs.hits("/c.json"), 1, "the second authorization used the cached document");

    app.state.clock.advance(61);
    assert_eq!(authorize(&app, &id).await.status, 200);
    assert_eq!(docs.hits("/c.json"), 2, "fetched again once max-age passed");
}

#[actix_web::test]
async fn no_store_documents_are_fetched_every_time() {
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    let id = docs.put_client("/c.json", json!({}));
    let doc = docs.served.docs.lock().unwrap()["/c.json"].clone().cache("no-store");
    docs.put("/c.json", doc);

    assert_eq!(authorize(&app, &id).await.status, 200);
    assert_eq!(authorize(&app, &id).await.status, 200);

    assert_eq!(docs.hits("/c.json"), 2);
}

#[actix_web::test]
async fn failures_are_never_cached() {
    let docs = DocServer::start().await;
    let app = gateway(true).await;
    let id = docs.url("/c.json");
    docs.put("/c.json", Doc { status: 500, ..Doc::json(&json!({})).cache("max-age=3600") });

    let failed = authorize(&app, &id).await;
    docs.put_client("/c.json", json!({}));
    let fixed = authorize(&app, &id).await;

    assert_refused_page(&failed, "answered HTTP 500");
    assert_eq!(fixed.status, 200, "{}", fixed.body);
    assert_eq!(docs.hits("/c.json"), 2);
}

#[actix_web::test]
async fn loopback_documents_are_refused_unless_allowed() {
    let docs = DocServer::start().await;
    let app = gateway(false).await;
    docs.put_client("/c.json", json!({}));
    let port = docs.address.rsplit(':').next().unwrap();

    let https_ip = authorize(&app, &format!("https://127.0.0.1:{port}/c.json")).await;
    let https_name = authorize(&app, &format!("https://localhost:{port}/c.json")).await;
    let http = authorize(&app, &docs.url("/c.json")).await;

    assert_refused_page(&https_ip, "does not resolve to a public address");
    // Issue 13, item 10: a name gets the answer any unreachable document gets, so the page is
    // no oracle for how the gateway's DNS resolves internal names.
    assert_refused_page(&https_name, "could not be fetched");
    assert_refused_page(&http, "must use https");
    assert_eq!(docs.hits("/c.json"), 0, "nothing was fetched");
}

#[actix_web::test]
async fn an_unreachable_document_server_is_an_error_page_and_invalid_client() {
    let app = gateway(true).await;
    // Bound and closed at once: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let id = format!("http://127.0.0.1:{port}/c.json");

    let page = authorize(&app, &id).await;
    let token = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_id", &id)],
            None,
        )
        .await;

    assert_refused_page(&page, "could not be fetched");
    assert_eq!(token.status, 401);
    assert_eq!(token.json()["error"], "invalid_client");
}
