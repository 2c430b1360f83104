//! Shared fixtures for the services' unit tests.

use std::sync::Arc;

use crate::config::Settings;
use crate::core::model::{AccessClaims, AuthCode, UserInfo};
use crate::core::store::MemoryStore;

/// Default settings with a fixed issuer and one service.
pub fn settings() -> Arc<Settings> {
    let value = serde_json::json!({
        "session_secret": "test-secret-0123456789abcdef0123456789abcdef",
        "issuer": "http://gw.test",
        "mcp_services": { "svc": { "name": "Service", "url": "http://127.0.0.1:9/mcp" } },
    });
    match serde_json::from_value(value) {
        Ok(settings) => Arc::new(settings),
        Err(e) => panic!("test settings: {e}"),
    }
}

/// A fresh memory store.
pub fn memory() -> MemoryStore {
    MemoryStore::new()
}

/// A code record of client `c1` for `svc`, starting family `family_id`.
pub fn auth_code(family_id: &str) -> AuthCode {
    let mut user = UserInfo::new("dev", "alice");
    user.email = Some("alice@example.com".into());
    AuthCode {
        client_id: "c1".into(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        code_challenge: "challenge".into(),
        service_id: "svc".into(),
        resource: "http://gw.test/svc/mcp".into(),
        scope: "read write".into(),
        user,
        family_id: family_id.into(),
        expires_at: 0,
        upstream: None,
    }
}

/// Access-token claims of issuer `http://gw` for `aud`, expiring at `exp`.
pub fn access_claims(aud: &str, exp: i64) -> AccessClaims {
    AccessClaims {
        iss: "http://gw".into(),
        sub: "dev_alice".into(),
        aud: aud.into(),
        exp,
        iat: exp - 3600,
        jti: "j1".into(),
        fid: "f1".into(),
        client_id: "c1".into(),
        scope: "read".into(),
        email: Some("a@example.com".into()),
        name: None,
        provider: "dev".into(),
        avatar: None,
        denied_tools: Vec::new(),
    }
}
