//! The client credentials grant (RFC 6749 §4.4; MCP extension
//! `io.modelcontextprotocol/oauth-client-credentials`) for the clients of the configuration,
//! and their `private_key_jwt` authentication at the token endpoint.
//!
//! The token is for one service: the `resource` sent, which must be one of the client's
//! `services`, or the only one it has. Scopes are those asked for that the client may have at
//! that service (the response's `scope` says which, RFC 6749 §3.3); `invalid_scope` only when
//! it asked for some and may have none of them. Without `scope` it gets its configured
//! `scopes` at that service, or the service's base scopes when it has no list.

use actix_web::http::header;
use actix_web::HttpRequest;

use crate::actors::AuthenticateAssertion;
use crate::config::ServiceSettings;
use crate::core::access;
use crate::core::machine::client_auth::ASSERTION_TYPE;
use crate::core::machine::direct::{self, client_subject, DirectGrant};
use crate::core::model::{Client, ClientSource, TokenResponse, UserInfo};
use crate::core::OAuthError;
use crate::oauth::metadata::{service_scopes, OFFLINE_ACCESS};
use crate::oauth::resource;
use crate::state::AppState;

/// The client assertion parameters of a token request (RFC 7521 §4.2).
#[derive(Debug, Clone, Copy)]
pub struct AssertionParams<'a> {
    /// `client_id`, optional with an assertion.
    pub client_id: Option<&'a str>,
    /// `client_secret`: must be absent.
    pub client_secret: Option<&'a str>,
    /// `client_assertion_type`.
    pub assertion_type: Option<&'a str>,
    /// `client_assertion`.
    pub assertion: Option<&'a str>,
}

impl AssertionParams<'_> {
    /// Whether the request authenticates with an assertion at all.
    pub fn present(&self) -> bool {
        self.assertion_type.is_some() || self.assertion.is_some()
    }
}

/// Authenticates the client by its `client_assertion`. Sending a secret (Basic or form) as
/// well is `invalid_request` (RFC 6749 §2.3: one method per request).
pub async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    params: AssertionParams<'_>,
) -> Result<Client, OAuthError> {
    if req.headers().contains_key(header::AUTHORIZATION) || params.client_secret.is_some() {
        return Err(OAuthError::InvalidRequest("use one client authentication method, not two".into()));
    }
    if params.assertion_type != Some(ASSERTION_TYPE) {
        return Err(OAuthError::InvalidClient(format!("client_assertion_type must be {ASSERTION_TYPE}")));
    }
    let assertion = params
        .assertion
        .filter(|a| !a.is_empty())
        .ok_or_else(|| OAuthError::InvalidClient("client_assertion is required".into()))?;
    let msg = AuthenticateAssertion {
        client_id: params.client_id.filter(|id| !id.is_empty()).map(str::to_owned),
        assertion: assertion.to_owned(),
    };
    state.actors.clients.send(msg).await?
}

/// Issues the client's own token for one of its services (see the module docs).
pub fn grant(
    state: &AppState,
    client: &Client,
    requested_resource: Option<&str>,
    requested_scope: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let settings = &state.settings;
    let configured = (client.source == ClientSource::Configured)
        .then(|| settings.clients.get(&client.client_id))
        .flatten()
        .ok_or_else(|| {
            OAuthError::UnauthorizedClient("only configured clients may use client_credentials".into())
        })?;
    let service_id = match requested_resource {
        Some(r) => {
            resource::service_for(settings, r).filter(|id| configured.services.contains(id)).ok_or_else(
                || OAuthError::InvalidTarget("resource is not a service this client may use".into()),
            )?
        }
        None => match configured.services.as_slice() {
            [only] => only.clone(),
            _ => {
                return Err(OAuthError::InvalidRequest(
                    "resource is required: this client may use several services".into(),
                ))
            }
        },
    };
    let service = settings
        .mcp_services
        .get(&service_id)
        .ok_or_else(|| OAuthError::InvalidTarget("resource is not a service of this gateway".into()))?;
    let scope = granted_scope(&configured.scopes, service, requested_scope)?;
    let name = client.client_name.clone().unwrap_or_else(|| client.client_id.clone());
    let subject = client_subject(&client.client_id, &name);
    // A service with an access rule admits a machine client only by name (`clients: [...]`).
    if !access::may_use_service(settings, &service_id, &subject) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "the access rule of service {service_id} does not list this client"
        )));
    }
    issue_for(state, &client.client_id, &service_id, subject, scope)
}

