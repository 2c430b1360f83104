//! The state actors and the messages handlers send them.
//!
//! Each actor is a thin shell over a plain struct (in its own file) whose async methods hold
//! the logic and are unit-tested without actix. Handlers clone what they need out of the
//! struct and return a `ResponseFuture`, so one slow storage round trip never holds an actor:
//! single use comes from [`crate::storage::Store::take`], not from serialising messages.
//!
//! This file is the contract between the HTTP handlers and the actors.

use actix::prelude::*;

use crate::error::OAuthError;
use crate::oauth::model::{AuthCode, Client, PendingAuthorization, TokenResponse, UpstreamLogin};

pub mod clients;
pub mod codes;
pub mod keys;
pub mod sessions;
pub mod supervisor;
pub mod tokens;

pub use clients::ClientRegistry;
pub use codes::AuthCodes;
pub use sessions::Sessions;
pub use supervisor::StorageSupervisor;
pub use tokens::Tokens;

/// Addresses of the running state actors, started once at startup.
#[derive(Clone)]
pub struct Actors {
    /// Client registry.
    pub clients: Addr<ClientRegistry>,
    /// Pending authorizations, upstream login states and codes.
    pub codes: Addr<AuthCodes>,
    /// Refresh-token families, revocations, token issuance.
    pub tokens: Addr<Tokens>,
    /// Consent grants.
    pub sessions: Addr<Sessions>,
    /// The storage supervisor (backend health).
    pub supervisor: Addr<StorageSupervisor>,
}

// ---- ClientRegistry -------------------------------------------------------------------------

/// RFC 7591 client metadata as sent by a client, before validation.
#[derive(Debug, Clone, Default, serde::Deserialize)]
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
#[rtype(result = "Result<(), OAuthError>")]
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

/// RFC 7662: what the gateway knows of a token; `{"active": false}` for anything inactive.
#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, OAuthError>")]
pub struct Introspect {
    /// The token.
    pub token: String,
}

// ---- Sessions -------------------------------------------------------------------------------

/// Remember that `user_id` approved `client_id` (TTL `tokens.consent_ttl`).
#[derive(Message)]
#[rtype(result = "Result<(), OAuthError>")]
pub struct RecordConsent {
    /// The user.
    pub user_id: String,
    /// The client.
    pub client_id: String,
}

/// Whether `user_id` approved `client_id` before.
#[derive(Message)]
#[rtype(result = "Result<bool, OAuthError>")]
pub struct HasConsent {
    /// The user.
    pub user_id: String,
    /// The client.
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

/// Starts the storage supervisor, which connects the configured backend and starts the four
/// state actors on it, and loads (or creates) the signing keys. Called once, before the
/// `HttpServer` is built.
pub async fn start(
    settings: std::sync::Arc<crate::config::Settings>,
    clock: crate::state::Clock,
    revoked: crate::state::RevocationSet,
) -> Result<(Actors, crate::oauth::jwt::KeyRing), crate::startup::StartupError> {
    supervisor::start(settings, clock, revoked).await
}
