//! Which service and scopes an authorization request is for: the RFC 8707 `resource` mapped
//! to a service (or, with no `resource` and several services, the person's pick on the consent
//! page, checklist B8), and the scopes that service can grant (its `scopes` and every scope its
//! `tool_scopes` name; without `scope`, the base `scopes` only; scopes of other services are
//! dropped, so a client asking for all of `scopes_supported` gets this service's share).
//! `offline_access` is accepted and dropped: refresh tokens are always issued.

use crate::config::Settings;
use crate::core::model::PendingAuthorization;
use crate::core::OAuthError;
use crate::oauth::metadata::{all_scopes, service_scopes, OFFLINE_ACCESS};
use crate::oauth::resource;

/// The service id and canonical resource the request is for; `None` when the request names
/// none and there are several (the person picks one on the consent page).
fn target(settings: &Settings, requested: Option<&str>) -> Result<Option<(String, String)>, OAuthError> {
    let id = match requested {
        Some(r) => resource::service_for(settings, r)
            .ok_or_else(|| OAuthError::InvalidTarget("resource is not a service of this gateway".into()))?,
        None => {
            let mut ids = settings.mcp_services.keys();
            match (ids.next(), ids.next()) {
                (Some(only), None) => only.clone(),
                (None, _) => {
                    return Err(OAuthError::InvalidTarget("this gateway has no services".into()));
                }
                (Some(_), Some(_)) => return Ok(None),
            }
        }
    };
    let uri = settings.resource_uri(&id);
    Ok(Some((id, uri)))
}

/// What an authorization request asks for: service id, canonical resource and granted scopes.
/// With no `resource` and several services the id and resource are empty, to be chosen on the
/// consent page ([`bind_service`]), and the scopes are kept as asked until then.
pub fn for_request(
    settings: &Settings,
    requested_resource: Option<&str>,
    requested_scope: Option<&str>,
) -> Result<(String, String, String), OAuthError> {
    match target(settings, requested_resource)? {
        Some((id, uri)) => {
            let scope = granted_scope(settings, &id, requested_scope)?;
            Ok((id, uri, scope))
        }
        None => Ok((String::new(), String::new(), asked_scopes(requested_scope).join(" "))),
    }
}

/// Binds an authorization that named no service to `service_id`, the person's pick on the
/// consent page: its resource, and its scopes checked against that service (`pending.scope`
/// holds what was asked until then).
pub fn bind_service(
    settings: &Settings,
    mut pending: PendingAuthorization,
    service_id: &str,
) -> Result<PendingAuthorization, OAuthError> {
    if !settings.mcp_services.contains_key(service_id) {
        return Err(OAuthError::InvalidTarget("the chosen service is not a service of this gateway".into()));
    }
    pending.scope = granted_scope(settings, service_id, Some(&pending.scope))?;
    pending.resource = settings.resource_uri(service_id);
    pending.service_id = service_id.to_owned();
    Ok(pending)
}

/// The scopes granted: the requested ones (each must be grantable by the service), or the
/// service's base `scopes` when none is asked for.
fn granted_scope(
    settings: &Settings,
    service_id: &str,
    requested: Option<&str>,
) -> Result<String, OAuthError> {
    let Some(service) = settings.mcp_services.get(service_id) else {
        return Err(OAuthError::InvalidTarget("resource is not a service of this gateway".into()));
    };
    let known = service_scopes(service);
    let asked = asked_scopes(requested);
    if asked.is_empty() {
        let base = service.scopes.iter().filter(|s| *s != OFFLINE_ACCESS);
        return Ok(base.cloned().collect::<Vec<_>>().join(" "));
    }
    // A client that asks for every `scopes_supported` value (the gateway-wide list) gets those
    // of this service; a scope no service offers is a mistake worth an error.
    let offered_anywhere = all_scopes(settings);
    if let Some(unknown) = asked.iter().find(|s| !offered_anywhere.iter().any(|k| k == *s)) {
        return Err(OAuthError::InvalidScope(format!("scope '{unknown}' is not offered by this service")));
    }
    let granted: Vec<&str> = asked.into_iter().filter(|s| known.iter().any(|k| k == s)).collect();
    if granted.is_empty() && !known.is_empty() {
        // Only other services' scopes: a request meant for another service.
        return Err(OAuthError::InvalidScope(
            "none of the requested scopes is offered by this service".into(),
        ));
    }
    Ok(granted.join(" "))
}

