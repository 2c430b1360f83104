//! The gateway's own information endpoints, as the older gateway had them: `GET /` (JSON, or
//! the landing page for a browser), `GET /health`, `GET /services`, `GET /services/{id}` and
//! the stylesheet; and `GET /ready` (for load balancers) and `/favicon.ico`. Backend URLs are
//! internal and never shown.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::actors::GetHealth;
use crate::config::{ServiceSettings, Settings};
use crate::oauth::metadata::{not_found, OFFLINE_ACCESS};
use crate::state::AppState;
use crate::web::{html_escape, html_page, render};

/// One service as clients see it.
#[derive(Debug, Serialize)]
pub struct ServiceInfo {
    /// The id used in `/{id}/mcp`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Canonical resource URI (`{issuer}/{id}/mcp`), the `aud` of its tokens.
    pub resource: String,
    /// Whether a token is required.
    pub auth_required: bool,
    /// Scopes the service knows.
    pub scopes: Vec<String>,
    /// Its protected-resource metadata document.
    pub resource_metadata: String,
}

fn service_info(settings: &Settings, id: &str, service: &ServiceSettings) -> ServiceInfo {
    ServiceInfo {
        id: id.to_owned(),
        name: service.name.clone(),
        resource: settings.resource_uri(id),
        auth_required: service.auth_required,
        scopes: service.scopes.iter().filter(|s| *s != OFFLINE_ACCESS).cloned().collect(),
        resource_metadata: format!("{}/.well-known/oauth-protected-resource/{id}/mcp", settings.issuer),
    }
}

fn services(settings: &Settings) -> Vec<ServiceInfo> {
    settings.mcp_services.iter().map(|(id, s)| service_info(settings, id, s)).collect()
}

fn gateway_info(state: &AppState) -> serde_json::Value {
    let iss = &state.settings.issuer;
    serde_json::json!({
        "name": "MCP OAuth Gateway",
        "version": env!("CARGO_PKG_VERSION"),
        "issuer": iss,
        "provider": state.upstream.kind(),
        "services": services(&state.settings),
        "endpoints": {
            "authorization_server_metadata": format!("{iss}/.well-known/oauth-authorization-server"),
            "authorization": format!("{iss}/oauth/authorize"),
            "token": format!("{iss}/oauth/token"),
            "registration": format!("{iss}/oauth/register"),
            "revocation": format!("{iss}/oauth/revoke"),
            "introspection": format!("{iss}/oauth/introspect"),
            "jwks": format!("{iss}/.well-known/jwks.json"),
            "services": format!("{iss}/services"),
            "health": format!("{iss}/health"),
            "ready": format!("{iss}/ready"),
        },
    })
}

/// Whether the request prefers HTML: a browser navigating here, not an API client.
fn wants_html(req: &HttpRequest) -> bool {
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.contains("text/html") && !accept.starts_with("application/json")
}

fn landing_page(state: &AppState) -> HttpResponse {
    let items: String = services(&state.settings)
        .iter()
        .map(|s| {
            format!(
                "<li><strong>{}</strong> <code>{}</code></li>\n",
                html_escape(&s.name),
                html_escape(&s.resource)
            )
        })
        .collect();
    let items = if items.is_empty() { "<li>No services configured.</li>".to_owned() } else { items };
    // The list is escaped above; it goes in first so nothing inside it is taken for a
    // placeholder by `render`.
    let template = include_str!("../static/index.html").replace("{{services}}", &items);
    let body = render(
        &template,
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("provider", state.upstream.kind()),
            ("issuer", state.settings.issuer.as_str()),
        ],
    );
    html_page(StatusCode::OK, body)
}

async fn index(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if wants_html(&req) {
        return landing_page(&state);
    }
    HttpResponse::Ok().json(gateway_info(&state))
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.actors.supervisor.send(GetHealth).await {
        Ok(storage) if storage.healthy => {
            HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(serde_json::json!({
                "status": "ok",
                "storage": storage,
            }))
        }
        Ok(storage) => HttpResponse::ServiceUnavailable()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({ "status": "unavailable", "storage": storage })),
        Err(e) => {
            log::error!("storage supervisor did not answer: {e}");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(serde_json::json!({ "status": "unavailable" }))
        }
    }
}

/// Readiness, for a load balancer or a Kubernetes readiness probe: 200 when this instance
/// should get traffic (storage answers, signing keys are loaded, no shutdown has begun),
/// otherwise 503 listing what `failed`. `/health` stays liveness.
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let storage = state.actors.supervisor.send(GetHealth).await.map_err(|e| {
        log::error!("storage supervisor did not answer: {e}");
    });
    let keys_loaded = !state.keys.current().stored().is_empty();
    let draining = state.drain.is_draining();
    let mut failed = Vec::new();
    if !storage.as_ref().is_ok_and(|s| s.healthy) {
        failed.push("storage");
    }
    if !keys_loaded {
        failed.push("signing_keys");
    }
    if draining {
        failed.push("shutting_down");
    }
    let body = serde_json::json!({
        "status": if failed.is_empty() { "ready" } else { "not_ready" },
        "failed": failed,
        "storage": storage.ok(),
        "signing_keys": if keys_loaded { "loaded" } else { "missing" },
        "shutting_down": draining,
    });
    let status = if failed.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(status).insert_header((header::CACHE_CONTROL, "no-store")).json(body)
}

/// The gateway's icon (browsers ask for it on every page; a 404 there is noise in logs).
async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/x-icon")
        .insert_header((header::CACHE_CONTROL, "public, max-age=604800"))
        .body(&include_bytes!("../static/favicon.ico")[..])
}

async fn list_services(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "services": services(&state.settings) }))
}

async fn one_service(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    match state.settings.mcp_services.get(&id) {
        Some(service) => HttpResponse::Ok().json(service_info(&state.settings, &id, service)),
        None => not_found("unknown service"),
    }
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../static/style.css"))
}

/// Registers `/`, `/health`, `/ready`, `/services`, `/services/{id}`, `/static/style.css` and
/// `/favicon.ico`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/favicon.ico", web::get().to(favicon))
        .route("/services", web::get().to(list_services))
        // A scope: proxied requests skip the pattern after a prefix check.
        .service(web::scope("/services").route("/{id}", web::get().to(one_service)))
        .route("/static/style.css", web::get().to(stylesheet));
}
