//! `/account` (issue 10, part 3): a person signs in through the provider, sees their own grants
//! and revokes one; the revoked tokens stop at once. Attacks: no sign-in, a forged or another
//! grant's CSRF token, another person's grant.

use crate::flow::{spawn_with_service, Browser, Reply};
use crate::helpers::TestApp;

/// `/account` in `browser`, signing in as `email` on the dev provider when asked.
async fn open_account(app: &TestApp, browser: &mut Browser, email: &str) -> Reply {
    let first = app.browse(browser, "/account").await;
    if first.status == 200 {
        return first;
    }
    assert!(first.is_redirect(), "{} {}", first.status, first.body);
    let back = app.login(browser, &first.location(), "Account User", email).await;
    assert_eq!((back.status, back.location()), (303, "/account".to_owned()), "{}", back.body);
    let page = app.browse(browser, "/account").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page
}

/// The revoke forms' (grant id, csrf) pairs on an account page.
fn forms(page: &Reply) -> Vec<(String, String)> {
    let value = |rest: &str, name: &str| {
        let at = rest.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
        rest[at..].split('"').next().unwrap().to_owned()
    };
    page.body
        .split("action=\"/account/revoke\"")
        .skip(1)
        .map(|rest| (value(rest, "grant_id"), value(rest, "csrf")))
        .collect()
}

async fn revoke(app: &TestApp, browser: &mut Browser, grant: &str, csrf: &str) -> Reply {
    app.post_form_as(browser, "/account/revoke", &[("grant_id", grant), ("csrf", csrf)]).await
}

#[actix_web::test]
async fn a_person_revokes_their_own_grant_from_the_account_page() {
    let app = spawn_with_service().await;
    let mut client_browser = Browser::new();
    let (client, tokens) = app.tokens_for(&mut client_browser, "alice@example.com").await;

    let mut browser = Browser::new();
    let page = open_account(&app, &mut browser, "alice@example.com").await;
    assert!(page.body.contains("alice@example.com"), "{}", page.body);
    assert!(page.body.contains("svc service"), "the service by name");
    let found = forms(&page);
    assert_eq!(found.len(), 1, "{}", page.body);
    let (grant, csrf) = &found[0];

    let done = revoke(&app, &mut browser, grant, csrf).await;
    assert_eq!((done.status, done.location()), (303, "/account".to_owned()));
    let refreshed = app.refresh(&client, &tokens.refresh_token, &[]).await;
    assert_eq!((refreshed.status, refreshed.json()["error"].as_str()), (400, Some("invalid_grant")));
    let introspected = app.introspect(&client, &tokens.access_token).await;
    assert_eq!(introspected.json()["active"], false, "the access token is revoked too");
    let after = app.browse(&mut browser, "/account").await;
    assert!(after.body.contains("No application has access as you."), "{}", after.body);
}

#[actix_web::test]
async fn nobody_revokes_a_grant_that_is_not_theirs() {
    let app = spawn_with_service().await;
    let (alice_client, alice) = app.tokens_for(&mut Browser::new(), "alice@example.com").await;
    let mut alice_browser = Browser::new();
    let (alice_grant, alice_csrf) =
        forms(&open_account(&app, &mut alice_browser, "alice@example.com").await)[0].clone();
    let mut bob = Browser::new();
    let bob_page = open_account(&app, &mut bob, "bob@example.com").await;
    assert!(forms(&bob_page).is_empty(), "bob sees none of alice's grants: {}", bob_page.body);

    // Signed out, a forged token, alice's token from bob's browser, and even the right token
    // for bob and alice's grant (as if the secret leaked): alice's grant lives.
    let bob_id = format!("dev_{}", mcp_gateway::upstream::dev::dev_sub("bob@example.com"));
    let bobs_own_csrf = mcp_gateway::oauth::cookies::account_csrf(&app.settings, &bob_id, &alice_grant);
    assert_eq!(revoke(&app, &mut Browser::new(), &alice_grant, &alice_csrf).await.status, 403);
    assert_eq!(revoke(&app, &mut bob, &alice_grant, "forged").await.status, 403);
    assert_eq!(revoke(&app, &mut bob, &alice_grant, &alice_csrf).await.status, 403);
    // A valid token for bob (303, not 403): only the ownership check stands in the way.
    assert_eq!(revoke(&app, &mut bob, &alice_grant, &bobs_own_csrf).await.status, 303);
    let still = app.refresh(&alice_client, &alice.refresh_token, &[]).await;
    assert_eq!(still.status, 200, "alice's grant survives: {}", still.body);
}
