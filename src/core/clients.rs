//! The client registry: registered OAuth clients (RFC 7591 dynamic registration) and
//! client authentication at the token, revocation and introspection endpoints.
//!
//! Clients are stored under [`keys::client`] without a TTL: a registration lives until the
//! backend is wiped. Secrets exist in plain form only in the registration response; storage
//! holds their SHA-256.
//!
//! A client id that is a URL names a Client ID Metadata Document ([`super::cimd`]):
//! never stored, fetched when needed, validated with the same rules as a registration plus the
//! document's own, and kept in a process-wide cache as long as its HTTP caching headers allow.

use std::sync::Arc;

use super::cimd::{self, cache::DocumentCache, CimdError, DocumentFetcher};
use super::clock::{secs, Clock};
use super::error::OAuthError;
use super::machine::client_auth::{self, AssertionContext};
use super::machine::configured::ConfiguredClients;
use super::machine::id_jag::{self, IdJagContext, IdentityAssertion, TrustedIssuers};
use super::machine::jwks::JwksCache;
use super::model::{keys, normalize_scope, Client, ClientMetadata, ClientSource, Registered};
use super::redirect_uri;
use super::store::{json, Store};
use crate::config::{host_allowed, Settings};
use crate::secret::{constant_time_eq, hash_token, random_token};

/// Longest accepted `client_name`, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Longest accepted URI (redirect, `client_uri`, `logo_uri`), in bytes.
const MAX_URI_LEN: usize = 2000;
/// Longest accepted `scope` string, in bytes.
const MAX_SCOPE_LEN: usize = 1000;
/// How often a client's use is written down (each write renews its expiry).
const USE_RECORDED_EVERY: i64 = 24 * 3600;
/// Longest client id looked up; anything longer cannot be ours and never reaches storage.
const MAX_CLIENT_ID_LEN: usize = 2000;

const AUTH_METHODS: [&str; 3] = ["none", "client_secret_post", "client_secret_basic"];
const GRANT_TYPES: [&str; 2] = ["authorization_code", "refresh_token"];
const RESPONSE_TYPES: [&str; 1] = ["code"];
const APPLICATION_TYPES: [&str; 2] = ["web", "native"];

/// The registry over the store `S`: validation, storage, authentication.
pub struct ClientStore<S> {
    backend: S,
    settings: Arc<Settings>,
    clock: Clock,
    /// How metadata documents are fetched.
    fetcher: Arc<dyn DocumentFetcher>,
    /// Validated metadata documents, shared by every actor instance of the process.
    documents: DocumentCache,
    /// The clients of the configuration, looked up before the store.
    configured: Arc<ConfiguredClients>,
    /// Key sets of `private_key_jwt` clients and of trusted identity issuers.
    jwks: JwksCache,
    /// The identity providers whose ID-JAGs are accepted.
    trusted: Arc<TrustedIssuers>,
}

/// Metadata that passed validation, with defaults filled in.
struct Validated {
    auth_method: String,
    grant_types: Vec<String>,
    response_types: Vec<String>,
}

impl<S: Store> ClientStore<S> {
    /// A registry over `backend`, fetching metadata documents with `fetcher`.
    pub fn new(backend: S, settings: Arc<Settings>, clock: Clock, fetcher: Arc<dyn DocumentFetcher>) -> Self {
        let configured = Arc::new(ConfiguredClients::from_settings(&settings, clock.now()));
        let trusted = Arc::new(TrustedIssuers::from_settings(&settings));
        ClientStore {
            backend,
            settings,
            clock,
            fetcher,
            documents: DocumentCache::default(),
            trusted,
            configured,
            jwks: JwksCache::default(),
        }
    }

    /// Validates `meta` (RFC 7591 §2) and stores a new client with a random id. A secret is
    /// minted only for the secret-based auth methods and returned here once.
    pub async fn register(&self, meta: ClientMetadata) -> Result<Registered, OAuthError> {
        let valid = validate(&meta, self.settings.limits.max_redirect_uris)?;
        check_redirect_hosts(&meta.redirect_uris, &self.settings.registration.allowed_redirect_hosts)?;
        let client_secret = (valid.auth_method != "none").then(|| random_token(32));
        let mut client =
            build_client(random_token(16), meta, valid, self.clock.now(), ClientSource::Registered);
        client.client_secret_hash = client_secret.as_deref().map(hash_token);
        // 16 random bytes do not collide in practice; put_if_absent makes sure a collision
        // could never overwrite another client's registration.
        let key = keys::client(&client.client_id);
        if self.configured.contains(&client.client_id) {
            return Err(OAuthError::internal("client id collision with a configured client"));
        }
        if !json::put_if_absent(&self.backend, &key, &client, self.unused_ttl()).await? {
            return Err(OAuthError::internal("client id collision"));
        }
        Ok(Registered { client, client_secret })
    }

