//! Cutting people off: list and revoke grants, list and delete registered clients. One set of
//! operations over the state actors, used by the `grants` and `clients` commands (against the
//! configured store) and by the JSON admin API ([`api`], off unless `admin.token` is set).
//!
//! A revoked grant's refreshes fail at once everywhere (the revocation marker is in the shared
//! store) and its access tokens stop at every instance's proxy within a second (the
//! revocation broadcast). Each revoked grant is a `grant_revoked` audit line (reason
//! `revoked_by_admin`); each operation an `admin_action` line.

use serde::Serialize;

use crate::actors::{Actors, DeleteClient, ForgetClient, ListClients, ListGrants, RevokeGrants};
use crate::core::audit::{Audit, Event};
use crate::core::model::Client;
use crate::core::tokens::{Grant, GrantFilter};
use crate::core::OAuthError;

pub mod api;
pub mod cli;

/// A registered client as an operator sees it (never its secret's hash).
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// The client id.
    pub client_id: String,
    /// Its name.
    pub client_name: Option<String>,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// Unix time of registration.
    pub created_at: i64,
    /// Unix time it was last used (to the gateway's precision of a few minutes).
    pub last_used_at: i64,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        ClientView {
            last_used_at: if c.last_used > 0 { c.last_used } else { c.client_id_issued_at },
            client_id: c.client_id,
            client_name: c.client_name,
            redirect_uris: c.redirect_uris,
            token_endpoint_auth_method: c.token_endpoint_auth_method,
            created_at: c.client_id_issued_at,
        }
    }
}

/// What deleting a client did.
#[derive(Debug, Clone, Serialize)]
pub struct ClientDeleted {
    /// Whether a registration was removed (false for an unknown id or a metadata document,
    /// whose grants and consents still go).
    pub registered: bool,
    /// Its grants, now revoked.
    pub grants_revoked: Vec<Grant>,
    /// How many remembered consents were forgotten.
    pub consents_forgotten: usize,
}

/// Who runs the operations: the actors, and where the audit lines go with whose request.
pub struct Admin<'a> {
    /// The state actors.
    pub actors: &'a Actors,
    /// The audit trail.
    pub audit: &'a Audit,
    /// The request id (`cli` for a command).
    pub request_id: String,
    /// The caller's address (none for a command).
    pub client_ip: Option<String>,
}

impl Admin<'_> {
    /// The live grants `filter` matches.
    pub async fn grants(&self, filter: GrantFilter) -> Result<Vec<Grant>, OAuthError> {
        let found = self.actors.tokens.send(ListGrants(filter)).await?;
        self.done("list_grants", &found);
        found
    }

    /// Revokes the grants `filter` matches (it must name someone or something).
    pub async fn revoke(&self, filter: GrantFilter) -> Result<Vec<Grant>, OAuthError> {
        let revoked = self.actors.tokens.send(RevokeGrants(filter)).await?;
        if let Ok(grants) = &revoked {
            self.revoked(grants);
        }
        self.done("revoke_grants", &revoked);
        revoked
    }

    /// Every registered client.
    pub async fn clients(&self) -> Result<Vec<ClientView>, OAuthError> {
        let found = self
            .actors
            .clients
            .send(ListClients)
            .await?
            .map(|c| c.into_iter().map(ClientView::from).collect());
        self.done("list_clients", &found);
        found
    }

    /// Deletes `client_id`: its registration, its grants (revoked) and the consents people
    /// gave it (they are asked again).
    pub async fn delete_client(&self, client_id: &str) -> Result<ClientDeleted, OAuthError> {
        let result = self.delete_client_inner(client_id).await;
        self.done("delete_client", &result);
        result
    }

    async fn delete_client_inner(&self, client_id: &str) -> Result<ClientDeleted, OAuthError> {
        let id = client_id.to_owned();
        let registered = self.actors.clients.send(DeleteClient { client_id: id.clone() }).await??;
        let filter = GrantFilter { client: Some(id.clone()), ..GrantFilter::default() };
        let grants_revoked = self.actors.tokens.send(RevokeGrants(filter)).await??;
        self.revoked(&grants_revoked);
        let consents_forgotten = self.actors.sessions.send(ForgetClient { client_id: id }).await??;
        Ok(ClientDeleted { registered, grants_revoked, consents_forgotten })
    }

    fn revoked(&self, grants: &[Grant]) {
        for g in grants {
            self.audit.record(g.revoked_event("revoked_by_admin", self.event("grant_revoked")));
        }
    }

    fn done<T>(&self, action: &'static str, result: &Result<T, OAuthError>) {
        let outcome = if result.is_ok() { "success" } else { "failure" };
        self.audit.record(Event {
            action: Some(action),
            outcome: Some(outcome),
            ..self.event("admin_action")
        });
    }

    fn event(&self, kind: &'static str) -> Event<'_> {
        Event::new(kind, &self.request_id, self.client_ip.clone())
    }
}
