//! `TestIdp`: a test identity provider on 127.0.0.1 (port 0), for the upstream leg of the
//! gateway. It speaks just enough OIDC and GitHub to log a configurable person in, and it is
//! strict where a real provider is strict (client id and secret, redirect URI, PKCE S256,
//! single-use codes), so a test fails when the gateway gets the upstream leg wrong.
//!
//! ```ignore
//! let idp = TestIdp::start().await;                        // before the gateway
//! idp.set_user("248289761001", Some("ann@example.org"), Some("Ann"), Some("https://p/ann.png"));
//! let app = spawn_app_with(|s| idp.configure(s, "oidc")).await;
//! // ... the gateway redirects the browser to the IdP's /authorize ...
//! let cb = idp.login(&authorize_url).await;                // the IdP's 302, parsed
//! // GET {gateway}/oauth/callback?code={cb.code}&state={cb.state}
//! ```
//!
//! Endpoints (all under [`TestIdp::issuer`]):
//! - `GET /.well-known/openid-configuration`: discovery (issuer = the IdP's root).
//! - `GET /authorize`: checks `response_type=code`, `client_id` = [`CLIENT_ID`], the
//!   `redirect_uri` (any `http://127.0.0.1:*/oauth/callback` or `localhost`, or exactly the
//!   ones given to [`TestIdp::register_redirect_uri`]), a valid S256 `code_challenge` and a
//!   `state`; records the request ([`TestIdp::authorizations`]) and answers 302 to
//!   `redirect_uri?code&state` at once (the person is the one set with `set_user`). A refused
//!   request gets 400 with the reason as text.
//! - `POST /token`: `authorization_code` and `refresh_token`; client secret [`CLIENT_SECRET`] by Basic or
//!   form (recorded in [`TestIdp::token_auth_methods`]); code single use; same `redirect_uri`;
//!   PKCE verifier checked. Answers `access_token` and an ID token (RS256 by default, ES256
//!   with [`SigningAlg::Es256`]) carrying `iss`, `aud`, `exp`, `iat`, `sub`, `email`, `nonce`.
//!   A code exchange also answers a `refresh_token` (unless [`TestIdp::set_refresh_tokens`]
//!   turns them off); a refresh rotates it (single use) and answers a new access token and
//!   an ID token without `nonce`, with the claims as they are now ([`TestIdp::refreshes`]
//!   counts them). [`TestIdp::disable_user`] makes refreshes of that person `invalid_grant`
//!   and their access tokens 401 at every API endpoint; [`TestIdp::revoke_refresh_tokens`]
//!   forgets every refresh token.
//!   [`TestIdp::set_token_endpoint_failing`] makes it answer 503 `server_error`;
//!   [`TestIdp::set_id_token_fault`] spoils the ID token in one chosen way.
//! - `GET /userinfo` (Bearer): `sub`, `email`, `email_verified`, `name`, `picture`.
//! - `GET /jwks`: the RSA key and the current P-256 key, with `kid`s.
//! - `GET /user`, `GET /user/emails` (Bearer): GitHub-shaped (`id` numeric when `sub` is
//!   digits, `login`, `name`, `avatar_url`, `email` null when [`TestIdp::set_email_private`]).
//! - `GET /user/orgs`, `GET /user/teams` (Bearer, paged with `per_page` and `page`): the
//!   memberships set with [`TestIdp::set_github_memberships`].
//! - [`TestIdp::set_extra_claims`] adds claims (groups, Google's `hd`) to the ID token and
//!   userinfo.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_gateway::config::{ProviderSettings, Settings};
use serde_json::{json, Value};

use crate::helpers::serve;

/// The client id the IdP knows.
pub const CLIENT_ID: &str = "test-client";
/// The secret of [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "test-client-secret";
/// Key ids in the JWKS.
pub const RSA_KID: &str = "test-rsa-1";
/// Key id of the first P-256 key ([`TestIdp::rotate_ec_key`] makes new ones).
pub const EC_KID: &str = "test-ec-1";

