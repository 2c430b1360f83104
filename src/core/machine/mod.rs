//! Clients that are not people's applications: the operator's pre-registered clients
//! ([`configured`]), how they prove who they are with a signed JWT instead of a secret
//! ([`assertion`], RFC 7523 `private_key_jwt`), where their public keys come from ([`jwks`]),
//! the identity assertion grants of enterprise identity providers ([`id_jag`]), and the access
//! tokens issued to them directly, without a browser or a refresh token
//! ([`direct`]).

pub mod assertion;
pub mod client_auth;
pub mod configured;
pub mod direct;
pub mod id_jag;
pub mod jwks;
