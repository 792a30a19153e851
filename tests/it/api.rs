//! The REST interface in process, against both stores (a directory, and the real `s3s-fs`
//! server): every verb, signatures (valid, tampered, expired, wrong key, revoked key, missing
//! rights), signed image URLs, the delete cascade and the sweep after a crash.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use imgserv::domain::original::OriginalId;
use imgserv::io::catalog::{ApiKey, Catalog, Rights};
use imgserv::io::config::Config;
use imgserv::io::http::{Handler, Request, Response};
use imgserv::usecases::sign;
use imgserv::web::api::App;
use serde_json::Value;

use crate::redirector::{dims, files_below};
use crate::support::{S3Server, Site, fixture_bytes, free_port};

/// A site with a catalog holding one user with a key of every right (and the app over it).
pub struct Api {
    pub site: Site,
    pub app: App,
    pub key: ApiKey,
}

impl Api {
    pub fn new(extra: &str) -> Api {
        let site = Site::with_config(extra);
        let config = load(&site);
        let mut catalog = Catalog::open(&config.state.catalog_path()).unwrap();
        catalog.add_user("alice").unwrap();
        let all = Rights::READ | Rights::WRITE | Rights::DELETE | Rights::ADMIN;
        let key = catalog.add_key("alice", all).unwrap();
        Api {
            app: App::new(config),
            site,
            key,
        }
    }

    pub fn config(&self) -> &Config {
        self.app.config()
    }

    pub fn catalog(&self) -> Catalog {
        Catalog::open(&self.config().state.catalog_path()).unwrap()
    }

    /// A request signed now with `key`.
    pub fn signed(
        &self,
        key: &ApiKey,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Request {
        sign_with(key, unsigned(method, path, query, body))
    }

    /// Signed with the all-rights key.
    pub fn call(&self, method: &str, path: &str, query: &str, body: &[u8]) -> Response {
        self.app
            .handle(self.signed(&self.key, method, path, query, body))
            .collect()
            .unwrap()
    }

    pub fn upload(&self, fixture: &str, query: &str) -> (u16, Value) {
        let resp = self.call("POST", "/api/images", query, &fixture_bytes(fixture));
        (resp.status, json(&resp))
    }
}

pub fn load(site: &Site) -> Config {
    imgserv::io::config::load(&site.config_path(), &[]).unwrap()
}

/// The date to sign the request described by `what` with: now, or a second after the date
/// the same request was last signed with, whichever is later. The same write signed twice in
/// one second has the same signature, and the second is refused as a replay: a client that
/// repeats an identical write quickly (as these tests do) dates the copies apart like this,
/// within the clock skew.
pub fn fresh_date(what: &str) -> u64 {
    static LAST: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let date = match last.get(what) {
        Some(&before) => now().max(before + 1),
        None => now(),
    };
    last.insert(what.to_string(), date);
    date
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `req` as it is (its `Content-Type` included) signed with `key`, in the current version, at
/// [`fresh_date`].
pub fn sign_with(key: &ApiKey, mut req: Request) -> Request {
    let what = format!(
        "{}\n{}\n{}\n{}\n{:?}\n{}",
        key.id,
        req.method,
        req.path,
        req.query,
        req.header("content-type"),
        req.body.sha256_hex()
    );
    let headers = sign::sign_request(
        sign::Version::V2,
        &key.id,
        key.secret.expose().as_bytes(),
        &req,
        fresh_date(&what),
    );
    req.headers.extend(headers);
    req
}

/// `req` with a header added.
pub fn with_header(mut req: Request, name: &str, value: &str) -> Request {
    req.headers.push((name.into(), value.into()));
    req
}

pub fn unsigned(method: &str, path: &str, query: &str, body: &[u8]) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        body: body.to_vec().into(),
        ..Request::default()
    }
}

