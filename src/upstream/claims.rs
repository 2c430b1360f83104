//! Provider claims → [`UserInfo`]. The subject ends up in the `x-user-id` header sent to
//! backends, so it must be non-empty, bounded and free of control characters.

use serde_json::{Map, Value};

use crate::core::model::UserInfo;

use super::UpstreamError;

/// Longest subject, email, name or picture URL accepted from a provider.
const MAX_CLAIM_LEN: usize = 512;

/// Maps OIDC-style claims (`sub`, `email`, `name`, `picture`) to a user of `kind`.
///
/// Non-OIDC providers are met halfway: `id` stands in for a missing `sub`, `preferred_username`
/// or `login` for a missing `name`, `avatar_url` for a missing `picture`. An email counts only
/// when the claims say `email_verified: true`: backends may trust `x-user-email`, and an
/// address the provider never checked proves nothing (anyone can type anyone's address at a
/// provider that does not verify). Providers that verify without saying so (GitHub) add the
/// claim where their API guarantees it.
pub fn user_from_claims(kind: &str, claims: &Value) -> Result<UserInfo, UpstreamError> {
    let sub = claim_id(claims, "sub")
        .or_else(|| claim_id(claims, "id"))
        .ok_or_else(|| UpstreamError::Rejected("provider gave no subject".into()))?;
    if sub.is_empty() || sub.len() > MAX_CLAIM_LEN || sub.chars().any(char::is_control) {
        return Err(UpstreamError::Rejected("provider subject is not usable".into()));
    }
    let mut user = UserInfo::new(kind, &sub);
    let verified = claims.get("email_verified").is_some_and(|v| v == &Value::Bool(true) || v == "true");
    user.email = if verified { text(claims, "email") } else { None };
    user.name =
        text(claims, "name").or_else(|| text(claims, "preferred_username")).or_else(|| text(claims, "login"));
    user.avatar = text(claims, "picture").or_else(|| text(claims, "avatar_url"));
    Ok(user)
}

/// The claim groups are read from when `groups_claim` is not set.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

/// Most groups kept of one person: the list is stored with every refresh token of the grant.
pub const MAX_GROUPS: usize = 256;

/// The groups in claim `name`: an array of strings (others skipped) or one string. Usable
/// values only (bounded, no control characters), at most [`MAX_GROUPS`].
pub fn groups(claims: &Value, name: &str) -> Vec<String> {
    let usable = |s: &str| !s.is_empty() && s.len() <= MAX_CLAIM_LEN && !s.chars().any(char::is_control);
    let values: Vec<&str> = match claims.get(name) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    values.into_iter().map(str::trim).filter(|s| usable(s)).take(MAX_GROUPS).map(str::to_owned).collect()
}

/// Google's `hd` claim: the Google Workspace domain of the account, which Google vouches for.
pub fn hosted_domain(claims: &Value) -> Option<String> {
    text(claims, "hd").filter(|d| !d.contains(char::is_whitespace) && !d.contains('@'))
}

