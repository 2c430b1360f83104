//! Signing keys kept in the storage backend, so every gateway instance signs and verifies
//! with the same set: created once at first start ([`load_signing_keys`]), extended by
//! `mcp-gateway rotate-keys` ([`rotate_in`]), and re-read by each running instance every
//! [`KEY_POLL`] ([`refresh_keys`], driven by the storage supervisor).
//!
//! A rotated-in key starts signing [`KEY_ACTIVATION_DELAY`] seconds after the rotation, well
//! past one poll, so by the time any instance signs with it every instance verifies it. Old
//! keys stay in the set until every token they signed has expired.

use std::time::Duration;

use super::jwt::{active_kid, KeyRing, SigningKeys, StoredKey, LEEWAY_SECS};
use super::model::keys;
use super::store::{json, Store, StoreError};

/// Why the key set could not be loaded or extended.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A key could not be made, or the stored set is unusable.
    #[error("signing keys: {0}")]
    Invalid(String),
    /// Another process changed the set at the same moment.
    #[error("{0}")]
    Conflict(&'static str),
}

/// The server secret refresh-token successors are derived with (`HMAC(secret, old token)`),
/// shared through the store like the signing keys so every instance derives the same
/// successor (the grace window's identical pair), and unknown to anyone holding old tokens.
#[derive(Clone)]
pub struct RotationKey(std::sync::Arc<[u8]>);

impl std::fmt::Debug for RotationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotationKey([redacted])")
    }
}

impl RotationKey {
    /// A key from raw bytes (tests; the gateway loads its key with [`load_rotation_key`]).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        RotationKey(bytes.into())
    }

    /// The refresh token that replaces `old`.
    pub fn successor(&self, old: &str) -> String {
        crate::secret::hmac_b64(&self.0, old.as_bytes())
    }
}

/// The rotation key kept in `backend`, created if absent (instances starting at once agree,
/// as for the signing keys).
pub async fn load_rotation_key<S: Store>(backend: &S) -> Result<RotationKey, KeyError> {
    let stored = shared_secret(backend, &keys::rotation_key(), "rotation key").await?;
    Ok(RotationKey(stored.into_bytes().into()))
}

/// The server secret `what` kept under `key` in `backend`, created if absent: only one
/// `put_if_absent` wins, and instances starting at once read the winner's.
pub async fn shared_secret<S: Store>(backend: &S, key: &str, what: &'static str) -> Result<String, KeyError> {
    let fresh = crate::secret::random_token(32);
    let stored = if json::put_if_absent(backend, key, &fresh, None).await? {
        fresh
    } else {
        json::get::<_, String>(backend, key)
            .await?
            .ok_or_else(|| KeyError::Invalid(format!("the {what} vanished while starting")))?
    };
    if stored.len() < 32 {
        return Err(KeyError::Invalid(format!("the stored {what} is too short")));
    }
    Ok(stored)
}

/// How often a running instance re-reads the stored key set.
pub const KEY_POLL: Duration = Duration::from_secs(2);
/// Seconds between a rotation and the moment the new key starts signing: several polls, so
/// every instance knows the key before any token signed with it exists.
pub const KEY_ACTIVATION_DELAY: i64 = 10;
/// Extra seconds a retired key is kept past the last token it can have signed.
const RETIRE_MARGIN: i64 = 60;

/// What [`rotate_in`] did, for the CLI to print.
#[derive(Debug, Clone)]
pub struct KeyRotation {
    /// Id of the new key.
    pub kid: String,
    /// Unix time from which it signs.
    pub signs_from: i64,
    /// Ids of the keys in the stored set now, oldest first.
    pub kept: Vec<String>,
    /// Ids of old keys dropped because every token they signed has expired.
    pub retired: Vec<String>,
}

/// The signing key set kept in `backend`, created if absent. Several instances starting at
/// once agree: only one `put_if_absent` wins and the others read the winner's set.
pub async fn load_signing_keys<S: Store>(
    backend: &S,
    issuer: &str,
    now: i64,
) -> Result<SigningKeys, KeyError> {
    let key = keys::signing_keys();
    let stored = match json::get::<_, Vec<StoredKey>>(backend, &key).await? {
        Some(existing) => existing,
        None => {
            let fresh = vec![StoredKey::generate(now).map_err(|e| KeyError::Invalid(e.to_string()))?];
            if json::put_if_absent(backend, &key, &fresh, None).await? {
                log::info!("created a new signing key");
                fresh
            } else {
                json::get(backend, &key)
                    .await?
                    .ok_or(KeyError::Conflict("signing keys vanished while starting"))?
            }
        }
    };
    SigningKeys::new_at(issuer, stored, now).map_err(|e| KeyError::Invalid(e.to_string()))
}

