//! The backend's response body as the gateway streams it on: data frames as they arrive
//! (hyper has decoded the framing), trailers dropped. Dropping it early closes the backend
//! connection; read to its end, the connection goes back to the pool.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::{Body, Incoming};

use super::ClientError;

/// A backend response body, streamed.
pub struct ResponseBody(pub(super) Incoming);

impl Stream for ResponseBody {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(Pin::new(&mut self.0).poll_frame(cx)) {
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