/// A fixed 2048-bit RSA test key: generating one per test would be slow, and it signs
/// nothing outside tests.
const RSA_TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDXvRhNkDgMrgtR
DjH1apNOJzEtUZeD7ZKWMJu1MD/YOxg2t2TQlo6ryrgSagHce/vsj4qMOrodM7Fq
DwOgDZrcJkX8ObZJKP0COGp71qyA8pnKyHh5pyZNTFuaiLwc+CuOsj6fomsPlKkK
eIVBN3qJQgJlVki8M2OpqVrO31GcLhgFpI4EH6hbsAwQM2d/0vowBmT8m/RgZ4xs
tfs+HREKF8/K63D7PaeqFYlgXcKn/iuycF3EeiJd3BjxauHjM8PXUDWvvgor7GpQ
aYVRBCWg5sUQF6qI2SITmFh4vKTam5BRgcZWmyYSBSPbEB2Ha2P6dHYIEk914JxY
MDUvCq6TAgMBAAECggEAAaNAV3pkSohZsqRSccP82UeH4omvhkNb7QLyc6YpnekY
7nVm8QRrkddInW8rk3Jnf6y5RwY9GnKlgqIZi3H+/nPV7Su8/AIxJX6rJESFa7cr
vrPV4kqICmctfNdT4j5qCjvFKO4RNP2SaO9wR4X1yqvzG7TTeYZEV+netBpS4sYd
O3O6SkMuwakIo/S80czKQW0Z5suqFNKR7KvFsi7CUjcumTlvCYchvHzeDU4Y54Ge
Q21++jA5R/LL+5a9Zm7K1fUdLwPOZTMYUzaNKpgDjvwrDe524BsH0uM/9ZJBXhlU
0jXIqFESipSeMEwhlF64Ee0iwJasjRvpsSn+FKQnRQKBgQD0a+PLxoLuWC7pUOcx
X7NqFJ2P93rA/Vr5oeFRq6y2ZNseOyRK3gOBJf4exZcMrcV6pgzRBqFCYaXlTmAN
WbOVnqseKWG74t1sfLEhL47x1rhMR4vqPqEr6QZ32xm6WOwBkBnqSFBOphZThT4G
0KcZkcrPG7+mGkFwsuffl/ghhQKBgQDh9V4X7BECpjengyfK0VZWGznWXA7/Khxl
5oQzPlRO0sZwAHPpKDQY0Xs5HepdrMRCZD9SPiEwK4MqbvS1kuvYapWVA6oNcjq3
r8OEN33fJKEzhaRK7mptEx5vPpZXKAw4zO35VbMdlQRJj4un0qhG/US0L8UVA+fT
3xO41Xj/NwKBgFtGtyjwFxEfCVXECrJbhMrGrBiJWOQdOQ4kL9qp+7OZcmKVv3Xd
9v0RzRZ8v23Srv6gaATfLvV1NdiuLhyONQxY1ppK5d6eWAYdgqBb/Eu/3c9OoKd3
gAS/3tR/k9oNPwVOZP8ixiq4x3mlNoahAOYBlfVF7YoAIBQQG5taSyVpAoGAXuzB
lrMpgj9p6gmDUgUXjBzr803BTxjVzUlGCHEK4gJSMwM9rpmhKTv31ErpBmlqGaob
n+VR8/aTp+PtEcqjIcvFA1ECw5tVZ42DSaw2SOQOhKKEHqaCN0hs5LcaWYsNd19A
KhsCoE7V+kE/nkU1RH1pu3jGBsoZPjzdAC1OI4kCgYBHk868Qx2Wb2RHe0GxiOhB
u2lOCbqfCwEVmB3fXX3VUJFBntAVow6JqFErHmSdG13UPoY1zf8PlHabTaF1Wj5m
WICc/Kr5HDrxgMyG5DSZkOlaKu+pNe31TWsX7rwgJb4CijojXpzm7RqHdetbGA8g
zyFEOUgc/LfaIFsLvtI1TQ==
-----END PRIVATE KEY-----
";