pub fn json(resp: &Response) -> Value {
    serde_json::from_slice(&resp.body).unwrap_or_else(|e| {
        panic!(
            "{} is not JSON ({e}): {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        )
    })
}

/// A GET as the web server sends it to the 404 handler (nginx `try_files … @imgserv` with
/// `IMGSERV_404 $uri`): `url_path` is the missing file's.
pub fn get_404(app: &App, url_path: &str, query: &str) -> Response {
    let mut req = Request::get("", query);
    req.missing = Some(url_path.to_string());
    app.handle(req)
}

/// Asserts a JSON error with this status and code.
#[track_caller]
pub fn assert_error(resp: &Response, status: u16, code: &str) {
    let body = String::from_utf8_lossy(&resp.body);
    assert_eq!(resp.status, status, "{body}");
    let v = json(resp);
    assert_eq!(v["status"], status, "{body}");
    assert_eq!(v["code"], code, "{body}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
}

/// Every regular file below `dir` that is not a SQLite database.
fn image_files(dir: &Path) -> Vec<String> {
    files_below(dir)
}

/// The whole REST interface on whatever store `api` is configured with; `stored(id, ext)`
/// says whether the store holds an original.
fn battery(api: &Api, stored: &dyn Fn(&OriginalId, &str) -> bool) {
    // Upload: raw body with a category and metadata, 201 then 200 for the same bytes.
    let (status, image) = api.upload(
        "photo-rocket-640x427.jpg",
        "category=%2Fspace%2Flaunches&meta=%7B%22title%22%3A%22Falcon%20rocket%22%7D",
    );
    assert_eq!(status, 201, "{image}");
    let id: OriginalId = image["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        id,
        OriginalId::of(&fixture_bytes("photo-rocket-640x427.jpg")).unwrap()
    );
    assert_eq!(
        (
            &image["width"],
            &image["height"],
            &image["mime"],
            &image["category"]
        ),
        (
            &Value::from(640),
            &Value::from(427),
            &Value::from("image/jpeg"),
            &Value::from("/space/launches")
        )
    );
    assert_eq!(image["owner"], "alice");
    assert!(stored(&id, "jpg"));
    let (status, again) = api.upload("photo-rocket-640x427.jpg", "");
    assert_eq!(
        (status, &again["id"], &again["category"]),
        (200, &image["id"], &image["category"])
    );

    // Upload: a multipart form with meta and category fields.
    let png = fixture_bytes("photo-chelsea-cat-451x300.png");
    let mut body = b"--B0undary\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n{\"title\": \"a cat called Chelsea\"}\r\n--B0undary\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\n/pets\r\n--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    body.extend_from_slice(&png);
    body.extend_from_slice(b"\r\n--B0undary--\r\n");
    let form = unsigned("POST", "/api/images", "", &body);
    let form = with_header(
        form,
        "content-type",
        "multipart/form-data; boundary=B0undary",
    );
    let resp = api.app.handle(sign_with(&api.key, form));
    let cat = json(&resp);
    assert_eq!(resp.status, 201, "{cat}");
    assert_eq!(
        (&cat["width"], &cat["category"]),
        (&Value::from(451), &Value::from("/pets"))
    );
    assert_eq!(cat["meta"]["title"], "a cat called Chelsea");
    let cat_id = cat["id"].as_str().unwrap().to_string();

    // GET the original: bytes, ETag, Last-Modified; conditional requests get 304. Reads are
    // signed: originals and metadata need a key by default.
    let path = format!("/api/images/{id}");
    let resp = api.call("GET", &path, "", b"");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("112525"));
    let resp = resp.collect().unwrap();
    assert_eq!(resp.body, fixture_bytes("photo-rocket-640x427.jpg"));
    assert_eq!(resp.header("content-type"), Some("image/jpeg"));
    let etag = resp.header("etag").unwrap().to_string();
    assert_eq!(etag, format!("\"{id}\""));
    let modified = resp.header("last-modified").unwrap().to_string();
    for (name, value) in [
        ("if-none-match", etag.as_str()),
        ("if-modified-since", modified.as_str()),
    ] {
        let req = with_header(unsigned("GET", &path, "", b""), name, value);
        let resp = api.app.handle(sign_with(&api.key, req));
        assert_eq!((resp.status, resp.body.len()), (304, 0), "{name}");
    }
    let req = with_header(
        unsigned("GET", &path, "", b""),
        "if-none-match",
        "\"other\"",
    );
    assert_eq!(api.app.handle(sign_with(&api.key, req)).status, 200);

    // HEAD: the facts as headers, no body.
    let resp = api.call("HEAD", &path, "", b"");
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty());
    for (h, want) in [
        ("x-imgserv-width", "640"),
        ("x-imgserv-height", "427"),
        ("x-imgserv-mime", "image/jpeg"),
        ("x-imgserv-category", "/space/launches"),
        ("content-length", "112525"),
        ("x-imgserv-bytes", "112525"),
    ] {
        assert_eq!(resp.header(h), Some(want), "{h}");
    }

    // Metadata: read, replace, merge, move.
    let meta = format!("{path}/meta");
    let resp = api.call("GET", &meta, "", b"");
    assert_eq!(json(&resp)["meta"]["title"], "Falcon rocket");
    let resp = api.call(
        "POST",
        &meta,
        "",
        br#"{"title": "DSCOVR launch", "year": 2015}"#,
    );
    assert_eq!(resp.status, 200);
    let resp = api.call(
        "PATCH",
        &meta,
        "category=%2Fspace%2Fnasa",
        br#"{"year": null, "site": "Cape Canaveral"}"#,
    );
    let v = json(&resp);
    assert_eq!(resp.status, 200, "{v}");
    assert_eq!(
        v["meta"],
        serde_json::json!({"title": "DSCOVR launch", "site": "Cape Canaveral"})
    );
    assert_eq!(v["category"], "/space/nasa");
    assert_error(&api.call("PATCH", &meta, "", b"[1, 2]"), 400, "bad-body");
    assert_error(
        &api.call("PATCH", &meta, "category=..%2Fx", b""),
        400,
        "bad-category",
    );

    // Search and categories.
    let resp = api.call("GET", "/api/images", "q=canaveral", b"");
    let v = json(&resp);
    assert_eq!(
        (v["total"].as_u64(), v["items"][0]["id"].as_str()),
        (Some(1), Some(id.as_str()))
    );
    let v = json(&api.call("GET", "/api/images", "category=%2Fpets&per_page=5", b""));
    assert_eq!(
        (v["total"].as_u64(), v["items"][0]["id"].as_str()),
        (Some(1), Some(cat_id.as_str()))
    );
    let v = json(&api.call("GET", "/api/images", "", b""));
    assert_eq!(v["total"], 2);
    assert_error(
        &api.call("GET", "/api/images", "per_page=1000", b""),
        400,
        "bad-request",
    );
    let v = json(&api.call("GET", "/api/categories", "", b""));
    let count = |path: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["path"] == path)
            .map(|c| (c["images"].clone(), c["total"].clone()))
    };
    assert_eq!(count("/"), Some((0.into(), 2.into())));
    assert_eq!(count("/space"), Some((0.into(), 1.into())));
    assert_eq!(count("/space/nasa"), Some((1.into(), 1.into())));
    assert_eq!(
        count("/space/launches"),
        Some((0.into(), 0.into())),
        "an emptied category stays until deleted (see categories.rs)"
    );

    // Variants through the 404 handler, then deleting one of them.
    let cache = api.site.cache();
    for (w, h) in [(300, 200), (100, 67)] {
        let resp = get_404(&api.app, &format!("/cache/{id}/{w}/{h}.jpg"), "");
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        assert!(cache.join(format!("{id}/{w}/{h}.jpg")).is_file());
    }
    // A name of the exact box, as 404 handlers before canonical names wrote it, goes too.
    let legacy = cache.join(format!("{id}/100/100.jpg"));
    fs::copy(cache.join(format!("{id}/100/67.jpg")), &legacy).unwrap();
    let resp = api.call("DELETE", &format!("{path}/variants/100x100"), "", b"");
    assert_eq!(resp.status, 204);
    assert!(!cache.join(format!("{id}/100/67.jpg")).exists());
    assert!(!legacy.exists());
    assert!(cache.join(format!("{id}/300/200.jpg")).is_file());
    assert_error(
        &api.call("DELETE", &format!("{path}/variants/100x100"), "", b""),
        404,
        "not-found",
    );

    // DELETE: the row, the original and every variant file.
    let resp = api.call("DELETE", &path, "", b"");
    assert_eq!(resp.status, 204, "{}", String::from_utf8_lossy(&resp.body));
    assert!(!stored(&id, "jpg"));
    assert!(
        !image_files(&cache).iter().any(|f| !f.ends_with(".sqlite")),
        "variants left: {:?}",
        image_files(&cache)
    );
    assert!(api.catalog().pending().unwrap().is_empty());
    assert_error(&api.call("GET", &path, "", b""), 404, "image-not-found");
    assert_error(&api.call("DELETE", &path, "", b""), 404, "image-not-found");
    let resp = get_404(&api.app, &format!("/cache/{id}/300/300.jpg"), "");
    assert!(
        resp.body_text_lossy().starts_with("image-not-found: "),
        "text for image URLs"
    );
    assert!(
        stored(&cat_id.parse().unwrap(), "png"),
        "the other image stays"
    );

    // Routes and methods.
    assert_error(&api.call("GET", "/api/nothing", "", b""), 404, "not-found");
    assert_error(
        &api.call("GET", "/api/images/xyz", "", b""),
        404,
        "not-found",
    );
    let resp = api.call("PUT", "/api/images", "", b"");
    assert_error(&resp, 405, "method-not-allowed");
    assert_eq!(resp.header("allow"), Some("GET, HEAD, POST"));
}

