//! What every handler shares, built once in [`crate::startup`] and handed to each worker as
//! `web::Data<AppState>`: handles only (`Arc`s, actor pools, cheap clones), no logic.

use std::sync::Arc;

use crate::actors::Actors;
use crate::config::Settings;
use crate::core::audit::Audit;
use crate::core::drain::Drain;
use crate::core::jwt::KeyRing;
use crate::core::mcp_sessions::SessionBindings;
use crate::core::metrics::Metrics;
use crate::core::{Clock, RevocationSet};
use crate::storage::{Backend, Limiter};
use crate::upstream::Upstream;

/// Shared application state.
#[derive(Clone)]
pub struct AppState {
    /// Validated settings; `issuer` is final (no trailing slash).
    pub settings: Arc<Settings>,
    /// Keys access tokens are signed and checked with (swapped whole on key rotation).
    pub keys: KeyRing,
    /// The one upstream identity provider.
    pub upstream: Arc<Upstream>,
    /// The gateway's clock.
    pub clock: Clock,
    /// Locally known revocations.
    pub revoked: RevocationSet,
    /// The state actors.
    pub actors: Actors,
    /// MCP session → user bindings (checklist A13), shared by every worker; read locally on
    /// the hot path, from the store only for sessions this process does not know yet.
    pub mcp_sessions: Arc<SessionBindings<Backend>>,
    /// Where rate-limit buckets live (shared through Redis, else per process).
    pub limiter: Limiter,
    /// The shutdown drain: `/ready` and open event streams watch it.
    pub drain: Drain,
    /// The audit trail (which also counts each event in `metrics`).
    pub audit: Audit,
    /// The Prometheus metrics.
    pub metrics: Metrics,
}
