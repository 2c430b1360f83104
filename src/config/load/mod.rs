//! Loading the effective [`Settings`] from its layers, lowest first:
//!
//! 1. `{dir}/default.yaml` (`dir` is `./config`, or `MCP_CONFIG_DIR`); may be missing when a
//!    config file is given;
//! 2. `{dir}/{MCP_ENV}.yaml`, when `MCP_ENV` is set and the file exists;
//! 3. the `--config` file, or `MCP_CONFIG_PATH`;
//! 4. `MCP_GATEWAY__SECTION__KEY` environment variables (`__` separates levels);
//! 5. `MCP_GATEWAY_HOST`, `MCP_GATEWAY_PORT`, `MCP_DEBUG` (the older gateway's names);
//! 6. the `--host`, `--port`, `--debug` flags.
//!
//! Files merge key by key, except `oauth_providers`, `mcp_services` and `clients`: those come whole from
//! the highest file that names them, so a config file with its own provider replaces the
//! default `dev` provider instead of adding a second one (which validation would refuse).
//! Environment variables then override single keys inside whatever map won; a list key takes
//! `a,b` or a JSON array there. A known key written without a value (`cors:`) counts as not
//! written. `${VAR}` expands in each file's values.
//!
//! A key the settings types do not have, from a file or an environment variable, is refused
//! with its dotted path and the closest known key (see [`super::known_keys`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ::config::{Config, File, FileFormat, Map, Source, Value, ValueKind};
use secrecy::{ExposeSecret, SecretString};

use super::expand::expand_value;
use super::known_keys;
use super::validate::{validate, ConfigError};
use super::Settings;

/// Keys taken whole from the highest file layer that names them.
pub const WHOLE_MAP_KEYS: [&str; 3] = ["oauth_providers", "mcp_services", "clients"];

/// Prefix of the nested environment overrides (`MCP_GATEWAY__STORAGE__REDIS__HOST`).
pub const ENV_PREFIX: &str = "MCP_GATEWAY";

