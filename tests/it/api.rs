//! The REST interface in process, against both stores (a directory, and the real `s3s-fs`
//! server): every verb, signatures (valid, tampered, expired, wrong key, revoked key, missing
//! rights), signed image URLs, the delete cascade and the sweep after a crash.

use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use imgserv::api::App;
use imgserv::catalog::{ApiKey, Catalog, Rights};
use imgserv::config::Config;
use imgserv::http::{Handler, REQUEST_URI, Request, Response};
use imgserv::original::OriginalId;
use imgserv::sign;
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
        let mut req = unsigned(method, path, query, body);
        req.headers.extend(sign::sign_request(
            &key.id,
            key.secret.expose().as_bytes(),
            method,
            path,
            query,
            body,
            now(),
        ));
        req
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
    imgserv::config::load(&site.config_path(), &[]).unwrap()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
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

/// A GET as the web server sends it to the 404 handler (nginx `try_files … @imgserv`).
pub fn get_404(app: &App, url_path: &str, query: &str) -> Response {
    let mut req = Request::get("", query);
    req.headers
        .push((REQUEST_URI.into(), format!("{url_path}?{query}")));
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
    let mut req = api.signed(&api.key, "POST", "/api/images", "", &body);
    req.headers.push((
        "content-type".into(),
        "multipart/form-data; boundary=B0undary".into(),
    ));
    let resp = api.app.handle(req);
    let cat = json(&resp);
    assert_eq!(resp.status, 201, "{cat}");
    assert_eq!(
        (&cat["width"], &cat["category"]),
        (&Value::from(451), &Value::from("/pets"))
    );
    assert_eq!(cat["meta"]["title"], "a cat called Chelsea");
    let cat_id = cat["id"].as_str().unwrap().to_string();

    // GET the original: bytes, ETag, Last-Modified; conditional requests get 304.
    let path = format!("/api/images/{id}");
    let resp = api.app.handle(unsigned("GET", &path, "", b""));
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
        let mut req = unsigned("GET", &path, "", b"");
        req.headers.push((name.into(), value.into()));
        let resp = api.app.handle(req);
        assert_eq!((resp.status, resp.body.len()), (304, 0), "{name}");
    }
    let mut req = unsigned("GET", &path, "", b"");
    req.headers
        .push(("if-none-match".into(), "\"other\"".into()));
    assert_eq!(api.app.handle(req).status, 200);

    // HEAD: the facts as headers, no body.
    let resp = api.app.handle(unsigned("HEAD", &path, "", b""));
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
    let resp = api.app.handle(unsigned("GET", &meta, "", b""));
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
    let resp = api
        .app
        .handle(unsigned("GET", "/api/images", "q=canaveral", b""));
    let v = json(&resp);
    assert_eq!(
        (v["total"].as_u64(), v["items"][0]["id"].as_str()),
        (Some(1), Some(id.as_str()))
    );
    let v = json(&api.app.handle(unsigned(
        "GET",
        "/api/images",
        "category=%2Fpets&per_page=5",
        b"",
    )));
    assert_eq!(
        (v["total"].as_u64(), v["items"][0]["id"].as_str()),
        (Some(1), Some(cat_id.as_str()))
    );
    let v = json(&api.app.handle(unsigned("GET", "/api/images", "", b"")));
    assert_eq!(v["total"], 2);
    assert_error(
        &api.app
            .handle(unsigned("GET", "/api/images", "per_page=1000", b"")),
        400,
        "bad-request",
    );
    let v = json(&api.app.handle(unsigned("GET", "/api/categories", "", b"")));
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
        None,
        "a category without images is gone"
    );

    // Variants through the 404 handler, then deleting one of them.
    let cache = api.site.cache();
    for (w, h) in [(300, 300), (100, 100)] {
        let resp = get_404(&api.app, &format!("/cache/{id}/{w}/{h}.jpg"), "");
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        assert!(cache.join(format!("{id}/{w}/{h}.jpg")).is_file());
    }
    let resp = api.call("DELETE", &format!("{path}/variants/100x100"), "", b"");
    assert_eq!(resp.status, 204);
    assert!(!cache.join(format!("{id}/100/100.jpg")).exists());
    assert!(cache.join(format!("{id}/300/300.jpg")).is_file());
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
    assert_error(
        &api.app.handle(unsigned("GET", &path, "", b"")),
        404,
        "image-not-found",
    );
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
    assert_error(
        &api.app.handle(unsigned("GET", "/api/nothing", "", b"")),
        404,
        "not-found",
    );
    assert_error(
        &api.app.handle(unsigned("GET", "/api/images/xyz", "", b"")),
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
        get_404(&api.app, &format!("/cache/{id}/300/300.jpg"), "").status,
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
    let resp = down.handle(unsigned("GET", &format!("/api/images/{id}"), "", b""));
    assert_error(&resp, 503, "store-unavailable");
    // A variant rendered before is served from the cache without the store.
    let resp = get_404(&down, &format!("/cache/{id}/320/320.jpg"), "");
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
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
        req.headers.extend(sign::sign_request(
            id,
            secret,
            "POST",
            "/api/images",
            "",
            &body,
            date,
        ));
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

#[test]
fn reads_can_require_a_key() {
    let api = Api::new("[api]\npublic_reads = false\n");
    let (status, image) = api.upload("tiny-1x1.gif", "");
    assert_eq!(status, 201);
    let path = format!("/api/images/{}", image["id"].as_str().unwrap());
    for p in [path.as_str(), "/api/images", "/api/categories"] {
        assert_error(
            &api.app.handle(unsigned("GET", p, "", b"")),
            401,
            "unsigned",
        );
        assert_eq!(api.call("GET", p, "", b"").status, 200, "{p}");
    }
    assert_eq!(
        api.call("GET", &path, "", b"").body,
        fixture_bytes("tiny-1x1.gif")
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
    let mut req = api.signed(&api.key, "POST", "/api/images", "", b"--x\r\n");
    req.headers.push((
        "content-type".into(),
        "multipart/form-data; boundary=zz".into(),
    ));
    assert_error(&api.app.handle(req), 400, "bad-body");
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
    let rel = format!("/{}/300/300.jpg", image["id"].as_str().unwrap());
    let url = format!("/cache{rel}");
    assert_eq!(get_404(&api.app, &url, "").status, 401);
    let query = sign::sign_url(&api.key.id, secret, &rel, "");
    let resp = get_404(&api.app, &url, &query);
    assert_eq!(resp.status, 200, "{}", resp.body_text_lossy());
    let wrong = sign::sign_url(&api.key.id, secret, &rel.replace("300/300", "300/301"), "");
    assert_eq!(
        get_404(&api.app, &url.replace("300/300", "200/200"), &wrong).status,
        401
    );
    let thumb = format!("/cache/{}/100/100.jpg", image["id"].as_str().unwrap());
    assert_eq!(
        get_404(&api.app, &thumb, "").status,
        200,
        "a preset box needs no signature"
    );
    api.catalog().revoke(&api.key.id).unwrap();
    let resp = get_404(
        &api.app,
        &url.replace("300/300", "250/250"),
        &sign::sign_url(&api.key.id, secret, &rel.replace("300/300", "250/250"), ""),
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
fn the_404_handler_renders_links_and_refuses() {
    let api = Api::new("");
    let (_, image) = api.upload("photo-rocket-640x427.jpg", "");
    let id = image["id"].as_str().unwrap();
    let cache = api.site.cache();
    let resp = get_404(&api.app, &format!("/cache/{id}/300/300.jpg"), "");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("image/jpeg"));
    let (_, size) = dims(&resp.body);
    assert_eq!((size.width, size.height), (300, 200));
    let file = cache.join(format!("{id}/300/300.jpg"));
    assert_eq!(fs::read(&file).unwrap(), resp.body);
    // A box that snaps to the same size shares the canonical file (a hard link).
    let resp = get_404(&api.app, &format!("/cache/{id}/320/320.jpg"), "");
    assert_eq!(resp.status, 200);
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&file), ino(&cache.join(format!("{id}/320/320.jpg"))));
    // No extension: the same bytes.
    assert_eq!(
        get_404(&api.app, &format!("/cache/{id}/300/300"), "").status,
        200
    );

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
    text_error("/cache/r/ab/whatever.jpg", 404);
    assert!(files_below(&cache).iter().all(|f| !f.ends_with(".tmp")));
}

#[test]
fn variants_on_disk_false_renders_every_time_and_writes_nothing() {
    let api = Api::new("[cache]\nvariants_on_disk = false\n");
    let (_, image) = api.upload("photo-chelsea-cat-451x300.png", "");
    let url = format!("/cache/{}/200/200.png", image["id"].as_str().unwrap());
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
        get_404(&api.app, &format!("/cache/{id}/300/300.jpg"), "").status,
        200
    );
    // The request committed the catalog change, then died before removing anything.
    let deleted = api.catalog().delete(&id).unwrap();
    assert_eq!(deleted.pending.len(), 2);
    let original = store.path().join(format!("{}.jpg", id.fanout()));
    assert!(original.is_file());
    assert!(!files_below(&api.site.cache()).is_empty());
    assert_error(
        &api.app
            .handle(unsigned("GET", &format!("/api/images/{id}"), "", b"")),
        404,
        "image-not-found",
    );

    let config = api.config();
    let store_ = imgserv::store::open(&config.store).unwrap();
    let cache = imgserv::cache::Cache::open(
        &config.cache.dir,
        &config.state.index_path(),
        config.cache.max_bytes,
        config.cache.access_interval,
    )
    .unwrap();
    let report = imgserv::purge::sweep(
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
