//! The dashboard's foundation through the real binaries (CGI and the standalone server), with
//! plain HTTP requests and no JavaScript: the login form (cookie, `303`, `next` kept on this
//! site), failures that do not say whether the user exists, the throttle's `429`, CSRF on
//! forms (`403` pages), logout, the security headers, the hashed assets' caching, and markup
//! in a user name shown as text.

use crate::support::{Cgi, CgiResponse, Site, imgserv_admin, request, standalone};

const FORM: &str = "application/x-www-form-urlencoded";

/// A site with the local user bob (password "bob-pw", editor) and `extra` config.
fn site(extra: &str) -> Site {
    let site = Site::with_config(extra);
    let out = imgserv_admin(
        &site,
        &["user", "add", "bob", "--password-stdin", "--role", "editor"],
        b"bob-pw\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site
}

pub(crate) fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(crate) fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let pairs: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    pairs.join("&").into_bytes()
}

/// One CGI request to a page, with an optional cookie and form body, and extra headers.
pub(crate) fn page(
    site: &Site,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> CgiResponse {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut cgi = Cgi::new(site).method(method).path_info(path).query(query);
    if let Some(c) = cookie {
        cgi = cgi.header("cookie", c);
    }
    for (name, value) in headers {
        cgi = cgi.header(name, value);
    }
    if let Some(b) = body {
        cgi = cgi.body(FORM, b);
    }
    cgi.run()
}

pub(crate) fn login(site: &Site, user: &str, password: &str, next: &str) -> CgiResponse {
    let body = form(&[("user", user), ("password", password), ("next", next)]);
    page(site, "POST", "/admin/login", None, Some(&body), &[])
}

/// The `name=value` of a response's cookie.
pub(crate) fn cookie_of(r: &CgiResponse) -> String {
    let set = r.header("set-cookie").expect("a cookie");
    set.split(';').next().unwrap().to_string()
}

/// The value of the hidden `csrf_token` field of a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf_token\" value=\"")
        .unwrap_or_else(|| panic!("no csrf_token field in {html}"));
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn assert_page_headers(headers: impl Fn(&str) -> Option<String>) {
    let csp = headers("content-security-policy").expect("a CSP");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(
        headers("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(headers("referrer-policy").as_deref(), Some("same-origin"));
}

fn assert_cgi_page(r: &CgiResponse) {
    assert_page_headers(|n| r.header(n).map(str::to_string));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(
        r.header("content-type").unwrap().starts_with("text/html"),
        "{:?}",
        r.header("content-type")
    );
    let html = r.body_text();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "inline script or style: {html}"
    );
}

#[test]
fn a_form_login_opens_a_session_and_logout_ends_it() {
    let site = site("");
    // Not logged in: the dashboard sends the browser to log in, to come back.
    let r = page(&site, "GET", "/admin/", None, None, &[]);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("./login?next=%2Fadmin%2F"));
    let r = page(&site, "GET", "/admin", None, None, &[]);
    assert_eq!((r.status, r.header("location")), (303, Some("admin/")));
    let r = page(
        &site,
        "GET",
        "/admin/login?next=%2Fadmin%2F",
        None,
        None,
        &[],
    );
    assert_eq!(r.status, 200);
    assert_cgi_page(&r);
    let html = r.body_text();
    for want in [
        "<html lang=\"en\"",
        "name=\"viewport\"",
        "<form method=\"post\" action=\"login\"",
        "<label for=\"user\">",
        "<label for=\"password\">",
        "name=\"user\"",
        "name=\"password\"",
        "href=\"#main\"",
        "<main id=\"main\"",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    // The form, as a browser without JavaScript sends it.
    let r = login(&site, "bob", "bob-pw", "/admin/");
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert_eq!(r.header("location"), Some("./"));
    let set = r.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    let cookie = cookie_of(&r);
    let home = page(&site, "GET", "/admin/", Some(&cookie), None, &[]);
    assert_eq!(home.status, 200, "{}", home.body_text());
    assert_cgi_page(&home);
    let html = home.body_text();
    for want in ["bob", "editor", "Browse", "Upload", "Search", "Log out"] {
        assert!(html.contains(want), "{want} in {html}");
    }
    // Browse, Upload and Search are links; Administration is for admins only.
    assert!(!html.contains("Administration"), "{html}");
    assert!(html.contains(">Browse</a>"), "{html}");
    let token = csrf_of(&html);
    // Logout needs the token: missing or wrong is a 403 page, and the session lives on.
    for body in [form(&[]), form(&[("csrf_token", "0123")])] {
        let r = page(
            &site,
            "POST",
            "/admin/logout",
            Some(&cookie),
            Some(&body),
            &[],
        );
        assert_eq!(r.status, 403, "{}", r.body_text());
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert!(
            r.body_text().contains("<h1>Forbidden</h1>"),
            "{}",
            r.body_text()
        );
        assert_cgi_page(&r);
    }
    assert_eq!(
        page(&site, "GET", "/admin/", Some(&cookie), None, &[]).status,
        200
    );
    let body = form(&[("csrf_token", &token)]);
    let r = page(
        &site,
        "POST",
        "/admin/logout",
        Some(&cookie),
        Some(&body),
        &[],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert_eq!(r.header("location"), Some("./login"));
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = page(&site, "GET", "/admin/", Some(&cookie), None, &[]);
    assert_eq!(r.status, 303, "the session ended");
    // The API sees the same: the session is gone.
    let r = page(&site, "GET", "/api/session", Some(&cookie), None, &[]);
    assert_eq!(r.status, 401);
}

#[test]
fn a_failed_login_does_not_say_whether_the_user_exists() {
    let site = site("");
    let wrong = login(&site, "bob", "nope", "/admin/");
    let unknown = login(&site, "nobody-here", "nope", "/admin/");
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let msg = "The user name or the password is wrong.";
    assert!(wrong.body_text().contains(msg), "{}", wrong.body_text());
    assert_eq!(
        wrong.body_text().replace("bob", "X"),
        unknown.body_text().replace("nobody-here", "X")
    );
    // The form is shown again with the name typed; the password is never echoed.
    assert!(wrong.body_text().contains("value=\"bob\""));
    assert!(!wrong.body_text().contains("nope"));
    let empty = login(&site, "bob", "", "/admin/");
    assert_eq!(empty.status, 400);
    assert!(
        empty
            .body_text()
            .contains("Enter your user name and your password.")
    );
}

#[test]
fn repeated_failures_show_the_wait() {
    let site = site(
        "[login]\nuser_free_failures = 1\nfirst_delay = \"1h\"\nmax_delay = \"2h\"\nfailure_window = \"3h\"\n",
    );
    assert_eq!(login(&site, "bob", "nope", "/admin/").status, 401);
    let r = login(&site, "bob", "bob-pw", "/admin/");
    assert_eq!(r.status, 429, "{}", r.body_text());
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 3000, "{wait}");
    let html = r.body_text();
    assert!(
        html.contains("Too many failed logins. Try again in"),
        "{html}"
    );
    assert!(r.header("set-cookie").is_none());
}

#[test]
fn next_stays_on_this_site() {
    let site = site("");
    let cases = [
        ("/admin/", "./"),
        ("/admin/browse?page=2", "./browse?page=2"),
        ("//evil.example/", "./"),
        ("https://evil.example/admin/", "./"),
        ("/\\evil.example", "./"),
        ("/admin//evil.example", "./"),
        ("/admin/../api/images", "./"),
        ("/api/session", "./"),
    ];
    for (next, want) in cases {
        let r = login(&site, "bob", "bob-pw", next);
        assert_eq!(r.status, 303, "{next}");
        assert_eq!(r.header("location"), Some(want), "{next}");
    }
    let r = page(
        &site,
        "GET",
        "/admin/login?next=%2F%2Fevil.example",
        None,
        None,
        &[],
    );
    let html = r.body_text();
    assert!(html.contains("name=\"next\" value=\"/admin/\""), "{html}");
    assert!(!html.contains("evil"), "{html}");
}

#[test]
fn a_login_from_another_site_is_refused() {
    let site = site("");
    let body = form(&[("user", "bob"), ("password", "bob-pw")]);
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = page(
            &site,
            "POST",
            "/admin/login",
            None,
            Some(&body),
            &[(name, value)],
        );
        assert_eq!(r.status, 403, "{name}");
        assert!(r.header("set-cookie").is_none());
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
    }
    let r = page(
        &site,
        "POST",
        "/admin/login",
        None,
        Some(&body),
        &[("origin", "http://localhost"), ("host", "localhost")],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
}

#[test]
fn markup_in_a_user_name_is_shown_as_text() {
    let site = site("[auth]\nmethods = [\"local\", \"remote_user\"]\n");
    let evil = "<script>alert(1)</script>";
    let r = login(&site, evil, "x", "/admin/");
    assert_eq!(r.status, 401);
    let html = r.body_text();
    assert!(!html.contains(evil), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    // The web server's user, named with markup, on the home and login pages.
    for path in ["/admin/", "/admin/login"] {
        let r = Cgi::new(&site)
            .method("GET")
            .path_info(path)
            .env("REMOTE_USER", evil)
            .run();
        let html = r.body_text();
        assert!(!html.contains(evil), "{path}: {html}");
        if r.status == 200 {
            assert!(html.contains("&#60;script&#62;"), "{path}: {html}");
        }
    }
}

#[test]
fn errors_are_pages_and_assets_are_cached_for_a_year() {
    let site = site("");
    let r = page(&site, "GET", "/admin/no-such-page", None, None, &[]);
    assert_eq!(r.status, 404);
    assert_cgi_page(&r);
    assert!(r.body_text().contains("Page not found"));
    let r = page(&site, "GET", "/admin/logout", None, None, &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_cgi_page(&r);
    // A POST to a page without a session: 401, as a page.
    let r = page(&site, "POST", "/admin/", None, Some(b"x=1"), &[]);
    assert_eq!(r.status, 405);
    let html = page(&site, "GET", "/admin/login", None, None, &[]).body_text();
    for (name, ctype) in [("style.css", "text/css"), ("app.js", "text/javascript")] {
        let at = html.find(&format!("/{name}\"")).expect(name);
        let start = html[..at].rfind('"').unwrap() + 1;
        let href = &html[start..at + name.len() + 1];
        assert!(href.starts_with("./static/"), "{href}");
        let r = page(
            &site,
            "GET",
            &format!("/admin/{}", &href[2..]),
            None,
            None,
            &[],
        );
        assert_eq!(r.status, 200, "{href}");
        assert!(r.header("content-type").unwrap().starts_with(ctype));
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(!r.body.is_empty());
    }
    let r = page(
        &site,
        "GET",
        "/admin/static/0000000000000000/style.css",
        None,
        None,
        &[],
    );
    assert_eq!(r.status, 404);
}

/// Logs bob in through the login form at `admin` over HTTP (with `headers` besides the form's
/// type): checks the `303` back to the home page and returns the cookie's `name=value`.
fn http_login(admin: &str, headers: &[(&str, &str)]) -> String {
    let body = form(&[("user", "bob"), ("password", "bob-pw"), ("next", "/admin/")]);
    let mut all = vec![("Content-Type", FORM)];
    all.extend_from_slice(headers);
    let r = request("POST", &format!("{admin}/login"), &all, &body);
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert_eq!(r.header("location"), Some("./"));
    let set = r.header("set-cookie").unwrap();
    set.split(';').next().unwrap().to_string()
}

#[test]
fn the_standalone_server_serves_the_pages() {
    let site = site("");
    let (_server, base) = standalone(&site);
    let admin = format!("{base}/imgserv.cgi/admin");
    let r = request("GET", &format!("{admin}/"), &[], b"");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("./login?next=%2Fadmin%2F"));
    let r = request("GET", &format!("{admin}/login"), &[], b"");
    assert_eq!(r.status, 200);
    assert_page_headers(|n| r.header(n).map(str::to_string));
    let cookie = http_login(&admin, &[("Origin", base.as_str())]);
    let home = request("GET", &format!("{admin}/"), &[("Cookie", &cookie)], b"");
    assert_eq!(home.status, 200);
    assert_page_headers(|n| home.header(n).map(str::to_string));
    let html = home.body_text();
    assert!(html.contains("bob"));
    let token = csrf_of(&html);
    let r = request(
        "POST",
        &format!("{admin}/logout"),
        &[("Content-Type", FORM), ("Cookie", &cookie)],
        b"csrf_token=wrong",
    );
    assert_eq!(r.status, 403);
    let r = request(
        "POST",
        &format!("{admin}/logout"),
        &[("Content-Type", FORM), ("Cookie", &cookie)],
        format!("csrf_token={token}").as_bytes(),
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        request("GET", &format!("{admin}/"), &[("Cookie", &cookie)], b"").status,
        303
    );
    let css = html
        .split("href=\"./")
        .find(|s| s.starts_with("static/"))
        .unwrap();
    let css = &css[..css.find('"').unwrap()];
    let r = request("GET", &format!("{admin}/{css}"), &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
}

/// A `command` program accepting carol/carol-pw (role editor, group printers).
fn check_program(site: &Site) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = site.dir().join("check");
    let body = "read u; read p\n[ \"$u\" = carol ] && [ \"$p\" = carol-pw ] || exit 1\nprintf 'role=editor\\nprinters\\n'";
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn the_form_logs_in_with_every_configured_method() {
    use crate::support::slapd::{READER_DN, READER_PW, Slapd};
    let slapd = Slapd::start();
    let site = site("");
    let check = check_program(&site);
    // bob is in the directory too; dave is only in the catalog.
    let out = imgserv_admin(
        &site,
        &["user", "add", "dave", "--password-stdin"],
        b"dave-local\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.write_config(&format!(
        "[auth]\nmethods = [\"command\", \"ldap\", \"local\"]\ncommand = [{check:?}]\n[ldap]\nurl = \"{}\"\nstarttls = true\nca_file = {:?}\ntimeout = \"2s\"\nbind_dn = \"{READER_DN}\"\nbind_password = \"{READER_PW}\"\nbase_dn = \"ou=people,dc=example,dc=org\"\nuser_filter = \"(uid={{user}})\"\ngroup_base = \"ou=groups,dc=example,dc=org\"\ngroup_filter = \"(member={{dn}})\"\nadmin_group = \"imgadmins\"\n",
        slapd.url(),
        slapd.ca_file().to_str().unwrap(),
    ));
    let cases = [
        (
            "alice",
            "alice-pw",
            "(ldap)",
            &["admin", "imgadmins", "Administration"][..],
        ),
        (
            "carol",
            "carol-pw",
            "(command)",
            &["editor", "printers"][..],
        ),
        ("dave", "dave-local", "(local)", &["editor"][..]),
    ];
    for (user, password, method, wants) in cases {
        let r = login(&site, user, password, "/admin/");
        assert_eq!(r.status, 303, "{user}: {}", r.body_text());
        let home = page(&site, "GET", "/admin/", Some(&cookie_of(&r)), None, &[]);
        assert_eq!(home.status, 200, "{user}");
        let html = home.body_text();
        assert!(
            html.contains(&format!("<strong>{user}</strong> {method}")),
            "{html}"
        );
        for want in wants {
            assert!(html.contains(want), "{user}: {want} in {html}");
        }
    }
    // A wrong directory password reads as any other wrong password.
    let r = login(&site, "alice", "nope", "/admin/");
    assert_eq!(r.status, 401);
    assert!(
        r.body_text()
            .contains("The user name or the password is wrong.")
    );
}

#[test]
fn the_web_servers_user_needs_no_login() {
    let site = site("[auth]\nmethods = [\"local\", \"remote_user\"]\n");
    let as_bob = |method: &str, path: &str, body: Option<&[u8]>, origin: Option<&str>| {
        let mut cgi = Cgi::new(&site)
            .method(method)
            .path_info(path)
            .env("REMOTE_USER", "bob");
        if let Some(o) = origin {
            cgi = cgi.header("origin", o).header("host", "localhost");
        }
        if let Some(b) = body {
            cgi = cgi.body(FORM, b);
        }
        cgi.run()
    };
    let home = as_bob("GET", "/admin/", None, None);
    assert_eq!(home.status, 200, "{}", home.body_text());
    let html = home.body_text();
    assert!(
        html.contains("<strong>bob</strong> (remote_user)"),
        "{html}"
    );
    // No session, so no token and no logout button: the web server decides who this is.
    assert!(!html.contains("csrf_token"), "{html}");
    let html = as_bob("GET", "/admin/login", None, None).body_text();
    assert!(
        html.contains("The web server says you are <strong>bob</strong>"),
        "{html}"
    );
    // A change from another site's page is refused (the browser re-sends Basic credentials).
    let r = as_bob(
        "POST",
        "/admin/logout",
        Some(b"x=1"),
        Some("http://evil.example"),
    );
    assert_eq!(r.status, 403);
    let r = as_bob(
        "POST",
        "/admin/logout",
        Some(b"x=1"),
        Some("http://localhost"),
    );
    assert_eq!(r.status, 303);
}

#[test]
fn nginx_fastcgi_serves_the_pages() {
    let site = site("");
    let nginx = crate::support::Nginx::fastcgi(&site);
    let admin = nginx.url("/cgi-bin/imgserv.cgi/admin");
    let r = request("GET", &format!("{admin}/"), &[], b"");
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert_eq!(r.header("location"), Some("./login?next=%2Fadmin%2F"));
    let cookie = http_login(&admin, &[]);
    let home = request("GET", &format!("{admin}/"), &[("Cookie", &cookie)], b"");
    assert_eq!(home.status, 200);
    assert_page_headers(|n| home.header(n).map(str::to_string));
    let html = home.body_text();
    assert!(html.contains("<strong>bob</strong>"), "{html}");
    let js = html
        .split("src=\"./")
        .find(|s| s.starts_with("static/"))
        .unwrap();
    let js = &js[..js.find('"').unwrap()];
    let r = request("GET", &format!("{admin}/{js}"), &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let r = request("GET", &format!("{admin}/nowhere"), &[], b"");
    assert_eq!(r.status, 404);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
}