/// Re-reads the stored key set and puts it in `ring` when the keys, or the key that should
/// sign at `now`, changed. Returns whether the ring changed. A missing stored set leaves the
/// ring alone. Keys are only ever added on a running instance: a key that left the store (a
/// store that lost its data, then another instance made a new set) keeps verifying for
/// `retain_secs` (an access token's lifetime plus margins), until every token it can have
/// signed has expired.
pub async fn refresh_keys<S: Store>(
    backend: &S,
    ring: &KeyRing,
    issuer: &str,
    now: i64,
    retain_secs: i64,
) -> Result<bool, StoreError> {
    let Some(stored) = json::get::<_, Vec<StoredKey>>(backend, &keys::signing_keys()).await? else {
        return Ok(false);
    };
    let current = ring.current();
    let in_store = |kid: &str| stored.iter().any(|k| k.kid == kid);
    let mut retained: Vec<(StoredKey, i64)> =
        current.retained().iter().filter(|(k, until)| *until > now && !in_store(&k.kid)).cloned().collect();
    let gone: Vec<&StoredKey> = current.stored().iter().filter(|k| !in_store(&k.kid)).collect();
    for key in &gone {
        log::warn!(
            "signing key {} is no longer in the store; it keeps verifying for {retain_secs} s",
            key.kid
        );
        retained.push(((*key).clone(), now.saturating_add(retain_secs)));
    }
    let same_keys = kids(current.stored()) == kids(&stored) && retained.len() == current.retained().len();
    if same_keys && active_kid(&stored, now).as_deref() == Some(current.active_kid()) {
        return Ok(false);
    }
    let fresh = SigningKeys::with_retained(issuer, stored, retained, now)
        .map_err(|e| StoreError::Corrupt(format!("stored signing keys: {e}")))?;
    log::info!("signing keys updated: {} key(s), key {} signs", fresh.stored().len(), fresh.active_kid());
    ring.replace(fresh);
    Ok(true)
}

/// How long a key that left the store keeps verifying: the longest an access token it signed
/// can still be live.
pub fn retention_secs(access_ttl: u64) -> i64 {
    crate::core::clock::secs(access_ttl).saturating_add(LEEWAY_SECS + RETIRE_MARGIN)
}

fn kids(keys: &[StoredKey]) -> Vec<&str> {
    keys.iter().map(|k| k.kid.as_str()).collect()
}

/// `mcp-gateway rotate-keys` on an already connected backend at time `now`: adds a new
/// signing key that every running instance picks up within [`KEY_POLL`] and signs with from
/// [`KEY_ACTIVATION_DELAY`] seconds on. Tokens signed with older keys keep verifying until they
/// expire; keys whose tokens have all expired are dropped.
pub async fn rotate_in<S: Store>(backend: &S, access_ttl: u64, now: i64) -> Result<KeyRotation, KeyError> {
    let key = keys::signing_keys();
    let existing: Option<Vec<StoredKey>> = json::get(backend, &key).await?;
    let first = existing.is_none();
    // The very first key may sign at once: no instance can hold tokens of another yet.
    let signs_from = if first { now } else { now + KEY_ACTIVATION_DELAY };
    let fresh = StoredKey::generate(signs_from).map_err(|e| KeyError::Invalid(e.to_string()))?;
    let (mut kept, retired) = retire(existing.unwrap_or_default(), access_ttl, now);
    kept.push(fresh.clone());
    let written = if first {
        json::put_if_absent(backend, &key, &kept, None).await?
    } else {
        json::put(backend, &key, &kept, None).await?;
        true
    };
    if !written {
        return Err(KeyError::Conflict("a gateway created the first key meanwhile; run rotate-keys again"));
    }
    log::info!("added signing key {} (signs from {signs_from})", fresh.kid);
    Ok(KeyRotation {
        kid: fresh.kid,
        signs_from,
        kept: kept.iter().map(|k| k.kid.clone()).collect(),
        retired: retired.iter().map(|k| k.kid.clone()).collect(),
    })
}

