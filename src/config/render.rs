//! The effective configuration as text, for `mcp-gateway check-config`: the values a start
//! would really use, the computed issuer and worker count included. Secrets are redacted by
//! `Settings`' own `Serialize`, so nothing here can print one by mistake.

use serde_json::Value;

use super::effective::effective;
use super::validate::ConfigError;
use super::Settings;

/// Output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Block-style YAML (the default): loadable again as a config file.
    #[default]
    Yaml,
    /// Pretty-printed JSON.
    Json,
}

/// The settings as YAML or JSON, every secret shown as `[redacted]`, with what a start would
/// compute filled in: the issuer when it is empty (`http://{host}:{port}`; not with port 0,
/// which only binding resolves) and the worker count when it is 0 (one per core).
pub fn render(settings: &Settings, format: OutputFormat) -> Result<String, ConfigError> {
    let value =
        serde_json::to_value(effective(settings)).map_err(|e| ConfigError::new("config", e.to_string()))?;
    Ok(match format {
        OutputFormat::Json => format!("{value:#}\n"),
        OutputFormat::Yaml => {
            let mut out = String::new();
            yaml_block(&value, 0, &mut out);
            out.push_str(&access_summary(settings));
            out
        }
    })
}

/// Who may use each service, in words, as YAML comments (the document stays loadable).
fn access_summary(settings: &Settings) -> String {
    let mut out = String::new();
    for (id, service) in &settings.mcp_services {
        if out.is_empty() {
            out.push_str("# Who may use each service:\n");
        }
        let who = match (service.auth_required, service.access.as_ref().or(settings.access.as_ref())) {
            (false, _) => "anyone (auth_required: false)".to_owned(),
            (true, Some(rule)) => rule.describe(),
            (true, None) => "anyone with an account at the provider".to_owned(),
        };
        out.push_str(&format!("#   {id}: {who}\n"));
        for (tool, rule) in &service.tool_access {
            out.push_str(&format!("#     tool {tool}: {}\n", rule.describe()));
        }
    }
    out
}

/// Writes `value` as YAML lines indented by `indent` spaces. Scalars are written in JSON
/// syntax, which YAML reads the same way, so no string needs YAML-specific quoting rules.
fn yaml_block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                if is_inline(item) {
                    out.push_str(&format!("{pad}{}: {}\n", yaml_key(key), inline(item)));
                } else {
                    out.push_str(&format!("{pad}{}:\n", yaml_key(key)));
                    yaml_block(item, indent + 2, out);
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                if is_inline(item) {
                    out.push_str(&format!("{pad}- {}\n", inline(item)));
                } else {
                    // The nested block's first line, indented two more, starts with the dash.
                    let mut nested = String::new();
                    yaml_block(item, indent + 2, &mut nested);
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(nested.get(indent + 2..).unwrap_or_default());
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", inline(other))),
    }
}

fn is_inline(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => true,
    }
}

/// A scalar or an empty collection in JSON syntax (valid YAML flow style).
fn inline(value: &Value) -> String {
    value.to_string()
}

/// Plain keys stay plain; anything a YAML reader could take for something else (a number,
/// `null`, `yes`) is quoted.
fn yaml_key(key: &str) -> String {
    const LOOKS_TYPED: [&str; 10] = ["null", "true", "false", "yes", "no", "on", "off", "y", "n", "~"];
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        && !LOOKS_TYPED.contains(&key.to_ascii_lowercase().as_str());
    if plain {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: [&str; 6] = [
        "sess-secret-0123456789abcdef0123456789",
        "client-s3cret",
        "redis-pw",
        "urlpw",
        "vault-tok",
        "approle-sid",
    ];

    fn settings() -> Settings {
        let yaml = format!(
            r#"
session_secret: "{}"
oauth_providers:
  google: {{client_id: "visible-id", client_secret: "{}"}}
storage:
  type: redis
  redis: {{password: "{}", url: "redis://user:{}@redis:6379/0"}}
  vault: {{token: "{}", secret_id: "{}", role_id: "visible-role"}}
mcp_services:
  "null": {{name: "a \"quoted\" name: with # yaml", url: "http://x"}}
  calc: {{name: "Calc", url: "http://calc", tool_scopes: {{"tools/call": ["a", "b"]}}}}
"#,
            SECRETS[0], SECRETS[1], SECRETS[2], SECRETS[3], SECRETS[4], SECRETS[5]
        );
        ::config::Config::builder()
            .add_source(::config::File::from_str(&yaml, ::config::FileFormat::Yaml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    #[test]
    fn every_secret_is_redacted_in_both_formats() {
        for format in [OutputFormat::Yaml, OutputFormat::Json] {
            let text = render(&settings(), format).unwrap();
            for secret in SECRETS {
                assert!(!text.contains(secret), "{secret} leaked in {format:?}:\n{text}");
            }
            assert!(text.contains("visible-id") && text.contains("visible-role"));
            assert!(text.contains(crate::config::REDACTED));
        }
    }

    #[test]
    fn the_yaml_reads_back_as_the_same_document() {
        let settings = settings();
        let yaml = render(&settings, OutputFormat::Yaml).unwrap();
        let reread: Value = ::config::Config::builder()
            .add_source(::config::File::from_str(&yaml, ::config::FileFormat::Yaml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert_eq!(reread, serde_json::to_value(effective(&settings)).unwrap(), "{yaml}");
    }

    #[test]
    fn the_computed_issuer_and_worker_count_are_shown() {
        let json = render(&settings(), OutputFormat::Json).unwrap();
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["issuer"], "http://127.0.0.1:8080");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(value["runtime"]["workers"], cores);
    }

    #[test]
    fn the_yaml_ends_with_who_may_use_each_service() {
        let mut settings = settings();
        let rule: crate::config::AccessRule =
            serde_json::from_value(serde_json::json!({"emails": ["a@x.org"], "domains": ["x.org"]})).unwrap();
        settings.mcp_services.get_mut("calc").unwrap().tool_access.insert("wipe".into(), rule.clone());
        let yaml = render(&settings, OutputFormat::Yaml).unwrap();
        assert!(yaml.contains("#   calc: anyone with an account at the provider\n"), "{yaml}");
        assert!(yaml.contains("#     tool wipe: emails [a@x.org], domains [x.org]\n"), "{yaml}");
        settings.access = Some(rule);
        let yaml = render(&settings, OutputFormat::Yaml).unwrap();
        assert!(yaml.contains("#   calc: emails [a@x.org], domains [x.org]\n"), "{yaml}");
    }

    #[test]
    fn the_json_parses() {
        let json = render(&settings(), OutputFormat::Json).unwrap();
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["oauth_providers"]["google"]["client_secret"], crate::config::REDACTED);
        assert_eq!(value["session_secret"], crate::config::REDACTED);
    }
}
