//! The JSON-RPC request bodies the proxy reads (for the audit trail, the metrics and the tool
//! rules), parsed one way: a message or a batch, each with its `id`, `method` and the tool a
//! `tools/call` names. A repeated key or anything serde cannot read makes the body unreadable
//! (the backend might read it otherwise), and every caller treats that as such.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

/// The method whose `params.name` is a tool.
pub const TOOLS_CALL: &str = "tools/call";

/// One request, notification or response of a body.
#[derive(Deserialize)]
pub struct Message {
    /// The JSON-RPC id (absent for a notification).
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    method: Option<IgnoredOr<String>>,
    #[serde(default)]
    params: Option<IgnoredOr<Params>>,
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    name: Option<IgnoredOr<String>>,
}

/// A value of the expected type, or anything else (ignored).
#[derive(Deserialize)]
#[serde(untagged)]
enum IgnoredOr<T> {
    Is(T),
    #[allow(dead_code)]
    Other(IgnoredAny),
}

impl Message {
    /// Whether the message has a `method` at all (a response has none).
    pub fn has_method(&self) -> bool {
        self.method.is_some()
    }

    /// The method, when a string.
    pub fn method(&self) -> Option<&str> {
        match &self.method {
            Some(IgnoredOr::Is(m)) => Some(m),
            _ => None,
        }
    }

    /// The tool a `tools/call` names; `None` when it names none in a readable way.
    pub fn tool(&self) -> Option<&str> {
        match &self.params {
            Some(IgnoredOr::Is(Params { name: Some(IgnoredOr::Is(name)) })) => Some(name),
            _ => None,
        }
    }
}

/// Whether `body` is a batch (a JSON array).
pub fn is_batch(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// The messages of `body` (one, or a batch); `None` when it cannot be read.
pub fn parse(body: &[u8]) -> Option<Vec<Message>> {
    match is_batch(body) {
        true => serde_json::from_slice(body).ok(),
        false => serde_json::from_slice::<Message>(body).ok().map(|m| vec![m]),
    }
}
