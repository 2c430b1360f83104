//! OpenID Connect: discovery and ID token verification.
//!
//! The JWKS is fetched at startup and fetched again, once per token, when an ID token names a
//! key id the cached set lacks (the provider rotated its keys). Only asymmetric algorithms
//! are accepted: an `HS256` token "signed" with a public key must never verify.

use std::sync::RwLock;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::{http, UpstreamError};

/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECS: i64 = 60;

/// Algorithms an ID token may be signed with.
const ALLOWED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// The parts of a discovery document the gateway uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// Must equal the issuer it was fetched from.
    pub issuer: String,
    /// Where the browser goes.
    pub authorization_endpoint: String,
    /// Where codes are exchanged.
    pub token_endpoint: String,
    /// Optional userinfo endpoint.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// The provider's public keys.
    pub jwks_uri: String,
    /// Client authentication methods; absent means `client_secret_basic`.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

impl Discovery {
    /// Whether the secret must go in the body: the provider lists `client_secret_post` and not
    /// `client_secret_basic` (Basic is the default of the spec).
    pub fn prefers_secret_in_body(&self) -> bool {
        self.token_endpoint_auth_methods_supported.as_ref().is_some_and(|methods| {
            methods.iter().any(|m| m == "client_secret_post")
                && !methods.iter().any(|m| m == "client_secret_basic")
        })
    }
}

/// Fetches `{issuer}/.well-known/openid-configuration` and checks its `issuer`.
pub async fn discover(issuer: &str) -> Result<Discovery, UpstreamError> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let value = http::get_json(&url, None)
        .await
        .map_err(|e| UpstreamError::Request(format!("OIDC discovery at {issuer} failed: {e}")))?;
    let doc: Discovery = serde_json::from_value(value)
        .map_err(|e| UpstreamError::Request(format!("OIDC discovery document of {issuer} unusable: {e}")))?;
    // OIDC Discovery §4.3: a document naming another issuer is refused (impersonation).
    if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(UpstreamError::Config(format!(
            "discovery at {issuer} names issuer {:?}; set `issuer` to the provider's exact issuer",
            doc.issuer
        )));
    }
    Ok(doc)
}

/// Checks ID tokens of one provider for one client.
pub struct OidcVerifier {
    issuer: String,
    client_id: String,
    jwks_uri: String,
    jwks: RwLock<JwkSet>,
}

impl OidcVerifier {
    /// Loads the provider's JWKS.
    pub async fn load(doc: &Discovery, client_id: &str) -> Result<Self, UpstreamError> {
        let jwks = fetch_jwks(&doc.jwks_uri).await?;
        Ok(Self::new(&doc.issuer, client_id, &doc.jwks_uri, jwks))
    }

    /// A verifier over a known key set.
    pub fn new(issuer: &str, client_id: &str, jwks_uri: &str, jwks: JwkSet) -> Self {
        OidcVerifier {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            jwks_uri: jwks_uri.to_owned(),
            jwks: RwLock::new(jwks),
        }
    }

