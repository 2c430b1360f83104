//! The messages HTTP handlers send the state actors, each with the reply it gets. This file
//! is the contract between the handlers and the actors.

use actix::prelude::*;

use crate::core::machine::id_jag::IdentityAssertion;
use crate::core::model::{
    AuthCode, Client, ClientMetadata, PendingAuthorization, Redemption, Registered, TokenResponse,
    UpstreamLogin,
};
use crate::core::tokens::{Grant, GrantFilter, Revoked};
use crate::core::OAuthError;

// ---- ClientRegistry -------------------------------------------------------------------------

/// Validate and store a new client (RFC 7591). Errors: `invalid_redirect_uri`,
/// `invalid_client_metadata`.
#[derive(Message)]
#[rtype(result = "Result<Registered, OAuthError>")]
pub struct RegisterClient(pub ClientMetadata);

/// Look a client up by id (`Ok(None)` when unknown).
#[derive(Message)]
#[rtype(result = "Result<Option<Client>, OAuthError>")]
pub struct GetClient {
    /// The client id.
    pub client_id: String,
}

/// Authenticate a client at the token, revocation or introspection endpoint: a public client
/// (`none`) passes with its id alone; a confidential one needs its secret. Unknown client or
/// bad secret: `invalid_client`.
#[derive(Message)]
#[rtype(result = "Result<Client, OAuthError>")]
pub struct AuthenticateClient {
    /// The client id.
    pub client_id: String,
    /// The secret, from HTTP Basic or the form.
    pub client_secret: Option<String>,
}

/// Every registered client (administration).
#[derive(Message)]
#[rtype(result = "Result<Vec<Client>, OAuthError>")]
pub struct ListClients;

/// Remove a client's registration (administration); `true` when there was one.
#[derive(Message)]
#[rtype(result = "Result<bool, OAuthError>")]
pub struct DeleteClient {
    /// The client id.
    pub client_id: String,
}

/// Authenticate a configured `private_key_jwt` client by its signed client assertion (RFC
/// 7523): signature with its keys, `iss`/`sub`/`aud`/`exp`, `jti` single use. Failure:
/// `invalid_client`.
#[derive(Message)]
#[rtype(result = "Result<Client, OAuthError>")]
pub struct AuthenticateAssertion {
    /// `client_id` of the form, if sent (must equal the assertion's `iss`).
    pub client_id: Option<String>,
    /// The `client_assertion` JWT.
    pub assertion: String,
}

/// Verify an identity assertion grant (ID-JAG) presented by the authenticated client.
#[derive(Message)]
#[rtype(result = "Result<IdentityAssertion, OAuthError>")]
pub struct VerifyIdentityAssertion {
    /// The authenticated client (the assertion's `client_id` claim must name it).
    pub client_id: String,
    /// The `assertion` parameter.
    pub assertion: String,
}

// ---- AuthCodes ------------------------------------------------------------------------------

/// Store a validated authorization request (TTL `tokens.login_ttl`).
#[derive(Message)]
#[rtype(result = "Result<(), OAuthError>")]
pub struct SaveLogin(pub PendingAuthorization);

/// Read a pending authorization (`Ok(None)` when unknown or expired).
#[derive(Message)]
#[rtype(result = "Result<Option<PendingAuthorization>, OAuthError>")]
pub struct GetLogin {
    /// Its id.
    pub id: String,
}

/// Remove and return a pending authorization (single use).
#[derive(Message)]
#[rtype(result = "Result<Option<PendingAuthorization>, OAuthError>")]
pub struct TakeLogin {
    /// Its id.
    pub id: String,
}

/// Create the upstream `state` for a consented authorization; returns the random state.
#[derive(Message)]
#[rtype(result = "Result<String, OAuthError>")]
pub struct BeginUpstream(pub UpstreamLogin);

/// Remove and return what an upstream `state` points to (single use).
#[derive(Message)]
#[rtype(result = "Result<Option<UpstreamLogin>, OAuthError>")]
pub struct TakeUpstream {
    /// The `state` the provider sent back.
    pub state: String,
}

/// Store a code record; returns the random code (stored only hashed).
#[derive(Message)]
#[rtype(result = "Result<String, OAuthError>")]
pub struct IssueCode(pub AuthCode);

