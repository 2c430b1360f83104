//! Grants, for the people who cut access off (the `grants` commands, the admin API): a grant
//! is one refresh-token family, one person's authorization of one client for one service.
//!
//! Nothing extra is written on the token path to list them: a live family is exactly one live
//! refresh record (`rt:{hash}`), which already holds the person, client, service, scope, when
//! the grant began and when its token expires, so listing walks those records
//! ([`Store::keys`]). A rotation takes the old record and writes the new one a moment later;
//! a revocation that looked during that moment would miss the family, so revoking looks twice,
//! the second time after any rotation in flight has finished.

use std::time::Duration;

use serde::Serialize;

use super::TokenService;
use crate::core::audit::Event;
use crate::core::clock::secs;
use crate::core::error::OAuthError;
use crate::core::model::{keys, RefreshRecord};
use crate::core::store::{json as store_json, Revocations, Store, RECHECK_MS};

/// One grant as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The family id (the audit trail's `grant_id`).
    pub grant_id: String,
    /// The person (`{provider}_{sub}`).
    pub user_id: String,
    /// Their email, when the provider gave one.
    pub email: Option<String>,
    /// The client.
    pub client_id: String,
    /// The service.
    pub service_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Unix time the grant began (the code was redeemed).
    pub created_at: i64,
    /// Unix time of its last refresh (or its start).
    pub last_used_at: i64,
    /// Unix time its refresh token expires unless used.
    pub expires_at: i64,
}

/// Which grants: every given field must match; an empty filter matches every grant.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    /// An email (any case), a user id (`dev_…`) or a provider subject.
    pub user: Option<String>,
    /// A client id.
    pub client: Option<String>,
    /// A service id.
    pub service: Option<String>,
    /// A grant id.
    pub grant: Option<String>,
}

impl Grant {
    /// The `grant_revoked` audit line of this grant, for `reason`, over `base` (the caller's
    /// event of that kind).
    pub fn revoked_event<'a>(&'a self, reason: &'static str, base: Event<'a>) -> Event<'a> {
        Event {
            reason: Some(reason),
            user_id: Some(&self.user_id),
            user_email: self.email.as_deref(),
            client_id: Some(&self.client_id),
            service: Some(&self.service_id),
            grant_id: Some(&self.grant_id),
            ..base
        }
    }
}

impl GrantFilter {
    /// Whether nothing narrows the filter (a revocation refuses that: it would end everyone).
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.client.is_none() && self.service.is_none() && self.grant.is_none()
    }

    fn matches(&self, g: &Grant, provider: &str) -> bool {
        let user = self.user.as_deref().is_none_or(|u| {
            g.user_id == u
                || g.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(u))
                || g.user_id.strip_prefix(provider).and_then(|r| r.strip_prefix('_')) == Some(u)
        });
        user && self.client.as_deref().is_none_or(|c| g.client_id == c)
            && self.service.as_deref().is_none_or(|s| g.service_id == s)
            && self.grant.as_deref().is_none_or(|id| g.grant_id == id)
    }
}

impl<S: Store + Revocations> TokenService<S> {
    /// The live grants `filter` matches, oldest first.
    pub async fn grants(&self, filter: &GrantFilter) -> Result<Vec<Grant>, OAuthError> {
        let now = self.clock.now();
        let mut found = Vec::new();
        for key in self.backend.keys(&keys::refresh("")).await? {
            let Some(record) = store_json::get::<_, RefreshRecord>(&self.backend, &key).await? else {
                continue;
            };
            if record.expires_at <= now || self.family_revoked(&record.family_id).await? {
                continue;
            }
            let provider = record.user.provider.clone();
            let grant = self.grant_of(record);
            if filter.matches(&grant, &provider) {
                found.push(grant);
            }
        }
        found.sort_by(|a, b| (a.created_at, &a.grant_id).cmp(&(b.created_at, &b.grant_id)));
        found.dedup_by(|a, b| a.grant_id == b.grant_id);
        Ok(found)
    }

    /// Revokes every grant `filter` matches (refused for an empty filter) and returns them:
    /// their refreshes fail everywhere at once, and their access tokens stop at every
    /// instance's proxy within a second (the revocation broadcast).
    pub async fn revoke_grants(&self, filter: &GrantFilter) -> Result<Vec<Grant>, OAuthError> {
        if filter.is_empty() {
            return Err(OAuthError::InvalidRequest(
                "name a user, a client, a service or a grant to revoke".into(),
            ));
        }
        let mut revoked = self.grants(filter).await?;
        for grant in &revoked {
            self.revoke_family(&grant.grant_id).await?;
        }
        // A family caught between the take and the write of a rotation was not listed.
        tokio::time::sleep(Duration::from_millis(RECHECK_MS.iter().sum())).await;
        for grant in self.grants(filter).await? {
            self.revoke_family(&grant.grant_id).await?;
            revoked.push(grant);
        }
        Ok(revoked)
    }

    fn grant_of(&self, record: RefreshRecord) -> Grant {
        // A refresh record is written with `refresh_token_ttl` to live at each rotation.
        let last_used = record.expires_at - secs(self.refresh_ttl());
        Grant {
            grant_id: record.family_id,
            user_id: record.user.id,
            email: record.user.email,
            client_id: record.client_id,
            service_id: record.service_id,
            scope: record.scope,
            created_at: record.granted_at,
            last_used_at: last_used.max(record.granted_at),
            expires_at: record.expires_at,
        }
    }
}
