//! The keys the configuration knows, and what to say about one it does not.
//!
//! There is no list of keys to keep up to date. Whether a key is unknown is decided by serde
//! itself: loading deserializes [`Settings`] through `serde_ignored`, which reports every key
//! the types skip, at any depth, whatever the key's source (a file or an environment variable).
//! Everything else here is read from the same types: their *shape* is [`Settings`] with one
//! entry in each map keyed by names the operator chooses (provider kinds, service ids, method
//! and tool names), serialized. The shape gives the known keys next to an unknown one (for
//! "did you mean"), and which keys hold lists (environment variables spell those
//! comma-separated or as a JSON array). A field added to a settings struct is known, suggested
//! and, if a list, settable from the environment without touching this file.

use std::sync::LazyLock;

use serde_json::{Map as JsonMap, Value as Json};

use super::validate::ConfigError;
use super::Settings;

/// Stands for any entry of a map keyed by the operator's own names.
const ANY: &str = "*";

/// The shape of every known key (see the module documentation).
static SHAPE: LazyLock<Json> = LazyLock::new(|| {
    let sample = serde_json::json!({
        "oauth_providers": { "*": {} },
        "access": {},
        "mcp_services": { "*": {
            "name": "", "url": "", "tool_scopes": { "*": [] }, "access": {}, "tool_access": { "*": {} },
        } },
        "clients": { "*": {} },
    });
    serde_json::from_value::<Settings>(sample).and_then(serde_json::to_value).unwrap_or(Json::Null)
});

/// The shape at `path`: an object for a section or map, an array for a list, anything else
/// for a single value; `None` for an unknown key.
fn shape_at<S: AsRef<str>>(path: &[S]) -> Option<&'static Json> {
    path.iter().try_fold(&*SHAPE, |node, segment| {
        let table = node.as_object()?;
        table.get(segment.as_ref()).or_else(|| table.get(ANY))
    })
}

/// Whether the key at `path` holds a list.
pub(super) fn is_list<S: AsRef<str>>(path: &[S]) -> bool {
    matches!(shape_at(path), Some(Json::Array(_)))
}

/// Whether the table at `path` is a map keyed by the operator's own names, whose keys are
/// free (and, coming from an environment variable, matched without regard to case).
pub(super) fn is_named_map<S: AsRef<str>>(path: &[S]) -> bool {
    shape_at(path).and_then(Json::as_object).is_some_and(|table| table.contains_key(ANY))
}

/// The segments of a path `serde_ignored` reports.
pub(super) fn segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => {
            let mut out = segments(parent);
            out.push(index.to_string());
            out
        }
        Path::Map { parent, key } => {
            let mut out = segments(parent);
            out.push(key.clone());
            out
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            segments(parent)
        }
    }
}

/// Whether serde skips the key at `path`: a document holding only that key (with no value) is
/// deserialized and the skipped keys are listed. For keys written without a value, which
/// loading drops before the real deserialization.
pub(super) fn is_unknown(path: &[String]) -> bool {
    let document = path
        .iter()
        .rev()
        .fold(Json::Null, |inner, segment| Json::Object(JsonMap::from_iter([(segment.clone(), inner)])));
    let mut skipped = false;
    // Only the report matters: a known key without a value may well fail to deserialize.
    let _ = serde_ignored::deserialize::<_, _, Settings>(document, |p| skipped |= segments(&p) == path);
    skipped
}

/// The error naming the first of `paths` (each a key serde skipped), with the closest known
/// key, and the others after it; `None` when there are none.
pub(super) fn unknown_keys_error(mut paths: Vec<Vec<String>>) -> Option<ConfigError> {
    paths.sort();
    paths.dedup();
    let (first, others) = paths.split_first()?;
    let mut problem = "unknown key".to_owned();
    if let Some(known) = suggestion(first) {
        problem.push_str(&format!(" (did you mean {known}?)"));
    }
    if !others.is_empty() {
        let others: Vec<String> = others.iter().map(|p| p.join(".")).collect();
        problem.push_str(&format!(" (also unknown: {})", others.join(", ")));
    }
    Some(ConfigError::new(first.join("."), problem))
}

/// The known key meant by the unknown `path`: the closest key beside it, or else the same
/// name where it belongs (`access_token_ttl` at the top is `tokens.access_token_ttl`).
fn suggestion(path: &[String]) -> Option<String> {
    let (name, parent) = path.split_last()?;
    let beside = shape_at(parent).and_then(Json::as_object).and_then(|table| {
        closest(name, table.keys().map(String::as_str).filter(|k| *k != ANY))
            .map(|key| parent.iter().map(String::as_str).chain([key]).collect::<Vec<_>>().join("."))
    });
    beside.or_else(|| {
        let mut elsewhere = Vec::new();
        fixed_paths(&SHAPE, &mut Vec::new(), &mut elsewhere);
        let wanted = normalize(name);
        let same_name: Vec<Vec<String>> = elsewhere
            .into_iter()
            .filter(|p| p.last().is_some_and(|last| normalize(last) == wanted) && p != path)
            .collect();
        // A key of that name under the same section is the likeliest meaning
        // (`storage.host` is `storage.redis.host`, not the top-level `host`).
        let under_parent: Vec<&Vec<String>> = same_name.iter().filter(|p| p.starts_with(parent)).collect();
        let found: Vec<String> = if parent.is_empty() || under_parent.is_empty() {
            same_name.iter().map(|p| p.join(".")).collect()
        } else {
            under_parent.iter().map(|p| p.join(".")).collect()
        };
        (1..=3).contains(&found.len()).then(|| found.join(" or "))
    })
}