/// Redeem a code: atomic take; remembers the redemption so a replay is recognised.
#[derive(Message)]
#[rtype(result = "Result<Redemption, OAuthError>")]
pub struct RedeemCode {
    /// The code as the client sent it.
    pub code: String,
}

// ---- Tokens ---------------------------------------------------------------------------------

/// Issue the first access and refresh token of a new family from a redeemed code.
#[derive(Message)]
#[rtype(result = "Result<TokenResponse, OAuthError>")]
pub struct IssueTokens(pub AuthCode);

/// Rotate a refresh token (RFC 6749 §6 with OAuth 2.1 rotation). A just-rotated token within
/// the grace window gets the same new pair; later reuse revokes the family (`invalid_grant`).
#[derive(Message)]
#[rtype(result = "Result<TokenResponse, OAuthError>")]
pub struct RotateRefresh {
    /// The refresh token presented.
    pub refresh_token: String,
    /// The authenticated client; must own the token.
    pub client_id: String,
    /// `resource` if sent, already normalized to a canonical URI; must match the token's.
    pub resource: Option<String>,
    /// `scope` if sent; must be a subset of the granted scope.
    pub scope: Option<String>,
}

/// RFC 7009: revoke an access or refresh token (unknown tokens are not an error). A refresh
/// token revokes its whole family.
#[derive(Message)]
#[rtype(result = "Result<Option<Revoked>, OAuthError>")]
pub struct Revoke {
    /// The token.
    pub token: String,
    /// The authenticated client; a token of another client is left alone.
    pub client_id: String,
}

/// Revoke every token of a family (code replay, refresh reuse).
#[derive(Message)]
#[rtype(result = "Result<(), OAuthError>")]
pub struct RevokeFamily {
    /// The family.
    pub family_id: String,
}

/// The live grants (token families) a filter matches (administration).
#[derive(Message)]
#[rtype(result = "Result<Vec<Grant>, OAuthError>")]
pub struct ListGrants(pub GrantFilter);

/// Revoke the grants a (non-empty) filter matches, everywhere; returns them.
#[derive(Message)]
#[rtype(result = "Result<Vec<Grant>, OAuthError>")]
pub struct RevokeGrants(pub GrantFilter);

/// RFC 7662: what the gateway knows of a token; `{"active": false}` for anything inactive.
#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, OAuthError>")]
pub struct Introspect {
    /// The token.
    pub token: String,
}

// ---- Sessions -------------------------------------------------------------------------------

/// Remember that `user_id` approved `client_id` for `scopes` of `service_id`, added to what
/// they approved before (TTL `tokens.consent_ttl` from this approval).
#[derive(Message)]
#[rtype(result = "Result<(), OAuthError>")]
pub struct RecordConsent {
    /// The user.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// The service the consent page named.
    pub service_id: String,
    /// The scopes the consent page listed.
    pub scopes: Vec<String>,
}

/// Whether `user_id` approved `client_id` before for `service_id` and every one of `scopes`.
#[derive(Message)]
#[rtype(result = "Result<bool, OAuthError>")]
pub struct HasConsent {
    /// The user.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// The service requested.
    pub service_id: String,
    /// The scopes requested.
    pub scopes: Vec<String>,
}

/// Whether `user_id` holds a live remembered consent for `client_id` (any service): the
/// person approved this client before, so its redirect URI may receive error redirects.
#[derive(Message)]
#[rtype(result = "Result<bool, OAuthError>")]
pub struct HasApprovedClient {
    /// The user.
    pub user_id: String,
    /// The client.
    pub client_id: String,
}

/// Forget every remembered consent for a client (administration); returns how many.
#[derive(Message)]
#[rtype(result = "Result<usize, OAuthError>")]
pub struct ForgetClient {
    /// The client id.
    pub client_id: String,
}

// ---- StorageSupervisor ----------------------------------------------------------------------

/// Backend name and whether it answers right now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StorageHealth {
    /// `memory`, `redis` or `vault`.
    pub backend: &'static str,
    /// Whether the last check succeeded.
    pub healthy: bool,
    /// True when running on memory because the configured backend was unreachable.
    pub fallback: bool,
}

/// Ask the supervisor for backend health.
#[derive(Message)]
#[rtype(result = "StorageHealth")]
pub struct GetHealth;
