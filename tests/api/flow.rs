//! Typed steps of the OAuth flow, as an MCP client and a browser take them: register a client,
//! authorize, consent, log in with the `dev` provider, exchange the code, refresh, revoke,
//! introspect. Each test reads as Arrange / Act / Assert on top of these.

use std::collections::BTreeMap;

use mcp_gateway::config::{ServiceSettings, Settings};
use mcp_gateway::core::pkce;
use serde_json::Value;

use crate::helpers::{spawn_app_with, TestApp};

/// The redirect URI the test clients register.
pub const REDIRECT: &str = "http://127.0.0.1/callback";

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Every header (names lower-case), in order; repeated ones stay repeated.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `Location` header.
    pub fn location(&self) -> String {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location; status {} body {}", self.status, self.body))
            .to_owned()
    }

    /// The query parameters of the `Location` header.
    pub fn location_query(&self) -> BTreeMap<String, String> {
        let url = url::Url::parse(&self.location()).expect("absolute Location");
        url.query_pairs().into_owned().collect()
    }

    /// Whether this is a redirect.
    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }
}

/// A browser's cookie jar (the gateway's cookies only: one host).
#[derive(Debug, Default, Clone)]
pub struct Browser {
    cookies: BTreeMap<String, String>,
}

impl Browser {
    /// A browser with no cookies.
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn store(&mut self, reply: &Reply) {
        for (name, value) in &reply.headers {
            if name == "set-cookie" {
                let pair = value.split(';').next().unwrap_or("");
                if let Some((k, v)) = pair.split_once('=') {
                    self.cookies.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
    }

    /// Whether the jar holds cookie `name`.
    pub fn has(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }

    /// Replaces cookie `name` (forging tests).
    pub fn set(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }
}

/// A PKCE pair.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// The verifier the client keeps.
    pub verifier: String,
    /// Its S256 challenge.
    pub challenge: String,
}

impl Pkce {
    /// A fresh random pair.
    pub fn new() -> Self {
        let verifier = format!("{}{}", uuidish(), uuidish());
        let challenge = pkce::challenge_s256(&verifier);
        Pkce { verifier, challenge }
    }
}

fn uuidish() -> String {
    use rand::Rng;
    let n: u128 = rand::rng().random();
    format!("{n:032x}")
}

/// A registered client as the registration response described it.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// Its id.
    pub client_id: String,
    /// Its secret, for secret-based methods.
    pub client_secret: Option<String>,
    /// Its (first) redirect URI.
    pub redirect_uri: String,
}

/// The parameters of an authorization request; `AuthRequest::new` fills sane defaults.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// Extra or replaced query parameters; `None` values drop the parameter.
    pub params: BTreeMap<String, Option<String>>,
    /// The PKCE pair used.
    pub pkce: Pkce,
}

impl AuthRequest {
    /// `response_type=code`, the client's id and redirect URI, S256, `state`, and `resource`
    /// for `service` when given.
    pub fn new(app: &TestApp, client: &TestClient, service: Option<&str>) -> Self {
        let pkce = Pkce::new();
        let mut params = BTreeMap::new();
        params.insert("response_type".into(), Some("code".into()));
        params.insert("client_id".into(), Some(client.client_id.clone()));
        params.insert("redirect_uri".into(), Some(client.redirect_uri.clone()));
        params.insert("state".into(), Some("st-123 /+?".into()));
        params.insert("code_challenge".into(), Some(pkce.challenge.clone()));
        params.insert("code_challenge_method".into(), Some("S256".into()));
        if let Some(id) = service {
            params.insert("resource".into(), Some(app.settings.resource_uri(id)));
        }
        AuthRequest { params, pkce }
    }

    /// Sets (`Some`) or removes (`None`) a parameter.
    pub fn with(mut self, name: &str, value: Option<&str>) -> Self {
        self.params.insert(name.into(), value.map(str::to_owned));
        self
    }

    fn query(&self) -> String {
        let pairs: Vec<(&str, &str)> =
            self.params.iter().filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v))).collect();
        serde_urlencoded::to_string(pairs).expect("query encodes")
    }
}

/// The hidden fields of a consent page.
#[derive(Debug, Clone)]
pub struct ConsentForm {
    /// The pending authorization id.
    pub pending_id: String,
    /// The CSRF token.
    pub csrf: String,
}

/// The value of `<input ... name="{name}" value="...">` in `html`.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].replace("&amp;", "&"))
}

