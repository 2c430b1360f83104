//! Property tests of every parser that takes outside input (issue 13): redirect URIs,
//! `resource`, scope strings, access tokens, Client ID Metadata Documents, `${VAR}` expansion,
//! and — black-box, against a gateway running in this process — the form, JSON and query
//! bodies of the OAuth endpoints. Each property asserts that nothing panics and that every
//! refusal is a well-formed error with an RFC error code.
//!
//! The black-box properties share one gateway, started on its own thread with its own actix
//! system, and talk to it with the small blocking HTTP/1.1 client below: a proptest case is a
//! plain synchronous closure, and raw bytes on the wire let a case send any body, content
//! type or `Authorization` header exactly as generated. Failing cases are not persisted
//! (`failure_persistence: None`), so a failure writes no file next to the tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use mcp_gateway::config::{expand_str, Settings};
use mcp_gateway::core::cimd::{self, CimdError};
use mcp_gateway::core::jwt::{JwtError, SigningKeys, StoredKey};
use mcp_gateway::core::model::{normalize_scope, AccessClaims};
use mcp_gateway::core::{pkce, redirect_uri};
use mcp_gateway::oauth::resource;
use mcp_gateway::startup::Application;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use url::Url;

/// Every error code an OAuth endpoint of the gateway may answer with (RFC 6749, 7591, 8707).
const RFC_CODES: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "unsupported_response_type",
    "invalid_scope",
    "invalid_target",
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "access_denied",
];

/// Cases for properties of pure functions (cheap).
fn pure(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Cases for black-box properties: each case is one or two HTTP round trips.
fn http() -> ProptestConfig {
    ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Shared strategies
// ---------------------------------------------------------------------------------------------

/// Any text: arbitrary Unicode (controls included), printable Unicode, or printable ASCII.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof!["(.|\n|\r|\t|\u{0}){0,48}", "\\PC{0,48}", "[ -~]{0,48}"]
}

/// Strings shaped like URIs, built from pieces that sit near every rule: schemes (special,
/// private-use, forbidden, oddly cased), separators, user info, loopback spellings and
/// look-alikes, ports (valid, empty, out of range), paths with dot segments and escapes,
/// queries and fragments.
fn url_shaped() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("https".to_owned()),
        Just("http".to_owned()),
        Just("HTTP".to_owned()),
        Just("HtTpS".to_owned()),
        Just("cursor".to_owned()),
        Just("com.example.app".to_owned()),
        Just("javascript".to_owned()),
        Just("data".to_owned()),
        Just("file".to_owned()),
        Just("ws".to_owned()),
        "[a-z][a-z0-9+.-]{0,6}",
    ];
    let sep = prop_oneof![Just("://"), Just(":/"), Just(":"), Just(":///"), Just(":\\\\"), Just("://\\")];
    let userinfo = prop::option::of(prop_oneof![Just("user@"), Just("u:p@"), Just("@"), Just("127.0.0.1@")]);
    let host = prop_oneof![
        Just("127.0.0.1".to_owned()),
        Just("127.1.2.3".to_owned()),
        Just("localhost".to_owned()),
        Just("LocalHost".to_owned()),
        Just("[::1]".to_owned()),
        Just("[0:0:0:0:0:0:0:1]".to_owned()),
        Just("[::ffff:127.0.0.1]".to_owned()),
        Just("2130706433".to_owned()),
        Just("0x7f.1".to_owned()),
        Just("localhost.evil.example".to_owned()),
        Just("127.0.0.1.nip.io".to_owned()),
        Just("a.example".to_owned()),
        Just("A.Example".to_owned()),
        Just(String::new()),
        "[a-z0-9.-]{1,10}",
    ];
    let port = prop::option::of(prop_oneof![
        Just(":".to_owned()),
        Just(":80".to_owned()),
        Just(":443".to_owned()),
        (0u32..70_000).prop_map(|p| format!(":{p}")),
    ]);
    let path = prop_oneof![
        Just(String::new()),
        Just("/".to_owned()),
        Just("/cb".to_owned()),
        Just("/cb/".to_owned()),
        Just("/CB".to_owned()),
        Just("/a/../cb".to_owned()),
        Just("/./cb".to_owned()),
        Just("/%63b".to_owned()),
        Just("\\cb".to_owned()),
        Just("/c\tb".to_owned()),
        "(/[a-zA-Z0-9._%~-]{0,5}){0,3}",
    ];
    let query =
        prop::option::of(prop_oneof![Just(String::new()), Just("x=1".to_owned()), "[a-z0-9=&%]{0,6}"]);
    let fragment = prop::option::of("[a-z]{0,3}");
    (scheme, sep, userinfo, host, port, path, query, fragment).prop_map(
        |(scheme, sep, userinfo, host, port, path, query, fragment)| {
            let mut s =
                format!("{scheme}{sep}{}{host}{}{path}", userinfo.unwrap_or(""), port.unwrap_or_default());
            if let Some(q) = query {
                s.push('?');
                s.push_str(&q);
            }
            if let Some(f) = fragment {
                s.push('#');
                s.push_str(&f);
            }
            s
        },
    )
}

/// Arbitrary JSON: nested arrays and objects of every scalar.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any_text().prop_map(Value::from),
        url_shaped().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn allowed_code(code: &str) -> bool {
    RFC_CODES.contains(&code)
}

// ---------------------------------------------------------------------------------------------
// Redirect URIs (core::redirect_uri)
// ---------------------------------------------------------------------------------------------

/// Whether `uri` parses as an `http` URI on loopback: the only kind that matches on any port.
fn is_loopback_http(uri: &str) -> bool {
    Url::parse(uri).is_ok_and(|u| u.scheme() == "http" && redirect_uri::is_loopback(&u))
}

/// A registered redirect URI that is not loopback `http`, and its parts.
fn non_loopback_registered() -> impl Strategy<Value = (String, String, Option<u16>, String, Option<String>)> {
    let scheme = prop_oneof![Just("https"), Just("cursor"), Just("com.example.app"), Just("http")];
    let host = prop_oneof![Just("a.example"), Just("claude.ai"), Just("vscode.dev"), Just("b.example")];
    let port = prop::option::of(1u16..);
    let path = "(/[a-z0-9_]{1,6}){1,3}";
    let query = prop::option::of("[a-z]{1,4}=[a-z0-9]{0,4}");
    (scheme, host, port, path, query).prop_map(|(s, h, p, path, q)| (s.to_owned(), h.to_owned(), p, path, q))
}

fn assemble(scheme: &str, host: &str, port: Option<u16>, path: &str, query: Option<&str>) -> String {
    let mut s = format!("{scheme}://{host}");
    if let Some(p) = port {
        s.push_str(&format!(":{p}"));
    }
    s.push_str(path);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    s
}

/// One change to a redirect URI: another port (added, changed or removed), another path
/// (longer, shorter, trailing slash, other case, escaped), another query (added, changed or
/// removed), a fragment, user info, or another host.
#[derive(Debug, Clone)]
enum Mutation {
    Port(Option<u16>),
    PathAppend(String),
    PathTrailingSlash,
    PathUpper,
    PathDropLast,
    PathEscapeFirst,
    Query(Option<String>),
    Fragment(String),
    UserInfo,
    Host(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        prop::option::of(any::<u16>()).prop_map(Mutation::Port),
        "[a-z0-9/]{1,4}".prop_map(Mutation::PathAppend),
        Just(Mutation::PathTrailingSlash),
        Just(Mutation::PathUpper),
        Just(Mutation::PathDropLast),
        Just(Mutation::PathEscapeFirst),
        prop::option::of("[a-z]{0,3}=?[a-z0-9]{0,3}").prop_map(Mutation::Query),
        "[a-z]{0,3}".prop_map(Mutation::Fragment),
        Just(Mutation::UserInfo),
        prop_oneof![
            Just("127.0.0.1".to_owned()),
            Just("127.0.0.2".to_owned()),
            Just("localhost".to_owned()),
            Just("[::1]".to_owned()),
            Just("a.example".to_owned()),
            Just("A.EXAMPLE".to_owned()),
            Just("a.example.".to_owned()),
        ]
        .prop_map(Mutation::Host),
    ]
}

