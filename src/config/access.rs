//! The access-rule settings: `access` at the top (the default of every service), `access` of
//! a service (replacing that default), and `tool_access` of a service (a rule per tool). What
//! a rule means, and how it is matched, is `crate::core::access`.

use serde::{Deserialize, Serialize};

/// Who may use a service or a tool: a person passes when any one entry of any list matches.
/// A rule with every list empty would let nobody in, so validation refuses it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct AccessRule {
    /// Email addresses, compared without regard to case (only addresses the provider verified).
    pub emails: Vec<String>,
    /// Domains of a verified email address (`example.com` matches `ann@example.com`, not
    /// `ann@sub.example.com`), and Google's hosted domain (`hd`).
    pub domains: Vec<String>,
    /// Groups from the provider's groups claim (`oauth_providers.KIND.groups_claim`).
    pub groups: Vec<String>,
    /// GitHub organizations (logins) the person is a member of; github provider only.
    pub github_orgs: Vec<String>,
    /// GitHub teams as `org/team-slug`; github provider only.
    pub github_teams: Vec<String>,
    /// Configured machine clients (`clients:`) acting for themselves (client credentials).
    pub clients: Vec<String>,
}

impl AccessRule {
    /// Whether no list names anyone.
    pub fn is_empty(&self) -> bool {
        self.emails.is_empty()
            && self.domains.is_empty()
            && self.groups.is_empty()
            && self.github_orgs.is_empty()
            && self.github_teams.is_empty()
            && self.clients.is_empty()
    }

    /// Whether the rule needs the person's GitHub organizations or teams.
    pub fn uses_github(&self) -> bool {
        !self.github_orgs.is_empty() || !self.github_teams.is_empty()
    }

    /// The rule in one line, for `check-config` and the startup log:
    /// `emails [a@x.org], domains [x.org]`.
    pub fn describe(&self) -> String {
        let lists = [
            ("emails", &self.emails),
            ("domains", &self.domains),
            ("groups", &self.groups),
            ("github_orgs", &self.github_orgs),
            ("github_teams", &self.github_teams),
            ("clients", &self.clients),
        ];
        let parts: Vec<String> = lists
            .iter()
            .filter(|(_, list)| !list.is_empty())
            .map(|(name, list)| format!("{name} [{}]", list.join(", ")))
            .collect();
        parts.join(", ")
    }
}
