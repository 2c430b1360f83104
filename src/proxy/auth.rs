//! The bearer check (checklist A1, A2, A8, A9): the token only from `Authorization: Bearer`,
//! verified locally with no storage round trip and no actor message.
//!
//! An ES256 signature check costs tens of microseconds, so each worker keeps a bounded cache
//! from the SHA-256 of a token to its verified claims and checks each signature once. What can
//! change while a token is cached — the clock and the revocation set — and what depends on the
//! request — the audience — is checked on every request.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use actix_web::http::header::{self, HeaderMap};
use sha2::{Digest, Sha256};

use super::error::ProxyError;
use crate::config::{ServiceSettings, Settings};
use crate::core::jwt::{JwtError, LEEWAY_SECS};
use crate::core::model::AccessClaims;
use crate::state::AppState;

type TokenKey = [u8; 32];

/// Verified claims by token hash, one per worker (hence `RefCell`, never held across an
/// `.await`), and beside them the hashes of tokens whose signature failed under one of the
/// gateway's own keys ([`JwtError::Signature`]: the same text always fails), so a client that
/// keeps sending one forged or corrupted token costs one ECDSA check, not one per request.
/// Both are bounded, oldest insertion evicted first, and kept apart: a flood of distinct
/// forgeries evicts only other refusals, never a valid token. Entries of expired tokens are
/// dropped when looked up.
#[derive(Default)]
pub struct TokenCache {
    inner: RefCell<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    valid: Bounded<Rc<AccessClaims>>,
    forged: Bounded<()>,
}

/// A map bounded by insertion order.
struct Bounded<V> {
    map: HashMap<TokenKey, V>,
    // Insertion order for eviction; may name keys already dropped from `map`.
    order: VecDeque<TokenKey>,
}

impl<V> Default for Bounded<V> {
    fn default() -> Self {
        Self { map: HashMap::new(), order: VecDeque::new() }
    }
}

impl<V> Bounded<V> {
    fn insert(&mut self, key: TokenKey, value: V, capacity: usize) {
        while self.order.len() >= capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        if self.map.insert(key, value).is_none() {
            self.order.push_back(key);
        }
    }
}

