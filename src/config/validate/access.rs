//! Validation of the access rules: a rule that names nobody would refuse everyone without a
//! word, and GitHub organizations or teams mean nothing to any other provider.

use super::ConfigError;
use crate::config::{AccessRule, ProviderKind, Settings};

/// Checks `access`, each service's `access` and each `tool_access` rule.
pub(super) fn check(settings: &Settings, provider: ProviderKind) -> Result<(), ConfigError> {
    check_client_names(settings)?;
    if let Some(rule) = &settings.access {
        check_rule("access", rule, provider)?;
    }
    for (id, service) in &settings.mcp_services {
        if let Some(rule) = &service.access {
            check_rule(&format!("mcp_services.{id}.access"), rule, provider)?;
        }
        for (tool, rule) in &service.tool_access {
            if tool.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("mcp_services.{id}.tool_access"),
                    "a tool name is empty",
                ));
            }
            check_rule(&format!("mcp_services.{id}.tool_access.{tool}"), rule, provider)?;
        }
    }
    Ok(())
}

fn check_rule(key: &str, rule: &AccessRule, provider: ProviderKind) -> Result<(), ConfigError> {
    if rule.is_empty() {
        return Err(ConfigError::new(
            key,
            "names nobody (every list is empty), so it would refuse everyone; list emails, domains, \
             groups, github_orgs, github_teams or clients, or remove it to allow anyone with an account",
        ));
    }
    let lists = [
        ("emails", &rule.emails),
        ("domains", &rule.domains),
        ("groups", &rule.groups),
        ("github_orgs", &rule.github_orgs),
        ("github_teams", &rule.github_teams),
        ("clients", &rule.clients),
    ];
    for (name, list) in lists {
        if list.iter().any(|entry| entry.trim().is_empty() || entry.trim().contains(char::is_whitespace)) {
            return Err(ConfigError::new(
                format!("{key}.{name}"),
                "entries must be non-empty, without spaces",
            ));
        }
    }
    if let Some(bad) =
        rule.emails.iter().find(|e| e.split_once('@').is_none_or(|(l, d)| l.is_empty() || d.is_empty()))
    {
        return Err(ConfigError::new(format!("{key}.emails"), format!("{bad:?} is not an email address")));
    }
    if let Some(bad) = rule.domains.iter().find(|d| d.contains('@') || d.starts_with('.')) {
        return Err(ConfigError::new(
            format!("{key}.domains"),
            format!("{bad:?} is not a domain (write example.com; subdomains are listed one by one)"),
        ));
    }
    if rule.uses_github() && provider != ProviderKind::GitHub {
        let name = if rule.github_orgs.is_empty() { "github_teams" } else { "github_orgs" };
        return Err(ConfigError::new(
            format!("{key}.{name}"),
            format!("needs the github provider; the configured provider is {provider}"),
        ));
    }
    let bad_team = |t: &&String| {
        t.split_once('/').is_none_or(|(org, slug)| org.is_empty() || slug.is_empty() || slug.contains('/'))
    };
    if let Some(bad) = rule.github_teams.iter().find(bad_team) {
        return Err(ConfigError::new(
            format!("{key}.github_teams"),
            format!("{bad:?} is not in org/team-slug form"),
        ));
    }
    if rule.github_orgs.iter().any(|o| o.contains('/')) {
        return Err(ConfigError::new(
            format!("{key}.github_orgs"),
            "an organization has no '/'; list teams as org/team-slug under github_teams",
        ));
    }
    Ok(())
}

/// Every `clients` entry of a rule names a client configured under `clients:`.
fn check_client_names(settings: &Settings) -> Result<(), ConfigError> {
    let services = settings.mcp_services.iter().flat_map(|(id, s)| {
        let own = s.access.iter().map(move |r| (format!("mcp_services.{id}.access"), r));
        let tools = s.tool_access.iter().map(move |(t, r)| (format!("mcp_services.{id}.tool_access.{t}"), r));
        own.chain(tools)
    });
    let rules = settings.access.iter().map(|r| ("access".to_owned(), r)).chain(services);
    for (key, rule) in rules {
        if let Some(unknown) = rule.clients.iter().find(|c| !settings.clients.contains_key(c.trim())) {
            return Err(ConfigError::new(
                format!("{key}.clients"),
                format!("{unknown:?} is not a client configured under clients:"),
            ));
        }
    }
    Ok(())
}