/// `(scheme, host, port, path, query)` changed by `m`, assembled; a fragment or user info is
/// added to the text.
fn mutate(
    (scheme, host, port, path, query): (&str, &str, Option<u16>, &str, Option<&str>),
    m: &Mutation,
) -> String {
    let mut path = path.to_owned();
    let mut host = host.to_owned();
    let mut port = port;
    let mut query = query.map(str::to_owned);
    let mut prefix = "";
    let mut suffix = String::new();
    match m {
        Mutation::Port(p) => port = *p,
        Mutation::PathAppend(extra) => path.push_str(extra),
        Mutation::PathTrailingSlash => path.push('/'),
        Mutation::PathUpper => path = path.to_uppercase(),
        Mutation::PathDropLast => {
            path.pop();
        }
        Mutation::PathEscapeFirst => {
            if let Some(c) = path.chars().nth(1).filter(char::is_ascii_alphanumeric) {
                path = format!("/%{:02X}{}", c as u32, &path[2..]);
            }
        }
        Mutation::Query(q) => query = q.clone(),
        Mutation::Fragment(f) => suffix = format!("#{f}"),
        Mutation::UserInfo => prefix = "user@",
        Mutation::Host(h) => host = h.clone(),
    }
    let uri = assemble(scheme, &format!("{prefix}{host}"), port, &path, query.as_deref());
    format!("{uri}{suffix}")
}