/// Who "logs in" at the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    /// Subject (digits make the GitHub `id` a number).
    pub sub: String,
    /// Email address.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Picture URL.
    pub picture: Option<String>,
}

/// ID token signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    /// RSA, key [`RSA_KID`] (default).
    Rs256,
    /// P-256, key [`EC_KID`].
    Es256,
}

/// One way to spoil the ID token; the gateway must refuse each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenFault {
    /// A well-formed ID token (default).
    None,
    /// Signature bytes altered.
    BadSignature,
    /// `nonce` differs from the one sent to `/authorize`.
    WrongNonce,
    /// `aud` is another client.
    WrongAudience,
    /// `iss` is another issuer.
    WrongIssuer,
    /// `exp` an hour ago.
    Expired,
    /// No `id_token` in the token response.
    Missing,
}

/// A request `/authorize` accepted.
#[derive(Debug, Clone)]
pub struct AuthorizeRecord {
    /// `client_id`.
    pub client_id: String,
    /// `redirect_uri`.
    pub redirect_uri: String,
    /// `state`.
    pub state: String,
    /// `nonce`, if sent.
    pub nonce: Option<String>,
    /// `code_challenge` (S256).
    pub code_challenge: String,
    /// `scope`, as sent (space-separated).
    pub scope: Option<String>,
}

/// Where `/authorize` sent the browser, parsed.
#[derive(Debug, Clone)]
pub struct Callback {
    /// The full `Location`.
    pub location: String,
    /// `code`.
    pub code: String,
    /// `state`.
    pub state: String,
}

#[derive(Clone)]
struct Grant {
    record: AuthorizeRecord,
    user: TestUser,
}

struct Inner {
    user: TestUser,
    email_private: bool,
    /// `email_verified` in the ID token and userinfo; `None` leaves the claim out.
    email_verified: Option<bool>,
    alg: SigningAlg,
    fault: IdTokenFault,
    token_fails: bool,
    redirect_uris: Vec<String>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, TestUser>,
    issue_refresh_tokens: bool,
    refresh_tokens: HashMap<String, Grant>,
    refreshes: usize,
    disabled: Vec<String>,
    /// Seconds added to the real time in the ID tokens' `iat` and `exp`.
    clock_offset: i64,
    authorizations: Vec<AuthorizeRecord>,
    token_auth_methods: Vec<&'static str>,
    ec: EcKey,
    ec_rotations: u32,
    extra_claims: serde_json::Map<String, Value>,
    github_orgs: Vec<String>,
    github_teams: Vec<(String, String)>,
    github_calls: Vec<String>,
}

/// The current P-256 signing key.
struct EcKey {
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
}

impl EcKey {
    fn generate(kid: &str) -> EcKey {
        let pem = mcp_gateway::core::jwt::StoredKey::generate(0).expect("EC key").pem;
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).expect("EC test key");
        let jwk = public_jwk(&key, Algorithm::ES256, kid);
        EcKey { kid: kid.to_owned(), key, jwk }
    }
}

struct Shared {
    issuer: String,
    rsa: EncodingKey,
    rsa_jwk: Jwk,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running test identity provider; stops when dropped.
pub struct TestIdp {
    shared: Arc<Shared>,
    handle: ServerHandle,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        std::mem::drop(self.handle.stop(false));
    }
}

impl TestIdp {
    /// Starts the IdP on 127.0.0.1, port 0, with the user `idp-user-1` / ann@example.org.
    pub async fn start() -> TestIdp {
        let mut state = None;
        let (_, handle) = serve(|port| {
            let data =
                web::Data::from(state.insert(Arc::new(shared(format!("http://127.0.0.1:{port}")))).clone());
            move || App::new().app_data(data.clone()).configure(idp_routes)
        });
        let shared = state.expect("made by serve");
        TestIdp { shared, handle }
    }

