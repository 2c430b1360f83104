//! Vault / OpenBao backend on a KV v2 mount.
//!
//! Each key is one secret at `{path_prefix}/k{base64url(key)}` (base64url keeps `/`, `:` and
//! anything else KV paths dislike out of the path). KV v2 has no TTL, so a secret holds
//! `{"v": base64(value) | null, "exp_ms": unix_millis | null}`: an expired entry reads as
//! absent and a background sweep deletes it. KV v2 cannot delete conditionally, so the atomic
//! operations use check-and-set writes instead: `take` overwrites the version it read with a
//! tombstone (`v: null`) under `cas = version`, and only one concurrent taker's write is
//! accepted; `put_if_absent` writes with `cas = 0` (or on the version of a dead entry).
//!
//! Revocations are secrets named `{until}.{base64url(id)}` in the folder `{path_prefix}/rev`:
//! every instance lists that folder every [`REVOCATION_POLL`](revocations::REVOCATION_POLL) and
//! takes what is new from the names alone (one LIST per poll, no reads). Entries past `until` are
//! deleted now and then by whichever instance notices (deleting twice is harmless).

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequestOptions};
use vaultrs::client::VaultClient;

use crate::config::VaultSettings;
use crate::core::store::{Store, StoreError};

use self::auth::{approle_login, new_client};
use self::errors::{classify, is_cas_mismatch, is_not_found};

mod auth;
mod errors;
mod revocations;
mod sweep;

/// The Vault backend. Cloning shares the client and its background tasks, which stop once
/// the last clone is dropped.
#[derive(Clone)]
pub struct VaultStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Swapped whole when AppRole logs in again; a std lock is enough because it is only
    /// held to clone the `Arc`, never across an `.await`.
    client: RwLock<Arc<VaultClient>>,
    mount: String,
    prefix: String,
    settings: VaultSettings,
    /// Last key the sweep inspected; the next round continues after it.
    sweep_cursor: Mutex<String>,
}

/// What a secret holds: the value (`None` in a tombstone) and its expiry.
#[derive(Serialize, Deserialize)]
struct Entry {
    v: Option<String>,
    exp_ms: Option<u64>,
}

impl Entry {
    fn live(&self, now_ms: u64) -> bool {
        self.v.is_some() && self.exp_ms.is_none_or(|e| e > now_ms)
    }
}

impl VaultStore {
    /// Logs in, checks the mount answers within `timeout_ms`, and starts the token renewal
    /// and expiry sweep tasks (on the current tokio runtime).
    pub async fn connect(settings: &VaultSettings) -> Result<Self, StoreError> {
        let client = new_client(settings, None)?;
        let lease = match settings.auth_method.as_str() {
            "token" => None,
            "approle" => Some(approle_login(&client, settings).await?),
            other => {
                return Err(StoreError::Backend(format!(
                    "storage.vault.auth_method '{other}' is not supported (token, approle)"
                )))
            }
        };
        let client = match &lease {
            Some(auth) => new_client(settings, Some(&auth.client_token))?,
            None => client,
        };
        let store = VaultStore {
            inner: Arc::new(Inner {
                client: RwLock::new(Arc::new(client)),
                mount: settings.mount_point.trim_matches('/').to_owned(),
                prefix: settings.path_prefix.trim_matches('/').to_owned(),
                settings: settings.clone(),
                sweep_cursor: Mutex::new(String::new()),
            }),
        };
        store.ping().await.map_err(|e| match e {
            StoreError::Unavailable(why) => {
                StoreError::Unavailable(format!("cannot reach Vault at {}: {why}", settings.url))
            }
            other => other,
        })?;
        store.start_token_upkeep(lease.map(|a| a.lease_duration)).await;
        store.start_sweeper();
        Ok(store)
    }

