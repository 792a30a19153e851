//! Permissions through the real binaries: grants made over REST and with `imgserv-admin`,
//! checked by CGI runs of `imgserv.cgi` and by a standalone server (whose object cache must
//! forget what a grant changes): a private category in a public one, a viewer's key that
//! cannot upload, `401` (nobody signed) versus `403` (signed, not allowed), `explain`'s
//! output, and the 404 handler refusing to put a private image into the public cache tree.

use std::process::Output;

use imgserv::io::catalog::{ApiKey, Catalog, Rights, Role};
use imgserv::io::http::Request;
use serde_json::{Value, json};

use crate::api::{load, sign_with, unsigned};
use crate::support::{Cgi, CgiResponse, Site, fixture_bytes, request};

const ALL: [Rights; 4] = [Rights::READ, Rights::WRITE, Rights::DELETE, Rights::ADMIN];

fn all() -> Rights {
    ALL.into_iter().fold(Rights::NONE, |a, b| a | b)
}

/// A user with `role` and a key with `rights`.
fn user(site: &Site, name: &str, role: Role, rights: Rights) -> ApiKey {
    let mut c = Catalog::open(&load(site).state.catalog_path()).unwrap();
    c.add_user_with(name, role, None).unwrap();
    c.add_key(name, rights).unwrap()
}

/// `req` as a CGI run of the built binary.
fn cgi(site: &Site, req: &Request) -> CgiResponse {
    Cgi::request(site, req).run()
}