proptest! {
    #![proptest_config(pure(1024))]

    /// Registration validation never panics; what it accepts is an absolute URI without a
    /// fragment whose scheme is https (with a host), loopback http, or a private-use scheme;
    /// every https URI with a host and without a fragment is accepted; refusals say why.
    #[test]
    fn redirect_registration_accepts_only_the_allowed_kinds(uri in prop_oneof![url_shaped(), any_text()]) {
        match redirect_uri::validate_for_registration(&uri) {
            Ok(()) => {
                let url = Url::parse(&uri).expect("accepted URIs parse");
                prop_assert!(url.fragment().is_none(), "fragment accepted: {uri}");
                let forbidden =
                    ["javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss"];
                prop_assert!(!forbidden.contains(&url.scheme()), "forbidden scheme accepted: {uri}");
                match url.scheme() {
                    "http" => prop_assert!(redirect_uri::is_loopback(&url), "http off loopback: {uri}"),
                    "https" => prop_assert!(url.host().is_some(), "https without host: {uri}"),
                    _ => {}
                }
            }
            Err(why) => {
                prop_assert!(!why.is_empty());
                if let Ok(url) = Url::parse(&uri) {
                    prop_assert!(
                        !(url.scheme() == "https" && url.host().is_some() && url.fragment().is_none()),
                        "https URI refused ({why}): {uri}"
                    );
                }
            }
        }
    }

    /// Matching never panics, is exact for everything but loopback http, and on loopback
    /// differs from exact only in the port: same scheme, host, path and query, and no
    /// fragment or user info in the request. A match of a registrable URI is registrable.
    #[test]
    fn redirect_matching_is_exact_except_loopback_port(
        registered in prop_oneof![3 => url_shaped(), 1 => any_text()],
        requested in prop_oneof![3 => url_shaped(), 1 => any_text()],
    ) {
        let m = redirect_uri::matches(&registered, &requested);
        prop_assert_eq!(redirect_uri::matches_any(std::slice::from_ref(&registered), &requested), m);
        prop_assert!(redirect_uri::matches(&registered, &registered));
        if !is_loopback_http(&registered) {
            prop_assert_eq!(m, registered == requested, "{} vs {}", registered, requested);
        } else if m && registered != requested {
            let (reg, req) = (Url::parse(&registered).unwrap(), Url::parse(&requested).unwrap());
            prop_assert_eq!(req.scheme(), "http");
            prop_assert_eq!(reg.host(), req.host());
            prop_assert_eq!(reg.path(), req.path());
            prop_assert_eq!(reg.query(), req.query());
            prop_assert!(req.fragment().is_none() && req.username().is_empty() && req.password().is_none());
        }
        if m && redirect_uri::validate_for_registration(&registered).is_ok() {
            prop_assert!(
                redirect_uri::validate_for_registration(&requested).is_ok(),
                "{} matched registered {} but is not registrable", requested, registered
            );
        }
    }

    /// A registered URI that is not loopback http (https, private-use, or http elsewhere)
    /// never matches a request that differs in port, path, query, fragment, user info or host.
    #[test]
    fn non_loopback_redirect_never_matches_a_changed_uri(
        (scheme, host, port, path, query) in non_loopback_registered(),
        m in mutation(),
    ) {
        let registered = assemble(&scheme, &host, port, &path, query.as_deref());
        let requested = mutate((&scheme, &host, port, &path, query.as_deref()), &m);
        if requested != registered {
            prop_assert!(
                !redirect_uri::matches(&registered, &requested),
                "{requested} matched {registered} ({m:?})"
            );
        }
    }

    /// A loopback http registration matches on any port (RFC 8252 §7.3) and on nothing else:
    /// a change of path, query, host, fragment or user info is refused.
    #[test]
    fn loopback_redirect_matches_any_port_and_nothing_else(
        host in prop_oneof![Just("127.0.0.1"), Just("localhost"), Just("[::1]"), Just("127.9.9.9")],
        registered_port in prop::option::of(1u16..),
        requested_port in any::<u16>(),
        path in "(/[a-z0-9_]{1,6}){1,3}",
        query in prop::option::of("[a-z]{1,4}=[a-z0-9]{0,4}"),
        m in mutation(),
    ) {
        let registered = assemble("http", host, registered_port, &path, query.as_deref());
        let any_port = assemble("http", host, Some(requested_port), &path, query.as_deref());
        prop_assert!(redirect_uri::matches(&registered, &any_port), "{any_port} vs {registered}");
        if matches!(m, Mutation::Port(_)) {
            return Ok(());
        }
        let requested = mutate(("http", host, registered_port, &path, query.as_deref()), &m);
        let same = Url::parse(&requested).is_ok_and(|u| {
            Url::parse(&registered).is_ok_and(|r| {
                r.host() == u.host() && r.path() == u.path() && r.query() == u.query()
                    && u.fragment().is_none() && u.username().is_empty()
            })
        });
        if !same {
            prop_assert!(
                !redirect_uri::matches(&registered, &requested),
                "{requested} matched {registered} ({m:?})"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `resource` (oauth::resource)
// ---------------------------------------------------------------------------------------------

const ISSUER: &str = "http://gw.test";
const SESSION_SECRET: &str = "props-session-secret-0123456789abcdef0123456789";

/// Settings with services `svc`, `svc2` (a prefix neighbour) and `Svc` (a case neighbour).
fn resource_settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let service = |name: &str| json!({ "name": name, "url": "http://127.0.0.1:9/mcp" });
        serde_json::from_value(json!({
            "session_secret": SESSION_SECRET,
            "audit": { "enabled": false },
            "issuer": ISSUER,
            "mcp_services": { "svc": service("S"), "svc2": service("S2"), "Svc": service("S3") },
        }))
        .expect("settings deserialize")
    })
}

/// A spelling of a service's canonical URI the normalization must accept: scheme and host in
/// any case, the default port written out, trailing slashes, surrounding blanks.
fn equivalent_spelling() -> impl Strategy<Value = (String, String)> {
    let id = prop_oneof![Just("svc"), Just("svc2"), Just("Svc")];
    (id, any::<bool>(), any::<bool>(), any::<bool>(), 0usize..3, "[ \t]{0,2}", "[ \t\n]{0,2}").prop_map(
        |(id, upper_scheme, upper_host, port, slashes, lead, trail)| {
            let scheme = if upper_scheme { "HTTP" } else { "http" };
            let host = if upper_host { "GW.TEST" } else { "gw.test" };
            let port = if port { ":80" } else { "" };
            (id.to_owned(), format!("{lead}{scheme}://{host}{port}/{id}/mcp{}{trail}", "/".repeat(slashes)))
        },
    )
}

proptest! {
    #![proptest_config(pure(1024))]

    /// Arbitrary input never panics; a result is always a configured service whose canonical
    /// URI normalizes to the same thing as the input (anything else is `invalid_target` at
    /// the endpoints). Normalization is idempotent and never keeps a fragment.
    #[test]
    fn resource_maps_only_to_its_canonical_service(input in prop_oneof![url_shaped(), any_text(),
        "(http|https|HTTP)://(gw\\.test|GW\\.test|gw\\.test:80|gw\\.test:8080|other)(/(svc|svc2|Svc|mcp|MCP|\\.\\.|%2e|)){0,4}/?(\\?[a-z=]{0,3})?(#x)?"]) {
        let settings = resource_settings();
        if let Some(id) = resource::service_for(settings, &input) {
            prop_assert!(settings.mcp_services.contains_key(&id));
            let canonical = settings.resource_uri(&id);
            prop_assert_eq!(resource::normalize(&input), resource::normalize(&canonical), "{}", input);
        }
        if let Some(n) = resource::normalize(&input) {
            prop_assert!(!n.contains('#'), "{n}");
            prop_assert!(n.starts_with("http://") || n.starts_with("https://"), "{n}");
            prop_assert_eq!(resource::normalize(&n), Some(n.clone()), "not idempotent for {}", input);
        }
    }

    /// Every harmless spelling of a canonical URI maps to its service, and only to it.
    #[test]
    fn resource_tolerates_case_default_port_and_trailing_slash((id, spelling) in equivalent_spelling()) {
        prop_assert_eq!(resource::service_for(resource_settings(), &spelling), Some(id), "{:?}", spelling);
    }

    /// A change of path case, path, query, fragment, scheme, port or host is not the service.
    #[test]
    fn resource_refuses_changed_uris(
        id in prop_oneof![Just("svc"), Just("svc2"), Just("Svc")],
        change in 0usize..8,
        extra in "[a-z0-9]{1,4}",
    ) {
        let canonical = format!("{ISSUER}/{id}/mcp");
        let changed = match change {
            0 => format!("{ISSUER}/{id}/MCP"),
            1 => format!("{canonical}/{extra}"),
            2 => format!("{canonical}?{extra}"),
            3 => format!("{canonical}#{extra}"),
            4 => format!("https://gw.test/{id}/mcp"),
            5 => format!("http://gw.test:8080/{id}/mcp"),
            6 => format!("http://{extra}.gw.test/{id}/mcp"),
            _ => format!("{ISSUER}/{id}{extra}/mcp"),
        };
        let found = resource::service_for(resource_settings(), &changed);
        prop_assert!(found.as_deref() != Some(id), "{changed} taken for {id}");
        // Only `svc` + `2` may legitimately land on another configured service.
        if let Some(other) = found {
            prop_assert_eq!(resource::normalize(&changed), resource::normalize(&resource_settings().resource_uri(&other)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scope strings (core::model::normalize_scope)
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(pure(1024))]

    /// Normalized scopes are idempotent, single-spaced, trimmed, without duplicates, and keep
    /// the first occurrence of each scope in order.
    #[test]
    fn scope_normalization(scope in prop_oneof![
        any_text(),
        "(read|write|READ|offline_access|a:b| |  |\t|\n|\u{a0}|\u{3000}){0,16}",
    ]) {
        let n = normalize_scope(&scope);
        prop_assert_eq!(normalize_scope(&n), n.clone(), "not idempotent");
        prop_assert!(!n.starts_with(' ') && !n.ends_with(' ') && !n.contains("  "), "{:?}", n);
        prop_assert!(n.chars().all(|c| c == ' ' || !c.is_whitespace()), "{:?}", n);
        let tokens: Vec<&str> = n.split(' ').filter(|t| !t.is_empty()).collect();
        let unique: BTreeSet<&str> = tokens.iter().copied().collect();
        prop_assert_eq!(unique.len(), tokens.len(), "duplicates in {:?}", n);
        let mut expected: Vec<&str> = Vec::new();
        for t in scope.split_whitespace() {
            if !expected.contains(&t) {
                expected.push(t);
            }
        }
        prop_assert_eq!(tokens, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Access tokens (core::jwt)
// ---------------------------------------------------------------------------------------------

const NOW: i64 = 1_700_000_000;
const AUD: &str = "http://gw.test/svc/mcp";

fn keys() -> &'static SigningKeys {
    static KEYS: OnceLock<SigningKeys> = OnceLock::new();
    KEYS.get_or_init(|| SigningKeys::generate(ISSUER, NOW).expect("keys"))
}

fn claims(sub: &str, aud: &str, exp: i64, scope: &str, email: Option<&str>) -> AccessClaims {
    serde_json::from_value(json!({
        "iss": ISSUER, "sub": sub, "aud": aud, "exp": exp, "iat": NOW, "jti": "jti-1", "fid": "fid-1",
        "client_id": "client-1", "scope": scope, "email": email, "provider": "dev",
    }))
    .expect("claims deserialize")
}

fn valid_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| keys().sign(&claims("dev_ann", AUD, NOW + 3600, "read", Some("a@x.org"))).unwrap())
}

fn must_refuse(token: &str) -> Result<(), TestCaseError> {
    let keys = keys();
    prop_assert!(keys.verify(token, AUD, NOW).is_err(), "verify accepted {token:?}");
    prop_assert!(keys.verify_any_audience(token, NOW).is_err(), "verify_any_audience accepted {token:?}");
    Ok(())
}

/// One change to a token's text.
#[derive(Debug, Clone)]
enum TokenEdit {
    /// Replace the character at (segment, index) with one of the base64url alphabet or other.
    Replace(usize, usize, char),
    /// Insert a character at a position.
    Insert(usize, char),
    /// Delete the character at a position.
    Delete(usize),
    /// Keep a strict prefix.
    Truncate(usize),
    /// Append `.segment`.
    AddSegment(String),
    /// Swap two segments.
    Swap(usize, usize),
    /// Drop one segment.
    DropSegment(usize),
}

fn token_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect::<Vec<_>>()
        ),
        1 => prop::sample::select(vec!['.', '=', '+', '/', ' ', '\0', 'é']),
    ]
}

fn token_edit() -> impl Strategy<Value = TokenEdit> {
    prop_oneof![
        6 => (0usize..3, any::<usize>(), token_char()).prop_map(|(s, i, c)| TokenEdit::Replace(s, i, c)),
        1 => (any::<usize>(), token_char()).prop_map(|(i, c)| TokenEdit::Insert(i, c)),
        1 => any::<usize>().prop_map(TokenEdit::Delete),
        2 => any::<usize>().prop_map(TokenEdit::Truncate),
        1 => "[A-Za-z0-9_-]{0,12}".prop_map(TokenEdit::AddSegment),
        1 => (0usize..3, 0usize..3).prop_map(|(a, b)| TokenEdit::Swap(a, b)),
        1 => (0usize..3).prop_map(TokenEdit::DropSegment),
    ]
}

fn edit(token: &str, e: &TokenEdit) -> String {
    let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
    let chars: Vec<char> = token.chars().collect();
    match e {
        TokenEdit::Replace(s, i, c) => {
            let seg: Vec<char> = segments[*s].chars().collect();
            if !seg.is_empty() {
                let mut seg = seg;
                let at = i % seg.len();
                seg[at] = *c;
                segments[*s] = seg.into_iter().collect();
            }
            segments.join(".")
        }
        TokenEdit::Insert(i, c) => {
            let mut chars = chars;
            chars.insert(i % (chars.len() + 1), *c);
            chars.into_iter().collect()
        }
        TokenEdit::Delete(i) => {
            let mut chars = chars;
            chars.remove(i % chars.len());
            chars.into_iter().collect()
        }
        TokenEdit::Truncate(i) => chars[..i % chars.len()].iter().collect(),
        TokenEdit::AddSegment(extra) => format!("{token}.{extra}"),
        TokenEdit::Swap(a, b) => {
            segments.swap(*a, *b);
            segments.join(".")
        }
        TokenEdit::DropSegment(s) => {
            segments.remove(*s);
            segments.join(".")
        }
    }
}

/// A token-shaped string: a header that may name the real `kid` and any `alg`, real or
/// arbitrary claims, and any signature.
fn forged_token() -> impl Strategy<Value = String> {
    let alg = prop_oneof![
        Just("ES256"),
        Just("none"),
        Just("HS256"),
        Just("RS256"),
        Just("ES384"),
        Just("es256"),
        Just("EdDSA"),
    ];
    let kid = prop_oneof![Just(None), Just(Some("REAL".to_owned())), "[a-zA-Z0-9]{0,16}".prop_map(Some)];
    let payload = prop_oneof![
        Just(serde_json::to_value(claims("dev_ann", AUD, NOW + 3600, "read", None)).unwrap()),
        json_value(),
    ];
    let signature = prop_oneof![
        Just(String::new()),
        prop::collection::vec(any::<u8>(), 64).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        prop::collection::vec(any::<u8>(), 0..100).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        Just(valid_token().rsplit_once('.').unwrap().1.to_owned()),
    ];
    (alg, kid, payload, signature).prop_map(|(alg, kid, payload, signature)| {
        let kid = kid.map(|k| if k == "REAL" { keys().active_kid().to_owned() } else { k });
        let header = json!({ "alg": alg, "typ": "at+jwt", "kid": kid });
        format!(
            "{}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    })
}

proptest! {
    #![proptest_config(pure(1024))]

    /// Arbitrary strings (text, dotted base64url, token-shaped forgeries) are refused by both
    /// verifiers, without a panic.
    #[test]
    fn jwt_refuses_arbitrary_strings(token in prop_oneof![
        any_text(),
        "[A-Za-z0-9_-]{0,40}(\\.[A-Za-z0-9_-]{0,40}){0,4}",
        forged_token(),
    ]) {
        must_refuse(&token)?;
    }

    /// Any change to the text of a valid token — a character replaced in the header, the
    /// claims or the signature, one inserted or deleted, a truncation, a segment added,
    /// dropped or swapped — makes it invalid: a token has exactly one spelling.
    #[test]
    fn jwt_refuses_every_mutation_of_a_valid_token(e in token_edit()) {
        let token = valid_token();
        let mutated = edit(token, &e);
        if mutated != token {
            must_refuse(&mutated)?;
        }
    }

}

proptest! {
    #![proptest_config(pure(256))]

    /// Signing arbitrary claims never panics and round-trips; the audience must match, and an
    /// expired token is `Expired`.
    #[test]
    fn jwt_round_trips_arbitrary_claims(
        sub in any_text(),
        aud in any_text(),
        scope in any_text(),
        email in prop::option::of(any_text()),
        lifetime in 1i64..100_000,
    ) {
        let keys = keys();
        let c = claims(&sub, &aud, NOW + lifetime, &scope, email.as_deref());
        let token = keys.sign(&c).unwrap();
        let back = keys.verify(&token, &aud, NOW).unwrap();
        prop_assert_eq!(&back.sub, &sub);
        prop_assert_eq!(&back.scope, &scope);
        prop_assert_eq!(&back.email, &email);
        prop_assert!(keys.verify_any_audience(&token, NOW).is_ok());
        let other_aud = format!("{aud}x");
        prop_assert!(matches!(keys.verify(&token, &other_aud, NOW), Err(JwtError::Invalid(_))));
        let late = NOW + lifetime + 60;
        prop_assert!(matches!(keys.verify(&token, &aud, late), Err(JwtError::Expired)));
    }
}

/// A valid token verifies; one signed by another key under the same `kid`, or by the same key
/// for another issuer, does not.
#[test]
fn jwt_valid_token_verifies_and_look_alikes_do_not() {
    let keys = keys();
    let token = valid_token();
    assert_eq!(keys.verify(token, AUD, NOW).unwrap().sub, "dev_ann");
    assert!(keys.verify_any_audience(token, NOW).is_ok());
    let impostor = StoredKey { kid: keys.active_kid().to_owned(), ..StoredKey::generate(NOW).unwrap() };
    let impostor = SigningKeys::new(ISSUER, vec![impostor]).unwrap();
    let forged = impostor.sign(&claims("dev_ann", AUD, NOW + 3600, "read", None)).unwrap();
    assert!(keys.verify(&forged, AUD, NOW).is_err(), "same kid, other key");
    let mut foreign = claims("dev_ann", AUD, NOW + 3600, "read", None);
    foreign.iss = "http://other.test".into();
    let foreign = keys.sign(&foreign).unwrap();
    assert!(keys.verify(&foreign, AUD, NOW).is_err(), "same key, other issuer");
}

// ---------------------------------------------------------------------------------------------
// Client ID Metadata Documents (core::cimd)
// ---------------------------------------------------------------------------------------------

/// Client ids shaped like document URLs, with dot segments in every spelling, backslashes,
/// credentials, fragments and blanks.
fn cimd_shaped() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![Just("https"), Just("HTTPS"), Just("http"), Just("ftp")];
    let host = prop_oneof![
        Just("app.example"),
        Just("127.0.0.1:8000"),
        Just("localhost"),
        Just("[::1]"),
        Just("u:p@app.example"),
        Just("app.example:443"),
        Just(""),
    ];
    let segment = prop_oneof![
        Just("."),
        Just(".."),
        Just("%2e"),
        Just("%2E%2e"),
        Just(".%2E"),
        Just("%2e."),
        Just("c.json"),
        Just("a"),
        Just(""),
        Just(" "),
        Just("%20"),
    ];
    let sep = prop_oneof![4 => Just("/"), 1 => Just("\\")];
    let path = prop::collection::vec((sep, segment), 0..4)
        .prop_map(|parts| parts.into_iter().map(|(s, seg)| format!("{s}{seg}")).collect::<String>());
    let tail = prop_oneof![Just(""), Just("?v=1"), Just("#f"), Just("?x#y"), Just("?a/../b")];
    (scheme, host, path, tail).prop_map(|(s, h, p, t)| format!("{s}://{h}{p}{t}"))
}

/// Whether the raw text has a `.` or `..` segment in any spelling before its query, splitting
/// on `separators`.
fn has_dot_segment(client_id: &str, separators: &[char]) -> bool {
    let after_scheme = client_id.split_once("://").map_or("", |(_, rest)| rest);
    let path_start = after_scheme.find(separators).unwrap_or(after_scheme.len());
    let raw_path = after_scheme[path_start..].split(['?', '#']).next().unwrap_or("");
    raw_path.split(separators).any(|seg| {
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        seg == "." || seg == ".."
    })
}

/// Found by the property below: the dot-segment rule split the raw path on `/` only, but for
/// `https` the URL parser also takes `\` for a separator, so `https://app.example/a\..\c.json`
/// was accepted and fetched as `/c.json` (one document under many client ids).
#[test]
fn cimd_backslash_dot_segments_are_refused() {
    for id in [
        "https://app.example/a\\..\\c.json",
        "https://app.example/.\\c.json",
        "https://app.example/a/..\\c.json",
        "https://app.example/a\\%2e%2e/c.json",
    ] {
        let parsed = cimd::parse_client_id(id, false);
        assert!(parsed.is_err(), "{id} accepted as {:?}", parsed.map(|u| u.to_string()));
    }
}

proptest! {
    #![proptest_config(pure(1024))]

    /// The client id grammar never panics and refuses with `BadUrl` only; an accepted id is
    /// https (or loopback http with the development switch), has a host and a path other
    /// than `/`, no fragment, no credentials, no blanks, and no dot segment in any spelling.
    #[test]
    fn cimd_client_id_grammar(id in prop_oneof![cimd_shaped(), url_shaped(), any_text()], allow_private in any::<bool>()) {
        let _ = cimd::is_client_id_url(&id);
        let _ = cimd::display_host(&id);
        match cimd::parse_client_id(&id, allow_private) {
            Ok(url) => {
                let loopback_http = allow_private && url.scheme() == "http" && redirect_uri::is_loopback(&url);
                prop_assert!(url.scheme() == "https" || loopback_http, "{id}");
                prop_assert!(url.host().is_some(), "{id}");
                prop_assert!(!url.path().is_empty() && url.path() != "/", "{id}");
                prop_assert!(url.fragment().is_none() && !id.contains('#'), "{id}");
                prop_assert!(url.username().is_empty() && url.password().is_none(), "{id}");
                prop_assert!(!id.chars().any(|c| c.is_whitespace() || c.is_control()), "{id:?}");
                prop_assert!(!has_dot_segment(&id, &['/', '\\']), "dot segment accepted: {id} (parsed path {})", url.path());
            }
            Err(e) => prop_assert!(matches!(e, CimdError::BadUrl(_)), "{id}: {e:?}"),
        }
    }

    /// Any bytes or JSON as a document: `Invalid` or metadata that passed the document rules
    /// (object, `client_id` equal to the URL, no secret, `redirect_uris` present, auth method
    /// `none`).
    #[test]
    fn cimd_document_rules(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            doc_object().prop_map(|v| v.to_string().into_bytes()),
        ],
    ) {
        let id = "https://app.example/c.json";
        match cimd::parse_document(&body, id) {
            Ok(meta) => {
                let value: Value = serde_json::from_slice(&body).unwrap();
                let object = value.as_object().unwrap();
                prop_assert_eq!(object.get("client_id").and_then(Value::as_str), Some(id));
                prop_assert!(!object.contains_key("client_secret"));
                prop_assert!(!object.contains_key("client_secret_expires_at"));
                prop_assert!(object.contains_key("redirect_uris"));
                prop_assert!(matches!(meta.token_endpoint_auth_method.as_deref(), None | Some("none")));
            }
            Err(e) => prop_assert!(matches!(e, CimdError::Invalid(_)), "{e:?}"),
        }
    }
}

/// A document object with the right `client_id` and arbitrary (sometimes well-typed) fields.
fn doc_object() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("redirect_uris"),
        Just("client_name"),
        Just("token_endpoint_auth_method"),
        Just("grant_types"),
        Just("response_types"),
        Just("client_secret"),
        Just("scope"),
        Just("client_uri"),
        Just("logo_uri"),
        Just("jwks"),
    ];
    let value = prop_oneof![
        json_value(),
        prop::collection::vec(url_shaped(), 0..3).prop_map(|v| json!(v)),
        prop_oneof![Just("none"), Just("client_secret_post"), Just("private_key_jwt")].prop_map(|s| json!(s)),
    ];
    prop::collection::btree_map(key, value, 0..6).prop_map(|fields| {
        let mut object = serde_json::Map::new();
        object.insert("client_id".into(), json!("https://app.example/c.json"));
        for (k, v) in fields {
            object.insert(k.to_owned(), v);
        }
        Value::Object(object)
    })
}

