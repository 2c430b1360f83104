//! Prometheus metrics: what the operator graphs. Every name starts with `mcp_gateway_`; every
//! label takes values from a set fixed by the configuration or by the code (service ids that
//! exist, MCP methods the gateway knows, status classes, backend and operation names, event
//! reasons written in the code), never a value a caller sent, so no stranger can grow the
//! number of series.
//!
//! Cost: the proxy's per-service handles ([`ServiceMetrics`]) are resolved once, so a proxied
//! request pays one map read for its service and a few atomic increments; the security events
//! are counted where they are audited (this module's [`Counter`], called by
//! [`crate::core::audit::Audit::record`]), so each fact is reported in one place for both.
//! Series appear on first use, so a scrape lists what happened, not every combination.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::audit::{Counter, Event};

/// Label value of a service, provider or reason outside the known set.
pub const OTHER: &str = "_other";

/// Seconds, for request latencies (time to the response head).
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Seconds, for storage round trips.
const STORAGE_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Seconds, from a revocation's publication to its arrival at an instance.
const PROPAGATION_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];

/// Provider kinds a login can be labelled with.
const PROVIDERS: &[&str] = &["dev", "google", "github", "okta", "oidc", "client"];

/// What a proxied request was, as far as the gateway looked: the JSON-RPC method of a body it
/// read, or what the HTTP method alone says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpMethod {
    /// `initialize`.
    Initialize,
    /// `ping`.
    Ping,
    /// `tools/list`.
    ToolsList,
    /// `tools/call`.
    ToolsCall,
    /// `resources/list`.
    ResourcesList,
    /// `resources/templates/list`.
    ResourceTemplatesList,
    /// `resources/read`.
    ResourcesRead,
    /// `resources/subscribe` and `resources/unsubscribe`.
    ResourcesSubscribe,
    /// `prompts/list`.
    PromptsList,
    /// `prompts/get`.
    PromptsGet,
    /// `completion/complete`.
    Complete,
    /// `logging/setLevel`.
    SetLevel,
    /// `tasks/...`.
    Tasks,
    /// Any `notifications/...`.
    Notification,
    /// A JSON-RPC response the client sends back (to sampling, elicitation, roots).
    Response,
    /// A JSON-RPC batch.
    Batch,
    /// Another method.
    Other,
    /// A `POST` body the gateway did not read (large, chunked, not JSON-RPC).
    Unknown,
    /// A `GET` (or `HEAD`): the server-to-client event stream.
    Stream,
    /// A `DELETE`: the client ends its session.
    Delete,
}

