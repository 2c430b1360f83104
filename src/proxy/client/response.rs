//! The backend's response body as the gateway streams it on: data frames as they arrive
//! (hyper has decoded the framing), trailers dropped. Dropping it early closes the backend
//! connection; read to its end, the connection goes back to the pool. Whenever it has to wait
//! for more of the answer, it asks its connection to ACK what arrived at once
//! ([`super::quickack`]): a backend with Nagle's algorithm on holds its next piece until then.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::{Body, Incoming};

use super::quickack::AckNow;
use super::ClientError;

/// A backend response body, streamed.
pub struct ResponseBody {
    pub(super) body: Incoming,
    /// Its connection's early ACK (`None` only for a connector without one).
    pub(super) ack: Option<AckNow>,
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let polled = Pin::new(&mut self.body).poll_frame(cx);
            if polled.is_pending() {
                if let Some(ack) = &self.ack {
                    ack.request();
                }
            }
            match ready!(polled) {
                None => return Poll::Ready(None),
                Some(Err(err)) => return Poll::Ready(Some(Err(ClientError::Exchange(err.to_string())))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                    // Empty data or trailers: nothing to pass on.
                    _ => continue,
                },
            }
        }
    }
}
