//! The one upstream identity provider users log in with.
//!
//! Every kind runs the same leg: the browser goes to the provider's authorization endpoint
//! with `state` and a PKCE S256 challenge, comes back to `{issuer}/oauth/callback`, and
//! [`Upstream::complete`] exchanges the code (with the verifier) and reads who logged in.
//! What differs per kind is where the endpoints are ([`endpoints`]), and how the person is
//! read: a userinfo endpoint (google, custom), the GitHub API ([`github`]), a verified ID token
//! merged with userinfo (okta, oidc: [`oidc`]), or the gateway's own signed page (`dev`:
//! [`dev`]). Upstream tokens never leave this module and are never logged.

mod claims;
pub mod dev;
mod endpoints;
mod github;
mod http;
mod oidc;
mod recheck;

use std::net::IpAddr;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse as _,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{ProviderKind, Settings};
use crate::core::access;
use crate::core::model::{UpstreamGrant, UpstreamLogin, UserInfo};
use crate::core::upstream_grant::{TokenSealer, UpstreamTokens};
use crate::core::Clock;

pub use claims::user_from_claims;
pub use dev::DEV_CODE_TTL_SECS;

/// Why the upstream leg failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Settings are unusable (bad URL, missing field).
    #[error("configuration: {0}")]
    Config(String),
    /// The provider could not be reached or answered with an error.
    #[error("provider request failed: {0}")]
    Request(String),
    /// The provider's answer was refused (bad ID token, missing subject).
    #[error("provider response rejected: {0}")]
    Rejected(String),
    /// The provider refused the person's token (401 or 403 from its API, `invalid_grant` from
    /// its token endpoint).
    #[error("provider refused the token: {0}")]
    Denied(String),
}

/// Who signed in, and their sign-in at the provider sealed for later re-checks.
#[derive(Debug)]
pub struct SignedIn {
    /// The person.
    pub user: UserInfo,
    /// The provider's tokens, sealed; none for the dev provider (nothing to ask again) and
    /// when no sealer is set.
    pub upstream: Option<UpstreamGrant>,
}

/// What to keep between sending the browser upstream and the callback.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// PKCE verifier of the upstream leg.
    pub pkce_verifier: String,
    /// OIDC nonce, when the provider is OIDC.
    pub nonce: Option<String>,
}

/// The token endpoint's answer: the standard fields plus the OIDC `id_token`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenFields {}

type UpstreamTokenResponse = StandardTokenResponse<IdTokenFields, BasicTokenType>;

/// An oauth2 client with the authorization and token endpoints set.
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    UpstreamTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// How the person is read after the code exchange.
enum Identity {
    /// `GET userinfo` with the access token; OIDC-style claims (google, custom).
    Userinfo(url::Url),
    /// The GitHub REST API (`/user`, `/user/emails`).
    GitHub(github::GitHubApi),
    /// A verified ID token, merged with userinfo when there is one (okta, oidc).
    Oidc(Box<oidc::OidcVerifier>, Option<url::Url>),
}

/// A provider reached over OAuth 2.0.
struct Remote {
    client: OAuthClient,
    scopes: Vec<String>,
    identity: Identity,
    /// Parameters added to the authorization URL (Google's offline access).
    extra_params: Vec<(&'static str, &'static str)>,
}

enum Provider {
    Remote(Box<Remote>),
    Dev(dev::DevProvider),
}

