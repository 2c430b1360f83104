//! The clients listed under `clients:` in the configuration. They are known from startup,
//! without registration, and looked up before the store, so neither a registration nor a
//! metadata document can take one of their ids.
//!
//! A secret exists in memory only as HMAC-SHA256 under a key drawn at startup: a memory dump
//! or a debugger shows no value that could be tried offline against a dictionary without also
//! finding that key, and comparing MACs keeps the time independent of the secret's length.

use std::collections::HashMap;

use secrecy::ExposeSecret;

use super::jwks::KeySource;
use crate::config::{ClientSettings, Settings};
use crate::core::model::{Client, ClientSource};
use crate::secret::{constant_time_eq, hmac_b64, random_token};

/// Grant types of a configured client that lists none.
const DEFAULT_GRANTS: [&str; 1] = ["client_credentials"];

/// One configured client.
#[derive(Debug, Clone)]
pub struct ConfiguredClient {
    /// The record every endpoint works with (source [`ClientSource::Configured`]).
    pub client: Client,
    /// HMAC of the secret under [`ConfiguredClients`]' key, for the `client_secret_*` methods.
    secret_mac: Option<String>,
    /// Its public keys, for `private_key_jwt`.
    pub keys: KeySource,
    /// Services it may get tokens for.
    pub services: Vec<String>,
    /// Scopes it may be granted; empty: any scope of its services.
    pub scopes: Vec<String>,
}

/// Every configured client, by id.
pub struct ConfiguredClients {
    by_id: HashMap<String, ConfiguredClient>,
    mac_key: Vec<u8>,
}

impl std::fmt::Debug for ConfiguredClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfiguredClients").field("ids", &self.by_id.keys()).finish_non_exhaustive()
    }
}

impl ConfiguredClients {
    /// The clients of `settings` (already validated). A `jwks` that does not parse (which
    /// validation refuses) leaves the client without keys, so it cannot authenticate.
    pub fn from_settings(settings: &Settings, now: i64) -> Self {
        let mac_key = random_token(32).into_bytes();
        let by_id =
            settings.clients.iter().map(|(id, c)| (id.clone(), configured(id, c, &mac_key, now))).collect();
        ConfiguredClients { by_id, mac_key }
    }

    /// The configured client `id`, if any.
    pub fn get(&self, id: &str) -> Option<&ConfiguredClient> {
        self.by_id.get(id)
    }

    /// Whether `id` is a configured client's id.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Whether `secret` is the secret of `client` (constant time).
    pub fn secret_matches(&self, client: &ConfiguredClient, secret: &str) -> bool {
        let Some(expected) = client.secret_mac.as_deref() else { return false };
        constant_time_eq(&hmac_b64(&self.mac_key, secret.as_bytes()), expected)
    }

    /// Whether any configured client may use `grant`.
    pub fn any_with_grant(&self, grant: &str) -> bool {
        self.by_id.values().any(|c| c.client.grant_types.iter().any(|g| g == grant))
    }
}

fn configured(id: &str, c: &ClientSettings, mac_key: &[u8], now: i64) -> ConfiguredClient {
    let grant_types: Vec<String> = if c.grant_types.is_empty() {
        DEFAULT_GRANTS.iter().map(|g| (*g).to_owned()).collect()
    } else {
        c.grant_types.clone()
    };
    let response_types = if grant_types.iter().any(|g| g == "authorization_code") {
        vec!["code".to_owned()]
    } else {
        Vec::new()
    };
    let keys = KeySource::from_config(c.jwks.as_ref(), c.jwks_uri.as_deref());
    let secret_mac = c
        .client_secret
        .as_ref()
        .map(|s| s.expose_secret())
        .filter(|s| !s.is_empty())
        .map(|s| hmac_b64(mac_key, s.as_bytes()));
    let client = Client {
        client_id: id.to_owned(),
        client_secret_hash: None,
        client_name: Some(c.name.trim().to_owned()),
        redirect_uris: c.redirect_uris.clone(),
        token_endpoint_auth_method: c.token_endpoint_auth_method.clone(),
        grant_types,
        response_types,
        scope: (!c.scopes.is_empty()).then(|| c.scopes.join(" ")),
        application_type: Some("web".into()),
        client_uri: None,
        logo_uri: None,
        client_id_issued_at: now,
        source: ClientSource::Configured,
        last_used: now,
    };
    ConfiguredClient { client, secret_mac, keys, services: c.services.clone(), scopes: c.scopes.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> Settings {
        config::Config::builder()
            .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn secrets_are_kept_as_macs_and_compared_whole() {
        let s = settings(
            "clients:\n  bot: {name: Bot, token_endpoint_auth_method: client_secret_basic, client_secret: s3cret, services: [a]}\n",
        );
        let all = ConfiguredClients::from_settings(&s, 0);
        let bot = all.get("bot").unwrap_or_else(|| panic!("configured"));
        assert!(all.secret_matches(bot, "s3cret"));
        for wrong in ["", "s3cre", "s3cret ", "S3CRET"] {
            assert!(!all.secret_matches(bot, wrong), "{wrong}");
        }
        assert!(!format!("{all:?}").contains("s3cret"));
        assert_eq!(bot.client.grant_types, ["client_credentials"], "the default grant");
        assert_eq!(bot.client.source, ClientSource::Configured);
        assert!(all.any_with_grant("client_credentials") && !all.any_with_grant("authorization_code"));
    }
}
