//! The authorization server: metadata, registration, authorization, consent, callback,
//! token, revocation and introspection endpoints, and the pieces they share.

pub mod account;
pub mod authorize;
pub mod callback;
pub mod client_credentials;
pub mod consent;
pub mod cookies;
pub mod dev_login;
pub mod id_jag;
pub mod introspect;
pub mod metadata;
pub mod register;
pub mod resource;
pub mod respond;
pub mod revoke;
pub mod target;
pub mod token;

/// Registers every authorization-server route (including the dev provider's login page).
pub fn routes(cfg: &mut actix_web::web::ServiceConfig) {
    metadata::routes(cfg);
    register::routes(cfg);
    authorize::routes(cfg);
    consent::routes(cfg);
    callback::routes(cfg);
    token::routes(cfg);
    revoke::routes(cfg);
    introspect::routes(cfg);
    dev_login::routes(cfg);
    account::routes(cfg);
}
