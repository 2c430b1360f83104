//! The one upstream identity provider users log in with.
//! TODO(upstream): implemented by the upstream work.

use crate::oauth::model::UserInfo;

/// The configured provider.
pub struct Upstream;

/// Upstream failure.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Anything.
    #[error("upstream: {0}")]
    Failed(String),
}

impl Upstream {
    /// Placeholder.
    pub fn user(&self) -> Option<UserInfo> {
        None
    }
}

impl Upstream {
    /// Placeholder.
    pub async fn from_settings(_s: &crate::config::Settings) -> Result<Self, UpstreamError> {
        Ok(Upstream)
    }
}

/// Routes of the upstream leg (dev login page).
pub fn routes(_cfg: &mut actix_web::web::ServiceConfig) {}