/// Inputs of [`load`]: the command-line flags and the environment. `Default` is an empty
/// environment and no flags, which keeps tests independent of the process environment.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// `--config FILE`; when `None`, `MCP_CONFIG_PATH` from `env` is used if set.
    pub config_file: Option<PathBuf>,
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--debug` (it can only switch debug on).
    pub debug: bool,
    /// Environment variables: `${VAR}` values, `MCP_*` settings and `MCP_GATEWAY__*` overrides.
    pub env: HashMap<String, String>,
}

impl LoadOptions {
    /// Options carrying the process environment (variables that are not valid UTF-8 are
    /// skipped) and no flags.
    pub fn from_process_env() -> Self {
        let env =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        LoadOptions { env: env.collect(), ..LoadOptions::default() }
    }

    /// A non-empty environment variable.
    fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// Loads every layer and validates the result: what the gateway runs with. An empty
/// `session_secret` stays empty here; see [`ensure_session_secret`].
pub fn load(options: &LoadOptions) -> Result<Settings, ConfigError> {
    let settings = load_unvalidated(options)?;
    validate(&settings)?;
    Ok(settings)
}

/// Loads every layer without validating (for tests and tools that inspect a broken file).
pub fn load_unvalidated(options: &LoadOptions) -> Result<Settings, ConfigError> {
    let mut layers = Vec::new();
    for (path, required) in layer_paths(options)? {
        if let Some(table) = read_layer(&path, required, options)? {
            layers.push(table);
        }
    }
    keep_whole_maps_from_top(&mut layers);
    let mut merged = Map::new();
    for layer in layers {
        merge(&mut merged, layer);
    }
    build(merged, options)
}

/// Fills an empty `session_secret` with a random one and says so. Returns whether it did.
/// Only memory storage gets here with an empty secret ([`load`] refuses it otherwise).
pub fn ensure_session_secret(settings: &mut Settings) -> bool {
    if !settings.session_secret.expose_secret().is_empty() {
        return false;
    }
    settings.session_secret = SecretString::from(crate::secret::random_token(32));
    log::warn!(
        "session_secret is not set, using a random one: set session_secret so sessions survive restarts"
    );
    true
}

/// The files to read, lowest layer first, each with whether it must exist.
fn layer_paths(options: &LoadOptions) -> Result<Vec<(PathBuf, bool)>, ConfigError> {
    let dir = PathBuf::from(options.var("MCP_CONFIG_DIR").unwrap_or("config"));
    let explicit = options.config_file.clone().or_else(|| options.var("MCP_CONFIG_PATH").map(PathBuf::from));
    let mut paths = vec![(dir.join("default.yaml"), explicit.is_none())];
    if let Some(env_name) = options.var("MCP_ENV") {
        if !env_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ConfigError::new("MCP_ENV", "may contain only letters, digits, '-' and '_'"));
        }
        paths.push((dir.join(format!("{env_name}.yaml")), false));
    }
    if let Some(file) = explicit {
        paths.push((file, true));
    }
    Ok(paths)
}

/// Reads, parses and expands one file; `None` when an optional file is missing.
fn read_layer(
    path: &Path,
    required: bool,
    options: &LoadOptions,
) -> Result<Option<Map<String, Value>>, ConfigError> {
    let key = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(path)),
        Err(e) => return Err(ConfigError::new(key, format!("cannot read: {e}"))),
    };
    let table = File::from_str(&text, FileFormat::Yaml).collect().map_err(|e| match e {
        ::config::ConfigError::FileParse { cause, .. } => {
            ConfigError::new(&key, format!("invalid YAML: {cause}"))
        }
        other => ConfigError::new(&key, other.to_string()),
    })?;
    let mut value = Value::new(Some(&key), ValueKind::Table(table));
    let lookup = |name: &str| options.env.get(name).cloned();
    expand_value(&mut value, &lookup);
    drop_nils(&mut value, &mut Vec::new());
    match value.kind {
        ValueKind::Table(table) => Ok(Some(table)),
        _ => Ok(Some(Map::new())),
    }
}

/// A required file is missing; for `default.yaml` say how the directory is found.
fn not_found(path: &Path) -> ConfigError {
    let problem = if path.ends_with("default.yaml") {
        "not found (run from the directory holding config/, set MCP_CONFIG_DIR, or pass --config)"
    } else {
        "not found"
    };
    ConfigError::new(path.display().to_string(), problem)
}

/// Removes known keys written without a value, so `cors:` does not wipe the defaults below it.
/// An unknown key stays, to be refused with the others.
fn drop_nils(value: &mut Value, path: &mut Vec<String>) {
    if let ValueKind::Table(table) = &mut value.kind {
        table.retain(|key, v| {
            if !matches!(v.kind, ValueKind::Nil) {
                return true;
            }
            path.push(key.clone());
            let unknown = known_keys::is_unknown(path);
            path.pop();
            unknown
        });
        for (key, v) in table.iter_mut() {
            path.push(key.clone());
            drop_nils(v, path);
            path.pop();
        }
    }
}

/// Applies the whole-map rule: removes each [`WHOLE_MAP_KEYS`] key from every layer except
/// the highest one that has it.
fn keep_whole_maps_from_top(layers: &mut [Map<String, Value>]) {
    for key in WHOLE_MAP_KEYS {
        if let Some(top) = layers.iter().rposition(|layer| layer.contains_key(key)) {
            for (i, layer) in layers.iter_mut().enumerate() {
                if i != top {
                    layer.remove(key);
                }
            }
        }
    }
}

/// Deep merge: tables merge key by key, anything else (lists included) replaces.
fn merge(base: &mut Map<String, Value>, over: Map<String, Value>) {
    for (key, value) in over {
        match (base.get_mut(&key), value.kind) {
            (Some(Value { kind: ValueKind::Table(below), .. }), ValueKind::Table(above)) => {
                merge(below, above)
            }
            (_, kind) => {
                base.insert(key, Value::new(None, kind));
            }
        }
    }
}

/// Merged files, then the environment and the flags, deserialized into [`Settings`]. Every key
/// serde skips is refused, in preference to any other error (a misspelt key often leaves a
/// required one missing).
fn build(mut files: Map<String, Value>, options: &LoadOptions) -> Result<Settings, ConfigError> {
    merge_env(&mut files, options)?;
    let mut builder = Config::builder().add_source(Layer(files));
    for (key, value) in overrides(options)? {
        builder = builder.set_override(key, value).map_err(|e| from_config_error(e, key))?;
    }
    let config = builder.build().map_err(|e| from_config_error(e, "environment"))?;
    let mut unknown = Vec::new();
    let parsed = serde_ignored::deserialize(config, |path| unknown.push(known_keys::segments(&path)));
    if let Some(error) = known_keys::unknown_keys_error(unknown) {
        return Err(error);
    }
    parsed.map_err(|e| from_config_error(e, "config"))
}

/// Layer 4: each non-empty `MCP_GATEWAY__SECTION__KEY` variable sets one key (`__` separates
/// levels; names are matched in lower case, and an entry of a map keyed by the operator's own
/// names, such as a service id, without regard to case). A list key takes `a,b` or a JSON array.
fn merge_env(files: &mut Map<String, Value>, options: &LoadOptions) -> Result<(), ConfigError> {
    let prefix = format!("{ENV_PREFIX}__").to_lowercase();
    let mut vars: Vec<(&String, &String)> = options.env.iter().filter(|(_, v)| !v.is_empty()).collect();
    vars.sort();
    for (name, raw) in vars {
        let lower = name.to_lowercase();
        let Some(rest) = lower.strip_prefix(&prefix) else { continue };
        let path: Vec<String> = rest.split("__").map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::new(name, "is not of the form MCP_GATEWAY__SECTION__KEY"));
        }
        let value = if known_keys::is_list(&path) {
            env_list(name, &path, raw)?
        } else {
            ValueKind::String(raw.clone())
        };
        set_env_key(files, &mut Vec::new(), &path, value);
    }
    Ok(())
}

/// `a, b` or `["a", "b"]` as a list. A broken JSON array is not echoed: it may hold a secret.
fn env_list(name: &str, path: &[String], raw: &str) -> Result<ValueKind, ConfigError> {
    let raw = raw.trim();
    if raw.starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(raw).map_err(|e| {
            ConfigError::new(
                path.join("."),
                format!("{name} is neither a JSON array (column {}) nor a comma-separated list", e.column()),
            )
        })?;
        return Ok(ValueKind::Array(
            items.into_iter().map(|item| Value::new(None, from_json(item))).collect(),
        ));
    }
    let items = raw.split(',').map(str::trim).filter(|item| !item.is_empty());
    Ok(ValueKind::Array(items.map(|item| Value::new(None, ValueKind::String(item.to_owned()))).collect()))
}

/// A JSON value as a `config` value.
fn from_json(json: serde_json::Value) -> ValueKind {
    use serde_json::Value as Json;
    match json {
        Json::Null => ValueKind::Nil,
        Json::Bool(b) => ValueKind::Boolean(b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => ValueKind::U64(u),
            (None, Some(i)) => ValueKind::I64(i),
            (None, None) => ValueKind::Float(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => ValueKind::String(s),
        Json::Array(items) => {
            ValueKind::Array(items.into_iter().map(|i| Value::new(None, from_json(i))).collect())
        }
        Json::Object(map) => {
            ValueKind::Table(map.into_iter().map(|(k, v)| (k, Value::new(None, from_json(v)))).collect())
        }
    }
}

/// Sets `value` at `path` below `table` (whose own path is `at`), making tables on the way.
fn set_env_key(table: &mut Map<String, Value>, at: &mut Vec<String>, path: &[String], value: ValueKind) {
    let Some((first, rest)) = path.split_first() else { return };
    let existing = if table.contains_key(first) || !known_keys::is_named_map(at) {
        None
    } else {
        let mut same = table.keys().filter(|k| k.to_lowercase() == *first);
        match (same.next(), same.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    };
    let key = existing.unwrap_or_else(|| first.clone());
    if rest.is_empty() {
        table.insert(key, Value::new(None, value));
        return;
    }
    let entry = table.entry(key.clone()).or_insert_with(|| Value::new(None, ValueKind::Table(Map::new())));
    if !matches!(entry.kind, ValueKind::Table(_)) {
        entry.kind = ValueKind::Table(Map::new());
    }
    if let ValueKind::Table(inner) = &mut entry.kind {
        at.push(key);
        set_env_key(inner, at, rest, value);
        at.pop();
    }
}

/// Layers 5 and 6: single keys from the older gateway's variables, then from the flags.
fn overrides(options: &LoadOptions) -> Result<Vec<(&'static str, ValueKind)>, ConfigError> {
    let mut set = Vec::new();
    if let Some(host) = options.var("MCP_GATEWAY_HOST") {
        set.push(("host", ValueKind::String(host.to_owned())));
    }
    if let Some(port) = options.var("MCP_GATEWAY_PORT") {
        let port: u16 = port
            .trim()
            .parse()
            .map_err(|_| ConfigError::new("MCP_GATEWAY_PORT", "must be a port number (0-65535)"))?;
        set.push(("port", ValueKind::U64(port.into())));
    }
    if let Some(debug) = options.var("MCP_DEBUG") {
        set.push(("debug", ValueKind::Boolean(parse_flag("MCP_DEBUG", debug)?)));
    }
    if let Some(host) = &options.host {
        set.push(("host", ValueKind::String(host.clone())));
    }
    if let Some(port) = options.port {
        set.push(("port", ValueKind::U64(port.into())));
    }
    if options.debug {
        set.push(("debug", ValueKind::Boolean(true)));
    }
    Ok(set)
}

/// `true`/`false` as environment variables spell them.
fn parse_flag(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(name, "must be true or false")),
    }
}

/// The `config` crate's errors as one [`ConfigError`] line. String values are not echoed: the
/// value in a wrongly typed field may be a secret.
pub(super) fn from_config_error(error: ::config::ConfigError, fallback_key: &str) -> ConfigError {
    match error {
        ::config::ConfigError::Type { key, unexpected, expected, .. } => {
            let found = unexpected.to_string();
            let found = if found.starts_with("string ") { "a string".to_owned() } else { found };
            ConfigError::new(
                key.unwrap_or_else(|| fallback_key.to_owned()),
                format!("expected {expected}, found {found}"),
            )
        }
        ::config::ConfigError::At { error, key: Some(key), .. } => {
            let inner = from_config_error(*error, &key);
            ConfigError::new(key, inner.problem)
        }
        ::config::ConfigError::NotFound(key) => ConfigError::new(key, "is required"),
        other => ConfigError::new(fallback_key, readable(&other.to_string())),
    }
}

/// A serde message without quoted string values, and with the number parser's jargon replaced.
fn readable(message: &str) -> String {
    if message.contains("invalid digit found in string") {
        return "must be a number".to_owned();
    }
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find("string \"") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "string \"".len()..];
        out.push_str("a string");
        rest = after.find('"').map_or("", |end| &after[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// A merged, already expanded table as a `config` source.
#[derive(Debug, Clone)]
struct Layer(Map<String, Value>);

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, ::config::ConfigError> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests;
