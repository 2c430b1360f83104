//! The one upstream identity provider users log in with.
//! TODO(upstream): the provider implementations land with the upstream work; this file fixes
//! the API the authorization endpoints use.

use crate::config::Settings;
use crate::oauth::model::{UpstreamLogin, UserInfo};

/// Why the upstream leg failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Settings are unusable (bad URL, missing field).
    #[error("configuration: {0}")]
    Config(String),
    /// The provider could not be reached or answered with an error.
    #[error("provider request failed: {0}")]
    Request(String),
    /// The provider's answer was refused (bad ID token, missing subject).
    #[error("provider response rejected: {0}")]
    Rejected(String),
}

/// What to keep between sending the browser upstream and the callback.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// PKCE verifier of the upstream leg.
    pub pkce_verifier: String,
    /// OIDC nonce, when the provider is OIDC.
    pub nonce: Option<String>,
}

/// The configured provider.
pub struct Upstream {
    kind: String,
}

impl Upstream {
    /// Builds the provider from settings (OIDC providers run discovery here).
    pub async fn from_settings(settings: &Settings) -> Result<Self, UpstreamError> {
        let kind = settings.provider().map(|(k, _)| k.to_owned()).unwrap_or_default();
        Ok(Upstream { kind })
    }

    /// Provider kind: `google`, `github`, `okta`, `custom`, `oidc` or `dev`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Fresh PKCE verifier and nonce for one login.
    pub fn prepare(&self) -> Prepared {
        Prepared { pkce_verifier: crate::secret::random_token(32), nonce: None }
    }

    /// The URL to send the browser to, carrying `state` and the PKCE challenge of `prepared`.
    pub fn authorize_url(&self, _state: &str, _prepared: &Prepared) -> String {
        String::new()
    }

    /// Exchanges the upstream `code` and reads who logged in.
    pub async fn complete(&self, _code: &str, _login: &UpstreamLogin) -> Result<UserInfo, UpstreamError> {
        Err(UpstreamError::Config("upstream providers not implemented yet".into()))
    }
}

/// Routes of the upstream leg (the `dev` provider's login page).
pub fn routes(_cfg: &mut actix_web::web::ServiceConfig) {}
