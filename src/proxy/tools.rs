//! `tool_access` at the proxy: a person may not call the tools their access token lists in
//! `denied_tools` (decided from the rules when the token was issued, `crate::core::access`),
//! and does not see them in `tools/list`.
//!
//! Nothing here runs for a token without `denied_tools`: its requests and answers stream
//! untouched. For a token with some:
//! - A request that carries a body has it read whole (up to
//!   [`stepup::MAX_INSPECTED_BODY`], 413 beyond) and parsed as JSON-RPC, one message or a
//!   batch. A body the gateway cannot read (not JSON, compressed, a repeated key, too large)
//!   is refused rather than forwarded: it could hold a call of a denied tool.
//! - A `tools/call` of a denied tool (or one whose tool name cannot be read) is answered by the
//!   gateway with a JSON-RPC error, HTTP 200, code [`TOOL_DENIED`] (`-32602`, what MCP
//!   servers answer for an unknown tool), and never reaches the backend. A batch holding one
//!   is refused whole: every request in it gets an error (the others [`BATCH_REFUSED`]), so
//!   the client is not left waiting for answers that will not come.
//! - Answers lose the denied tools from every `result.tools` list: a JSON answer to a request
//!   that asked `tools/list` is read whole (up to [`MAX_JSON_ANSWER`], 502 beyond) and
//!   re-sized; an event stream is rewritten event by event, only the `data` of events holding
//!   such a list changing (the other fields, and every other event, pass byte for byte). An
//!   answer compressed by the backend cannot be filtered and is refused with 502.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::error::{DeniedCalls, ProxyError};
use super::forward::{self, Body};
use super::jsonrpc::{is_batch, parse, Message, TOOLS_CALL};
use super::{headers, slow_body, stepup};
use crate::config::Settings;
use crate::core::model::AccessClaims;

/// JSON-RPC error code of a refused tool call: "invalid params", which is what an MCP server
/// answers for a tool it does not have.
pub const TOOL_DENIED: i64 = -32602;
/// JSON-RPC error code of the other requests of a refused batch: "invalid request".
pub const BATCH_REFUSED: i64 = -32600;
/// Largest JSON answer to a `tools/list` read to filter it.
pub const MAX_JSON_ANSWER: usize = 8 << 20;
/// Largest single event of an event stream held to filter it.
pub const MAX_EVENT: usize = 8 << 20;

const TOOLS_LIST: &str = "tools/list";

/// Put in the request's extensions when its body asks `tools/list`: its JSON answer is read
/// and filtered.
#[derive(Debug, Clone, Copy)]
struct ListsTools;

/// One JSON-RPC message, reduced to what the check needs; a repeated member fails the parse.
/// Checks the request of a person denied some tools and returns the body to forward.
pub async fn admit(
    req: &HttpRequest,
    body: Body,
    settings: &Settings,
    claims: &AccessClaims,
) -> Result<Body, ProxyError> {
    if claims.denied_tools.is_empty()
        || (req.method() != Method::POST && !forward::carries_body(req.headers()))
    {
        return Ok(body);
    }
    let bytes = match body {
        Body::Buffered(bytes) => bytes,
        Body::Stream(payload) => {
            let limit = slow_body::limit(settings.limits.body_timeout_ms);
            stepup::read_body(payload, req.headers(), limit).await?
        }
    };
    let messages = parse(&bytes).ok_or(ProxyError::BadRequest(
        "tool access rules apply to this user here, and the request body is not JSON-RPC the \
         gateway can read, so it was not forwarded",
    ))?;
    if let Some(denied) = refusal(&messages, &claims.denied_tools, is_batch(&bytes)) {
        return Err(ProxyError::ToolDenied(Box::new(denied)));
    }
    if messages.iter().any(|m| m.method() == Some(TOOLS_LIST)) {
        req.extensions_mut().insert(ListsTools);
    }
    Ok(Body::Buffered(bytes))
}

