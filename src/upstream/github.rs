//! GitHub is OAuth 2.0 without OIDC: the person is read from the REST API. `/user` gives the
//! numeric `id` (the subject), `login`, `name` and `avatar_url`; its `email` is null when the
//! person keeps their address private, and then `/user/emails` gives the primary verified one.

use serde::Deserialize;
use serde_json::Value;

use crate::core::model::UserInfo;

use super::claims::{object, user_from_claims};
use super::{http, UpstreamError};

/// Where the GitHub API lives (overridable through `userinfo_url`, e.g. GitHub Enterprise).
pub struct GitHubApi {
    user_url: url::Url,
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
        GitHubApi { user_url }
    }

    fn emails_url(&self) -> String {
        format!("{}/emails", self.user_url.as_str().trim_end_matches('/'))
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
