//! The gateway's clock: Unix seconds, movable by tests (style guide item 12: expiry tests
//! advance the clock instead of sleeping).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, shifted by an offset tests can move.
#[derive(Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        real + self.offset.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every clone of it) forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

/// A configured number of seconds as a signed offset from a clock reading; absurdly large
/// values saturate far in the future instead of wrapping.
pub fn secs(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone() {
        let clock = Clock::default();
        let other = clock.clone();
        let before = other.now();
        clock.advance(100);
        assert!(other.now() >= before + 100);
    }

    #[test]
    fn huge_settings_do_not_wrap() {
        assert_eq!(secs(10), 10);
        assert!(secs(u64::MAX) > 0);
    }
}
