//! The `dev` provider: a local page asking for a name and an email, for trying the gateway
//! without registering it anywhere. Anyone can be anyone, so it only runs on loopback.
//!
//! The page itself is `crate::oauth::dev_login`. Its POST redirects to `/oauth/callback` with a code that is the login itself:
//! `base64url(JSON {name, email, PKCE challenge, expiry}) "." HMAC`, keyed by a key derived
//! from `session_secret`. Binding the PKCE challenge makes the code useless with any other
//! upstream `state` (whose verifier would not match), and the `state` itself is single use.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::core::model::{UpstreamLogin, UserInfo};

use super::UpstreamError;

/// How long a dev code is good for.
pub const DEV_CODE_TTL_SECS: i64 = 300;

/// The dev provider's configuration.
pub struct DevProvider {
    /// The gateway's issuer: the login page sends the browser to its `/oauth/callback`.
    pub issuer: String,
    key: SecretString,
}

/// What a dev code carries.
#[derive(Debug, Serialize, Deserialize)]
struct DevClaims {
    name: String,
    email: String,
    /// PKCE S256 challenge of the upstream leg the code belongs to.
    challenge: String,
    exp: i64,
}

impl DevProvider {
    /// Derives the code key from `session_secret`, so codes cannot be confused with anything
    /// else the gateway signs with it.
    pub fn new(settings: &Settings) -> Self {
        let key =
            crate::secret::hmac_b64(settings.session_secret.expose_secret().as_bytes(), b"dev-login-code-v1");
        DevProvider { issuer: settings.issuer.trim_end_matches('/').to_owned(), key: key.into() }
    }

    /// `{issuer}/oauth/dev/login?state&code_challenge&code_challenge_method=S256`.
    pub fn authorize_url(&self, state: &str, challenge: &str) -> String {
        let query = serde_urlencoded::to_string([
            ("state", state),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
        .unwrap_or_default();
        format!("{}/oauth/dev/login?{query}", self.issuer)
    }

    /// Signs a code for `name`/`email`, valid until `now + DEV_CODE_TTL_SECS`.
    pub fn issue(&self, name: &str, email: &str, challenge: &str, now: i64) -> Result<String, UpstreamError> {
        let claims = DevClaims {
            name: name.to_owned(),
            email: email.to_owned(),
            challenge: challenge.to_owned(),
            exp: now + DEV_CODE_TTL_SECS,
        };
        let json = serde_json::to_vec(&claims).map_err(|e| UpstreamError::Config(e.to_string()))?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        Ok(format!("{payload}.{}", self.sign(&payload)))
    }

    fn sign(&self, payload: &str) -> String {
        crate::secret::hmac_b64(self.key.expose_secret().as_bytes(), payload.as_bytes())
    }

    /// Checks signature, expiry and the PKCE binding; the user's sub is a hash of the email.
    pub fn complete(&self, code: &str, login: &UpstreamLogin, now: i64) -> Result<UserInfo, UpstreamError> {
        let refused = |why: &str| UpstreamError::Rejected(format!("dev login code {why}"));
        let (payload, sig) = code.split_once('.').ok_or_else(|| refused("malformed"))?;
        if !crate::secret::constant_time_eq(sig, &self.sign(payload)) {
            return Err(refused("has a bad signature"));
        }
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused("malformed"))?;
        let claims: DevClaims = serde_json::from_slice(&json).map_err(|_| refused("malformed"))?;
        if claims.exp < now {
            return Err(refused("expired"));
        }
        if !crate::core::pkce::verify_s256(&claims.challenge, &login.pkce_verifier) {
            return Err(refused("belongs to another login"));
        }
        let mut user = UserInfo::new("dev", &dev_sub(&claims.email));
        user.email = Some(claims.email);
        user.name = Some(claims.name);
        Ok(user)
    }
}

/// A stable subject for an email: case-insensitive, and no address in `x-user-id`.
pub fn dev_sub(email: &str) -> String {
    crate::secret::hash_token(&email.trim().to_lowercase()).chars().take(22).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> DevProvider {
        DevProvider { issuer: "http://127.0.0.1:1".into(), key: "k".to_owned().into() }
    }

    fn login(verifier: &str) -> UpstreamLogin {
        UpstreamLogin { pending_id: "p".into(), pkce_verifier: verifier.into(), nonce: None, expires_at: 0 }
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    #[test]
    fn a_signed_code_completes_until_it_expires() -> Result<(), UpstreamError> {
        let dev = provider();
        let challenge = crate::core::pkce::challenge_s256(VERIFIER);
        let code = dev.issue("Ann", "Ann@X.org", &challenge, 1000)?;
        let user = dev.complete(&code, &login(VERIFIER), 1000 + DEV_CODE_TTL_SECS)?;
        assert_eq!(user.id, format!("dev_{}", dev_sub("ann@x.org")));
        assert_eq!(user.email.as_deref(), Some("Ann@X.org"));
        assert_eq!(user.name.as_deref(), Some("Ann"));
        assert!(dev.complete(&code, &login(VERIFIER), 1001 + DEV_CODE_TTL_SECS).is_err());
        Ok(())
    }

    #[test]
    fn another_login_or_key_cannot_use_the_code() -> Result<(), UpstreamError> {
        let dev = provider();
        let code = dev.issue("Ann", "a@x.org", &crate::core::pkce::challenge_s256(VERIFIER), 1000)?;
        let other_verifier = "x".repeat(43);
        assert!(dev.complete(&code, &login(&other_verifier), 1000).is_err());
        let other_key = DevProvider { issuer: String::new(), key: "k2".to_owned().into() };
        assert!(other_key.complete(&code, &login(VERIFIER), 1000).is_err());
        for junk in ["", ".", "a.b", "no-dot"] {
            assert!(dev.complete(junk, &login(VERIFIER), 1000).is_err());
        }
        Ok(())
    }

    #[test]
    fn sub_is_stable_and_hides_the_email() {
        assert_eq!(dev_sub("A@x.org "), dev_sub("a@x.org"));
        assert_ne!(dev_sub("a@x.org"), dev_sub("b@x.org"));
        assert!(!dev_sub("a@x.org").contains('@'));
    }
}
