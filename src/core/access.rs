//! Access rules (`access`, `mcp_services.ID.access`, `mcp_services.ID.tool_access`): who may
//! use which service, and which tool.
//!
//! A person passes a rule when any one entry matches: an email (without regard to case), the
//! domain of that email or Google's hosted domain, a group, a GitHub organization or team
//! (GitHub names are case-insensitive, so these are too; groups are compared exactly, as
//! providers treat them). The email in [`UserInfo`] is always one the provider verified, so a
//! domain rule cannot be met by typing an address at a provider that never checked it.
//!
//! The rules are asked at login (the callback), at every refresh (the stored user facts
//! against the rules the gateway runs with now, so a changed rule takes effect within one
//! access-token lifetime), and per tool: the tools a person may not call are written into the
//! access token ([`denied_tools`]), which the proxy reads without any lookup.

use crate::config::{AccessRule, ProviderKind, Settings};
use crate::core::model::UserInfo;

/// The provider name of a machine client's own identity (`crate::core::machine`).
pub const CLIENT_PROVIDER: &str = "client";

/// The rule of service `service_id`: its own `access`, else the top-level one; `None`
/// (anyone with an account at the provider) when neither is set or the service is unknown.
pub fn service_rule<'a>(settings: &'a Settings, service_id: &str) -> Option<&'a AccessRule> {
    let service = settings.mcp_services.get(service_id)?;
    service.access.as_ref().or(settings.access.as_ref())
}

/// Whether `user` may use service `service_id`.
pub fn may_use_service(settings: &Settings, service_id: &str, user: &UserInfo) -> bool {
    service_rule(settings, service_id).is_none_or(|rule| passes(rule, user))
}

/// The tools of service `service_id` whose `tool_access` rule `user` does not pass, in name
/// order.
pub fn denied_tools(settings: &Settings, service_id: &str, user: &UserInfo) -> Vec<String> {
    let Some(service) = settings.mcp_services.get(service_id) else { return Vec::new() };
    service.tool_access.iter().filter(|(_, rule)| !passes(rule, user)).map(|(tool, _)| tool.clone()).collect()
}

/// Whether `user` matches any entry of `rule`.
pub fn passes(rule: &AccessRule, user: &UserInfo) -> bool {
    // A machine client acting for itself (`client:{id}`) passes only by name: it has no email
    // or memberships, and no person's entry may let it in.
    if user.provider == CLIENT_PROVIDER {
        return rule.clients.iter().any(|c| c == &user.sub);
    }
    let facts = &user.memberships;
    let email = user.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
    let email_domain = email.and_then(|e| e.rsplit_once('@')).map(|(_, domain)| domain);
    let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
    rule.emails.iter().any(|wanted| email.is_some_and(|e| same(wanted, e)))
        || rule.domains.iter().any(|wanted| {
            let wanted = wanted.trim().trim_start_matches('@');
            email_domain.is_some_and(|d| same(wanted, d))
                || facts.hosted_domain.as_deref().is_some_and(|d| same(wanted, d))
        })
        || rule.groups.iter().any(|wanted| facts.groups.iter().any(|g| g == wanted.trim()))
        || rule.github_orgs.iter().any(|wanted| facts.github_orgs.iter().any(|o| same(wanted, o)))
        || rule.github_teams.iter().any(|wanted| facts.github_teams.iter().any(|t| same(wanted, t)))
}

/// Whether any rule of `settings` names GitHub organizations or teams: then the GitHub
/// provider asks for `read:org` and reads the person's memberships at login.
pub fn uses_github(settings: &Settings) -> bool {
    rules(settings).any(AccessRule::uses_github)
}

/// Every rule in `settings`: the default, each service's, each tool's.
fn rules(settings: &Settings) -> impl Iterator<Item = &AccessRule> {
    let services = settings.mcp_services.values();
    settings.access.iter().chain(services.flat_map(|s| s.access.iter().chain(s.tool_access.values())))
}