/// The answer refusing `messages` when one calls a denied tool (or an unreadable one).
fn refusal(messages: &[Message], denied: &[String], batch: bool) -> Option<DeniedCalls> {
    let refused_call = |m: &Message| {
        m.method() == Some(TOOLS_CALL) && m.tool().is_none_or(|tool| denied.iter().any(|d| d == tool))
    };
    if !messages.iter().any(refused_call) {
        return None;
    }
    let mut answers = Vec::new();
    let mut refused = Vec::new();
    for message in messages {
        let id = message.id.clone();
        if refused_call(message) {
            let tool = message.tool();
            refused.push((tool.map(str::to_owned), id.clone()));
            let text = match tool {
                Some(tool) => format!("tool '{tool}' is not available to this user (access rules)"),
                None => "the tool name of this tools/call cannot be read".to_owned(),
            };
            answers.push(error_response(id, TOOL_DENIED, &text));
        } else if id.is_some() {
            let text = "not run: another call in this batch was refused by the access rules";
            answers.push(error_response(id, BATCH_REFUSED, text));
        }
    }
    // One message that is refused has exactly one answer.
    let answer = match batch {
        true => Value::Array(answers),
        false => answers.into_iter().next().unwrap_or(Value::Null),
    };
    Some(DeniedCalls { answer: Bytes::from(answer.to_string()), refused })
}

fn error_response(id: Option<Value>, code: i64, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": { "code": code, "message": message, "data": { "reason": "access_rule" } },
    })
}

/// `res` with the denied tools taken out of its `tools/list` results (see the module docs).
pub async fn hide_denied(
    req: &HttpRequest,
    res: HttpResponse,
    service_id: &str,
    claims: &AccessClaims,
) -> Result<HttpResponse, ProxyError> {
    if claims.denied_tools.is_empty() || req.method() == Method::HEAD {
        return Ok(res);
    }
    let event_stream = headers::is_event_stream(res.headers());
    let lists_tools = req.extensions().contains::<ListsTools>();
    let filtered_json = lists_tools && is_json(res.headers());
    if !(event_stream || filtered_json) {
        return Ok(res);
    }
    if encoded(res.headers()) {
        log::warn!("service '{service_id}': a compressed answer cannot be filtered for tool access; refused");
        return Err(ProxyError::BadGateway(service_id.to_owned()));
    }
    let denied = claims.denied_tools.clone();
    if event_stream {
        return Ok(res.map_body(|_, body| BoxBody::new(EventFilter::new(body, denied))));
    }
    let (res, body) = res.into_parts();
    let bytes = match actix_web::body::to_bytes_limited(body, MAX_JSON_ANSWER).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => {
            log::warn!("service '{service_id}': the answer broke off: {err}");
            return Err(ProxyError::BadGateway(service_id.to_owned()));
        }
        Err(_) => {
            log::warn!("service '{service_id}': a tools/list answer over {MAX_JSON_ANSWER} bytes; refused");
            return Err(ProxyError::BadGateway(service_id.to_owned()));
        }
    };
    let filtered = filter_json(&bytes, &denied).ok_or_else(|| {
        log::warn!("service '{service_id}': a tools/list answer is not JSON; refused");
        ProxyError::BadGateway(service_id.to_owned())
    })?;
    // The body sets Content-Length anew: the backend's header was never copied.
    Ok(res.set_body(filtered).map_into_boxed_body())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

fn encoded(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_ENCODING).any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// `body` without the denied tools: the same bytes when nothing changes, `None` when it is
/// not JSON.
fn filter_json(body: &[u8], denied: &[String]) -> Option<Bytes> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    Some(match strip(&mut value, denied) {
        true => Bytes::from(value.to_string()),
        false => Bytes::copy_from_slice(body),
    })
}

/// Removes the denied tools from the `result.tools` of a response or of each response of a
/// batch; whether anything was removed.
fn strip(value: &mut Value, denied: &[String]) -> bool {
    match value {
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| strip(item, denied) | changed),
        Value::Object(message) => {
            let Some(Value::Array(tools)) = message.get_mut("result").and_then(|r| r.get_mut("tools")) else {
                return false;
            };
            let before = tools.len();
            tools.retain(|tool| {
                !tool.get("name").and_then(Value::as_str).is_some_and(|name| denied.iter().any(|d| d == name))
            });
            tools.len() != before
        }
        _ => false,
    }
}

/// An event stream with the denied tools taken out of each event's `data`. Events are passed
/// on as soon as they are complete (their blank line arrived); several complete events of
/// one chunk go out together.
pub struct EventFilter {
    inner: BoxBody,
    denied: Vec<String>,
    buf: BytesMut,
    /// Where the scan for the end of the first event in `buf` stopped, and where its
    /// current line starts: a long event arriving in many chunks is scanned once.
    scanned: usize,
    line_start: usize,
    ended: bool,
    ready: VecDeque<Bytes>,
}

