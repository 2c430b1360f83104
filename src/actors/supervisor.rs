//! TODO(actors): implemented by the actors work.
use actix::prelude::*;
/// Storage supervisor actor.
pub struct StorageSupervisor;
impl Actor for StorageSupervisor {
    type Context = Context<Self>;
}

/// Placeholder until the actors land: starts empty actors on memory.
pub async fn start(
    settings: std::sync::Arc<crate::config::Settings>,
    clock: crate::state::Clock,
    _revoked: crate::state::RevocationSet,
) -> Result<(super::Actors, std::sync::Arc<crate::oauth::jwt::SigningKeys>), crate::startup::StartupError> {
    let keys = crate::oauth::jwt::SigningKeys::generate(&settings.issuer, clock.now())
        .map_err(|e| crate::startup::StartupError::Storage(e.to_string()))?;
    let actors = super::Actors {
        clients: super::ClientRegistry.start(),
        codes: super::AuthCodes.start(),
        tokens: super::Tokens.start(),
        sessions: super::Sessions.start(),
        supervisor: StorageSupervisor.start(),
    };
    Ok((actors, std::sync::Arc::new(keys)))
}
