//! Remembered consent: one grant record, one record per (user, client) pair, valid for
//! `tokens.consent_ttl` from the latest approval. The consent page names the service and the
//! scopes, so the record keeps, per service, the scopes approved; a later request skips the
//! page only for a service already approved and a subset of its scopes. A step-up (a new
//! scope) or another service shows the page again, and approving it adds to the record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clock::Clock;
use super::error::OAuthError;
use super::model::keys;
use super::store::{json, Store};
use crate::config::Settings;

/// A stored consent grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Unix time of the latest approval.
    pub granted_at: i64,
    /// Unix time after which the user is asked again.
    pub expires_at: i64,
    /// Service id → the scopes approved for it. A record from before scopes were kept has
    /// none, so it never skips the page.
    #[serde(default)]
    pub services: BTreeMap<String, BTreeSet<String>>,
}

impl ConsentRecord {
    /// Whether this record covers `scopes` of `service_id`.
    fn covers(&self, service_id: &str, scopes: &[String]) -> bool {
        self.services.get(service_id).is_some_and(|granted| scopes.iter().all(|s| granted.contains(s)))
    }
}

/// Consent grants over the store `S`.
pub struct ConsentStore<S> {
    backend: S,
    settings: Arc<Settings>,
    clock: Clock,
}

impl<S: Store> ConsentStore<S> {
    /// A consent store over `backend`.
    pub fn new(backend: S, settings: Arc<Settings>, clock: Clock) -> Self {
        ConsentStore { backend, settings, clock }
    }