impl EventFilter {
    fn new(inner: BoxBody, denied: Vec<String>) -> Self {
        EventFilter {
            inner,
            denied,
            buf: BytesMut::new(),
            scanned: 0,
            line_start: 0,
            ended: false,
            ready: VecDeque::new(),
        }
    }

    /// The length of the first complete event in `buf` (through its blank line), if any.
    fn event_end(&mut self) -> Option<usize> {
        let buf = &self.buf;
        let mut i = self.scanned;
        while i < buf.len() {
            let step = match buf[i] {
                b'\n' => 1,
                // A `\r` last in the buffer may be the first half of `\r\n`: wait and see.
                b'\r' if i + 1 == buf.len() && !self.ended => break,
                b'\r' if buf.get(i + 1) == Some(&b'\n') => 2,
                b'\r' => 1,
                _ => {
                    i += 1;
                    continue;
                }
            };
            let blank = i == self.line_start;
            i += step;
            self.line_start = i;
            if blank {
                self.scanned = 0;
                self.line_start = 0;
                return Some(i);
            }
        }
        self.scanned = i;
        None
    }

    /// Every complete event in `buf` (and, at the end, what is left), filtered, as one chunk.
    fn take_events(&mut self) -> Option<Bytes> {
        let mut out = BytesMut::new();
        while let Some(end) = self.event_end() {
            let event = self.buf.split_to(end).freeze();
            out.extend_from_slice(&filter_event(event, &self.denied));
        }
        if self.ended && !self.buf.is_empty() {
            let rest = self.buf.split().freeze();
            out.extend_from_slice(&filter_event(rest, &self.denied));
        }
        (!out.is_empty()).then(|| out.freeze())
    }
}

/// One event with its `data` rewritten when it is JSON holding a denied tool; else unchanged.
fn filter_event(event: Bytes, denied: &[String]) -> Bytes {
    let lines = split_lines(&event);
    let data: Vec<&[u8]> = lines.iter().filter_map(|line| data_value(line)).collect();
    if data.is_empty() {
        return event;
    }
    let joined = data.join(&b'\n');
    let Some(filtered) = filter_json(&joined, denied) else { return event };
    if filtered.as_ref() == joined.as_slice() {
        return event;
    }
    let mut out = BytesMut::with_capacity(event.len());
    let mut written = false;
    for line in lines {
        if data_value(line).is_none() {
            out.extend_from_slice(line);
        } else if !written {
            written = true;
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&filtered);
            out.extend_from_slice(b"\n");
        }
    }
    out.freeze()
}

/// The lines of `event`, each with its terminator.
fn split_lines(event: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < event.len() {
        let step = match event[i] {
            b'\n' => 1,
            b'\r' if event.get(i + 1) == Some(&b'\n') => 2,
            b'\r' => 1,
            _ => {
                i += 1;
                continue;
            }
        };
        i += step;
        lines.push(&event[start..i]);
        start = i;
    }
    if start < event.len() {
        lines.push(&event[start..]);
    }
    lines
}

/// The value of a `data` field line (one leading space dropped), `None` for other lines.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == b"data" {
        return Some(b"");
    }
    let value = line.strip_prefix(b"data:")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

