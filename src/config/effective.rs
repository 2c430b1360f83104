//! Values the gateway works out from the configuration: the issuer when none is set, the worker
//! count when it is 0, each service's access rule when it inherits the default. Defined once here, used by startup and by `check-config`, so what
//! `check-config` prints is what a start would use.

use super::Settings;

/// `http://{host}:{port}`, the issuer when none is configured. The wildcard addresses become
/// loopback (a client cannot connect to `0.0.0.0`); an IPv6 address gets its brackets.
pub fn default_issuer(host: &str, port: u16) -> String {
    let host = match host.trim() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "[::1]",
        h if h.contains(':') && !h.starts_with('[') => return format!("http://[{h}]:{port}"),
        h => h,
    };
    format!("http://{host}:{port}")
}

/// The issuer the gateway uses when listening on `port`: the configured one without a trailing
/// `/`, or [`default_issuer`] when it is empty.
pub fn effective_issuer(settings: &Settings, port: u16) -> String {
    match settings.issuer.trim() {
        "" => default_issuer(&settings.host, port),
        configured => configured.trim_end_matches('/').to_owned(),
    }
}

/// HTTP worker threads: the configured number, or one per core when it is 0.
pub fn effective_workers(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

/// `settings` with the values a start would compute filled in: the issuer (unless it is empty
/// and the port is 0, when only binding tells the port) and the worker count.
pub fn effective(settings: &Settings) -> Settings {
    let mut effective = settings.clone();
    if settings.port != 0 || !settings.issuer.trim().is_empty() {
        effective.issuer = effective_issuer(settings, settings.port);
    }
    effective.runtime.workers = effective_workers(settings.runtime.workers);
    // Each service shows the rule it runs with: its own, or the default it inherits.
    for service in effective.mcp_services.values_mut() {
        if service.access.is_none() {
            service.access = settings.access.clone();
        }
    }
    effective
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Settings {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn default_issuer_is_reachable() {
        assert_eq!(default_issuer("127.0.0.1", 8080), "http://127.0.0.1:8080");
        assert_eq!(default_issuer("0.0.0.0", 80), "http://127.0.0.1:80");
        assert_eq!(default_issuer("::1", 9), "http://[::1]:9");
        assert_eq!(default_issuer("::", 9), "http://[::1]:9");
        assert_eq!(default_issuer("[::1]", 9), "http://[::1]:9");
        assert_eq!(default_issuer("localhost", 8080), "http://localhost:8080");
    }

    #[test]
    fn a_configured_issuer_is_used_without_its_trailing_slash() {
        let s = settings(serde_json::json!({ "issuer": " https://gw.example.com/base/ " }));
        assert_eq!(effective_issuer(&s, 1234), "https://gw.example.com/base");
        let s = settings(serde_json::json!({ "host": "localhost" }));
        assert_eq!(effective_issuer(&s, 1234), "http://localhost:1234");
    }

    #[test]
    fn effective_fills_in_issuer_and_workers() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let s = effective(&settings(serde_json::json!({ "port": 9000 })));
        assert_eq!((s.issuer.as_str(), s.runtime.workers), ("http://127.0.0.1:9000", cores));
        let s = effective(&settings(serde_json::json!({ "runtime": { "workers": 3 } })));
        assert_eq!((s.issuer.as_str(), s.runtime.workers), ("http://127.0.0.1:8080", 3));
        // Port 0: the port, and so the issuer, is known only after binding.
        let s = effective(&settings(serde_json::json!({ "port": 0 })));
        assert_eq!(s.issuer, "");
    }

    #[test]
    fn services_show_the_access_rule_they_inherit() {
        let s = effective(&settings(serde_json::json!({
            "access": { "domains": ["example.com"] },
            "mcp_services": {
                "a": { "name": "A", "url": "http://a" },
                "b": { "name": "B", "url": "http://b", "access": { "groups": ["ops"] } },
            },
        })));
        let rule = |id: &str| s.mcp_services[id].access.clone().unwrap_or_default();
        assert_eq!(rule("a").domains, ["example.com"]);
        assert_eq!((rule("b").groups.as_slice(), rule("b").domains.len()), (&["ops".to_owned()][..], 0));
    }
}
