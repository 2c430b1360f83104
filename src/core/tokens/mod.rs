//! Token issuing, refresh-token families and revocations. Holds the signing keys and the
//! local [`RevocationSet`] the proxy checks on every request.
//!
//! Access tokens are ES256 JWTs for one audience. Refresh tokens are random, stored only as
//! their hash, and rotate on use; every token descended from one authorization code shares a
//! family id (`fid`), and revoking the family kills all of them.
//!
//! Rotation is decided by the atomic [`Store::take`] of the old token's record. The new refresh
//! token is `HMAC(rotation key, old token)` ([`RotationKey`], a server secret shared through
//! the store), so a duplicate request inside the grace window can recompute the same pair
//! from a marker left under the old token's hash (the same refresh token, and an access token
//! of the same claims and `jti`, signed again), while storage never holds a usable plain
//! token and nobody holding an old token can compute the live one. The marker is the
//! winner's first write after its take; a request that finds neither the token nor the marker
//! looks again a few times over about half a second before refusing, so a duplicate landing
//! between the winner's take and its marker write still gets the same pair.
//!
//! Revocations go to storage (for refreshes and introspection everywhere), to the local set at
//! once, and are published through the backend so every other instance's proxy refuses the
//! tokens within a second.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::access;
use super::clock::{secs, Clock};
use super::error::{OAuthError, REASON_ACCESS_RULE, REASON_UPSTREAM_REFUSED, REFRESH_INVALID};
use super::jwt::KeyRing;
use super::model::{keys, normalize_scope, AccessClaims, AuthCode, RefreshRecord, TokenResponse};
use super::revocation::{Revocation, RevocationSet};
use super::signing_keys::RotationKey;
use super::store::{json as store_json, ttl, Revocations, Store, RECHECK_MS};
use super::upstream_grant::{IdentityCheck, Recheck};
use crate::config::Settings;
use crate::secret::{hash_token, random_token};

mod grants;

pub use grants::{Grant, GrantFilter};

/// Extra seconds a revocation is kept locally past the tokens' expiry (covers the JWT
/// verifier's clock leeway).
const REVOCATION_MARGIN: i64 = 60;

/// What a rotated refresh token leaves behind, under its hash: enough to answer a duplicate
/// request in the grace window with the same pair, and to detect reuse after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotatedRecord {
    /// The family of the token.
    pub family_id: String,
    /// The client the token belonged to.
    pub client_id: String,
    /// Claims of the access token issued by the rotation (re-signed on a duplicate).
    pub claims: AccessClaims,
    /// Unix time of the rotation.
    pub rotated_at: i64,
}

/// A refresh request, as the handler received it.
#[derive(Debug, Clone)]
pub struct RefreshRequest<'a> {
    /// The token presented.
    pub refresh_token: &'a str,
    /// The authenticated client.
    pub client_id: &'a str,
    /// Canonical `resource`, if sent.
    pub resource: Option<&'a str>,
    /// `scope`, if sent.
    pub scope: Option<&'a str>,
}

/// Token issuing and rotation over the store `S`.
pub struct TokenService<S> {
    backend: S,
    settings: Arc<Settings>,
    clock: Clock,
    keys: KeyRing,
    rotation: RotationKey,
    revoked: RevocationSet,
    /// Asks the provider again at refreshes (`tokens.upstream_recheck`); none: never asked.
    identity: Option<Arc<dyn IdentityCheck>>,
}

impl<S: Store + Revocations> TokenService<S> {
    /// A token service signing with `keys`, deriving successors with `rotation` and
    /// publishing revocations to `revoked`.
    pub fn new(
        backend: S,
        settings: Arc<Settings>,
        clock: Clock,
        keys: KeyRing,
        rotation: RotationKey,
        revoked: RevocationSet,
    ) -> Self {
        TokenService { backend, settings, clock, keys, rotation, revoked, identity: None }
    }

    /// Asks `identity` again about the person at refreshes `tokens.upstream_recheck` apart.
    pub fn with_identity_check(mut self, identity: Arc<dyn IdentityCheck>) -> Self {
        self.identity = Some(identity);
        self
    }

    fn access_ttl(&self) -> i64 {
        secs(self.settings.tokens.access_token_ttl)
    }