/// Every key path of `node` that does not pass through a map of the operator's own names.
fn fixed_paths(node: &Json, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(table) = node.as_object() else { return };
    if table.contains_key(ANY) {
        return;
    }
    for (key, child) in table {
        prefix.push(key.clone());
        out.push(prefix.clone());
        fixed_paths(child, prefix, out);
        prefix.pop();
    }
}

/// The candidate closest to `name` in edit distance (transpositions count once), if close
/// enough to be a misspelling of it: one edit, or one in four characters for longer names.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = normalize(name);
    candidates
        .map(|candidate| (strsim::damerau_levenshtein(&wanted, &normalize(candidate)), candidate))
        .filter(|(distance, candidate)| *distance <= (wanted.len().max(candidate.len()) / 4).max(1))
        .min()
        .map(|(_, candidate)| candidate)
}

/// Lower case with `_` for `-`, so `Allow-Origins` is recognised as `allow_origins`.
fn normalize(name: &str) -> String {
    name.to_lowercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(dotted: &str) -> Vec<String> {
        dotted.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn the_shape_comes_from_the_settings_types() {
        assert!(SHAPE.is_object(), "Settings must serialize from the sample: {}", *SHAPE);
        assert!(shape_at(&path("tokens.access_token_ttl")).is_some());
        assert!(shape_at(&path("storage.redis.password")).is_some(), "options that are none are known");
        assert!(shape_at(&path("oauth_providers.google.domain")).is_some());
        assert!(shape_at(&path("mcp_services.calc.tool_scopes.tools/call")).is_some());
        assert!(shape_at(&path("limits.register.burst")).is_some());
        assert!(shape_at(&path("access.github_teams")).is_some());
        assert!(shape_at(&path("mcp_services.calc.access.domains")).is_some());
        assert!(shape_at(&path("mcp_services.calc.tool_access.wipe.emails")).is_some());
        assert!(shape_at(&path("oauth_providers.okta.groups_claim")).is_some());
        assert!(shape_at(&path("access.group")).is_none());
        assert!(shape_at(&path("tokens.nope")).is_none());
        assert!(shape_at(&path("tokens.access_token_ttl.deeper")).is_none());
    }

    #[test]
    fn lists_and_named_maps_are_told_apart() {
        for list in [
            "cors.allow_origins",
            "trusted_proxies",
            "mcp_services.x.scopes",
            "mcp_services.x.tool_scopes.y",
            "access.emails",
            "mcp_services.x.tool_access.y.groups",
        ] {
            assert!(is_list(&path(list)), "{list}");
        }
        for single in ["host", "cors", "storage.redis.url", "mcp_services.x", "nope"] {
            assert!(!is_list(&path(single)), "{single}");
        }
        for map in
            ["oauth_providers", "mcp_services", "mcp_services.x.tool_scopes", "mcp_services.x.tool_access"]
        {
            assert!(is_named_map(&path(map)), "{map}");
        }
        assert!(!is_named_map(&path("storage")) && !is_named_map(&path("mcp_services.x")));
    }

    #[test]
    fn keys_without_a_value_are_probed_by_serde() {
        assert!(is_unknown(&path("tokens.acess_token_ttl")));
        assert!(is_unknown(&path("colour")));
        assert!(is_unknown(&path("mcp_services.calc.ulr")));
        assert!(is_unknown(&path("access.email")));
        assert!(!is_unknown(&path("mcp_services.calc.tool_access")));
        assert!(!is_unknown(&path("tokens.access_token_ttl")));
        assert!(!is_unknown(&path("cors")));
        assert!(!is_unknown(&path("mcp_services.calc")));
        assert!(!is_unknown(&path("storage.vault.namespace")));
    }

    #[test]
    fn suggestions_are_close_or_absent() {
        let cases = [
            ("", "hots", Some("host")),
            ("tokens", "acess_token_ttl", Some("tokens.access_token_ttl")),
            ("tokens", "AccessTokenTtl", Some("tokens.access_token_ttl")),
            ("tokens", "Access-Token-TTL", Some("tokens.access_token_ttl")),
            ("storage.redis", "max_connection", Some("storage.redis.max_connections")),
            ("storage.redis", "hostname", None),
            ("mcp_services.calc", "tool_scope", Some("mcp_services.calc.tool_scopes")),
            ("", "colour", None),
            ("", "prot", Some("port")),
            ("", "url", Some("storage.redis.url or storage.vault.url")),
            ("storage", "host", Some("storage.redis.host")),
        ];
        for (parent, name, expected) in cases {
            let mut full: Vec<String> =
                parent.split('.').filter(|s| !s.is_empty()).map(str::to_owned).collect();
            full.push(name.to_owned());
            assert_eq!(suggestion(&full).as_deref(), expected, "{parent} {name}");
        }
    }
}
