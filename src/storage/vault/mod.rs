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
//! every instance lists that folder every [`REVOCATION_POLL`] and takes what is new from the
//! names alone (one LIST per poll, no reads). Entries past `until` are deleted now and then by
//! whichever instance notices (deleting twice is harmless).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rustify::errors::ClientError as RestError;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequestOptions};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::config::VaultSettings;
use crate::core::revocation::{Revocation, RevocationSet};
use crate::core::store::{Revocations, Store, StoreError};

/// Entries the sweep inspects per round, so one round stays short however big the store is.
const SWEEP_BATCH: usize = 500;
/// Folder, under `path_prefix`, of the revocation entries.
const REVOCATIONS_DIR: &str = "rev";
/// How often each instance lists the revocation folder.
const REVOCATION_POLL: Duration = Duration::from_millis(500);
/// Every this many polls, moot revocation entries are deleted.
const REVOCATION_CLEANUP_EVERY: u32 = 120;

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

    /// One sweep round: inspects up to [`SWEEP_BATCH`] entries after the last round's
    /// cursor and deletes those expired or taken. Returns how many it deleted.
    pub async fn sweep_once(&self) -> Result<usize, StoreError> {
        let names = self.batch_to_sweep().await?;
        let now = now_ms();
        let mut removed = 0;
        for name in names {
            let path = self.under_prefix(&name);
            if let Some((version, entry)) = self.read(&path).await? {
                if !entry.live(now) {
                    self.remove_if_version(&path, version).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The next names to inspect, continuing after the cursor and wrapping around, so live
    /// entries at the start of the listing never starve the rest.
    async fn batch_to_sweep(&self) -> Result<Vec<String>, StoreError> {
        let listed = vaultrs::kv2::list(&*self.client(), &self.inner.mount, &self.inner.prefix).await;
        let mut names = match listed {
            Ok(names) => names,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(classify(e)),
        };
        // Sub-folders (names ending in '/') are not ours.
        names.retain(|n| !n.ends_with('/'));
        names.sort();
        let mut cursor = self.inner.sweep_cursor.lock().unwrap_or_else(|p| p.into_inner());
        let start = names.partition_point(|n| n.as_str() <= cursor.as_str());
        let batch: Vec<String> =
            names[start..].iter().chain(&names[..start]).take(SWEEP_BATCH).cloned().collect();
        *cursor = batch.last().cloned().unwrap_or_default();
        Ok(batch)
    }

    /// Names in the revocation folder (none when it does not exist yet).
    async fn revocation_names(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.under_prefix(REVOCATIONS_DIR);
        match vaultrs::kv2::list(&*self.client(), &self.inner.mount, &dir).await {
            Ok(names) => Ok(names),
            Err(e) if is_not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(classify(e)),
        }
    }

    /// Deletes revocation entries whose `until` has passed.
    async fn remove_moot_revocations(&self, names: &[String]) -> Result<(), StoreError> {
        // `until` is gateway-clock time, never behind the real clock: moot by the real clock
        // means moot for every instance.
        let now = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
        for name in names {
            if parse_revocation(name).is_some_and(|r| r.until < now) {
                self.remove(&self.under_prefix(&format!("{REVOCATIONS_DIR}/{name}"))).await?;
            }
        }
        Ok(())
    }

    fn start_sweeper(&self) {
        let interval = self.inner.settings.sweep_interval_secs;
        if interval == 0 {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(interval)).await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = (VaultStore { inner }).sweep_once().await {
                    log::warn!("Vault expiry sweep failed: {e}");
                }
            }
        });
    }

    /// Keeps the token alive: AppRole logs in again before its lease ends; a renewable
    /// `token` renews itself at half its TTL. A root or non-renewable token needs nothing.
    async fn start_token_upkeep(&self, approle_lease: Option<u64>) {
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

/// Lists the revocation folder every [`REVOCATION_POLL`] and hands new entries to `into`.
async fn revocation_poll_loop(weak: Weak<Inner>, into: RevocationSet) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut failing = false;
    let mut round: u32 = 0;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let store = VaultStore { inner };
        match store.revocation_names().await {
            Ok(names) => {
                if std::mem::take(&mut failing) {
                    log::info!("revocation poll reaches Vault again");
                }
                for rev in names.iter().filter(|n| !seen.contains(*n)).filter_map(|n| parse_revocation(n)) {
                    into.insert(&rev.id, rev.until);
                }
                round = round.wrapping_add(1);
                if round % REVOCATION_CLEANUP_EVERY == 0 {
                    if let Err(e) = store.remove_moot_revocations(&names).await {
                        log::debug!("Vault: moot revocations not deleted yet: {e}");
                    }
                }
                seen = names.into_iter().collect();
            }
            Err(e) if !failing => {
                log::warn!("revocation poll cannot read Vault ({e}); retrying");
                failing = true;
            }
            Err(_) => {}
        }
        drop(store);
        tokio::time::sleep(REVOCATION_POLL).await;
    }
}