#[test]
fn every_verb_on_the_filesystem_store() {
    let store = tempfile::tempdir().unwrap();
    let api = Api::new(&format!(
        "[store]\ntype = \"fs\"\ndir = \"{}\"\n",
        store.path().display()
    ));
    let dir = store.path().to_path_buf();
    battery(&api, &|id, ext| {
        dir.join(format!("{}.{ext}", id.fanout())).is_file()
    });
}

#[test]
fn every_verb_on_the_s3_store() {
    let s3 = S3Server::start();
    let api = Api::new(&format!(
        "[store]\ntype = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\nprefix = \"img\"\n",
        s3.endpoint(),
        S3Server::BUCKET,
        S3Server::ACCESS_KEY,
        S3Server::SECRET_KEY
    ));
    battery(&api, &|id, ext| {
        s3.object_file(&format!("img/{}.{ext}", id.fanout()))
            .is_file()
    });
}

#[test]
fn an_unreachable_s3_store_is_503_with_retry_after_and_cached_variants_still_serve() {
    let s3 = S3Server::start();
    let store = |endpoint: &str| {
        format!(
            "[store]\ntype = \"s3\"\nendpoint = \"{endpoint}\"\nbucket = \"{}\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\n",
            S3Server::BUCKET,
            S3Server::ACCESS_KEY,
            S3Server::SECRET_KEY
        )
    };
    let api = Api::new(&store(&s3.endpoint()));
    let (status, image) = api.upload("photo-rocket-640x427.jpg", "");
    assert_eq!(status, 201, "{image}");
    let id = image["id"].as_str().unwrap();
    assert_eq!(
        get_404(&api.app, &format!("/cache/{id}/300/200.jpg"), "").status,
        200
    );

    // The same catalog and cache, the store's port closed.
    api.site
        .write_config(&store(&format!("http://127.0.0.1:{}", free_port())));
    let down = App::new(load(&api.site));
    let resp = down.handle(api.signed(
        &api.key,
        "POST",
        "/api/images",
        "",
        &fixture_bytes("tiny-1x1.png"),
    ));
    assert_error(&resp, 503, "store-unavailable");
    assert_eq!(resp.header("retry-after"), Some("30"));
    let resp = down.handle(api.signed(&api.key, "GET", &format!("/api/images/{id}"), "", b""));
    assert_error(&resp, 503, "store-unavailable");
    // A variant rendered before is served from the cache without the store.
    let resp = get_404(&down, &format!("/cache/{id}/300/200.jpg"), "");
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let resp = get_404(&down, &format!("/cache/{id}/320/320.jpg"), "");
    assert_eq!(resp.status, 301, "{}", String::from_utf8_lossy(&resp.body));
    let resp = get_404(&down, &format!("/cache/{id}/100/100.jpg"), "");
    assert_eq!(resp.status, 503, "a new size needs the original");
    assert_eq!(resp.header("retry-after"), Some("30"));
}