    /// Forgets every remembered consent for `client_id` (its users are asked again); returns
    /// how many there were.
    pub async fn forget_client(&self, client_id: &str) -> Result<usize, OAuthError> {
        // Keys are `consent:{user}:{hash(client)}`: the hash is the key's tail.
        let tail = keys::consent("", client_id);
        let tail = tail.strip_prefix(&keys::consent_prefix()).unwrap_or(&tail).to_owned();
        let mut forgotten = 0;
        for key in self.backend.keys(&keys::consent_prefix()).await? {
            if key.ends_with(&tail) {
                self.backend.delete(&key).await?;
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// The live record of `user_id` for `client_id`, if any.
    async fn live_record(&self, user_id: &str, client_id: &str) -> Result<Option<ConsentRecord>, OAuthError> {
        let record: Option<ConsentRecord> =
            json::get(&self.backend, &keys::consent(user_id, client_id)).await?;
        Ok(record.filter(|r| r.expires_at > self.clock.now()))
    }

    /// Remembers that `user_id` approved `client_id` for `scopes` of `service_id`, merged into
    /// a live record (union per service) and renewed for `consent_ttl`. Two approvals racing
    /// may drop one's addition: the user is then asked again, never skipped wrongly.
    pub async fn record_consent(
        &self,
        user_id: &str,
        client_id: &str,
        service_id: &str,
        scopes: &[String],
    ) -> Result<(), OAuthError> {
        let now = self.clock.now();
        let ttl = self.settings.tokens.consent_ttl;
        let mut services = match self.live_record(user_id, client_id).await? {
            Some(record) => record.services,
            None => BTreeMap::new(),
        };
        services.entry(service_id.to_owned()).or_default().extend(scopes.iter().cloned());
        let record =
            ConsentRecord { granted_at: now, expires_at: now.saturating_add_unsigned(ttl), services };
        let key = keys::consent(user_id, client_id);
        json::put(&self.backend, &key, &record, Some(Duration::from_secs(ttl))).await?;
        Ok(())
    }

    /// Whether `user_id` approved `client_id` for `service_id` and every one of `scopes`, and
    /// the grant has not expired.
    pub async fn has_consent(
        &self,
        user_id: &str,
        client_id: &str,
        service_id: &str,
        scopes: &[String],
    ) -> Result<bool, OAuthError> {
        let record = self.live_record(user_id, client_id).await?;
        Ok(record.is_some_and(|r| r.covers(service_id, scopes)))
    }

    /// Whether `user_id` approved `client_id` at all (for any service) and the grant has not
    /// expired. A record from before scopes were kept counts: its approval was real, it only
    /// lacks the detail needed to skip the page.
    pub async fn has_approved_client(&self, user_id: &str, client_id: &str) -> Result<bool, OAuthError> {
        Ok(self.live_record(user_id, client_id).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testing;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn consent_is_per_user_and_client_and_expires() -> Result<(), OAuthError> {
        let clock = Clock::default();
        let s = ConsentStore::new(testing::memory(), testing::settings(), clock.clone());
        let read = scopes(&["read"]);
        assert!(!s.has_consent("dev_alice", "c1", "svc", &read).await?);
        s.record_consent("dev_alice", "c1", "svc", &read).await?;
        assert!(s.has_consent("dev_alice", "c1", "svc", &read).await?);
        assert!(!s.has_consent("dev_alice", "c2", "svc", &read).await?, "other client");
        assert!(!s.has_consent("dev_bob", "c1", "svc", &read).await?, "other user");
        assert!(s.has_approved_client("dev_alice", "c1").await?);
        assert!(!s.has_approved_client("dev_alice", "c2").await?, "other client");
        assert!(!s.has_approved_client("dev_bob", "c1").await?, "other user");
        clock.advance(90 * 24 * 3600 + 1);
        assert!(!s.has_consent("dev_alice", "c1", "svc", &read).await?, "expired after consent_ttl");
        assert!(!s.has_approved_client("dev_alice", "c1").await?, "expired");
        s.record_consent("dev_alice", "c1", "svc", &read).await?;
        assert!(s.has_consent("dev_alice", "c1", "svc", &read).await?, "renewed");
        Ok(())
    }

    #[tokio::test]
    async fn consent_covers_only_the_approved_service_and_scopes() -> Result<(), OAuthError> {
        let clock = Clock::default();
        let s = ConsentStore::new(testing::memory(), testing::settings(), clock.clone());
        s.record_consent("u", "c", "svc", &scopes(&["read", "write"])).await?;
        assert!(s.has_consent("u", "c", "svc", &scopes(&["read", "write"])).await?);
        assert!(s.has_consent("u", "c", "svc", &scopes(&["write"])).await?, "a subset");
        assert!(!s.has_consent("u", "c", "svc", &scopes(&["read", "admin"])).await?, "a new scope");
        assert!(!s.has_consent("u", "c", "other", &scopes(&["read"])).await?, "another service");
        assert!(!s.has_consent("u", "c", "other", &[]).await?, "another service, no scopes");

        // Approvals add up, per service.
        s.record_consent("u", "c", "svc", &scopes(&["admin"])).await?;
        s.record_consent("u", "c", "other", &[]).await?;
        assert!(s.has_consent("u", "c", "svc", &scopes(&["read", "write", "admin"])).await?);
        assert!(s.has_consent("u", "c", "other", &[]).await?);
        assert!(!s.has_consent("u", "c", "other", &scopes(&["read"])).await?, "scopes stay per service");

        // An expired record is not merged into: its scopes are asked for again.
        clock.advance(90 * 24 * 3600 + 1);
        s.record_consent("u", "c", "svc", &scopes(&["read"])).await?;
        assert!(s.has_consent("u", "c", "svc", &scopes(&["read"])).await?);
        assert!(!s.has_consent("u", "c", "svc", &scopes(&["write"])).await?);
        assert!(!s.has_consent("u", "c", "other", &[]).await?);
        Ok(())
    }

    #[tokio::test]
    async fn a_record_without_services_covers_nothing() -> Result<(), OAuthError> {
        // As written before scopes were kept.
        let clock = Clock::default();
        let backend = testing::memory();
        let s = ConsentStore::new(backend.clone(), testing::settings(), clock.clone());
        let old = serde_json::json!({ "granted_at": clock.now(), "expires_at": clock.now() + 3600 });
        json::put(&backend, &keys::consent("u", "c"), &old, None).await?;
        assert!(!s.has_consent("u", "c", "svc", &[]).await?);
        Ok(())
    }
}
