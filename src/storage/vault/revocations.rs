//! Revocations shared through Vault: one entry per revocation, named by its expiry and id, and
//! the poll that lists the folder; separate because it is its own key space and background task.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::errors::{classify, is_not_found};
use super::{now_ms, Entry, Inner, VaultStore};
use crate::core::revocation::{Revocation, RevocationSet};
use crate::core::store::{Revocations, StoreError};

/// Folder, under `path_prefix`, of the revocation entries.
const REVOCATIONS_DIR: &str = "rev";
/// How often each instance lists the revocation folder.
pub(super) const REVOCATION_POLL: Duration = Duration::from_millis(500);
/// Every this many polls, moot revocation entries are deleted.
const REVOCATION_CLEANUP_EVERY: u32 = 120;

impl VaultStore {
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

    #[test]
    fn revocation_names_round_trip_and_junk_is_skipped() {
        let rev = Revocation { id: "fam/ily:1.x".into(), until: 1_700_000_000 };
        assert_eq!(parse_revocation(&revocation_name(&rev)), Some(rev));
        for junk in ["", "nodot", "x.aWQ", "12.!!!", "12./w"] {
            assert_eq!(parse_revocation(junk), None, "{junk}");
        }
    }
}
