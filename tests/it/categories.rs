//! Changing the category tree over REST, through the real binaries: signed requests through
//! CGI runs of `imgserv.cgi` (create, move with images, grants and search text, delete when
//! empty; `401`, `403` for a caller without the right or the privilege, `409`s, `404`, `400`),
//! and a session through a standalone server with an in-memory object cache (form and JSON
//! bodies with the CSRF token, and image records it had cached showing the new category at once).

use imgserv::io::catalog::{ApiKey, Catalog, Rights, Role};
use serde_json::{Value, json};

use crate::api::{load, sign_with, unsigned};
use crate::support::{Cgi, Site, fixture_bytes, request};

/// A user with `role` and a key with `rights`.
fn user(site: &Site, name: &str, role: Role, rights: Rights) -> ApiKey {
    let mut c = Catalog::open(&load(site).state.catalog_path()).unwrap();
    if c.credentials(name).unwrap().is_none() {
        c.add_user_with(name, role, None).unwrap();
    }
    c.add_key(name, rights).unwrap()
}

fn all() -> Rights {
    Rights::READ | Rights::WRITE | Rights::DELETE | Rights::ADMIN
}

/// A request through CGI, signed with `key` when given; `content_type` for a body: status and
/// JSON.
fn call(
    site: &Site,
    key: Option<&ApiKey>,
    (method, path, query): (&str, &str, &str),
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    let mut req = unsigned(method, path, query, body);
    if !body.is_empty() {
        req.headers
            .push(("content-type".into(), content_type.into()));
    }
    let req = match key {
        Some(k) => sign_with(k, req),
        None => req,
    };
    let r = Cgi::request(site, &req).run();
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

/// A JSON body through CGI.
fn send(site: &Site, key: Option<&ApiKey>, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = body.to_string();
    call(
        site,
        key,
        (method, path, ""),
        "application/json",
        body.as_bytes(),
    )
}

fn get(site: &Site, key: &ApiKey, path: &str, query: &str) -> Value {
    let (s, v) = call(site, Some(key), ("GET", path, query), "", b"");
    assert_eq!(s, 200, "{path}?{query}: {v}");
    v
}

fn upload(site: &Site, key: &ApiKey, fixture: &str, category: &str) -> String {
    let (s, v) = call(
        site,
        Some(key),
        ("POST", "/api/images", &format!("category={category}")),
        "image/jpeg",
        &fixture_bytes(fixture),
    );
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// The tree as `path images/total` lines.
fn tree(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}/{}",
                c["path"].as_str().unwrap(),
                c["images"],
                c["total"]
            )
        })
        .collect()
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