impl ConsentForm {
    /// Reads the form out of a consent page (panics if it is not one).
    pub fn from_page(page: &Reply) -> Self {
        let pending_id = hidden_field(&page.body, "pending_id")
            .unwrap_or_else(|| panic!("not a consent page: {} {}", page.status, page.body));
        let csrf = hidden_field(&page.body, "csrf").expect("csrf field");
        ConsentForm { pending_id, csrf }
    }
}

/// What a finished flow leaves: the code redirect and the token response.
#[derive(Debug)]
pub struct Tokens {
    /// `access_token`.
    pub access_token: String,
    /// `refresh_token`.
    pub refresh_token: String,
    /// The whole body.
    pub body: Value,
}

/// Settings with services `ids`, each with `scopes`.
pub fn add_service(settings: &mut Settings, id: &str, scopes: &[&str]) {
    settings.mcp_services.insert(
        id.to_owned(),
        ServiceSettings {
            name: format!("{id} service"),
            url: "http://127.0.0.1:9/".into(),
            oauth_provider: None,
            auth_required: true,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            timeout: 30_000,
            tool_scopes: BTreeMap::new(),
            access: None,
            tool_access: BTreeMap::new(),
            ca_file: None,
            insecure_skip_verify: false,
        },
    );
}

/// The gateway with one service `svc` (scopes `read`, `write`).
pub async fn spawn_with_service() -> TestApp {
    spawn_app_with(|s| add_service(s, "svc", &["read", "write"])).await
}