// ---------------------------------------------------------------------------------------------
// `${VAR}` expansion (config::expand_str)
// ---------------------------------------------------------------------------------------------

fn env(a: String) -> impl Fn(&str) -> Option<String> {
    move |name: &str| match name {
        "A" => Some(a.clone()),
        "B_1" => Some("b".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Text made of the pieces expansion looks at, so references (valid, unclosed, nested,
/// with and without defaults) are common.
fn expansion_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("${".to_owned()),
        Just("}".to_owned()),
        Just(":-".to_owned()),
        Just("$".to_owned()),
        Just("{".to_owned()),
        Just("A".to_owned()),
        Just("B_1".to_owned()),
        Just("EMPTY".to_owned()),
        Just("NOPE".to_owned()),
        Just("1".to_owned()),
        Just("é".to_owned()),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(pure(1024))]

    /// Expansion never panics; text without `${` (in particular without `$`) is returned as is.
    #[test]
    fn expansion_never_panics_and_leaves_plain_text_alone(
        text in prop_oneof![expansion_text(), any_text()],
        a in any_text(),
    ) {
        let out = expand_str(&text, &env(a));
        if !text.contains("${") {
            prop_assert_eq!(&out, &text);
        }
        if !text.contains('$') {
            prop_assert_eq!(&out, &text);
        }
    }

    /// A reference is replaced by the value exactly, without expanding the value again, and a
    /// default applies to an unset variable.
    #[test]
    fn expansion_substitutes_once(prefix in "[^$]{0,12}", suffix in "[^$]{0,12}", a in any_text(), d in "[^}]{0,8}") {
        let lookup = env(a.clone());
        prop_assert_eq!(expand_str(&format!("{prefix}${{A}}{suffix}"), &lookup), format!("{prefix}{a}{suffix}"));
        prop_assert_eq!(expand_str(&format!("{prefix}${{NOPE:-{d}}}{suffix}"), &lookup), format!("{prefix}{d}{suffix}"));
        prop_assert_eq!(expand_str(&format!("${{NOPE}}{suffix}"), &lookup), suffix.clone());
    }
}

// ---------------------------------------------------------------------------------------------
// Black box: the gateway's endpoints
// ---------------------------------------------------------------------------------------------

#[path = "support/blocking_http.rs"]
mod blocking_http;

use blocking_http::{send, Answer};

fn form(pairs: &[(String, String)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

const REDIRECT: &str = "http://127.0.0.1/callback";
const VERIFIER: &str = "props-verifier-0123456789-0123456789-0123456789";

/// The running gateway and the clients registered on it.
struct Gateway {
    addr: SocketAddr,
    public_id: String,
    confidential_id: String,
    confidential_secret: String,
}

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let off = json!({ "per_minute": 0, "burst": 0 });
        let settings: Settings = serde_json::from_value(json!({
            "host": "127.0.0.1",
            "port": 0,
            "session_secret": SESSION_SECRET,
            "audit": { "enabled": false },
            "debug": true,
            "oauth_providers": { "dev": {} },
            "mcp_services": { "svc": { "name": "S", "url": "http://127.0.0.1:9/mcp", "scopes": ["read", "write"] } },
            "runtime": { "workers": 2 },
            // The per-address rate limits would turn a fuzzing run into 429s: off.
            "limits": {
                "register": off, "token": off, "authorize": off, "consent": off, "callback": off,
            },
        }))
        .expect("settings deserialize");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings).await.expect("gateway builds");
                tx.send(app.port()).unwrap();
                app.run_until_stopped().await
            })
        });
        let port = rx.recv_timeout(Duration::from_secs(60)).expect("gateway started");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let register = |body: Value| {
            let answer = send(
                addr,
                "POST",
                "/oauth/register",
                &[("Content-Type", "application/json".into())],
                body.to_string().as_bytes(),
            );
            assert_eq!(answer.status, 201, "registration: {}", answer.text());
            answer.json().unwrap()
        };
        let public = register(json!({ "client_name": "Props", "redirect_uris": [REDIRECT] }));
        let confidential = register(json!({
            "client_name": "Props confidential",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "client_secret_post",
        }));
        Gateway {
            addr,
            public_id: public["client_id"].as_str().unwrap().to_owned(),
            confidential_id: confidential["client_id"].as_str().unwrap().to_owned(),
            confidential_secret: confidential["client_secret"].as_str().unwrap().to_owned(),
        }
    })
}

