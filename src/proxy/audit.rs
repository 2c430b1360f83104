//! Proxied MCP traffic in the audit trail: one `tool_call` line per `tools/call` message of a
//! request (a batch gives one each), with the user, client, service, tool, JSON-RPC id, the
//! HTTP status answered and the time until the answer ended; and an `access_denied` line for
//! a request the proxy refused on the user's rights (scopes, another user's session, a tool
//! the access rules deny: one line per refused call, with its tool).
//!
//! Only POST bodies read whole are inspected: sized bodies up to 64 KiB, which is every
//! ordinary MCP message, and bodies the step-up check read. A POST whose body could not be
//! read (larger, chunked, or not JSON-RPC the gateway can parse) is still recorded as a
//! `tool_call` with no tool and `reason: "body_not_inspected"`, so no call escapes the trail by
//! its framing. Arguments are never recorded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use serde_json::Value;

use super::error::ProxyError;
use super::jsonrpc;
use crate::core::audit::{self, Audit, Event};
use crate::core::metrics::McpMethod;
use crate::core::model::AccessClaims;
use crate::web::request_id::Caller;

/// One `tools/call` found in a body.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// `params.name`, when a string.
    pub tool: Option<String>,
    /// The JSON-RPC id (absent for a notification).
    pub id: Option<Value>,
}

/// What a request body holds for the trail.
#[derive(Debug, Clone, PartialEq)]
pub enum Calls {
    /// These tool calls (possibly none).
    Read(Vec<ToolCall>),
    /// The body was not inspected.
    NotInspected,
}

/// The tool calls in a JSON-RPC body (one message or a batch). A body serde cannot read
/// (not JSON, a repeated key) is [`Calls::NotInspected`]: the backend may read it otherwise.
pub fn calls_in(body: &[u8]) -> Calls {
    inspect(Some(body)).0
}

/// What a body the proxy holds whole (`None`: one it streams) says, read once: its tool calls
/// for the trail and its MCP method for the metrics.
pub fn inspect(body: Option<&[u8]>) -> (Calls, McpMethod) {
    let Some(body) = body else { return (Calls::NotInspected, McpMethod::Unknown) };
    let Some(messages) = jsonrpc::parse(body) else { return (Calls::NotInspected, McpMethod::Unknown) };
    let method = match (jsonrpc::is_batch(body), messages.first()) {
        (true, _) => McpMethod::Batch,
        (false, Some(m)) if !m.has_method() => McpMethod::Response,
        (false, Some(m)) => m.method().map_or(McpMethod::Other, McpMethod::of_name),
        (false, None) => McpMethod::Other,
    };
    let calls = messages
        .iter()
        .filter(|m| m.method() == Some(jsonrpc::TOOLS_CALL))
        .map(|m| ToolCall { tool: m.tool().map(str::to_owned), id: m.id.clone() })
        .collect();
    (Calls::Read(calls), method)
}

/// How long a worker trusts a client name it looked up.
const NAME_TTL: Duration = Duration::from_secs(60);
/// Names a worker keeps; the map is emptied when it is full. Client ids come only from tokens
/// the gateway signed, so strangers cannot grow it, but it is bounded all the same.
const NAME_CAPACITY: usize = 4096;

/// Registered client names by client id, one map per worker (hence `RefCell`, never held
/// across an `.await`), for the trail's `client_name`. Without it every `tools/call` sent a
/// message to the client registry on another thread, which read and decoded the client from
/// the store: about a quarter of the gateway's CPU per proxied call (`bench/PROFILE.md`). A
/// changed name (an edited Client ID Metadata Document) shows up to [`NAME_TTL`] late: the
/// price.
#[derive(Default)]
pub struct ClientNames {
    known: RefCell<HashMap<String, (Name, Instant)>>,
}

/// A client's registered name, if it has one.
pub type Name = Option<Rc<str>>;

