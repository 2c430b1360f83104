//! The expiry sweep: KV v2 has no TTL, so expired entries and tombstones are deleted in short
//! rounds by a background task; separate from the store operations, which only skip dead entries.

use std::sync::Arc;
use std::time::Duration;

use super::errors::{classify, is_not_found};
use super::{now_ms, VaultStore};
use crate::core::store::StoreError;

/// Entries the sweep inspects per round, so one round stays short however big the store is.
const SWEEP_BATCH: usize = 500;

impl VaultStore {
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

    pub(super) fn start_sweeper(&self) {
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
}
