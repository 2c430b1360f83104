//! The identity assertion grant at the token endpoint (Enterprise-Managed Authorization):
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with an ID-JAG as `assertion`,
//! checked by [`crate::core::machine::id_jag`]. The token is for the one service the
//! assertion's `resource` names (a `resource` parameter, when sent, must be the same), speaks
//! for the person the issuer vouches for, passes the access rules as a login would, and comes
//! without a refresh token: the client asks its identity provider for a new assertion instead.
//!
//! Any authenticated client may present one: the assertion itself names the client it was
//! issued to (`client_id`), which is the identity provider's decision, not the client's. A
//! configured client (`clients:`) must also list the grant in its `grant_types` and stays
//! within its `services` and `scopes`.

use crate::actors::VerifyIdentityAssertion;
use crate::core::access;
use crate::core::machine::id_jag::{IdentityAssertion, GRANT_TYPE, PROVIDER};
use crate::core::model::{Client, ClientSource, Memberships, TokenResponse, UserInfo};
use crate::core::OAuthError;
use crate::oauth::client_credentials::{granted_scope, issue_for};
use crate::oauth::resource;
use crate::state::AppState;

/// The token for the ID-JAG `assertion` presented by `client`.
pub async fn grant(
    state: &AppState,
    client: &Client,
    assertion: Option<&str>,
    requested_resource: Option<&str>,
    requested_scope: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let assertion = assertion
        .filter(|a| !a.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest("assertion is required".into()))?;
    let msg =
        VerifyIdentityAssertion { client_id: client.client_id.clone(), assertion: assertion.to_owned() };
    let vouched = state.actors.clients.send(msg).await??;
    let settings = &state.settings;
    let service_id = resource::service_for(settings, &vouched.resource).ok_or_else(|| {
        OAuthError::InvalidGrant("the assertion's resource is not a service of this gateway".into())
    })?;
    if let Some(asked) = requested_resource {
        if resource::service_for(settings, asked).as_deref() != Some(service_id.as_str()) {
            return Err(OAuthError::InvalidTarget("resource differs from the assertion's".into()));
        }
    }
    let service = settings.mcp_services.get(&service_id).ok_or_else(|| {
        OAuthError::InvalidGrant("the assertion's resource is not a service of this gateway".into())
    })?;
    // A configured client stays within what the operator gave it, whoever vouches for the
    // person: it must list the grant, and the service and scopes must be among its own.
    let configured = (client.source == ClientSource::Configured)
        .then(|| settings.clients.get(&client.client_id))
        .flatten();
    if let Some(configured) = configured {
        if !configured.grant_types.iter().any(|g| g == GRANT_TYPE) {
            return Err(OAuthError::UnauthorizedClient(format!("this client may not use {GRANT_TYPE}")));
        }
        if !configured.services.contains(&service_id) {
            return Err(OAuthError::InvalidGrant(format!("this client may not use service {service_id}")));
        }
    }
    let client_scopes = configured.map(|c| c.scopes.as_slice()).unwrap_or_default();
    let scope = match vouched.scopes.as_deref() {
        Some([]) if requested_scope.is_some_and(|s| !s.trim().is_empty()) => {
            return Err(OAuthError::InvalidScope("the assertion grants no scope".into()))
        }
        Some([]) => String::new(),
        Some(allowed) => {
            let allowed: Vec<String> = match client_scopes.is_empty() {
                true => allowed.to_vec(),
                false => allowed.iter().filter(|s| client_scopes.contains(s)).cloned().collect(),
            };
            if allowed.is_empty() {
                return Err(OAuthError::InvalidScope(
                    "this client may have none of the assertion's scopes".into(),
                ));
            }
            granted_scope(&allowed, service, requested_scope)?
        }
        None => granted_scope(client_scopes, service, requested_scope)?,
    };
    let subject = person(&vouched);
    if !access::may_use_service(settings, &service_id, &subject) {
        return Err(OAuthError::InvalidGrant(format!(
            "the access rule of service {service_id} does not admit {}",
            subject.email.as_deref().unwrap_or(&subject.id)
        )));
    }
    issue_for(state, &client.client_id, &service_id, subject, scope)
}

/// The person of an assertion. Their id names the issuer too (two trusted issuers may each
/// have a `sub` of `42`): `id-jag_{issuer}#{sub}`.
fn person(vouched: &IdentityAssertion) -> UserInfo {
    UserInfo {
        id: format!("{PROVIDER}_{}#{}", vouched.issuer, vouched.subject),
        sub: vouched.subject.clone(),
        email: vouched.email.clone(),
        name: vouched.name.clone(),
        avatar: None,
        provider: PROVIDER.into(),
        memberships: Memberships::default(),
    }
}
