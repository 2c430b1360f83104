//! Signed JWTs presented to the token endpoint by someone other than the gateway: a client's
//! authentication assertion (RFC 7523 §3, `private_key_jwt`) and, for Enterprise-Managed
//! Authorization, an identity assertion grant. This file checks what they share: the
//! signature against a set of public keys, and the time claims.
//!
//! Only asymmetric algorithms are accepted (RS256, PS256, ES256, EdDSA): an HMAC assertion
//! would need the client's secret, and `none` proves nothing. The key is chosen by `kid` when
//! the header has one; without one (the TypeScript SDK's `PrivateKeyJwtProvider` sends none)
//! every key of a matching type is tried, which costs one verification per key and so is
//! bounded by the (operator-configured) size of the set.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;

/// Algorithms accepted for assertions, as advertised in
/// `token_endpoint_auth_signing_alg_values_supported`.
pub const ALGORITHMS: [Algorithm; 4] =
    [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA];

/// Their names.
pub const ALGORITHM_NAMES: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// Clock difference tolerated between the signer and the gateway (seconds).
pub const SKEW_SECS: i64 = 60;

/// Longest an assertion may still be valid when it arrives (seconds, plus [`SKEW_SECS`]): a
/// short life bounds how long a stolen one is worth and how long its `jti` must be kept.
pub const MAX_LIFETIME_SECS: i64 = 300;

/// Why an assertion was refused. The text is for the presenter (it names the rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a JWT, or a claim of the wrong type.
    #[error("assertion is malformed: {0}")]
    Malformed(String),
    /// An algorithm outside [`ALGORITHMS`].
    #[error("assertion algorithm is not accepted")]
    Algorithm,
    /// No key of the set verifies it (unknown `kid`, wrong key, bad signature).
    #[error("assertion signature does not verify with the registered keys")]
    Signature,
    /// A claim breaks a rule.
    #[error("assertion {0}")]
    Claim(&'static str),
}

/// The JOSE header, with the algorithm checked against [`ALGORITHMS`].
pub fn header(token: &str) -> Result<Header, AssertionError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| AssertionError::Malformed(e.to_string()))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(AssertionError::Algorithm);
    }
    Ok(header)
}

/// The claims, unverified: only to find out who claims to have signed (which key set to use).
pub fn unverified_claims(token: &str) -> Result<Value, AssertionError> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).ok_or_else(|| AssertionError::Malformed("not a JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AssertionError::Malformed("payload is not base64url".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| AssertionError::Malformed("payload is not JSON".into()))
}

/// Verifies the signature of `token` (whose checked header is `header`) with one of `keys`
/// and returns its claims. Time and audience are the caller's to check ([`check_times`]).
pub fn verify(token: &str, header: &Header, keys: &[Jwk]) -> Result<Value, AssertionError> {
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let candidates = keys.iter().filter(|k| {
        header.kid.as_ref().is_none_or(|kid| k.common.key_id.as_ref() == Some(kid)) && fits(k, header.alg)
    });
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        if let Ok(data) = jsonwebtoken::decode::<Value>(token, &key, &validation) {
            return Ok(data.claims);
        }
    }
    Err(AssertionError::Signature)
}

/// Whether `jwk` can verify `alg`: its key type fits and its own `alg`, when given, agrees.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let type_fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(alg, Algorithm::RS256 | Algorithm::PS256),
        AlgorithmParameters::EllipticCurve(_) => alg == Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(_) => alg == Algorithm::EdDSA,
        _ => false,
    };
    let named = jwk.common.key_algorithm.map(|a| format!("{a:?}"));
    type_fits && named.is_none_or(|name| name == format!("{alg:?}"))
}

/// An integer claim, if present; a present claim of another type is malformed.
pub fn int_claim(claims: &Value, name: &'static str) -> Result<Option<i64>, AssertionError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(AssertionError::Claim(match name {
            "exp" => "exp is not a number",
            "iat" => "iat is not a number",
            "nbf" => "nbf is not a number",
            _ => "has a time claim that is not a number",
        })),
    }
}