#[test]
fn create_move_and_delete_categories_with_signed_requests_through_cgi() {
    let site = Site::new();
    let alice = user(&site, "alice", Role::Editor, all());
    let bob = user(&site, "bob", Role::Editor, all());
    let vi = user(&site, "vi", Role::Viewer, all());
    let root = user(&site, "root", Role::Admin, all());
    let alice_writes = user(&site, "alice", Role::Editor, Rights::READ | Rights::WRITE);
    let tree_of = |key| tree(&get(&site, key, "/api/categories", ""));

    // Created empty by an editor (edit on the root); it shows in the tree, empty.
    let (s, v) = send(
        &site,
        Some(&alice),
        "POST",
        "/api/categories",
        json!({"category": "trips/"}),
    );
    assert_eq!(
        (s, v.clone()),
        (201, json!({"path": "/trips", "images": 0, "total": 0}))
    );
    assert_eq!(tree_of(&bob), ["/ 0/0", "/trips 0/0"]);
    // A form works too (the key signs its Content-Type).
    let (s, v) = call(
        &site,
        Some(&alice),
        ("POST", "/api/categories", ""),
        "application/x-www-form-urlencoded",
        b"category=%2Fscratch",
    );
    assert_eq!((s, v["path"].as_str()), (201, Some("/scratch")), "{v}");
    // Refused: a viewer (403), nobody (401), one that exists (409), bad paths and bodies (400).
    let create = |key, body: Value| send(&site, key, "POST", "/api/categories", body);
    for (key, body, want) in [
        (
            Some(&vi),
            json!({"category": "/x"}),
            (403, "permission-denied"),
        ),
        (None, json!({"category": "/x"}), (401, "unsigned")),
        (
            Some(&alice),
            json!({"category": "/trips"}),
            (409, "category-exists"),
        ),
        (
            Some(&alice),
            json!({"category": "/"}),
            (409, "category-exists"),
        ),
        (
            Some(&alice),
            json!({"category": "/a/../b"}),
            (400, "bad-category"),
        ),
        (Some(&alice), json!({"path": "/x"}), (400, "bad-body")),
        (Some(&alice), json!({}), (400, "bad-body")),
    ] {
        let (s, v) = create(key, body.clone());
        assert_eq!((s, code(&v)), want, "{body}: {v}");
    }

    // Images in it and below it; the uploads' categories appear with their counts.
    let fjord = upload(&site, &alice, "photo-rocket-640x427.jpg", "/trips/norway");
    let bridge = upload(&site, &alice, "jpeg-progressive-cat-320x240.jpg", "/trips");
    assert_eq!(
        tree_of(&alice),
        ["/ 0/2", "/scratch 0/0", "/trips 1/2", "/trips/norway 1/1"]
    );

    // Moving needs admin on it: not bob (an editor), not alice's key without `admin`.
    let move_to = |key, from: &str, to: &str| {
        send(
            &site,
            Some(key),
            "POST",
            "/api/categories/move",
            json!({"from": from, "to": to}),
        )
    };
    let (s, v) = move_to(&bob, "/trips", "/travel/2024");
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    let (s, v) = move_to(&alice_writes, "/trips", "/travel/2024");
    assert_eq!((s, code(&v)), (403, "insufficient-rights"), "{v}");
    // Alice, its creator, moves it with everything below it.
    let (s, v) = move_to(&alice, "/trips", "/travel/2024");
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["from"], &v["to"], &v["categories"], &v["images"]),
        (
            &json!("/trips"),
            &json!("/travel/2024"),
            &json!(2),
            &json!(2)
        ),
        "{v}"
    );
    assert_eq!(
        tree_of(&alice),
        [
            "/ 0/2",
            "/scratch 0/0",
            "/travel 0/2",
            "/travel/2024 1/2",
            "/travel/2024/norway 1/1"
        ]
    );
    let meta = get(&site, &bob, &format!("/api/images/{fjord}/meta"), "");
    assert_eq!(meta["category"], "/travel/2024/norway");
    // The search index follows: the new path's words find both, the old ones nothing.
    let found = get(&site, &bob, "/api/images", "q=2024");
    let mut ids: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![fjord.as_str(), bridge.as_str()];
    want.sort();
    assert_eq!(ids, want, "{found}");
    assert_eq!(
        get(&site, &bob, "/api/images", "q=trips")["items"],
        json!([])
    );
    // Her grant moved with it: she administers the new path, as `explain` says.
    let perms = get(&site, &alice, "/api/permissions/category:/travel/2024", "");
    assert_eq!(
        perms["reason"], "admin to user:alice on category:/travel/2024",
        "{perms}"
    );

    // The moves the tree cannot make.
    for (from, to, want) in [
        (
            "/travel/2024",
            "/travel/2024/x",
            (400, "bad-category-change"),
        ),
        ("/", "/x", (400, "bad-category-change")),
        ("/travel/2024", "/scratch", (409, "category-exists")),
        ("/travel/2024", "/travel", (409, "category-exists")),
        // Whether a category she may not administer exists is not hers to learn…
        ("/nope", "/x", (403, "permission-denied")),
    ] {
        let (s, v) = move_to(&alice, from, to);
        assert_eq!((s, code(&v)), want, "{from} -> {to}: {v}");
    }
    // … an administrator's.
    let (s, v) = move_to(&root, "/nope", "/x");
    assert_eq!((s, code(&v)), (404, "category-not-found"), "{v}");

    // Deleting: only when no image is in it or below it, by its administrator.
    let delete = |key, category: &str| {
        call(
            &site,
            Some(key),
            ("DELETE", "/api/categories", &format!("category={category}")),
            "",
            b"",
        )
    };
    let (s, v) = delete(&alice, "/travel/2024");
    assert_eq!((s, code(&v)), (409, "category-not-empty"), "{v}");
    assert!(v["error"].as_str().unwrap().contains("2 image(s)"), "{v}");
    // Not its administrator: bob anywhere, alice on the implied /travel (her grants are below).
    let (s, v) = delete(&bob, "/scratch");
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    let (s, v) = delete(&alice, "/travel");
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    for id in [&fjord, &bridge] {
        let (s, v) = call(
            &site,
            Some(&alice),
            ("DELETE", &format!("/api/images/{id}"), ""),
            "",
            b"",
        );
        assert_eq!(s, 204, "{v}");
    }
    // Emptied, the categories stay until deleted.
    assert_eq!(
        tree_of(&alice),
        [
            "/ 0/0",
            "/scratch 0/0",
            "/travel 0/0",
            "/travel/2024 0/0",
            "/travel/2024/norway 0/0"
        ]
    );
    let (s, v) = delete(&alice, "/travel/2024");
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"path": "/travel/2024", "categories": 2, "grants": 2})
    );
    // The implied /travel went with them.
    assert_eq!(tree_of(&alice), ["/ 0/0", "/scratch 0/0"]);
    let (s, v) = delete(&root, "/travel/2024");
    assert_eq!((s, code(&v)), (404, "category-not-found"), "{v}");
    let (s, v) = delete(&root, "/");
    assert_eq!((s, code(&v)), (400, "bad-category-change"), "{v}");
    // And nothing of it is left in the permissions.
    let perms = get(&site, &alice, "/api/permissions/category:/travel/2024", "");
    assert_eq!(perms["reason"], "the editor role", "{perms}");
}

