//! The request body as hyper sends it. A body known in full goes out with the head; a
//! streamed one is pumped from the client's payload (which lives on this worker's thread and
//! is not `Send`) through a one-slot channel, so the client is read only as fast as the backend
//! takes it, while hyper already reads the answer (full duplex: an early 413 is passed on).
//! When the client's body fails, what failed is kept for the caller ([`Broken`]): a stalled
//! body's 408 must hold the rest of it.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use super::ClientError;

/// Why the client's body stopped, and the stream itself when it stalled (the 408 holds it).
pub(super) type Broken<S> = Rc<RefCell<Option<(ClientError, Option<S>)>>>;

/// The error hyper sees when the client's body failed; the cause is in [`Broken`].
#[derive(Debug, thiserror::Error)]
#[error("the client's request body failed")]
pub struct BodyFailed;

/// A request body for hyper.
pub struct Upload {
    /// Bytes sent before anything from `rx`.
    ready: Option<Bytes>,
    rx: Option<mpsc::Receiver<Result<Bytes, BodyFailed>>>,
    /// The body's length when known (also sent as `Content-Length`).
    len: Option<u64>,
}

impl Upload {
    /// No body.
    pub(super) fn empty() -> Self {
        Self { ready: None, rx: None, len: Some(0) }
    }

    /// A body known in full.
    pub(super) fn full(bytes: Bytes) -> Self {
        let len = Some(bytes.len() as u64);
        Self { ready: Some(bytes).filter(|b| !b.is_empty()), rx: None, len }
    }

    /// `ready`, then what arrives from `rest` (of `len` bytes in all when known), read by a
    /// task on this thread. A failure of `rest` is recorded in the returned [`Broken`].
    pub(super) fn streamed<S, E>(ready: Bytes, rest: S, len: Option<u64>) -> (Self, Broken<S>)
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + 'static,
        E: Into<ClientError> + 'static,
    {
        let (tx, rx) = mpsc::channel(1);
        let broken: Broken<S> = Rc::default();
        actix_web::rt::spawn(pump(rest, tx, Rc::clone(&broken)));
        (Self { ready: Some(ready).filter(|b| !b.is_empty()), rx: Some(rx), len }, broken)
    }
}

/// Moves the client's body into the channel, one piece at a time, until it ends, fails, or
/// hyper no longer wants it (the backend answered and the exchange is over).
async fn pump<S, E>(mut rest: S, tx: mpsc::Sender<Result<Bytes, BodyFailed>>, broken: Broken<S>)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<ClientError>,
{
    loop {
        // Wait for room first: nothing is read from the client that the backend cannot take.
        let Ok(permit) = tx.reserve().await else { return };
        match rest.next().await {
            Some(Ok(bytes)) => permit.send(Ok(bytes)),
            Some(Err(err)) => {
                let err = err.into();
                let keep = matches!(err, ClientError::RequestBodyStalled).then_some(rest);
                *broken.borrow_mut() = Some((err, keep));
                permit.send(Err(BodyFailed));
                return;
            }
            None => return,
        }
    }
}

impl Body for Upload {
    type Data = Bytes;
    type Error = BodyFailed;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyFailed>>> {
        if let Some(bytes) = self.ready.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        let Some(rx) = self.rx.as_mut() else { return Poll::Ready(None) };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err))),
            Poll::Ready(None) => {
                self.rx = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_none() && self.rx.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.len {
            Some(len) => SizeHint::with_exact(len),
            None => SizeHint::default(),
        }
    }
}
