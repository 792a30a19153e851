//! Remote sources through the CGI binary: an allowed host is fetched, kept and resized; hosts
//! off the allow-list, private addresses and failing hosts get 403 and 502.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use imgserv::geometry::Size;
use imgserv::render::Format;

use crate::redirector::{dims, files_below, variant_file};
use crate::support::{Cgi, Site, fixture_bytes};

/// A loopback HTTP server answering `/photo.jpg` with a fixture and anything else with 404;
/// counts requests.
fn origin() -> (String, Arc<AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    thread::spawn(move || {
        let photo = fixture_bytes("photo-rocket-640x427.jpg");
        for req in server.incoming_requests() {
            seen.fetch_add(1, Ordering::SeqCst);
            let resp = if req.url() == "/photo.jpg" {
                tiny_http::Response::from_data(photo.clone()).with_status_code(200)
            } else {
                tiny_http::Response::from_data(b"no".to_vec()).with_status_code(404)
            };
            let _ = req.respond(resp);
        }
    });
    (base, count)
}

fn resize(site: &Site, src: &str) -> crate::support::CgiResponse {
    let src = percent_encoding::utf8_percent_encode(src, percent_encoding::NON_ALPHANUMERIC);
    Cgi::new(site)
        .query(&format!("src={src}&width=300&height=300"))
        .run()
}

#[test]
fn allowed_remote_sources_are_fetched_once_and_resized() {
    let (base, count) = origin();
    let site = Site::with_config(
        "[remote]\nallow_hosts = [\"127.0.0.1\"]\nallow_private = true\nttl = \"1h\"\n",
    );
    let url = format!("{base}/photo.jpg");
    let r = resize(&site, &url);
    assert_eq!(r.status, 302, "{r:?}");
    let bytes = std::fs::read(variant_file(&site, r.header("location").unwrap())).unwrap();
    assert_eq!(dims(&bytes), (Format::Jpeg, Size::new(300, 200)));
    // Within the TTL the local copy answers: no second request to the origin.
    let again = resize(&site, &url);
    assert_eq!(again.header("location"), r.header("location"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // Resolved once, a kept remote source takes the hit path without the index as a local
    // one does: with the index gone, the same redirect and no database opened.
    let index = site.state().join("cache.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", index.display()));
    }
    let third = resize(&site, &url);
    assert_eq!(third.header("location"), r.header("location"), "{third:?}");
    assert!(!index.exists(), "the hit opened the index");
    // The remote copy lives in the state directory, never in the web-served cache.
    assert!(
        files_below(&site.cache())
            .iter()
            .all(|f| f.ends_with(".jpg") && f.starts_with("r/"))
    );
    assert_eq!(resize(&site, &format!("{base}/missing.jpg")).status, 502);
}

#[test]
fn remote_sources_are_refused_unless_allowed() {
    let (base, count) = origin();
    let url = format!("{base}/photo.jpg");
    // Off by default.
    let site = Site::new();
    assert_eq!(resize(&site, &url).status, 403);
    // Allowed host, but loopback is a private address.
    let site = Site::with_config("[remote]\nallow_hosts = [\"127.0.0.1\"]\n");
    assert_eq!(resize(&site, &url).status, 403);
    // Another host.
    let site = Site::with_config(
        "[remote]\nallow_hosts = [\"images.example.org\"]\nallow_private = true\n",
    );
    assert_eq!(resize(&site, &url).status, 403);
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "nothing reached the origin"
    );
    assert_eq!(resize(&site, "ftp://images.example.org/x.jpg").status, 400);
}