impl MessageBody for EventFilter {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        match self.inner.size() {
            BodySize::None => BodySize::None,
            _ => BodySize::Stream,
        }
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.buf.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => return Poll::Pending,
            }
            if let Some(events) = this.take_events() {
                this.ready.push_back(events);
            }
            if this.buf.len() > MAX_EVENT {
                // Passing it on unread could show a denied tool: end the stream instead.
                log::warn!(
                    "an event over {MAX_EVENT} bytes cannot be filtered for tool access; stream ended"
                );
                this.ended = true;
                this.ready.clear();
                return Poll::Ready(Some(Err("event too large to filter".into())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied() -> Vec<String> {
        vec!["wipe".to_owned()]
    }

    fn messages(body: &str) -> Vec<Message> {
        parse(body.as_bytes()).unwrap_or_default()
    }

    #[test]
    fn a_denied_call_is_answered_with_its_id() {
        let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"wipe"}}"#;
        let refused = refusal(&messages(body), &denied(), false).map(|d| d.answer).unwrap_or_default();
        let answer: Value = serde_json::from_slice(&refused).unwrap_or_default();
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["error"]["code"], TOOL_DENIED);
        let allowed = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add"}}"#;
        assert!(refusal(&messages(allowed), &denied(), false).is_none());
        let unnamed = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":3}}"#;
        assert!(refusal(&messages(unnamed), &denied(), false).is_some(), "an unreadable name is refused");
    }

    #[test]
    fn a_batch_with_a_denied_call_is_refused_whole() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}},
            {"jsonrpc":"2.0","method":"notifications/x"},
            {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"wipe"}}]"#;
        let refused = refusal(&messages(body), &denied(), true);
        let answer: Value =
            serde_json::from_slice(&refused.map(|d| d.answer).unwrap_or_default()).unwrap_or_default();
        assert_eq!(answer[0]["id"], 1);
        assert_eq!(answer[0]["error"]["code"], BATCH_REFUSED);
        assert_eq!(answer[1]["id"], 2);
        assert_eq!(answer[1]["error"]["code"], TOOL_DENIED);
        assert_eq!(answer.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn repeated_keys_and_escapes_do_not_slip_through() {
        assert!(parse(br#"{"id":1,"method":"tools/list","method":"tools/call"}"#).is_none());
        // Two tool names: the name counts as unreadable, and the call is refused.
        let two = r#"{"id":1,"method":"tools/call","params":{"name":"add","name":"wipe"}}"#;
        assert!(refusal(&messages(two), &denied(), false).is_some());
        let escaped = r#"{"id":1,"method":"tools\u002fcall","params":{"name":"w\u0069pe"}}"#;
        assert!(refusal(&messages(escaped), &denied(), false).is_some());
    }

    #[test]
    fn json_answers_lose_denied_tools_and_keep_their_bytes_otherwise() {
        let list = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"add"},{"name":"wipe"}]}}"#;
        let filtered = filter_json(list, &denied()).unwrap_or_default();
        let value: Value = serde_json::from_slice(&filtered).unwrap_or_default();
        assert_eq!(value["result"]["tools"], json!([{"name": "add"}]));
        let other = br#"{"jsonrpc":"2.0",  "id":1,"result":{"content":[]}}"#;
        assert_eq!(filter_json(other, &denied()).as_deref(), Some(&other[..]));
        let batch = br#"[{"id":1,"result":{"tools":[{"name":"wipe"}]}},{"id":2,"result":{}}]"#;
        let value: Value =
            serde_json::from_slice(&filter_json(batch, &denied()).unwrap_or_default()).unwrap_or_default();
        assert_eq!(value[0]["result"]["tools"], json!([]));
        assert!(filter_json(b"not json", &denied()).is_none());
    }

    #[test]
    fn events_are_rewritten_in_place_keeping_their_other_fields() {
        let event = Bytes::from_static(
            b"event: message\r\nid: 4\r\ndata: {\"id\":1,\"result\":\r\ndata: {\"tools\":[{\"name\":\"wipe\"},{\"name\":\"add\"}]}}\r\n\r\n",
        );
        let out = filter_event(event, &denied());
        assert_eq!(
            out.as_ref(),
            b"event: message\r\nid: 4\r\ndata: {\"id\":1,\"result\":{\"tools\":[{\"name\":\"add\"}]}}\n\r\n"
        );
        let untouched = Bytes::from_static(b": ping\n\ndata: {\"n\":1}\n\n");
        assert_eq!(filter_event(untouched.clone(), &denied()), untouched);
    }

    #[actix_web::test]
    async fn a_stream_split_anywhere_gives_the_same_events() {
        let text =
            "data: {\"id\":1,\"result\":{\"tools\":[{\"name\":\"wipe\"}]}}\r\n\r\nid: 2\rdata: x\r\r: c\n\n";
        let expected = "data: {\"id\":1,\"result\":{\"tools\":[]}}\n\r\nid: 2\rdata: x\r\r: c\n\n";
        for cut in 1..text.len() {
            let (a, b) = text.split_at(cut);
            let chunks =
                vec![Ok::<_, std::io::Error>(Bytes::from(a.to_owned())), Ok(Bytes::from(b.to_owned()))];
            let inner = BoxBody::new(actix_web::body::BodyStream::new(futures_util::stream::iter(chunks)));
            let body = EventFilter::new(inner, denied());
            let out = actix_web::body::to_bytes(body).await.map_err(|e| e.to_string());
            assert_eq!(
                out.as_deref().map(|b| String::from_utf8_lossy(b).into_owned()),
                Ok(expected.to_owned()),
                "cut at {cut}"
            );
        }
    }
}