#[test]
fn signatures_valid_tampered_expired_wrong_key_revoked_and_missing_rights() {
    let api = Api::new("");
    let body = fixture_bytes("tiny-1x1.png");
    let post = |req: Request| api.app.handle(req);

    assert_error(
        &post(unsigned("POST", "/api/images", "", &body)),
        401,
        "unsigned",
    );

    // Tampered: the body, the path or the query changed after signing.
    let mut req = api.signed(&api.key, "POST", "/api/images", "", &body);
    req.body = [&body[..], &[0]].concat().into();
    assert_error(&post(req), 400, "body-mismatch");
    let mut req = api.signed(&api.key, "POST", "/api/images", "", &body);
    req.query = "category=%2Fother".into();
    assert_error(&post(req), 401, "bad-signature");

    // A POST of `body` signed as key `id` with `secret` at `date`.
    let post_signed = |id: &str, secret: &[u8], date| {
        let mut req = unsigned("POST", "/api/images", "", &body);
        let headers = sign::sign_request(sign::Version::V2, id, secret, &req, date);
        req.headers.extend(headers);
        post(req)
    };

    // Expired, or from the future, beyond [security] max_clock_skew (5 minutes).
    for date in [now() - 600, now() + 600] {
        let r = post_signed(&api.key.id, api.key.secret.expose().as_bytes(), date);
        assert_error(&r, 401, "expired-signature");
    }

    // Wrong key: another key's secret, or a key id nobody issued.
    let mut catalog = api.catalog();
    let other = catalog.add_key("alice", Rights::WRITE).unwrap();
    let r = post_signed(&api.key.id, other.secret.expose().as_bytes(), now());
    assert_error(&r, 401, "bad-signature");
    let r = post_signed(
        "ak_0000000000000000",
        other.secret.expose().as_bytes(),
        now(),
    );
    assert_error(&r, 401, "unknown-key");

    // Rights: a write key cannot delete, a read key cannot write.
    let reader = catalog.add_key("alice", Rights::READ).unwrap();
    assert_error(
        &post(api.signed(&reader, "POST", "/api/images", "", &body)),
        403,
        "insufficient-rights",
    );
    let resp = post(api.signed(&other, "POST", "/api/images", "", &body));
    assert_eq!(resp.status, 201);
    let id = json(&resp)["id"].as_str().unwrap().to_string();
    let path = format!("/api/images/{id}");
    assert_error(
        &post(api.signed(&other, "DELETE", &path, "", b"")),
        403,
        "insufficient-rights",
    );

    // Valid, then revoked.
    assert_eq!(
        post(api.signed(&other, "PATCH", &format!("{path}/meta"), "", b"{\"a\": 1}")).status,
        200
    );
    catalog.revoke(&other.id).unwrap();
    assert_error(
        &post(api.signed(&other, "PATCH", &format!("{path}/meta"), "", b"{}")),
        401,
        "revoked-key",
    );
    // A deleted user's keys stop working too.
    catalog.add_user("bob").unwrap();
    let bob = catalog.add_key("bob", Rights::WRITE).unwrap();
    catalog.del_user("bob").unwrap();
    assert_error(
        &post(api.signed(&bob, "POST", "/api/images", "", &body)),
        401,
        "unknown-key",
    );
}

