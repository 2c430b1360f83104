//! Step-up authorization (checklist A10): `mcp_services.ID.tool_scopes` names the scopes an
//! MCP method (`tools/call`, `resources/read`, ..) or a tool (the `params.name` of a
//! `tools/call`) needs. A request needing scopes its token lacks gets 403 with
//! `error="insufficient_scope"` and, in `scope`, every scope needed: the token's own plus the
//! missing ones, so the client can ask for all of them in one new authorization.
//!
//! Where the operation is read:
//! - The 2026-07-28 revision's `Mcp-Method` / `Mcp-Name` headers, when present, are checked
//!   first: a refusal then costs no body read.
//! - The headers are client-controlled hints; the body is what the backend executes. So a POST
//!   to a service with `tool_scopes` always has its JSON-RPC body read (up to
//!   [`MAX_INSPECTED_BODY`], 413 beyond) and every message of a batch checked; the buffered
//!   bytes are then forwarded unchanged. So does a GET, HEAD or DELETE that carries a body: the
//!   transport never sends one, but a backend may well execute it. Other methods never get
//!   here: the proxy answers them 405. When the headers and the body disagree the request is
//!   refused with 400, as the 2026-07-28 revision asks of servers: letting either win would let
//!   an intermediary and the backend act on different operations.
//! - A body that is not JSON-RPC the gateway can read (bad JSON, repeated keys, compressed) is
//!   refused with 400 rather than forwarded unchecked.
//!
//! Services without `tool_scopes` never get here: their bodies stream untouched.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::auth::challenge_with_scopes;
use super::error::ProxyError;
use super::forward::{self, Body};
use super::slow_body::{self, Unread};
use crate::config::{ServiceSettings, Settings};

/// Largest body read to find its JSON-RPC methods.
pub const MAX_INSPECTED_BODY: usize = 1 << 20;
/// The method whose `params.name` is a tool name.
const TOOLS_CALL: &str = "tools/call";

/// One request's view of the step-up rules.
pub struct Gate<'a> {
    /// Gateway settings (issuer for the challenge).
    pub settings: &'a Settings,
    /// Service id.
    pub service_id: &'a str,
    /// The service; its `tool_scopes` are the rules.
    pub service: &'a ServiceSettings,
    /// The token's `scope` claim (space-separated).
    pub token_scope: &'a str,
}

/// The operation the `Mcp-Method` / `Mcp-Name` headers declare.
#[derive(Debug, PartialEq, Eq)]
struct Declared<'a> {
    method: &'a str,
    name: Option<&'a str>,
}

/// One JSON-RPC message, reduced to what authorization needs. Other members are skipped
/// unread; a repeated `method` or `params` fails the parse (no parser differential with the
/// backend over which of two values counts).
#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Params>,
}

/// `params`, reduced to its `name`. Must be an object when present (MCP never sends
/// by-position params), and `name`, when present, a string that appears once.
#[derive(Debug, Default)]
struct Params {
    name: Option<String>,
}

impl Message {
    fn call(&self) -> (&str, Option<&str>) {
        let method = self.method.as_deref().unwrap_or("");
        (method, self.params.as_ref().and_then(|p| p.name.as_deref()))
    }
}

impl Gate<'_> {
    /// Checks the request against the service's `tool_scopes` and returns the body to forward:
    /// the buffered bytes of a checked POST (or of any other request with a body), the
    /// untouched, empty stream otherwise.
    pub async fn admit(&self, req: &HttpRequest, payload: web::Payload) -> Result<Body, ProxyError> {
        let declared = declared(req.headers())?;
        if let Some(d) = &declared {
            self.require([(d.method, d.name)])?;
        }
        if req.method() != Method::POST && !forward::carries_body(req.headers()) {
            return Ok(Body::Stream(payload));
        }
        let limit = slow_body::limit(self.settings.limits.body_timeout_ms);
        let bytes = read_body(payload, req.headers(), limit).await?;
        let messages = parse(&bytes)?;
        if let Some(d) = &declared {
            agree(d, &messages, is_batch(&bytes))?;
        }
        self.require(messages.iter().map(Message::call))?;
        Ok(Body::Buffered(bytes))
    }

    /// Refuses with 403 when `calls` need scopes the token lacks.
    fn require<'c>(
        &self,
        calls: impl IntoIterator<Item = (&'c str, Option<&'c str>)>,
    ) -> Result<(), ProxyError> {
        let missing = missing(&self.service.tool_scopes, self.token_scope, calls);
        if missing.is_empty() {
            return Ok(());
        }
        log::info!("service '{}': refused a request needing scope(s) {}", self.service_id, missing.join(" "));
        let needed = self.token_scope.split_whitespace().chain(missing.iter().copied());
        let error = Some(("insufficient_scope", "the access token lacks a scope this request needs"));
        let challenge = challenge_with_scopes(self.settings, self.service_id, needed, error);
        Err(ProxyError::InsufficientScope {
            challenge,
            missing: missing.into_iter().map(str::to_owned).collect(),
        })
    }
}

