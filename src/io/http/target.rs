//! What a request is for, from what the web server sends with it: the path below the script
//! (CGI `PATH_INFO`, or where a server does not split the path, what it does send), and
//! whether the request stands in for a missing file (the 404 handler's signal).
//!
//! Found out by logging what each server sends (Apache 2.4.71, nginx 1.22):
//!
//! - CGI (mod_cgid, fcgiwrap), mod_fcgid, nginx `fastcgi_split_path_info`, and
//!   mod_proxy_fcgi through `SetHandler` on a real file: `SCRIPT_NAME` is the script,
//!   `PATH_INFO` the decoded rest.
//! - mod_proxy_fcgi through `ProxyPass /imgserv.cgi fcgi://host/` does not split the path:
//!   `SCRIPT_NAME` is the whole decoded path and there is no `PATH_INFO`; with
//!   `proxy-fcgi-pathinfo` set (only `SetEnvIf` sets it early enough) `PATH_INFO` is the
//!   rest still percent-encoded behind an extra `/` (`//api/a%20b`), and `SCRIPT_NAME` is split
//!   only when nothing was encoded. What is always there is `SCRIPT_FILENAME`,
//!   `proxy:fcgi://host/` + the encoded path below the `ProxyPass` prefix.
//! - Apache's `ErrorDocument 404` (CGI, mod_fcgid and mod_proxy_fcgi alike):
//!   `REDIRECT_STATUS=404`, `REDIRECT_URL` (the decoded path that was missing) and
//!   `REDIRECT_QUERY_STRING`; the stand-in's own `QUERY_STRING` is empty.
//! - nginx sends `REDIRECT_STATUS=200` on every request (`fastcgi_params`, for PHP) and
//!   nothing that tells `try_files … @imgserv` apart: the shipped snippets add
//!   `fastcgi_param IMGSERV_404 $uri;` in the named location.
//!
//! A request URI under the cache URL is *not* a signal: with a host-root cache URL (a CDN
//! origin) or a script mounted below the cache prefix, every request would look like one.
//! This module only reads values; it does not route (see `api`).

use percent_encoding::percent_decode_str;

/// The meta-variables this module reads, as the web server sent them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Vars {
    pub path_info: Option<String>,
    pub script_filename: Option<String>,
    pub request_uri: Option<String>,
    pub redirect_status: Option<String>,
    pub redirect_url: Option<String>,
    pub redirect_query: Option<String>,
    /// `IMGSERV_404`, the shipped nginx snippets' signal: the path (`$uri`) that was missing.
    pub imgserv_404: Option<String>,
}

/// The name of the parameter the shipped nginx snippets set in `location @imgserv`.
pub const IMGSERV_404: &str = "IMGSERV_404";

impl Vars {
    /// The path below the script, decoded (`""` when there is none).
    ///
    /// Behind mod_proxy_fcgi (`SCRIPT_FILENAME` starting `proxy:`), the path of the backend URL
    /// in `SCRIPT_FILENAME` when it is the tail of the request's path — true for `ProxyPass`,
    /// whose backend URL has no path of its own, and false for `SetHandler` (a file system
    /// path), whose `PATH_INFO` is right; everywhere else `PATH_INFO`.
    pub fn path(&self) -> String {
        if let Some(path) = self.proxied_path() {
            return path;
        }
        self.path_info.clone().unwrap_or_default()
    }

    fn proxied_path(&self) -> Option<String> {
        let url = self.script_filename.as_deref()?.strip_prefix("proxy:")?;
        let (_, rest) = url.split_once("://")?;
        let encoded = &rest[rest.find('/').unwrap_or(rest.len())..];
        let decoded = percent_decode_str(encoded).decode_utf8().ok()?;
        let below = decoded.trim_start_matches('/');
        if below.is_empty() {
            return Some(String::new());
        }
        let below = format!("/{below}");
        let uri = self.request_uri.as_deref()?;
        let uri_path = uri.split(['?', '#']).next().unwrap_or_default();
        let uri_path = percent_decode_str(uri_path).decode_utf8_lossy();
        uri_path.ends_with(&below).then_some(below)
    }

    /// The decoded URL path of the missing file this request stands in for, when the web
    /// server says so: `IMGSERV_404`, or Apache's `REDIRECT_STATUS=404` with `REDIRECT_URL`.
    pub fn missing(&self) -> Option<String> {
        if let Some(path) = self.imgserv_404.as_ref().filter(|p| !p.is_empty()) {
            return Some(path.clone());
        }
        if self.redirect_status.as_deref() != Some("404") {
            return None;
        }
        self.redirect_url.clone().filter(|p| !p.is_empty())
    }

