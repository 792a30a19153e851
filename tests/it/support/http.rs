//! A blocking HTTP client for the tests that never follows redirects by itself.

use std::time::Duration;

use ureq::http;

/// A response as received: the status, the header fields in order, the whole body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order (e.g. several `Cache-Control` lines).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET url`; a 3xx is returned as is.
pub fn get(url: &str) -> HttpResponse {
    request("GET", url, &[], &[])
}

/// Resolves `location` (absolute URL, absolute path or relative path) against `base` (the URL
/// that answered with it, or just `http://host:port`) and GETs it.
pub fn follow(base: &str, location: &str) -> HttpResponse {
    get(&resolve(base, location))
}

/// Any request; transport errors panic (with the URL), HTTP error statuses do not.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    try_request(method, url, headers, body).unwrap_or_else(|e| panic!("{e}"))
}

/// Any request; a transport error (a server that died mid-answer, say) is `Err`, naming the URL.
pub fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(body.to_vec()).expect("build request");
    let response = agent
        .run(request)
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), v)
        })
        .collect();
    let body = response
        .into_body()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    if location.starts_with('/') {
        return format!("{}{location}", &base[..authority_end]);
    }
    let path = base[authority_end..].split(['?', '#']).next().unwrap();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    format!("{}{dir}{location}", &base[..authority_end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolves_locations() {
        let r = super::resolve;
        assert_eq!(r("http://h:1", "/cache/a.jpg"), "http://h:1/cache/a.jpg");
        assert_eq!(r("http://h:1/cgi-bin/x.cgi?a=/b", "/c"), "http://h:1/c");
        assert_eq!(
            r("http://h:1/cgi-bin/x.cgi?a=b", "y"),
            "http://h:1/cgi-bin/y"
        );
        assert_eq!(r("http://h:1", "y"), "http://h:1/y");
        assert_eq!(r("http://h:1/a", "http://o/p"), "http://o/p");
    }
}
