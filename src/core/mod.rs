//! The ground floor: everything the gateway knows about OAuth and MCP sessions, with no HTTP
//! framework in it. Plain structs and async methods, unit-tested directly.
//!
//! - [`audit`], [`metrics`]: the audit trail's lines and the Prometheus metrics.
//! - [`clock`], [`revocation`]: time and the local revocation set the proxy checks.
//! - [`model`]: the records and their storage key schema; [`error`]: the OAuth error codes.
//! - [`store`]: the storage port (key-value trait, revocation broadcast, in-process store).
//! - [`jwt`], [`signing_keys`]: access-token signing and verification, and the shared key set.
//! - The services: [`clients`] (registry, with [`cimd`] metadata documents), [`codes`]
//!   (pending authorizations and codes), [`tokens`] (issuing, rotation, revocation),
//!   [`consent`] (remembered consent) and [`mcp_sessions`] (session → user bindings).
//! - [`access`]: the access rules, matched against what the provider said of a person.
//! - [`machine`]: configured clients, signed client assertions and their keys, and tokens
//!   issued without a browser.

pub mod access;
pub mod audit;
pub mod cimd;
pub mod clients;
pub mod clock;
pub mod codes;
pub mod consent;
pub mod drain;
pub mod error;
pub mod jwt;
pub mod machine;
pub mod mcp_sessions;
pub mod metrics;
pub mod model;
pub mod pkce;
pub mod rate;
pub mod redirect_uri;
pub mod revocation;
pub mod signing_keys;
pub mod store;
pub mod tokens;
pub mod upstream_grant;

#[cfg(test)]
pub(crate) mod testing;

pub use clock::Clock;
pub use error::OAuthError;
pub use revocation::{Revocation, RevocationSet};