    /// The query of the request the stand-in is for: Apache passes it as
    /// `REDIRECT_QUERY_STRING` (the error document's own is empty); `None` to keep
    /// `QUERY_STRING` (nginx passes the client's).
    pub fn missing_query(&self) -> Option<String> {
        if self.imgserv_404.as_ref().is_some_and(|p| !p.is_empty()) {
            return None;
        }
        self.redirect_query.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Meta-variables as (name, value) pairs.
    type Pairs = &'static [(&'static str, &'static str)];

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        let mut v = Vars::default();
        for (name, value) in pairs {
            let value = Some(value.to_string());
            match *name {
                "PATH_INFO" => v.path_info = value,
                "SCRIPT_FILENAME" => v.script_filename = value,
                "REQUEST_URI" => v.request_uri = value,
                "REDIRECT_STATUS" => v.redirect_status = value,
                "REDIRECT_URL" => v.redirect_url = value,
                "REDIRECT_QUERY_STRING" => v.redirect_query = value,
                "IMGSERV_404" => v.imgserv_404 = value,
                _ => panic!("{name}"),
            }
        }
        v
    }

    /// What the servers sent, as logged (see the module documentation).
    #[test]
    fn the_path_below_the_script_from_what_each_server_sends() {
        #[rustfmt::skip]
        let cases: &[(&str, Pairs, &str)] = &[
            ("CGI", &[("PATH_INFO", "/api/a b"), ("REQUEST_URI", "/cgi-bin/imgserv.cgi/api/a%20b"),
                      ("SCRIPT_FILENAME", "/usr/lib/cgi-bin/imgserv.cgi")], "/api/a b"),
            ("CGI, no path", &[("REQUEST_URI", "/cgi-bin/imgserv.cgi?src=a.jpg")], ""),
            ("ProxyPass", &[("SCRIPT_FILENAME", "proxy:fcgi://localhost//api/images/x"),
                            ("REQUEST_URI", "/a/imgserv.cgi/api/images/x?q=1")], "/api/images/x"),
            ("ProxyPass, encoded", &[("SCRIPT_FILENAME", "proxy:fcgi://localhost//api/a%20b/%C3%A9"),
                                     ("REQUEST_URI", "/a/imgserv.cgi/api/a%20b/%C3%A9?x=%20")], "/api/a b/é"),
            ("ProxyPass, redirector", &[("SCRIPT_FILENAME", "proxy:fcgi://localhost/"),
                                        ("REQUEST_URI", "/a/imgserv.cgi?src=a")], ""),
            ("ProxyPass, no slash", &[("SCRIPT_FILENAME", "proxy:fcgi://127.0.0.1:9000/api/images"),
                                      ("REQUEST_URI", "/g/imgserv.cgi/api/images")], "/api/images"),
            ("proxy-fcgi-pathinfo", &[("PATH_INFO", "//api/a%20b"),
                                      ("SCRIPT_FILENAME", "proxy:fcgi://localhost//api/a%20b"),
                                      ("REQUEST_URI", "/b/imgserv.cgi/api/a%20b")], "/api/a b"),
            ("SetHandler on a file", &[("PATH_INFO", "/api/images"),
                                       ("SCRIPT_FILENAME", "proxy:fcgi://localhost/var/www/imgserv.cgi"),
                                       ("REQUEST_URI", "/imgserv.cgi/api/images")], "/api/images"),
            ("SetHandler, no path", &[("SCRIPT_FILENAME", "proxy:fcgi://localhost/var/www/imgserv.cgi"),
                                      ("REQUEST_URI", "/imgserv.cgi?src=a")], ""),
            ("ErrorDocument via ProxyPass", &[("SCRIPT_FILENAME", "proxy:fcgi://localhost/"),
                                              ("REQUEST_URI", "/cache/ab/1/2.jpg?sig=z")], ""),
        ];
        for (name, pairs, want) in cases {
            assert_eq!(vars(pairs).path(), *want, "{name}");
        }
    }

    #[test]
    fn only_an_explicit_signal_names_a_missing_file() {
        #[rustfmt::skip]
        let cases: &[(&str, Pairs, Option<&str>, Option<&str>)] = &[
            ("a request under the cache URL", &[("REQUEST_URI", "/cache/ab/1/2.jpg")], None, None),
            ("nginx's REDIRECT_STATUS for PHP", &[("REDIRECT_STATUS", "200"),
                                                  ("REQUEST_URI", "/cache/ab/1/2.jpg")], None, None),
            ("a rewrite", &[("REDIRECT_STATUS", "200"), ("REDIRECT_URL", "/x")], None, None),
            ("ErrorDocument 403", &[("REDIRECT_STATUS", "403"), ("REDIRECT_URL", "/x")], None, None),
            ("ErrorDocument 404", &[("REDIRECT_STATUS", "404"), ("REDIRECT_URL", "/cache/ab/1/2.jpg"),
                                    ("REDIRECT_QUERY_STRING", "sig=z")],
             Some("/cache/ab/1/2.jpg"), Some("sig=z")),
            ("nginx @imgserv", &[("IMGSERV_404", "/cache/ab/1/2.jpg"), ("REDIRECT_STATUS", "200")],
             Some("/cache/ab/1/2.jpg"), None),
            ("an empty IMGSERV_404", &[("IMGSERV_404", "")], None, None),
        ];
        for (name, pairs, missing, query) in cases {
            let v = vars(pairs);
            assert_eq!(v.missing().as_deref(), *missing, "{name}");
            if missing.is_some() {
                assert_eq!(v.missing_query().as_deref(), *query, "{name}");
            }
        }
    }
}
