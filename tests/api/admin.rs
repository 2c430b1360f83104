//! The admin API on one instance (issue 10, part 3; across instances: tests/multi.rs): off
//! unless `admin.token` is set, every call audited, a wrong token refused like a missing one.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use crate::flow::{spawn_with_service, Browser};
use crate::helpers::spawn_app_with;

const TOKEN: &str = "an-admin-token-of-at-least-32-characters";

#[actix_web::test]
async fn the_admin_api_is_off_unless_a_token_is_configured() {
    let app = spawn_with_service().await;
    for path in ["/admin/grants", "/admin/clients"] {
        let res = app.client().get(app.url(path)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 404, "{path}");
    }
}

#[actix_web::test]
async fn every_admin_call_is_audited_and_a_wrong_token_changes_nothing() {
    let path = std::env::temp_dir().join(format!("mcp-gateway-admin-audit-{}.jsonl", rand::random::<u64>()));
    let trail = path.to_str().map(str::to_owned);
    let app = spawn_app_with(|s| {
        crate::flow::add_service(s, "svc", &["read"]);
        s.admin.token = Some(SecretString::from(TOKEN));
        s.audit.enabled = true;
        s.audit.path = trail;
    })
    .await;
    let mut browser = Browser::new();
    let (client, _tokens) = app.tokens_for(&mut browser, "alice@example.com").await;
    let revoke = |token: &'static str| {
        app.client()
            .post(app.url("/admin/grants/revoke"))
            .bearer_auth(token)
            .send_json(&serde_json::json!({ "user": "alice@example.com" }))
    };

    assert_eq!(revoke("not-the-token").await.unwrap().status().as_u16(), 401);
    let listed: Value = app
        .client()
        .get(app.url("/admin/grants"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["grants"].as_array().map(Vec::len), Some(1), "the refused call revoked nothing");
    assert_eq!(listed["grants"][0]["client_id"].as_str(), Some(client.client_id.as_str()));
    let mut res = revoke(TOKEN).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["revoked"].as_array().map(Vec::len), Some(1));

    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let admin: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["event"] == "admin_action")
        .map(|l| (l["action"].as_str().unwrap_or("-"), l["outcome"].as_str().unwrap_or("-")))
        .collect();
    assert_eq!(admin, [("-", "failure"), ("list_grants", "success"), ("revoke_grants", "success")]);
    let revoked = lines.iter().find(|l| l["event"] == "grant_revoked").expect("grant_revoked line");
    assert_eq!(revoked["reason"], "revoked_by_admin");
    assert_eq!(revoked["user_email"], "alice@example.com");
    assert!(!text.contains(TOKEN), "the admin token is never written");
    let _ = std::fs::remove_file(&path);
}
