//! Vault authentication: building clients for a token, AppRole login, and the background tasks
//! that renew the token or log in again before the lease ends.

use std::sync::{Arc, Weak};
use std::time::Duration;

use secrecy::ExposeSecret;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

use super::errors::classify;
use super::{Inner, VaultStore};
use crate::config::VaultSettings;
use crate::core::store::StoreError;

impl VaultStore {
    /// Keeps the token alive: AppRole logs in again before its lease ends; a renewable
    /// `token` renews itself at half its TTL. A root or non-renewable token needs nothing.
    pub(super) async fn start_token_upkeep(&self, approle_lease: Option<u64>) {
        let weak = Arc::downgrade(&self.inner);
        match approle_lease {
            Some(0) => {}
            Some(lease) => {
                tokio::spawn(relogin_loop(weak, lease));
            }
            None => match vaultrs::token::lookup_self(&*self.client()).await {
                Ok(me) if me.renewable == Some(true) && me.ttl > 0 => {
                    tokio::spawn(renew_loop(weak, me.ttl));
                }
                Ok(_) => {}
                Err(e) => log::warn!("Vault token lookup failed, not renewing it: {}", classify(e)),
            },
        }
    }
}

/// Seconds to wait before refreshing a lease of `lease` seconds: two thirds of it, at least 1.
fn refresh_after(lease: u64) -> Duration {
    Duration::from_secs((lease * 2 / 3).max(1))
}

async fn renew_loop(weak: Weak<Inner>, mut ttl: u64) {
    loop {
        tokio::time::sleep(refresh_after(ttl)).await;
        let Some(inner) = weak.upgrade() else { return };
        let client = VaultStore { inner }.client();
        match vaultrs::token::renew_self(&*client, None).await {
            Ok(auth) if auth.lease_duration > 0 => ttl = auth.lease_duration,
            Ok(_) => return,
            Err(e) => {
                log::warn!("Vault token renewal failed: {}", classify(e));
                ttl = 3;
            }
        }
    }
}

async fn relogin_loop(weak: Weak<Inner>, mut lease: u64) {
    loop {
        tokio::time::sleep(refresh_after(lease)).await;
        let Some(inner) = weak.upgrade() else { return };
        match relogin(&inner).await {
            Ok(next) => lease = next.max(1),
            Err(e) => {
                log::warn!("Vault AppRole login failed: {e}");
                lease = 3;
            }
        }
    }
}

/// Logs in with AppRole again and swaps in a client carrying the new token.
async fn relogin(inner: &Inner) -> Result<u64, StoreError> {
    let anonymous = new_client(&inner.settings, None)?;
    let auth = approle_login(&anonymous, &inner.settings).await?;
    let client = new_client(&inner.settings, Some(&auth.client_token))?;
    *inner.client.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(client);
    Ok(auth.lease_duration)
}

pub(super) async fn approle_login(
    client: &VaultClient,
    s: &VaultSettings,
) -> Result<vaultrs::api::AuthInfo, StoreError> {
    let (Some(role_id), Some(secret_id)) = (&s.role_id, &s.secret_id) else {
        return Err(StoreError::Backend(
            "storage.vault.role_id and secret_id are required for auth_method approle".into(),
        ));
    };
    let mount = s.approle_mount.trim_matches('/');
    vaultrs::auth::approle::login(client, mount, role_id, secret_id.expose_secret()).await.map_err(classify)
}

/// A client for `settings.url`; `token` overrides the configured one (AppRole).
pub(super) fn new_client(settings: &VaultSettings, token: Option<&str>) -> Result<VaultClient, StoreError> {
    // vaultrs panics on an address it cannot parse: check it first.
    let url = url::Url::parse(settings.url.trim())
        .map_err(|e| StoreError::Backend(format!("invalid storage.vault.url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(StoreError::Backend("storage.vault.url must be http:// or https://".into()));
    }
    let token = match (token, &settings.token, settings.auth_method.as_str()) {
        (Some(t), _, _) => t.to_owned(),
        (None, Some(t), _) => t.expose_secret().to_owned(),
        (None, None, "token") => {
            return Err(StoreError::Backend("storage.vault.token is required for auth_method token".into()))
        }
        (None, None, _) => String::new(),
    };
    let settings = VaultClientSettingsBuilder::default()
        .address(url.as_str())
        .token(token)
        .namespace(settings.namespace.clone().filter(|n| !n.is_empty()))
        .timeout(Some(Duration::from_millis(settings.timeout_ms.max(1))))
        .build()
        .map_err(|e| StoreError::Backend(format!("invalid Vault settings: {e}")))?;
    VaultClient::new(settings).map_err(classify)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_errors_not_panics() {
        for url in ["not a url", "ftp://vault:8200", ""] {
            let settings =
                VaultSettings { url: url.into(), token: Some("t".to_owned().into()), ..Default::default() };
            assert!(matches!(new_client(&settings, None), Err(StoreError::Backend(_))), "{url}");
        }
    }
}
