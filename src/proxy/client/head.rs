//! Response-head parsing: status, headers, keep-alive and the body's framing (RFC 9112 §6);
//! separate because it is pure, synchronous and tested on its own.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;

use super::chunked::Chunk;
use super::{ClientError, Framing};

/// Most response header lines accepted.
const MAX_HEADERS: usize = 128;

pub(super) struct ParsedHead {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    /// HTTP/1.1 and no `Connection: close`.
    pub(super) keep_alive: bool,
    pub(super) framing: Framing,
}

/// A complete response head at the start of `buf` and its length, `None` when more is needed.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<(ParsedHead, usize)>, ClientError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ClientError::Malformed("too many headers")),
        Err(_) => return Err(ClientError::Malformed("invalid response head")),
    };
    let status = res
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ClientError::Malformed("invalid status"))?;
    let mut headers = HeaderMap::with_capacity(res.headers.len());
    let mut keep_alive = res.version == Some(1);
    let mut chunked = false;
    let mut length: Option<u64> = None;
    for h in res.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| ClientError::Malformed("header name"))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| ClientError::Malformed("header value"))?;
        if name == actix_web::http::header::CONNECTION {
            keep_alive &= !has_token(h.value, "close");
        } else if name == actix_web::http::header::TRANSFER_ENCODING {
            // Only a final `chunked` coding frames the body; anything else reads until close.
            chunked = last_token_is(h.value, "chunked");
            keep_alive &= chunked;
        } else if name == actix_web::http::header::CONTENT_LENGTH {
            let parsed = content_length(h.value);
            match (parsed, length) {
                (Some(v), None) => length = Some(v),
                (Some(v), Some(seen)) if v == seen => {}
                _ => return Err(ClientError::Malformed("invalid Content-Length")),
            }
        }
        headers.append(name, value);
    }
    let framing = if chunked {
        Framing::Chunked(Chunk::Size { size: 0, digits: 0 })
    } else if headers.contains_key(actix_web::http::header::TRANSFER_ENCODING) {
        Framing::UntilClose
    } else {
        match length {
            Some(len) => Framing::Length(len),
            None => Framing::UntilClose,
        }
    };
    Ok(Some((ParsedHead { status, headers, keep_alive, framing }, len)))
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(|t| t.trim_ascii())
}

fn has_token(value: &[u8], token: &str) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

fn last_token_is(value: &[u8], token: &str) -> bool {
    tokens(value).filter(|t| !t.is_empty()).last().is_some_and(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// A `Content-Length` value: 1*DIGIT (RFC 9110 §8.6) with optional surrounding whitespace.
/// Rust's integer parser alone would also take `+5`.
pub fn content_length(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_parse_with_their_framing() {
        let (head, len) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nabc")
            .expect("valid")
            .expect("complete");
        assert_eq!((head.status, len, head.keep_alive), (StatusCode::OK, 46, true));
        assert_eq!(head.framing, Framing::Length(3));
        assert_eq!(head.headers.get("x-a").map(|v| v.as_bytes()), Some(&b"1"[..]));

        let (head, _) = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert!(matches!(head.framing, Framing::Chunked(_)) && head.keep_alive);

        let (head, _) = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n")
            .expect("ok")
            .expect("c");
        assert!(!head.keep_alive);
        let (head, _) = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").expect("ok").expect("c");
        assert!(!head.keep_alive);
        let (head, _) = parse_head(b"HTTP/1.1 200 OK\r\n\r\n").expect("ok").expect("c");
        assert_eq!(head.framing, Framing::UntilClose);

        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").expect("partial").is_none());
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\nhello",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