    /// How long a registration nobody uses is kept (`None`: for ever).
    fn unused_ttl(&self) -> Option<std::time::Duration> {
        let secs = self.settings.limits.unused_client_ttl;
        (secs > 0).then(|| std::time::Duration::from_secs(secs))
    }

    /// The client registered as `client_id`, if any. Each use keeps a registration alive
    /// (written again at most once per [`USE_RECORDED_EVERY`]); one unused for
    /// `limits.unused_client_ttl` is gone, so registrations a stranger makes and abandons do
    /// not pile up.
    pub async fn get(&self, client_id: &str) -> Result<Option<Client>, OAuthError> {
        if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_LEN {
            return Ok(None);
        }
        if let Some(configured) = self.configured.get(client_id) {
            return Ok(Some(configured.client.clone()));
        }
        if is_metadata_document_id(client_id) {
            return self.metadata_document(client_id).await;
        }
        let Some(mut client) = self.live(client_id).await? else { return Ok(None) };
        let Some(ttl) = self.unused_ttl() else { return Ok(Some(client)) };
        let (now, key) = (self.clock.now(), keys::client(client_id));
        if client.last_used == 0 || now - client.last_used > USE_RECORDED_EVERY {
            client.last_used = now;
            json::put(&self.backend, &key, &client, Some(ttl)).await?;
        }
        Ok(Some(client))
    }

    /// The client a metadata document URL describes: from the cache while fresh, else fetched
    /// and validated. Every failure is `invalid_client` naming the broken rule; failures are
    /// never cached.
    async fn metadata_document(&self, client_id: &str) -> Result<Option<Client>, OAuthError> {
        let allow_private = self.settings.runtime.allow_private_cimd;
        let now = self.clock.now();
        if let Some(client) = self.documents.get(client_id, now) {
            return Ok(Some(client));
        }
        let refused = |e: CimdError| {
            match &e {
                CimdError::Unreachable(detail) => log::warn!("metadata document {client_id}: {detail}"),
                other => log::warn!("metadata document {client_id}: {other}"),
            }
            OAuthError::InvalidClient(e.to_string())
        };
        if !self.settings.cimd.enabled {
            return Err(OAuthError::InvalidClient(
                "client ID metadata documents are not accepted here".into(),
            ));
        }
        let url = cimd::parse_client_id(client_id, allow_private).map_err(refused)?;
        let allowed = &self.settings.cimd.allowed_domains;
        if !allowed.is_empty() && !url.host_str().is_some_and(|h| host_allowed(allowed, h)) {
            return Err(OAuthError::InvalidClient(
                "client ID metadata documents are accepted only from the configured domains".into(),
            ));
        }
        let fetched = self.fetcher.fetch(&url, allow_private).await.map_err(refused)?;
        let meta = cimd::parse_document(&fetched.body, client_id).map_err(refused)?;
        let valid = validate(&meta, self.settings.limits.max_redirect_uris)
            .map_err(|e| refused(CimdError::Invalid(e.description().to_owned())))?;
        let client = build_client(client_id.to_owned(), meta, valid, now, ClientSource::MetadataDocument);
        if fetched.cache_for > 0 {
            let until = now.saturating_add(i64::try_from(fetched.cache_for).unwrap_or(i64::MAX));
            self.documents.put(client.clone(), now, until);
        }
        Ok(Some(client))
    }

    /// Every registered client still live (metadata-document clients are not registered:
    /// they live in the document cache and come back from their URL), by registration time.
    pub async fn list(&self) -> Result<Vec<Client>, OAuthError> {
        let mut found = Vec::new();
        for key in self.backend.keys(&keys::client("")).await? {
            let Some(id) = key.strip_prefix(keys::client("").as_str()) else { continue };
            if let Some(client) = self.live(id).await? {
                found.push(client);
            }
        }
        found.sort_by(|a, b| {
            (a.client_id_issued_at, &a.client_id).cmp(&(b.client_id_issued_at, &b.client_id))
        });
        Ok(found)
    }