    fn refresh_ttl(&self) -> u64 {
        self.settings.tokens.refresh_token_ttl
    }

    /// Issues the first access and refresh token of the family `code.family_id`. Refused
    /// when that family is already revoked (a replay of the code raced this redemption).
    pub async fn issue(&self, code: AuthCode) -> Result<TokenResponse, OAuthError> {
        if self.family_revoked(&code.family_id).await? {
            return Err(OAuthError::InvalidGrant("authorization code was revoked".into()));
        }
        let record = RefreshRecord {
            family_id: code.family_id,
            client_id: code.client_id,
            service_id: code.service_id,
            resource: code.resource,
            scope: normalize_scope(&code.scope),
            user: code.user,
            expires_at: 0,
            granted_at: self.clock.now(),
            upstream: code.upstream,
        };
        let claims = self.claims_for(&record, &record.scope);
        let refresh_token = random_token(32);
        self.store_refresh(&refresh_token, record).await?;
        self.respond(&claims, refresh_token)
    }

    /// Rotates a refresh token; see the module docs. Errors: `invalid_grant` (unknown,
    /// expired, revoked, reused after the grace window, wrong client), `invalid_target`
    /// (resource differs), `invalid_scope` (scope not granted).
    pub async fn rotate(&self, req: RefreshRequest<'_>) -> Result<TokenResponse, OAuthError> {
        let old_hash = hash_token(req.refresh_token);
        let mut pauses = RECHECK_MS.iter();
        loop {
            let live: Option<RefreshRecord> =
                store_json::take(&self.backend, &keys::refresh(&old_hash)).await?;
            if let Some(record) = live {
                return self.rotate_live(&req, &old_hash, record).await;
            }
            let marker: Option<RotatedRecord> =
                store_json::get(&self.backend, &keys::rotated_refresh(&old_hash)).await?;
            if let Some(marker) = marker {
                return self.rotate_again(&req, marker).await;
            }
            // Unknown or expired, or a concurrent winner has not written its marker yet (or
            // is putting the token back after a bad request): look again shortly. The cost is
            // a slower `invalid_grant` for unknown tokens.
            match pauses.next() {
                Some(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
                None => return Err(invalid_grant()),
            }
        }
    }

    /// This request won the take: check it, then mint the new pair.
    async fn rotate_live(
        &self,
        req: &RefreshRequest<'_>,
        old_hash: &str,
        record: RefreshRecord,
    ) -> Result<TokenResponse, OAuthError> {
        let now = self.clock.now();
        if record.expires_at <= now {
            return Err(invalid_grant());
        }
        let mut record = record;
        if record.granted_at == 0 {
            record.granted_at = now;
        }
        if now >= self.grant_ends(&record) {
            // Used or not, a grant ends: the person signs in again (and access rules and the
            // provider are asked again then).
            return Err(OAuthError::InvalidGrant(
                "the grant has reached its maximum age; sign in again".into(),
            ));
        }
        if record.client_id != req.client_id {
            // Another client holding this token means it leaked: kill the family.
            log::warn!("refresh token presented by another client; revoking its family");
            self.revoke_family(&record.family_id).await?;
            return Err(OAuthError::RefreshReused(record.family_id));
        }
        let record = self.recheck_upstream(old_hash, record, now).await?;
        if !access::may_use_service(&self.settings, &record.service_id, &record.user) {
            // The rules are asked again with the facts recorded at login: a rule that changed
            // since ends the grant at its next refresh.
            log::info!(
                "user {} no longer passes the access rule of {}; revoking",
                record.user.id,
                record.service_id
            );
            self.revoke_family(&record.family_id).await?;
            return Err(OAuthError::AccessRevoked {
                reason: REASON_ACCESS_RULE,
                family_id: record.family_id,
                user_id: record.user.id,
                service_id: record.service_id,
            });
        }
        let scope = match check_request(req, &record) {
            Ok(scope) => scope,
            Err(err) => {
                // A wrong parameter is the client's mistake, not a leak: give the token back
                // so the client can retry with a correct request.
                self.restore(old_hash, &record, now).await?;
                return Err(err);
            }
        };
        let claims = self.claims_for(&record, &scope);
        // The marker is the first write after the take: it is what lets a duplicate in flight
        // get the same pair, so nothing else may widen the gap before it.
        let rotated = RotatedRecord {
            family_id: record.family_id.clone(),
            client_id: record.client_id.clone(),
            claims: claims.clone(),
            rotated_at: now,
        };
        let marker_ttl = ttl(self.refresh_ttl());
        store_json::put(&self.backend, &keys::rotated_refresh(old_hash), &rotated, marker_ttl).await?;
        if self.family_revoked(&record.family_id).await? {
            return Err(invalid_grant());
        }
        let new_token = self.rotation.successor(req.refresh_token);
        // RFC 6749 §6: the new refresh token keeps the scope of the old one; only the access
        // token is narrowed.
        self.store_refresh(&new_token, record).await?;
        self.respond(&claims, new_token)
    }

    /// The token was not live: a duplicate inside the grace window gets the same pair; a
    /// later reuse revokes the family.
    async fn rotate_again(
        &self,
        req: &RefreshRequest<'_>,
        marker: RotatedRecord,
    ) -> Result<TokenResponse, OAuthError> {
        let now = self.clock.now();
        let in_grace = now - marker.rotated_at <= secs(self.settings.tokens.refresh_grace);
        if marker.client_id != req.client_id || !in_grace {
            log::warn!("rotated refresh token reused; revoking its family");
            self.revoke_family(&marker.family_id).await?;
            return Err(OAuthError::RefreshReused(marker.family_id));
        }
        if self.family_revoked(&marker.family_id).await? {
            return Err(invalid_grant());
        }
        if req.resource.is_some_and(|r| r != marker.claims.aud) {
            return Err(OAuthError::InvalidTarget("resource differs from the one authorized".into()));
        }
        self.respond(&marker.claims, self.rotation.successor(req.refresh_token))
    }

    /// `tokens.upstream_recheck` after the provider last confirmed the person, asks it again
    /// (see [`IdentityCheck`]): a confirmation brings the person's fresh claims (which the
    /// access rules then judge) and tokens; a refusal revokes the family. A provider that
    /// cannot be asked is given one more interval with the facts on record; after that the
    /// refresh is refused with `temporarily_unavailable` and the token is put back, so the
    /// grant resumes when the provider is back.
    ///
    /// Only the request that won the take asks, so a provider that rotates its own refresh
    /// tokens sees each one used once.
    async fn recheck_upstream(
        &self,
        old_hash: &str,
        mut record: RefreshRecord,
        now: i64,
    ) -> Result<RefreshRecord, OAuthError> {
        let interval = secs(self.settings.tokens.upstream_recheck);
        let (Some(identity), Some(grant)) = (&self.identity, &record.upstream) else {
            return Ok(record);
        };
        if interval == 0 || now - grant.checked_at < interval {
            return Ok(record);
        }
        match identity.recheck(&record.user, grant).await {
            Recheck::Confirmed { user, sealed } if user.id == record.user.id => {
                record.user = *user;
                record.upstream = Some(super::model::UpstreamGrant { sealed, checked_at: now });
                Ok(record)
            }
            Recheck::Confirmed { .. } => {
                self.upstream_refused(record, "the provider named another person").await
            }
            Recheck::Refused(why) => self.upstream_refused(record, &why).await,
            Recheck::Unavailable(why) if now - grant.checked_at < interval.saturating_mul(2) => {
                log::warn!(
                    "could not re-check user {} at the identity provider ({why}); trusting the last \
                     check for one more interval",
                    record.user.id
                );
                Ok(record)
            }
            Recheck::Unavailable(why) => {
                log::warn!(
                    "could not re-check user {} at the identity provider ({why}); refusing the refresh \
                     until it answers",
                    record.user.id
                );
                self.restore(old_hash, &record, now).await?;
                Err(OAuthError::TemporarilyUnavailable(
                    "the identity provider could not confirm the sign-in; retry later".into(),
                ))
            }
        }
    }

    async fn upstream_refused(&self, record: RefreshRecord, why: &str) -> Result<RefreshRecord, OAuthError> {
        log::info!("the identity provider no longer confirms user {} ({why}); revoking", record.user.id);
        self.revoke_family(&record.family_id).await?;
        Err(OAuthError::AccessRevoked {
            reason: REASON_UPSTREAM_REFUSED,
            family_id: record.family_id,
            user_id: record.user.id,
            service_id: record.service_id,
        })
    }

    /// Puts a taken record back for the rest of its life.
    async fn restore(&self, hash: &str, record: &RefreshRecord, now: i64) -> Result<(), OAuthError> {
        let left = u64::try_from(record.expires_at - now).unwrap_or(1).max(1);
        store_json::put(&self.backend, &keys::refresh(hash), record, ttl(left)).await?;
        Ok(())
    }

    /// When the grant of `record`'s family ends (`tokens.grant_max_age` after it began).
    fn grant_ends(&self, record: &RefreshRecord) -> i64 {
        record.granted_at.saturating_add(secs(self.settings.tokens.grant_max_age))
    }

    /// Stores `record` under the hash of `token`, for `refresh_token_ttl` from now but never
    /// past the end of its grant.
    async fn store_refresh(&self, token: &str, mut record: RefreshRecord) -> Result<(), OAuthError> {
        let now = self.clock.now();
        record.expires_at = (now + secs(self.refresh_ttl())).min(self.grant_ends(&record));
        let left = u64::try_from(record.expires_at - now).unwrap_or(1).max(1);
        let key = keys::refresh(&hash_token(token));
        store_json::put(&self.backend, &key, &record, ttl(left)).await?;
        Ok(())
    }

    fn claims_for(&self, record: &RefreshRecord, scope: &str) -> AccessClaims {
        let now = self.clock.now();
        AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: record.user.id.clone(),
            aud: record.resource.clone(),
            exp: now + self.access_ttl(),
            iat: now,
            jti: random_token(16),
            fid: record.family_id.clone(),
            client_id: record.client_id.clone(),
            scope: scope.to_owned(),
            email: record.user.email.clone(),
            name: record.user.name.clone(),
            provider: record.user.provider.clone(),
            avatar: record.user.avatar.clone(),
            denied_tools: access::denied_tools(&self.settings, &record.service_id, &record.user),
        }
    }

