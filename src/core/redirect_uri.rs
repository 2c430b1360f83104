//! Redirect URI rules (OAuth 2.1 §2.3.1, RFC 8252 §7.3, checklist B5): exact string match,
//! except that a loopback `http` redirect matches on any port, because native clients such as
//! VS Code pick a free port on each run. At registration only `https`, loopback `http` and
//! private-use schemes for native apps (`cursor://`, `claude://`, `com.example.app:/cb`) pass.

use url::{Host, Url};

/// Checks one redirect URI offered at registration; the error says why it is refused.
pub fn validate_for_registration(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|_| format!("not an absolute URI: {uri}"))?;
    if url.fragment().is_some() {
        return Err("redirect URIs must not contain a fragment".into());
    }
    match url.scheme() {
        "https" => {
            if url.host().is_none() {
                return Err("https redirect URI without a host".into());
            }
            Ok(())
        }
        "http" => {
            if is_loopback(&url) {
                Ok(())
            } else {
                Err("http redirect URIs are allowed only on loopback (127.0.0.1, [::1], localhost)".into())
            }
        }
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" | "ftp" | "ws" | "wss" => {
            Err(format!("scheme '{}' is not allowed for redirect URIs", url.scheme()))
        }
        // Private-use URI scheme for native apps (RFC 8252 §7.1).
        _ => Ok(()),
    }
}

/// Whether `requested` is allowed by the registered `registered` URI.
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    // Loopback: any port, everything else identical (RFC 8252 §7.3).
    reg.scheme() == "http"
        && req.scheme() == "http"
        && is_loopback(&reg)
        && reg.host() == req.host()
        && reg.path() == req.path()
        && reg.query() == req.query()
        && req.fragment().is_none()
        && req.username().is_empty()
        && req.password().is_none()
}

/// Whether `requested` matches any of `registered`.
pub fn matches_any(registered: &[String], requested: &str) -> bool {
    registered.iter().any(|r| matches(r, requested))
}

/// Whether the URL's host is 127.0.0.1 (any 127/8), ::1 or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn registration_rules() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "https://vscode.dev/redirect",
            "http://127.0.0.1/callback",
            "http://localhost:3000/cb",
            "http://[::1]/cb",
            "cursor://anysphere.cursor-retrieval/oauth/callback",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(validate_for_registration(ok).is_ok(), "{ok}");
        }
        for bad in
            ["http://example.com/cb", "javascript:alert(1)", "not a uri", "https://x/cb#frag", "/relative"]
        {
            assert!(validate_for_registration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_matches_any_port_only() {
        assert!(matches("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb"));
        assert!(matches("http://localhost:1/cb", "http://localhost:2/cb"));
        assert!(!matches("http://127.0.0.1/cb", "http://127.0.0.1:5/other"));
        assert!(!matches("http://127.0.0.1/cb", "http://localhost:5/cb"));
        assert!(!matches("https://a.example/cb", "https://a.example:444/cb"));
        assert!(!matches("https://a.example/cb", "https://a.example/cb/"));
        assert!(!matches("https://a.example/cb", "https://a.example/cb?x=1"));
    }

    proptest! {
        #[test]
        fn non_loopback_needs_exact_match(host in "[a-z]{1,10}\\.example", path in "/[a-z]{0,8}", other in "/[a-z]{0,8}") {
            let reg = format!("https://{host}{path}");
            let req = format!("https://{host}{other}");
            prop_assert_eq!(matches(&reg, &req), reg == req);
        }

        #[test]
        fn loopback_port_never_matters(port in 1u16.., path in "/[a-z]{0,8}") {
            let reg = format!("http://127.0.0.1{path}");
            let req = format!("http://127.0.0.1:{port}{path}");
            prop_assert!(matches(&reg, &req));
        }

        #[test]
        fn arbitrary_strings_never_panic(a in ".*", b in ".*") {
            let _ = matches(&a, &b);
            let _ = validate_for_registration(&a);
        }
    }
}
