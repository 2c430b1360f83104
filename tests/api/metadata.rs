//! Discovery documents (checklist B1, B2, A3–A7).

use crate::flow::{add_service, spawn_with_service};
use crate::helpers::{spawn_app, spawn_app_with};

#[actix_web::test]
async fn authorization_server_metadata_lists_every_endpoint_and_capability() {
    // Arrange
    let app = spawn_app_with(|s| {
        add_service(s, "svc", &["read", "offline_access"]);
        add_service(s, "other", &["write", "read"]);
    })
    .await;
    let iss = app.address.clone();

    // Act
    let reply = app.get("/.well-known/oauth-authorization-server").await;

    // Assert
    assert_eq!(reply.status, 200);
    let m = reply.json();
    assert_eq!(m["issuer"], iss.as_str());
    assert_eq!(m["authorization_endpoint"], format!("{iss}/oauth/authorize"));
    assert_eq!(m["token_endpoint"], format!("{iss}/oauth/token"));
    assert_eq!(m["registration_endpoint"], format!("{iss}/oauth/register"));
    assert_eq!(m["revocation_endpoint"], format!("{iss}/oauth/revoke"));
    assert_eq!(m["introspection_endpoint"], format!("{iss}/oauth/introspect"));
    assert_eq!(m["jwks_uri"], format!("{iss}/.well-known/jwks.json"));
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(m["grant_types_supported"], serde_json::json!(["authorization_code", "refresh_token"]));
    assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    let methods = m["token_endpoint_auth_methods_supported"].as_array().unwrap();
    for method in ["none", "client_secret_post", "client_secret_basic"] {
        assert!(methods.iter().any(|v| v == method), "{method}");
    }
    assert_eq!(m["scopes_supported"], serde_json::json!(["read", "write"]), "union, no offline_access");
    assert_eq!(m["client_id_metadata_document_supported"], true);
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert!(m["revocation_endpoint_auth_methods_supported"].is_array());
    assert!(m["introspection_endpoint_auth_methods_supported"].is_array());
}

#[actix_web::test]
async fn openid_configuration_carries_pkce_methods_too() {
    let app = spawn_with_service().await;

    let reply = app.get("/.well-known/openid-configuration").await;

    assert_eq!(reply.status, 200);
    let m = reply.json();
    assert_eq!(m["issuer"], app.address.as_str());
    assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(m["subject_types_supported"], serde_json::json!(["public"]));
}

#[actix_web::test]
async fn jwks_publishes_the_signing_keys() {
    let app = spawn_app().await;

    let reply = app.get("/.well-known/jwks.json").await;

    assert_eq!(reply.status, 200);
    let keys = reply.json()["keys"].as_array().unwrap().clone();
    assert!(!keys.is_empty());
    assert_eq!(keys[0]["kty"], "EC");
    assert!(keys[0]["kid"].is_string());
    assert!(keys[0].get("d").is_none(), "no private part");
}

#[actix_web::test]
async fn protected_resource_metadata_names_the_service_and_the_issuer() {
    // Arrange
    let app = spawn_app_with(|s| add_service(s, "svc", &["read", "offline_access"])).await;
    let issuer = app.get("/.well-known/oauth-authorization-server").await.json()["issuer"].clone();

    // Act
    let reply = app.get("/.well-known/oauth-protected-resource/svc/mcp").await;

    // Assert
    assert_eq!(reply.status, 200);
    let m = reply.json();
    assert_eq!(m["resource"], format!("{}/svc/mcp", app.address));
    assert_eq!(m["authorization_servers"], serde_json::json!([issuer]), "byte-identical issuer (A4)");
    assert_eq!(m["scopes_supported"], serde_json::json!(["read"]), "never offline_access (A7)");
    assert_eq!(m["bearer_methods_supported"], serde_json::json!(["header"]));
    assert_eq!(m["resource_name"], "svc service");
}

#[actix_web::test]
async fn root_protected_resource_takes_service_id_or_the_first_service() {
    let app = spawn_app_with(|s| {
        add_service(s, "alpha", &[]);
        add_service(s, "beta", &[]);
    })
    .await;

    let named = app.get("/.well-known/oauth-protected-resource?service_id=beta").await;
    let default = app.get("/.well-known/oauth-protected-resource").await;
    let unknown = app.get("/.well-known/oauth-protected-resource?service_id=nope").await;

    assert_eq!(named.json()["resource"], format!("{}/beta/mcp", app.address));
    assert_eq!(default.json()["resource"], format!("{}/alpha/mcp", app.address));
    assert_eq!(unknown.status, 404);
}

#[actix_web::test]
async fn root_protected_resource_without_services_is_404() {
    let app = spawn_app().await;

    let reply = app.get("/.well-known/oauth-protected-resource").await;

    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "not_found");
}

#[actix_web::test]
async fn unknown_well_known_variants_are_404_never_redirects() {
    let app = spawn_with_service().await;

    for path in [
        "/.well-known/oauth-protected-resource/nope/mcp",
        "/.well-known/oauth-protected-resource/nope",
        "/.well-known/oauth-protected-resource/svc",
        "/.well-known/oauth-authorization-server/svc/mcp",
        "/.well-known/openid-configuration/svc/mcp",
        "/.well-known/mcp",
        "/.well-known/anything/else",
    ] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.json()["error"], "not_found", "{path}");
    }
}

#[actix_web::test]
async fn step_up_scopes_are_advertised_but_never_offline_access() {
    let app = spawn_app_with(|s| {
        add_service(s, "svc", &["read"]);
        let svc = s.mcp_services.get_mut("svc").unwrap();
        svc.tool_scopes.insert("tools/call".into(), vec!["tools".into(), "offline_access".into()]);
        svc.tool_scopes.insert("delete_repo".into(), vec!["admin".into(), "read".into()]);
        add_service(s, "other", &["write"]);
    })
    .await;

    let server = app.get("/.well-known/oauth-authorization-server").await.json();
    let resource = app.get("/.well-known/oauth-protected-resource/svc/mcp").await.json();
    let other = app.get("/.well-known/oauth-protected-resource/other/mcp").await.json();

    assert_eq!(server["scopes_supported"], serde_json::json!(["admin", "read", "tools", "write"]));
    assert_eq!(resource["scopes_supported"], serde_json::json!(["read", "admin", "tools"]));
    assert_eq!(other["scopes_supported"], serde_json::json!(["write"]));
}