/// The scopes `calls` need that `token_scope` lacks, each once, in rule order.
fn missing<'s, 'c>(
    rules: &'s BTreeMap<String, Vec<String>>,
    token_scope: &str,
    calls: impl IntoIterator<Item = (&'c str, Option<&'c str>)>,
) -> Vec<&'s str> {
    let mut out: Vec<&'s str> = Vec::new();
    for (method, name) in calls {
        let by_method = rules.get(method);
        let by_tool = name.filter(|_| method == TOOLS_CALL).and_then(|n| rules.get(n));
        for scope in by_method.into_iter().chain(by_tool).flatten() {
            let held = token_scope.split_whitespace().any(|t| t == scope);
            if !held && !out.contains(&scope.as_str()) {
                out.push(scope);
            }
        }
    }
    out
}

/// The single value of header `name`, if any; 400 when repeated or not visible ASCII.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ProxyError> {
    let mut values = headers.get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProxyError::BadRequest("a request header that must appear once is repeated"));
    }
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| ProxyError::BadRequest("a request header is malformed"))
}

/// The operation the headers declare, when `Mcp-Method` is present.
fn declared(headers: &HeaderMap) -> Result<Option<Declared<'_>>, ProxyError> {
    let Some(method) = single(headers, "mcp-method")? else {
        return Ok(None);
    };
    Ok(Some(Declared { method, name: single(headers, "mcp-name")? }))
}

/// The whole body, at most [`MAX_INSPECTED_BODY`] bytes, within `limit` (408 after).
pub(super) async fn read_body(
    mut payload: web::Payload,
    headers: &HeaderMap,
    limit: Option<Duration>,
) -> Result<Bytes, ProxyError> {
    let declared_len = headers
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > MAX_INSPECTED_BODY as u64) {
        return Err(ProxyError::PayloadTooLarge(MAX_INSPECTED_BODY));
    }
    let read = read_at_most(&mut payload, MAX_INSPECTED_BODY);
    let Some(limit) = limit else {
        return read.await;
    };
    match actix_web::rt::time::timeout(limit, read).await {
        Ok(read) => read,
        Err(_) => {
            log::info!("the request body did not arrive within {} ms; 408", limit.as_millis());
            // The 408 holds the rest of the body, so that its connection is closed.
            Err(ProxyError::BodyTimeout(Unread::new(payload)))
        }
    }
}

/// `payload` to its end, at most `max` bytes (413 beyond); a body of one piece is not copied.
async fn read_at_most(payload: &mut web::Payload, max: usize) -> Result<Bytes, ProxyError> {
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut got = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| {
            log::debug!("request body could not be read: {err}");
            ProxyError::BadRequest("the request body could not be read")
        })?;
        got += chunk.len();
        if got > max {
            return Err(ProxyError::PayloadTooLarge(max));
        }
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            earlier => {
                joined.extend_from_slice(&earlier.unwrap_or_default());
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}

/// The JSON-RPC messages of `body`: one object, or a batch array.
fn parse(body: &[u8]) -> Result<Vec<Message>, ProxyError> {
    let bad = |err: serde_json::Error| {
        log::debug!("request body is not JSON-RPC: {err}");
        ProxyError::BadRequest("the request body is not a JSON-RPC message the gateway can read")
    };
    if is_batch(body) {
        serde_json::from_slice::<Vec<Message>>(body).map_err(bad)
    } else {
        serde_json::from_slice::<Message>(body).map(|m| vec![m]).map_err(bad)
    }
}