/// The API's reads, as (method, path, query).
fn reads(id: &str) -> Vec<(&'static str, String, &'static str)> {
    let original = format!("/api/images/{id}");
    let meta = format!("{original}/meta");
    vec![
        ("GET", original.clone(), ""),
        ("HEAD", original, ""),
        ("GET", meta.clone(), ""),
        ("HEAD", meta, ""),
        ("GET", "/api/images".into(), ""),
        ("GET", "/api/images".into(), "q=rocket"),
        ("GET", "/api/categories".into(), ""),
    ]
}

#[test]
fn originals_and_metadata_need_a_key_by_default_and_variants_stay_public() {
    let api = Api::new("");
    assert!(!api.config().api.public_reads);
    let (status, image) = api.upload("photo-rocket-640x427.jpg", "category=%2Fspace");
    assert_eq!(status, 201, "{image}");
    let id = image["id"].as_str().unwrap();
    let mut catalog = api.catalog();
    let writer = catalog.add_key("alice", Rights::WRITE).unwrap();
    for (method, path, query) in reads(id) {
        let resp = api.app.handle(unsigned(method, &path, query, b""));
        assert_eq!(resp.status, 401, "{method} {path}?{query}");
        if method == "GET" {
            assert_error(&resp, 401, "unsigned");
        }
        let resp = api
            .app
            .handle(api.signed(&writer, method, &path, query, b""));
        assert_eq!(
            resp.status, 403,
            "{method} {path}?{query}: a key without read"
        );
        let resp = api.call(method, &path, query, b"");
        assert_eq!(resp.status, 200, "{method} {path}?{query}");
    }
    assert_eq!(
        api.call("GET", &format!("/api/images/{id}"), "", b"").body,
        fixture_bytes("photo-rocket-640x427.jpg")
    );
    // Variants stay public: the 404 handler renders one for anybody, and serves it again.
    for _ in 0..2 {
        let resp = get_404(&api.app, &format!("/cache/{id}/300/200.jpg"), "");
        assert_eq!(resp.status, 200, "{}", resp.body_text_lossy());
        assert_eq!(dims(&resp.body).1.width, 300);
    }
}