/// The gateway still answers `/health` with 200.
fn healthy(gw: &Gateway) -> Result<(), TestCaseError> {
    let answer = send(gw.addr, "GET", "/health", &[], b"");
    prop_assert_eq!(answer.status, 200, "health: {}", answer.text());
    Ok(())
}

/// The rules for an answer of a JSON endpoint: never 5xx; an error is JSON whose `error` is an
/// RFC code (and whose `error_description`, if any, is a string).
fn check_json_endpoint(what: &str, answer: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(answer.status < 500, "{what}: {} {}", answer.status, answer.text());
    if answer.status >= 400 {
        let body = answer.json();
        let Some(body) = body.as_ref() else {
            return Err(TestCaseError::fail(format!(
                "{what}: {} error is not JSON ({:?}): {}",
                answer.status,
                answer.header("content-type"),
                answer.text()
            )));
        };
        let code = body.get("error").and_then(Value::as_str).unwrap_or("<none>");
        prop_assert!(allowed_code(code), "{what}: error code {code}: {body}");
        prop_assert!(body.get("error_description").is_none_or(Value::is_string), "{what}: {body}");
        prop_assert!(
            answer.header("content-type").is_some_and(|t| t.starts_with("application/json")),
            "{what}: content type {:?}",
            answer.header("content-type")
        );
    }
    Ok(())
}

