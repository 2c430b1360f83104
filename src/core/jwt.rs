//! Signing keys and access tokens: ES256 JWTs, a JWKS with a `kid` per key, and local
//! verification (signature, `iss`, `aud`, `exp` against the gateway clock).
//!
//! Keys are P-256 private keys kept as PKCS#8 PEM so a storage backend can hold them and every
//! instance signs with the same set. The newest key signs; every key in the set verifies, so
//! tokens signed before a rotation stay valid until they expire.
//!
//! A rotated-in key can carry a `created_at` in the future: it is published (JWKS, and every
//! instance's key set) at once but signs only from then on, so by the time any instance signs
//! with it every other instance already verifies it. [`KeyRing`] is the handle the gateway
//! shares; the storage supervisor swaps a fresh set into it when the stored set changes.

use std::collections::HashMap;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::Signature;
use p256::pkcs8::DecodePrivateKey as _;
use std::sync::{Arc, RwLock};

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
    /// Unix time from which the key signs (its creation, or later for a rotated-in key);
    /// the newest key past this time signs.
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
    /// Malformed, wrong `iss` or `aud`, unknown `kid`.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Refused by the verification under one of the gateway's own keys (a signature that does
    /// not verify, or signed claims that do not parse). The same text fails the same way every
    /// time, so a caller may remember the refusal; an unknown `kid` is [`JwtError::Invalid`]
    /// instead, since another instance's newer key may arrive with the next key-set reload.
    #[error("invalid token: {0}")]
    Signature(String),
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// A key could not be loaded or used.
    #[error("key error: {0}")]
    Key(String),
}

struct LoadedKey {
    /// Parsed once (jsonwebtoken's `encode` re-parses the PKCS#8 key on every call), and
    /// signing with aws-lc: its P-256 is about five times faster than the pure-Rust `p256`
    /// crate's, which was half of a refresh's CPU (bench/PROFILE.md).
    signing: EcdsaKeyPair,
    decoding: DecodingKey,
}

/// The key set in use.
pub struct SigningKeys {
    issuer: String,
    active_kid: String,
    keys: HashMap<String, LoadedKey>,
    jwks: JwkSet,
    stored: Vec<StoredKey>,
    /// Keys gone from the store that still verify, each until the Unix time its last token
    /// can have expired: a store that lost its data must not invalidate live tokens.
    retained: Vec<(StoredKey, i64)>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").field("active_kid", &self.active_kid).finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Loads a key set; the newest key signs. Fails on an empty set or a bad key.
    pub fn new(issuer: &str, stored: Vec<StoredKey>) -> Result<Self, JwtError> {
        Self::new_at(issuer, stored, i64::MAX)
    }

    /// Loads a key set as of `now`: the newest key whose `created_at` has come signs (the
    /// oldest key when none has); every key verifies.
    pub fn new_at(issuer: &str, stored: Vec<StoredKey>, now: i64) -> Result<Self, JwtError> {
        Self::with_retained(issuer, stored, Vec::new(), now)
    }

