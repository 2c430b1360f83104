//! The acceptance suite every backend runs (style guide item 5); public so the backend tests
//! under `tests/` reach it. Each test takes a fresh, empty store; keys are unique per call so
//! backends shared between tests do not collide.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Revocations, Store, StoreError};
use crate::core::revocation::{Revocation, RevocationSet};

/// Runs every check against `store`; `prefix` keeps keys apart between runs.
pub async fn run_all<S: Store + Revocations>(store: Arc<S>, prefix: &str) -> Result<(), StoreError> {
    put_get_delete(&*store, prefix).await?;
    take_is_single_use(&*store, prefix).await?;
    concurrent_takes_yield_one(store.clone(), prefix).await?;
    put_if_absent_only_once(&*store, prefix).await?;
    ttl_expires(&*store, prefix).await?;
    keys_by_prefix(&*store, prefix).await?;
    revocations_fan_out(&*store, &*store, prefix).await?;
    store.ping().await
}

/// A revocation published on `publisher` reaches a set watched through `watcher` (another
/// connection to the same backend, or the same store) within a second, and one published
/// before the watch started is caught up.
pub async fn revocations_fan_out<S: Revocations>(
    publisher: &S,
    watcher: &S,
    p: &str,
) -> Result<(), StoreError> {
    let far = i64::MAX / 4;
    let early = Revocation { id: format!("{p}:rev-early"), until: far };
    publisher.publish_revocation(&early).await?;
    let set = RevocationSet::default();
    watcher.watch_revocations(set.clone());
    let late = Revocation { id: format!("{p}:rev-late"), until: far };
    // Give the watcher its first read, so `late` is really delivered as news.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let published = Instant::now();
    publisher.publish_revocation(&late).await?;
    while !(set.contains(&early.id) && set.contains(&late.id)) {
        assert!(published.elapsed() < Duration::from_secs(1), "revocation not seen within a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn keys_by_prefix<S: Store>(s: &S, p: &str) -> Result<(), StoreError> {
    let (a, b, other) = (format!("{p}:list:a"), format!("{p}:list:b:x"), format!("{p}:lisT:c"));
    for k in [&a, &b, &other] {
        s.put(k, b"v".to_vec(), Some(Duration::from_secs(60))).await?;
    }
    let mut found = s.keys(&format!("{p}:list:")).await?;
    found.sort();
    assert_eq!(found, [a.clone(), b.clone()]);
    s.delete(&a).await?;
    assert_eq!(s.keys(&format!("{p}:list:")).await?, std::slice::from_ref(&b));
    // Characters that are patterns to some backends are plain here.
    let starred = format!("{p}:li*t?[x]:");
    s.put(&format!("{starred}1"), b"v".to_vec(), None).await?;
    assert_eq!(s.keys(&starred).await?, [format!("{starred}1")]);
    for k in [b, other, format!("{starred}1")] {
        s.delete(&k).await?;
    }
    Ok(())
}

async fn put_get_delete<S: Store>(s: &S, p: &str) -> Result<(), StoreError> {
    let k = format!("{p}:pgd");
    s.put(&k, b"one".to_vec(), None).await?;
    assert_eq!(s.get(&k).await?.as_deref(), Some(&b"one"[..]));
    s.put(&k, b"two".to_vec(), None).await?;
    assert_eq!(s.get(&k).await?.as_deref(), Some(&b"two"[..]));
    s.delete(&k).await?;
    assert_eq!(s.get(&k).await?, None);
    s.delete(&k).await
}

async fn take_is_single_use<S: Store>(s: &S, p: &str) -> Result<(), StoreError> {
    let k = format!("{p}:take");
    s.put(&k, b"v".to_vec(), Some(Duration::from_secs(60))).await?;
    assert_eq!(s.take(&k).await?.as_deref(), Some(&b"v"[..]));
    assert_eq!(s.take(&k).await?, None);
    assert_eq!(s.get(&k).await?, None);
    Ok(())
}

async fn concurrent_takes_yield_one<S: Store>(s: Arc<S>, p: &str) -> Result<(), StoreError> {
    let k = format!("{p}:race");
    s.put(&k, b"v".to_vec(), Some(Duration::from_secs(60))).await?;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (s, k) = (s.clone(), k.clone());
            async move { s.take(&k).await }
        })
        .collect();
    let results = futures_util::future::join_all(tasks).await;
    let mut wins = 0;
    for r in results {
        if r?.is_some() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one concurrent take wins");
    Ok(())
}

async fn put_if_absent_only_once<S: Store>(s: &S, p: &str) -> Result<(), StoreError> {
    let k = format!("{p}:pia");
    s.delete(&k).await?;
    assert!(s.put_if_absent(&k, b"a".to_vec(), Some(Duration::from_secs(60))).await?);
    assert!(!s.put_if_absent(&k, b"b".to_vec(), Some(Duration::from_secs(60))).await?);
    assert_eq!(s.get(&k).await?.as_deref(), Some(&b"a"[..]));
    s.delete(&k).await
}

async fn ttl_expires<S: Store>(s: &S, p: &str) -> Result<(), StoreError> {
    let k = format!("{p}:ttl");
    s.put(&k, b"v".to_vec(), Some(Duration::from_millis(1100))).await?;
    assert!(s.get(&k).await?.is_some());
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(s.get(&k).await?, None, "expired entries read as absent");
    assert_eq!(s.take(&k).await?, None);
    Ok(())
}