/// Splits `keys` into those still needed and those whose every token has expired: a key
/// stopped signing when its successor became due, and its last tokens expire an access
/// token lifetime (plus leeway and a margin for slow polls) after that.
fn retire(mut keys: Vec<StoredKey>, access_ttl: u64, now: i64) -> (Vec<StoredKey>, Vec<StoredKey>) {
    keys.sort_by_key(|k| k.created_at);
    let lifetime = i64::try_from(access_ttl).unwrap_or(i64::MAX / 4) + LEEWAY_SECS + RETIRE_MARGIN;
    let successors: Vec<Option<i64>> =
        keys.iter().skip(1).map(|k| Some(k.created_at)).chain([None]).collect();
    let (mut kept, mut retired) = (Vec::new(), Vec::new());
    for (key, next) in keys.into_iter().zip(successors) {
        match next {
            Some(replaced_at) if replaced_at <= now && replaced_at + lifetime < now => retired.push(key),
            _ => kept.push(key),
        }
    }
    (kept, retired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::MemoryStore;

    fn key(kid: &str, created_at: i64) -> StoredKey {
        StoredKey { kid: kid.into(), pem: String::new(), created_at }
    }

    #[test]
    fn only_keys_whose_tokens_all_expired_are_retired() {
        // a replaced by b at 1000, b by c at 9000; tokens live 3600 s (+ leeway + margin).
        let keys = vec![key("c", 9000), key("a", 0), key("b", 1000)];
        let last = 1000 + 3600 + LEEWAY_SECS + RETIRE_MARGIN;
        let (kept, retired) = retire(keys.clone(), 3600, last);
        assert_eq!((kids(&kept), kids(&retired)), (vec!["a", "b", "c"], vec![]));
        let (kept, retired) = retire(keys.clone(), 3600, last + 1);
        assert_eq!((kids(&kept), kids(&retired)), (vec!["b", "c"], vec!["a"]));
        let (kept, _) = retire(keys, 3600, 1_000_000);
        assert_eq!(kids(&kept), vec!["c"], "the newest key always stays");
    }

    #[tokio::test]
    async fn rotation_adds_a_pending_key_that_instances_pick_up() -> Result<(), KeyError> {
        let backend = MemoryStore::new();
        let first = load_signing_keys(&backend, "http://gw", 1000).await?;
        let old_kid = first.active_kid().to_owned();
        let ring = KeyRing::new(first);
        let rotation = rotate_in(&backend, 3600, 2000).await?;
        assert_eq!(rotation.signs_from, 2000 + KEY_ACTIVATION_DELAY);
        assert_eq!(rotation.kept, vec![old_kid.clone(), rotation.kid.clone()]);

        assert!(refresh_keys(&backend, &ring, "http://gw", 2001, 3600).await?);
        assert_eq!(ring.current().stored().len(), 2, "the new key verifies at once");
        assert_eq!(ring.current().active_kid(), old_kid, "but does not sign yet");
        assert!(!refresh_keys(&backend, &ring, "http://gw", 2002, 3600).await?);
        assert!(refresh_keys(&backend, &ring, "http://gw", 2000 + KEY_ACTIVATION_DELAY, 3600).await?);
        assert_eq!(ring.current().active_kid(), rotation.kid);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn instances_starting_together_agree_on_one_signing_key() -> Result<(), KeyError> {
        let backend = MemoryStore::new();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let backend = backend.clone();
                tokio::spawn(async move { load_signing_keys(&backend, "http://gw.test", 1000).await })
            })
            .collect();
        let mut kids = std::collections::BTreeSet::new();
        for task in tasks {
            let keys = task.await.map_err(|e| KeyError::Invalid(e.to_string()))??;
            kids.insert(keys.stored().iter().map(|k| k.kid.clone()).collect::<Vec<_>>());
        }
        assert_eq!(kids.len(), 1, "every instance loaded the same key set");
        let again = load_signing_keys(&backend, "http://gw.test", 2000).await?;
        assert!(kids.contains(&again.stored().iter().map(|k| k.kid.clone()).collect::<Vec<_>>()));
        Ok(())
    }

    #[tokio::test]
    async fn keys_that_leave_the_store_keep_verifying_until_their_tokens_expire() -> Result<(), KeyError> {
        let backend = MemoryStore::new();
        let first = load_signing_keys(&backend, "http://gw", 1000).await?;
        let claims = crate::core::testing::access_claims("http://gw/a/mcp", 1000 + 3600);
        let token = first.sign(&claims).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let ring = KeyRing::new(first);

        // The store loses its data and another instance starts: a new key set appears.
        backend.delete(&keys::signing_keys()).await?;
        let second = load_signing_keys(&backend, "http://gw", 1100).await?;
        assert!(refresh_keys(&backend, &ring, "http://gw", 1100, 3700).await?);
        assert_eq!(ring.current().active_kid(), second.active_kid(), "the new key signs");
        assert!(ring.verify_any_audience(&token, 1200).is_ok(), "the old key still verifies");
        assert!(!refresh_keys(&backend, &ring, "http://gw", 1200, 3700).await?, "nothing new");

        // Once every token of the old key has expired, it goes.
        assert!(refresh_keys(&backend, &ring, "http://gw", 1100 + 3701, 3700).await?);
        assert!(ring.current().retained().is_empty());
        assert_eq!(ring.current().stored().len(), 1);
        Ok(())
    }
}