async fn read(
    mut res: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Reply {
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = res.body().limit(1 << 20).await.expect("body");
    Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

impl TestApp {
    /// `GET` of a path or absolute URL with the browser's cookies, storing what it sets.
    pub async fn browse(&self, browser: &mut Browser, path_or_url: &str) -> Reply {
        let url =
            if path_or_url.starts_with("http") { path_or_url.to_owned() } else { self.url(path_or_url) };
        let res =
            self.client().get(url).insert_header(("Cookie", browser.header())).send().await.expect("GET");
        let reply = read(res).await;
        browser.store(&reply);
        reply
    }

    /// A form `POST` with the browser's cookies, storing what it sets.
    pub async fn post_form_as(&self, browser: &mut Browser, path: &str, form: &[(&str, &str)]) -> Reply {
        let res = self
            .client()
            .post(self.url(path))
            .insert_header(("Cookie", browser.header()))
            .send_form(&form)
            .await
            .expect("POST");
        let reply = read(res).await;
        browser.store(&reply);
        reply
    }

    /// A plain `GET`.
    pub async fn get(&self, path: &str) -> Reply {
        read(self.client().get(self.url(path)).send().await.expect("GET")).await
    }

    /// A `POST` of a raw body with a content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: &'static [u8]) -> Reply {
        let req = self.client().post(self.url(path)).insert_header(("Content-Type", content_type));
        read(req.send_body(body).await.expect("POST")).await
    }

    /// A form `POST` without cookies, with optional HTTP Basic credentials.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Reply {
        let mut req = self.client().post(self.url(path));
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, secret);
        }
        read(req.send_form(&form).await.expect("POST")).await
    }

    /// `POST /oauth/register` with a JSON body.
    pub async fn register_json(&self, body: &Value) -> Reply {
        read(self.client().post(self.url("/oauth/register")).send_json(body).await.expect("POST")).await
    }

    /// Registers a public client (`none`) with `redirect_uris`.
    pub async fn register_client(&self, redirect_uris: &[&str]) -> TestClient {
        let reply = self
            .register_json(
                &serde_json::json!({ "client_name": "Test Client", "redirect_uris": redirect_uris }),
            )
            .await;
        assert_eq!(reply.status, 201, "registration: {}", reply.body);
        let body = reply.json();
        TestClient {
            client_id: body["client_id"].as_str().expect("client_id").to_owned(),
            client_secret: body["client_secret"].as_str().map(str::to_owned),
            redirect_uri: redirect_uris[0].to_owned(),
        }
    }

    /// `GET /oauth/authorize` with `request` in `browser`.
    pub async fn authorize(&self, browser: &mut Browser, request: &AuthRequest) -> Reply {
        self.browse(browser, &format!("/oauth/authorize?{}", request.query())).await
    }

    /// Posts the consent form with `action` (`approve` or `deny`).
    pub async fn consent(&self, browser: &mut Browser, form: &ConsentForm, action: &str) -> Reply {
        let fields =
            [("pending_id", form.pending_id.as_str()), ("csrf", form.csrf.as_str()), ("action", action)];
        self.post_form_as(browser, "/oauth/consent", &fields).await
    }

    /// Logs in on the `dev` provider's page the gateway redirected to (`upstream`), then
    /// follows its redirect to `/oauth/callback`; returns the callback's answer.
    pub async fn login(&self, browser: &mut Browser, upstream: &str, name: &str, email: &str) -> Reply {
        let url = url::Url::parse(upstream).expect("upstream URL");
        assert_eq!(url.path(), "/oauth/dev/login", "not the dev login: {upstream}");
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        let page = self.browse(browser, upstream).await;
        assert_eq!(page.status, 200, "dev login page: {}", page.body);
        let form = [
            ("state", q["state"].as_str()),
            ("code_challenge", q["code_challenge"].as_str()),
            ("name", name),
            ("email", email),
        ];
        let submitted = self.post_form_as(browser, "/oauth/dev/login", &form).await;
        assert!(
            submitted.is_redirect(),
            "dev login did not redirect: {} {}",
            submitted.status,
            submitted.body
        );
        self.browse(browser, &submitted.location()).await
    }

    /// Authorize → consent page → approve → dev login → callback; returns the client's code
    /// redirect (the callback's answer).
    pub async fn approve_and_login(
        &self,
        browser: &mut Browser,
        request: &AuthRequest,
        email: &str,
    ) -> Reply {
        let page = self.authorize(browser, request).await;
        let upstream = if page.is_redirect() {
            page.location()
        } else {
            let form = ConsentForm::from_page(&page);
            let approved = self.consent(browser, &form, "approve").await;
            assert!(
                approved.is_redirect(),
                "approve did not redirect: {} {}",
                approved.status,
                approved.body
            );
            approved.location()
        };
        self.login(browser, &upstream, "Test User", email).await
    }

    /// `POST /oauth/token` with the authorization-code grant; `extra` adds or overrides fields.
    pub async fn exchange_code(
        &self,
        client: &TestClient,
        code: &str,
        verifier: &str,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut form: BTreeMap<&str, &str> = BTreeMap::from([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("client_id", client.client_id.as_str()),
        ]);
        form.extend(extra.iter().copied());
        let form: Vec<(&str, &str)> = form.into_iter().collect();
        self.post_form("/oauth/token", &form, None).await
    }

    /// `POST /oauth/token` with the refresh-token grant; `extra` adds fields.
    pub async fn refresh(&self, client: &TestClient, refresh_token: &str, extra: &[(&str, &str)]) -> Reply {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client.client_id.as_str()),
        ];
        form.extend_from_slice(extra);
        self.post_form("/oauth/token", &form, None).await
    }

    /// `POST /oauth/introspect` as `client`.
    pub async fn introspect(&self, client: &TestClient, token: &str) -> Reply {
        self.post_form(
            "/oauth/introspect",
            &[("token", token), ("client_id", client.client_id.as_str())],
            None,
        )
        .await
    }

    /// `POST /oauth/revoke` as `client`.
    pub async fn revoke(&self, client: &TestClient, token: &str) -> Reply {
        self.post_form("/oauth/revoke", &[("token", token), ("client_id", client.client_id.as_str())], None)
            .await
    }

    /// The whole flow for a new public client on service `svc`: returns the client, the
    /// authorization request and the code.
    pub async fn code_for(&self, browser: &mut Browser, email: &str) -> (TestClient, AuthRequest, String) {
        let client = self.register_client(&[REDIRECT]).await;
        let request = AuthRequest::new(self, &client, Some("svc"));
        let back = self.approve_and_login(browser, &request, email).await;
        let code = back
            .location_query()
            .get("code")
            .cloned()
            .unwrap_or_else(|| panic!("no code: {}", back.location()));
        (client, request, code)
    }

    /// The whole flow through the token endpoint.
    pub async fn tokens_for(&self, browser: &mut Browser, email: &str) -> (TestClient, Tokens) {
        let (client, request, code) = self.code_for(browser, email).await;
        let reply = self.exchange_code(&client, &code, &request.pkce.verifier, &[]).await;
        assert_eq!(reply.status, 200, "token: {}", reply.body);
        let body = reply.json();
        let tokens = Tokens {
            access_token: body["access_token"].as_str().expect("access_token").to_owned(),
            refresh_token: body["refresh_token"].as_str().expect("refresh_token").to_owned(),
            body,
        };
        (client, tokens)
    }
}