#[test]
fn a_session_changes_the_tree_on_a_standalone_server_that_caches_image_records() {
    let site = Site::with_config("[object_cache]\ntype = \"memory\"\n");
    for (name, role) in [("ann", "editor"), ("vic", "viewer")] {
        let args = ["user", "add", name, "--password-stdin", "--role", role];
        let out = crate::support::imgserv_admin(&site, &args, b"pw-of-a-user\n");
        assert!(out.status.success(), "{out:?}");
    }
    let (_server, base) = crate::support::standalone(&site);
    let api = format!("{base}/imgserv.cgi");
    let login = |user: &str| -> (String, String) {
        let body = json!({"user": user, "password": "pw-of-a-user"}).to_string();
        let r = request(
            "POST",
            &format!("{api}/api/session"),
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.body_text());
        let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap();
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        (
            cookie.to_string(),
            v["csrf_token"].as_str().unwrap().to_string(),
        )
    };
    let (ann, ann_csrf) = login("ann");
    let (vic, vic_csrf) = login("vic");
    let send =
        |cookie: &str, csrf: Option<&str>, method: &str, target: &str, kind: &str, body: &[u8]| {
            let mut headers = vec![("cookie", cookie)];
            if let Some(token) = csrf {
                headers.push(("x-csrf-token", token));
            }
            if !body.is_empty() {
                headers.push(("content-type", kind));
            }
            let r = request(method, &format!("{api}{target}"), &headers, body);
            (
                r.status,
                serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
            )
        };
    let form = "application/x-www-form-urlencoded";

    // A page's form: the CSRF token as a field; without it, 403.
    let (s, v) = send(
        &ann,
        None,
        "POST",
        "/api/categories",
        form,
        b"category=/ann",
    );
    assert_eq!((s, code(&v)), (403, "csrf-failed"), "{v}");
    let body = format!("category=%2Fann&csrf_token={ann_csrf}");
    let (s, v) = send(&ann, None, "POST", "/api/categories", form, body.as_bytes());
    assert_eq!((s, v["path"].as_str()), (201, Some("/ann")), "{v}");
    // A viewer may not.
    let (s, v) = send(
        &vic,
        Some(&vic_csrf),
        "POST",
        "/api/categories",
        "application/json",
        br#"{"category":"/vic"}"#,
    );
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");

    // An image below it, its record read (and cached by the server).
    let photo = fixture_bytes("photo-rocket-640x427.jpg");
    let (s, v) = send(
        &ann,
        Some(&ann_csrf),
        "POST",
        "/api/images?category=/ann/photos",
        "image/jpeg",
        &photo,
    );
    assert_eq!(s, 201, "{v}");
    let meta = format!("/api/images/{}/meta", v["id"].as_str().unwrap());
    assert_eq!(
        send(&vic, None, "GET", &meta, "", b"").1["category"],
        "/ann/photos"
    );

    // Moved with JSON and the header token: the server's cached record follows at once.
    let (s, v) = send(
        &ann,
        Some(&ann_csrf),
        "POST",
        "/api/categories/move",
        "application/json",
        br#"{"from": "/ann", "to": "/archive/ann"}"#,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        send(&vic, None, "GET", &meta, "", b"").1["category"],
        "/archive/ann/photos"
    );
    let (_, v) = send(&vic, None, "GET", "/api/categories", "", b"");
    assert_eq!(
        tree(&v),
        [
            "/ 0/1",
            "/archive 0/1",
            "/archive/ann 0/1",
            "/archive/ann/photos 1/1"
        ]
    );
    // Deleting what holds an image is refused; the viewer may not delete at all.
    let target = "/api/categories?category=/archive/ann/photos";
    let (s, v) = send(&vic, Some(&vic_csrf), "DELETE", target, "", b"");
    assert_eq!((s, code(&v)), (403, "permission-denied"), "{v}");
    let (s, v) = send(&ann, Some(&ann_csrf), "DELETE", target, "", b"");
    assert_eq!((s, code(&v)), (409, "category-not-empty"), "{v}");
}