impl McpMethod {
    const COUNT: usize = 20;

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            McpMethod::Initialize => "initialize",
            McpMethod::Ping => "ping",
            McpMethod::ToolsList => "tools/list",
            McpMethod::ToolsCall => "tools/call",
            McpMethod::ResourcesList => "resources/list",
            McpMethod::ResourceTemplatesList => "resources/templates/list",
            McpMethod::ResourcesRead => "resources/read",
            McpMethod::ResourcesSubscribe => "resources/subscribe",
            McpMethod::PromptsList => "prompts/list",
            McpMethod::PromptsGet => "prompts/get",
            McpMethod::Complete => "completion/complete",
            McpMethod::SetLevel => "logging/setLevel",
            McpMethod::Tasks => "tasks",
            McpMethod::Notification => "notification",
            McpMethod::Response => "response",
            McpMethod::Batch => "batch",
            McpMethod::Other => "other",
            McpMethod::Unknown => "unknown",
            McpMethod::Stream => "stream",
            McpMethod::Delete => "delete",
        }
    }

    /// The method of a JSON-RPC request or notification named `name`.
    pub fn of_name(name: &str) -> Self {
        match name {
            "initialize" => McpMethod::Initialize,
            "ping" => McpMethod::Ping,
            "tools/list" => McpMethod::ToolsList,
            "tools/call" => McpMethod::ToolsCall,
            "resources/list" => McpMethod::ResourcesList,
            "resources/templates/list" => McpMethod::ResourceTemplatesList,
            "resources/read" => McpMethod::ResourcesRead,
            "resources/subscribe" | "resources/unsubscribe" => McpMethod::ResourcesSubscribe,
            "prompts/list" => McpMethod::PromptsList,
            "prompts/get" => McpMethod::PromptsGet,
            "completion/complete" => McpMethod::Complete,
            "logging/setLevel" => McpMethod::SetLevel,
            n if n.starts_with("tasks/") => McpMethod::Tasks,
            n if n.starts_with("notifications/") => McpMethod::Notification,
            _ => McpMethod::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Status classes, by `status / 100 - 1`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn class_of(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

/// The storage operations counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// Write.
    Put,
    /// Write unless present.
    PutIfAbsent,
    /// Read.
    Get,
    /// Read and delete.
    Take,
    /// Delete.
    Delete,
    /// Health check.
    Ping,
    /// Revocation broadcast.
    PublishRevocation,
    /// Key listing (administration).
    Keys,
}

impl StoreOp {
    fn as_str(self) -> &'static str {
        match self {
            StoreOp::Put => "put",
            StoreOp::PutIfAbsent => "put_if_absent",
            StoreOp::Get => "get",
            StoreOp::Take => "take",
            StoreOp::Delete => "delete",
            StoreOp::Ping => "ping",
            StoreOp::PublishRevocation => "publish_revocation",
            StoreOp::Keys => "keys",
        }
    }
}

/// The metric families, registered once.
struct Families {
    proxy_requests: IntCounterVec,
    proxy_duration: HistogramVec,
    backend_errors: IntCounterVec,
    backend_timeouts: IntCounterVec,
    open_streams: IntGaugeVec,
    logins: IntCounterVec,
    clients_registered: IntCounter,
    consents: IntCounterVec,
    denied: IntCounterVec,
    issued: IntCounterVec,
    refreshed: IntCounterVec,
    revoked: IntCounterVec,
    reuse: IntCounter,
    grants_revoked: IntCounterVec,
    rate_limited: IntCounterVec,
    storage_ops: IntCounterVec,
    storage_duration: HistogramVec,
    propagation: Histogram,
}

impl Families {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram =
            |name: &str, help: &str, labels: &[&str], buckets: &[f64]| -> prometheus::Result<HistogramVec> {
                let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
                let h = HistogramVec::new(opts, labels)?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let single = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let open_streams = IntGaugeVec::new(
            Opts::new("mcp_gateway_sse_streams_open", "Event streams open from backends to clients"),
            &["service"],
        )?;
        registry.register(Box::new(open_streams.clone()))?;
        let propagation = Histogram::with_opts(
            HistogramOpts::new(
                "mcp_gateway_revocation_propagation_seconds",
                "Time from a revocation's publication by any instance to its arrival here (Redis)",
            )
            .buckets(PROPAGATION_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(propagation.clone()))?;
        Ok(Families {
            proxy_requests: counter(
                "mcp_gateway_proxy_requests_total",
                "Proxied MCP requests by service, MCP method and HTTP status class",
                &["service", "method", "status"],
            )?,
            proxy_duration: histogram(
                "mcp_gateway_proxy_request_duration_seconds",
                "Time from a proxied request's arrival to its response head",
                &["service", "method"],
                LATENCY_BUCKETS,
            )?,
            backend_errors: counter(
                "mcp_gateway_backend_errors_total",
                "Backend requests that failed (unreachable, broken answer)",
                &["service"],
            )?,
            backend_timeouts: counter(
                "mcp_gateway_backend_timeouts_total",
                "Backend requests with no response head within the service's timeout",
                &["service"],
            )?,
            open_streams,
            logins: counter(
                "mcp_gateway_logins_total",
                "Sign-ins at the upstream provider by provider and outcome",
                &["provider", "outcome"],
            )?,
            clients_registered: single(
                "mcp_gateway_clients_registered_total",
                "Dynamic client registrations",
            )?,
            consents: counter(
                "mcp_gateway_consents_granted_total",
                "Consents given on the consent page",
                &["service"],
            )?,
            denied: counter(
                "mcp_gateway_access_denied_total",
                "Requests refused on the person's rights, by service and reason",
                &["service", "reason"],
            )?,
            issued: counter(
                "mcp_gateway_tokens_issued_total",
                "Access tokens issued for an authorization code",
                &["service"],
            )?,
            refreshed: counter(
                "mcp_gateway_tokens_refreshed_total",
                "Refresh-token rotations",
                &["service"],
            )?,
            revoked: counter(
                "mcp_gateway_tokens_revoked_total",
                "Tokens revoked at the revocation endpoint",
                &["token_type"],
            )?,
            reuse: single(
                "mcp_gateway_refresh_reuse_detected_total",
                "Refresh tokens presented again after their rotation (the family is revoked)",
            )?,
            grants_revoked: counter(
                "mcp_gateway_grants_revoked_total",
                "Grants (token families) revoked by the gateway",
                &["reason"],
            )?,
            rate_limited: counter(
                "mcp_gateway_rate_limited_total",
                "Requests refused by a rate limit, by endpoint",
                &["endpoint"],
            )?,
            storage_ops: counter(
                "mcp_gateway_storage_operations_total",
                "Storage operations by backend, operation and outcome",
                &["backend", "operation", "outcome"],
            )?,
            storage_duration: histogram(
                "mcp_gateway_storage_operation_duration_seconds",
                "Storage operation latency by backend and operation",
                &["backend", "operation"],
                STORAGE_BUCKETS,
            )?,
            propagation,
        })
    }
}

/// The gateway's metrics: cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    families: Families,
    services: HashMap<String, Arc<ServiceMetrics>>,
    other_service: Arc<ServiceMetrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The metrics of a gateway serving `services`, version `version`.
    pub fn new<'a>(services: impl IntoIterator<Item = &'a str>, version: &str) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let families = Families::register(&registry)?;
        let build = IntGaugeVec::new(
            Opts::new("mcp_gateway_build_info", "The running gateway's version (always 1)"),
            &["version"],
        )?;
        registry.register(Box::new(build.clone()))?;
        build.with_label_values(&[version]).set(1);
        let services = services
            .into_iter()
            .map(|id| (id.to_owned(), Arc::new(ServiceMetrics::new(&families, id))))
            .collect();
        let other_service = Arc::new(ServiceMetrics::new(&families, OTHER));
        Ok(Metrics { inner: Arc::new(Inner { registry, families, services, other_service }) })
    }

    /// The handles of service `id` (a path naming no service shares one set, labelled
    /// [`OTHER`]).
    pub fn service(&self, id: &str) -> &Arc<ServiceMetrics> {
        self.inner.services.get(id).unwrap_or(&self.inner.other_service)
    }

    /// The handles of a storage backend named `backend` (`memory`, `redis`, `vault`).
    pub fn storage(&self, backend: &'static str) -> StoreMetrics {
        let f = &self.inner.families;
        StoreMetrics {
            backend,
            ops: f.storage_ops.clone(),
            duration: f.storage_duration.clone(),
            propagation: f.propagation.clone(),
        }
    }

    /// One request refused by the rate limit of `endpoint`.
    pub fn rate_limited(&self, endpoint: &'static str) {
        self.inner.families.rate_limited.with_label_values(&[endpoint]).inc();
    }

    fn service_label<'a>(&'a self, service: Option<&str>) -> &'a str {
        match service {
            None | Some("") => "",
            Some(id) => self.inner.services.get_key_value(id).map_or(OTHER, |(k, _)| k.as_str()),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> prometheus::Result<String> {
        TextEncoder::new().encode_to_string(&self.inner.registry.gather())
    }
}