impl TokenCache {
    /// The cached claims of `token`, or the result of `verify`. With `capacity` > 0 a success
    /// is cached, and so is a [`JwtError::Signature`] refusal, which is then answered without
    /// calling `verify` again. A cached entry whose token has expired is dropped and
    /// re-verified, so the caller sees the verifier's own error.
    pub fn get_or_verify(
        &self,
        token: &str,
        now: i64,
        capacity: usize,
        verify: impl FnOnce(&str) -> Result<AccessClaims, JwtError>,
    ) -> Result<Rc<AccessClaims>, JwtError> {
        let key: TokenKey = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.lookup(&key, now) {
            return known;
        }
        match verify(token) {
            Ok(claims) => {
                let claims = Rc::new(claims);
                if capacity > 0 {
                    self.inner.borrow_mut().valid.insert(key, claims.clone(), capacity);
                }
                Ok(claims)
            }
            Err(err @ JwtError::Signature(_)) => {
                if capacity > 0 {
                    self.inner.borrow_mut().forged.insert(key, (), capacity);
                }
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    fn lookup(&self, key: &TokenKey, now: i64) -> Option<Result<Rc<AccessClaims>, JwtError>> {
        let mut inner = self.inner.borrow_mut();
        if inner.forged.map.contains_key(key) {
            return Some(Err(JwtError::Signature("the signature was refused before".into())));
        }
        let claims = inner.valid.map.get(key)?.clone();
        if is_expired(&claims, now) {
            inner.valid.map.remove(key);
            return None;
        }
        Some(Ok(claims))
    }

    /// Number of cached valid tokens.
    pub fn len(&self) -> usize {
        self.inner.borrow().valid.map.len()
    }

    /// Whether no valid token is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of remembered refusals.
    pub fn refused_len(&self) -> usize {
        self.inner.borrow().forged.map.len()
    }
}

fn is_expired(claims: &AccessClaims, now: i64) -> bool {
    claims.exp.saturating_add(LEEWAY_SECS) < now
}

/// What the `Authorization` header offers.
enum Bearer<'a> {
    /// No bearer credentials at all (no header, or another scheme).
    Missing,
    /// A bearer header that cannot be used.
    Malformed(&'static str),
    /// The token.
    Token(&'a str),
}

fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    let Some(first) = values.next() else {
        return Bearer::Missing;
    };
    if values.next().is_some() {
        return Bearer::Malformed("more than one Authorization header");
    }
    let Ok(value) = first.to_str() else {
        return Bearer::Malformed("malformed Authorization header");
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Missing;
    }
    match rest.trim() {
        "" => Bearer::Malformed("empty bearer token"),
        token => Bearer::Token(token),
    }
}

/// The claims of the request's valid bearer token for `service_id`, or the 401 to send.
pub fn authenticate(
    headers: &HeaderMap,
    service_id: &str,
    service: &ServiceSettings,
    state: &AppState,
    cache: &TokenCache,
) -> Result<Rc<AccessClaims>, ProxyError> {
    let refuse = |error: Option<(&'static str, &'static str)>| {
        let challenge = challenge(&state.settings, service_id, service, error);
        let (code, description) = error.unwrap_or(("unauthorized", "a bearer token is required"));
        ProxyError::Unauthorized { challenge, code, description }
    };
    let invalid = |why: &'static str| refuse(Some(("invalid_token", why)));
    let token = match bearer(headers) {
        Bearer::Missing => return Err(refuse(None)),
        Bearer::Malformed(why) => return Err(invalid(why)),
        Bearer::Token(token) => token,
    };
    let now = state.clock.now();
    let capacity = state.settings.runtime.token_cache_size;
    let claims = cache
        .get_or_verify(token, now, capacity, |t| state.keys.verify_any_audience(t, now))
        .map_err(|err| {
            log::debug!("refused bearer token for service '{service_id}': {err}");
            invalid(match err {
                JwtError::Expired => "the access token expired",
                _ => "the access token is invalid",
            })
        })?;
    if !state.settings.is_resource_uri(&claims.aud, service_id) {
        return Err(invalid("the access token is for another resource"));
    }
    if is_expired(&claims, now) {
        return Err(invalid("the access token expired"));
    }
    if state.revoked.contains(&claims.jti) || state.revoked.contains(&claims.fid) {
        return Err(invalid("the access token was revoked"));
    }
    Ok(claims)
}

/// The `WWW-Authenticate` value: RFC 9728 `resource_metadata`, the service's scopes (never
/// `offline_access`, checklist A7) and, only when a token was presented, the RFC 6750 error.
pub fn challenge(
    settings: &Settings,
    service_id: &str,
    service: &ServiceSettings,
    error: Option<(&str, &str)>,
) -> String {
    challenge_with_scopes(settings, service_id, service.scopes.iter().map(String::as_str), error)
}

/// [`challenge`] naming `scopes` (minus `offline_access`, anything that is not a scope token
/// and repeats) instead of the service's.
pub fn challenge_with_scopes<'a>(
    settings: &Settings,
    service_id: &str,
    scopes: impl IntoIterator<Item = &'a str>,
    error: Option<(&str, &str)>,
) -> String {
    let mut out = format!(
        "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/{}/mcp\"",
        settings.issuer,
        quotable(service_id)
    );
    let mut listed: Vec<&str> = Vec::new();
    for scope in scopes {
        if scope != "offline_access" && is_scope_token(scope) && !listed.contains(&scope) {
            listed.push(scope);
        }
    }
    let scopes = listed;
    if !scopes.is_empty() {
        out.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
    }
    if let Some((code, description)) = error {
        out.push_str(&format!(", error=\"{code}\", error_description=\"{description}\""));
    }
    out
}

/// RFC 6749 §3.3 scope-token: printable ASCII without space, `"` and `\`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// `s` without what would break out of a quoted-string.
fn quotable(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '"' | '\\') && !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use actix_web::http::header::HeaderValue;

    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://gw".into(),
            sub: "dev_alice".into(),
            aud: "http://gw/a/mcp".into(),
            exp,
            iat: 0,
            jti: "j".into(),
            fid: "f".into(),
            client_id: "c".into(),
            scope: String::new(),
            email: None,
            name: None,
            provider: "dev".into(),
            avatar: None,
            denied_tools: Vec::new(),
        }
    }

    #[test]
    fn each_token_is_verified_once() {
        let cache = TokenCache::default();
        let calls = Cell::new(0);
        for _ in 0..3 {
            let got = cache.get_or_verify("tok", 100, 10, |_| {
                calls.set(calls.get() + 1);
                Ok(claims(1000))
            });
            assert!(got.is_ok());
        }
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn only_lasting_refusals_are_remembered_and_expired_entries_are_dropped() {
        let cache = TokenCache::default();
        let calls = Cell::new(0);
        let refuse = |err: fn() -> JwtError| {
            let calls = &calls;
            move |_: &str| {
                calls.set(calls.get() + 1);
                Err(err())
            }
        };
        // An unknown kid or a stale token may read differently later: checked every time.
        for _ in 0..2 {
            assert!(cache
                .get_or_verify("stranger", 100, 10, refuse(|| JwtError::Invalid("kid".into())))
                .is_err());
            assert!(cache.get_or_verify("stale", 100, 10, refuse(|| JwtError::Expired)).is_err());
        }
        assert_eq!(calls.get(), 4);
        // A signature refused under a known key is checked once.
        for _ in 0..3 {
            let got = cache.get_or_verify("forged", 100, 10, refuse(|| JwtError::Signature("sig".into())));
            assert!(matches!(got, Err(JwtError::Signature(_))));
        }
        assert_eq!(calls.get(), 5);
        assert!(cache.is_empty());
        assert_eq!(cache.refused_len(), 1);
        // Nothing is remembered with a capacity of 0.
        let _ = cache.get_or_verify("forged-2", 100, 0, refuse(|| JwtError::Signature("sig".into())));
        assert_eq!(cache.refused_len(), 1);

        assert!(cache.get_or_verify("tok", 100, 10, |_| Ok(claims(1000))).is_ok());
        let later = 1000 + LEEWAY_SECS + 1;
        let expired = Cell::new(0);
        let got = cache.get_or_verify("tok", later, 10, |_| {
            expired.set(1);
            Err(JwtError::Expired)
        });
        assert!(matches!(got, Err(JwtError::Expired)));
        assert_eq!(expired.get(), 1, "an expired entry is verified again, not served");
    }

    #[test]
    fn a_flood_of_forgeries_never_evicts_a_valid_token() {
        let cache = TokenCache::default();
        assert!(cache.get_or_verify("tok", 0, 8, |_| Ok(claims(1000))).is_ok());
        for i in 0..50 {
            let _ = cache.get_or_verify(&format!("f{i}"), 0, 8, |_| Err(JwtError::Signature("sig".into())));
        }
        assert_eq!(cache.refused_len(), 8);
        let got = cache.get_or_verify("tok", 0, 8, |_| Err(JwtError::Signature("must not be asked".into())));
        assert!(got.is_ok());
    }

    #[test]
    fn only_bearer_credentials_count() {
        let mut h = HeaderMap::new();
        assert!(matches!(bearer(&h), Bearer::Missing));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(matches!(bearer(&h), Bearer::Missing));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer   tok "));
        assert!(matches!(bearer(&h), Bearer::Token("tok")));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert!(matches!(bearer(&h), Bearer::Malformed(_)));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(matches!(bearer(&h), Bearer::Malformed(_)));
    }

    #[test]
    fn scope_tokens_exclude_quotes_and_spaces() {
        assert!(is_scope_token("read:all"));
        assert!(!is_scope_token("a b") && !is_scope_token("a\"b") && !is_scope_token(""));
    }
}