    /// Removes the registration of `client_id`; returns whether there was one. Its grants and
    /// remembered consents are the token and consent services' to end.
    pub async fn delete(&self, client_id: &str) -> Result<bool, OAuthError> {
        let key = keys::client(client_id);
        Ok(self.backend.take(&key).await?.is_some())
    }

    /// A stored registration that has not expired, without recording a use.
    async fn live(&self, client_id: &str) -> Result<Option<Client>, OAuthError> {
        let Some(client) = json::get::<_, Client>(&self.backend, &keys::client(client_id)).await? else {
            return Ok(None);
        };
        let last_used = if client.last_used > 0 { client.last_used } else { client.client_id_issued_at };
        let expired = self.unused_ttl().is_some_and(|ttl| self.clock.now() - last_used > secs(ttl.as_secs()));
        Ok(Some(client).filter(|_| !expired))
    }

    /// Authenticates a client: a public (`none`) client passes with its id alone (a secret
    /// sent anyway is ignored); a confidential one needs its secret. Every failure is
    /// `invalid_client` with the same description, so it does not tell which part was wrong.
    pub async fn authenticate(&self, client_id: &str, secret: Option<&str>) -> Result<Client, OAuthError> {
        let refused = || OAuthError::InvalidClient("client authentication failed".into());
        if let Some(configured) = self.configured.get(client_id) {
            // A configured client authenticates with the method it was configured for only:
            // a `private_key_jwt` client has no secret.
            let ok = secret.is_some_and(|s| self.configured.secret_matches(configured, s));
            return if ok { Ok(configured.client.clone()) } else { Err(refused()) };
        }
        let client = self.get(client_id).await?.ok_or_else(refused)?;
        if client.token_endpoint_auth_method == "none" {
            return Ok(client);
        }
        let (Some(secret), Some(stored)) = (secret, client.client_secret_hash.as_deref()) else {
            return Err(refused());
        };
        // Comparing hashes keeps the timing independent of the secret's length too.
        if constant_time_eq(&hash_token(secret), stored) {
            Ok(client)
        } else {
            Err(refused())
        }
    }
}

impl<S: Store> ClientStore<S> {
    /// Authenticates a configured `private_key_jwt` client by its signed `assertion`
    /// ([`client_auth`]); `client_id` is the form's, if it sent one.
    pub async fn authenticate_assertion(
        &self,
        client_id: Option<&str>,
        assertion: &str,
    ) -> Result<Client, OAuthError> {
        let issuer = &self.settings.issuer;
        let ctx = AssertionContext {
            clients: &self.configured,
            jwks: &self.jwks,
            fetcher: self.fetcher.as_ref(),
            store: &self.backend,
            audiences: vec![format!("{issuer}/oauth/token"), format!("{issuer}/token"), issuer.clone()],
            allow_private: self.settings.runtime.allow_private_cimd,
            now: self.clock.now(),
        };
        client_auth::authenticate(&ctx, client_id, assertion).await
    }

    /// Verifies an identity assertion grant presented by the authenticated `client_id`
    /// ([`id_jag`]).
    pub async fn verify_identity_assertion(
        &self,
        client_id: &str,
        assertion: &str,
    ) -> Result<IdentityAssertion, OAuthError> {
        let ctx = IdJagContext {
            issuers: &self.trusted,
            jwks: &self.jwks,
            fetcher: self.fetcher.as_ref(),
            store: &self.backend,
            audience: &self.settings.issuer,
            allow_private: self.settings.runtime.allow_private_cimd,
            now: self.clock.now(),
        };
        id_jag::verify(&ctx, client_id, assertion).await
    }
}

