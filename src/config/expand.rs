//! `${VAR}` and `${VAR:-default}` inside configuration values.
//!
//! Expansion runs on parsed YAML values, never on the raw file text: a secret that contains YAML
//! syntax (`: `, `#`, quotes) then stays one string instead of rewriting the document around it.
//! Only string values expand (also inside lists); keys never do.

use ::config::{Value, ValueKind};

/// Replaces every `${VAR}` and `${VAR:-default}` in `text`.
///
/// `${VAR}` becomes the variable's value, or nothing when it is unset (as the older gateway
/// did; validation then reports the empty field). `${VAR:-default}` uses `default` when `VAR` is
/// unset or empty, like the shell. A `${` without a closing `}` or with an invalid name stays as
/// written. Defaults do not nest.
pub fn expand_str(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}').and_then(|end| substitute(&after[..end], lookup).map(|v| (end, v))) {
            Some((end, value)) => {
                out.push_str(&value);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The replacement for the inside of one `${...}`, or `None` when it is not a reference.
fn substitute(inner: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    if !is_var_name(name) {
        return None;
    }
    let value = lookup(name).unwrap_or_default();
    Some(match default {
        Some(default) if value.is_empty() => default.to_owned(),
        _ => value,
    })
}

/// Shell variable names: a letter or `_`, then letters, digits and `_`.
fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands every string inside `value` (tables and arrays recursively).
pub fn expand_value(value: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) {
    match &mut value.kind {
        ValueKind::String(s) if s.contains("${") => *s = expand_str(s, lookup),
        ValueKind::Table(table) => table.values_mut().for_each(|v| expand_value(v, lookup)),
        ValueKind::Array(items) => items.iter_mut().for_each(|v| expand_value(v, lookup)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn set_variable_is_substituted() {
        let lookup = env(&[("GOOGLE_CLIENT_ID", "abc.apps")]);
        assert_eq!(expand_str("${GOOGLE_CLIENT_ID}", &lookup), "abc.apps");
        assert_eq!(expand_str("id=${GOOGLE_CLIENT_ID};", &lookup), "id=abc.apps;");
    }

    #[test]
    fn unset_variable_without_default_is_empty() {
        assert_eq!(expand_str("${NOPE}", &env(&[])), "");
        assert_eq!(expand_str("a${NOPE}b", &env(&[])), "ab");
    }

    #[test]
    fn default_applies_when_unset_or_empty() {
        assert_eq!(expand_str("${REDIS_HOST:-localhost}", &env(&[])), "localhost");
        assert_eq!(expand_str("${REDIS_HOST:-localhost}", &env(&[("REDIS_HOST", "")])), "localhost");
        assert_eq!(expand_str("${REDIS_HOST:-localhost}", &env(&[("REDIS_HOST", "redis")])), "redis");
        assert_eq!(expand_str("${X:-}", &env(&[])), "");
    }

    #[test]
    fn several_references_in_one_value() {
        let lookup = env(&[("A", "1"), ("B", "2")]);
        assert_eq!(expand_str("${A}-${B}-${C:-3}", &lookup), "1-2-3");
    }

    #[test]
    fn values_are_not_expanded_twice() {
        let lookup = env(&[("A", "${B}"), ("B", "no")]);
        assert_eq!(expand_str("${A}", &lookup), "${B}");
    }

    #[test]
    fn non_references_stay_as_written() {
        let lookup = env(&[("A", "1")]);
        assert_eq!(expand_str("${", &lookup), "${");
        assert_eq!(expand_str("cost: $5 ${A", &lookup), "cost: $5 ${A");
        assert_eq!(expand_str("${not a name} ${A}", &lookup), "${not a name} 1");
        assert_eq!(expand_str("$A {A}", &lookup), "$A {A}");
    }

    #[test]
    fn secrets_with_yaml_syntax_stay_one_string() {
        let secret = "a: b # not a comment\n- [x]";
        let lookup = env(&[("S", secret)]);
        let mut value = Value::new(None, ValueKind::String("${S}".into()));
        expand_value(&mut value, &lookup);
        assert!(matches!(value.kind, ValueKind::String(ref s) if s == secret));
    }

    #[test]
    fn expands_inside_tables_and_lists() {
        let lookup = env(&[("S", "x")]);
        let list = ValueKind::Array(vec![Value::new(None, ValueKind::String("${S}".into()))]);
        let mut table = ::config::Map::new();
        table.insert("k".to_owned(), Value::new(None, list));
        let mut value = Value::new(None, ValueKind::Table(table));
        expand_value(&mut value, &lookup);
        let ValueKind::Table(table) = value.kind else { panic!("table") };
        let ValueKind::Array(ref items) = table["k"].kind else { panic!("array") };
        assert!(matches!(items[0].kind, ValueKind::String(ref s) if s == "x"));
    }
}
