//! A service's backend URL, parsed once into the origin connections are pooled by, the `Host`
//! value and the request target; separate because it is configuration-time parsing, not wire work.

use std::borrow::Cow;
use std::rc::Rc;

use actix_web::http::header::HeaderValue;

use super::ClientError;

/// A backend's address, parsed once from a service's `url`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub(super) tls: bool,
    pub(super) host: String,
    pub(super) port: u16,
}

/// A service's backend URL, parsed once.
#[derive(Debug)]
pub struct BackendUrl {
    /// Shared with the response bodies that hand their connection back to the pool.
    pub(super) origin: Rc<Origin>,
    /// `Host` header value (the URL's host, and its port unless it is the scheme's default).
    pub(super) authority: HeaderValue,
    /// Path and query of the URL, as the request target.
    target: String,
}

impl BackendUrl {
    /// Parses an absolute http(s) URL.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let url = url::Url::parse(url).map_err(|_| ClientError::BadUrl)?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(ClientError::BadUrl),
        };
        let host = match url.host().ok_or(ClientError::BadUrl)? {
            url::Host::Domain(d) => d.to_owned(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        let port = url.port_or_known_default().ok_or(ClientError::BadUrl)?;
        let host_str = url.host_str().ok_or(ClientError::BadUrl)?;
        let authority = match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_owned(),
        };
        let authority = HeaderValue::from_str(&authority).map_err(|_| ClientError::BadUrl)?;
        let mut target = url.path().to_owned();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        Ok(Self { origin: Rc::new(Origin { tls, host, port }), authority, target })
    }

    /// The request target with the client's query appended, minus any `access_token`
    /// parameter (a token in the query is never accepted, and never passed on either).
    pub fn target_with(&self, client_query: &str) -> Cow<'_, str> {
        let query = without_access_token(client_query);
        match (query.is_empty(), self.target.contains('?')) {
            (true, _) => Cow::Borrowed(&self.target),
            (false, true) => Cow::Owned(format!("{}&{query}", self.target)),
            (false, false) => Cow::Owned(format!("{}?{query}", self.target)),
        }
    }
}

fn without_access_token(query: &str) -> String {
    if !query.contains("access_token") {
        return query.to_owned();
    }
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("access_token"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_urls_parse_once_and_take_the_client_query() {
        let url = BackendUrl::parse("http://127.0.0.1:9000/mcp").expect("url");
        assert_eq!(*url.origin, Origin { tls: false, host: "127.0.0.1".into(), port: 9000 });
        assert_eq!(url.authority.as_bytes(), b"127.0.0.1:9000");
        assert_eq!(url.target_with("a=1&access_token=x&b=2"), "/mcp?a=1&b=2");
        assert_eq!(url.target_with("access_token=x"), "/mcp");
        let url = BackendUrl::parse("https://[::1]/base/mcp?k=v").expect("url");
        assert_eq!(*url.origin, Origin { tls: true, host: "::1".into(), port: 443 });
        assert_eq!(url.authority.as_bytes(), b"[::1]");
        assert_eq!(url.target_with("a=1"), "/base/mcp?k=v&a=1");
        assert!(BackendUrl::parse("ftp://x/").is_err() && BackendUrl::parse("not a url").is_err());
    }
}