impl Counter for Metrics {
    /// Counts an audited event (see the module docs).
    fn count(&self, event: &Event<'_>) {
        let f = &self.inner.families;
        let service = || self.service_label(event.service);
        let reason = || event.reason.unwrap_or("");
        match event.event {
            "login" => {
                let provider = event.provider.filter(|p| PROVIDERS.contains(p)).unwrap_or(OTHER);
                f.logins.with_label_values(&[provider, event.outcome.unwrap_or("")]).inc();
            }
            "client_registered" => f.clients_registered.inc(),
            "consent_granted" => f.consents.with_label_values(&[service()]).inc(),
            "access_denied" => f.denied.with_label_values(&[service(), reason()]).inc(),
            "token_issued" => f.issued.with_label_values(&[service()]).inc(),
            "token_refreshed" => f.refreshed.with_label_values(&[service()]).inc(),
            "token_revoked" => f.revoked.with_label_values(&[reason()]).inc(),
            "refresh_reuse_detected" => f.reuse.inc(),
            "grant_revoked" => f.grants_revoked.with_label_values(&[reason()]).inc(),
            _ => {}
        }
    }
}

/// One service's proxy metrics, resolved so that the hot path only increments.
pub struct ServiceMetrics {
    id: String,
    requests_family: IntCounterVec,
    duration_family: HistogramVec,
    requests: [[OnceLock<IntCounter>; 5]; McpMethod::COUNT],
    duration: [OnceLock<Histogram>; McpMethod::COUNT],
    /// Backend requests that failed.
    pub backend_errors: IntCounter,
    /// Backend requests that timed out.
    pub backend_timeouts: IntCounter,
    /// Event streams open.
    pub open_streams: IntGauge,
}