    /// [`SigningKeys::new_at`] plus `retained` keys that verify (until their time) but never
    /// sign.
    pub fn with_retained(
        issuer: &str,
        stored: Vec<StoredKey>,
        retained: Vec<(StoredKey, i64)>,
        now: i64,
    ) -> Result<Self, JwtError> {
        let active_kid = active_kid(&stored, now).ok_or_else(|| JwtError::Key("empty key set".into()))?;
        let mut keys = HashMap::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        for key in stored.iter().chain(retained.iter().map(|(key, _)| key)) {
            let encoding =
                EncodingKey::from_ec_pem(key.pem.as_bytes()).map_err(|e| JwtError::Key(e.to_string()))?;
            let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
                .map_err(|e| JwtError::Key(e.to_string()))?;
            jwk.common.key_id = Some(key.kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
            let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| JwtError::Key(e.to_string()))?;
            let der = p256::SecretKey::from_pkcs8_pem(&key.pem)
                .and_then(|secret| secret.to_pkcs8_der())
                .map_err(|e| JwtError::Key(e.to_string()))?;
            let signing = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_bytes())
                .map_err(|e| JwtError::Key(e.to_string()))?;
            jwks.keys.push(jwk);
            keys.insert(key.kid.clone(), LoadedKey { signing, decoding });
        }
        Ok(SigningKeys { issuer: issuer.to_owned(), active_kid, keys, jwks, stored, retained })
    }

    /// A set of one fresh key (memory storage, tests).
    pub fn generate(issuer: &str, now: i64) -> Result<Self, JwtError> {
        Self::new(issuer, vec![StoredKey::generate(now)?])
    }

    /// The keys as stored.
    pub fn stored(&self) -> &[StoredKey] {
        &self.stored
    }

    /// Keys no longer in the store that still verify, with the time they are dropped.
    pub fn retained(&self) -> &[(StoredKey, i64)] {
        &self.retained
    }

    /// The id of the key that signs.
    pub fn active_kid(&self) -> &str {
        &self.active_kid
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
        let header = serde_json::to_vec(&header).map_err(|e| JwtError::Key(e.to_string()))?;
        let claims = serde_json::to_vec(claims).map_err(|e| JwtError::Key(e.to_string()))?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims));
        // Low-S form: the verifier refuses the high-S twin of every signature (see
        // `is_low_s`). The nonce is random, so a duplicate refresh in the grace window gets
        // the same claims (same `jti`) under another signature.
        let raw = key
            .signing
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|e| JwtError::Key(e.to_string()))?;
        let signature = Signature::from_slice(raw.as_ref()).map_err(|e| JwtError::Key(e.to_string()))?;
        let signature = signature.normalize_s().unwrap_or(signature);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        Ok(token)
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
        if !is_low_s(token) {
            return Err(JwtError::Invalid("signature not in low-S form".into()));
        }
        // The answer to a token whose claims already fail is the same 401 with or without a
        // signature check, so those are refused before the ECDSA verification, the one costly
        // step (a flood of stale or foreign tokens then costs a base64 and a JSON parse each).
        unverified_precheck(token, &self.issuer, now)?;
        let mut validation = Validation::new(Algorithm::ES256);
        // Expiry is checked below against the gateway clock, which tests can move.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|e| JwtError::Signature(e.to_string()))?;
        if data.claims.exp + LEEWAY_SECS < now {
            return Err(JwtError::Expired);
        }
        Ok(data.claims)
    }
}

/// The claims of `token` read without its signature, as far as they can be judged so: the
/// issuer and the expiry. Anything it cannot read is left to the full check.
fn unverified_precheck(token: &str, issuer: &str, now: i64) -> Result<(), JwtError> {
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(borrow)]
        iss: Option<std::borrow::Cow<'a, str>>,
        exp: Option<i64>,
    }
    let Some(payload) = token.split('.').nth(1) else { return Ok(()) };
    let Ok(json) = URL_SAFE_NO_PAD.decode(payload) else { return Ok(()) };
    let Ok(peek) = serde_json::from_slice::<Peek<'_>>(&json) else { return Ok(()) };
    if peek.iss.is_some_and(|iss| iss != issuer) {
        return Err(JwtError::Invalid("token from another issuer".into()));
    }
    if peek.exp.is_some_and(|exp| exp + LEEWAY_SECS < now) {
        return Err(JwtError::Expired);
    }
    Ok(())
}

/// Whether the token's ES256 signature has its `s` in the lower half of the group order. Every
/// ECDSA signature has a twin with `n - s` that verifies too; accepting only one form makes a
/// token's text unique, so a second spelling of a token (with its own cache entry) cannot be
/// made from the first. A signature that does not even parse is left to the verifier.
fn is_low_s(token: &str) -> bool {
    let Some((_, signature)) = token.rsplit_once('.') else { return true };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(signature) else { return true };
    match Signature::from_slice(&bytes) {
        Ok(sig) => sig.normalize_s().is_none(),
        Err(_) => true,
    }
}

