//! Where each kind's endpoints are: fixed for google and github, discovered for okta and
//! oidc, configured for custom. `authorization_url`, `token_url` and `userinfo_url` in the
//! settings override any kind's defaults, and `scopes` its default scopes.

use crate::config::{ProviderKind, ProviderSettings};

use super::oidc::{self, OidcVerifier};
use super::UpstreamError;

/// How the person is read once the code is exchanged.
pub enum Flavor {
    /// OIDC-style claims from the userinfo endpoint.
    Userinfo,
    /// The GitHub API, `userinfo` being its `/user`.
    GitHub,
    /// A verified ID token (plus userinfo when there is one).
    Oidc(Box<OidcVerifier>),
}

/// A provider's resolved endpoints and defaults.
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub userinfo: Option<String>,
    pub scopes: Vec<String>,
    /// Send the client secret in the form body (`client_secret_post`) instead of Basic.
    pub secret_in_body: bool,
    pub flavor: Flavor,
}

const GOOGLE_AUTH: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const GOOGLE_TOKEN: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_USERINFO: &str = "https://openidconnect.googleapis.com/v1/userinfo";
const GITHUB_AUTH: &str = "https://github.com/login/oauth/authorize";
const GITHUB_TOKEN: &str = "https://github.com/login/oauth/access_token";
const GITHUB_USER: &str = "https://api.github.com/user";

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Resolves `kind` (the `oauth_providers` key) with `settings`; okta and oidc run discovery.
pub async fn resolve(kind: ProviderKind, settings: &ProviderSettings) -> Result<Endpoints, UpstreamError> {
    let defaults = match kind {
        ProviderKind::Google => Endpoints {
            authorization: GOOGLE_AUTH.into(),
            token: GOOGLE_TOKEN.into(),
            userinfo: Some(GOOGLE_USERINFO.into()),
            scopes: scopes(&["openid", "email", "profile"]),
            secret_in_body: false,
            flavor: Flavor::Userinfo,
        },
        ProviderKind::GitHub => Endpoints {
            authorization: GITHUB_AUTH.into(),
            token: GITHUB_TOKEN.into(),
            userinfo: Some(GITHUB_USER.into()),
            scopes: scopes(&["read:user", "user:email"]),
            // GitHub documents the secret as a form parameter.
            secret_in_body: true,
            flavor: Flavor::GitHub,
        },
        ProviderKind::Okta | ProviderKind::Oidc => {
            discovered(&oidc_issuer(kind, settings)?, &settings.client_id).await?
        }
        ProviderKind::Custom => custom(settings)?,
        ProviderKind::Dev => {
            return Err(UpstreamError::Config("the dev provider has no remote endpoints".into()))
        }
    };
    Ok(apply_overrides(defaults, settings))
}

/// The issuer an okta or oidc provider is discovered at.
fn oidc_issuer(kind: ProviderKind, settings: &ProviderSettings) -> Result<String, UpstreamError> {
    let configured = settings.issuer.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let domain = settings.domain.as_deref().map(str::trim).filter(|s| !s.is_empty());
    match (configured, kind, domain) {
        (Some(issuer), _, _) => Ok(issuer.trim_end_matches('/').to_owned()),
        (None, ProviderKind::Okta, Some(domain)) => {
            let host = domain.trim_start_matches("https://").trim_end_matches('/');
            Ok(format!("https://{host}"))
        }
        (None, ProviderKind::Okta, None) => {
            Err(UpstreamError::Config("okta needs `domain` or `issuer`".into()))
        }
        _ => Err(UpstreamError::Config("oidc needs `issuer`".into())),
    }
}

async fn discovered(issuer: &str, client_id: &str) -> Result<Endpoints, UpstreamError> {
    let doc = oidc::discover(issuer).await?;
    let secret_in_body = doc.prefers_secret_in_body();
    let verifier = OidcVerifier::load(&doc, client_id).await?;
    Ok(Endpoints {
        authorization: doc.authorization_endpoint,
        token: doc.token_endpoint,
        userinfo: doc.userinfo_endpoint,
        scopes: scopes(&["openid", "email", "profile"]),
        secret_in_body,
        flavor: Flavor::Oidc(Box::new(verifier)),
    })
}

fn custom(settings: &ProviderSettings) -> Result<Endpoints, UpstreamError> {
    let required = |v: &Option<String>, name: &str| {
        v.clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| UpstreamError::Config(format!("custom needs `{name}`")))
    };
    Ok(Endpoints {
        authorization: required(&settings.authorization_url, "authorization_url")?,
        token: required(&settings.token_url, "token_url")?,
        userinfo: Some(required(&settings.userinfo_url, "userinfo_url")?),
        scopes: scopes(&["openid", "email", "profile"]),
        secret_in_body: false,
        flavor: Flavor::Userinfo,
    })
}

fn apply_overrides(mut ep: Endpoints, settings: &ProviderSettings) -> Endpoints {
    let set = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    if let Some(url) = set(&settings.authorization_url) {
        ep.authorization = url;
    }
    if let Some(url) = set(&settings.token_url) {
        ep.token = url;
    }
    if let Some(url) = set(&settings.userinfo_url) {
        ep.userinfo = Some(url);
    }
    if !settings.scopes.is_empty() {
        ep.scopes = settings.scopes.clone();
    }
    ep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: serde_json::Value) -> ProviderSettings {
        serde_json::from_value(yaml).unwrap_or_default()
    }

    #[actix_web::test]
    async fn google_has_fixed_endpoints_and_overrides_win() -> Result<(), UpstreamError> {
        let ep = resolve(ProviderKind::Google, &settings(serde_json::json!({"client_id": "c"}))).await?;
        assert_eq!(ep.authorization, GOOGLE_AUTH);
        assert_eq!(ep.userinfo.as_deref(), Some(GOOGLE_USERINFO));
        assert_eq!(ep.scopes, ["openid", "email", "profile"]);
        let ep = resolve(
            ProviderKind::Google,
            &settings(serde_json::json!({"client_id": "c", "token_url": "http://t", "scopes": ["openid"]})),
        )
        .await?;
        assert_eq!(ep.token, "http://t");
        assert_eq!(ep.scopes, ["openid"]);
        Ok(())
    }

    #[actix_web::test]
    async fn custom_needs_its_urls_and_unknown_kinds_fail() {
        let err = resolve(ProviderKind::Custom, &settings(serde_json::json!({"client_id": "c"}))).await;
        assert!(matches!(err, Err(UpstreamError::Config(_))));
        assert!(matches!(
            resolve(ProviderKind::Dev, &ProviderSettings::default()).await,
            Err(UpstreamError::Config(_))
        ));
        assert!(matches!(
            resolve(ProviderKind::Oidc, &ProviderSettings::default()).await,
            Err(UpstreamError::Config(_))
        ));
        assert!(matches!(
            resolve(ProviderKind::Okta, &ProviderSettings::default()).await,
            Err(UpstreamError::Config(_))
        ));
    }

    #[test]
    fn okta_domain_becomes_an_https_issuer() -> Result<(), UpstreamError> {
        let s = settings(serde_json::json!({"domain": "dev-1.okta.com"}));
        assert_eq!(oidc_issuer(ProviderKind::Okta, &s)?, "https://dev-1.okta.com");
        let s =
            settings(serde_json::json!({"domain": "dev-1.okta.com", "issuer": "https://x/oauth2/default/"}));
        assert_eq!(oidc_issuer(ProviderKind::Okta, &s)?, "https://x/oauth2/default");
        Ok(())
    }
}