    /// `http://127.0.0.1:{port}`: the OIDC issuer, and the root of every endpoint.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// `{issuer}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.shared.issuer, path)
    }

    /// Sets who logs in from now on.
    pub fn set_user(&self, sub: &str, email: Option<&str>, name: Option<&str>, picture: Option<&str>) {
        self.shared.lock().user = TestUser {
            sub: sub.to_owned(),
            email: email.map(str::to_owned),
            name: name.map(str::to_owned),
            picture: picture.map(str::to_owned),
        };
    }

    /// The user who logs in.
    pub fn user(&self) -> TestUser {
        self.shared.lock().user.clone()
    }

    /// GitHub-style private email: `/user` shows `email: null`, `/user/emails` has it.
    pub fn set_email_private(&self, private: bool) {
        self.shared.lock().email_private = private;
    }

    /// What the ID token and userinfo say in `email_verified` (`None`: nothing).
    pub fn set_email_verified(&self, verified: Option<bool>) {
        self.shared.lock().email_verified = verified;
    }

    /// Claims added to every ID token and userinfo answer from now on (an object).
    pub fn set_extra_claims(&self, claims: Value) {
        self.shared.lock().extra_claims = claims.as_object().cloned().unwrap_or_default();
    }

    /// What `/user/orgs` (logins) and `/user/teams` (`org/slug`) list from now on.
    pub fn set_github_memberships(&self, orgs: &[&str], teams: &[&str]) {
        let mut inner = self.shared.lock();
        inner.github_orgs = orgs.iter().map(|o| (*o).to_owned()).collect();
        inner.github_teams = teams
            .iter()
            .map(|t| t.split_once('/').map(|(o, s)| (o.to_owned(), s.to_owned())).expect("org/slug"))
            .collect();
    }

    /// The paths of every `/user/orgs` and `/user/teams` request, with their queries.
    pub fn github_calls(&self) -> Vec<String> {
        self.shared.lock().github_calls.clone()
    }

    /// The ID token algorithm.
    pub fn set_signing_alg(&self, alg: SigningAlg) {
        self.shared.lock().alg = alg;
    }

    /// Replaces the P-256 key with a new one under a new `kid` (`test-ec-2`, ...), as a
    /// provider rotating its keys does; `/jwks` serves the new key from now on.
    pub fn rotate_ec_key(&self) {
        let mut inner = self.shared.lock();
        inner.ec_rotations += 1;
        inner.ec = EcKey::generate(&format!("test-ec-{}", inner.ec_rotations));
    }

    /// Spoils the next ID tokens in one way (`IdTokenFault::None` to stop).
    pub fn set_id_token_fault(&self, fault: IdTokenFault) {
        self.shared.lock().fault = fault;
    }

    /// Whether code exchanges answer a refresh token (default yes).
    pub fn set_refresh_tokens(&self, issue: bool) {
        self.shared.lock().issue_refresh_tokens = issue;
    }

    /// How many refresh-token grants `/token` answered with tokens.
    pub fn refreshes(&self) -> usize {
        self.shared.lock().refreshes
    }

    /// Disables the person `sub`: their refreshes get `invalid_grant`, their access tokens 401.
    pub fn disable_user(&self, sub: &str) {
        self.shared.lock().disabled.push(sub.to_owned());
    }

    /// Moves the IdP's clock (its ID tokens' `iat` and `exp`) `secs` ahead, as tests move the
    /// gateway's.
    pub fn advance(&self, secs: i64) {
        self.shared.lock().clock_offset += secs;
    }

    /// Forgets every refresh token issued so far (as revoking the app's grants does).
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().refresh_tokens.clear();
    }

    /// Every access and refresh token issued so far (to look for them where they must not be).
    pub fn issued_tokens(&self) -> Vec<String> {
        let inner = self.shared.lock();
        inner.access_tokens.keys().chain(inner.refresh_tokens.keys()).cloned().collect()
    }

    /// Makes `/token` answer 503 `{"error":"server_error"}`.
    pub fn set_token_endpoint_failing(&self, failing: bool) {
        self.shared.lock().token_fails = failing;
    }

    /// Accepts exactly these redirect URIs from now on (default: any loopback
    /// `.../oauth/callback`).
    pub fn register_redirect_uri(&self, uri: &str) {
        self.shared.lock().redirect_uris.push(uri.to_owned());
    }

    /// Every request `/authorize` accepted, oldest first.
    pub fn authorizations(&self) -> Vec<AuthorizeRecord> {
        self.shared.lock().authorizations.clone()
    }

    /// How each successful `/token` call authenticated: `"basic"` or `"post"`.
    pub fn token_auth_methods(&self) -> Vec<&'static str> {
        self.shared.lock().token_auth_methods.clone()
    }

    /// Settings for a provider of `kind` at this IdP: `oidc` and `okta` by discovery (`issuer`),
    /// `github` with its URLs overridden to `/authorize`, `/token`, `/user`, and `custom` and
    /// `google` with `/authorize`, `/token`, `/userinfo`.
    pub fn provider_settings(&self, kind: &str) -> ProviderSettings {
        let mut p = ProviderSettings {
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.to_owned().into()),
            ..ProviderSettings::default()
        };
        match kind {
            "oidc" | "okta" => p.issuer = Some(self.issuer()),
            _ => {
                p.authorization_url = Some(self.url("/authorize"));
                p.token_url = Some(self.url("/token"));
                let info = if kind == "github" { "/user" } else { "/userinfo" };
                p.userinfo_url = Some(self.url(info));
            }
        }
        p
    }

    /// Makes this IdP the one provider of `settings`, as `kind`.
    pub fn configure(&self, settings: &mut Settings, kind: &str) {
        settings.oauth_providers.clear();
        settings.oauth_providers.insert(kind.to_owned(), self.provider_settings(kind));
    }

    /// The same as [`Self::provider_settings`], as a YAML `oauth_providers:` block.
    pub fn provider_yaml(&self, kind: &str) -> String {
        let p = self.provider_settings(kind);
        let mut yaml = format!(
            "oauth_providers:\n  {kind}:\n    client_id: \"{CLIENT_ID}\"\n    client_secret: \"{CLIENT_SECRET}\"\n"
        );
        for (key, value) in [
            ("issuer", p.issuer),
            ("authorization_url", p.authorization_url),
            ("token_url", p.token_url),
            ("userinfo_url", p.userinfo_url),
        ] {
            if let Some(v) = value {
                yaml.push_str(&format!("    {key}: \"{v}\"\n"));
            }
        }
        yaml
    }

    /// Plays the browser at `/authorize`: GETs `authorize_url`, expects the 302 and parses
    /// `code` and `state` from its `Location`. Panics with the IdP's reason otherwise.
    pub async fn login(&self, authorize_url: &str) -> Callback {
        let client = awc::Client::builder().disable_redirects().finish();
        let mut res = client.get(authorize_url).send().await.expect("IdP /authorize reachable");
        if res.status().as_u16() != 302 {
            let body = res.body().await.unwrap_or_default();
            panic!("IdP refused /authorize ({}): {}", res.status(), String::from_utf8_lossy(&body));
        }
        let location = res.headers().get("location").expect("Location").to_str().expect("ASCII").to_owned();
        let parsed = url::Url::parse(&location).expect("Location is a URL");
        let param = |name: &str| parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        Callback { code: param("code").expect("code"), state: param("state").expect("state"), location }
    }
}