#[test]
fn public_reads_true_restores_unsigned_reads_and_writes_still_need_a_key() {
    let api = Api::new("[api]\npublic_reads = true\n");
    let (status, image) = api.upload("photo-rocket-640x427.jpg", "category=%2Fspace");
    assert_eq!(status, 201, "{image}");
    let id = image["id"].as_str().unwrap();
    for (method, path, query) in reads(id) {
        let resp = api.app.handle(unsigned(method, &path, query, b""));
        assert_eq!(resp.status, 200, "{method} {path}?{query}");
    }
    let resp = api
        .app
        .handle(unsigned("GET", &format!("/api/images/{id}"), "", b""))
        .collect()
        .unwrap();
    assert_eq!(resp.body, fixture_bytes("photo-rocket-640x427.jpg"));
    let body = fixture_bytes("tiny-1x1.png");
    assert_error(
        &api.app.handle(unsigned("POST", "/api/images", "", &body)),
        401,
        "unsigned",
    );
}

#[test]
fn uploads_are_checked_by_content_and_by_the_type_list() {
    let api =
        Api::new("[api]\ntypes = [\"jpeg\", \"png\"]\n[limits]\nmax_source_bytes = \"100 KiB\"\n");
    // A GIF is an image, but not an accepted one here; a JPEG named .png is fine.
    assert_error(
        &api.call("POST", "/api/images", "", &fixture_bytes("tiny-1x1.gif")),
        415,
        "type-not-accepted",
    );
    assert_error(
        &api.call(
            "POST",
            "/api/images",
            "",
            &fixture_bytes("bad-html-named.jpg"),
        ),
        415,
        "not-an-image",
    );
    assert_error(
        &api.call(
            "POST",
            "/api/images",
            "",
            &fixture_bytes("photo-rocket-640x427.jpg"),
        ),
        413,
        "upload-too-large",
    );
    let req = unsigned("POST", "/api/images", "", b"--x\r\n");
    let req = with_header(req, "content-type", "multipart/form-data; boundary=zz");
    assert_error(&api.app.handle(sign_with(&api.key, req)), 400, "bad-body");
    assert_error(
        &api.call(
            "POST",
            "/api/images",
            "meta=%5B%5D",
            &fixture_bytes("tiny-1x1.png"),
        ),
        400,
        "bad-body",
    );
    assert!(
        api.catalog()
            .search(&Default::default())
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn signed_urls_for_the_redirector_and_the_404_handler_presets_exempt() {
    let api =
        Api::new("[security]\nrequire_signed_urls = true\n[presets]\nthumb = [\"100x100\"]\n");
    api.site.add_original("photo-rocket-640x427.jpg");
    let secret = api.key.secret.expose().as_bytes();
    let redirect = |query: &str| api.app.handle(Request::get("", query));
    let q = "src=photo-rocket-640x427.jpg&width=300&height=300";
    let resp = redirect(q);
    assert_eq!(
        (resp.status, resp.body_text_lossy()),
        (401, "unsigned: the request is not signed\n".into())
    );
    let signed = sign::sign_url(&api.key.id, secret, "", q);
    assert_eq!(redirect(&signed).status, 302);
    assert_eq!(
        redirect(&signed.replace("width=300", "width=301")).status,
        401,
        "tampered"
    );
    let expired = sign::sign_url(&api.key.id, secret, "", &format!("{q}&exp={}", now() - 1));
    assert!(
        redirect(&expired)
            .body_text_lossy()
            .starts_with("expired-signature")
    );
    assert_eq!(
        redirect("src=photo-rocket-640x427.jpg&preset=thumb").status,
        302
    );

    let (_, image) = api.upload("photo-rocket-640x427.jpg", "");
    let id = image["id"].as_str().unwrap();
    let rel = format!("/{id}/300/200.jpg");
    let url = format!("/cache{rel}");
    assert_eq!(get_404(&api.app, &url, "").status, 401);
    let query = sign::sign_url(&api.key.id, secret, &rel, "");
    let resp = get_404(&api.app, &url, &query);
    assert_eq!(resp.status, 200, "{}", resp.body_text_lossy());
    let wrong = sign::sign_url(&api.key.id, secret, &rel.replace("300/200", "300/201"), "");
    assert_eq!(
        get_404(&api.app, &url.replace("300/200", "200/133"), &wrong).status,
        401
    );
    assert_eq!(
        get_404(
            &api.app,
            &format!("/cache/{}/300/300.jpg", "0".repeat(40)),
            ""
        )
        .status,
        401,
        "no signature, no word on whether the image exists"
    );
    let thumb = format!("/cache/{id}/100/100.jpg");
    let resp = get_404(&api.app, &thumb, "");
    assert_eq!(resp.status, 301, "a preset box needs no signature");
    let canonical = format!("/cache/{id}/100/67.jpg");
    assert_eq!(resp.header("location"), Some(canonical.as_str()));
    assert_eq!(
        get_404(&api.app, &canonical, "").status,
        200,
        "nor does the size a preset box is served at (where its redirect leads)"
    );
    api.catalog().revoke(&api.key.id).unwrap();
    let resp = get_404(
        &api.app,
        &url.replace("300/200", "250/167"),
        &sign::sign_url(&api.key.id, secret, &rel.replace("300/200", "250/167"), ""),
    );
    assert!(
        resp.body_text_lossy().starts_with("revoked-key"),
        "{}",
        resp.body_text_lossy()
    );
}

trait Lossy {
    fn body_text_lossy(&self) -> String;
}

impl Lossy for Response {
    fn body_text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[test]
fn the_404_handler_writes_canonical_names_and_redirects_other_boxes() {
    let api = Api::new("");
    let (_, image) = api.upload("photo-rocket-640x427.jpg", "");
    let id = image["id"].as_str().unwrap();
    let cache = api.site.cache();
    let canonical = format!("/cache/{id}/300/200.jpg");
    // A box that is not the size served: a permanent, cacheable redirect to the size that is,
    // whose file is written first; nothing under the name asked for.
    for other in [
        "300/300.jpg",
        "320/320.jpg",
        "300/200",
        "0300/200.jpg",
        "300/200.JPG",
    ] {
        let resp = get_404(&api.app, &format!("/cache/{id}/{other}"), "");
        assert_eq!(resp.status, 301, "{other}: {}", resp.body_text_lossy());
        assert_eq!(resp.header("location"), Some(canonical.as_str()), "{other}");
        assert_eq!(
            resp.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{other}"
        );
        assert!(!cache.join(format!("{id}/{other}")).exists(), "{other}");
    }
    let file = cache.join(format!("{id}/300/200.jpg"));
    assert!(file.is_file(), "the redirect's target is on disk");
    let resp = get_404(&api.app, &canonical, "");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("image/jpeg"));
    let (_, size) = dims(&resp.body);
    assert_eq!((size.width, size.height), (300, 200));
    assert_eq!(fs::read(&file).unwrap(), resp.body);
    // The name is a second name of the one variant in the index (a hard link).
    use std::os::unix::fs::MetadataExt;
    let r_files: Vec<String> = files_below(&cache)
        .into_iter()
        .filter(|f| f.starts_with("r/"))
        .collect();
    assert_eq!(r_files.len(), 1, "{r_files:?}");
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&file), ino(&cache.join(&r_files[0])));
    // A served size asked for directly is served, though as a box it would snap smaller.
    let resp = get_404(&api.app, &format!("/cache/{id}/250/167.jpg"), "");
    assert_eq!(resp.status, 200);

    let text_error = |path: &str, status: u16| {
        let resp = get_404(&api.app, path, "");
        assert_eq!(resp.status, status, "{path}: {}", resp.body_text_lossy());
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    };
    text_error(&format!("/cache/{id}/0/300.jpg"), 400);
    text_error(&format!("/cache/{id}/300/abc.jpg"), 400);
    text_error(&format!("/cache/{id}/99999/300.jpg"), 400);
    text_error(&format!("/cache/{}/300/300.jpg", "0".repeat(40)), 404);
    text_error(&format!("/cache/{id}/300/300.png"), 404);
    text_error(&format!("/cache/{id}/300/300.bmp"), 404);
    text_error("/cache", 404);
    text_error(&format!("/elsewhere/{id}/300/200.jpg"), 404);
    text_error("/cache/r/ab/whatever.jpg", 404);
    assert!(files_below(&cache).iter().all(|f| !f.ends_with(".tmp")));
}

