//! GitHub is OAuth 2.0 without OIDC: the person is read from the REST API. `/user` gives the
//! numeric `id` (the subject), `login`, `name` and `avatar_url`; its `email` is null when the
//! person keeps their address private, and then `/user/emails` gives the primary verified one.
//! When access rules name organizations or teams, `/user/orgs` and `/user/teams` give the
//! person's memberships (the `read:org` scope is asked for then).

use serde::Deserialize;
use serde_json::Value;

use crate::core::model::UserInfo;

use super::claims::{object, user_from_claims};
use super::{http, UpstreamError};

/// The scope that lets the gateway see organization and team memberships.
pub const READ_ORG: &str = "read:org";

/// Entries per page asked of the membership lists (GitHub's maximum).
const PER_PAGE: usize = 100;
/// Pages read of each membership list at most (1000 organizations or teams).
const MAX_PAGES: usize = 10;

/// Where the GitHub API lives (overridable through `userinfo_url`, e.g. GitHub Enterprise).
/// Everything is under the `/user` URL: `/user/emails`, `/user/orgs`, `/user/teams`.
pub struct GitHubApi {
    user_url: url::Url,
    memberships: bool,
}

/// One entry of `/user/orgs`.
#[derive(Debug, Deserialize)]
struct GitHubOrg {
    login: String,
}

/// One entry of `/user/teams`.
#[derive(Debug, Deserialize)]
struct GitHubTeam {
    slug: String,
    organization: GitHubOrg,
}

/// One entry of `/user/emails`.
#[derive(Debug, Deserialize)]
pub struct GitHubEmail {
    /// The address.
    pub email: String,
    /// Whether it is the account's primary address.
    #[serde(default)]
    pub primary: bool,
    /// Whether GitHub verified it.
    #[serde(default)]
    pub verified: bool,
}

impl GitHubApi {
    /// The API whose `/user` endpoint is `user_url`; emails are at `{user_url}/emails`.
    pub fn new(user_url: url::Url) -> Self {
        GitHubApi { user_url, memberships: false }
    }

    /// Also reads organization and team memberships at login (access rules need them).
    pub fn with_memberships(mut self, memberships: bool) -> Self {
        self.memberships = memberships;
        self
    }

    fn under_user(&self, path: &str) -> String {
        format!("{}/{path}", self.user_url.as_str().trim_end_matches('/'))
    }

    fn emails_url(&self) -> String {
        self.under_user("emails")
    }

    /// Every entry of the list at `/user/{path}`, page by page.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        access_token: &str,
    ) -> Result<Vec<T>, UpstreamError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = format!("{}?per_page={PER_PAGE}&page={page}", self.under_user(path));
            let answer = http::get_json(&url, Some(access_token)).await?;
            let entries: Vec<T> = serde_json::from_value(answer)
                .map_err(|_| UpstreamError::Request(format!("GitHub /user/{path} answer not understood")))?;
            let full = entries.len() >= PER_PAGE;
            all.extend(entries);
            if !full {
                break;
            }
        }
        Ok(all)
    }

    /// Organization logins and `org/slug` team names of the person.
    async fn read_memberships(&self, user: &mut UserInfo, access_token: &str) -> Result<(), UpstreamError> {
        let orgs: Vec<GitHubOrg> = self.list("orgs", access_token).await?;
        let teams: Vec<GitHubTeam> = self.list("teams", access_token).await?;
        user.memberships.github_orgs = orgs.into_iter().map(|o| o.login).collect();
        user.memberships.github_teams =
            teams.into_iter().map(|t| format!("{}/{}", t.organization.login, t.slug)).collect();
        Ok(())
    }

    /// Reads the person behind `access_token`.
    pub async fn user(&self, kind: &str, access_token: &str) -> Result<UserInfo, UpstreamError> {
        let profile = http::get_json(self.user_url.as_str(), Some(access_token)).await?;
        let mut user = user_from_profile(kind, &profile)?;
        if user.email.is_none() {
            let emails = http::get_json(&self.emails_url(), Some(access_token)).await?;
            let emails: Vec<GitHubEmail> = serde_json::from_value(emails)
                .map_err(|_| UpstreamError::Request("GitHub /user/emails answer not understood".into()))?;
            user.email = primary_verified(&emails);
        }
        if self.memberships {
            self.read_memberships(&mut user, access_token).await?;
        }
        Ok(user)
    }
}

/// Maps a `/user` profile: sub = `id`, name = `name` or `login`, avatar = `avatar_url`.
pub fn user_from_profile(kind: &str, profile: &Value) -> Result<UserInfo, UpstreamError> {
    let id = profile.get("id").filter(|v| v.is_u64() || v.is_string()).cloned();
    let id = id.ok_or_else(|| UpstreamError::Rejected("GitHub profile has no id".into()))?;
    let field = |name: &str| profile.get(name).cloned().unwrap_or(Value::Null);
    // The profile's public address is one GitHub verified: it only lets a verified address be
    // made public.
    let claims = object([
        ("sub", id),
        ("email", field("email")),
        ("email_verified", Value::Bool(true)),
        ("name", field("name")),
        ("login", field("login")),
        ("avatar_url", field("avatar_url")),
    ]);
    user_from_claims(kind, &claims)
}

/// The primary address if verified, else none: an unverified address proves nothing.
pub fn primary_verified(emails: &[GitHubEmail]) -> Option<String> {
    emails.iter().find(|e| e.primary && e.verified).map(|e| e.email.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn email_entry(email: &str, primary: bool, verified: bool) -> Value {
        json!({"email": email, "primary": primary, "verified": verified})
    }

    #[test]
    fn profile_maps_id_login_and_avatar() -> Result<(), UpstreamError> {
        let profile = json!({"id": 583231, "login": "octocat", "name": null, "email": null,
            "avatar_url": "https://avatars.githubusercontent.com/u/583231"});
        let user = user_from_profile("github", &profile)?;
        assert_eq!(user.id, "github_583231");
        assert_eq!(user.name.as_deref(), Some("octocat"));
        assert_eq!(user.avatar.as_deref(), Some("https://avatars.githubusercontent.com/u/583231"));
        assert_eq!(user.email, None);
        let named = json!({"id": 1, "login": "o", "name": "Octo Cat", "email": "o@x.org"});
        let user = user_from_profile("github", &named)?;
        assert_eq!((user.name.as_deref(), user.email.as_deref()), (Some("Octo Cat"), Some("o@x.org")));
        assert!(user_from_profile("github", &json!({"login": "no-id"})).is_err());
        Ok(())
    }

    #[test]
    fn only_the_primary_verified_email_counts() -> Result<(), serde_json::Error> {
        let emails: Vec<GitHubEmail> = serde_json::from_value(json!([
            email_entry("other@x.org", false, true),
            email_entry("main@x.org", true, true),
        ]))?;
        assert_eq!(primary_verified(&emails).as_deref(), Some("main@x.org"));
        let emails: Vec<GitHubEmail> =
            serde_json::from_value(json!([email_entry("main@x.org", true, false)]))?;
        assert_eq!(primary_verified(&emails), None);
        Ok(())
    }
}