impl ClientNames {
    /// The remembered name of `client_id` (`Some(None)`: the client has none, or is gone),
    /// or `None` when it must be looked up.
    pub fn get(&self, client_id: &str, now: Instant) -> Option<Name> {
        let mut known = self.known.borrow_mut();
        let (name, at) = known.get(client_id)?;
        if now.duration_since(*at) < NAME_TTL {
            return Some(name.clone());
        }
        known.remove(client_id);
        None
    }

    /// Remembers what a lookup found.
    pub fn put(&self, client_id: &str, name: Name, now: Instant) {
        let mut known = self.known.borrow_mut();
        if known.len() >= NAME_CAPACITY {
            known.clear();
        }
        known.insert(client_id.to_owned(), (name, now));
    }

    /// Number of names kept.
    pub fn len(&self) -> usize {
        self.known.borrow().len()
    }

    /// Whether no name is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything a `tool_call` line needs but the status and duration.
pub struct Pending {
    audit: Audit,
    caller: Caller,
    service: String,
    claims: Rc<AccessClaims>,
    client_name: Name,
    calls: Calls,
    started: Instant,
}

impl Pending {
    /// The request's calls, to be recorded when its answer is known.
    pub fn new(
        audit: &Audit,
        caller: Caller,
        service: &str,
        claims: &Rc<AccessClaims>,
        calls: Calls,
    ) -> Self {
        Pending {
            audit: audit.clone(),
            caller,
            service: service.to_owned(),
            claims: Rc::clone(claims),
            client_name: None,
            calls,
            started: Instant::now(),
        }
    }

    /// Whether there is anything to record.
    pub fn is_empty(&self) -> bool {
        matches!(&self.calls, Calls::Read(calls) if calls.is_empty())
    }

    /// The calling client's id.
    pub fn client_id(&self) -> &str {
        &self.claims.client_id
    }

    /// The client's registered name.
    pub fn set_client_name(&mut self, name: Name) {
        self.client_name = name;
    }

    /// Records one line per call with `status`.
    pub fn record(&self, status: u16) {
        let duration = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &self.calls {
            Calls::Read(calls) => {
                for call in calls {
                    let tool = call.tool.as_deref().map(audit::short);
                    self.audit.record(self.event(tool, call.id.as_ref(), None, status, duration));
                }
            }
            Calls::NotInspected => {
                self.audit.record(self.event(None, None, Some("body_not_inspected"), status, duration));
            }
        }
    }

    fn event<'a>(
        &'a self,
        tool: Option<&'a str>,
        id: Option<&'a Value>,
        reason: Option<&'static str>,
        status: u16,
        duration: u64,
    ) -> Event<'a> {
        Event {
            reason,
            user_id: Some(&self.claims.sub),
            user_email: self.claims.email.as_deref(),
            provider: Some(&self.claims.provider),
            client_id: Some(&self.claims.client_id),
            client_name: self.client_name.as_deref().map(audit::short),
            service: Some(&self.service),
            tool,
            jsonrpc_id: id,
            status: Some(status),
            duration_ms: Some(duration),
            ..self.caller.event("tool_call")
        }
    }
}

/// Records an `access_denied` line when `err` refused the user on their rights.
pub fn denied(audit: &Audit, caller: &Caller, service: &str, claims: &AccessClaims, err: &ProxyError) {
    if let ProxyError::ToolDenied(denied) = err {
        for (tool, id) in &denied.refused {
            audit.record(Event {
                reason: Some("access_rule"),
                user_id: Some(&claims.sub),
                user_email: claims.email.as_deref(),
                client_id: Some(&claims.client_id),
                service: Some(service),
                tool: tool.as_deref().map(audit::short),
                jsonrpc_id: id.as_ref(),
                ..caller.event("access_denied")
            });
        }
        return;
    }
    let reason = match err {
        ProxyError::InsufficientScope { .. } => "insufficient_scope",
        ProxyError::ForeignSession => "mcp_session_of_another_user",
        _ => return,
    };
    audit.record(Event {
        reason: Some(reason),
        user_id: Some(&claims.sub),
        user_email: claims.email.as_deref(),
        client_id: Some(&claims.client_id),
        service: Some(service),
        ..caller.event("access_denied")
    });
}