/// A signed (or, without a key, anonymous) request through CGI: status and JSON body.
fn call(
    site: &Site,
    key: Option<&ApiKey>,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> (u16, Value) {
    let mut req = unsigned(method, path, query, body);
    if !body.is_empty() {
        let kind = if body.starts_with(b"{") {
            "application/json"
        } else {
            "image/jpeg"
        };
        req.headers.push(("content-type".into(), kind.into()));
    }
    let req = match key {
        Some(k) => sign_with(k, req),
        None => req,
    };
    let r = cgi(site, &req);
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn upload(site: &Site, key: &ApiKey, fixture: &str, category: &str) -> (u16, Value) {
    call(
        site,
        Some(key),
        "POST",
        "/api/images",
        &format!("category={category}"),
        &fixture_bytes(fixture),
    )
}

fn admin(site: &Site, args: &[&str]) -> Output {
    crate::support::imgserv_admin(site, args, b"")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

#[test]
fn a_private_category_in_a_public_one_over_cgi() {
    let site = Site::with_config("[api]\npublic_reads = true\n");
    let alice = user(&site, "alice", Role::Editor, all());
    let bob = user(&site, "bob", Role::Editor, all());
    let vi = user(&site, "vi", Role::Viewer, Rights::READ | Rights::WRITE);

    // Alice's uploads make /travel and /travel/private exist: she administers both.
    let (s, public) = upload(&site, &alice, "photo-rocket-640x427.jpg", "/travel");
    assert_eq!(s, 201, "{public}");
    let (s, private) = upload(
        &site,
        &alice,
        "jpeg-progressive-cat-320x240.jpg",
        "/travel/private",
    );
    assert_eq!(s, 201, "{private}");
    let (public, private) = (
        public["id"].as_str().unwrap(),
        private["id"].as_str().unwrap(),
    );

    // A viewer's key cannot upload (403), even with the write right; nobody signed is 401.
    let (s, v) = upload(&site, &vi, "photo-hopper-128x128.png", "/travel");
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    let (s, v) = call(
        &site,
        None,
        "POST",
        "/api/images",
        "",
        &fixture_bytes("photo-hopper-128x128.png"),
    );
    assert_eq!((s, code(&v)), (401, "unsigned"), "{v}");

    // Private: below it only its own grants (alice's creator grant) apply.
    let out = admin(&site, &["inherit", "category:/travel/private", "off"]);
    assert!(out.status.success(), "{out:?}");
    let get = |key: Option<&ApiKey>, id: &str| {
        call(
            &site,
            key,
            "GET",
            &format!("/api/images/{id}/meta"),
            "",
            b"",
        )
    };
    assert_eq!(get(None, public).0, 200);
    let (s, v) = get(None, private);
    assert_eq!((s, code(&v)), (401, "login-required"), "{v}");
    // Bob is an editor: the role is a grant at the root, and inherit = false cuts it.
    let (s, v) = get(Some(&bob), private);
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    assert_eq!(get(Some(&alice), private).0, 200);

    // Alice grants Bob view over REST; Bob may not grant (no admin there).
    let perms = "/api/permissions/category:/travel/private";
    let grant = |key, who: &str, privilege: &str| {
        let body = json!({"grantee": who, "privilege": privilege}).to_string();
        call(&site, Some(key), "POST", perms, "", body.as_bytes())
    };
    let (s, v) = grant(&alice, "user:bob", "view");
    assert_eq!(s, 200, "{v}");
    assert_eq!(get(Some(&bob), private).0, 200);
    let (s, v) = grant(&bob, "user:bob", "admin");
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    // Bad requests: 400; an unknown user: 404.
    for (who, privilege, want) in [
        ("everyone", "view", "bad-body"),
        ("user:bob", "own", "bad-body"),
        ("user:nobody", "view", "user-not-found"),
    ] {
        let (s, v) = grant(&alice, who, privilege);
        assert_eq!(code(&v), want, "{who} {privilege}: {v}");
        assert_eq!(s, if want == "user-not-found" { 404 } else { 400 });
    }
    let body = json!({"grantee": "public", "privilege": "view"}).to_string();
    let (s, v) = call(
        &site,
        Some(&alice),
        "POST",
        "/api/permissions/album:1",
        "",
        body.as_bytes(),
    );
    assert_eq!((s, code(&v)), (400, "bad-object"), "{v}");

    // What GET shows an administrator of the object (URL-encoded works as well).
    let (s, v) = call(
        &site,
        Some(&alice),
        "GET",
        "/api/permissions/category%3A%2Ftravel%2Fprivate",
        "",
        b"",
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "category:/travel/private");
    assert_eq!(v["inherit"], false);
    assert_eq!(v["privilege"], "admin");
    assert_eq!(
        v["reason"],
        "admin to user:alice on category:/travel/private"
    );
    let own: Vec<String> = v["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| format!("{} {}", g["grantee"], g["privilege"]))
        .collect();
    assert_eq!(own, ["\"user:alice\" \"admin\"", "\"user:bob\" \"view\""]);
    assert_eq!(v["inherited"], json!([]));
    // ... and anyone else: only their own privilege.
    let (s, v) = call(
        &site,
        None,
        "GET",
        "/api/permissions/category:/travel",
        "",
        b"",
    );
    assert_eq!(
        (s, v["privilege"].clone(), v["grants"].clone()),
        (200, json!("view"), Value::Null)
    );

    // Searches and the category tree leave the private category out for those who may not
    // view it.
    let (_, v) = call(&site, None, "GET", "/api/images", "", b"");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["items"][0]["id"], public);
    let (_, v) = call(&site, Some(&alice), "GET", "/api/images", "", b"");
    assert_eq!(v["total"], 2, "{v}");
    let (_, v) = call(&site, None, "GET", "/api/categories", "", b"");
    let paths: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/", "/travel"]);

    // A group granted with the tool reaches a member added afterwards: the viewer uploads.
    for args in [
        &["group", "add", "staff"][..],
        &["grant", "category:/travel/private", "group:staff", "edit"],
        &["group", "member", "add", "staff", "vi"],
    ] {
        let out = admin(&site, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let (s, v) = upload(&site, &vi, "photo-hopper-128x128.png", "/travel/private");
    assert_eq!(s, 201, "{v}");

    // explain: the privilege and why, from the tool.
    let out = admin(&site, &["explain", "category:/travel/private", "bob"]);
    assert_eq!(
        stdout(&out),
        "user:bob holds view on category:/travel/private: view to user:bob on category:/travel/private\n"
    );
    let out = admin(&site, &["explain", "category:/travel", "bob", "edit"]);
    assert_eq!(
        stdout(&out),
        "user:bob holds edit on category:/travel: the editor role\n"
    );
    assert!(out.status.success());
    let out = admin(
        &site,
        &["explain", "category:/travel/private/x", "public", "view"],
    );
    assert_eq!(
        stdout(&out),
        "public holds nothing on category:/travel/private/x\n"
    );
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    let out = admin(&site, &["explain", "category:/travel", "vi"]);
    assert_eq!(
        stdout(&out),
        "user:vi holds view on category:/travel: view to public on category:/\n"
    );
    assert_eq!(
        admin(&site, &["explain", "category:/", "nobody"])
            .status
            .code(),
        Some(67)
    );
    assert_eq!(
        admin(&site, &["grant", "category:/", "everyone", "view"])
            .status
            .code(),
        Some(64)
    );

    // Revoked over REST (DELETE), Bob is refused again; revoking again is 404.
    let body = json!({"grantee": "user:bob"}).to_string();
    let (s, v) = call(&site, Some(&alice), "DELETE", perms, "", body.as_bytes());
    assert_eq!(s, 200, "{v}");
    assert_eq!(get(Some(&bob), private).0, 403);
    let (s, v) = call(&site, Some(&alice), "DELETE", perms, "", body.as_bytes());
    assert_eq!((s, code(&v)), (404, "grant-not-found"), "{v}");
    let out = admin(
        &site,
        &["revoke", "category:/travel/private", "group:staff"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        admin(
            &site,
            &["revoke", "category:/travel/private", "group:staff"]
        )
        .status
        .code(),
        Some(66)
    );

    // Deleting needs edit, and the key's delete right.
    let (s, v) = call(
        &site,
        Some(&bob),
        "DELETE",
        &format!("/api/images/{private}"),
        "",
        b"",
    );
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    let (s, _) = call(
        &site,
        Some(&alice),
        "DELETE",
        &format!("/api/images/{private}"),
        "",
        b"",
    );
    assert_eq!(s, 204);
}

#[test]
fn the_standalone_server_sees_grants_at_once_and_keeps_private_variants_out_of_the_cache() {
    let site = Site::with_config(
        "[object_cache]\ntype = \"memory\"\n[permissions]\nroot_grants = [\"registered view\"]\n",
    );
    let alice = user(&site, "alice", Role::Editor, all());
    let vi = user(&site, "vi", Role::Viewer, Rights::READ | Rights::WRITE);
    let (_server, base) = crate::support::standalone(&site);
    let api = format!("{base}/imgserv.cgi");
    let send = |key: &ApiKey, method: &str, path: &str, query: &str, body: &[u8]| {
        let mut req = unsigned(method, path, query, body);
        if !body.is_empty() {
            let kind = if body.starts_with(b"{") {
                "application/json"
            } else {
                "image/jpeg"
            };
            req.headers.push(("content-type".into(), kind.into()));
        }
        let req = sign_with(key, req);
        let headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let url = if query.is_empty() {
            format!("{api}{path}")
        } else {
            format!("{api}{path}?{query}")
        };
        let r = request(method, &url, &headers, body);
        (
            r.status,
            serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
        )
    };
    let photo = fixture_bytes("photo-rocket-640x427.jpg");
    let (s, v) = send(&alice, "POST", "/api/images", "category=/shared", &photo);
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // The root's configured grant: any key's user may view; the viewer may not upload.
    let (s, _) = send(&vi, "GET", &format!("/api/images/{id}/meta"), "", b"");
    assert_eq!(s, 200);
    let out = admin(&site, &["explain", "category:/shared", "vi"]);
    assert_eq!(
        stdout(&out),
        "user:vi holds view on category:/shared: view to registered on category:/\n"
    );
    let hopper = fixture_bytes("photo-hopper-128x128.png");
    let (s, v) = send(&vi, "POST", "/api/images", "category=/shared", &hopper);
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    // Granted edit (the cached refusal is forgotten at once), then revoked.
    let grant = json!({"grantee": "user:vi", "privilege": "edit"}).to_string();
    let (s, v) = send(
        &alice,
        "POST",
        "/api/permissions/category:/shared",
        "",
        grant.as_bytes(),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = send(&vi, "POST", "/api/images", "category=/shared", &hopper);
    assert_eq!(s, 201, "{v}");
    let (s, _) = send(
        &alice,
        "DELETE",
        "/api/permissions/category:/shared",
        "",
        grant.as_bytes(),
    );
    assert_eq!(s, 200);
    let cat = fixture_bytes("jpeg-progressive-cat-320x240.jpg");
    let (s, _) = send(&vi, "POST", "/api/images", "category=/shared", &cat);
    assert_eq!(s, 403);

    // Variants are public unless a rule hides them: served here, then not once /shared is
    // private (no public grant below an inherit = false).
    let variant = format!("{base}/cache/{id}/300/200.jpg");
    assert_eq!(request("GET", &variant, &[], b"").status, 200);
    std::fs::remove_file(site.cache().join(format!("{id}/300/200.jpg"))).unwrap();
    let off = admin(&site, &["inherit", "category:/shared", "off"]);
    assert!(off.status.success(), "{off:?}");
    // The tool is another process: this server's memory cache learns of it within the TTL;
    // a grant through the server itself makes it forget at once.
    let touch = json!({"grantee": "user:alice", "privilege": "admin"}).to_string();
    let (s, _) = send(
        &alice,
        "POST",
        "/api/permissions/category:/shared",
        "",
        touch.as_bytes(),
    );
    assert_eq!(s, 200);
    let r = request("GET", &format!("{base}/cache/{id}/200/133.jpg"), &[], b"");
    assert_eq!(r.status, 404, "{}", r.body_text());
    assert!(!site.cache().join(format!("{id}/200/133.jpg")).exists());
}

/// Logs `user` in over CGI: the cookie (`name=value`) and the CSRF token.
fn session(site: &Site, user: &str, password: &str) -> (String, String) {
    let body = json!({"user": user, "password": password}).to_string();
    let mut req = unsigned("POST", "/api/session", "", body.as_bytes());
    req.headers
        .push(("content-type".into(), "application/json".into()));
    let r = cgi(site, &req);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    (
        cookie.to_string(),
        v["csrf_token"].as_str().unwrap().to_string(),
    )
}

/// A request with a session's cookie (and, when given, its CSRF token): status and JSON.
fn with_session(
    site: &Site,
    (cookie, csrf): (&str, Option<&str>),
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> (u16, Value) {
    let mut req = unsigned(method, path, query, body);
    req.headers.push(("cookie".into(), cookie.into()));
    if let Some(token) = csrf {
        req.headers.push(("x-csrf-token".into(), token.into()));
    }
    if !body.is_empty() {
        req.headers
            .push(("content-type".into(), "image/jpeg".into()));
    }
    let r = cgi(site, &req);
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

#[test]
fn a_session_uses_the_rest_interface_with_its_users_permissions() {
    let site = Site::new();
    for (name, role) in [("ann", "editor"), ("vic", "viewer")] {
        let args = ["user", "add", name, "--password-stdin", "--role", role];
        let out = crate::support::imgserv_admin(&site, &args, b"pw-of-a-user\n");
        assert!(out.status.success(), "{out:?}");
    }
    let (ann, ann_csrf) = session(&site, "ann", "pw-of-a-user");
    let (vic, vic_csrf) = session(&site, "vic", "pw-of-a-user");
    let photo = fixture_bytes("photo-rocket-640x427.jpg");

    // A change with a session needs its CSRF token; with it, the editor uploads.
    let (s, v) = with_session(
        &site,
        (&ann, None),
        "POST",
        "/api/images",
        "category=/ann",
        &photo,
    );
    assert_eq!((s, code(&v)), (403, "csrf-failed"), "{v}");
    let (s, v) = with_session(
        &site,
        (&ann, Some(&ann_csrf)),
        "POST",
        "/api/images",
        "category=/ann",
        &photo,
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["owner"], "ann", "{v}");
    let image = format!("/api/images/{}", v["id"].as_str().unwrap());
    let meta = format!("{image}/meta");
    // Another user's token is no token.
    let (s, v) = with_session(&site, (&ann, Some(&vic_csrf)), "DELETE", &image, "", b"");
    assert_eq!((s, code(&v)), (403, "csrf-failed"), "{v}");

    // The viewer reads (the role at the root) but may not upload.
    let (s, v) = with_session(&site, (&vic, None), "GET", &meta, "", b"");
    assert_eq!(s, 200, "{v}");
    let (s, v) = with_session(
        &site,
        (&vic, Some(&vic_csrf)),
        "POST",
        "/api/images",
        "category=/ann",
        &fixture_bytes("photo-hopper-128x128.png"),
    );
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    // Ann's category made private: the viewer's session sees it at once; without a cookie
    // nobody reads anything (no public_reads).
    let out = admin(&site, &["inherit", "category:/ann", "off"]);
    assert!(out.status.success(), "{out:?}");
    let (s, v) = with_session(&site, (&vic, None), "GET", &meta, "", b"");
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    let (s, v) = call(&site, None, "GET", &meta, "", b"");
    assert_eq!((s, code(&v)), (401, "unsigned"), "{v}");
    assert_eq!(
        with_session(&site, (&ann, None), "GET", &meta, "", b"").0,
        200
    );
}
