//! Wiring: binds the listener (port 0 works for tests), connects storage, loads the signing
//! keys, starts the storage supervisor and the state actors once, and builds the
//! `HttpServer`. Nothing stateful is created inside the per-worker factory closure except what
//! is meant to be per worker (the proxy's HTTP client and verified-token cache). Also the
//! `rotate-keys` command, which needs the same storage wiring.

use std::io::Write as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{from_fn, Condition, Logger};
use actix_web::{http, web, App, HttpServer};

use crate::actors::Wiring;
use crate::config::{CorsSettings, LogFormat, Settings, StorageKind};
use crate::core::audit::{Audit, Event};
use crate::core::drain::Drain;
use crate::core::jwt::KeyRing;
use crate::core::mcp_sessions::SessionBindings;
use crate::core::metrics::Metrics;
use crate::core::signing_keys::{self, KeyRotation};
use crate::core::store::Revocations as _;
use crate::core::upstream_grant::load_sealer;
use crate::core::{Clock, RevocationSet};
use crate::fetch::GuardedFetch;
use crate::state::AppState;
use crate::storage::{Backend, Connected, Limiter};
use crate::upstream::Upstream;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Settings are inconsistent.
    #[error("{0}")]
    Config(String),
    /// The storage backend could not be reached or initialised.
    #[error("storage: {0}")]
    Storage(String),
    /// The upstream provider could not be set up (discovery failed, bad URL).
    #[error("upstream provider: {0}")]
    Upstream(String),
}

/// Stops a running gateway: the binary's signal handler, and tests.
#[derive(Clone)]
pub struct Shutdown {
    server: ServerHandle,
    metrics: Option<ServerHandle>,
    drain: Drain,
}

impl Shutdown {
    /// Stops the server. `graceful`: drain first (`runtime.shutdown_timeout`; see
    /// [`crate::core::drain`]); otherwise every connection is closed at once.
    pub fn stop(&self, graceful: bool) -> impl std::future::Future<Output = ()> {
        if graceful {
            self.drain.begin();
        }
        let (server, metrics) = (self.server.clone(), self.metrics.clone());
        async move {
            server.stop(graceful).await;
            // Scrapes go on during the drain; the metrics listener stops last.
            if let Some(metrics) = metrics {
                metrics.stop(false).await;
            }
        }
    }

    /// Whether a graceful stop has begun.
    pub fn is_draining(&self) -> bool {
        self.drain.is_draining()
    }
}

/// A built, not yet running, gateway.
pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<(u16, ServerHandle)>,
    state: AppState,
}

