//! Rate limiting: token buckets per (endpoint, client IP), the port the shared backends
//! implement, and the in-process implementation.
//!
//! A bucket holds up to `burst` tokens and refills at `per_minute / 60` a second; a request
//! takes one or is refused with the seconds until one is back. The in-process table is bounded:
//! a full bucket is the same as no bucket, so those are dropped first; a flood from more
//! addresses than the table holds resets it (logged) rather than growing without bound.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use super::store::StoreError;
use crate::config::Rate;

/// Buckets one process keeps at most.
pub const LOCAL_CAPACITY: usize = 100_000;

/// What a limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Refused; a token is back after this many seconds (at least 1).
    Limited {
        /// Seconds to wait.
        retry_after: u64,
    },
}

/// A bucket's state: tokens left and when that was computed (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens left.
    pub tokens: f64,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub fn full(rate: Rate, now_ms: i64) -> Self {
        Bucket { tokens: f64::from(rate.burst.max(1)), at_ms: now_ms }
    }

    /// Refills to `now_ms`, then takes a token if there is one.
    pub fn take(&mut self, rate: Rate, now_ms: i64) -> Decision {
        let per_ms = f64::from(rate.per_minute) / 60_000.0;
        let burst = f64::from(rate.burst.max(1));
        let elapsed = (now_ms - self.at_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * per_ms).min(burst);
        self.at_ms = now_ms.max(self.at_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Decision::Allowed;
        }
        let wait_ms = (1.0 - self.tokens) / per_ms;
        Decision::Limited { retry_after: ((wait_ms / 1000.0).ceil() as u64).max(1) }
    }

    /// Whether the bucket would be full at `now_ms` (forgetting it changes nothing).
    fn is_full(&self, rate: Rate, now_ms: i64) -> bool {
        let mut probe = *self;
        probe.take(rate, now_ms);
        probe.tokens + 1.0 >= f64::from(rate.burst.max(1))
    }
}

/// Where buckets live: this process, or a backend shared by every instance.
pub trait RateLimiter: Send + Sync + 'static {
    /// Takes a token from the bucket `key` (a namespaced endpoint and client IP).
    fn take(&self, key: &str, rate: Rate, now_ms: i64) -> impl Future<Output = Result<Decision, StoreError>>;
}

/// Buckets in this process (memory and Vault storage): limits hold per instance.
#[derive(Clone, Default)]
pub struct LocalLimiter {
    buckets: Arc<Mutex<HashMap<String, (Bucket, Rate)>>>,
}

impl LocalLimiter {
    /// Takes a token now; see [`RateLimiter::take`].
    pub fn take_now(&self, key: &str, rate: Rate, now_ms: i64) -> Decision {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= LOCAL_CAPACITY && !buckets.contains_key(key) {
            buckets.retain(|_, (bucket, rate)| !bucket.is_full(*rate, now_ms));
            if buckets.len() >= LOCAL_CAPACITY {
                log::warn!("rate-limit table full ({LOCAL_CAPACITY} client addresses at once); reset");
                buckets.clear();
            }
        }
        let (bucket, _) = buckets.entry(key.to_owned()).or_insert_with(|| (Bucket::full(rate, now_ms), rate));
        bucket.take(rate, now_ms)
    }

    /// Buckets held (tests).
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RateLimiter for LocalLimiter {
    async fn take(&self, key: &str, rate: Rate, now_ms: i64) -> Result<Decision, StoreError> {
        Ok(self.take_now(key, rate, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { per_minute: 60, burst: 3 };

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let limiter = LocalLimiter::default();
        for _ in 0..3 {
            assert_eq!(limiter.take_now("k", RATE, 0), Decision::Allowed);
        }
        assert_eq!(limiter.take_now("k", RATE, 0), Decision::Limited { retry_after: 1 });
        assert_eq!(limiter.take_now("other", RATE, 0), Decision::Allowed, "per key");
        assert_eq!(limiter.take_now("k", RATE, 1000), Decision::Allowed, "one a second");
        assert_eq!(limiter.take_now("k", RATE, 1500), Decision::Limited { retry_after: 1 });
        let slow = Rate { per_minute: 1, burst: 1 };
        assert_eq!(limiter.take_now("s", slow, 0), Decision::Allowed);
        assert_eq!(limiter.take_now("s", slow, 0), Decision::Limited { retry_after: 60 });
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = LocalLimiter::default();
        for i in 0..LOCAL_CAPACITY {
            limiter.take_now(&format!("ip{i}"), RATE, 0);
        }
        assert_eq!(limiter.len(), LOCAL_CAPACITY);
        // Full buckets go first: a minute later every one has refilled.
        limiter.take_now("late", RATE, 60_000);
        assert_eq!(limiter.len(), 1);
        // A flood of more addresses than the table holds at once resets it.
        for i in 0..LOCAL_CAPACITY + 1 {
            limiter.take_now(&format!("flood{i}"), RATE, 61_000);
        }
        assert!(limiter.len() <= LOCAL_CAPACITY);
    }
}