/// The configured provider.
pub struct Upstream {
    kind: ProviderKind,
    provider: Provider,
    clock: Clock,
    /// The claim groups are read from (`groups_claim`, default `groups`).
    groups_claim: String,
    /// Seals the provider's tokens kept for re-checks; none: nothing is kept.
    sealer: Option<TokenSealer>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the provider from settings (OIDC providers run discovery here, so an
    /// unreachable provider fails startup with [`UpstreamError::Request`]).
    pub async fn from_settings(settings: &Settings) -> Result<Self, UpstreamError> {
        let (kind, provider_settings) = settings
            .provider()
            .ok_or_else(|| UpstreamError::Config("no oauth provider configured".into()))?;
        let redirect_uri = format!("{}/oauth/callback", settings.issuer.trim_end_matches('/'));
        let provider = match kind {
            ProviderKind::Dev => {
                ensure_loopback(&settings.host)?;
                Provider::Dev(dev::DevProvider::new(settings))
            }
            _ => {
                let mut ep = endpoints::resolve(kind, provider_settings).await?;
                let memberships = kind == ProviderKind::GitHub && access::uses_github(settings);
                if memberships && !ep.scopes.iter().any(|s| s == github::READ_ORG) {
                    // Organization and team memberships are only visible with it.
                    ep.scopes.push(github::READ_ORG.to_owned());
                }
                let mut remote = remote(ep, provider_settings, &redirect_uri, memberships)?;
                if kind == ProviderKind::Google && settings.tokens.upstream_recheck > 0 {
                    // Google gives a refresh token only for offline access, and only when the
                    // person is asked for consent: without one there is nothing to re-check
                    // with once its one-hour access token expires.
                    remote.extra_params = vec![("access_type", "offline"), ("prompt", "consent")];
                }
                Provider::Remote(Box::new(remote))
            }
        };
        let groups_claim = provider_settings.groups_claim.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let groups_claim = groups_claim.unwrap_or(claims::DEFAULT_GROUPS_CLAIM).to_owned();
        Ok(Upstream { kind, provider, clock: Clock::default(), groups_claim, sealer: None })
    }

    /// Keeps the provider's tokens of each sign-in, sealed with `sealer`, for re-checks.
    pub fn with_sealer(mut self, sealer: TokenSealer) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// Uses `clock` for ID token and dev code expiry (the gateway's clock, which tests move).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The dev provider, when it is the configured one (its login page needs it).
    pub fn dev(&self) -> Option<&dev::DevProvider> {
        match &self.provider {
            Provider::Dev(dev) => Some(dev),
            Provider::Remote(_) => None,
        }
    }

    /// Provider kind: `google`, `github`, `okta`, `custom`, `oidc` or `dev`.
    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }

    /// Fresh PKCE verifier and nonce for one login. The nonce is set only for kinds whose ID
    /// token is verified (okta, oidc): elsewhere nothing would check it.
    pub fn prepare(&self) -> Prepared {
        let verifies_id_token =
            matches!(&self.provider, Provider::Remote(r) if matches!(r.identity, Identity::Oidc(..)));
        let nonce = verifies_id_token.then(|| crate::secret::random_token(24));
        Prepared { pkce_verifier: crate::secret::random_token(32), nonce }
    }

    /// The URL to send the browser to, carrying `state` and the PKCE challenge of `prepared`.
    pub fn authorize_url(&self, state: &str, prepared: &Prepared) -> String {
        let verifier = PkceCodeVerifier::new(prepared.pkce_verifier.clone());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        match &self.provider {
            Provider::Dev(dev) => dev.authorize_url(state, challenge.as_str()),
            Provider::Remote(remote) => {
                let state = state.to_owned();
                let mut request = remote
                    .client
                    .authorize_url(move || CsrfToken::new(state))
                    .add_scopes(remote.scopes.iter().map(|s| Scope::new(s.clone())))
                    .set_pkce_challenge(challenge);
                if let Some(nonce) = &prepared.nonce {
                    request = request.add_extra_param("nonce", nonce.clone());
                }
                for (name, value) in &remote.extra_params {
                    request = request.add_extra_param(*name, *value);
                }
                request.url().0.to_string()
            }
        }
    }

    /// Exchanges the upstream `code` and reads who logged in.
    pub async fn complete(&self, code: &str, login: &UpstreamLogin) -> Result<SignedIn, UpstreamError> {
        match &self.provider {
            Provider::Dev(dev) => {
                Ok(SignedIn { user: dev.complete(code, login, self.clock.now())?, upstream: None })
            }
            Provider::Remote(remote) => self.complete_remote(remote, code, login).await,
        }
    }

    async fn complete_remote(
        &self,
        remote: &Remote,
        code: &str,
        login: &UpstreamLogin,
    ) -> Result<SignedIn, UpstreamError> {
        let token = exchange(&remote.client, code, &login.pkce_verifier).await?;
        let user = self.read_person(remote, &token, login.nonce.as_deref(), None).await?;
        let upstream = self.seal(&token, None, &user);
        Ok(SignedIn { user, upstream })
    }

    /// The sealed tokens of `token` for `user`, keeping `previous_refresh` when the provider
    /// sent no new refresh token (it keeps the old one valid then).
    fn seal(
        &self,
        token: &UpstreamTokenResponse,
        previous_refresh: Option<&str>,
        user: &UserInfo,
    ) -> Option<UpstreamGrant> {
        let sealer = self.sealer.as_ref()?;
        let tokens = UpstreamTokens {
            access_token: token.access_token().secret().clone(),
            refresh_token: token
                .refresh_token()
                .map(|t| t.secret().clone())
                .or_else(|| previous_refresh.map(str::to_owned)),
        };
        Some(UpstreamGrant { sealed: sealer.seal(&tokens, &user.id), checked_at: self.clock.now() })
    }