    /// Verifies signature, `iss`, `aud` (and `azp`), `exp` against `now`, and `nonce`; returns
    /// the claims.
    pub async fn verify(&self, token: &str, nonce: Option<&str>, now: i64) -> Result<Value, UpstreamError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| reject(format!("ID token header: {e}")))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(reject(format!("ID token algorithm {:?} not accepted", header.alg)));
        }
        let mut keys = self.keys_for(header.kid.as_deref(), header.alg);
        if keys.is_empty() && header.kid.is_some() {
            self.refresh().await?;
            keys = self.keys_for(header.kid.as_deref(), header.alg);
        }
        if keys.is_empty() {
            return Err(reject("no provider key matches the ID token".into()));
        }
        let claims = self.decode(token, header.alg, &keys)?;
        self.check_claims(&claims, nonce, now)?;
        Ok(claims)
    }

    /// Candidate keys: the one with `kid`, or (no `kid`) every key of the algorithm's family.
    fn keys_for(&self, kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
        let set = self.jwks.read().unwrap_or_else(|p| p.into_inner());
        set.keys
            .iter()
            .filter(|k| match kid {
                Some(kid) => k.common.key_id.as_deref() == Some(kid),
                None => true,
            })
            .filter(|k| family_fits(k, alg))
            .filter_map(|k| DecodingKey::from_jwk(k).ok())
            .collect()
    }

    async fn refresh(&self) -> Result<(), UpstreamError> {
        let fresh = fetch_jwks(&self.jwks_uri).await?;
        *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    fn decode(&self, token: &str, alg: Algorithm, keys: &[DecodingKey]) -> Result<Value, UpstreamError> {
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.client_id]);
        // Expiry is checked against the gateway clock in `check_claims`.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
        let mut last = String::from("no key");
        for key in keys {
            match jsonwebtoken::decode::<Value>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(reject(format!("ID token refused: {last}")))
    }

    fn check_claims(&self, claims: &Value, nonce: Option<&str>, now: i64) -> Result<(), UpstreamError> {
        let exp =
            claims.get("exp").and_then(Value::as_i64).ok_or_else(|| reject("ID token has no exp".into()))?;
        if exp + LEEWAY_SECS < now {
            return Err(reject("ID token expired".into()));
        }
        // OIDC Core §3.1.3.7: with several audiences, `azp` must name this client.
        if claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1)
            && claims.get("azp").and_then(Value::as_str) != Some(self.client_id.as_str())
        {
            return Err(reject("ID token azp is not this client".into()));
        }
        if let Some(expected) = nonce {
            let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
            if !crate::secret::constant_time_eq(got, expected) {
                return Err(reject("ID token nonce does not match".into()));
            }
        }
        Ok(())
    }
}

fn family_fits(jwk: &jsonwebtoken::jwk::Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    match &jwk.algorithm {
        P::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        P::EllipticCurve(_) => matches!(alg, Algorithm::ES256 | Algorithm::ES384),
        _ => false,
    }
}

async fn fetch_jwks(uri: &str) -> Result<JwkSet, UpstreamError> {
    let value = http::get_json(uri, None).await?;
    // Keys of unknown types are skipped rather than failing the whole set.
    let keys = value.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
    let keys = keys.into_iter().filter_map(|k| serde_json::from_value(k).ok()).collect();
    Ok(JwkSet { keys })
}

fn reject(msg: String) -> UpstreamError {
    UpstreamError::Rejected(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_goes_in_body_only_when_basic_is_not_offered() {
        let mut doc = Discovery {
            issuer: "i".into(),
            authorization_endpoint: "a".into(),
            token_endpoint: "t".into(),
            userinfo_endpoint: None,
            jwks_uri: "j".into(),
            token_endpoint_auth_methods_supported: None,
        };
        assert!(!doc.prefers_secret_in_body());
        doc.token_endpoint_auth_methods_supported = Some(vec!["client_secret_post".into()]);
        assert!(doc.prefers_secret_in_body());
        doc.token_endpoint_auth_methods_supported =
            Some(vec!["client_secret_post".into(), "client_secret_basic".into()]);
        assert!(!doc.prefers_secret_in_body());
    }

    #[actix_web::test]
    async fn symmetric_and_unsigned_tokens_are_refused() {
        let verifier =
            OidcVerifier::new("http://idp", "c", "http://127.0.0.1:9/jwks", JwkSet { keys: vec![] });
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"iss": "http://idp", "aud": "c", "sub": "s", "exp": 9_999_999_999i64}),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        );
        let hs = hs.unwrap_or_default();
        assert!(matches!(verifier.verify(&hs, None, 0).await, Err(UpstreamError::Rejected(_))));
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzIn0.";
        assert!(matches!(verifier.verify(none, None, 0).await, Err(UpstreamError::Rejected(_))));
        assert!(verifier.verify("garbage", None, 0).await.is_err());
    }
}
