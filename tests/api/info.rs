//! The gateway's own endpoints: `/`, `/health`, `/services`, the stylesheet.

use crate::flow::{add_service, spawn_with_service};
use crate::helpers::spawn_app_with;

#[actix_web::test]
async fn root_describes_the_gateway_without_backend_urls() {
    let app = spawn_with_service().await;

    let reply = app.get("/").await;

    assert_eq!(reply.status, 200);
    let info = reply.json();
    assert_eq!(info["issuer"], app.address.as_str());
    assert_eq!(info["provider"], "dev");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["services"][0]["id"], "svc");
    assert_eq!(info["endpoints"]["token"], format!("{}/oauth/token", app.address));
    assert!(!reply.body.contains("127.0.0.1:9"), "backend URL leaked: {}", reply.body);
}

#[actix_web::test]
async fn root_is_a_landing_page_for_browsers() {
    let app = spawn_with_service().await;

    let res = app.client().get(app.url("/")).insert_header(("Accept", "text/html,*/*")).send().await.unwrap();

    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers().get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
    assert_eq!(res.headers().get("x-frame-options").unwrap(), "DENY");
}

#[actix_web::test]
async fn health_reports_storage() {
    let app = spawn_with_service().await;

    let reply = app.get("/health").await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["storage"]["backend"], "memory");
    assert_eq!(body["storage"]["healthy"], true);
}

#[actix_web::test]
async fn services_list_and_detail() {
    let app = spawn_app_with(|s| {
        add_service(s, "svc", &["read"]);
        add_service(s, "open", &[]);
        s.mcp_services.get_mut("open").unwrap().auth_required = false;
    })
    .await;

    let list = app.get("/services").await;
    let one = app.get("/services/open").await;
    let missing = app.get("/services/nope").await;

    assert_eq!(list.status, 200);
    let services = list.json()["services"].as_array().unwrap().clone();
    assert_eq!(services.len(), 2);
    assert!(services.iter().all(|s| s.get("url").is_none()), "backend URLs stay internal");
    let detail = one.json();
    assert_eq!(detail["id"], "open");
    assert_eq!(detail["auth_required"], false);
    assert_eq!(detail["resource"], format!("{}/open/mcp", app.address));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "not_found");
}

#[actix_web::test]
async fn stylesheet_is_served() {
    let app = spawn_with_service().await;

    let reply = app.get("/static/style.css").await;

    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap().starts_with("text/css"));
    assert!(reply.body.contains(".card"));
}
