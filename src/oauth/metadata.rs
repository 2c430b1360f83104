//! Discovery documents: RFC 8414 authorization-server metadata (also served as OpenID
//! discovery), the JWKS, and RFC 9728 protected-resource metadata per service.
//!
//! The issuer has no path, so RFC 8414 path insertion never applies: suffixed variants such as
//! `/.well-known/oauth-authorization-server/x` get a 404 (checklist A5: clients move on only
//! after a 4xx), as does any other unknown `/.well-known/` path.

use std::collections::BTreeSet;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::config::{ServiceSettings, Settings};
use crate::core::machine::assertion::ALGORITHM_NAMES;
use crate::core::machine::id_jag;
use crate::state::AppState;

/// The client credentials grant type.
const CLIENT_CREDENTIALS: &str = "client_credentials";

/// Discovery documents change only with the configuration: let clients cache them briefly.
const CACHE: &str = "public, max-age=300";

/// The scope a client may ask for but that is never advertised (checklist A7): refresh tokens
/// are always issued, so it carries no meaning here.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Client authentication methods of the revocation and introspection endpoints.
const AUTH_METHODS: [&str; 3] = ["none", "client_secret_post", "client_secret_basic"];

/// Client authentication methods of the token endpoint: those, and `private_key_jwt` for the
/// configured clients.
const TOKEN_AUTH_METHODS: [&str; 4] =
    ["none", "client_secret_post", "client_secret_basic", "private_key_jwt"];

/// RFC 8414 authorization-server metadata.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServerMetadata {
    /// The issuer: the gateway root, without a trailing slash.
    pub issuer: String,
    /// `{issuer}/oauth/authorize`.
    pub authorization_endpoint: String,
    /// `{issuer}/oauth/token`.
    pub token_endpoint: String,
    /// `{issuer}/oauth/register`; absent when `registration.enabled` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// `{issuer}/oauth/revoke`.
    pub revocation_endpoint: String,
    /// `{issuer}/oauth/introspect`.
    pub introspection_endpoint: String,
    /// `{issuer}/.well-known/jwks.json`.
    pub jwks_uri: String,
    /// `["code"]`.
    pub response_types_supported: Vec<String>,
    /// `["query"]`.
    pub response_modes_supported: Vec<String>,
    /// Authorization code and refresh token; `client_credentials` when a configured client
    /// may use it.
    pub grant_types_supported: Vec<String>,
    /// `["S256"]` only.
    pub code_challenge_methods_supported: Vec<String>,
    /// Token endpoint client authentication methods.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Algorithms of `private_key_jwt` client assertions.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Revocation endpoint client authentication methods.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Introspection endpoint client authentication methods.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Union of the services' scopes and step-up scopes, without `offline_access`.
    pub scopes_supported: Vec<String>,
    /// Client ID Metadata Documents: an https `client_id` URL is accepted.
    pub client_id_metadata_document_supported: bool,
    /// RFC 9207: `iss` is sent in every authorization response.
    pub authorization_response_iss_parameter_supported: bool,
    /// Human-readable information about the gateway.
    pub service_documentation: String,
    /// Enterprise-Managed Authorization: `["urn:ietf:params:oauth:grant-profile:id-jag"]`
    /// when a trusted issuer is configured, else left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_grant_profiles_supported: Vec<String>,
    /// OpenID discovery only: `["public"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_types_supported: Option<Vec<String>>,
    /// OpenID discovery only: the algorithm of the gateway's signed tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
}

fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Every scope a service can grant: its `scopes`, then the step-up scopes its `tool_scopes`
/// name, each once and in that order, without `offline_access`.
pub fn service_scopes(service: &ServiceSettings) -> Vec<String> {
    let step_up = service.tool_scopes.values().flatten();
    let mut out: Vec<String> = Vec::new();
    for scope in service.scopes.iter().chain(step_up) {
        if scope != OFFLINE_ACCESS && !out.contains(scope) {
            out.push(scope.clone());
        }
    }
    out
}

/// Every scope of every service (base and step-up), sorted, without `offline_access`.
pub fn all_scopes(settings: &Settings) -> Vec<String> {
    let set: BTreeSet<String> = settings.mcp_services.values().flat_map(service_scopes).collect();
    set.into_iter().collect()
}

/// The grant types of the token endpoint: the two of every client, and the client
/// credentials grant when a configured client may use it (a configured client listing no
/// grant types has that one).
fn grant_types(settings: &Settings) -> Vec<String> {
    let mut out = strings(["authorization_code", "refresh_token"]);
    let machine = settings
        .clients
        .values()
        .any(|c| c.grant_types.is_empty() || c.grant_types.iter().any(|g| g == CLIENT_CREDENTIALS));
    if machine {
        out.push(CLIENT_CREDENTIALS.to_owned());
    }
    if id_jag_enabled(settings) {
        out.push(id_jag::GRANT_TYPE.to_owned());
    }
    out
}

/// Whether the identity assertion grant is on: at least one trusted issuer is configured.
pub fn id_jag_enabled(settings: &Settings) -> bool {
    !settings.enterprise.id_jag.trusted_issuers.is_empty()
}