/// The scopes a request asks for, each once, in order, without `offline_access`.
fn asked_scopes(requested: Option<&str>) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in requested.unwrap_or("").split_whitespace().filter(|s| *s != OFFLINE_ACCESS) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(services: &[(&str, &[&str])]) -> Settings {
        let mut yaml = String::from("session_secret: s\nissuer: http://gw\nmcp_services:\n");
        for (id, scopes) in services {
            yaml.push_str(&format!("  {id}:\n    name: {id}\n    url: http://b\n    scopes: {scopes:?}\n"));
        }
        if services.is_empty() {
            yaml.push_str("  {}\n");
        }
        config::Config::builder()
            .add_source(config::File::from_str(&yaml, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .unwrap_or_else(|e| panic!("{e}: {yaml}"))
    }

    #[test]
    fn missing_resource_binds_when_one_service_and_leaves_the_choice_otherwise() {
        let one = settings(&[("a", &[])]);
        assert_eq!(target(&one, None).ok(), Some(Some(("a".into(), "http://gw/a/mcp".into()))));
        let two = settings(&[("a", &[]), ("b", &[])]);
        assert_eq!(target(&two, None).ok(), Some(None), "the person picks on the consent page");
        assert_eq!(
            target(&two, Some("HTTP://GW/b/mcp/")).ok(),
            Some(Some(("b".into(), "http://gw/b/mcp".into())))
        );
        assert!(matches!(target(&two, Some("http://gw/c/mcp")), Err(OAuthError::InvalidTarget(_))));
    }

    #[test]
    fn a_picked_service_binds_resource_and_checks_scopes_against_it() {
        let s = settings(&[("a", &["read"]), ("b", &["write"])]);
        let pending = |scope: &str| PendingAuthorization {
            id: "p".into(),
            client_id: "c".into(),
            redirect_uri: "https://app/cb".into(),
            state: None,
            code_challenge: "x".into(),
            scope: scope.into(),
            service_id: String::new(),
            resource: String::new(),
            consented: false,
            remembered_user: None,
            browser_hash: None,
            account: false,
            expires_at: 0,
        };
        let bound = bind_service(&s, pending(""), "b").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (bound.service_id.as_str(), bound.resource.as_str(), bound.scope.as_str()),
            ("b", "http://gw/b/mcp", "write")
        );
        assert!(matches!(bind_service(&s, pending("read"), "b"), Err(OAuthError::InvalidScope(_))));
        assert!(matches!(bind_service(&s, pending(""), "nope"), Err(OAuthError::InvalidTarget(_))));
    }

    #[test]
    fn scopes_default_to_the_base_ones_and_must_be_known() {
        let mut s = settings(&[("a", &["read", "write"])]);
        assert_eq!(granted_scope(&s, "a", None).ok().as_deref(), Some("read write"));
        assert_eq!(granted_scope(&s, "a", Some("write offline_access write")).ok().as_deref(), Some("write"));
        assert!(matches!(granted_scope(&s, "a", Some("admin")), Err(OAuthError::InvalidScope(_))));
        // Step-up scopes are grantable, but only when asked for.
        let a = s.mcp_services.get_mut("a").unwrap_or_else(|| panic!("service a"));
        a.tool_scopes.insert("delete_repo".into(), vec!["admin".into(), "write".into()]);
        assert_eq!(granted_scope(&s, "a", None).ok().as_deref(), Some("read write"));
        assert_eq!(granted_scope(&s, "a", Some("read admin")).ok().as_deref(), Some("read admin"));
        assert!(matches!(granted_scope(&s, "a", Some("root")), Err(OAuthError::InvalidScope(_))));
    }

    #[test]
    fn asking_for_every_advertised_scope_gets_this_services_share() {
        let s = settings(&[("a", &["read", "write"]), ("b", &["deploy"])]);
        assert_eq!(granted_scope(&s, "a", Some("deploy read write")).ok().as_deref(), Some("read write"));
        assert_eq!(granted_scope(&s, "b", Some("deploy read write")).ok().as_deref(), Some("deploy"));
        assert!(matches!(granted_scope(&s, "a", Some("read nope")), Err(OAuthError::InvalidScope(_))));
    }
}
