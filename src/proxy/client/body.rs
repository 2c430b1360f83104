//! The streamed response body: framing-aware reads that hand the connection back to the pool
//! once the body is complete; separate because it outlives `send` (an SSE stream may stay open).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_web::http::StatusCode;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, ReadBuf};

use super::backend_url::{BackendUrl, Origin};
use super::chunked::{decode_chunked, Chunk, Decoded};
use super::head::ParsedHead;
use super::pool::{Conn, Pool};
use super::{ClientError, Framing, ResponseHead};

/// Read size for response bodies (a stack buffer; each read becomes one exactly-sized chunk).
const READ_CHUNK: usize = 16 * 1024;

pub(super) fn finish(
    pool: &Rc<Pool>,
    url: &BackendUrl,
    conn: Conn,
    parsed: ParsedHead,
    rest: Bytes,
    head_request: bool,
) -> (ResponseHead, ResponseBody) {
    let status = parsed.status;
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body { Framing::Length(0) } else { parsed.framing };
    // A body that ends with the connection leaves nothing to reuse.
    let keep_alive = parsed.keep_alive && framing != Framing::UntilClose;
    let mut body = ResponseBody {
        conn: Some(conn),
        pool: Rc::clone(pool),
        origin: Rc::clone(&url.origin),
        keep_alive,
        buffered: rest,
        framing,
    };
    body.release_if_done();
    let body_length = match framing {
        Framing::Length(len) => Some(len),
        Framing::Chunked(_) | Framing::UntilClose => None,
    };
    (ResponseHead { status, headers: parsed.headers, body_length }, body)
}

/// A backend response body, streamed; returns its connection to the pool when read to its end
/// (dropping it early closes the connection).
pub struct ResponseBody {
    conn: Option<Conn>,
    pool: Rc<Pool>,
    origin: Rc<Origin>,
    keep_alive: bool,
    /// Bytes read but not yet handed on (or, when chunked, not yet decoded).
    buffered: Bytes,
    framing: Framing,
}

impl ResponseBody {
    fn is_done(&self) -> bool {
        matches!(self.framing, Framing::Length(0) | Framing::Chunked(Chunk::Done))
    }

    /// Hands the connection back once the body is complete (and nothing extra was sent).
    fn release_if_done(&mut self) {
        if !self.is_done() {
            return;
        }
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && self.buffered.is_empty() {
                self.pool.put(&self.origin, conn);
            }
        }
    }

    /// The next piece of body from what is already buffered, if any.
    fn next_buffered(&mut self) -> Result<Option<Bytes>, ClientError> {
        match &mut self.framing {
            Framing::Length(remaining) => {
                if self.buffered.is_empty() || *remaining == 0 {
                    return Ok(None);
                }
                let n = (*remaining).min(self.buffered.len() as u64);
                *remaining -= n;
                Ok(Some(take_front(&mut self.buffered, n as usize)))
            }
            Framing::UntilClose => {
                Ok(if self.buffered.is_empty() { None } else { Some(std::mem::take(&mut self.buffered)) })
            }
            Framing::Chunked(state) => {
                let decoded = decode_chunked(state, &mut self.buffered)?;
                if self.buffered.is_empty() {
                    // An empty `Bytes` still holds its buffer alive (the 4 KiB the head was
                    // read into): let it go, an open stream may idle for hours.
                    self.buffered = Bytes::new();
                }
                match decoded {
                    Decoded::Data(data) => Ok(Some(data)),
                    Decoded::NeedMore | Decoded::Done => Ok(None),
                }
            }
        }
    }
}

/// The first `n` bytes of `buf`; an emptied `buf` lets go of its buffer.
fn take_front(buf: &mut Bytes, n: usize) -> Bytes {
    if n == buf.len() {
        return std::mem::take(buf);
    }
    buf.split_to(n)
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.next_buffered() {
                Ok(Some(data)) => {
                    this.release_if_done();
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(None) => {}
                Err(err) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(err)));
                }
            }
            if this.is_done() {
                this.release_if_done();
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let mut space = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut read = ReadBuf::uninit(&mut space);
            if let Err(err) = ready!(Pin::new(conn).poll_read(cx, &mut read)) {
                this.conn = None;
                return Poll::Ready(Some(Err(err.into())));
            }
            if read.filled().is_empty() {
                this.conn = None;
                if matches!(this.framing, Framing::UntilClose) {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()))));
            }
            let fresh = Bytes::copy_from_slice(read.filled());
            if this.buffered.is_empty() {
                this.buffered = fresh;
            } else {
                let mut joined = BytesMut::with_capacity(this.buffered.len() + fresh.len());
                joined.put_slice(&this.buffered);
                joined.put_slice(&fresh);
                this.buffered = joined.freeze();
            }
        }
    }
}
