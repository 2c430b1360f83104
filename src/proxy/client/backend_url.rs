//! A service's backend URL, parsed once into the origin requests go to and the request target;
//! separate because it is configuration-time parsing, not wire work.

use std::borrow::Cow;

use super::ClientError;

/// A service's backend URL, parsed once.
#[derive(Debug)]
pub struct BackendUrl {
    /// `scheme://authority`, the part of every request URI that never changes (and what the
    /// client pools connections by).
    origin: String,
    /// Path and query of the URL, as the request target.
    target: String,
    /// `origin` + `target`: the request URI when the client sent no query (nearly every MCP
    /// request), cloned (a reference count) instead of formatted and parsed per request.
    uri: http::Uri,
}

impl BackendUrl {
    /// Parses an absolute http(s) URL.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let url = url::Url::parse(url).map_err(|_| ClientError::BadUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ClientError::BadUrl);
        }
        let host = url.host_str().ok_or(ClientError::BadUrl)?;
        let origin = match url.port() {
            Some(p) => format!("{}://{host}:{p}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        let mut target = url.path().to_owned();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let uri = http::Uri::try_from(format!("{origin}{target}")).map_err(|_| ClientError::BadUrl)?;
        Ok(Self { origin, target, uri })
    }

    /// Whether the backend is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.origin.starts_with("https:")
    }

    /// The request URI: this backend with the client's query appended, minus any
    /// `access_token` parameter (a token in the query is never accepted, and never passed on
    /// either).
    pub(super) fn uri_with(&self, client_query: &str) -> Result<http::Uri, ClientError> {
        let query = without_access_token(client_query);
        if query.is_empty() {
            return Ok(self.uri.clone());
        }
        let target = self.target_with(&query);
        let mut uri = String::with_capacity(self.origin.len() + target.len());
        uri.push_str(&self.origin);
        uri.push_str(&target);
        http::Uri::try_from(uri).map_err(|_| ClientError::BadUrl)
    }

    fn target_with(&self, query: &str) -> String {
        match self.target.contains('?') {
            true => format!("{}&{query}", self.target),
            false => format!("{}?{query}", self.target),
        }
    }
}

fn without_access_token(query: &str) -> Cow<'_, str> {
    if !query.contains("access_token") {
        return Cow::Borrowed(query);
    }
    Cow::Owned(
        query
            .split('&')
            .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("access_token"))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_urls_parse_once_and_take_the_client_query() {
        let url = BackendUrl::parse("http://127.0.0.1:9000/mcp").expect("url");
        assert!(!url.is_https());
        assert_eq!(url.uri_with("a=1&access_token=x&b=2").expect("uri"), "http://127.0.0.1:9000/mcp?a=1&b=2");
        assert_eq!(url.uri_with("access_token=x").expect("uri"), "http://127.0.0.1:9000/mcp");
        let url = BackendUrl::parse("https://[::1]/base/mcp?k=v").expect("url");
        assert!(url.is_https());
        assert_eq!(url.uri_with("a=1").expect("uri"), "https://[::1]/base/mcp?k=v&a=1");
        assert!(BackendUrl::parse("ftp://x/").is_err() && BackendUrl::parse("not a url").is_err());
    }
}
