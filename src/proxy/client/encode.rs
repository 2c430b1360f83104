//! Request encoding: the request line, `Host`, the filtered headers and the body's framing
//! headers as one buffer; separate so the exact bytes sent are defined (and tested) in one place.

use bytes::{BufMut, BytesMut};

use super::backend_url::BackendUrl;
use super::{Request, RequestBody};

/// The request head: request line, `Host`, the given headers and the body's framing.
pub(super) fn encode_head<S>(req: &Request<'_>, url: &BackendUrl, body: &RequestBody<S>) -> BytesMut {
    let mut size = req.method.as_str().len() + req.target.len() + url.authority.len() + 64;
    for (name, value) in req.headers {
        size += name.as_str().len() + value.len() + 4;
    }
    let mut head = BytesMut::with_capacity(size);
    head.put_slice(req.method.as_str().as_bytes());
    head.put_u8(b' ');
    head.put_slice(req.target.as_bytes());
    head.put_slice(b" HTTP/1.1\r\nhost: ");
    head.put_slice(url.authority.as_bytes());
    head.put_slice(b"\r\n");
    for (name, value) in req.headers {
        head.put_slice(name.as_str().as_bytes());
        head.put_slice(b": ");
        head.put_slice(value.as_bytes());
        head.put_slice(b"\r\n");
    }
    match body {
        RequestBody::None => {}
        RequestBody::Full(bytes) => put_content_length(&mut head, bytes.len() as u64),
        RequestBody::Sized { len, .. } => put_content_length(&mut head, *len),
        RequestBody::Chunked(_) => head.put_slice(b"transfer-encoding: chunked\r\n"),
    }
    head.put_slice(b"\r\n");
    head
}

fn put_content_length(head: &mut BytesMut, len: u64) {
    head.put_slice(b"content-length: ");
    head.put_slice(len.to_string().as_bytes());
    head.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use std::io;

    use actix_web::http::header::{HeaderName, HeaderValue};
    use actix_web::http::Method;
    use bytes::Bytes;

    use super::*;

    #[test]
    fn request_heads_carry_host_headers_and_framing() {
        let url = BackendUrl::parse("http://b.example:8080/mcp").expect("url");
        let headers = [(HeaderName::from_static("x-user-id"), HeaderValue::from_static("alice"))];
        let req = Request { method: &Method::POST, target: "/mcp?q=1", headers: &headers };
        let body: RequestBody<futures_util::stream::Empty<Result<Bytes, io::Error>>> =
            RequestBody::Full(Bytes::from_static(b"{}"));
        let head = encode_head(&req, &url, &body);
        assert_eq!(
            &head[..],
            b"POST /mcp?q=1 HTTP/1.1\r\nhost: b.example:8080\r\nx-user-id: alice\r\ncontent-length: 2\r\n\r\n"
        );
    }
}