/// `registration.allowed_redirect_hosts`: an `http(s)` redirect URI must point at a listed
/// host, unless it is loopback (a native app on the person's own machine, RFC 8252) ; other
/// schemes are private-use ones of native apps and stay on the device.
fn check_redirect_hosts(uris: &[String], allowed: &[String]) -> Result<(), OAuthError> {
    if allowed.is_empty() {
        return Ok(());
    }
    for uri in uris {
        let Ok(url) = url::Url::parse(uri) else { continue };
        if !matches!(url.scheme(), "http" | "https") || redirect_uri::is_loopback(&url) {
            continue;
        }
        if !url.host_str().is_some_and(|h| host_allowed(allowed, h)) {
            return Err(OAuthError::InvalidRedirectUri(format!(
                "redirect URIs may point only at {} (or loopback)",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// The one way a [`Client`] record is made from validated metadata (no secret yet).
fn build_client(
    client_id: String,
    meta: ClientMetadata,
    valid: Validated,
    now: i64,
    source: ClientSource,
) -> Client {
    Client {
        client_id,
        client_secret_hash: None,
        client_name: meta.client_name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
        redirect_uris: meta.redirect_uris,
        token_endpoint_auth_method: valid.auth_method,
        grant_types: valid.grant_types,
        response_types: valid.response_types,
        scope: meta.scope.map(|s| normalize_scope(&s)).filter(|s| !s.is_empty()),
        application_type: meta.application_type,
        client_uri: meta.client_uri,
        logo_uri: meta.logo_uri,
        client_id_issued_at: now,
        source,
        last_used: now,
    }
}

/// Whether `client_id` is a Client ID Metadata Document URL rather than a registered id
/// (registered ids are base64url and never contain `:`).
pub fn is_metadata_document_id(client_id: &str) -> bool {
    cimd::is_client_id_url(client_id)
}

/// RFC 7591 §2 checks; defaults for omitted fields.
fn validate(meta: &ClientMetadata, max_uris: usize) -> Result<Validated, OAuthError> {
    validate_redirect_uris(&meta.redirect_uris, max_uris)?;
    let auth_method = meta.token_endpoint_auth_method.clone().unwrap_or_else(|| "none".into());
    if !AUTH_METHODS.contains(&auth_method.as_str()) {
        return Err(bad_metadata(format!(
            "token_endpoint_auth_method must be one of {}",
            AUTH_METHODS.join(", ")
        )));
    }
    let grant_types = subset_or_default(meta.grant_types.as_deref(), &GRANT_TYPES, "grant_types")?;
    let response_types =
        subset_or_default(meta.response_types.as_deref(), &RESPONSE_TYPES, "response_types")?;
    // RFC 7591 §2.1: authorization_code goes with the `code` response type; a client without
    // authorization_code could never obtain a first token here.
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(bad_metadata("grant_types must include authorization_code".into()));
    }
    if !response_types.iter().any(|r| r == "code") {
        return Err(bad_metadata("response_types must include code".into()));
    }
    if let Some(kind) = &meta.application_type {
        if !APPLICATION_TYPES.contains(&kind.as_str()) {
            return Err(bad_metadata("application_type must be web or native".into()));
        }
    }
    validate_descriptive(meta)?;
    Ok(Validated { auth_method, grant_types, response_types })
}

/// `max_uris`: `limits.max_redirect_uris`.
fn validate_redirect_uris(uris: &[String], max_uris: usize) -> Result<(), OAuthError> {
    if uris.is_empty() {
        return Err(OAuthError::InvalidRedirectUri("at least one redirect_uri is required".into()));
    }
    if uris.len() > max_uris {
        return Err(OAuthError::InvalidRedirectUri(format!("at most {max_uris} redirect_uris are accepted")));
    }
    for uri in uris {
        if uri.len() > MAX_URI_LEN {
            return Err(OAuthError::InvalidRedirectUri(format!(
                "redirect URIs are limited to {MAX_URI_LEN} characters"
            )));
        }
        redirect_uri::validate_for_registration(uri).map_err(OAuthError::InvalidRedirectUri)?;
    }
    Ok(())
}

/// Name, scope and the informational URIs: shown on the consent page, so bounded and, for
/// URIs, http(s) only (no `javascript:` links).
fn validate_descriptive(meta: &ClientMetadata) -> Result<(), OAuthError> {
    if meta.client_name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME_CHARS) {
        return Err(bad_metadata(format!("client_name is limited to {MAX_NAME_CHARS} characters")));
    }
    if meta.scope.as_ref().is_some_and(|s| s.len() > MAX_SCOPE_LEN) {
        return Err(bad_metadata(format!("scope is limited to {MAX_SCOPE_LEN} characters")));
    }
    for (field, value) in [("client_uri", &meta.client_uri), ("logo_uri", &meta.logo_uri)] {
        if let Some(uri) = value {
            if !is_web_uri(uri) {
                return Err(bad_metadata(format!("{field} must be an http or https URL")));
            }
        }
    }
    Ok(())
}

fn is_web_uri(uri: &str) -> bool {
    uri.len() <= MAX_URI_LEN
        && url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// `given` deduplicated if every entry is in `allowed`; `allowed` itself when omitted or empty.
fn subset_or_default(
    given: Option<&[String]>,
    allowed: &[&str],
    field: &str,
) -> Result<Vec<String>, OAuthError> {
    let Some(given) = given.filter(|g| !g.is_empty()) else {
        return Ok(allowed.iter().map(|s| (*s).to_owned()).collect());
    };
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for value in given {
        if !allowed.contains(&value.as_str()) {
            return Err(bad_metadata(format!("{field} may contain only {}", allowed.join(", "))));
        }
        if !out.contains(value) {
            out.push(value.clone());
        }
    }
    Ok(out)
}

fn bad_metadata(description: String) -> OAuthError {
    OAuthError::InvalidClientMetadata(description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::MemoryStore;
    use crate::core::testing;

    /// Fetching is the `crate::fetch` adapter's job, tested there and end to end; these tests
    /// never reach it.
    struct NoNetwork;

    impl DocumentFetcher for NoNetwork {
        fn fetch<'a>(&'a self, _: &'a url::Url, _: bool) -> cimd::FetchFuture<'a> {
            Box::pin(async { Err(CimdError::Unreachable("no network in unit tests".into())) })
        }
    }

    fn store() -> ClientStore<MemoryStore> {
        ClientStore::new(testing::memory(), testing::settings(), Clock::default(), Arc::new(NoNetwork))
    }

    fn meta(redirects: &[&str]) -> ClientMetadata {
        ClientMetadata {
            redirect_uris: redirects.iter().map(|s| (*s).to_owned()).collect(),
            client_name: Some("Test client".into()),
            ..ClientMetadata::default()
        }
    }

    fn code_of(result: Result<Registered, OAuthError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[tokio::test]
    async fn public_client_gets_defaults_and_no_secret() -> Result<(), OAuthError> {
        let s = store();
        let reg = s.register(meta(&["http://127.0.0.1/cb"])).await?;
        assert!(reg.client_secret.is_none());
        assert!(reg.client.client_secret_hash.is_none());
        assert_eq!(reg.client.token_endpoint_auth_method, "none");
        assert_eq!(reg.client.grant_types, ["authorization_code", "refresh_token"]);
        assert_eq!(reg.client.response_types, ["code"]);
        let found = s.get(&reg.client.client_id).await?.ok_or_else(|| OAuthError::internal("gone"))?;
        assert_eq!(found.redirect_uris, ["http://127.0.0.1/cb"]);
        assert_eq!(found.client_name.as_deref(), Some("Test client"));
        // A secret sent by a public client is ignored.
        s.authenticate(&reg.client.client_id, None).await?;
        s.authenticate(&reg.client.client_id, Some("whatever")).await?;
        Ok(())
    }

    #[tokio::test]
    async fn every_validation_error_has_its_code() {
        let s = store();
        let cases: Vec<(ClientMetadata, &str)> = vec![
            (meta(&[]), "invalid_redirect_uri"),
            (meta(&["http://example.com/cb"]), "invalid_redirect_uri"),
            (meta(&["javascript:alert(1)"]), "invalid_redirect_uri"),
            (meta(&["https://example.com/cb#frag"]), "invalid_redirect_uri"),
            (meta(&["https://example.com/cb"; 21]), "invalid_redirect_uri"),
            (meta(&[&format!("https://example.com/{}", "a".repeat(2000))]), "invalid_redirect_uri"),
            (
                ClientMetadata {
                    token_endpoint_auth_method: Some("private_key_jwt".into()),
                    ..meta(&["https://a.example/cb"])
                },
                "invalid_client_metadata",
            ),
            (
                ClientMetadata {
                    grant_types: Some(vec!["client_credentials".into()]),
                    ..meta(&["https://a.example/cb"])
                },
                "invalid_client_metadata",
            ),
            (
                ClientMetadata {
                    grant_types: Some(vec!["refresh_token".into()]),
                    ..meta(&["https://a.example/cb"])
                },
                "invalid_client_metadata",
            ),
            (
                ClientMetadata {
                    response_types: Some(vec!["token".into()]),
                    ..meta(&["https://a.example/cb"])
                },
                "invalid_client_metadata",
            ),
            (
                ClientMetadata {
                    application_type: Some("desktop".into()),
                    ..meta(&["https://a.example/cb"])
                },
                "invalid_client_metadata",
            ),
            (
                ClientMetadata { client_name: Some("n".repeat(201)), ..meta(&["https://a.example/cb"]) },
                "invalid_client_metadata",
            ),
            (
                ClientMetadata {
                    client_uri: Some("javascript:alert(1)".into()),
                    ..meta(&["https://a.example/cb"])
                },
                "invalid_client_metadata",
            ),
            (
                ClientMetadata {
                    logo_uri: Some("ftp://a.example/logo.png".into()),
                    ..meta(&["https://a.example/cb"])
                },
                "invalid_client_metadata",
            ),
        ];
        for (i, (m, expected)) in cases.into_iter().enumerate() {
            assert_eq!(code_of(s.register(m).await), expected, "case {i}");
        }
    }

    #[tokio::test]
    async fn accepted_edge_cases() {
        let s = store();
        let ok = vec![
            meta(&["https://example.com/cb"; 20]),
            meta(&["cursor://anysphere.cursor-retrieval/oauth/callback"]),
            ClientMetadata { client_name: Some("é".repeat(200)), ..meta(&["https://a.example/cb"]) },
            ClientMetadata {
                application_type: Some("native".into()),
                grant_types: Some(vec!["authorization_code".into()]),
                response_types: Some(vec!["code".into()]),
                client_uri: Some("https://a.example".into()),
                logo_uri: Some("http://a.example/logo.png".into()),
                ..meta(&["http://localhost:3000/cb"])
            },
        ];
        for (i, m) in ok.into_iter().enumerate() {
            assert_eq!(code_of(s.register(m).await), "ok", "case {i}");
        }
    }

    #[tokio::test]
    async fn secret_clients_authenticate_with_their_secret_only() -> Result<(), OAuthError> {
        let s = store();
        for method in ["client_secret_post", "client_secret_basic"] {
            let m = ClientMetadata {
                token_endpoint_auth_method: Some(method.into()),
                ..meta(&["https://a.example/cb"])
            };
            let reg = s.register(m).await?;
            let secret = reg.client_secret.clone().ok_or_else(|| OAuthError::internal("no secret"))?;
            let stored = s.get(&reg.client.client_id).await?.ok_or_else(|| OAuthError::internal("gone"))?;
            assert_eq!(stored.client_secret_hash.as_deref(), Some(hash_token(&secret).as_str()));
            assert_ne!(stored.client_secret_hash.as_deref(), Some(secret.as_str()), "stored hashed");
            let id = &reg.client.client_id;
            assert_eq!(s.authenticate(id, Some(&secret)).await?.client_id, *id);
            for bad in [None, Some(""), Some("wrong"), Some(&secret[1..])] {
                assert_eq!(
                    s.authenticate(id, bad).await.map(|_| ()).err().map(|e| e.code()),
                    Some("invalid_client")
                );
            }
        }
        Ok(())
    }

    #[tokio::test]
    async fn unknown_clients_are_refused() -> Result<(), OAuthError> {
        let s = store();
        assert!(s.get("nope").await?.is_none());
        assert!(s.get("").await?.is_none());
        assert!(s.get(&"x".repeat(5000)).await?.is_none());
        // A metadata document on a loopback address: refused before any connection.
        let err = s.get("https://127.0.0.1:9/metadata.json").await.err().map(|e| e.code());
        assert_eq!(err, Some("invalid_client"));
        let err = s.get("http://client.example/metadata.json").await.err().map(|e| e.code());
        assert_eq!(err, Some("invalid_client"), "http document URLs");
        let err = s.authenticate("nope", Some("secret")).await.err().map(|e| e.code());
        assert_eq!(err, Some("invalid_client"));
        Ok(())
    }
}
