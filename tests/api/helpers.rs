//! `spawn_app()` and the `TestApp` every black-box test starts from.

use std::net::TcpListener;
use std::sync::Arc;

use actix_http::{Request, Response};
use actix_service::IntoServiceFactory;
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, ServerHandle, Service, ServiceFactory};
use actix_web::HttpServer;
use mcp_gateway::config::Settings;
use mcp_gateway::startup::Application;
use mcp_gateway::state::AppState;

/// Settings every test starts from: loopback, debug, memory storage, the `dev` provider and
/// no services. Tests add services and swap the provider with `spawn_app_with`.
pub fn base_settings() -> Settings {
    let yaml = r#"
host: 127.0.0.1
port: 0
session_secret: "test-secret-0123456789abcdef0123456789abcdef"
debug: true
oauth_providers:
  dev: {}
# The audit trail writes to stdout, past the test harness: tests that read it set a path.
audit:
  enabled: false
"#;
    settings_from_yaml(yaml)
}

/// Deserializes settings from a YAML document (no layering, no environment).
pub fn settings_from_yaml(yaml: &str) -> Settings {
    let cfg = config::Config::builder()
        .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
        .build()
        .expect("test YAML parses");
    cfg.try_deserialize().expect("test YAML matches Settings")
}

/// A running gateway.
pub struct TestApp {
    /// `http://127.0.0.1:{port}`.
    pub address: String,
    /// The bound port.
    pub port: u16,
    /// Shared state: signing keys, clock, actors.
    pub state: AppState,
    /// The settings as the app runs with them (issuer filled in).
    pub settings: Arc<Settings>,
    /// The metrics listener's port, when `metrics.listen` is set.
    pub metrics_port: Option<u16>,
}

/// Starts the gateway with `base_settings()` changed by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut settings = base_settings();
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("app builds");
    let test_app = TestApp::of(&app);
    actix_web::rt::spawn(app.run_until_stopped());
    test_app
}

/// Starts the gateway with `base_settings()`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

impl TestApp {
    /// What tests need of `app` (which the caller then runs).
    pub fn of(app: &Application) -> TestApp {
        let (port, state) = (app.port(), app.state().clone());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            metrics_port: app.metrics_port(),
            settings: state.settings.clone(),
            state,
        }
    }

    /// An HTTP client that does not follow redirects (tests look at each hop).
    pub fn client(&self) -> awc::Client {
        awc::Client::builder().disable_redirects().finish()
    }

    /// `{address}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }
}

/// Serves the actix app that `factory(port)` makes on a free loopback port, one worker, in this
/// test's runtime: the port, and the handle that stops the server. Every small server of the
/// tests (backends, identity providers, document servers) starts this way.
pub fn serve<F, I, S, B>(factory: impl FnOnce(u16) -> F) -> (u16, ServerHandle)
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server");
    let port = listener.local_addr().expect("test server port").port();
    let server =
        HttpServer::new(factory(port)).workers(1).listen(listener).expect("test server listens").run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (port, handle)
}

/// Storage on the local Redis under a key prefix of its own (instances given the same prefix
/// share state).
pub fn redis_storage(prefix: &str) -> mcp_gateway::config::StorageSettings {
    use mcp_gateway::config::{RedisSettings, StorageKind, StorageSettings};
    StorageSettings {
        kind: StorageKind::Redis,
        redis: RedisSettings {
            url: Some("redis://127.0.0.1:6379".into()),
            key_prefix: prefix.to_owned(),
            ..RedisSettings::default()
        },
        ..StorageSettings::default()
    }
}
