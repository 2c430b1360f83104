//! The audit trail: one JSON line per security-relevant event (sign-ins, consent, tokens,
//! revocations, denials, proxied tool calls), to standard output or a file of its own.
//!
//! What a line may hold is fixed by [`Event`]: identifiers (user, client, service, grant, tool,
//! JSON-RPC id), outcomes and reasons, a status and a duration. There is no field for a token,
//! code, cookie, secret or tool argument, so none can be written by mistake.
//!
//! Every recorded event is also counted by the [`Counter`] attached with
//! [`Audit::counted_by`] (the metrics), whether or not lines are written: one call site per
//! fact.
//!
//! Each line is written whole with one `write` call under a lock, and flushed, before the
//! event's request goes on: a crash loses no line that was reported done, and lines from
//! several workers never interleave.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// What counts events besides the trail (the metrics, `crate::core::metrics`).
pub trait Counter: Send + Sync {
    /// Counts one event.
    fn count(&self, event: &Event<'_>);
}

/// Where the trail goes.
#[derive(Clone, Default)]
pub struct Audit {
    sink: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
    counter: Option<Arc<dyn Counter>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.sink.is_some() { "Audit(on)" } else { "Audit(off)" })
    }
}

impl Audit {
    /// No trail.
    pub fn off() -> Self {
        Audit { sink: None, counter: None }
    }

    /// Standard output.
    pub fn stdout() -> Self {
        Self::to(Box::new(io::stdout()))
    }

    /// Appends to the file at `path`, created with mode 0600 if missing.
    pub fn file(path: &str) -> io::Result<Self> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        Ok(Self::to(Box::new(options.open(path)?)))
    }

    /// Any writer (tests keep the lines in memory this way).
    pub fn to(writer: Box<dyn Write + Send>) -> Self {
        Audit { sink: Some(Arc::new(Mutex::new(writer))), counter: None }
    }

    /// Also counts every event with `counter`.
    pub fn counted_by(mut self, counter: Arc<dyn Counter>) -> Self {
        self.counter = Some(counter);
        self
    }

    /// Whether lines are written (callers skip work done only for the trail).
    pub fn is_on(&self) -> bool {
        self.sink.is_some()
    }

    /// Counts `event` and writes it as one line, with the time now.
    pub fn record(&self, event: Event<'_>) {
        if let Some(counter) = &self.counter {
            counter.count(&event);
        }
        let Some(sink) = &self.sink else { return };
        let line = Line { time: now_rfc3339(), event };
        let mut bytes = match serde_json::to_vec(&line) {
            Ok(bytes) => bytes,
            Err(e) => return log::error!("audit event not serialized: {e}"),
        };
        bytes.push(b'\n');
        let mut writer = match sink.lock() {
            Ok(writer) => writer,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = writer.write_all(&bytes).and_then(|()| writer.flush()) {
            log::error!("audit line not written: {e}");
        }
    }
}

/// The time now, UTC, RFC 3339 with milliseconds (`2026-12-07T02:40:00.123Z`).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Millisecond).unwrap_or(now).to_string()
}

/// A name someone else chose (a client's `client_name`), cut to 128 characters.
pub fn short(name: &str) -> &str {
    match name.char_indices().nth(128) {
        Some((i, _)) => &name[..i],
        None => name,
    }
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    #[serde(flatten)]
    event: Event<'a>,
}

/// One event, built with struct-update syntax over [`Event::new`]:
/// `Event { user_id: Some(..), ..Event::new("login", request_id, client_ip) }`.
#[derive(Debug, Default, Serialize)]
pub struct Event<'a> {
    /// What happened (`login`, `token_issued`, `tool_call`, ...).
    pub event: &'static str,
    /// The request's id (`X-Request-Id`), or `cli` for a command.
    pub request_id: &'a str,
    /// The client's address (behind trusted proxies, the forwarded one).
    pub client_ip: Option<String>,
    /// What an administrator did (`admin_action`: `rotate_keys`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'a str>,
    /// `success` or `failure` for events that can go either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// Why it failed or was refused: an OAuth error code or a short phrase written in the
    /// code (`'static`: never a value the caller sent; metrics use it as a label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The user id (`{provider}_{sub}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    /// The user's email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_email: Option<&'a str>,
    /// The upstream provider kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'a str>,
    /// The OAuth client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    /// The client's name as registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<&'a str>,
    /// The service id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'a str>,
    /// Granted scopes, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    /// The grant (refresh-token family) the event belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<&'a str>,
    /// The tool of a `tools/call`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<&'a str>,
    /// The JSON-RPC id of a `tools/call`, as the client sent it (a number or a string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonrpc_id: Option<&'a serde_json::Value>,
    /// The HTTP status answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Milliseconds from the request to the end of its answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl<'a> Event<'a> {
    /// An event of kind `event` for the request `request_id` from `client_ip`.
    pub fn new(event: &'static str, request_id: &'a str, client_ip: Option<String>) -> Self {
        Event { event, request_id, client_ip, ..Event::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().map_err(|_| io::ErrorKind::Other)?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_time_and_request() {
        let lines = Lines::default();
        let audit = Audit::to(Box::new(lines.clone()));
        let id = serde_json::json!(7);
        audit.record(Event {
            tool: Some("add"),
            jsonrpc_id: Some(&id),
            status: Some(200),
            ..Event::new("tool_call", "r-1", Some("192.0.2.1".into()))
        });
        audit.record(Event::new("login", "r-2", None));
        let text =
            String::from_utf8(lines.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
        let parsed: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap_or_default()).collect();
        assert_eq!(parsed.len(), 2, "{text}");
        assert_eq!(parsed[0]["event"], "tool_call");
        assert_eq!(parsed[0]["request_id"], "r-1");
        assert_eq!(parsed[0]["client_ip"], "192.0.2.1");
        assert_eq!(parsed[0]["jsonrpc_id"], 7);
        assert!(parsed[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{text}");
        assert!(parsed[1]["client_ip"].is_null() && parsed[1].get("tool").is_none());
    }

    #[test]
    fn off_records_nothing() {
        assert!(!Audit::off().is_on());
        Audit::off().record(Event::new("login", "r", None));
    }
}
