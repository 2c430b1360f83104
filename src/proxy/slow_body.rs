//! Bounds on how long a client may take to send its request body (issue 13, item 8): a body
//! trickled a byte a second would otherwise hold a gateway connection — and, once forwarded, a
//! backend one — for as long as the client likes, since the service's `timeout` only starts
//! when the body has been read.
//!
//! `limits.body_timeout_ms` is applied two ways. A body the gateway reads before forwarding
//! (sized bodies up to 64 KiB, step-up checks) must arrive whole within it; a body it streams
//! on ([`Idle`]) may pause at most that long between two pieces, so a large upload that keeps
//! moving is never cut. Either way the client gets 408 and the connection is closed: the
//! request body is sent to the backend before its answer is read, so the response has never
//! started when a body stalls.
//!
//! The clock only starts when a read would wait: an ordinary MCP message arrives with its head,
//! and then no timer is made at all.
//!
//! Closing is not actix's default: it drains the rest of a chunked body whose reader was
//! dropped, to keep the connection, for as long as the client keeps it coming (there is no
//! timer on that). A connection whose unread body is still held when its response ends is
//! closed instead (after actix's short linger). So the 408 holds the body it gave up on
//! ([`Unread`], [`close_after`]).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::error::PayloadError;
use actix_web::rt::time::{sleep, Instant, Sleep};
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use futures_util::Stream;

use super::client::ClientError;

/// The timer of a body read, made when the read first has to wait (a boxed `Sleep`: only slow
/// bodies pay for it).
#[derive(Default)]
pub struct Deadline {
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// Whether `limit` has passed since the first call; registers `cx` for the moment it does.
    /// `None` never expires.
    pub fn expired(&mut self, limit: Option<Duration>, cx: &mut Context<'_>) -> bool {
        let Some(limit) = limit else {
            return false;
        };
        let timer = self.timer.get_or_insert_with(|| Box::pin(sleep(limit)));
        timer.as_mut().poll(cx).is_ready()
    }

    /// Starts the wait again from now (a streamed body made progress).
    fn restart(&mut self, limit: Duration) {
        if let Some(timer) = self.timer.as_mut() {
            timer.as_mut().reset(Instant::now() + limit);
        }
    }
}

/// Why a streamed request body ended early.
#[derive(Debug)]
pub enum BodyError {
    /// Nothing arrived for the body timeout.
    Stalled,
    /// The client broke its framing or went away.
    Broken(PayloadError),
}

impl From<BodyError> for ClientError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::Stalled => ClientError::RequestBodyStalled,
            BodyError::Broken(err) => ClientError::RequestBody(err.to_string()),
        }
    }
}

/// A streamed request body that fails with [`BodyError::Stalled`] when no piece arrives for
/// `limit` (`None`: never).
pub struct Idle<S> {
    inner: S,
    limit: Option<Duration>,
    deadline: Deadline,
}

impl<S> Idle<S> {
    /// `inner`, bounded by `limit`.
    pub fn new(inner: S, limit: Option<Duration>) -> Self {
        Idle { inner, limit, deadline: Deadline::default() }
    }

    /// The body, what is left of it.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Stream for Idle<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(limit) = this.limit {
                    this.deadline.restart(limit);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(BodyError::Broken(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.deadline.expired(this.limit, cx) => {
                Poll::Ready(Some(Err(BodyError::Stalled)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The body of a request that timed out, for its 408 to hold (an error is answered from a
/// shared reference, hence the cell). Empty when there is nothing to hold.
#[derive(Default)]
pub struct Unread(RefCell<Option<web::Payload>>);

impl Unread {
    /// Holds `payload`.
    pub fn new(payload: web::Payload) -> Self {
        Unread(RefCell::new(Some(payload)))
    }

    /// `res`, closing its connection when it ends if a body is held (once: the body moves
    /// into the response).
    pub fn close_after(&self, res: HttpResponse) -> HttpResponse {
        match self.0.borrow_mut().take() {
            Some(payload) => close_after(res, payload),
            None => res,
        }
    }
}

impl fmt::Debug for Unread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Unread")
    }
}

/// `res`, holding the request's unread `payload` until its body ends: actix then closes the
/// connection instead of draining the rest (see the module docs).
pub fn close_after(res: HttpResponse, payload: web::Payload) -> HttpResponse {
    res.map_body(|_, body| Holding { body, _payload: payload }).map_into_boxed_body()
}

/// A response body that keeps the request's unread body alive while it is sent.
struct Holding {
    body: BoxBody,
    _payload: web::Payload,
}

impl MessageBody for Holding {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// `limits.body_timeout_ms` as the proxy uses it: `0` is no limit.
pub fn limit(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[actix_web::test]
    async fn a_stream_that_keeps_moving_is_never_cut_but_a_pause_is() {
        let pieces = futures_util::stream::unfold(0u32, |i| async move {
            match i {
                0..=4 => {
                    actix_web::rt::time::sleep(Duration::from_millis(40)).await;
                    Some((Ok::<_, PayloadError>(Bytes::from_static(b"x")), i + 1))
                }
                _ => {
                    actix_web::rt::time::sleep(Duration::from_secs(60)).await;
                    None
                }
            }
        });
        let mut body = Idle::new(Box::pin(pieces), Some(Duration::from_millis(100)));
        for _ in 0..5 {
            assert!(matches!(body.next().await, Some(Ok(_))), "40 ms apart is within 100 ms");
        }
        assert!(matches!(body.next().await, Some(Err(BodyError::Stalled))));
    }

    #[actix_web::test]
    async fn no_limit_waits() {
        let mut deadline = Deadline::default();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(!deadline.expired(None, &mut cx));
        assert!(deadline.timer.is_none(), "no timer is made without a limit");
        assert_eq!(limit(0), None);
        assert_eq!(limit(1500), Some(Duration::from_millis(1500)));
    }
}
