//! What a grant keeps of the person's sign-in at the identity provider, so that the provider
//! can be asked again later (`tokens.upstream_recheck`).
//!
//! The provider's access and refresh tokens are kept with the authorization code and then
//! with every refresh token of the family, sealed with AES-256-GCM ([`TokenSealer`]). The key
//! is derived from two secrets: one kept in the store (`upstream-token-key`, created once and
//! shared by every instance, like the rotation key) and `session_secret` from the
//! configuration. Someone who reads the store alone cannot open the tokens, nor can someone
//! who has only the configuration; the user id is the associated data, so a sealed value
//! moved to another person's record does not open either.
//!
//! The asking itself is the upstream module's ([`IdentityCheck`]); the token service decides
//! when to ask and what each answer means for the family.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures_util::future::LocalBoxFuture;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::model::{keys, UpstreamGrant, UserInfo};
use super::signing_keys::{shared_secret, KeyError};
use super::store::Store;

/// Prefix of a sealed value: the format, so a later one can be told apart.
const SEALED_V1: &str = "v1.";
/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;

/// The person's tokens at the provider, in the clear. Never logged, never stored unsealed.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpstreamTokens {
    /// The provider's access token.
    pub access_token: String,
    /// Its refresh token, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// What asking the provider again found.
#[derive(Debug)]
pub enum Recheck {
    /// The person is still signed in: who they are now (fresh claims for the access rules)
    /// and the sealed tokens to keep from now on.
    Confirmed {
        /// The person as the provider describes them now (same id).
        user: Box<UserInfo>,
        /// The tokens to keep, sealed (the provider may have rotated them).
        sealed: String,
    },
    /// The provider refused (the person was disabled, the grant was revoked there, the
    /// tokens no longer work): the family ends.
    Refused(String),
    /// The provider could not be asked (unreachable, failing): nothing was learned.
    Unavailable(String),
}

/// Asks the identity provider whether a person's sign-in still holds.
pub trait IdentityCheck: Send + Sync {
    /// Asks about `user`, signed in with the sealed tokens of `grant`.
    fn recheck<'a>(&'a self, user: &'a UserInfo, grant: &'a UpstreamGrant) -> LocalBoxFuture<'a, Recheck>;
}

/// Seals and opens upstream tokens (AES-256-GCM under the derived key).
#[derive(Clone)]
pub struct TokenSealer(std::sync::Arc<Aes256Gcm>);

impl std::fmt::Debug for TokenSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSealer([redacted])")
    }
}

/// Why sealed tokens did not open.
#[derive(Debug, thiserror::Error)]
#[error("sealed upstream tokens cannot be opened: {0}")]
pub struct OpenError(&'static str);

impl TokenSealer {
    /// The sealer of the store secret `stored` and `session_secret`.
    pub fn new(stored: &[u8], session_secret: &SecretString) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(stored).unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"upstream-tokens-v1\n");
        mac.update(session_secret.expose_secret().as_bytes());
        let key = mac.finalize().into_bytes();
        TokenSealer(std::sync::Arc::new(Aes256Gcm::new(&key)))
    }

    /// `tokens` sealed for `user_id`: `v1.` and base64url of a random nonce and the ciphertext.
    pub fn seal(&self, tokens: &UpstreamTokens, user_id: &str) -> String {
        let plain = serde_json::to_vec(tokens).unwrap_or_default();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload { msg: &plain, aad: user_id.as_bytes() };
        // Encryption only fails for inputs of gigabytes.
        let sealed = self.0.encrypt(&Nonce::from(nonce), payload).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{SEALED_V1}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The tokens `sealed` holds, when it was sealed for `user_id` under this key.
    pub fn open(&self, sealed: &str, user_id: &str) -> Result<UpstreamTokens, OpenError> {
        let body = sealed.strip_prefix(SEALED_V1).ok_or(OpenError("unknown format"))?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| OpenError("not base64url"))?;
        if bytes.len() <= NONCE_LEN {
            return Err(OpenError("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError("too short"))?;
        let payload = Payload { msg: ciphertext, aad: user_id.as_bytes() };
        let plain = self
            .0
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| OpenError("another key, another person, or altered"))?;
        serde_json::from_slice(&plain).map_err(|_| OpenError("not tokens"))
    }
}

/// HMAC accepts keys of any length, so `new_from_slice` cannot fail.
fn unreachable_hmac() -> Hmac<Sha256> {
    unreachable!("HMAC-SHA256 takes keys of any length")
}

/// The sealer of the store's `upstream-token-key` (created if absent: instances starting at
/// once agree, as for the rotation key) and `session_secret`.
pub async fn load_sealer<S: Store>(
    backend: &S,
    session_secret: &SecretString,
) -> Result<TokenSealer, KeyError> {
    let stored = shared_secret(backend, &keys::upstream_token_key(), "upstream token key").await?;
    Ok(TokenSealer::new(stored.as_bytes(), session_secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> UpstreamTokens {
        UpstreamTokens { access_token: "at-secret".into(), refresh_token: Some("rt-secret".into()) }
    }

    #[test]
    fn sealed_tokens_open_only_with_the_same_secrets_for_the_same_person() -> Result<(), OpenError> {
        let secret = SecretString::from("session-secret-0123456789abcdef");
        let sealer = TokenSealer::new(b"stored-key-0123456789abcdef0123456789", &secret);
        let sealed = sealer.seal(&tokens(), "oidc_ann");
        assert!(!sealed.contains("secret"), "{sealed}");
        assert_ne!(sealed, sealer.seal(&tokens(), "oidc_ann"), "a fresh nonce each time");
        assert_eq!(sealer.open(&sealed, "oidc_ann")?, tokens());

        assert!(sealer.open(&sealed, "oidc_bob").is_err(), "moved to another person");
        let other_store = TokenSealer::new(b"another-stored-key-0123456789abcdef", &secret);
        assert!(other_store.open(&sealed, "oidc_ann").is_err());
        let other_config = TokenSealer::new(
            b"stored-key-0123456789abcdef0123456789",
            &SecretString::from("another-session-secret-0123456789"),
        );
        assert!(other_config.open(&sealed, "oidc_ann").is_err());
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(sealer.open(&String::from_utf8_lossy(&altered), "oidc_ann").is_err());
        for junk in ["", "v1.", "v1.!!!", "v2.AAAA", "v1.AAAA"] {
            assert!(sealer.open(junk, "oidc_ann").is_err(), "{junk}");
        }
        Ok(())
    }

    #[test]
    fn debug_output_hides_the_tokens() {
        let shown = format!("{:?}", tokens());
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[actix_rt::test]
    async fn instances_sharing_a_store_share_the_key() -> Result<(), KeyError> {
        let store = crate::core::store::MemoryStore::new();
        let secret = SecretString::from("session-secret-0123456789abcdef");
        let a = load_sealer(&store, &secret).await?;
        let b = load_sealer(&store, &secret).await?;
        let sealed = a.seal(&tokens(), "u");
        assert_eq!(b.open(&sealed, "u").ok(), Some(tokens()));
        Ok(())
    }
}
