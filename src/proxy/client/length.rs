//! The one `Content-Length` parser of the proxy, for the client's request bodies and a `HEAD`
//! answer's length: digits only (RFC 9110 §8.6), so `+5`, `-1` or `5 5` are not a length.

/// A `Content-Length` value: ASCII digits only, surrounding whitespace allowed.
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
    fn only_digits_are_a_length() {
        assert_eq!(content_length(b"12"), Some(12));
        assert_eq!(content_length(b" 0 "), Some(0));
        for bad in [&b""[..], b"+5", b"-1", b"5 5", b"0x10", b"99999999999999999999999"] {
            assert_eq!(content_length(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
