//! Signing keys and access tokens: ES256 JWTs, a JWKS with a `kid` per key, and local
//! verification (signature, `iss`, `aud`, `exp` against the gateway clock).
//!
//! Keys are P-256 private keys kept as PKCS#8 PEM so a storage backend can hold them and every
//! instance signs with the same set. The newest key signs; every key in the set verifies, so
//! tokens signed before a rotation stay valid until they expire.

use std::collections::HashMap;

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde::{Deserialize, Serialize};

use super::model::AccessClaims;

/// Seconds of clock skew tolerated when checking `exp`: only the gateway issues and checks
/// these tokens, so this covers skew between instances, not between strangers (the proxy
/// re-checks cached claims with the same leeway).
pub const LEEWAY_SECS: i64 = 5;

/// A key as stored: id, PKCS#8 PEM and creation time.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKey {
    /// Key id (`kid`).
    pub kid: String,
    /// PKCS#8 PEM of the P-256 private key.
    pub pem: String,
    /// Unix time the key was created; the newest signs.
    pub created_at: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey").field("kid", &self.kid).field("pem", &"[redacted]").finish()
    }
}

impl StoredKey {
    /// A fresh random P-256 key.
    pub fn generate(now: i64) -> Result<Self, JwtError> {
        let secret = loop {
            // Rejection sampling: almost every 32-byte string is a valid scalar.
            if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        let pem = secret.to_pkcs8_pem(LineEnding::LF).map_err(|e| JwtError::Key(e.to_string()))?;
        Ok(StoredKey { kid: crate::secret::random_token(12), pem: pem.to_string(), created_at: now })
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Malformed, bad signature, wrong `iss` or `aud`, unknown `kid`.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// A key could not be loaded or used.
    #[error("key error: {0}")]
    Key(String),
}

struct LoadedKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The key set in use.
pub struct SigningKeys {
    issuer: String,
    active_kid: String,
    keys: HashMap<String, LoadedKey>,
    jwks: JwkSet,
    stored: Vec<StoredKey>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").field("active_kid", &self.active_kid).finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Loads a key set; the newest key signs. Fails on an empty set or a bad key.
    pub fn new(issuer: &str, stored: Vec<StoredKey>) -> Result<Self, JwtError> {
        let active = stored
            .iter()
            .max_by_key(|k| k.created_at)
            .ok_or_else(|| JwtError::Key("empty key set".into()))?;
        let active_kid = active.kid.clone();
        let mut keys = HashMap::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        for key in &stored {
            let encoding =
                EncodingKey::from_ec_pem(key.pem.as_bytes()).map_err(|e| JwtError::Key(e.to_string()))?;
            let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
                .map_err(|e| JwtError::Key(e.to_string()))?;
            jwk.common.key_id = Some(key.kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
            let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| JwtError::Key(e.to_string()))?;
            jwks.keys.push(jwk);
            keys.insert(key.kid.clone(), LoadedKey { encoding, decoding });
        }
        Ok(SigningKeys { issuer: issuer.to_owned(), active_kid, keys, jwks, stored })
    }

    /// A set of one fresh key (memory storage, tests).
    pub fn generate(issuer: &str, now: i64) -> Result<Self, JwtError> {
        Self::new(issuer, vec![StoredKey::generate(now)?])
    }

    /// The keys as stored.
    pub fn stored(&self) -> &[StoredKey] {
        &self.stored
    }

    /// The public JWKS served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// Signs `claims` with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, JwtError> {
        let key =
            self.keys.get(&self.active_kid).ok_or_else(|| JwtError::Key("active key missing".into()))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.active_kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| JwtError::Key(e.to_string()))
    }

    /// Checks signature, `iss`, `aud` == `audience` and `exp` against `now`.
    pub fn verify(&self, token: &str, audience: &str, now: i64) -> Result<AccessClaims, JwtError> {
        let claims = self.verify_any_audience(token, now)?;
        if claims.aud != audience {
            return Err(JwtError::Invalid("token is for another resource".into()));
        }
        Ok(claims)
    }

    /// Checks signature, `iss` and `exp`, but not the audience (introspection, revocation,
    /// and the proxy's verify-once cache, which checks `aud` itself on every request).
    pub fn verify_any_audience(&self, token: &str, now: i64) -> Result<AccessClaims, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::ES256 {
            return Err(JwtError::Invalid("unexpected algorithm".into()));
        }
        let kid = header.kid.ok_or_else(|| JwtError::Invalid("no kid".into()))?;
        let key = self.keys.get(&kid).ok_or_else(|| JwtError::Invalid("unknown kid".into()))?;
        let mut validation = Validation::new(Algorithm::ES256);
        // Expiry is checked below against the gateway clock, which tests can move.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|e| JwtError::Invalid(e.to_string()))?;
        if data.claims.exp + LEEWAY_SECS < now {
            return Err(JwtError::Expired);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &str, exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://gw".into(),
            sub: "dev_alice".into(),
            aud: aud.into(),
            exp,
            iat: exp - 3600,
            jti: "j1".into(),
            fid: "f1".into(),
            client_id: "c1".into(),
            scope: "read".into(),
            email: Some("a@example.com".into()),
            name: None,
            provider: "dev".into(),
            avatar: None,
        }
    }

    #[test]
    fn sign_then_verify_round_trips() -> Result<(), JwtError> {
        let keys = SigningKeys::generate("http://gw", 1000)?;
        let token = keys.sign(&claims("http://gw/a/mcp", 5000))?;
        assert_eq!(keys.verify(&token, "http://gw/a/mcp", 2000)?, claims("http://gw/a/mcp", 5000));
        Ok(())
    }

    #[test]
    fn wrong_audience_issuer_and_expiry_are_refused() -> Result<(), JwtError> {
        let keys = SigningKeys::generate("http://gw", 1000)?;
        let token = keys.sign(&claims("http://gw/a/mcp", 5000))?;
        assert!(matches!(keys.verify(&token, "http://gw/b/mcp", 2000), Err(JwtError::Invalid(_))));
        assert!(matches!(keys.verify(&token, "http://gw/a/mcp", 9000), Err(JwtError::Expired)));
        let other = SigningKeys::new("http://other", keys.stored().to_vec())?;
        assert!(matches!(other.verify(&token, "http://gw/a/mcp", 2000), Err(JwtError::Invalid(_))));
        Ok(())
    }

    #[test]
    fn old_keys_still_verify_after_rotation() -> Result<(), JwtError> {
        let old = SigningKeys::generate("http://gw", 1000)?;
        let token = old.sign(&claims("http://gw/a/mcp", 5000))?;
        let mut stored = old.stored().to_vec();
        stored.push(StoredKey::generate(1500)?);
        let rotated = SigningKeys::new("http://gw", stored)?;
        assert!(rotated.verify(&token, "http://gw/a/mcp", 2000).is_ok());
        assert_eq!(rotated.jwks().keys.len(), 2);
        let new_token = rotated.sign(&claims("http://gw/a/mcp", 5000))?;
        assert!(old.verify(&new_token, "http://gw/a/mcp", 2000).is_err(), "new key unknown to old set");
        Ok(())
    }

    #[test]
    fn garbage_is_refused_without_panic() -> Result<(), JwtError> {
        let keys = SigningKeys::generate("http://gw", 1000)?;
        for junk in ["", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "....", "\u{0}"] {
            assert!(keys.verify(junk, "http://gw/a/mcp", 2000).is_err());
        }
        Ok(())
    }
}
