//! The 404 handler behind real web servers, as the shipped snippets mount it: an original goes
//! in through the REST interface (signed, through the same server), the first request for
//! `/cache/<id>/<w>/<h>.jpg` runs imgserv, which writes the file; the second is answered by
//! the web server alone — proved by breaking imgserv's configuration (CGI) or counting its log
//! lines (FastCGI) in between.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use imgserv::catalog::{Catalog, Rights};
use imgserv::sign;

use crate::api::{now, unsigned};
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
    let mut catalog = Catalog::open(&site.state().join("catalog.sqlite")).unwrap();
    let _ = catalog.add_user("uploader");
    let key = catalog.add_key("uploader", Rights::WRITE).unwrap();
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
    let body = fixture_bytes(fixture);
    // Signed in version 2, which covers the Content-Type: the web server passes it unchanged.
    let mut req = unsigned("POST", "/api/images", "", &body);
    req.headers
        .push(("content-type".into(), "image/jpeg".into()));
    let secret = key.secret.expose().as_bytes();
    let signed = sign::sign_request(sign::Version::V2, &key.id, secret, &req, now());
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .chain([("content-type", "image/jpeg")])
        .collect();
    let r = request("POST", url, &headers, &body);
    assert_eq!(r.status, 201, "{}", r.body_text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// The first request renders (200, a 300x200 JPEG, the file on disk).
fn first(site: &Site, base: &str, id: &str) -> HttpResponse {
    let url = format!("{base}/cache/{id}/300/300.jpg");
    let r = get(&url);
    assert_eq!(r.status, 200, "{url}: {}", r.body_text());
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(dims(&r.body).1.width, 300);
    let file = site.cache().join(format!("{id}/300/300.jpg"));
    assert_eq!(
        fs::read(&file).unwrap(),
        r.body,
        "written where the server looks"
    );
    r
}

/// The second request for the same URL: the same bytes, from the web server.
fn second(base: &str, id: &str, first: &HttpResponse) {
    let r = get(&format!("{base}/cache/{id}/300/300.jpg"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.body, first.body);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
}

fn errors(base: &str, id: &str) {
    assert_eq!(get(&format!("{base}/cache/{id}/0/300.jpg")).status, 400);
    assert_eq!(
        get(&format!("{base}/cache/{}/300/300.jpg", "0".repeat(40))).status,
        404
    );
}

#[test]
fn nginx_cgi_renders_once_then_serves_the_file_without_imgserv() {
    let site = Site::new();
    let nginx = Nginx::cgi(&site);
    let id = upload(&site, &nginx.base(), "photo-rocket-640x427.jpg");
    errors(&nginx.base(), &id);
    let r = first(&site, &nginx.base(), &id);
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
}

#[test]
fn apache_error_document_renders_once_then_serves_the_file_without_imgserv() {
    let site = Site::new();
    let apache = Apache::cgi(&site);
    let id = upload(&site, &apache.base(), "photo-rocket-640x427.jpg");
    errors(&apache.base(), &id);
    let r = first(&site, &apache.base(), &id);
    fs::write(site.config_path(), "this is not TOML [").unwrap();
    second(&apache.base(), &id, &r);
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
    assert_eq!(get(&format!("{base}/cache/r/no/such.jpg")).status, 404);
}
