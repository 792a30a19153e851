//! The checks of a remote URL that need no network: strict URL syntax (no credentials, a real
//! port), the host allow-list, literal IP addresses, redirect hops and their `Location`. The
//! addresses a name resolves to are checked by `address`'s resolver, at connect time.

use std::net::IpAddr;

use ureq::http::Uri;

use super::address::refusal;
use super::{RemoteOptions, SourceError, is_remote};

/// A URL that passed the strict syntax checks.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) url: String,
    pub(super) uri: Uri,
    /// Lower case, without IPv6 brackets or a trailing dot.
    pub(super) host: String,
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Target, SourceError> {
        let invalid = |why: &str| SourceError::Invalid(format!("{why}: {url}"));
        if !is_remote(url) {
            return Err(invalid("not an http(s) URL"));
        }
        let uri: Uri = url.parse().map_err(|_| invalid("not a valid URL"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("URL without a host"))?;
        if authority.as_str().contains('@') {
            // Not echoed: the message may reach logs and clients.
            return Err(SourceError::Invalid(
                "credentials in URLs are not allowed".to_owned(),
            ));
        }
        // `Authority::port()` silently yields `None` for a bad port (and ureq would then use
        // the default one), so check the text after the host ourselves.
        let port = authority.as_str()[authority.host().len()..].strip_prefix(':');
        if port.is_some_and(|p| !p.is_empty() && !p.parse::<u16>().is_ok_and(|p| p != 0)) {
            return Err(invalid("bad port in URL"));
        }
        let host = normalize_host(authority.host());
        if host.is_empty() {
            return Err(invalid("URL without a host"));
        }
        Ok(Target {
            url: uri.to_string(),
            uri,
            host,
        })
    }
}

impl Target {
    fn is_https(&self) -> bool {
        self.uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    }

    /// `scheme://host:port`, with the scheme's default port when none is given: what the
    /// validators of an answer belong to.
    pub(super) fn origin(&self) -> String {
        let (scheme, default) = if self.is_https() {
            ("https", 443)
        } else {
            ("http", 80)
        };
        let port = self.uri.port_u16().unwrap_or(default);
        match self.host.contains(':') {
            true => format!("{scheme}://[{}]:{port}", self.host),
            false => format!("{scheme}://{}:{port}", self.host),
        }
    }
}

pub(super) fn normalize_host(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// The checks that need no network: allow-list, and literal IP addresses.
pub(super) fn check_target(opts: &RemoteOptions, target: &Target) -> Result<(), SourceError> {
    let refuse = |why: String| {
        log::warn!("refused remote source {}: {why}", target.url);
        Err(SourceError::Forbidden(why))
    };
    if opts.allow_hosts.is_empty() {
        return refuse("remote sources are disabled".to_owned());
    }
    if !host_allowed(&opts.allow_hosts, &target.host) {
        return refuse(format!("host {} is not allowed", target.host));
    }
    if !opts.allow_private
        && let Ok(ip) = target.host.parse::<IpAddr>()
        && let Some(why) = refusal(ip)
    {
        return refuse(format!("{ip} is a {why} address"));
    }
    Ok(())
}

/// The checks of a redirect hop beyond those of any URL: no https to http downgrade (the
/// original would then travel, and could be replaced, in the clear).
pub(super) fn check_redirect(from: &Target, to: &Target) -> Result<(), SourceError> {
    if from.is_https() && !to.is_https() {
        log::warn!("GET {}: refused redirect to {}", from.url, to.url);
        return Err(SourceError::Forbidden(
            "redirect from https to http refused".to_owned(),
        ));
    }
    Ok(())
}

/// Whether `host` (normalized) matches an entry: exact, or `*.suffix` for strict subdomains.
fn host_allowed(allow: &[String], host: &str) -> bool {
    allow.iter().any(|entry| {
        let entry = normalize_host(entry.trim());
        match entry.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .and_then(|sub| sub.strip_suffix('.'))
                .is_some_and(|sub| !sub.is_empty()),
            None => host == entry,
        }
    })
}