/// Signs the direct (no refresh token) access token of `subject` for `service_id`, with the
/// tools its `tool_access` rules keep from the subject listed; the access rule of the service
/// itself is the caller's to have checked.
pub(crate) fn issue_for(
    state: &AppState,
    client_id: &str,
    service_id: &str,
    subject: UserInfo,
    scope: String,
) -> Result<TokenResponse, OAuthError> {
    let settings = &state.settings;
    let grant = DirectGrant {
        denied_tools: access::denied_tools(settings, service_id, &subject),
        subject,
        client_id: client_id.to_owned(),
        resource: settings.resource_uri(service_id),
        scope,
    };
    direct::issue(&state.keys, &settings.issuer, settings.tokens.access_token_ttl, state.clock.now(), grant)
}

/// The scopes granted at `service` to a client limited to `client_scopes` (empty: no limit).
pub(crate) fn granted_scope(
    client_scopes: &[String],
    service: &ServiceSettings,
    requested: Option<&str>,
) -> Result<String, OAuthError> {
    let allowed: Vec<String> = service_scopes(service)
        .into_iter()
        .filter(|s| client_scopes.is_empty() || client_scopes.contains(s))
        .collect();
    let mut asked: Vec<&str> = Vec::new();
    for s in requested.unwrap_or("").split_whitespace().filter(|s| *s != OFFLINE_ACCESS) {
        if !asked.contains(&s) {
            asked.push(s);
        }
    }
    if asked.is_empty() {
        let default: Vec<&String> = if client_scopes.is_empty() {
            service.scopes.iter().filter(|s| allowed.contains(s)).collect()
        } else {
            allowed.iter().collect()
        };
        return Ok(default.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "));
    }
    let granted: Vec<&str> = asked.into_iter().filter(|a| allowed.iter().any(|s| s == a)).collect();
    if granted.is_empty() {
        return Err(OAuthError::InvalidScope(
            "none of the requested scopes may be granted to this client".into(),
        ));
    }
    Ok(granted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(scopes: &[&str], step_up: &[&str]) -> ServiceSettings {
        let mut s: ServiceSettings =
            serde_json::from_value(serde_json::json!({"name": "S", "url": "http://b", "scopes": scopes}))
                .unwrap_or_else(|e| panic!("{e}"));
        if !step_up.is_empty() {
            s.tool_scopes.insert("danger".into(), step_up.iter().map(|x| (*x).to_owned()).collect());
        }
        s
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scopes_are_narrowed_to_what_the_client_may_have() {
        let svc = service(&["read", "write"], &["admin"]);
        let limited = strings(&["read", "admin"]);
        type Case<'a> = (&'a [String], Option<&'a str>, Result<&'a str, &'a str>);
        let cases: [Case; 7] = [
            (&limited, None, Ok("read admin")),
            (&limited, Some("read write admin offline_access"), Ok("read admin")),
            (&limited, Some("write"), Err("invalid_scope")),
            (&[], None, Ok("read write")),
            (&[], Some("admin"), Ok("admin")),
            (&[], Some("root read"), Ok("read")),
            (&[], Some("root"), Err("invalid_scope")),
        ];
        for (client, asked, expected) in cases {
            let got = granted_scope(client, &svc, asked);
            assert_eq!(got.as_deref().map_err(|e| e.code()), expected, "{client:?} {asked:?}");
        }
    }
}