    fn respond(&self, claims: &AccessClaims, refresh_token: String) -> Result<TokenResponse, OAuthError> {
        let access_token = self.keys.sign(claims).map_err(OAuthError::internal)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: (claims.exp - self.clock.now()).max(0),
            scope: claims.scope.clone(),
            refresh_token,
            claims: Some(claims.clone()),
        })
    }

    /// RFC 7009. An access token of `client_id` has its `jti` revoked; a refresh token of
    /// `client_id` revokes its family. Anything else is left alone without an error (`None`).
    pub async fn revoke(&self, token: &str, client_id: &str) -> Result<Option<Revoked>, OAuthError> {
        let now = self.clock.now();
        if let Ok(claims) = self.keys.verify_any_audience(token, now) {
            if claims.client_id != client_id {
                return Ok(None);
            }
            self.revoke_jti(&claims.jti, claims.exp).await?;
            return Ok(Some(Revoked {
                token_type: "access_token",
                user_id: claims.sub,
                grant_id: claims.fid,
            }));
        }
        let key = keys::refresh(&hash_token(token));
        let record: Option<RefreshRecord> = store_json::get(&self.backend, &key).await?;
        let Some(record) = record.filter(|r| r.client_id == client_id) else {
            return Ok(None);
        };
        self.revoke_family(&record.family_id).await?;
        self.backend.delete(&key).await?;
        Ok(Some(Revoked { token_type: "refresh_token", user_id: record.user.id, grant_id: record.family_id }))
    }

    async fn revoke_jti(&self, jti: &str, exp: i64) -> Result<(), OAuthError> {
        let until = exp + REVOCATION_MARGIN;
        let left = u64::try_from(until - self.clock.now()).unwrap_or(1).max(1);
        store_json::put(&self.backend, &keys::revoked_jti(jti), &until, ttl(left)).await?;
        self.revoked.insert(jti, until);
        self.backend.publish_revocation(&Revocation { id: jti.to_owned(), until }).await?;
        Ok(())
    }

    /// Revokes a family: later refreshes fail everywhere (storage marker), and its live access
    /// tokens stop at this instance's proxy at once (local set).
    pub async fn revoke_family(&self, family_id: &str) -> Result<(), OAuthError> {
        let now = self.clock.now();
        let key = keys::revoked_family(family_id);
        store_json::put(&self.backend, &key, &now, ttl(self.refresh_ttl())).await?;
        let until = now + self.access_ttl() + REVOCATION_MARGIN;
        self.revoked.insert(family_id, until);
        self.backend.publish_revocation(&Revocation { id: family_id.to_owned(), until }).await?;
        Ok(())
    }

    async fn family_revoked(&self, family_id: &str) -> Result<bool, OAuthError> {
        if self.revoked.contains(family_id) {
            return Ok(true);
        }
        Ok(store_json::get::<_, i64>(&self.backend, &keys::revoked_family(family_id)).await?.is_some())
    }

    async fn jti_revoked(&self, jti: &str) -> Result<bool, OAuthError> {
        if self.revoked.contains(jti) {
            return Ok(true);
        }
        Ok(store_json::get::<_, i64>(&self.backend, &keys::revoked_jti(jti)).await?.is_some())
    }

    /// RFC 7662: what the gateway knows of `token`; `{"active": false}` for anything that is
    /// not a live, unrevoked token of ours.
    pub async fn introspect(&self, token: &str) -> Result<Value, OAuthError> {
        let now = self.clock.now();
        if let Ok(claims) = self.keys.verify_any_audience(token, now) {
            // Strict expiry here: the verifier's leeway is for clock skew between machines.
            let live = claims.exp > now
                && !self.jti_revoked(&claims.jti).await?
                && !self.family_revoked(&claims.fid).await?;
            return Ok(if live { access_introspection(&claims) } else { inactive() });
        }
        let record: Option<RefreshRecord> =
            store_json::get(&self.backend, &keys::refresh(&hash_token(token))).await?;
        match record {
            Some(r) if r.expires_at > now && !self.family_revoked(&r.family_id).await? => {
                Ok(self.refresh_introspection(&r))
            }
            _ => Ok(inactive()),
        }
    }

    fn refresh_introspection(&self, r: &RefreshRecord) -> Value {
        json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": r.client_id,
            "scope": r.scope,
            "sub": r.user.id,
            "aud": r.resource,
            "iss": self.settings.issuer,
            "exp": r.expires_at,
        })
    }
}

