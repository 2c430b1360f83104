//! The records the authorization server keeps, and the storage key schema. Each record is
//! stored as JSON under a namespaced key (see [`keys`]) and carries its own expiry, checked
//! against the gateway's clock. The key formats are a compatibility promise: a Redis or Vault
//! store written by an earlier version is read by this one.

use serde::{Deserialize, Serialize};

/// Who logged in, as the upstream provider told us. `id` is `{provider}_{sub}`.
///
/// `email` is only ever an address the provider verified (`crate::upstream` drops any other;
/// the `dev` provider, where anyone is anyone, takes the typed one): access rules match emails
/// and domains against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// `{provider}_{sub}`: the stable id sent to backends as `x-user-id`.
    pub id: String,
    /// The provider's subject identifier.
    pub sub: String,
    /// Email address, if the provider shared one.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Picture URL.
    pub avatar: Option<String>,
    /// Provider kind: `google`, `github`, `okta`, `custom`, `oidc` or `dev`.
    pub provider: String,
    /// What access rules match besides the email, as read at login. Stored with the code and
    /// the refresh-token family, so that every refresh asks the rules again; records written
    /// before it was kept have none.
    #[serde(default, skip_serializing_if = "Memberships::is_empty")]
    pub memberships: Memberships,
}

/// Groups, hosted domain and GitHub memberships of a user, as the provider reported them at
/// login.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memberships {
    /// From the provider's groups claim.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Google's `hd`: the Workspace domain Google vouches for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosted_domain: Option<String>,
    /// GitHub organization logins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub github_orgs: Vec<String>,
    /// GitHub teams as `org/slug`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub github_teams: Vec<String>,
}

impl Memberships {
    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
            && self.hosted_domain.is_none()
            && self.github_orgs.is_empty()
            && self.github_teams.is_empty()
    }
}

impl UserInfo {
    /// Builds a user from the provider's subject, deriving `id`.
    pub fn new(provider: &str, sub: &str) -> Self {
        UserInfo {
            id: format!("{provider}_{sub}"),
            sub: sub.to_owned(),
            email: None,
            name: None,
            avatar: None,
            provider: provider.to_owned(),
            memberships: Memberships::default(),
        }
    }
}

/// Where a client's metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    /// RFC 7591 dynamic registration.
    Registered,
    /// A Client ID Metadata Document fetched from the `client_id` URL.
    MetadataDocument,
    /// Listed under `clients:` in the configuration; never stored.
    Configured,
}

/// A registered OAuth client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    /// The id the client presents.
    pub client_id: String,
    /// SHA-256 of the client secret, for secret-based auth methods.
    pub client_secret_hash: Option<String>,
    /// Name shown on the consent page.
    pub client_name: Option<String>,
    /// Registered redirect URIs (exact match, any port on loopback).
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub token_endpoint_auth_method: String,
    /// Grant types the client may use.
    pub grant_types: Vec<String>,
    /// Response types the client may use.
    pub response_types: Vec<String>,
    /// Scope the client registered with, if any.
    pub scope: Option<String>,
    /// `web` or `native` (RFC 7591 via OIDC registration).
    pub application_type: Option<String>,
    /// Homepage of the client.
    pub client_uri: Option<String>,
    /// Logo of the client.
    pub logo_uri: Option<String>,
    /// Unix time of registration.
    pub client_id_issued_at: i64,
    /// Registration or metadata document.
    pub source: ClientSource,
    /// Unix time the client was last used (registration counts), for the expiry of clients
    /// nobody uses (`limits.unused_client_ttl`). 0 in records written before it was kept.
    #[serde(default)]
    pub last_used: i64,
}

/// RFC 7591 client metadata as sent by a client (or read from a metadata document), before
/// validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ClientMetadata {
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Display name.
    pub client_name: Option<String>,
    /// `none` (default), `client_secret_post` or `client_secret_basic`.
    pub token_endpoint_auth_method: Option<String>,
    /// Grant types (default `authorization_code`, `refresh_token`).
    pub grant_types: Option<Vec<String>>,
    /// Response types (default `code`).
    pub response_types: Option<Vec<String>>,
    /// Space-separated scope.
    pub scope: Option<String>,
    /// `web` or `native`.
    pub application_type: Option<String>,
    /// Client homepage.
    pub client_uri: Option<String>,
    /// Client logo.
    pub logo_uri: Option<String>,
}

/// A client just registered; `client_secret` is shown once and stored only hashed.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The stored client.
    pub client: Client,
    /// The plain secret, for secret-based auth methods.
    pub client_secret: Option<String>,
}