#[test]
fn variants_on_disk_false_renders_every_time_and_writes_nothing() {
    let api = Api::new("[cache]\nvariants_on_disk = false\n");
    let (_, image) = api.upload("photo-chelsea-cat-451x300.png", "");
    let url = format!("/cache/{}/200/133.png", image["id"].as_str().unwrap());
    for _ in 0..2 {
        let resp = get_404(&api.app, &url, "");
        assert_eq!(resp.status, 200);
        assert_eq!(dims(&resp.body).1.width, 200);
    }
    assert_eq!(files_below(&api.site.cache()), Vec::<String>::new());
}

#[test]
fn a_crash_between_catalog_and_file_deletion_is_repaired_by_the_sweep() {
    let store = tempfile::tempdir().unwrap();
    let api = Api::new(&format!("[store]\ndir = \"{}\"\n", store.path().display()));
    let (_, image) = api.upload("photo-rocket-640x427.jpg", "");
    let id: OriginalId = image["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        get_404(&api.app, &format!("/cache/{id}/300/200.jpg"), "").status,
        200
    );
    // The request committed the catalog change, then died before removing anything.
    let deleted = api.catalog().delete(&id).unwrap();
    assert_eq!(deleted.pending.len(), 2);
    let original = store.path().join(format!("{}.jpg", id.fanout()));
    assert!(original.is_file());
    assert!(!files_below(&api.site.cache()).is_empty());
    assert_error(
        &api.call("GET", &format!("/api/images/{id}"), "", b""),
        404,
        "image-not-found",
    );

    let config = api.config();
    let store_ = imgserv::io::store::open(&config.store).unwrap();
    let cache = imgserv::io::cache::Cache::open(
        &config.cache.dir,
        &config.state.index_path(),
        config.cache.max_bytes,
        config.cache.access_interval,
    )
    .unwrap();
    let report = imgserv::usecases::purge::sweep(
        config,
        store_.as_ref(),
        &cache,
        &mut api.catalog(),
        config.evict.upload_grace,
    )
    .unwrap();
    assert_eq!(report.removed, 2, "{report:?}");
    assert!(!original.exists());
    assert_eq!(files_below(&api.site.cache()), Vec::<String>::new());
    assert!(api.catalog().pending().unwrap().is_empty());
}
