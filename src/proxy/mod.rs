//! `/{service}/mcp`: bearer check, header rules, streaming forward.
//! TODO(proxy): implemented by the proxy work.

/// Registers `/{service}/mcp`.
pub fn routes(_cfg: &mut actix_web::web::ServiceConfig) {}
