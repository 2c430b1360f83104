//! The shutdown drain: what a running gateway does between "stop" and exit.
//!
//! Stopping starts the drain ([`Drain::begin`]): `/ready` answers 503 at once, the server stops
//! accepting connections and requests in flight get `runtime.shutdown_timeout` to finish. Event
//! streams are ended by the gateway itself, cleanly (the chunked terminator, after a whole
//! event), rather than cut by the server's forced stop when the drain time is up: a `GET`
//! stream (the transport's listening stream, with nothing in progress on it) ends at once, and
//! the client reconnects to another instance; a `POST` stream carries a tool call in progress,
//! so it keeps flowing until shortly before the drain time is up ([`Drain::closing`]).

use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The drain signal, shared by every worker (clones share it).
#[derive(Clone, Debug)]
pub struct Drain {
    begun: CancellationToken,
    closing: CancellationToken,
    /// How long after the drain begins `POST` streams are ended.
    stream_grace: Duration,
}

impl Drain {
    /// A drain of `drain_time` (`runtime.shutdown_timeout`), not begun.
    pub fn new(drain_time: Duration) -> Self {
        Drain {
            begun: CancellationToken::new(),
            closing: CancellationToken::new(),
            stream_grace: stream_grace(drain_time),
        }
    }

    /// Begins the drain (again: no effect). Needs a running tokio runtime: a timer ends the
    /// `POST` streams when their grace is up.
    pub fn begin(&self) {
        if self.begun.is_cancelled() {
            return;
        }
        self.begun.cancel();
        let (closing, grace) = (self.closing.clone(), self.stream_grace);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            closing.cancel();
        });
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        self.begun.is_cancelled()
    }

    /// Completes when the drain begins: when a `GET` stream ends.
    pub fn begun(&self) -> WaitForCancellationFutureOwned {
        self.begun.clone().cancelled_owned()
    }

    /// Completes shortly before the drain time is up: when a `POST` stream ends.
    pub fn closing(&self) -> WaitForCancellationFutureOwned {
        self.closing.clone().cancelled_owned()
    }
}

/// What a `POST` stream is given of the drain time: all but a margin (a quarter, at most a
/// second) in which its end reaches the client before the server's forced stop.
fn stream_grace(drain_time: Duration) -> Duration {
    drain_time.saturating_sub((drain_time / 4).min(Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_end_before_the_drain_time_is_up() {
        assert_eq!(stream_grace(Duration::from_secs(30)), Duration::from_secs(29));
        assert_eq!(stream_grace(Duration::from_secs(2)), Duration::from_millis(1500));
        assert_eq!(stream_grace(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn begin_signals_at_once_and_closes_streams_after_their_grace() {
        let drain = Drain::new(Duration::from_millis(400));
        assert!(!drain.is_draining());
        let (begun, closing) = (drain.begun(), drain.closing());

        let started = tokio::time::Instant::now();
        drain.begin();
        drain.begin();

        assert!(drain.is_draining());
        begun.await;
        assert!(started.elapsed() < Duration::from_millis(100));
        closing.await;
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    }
}
