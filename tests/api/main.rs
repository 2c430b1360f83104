//! Black-box tests: the whole gateway on port 0, a test identity provider and a test MCP
//! backend, all on 127.0.0.1 and stopped when each test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Support code is shared by many test modules; not every module uses every helper.
#![allow(dead_code)]

mod access;
mod account;
mod admin;
mod attacks_browser;
mod attacks_limits;
mod attacks_proxy;
mod attacks_streams;
mod attacks_tokens;
mod audit;
mod authorize;
mod backend;
mod backend_tls;
mod cimd;
mod flow;
mod helpers;
mod idjag;
mod idp;
mod info;
mod latency;
mod machine;
mod metadata;
mod metrics;
mod proxy;
mod readiness;
mod recheck;
mod register;
mod revoke_introspect;
#[path = "../support/servers.rs"]
mod servers;
mod sessions;
mod smoke;
mod stepup;
mod switches;
mod token;
mod upstream;
mod wire;