/// A string claim, if present and a string.
pub fn str_claim<'a>(claims: &'a Value, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// `exp` required, not passed, and at most `max_lifetime` seconds ahead; `iat` (required when
/// `iat_required`) and `nbf` not in the future; all with [`SKEW_SECS`]. Returns `exp`.
pub fn check_times(
    claims: &Value,
    now: i64,
    iat_required: bool,
    max_lifetime: i64,
) -> Result<i64, AssertionError> {
    let exp = int_claim(claims, "exp")?.ok_or(AssertionError::Claim("has no exp"))?;
    if exp + SKEW_SECS < now {
        return Err(AssertionError::Claim("has expired"));
    }
    if exp - now > max_lifetime + SKEW_SECS {
        return Err(AssertionError::Claim("lives too long (exp too far ahead)"));
    }
    match int_claim(claims, "iat")? {
        Some(iat) if iat > now + SKEW_SECS => return Err(AssertionError::Claim("was issued in the future")),
        None if iat_required => return Err(AssertionError::Claim("has no iat")),
        _ => {}
    }
    if int_claim(claims, "nbf")?.is_some_and(|nbf| nbf > now + SKEW_SECS) {
        return Err(AssertionError::Claim("is not valid yet (nbf)"));
    }
    Ok(exp)
}

/// Whether the `aud` claim (a string, or an array) names one of `accepted`.
pub fn audience_matches(claims: &Value, accepted: &[String]) -> bool {
    let matches = |v: &Value| v.as_str().is_some_and(|a| accepted.iter().any(|x| x == a));
    match claims.get("aud") {
        Some(Value::Array(items)) => items.iter().any(matches),
        Some(v) => matches(v),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn time_rules() {
        let now = 10_000;
        assert_eq!(check_times(&json!({"exp": now + 60}), now, false, MAX_LIFETIME_SECS), Ok(now + 60));
        assert_eq!(
            check_times(&json!({"exp": now - 30}), now, false, MAX_LIFETIME_SECS),
            Ok(now - 30),
            "within the skew"
        );
        let refused = [
            json!({}),
            json!({"exp": "soon"}),
            json!({"exp": now - 61}),
            json!({"exp": now + 361}),
            json!({"exp": now + 60, "iat": now + 61}),
            json!({"exp": now + 60, "nbf": now + 120}),
        ];
        for claims in refused {
            assert!(check_times(&claims, now, false, MAX_LIFETIME_SECS).is_err(), "{claims}");
        }
        assert!(
            check_times(&json!({"exp": now + 60}), now, true, MAX_LIFETIME_SECS).is_err(),
            "iat required"
        );
        assert!(check_times(&json!({"exp": now + 60, "iat": now}), now, true, MAX_LIFETIME_SECS).is_ok());
    }

    #[test]
    fn audiences_are_a_string_or_an_array_naming_one() {
        let ok = vec!["https://gw/oauth/token".to_owned(), "https://gw".to_owned()];
        assert!(audience_matches(&json!({"aud": "https://gw"}), &ok));
        assert!(audience_matches(&json!({"aud": ["x", "https://gw/oauth/token"]}), &ok));
        assert!(!audience_matches(&json!({"aud": "https://gw/"}), &ok));
        assert!(!audience_matches(&json!({"aud": ["x"]}), &ok));
        assert!(!audience_matches(&json!({}), &ok));
    }

    #[test]
    fn symmetric_and_unsigned_assertions_are_refused_by_their_header() {
        for alg in ["HS256", "none"] {
            let header = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
            );
            assert!(header_of(&format!("{header}.e30.")).is_err(), "{alg}");
        }
    }

    fn header_of(token: &str) -> Result<Header, AssertionError> {
        header(token)
    }
}