/// The key that signs at `now` among `stored` (see [`SigningKeys::new_at`]).
pub fn active_kid(stored: &[StoredKey], now: i64) -> Option<String> {
    let due = stored.iter().filter(|k| k.created_at <= now).max_by_key(|k| k.created_at);
    due.or_else(|| stored.iter().min_by_key(|k| k.created_at)).map(|k| k.kid.clone())
}

/// The gateway's current key set, shared by every handler and the token actor, and replaced
/// whole when the stored set changes (key rotation). Reading it is one uncontended read lock
/// and an `Arc` clone; the lock is never held across an `.await`.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: Arc<RwLock<Arc<SigningKeys>>>,
}

impl KeyRing {
    /// A ring holding `keys`.
    pub fn new(keys: SigningKeys) -> Self {
        KeyRing { current: Arc::new(RwLock::new(Arc::new(keys))) }
    }

    /// The key set in use right now.
    pub fn current(&self) -> Arc<SigningKeys> {
        // A poisoned lock still holds a whole `Arc` (replacing it is one assignment).
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `keys` in use for every holder of this ring.
    pub fn replace(&self, keys: SigningKeys) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }

    /// Signs with the current active key ([`SigningKeys::sign`]).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, JwtError> {
        self.current().sign(claims)
    }

    /// [`SigningKeys::verify`] with the current set.
    pub fn verify(&self, token: &str, audience: &str, now: i64) -> Result<AccessClaims, JwtError> {
        self.current().verify(token, audience, now)
    }

    /// [`SigningKeys::verify_any_audience`] with the current set.
    pub fn verify_any_audience(&self, token: &str, now: i64) -> Result<AccessClaims, JwtError> {
        self.current().verify_any_audience(token, now)
    }

    /// The current public JWKS (a copy: the set may be replaced at any time).
    pub fn jwks(&self) -> JwkSet {
        self.current().jwks().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &str, exp: i64) -> AccessClaims {
        crate::core::testing::access_claims(aud, exp)
    }

    #[test]
    fn sign_then_verify_round_trips() -> Result<(), JwtError> {
        let keys = SigningKeys::generate("http://gw", 1000)?;
        let token = keys.sign(&claims("http://gw/a/mcp", 5000))?;
        assert_eq!(keys.verify(&token, "http://gw/a/mcp", 2000)?, claims("http://gw/a/mcp", 5000));
        Ok(())
    }

    #[test]
    fn claims_that_fail_are_refused_before_the_signature_is_checked() -> Result<(), JwtError> {
        let keys = SigningKeys::generate("http://gw", 1000)?;
        let token = keys.sign(&claims("http://gw/a/mcp", 1500))?;
        // A broken signature on an expired token: the expiry is what is reported, so the
        // claims were judged first (the full check would say "invalid signature").
        let (signed, _) = token.rsplit_once('.').unwrap_or_default();
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([1u8; 64]));
        assert!(matches!(keys.verify_any_audience(&forged, 9000), Err(JwtError::Expired)));
        let other = SigningKeys::generate("http://elsewhere", 1000)?;
        let mut elsewhere = claims("http://gw/a/mcp", 5000);
        elsewhere.iss = "http://elsewhere".into();
        let foreign = other.sign(&elsewhere)?;
        let (head, _) = token.split_once('.').unwrap_or_default();
        let (_, rest) = foreign.split_once('.').unwrap_or_default();
        match keys.verify_any_audience(&format!("{head}.{rest}"), 2000) {
            Err(JwtError::Invalid(why)) => assert!(why.contains("another issuer"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A valid token still passes the whole check.
        assert!(keys.verify_any_audience(&token, 1200).is_ok());
        Ok(())
    }

    #[test]
    fn the_same_claims_signed_twice_verify_as_the_same_claims() -> Result<(), JwtError> {
        let keys = SigningKeys::generate("http://gw", 1000)?;
        let a = keys.sign(&claims("http://gw/a/mcp", 5000))?;
        let b = keys.sign(&claims("http://gw/a/mcp", 5000))?;
        let (signed_a, signed_b) = (a.rsplit_once('.').map(|p| p.0), b.rsplit_once('.').map(|p| p.0));
        assert_eq!(signed_a, signed_b, "the same header and claims");
        assert_eq!(keys.verify(&a, "http://gw/a/mcp", 1000)?, keys.verify(&b, "http://gw/a/mcp", 1000)?);
        Ok(())
    }

    #[test]
    fn every_signature_is_low_s_and_its_high_s_twin_is_refused() -> Result<(), JwtError> {
        let keys = SigningKeys::generate("http://gw", 1000)?;
        // About half of raw ECDSA signatures are high-S: 40 tokens all but surely meet some.
        for exp in 5000..5040 {
            let token = keys.sign(&claims("http://gw/a/mcp", exp))?;
            assert!(is_low_s(&token), "signed high-S");
            let (signed, sig) = token.rsplit_once('.').ok_or(JwtError::Key("shape".into()))?;
            let bytes = URL_SAFE_NO_PAD.decode(sig).map_err(|e| JwtError::Key(e.to_string()))?;
            let sig = Signature::from_slice(&bytes).map_err(|e| JwtError::Key(e.to_string()))?;
            let (r, s) = sig.split_scalars();
            let twin = Signature::from_scalars(r, -s).map_err(|e| JwtError::Key(e.to_string()))?;
            let twin = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(twin.to_bytes()));
            assert!(keys.verify(&token, "http://gw/a/mcp", 2000).is_ok());
            assert!(matches!(keys.verify(&twin, "http://gw/a/mcp", 2000), Err(JwtError::Invalid(_))));
        }
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
    fn only_refusals_under_a_known_key_are_marked_lasting() -> Result<(), JwtError> {
        let keys = SigningKeys::generate("http://gw", 1000)?;
        let token = keys.sign(&claims("http://gw/a/mcp", 5000))?;
        let (signed, sig) = token.rsplit_once('.').ok_or(JwtError::Key("shape".into()))?;
        let mut bytes = URL_SAFE_NO_PAD.decode(sig).map_err(|e| JwtError::Key(e.to_string()))?;
        bytes[5] ^= 1; // r changes; s (and its low-S form) stays
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert!(matches!(keys.verify_any_audience(&forged, 2000), Err(JwtError::Signature(_))));
        // Another key set does not know the kid: that may change with a reload.
        let stranger = SigningKeys::generate("http://gw", 1000)?;
        assert!(matches!(stranger.verify_any_audience(&token, 2000), Err(JwtError::Invalid(_))));
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
    fn a_key_signs_only_from_its_start_but_verifies_at_once() -> Result<(), JwtError> {
        let old = StoredKey::generate(1000)?;
        let pending = StoredKey::generate(2000)?;
        let stored = vec![old.clone(), pending.clone()];
        let before = SigningKeys::new_at("http://gw", stored.clone(), 1500)?;
        assert_eq!(before.active_kid(), old.kid);
        let after = SigningKeys::new_at("http://gw", stored.clone(), 2000)?;
        assert_eq!(after.active_kid(), pending.kid);
        let token = after.sign(&claims("http://gw/a/mcp", 5000))?;
        assert!(before.verify(&token, "http://gw/a/mcp", 1500).is_ok(), "published before it signs");
        assert_eq!(active_kid(std::slice::from_ref(&pending), 0), Some(pending.kid), "none due: the oldest");
        Ok(())
    }

    #[test]
    fn a_key_ring_swap_reaches_every_clone() -> Result<(), JwtError> {
        let ring = KeyRing::new(SigningKeys::generate("http://gw", 1000)?);
        let other = ring.clone();
        let before = ring.sign(&claims("http://gw/a/mcp", 5000))?;
        let mut stored = ring.current().stored().to_vec();
        stored.push(StoredKey::generate(1500)?);
        ring.replace(SigningKeys::new("http://gw", stored)?);
        assert_eq!(other.jwks().keys.len(), 2);
        let after = other.sign(&claims("http://gw/a/mcp", 5000))?;
        assert!(ring.verify(&before, "http://gw/a/mcp", 2000).is_ok());
        assert!(ring.verify_any_audience(&after, 2000).is_ok());
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
