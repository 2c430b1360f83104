//! mcp-gateway: an OAuth 2.1 authorization server and streaming reverse proxy that puts login
//! in front of Model Context Protocol services.
//!
//! The binary in `main.rs` only parses the command line; everything else lives here so the
//! black-box tests in `tests/` can build the same [`startup::Application`] on port 0.

pub mod actors;
pub mod admin;
pub mod config;
pub mod core;
pub mod fetch;
pub mod info;
pub mod oauth;
pub mod proxy;
pub mod secret;
pub mod startup;
pub mod state;
pub mod storage;
pub mod upstream;
pub mod web;