impl ServiceMetrics {
    fn new(f: &Families, id: &str) -> Self {
        ServiceMetrics {
            id: id.to_owned(),
            requests_family: f.proxy_requests.clone(),
            duration_family: f.proxy_duration.clone(),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            duration: std::array::from_fn(|_| OnceLock::new()),
            backend_errors: f.backend_errors.with_label_values(&[id]),
            backend_timeouts: f.backend_timeouts.with_label_values(&[id]),
            open_streams: f.open_streams.with_label_values(&[id]),
        }
    }

    /// One proxied request of `method`, answered `status` after `elapsed`.
    pub fn observe(&self, method: McpMethod, status: u16, elapsed: Duration) {
        let (m, class) = (method.index(), class_of(status));
        let counter = self.requests[m][class].get_or_init(|| {
            self.requests_family.with_label_values(&[self.id.as_str(), method.as_str(), CLASSES[class]])
        });
        counter.inc();
        let histogram = self.duration[m]
            .get_or_init(|| self.duration_family.with_label_values(&[self.id.as_str(), method.as_str()]));
        histogram.observe(elapsed.as_secs_f64());
    }
}

/// One storage backend's metrics.
#[derive(Clone)]
pub struct StoreMetrics {
    backend: &'static str,
    ops: IntCounterVec,
    duration: HistogramVec,
    propagation: Histogram,
}

impl StoreMetrics {
    /// One `op` that succeeded (`ok`) or failed, after `elapsed`.
    pub fn observe(&self, op: StoreOp, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.ops.with_label_values(&[self.backend, op.as_str(), outcome]).inc();
        self.duration.with_label_values(&[self.backend, op.as_str()]).observe(elapsed.as_secs_f64());
    }

