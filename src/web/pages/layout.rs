//! What every page shares: the frame the templates extend ([`Layout`]), the security headers
//! ([`secure`]), redirects, and the one check of where a login may send the browser on
//! ([`safe_next`]: a page of this dashboard, never another site).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::io::config::Config;
use crate::io::http::Response;
use crate::io::http::form::{self, Limits};

use super::{PREFIX, assets};

/// The frame of every page (`templates/base.html`).
pub struct Layout<'a> {
    /// The relative URL of `/admin/` from the page: `./`, `../`, ….
    pub root: String,
    /// The stylesheet's and script's URLs relative to `root`.
    pub style: &'static str,
    pub script: &'static str,
    /// The logged-in user, shown with the logout button.
    pub user: Option<&'a str>,
    /// The session's CSRF token for the logout form (none for `REMOTE_USER`).
    pub csrf_token: Option<&'a str>,
    /// Whether the visitor has the admin role (the Administration link).
    pub admin: bool,
    pub version: &'static str,
}

impl<'a> Layout<'a> {
    /// The frame of the page at `path` (below the script) for `visitor`.
    pub fn new(path: &str, visitor: &'a super::Visitor) -> Layout<'a> {
        Layout {
            root: root(path),
            style: assets::style_url(),
            script: assets::script_url(),
            user: visitor.principal().map(|p| p.user.as_str()),
            csrf_token: visitor.csrf_token(),
            admin: visitor
                .principal()
                .is_some_and(|p| p.has_role(crate::domain::principal::Role::Admin)),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The relative URL of `/admin/` from the page at `path`: `./` from `/admin/x`, `../` from
/// `/admin/x/y`.
pub fn root(path: &str) -> String {
    let page = path.strip_prefix(PREFIX).unwrap_or(path);
    let depth = page.matches('/').count().saturating_sub(1);
    if depth == 0 {
        "./".into()
    } else {
        "../".repeat(depth)
    }
}

/// Path characters kept as they are in `next` (the rest percent-encoded).
const PATH_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `next` as a query component: everything but unreserved characters encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Where a login may go on to: `next` when it is a page of this dashboard (`/admin/…`, a path
/// below the script), returned relative to `/admin/`; `None` for anything else — another
/// site (`https://evil`, `//evil`, `/\evil`), another part of this one, `..` segments, spaces
/// or control characters.
pub fn safe_next(next: &str) -> Option<&str> {
    let rest = next.strip_prefix("/admin/")?;
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let plain = next.bytes().all(|b| b.is_ascii_graphic())
        && !next.contains('\\')
        && !path.contains("//")
        && !path.split('/').any(|s| s == ".." || s == ".")
        && !rest.starts_with('/');
    plain.then_some(rest)
}

/// A `303 See Other` to `location` (relative to the page), changing nothing.
pub fn redirect(location: &str) -> Response {
    Response::new(303)
        .with_header("Location", location)
        .with_header("Content-Type", "text/plain; charset=utf-8")
        .with_header("Cache-Control", "no-store")
        .with_body(format!("see {location}\n").into_bytes())
}

/// Sends a visitor who is not logged in to the login page, to come back to this page after.
pub fn to_login(req: &crate::io::http::Request) -> Response {
    let mut next = utf8_percent_encode(&req.path, PATH_KEEP).to_string();
    if !req.query.is_empty() {
        next.push('?');
        next.push_str(&req.query);
    }
    let next = utf8_percent_encode(&next, COMPONENT);
    redirect(&format!("{}login?next={next}", root(&req.path)))
}

/// The `next` of a login page's query, when it is safe (else the dashboard's home).
pub fn next_of_query(query: &str) -> String {
    let limits = Limits::default();
    let next = form::urlencoded(query.as_bytes(), &limits)
        .ok()
        .and_then(|f| f.get("next").map(str::to_string));
    next.filter(|n| safe_next(n).is_some())
        .unwrap_or_else(|| format!("{PREFIX}/"))
}

/// A rendered page, or a plain `500` when the template could not be written (it cannot fail
/// but for a formatter's error).
pub fn html(status: u16, rendered: askama::Result<String>) -> Response {
    match rendered {
        Ok(body) => Response::new(status)
            .with_header("Content-Type", "text/html; charset=utf-8")
            .with_body(body.into_bytes()),
        Err(e) => {
            log::error!("page template failed: {e}");
            Response::text(500, "the page could not be rendered")
        }
    }
}

/// The headers every page and asset gets: a strict `Content-Security-Policy` (no inline
/// script or style anywhere, nothing from another origin but the cache's images, no framing),
/// `Referrer-Policy: same-origin`, and `Cache-Control: no-store` unless the response set its
/// own (the assets). `X-Content-Type-Options: nosniff` is added to every response by the
/// handler.
pub fn secure(resp: Response, config: &Config) -> Response {
    let mut img = String::from("'self'");
    if let Some(origin) = origin(&config.cache.url) {
        img.push(' ');
        img.push_str(origin);
    }
    let csp = format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src {img}; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    let cached = resp.header("cache-control").is_some();
    let resp = resp
        .with_header("Content-Security-Policy", csp)
        .with_header("Referrer-Policy", "same-origin")
        .with_header("X-Frame-Options", "DENY");
    if cached {
        resp
    } else {
        resp.with_header("Cache-Control", "no-store")
    }
}

/// `scheme://authority` of an absolute `http(s)` URL.
fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (end > 0).then(|| &url[..scheme.len() + 3 + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_climbs_to_the_dashboard() {
        let cases = [
            ("/admin/", "./"),
            ("/admin/login", "./"),
            ("/admin/browse/cats", "../"),
            ("/admin/a/b/c", "../../"),
        ];
        for (path, want) in cases {
            assert_eq!(root(path), want, "{path}");
        }
    }

    #[test]
    fn next_stays_on_the_dashboard() {
        let ok = [
            ("/admin/", ""),
            ("/admin/browse?page=2", "browse?page=2"),
            ("/admin/a%20b/c", "a%20b/c"),
            ("/admin/search?q=a//b", "search?q=a//b"),
        ];
        for (next, want) in ok {
            assert_eq!(safe_next(next), Some(want), "{next}");
        }
        let refused = [
            "",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/admin//evil.example",
            "/admin/\\evil",
            "/admin/../api/images",
            "/admin/./x",
            "/admin/a b",
            "/admin/a\nb",
            "/api/session",
            "/admin",
            "admin/",
            "javascript:alert(1)",
            "/admin/é",
        ];
        for next in refused {
            assert_eq!(safe_next(next), None, "{next:?}");
        }
    }

    #[test]
    fn a_login_page_query_falls_back_to_home() {
        assert_eq!(next_of_query("next=%2Fadmin%2Fx%3Fa%3D1"), "/admin/x?a=1");
        assert_eq!(next_of_query("next=%2F%2Fevil.example"), "/admin/");
        assert_eq!(next_of_query("next=https%3A%2F%2Fevil.example"), "/admin/");
        assert_eq!(next_of_query(""), "/admin/");
    }

    #[test]
    fn to_login_keeps_the_page_and_its_query() {
        let mut req = crate::io::http::Request::get("/admin/a b/c", "x=1&y=2");
        req.method = "GET".into();
        let resp = to_login(&req);
        assert_eq!(resp.status, 303);
        let location = resp.header("location").unwrap();
        assert_eq!(
            location,
            "../login?next=%2Fadmin%2Fa%2520b%2Fc%3Fx%3D1%26y%3D2"
        );
        let query = location.split_once('?').unwrap().1;
        assert_eq!(next_of_query(query), "/admin/a%20b/c?x=1&y=2");
    }

    #[test]
    fn only_an_absolute_cache_url_adds_an_image_origin() {
        assert_eq!(
            origin("https://img.example.com/cache"),
            Some("https://img.example.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("/cache"), None);
        assert_eq!(origin("ftp://x/y"), None);
        assert_eq!(origin("https:///x"), None);
    }
}
