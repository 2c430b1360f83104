//! The authorization server: metadata, registration, authorization, consent, callback,
//! token, revocation and introspection endpoints, and the pieces they share.

pub mod authorize;
pub mod callback;
pub mod cimd;
pub mod consent;
pub mod cookies;
pub mod introspect;
pub mod jwt;
pub mod metadata;
pub mod model;
pub mod pkce;
pub mod redirect_uri;
pub mod register;
pub mod resource;
pub mod revoke;
pub mod token;

/// Registers every authorization-server route, and the gateway's information endpoints
/// (`crate::info`), which must come before the proxy's catch-all `/{service}/mcp`.
pub fn routes(cfg: &mut actix_web::web::ServiceConfig) {
    crate::info::routes(cfg);
    metadata::routes(cfg);
    register::routes(cfg);
    authorize::routes(cfg);
    consent::routes(cfg);
    callback::routes(cfg);
    token::routes(cfg);
    revoke::routes(cfg);
    introspect::routes(cfg);
}
