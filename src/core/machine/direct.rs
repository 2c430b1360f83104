//! Access tokens issued straight from the token endpoint, with no authorization code and no
//! refresh token: the client credentials grant (the subject is the client itself) and the
//! identity assertion grant (the subject is a person vouched for by a trusted issuer).
//!
//! They are the same JWTs as every other access token (one audience, the gateway's keys,
//! revocable by `jti`), so the proxy needs nothing new. RFC 6749 §4.4.3 says a refresh token
//! SHOULD NOT be issued here: the client can always ask again, with the same proof. Each
//! token is a family of its own, so revoking it touches nothing else.

use crate::core::access::CLIENT_PROVIDER;
use crate::core::clock::secs;
use crate::core::jwt::KeyRing;
use crate::core::model::{AccessClaims, Memberships, TokenResponse, UserInfo};
use crate::core::OAuthError;
use crate::secret::random_token;

/// What a directly issued token says.
#[derive(Debug, Clone)]
pub struct DirectGrant {
    /// Whom the token speaks for.
    pub subject: UserInfo,
    /// The authenticated client.
    pub client_id: String,
    /// Canonical resource URI of the one service (the `aud`).
    pub resource: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Tools of the service its `tool_access` rules keep from the subject.
    pub denied_tools: Vec<String>,
}

/// The `x-user-id` of a client acting for itself: `client:{id}` (configured client ids hold no
/// `:`, and provider user ids are `{kind}_{sub}`, so it cannot be mistaken for a person).
pub fn client_subject(client_id: &str, name: &str) -> UserInfo {
    UserInfo {
        id: format!("client:{client_id}"),
        sub: client_id.to_owned(),
        email: None,
        name: Some(name.to_owned()),
        avatar: None,
        provider: CLIENT_PROVIDER.into(),
        memberships: Memberships::default(),
    }
}

/// Signs the access token of `grant`, valid `ttl` seconds from `now`.
pub fn issue(
    keys: &KeyRing,
    issuer: &str,
    ttl: u64,
    now: i64,
    grant: DirectGrant,
) -> Result<TokenResponse, OAuthError> {
    let claims = AccessClaims {
        iss: issuer.to_owned(),
        sub: grant.subject.id,
        aud: grant.resource,
        exp: now + secs(ttl),
        iat: now,
        jti: random_token(16),
        fid: random_token(16),
        client_id: grant.client_id,
        scope: grant.scope,
        email: grant.subject.email,
        name: grant.subject.name,
        provider: grant.subject.provider,
        avatar: grant.subject.avatar,
        denied_tools: grant.denied_tools,
    };
    let access_token = keys.sign(&claims).map_err(OAuthError::internal)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: secs(ttl),
        scope: claims.scope.clone(),
        refresh_token: String::new(),
        claims: Some(claims),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::jwt::SigningKeys;

    #[test]
    fn a_client_token_names_the_client_and_has_no_refresh_token() -> Result<(), OAuthError> {
        let keys = KeyRing::new(SigningKeys::generate("http://gw", 1000).map_err(OAuthError::internal)?);
        let grant = DirectGrant {
            subject: client_subject("ci-bot", "CI bot"),
            client_id: "ci-bot".into(),
            resource: "http://gw/calc/mcp".into(),
            scope: "read".into(),
            denied_tools: vec!["wipe".into()],
        };
        let t = issue(&keys, "http://gw", 600, 1000, grant)?;
        let body = serde_json::to_value(&t).map_err(OAuthError::internal)?;
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(t.claims.as_ref().map(|c| c.denied_tools.clone()), Some(vec!["wipe".to_owned()]));
        let claims =
            keys.verify(&t.access_token, "http://gw/calc/mcp", 1100).map_err(OAuthError::internal)?;
        assert_eq!((claims.sub.as_str(), claims.provider.as_str()), ("client:ci-bot", "client"));
        assert_eq!((claims.name.as_deref(), claims.email), (Some("CI bot"), None));
        assert_eq!(t.expires_in, 600);
        Ok(())
    }
}