fn shared(issuer: String) -> Shared {
    let rsa = EncodingKey::from_rsa_pem(RSA_TEST_KEY.as_bytes()).expect("RSA test key");
    let rsa_jwk = public_jwk(&rsa, Algorithm::RS256, RSA_KID);
    let user = TestUser {
        sub: "idp-user-1".into(),
        email: Some("ann@example.org".into()),
        name: Some("Ann Example".into()),
        picture: Some("https://pictures.example.org/ann.png".into()),
    };
    let inner = Inner {
        user,
        email_private: false,
        email_verified: Some(true),
        alg: SigningAlg::Rs256,
        fault: IdTokenFault::None,
        token_fails: false,
        redirect_uris: Vec::new(),
        codes: HashMap::new(),
        access_tokens: HashMap::new(),
        issue_refresh_tokens: true,
        refresh_tokens: HashMap::new(),
        refreshes: 0,
        disabled: Vec::new(),
        clock_offset: 0,
        authorizations: Vec::new(),
        token_auth_methods: Vec::new(),
        ec: EcKey::generate(EC_KID),
        ec_rotations: 1,
        extra_claims: serde_json::Map::new(),
        github_orgs: Vec::new(),
        github_teams: Vec::new(),
        github_calls: Vec::new(),
    };
    Shared { issuer, rsa, rsa_jwk, inner: Mutex::new(inner) }
}

fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("public JWK");
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk
}

fn idp_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/.well-known/openid-configuration", web::get().to(discovery))
        .route("/authorize", web::get().to(authorize))
        .route("/token", web::post().to(token))
        .route("/userinfo", web::get().to(userinfo))
        .route("/jwks", web::get().to(jwks))
        .route("/user", web::get().to(github_user))
        .route("/user/emails", web::get().to(github_emails))
        .route("/user/orgs", web::get().to(github_orgs))
        .route("/user/teams", web::get().to(github_teams));
}

async fn discovery(idp: web::Data<Shared>) -> HttpResponse {
    let iss = &idp.issuer;
    HttpResponse::Ok().json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

async fn jwks(idp: web::Data<Shared>) -> HttpResponse {
    let ec = idp.lock().ec.jwk.clone();
    HttpResponse::Ok().json(JwkSet { keys: vec![idp.rsa_jwk.clone(), ec] })
}

fn redirect_allowed(inner: &Inner, uri: &str) -> bool {
    if !inner.redirect_uris.is_empty() {
        return inner.redirect_uris.iter().any(|u| u == uri);
    }
    let Ok(url) = url::Url::parse(uri) else { return false };
    url.scheme() == "http"
        && matches!(url.host_str(), Some("127.0.0.1" | "localhost"))
        && url.path() == "/oauth/callback"
}

async fn authorize(idp: web::Data<Shared>, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let q = query.into_inner();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let mut inner = idp.lock();
    let refusal = if get("response_type") != "code" {
        Some("response_type must be code")
    } else if get("client_id") != CLIENT_ID {
        Some("unknown client_id")
    } else if !redirect_allowed(&inner, &get("redirect_uri")) {
        Some("redirect_uri not registered")
    } else if get("code_challenge_method") != "S256"
        || !mcp_gateway::core::pkce::is_valid_challenge(&get("code_challenge"))
    {
        Some("PKCE S256 code_challenge required")
    } else if get("state").is_empty() {
        Some("state required")
    } else {
        None
    };
    if let Some(reason) = refusal {
        return HttpResponse::BadRequest().body(reason);
    }
    let record = AuthorizeRecord {
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        state: get("state"),
        nonce: q.get("nonce").cloned(),
        code_challenge: get("code_challenge"),
        scope: q.get("scope").cloned(),
    };
    let code = mcp_gateway::secret::random_token(16);
    let mut location = url::Url::parse(&record.redirect_uri).expect("checked above");
    location.query_pairs_mut().append_pair("code", &code).append_pair("state", &record.state);
    inner.authorizations.push(record.clone());
    let user = inner.user.clone();
    inner.codes.insert(code, Grant { record, user });
    HttpResponse::Found().insert_header(("location", location.to_string())).finish()
}

fn oauth_error(status: u16, error: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("status");
    HttpResponse::build(status).json(json!({ "error": error }))
}

/// Which client authentication the request used, if it is right.
fn client_auth(req: &HttpRequest, form: &HashMap<String, String>) -> Option<&'static str> {
    if let Some(basic) = req.headers().get("authorization").and_then(|v| v.to_str().ok()) {
        let decoded = STANDARD.decode(basic.strip_prefix("Basic ")?).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let id = url::form_urlencoded::parse(format!("a={id}").as_bytes()).next()?.1.into_owned();
        let secret = url::form_urlencoded::parse(format!("a={secret}").as_bytes()).next()?.1.into_owned();
        return (id == CLIENT_ID && secret == CLIENT_SECRET).then_some("basic");
    }
    let ok = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    ok.then_some("post")
}