/// An authorization request between `/oauth/authorize` and the upstream callback: validated,
/// waiting for consent and login. Stored under [`keys::login`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// Random id; also the consent form's hidden field.
    pub id: String,
    /// The client asking.
    pub client_id: String,
    /// The validated redirect URI, exactly as sent.
    pub redirect_uri: String,
    /// The client's `state`, echoed unchanged.
    pub state: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Space-separated scopes requested (may be empty).
    pub scope: String,
    /// The service the token will be for.
    pub service_id: String,
    /// Its canonical resource URI (the token's `aud`).
    pub resource: String,
    /// Whether the person approved on the consent page during this flow.
    pub consented: bool,
    /// The user a remembered consent was found for (from the browser session cookie), if any.
    pub remembered_user: Option<String>,
    /// Hash ([`crate::secret::hash_token`]) of the login cookie of the browser that approved
    /// this request (or skipped the page on a remembered consent). The callback completes the
    /// request only for that browser, so a sign-in link forwarded to someone else is worthless.
    /// `None` (also a record written by an earlier version) matches no browser.
    #[serde(default)]
    pub browser_hash: Option<String>,
    /// A sign-in to the person's `/account` page rather than for a client: the callback
    /// opens the page instead of issuing a code (client, redirect and PKCE fields are empty).
    #[serde(default)]
    pub account: bool,
    /// Unix time after which this request is void.
    pub expires_at: i64,
}

/// What the upstream `state` parameter points to: created only after consent, single use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamLogin {
    /// The pending authorization this login completes.
    pub pending_id: String,
    /// PKCE verifier of the upstream leg.
    pub pkce_verifier: String,
    /// OIDC nonce, when the provider is OIDC.
    pub nonce: Option<String>,
    /// Unix time after which the login is void.
    pub expires_at: i64,
}

/// The sealed tokens and when the provider last confirmed the person, as stored with a code
/// and with each refresh token of the family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamGrant {
    /// `TokenSealer::seal` of the [`UpstreamTokens`].
    pub sealed: String,
    /// Unix time the provider last confirmed the person (the login, or the last re-check).
    pub checked_at: i64,
}

/// An issued authorization code, stored under the hash of the code. Single use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthCode {
    /// Client the code was issued to.
    pub client_id: String,
    /// Redirect URI it was sent to; the token request must repeat it.
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Service id the token is for.
    pub service_id: String,
    /// Canonical resource URI.
    pub resource: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Who logged in.
    pub user: UserInfo,
    /// Token family the redemption will start; replay revokes it.
    pub family_id: String,
    /// Unix time after which the code is void.
    pub expires_at: i64,
    /// The person's sign-in at the provider, sealed; none for the dev provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamGrant>,
}

/// What redeeming a code found.
#[derive(Debug)]
pub enum Redemption {
    /// First use of a live code.
    Redeemed(Box<AuthCode>),
    /// The code was already redeemed: its token family must be revoked.
    Replayed {
        /// Family started by the first redemption.
        family_id: String,
    },
    /// Unknown or expired.
    Invalid,
}

/// A live refresh token, stored under the hash of the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// Family: every token rotated from one code shares it.
    pub family_id: String,
    /// Client the token belongs to.
    pub client_id: String,
    /// Service id.
    pub service_id: String,
    /// Canonical resource URI.
    pub resource: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Who the tokens speak for.
    pub user: UserInfo,
    /// Unix time after which the token is void.
    pub expires_at: i64,
    /// Unix time the family's grant began (the code was redeemed); the family ends
    /// `tokens.grant_max_age` later. 0 in records written before it was kept: their grant is
    /// counted from their next rotation.
    #[serde(default)]
    pub granted_at: i64,
    /// The person's sign-in at the provider, sealed, for `tokens.upstream_recheck`; none for
    /// the dev provider and in records written before it was kept (never re-checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamGrant>,
}

/// Claims of the gateway's access tokens (ES256 JWT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The gateway's issuer.
    pub iss: String,
    /// The user id (`{provider}_{sub}`).
    pub sub: String,
    /// The one service's canonical resource URI.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Token id (revocation).
    pub jti: String,
    /// Token family (revocation of everything from one code).
    pub fid: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// User's email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// User's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Upstream provider kind.
    pub provider: String,
    /// User's picture URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// Tools of this service the user may not call (`tool_access`), decided when the token
    /// was issued: the proxy refuses them and hides them from `tools/list` without knowing
    /// the rules' facts. Usually absent, so tokens stay small.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_tools: Vec<String>,
}

/// RFC 6749 §5.1 token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Granted scopes.
    pub scope: String,
    /// The new refresh token; empty (and left out of the response) for grants that issue
    /// none (client credentials, identity assertions).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub refresh_token: String,
    /// What the access token says (user, client, service, grant), for the audit trail; never
    /// sent.
    #[serde(skip)]
    pub claims: Option<AccessClaims>,
}

/// A space-separated scope string deduplicated and single-spaced, in its original order: the
/// one form scopes are stored and compared in.
pub fn normalize_scope(scope: &str) -> String {
    let mut seen = std::collections::BTreeSet::new();
    scope.split_whitespace().filter(|s| seen.insert(*s)).collect::<Vec<_>>().join(" ")
}

/// Storage key layout, in one place so every backend and instance agrees.
pub mod keys {
    use crate::secret::hash_token;