fn access_introspection(c: &AccessClaims) -> Value {
    let mut v = json!({
        "active": true,
        "token_type": "Bearer",
        "scope": c.scope,
        "client_id": c.client_id,
        "sub": c.sub,
        "aud": c.aud,
        "iss": c.iss,
        "exp": c.exp,
        "iat": c.iat,
        "jti": c.jti,
    });
    if let Some(map) = v.as_object_mut() {
        if let Some(username) = c.email.clone().or_else(|| c.name.clone()) {
            map.insert("username".into(), username.into());
        }
        if let Some(email) = &c.email {
            map.insert("email".into(), email.clone().into());
        }
    }
    v
}

fn inactive() -> Value {
    json!({ "active": false })
}

/// Checks `resource` and `scope` of a refresh request against the record; returns the scope
/// the new access token gets.
fn check_request(req: &RefreshRequest<'_>, record: &RefreshRecord) -> Result<String, OAuthError> {
    if req.resource.is_some_and(|r| r != record.resource) {
        return Err(OAuthError::InvalidTarget("resource differs from the one authorized".into()));
    }
    let Some(requested) = req.scope.map(normalize_scope).filter(|s| !s.is_empty()) else {
        return Ok(record.scope.clone());
    };
    let granted: BTreeSet<&str> = record.scope.split_whitespace().collect();
    if requested.split_whitespace().all(|s| granted.contains(s)) {
        Ok(requested)
    } else {
        Err(OAuthError::InvalidScope("scope exceeds what was granted".into()))
    }
}

/// What a revocation hit, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// `access_token` or `refresh_token` (which revokes the whole grant).
    pub token_type: &'static str,
    /// Whose it was.
    pub user_id: String,
    /// The grant (family) it belongs to.
    pub grant_id: String,
}

fn invalid_grant() -> OAuthError {
    OAuthError::InvalidGrant(REFRESH_INVALID.into())
}

#[cfg(test)]
mod tests;