/// A string or integer claim as text (GitHub and some others use numeric ids).
fn claim_id(claims: &Value, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// A non-empty, bounded string claim without control characters.
fn text(claims: &Value, name: &str) -> Option<String> {
    let s = claims.get(name)?.as_str()?.trim();
    (!s.is_empty() && s.len() <= MAX_CLAIM_LEN && !s.chars().any(char::is_control)).then(|| s.to_owned())
}

/// ID token claims overlaid with userinfo claims (usually the fuller profile). OIDC Core
/// §5.3.2: a userinfo answer about another subject is refused.
pub fn merge_userinfo(id_claims: Value, userinfo: Option<Value>) -> Result<Value, UpstreamError> {
    let Some(info) = userinfo else { return Ok(id_claims) };
    let Value::Object(info) = info else {
        return Err(UpstreamError::Rejected("userinfo is not a JSON object".into()));
    };
    let Value::Object(mut merged) = id_claims else {
        return Err(UpstreamError::Rejected("ID token claims are not an object".into()));
    };
    if info.get("sub") != merged.get("sub") {
        return Err(UpstreamError::Rejected("userinfo subject differs from the ID token's".into()));
    }
    // An address and its verification travel together: the ID token's `email_verified` says
    // nothing about another address userinfo gives.
    if info.get("email").is_some_and(|e| !e.is_null() && Some(e) != merged.get("email")) {
        merged.remove("email_verified");
    }
    for (k, v) in info {
        if !matches!(k.as_str(), "sub" | "iss" | "aud" | "exp" | "nonce") && !v.is_null() {
            merged.insert(k, v);
        }
    }
    Ok(Value::Object(merged))
}

/// The claims a recorded `user` stands for: the starting point of a re-check whose provider
/// sent no new ID token (userinfo, when there is one, is laid over it as at the login). The
/// recorded email was verified, or it would not have been kept.
pub fn of_user(user: &UserInfo, groups_claim: &str) -> Value {
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    let mut claims = object([
        ("sub", Value::String(user.sub.clone())),
        ("email", text(&user.email)),
        ("email_verified", Value::Bool(user.email.is_some())),
        ("name", text(&user.name)),
        ("picture", text(&user.avatar)),
        ("hd", text(&user.memberships.hosted_domain)),
    ]);
    if let Value::Object(map) = &mut claims {
        map.retain(|_, v| !v.is_null());
        if !user.memberships.groups.is_empty() {
            map.insert(groups_claim.to_owned(), Value::from(user.memberships.groups.clone()));
        }
    }
    claims
}

/// A claims object from pairs (GitHub mapping, tests).
pub fn object(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn oidc_claims_map_to_a_user() -> Result<(), UpstreamError> {
        let claims = json!({"sub": "123", "email": "a@x.org", "email_verified": true, "name": "Ann", "picture": "https://p/a.png"});
        let user = user_from_claims("google", &claims)?;
        assert_eq!(user.id, "google_123");
        assert_eq!(user.sub, "123");
        assert_eq!(user.provider, "google");
        assert_eq!(user.email.as_deref(), Some("a@x.org"));
        assert_eq!(user.name.as_deref(), Some("Ann"));
        assert_eq!(user.avatar.as_deref(), Some("https://p/a.png"));
        Ok(())
    }

    #[test]
    fn non_oidc_shapes_fall_back() -> Result<(), UpstreamError> {
        let claims = json!({"id": 42, "login": "ann", "avatar_url": "https://p/b.png", "email": null});
        let user = user_from_claims("custom", &claims)?;
        assert_eq!(user.id, "custom_42");
        assert_eq!(user.name.as_deref(), Some("ann"));
        assert_eq!(user.avatar.as_deref(), Some("https://p/b.png"));
        assert_eq!(user.email, None);
        Ok(())
    }

    #[test]
    fn unusable_subjects_are_refused() {
        for claims in
            [json!({}), json!({"sub": ""}), json!({"sub": "a\nb"}), json!({"sub": 1.5}), json!({"sub": null})]
        {
            assert!(matches!(user_from_claims("oidc", &claims), Err(UpstreamError::Rejected(_))), "{claims}");
        }
        let long = "x".repeat(MAX_CLAIM_LEN + 1);
        assert!(user_from_claims("oidc", &json!({ "sub": long })).is_err());
    }

    #[test]
    fn unverified_email_and_junk_values_are_dropped() -> Result<(), UpstreamError> {
        let claims =
            json!({"sub": "s", "email": "a@x.org", "email_verified": false, "name": "  ", "picture": 7});
        let user = user_from_claims("oidc", &claims)?;
        assert_eq!((user.email, user.name, user.avatar), (None, None, None));
        let claims = json!({"sub": "s", "email": "a@x.org", "email_verified": true, "name": "x\u{7}y"});
        let user = user_from_claims("oidc", &claims)?;
        assert_eq!(user.email.as_deref(), Some("a@x.org"));
        assert_eq!(user.name, None);
        // Silence is not verification.
        let user = user_from_claims("oidc", &json!({"sub": "s", "email": "a@x.org"}))?;
        assert_eq!(user.email, None);
        let user =
            user_from_claims("oidc", &json!({"sub": "s", "email": "a@x.org", "email_verified": "true"}))?;
        assert_eq!(user.email.as_deref(), Some("a@x.org"));
        Ok(())
    }

    #[test]
    fn groups_come_as_an_array_or_one_string() {
        let claims =
            json!({"groups": ["staff", 7, "", "a\u{7}b", " ops "], "roles": "finance", "hd": "example.com"});
        assert_eq!(groups(&claims, "groups"), ["staff", "ops"]);
        assert_eq!(groups(&claims, "roles"), ["finance"]);
        assert!(groups(&claims, "missing").is_empty());
        assert!(groups(&json!({"groups": {"a": 1}}), "groups").is_empty());
        let many: Vec<String> = (0..1000).map(|i| format!("g{i}")).collect();
        assert_eq!(groups(&json!({ "groups": many }), "groups").len(), MAX_GROUPS);
        assert_eq!(hosted_domain(&claims).as_deref(), Some("example.com"));
        assert_eq!(hosted_domain(&json!({"hd": "a@b"})), None);
    }

    #[test]
    fn a_recorded_user_maps_back_to_the_same_user() -> Result<(), UpstreamError> {
        let claims = json!({"sub": "s", "email": "a@x.org", "email_verified": true, "name": "Ann",
            "picture": "https://p/a.png", "roles": ["staff", "ops"]});
        let mut user = user_from_claims("oidc", &claims)?;
        user.memberships.groups = groups(&claims, "roles");
        let back = of_user(&user, "roles");
        let mut again = user_from_claims("oidc", &back)?;
        again.memberships.groups = groups(&back, "roles");
        assert_eq!(again, user);
        let bare = UserInfo::new("oidc", "s");
        assert_eq!(of_user(&bare, "groups"), json!({"sub": "s", "email_verified": false}));
        Ok(())
    }

    #[test]
    fn userinfo_overlays_id_token_but_not_its_subject() -> Result<(), UpstreamError> {
        let id = json!({"sub": "s", "iss": "i", "email": "old@x.org", "name": "Old"});
        let merged = merge_userinfo(
            id.clone(),
            Some(json!({"sub": "s", "name": "New", "picture": "p", "iss": "evil"})),
        )?;
        assert_eq!(merged["name"], "New");
        assert_eq!(merged["email"], "old@x.org");
        assert_eq!(merged["picture"], "p");
        assert_eq!(merged["iss"], "i");
        assert!(merge_userinfo(id.clone(), Some(json!({"sub": "other"}))).is_err());
        assert!(merge_userinfo(id.clone(), Some(json!({"name": "no sub"}))).is_err());
        assert_eq!(merge_userinfo(id.clone(), None)?, id);
        let verified = json!({"sub": "s", "email": "a@x.org", "email_verified": true});
        let other = merge_userinfo(verified.clone(), Some(json!({"sub": "s", "email": "b@x.org"})))?;
        assert_eq!(user_from_claims("oidc", &other)?.email, None, "b@x.org was never said to be verified");
        let same = merge_userinfo(verified, Some(json!({"sub": "s", "email": "a@x.org"})))?;
        assert_eq!(user_from_claims("oidc", &same)?.email.as_deref(), Some("a@x.org"));
        Ok(())
    }
}
