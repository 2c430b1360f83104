//! What the gateway tells its operator: the form of its log lines, where its audit trail
//! goes, and where its metrics are served.

use serde::{Deserialize, Serialize};
use serde_aux::field_attributes::deserialize_bool_from_anything;

/// `log`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LogSettings {
    /// `text` (one readable line) or `json` (one object per line: time, level, target,
    /// message). The level comes from `RUST_LOG` (default `info`, `debug` with `--debug`).
    pub format: LogFormat,
}

/// The form of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// env_logger's readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `audit`: the trail of security-relevant events (`crate::core::audit`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct AuditSettings {
    /// Whether events are recorded.
    #[serde(deserialize_with = "deserialize_bool_from_anything")]
    pub enabled: bool,
    /// A file to append the lines to (created with mode 0600); standard output when unset.
    pub path: Option<String>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { enabled: true, path: None }
    }
}

/// `metrics`: Prometheus metrics (`crate::core::metrics`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// Address (`IP:port`) of the listener that serves `GET /metrics`; off when unset. A
    /// listener of its own, so the metrics are never reachable through the public port.
    pub listen: Option<String>,
}
