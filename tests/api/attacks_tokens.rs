//! Attacks on the gateway's own tokens (issue 13, items 2 and 10): each test performs the
//! attack and fails on a gateway without the fix.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::Signature;

use crate::flow::{spawn_with_service, Browser};

/// The successor formula of the previous version: keyed with the old token itself, no secret.
fn public_successor(old: &str) -> String {
    mcp_gateway::secret::hmac_b64(old.as_bytes(), b"rotate")
}

#[actix_web::test]
async fn an_earlier_refresh_token_does_not_yield_the_live_one() {
    // Arrange: the legitimate client rotates once; the attacker holds the first token only.
    let app = spawn_with_service().await;
    let (client, tokens) = app.tokens_for(&mut Browser::new(), "victim@example.com").await;
    let stolen = tokens.refresh_token.clone();
    let rotated = app.refresh(&client, &tokens.refresh_token, &[]).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let live = rotated.json()["refresh_token"].as_str().unwrap().to_owned();

    // Act: compute the live token from the stolen one and refresh with it.
    let guessed = public_successor(&stolen);
    let attack = app.refresh(&client, &guessed, &[]).await;

    // Assert
    assert_ne!(guessed, live, "the live refresh token is derivable from an earlier one");
    assert_eq!(attack.status, 400, "{}", attack.body);
    assert_eq!(attack.json()["error"], "invalid_grant");
    // The legitimate client is unaffected.
    assert_eq!(app.refresh(&client, &live, &[]).await.status, 200);
}

/// The same token with `s` replaced by `n - s`: a second valid ECDSA signature of the same
/// message (ECDSA malleability).
fn high_s_twin(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let sig = Signature::from_slice(&bytes).unwrap();
    let (r, s) = sig.split_scalars();
    let twin = Signature::from_scalars(r, -s).unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(twin.to_bytes()))
}

#[actix_web::test]
async fn a_high_s_twin_of_a_valid_access_token_is_refused() {
    // Arrange
    let app = spawn_with_service().await;
    let (_, tokens) = app.tokens_for(&mut Browser::new(), "alice@example.com").await;
    let twin = high_s_twin(&tokens.access_token);
    let resource = format!("{}/svc/mcp", app.address);

    // Act
    let original = app.state.keys.verify(&tokens.access_token, &resource, app.state.clock.now());
    let forged = app.state.keys.verify(&twin, &resource, app.state.clock.now());
    let proxied = app
        .client()
        .post(app.url("/svc/mcp"))
        .insert_header(("Authorization", format!("Bearer {twin}")))
        .insert_header(("Content-Type", "application/json"))
        .send_body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .await
        .unwrap();

    // Assert
    assert_ne!(twin, tokens.access_token);
    assert!(original.is_ok(), "the gateway signs low-S: {original:?}");
    assert!(forged.is_err(), "a high-S signature verified");
    assert_eq!(proxied.status().as_u16(), 401);
}
