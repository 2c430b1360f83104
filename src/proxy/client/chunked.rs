//! The chunked transfer-coding decoder (RFC 9112 §7.1): a byte-wise state machine that yields
//! data as slices of the read buffer; separate because it is self-contained and tested alone.

use bytes::{Buf, Bytes};

use super::ClientError;

/// Longest chunk extension or trailer section accepted in a chunked body.
const MAX_CHUNK_META: usize = 16 * 1024;

/// Where a chunked body's decoder is (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Reading the hex chunk size.
    Size {
        size: u64,
        digits: u8,
    },
    /// Skipping a chunk extension (`len` bytes so far).
    Ext {
        size: u64,
        len: usize,
    },
    /// Expecting the LF that ends the size line.
    SizeLf {
        size: u64,
    },
    /// This many data bytes remain in the chunk.
    Data(u64),
    /// Expecting CR LF after the data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (`len` trailer bytes so far).
    TrailerStart {
        len: usize,
    },
    /// Inside a trailer line.
    Trailer {
        len: usize,
    },
    /// Expecting the LF of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

pub(super) enum Decoded {
    Data(Bytes),
    NeedMore,
    Done,
}

/// Decodes what `buf` holds of a chunked body, consuming framing bytes, returning data as
/// slices of `buf` (no copy).
pub(super) fn decode_chunked(state: &mut Chunk, buf: &mut Bytes) -> Result<Decoded, ClientError> {
    let bad = || ClientError::Malformed("invalid chunked encoding");
    loop {
        match *state {
            Chunk::Done => return Ok(Decoded::Done),
            Chunk::Data(remaining) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = remaining.min(buf.len() as u64);
                *state = if n == remaining { Chunk::DataCr } else { Chunk::Data(remaining - n) };
                return Ok(Decoded::Data(buf.split_to(n as usize)));
            }
            _ => {}
        }
        let Some(&b) = buf.first() else {
            return Ok(Decoded::NeedMore);
        };
        buf.advance(1);
        *state = match (*state, b) {
            (Chunk::Size { size, digits }, b) if b.is_ascii_hexdigit() => {
                if digits >= 15 {
                    return Err(bad());
                }
                let digit = (b as char).to_digit(16).map(u64::from).unwrap_or_default();
                Chunk::Size { size: size * 16 + digit, digits: digits + 1 }
            }
            (Chunk::Size { size, digits }, b';' | b' ' | b'\t') if digits > 0 => Chunk::Ext { size, len: 0 },
            (Chunk::Size { size, digits }, b'\r') if digits > 0 => Chunk::SizeLf { size },
            (Chunk::Ext { size, .. }, b'\r') => Chunk::SizeLf { size },
            (Chunk::Ext { size, len }, b) if b != b'\n' && len < MAX_CHUNK_META => {
                Chunk::Ext { size, len: len + 1 }
            }
            (Chunk::SizeLf { size: 0 }, b'\n') => Chunk::TrailerStart { len: 0 },
            (Chunk::SizeLf { size }, b'\n') => Chunk::Data(size),
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => Chunk::Size { size: 0, digits: 0 },
            (Chunk::TrailerStart { .. }, b'\r') => Chunk::EndLf,
            (Chunk::TrailerStart { len } | Chunk::Trailer { len }, b'\n') => Chunk::TrailerStart { len },
            (Chunk::TrailerStart { len } | Chunk::Trailer { len }, _) if len < MAX_CHUNK_META => {
                Chunk::Trailer { len: len + 1 }
            }
            (Chunk::EndLf, b'\n') => Chunk::Done,
            _ => return Err(bad()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(parts: &[&[u8]]) -> Result<(Vec<u8>, bool), ClientError> {
        let mut state = Chunk::Size { size: 0, digits: 0 };
        let mut out = Vec::new();
        for part in parts {
            let mut buf = Bytes::copy_from_slice(part);
            loop {
                match decode_chunked(&mut state, &mut buf)? {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::NeedMore => break,
                    Decoded::Done => return Ok((out, buf.is_empty())),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire: &[u8] = b"5;ext=1\r\nhello\r\nB\r\n, world!!!!\r\n0\r\nx-trailer: 1\r\n\r\n";
        for split in 0..wire.len() {
            let (a, b) = wire.split_at(split);
            let (data, clean) = decode_all(&[a, b]).expect("valid");
            assert_eq!(data, b"hello, world!!!!", "split at {split}");
            assert!(clean);
        }
        let (data, _) = decode_all(&[b"0\r\n\r\n"]).expect("empty body");
        assert!(data.is_empty());
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        for wire in [&b"x\r\n"[..], b"\r\n", b"5\r\nhelloXX", b"5\nhello", b"ffffffffffffffff1\r\n"] {
            assert!(decode_all(&[wire]).is_err(), "{}", String::from_utf8_lossy(wire));
        }
    }
}
