//! The authorization server: metadata, registration, authorization, consent, callback,
//! token, revocation and introspection endpoints, and the pieces they share.

pub mod jwt;
pub mod model;
pub mod pkce;
pub mod redirect_uri;
pub mod resource;

/// Registers every authorization-server route.
pub fn routes(_cfg: &mut actix_web::web::ServiceConfig) {}