/// Whether `body` is a JSON-RPC batch (an array).
fn is_batch(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// 400 unless the body is one message, not a batch, doing what the headers declare (method,
/// and for `tools/call` the tool name; the other names are not used for authorization).
fn agree(declared: &Declared<'_>, messages: &[Message], batch: bool) -> Result<(), ProxyError> {
    let mismatch = ProxyError::BadRequest("the Mcp-Method / Mcp-Name headers do not match the request body");
    let [message] = messages else {
        return Err(mismatch);
    };
    if batch {
        return Err(mismatch);
    }
    let (method, name) = message.call();
    if method != declared.method || (method == TOOLS_CALL && name != declared.name) {
        return Err(mismatch);
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ParamsVisitor)
    }
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Params;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a params object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
        let mut params = Params::default();
        while let Some(key) = map.next_key::<String>()? {
            if key != "name" {
                map.next_value::<IgnoredAny>()?;
            } else if params.name.is_some() {
                return Err(de::Error::duplicate_field("name"));
            } else {
                params.name = Some(map.next_value()?);
            }
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn rules() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            ("tools/call".to_owned(), vec!["tools".to_owned()]),
            ("delete_repo".to_owned(), vec!["admin".to_owned(), "write".to_owned()]),
            ("resources/read".to_owned(), vec!["read".to_owned()]),
        ])
    }

    fn calls(body: &str) -> Vec<(String, Option<String>)> {
        let messages = parse(body.as_bytes()).expect("parses");
        messages.iter().map(|m| (m.call().0.to_owned(), m.call().1.map(str::to_owned))).collect()
    }

    fn missing_for(token: &str, body: &str) -> Vec<String> {
        let calls = calls(body);
        let rules = rules();
        let got = missing(&rules, token, calls.iter().map(|(m, n)| (m.as_str(), n.as_deref())));
        got.into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn method_and_tool_rules_add_up() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo"}}"#;
        assert_eq!(missing_for("", call), ["tools", "admin", "write"]);
        assert_eq!(missing_for("write tools", call), ["admin"]);
        assert!(missing_for("tools admin write", call).is_empty());
        let other = r#"{"method":"tools/call","params":{"name":"echo","arguments":{"name":1}}}"#;
        assert_eq!(missing_for("", other), ["tools"]);
        assert!(missing_for("", r#"{"method":"tools/list"}"#).is_empty());
    }

    #[test]
    fn a_name_counts_only_in_tools_call() {
        let prompt = r#"{"method":"prompts/get","params":{"name":"delete_repo"}}"#;
        assert!(missing_for("", prompt).is_empty());
    }

    #[test]
    fn every_message_of_a_batch_is_checked() {
        let batch = r#" [{"method":"tools/list","id":1},
            {"method":"resources/read","id":2,"params":{"uri":"file:///x"}},
            {"jsonrpc":"2.0","id":7,"result":{}}]"#;
        assert_eq!(missing_for("", batch), ["read"]);
    }

    #[test]
    fn unreadable_bodies_are_refused() {
        for body in [
            "",
            "not json",
            r#"{"method":"tools/list","method":"tools/call"}"#,
            r#"{"method":"tools/call","params":{"name":"a","name":"delete_repo"}}"#,
            r#"{"method":"tools/call","params":["delete_repo"]}"#,
            r#"{"method":"tools/call","params":{"name":5}}"#,
            r#"[1]"#,
            "\u{feff}{}",
        ] {
            assert!(parse(body.as_bytes()).is_err(), "{body:?}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn headers_declare_method_and_name() {
        assert_eq!(declared(&headers(&[])).ok(), Some(None));
        let h = headers(&[("mcp-method", "tools/call"), ("mcp-name", "delete_repo")]);
        assert_eq!(
            declared(&h).ok(),
            Some(Some(Declared { method: "tools/call", name: Some("delete_repo") }))
        );
        let twice = headers(&[("mcp-method", "tools/call"), ("mcp-method", "tools/list")]);
        assert!(declared(&twice).is_err());
    }

    #[test]
    fn headers_and_body_must_agree() {
        let declared = Declared { method: "tools/call", name: Some("echo") };
        let same = parse(br#"{"method":"tools/call","params":{"name":"echo"}}"#).expect("parses");
        assert!(agree(&declared, &same, false).is_ok());
        for body in [
            r#"{"method":"tools/call","params":{"name":"delete_repo"}}"#,
            r#"{"method":"tools/list"}"#,
            r#"[{"method":"tools/call","params":{"name":"echo"}}]"#,
            r#"{"method":"tools/call"}"#,
        ] {
            let messages = parse(body.as_bytes()).expect("parses");
            assert!(agree(&declared, &messages, is_batch(body.as_bytes())).is_err(), "{body}");
        }
    }
}