async fn token(
    idp: web::Data<Shared>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let form = form.into_inner();
    let mut inner = idp.lock();
    if inner.token_fails {
        return oauth_error(503, "server_error");
    }
    let Some(method) = client_auth(&req, &form) else { return oauth_error(401, "invalid_client") };
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {}
        Some("refresh_token") => return refresh(&idp, &mut inner, &form),
        _ => return oauth_error(400, "unsupported_grant_type"),
    }
    // Removed before any other check: a code is single use even when the request is refused.
    let Some(grant) = form.get("code").and_then(|c| inner.codes.remove(c)) else {
        return oauth_error(400, "invalid_grant");
    };
    let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
    if form.get("redirect_uri") != Some(&grant.record.redirect_uri)
        || !mcp_gateway::core::pkce::verify_s256(&grant.record.code_challenge, verifier)
    {
        return oauth_error(400, "invalid_grant");
    }
    inner.token_auth_methods.push(method);
    let body = tokens_for(&idp, &mut inner, &grant);
    HttpResponse::Ok().json(body)
}

/// The refresh-token grant: single use, refused for a disabled person.
fn refresh(idp: &Shared, inner: &mut Inner, form: &HashMap<String, String>) -> HttpResponse {
    let Some(grant) = form.get("refresh_token").and_then(|t| inner.refresh_tokens.remove(t)) else {
        return oauth_error(400, "invalid_grant");
    };
    if inner.disabled.contains(&grant.user.sub) {
        return oauth_error(400, "invalid_grant");
    }
    inner.refreshes += 1;
    // A refreshed ID token carries no nonce (OIDC Core §12.2).
    let grant = Grant { record: AuthorizeRecord { nonce: None, ..grant.record }, user: grant.user };
    let body = tokens_for(idp, inner, &grant);
    HttpResponse::Ok().json(body)
}

/// A new access token (and refresh token, and ID token) for `grant`.
fn tokens_for(idp: &Shared, inner: &mut Inner, grant: &Grant) -> Value {
    let access_token = mcp_gateway::secret::random_token(24);
    inner.access_tokens.insert(access_token.clone(), grant.user.clone());
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": grant.record.scope.clone().unwrap_or_default(),
    });
    if inner.issue_refresh_tokens {
        let refresh_token = mcp_gateway::secret::random_token(24);
        inner.refresh_tokens.insert(refresh_token.clone(), grant.clone());
        body["refresh_token"] = Value::String(refresh_token);
    }
    if inner.fault != IdTokenFault::Missing {
        body["id_token"] = Value::String(id_token(idp, inner, grant));
    }
    body
}

fn id_token(idp: &Shared, inner: &Inner, grant: &Grant) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs() as i64;
    let now = now + inner.clock_offset;
    let fault = inner.fault;
    let mut claims = json!({
        "iss": if fault == IdTokenFault::WrongIssuer { "http://evil.example" } else { idp.issuer.as_str() },
        "aud": if fault == IdTokenFault::WrongAudience { "another-client" } else { CLIENT_ID },
        "sub": grant.user.sub,
        "iat": now,
        "exp": if fault == IdTokenFault::Expired { now - 3600 } else { now + 300 },
        "email": grant.user.email,
    });
    if let Some(verified) = inner.email_verified {
        claims["email_verified"] = Value::Bool(verified);
    }
    for (k, v) in &inner.extra_claims {
        claims[k] = v.clone();
    }
    let nonce = if fault == IdTokenFault::WrongNonce {
        Some("not-the-nonce".to_owned())
    } else {
        grant.record.nonce.clone()
    };
    if let Some(nonce) = nonce {
        claims["nonce"] = Value::String(nonce);
    }
    let (alg, kid, key) = match inner.alg {
        SigningAlg::Rs256 => (Algorithm::RS256, RSA_KID, &idp.rsa),
        SigningAlg::Es256 => (Algorithm::ES256, inner.ec.kid.as_str(), &inner.ec.key),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let token = jsonwebtoken::encode(&header, &claims, key).expect("sign ID token");
    if fault == IdTokenFault::BadSignature {
        return spoil_signature(&token);
    }
    token
}