    /// Who `token` speaks for: at a login (`recorded` none) the ID token of an OIDC provider
    /// is required and its `nonce` checked; at a re-check a refreshed ID token is optional
    /// (OIDC Core §12.2: same issuer, subject and audience, no nonce), and without one the
    /// recorded facts stand where the provider says nothing new.
    async fn read_person(
        &self,
        remote: &Remote,
        token: &UpstreamTokenResponse,
        nonce: Option<&str>,
        recorded: Option<&UserInfo>,
    ) -> Result<UserInfo, UpstreamError> {
        let access_token = token.access_token().secret();
        match &remote.identity {
            Identity::Userinfo(url) => {
                let claims = http::get_json(url.as_str(), Some(access_token)).await?;
                self.user_with_memberships(&claims)
            }
            Identity::GitHub(api) => api.user(self.kind(), access_token).await,
            Identity::Oidc(verifier, userinfo) => {
                let id_claims = match (token.extra_fields().id_token.as_deref(), recorded) {
                    (Some(id_token), _) => verifier.verify(id_token, nonce, self.clock.now()).await?,
                    (None, Some(user)) => claims::of_user(user, &self.groups_claim),
                    (None, None) => {
                        return Err(UpstreamError::Rejected("token response has no id_token".into()))
                    }
                };
                let info = match userinfo {
                    Some(url) => Some(http::get_json(url.as_str(), Some(access_token)).await?),
                    None => None,
                };
                let merged = claims::merge_userinfo(id_claims, info)?;
                self.user_with_memberships(&merged)
            }
        }
    }

    /// The user of OIDC-style `claims`, with the groups (and, from Google, the hosted domain)
    /// the access rules match.
    fn user_with_memberships(&self, claims: &serde_json::Value) -> Result<UserInfo, UpstreamError> {
        let mut user = user_from_claims(self.kind(), claims)?;
        user.memberships.groups = claims::groups(claims, &self.groups_claim);
        if self.kind == ProviderKind::Google {
            user.memberships.hosted_domain = claims::hosted_domain(claims);
        }
        Ok(user)
    }
}

/// Builds the oauth2 client and the identity reader of a remote provider.
fn remote(
    ep: endpoints::Endpoints,
    settings: &crate::config::ProviderSettings,
    redirect_uri: &str,
    github_memberships: bool,
) -> Result<Remote, UpstreamError> {
    if settings.client_id.trim().is_empty() {
        return Err(UpstreamError::Config("client_id is required".into()));
    }
    let mut client = oauth2::Client::new(ClientId::new(settings.client_id.clone()))
        .set_auth_uri(parse(oauth2::AuthUrl::new(ep.authorization.clone()))?)
        .set_token_uri(parse(oauth2::TokenUrl::new(ep.token.clone()))?)
        .set_redirect_uri(parse(RedirectUrl::new(redirect_uri.to_owned()))?)
        .set_auth_type(if ep.secret_in_body { AuthType::RequestBody } else { AuthType::BasicAuth });
    if let Some(secret) = &settings.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
    }
    let userinfo = ep.userinfo.as_deref().map(parse_url).transpose()?;
    let identity = match (ep.flavor, userinfo) {
        (endpoints::Flavor::GitHub, Some(user)) => {
            Identity::GitHub(github::GitHubApi::new(user).with_memberships(github_memberships))
        }
        (endpoints::Flavor::Oidc(verifier), userinfo) => Identity::Oidc(verifier, userinfo),
        (_, Some(url)) => Identity::Userinfo(url),
        (_, None) => return Err(UpstreamError::Config("userinfo_url is required".into())),
    };
    Ok(Remote { client, scopes: ep.scopes, identity, extra_params: Vec::new() })
}

/// The code exchange, with the PKCE verifier, through the awc-backed client.
async fn exchange(
    client: &OAuthClient,
    code: &str,
    verifier: &str,
) -> Result<UpstreamTokenResponse, UpstreamError> {
    client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .request_async(&http::send)
        .await
        .map_err(http::describe_token_error)
}

fn parse<T>(result: Result<T, url::ParseError>) -> Result<T, UpstreamError> {
    result.map_err(|e| UpstreamError::Config(format!("bad provider URL: {e}")))
}

fn parse_url(s: &str) -> Result<url::Url, UpstreamError> {
    parse(url::Url::parse(s))
}

/// The dev provider logs anyone in with any email: only on a gateway nobody else can reach.
fn ensure_loopback(host: &str) -> Result<(), UpstreamError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(UpstreamError::Config(format!(
            "the dev provider only runs on a loopback address, not on host {host:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_may_run_dev() {
        for ok in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"] {
            assert!(ensure_loopback(ok).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0", "::", "10.0.0.1", "example.com", ""] {
            assert!(ensure_loopback(bad).is_err(), "{bad}");
        }
    }
}