/// What startup says about services nobody restricted: with a real provider, everyone who has
/// an account there (for Google or GitHub, everyone) may use them. `None` when every service
/// has a rule, or with the `dev` provider (which only runs on loopback anyway).
pub fn open_services_warning(settings: &Settings) -> Option<String> {
    let (kind, _) = settings.provider()?;
    if kind == ProviderKind::Dev {
        return None;
    }
    let open: Vec<&str> = settings
        .mcp_services
        .iter()
        .filter(|(id, s)| s.auth_required && service_rule(settings, id).is_none())
        .map(|(id, _)| id.as_str())
        .collect();
    if open.is_empty() {
        return None;
    }
    Some(format!(
        "no access rule for service(s) {}: anyone with an account at the {kind} provider can use \
         them; set `access` (see README, Access control)",
        open.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Memberships;

    fn user(email: Option<&str>, memberships: Memberships) -> UserInfo {
        let mut user = UserInfo::new("oidc", "s");
        user.email = email.map(str::to_owned);
        user.memberships = memberships;
        user
    }

    fn rule(json: serde_json::Value) -> AccessRule {
        serde_json::from_value(json).unwrap_or_default()
    }

    #[test]
    fn emails_match_without_regard_to_case_and_only_when_known() {
        let r = rule(serde_json::json!({"emails": ["Alice@Example.com"]}));
        assert!(passes(&r, &user(Some("alice@example.COM"), Memberships::default())));
        assert!(!passes(&r, &user(Some("bob@example.com"), Memberships::default())));
        assert!(!passes(&r, &user(None, Memberships::default())), "an unverified email is none");
    }

    #[test]
    fn domains_match_the_email_domain_exactly_or_the_hosted_domain() {
        let r = rule(serde_json::json!({"domains": ["example.com"]}));
        assert!(passes(&r, &user(Some("ann@EXAMPLE.com"), Memberships::default())));
        assert!(!passes(&r, &user(Some("ann@sub.example.com"), Memberships::default())));
        assert!(!passes(&r, &user(Some("ann@evilexample.com"), Memberships::default())));
        assert!(!passes(&r, &user(Some("example.com@evil.org"), Memberships::default())));
        assert!(!passes(&r, &user(None, Memberships::default())));
        let hd = Memberships { hosted_domain: Some("example.com".into()), ..Memberships::default() };
        assert!(passes(&r, &user(None, hd)), "Google's hd is a verified domain");
    }

    #[test]
    fn groups_are_exact_and_github_names_are_case_insensitive() {
        let facts = Memberships {
            groups: vec!["staff".into()],
            github_orgs: vec!["Acme".into()],
            github_teams: vec!["acme/Platform".into()],
            ..Memberships::default()
        };
        let alice = user(None, facts);
        assert!(passes(&rule(serde_json::json!({"groups": ["staff"]})), &alice));
        assert!(!passes(&rule(serde_json::json!({"groups": ["Staff"]})), &alice));
        assert!(passes(&rule(serde_json::json!({"github_orgs": ["acme"]})), &alice));
        assert!(passes(&rule(serde_json::json!({"github_teams": ["ACME/platform"]})), &alice));
        assert!(!passes(&rule(serde_json::json!({"github_teams": ["acme/other"]})), &alice));
        assert!(!passes(&rule(serde_json::json!({"github_orgs": ["acme/platform"]})), &alice));
        assert!(!passes(&AccessRule::default(), &alice), "an empty rule admits nobody");
    }

    fn settings() -> Settings {
        let value = serde_json::json!({
            "oauth_providers": {"google": {}},
            "access": {"domains": ["example.com"]},
            "mcp_services": {
                "calc": {"name": "C", "url": "http://c", "access": {"groups": ["finance"]},
                         "tool_access": {"wipe": {"emails": ["root@example.com"]}, "add": {"domains": ["example.com"]}}},
                "docs": {"name": "D", "url": "http://d"},
            },
        });
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_service_rule_replaces_the_default_and_tools_add_to_it() {
        let s = settings();
        let ann = user(Some("ann@example.com"), Memberships::default());
        assert!(may_use_service(&s, "docs", &ann));
        assert!(!may_use_service(&s, "calc", &ann), "calc's own rule replaces the default");
        let finance = Memberships { groups: vec!["finance".into()], ..Memberships::default() };
        let bob = user(Some("bob@other.org"), finance);
        assert!(may_use_service(&s, "calc", &bob) && !may_use_service(&s, "docs", &bob));
        assert_eq!(denied_tools(&s, "calc", &bob), ["add", "wipe"]);
        assert_eq!(denied_tools(&s, "calc", &ann), ["wipe"]);
        assert!(denied_tools(&s, "docs", &bob).is_empty());
        assert!(!uses_github(&s));
    }

    #[test]
    fn without_rules_everyone_passes_and_startup_warns() {
        let mut s = settings();
        s.access = None;
        let anyone = user(None, Memberships::default());
        assert!(may_use_service(&s, "docs", &anyone));
        let warning = open_services_warning(&s).unwrap_or_default();
        assert!(
            warning.contains("docs") && !warning.contains("calc") && warning.contains("google"),
            "{warning}"
        );
        s.oauth_providers = serde_json::from_value(serde_json::json!({"dev": {}})).unwrap_or_default();
        assert_eq!(open_services_warning(&s), None, "dev is loopback-only and anyone anyway");
    }
}
