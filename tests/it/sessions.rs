//! Login sessions through the real CGI binary (`POST/GET/DELETE /api/session`): cookie
//! attributes, fixation, CSRF, timeouts, the catalog's word reaching a live session, logout,
//! the memcached store against a real memcached, and `REMOTE_USER` from a real Apache with
//! `mod_auth_basic`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::{
    Apache, Cgi, CgiResponse, Memcached, Site, imgserv_admin, request, require_program, standalone,
};

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

fn admin(site: &Site, args: &[&str], stdin: &str) {
    let out = imgserv_admin(site, args, stdin.as_bytes());
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A site with the local user bob (password "bob-pw", editor).
fn site(extra: &str) -> Site {
    let site = Site::with_config(extra);
    admin(
        &site,
        &["user", "add", "bob", "--password-stdin", "--role", "editor"],
        "bob-pw\n",
    );
    site
}

/// One CGI request to `/api/session` with these headers (`name`, value) and body.
fn call(
    site: &Site,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> CgiResponse {
    let mut cgi = Cgi::new(site).method(method).path_info("/api/session");
    for (name, value) in headers {
        let var = match *name {
            "HTTPS" | "REMOTE_USER" | "REMOTE_ADDR" => name.to_string(),
            _ => format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
        };
        cgi = cgi.env(&var, value);
    }
    if let Some((ct, bytes)) = body {
        cgi = cgi.body(ct, bytes);
    }
    cgi.run()
}

fn json(r: &CgiResponse) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body_text()))
}