impl Application {
    /// Binds, starts the actors and builds the server. When `issuer` is empty it becomes
    /// `http://{host}:{bound port}`.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let Connected { backend, fallback } = connect(&settings).await?;
        Self::build_on(settings, backend, fallback).await
    }

    /// A handle that stops this gateway once it runs.
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown {
            server: self.server.handle(),
            metrics: self.metrics.as_ref().map(|(_, h)| h.clone()),
            drain: self.state.drain.clone(),
        }
    }

    /// [`Application::build`] on an already connected `backend` instead of the configured
    /// one. For tests: two gateways given clones of one backend share their state the way
    /// instances sharing a Redis do.
    pub async fn build_with_backend(settings: Settings, backend: Backend) -> Result<Self, StartupError> {
        Self::build_on(settings, backend, false).await
    }

    async fn build_on(
        mut settings: Settings,
        backend: Backend,
        fallback: bool,
    ) -> Result<Self, StartupError> {
        let addr = format!("{}:{}", settings.host, settings.port);
        let listener =
            TcpListener::bind(&addr).map_err(|source| StartupError::Bind { addr: addr.clone(), source })?;
        let port = listener.local_addr().map_err(|source| StartupError::Bind { addr, source })?.port();
        settings.issuer = crate::config::effective_issuer(&settings, port);
        let settings = Arc::new(settings);
        if let Some(warning) = crate::core::access::open_services_warning(&settings) {
            log::warn!("{warning}");
        }
        for (id, _) in settings.mcp_services.iter().filter(|(_, s)| s.insecure_skip_verify) {
            log::warn!(
                "service '{id}': insecure_skip_verify is on: its backend's certificate is not checked"
            );
        }

        let metrics =
            Metrics::new(settings.mcp_services.keys().map(String::as_str), env!("CARGO_PKG_VERSION"))
                .map_err(|e| StartupError::Config(format!("cannot set up the metrics: {e}")))?;
        let backend = backend.measured(&metrics);
        let audit = open_audit(&settings)?.counted_by(Arc::new(metrics.clone()));
        let clock = Clock::default();
        let revoked = RevocationSet::default();
        let keys = signing_keys::load_signing_keys(&backend, &settings.issuer, clock.now())
            .await
            .map_err(|e| StartupError::Storage(e.to_string()))?;
        let keys = KeyRing::new(keys);
        let rotation = signing_keys::load_rotation_key(&backend)
            .await
            .map_err(|e| StartupError::Storage(e.to_string()))?;
        backend.watch_revocations(revoked.clone());
        let sealer = load_sealer(&backend, &settings.session_secret)
            .await
            .map_err(|e| StartupError::Storage(e.to_string()))?;
        let upstream = Arc::new(
            Upstream::from_settings(&settings)
                .await
                .map_err(|e| StartupError::Upstream(e.to_string()))?
                .with_clock(clock.clone())
                .with_sealer(sealer),
        );
        let workers = crate::config::effective_workers(settings.runtime.workers);
        let actors = crate::actors::start(Wiring {
            backend: backend.clone(),
            fallback,
            settings: settings.clone(),
            clock: clock.clone(),
            revoked: revoked.clone(),
            keys: keys.clone(),
            rotation,
            fetcher: Arc::new(GuardedFetch),
            threads: workers,
            identity: Some(upstream.clone()),
        })
        .map_err(|e| StartupError::Config(format!("cannot start the state actors: {e}")))?;
        let limiter = Limiter::for_backend(&backend);
        let mcp_sessions = Arc::new(SessionBindings::new(backend, &settings));
        let state = AppState {
            settings: settings.clone(),
            keys,
            upstream,
            clock,
            revoked,
            actors,
            mcp_sessions,
            limiter,
            drain: Drain::new(Duration::from_secs(settings.runtime.shutdown_timeout)),
            audit,
            metrics: metrics.clone(),
        };
        let metrics = match settings.metrics.listen.as_deref() {
            Some(addr) => Some(serve_metrics(addr.trim(), metrics)?),
            None => None,
        };

        let app_state = state.clone();
        // The access log's per-request formatting is skipped outright when its lines would be
        // filtered out anyway (e.g. `RUST_LOG=warn`).
        let log_access = log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(cors(&app_state.settings.cors))
                .wrap(from_fn(crate::web::request_id::assign))
                .wrap(Condition::new(log_access, access_log()))
                .app_data(web::Data::new(app_state.clone()))
                .configure(crate::web::configure_extractors)
                .configure(|cfg| routes(cfg, &app_state.settings))
        })
        .on_connect(no_delay)
        // A client that closes its side has left, as nginx takes it: the answer in progress is
        // dropped at once, and with it the backend connection. Otherwise actix notices only
        // when it next writes, and an event stream from a silent backend would keep both
        // sockets (and the token's stream slot) for as long as the backend says nothing.
        .h1_allow_half_closed(false)
        .workers(workers)
        .shutdown_timeout(settings.runtime.shutdown_timeout)
        // The binary handles SIGINT and SIGTERM itself (both drain; see `main.rs`).
        .disable_signals()
        .listen(listener)
        .map_err(|source| StartupError::Bind { addr: format!("port {port}"), source })?
        .run();
        log::info!("mcp-gateway listening on {}:{port}, issuer {}", settings.host, settings.issuer);
        Ok(Application { port, server, metrics, state })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound port of the metrics listener, when `metrics.listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// The shared state (tests mint tokens and move the clock through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs until the server is stopped (SIGINT/SIGTERM).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Starts the metrics listener on `addr` (one worker: a scrape is one small request every few
/// seconds) and returns its bound port and handle.
fn serve_metrics(addr: &str, metrics: Metrics) -> Result<(u16, ServerHandle), StartupError> {
    let bind_error = |source| StartupError::Bind { addr: format!("{addr} (metrics.listen)"), source };
    let listener = TcpListener::bind(addr).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    let server = HttpServer::new(move || {
        App::new().app_data(web::Data::new(metrics.clone())).configure(crate::web::metrics::routes)
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(bind_error)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        if let Err(e) = server.await {
            log::error!("metrics listener stopped: {e}");
        }
    });
    log::info!("metrics on http://{addr}/metrics");
    Ok((port, handle))
}

/// Stops `shutdown` on SIGINT or SIGTERM, gracefully (both drain: an orchestrator sends SIGTERM,
/// a person at a terminal presses Ctrl-C); a second signal during the drain exits at once.
pub fn stop_on_signals(shutdown: Shutdown) {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    actix_web::rt::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
        else {
            log::error!("cannot listen for SIGINT/SIGTERM; the gateway stops only when killed");
            return;
        };
        let first = next_signal(&mut int, &mut term).await;
        log::info!(
            "{first}: draining (new connections refused, /ready is 503; a second signal stops at once)"
        );
        actix_web::rt::spawn(shutdown.stop(true));
        let second = next_signal(&mut int, &mut term).await;
        log::warn!("{second} while draining: stopping now");
        std::process::exit(0);
    });
}

/// The name of whichever of the two signals comes next.
async fn next_signal(
    int: &mut actix_web::rt::signal::unix::Signal,
    term: &mut actix_web::rt::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// `TCP_NODELAY` on every accepted connection. A streamed answer goes out as several small
/// writes (head, each chunk, the terminator); with Nagle's algorithm each write after the first
/// waits for the client's delayed ACK, 40 ms per call on Linux.
fn no_delay(conn: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Err(e) = tcp.set_nodelay(true) {
            log::debug!("TCP_NODELAY not set on an accepted connection: {e}");
        }
    }
}

/// The access log: path without the query string, because queries carry codes, states and
/// (on the dev provider's callback) the person's name and email; the request id last.
fn access_log() -> Logger {
    Logger::new("%a %{method}xi %U %s %b %Dms %{x-request-id}o")
        .custom_request_replace("method", |req| req.method().to_string())
        .exclude("/health")
}

/// Starts the process's logger: `RUST_LOG` levels (default `default_level`), lines in
/// `format` to standard error.
pub fn init_logging(format: LogFormat, default_level: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "time": crate::core::audit::now_rfc3339(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

/// The audit trail the settings ask for.
pub fn open_audit(settings: &Settings) -> Result<Audit, StartupError> {
    match (&settings.audit.enabled, &settings.audit.path) {
        (false, _) => Ok(Audit::off()),
        (true, None) => Ok(Audit::stdout()),
        (true, Some(path)) => Audit::file(path)
            .map_err(|e| StartupError::Config(format!("cannot open audit.path '{path}': {e}"))),
    }
}

/// Every route of the gateway. `/{service}/mcp` comes last: it matches any service id.
pub fn routes(cfg: &mut web::ServiceConfig, settings: &Settings) {
    crate::info::routes(cfg);
    crate::oauth::routes(cfg);
    crate::admin::api::routes(cfg, settings.admin.token.is_some());
    crate::proxy::routes(cfg);
}

/// Connects the configured storage backend (or memory standing in, when allowed).
async fn connect(settings: &Settings) -> Result<Connected, StartupError> {
    crate::storage::connect_checked(&settings.storage).await.map_err(|e| StartupError::Storage(e.to_string()))
}

/// `mcp-gateway rotate-keys`: connects the configured backend and adds a new signing key
/// ([`signing_keys::rotate_in`]). Refused on memory storage, whose keys live only inside a
/// running gateway.
pub async fn rotate_keys(settings: &Settings) -> Result<KeyRotation, StartupError> {
    let Connected { backend, fallback } = connect(settings).await?;
    if fallback || backend.kind() == StorageKind::Memory {
        return Err(StartupError::Storage(
            "rotate-keys needs a shared storage backend (storage.type redis or vault): with memory \
             storage the keys live only inside the running gateway, and a restart makes new ones"
                .into(),
        ));
    }
    signing_keys::rotate_in(&backend, settings.tokens.access_token_ttl, Clock::default().now())
        .await
        .map_err(|e| StartupError::Storage(e.to_string()))
}

/// What the `grants` and `clients` commands run on: the state actors over the configured
/// shared store (one instance each), and the audit trail, on standard error unless
/// `audit.path` is set (standard output is the command's answer). Refused on memory storage,
/// whose state lives only inside the running gateway: its admin API does the same there.
pub async fn admin_wiring(settings: &Settings) -> Result<(crate::actors::Actors, Audit), StartupError> {
    let Connected { backend, fallback } = connect(settings).await?;
    if fallback || backend.kind() == StorageKind::Memory {
        return Err(StartupError::Storage(
            "this command needs a shared storage backend (storage.type redis or vault): with memory \
             storage the state lives only inside the running gateway; use its admin API (admin.token)"
                .into(),
        ));
    }
    let mut settings = settings.clone();
    settings.issuer = crate::config::effective_issuer(&settings, settings.port);
    let clock = Clock::default();
    let storage_error = |e: &dyn std::fmt::Display| StartupError::Storage(e.to_string());
    let keys = signing_keys::load_signing_keys(&backend, &settings.issuer, clock.now())
        .await
        .map_err(|e| storage_error(&e))?;
    let rotation = signing_keys::load_rotation_key(&backend).await.map_err(|e| storage_error(&e))?;
    let actors = crate::actors::start(Wiring {
        backend,
        fallback: false,
        settings: Arc::new(settings.clone()),
        clock,
        revoked: RevocationSet::default(),
        keys: KeyRing::new(keys),
        rotation,
        fetcher: Arc::new(GuardedFetch),
        threads: 1,
        // The commands list and revoke; they never refresh.
        identity: None,
    })
    .map_err(|e| StartupError::Config(format!("cannot start the state actors: {e}")))?;
    let audit = match (&settings.audit.enabled, &settings.audit.path) {
        (true, None) => Audit::to(Box::new(std::io::stderr())),
        _ => open_audit(&settings)?,
    };
    Ok((actors, audit))
}

/// Records an administrator's command (`rotate-keys`, ...) in the audit trail; its request id
/// is `cli`. Errors opening the trail are returned for the command to report.
pub fn record_admin_action(settings: &Settings, action: &str, succeeded: bool) -> Result<(), StartupError> {
    let outcome = if succeeded { "success" } else { "failure" };
    open_audit(settings)?.record(Event {
        action: Some(action),
        outcome: Some(outcome),
        ..Event::new("admin_action", "cli", None)
    });
    Ok(())
}

/// CORS from `cors:`. Preflights never need a token. A disallowed origin is not blocked here
/// (`block_on_origin_mismatch(false)`): the response just lacks CORS headers, and the proxy
/// answers 403 itself (DNS-rebinding defence, checklist C1).
fn cors(settings: &CorsSettings) -> Cors {
    let mut cors = Cors::default().block_on_origin_mismatch(false).max_age(600);
    for origin in &settings.allow_origins {
        cors = if origin == "*" { cors.allow_any_origin() } else { cors.allowed_origin(origin) };
    }
    let methods: Vec<http::Method> =
        settings.allow_methods.iter().filter_map(|m| http::Method::from_bytes(m.as_bytes()).ok()).collect();
    cors = cors.allowed_methods(methods);
    if settings.allow_headers.iter().any(|h| h == "*") {
        cors = cors.allow_any_header();
    } else {
        let mut headers: Vec<&str> = settings.allow_headers.iter().map(String::as_str).collect();
        headers.extend([
            "Authorization",
            "Content-Type",
            "MCP-Protocol-Version",
            "Mcp-Session-Id",
            "Last-Event-ID",
        ]);
        let headers: Vec<http::header::HeaderName> =
            headers.iter().filter_map(|h| http::header::HeaderName::from_bytes(h.as_bytes()).ok()).collect();
        cors = cors.allowed_headers(headers);
    }
    let mut expose: Vec<&str> = settings.expose_headers.iter().map(String::as_str).collect();
    expose.extend(["WWW-Authenticate", "Mcp-Session-Id"]);
    let expose: Vec<http::header::HeaderName> =
        expose.iter().filter_map(|h| http::header::HeaderName::from_bytes(h.as_bytes()).ok()).collect();
    cors = cors.expose_headers(expose);
    if settings.allow_credentials {
        cors = cors.supports_credentials();
    }
    cors
}
