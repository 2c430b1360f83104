//! `private_key_jwt` (RFC 7523 §2.2 and §3, OpenID Connect Core §9): a configured client
//! authenticates with a JWT it signed, `iss` = `sub` = its id, `aud` = the token endpoint or
//! the issuer, short-lived, with a `jti` that is accepted once across every instance (the
//! store's `put_if_absent`, kept until the assertion has expired).

use super::assertion::{self, str_claim, AssertionError, MAX_LIFETIME_SECS, SKEW_SECS};
use super::configured::{ConfiguredClient, ConfiguredClients};
use super::jwks::{JwksCache, KeyError, KeySource};
use crate::core::cimd::DocumentFetcher;
use crate::core::model::{keys, Client};
use crate::core::store::{json, ttl, Store};
use crate::core::OAuthError;

/// `client_assertion_type` of a JWT client assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What checking an assertion needs besides the assertion.
pub struct AssertionContext<'a, S> {
    /// The configured clients.
    pub clients: &'a ConfiguredClients,
    /// Fetched key sets.
    pub jwks: &'a JwksCache,
    /// How key sets are fetched.
    pub fetcher: &'a dyn DocumentFetcher,
    /// Where used `jti`s are kept.
    pub store: &'a S,
    /// Accepted audiences: the token endpoint URL(s) and the issuer.
    pub audiences: Vec<String>,
    /// `runtime.allow_private_cimd`: key sets on loopback (development, tests).
    pub allow_private: bool,
    /// Now, Unix seconds.
    pub now: i64,
}

fn refused(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::InvalidClient(e.to_string())
}

/// Authenticates the client of `assertion`. `client_id`, when the request also sent one, must
/// be the assertion's `iss`. Every failure is `invalid_client`.
pub async fn authenticate<S: Store>(
    ctx: &AssertionContext<'_, S>,
    client_id: Option<&str>,
    token: &str,
) -> Result<Client, OAuthError> {
    let header = assertion::header(token).map_err(refused)?;
    let unverified = assertion::unverified_claims(token).map_err(refused)?;
    let issuer = str_claim(&unverified, "iss").ok_or_else(|| refused("assertion has no iss"))?;
    if client_id.is_some_and(|id| id != issuer) {
        return Err(refused("client_id differs from the assertion's iss"));
    }
    let configured = ctx
        .clients
        .get(issuer)
        .filter(|c| c.client.token_endpoint_auth_method == "private_key_jwt")
        .ok_or_else(|| refused("client authentication failed"))?;
    let claims = verified(ctx, configured, token, &header).await?;
    if str_claim(&claims, "iss") != Some(issuer) || str_claim(&claims, "sub") != Some(issuer) {
        return Err(refused("assertion iss and sub must both be the client_id"));
    }
    if !assertion::audience_matches(&claims, &ctx.audiences) {
        return Err(refused("assertion aud is not this token endpoint or issuer"));
    }
    let exp = assertion::check_times(&claims, ctx.now, false, MAX_LIFETIME_SECS).map_err(refused)?;
    let jti =
        str_claim(&claims, "jti").filter(|j| !j.is_empty()).ok_or_else(|| refused("assertion has no jti"))?;
    let keep = u64::try_from(exp + SKEW_SECS - ctx.now).unwrap_or(1).max(1);
    let first =
        json::put_if_absent(ctx.store, &keys::used_assertion(issuer, jti), &ctx.now, ttl(keep)).await?;
    if !first {
        return Err(refused("assertion was already used (jti replay)"));
    }
    Ok(configured.client.clone())
}

/// The claims once the signature verifies with one of the client's keys.
async fn verified<S: Store>(
    ctx: &AssertionContext<'_, S>,
    client: &ConfiguredClient,
    token: &str,
    header: &jsonwebtoken::Header,
) -> Result<serde_json::Value, OAuthError> {
    ctx.jwks.verify(ctx.fetcher, &client.keys, ctx.allow_private, ctx.now, token, header).await.map_err(|e| {
        match e {
            KeyError::Assertion(AssertionError::Signature) if matches!(client.keys, KeySource::None) => {
                refused("client authentication failed")
            }
            KeyError::Assertion(e) => refused(e),
            KeyError::Unreachable => refused("the client's keys could not be fetched"),
        }
    })
}