    /// A revocation that arrived `delay` after it was published.
    pub fn propagated(&self, delay: Duration) {
        self.propagation.observe(delay.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(["calc"], "1.2.3").unwrap_or_else(|e| panic!("metrics: {e}"))
    }

    fn scrape(m: &Metrics) -> String {
        m.render().unwrap_or_else(|e| panic!("render: {e}"))
    }

    #[test]
    fn proxied_requests_are_counted_by_service_method_and_class() {
        let m = metrics();
        m.service("calc").observe(McpMethod::ToolsCall, 200, Duration::from_millis(3));
        m.service("calc").observe(McpMethod::ToolsCall, 201, Duration::from_millis(3));
        m.service("calc").observe(McpMethod::Stream, 502, Duration::from_millis(1));
        let text = scrape(&m);
        assert!(
            text.contains(
                r#"mcp_gateway_proxy_requests_total{method="tools/call",service="calc",status="2xx"} 2"#
            ),
            "{text}"
        );
        assert!(text
            .contains(r#"mcp_gateway_proxy_requests_total{method="stream",service="calc",status="5xx"} 1"#));
        assert!(text.contains(
            r#"mcp_gateway_proxy_request_duration_seconds_bucket{method="tools/call",service="calc",le="0.005"} 2"#
        ));
        assert!(text.contains(r#"mcp_gateway_build_info{version="1.2.3"} 1"#));
        // Nothing that did not happen is listed.
        assert!(!text.contains(r#"method="ping""#));
    }

    #[test]
    fn names_a_caller_chose_never_become_labels() {
        let m = metrics();
        m.service("../../x").observe(McpMethod::of_name("evil/method"), 404, Duration::ZERO);
        m.count(&Event { service: Some("made-up"), ..Event::new("token_issued", "r", None) });
        m.count(&Event {
            provider: Some("mallory"),
            outcome: Some("success"),
            ..Event::new("login", "r", None)
        });
        let text = scrape(&m);
        assert!(!text.contains("../../x") && !text.contains("evil") && !text.contains("made-up"), "{text}");
        assert!(!text.contains("mallory"));
        assert!(text
            .contains(r#"mcp_gateway_proxy_requests_total{method="other",service="_other",status="4xx"} 1"#));
        assert!(text.contains(r#"mcp_gateway_tokens_issued_total{service="_other"} 1"#));
        assert!(text.contains(r#"mcp_gateway_logins_total{outcome="success",provider="_other"} 1"#));
    }

    #[test]
    fn audited_events_are_counted() {
        let m = metrics();
        let at = |kind| Event::new(kind, "r", None);
        m.count(&Event { provider: Some("dev"), outcome: Some("failure"), ..at("login") });
        m.count(&Event { service: Some("calc"), reason: Some("insufficient_scope"), ..at("access_denied") });
        m.count(&Event { service: Some("calc"), ..at("token_refreshed") });
        m.count(&Event { reason: Some("refresh_token"), ..at("token_revoked") });
        m.count(&at("refresh_reuse_detected"));
        m.count(&at("tool_call"));
        let text = scrape(&m);
        for line in [
            r#"mcp_gateway_logins_total{outcome="failure",provider="dev"} 1"#,
            r#"mcp_gateway_access_denied_total{reason="insufficient_scope",service="calc"} 1"#,
            r#"mcp_gateway_tokens_refreshed_total{service="calc"} 1"#,
            r#"mcp_gateway_tokens_revoked_total{token_type="refresh_token"} 1"#,
            "mcp_gateway_refresh_reuse_detected_total 1",
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
    }

    #[test]
    fn storage_operations_carry_backend_operation_and_outcome() {
        let m = metrics();
        let redis = m.storage("redis");
        redis.observe(StoreOp::Get, true, Duration::from_micros(300));
        redis.observe(StoreOp::Take, false, Duration::from_millis(2));
        redis.propagated(Duration::from_millis(40));
        let text = scrape(&m);
        assert!(text.contains(
            r#"mcp_gateway_storage_operations_total{backend="redis",operation="get",outcome="ok"} 1"#
        ));
        assert!(text.contains(
            r#"mcp_gateway_storage_operations_total{backend="redis",operation="take",outcome="error"} 1"#
        ));
        assert!(text.contains("mcp_gateway_revocation_propagation_seconds_count 1"));
    }

    #[test]
    fn method_names_map_to_a_fixed_set() {
        assert_eq!(McpMethod::of_name("tools/call"), McpMethod::ToolsCall);
        assert_eq!(McpMethod::of_name("notifications/initialized"), McpMethod::Notification);
        assert_eq!(McpMethod::of_name("tasks/get"), McpMethod::Tasks);
        assert_eq!(McpMethod::of_name("x".repeat(1000).as_str()), McpMethod::Other);
        assert_eq!(McpMethod::Delete.index() + 1, McpMethod::COUNT);
        assert_eq!(class_of(99), 0);
        assert_eq!(class_of(700), 4);
    }
}