/// Interesting values for form fields: what reaches deep into the handlers, plus garbage.
fn field_value(gw: &'static Gateway) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            gw.public_id.clone(),
            gw.confidential_id.clone(),
            gw.confidential_secret.clone(),
            "authorization_code".to_owned(),
            "refresh_token".to_owned(),
            "client_credentials".to_owned(),
            REDIRECT.to_owned(),
            "http://127.0.0.1:5555/callback".to_owned(),
            VERIFIER.to_owned(),
            pkce::challenge_s256(VERIFIER),
            "S256".to_owned(),
            "plain".to_owned(),
            "code".to_owned(),
            "read write".to_owned(),
            "offline_access bogus".to_owned(),
            format!("http://127.0.0.1:{}/svc/mcp", gw.addr.port()),
            "http://gw.test/svc/mcp".to_owned(),
            "access_token".to_owned(),
            String::new(),
        ]),
        2 => any_text(),
        1 => url_shaped(),
        1 => "[A-Za-z0-9_-]{20,60}(\\.[A-Za-z0-9_-]{10,60}){0,2}",
    ]
}

fn field_name(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![5 => prop::sample::select(names).prop_map(str::to_owned), 1 => "[a-z_\\[\\]]{0,12}", 1 => any_text()]
}

const TOKEN_FIELDS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "resource",
    "scope",
    "client_id",
    "client_secret",
];
const REVOKE_FIELDS: &[&str] = &["token", "token_type_hint", "client_id", "client_secret"];
const AUTHORIZE_FIELDS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "resource",
];

/// Form fields: mostly distinct names (so requests get past the parser), sometimes repeated
/// ones (which must be `invalid_request`).
fn form_pairs(
    gw: &'static Gateway,
    names: &'static [&'static str],
) -> impl Strategy<Value = Vec<(String, String)>> {
    prop_oneof![
        4 => prop::collection::btree_map(field_name(names), field_value(gw), 0..8)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
        1 => prop::collection::vec((field_name(names), field_value(gw)), 0..8),
    ]
}

/// Token requests: a grant type and client credentials the gateway knows (most of the time),
/// then arbitrary fields.
fn token_form(gw: &'static Gateway) -> impl Strategy<Value = Vec<(String, String)>> {
    let grant = prop_oneof![
        3 => prop::sample::select(vec!["authorization_code", "refresh_token"]).prop_map(str::to_owned),
        1 => field_value(gw),
    ];
    let client = prop_oneof![
        Just(vec![("client_id".to_owned(), gw.public_id.clone())]),
        Just(vec![
            ("client_id".to_owned(), gw.confidential_id.clone()),
            ("client_secret".to_owned(), gw.confidential_secret.clone()),
        ]),
        Just(vec![("client_id".to_owned(), gw.confidential_id.clone())]),
        Just(Vec::new()),
    ];
    (grant, client, form_pairs(gw, TOKEN_FIELDS)).prop_map(|(grant, client, rest)| {
        let mut pairs = vec![("grant_type".to_owned(), grant)];
        pairs.extend(client);
        let taken: BTreeSet<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
        // Mostly keep names unique; a repeat slips in when `rest` repeats one itself.
        pairs.extend(rest.into_iter().filter(|(k, _)| !taken.contains(k)));
        pairs
    })
}

/// Authorization requests: each parameter the valid value (most of the time), another value,
/// or absent, plus a few arbitrary extra fields.
fn authorize_params(gw: &'static Gateway) -> impl Strategy<Value = Vec<(String, String)>> {
    let valid = [
        ("response_type", "code".to_owned()),
        ("client_id", gw.public_id.clone()),
        ("redirect_uri", REDIRECT.to_owned()),
        ("state", "st".to_owned()),
        ("code_challenge", pkce::challenge_s256(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
        ("scope", "read".to_owned()),
        ("resource", format!("http://127.0.0.1:{}/svc/mcp", gw.addr.port())),
    ];
    let fields: Vec<_> = valid
        .into_iter()
        .map(|(name, value)| {
            prop_oneof![6 => Just(Some(value)), 2 => field_value(gw).prop_map(Some), 1 => Just(None)]
                .prop_map(move |v| v.map(|v| (name.to_owned(), v)))
        })
        .collect();
    (fields, prop::collection::vec((field_name(AUTHORIZE_FIELDS), field_value(gw)), 0..2))
        .prop_map(|(fields, extra)| fields.into_iter().flatten().chain(extra).collect())
}

/// Content types a client might send (right, wrong, odd parameters, none).
fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("application/x-www-form-urlencoded; charset=utf-16".to_owned())),
        Just(Some("application/json".to_owned())),
        Just(Some("text/plain".to_owned())),
        Just(Some("multipart/form-data; boundary=x".to_owned())),
        Just(None),
        "[ -~]{0,30}".prop_map(Some),
    ]
}

/// `Authorization` headers: Basic with arbitrary or real credentials, malformed Basic, other
/// schemes, garbage.
fn authorization(gw: &'static Gateway) -> impl Strategy<Value = Option<String>> {
    let creds = (field_value(gw), field_value(gw)).prop_map(|(id, secret)| {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(&id), enc(&secret))))
    });
    let raw = prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| format!("Basic {}", STANDARD.encode(b)));
    prop_oneof![
        3 => Just(None),
        2 => creds.prop_map(Some),
        1 => raw.prop_map(Some),
        1 => "(Basic|basic|Bearer|Digest|) ?[ -~]{0,40}".prop_map(Some),
    ]
}

fn headers_for(content_type: Option<String>, authorization: Option<String>) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct.trim().to_owned()));
    }
    if let Some(a) = authorization {
        headers.push(("Authorization", a.trim().to_owned()));
    }
    headers
}

fn form_headers() -> Vec<(&'static str, String)> {
    vec![("Content-Type", "application/x-www-form-urlencoded".to_owned())]
}