/// Resolves a `Location` header against the URL that sent it (RFC 3986 §5.2, enough of it for
/// real redirects). The result is parsed and checked again by the caller.
pub(super) fn resolve_location(base: &Uri, location: &str) -> Option<String> {
    let location = location.trim();
    let location = location.split('#').next().unwrap_or_default();
    if location.is_empty() {
        return None;
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let has_scheme = location.split_once(':').is_some_and(|(s, _)| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if has_scheme {
        return Some(location.to_owned());
    }
    if location.starts_with("//") {
        return Some(format!("{scheme}:{location}"));
    }
    let (path, query) = match location.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (location, None),
    };
    let path = if path.is_empty() {
        base.path().to_owned()
    } else if path.starts_with('/') {
        remove_dot_segments(path)
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        remove_dot_segments(&format!("/{}{path}", dir.trim_start_matches('/')))
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    Some(format!("{scheme}://{authority}{path}{query}"))
}

/// RFC 3986 §5.2.4 for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
        if last && matches!(*segment, "." | "..") {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_entries_match_strict_subdomains_only() {
        let allow = |entries: &[&str]| entries.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        let wild = allow(&["*.example.com"]);
        for (host, ok) in [
            ("a.example.com", true),
            ("a.b.example.com", true),
            ("example.com", false),
            ("evilexample.com", false),
            ("a.evilexample.com", false),
            ("example.com.evil.org", false),
            (".example.com", false),
        ] {
            assert_eq!(host_allowed(&wild, host), ok, "{host}");
        }
        let both = allow(&["*.Example.com", "example.com."]);
        assert!(host_allowed(&both, "example.com"));
        assert!(host_allowed(&both, "img.example.com"));
        assert!(!host_allowed(&allow(&["example.com"]), "a.example.com"));
    }

    #[test]
    fn targets_normalize_the_host() {
        for (url, host) in [
            ("http://Images.Example.COM./a.jpg", "images.example.com"),
            ("HTTPS://[::1]:8443/a.jpg", "::1"),
            ("http://127.0.0.1:8080/a.jpg?w=1#top", "127.0.0.1"),
            ("http://h:/a.jpg", "h"),
        ] {
            assert_eq!(Target::parse(url).unwrap().host, host, "{url}");
        }
    }

    #[test]
    fn locations_resolve_against_the_base() {
        let base: Uri = "http://h:8080/a/b/c.jpg?x=1".parse().unwrap();
        for (location, want) in [
            ("https://o.example/z", Some("https://o.example/z")),
            ("//o.example/z", Some("http://o.example/z")),
            ("/z.jpg", Some("http://h:8080/z.jpg")),
            ("/z.jpg?q=2#frag", Some("http://h:8080/z.jpg?q=2")),
            ("d.jpg", Some("http://h:8080/a/b/d.jpg")),
            ("../d.jpg", Some("http://h:8080/a/d.jpg")),
            ("../../../../d.jpg", Some("http://h:8080/d.jpg")),
            ("./", Some("http://h:8080/a/b/")),
            ("..", Some("http://h:8080/a/")),
            ("?y=2", Some("http://h:8080/a/b/c.jpg?y=2")),
            ("/a/./b/../z", Some("http://h:8080/a/z")),
            ("  /padded  ", Some("http://h:8080/padded")),
            ("", None),
            ("#only", None),
        ] {
            assert_eq!(
                resolve_location(&base, location).as_deref(),
                want,
                "{location:?}"
            );
        }
    }

    #[test]
    fn https_to_http_redirects_are_refused() {
        let target = |url: &str| Target::parse(url).unwrap();
        for (from, to, ok) in [
            ("https://a.example/x", "http://a.example/x", false),
            ("HTTPS://a.example/x", "http://b.example:443/x", false),
            ("https://a.example/x", "https://b.example/x", true),
            ("http://a.example/x", "https://a.example/x", true),
            ("http://a.example/x", "http://b.example/x", true),
        ] {
            let got = check_redirect(&target(from), &target(to));
            assert_eq!(got.is_ok(), ok, "{from} -> {to}: {got:?}");
            if let Err(err) = got {
                assert!(matches!(err, SourceError::Forbidden(_)), "{err:?}");
            }
        }
    }

    #[test]
    fn origins_name_scheme_host_and_port() {
        for (url, origin) in [
            ("http://A.example/x", "http://a.example:80"),
            ("https://a.example/x", "https://a.example:443"),
            ("http://a.example:8080/x", "http://a.example:8080"),
            ("https://[::1]/x", "https://[::1]:443"),
        ] {
            assert_eq!(Target::parse(url).unwrap().origin(), origin, "{url}");
        }
    }
}
