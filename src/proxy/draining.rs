//! An event stream that ends itself, cleanly, when the gateway drains ([`crate::core::drain`]).
//!
//! Ending cleanly means: after a whole event (never in the middle of one, which a client would
//! have to throw away), and by ending the body, so the client gets the chunked terminator
//! rather than a connection cut by the server's forced stop. Once the drain signal the stream
//! watches has fired, the stream ends at once if the last byte passed on closed an event, or
//! else right after the end of the event in progress.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio_util::sync::WaitForCancellationFutureOwned;

/// `inner`, ended at an event boundary once `signal` completes.
pub struct Draining<B> {
    inner: B,
    /// `None` once it has fired.
    signal: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Whether the drain has asked this stream to end.
    ending: bool,
    /// The last bytes passed on (at most 4, newest last): enough to see an event's end.
    tail: Tail,
    done: bool,
}

impl<B> Draining<B> {
    /// Wraps `inner`; `signal` is the drain signal this stream obeys.
    pub fn new(inner: B, signal: WaitForCancellationFutureOwned) -> Self {
        Draining { inner, signal: Some(Box::pin(signal)), ending: false, tail: Tail::default(), done: false }
    }
}

impl<B, E> Stream for Draining<B>
where
    B: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(signal) = &mut this.signal {
            if signal.as_mut().poll(cx).is_ready() {
                this.signal = None;
                this.ending = true;
            }
        }
        if this.ending && this.tail.at_boundary() {
            this.done = true;
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let chunk = match this.ending.then(|| this.tail.first_boundary_in(&chunk)).flatten() {
                    Some(end) => {
                        this.done = true;
                        chunk.slice(..end)
                    }
                    None => chunk,
                };
                this.tail.push(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

/// The last bytes of a stream, for finding where an event ends: a blank line, whatever the
/// line endings (`\n`, `\r\n` or `\r`, per the SSE format).
#[derive(Default, Clone, Copy)]
struct Tail {
    bytes: [u8; 4],
    len: usize,
}

impl Tail {
    /// Whether the bytes so far end between events (nothing passed on yet counts).
    fn at_boundary(&self) -> bool {
        let tail = &self.bytes[4 - self.len..];
        self.len == 0
            || [&b"\n\n"[..], b"\r\r", b"\r\n\r\n", b"\n\r\n", b"\r\n\n"]
                .iter()
                .any(|end| tail.ends_with(end))
                && !tail.ends_with(b"\r\n\r") // a `\r` may be the start of the next `\r\n`
    }

    fn push(&mut self, chunk: &[u8]) {
        for &b in chunk.iter().rev().take(4).rev() {
            self.bytes.rotate_left(1);
            self.bytes[3] = b;
            self.len = (self.len + 1).min(4);
        }
    }

    /// How many bytes of `chunk`, following these, end the event in progress.
    fn first_boundary_in(&self, chunk: &[u8]) -> Option<usize> {
        let mut probe = *self;
        chunk
            .iter()
            .position(|&b| {
                probe.push(&[b]);
                probe.at_boundary()
            })
            .map(|i| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::{stream, StreamExt as _};
    use tokio_util::sync::CancellationToken;

    use super::*;

    fn boundary_after(bytes: &[u8]) -> bool {
        let mut tail = Tail::default();
        tail.push(bytes);
        tail.at_boundary()
    }

    #[test]
    fn event_ends_are_seen_with_every_line_ending() {
        for end in [&b"data: x\n\n"[..], b"data: x\r\n\r\n", b"data: x\r\r", b"id: 1\ndata: x\n\r\n"] {
            assert!(boundary_after(end), "{:?}", String::from_utf8_lossy(end));
        }
        for middle in [&b"data: x\n"[..], b"data: x\r\n", b"data: x\r\n\r", b"data: x"] {
            assert!(!boundary_after(middle), "{:?}", String::from_utf8_lossy(middle));
        }
        assert!(Tail::default().at_boundary(), "before the first byte");
    }

    #[test]
    fn the_end_of_the_event_in_progress_is_found_across_chunks() {
        let mut tail = Tail::default();
        tail.push(b"data: one\n");
        assert_eq!(tail.first_boundary_in(b"\ndata: two\n\n"), Some(1));
        assert_eq!(tail.first_boundary_in(b"more\n"), None);
    }

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = Result<Bytes, Infallible>> + Unpin {
        stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p.as_bytes()))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn a_stream_passes_everything_until_the_drain() {
        let token = CancellationToken::new();
        let drained = Draining::new(chunks(&["data: 1\n\n", "data: 2\n\n"]), token.clone().cancelled_owned());
        let all: Vec<_> = drained.map(|c| c.unwrap_or_default()).collect().await;
        assert_eq!(all, ["data: 1\n\n", "data: 2\n\n"]);
    }

    #[tokio::test]
    async fn a_drained_stream_ends_after_the_event_in_progress() {
        let token = CancellationToken::new();
        let mut drained = Draining::new(
            chunks(&["data: 1\n\n", "data: 2", "\n\ndata: 3\n\n", "data: 4\n\n"]),
            token.clone().cancelled_owned(),
        );
        assert_eq!(drained.next().await.map(Result::unwrap_or_default).as_deref(), Some(&b"data: 1\n\n"[..]));
        assert_eq!(drained.next().await.map(Result::unwrap_or_default).as_deref(), Some(&b"data: 2"[..]));

        token.cancel();

        assert_eq!(drained.next().await.map(Result::unwrap_or_default).as_deref(), Some(&b"\n\n"[..]));
        assert!(drained.next().await.is_none(), "ends between events");
        assert!(drained.next().await.is_none());
    }

    #[tokio::test]
    async fn a_stream_between_events_ends_at_once() {
        let token = CancellationToken::new();
        token.cancel();
        let mut drained = Draining::new(chunks(&["data: 1\n\n"]), token.clone().cancelled_owned());
        assert!(drained.next().await.is_none());
    }
}