/// The RFC 8414 document for `settings`.
pub fn server_metadata(settings: &Settings) -> ServerMetadata {
    let iss = &settings.issuer;
    ServerMetadata {
        issuer: iss.clone(),
        authorization_endpoint: format!("{iss}/oauth/authorize"),
        token_endpoint: format!("{iss}/oauth/token"),
        registration_endpoint: settings.registration.enabled.then(|| format!("{iss}/oauth/register")),
        revocation_endpoint: format!("{iss}/oauth/revoke"),
        introspection_endpoint: format!("{iss}/oauth/introspect"),
        jwks_uri: format!("{iss}/.well-known/jwks.json"),
        response_types_supported: strings(["code"]),
        response_modes_supported: strings(["query"]),
        grant_types_supported: grant_types(settings),
        code_challenge_methods_supported: strings(["S256"]),
        token_endpoint_auth_methods_supported: strings(TOKEN_AUTH_METHODS),
        token_endpoint_auth_signing_alg_values_supported: strings(ALGORITHM_NAMES),
        revocation_endpoint_auth_methods_supported: strings(AUTH_METHODS),
        introspection_endpoint_auth_methods_supported: strings(AUTH_METHODS),
        scopes_supported: all_scopes(settings),
        client_id_metadata_document_supported: settings.cimd.enabled,
        authorization_response_iss_parameter_supported: true,
        service_documentation: format!("{iss}/"),
        authorization_grant_profiles_supported: match id_jag_enabled(settings) {
            true => strings([id_jag::PROFILE]),
            false => Vec::new(),
        },
        subject_types_supported: None,
        id_token_signing_alg_values_supported: None,
    }
}

/// RFC 9728 protected-resource metadata of one service.
#[derive(Debug, Serialize, Deserialize)]
pub struct ResourceMetadata {
    /// The canonical resource URI, `{issuer}/{id}/mcp`.
    pub resource: String,
    /// `[issuer]`, byte-identical to the server metadata's `issuer`.
    pub authorization_servers: Vec<String>,
    /// The service's scopes and step-up scopes, without `offline_access`. Left out when empty:
    /// the Python SDK turns an empty list into a registration with `scope: ""`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// `["header"]`: tokens in the query string are refused.
    pub bearer_methods_supported: Vec<String>,
    /// The service's display name.
    pub resource_name: String,
}

/// The RFC 9728 document of service `id`, if it exists.
pub fn resource_metadata(settings: &Settings, id: &str) -> Option<ResourceMetadata> {
    let service = settings.mcp_services.get(id)?;
    Some(ResourceMetadata {
        resource: settings.resource_uri(id),
        authorization_servers: vec![settings.issuer.clone()],
        scopes_supported: service_scopes(service),
        bearer_methods_supported: strings(["header"]),
        resource_name: service.name.clone(),
    })
}

/// A JSON 404 for unknown discovery paths and services.
pub fn not_found(what: &str) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({ "error": "not_found", "error_description": what }))
}

async fn authorization_server(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, CACHE)).json(server_metadata(&state.settings))
}

async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let mut doc = server_metadata(&state.settings);
    doc.subject_types_supported = Some(strings(["public"]));
    doc.id_token_signing_alg_values_supported = Some(strings(["ES256"]));
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, CACHE)).json(doc)
}

async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, CACHE)).json(state.keys.jwks())
}

fn resource_response(settings: &Settings, id: &str) -> HttpResponse {
    match resource_metadata(settings, id) {
        Some(doc) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, CACHE)).json(doc),
        None => not_found("unknown service"),
    }
}

async fn protected_resource(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    resource_response(&state.settings, &path.into_inner())
}

/// Query of the root protected-resource document, as the older gateway accepted it.
#[derive(Debug, Deserialize)]
struct RootQuery {
    service_id: Option<String>,
}

/// The root document (checklist A6): `?service_id=` names the service; without it the first
/// configured service answers, so clients of the older gateway keep working.
async fn protected_resource_root(state: web::Data<AppState>, req: actix_web::HttpRequest) -> HttpResponse {
    let query = web::Query::<RootQuery>::from_query(req.query_string()).ok();
    let wanted = query.and_then(|q| q.into_inner().service_id);
    let id = wanted.or_else(|| state.settings.mcp_services.keys().next().cloned());
    match id {
        Some(id) => resource_response(&state.settings, &id),
        None => not_found("no services configured"),
    }
}

async fn unknown_well_known() -> HttpResponse {
    not_found("unknown discovery document")
}

/// Registers the discovery routes under one `/.well-known` scope: a plain prefix check keeps
/// every other request (the proxy's above all) from running these patterns. The catch-all
/// comes last so it only takes what the others did not (and keeps `/.well-known/mcp` away from
/// the proxy's `/{service}/mcp`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/.well-known")
            .route("/oauth-authorization-server", web::get().to(authorization_server))
            .route("/openid-configuration", web::get().to(openid_configuration))
            .route("/jwks.json", web::get().to(jwks))
            .route("/oauth-protected-resource", web::get().to(protected_resource_root))
            .route("/oauth-protected-resource/{id}/mcp", web::get().to(protected_resource))
            .route("/{tail:.*}", web::to(unknown_well_known)),
    );
}