/// Flips one bit of the signature, keeping the token well-formed.
fn spoil_signature(token: &str) -> String {
    let (signed, sig) = token.rsplit_once('.').expect("JWT");
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).expect("signature");
    bytes[10] ^= 0x01;
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn bearer_user(idp: &Shared, req: &HttpRequest) -> Option<TestUser> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let token = header.strip_prefix("Bearer ")?;
    let inner = idp.lock();
    inner.access_tokens.get(token).filter(|u| !inner.disabled.contains(&u.sub)).cloned()
}

async fn userinfo(idp: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let Some(user) = bearer_user(&idp, &req) else { return HttpResponse::Unauthorized().finish() };
    let mut body = json!({
        "sub": user.sub,
        "email": user.email,
        "name": user.name,
        "picture": user.picture,
    });
    let inner = idp.lock();
    if let Some(verified) = inner.email_verified {
        body["email_verified"] = Value::Bool(verified);
    }
    for (k, v) in &inner.extra_claims {
        body[k] = v.clone();
    }
    HttpResponse::Ok().json(body)
}

async fn github_user(idp: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    if req.headers().get("user-agent").is_none() {
        // GitHub's API refuses requests without a User-Agent.
        return HttpResponse::Forbidden().body("User-Agent required");
    }
    let Some(user) = bearer_user(&idp, &req) else { return HttpResponse::Unauthorized().finish() };
    let private = idp.lock().email_private;
    let id = user.sub.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(user.sub.clone()));
    HttpResponse::Ok().json(json!({
        "id": id,
        "login": format!("login-{}", user.sub),
        "name": user.name,
        "email": if private { None } else { user.email.clone() },
        "avatar_url": user.picture,
    }))
}

async fn github_emails(idp: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let Some(user) = bearer_user(&idp, &req) else { return HttpResponse::Unauthorized().finish() };
    let mut emails = vec![json!({"email": "unverified@example.org", "primary": false, "verified": false})];
    if let Some(email) = user.email {
        emails.push(json!({"email": email, "primary": true, "verified": true, "visibility": "private"}));
    }
    HttpResponse::Ok().json(emails)
}

/// One page of `items` as GitHub pages lists (`per_page`, default 30, and `page`, from 1).
fn page(req: &HttpRequest, items: Vec<Value>) -> Vec<Value> {
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let per_page = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30usize);
    let page = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1usize).max(1);
    items.into_iter().skip((page - 1) * per_page).take(per_page).collect()
}

async fn github_orgs(idp: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    if bearer_user(&idp, &req).is_none() {
        return HttpResponse::Unauthorized().finish();
    }
    let mut inner = idp.lock();
    inner.github_calls.push(format!("{}?{}", req.path(), req.query_string()));
    let orgs = inner.github_orgs.iter().map(|login| json!({"login": login, "id": 1})).collect();
    HttpResponse::Ok().json(page(&req, orgs))
}

async fn github_teams(idp: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    if bearer_user(&idp, &req).is_none() {
        return HttpResponse::Unauthorized().finish();
    }
    let mut inner = idp.lock();
    inner.github_calls.push(format!("{}?{}", req.path(), req.query_string()));
    let teams = inner
        .github_teams
        .iter()
        .map(|(org, slug)| json!({"slug": slug, "name": slug, "organization": {"login": org}}))
        .collect();
    HttpResponse::Ok().json(page(&req, teams))
}
