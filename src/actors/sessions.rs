//! Sessions: owns remembered consent grants, one per (user, client) pair, each valid for
//! `tokens.consent_ttl`. A user who approved a client once is not asked again until then.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::{HasConsent, RecordConsent};
use crate::config::Settings;
use crate::error::OAuthError;
use crate::oauth::model::keys;
use crate::state::Clock;
use crate::storage::{json, Backend};

/// A stored consent grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Unix time of the approval.
    pub granted_at: i64,
    /// Unix time after which the user is asked again.
    pub expires_at: i64,
}

/// The logic behind [`Sessions`]. Unit-tested without actix.
pub struct SessionStore {
    backend: Backend,
    settings: Arc<Settings>,
    clock: Clock,
}

impl SessionStore {
    /// A session store over `backend`.
    pub fn new(backend: Backend, settings: Arc<Settings>, clock: Clock) -> Self {
        SessionStore { backend, settings, clock }
    }

    /// Remembers that `user_id` approved `client_id`, replacing an older grant.
    pub async fn record_consent(&self, user_id: &str, client_id: &str) -> Result<(), OAuthError> {
        let now = self.clock.now();
        let ttl = self.settings.tokens.consent_ttl;
        let record = ConsentRecord { granted_at: now, expires_at: now.saturating_add_unsigned(ttl) };
        let key = keys::consent(user_id, client_id);
        json::put(&self.backend, &key, &record, Some(Duration::from_secs(ttl))).await?;
        Ok(())
    }

    /// Whether `user_id` approved `client_id` and the grant has not expired.
    pub async fn has_consent(&self, user_id: &str, client_id: &str) -> Result<bool, OAuthError> {
        let record: Option<ConsentRecord> =
            json::get(&self.backend, &keys::consent(user_id, client_id)).await?;
        Ok(record.is_some_and(|r| r.expires_at > self.clock.now()))
    }
}

/// The sessions actor: a thin shell over [`SessionStore`].
pub struct Sessions {
    inner: Arc<SessionStore>,
}

impl Sessions {
    /// The actor over `store`.
    pub fn new(store: Arc<SessionStore>) -> Self {
        Sessions { inner: store }
    }
}

impl Actor for Sessions {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.inner.settings.runtime.mailbox_capacity);
    }
}

/// Restarted by [`actix::Supervisor`] with the same store if it ever stops.
impl Supervised for Sessions {}

impl Handler<RecordConsent> for Sessions {
    type Result = ResponseFuture<Result<(), OAuthError>>;

    fn handle(&mut self, msg: RecordConsent, _: &mut Self::Context) -> Self::Result {
        let inner = self.inner.clone();
        Box::pin(async move { inner.record_consent(&msg.user_id, &msg.client_id).await })
    }
}

impl Handler<HasConsent> for Sessions {
    type Result = ResponseFuture<Result<bool, OAuthError>>;

    fn handle(&mut self, msg: HasConsent, _: &mut Self::Context) -> Self::Result {
        let inner = self.inner.clone();
        Box::pin(async move { inner.has_consent(&msg.user_id, &msg.client_id).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::supervisor::testing;

    #[tokio::test]
    async fn consent_is_per_user_and_client_and_expires() -> Result<(), OAuthError> {
        let clock = Clock::default();
        let s = SessionStore::new(testing::memory(), testing::settings(), clock.clone());
        assert!(!s.has_consent("dev_alice", "c1").await?);
        s.record_consent("dev_alice", "c1").await?;
        assert!(s.has_consent("dev_alice", "c1").await?);
        assert!(!s.has_consent("dev_alice", "c2").await?, "other client");
        assert!(!s.has_consent("dev_bob", "c1").await?, "other user");
        clock.advance(90 * 24 * 3600 + 1);
        assert!(!s.has_consent("dev_alice", "c1").await?, "expired after consent_ttl");
        s.record_consent("dev_alice", "c1").await?;
        assert!(s.has_consent("dev_alice", "c1").await?, "renewed");
        Ok(())
    }
}
