//! One request/response exchange on a connection: writes the head and body, reads up to the
//! final response head, and says whether a failure may be retried on a new connection.

use std::io;
use std::pin::Pin;

use actix_web::http::StatusCode;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::head::{parse_head, ParsedHead};
use super::pool::Conn;
use super::{ClientError, RequestBody};

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

pub(super) struct Failure {
    pub(super) err: ClientError,
    /// The backend cannot have acted on the request (its bytes did not all go out), or it may
    /// have but the request is idempotent and nothing of a response arrived: it can be sent
    /// again on a new connection if its body can.
    pub(super) retryable: bool,
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure { err, retryable: false }
    }
}

/// Writes the request and reads the response head. Returns the bytes read past the head.
/// `idempotent`: whether the request may run twice (RFC 9110 §9.2.2). A connection that ends
/// after the whole request went out, with no answer, may have run it (a backend that executed
/// a `tools/call` and closed), so only an idempotent request is then marked retryable
/// (RFC 9112 §9.3.1).
pub(super) async fn exchange<S, E>(
    mut conn: Conn,
    head: &BytesMut,
    body: &mut RequestBody<S>,
    idempotent: bool,
) -> Result<(Conn, ParsedHead, Bytes), Failure>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<ClientError>,
{
    let retryable = |err: io::Error| Failure { err: ClientError::Io(err), retryable: true };
    // A streamed body is consumed as it is sent; `None` and `Full` stay for a retry.
    match body {
        RequestBody::None => conn.write_all(head).await.map_err(retryable)?,
        RequestBody::Full(bytes) => write_two(&mut conn, head, bytes).await.map_err(retryable)?,
        RequestBody::Sized { len, ready, rest } => {
            let len = *len;
            write_two(&mut conn, head, ready).await.map_err(ClientError::Io)?;
            let mut sent = ready.len() as u64;
            while sent < len {
                let chunk = next_chunk(rest)
                    .await?
                    .ok_or_else(|| ClientError::RequestBody(format!("ended after {sent} of {len} bytes")))?;
                let take = chunk.len().min((len - sent) as usize);
                conn.write_all(&chunk[..take]).await.map_err(ClientError::Io)?;
                sent += take as u64;
            }
        }
        RequestBody::Chunked(rest) => {
            conn.write_all(head).await.map_err(ClientError::Io)?;
            while let Some(chunk) = next_chunk(rest).await? {
                if chunk.is_empty() {
                    continue;
                }
                let mut framed = BytesMut::with_capacity(chunk.len() + 20);
                framed.put_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                framed.put_slice(&chunk);
                framed.put_slice(b"\r\n");
                conn.write_all(&framed).await.map_err(ClientError::Io)?;
            }
            conn.write_all(b"0\r\n\r\n").await.map_err(ClientError::Io)?;
        }
    }
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let n = match conn.read_buf(&mut buf).await {
            Ok(n) => n,
            Err(err) => {
                return Err(Failure { err: ClientError::Io(err), retryable: idempotent && buf.is_empty() })
            }
        };
        if n == 0 {
            let err = ClientError::Io(io::ErrorKind::UnexpectedEof.into());
            return Err(Failure { err, retryable: idempotent && buf.is_empty() });
        }
        while let Some((parsed, len)) = parse_head(&buf)? {
            buf.advance(len);
            // Interim responses (100 Continue, 103 Early Hints) are skipped; the gateway never
            // asks for an upgrade, so 101 is an error.
            if parsed.status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(ClientError::Malformed("unexpected 101 Switching Protocols").into());
            }
            if parsed.status.is_informational() {
                continue;
            }
            // What came with the head is kept on its own when small, so the head's buffer is
            // freed now rather than when the body is done (an SSE stream may stay open).
            let rest = match buf.len() {
                0 => Bytes::new(),
                n if n <= 1024 => Bytes::copy_from_slice(&buf),
                _ => buf.freeze(),
            };
            return Ok((conn, parsed, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(ClientError::Malformed("response head too large").into());
        }
    }
}

async fn write_two(conn: &mut Conn, head: &[u8], body: &[u8]) -> io::Result<()> {
    if body.len() <= 16 * 1024 {
        // One write for head and body: one segment on the wire for a typical MCP request.
        let mut one = Vec::with_capacity(head.len() + body.len());
        one.extend_from_slice(head);
        one.extend_from_slice(body);
        return conn.write_all(&one).await;
    }
    conn.write_all(head).await?;
    conn.write_all(body).await
}

async fn next_chunk<S, E>(stream: &mut S) -> Result<Option<Bytes>, ClientError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<ClientError>,
{
    match std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await {
        Some(Ok(chunk)) => Ok(Some(chunk)),
        Some(Err(err)) => Err(err.into()),
        None => Ok(None),
    }
}
