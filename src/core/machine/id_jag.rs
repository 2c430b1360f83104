//! Enterprise-Managed Authorization (MCP authorization extension, stable 2026-06-18): the
//! token endpoint's JWT bearer grant (RFC 7523 §2.1) with an Identity Assertion JWT
//! Authorization Grant — an ID-JAG — that the person's enterprise identity provider issued to
//! this client for one of our services.
//!
//! What is checked, every failure being `invalid_grant`: JOSE `typ` `oauth-id-jag+jwt`; an
//! asymmetric signature by a key of a trusted issuer (inline, or its JWK Set fetched through
//! the guarded fetcher, refetched on an unknown key); `iss` trusted; `aud` our issuer; the
//! `client_id` claim is the client that authenticated at the token endpoint; `resource` names
//! one resource; `exp` not passed and at most [`MAX_LIFETIME_SECS`] ahead, `iat` present and
//! not in the future (with [`SKEW_SECS`]); `jti` used once across every instance (the store's
//! `put_if_absent`, kept until the assertion has expired). Who the person is, and what the
//! access rules say about them, is the caller's.

use std::collections::HashMap;

use super::assertion::{self, str_claim, SKEW_SECS};
use super::jwks::{JwksCache, KeyError, KeySource};
use crate::config::Settings;
use crate::core::cimd::DocumentFetcher;
use crate::core::model::keys;
use crate::core::store::{json, ttl, Store};
use crate::core::OAuthError;

/// The `grant_type` of the JWT bearer grant.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The grant profile advertised in `authorization_grant_profiles_supported`.
pub const PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
/// The JOSE `typ` of an ID-JAG.
pub const TYP: &str = "oauth-id-jag+jwt";
/// Longest an ID-JAG may still be valid when it arrives (seconds, plus [`SKEW_SECS`]).
/// Identity providers issue them for minutes; an hour bounds how long a `jti` is kept.
pub const MAX_LIFETIME_SECS: i64 = 3600;

/// `x-user-provider` of a person vouched for by an ID-JAG.
pub const PROVIDER: &str = "id-jag";

/// The trusted issuers of the configuration, by issuer identifier.
#[derive(Debug, Default)]
pub struct TrustedIssuers {
    by_issuer: HashMap<String, KeySource>,
}

impl TrustedIssuers {
    /// The `enterprise.id_jag.trusted_issuers` of `settings` (already validated).
    pub fn from_settings(settings: &Settings) -> Self {
        let by_issuer = settings
            .enterprise
            .id_jag
            .trusted_issuers
            .iter()
            .map(|t| (t.issuer.clone(), KeySource::from_config(t.jwks.as_ref(), t.jwks_uri.as_deref())))
            .collect();
        TrustedIssuers { by_issuer }
    }
}

/// What a verified ID-JAG says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityAssertion {
    /// The issuer that vouches for the person.
    pub issuer: String,
    /// The person's `sub` at that issuer.
    pub subject: String,
    /// Their email, when the issuer sent one.
    pub email: Option<String>,
    /// Their name, when sent.
    pub name: Option<String>,
    /// The resource the grant is for.
    pub resource: String,
    /// The scopes the issuer allows (`None`: it sent no `scope` claim).
    pub scopes: Option<Vec<String>>,
}

/// What checking an ID-JAG needs besides the assertion.
pub struct IdJagContext<'a, S> {
    /// The trusted issuers.
    pub issuers: &'a TrustedIssuers,
    /// Fetched key sets.
    pub jwks: &'a JwksCache,
    /// How key sets are fetched.
    pub fetcher: &'a dyn DocumentFetcher,
    /// Where used `jti`s are kept.
    pub store: &'a S,
    /// Our issuer identifier: the only accepted `aud`.
    pub audience: &'a str,
    /// `runtime.allow_private_cimd`: key sets on loopback (development, tests).
    pub allow_private: bool,
    /// Now, Unix seconds.
    pub now: i64,
}

fn refused(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::InvalidGrant(format!("identity assertion refused: {e}"))
}

/// Verifies the ID-JAG `token` presented by the authenticated client `client_id`.
pub async fn verify<S: Store>(
    ctx: &IdJagContext<'_, S>,
    client_id: &str,
    token: &str,
) -> Result<IdentityAssertion, OAuthError> {
    let header = assertion::header(token).map_err(refused)?;
    let typ = header.typ.as_deref().unwrap_or_default().to_ascii_lowercase();
    if typ != TYP && typ != format!("application/{TYP}") {
        return Err(refused(format!("typ must be {TYP}")));
    }
    let unverified = assertion::unverified_claims(token).map_err(refused)?;
    let issuer = str_claim(&unverified, "iss").ok_or_else(|| refused("it has no iss"))?;
    let source = ctx.issuers.by_issuer.get(issuer).ok_or_else(|| refused("its issuer is not trusted"))?;
    let claims =
        ctx.jwks.verify(ctx.fetcher, source, ctx.allow_private, ctx.now, token, &header).await.map_err(
            |e| match e {
                KeyError::Assertion(e) => refused(e),
                KeyError::Unreachable => refused("the issuer's keys could not be fetched"),
            },
        )?;
    if str_claim(&claims, "iss") != Some(issuer) {
        return Err(refused("its iss changed"));
    }
    if !assertion::audience_matches(&claims, &[ctx.audience.to_owned()]) {
        return Err(refused("its aud is not this authorization server"));
    }
    if str_claim(&claims, "client_id") != Some(client_id) {
        return Err(refused("it was issued to another client"));
    }
    let subject =
        str_claim(&claims, "sub").filter(|s| !s.is_empty()).ok_or_else(|| refused("it has no sub"))?;
    let resource = match claims.get("resource") {
        Some(serde_json::Value::String(r)) => r.clone(),
        Some(serde_json::Value::Array(items)) if items.len() == 1 => {
            items[0].as_str().map(str::to_owned).ok_or_else(|| refused("its resource is not a string"))?
        }
        _ => return Err(refused("it must name exactly one resource")),
    };
    let exp = assertion::check_times(&claims, ctx.now, true, MAX_LIFETIME_SECS).map_err(refused)?;
    let jti = str_claim(&claims, "jti").filter(|j| !j.is_empty()).ok_or_else(|| refused("it has no jti"))?;
    let keep = u64::try_from(exp + SKEW_SECS - ctx.now).unwrap_or(1).max(1);
    let used = keys::used_assertion(&format!("id-jag {issuer}"), jti);
    if !json::put_if_absent(ctx.store, &used, &ctx.now, ttl(keep)).await? {
        return Err(refused("it was already used (jti replay)"));
    }
    let scopes = str_claim(&claims, "scope").map(|s| s.split_whitespace().map(str::to_owned).collect());
    Ok(IdentityAssertion {
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
        // Access rules trust an email only when verified: one the issuer says it did not
        // verify is dropped.
        email: str_claim(&claims, "email")
            .filter(|e| {
                e.contains('@') && claims.get("email_verified") != Some(&serde_json::Value::Bool(false))
            })
            .map(str::to_owned),
        name: str_claim(&claims, "name").map(str::to_owned),
        resource,
        scopes,
    })
}