/// A registration the gateway accepted describes a usable client: an id, registrable
/// redirect URIs, a known auth method with a secret exactly when the method needs one.
fn check_registration(answer: &Answer) -> Result<(), TestCaseError> {
    check_json_endpoint("register", answer)?;
    if answer.status < 300 {
        prop_assert_eq!(answer.status, 201);
        let body = answer.json().unwrap();
        prop_assert!(body["client_id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
        let uris = body["redirect_uris"].as_array().cloned().unwrap_or_default();
        prop_assert!(!uris.is_empty(), "{body}");
        for uri in uris {
            let uri = uri.as_str().unwrap_or("");
            prop_assert!(redirect_uri::validate_for_registration(uri).is_ok(), "registered {uri}");
        }
        let method = body["token_endpoint_auth_method"].as_str().unwrap_or("");
        prop_assert!(["none", "client_secret_post", "client_secret_basic"].contains(&method), "{body}");
        prop_assert_eq!(body.get("client_secret").is_some(), method != "none", "{}", body);
    }
    Ok(())
}

/// The rules for an authorization request's answer: never 5xx; a redirect goes to a
/// registered URI of the client and any error in it is an RFC code with `iss`; an error page
/// naming an error names an RFC code; a malformed query gets an error page.
fn check_authorize(gw: &Gateway, answer: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(answer.status < 500, "authorize: {} {}", answer.status, answer.text());
    if (300..400).contains(&answer.status) {
        let location = answer.header("location").unwrap_or("");
        let url =
            Url::parse(location).map_err(|e| TestCaseError::fail(format!("Location {location}: {e}")))?;
        let to_gateway = url.port() == Some(gw.addr.port()) && url.path() == "/oauth/dev/login";
        let to_client = url.host_str() == Some("127.0.0.1") && url.path() == "/callback";
        prop_assert!(to_gateway || to_client, "redirect to {location}");
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        if let Some(code) = q.get("error") {
            prop_assert!(allowed_code(code), "{location}");
            prop_assert!(q.contains_key("iss"), "{location}");
        }
    } else if answer.status >= 400 {
        let text = answer.text();
        if let Some(body) = answer.json() {
            let code = body.get("error").and_then(Value::as_str).unwrap_or("<none>");
            prop_assert!(allowed_code(code), "authorize JSON error {body}");
        } else if let Some(start) = text.find("refused (") {
            let code: String = text[start + 9..].chars().take_while(|c| *c != ':').collect();
            prop_assert!(allowed_code(&code), "authorize page names {code}");
        } else {
            prop_assert!(
                answer.header("content-type").is_some_and(|t| t.starts_with("text/html")),
                "authorize {}: {:?} {}",
                answer.status,
                answer.header("content-type"),
                text
            );
        }
    }
    Ok(())
}

/// The pieces of authorization queries: right ones for the registered client (so requests get
/// past the client check), wrong ones, and broken escapes.
fn authorize_query(gw: &'static Gateway) -> impl Strategy<Value = String> {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pieces = vec![
        "response_type=code".to_owned(),
        "response_type=token".to_owned(),
        format!("client_id={}", gw.public_id),
        format!("client_id={}", gw.confidential_id),
        format!("redirect_uri={}", enc(REDIRECT)),
        format!("redirect_uri={}", enc("http://127.0.0.1:4444/callback")),
        format!("redirect_uri={}", enc("https://evil.example/cb")),
        format!("code_challenge={}", pkce::challenge_s256(VERIFIER)),
        "code_challenge_method=S256".to_owned(),
        "code_challenge_method=plain".to_owned(),
        "scope=read".to_owned(),
        "scope=read+write+offline_access".to_owned(),
        "scope=admin".to_owned(),
        format!("resource={}", enc(&format!("http://127.0.0.1:{}/svc/mcp", gw.addr.port()))),
        "resource=http%3A%2F%2Fother%2Fsvc%2Fmcp".to_owned(),
        "state=abc".to_owned(),
        "&".to_owned(),
        "=".to_owned(),
        "%".to_owned(),
        "%zz".to_owned(),
        "%C3%A9".to_owned(),
        "%FF%FE".to_owned(),
        "%00".to_owned(),
        "+".to_owned(),
        "client_id=".to_owned(),
    ];
    let piece = prop_oneof![
        4 => prop::sample::select(pieces),
        // Characters a request target may carry (others are the HTTP parser's business).
        1 => "[A-Za-z0-9._~!$&'()*+,;=:@/?%-]{0,12}",
    ];
    prop::collection::vec(piece, 0..10).prop_map(|p| p.join("&"))
}

/// Authorization requests for the registered client that pass every check but maybe scope
/// and resource, whose values are generated.
fn scoped_request(gw: &'static Gateway) -> impl Strategy<Value = (String, Option<String>)> {
    let scope = prop_oneof!["(read|write|offline_access|admin|READ| |\t){0,6}", any_text(),];
    let resource = prop::option::of(prop_oneof![
        Just(format!("http://127.0.0.1:{}/svc/mcp", gw.addr.port())),
        Just(format!("HTTP://127.0.0.1:{}/svc/mcp/", gw.addr.port())),
        url_shaped(),
        any_text(),
    ]);
    (scope, resource)
}

proptest! {
    #![proptest_config(http())]

    /// `POST /oauth/register` with arbitrary bytes under any content type.
    #[test]
    fn register_survives_arbitrary_bytes(
        body in prop::collection::vec(any::<u8>(), 0..512),
        ct in content_type(),
    ) {
        let gw = gateway();
        let answer = send(gw.addr, "POST", "/oauth/register", &headers_for(ct, None), &body);
        check_registration(&answer)?;
        healthy(gw)?;
    }

    /// `POST /oauth/register` with arbitrary JSON, and with metadata objects whose known
    /// fields carry arbitrary (sometimes well-typed) values.
    #[test]
    fn register_survives_arbitrary_json(
        body in prop_oneof![json_value(), registration_object()],
        ct in prop_oneof![Just(Some("application/json".to_owned())), Just(None), Just(Some("application/x-www-form-urlencoded".to_owned()))],
    ) {
        let gw = gateway();
        let answer = send(gw.addr, "POST", "/oauth/register", &headers_for(ct, None), body.to_string().as_bytes());
        check_registration(&answer)?;
        healthy(gw)?;
    }

    /// `POST /oauth/register` with form fields.
    #[test]
    fn register_survives_arbitrary_forms(pairs in prop::collection::vec((field_name(&[
        "client_name", "redirect_uris", "redirect_uris[]", "grant_types", "response_types",
        "token_endpoint_auth_method", "scope", "application_type", "client_uri", "logo_uri",
    ]), prop_oneof![url_shaped(), any_text(), Just(REDIRECT.to_owned()), Just("client_secret_basic".to_owned())]), 0..8)) {
        let gw = gateway();
        let answer = send(gw.addr, "POST", "/oauth/register", &form_headers(), &form(&pairs));
        check_registration(&answer)?;
        healthy(gw)?;
    }

    /// `POST /oauth/token` with arbitrary forms and `Authorization` headers.
    #[test]
    fn token_survives_arbitrary_forms(
        pairs in prop_oneof![3 => token_form(gateway()), 1 => form_pairs(gateway(), TOKEN_FIELDS)],
        auth in authorization(gateway()),
    ) {
        let gw = gateway();
        let answer = send(gw.addr, "POST", "/oauth/token", &headers_for(Some("application/x-www-form-urlencoded".into()), auth), &form(&pairs));
        check_json_endpoint("token", &answer)?;
        prop_assert_ne!(answer.status, 200, "a token for a made-up request: {}", answer.text());
        healthy(gw)?;
    }

    /// `POST /oauth/token` with arbitrary bytes under any content type.
    #[test]
    fn token_survives_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512), ct in content_type(), auth in authorization(gateway())) {
        let gw = gateway();
        let answer = send(gw.addr, "POST", "/oauth/token", &headers_for(ct, auth), &body);
        check_json_endpoint("token", &answer)?;
        prop_assert_ne!(answer.status, 200);
        healthy(gw)?;
    }

    /// `POST /oauth/revoke` with arbitrary forms, bytes and `Authorization` headers: 200 for
    /// an authenticated client (RFC 7009: even for unknown tokens), an RFC error otherwise.
    #[test]
    fn revoke_survives_arbitrary_input(
        body in prop_oneof![form_pairs(gateway(), REVOKE_FIELDS).prop_map(|p| form(&p)), prop::collection::vec(any::<u8>(), 0..256)],
        ct in content_type(),
        auth in authorization(gateway()),
    ) {
        let gw = gateway();
        let answer = send(gw.addr, "POST", "/oauth/revoke", &headers_for(ct, auth), &body);
        check_json_endpoint("revoke", &answer)?;
        healthy(gw)?;
    }

    /// `POST /oauth/introspect` with arbitrary forms, bytes and `Authorization` headers: an
    /// inactive answer for anything made up, an RFC error otherwise.
    #[test]
    fn introspect_survives_arbitrary_input(
        body in prop_oneof![form_pairs(gateway(), REVOKE_FIELDS).prop_map(|p| form(&p)), prop::collection::vec(any::<u8>(), 0..256)],
        ct in content_type(),
        auth in authorization(gateway()),
    ) {
        let gw = gateway();
        let answer = send(gw.addr, "POST", "/oauth/introspect", &headers_for(ct, auth), &body);
        check_json_endpoint("introspect", &answer)?;
        if answer.status == 200 {
            prop_assert_eq!(answer.json(), Some(json!({ "active": false })), "made-up token active");
        }
        healthy(gw)?;
    }

    /// `GET /oauth/authorize` with queries assembled from right, wrong and broken pieces.
    #[test]
    fn authorize_survives_arbitrary_queries(query in authorize_query(gateway())) {
        let gw = gateway();
        let answer = send(gw.addr, "GET", &format!("/oauth/authorize?{query}"), &[], b"");
        check_authorize(gw, &answer)?;
        healthy(gw)?;
    }

    /// `GET /oauth/authorize` with every parameter generated from the names and values the
    /// endpoint knows.
    #[test]
    fn authorize_survives_arbitrary_parameters(
        pairs in prop_oneof![3 => authorize_params(gateway()), 1 => form_pairs(gateway(), AUTHORIZE_FIELDS)],
    ) {
        let gw = gateway();
        let query = String::from_utf8(form(&pairs)).unwrap();
        let answer = send(gw.addr, "GET", &format!("/oauth/authorize?{query}"), &[], b"");
        check_authorize(gw, &answer)?;
        healthy(gw)?;
    }

    /// Scope and resource of an otherwise valid authorization request: the consent page when
    /// the resource is the service's and every scope is one it offers (`offline_access` is
    /// dropped), `invalid_target` or `invalid_scope` otherwise.
    #[test]
    fn authorize_scope_and_resource((scope, resource_value) in scoped_request(gateway())) {
        let gw = gateway();
        let mut pairs = vec![
            ("response_type".to_owned(), "code".to_owned()),
            ("client_id".to_owned(), gw.public_id.clone()),
            ("redirect_uri".to_owned(), REDIRECT.to_owned()),
            ("state".to_owned(), "st".to_owned()),
            ("code_challenge".to_owned(), pkce::challenge_s256(VERIFIER)),
            ("code_challenge_method".to_owned(), "S256".to_owned()),
            ("scope".to_owned(), scope.clone()),
        ];
        if let Some(r) = &resource_value {
            pairs.push(("resource".to_owned(), r.clone()));
        }
        let query = String::from_utf8(form(&pairs)).unwrap();
        let answer = send(gw.addr, "GET", &format!("/oauth/authorize?{query}"), &[], b"");
        check_authorize(gw, &answer)?;
        let canonical = format!("http://127.0.0.1:{}/svc/mcp", gw.addr.port());
        let target_ok = resource_value.as_deref().is_none_or(|r| resource::normalize(r) == resource::normalize(&canonical));
        let scope_ok = scope.split_whitespace().all(|s| ["read", "write", "offline_access"].contains(&s));
        let text = answer.text();
        if !target_ok {
            prop_assert!(answer.status == 400 && text.contains("invalid_target"), "{:?}: {} {}", resource_value, answer.status, text);
        } else if !scope_ok {
            prop_assert!(answer.status == 400 && text.contains("invalid_scope"), "{:?}: {} {}", scope, answer.status, text);
        } else {
            prop_assert_eq!(answer.status, 200, "{:?} {:?}: {}", scope, resource_value, text);
            prop_assert!(text.contains("name=\"csrf\""), "not the consent page: {}", text);
        }
        healthy(gw)?;
    }

    /// The browser-facing endpoints past authorization — consent, callback and the dev login
    /// page — with arbitrary forms and queries: never 5xx.
    #[test]
    fn browser_endpoints_survive_arbitrary_input(
        pairs in form_pairs(gateway(), &["pending_id", "csrf", "action", "state", "code", "code_challenge", "name", "email", "error", "iss"]),
        which in 0usize..4,
        cookie in prop::option::of("mcpgw_(consent|login|session)=[A-Za-z0-9._~-]{0,60}"),
    ) {
        let gw = gateway();
        let body = form(&pairs);
        let query = String::from_utf8(body.clone()).unwrap();
        let mut headers = form_headers();
        if let Some(c) = cookie {
            headers.push(("Cookie", c));
        }
        let answer = match which {
            0 => send(gw.addr, "POST", "/oauth/consent", &headers, &body),
            1 => send(gw.addr, "GET", &format!("/oauth/callback?{query}"), &headers, b""),
            2 => send(gw.addr, "GET", &format!("/oauth/dev/login?{query}"), &headers, b""),
            _ => send(gw.addr, "POST", "/oauth/dev/login", &headers, &body),
        };
        prop_assert!(answer.status < 500, "{which}: {} {}", answer.status, answer.text());
        healthy(gw)?;
    }

    /// The proxy with arbitrary `Authorization` headers: 401 with a Bearer challenge, never
    /// the backend (which does not even listen: reaching it would be a 502).
    #[test]
    fn proxy_refuses_arbitrary_credentials(
        auth in prop_oneof![
            authorization(gateway()),
            forged_token().prop_map(|t| Some(format!("Bearer {t}"))),
            "[A-Za-z0-9_.-]{0,80}".prop_map(|t| Some(format!("Bearer {t}"))),
        ],
    ) {
        let gw = gateway();
        let mut headers = headers_for(Some("application/json".into()), auth);
        headers.push(("Accept", "application/json, text/event-stream".into()));
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let answer = send(gw.addr, "POST", "/svc/mcp", &headers, body);
        prop_assert_eq!(answer.status, 401, "{}", answer.text());
        prop_assert!(answer.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer")));
        healthy(gw)?;
    }
}