/// The entry name of a revocation: `{until}.{base64url(id)}`.
fn revocation_name(rev: &Revocation) -> String {
    format!("{}.{}", rev.until, URL_SAFE_NO_PAD.encode(rev.id.as_bytes()))
}

fn parse_revocation(name: &str) -> Option<Revocation> {
    let (until, id) = name.split_once('.')?;
    let id = String::from_utf8(URL_SAFE_NO_PAD.decode(id).ok()?).ok()?;
    Some(Revocation { id, until: until.parse().ok()? })
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

async fn approle_login(
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
fn new_client(settings: &VaultSettings, token: Option<&str>) -> Result<VaultClient, StoreError> {
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

/// The HTTP status of a Vault error answer, if it was one.
fn status(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError { source: RestError::ServerResponseError { code, .. } } => Some(*code),
        _ => None,
    }
}

fn is_not_found(e: &ClientError) -> bool {
    status(e) == Some(404)
}

fn is_cas_mismatch(e: &ClientError) -> bool {
    match e {
        ClientError::APIError { code: 400, errors } => errors.iter().any(|m| m.contains("check-and-set")),
        _ => false,
    }
}

/// Unreachable, timed out, sealed or overloaded (5xx, 429) is `Unavailable`; every other
/// answer (denied, bad request) is a backend error.
fn classify(e: ClientError) -> StoreError {
    if let Some(code) = status(&e) {
        let detail = match &e {
            ClientError::APIError { errors, .. } if !errors.is_empty() => errors.join("; "),
            _ => String::new(),
        };
        let message = format!("Vault answered {code} {detail}").trim_end().to_owned();
        return if code >= 500 || code == 429 {
            StoreError::Unavailable(message)
        } else {
            StoreError::Backend(message)
        };
    }
    match &e {
        ClientError::RestClientError {
            source: source @ (RestError::RequestError { .. } | RestError::ResponseError { .. }),
        } => StoreError::Unavailable(chain(source)),
        _ => StoreError::Backend(chain(&e)),
    }
}

/// An error and its causes on one line (reqwest hides "connection refused" in the chain).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
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
}

impl Revocations for VaultStore {
    async fn publish_revocation(&self, rev: &Revocation) -> Result<(), StoreError> {
        let path = self.under_prefix(&format!("{REVOCATIONS_DIR}/{}", revocation_name(rev)));
        // The name says it all; the entry itself only has to exist.
        let entry = Entry { v: Some(String::new()), exp_ms: None };
        self.write(&path, &entry, None).await.map(drop)
    }

    fn watch_revocations(&self, into: RevocationSet) {
        tokio::spawn(revocation_poll_loop(Arc::downgrade(&self.inner), into));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, errors: &[&str]) -> ClientError {
        ClientError::APIError { code, errors: errors.iter().map(|e| e.to_string()).collect() }
    }

    #[test]
    fn tombstones_and_expired_entries_are_dead() {
        let live = Entry { v: Some("dg==".into()), exp_ms: Some(2_000) };
        assert!(live.live(1_999));
        assert!(!live.live(2_000), "expiry is exclusive");
        assert!(Entry { v: Some("dg==".into()), exp_ms: None }.live(u64::MAX));
        assert!(!Entry { v: None, exp_ms: None }.live(0), "a tombstone never reads");
    }

    #[test]
    fn errors_split_into_unavailable_and_backend() {
        assert!(matches!(classify(api(503, &["Vault is sealed"])), StoreError::Unavailable(_)));
        assert!(matches!(classify(api(429, &[])), StoreError::Unavailable(_)));
        assert!(matches!(classify(api(403, &["permission denied"])), StoreError::Backend(_)));
        let gone = ClientError::RestClientError {
            source: RestError::ServerResponseError { code: 404, content: None },
        };
        assert!(is_not_found(&gone) && is_not_found(&api(404, &[])));
        assert!(!is_not_found(&api(400, &[])));
    }

    #[test]
    fn only_a_check_and_set_refusal_is_a_lost_race() {
        let cas = api(400, &["check-and-set parameter did not match the current version"]);
        assert!(is_cas_mismatch(&cas));
        assert!(!is_cas_mismatch(&api(400, &["invalid request"])));
        assert!(!is_cas_mismatch(&api(500, &["check-and-set"])));
    }

    #[test]
    fn revocation_names_round_trip_and_junk_is_skipped() {
        let rev = Revocation { id: "fam/ily:1.x".into(), until: 1_700_000_000 };
        assert_eq!(parse_revocation(&revocation_name(&rev)), Some(rev));
        for junk in ["", "nodot", "x.aWQ", "12.!!!", "12./w"] {
            assert_eq!(parse_revocation(junk), None, "{junk}");
        }
    }

    #[test]
    fn bad_urls_are_errors_not_panics() {
        for url in ["not a url", "ftp://vault:8200", ""] {
            let settings =
                VaultSettings { url: url.into(), token: Some("t".to_owned().into()), ..Default::default() };
            assert!(matches!(new_client(&settings, None), Err(StoreError::Backend(_))), "{url}");
        }
    }
}
