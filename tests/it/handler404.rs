//! The 404 handler behind real web servers, as the shipped snippets mount it: an original goes
//! in through the REST interface (signed, through the same server), the first request for
//! `/cache/<id>/<w>/<h>.jpg` runs imgserv, which writes the file; the second is answered by
//! the web server alone — proved by breaking imgserv's configuration (CGI) or counting its log
//! lines (FastCGI) in between. A box that is not the size served is redirected, not written.
//! Apache with mod_proxy_fcgi and mod_fcgid also carries the REST interface below the script.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use imgserv::io::catalog::{ApiKey, Catalog, Rights};

use crate::api::{sign_with, unsigned};
use crate::redirector::dims;
use crate::support::{Apache, HttpResponse, Nginx, Site, fixture_bytes, get, request};

/// Uploads a fixture through `base` + `/cgi-bin/imgserv.cgi/api/images` with a fresh key.
fn upload(site: &Site, base: &str, fixture: &str) -> String {
    upload_to(
        site,
        &format!("{base}/cgi-bin/imgserv.cgi/api/images"),
        fixture,
    )
}

/// Uploads `fixture` with a signed POST to the API at `url`; returns its id.
fn upload_to(site: &Site, url: &str, fixture: &str) -> String {
    let key = api_key(site);
    let body = fixture_bytes(fixture);
    let r = signed(&key, "POST", url, "/api/images", &body);
    assert_eq!(r.status, 201, "{}", r.body_text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// A fresh key with every right, in a catalog the web server's user may open.
fn api_key(site: &Site) -> ApiKey {
    let mut catalog = Catalog::open(&site.state().join("catalog.sqlite")).unwrap();
    let _ = catalog.add_user("uploader");
    let all = Rights::READ | Rights::WRITE | Rights::DELETE | Rights::ADMIN;
    let key = catalog.add_key("uploader", all).unwrap();
    drop(catalog);
    // Apache runs CGIs as another user; the catalog is created private (it holds secrets).
    for entry in fs::read_dir(site.state()).unwrap().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("catalog.sqlite")
        {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
    key
}

/// A request to `url` signed for the API path `path` (below the script), `body` as JPEG:
/// signed in version 2, which covers the Content-Type (the web server passes it unchanged).
fn signed(key: &ApiKey, method: &str, url: &str, path: &str, body: &[u8]) -> HttpResponse {
    let mut req = unsigned(method, path, "", body);
    if !body.is_empty() {
        req.headers
            .push(("content-type".into(), "image/jpeg".into()));
    }
    let req = sign_with(key, req);
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    request(method, url, &headers, body)
}

/// The first request for the canonical name renders (200, a 300x200 JPEG, the file on disk).
fn first(site: &Site, base: &str, id: &str) -> HttpResponse {
    let url = format!("{base}/cache/{id}/300/200.jpg");
    let r = get(&url);
    assert_eq!(r.status, 200, "{url}: {}", r.body_text());
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(dims(&r.body).1.width, 300);
    let file = site.cache().join(format!("{id}/300/200.jpg"));
    assert_eq!(
        fs::read(&file).unwrap(),
        r.body,
        "written where the server looks"
    );
    r
}

/// The second request for the same URL: the same bytes, from the web server.
fn second(base: &str, id: &str, first: &HttpResponse) {
    let r = get(&format!("{base}/cache/{id}/300/200.jpg"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.body, first.body);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    // Served by the web server from the shipped snippets: never sniffed into another type.
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

/// A box that snaps to another size: a cacheable redirect to the canonical URL, no new file.
fn redirects(site: &Site, base: &str, id: &str) {
    for other in ["300/300.jpg", "320/290.jpg", "300/200"] {
        let r = get(&format!("{base}/cache/{id}/{other}"));
        assert_eq!(r.status, 301, "{other}: {}", r.body_text());
        let canonical = format!("/cache/{id}/300/200.jpg");
        assert_eq!(r.header("location"), Some(canonical.as_str()), "{other}");
        assert!(
            r.header("cache-control")
                .is_some_and(|c| c.contains("max-age=31536000")),
            "{other}: {:?}",
            r.header("cache-control")
        );
        assert!(
            !site.cache().join(format!("{id}/{other}")).exists(),
            "{other}"
        );
    }
}

fn errors(base: &str, id: &str) {
    assert_eq!(get(&format!("{base}/cache/{id}/0/300.jpg")).status, 400);
    assert_eq!(
        get(&format!("{base}/cache/{}/300/300.jpg", "0".repeat(40))).status,
        404
    );
}

/// The REST interface below the script at `api` (`BASE/cgi-bin/imgserv.cgi/api`): upload,
/// metadata, search, deleting a variant and the image. Returns nothing; panics on a failure.
fn rest(site: &Site, base: &str, api: &str) {
    let key = api_key(site);
    let body = fixture_bytes("photo-chelsea-cat-451x300.png");
    let r = signed(&key, "POST", &format!("{api}/images"), "/api/images", &body);
    assert_eq!(r.status, 201, "{}", r.body_text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(451), Some(300))
    );
    let path = format!("/api/images/{id}");
    let r = signed(
        &key,
        "GET",
        &format!("{base}/cgi-bin/imgserv.cgi{path}"),
        &path,
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.body, body, "the original");
    let meta = format!("{path}/meta");
    let r = signed(
        &key,
        "GET",
        &format!("{base}/cgi-bin/imgserv.cgi{meta}"),
        &meta,
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let r = signed(&key, "GET", &format!("{api}/images"), "/api/images", b"");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(r.body_text().contains(&id), "{}", r.body_text());
    let r = get(&format!("{base}/cache/{id}/200/133.png"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    let variant = format!("{path}/variants/200x200");
    let r = signed(
        &key,
        "DELETE",
        &format!("{base}/cgi-bin/imgserv.cgi{variant}"),
        &variant,
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.body_text());
    assert!(!site.cache().join(format!("{id}/200/133.png")).exists());
    let r = signed(
        &key,
        "DELETE",
        &format!("{base}/cgi-bin/imgserv.cgi{path}"),
        &path,
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.body_text());
    let r = signed(
        &key,
        "GET",
        &format!("{base}/cgi-bin/imgserv.cgi{path}"),
        &path,
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.body_text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["code"], "image-not-found");
    // And the redirector beside it.
    site.add_original("photo-rocket-640x427.jpg");
    let r = get(&format!(
        "{base}/cgi-bin/imgserv.cgi?src=photo-rocket-640x427.jpg&width=300&height=300"
    ));
    assert_eq!(r.status, 302, "{}", r.body_text());
}

#[test]
fn nginx_cgi_renders_once_then_serves_the_file_without_imgserv() {
    let site = Site::new();
    let nginx = Nginx::cgi(&site);
    let id = upload(&site, &nginx.base(), "photo-rocket-640x427.jpg");
    errors(&nginx.base(), &id);
    let r = first(&site, &nginx.base(), &id);
    redirects(&site, &nginx.base(), &id);
    // From now on every run of imgserv.cgi fails with 500: only nginx can answer.
    fs::write(site.config_path(), "this is not TOML [").unwrap();
    assert_eq!(
        get(&nginx.url(&format!("/cache/{id}/200/200.jpg"))).status,
        500
    );
    second(&nginx.base(), &id, &r);
}

#[test]
fn nginx_fastcgi_renders_once_then_serves_the_file_without_imgserv() {
    let site = Site::new();
    let nginx = Nginx::fastcgi(&site);
    let id = upload(&site, &nginx.base(), "photo-rocket-640x427.jpg");
    let calls = || {
        nginx
            .backend()
            .unwrap()
            .log()
            .matches("404 handler")
            .count()
    };
    let r = first(&site, &nginx.base(), &id);
    assert_eq!(calls(), 1);
    second(&nginx.base(), &id, &r);
    second(&nginx.base(), &id, &r);
    assert_eq!(calls(), 1, "the second request reached imgserv");
    errors(&nginx.base(), &id);
    redirects(&site, &nginx.base(), &id);
}

#[test]
fn apache_error_document_renders_once_then_serves_the_file_without_imgserv() {
    let site = Site::new();
    let apache = Apache::cgi(&site);
    let id = upload(&site, &apache.base(), "photo-rocket-640x427.jpg");
    errors(&apache.base(), &id);
    let r = first(&site, &apache.base(), &id);
    redirects(&site, &apache.base(), &id);
    fs::write(site.config_path(), "this is not TOML [").unwrap();
    second(&apache.base(), &id, &r);
}

#[test]
fn apache_mod_proxy_fcgi_routes_the_rest_interface_and_the_404_handler() {
    let site = Site::new();
    let apache = Apache::fastcgi(&site);
    let base = apache.base();
    rest(&site, &base, &format!("{base}/cgi-bin/imgserv.cgi/api"));
    let id = upload(&site, &base, "photo-rocket-640x427.jpg");
    errors(&base, &id);
    let calls = || {
        let log = apache.backend().unwrap().log();
        log.matches("404 handler").count()
    };
    let r = first(&site, &base, &id);
    let after_first = calls();
    second(&base, &id, &r);
    assert_eq!(calls(), after_first, "the second request reached imgserv");
    redirects(&site, &base, &id);
}

#[test]
fn apache_mod_fcgid_routes_the_rest_interface_and_the_404_handler() {
    let site = Site::new();
    let apache = Apache::fcgid(&site);
    let base = apache.base();
    rest(&site, &base, &format!("{base}/cgi-bin/imgserv.cgi/api"));
    let id = upload(&site, &base, "photo-rocket-640x427.jpg");
    errors(&base, &id);
    // mod_fcgid puts imgserv's log lines in Apache's error log.
    let calls = || apache.error_log().matches("404 handler").count();
    let r = first(&site, &base, &id);
    let after_first = calls();
    assert!(after_first >= 1, "{}", apache.error_log());
    second(&base, &id, &r);
    assert_eq!(calls(), after_first, "the second request reached imgserv");
    redirects(&site, &base, &id);
}

#[test]
fn the_standalone_server_hands_missing_cache_files_to_the_handler() {
    let site = Site::new();
    let (_server, base) = crate::support::standalone(&site);
    let id = upload_to(
        &site,
        &format!("{base}/imgserv.cgi/api/images"),
        "photo-rocket-640x427.jpg",
    );
    errors(&base, &id);
    let r = first(&site, &base, &id);
    second(&base, &id, &r);
    redirects(&site, &base, &id);
    assert_eq!(get(&format!("{base}/cache/r/no/such.jpg")).status, 404);
}

/// Many different boxes for one original: each either is a served size (written once) or gets
/// a redirect to one; the names on disk stay one per served size, all of them in the index,
/// within the space limit, and eviction removes every one.
#[test]
fn many_boxes_leave_one_name_per_served_size_all_counted_by_eviction() {
    use imgserv::domain::geometry::{Raster, Size, fit};
    use imgserv::io::cache::Cache;
    use std::collections::{BTreeMap, BTreeSet};
    use std::os::unix::fs::MetadataExt;

    let budget: u64 = 200 << 10;
    let api = crate::api::Api::new("[cache]\nmax_bytes = \"200 KiB\"\n");
    let (_, image) = api.upload("photo-rocket-640x427.jpg", "");
    let id = image["id"].as_str().unwrap().to_string();
    let cache_dir = api.site.cache();
    let mut served = BTreeSet::new();
    for w in (40..=700).step_by(7) {
        for h in [150, 300, 1000] {
            let size = fit(Size::new(640, 427), Size::new(w, h), Raster::default());
            served.insert(size);
            let canonical = format!("/cache/{id}/{}/{}.jpg", size.width, size.height);
            let resp = crate::api::get_404(&api.app, &format!("/cache/{id}/{w}/{h}.jpg"), "");
            if Size::new(w, h) == size {
                assert_eq!(resp.status, 200, "{w}x{h}");
            } else {
                assert_eq!(resp.status, 301, "{w}x{h}");
                assert_eq!(resp.header("location"), Some(canonical.as_str()));
                assert!(!cache_dir.join(format!("{id}/{w}/{h}.jpg")).exists());
            }
            // The redirect's target is served too (by the web server, or by us after an
            // eviction).
            assert_eq!(crate::api::get_404(&api.app, &canonical, "").status, 200);
        }
    }
    let names: Vec<String> = crate::redirector::files_below(&cache_dir.join(&id));
    assert!(
        names.len() <= served.len(),
        "{} names for {} served sizes: {names:?}",
        names.len(),
        served.len()
    );
    for name in &names {
        let (w, h) = name.trim_end_matches(".jpg").split_once('/').unwrap();
        let size = Size::new(w.parse().unwrap(), h.parse().unwrap());
        assert!(served.contains(&size), "{name} is no served size");
    }

    // Every name is in the index, and the bytes on disk (each file once) stay in the budget.
    let config = api.config();
    let mut cache = Cache::open(
        &config.cache.dir,
        &config.state.index_path(),
        config.cache.max_bytes,
        config.cache.access_interval,
    )
    .unwrap();
    let mut inodes = BTreeMap::new();
    for rel in crate::redirector::files_below(&cache_dir) {
        assert!(
            cache.variant_row(&rel).unwrap().is_some(),
            "{rel} not indexed"
        );
        let meta = fs::metadata(cache_dir.join(&rel)).unwrap();
        inodes.insert(meta.ino(), meta.len());
    }
    let on_disk: u64 = inodes.values().sum();
    assert!(
        on_disk <= budget,
        "{on_disk} bytes on disk, budget {budget}"
    );

    // Eviction down to nothing leaves no name behind.
    cache.evict_to(0, None).unwrap();
    assert_eq!(
        crate::redirector::files_below(&cache_dir),
        Vec::<String>::new()
    );
}