/// A response body that records its request's tool calls when it ends (or is dropped: the
/// client went away), with the duration until then.
pub struct Recorded<B> {
    inner: B,
    pending: Pending,
    status: u16,
}

impl<B> Recorded<B> {
    /// Wraps `inner`, the body of a `status` answer.
    pub fn new(inner: B, pending: Pending, status: u16) -> Self {
        Recorded { inner, pending, status }
    }
}

impl<B> Drop for Recorded<B> {
    fn drop(&mut self) {
        self.pending.record(self.status);
    }
}

impl<B: MessageBody + Unpin> MessageBody for Recorded<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_names_are_kept_for_their_ttl_and_stay_bounded() {
        let names = ClientNames::default();
        let t0 = Instant::now();
        assert_eq!(names.get("c1", t0), None);
        names.put("c1", Some("Editor".into()), t0);
        names.put("gone", None, t0);
        assert_eq!(names.get("c1", t0 + NAME_TTL / 2), Some(Some("Editor".into())));
        assert_eq!(names.get("gone", t0), Some(None), "a client without a name is remembered too");
        assert_eq!(names.get("c1", t0 + NAME_TTL), None, "looked up again once stale");
        assert_eq!(names.len(), 1);
        for i in 0..NAME_CAPACITY + 10 {
            names.put(&format!("client-{i}"), None, t0);
        }
        assert!(names.len() <= NAME_CAPACITY);
    }

    #[test]
    fn the_method_of_a_body_is_read_with_its_calls() {
        let method = |body: &[u8]| inspect(Some(body)).1;
        assert_eq!(method(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#), McpMethod::ToolsList);
        assert_eq!(
            method(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            McpMethod::Notification
        );
        assert_eq!(method(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#), McpMethod::Response);
        assert_eq!(method(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#), McpMethod::Batch);
        assert_eq!(method(br#"{"jsonrpc":"2.0","id":1,"method":7}"#), McpMethod::Other);
        assert_eq!(method(b"{"), McpMethod::Unknown);
    }

    fn call(tool: &str, id: Value) -> ToolCall {
        ToolCall { tool: Some(tool.into()), id: Some(id) }
    }

    #[test]
    fn finds_tool_calls_in_one_message_and_in_batches() {
        let one =
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","arguments":{"a":1}}}"#;
        assert_eq!(calls_in(one), Calls::Read(vec![call("add", json!(7))]));
        let batch = br#" [{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"a"}},
            {"jsonrpc":"2.0","method":"notifications/initialized"},
            {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}]"#;
        assert_eq!(calls_in(batch), Calls::Read(vec![call("a", json!("x")), call("b", json!(2))]));
        assert_eq!(calls_in(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#), Calls::Read(vec![]));
    }

    #[test]
    fn escapes_and_odd_shapes_do_not_hide_a_call() {
        // `\u002f` is `/` to every JSON reader, the backend's included.
        let escaped = br#"{"id":1,"method":"tools\u002fcall","params":{"name":"rm"}}"#;
        assert_eq!(calls_in(escaped), Calls::Read(vec![call("rm", json!(1))]));
        let odd_params = br#"{"id":1,"method":"tools/call","params":[1,2]}"#;
        assert_eq!(calls_in(odd_params), Calls::Read(vec![ToolCall { tool: None, id: Some(json!(1)) }]));
        // A repeated key: which one wins is up to the reader, so the body counts as unread.
        let repeated = br#"{"id":1,"method":"tools/list","method":"tools/call"}"#;
        assert_eq!(calls_in(repeated), Calls::NotInspected);
        assert_eq!(calls_in(b"not json"), Calls::NotInspected);
        assert_eq!(inspect(None), (Calls::NotInspected, McpMethod::Unknown));
    }
}