/// A registration object: known metadata fields with arbitrary or plausible values.
fn registration_object() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("redirect_uris"),
        Just("client_name"),
        Just("token_endpoint_auth_method"),
        Just("grant_types"),
        Just("response_types"),
        Just("scope"),
        Just("application_type"),
        Just("client_uri"),
        Just("logo_uri"),
        Just("client_id"),
        Just("client_secret"),
        Just("software_statement"),
    ];
    let value = prop_oneof![
        2 => json_value(),
        2 => prop::collection::vec(prop_oneof![url_shaped(), Just(REDIRECT.to_owned())], 0..4).prop_map(|v| json!(v)),
        1 => prop::sample::select(vec![
            "none", "client_secret_post", "client_secret_basic", "private_key_jwt", "native", "web",
            "authorization_code", "refresh_token", "code",
        ]).prop_map(|s| json!(s)),
        1 => prop::collection::vec(
            prop::sample::select(vec!["authorization_code", "refresh_token", "implicit", "code", "token", ""]),
            0..4,
        ).prop_map(|v| json!(v)),
    ];
    let redirects = prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(vec![
                REDIRECT, "http://localhost:3000/cb", "https://claude.ai/api/mcp/auth_callback",
                "cursor://anysphere.cursor-retrieval/oauth/callback", "com.example.app:/cb",
            ]).prop_map(str::to_owned),
            1 => url_shaped(),
        ],
        0..4,
    );
    (redirects, prop::collection::btree_map(key, value, 0..8)).prop_map(|(redirects, m)| {
        let mut object = serde_json::Map::new();
        object.insert("redirect_uris".into(), json!(redirects));
        object.extend(m.into_iter().map(|(k, v)| (k.to_owned(), v)));
        Value::Object(object)
    })
}
