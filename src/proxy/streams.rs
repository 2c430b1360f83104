//! How many SSE streams one token may hold open (issue 13, item 8: one token opened 200).
//!
//! What counts: `GET` requests, the Streamable HTTP transport's long-lived server-to-client
//! stream (a resumed stream is a `GET` too). Only there is the stream's life the client's to
//! choose, and only a request can be refused before anything reaches the backend: a `POST`
//! that the backend answers with `text/event-stream` has already run by the time the gateway
//! sees its content type, and it ends with its JSON-RPC response. So a `GET` takes a slot
//! before it is forwarded (429 past `limits.max_streams_per_token`), keeps it while its answer
//! streams, and gives it back the moment the answer turns out not to be an event stream, when
//! the stream ends, or when the client goes away (the slot lives in the response body, which
//! actix drops on disconnect).
//!
//! Counted per token family (`fid`), not per access token (`jti`): a client refreshes for a
//! new `jti` whenever it likes, which would multiply the cap; a family is one authorization of
//! one user for one service and survives refreshes. A token without `fid` counts by `jti`.
//!
//! Per process: a multi-instance deployment allows the cap on each instance. The table is
//! process-wide rather than per worker because a client's streams land on any worker.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll};

use actix_web::http::Method;
use futures_util::Stream;
use prometheus::IntGauge;

use super::error::ProxyError;
use crate::core::model::AccessClaims;

/// Open streams by token family, in this process. One mutex: it is taken twice per stream (open
/// and close), never per event and never for a `POST`, and held for one map update; entries
/// are removed when their count reaches zero, so the map holds only families with open streams.
static OPEN: LazyLock<StreamTable> = LazyLock::new(StreamTable::default);

/// Counts of open streams by family.
#[derive(Default)]
pub struct StreamTable {
    open: Mutex<HashMap<Box<str>, usize>>,
}

impl StreamTable {
    /// A slot for `family` if it holds fewer than `cap` streams.
    fn acquire(&'static self, family: &str, cap: usize) -> Option<StreamSlot> {
        // A panic elsewhere cannot leave the map half-updated (each use is one map call).
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        match open.get_mut(family) {
            Some(held) if *held >= cap => return None,
            Some(held) => *held += 1,
            None => {
                open.insert(family.into(), 1);
            }
        }
        Some(StreamSlot { table: self, family: family.into() })
    }

    fn release(&self, family: &str) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = open.get_mut(family) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.remove(family);
            }
        }
    }

    #[cfg(test)]
    fn held(&self, family: &str) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).get(family).copied().unwrap_or(0)
    }
}

/// One open stream; dropping it frees the slot.
pub struct StreamSlot {
    table: &'static StreamTable,
    family: Box<str>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.table.release(&self.family);
    }
}

/// The slot a request must hold while its answer streams: `None` for anything but an
/// authenticated `GET`, or when `cap` is 0 (no limit); 429 when the family is at its cap.
pub fn reserve(
    method: &Method,
    user: Option<&AccessClaims>,
    cap: usize,
) -> Result<Option<StreamSlot>, ProxyError> {
    match user {
        Some(claims) if cap > 0 && method == Method::GET => take(&OPEN, claims, cap).map(Some),
        _ => Ok(None),
    }
}

fn take(table: &'static StreamTable, claims: &AccessClaims, cap: usize) -> Result<StreamSlot, ProxyError> {
    let family = if claims.fid.is_empty() { &claims.jti } else { &claims.fid };
    table.acquire(family, cap).ok_or_else(|| {
        log::warn!("user '{}': refused a stream past the cap of {cap} open streams per token", claims.sub);
        ProxyError::TooManyStreams(cap)
    })
}

/// A response body that holds a stream slot until it ends or is dropped.
pub struct Held<B> {
    body: B,
    _slot: StreamSlot,
}

impl<B> Held<B> {
    /// `body`, holding `slot`.
    pub fn new(body: B, slot: StreamSlot) -> Self {
        Held { body, _slot: slot }
    }
}

impl<B: Stream + Unpin> Stream for Held<B> {
    type Item = B::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// A response body counted in a gauge (open event streams) for as long as it lives.
pub struct Gauged<B> {
    body: B,
    gauge: Option<IntGauge>,
}

impl<B> Gauged<B> {
    /// `body`, counted in `gauge` if any.
    pub fn new(body: B, gauge: Option<IntGauge>) -> Self {
        if let Some(gauge) = &gauge {
            gauge.inc();
        }
        Gauged { body, gauge }
    }
}

impl<B> Drop for Gauged<B> {
    fn drop(&mut self) {
        if let Some(gauge) = &self.gauge {
            gauge.dec();
        }
    }
}

impl<B: Stream + Unpin> Stream for Gauged<B> {
    type Item = B::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, fid: &str) -> AccessClaims {
        AccessClaims {
            iss: "http://gw".into(),
            sub: "dev_alice".into(),
            aud: "http://gw/a/mcp".into(),
            exp: 0,
            iat: 0,
            jti: jti.into(),
            fid: fid.into(),
            client_id: "c".into(),
            scope: String::new(),
            email: None,
            name: None,
            provider: "dev".into(),
            avatar: None,
            denied_tools: Vec::new(),
        }
    }

    fn table() -> &'static StreamTable {
        Box::leak(Box::default())
    }

    #[test]
    fn a_family_holds_at_most_its_cap_and_empty_entries_go() {
        let table = table();
        let first = take(table, &claims("j1", "f"), 2);
        // A refreshed token (new jti, same family) shares the count.
        let second = take(table, &claims("j2", "f"), 2);
        assert!(first.is_ok() && second.is_ok());
        assert!(matches!(take(table, &claims("j3", "f"), 2), Err(ProxyError::TooManyStreams(2))));
        assert!(take(table, &claims("j1", "other"), 2).is_ok(), "another family is unaffected");
        drop(first);
        assert_eq!(table.held("f"), 1);
        let third = take(table, &claims("j3", "f"), 2);
        assert!(third.is_ok());
        drop((second, third));
        assert!(table.open.lock().unwrap_or_else(PoisonError::into_inner).is_empty(), "no entry left");
    }

    #[test]
    fn only_authenticated_gets_take_a_slot() {
        let alice = claims("j", "reserve-test");
        assert!(matches!(reserve(&Method::POST, Some(&alice), 1), Ok(None)));
        assert!(matches!(reserve(&Method::GET, None, 1), Ok(None)));
        assert!(matches!(reserve(&Method::GET, Some(&alice), 0), Ok(None)), "0 is no limit");
        let slot = reserve(&Method::GET, Some(&alice), 1);
        assert!(matches!(slot, Ok(Some(_))));
        assert!(reserve(&Method::GET, Some(&alice), 1).is_err());
        drop(slot);
        assert!(matches!(reserve(&Method::GET, Some(&alice), 1), Ok(Some(_))));
    }

    #[test]
    fn a_token_without_family_counts_by_its_id() {
        let table = table();
        let slot = take(table, &claims("only-jti", ""), 1);
        assert!(slot.is_ok());
        assert_eq!(table.held("only-jti"), 1);
    }
}