    /// A registered client.
    pub fn client(client_id: &str) -> String {
        format!("client:{client_id}")
    }
    /// A pending authorization.
    pub fn login(id: &str) -> String {
        format!("login:{id}")
    }
    /// An upstream `state` value.
    pub fn upstream_state(state: &str) -> String {
        format!("upstate:{state}")
    }
    /// An unredeemed authorization code (by hash).
    pub fn code(code_hash: &str) -> String {
        format!("code:{code_hash}")
    }
    /// A redeemed code (by hash), remembered to revoke its family on replay.
    pub fn used_code(code_hash: &str) -> String {
        format!("codeused:{code_hash}")
    }
    /// A live refresh token (by hash).
    pub fn refresh(token_hash: &str) -> String {
        format!("rt:{token_hash}")
    }
    /// A rotated refresh token (by hash): grace-window replay and reuse detection.
    pub fn rotated_refresh(token_hash: &str) -> String {
        format!("rtused:{token_hash}")
    }
    /// A revoked token family.
    pub fn revoked_family(family_id: &str) -> String {
        format!("famrev:{family_id}")
    }
    /// A revoked access token id.
    pub fn revoked_jti(jti: &str) -> String {
        format!("jtirev:{jti}")
    }
    /// A remembered consent of a user for a client. The client id is hashed: metadata
    /// document ids are URLs full of `:`, and user ids may hold `:` too, so joining the raw
    /// values could make two (user, client) pairs share a key. The hash is fixed-length and
    /// `:`-free, which makes the split unambiguous.
    pub fn consent(user_id: &str, client_id: &str) -> String {
        format!("{}{user_id}:{}", consent_prefix(), hash_token(client_id))
    }
    /// What every consent key starts with.
    pub fn consent_prefix() -> String {
        "consent:".to_owned()
    }
    /// The user an MCP session of a service is bound to (checklist A13), by the hash
    /// ([`hash_token`]) of the session id: the id is a bearer-like secret and
    /// is not stored in clear.
    pub fn mcp_session(service_id: &str, session_hash: &str) -> String {
        format!("mcpsession:{service_id}:{session_hash}")
    }
    /// A `jti` of a signed assertion (a client's or an identity assertion) already used, by
    /// the hash of its issuer and id: single use across instances until it expires.
    pub fn used_assertion(issuer: &str, jti: &str) -> String {
        format!("jtiused:{}", hash_token(&format!("{issuer}\n{jti}")))
    }
    /// The signing key set.
    pub fn signing_keys() -> String {
        "signing-keys".to_owned()
    }
    /// The server secret refresh-token successors are derived with.
    pub fn rotation_key() -> String {
        "rotation-key".to_owned()
    }
    /// The server secret the upstream tokens kept with grants are sealed with.
    pub fn upstream_token_key() -> String {
        "upstream-token-key".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::{keys, normalize_scope, PendingAuthorization};

    #[test]
    fn a_pending_authorization_of_the_previous_version_decodes_bound_to_no_browser() {
        let old = serde_json::json!({
            "id": "p", "client_id": "c", "redirect_uri": "http://127.0.0.1/cb", "state": null,
            "code_challenge": "x", "scope": "", "service_id": "svc", "resource": "http://gw/svc/mcp",
            "consented": true, "remembered_user": null, "expires_at": 1,
        });
        let decoded: Result<PendingAuthorization, _> = serde_json::from_value(old);
        assert!(decoded.is_ok_and(|p| p.browser_hash.is_none()));
    }

    #[test]
    fn a_refresh_record_of_the_previous_version_decodes_without_memberships() {
        let old = serde_json::json!({
            "family_id": "f", "client_id": "c", "service_id": "svc", "resource": "http://gw/svc/mcp",
            "scope": "", "expires_at": 1, "granted_at": 1,
            "user": {"id": "dev_a", "sub": "a", "email": "a@x.org", "name": null, "avatar": null, "provider": "dev"},
        });
        let decoded: Result<super::RefreshRecord, _> = serde_json::from_value(old);
        assert!(decoded.is_ok_and(|r| r.user.memberships.is_empty() && r.user.email.is_some()));
        let user = super::UserInfo::new("dev", "a");
        let json = serde_json::to_value(&user).unwrap_or_default();
        assert!(json.get("memberships").is_none(), "nothing new is written when there is nothing");
    }

    #[test]
    fn scopes_are_deduplicated_in_order() {
        assert_eq!(normalize_scope("  b a  b c a "), "b a c");
        assert_eq!(normalize_scope(""), "");
    }

    #[test]
    fn consent_keys_cannot_collide_across_the_separator() {
        // Joined raw, both would be "consent:dev_a:b:c".
        assert_ne!(keys::consent("dev_a", "b:c"), keys::consent("dev_a:b", "c"));
        let key = keys::consent("u", "https://claude.ai/oauth/client.json");
        assert!(key.starts_with("consent:u:"));
        assert_eq!(key.matches(':').count(), 2, "{key}");
    }
}