/// Logs bob in with JSON; the response and the cookie's `name=value`.
fn login(site: &Site, headers: &[(&str, &str)]) -> (CgiResponse, String) {
    let r = call(
        site,
        "POST",
        headers,
        Some((JSON, br#"{"user":"bob","password":"bob-pw"}"#)),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let set = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    let pair = set.split(';').next().unwrap().to_string();
    (r, pair)
}

fn whoami(site: &Site, cookie: &str) -> CgiResponse {
    call(site, "GET", &[("cookie", cookie)], None)
}

#[test]
fn login_by_json_or_form_sets_a_cookie_that_finds_the_principal() {
    let site = site("");
    let (r, cookie) = login(&site, &[("host", "img.example")]);
    let body = json(&r);
    assert_eq!(body["user"], "bob");
    assert_eq!(body["roles"], serde_json::json!(["editor"]));
    assert_eq!(body["groups"], serde_json::json!([]));
    let csrf = body["csrf_token"].as_str().unwrap();
    assert_eq!(csrf.len(), 64);
    let set = r.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with("imgserv_session=") && cookie.len() == 16 + 64,
        "{set}"
    );
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=604800"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} missing: {set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    // The token itself is nowhere in the catalog.
    let catalog = std::fs::read(site.state().join("catalog.sqlite")).unwrap();
    let token = cookie.split('=').nth(1).unwrap().as_bytes();
    assert!(!catalog.windows(token.len()).any(|w| w == token));

    let me = whoami(&site, &cookie);
    assert_eq!(me.status, 200, "{}", me.body_text());
    assert_eq!(json(&me)["user"], "bob");
    assert_eq!(json(&me)["csrf_token"], csrf);

    // A form does as well, and HTTPS makes the cookie Secure.
    let r = call(
        &site,
        "POST",
        &[("HTTPS", "on")],
        Some((FORM, b"user=bob&password=bob-pw")),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(r.header("set-cookie").unwrap().contains("; Secure"));
    let boundary = "B0und";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nbob\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nbob-pw\r\n--{boundary}--\r\n"
    );
    let ct = format!("multipart/form-data; boundary={boundary}");
    let r = call(&site, "POST", &[], Some((&ct, multipart.as_bytes())));
    assert_eq!(r.status, 200, "{}", r.body_text());

    // Wrong credentials: the same 401 whether the user exists or not, and no cookie.
    let wrong = call(
        &site,
        "POST",
        &[],
        Some((JSON, br#"{"user":"bob","password":"nope"}"#)),
    );
    let nobody = call(
        &site,
        "POST",
        &[],
        Some((JSON, br#"{"user":"zed","password":"nope"}"#)),
    );
    assert_eq!((wrong.status, nobody.status), (401, 401));
    assert_eq!(wrong.body, nobody.body);
    assert_eq!(json(&wrong)["code"], "bad-credentials");
    assert!(wrong.header("set-cookie").is_none());
    // No cookie, or a made-up one: 401.
    assert_eq!(call(&site, "GET", &[], None).status, 401);
    assert_eq!(
        json(&whoami(
            &site,
            &format!("imgserv_session={}", "ab".repeat(32))
        ))["code"],
        "no-session"
    );
}

#[test]
fn repeated_failures_slow_logins_down_with_429_and_no_session() {
    let site = site(
        "[login]\nuser_free_failures = 2\naddress_free_failures = 3\nfirst_delay = \"30s\"\n\
         max_delay = \"1m\"\n",
    );
    let wrong = br#"{"user":"bob","password":"guess"}"#;
    let from = |addr: &'static str| [("REMOTE_ADDR", addr)];
    for _ in 0..2 {
        let r = call(&site, "POST", &from("192.0.2.7"), Some((JSON, wrong)));
        assert_eq!(r.status, 401, "{}", r.body_text());
    }
    // bob's free failures are spent: the right password now waits, unchecked, and no cookie.
    let right = br#"{"user":"bob","password":"bob-pw"}"#;
    let r = call(&site, "POST", &from("192.0.2.8"), Some((JSON, right)));
    assert_eq!(r.status, 429, "{}", r.body_text());
    assert!(
        r.body_text().contains("too-many-logins"),
        "{}",
        r.body_text()
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert_eq!(r.header("set-cookie"), None);
    // The address that failed is counted too: another user from it gets one more try.
    let eve = br#"{"user":"eve","password":"x"}"#;
    let r = call(&site, "POST", &from("192.0.2.7"), Some((JSON, eve)));
    assert_eq!(r.status, 401, "{}", r.body_text());
    let r = call(&site, "POST", &from("192.0.2.7"), Some((JSON, eve)));
    assert_eq!(r.status, 429, "{}", r.body_text());
    // An operator lifts bob's wait.
    admin(&site, &["login-throttle", "clear", "bob"], "");
    let r = call(&site, "POST", &from("192.0.2.8"), Some((JSON, right)));
    assert_eq!(r.status, 200, "{}", r.body_text());
}

#[test]
fn a_login_from_another_sites_page_is_refused() {
    let site = site("");
    let body = Some((FORM, &b"user=bob&password=bob-pw"[..]));
    for headers in [
        &[("host", "img.example"), ("origin", "http://evil.example")][..],
        &[("host", "img.example"), ("origin", "null")][..],
        &[("sec-fetch-site", "cross-site")][..],
    ] {
        let r = call(&site, "POST", headers, body);
        assert_eq!(
            (r.status, json(&r)["code"].as_str()),
            (403, Some("cross-origin")),
            "{headers:?}"
        );
        assert!(r.header("set-cookie").is_none());
    }
    let r = call(
        &site,
        "POST",
        &[("host", "img.example"), ("origin", "http://img.example")],
        body,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_login_never_keeps_the_session_id_it_came_with() {
    let site = site("");
    // A cookie planted by an attacker (well-formed, unknown here).
    let planted = format!("imgserv_session={}", "0f".repeat(32));
    let (_, after) = login(&site, &[("cookie", &planted)]);
    assert_ne!(after, planted);
    assert_eq!(whoami(&site, &planted).status, 401);
    assert_eq!(whoami(&site, &after).status, 200);
    // Logging in again with a live session replaces it: the old id is dead.
    let (_, again) = login(&site, &[("cookie", &after)]);
    assert_ne!(again, after);
    assert_eq!(whoami(&site, &after).status, 401);
    assert_eq!(whoami(&site, &again).status, 200);
    assert_eq!(count_sessions(&site), 1);
}

#[test]
fn logout_needs_the_csrf_token_and_kills_the_session_on_the_server() {
    let site = site("");
    let (r, cookie) = login(&site, &[]);
    let csrf = json(&r)["csrf_token"].as_str().unwrap().to_string();
    let no_token = call(&site, "DELETE", &[("cookie", &cookie)], None);
    assert_eq!(
        (no_token.status, json(&no_token)["code"].as_str()),
        (403, Some("csrf-failed"))
    );
    let wrong = call(
        &site,
        "DELETE",
        &[("cookie", &cookie), ("x-csrf-token", &"0".repeat(64))],
        None,
    );
    assert_eq!(wrong.status, 403);
    // A form field does too (a wrong one here), the session lives on.
    let field = call(
        &site,
        "DELETE",
        &[("cookie", &cookie)],
        Some((FORM, b"csrf_token=abc")),
    );
    assert_eq!(field.status, 403);
    assert_eq!(whoami(&site, &cookie).status, 200);

    let out = call(
        &site,
        "DELETE",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        None,
    );
    assert_eq!(out.status, 200, "{}", out.body_text());
    let set = out.header("set-cookie").unwrap();
    assert!(
        set.starts_with("imgserv_session=;") && set.contains("Max-Age=0"),
        "{set}"
    );
    // Replaying the old cookie: the server forgot it.
    assert_eq!(whoami(&site, &cookie).status, 401);
    let (r, cookie) = login(&site, &[]);
    let csrf = json(&r)["csrf_token"].as_str().unwrap().to_string();
    let body = format!("csrf_token={csrf}");
    let out = call(
        &site,
        "DELETE",
        &[("cookie", &cookie)],
        Some((FORM, body.as_bytes())),
    );
    assert_eq!(out.status, 200, "{}", out.body_text());
    assert_eq!(whoami(&site, &cookie).status, 401);
}

#[test]
fn idle_and_absolute_timeouts_end_sessions() {
    let site = site("[sessions]\nidle_timeout = \"1h\"\nabsolute_timeout = \"1d\"\n");
    let catalog = site.state().join("catalog.sqlite");
    let set_back = |created_ms: i64, seen_ms: i64| {
        rusqlite::Connection::open(&catalog)
            .unwrap()
            .execute(
                "UPDATE sessions SET created = created - ?1, last_seen = last_seen - ?2",
                [created_ms, seen_ms],
            )
            .unwrap();
    };
    let hour = 3_600_000;
    let (_, cookie) = login(&site, &[]);
    set_back(0, hour - 120_000);
    assert_eq!(whoami(&site, &cookie).status, 200);
    // That use moved last_seen: another 58 minutes back is still within the hour.
    set_back(0, hour - 120_000);
    assert_eq!(whoami(&site, &cookie).status, 200);
    set_back(0, hour + 1000);
    assert_eq!(whoami(&site, &cookie).status, 401);

    let (_, cookie) = login(&site, &[]);
    set_back(24 * hour + 1000, 0);
    assert_eq!(whoami(&site, &cookie).status, 401);

    // Sessions nobody comes back for are deleted by imgserv-evict (and at each login).
    let (_, _old) = login(&site, &[]);
    set_back(0, 2 * hour);
    let (_, fresh) = login(&site, &[]);
    assert_eq!(count_sessions(&site), 1);
    set_back(0, 2 * hour);
    let out = Command::new(env!("CARGO_BIN_EXE_imgserv-evict"))
        .arg("--config")
        .arg(site.config_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("; 1 expired sessions"),
        "{out:?}"
    );
    assert_eq!(count_sessions(&site), 0);
    assert_eq!(whoami(&site, &fresh).status, 401);
}

fn count_sessions(site: &Site) -> i64 {
    rusqlite::Connection::open(site.state().join("catalog.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn disabling_a_user_or_changing_their_groups_reaches_a_live_session() {
    let site = site("");
    let (_, cookie) = login(&site, &[]);
    admin(&site, &["group", "add", "darkroom"], "");
    admin(&site, &["group", "member", "add", "darkroom", "bob"], "");
    let me = whoami(&site, &cookie);
    assert_eq!(json(&me)["groups"], serde_json::json!(["darkroom"]));
    admin(&site, &["user", "disable", "bob"], "");
    assert_eq!(whoami(&site, &cookie).status, 401);
}

#[test]
fn sessions_in_memcached() {
    let mut memcached = Memcached::start();
    let site = site(&format!(
        "[sessions]\nstore = \"memcached\"\n[object_cache]\nservers = [\"{}\"]\n",
        memcached.addr()
    ));
    let (_, cookie) = login(&site, &[]);
    assert_eq!(json(&whoami(&site, &cookie))["user"], "bob");
    assert_eq!(count_sessions(&site), 0, "nothing in the catalog");
    // Fixation and logout hold here too.
    let (_, again) = login(&site, &[("cookie", &cookie)]);
    assert_eq!(whoami(&site, &cookie).status, 401);
    let r = whoami(&site, &again);
    let csrf = json(&r)["csrf_token"].as_str().unwrap().to_string();
    // The catalog still has its word: a disabled user is out.
    admin(&site, &["user", "disable", "bob"], "");
    assert_eq!(whoami(&site, &again).status, 401);
    admin(&site, &["user", "enable", "bob"], "");
    assert_eq!(whoami(&site, &again).status, 200);
    let out = call(
        &site,
        "DELETE",
        &[("cookie", &again), ("x-csrf-token", &csrf)],
        None,
    );
    assert_eq!(out.status, 200);
    assert_eq!(whoami(&site, &again).status, 401);
    // memcached gone: nobody is logged in, quickly, and nothing fails.
    let (_, cookie) = login(&site, &[]);
    memcached.kill();
    let started = std::time::Instant::now();
    assert_eq!(whoami(&site, &cookie).status, 401);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// `user:password` in base64, for `Authorization: Basic`.
fn basic(user_pw: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in user_pw.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

#[test]
fn remote_user_from_apache_basic_auth_counts_only_when_listed() {
    let htpasswd = require_program("htpasswd");
    let site = site("");
    let file = site.dir().join("htpasswd");
    let out = Command::new(htpasswd)
        .args(["-cbB"])
        .arg(&file)
        .args(["rob", "rob-pw"])
        .output()
        .unwrap();
    assert!(out.status.success());
    admin(&site, &["group", "add", "printers"], "");
    admin(&site, &["user", "add", "rob", "--role", "viewer"], "");
    admin(&site, &["group", "member", "add", "printers", "rob"], "");
    // Apache's CGIs run as www-data: let them open the catalog the admin tool made (0600).
    for entry in std::fs::read_dir(site.state()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let apache = Apache::cgi_basic_auth(&site, &file);
    let url = apache.url("/cgi-bin/imgserv.cgi/api/session");
    let auth = basic("rob:rob-pw");
    // Apache's own refusal without credentials.
    assert_eq!(request("GET", &url, &[], b"").status, 401);
    // Not listed in [auth] methods: REMOTE_USER means nothing.
    let r = request("GET", &url, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 401, "{}", r.body_text());
    assert!(r.body_text().contains("no-session"), "{}", r.body_text());
    site.write_config("[auth]\nmethods = [\"local\", \"remote_user\"]\n");
    let r = request("GET", &url, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}\n{}", r.body_text(), apache.error_log());
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["user"], "rob");
    assert_eq!(body["method"], "remote_user");
    assert_eq!(body["groups"], serde_json::json!(["printers"]));
    assert_eq!(body["csrf_token"], serde_json::Value::Null);
    // A client's own header is not REMOTE_USER.
    let r = request(
        "GET",
        &url,
        &[("Authorization", &auth), ("Remote-User", "admin")],
        b"",
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["user"],
        "rob"
    );
}

#[test]
fn the_standalone_server_logs_in_and_never_believes_a_remote_user_header() {
    let site = site("[auth]\nmethods = [\"local\", \"remote_user\"]\n");
    let (_server, base) = standalone(&site);
    let url = format!("{base}/imgserv.cgi/api/session");
    let r = request("GET", &url, &[("Remote-User", "bob")], b"");
    assert_eq!(r.status, 401, "{}", r.body_text());
    let r = request(
        "POST",
        &url,
        &[("Content-Type", JSON)],
        br#"{"user":"bob","password":"bob-pw"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let set = r.header("set-cookie").unwrap();
    assert!(set.contains("HttpOnly") && !set.contains("Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let csrf = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let me = request("GET", &url, &[("Cookie", &cookie)], b"");
    assert_eq!(me.status, 200);
    let out = request("DELETE", &url, &[("Cookie", &cookie)], b"");
    assert_eq!(out.status, 403);
    let out = request(
        "DELETE",
        &url,
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        b"",
    );
    assert_eq!(out.status, 200);
    assert_eq!(
        request("GET", &url, &[("Cookie", &cookie)], b"").status,
        401
    );
}