    fn client(&self) -> Arc<VaultClient> {
        self.inner.client.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn path(&self, key: &str) -> String {
        // The leading `k` keeps the empty key from becoming a folder path ending in '/'.
        self.under_prefix(&format!("k{}", URL_SAFE_NO_PAD.encode(key.as_bytes())))
    }

    fn under_prefix(&self, name: &str) -> String {
        if self.inner.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.inner.prefix)
        }
    }

    /// Reads the secret at `path` with its version; `None` when there is none.
    async fn read(&self, path: &str) -> Result<Option<(u64, Entry)>, StoreError> {
        let request = ReadSecretRequest::builder()
            .mount(self.inner.mount.as_str())
            .path(path)
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        match vaultrs::api::exec_with_result(&*self.client(), request).await {
            Ok(res) if res.data.is_null() => Ok(None),
            Ok(res) => {
                let entry = serde_json::from_value(res.data)
                    .map_err(|e| StoreError::Corrupt(format!("Vault entry: {e}")))?;
                Ok(Some((res.metadata.version, entry)))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    /// Writes `entry`; with `cas`, only if the secret is at that version (0: does not exist).
    /// Returns the new version, or `None` when the check-and-set lost.
    async fn write(&self, path: &str, entry: &Entry, cas: Option<u64>) -> Result<Option<u64>, StoreError> {
        let client = self.client();
        let mount = self.inner.mount.as_str();
        let result = match cas {
            None => vaultrs::kv2::set(&*client, mount, path, entry).await,
            Some(version) => {
                let cas = u32::try_from(version)
                    .map_err(|_| StoreError::Backend("Vault secret version out of range".into()))?;
                let options = SetSecretRequestOptions { cas };
                vaultrs::kv2::set_with_options(&*client, mount, path, entry, options).await
            }
        };
        match result {
            Ok(meta) => Ok(Some(meta.version)),
            Err(e) if cas.is_some() && is_cas_mismatch(&e) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    /// Deletes the secret and its history.
    async fn remove(&self, path: &str) -> Result<(), StoreError> {
        match vaultrs::kv2::delete_metadata(&*self.client(), &self.inner.mount, path).await {
            Err(e) if !is_not_found(&e) => Err(classify(e)),
            _ => Ok(()),
        }
    }

    /// Deletes the secret only while it is still at `version`. KV v2 has no conditional
    /// delete, so this re-reads the version first: it narrows, but cannot close, the window in
    /// which a write of the same key just before the delete is lost. Keys written again
    /// right after they die are rare here (codes and tokens are random).
    async fn remove_if_version(&self, path: &str, version: u64) -> Result<(), StoreError> {
        match vaultrs::kv2::read_metadata(&*self.client(), &self.inner.mount, path).await {
            Ok(meta) if meta.current_version == version => self.remove(path).await,
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    /// Whether any secret (live, expired or tombstone) exists for `key`: lets tests and
    /// diagnostics see what the sweep left behind.
    pub async fn has_entry(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.path(key);
        match vaultrs::kv2::read_metadata(&*self.client(), &self.inner.mount, &path).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn expiry(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|t| now_ms().saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)))
}

fn decode(entry: &Entry) -> Result<Vec<u8>, StoreError> {
    let v = entry.v.as_deref().unwrap_or_default();
    STANDARD.decode(v).map_err(|e| StoreError::Corrupt(format!("Vault entry value: {e}")))
}

impl Store for VaultStore {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), StoreError> {
        let entry = Entry { v: Some(STANDARD.encode(value)), exp_ms: expiry(ttl) };
        self.write(&self.path(key), &entry, None).await.map(drop)
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let path = self.path(key);
        // A dead entry (expired or taken) still has versions; replace it on its version.
        let cas = match self.read(&path).await? {
            None => 0,
            Some((_, entry)) if entry.live(now_ms()) => return Ok(false),
            Some((version, _)) => version,
        };
        let entry = Entry { v: Some(STANDARD.encode(value)), exp_ms: expiry(ttl) };
        Ok(self.write(&path, &entry, Some(cas)).await?.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.read(&self.path(key)).await? {
            Some((_, entry)) if entry.live(now_ms()) => decode(&entry).map(Some),
            _ => Ok(None),
        }
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key);
        let Some((version, entry)) = self.read(&path).await? else { return Ok(None) };
        if !entry.live(now_ms()) {
            return Ok(None);
        }
        let value = decode(&entry)?;
        // Only one writer on `version` succeeds: that taker owns the value.
        let tombstone = Entry { v: None, exp_ms: Some(now_ms()) };
        let Some(dead) = self.write(&path, &tombstone, Some(version)).await? else { return Ok(None) };
        if let Err(e) = self.remove_if_version(&path, dead).await {
            // The tombstone already reads as absent; the sweep removes it later.
            log::debug!("Vault: tombstone left for the sweep: {e}");
        }
        Ok(Some(value))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.remove(&self.path(key)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Reading a key that does not exist checks reachability, token, mount and policy.
        self.read(&self.path("\u{0}ping")).await.map(drop)
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // One LIST of the folder; names are `k` + base64url(key), so the prefix is matched on
        // the decoded keys. Dead entries the sweep has not removed yet are listed too.
        let listed = vaultrs::kv2::list(&*self.client(), &self.inner.mount, &self.inner.prefix).await;
        let names = match listed {
            Ok(names) => names,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(classify(e)),
        };
        let decoded = names.iter().filter_map(|n| n.strip_prefix('k')).filter_map(|encoded| {
            let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
            String::from_utf8(bytes).ok()
        });
        Ok(decoded.filter(|k| k.starts_with(prefix)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_and_expired_entries_are_dead() {
        let live = Entry { v: Some("dg==".into()), exp_ms: Some(2_000) };
        assert!(live.live(1_999));
        assert!(!live.live(2_000), "expiry is exclusive");
        assert!(Entry { v: Some("dg==".into()), exp_ms: None }.live(u64::MAX));
        assert!(!Entry { v: None, exp_ms: None }.live(0), "a tombstone never reads");
    }
}
