//! The redirector behind real web servers, as operators mount it: nginx + fcgiwrap (CGI),
//! Apache mod_cgi. Each: request → 302 → the Location through the same server → 200 with the
//! right type, long caching and an image of the promised size.

use imgserv::domain::format::Format;
use imgserv::domain::geometry::Size;

use crate::redirector::dims;
use crate::support::{Apache, Nginx, Site, follow, get};

/// Asks `base` for a few variants and follows each redirect through the same server.
pub fn check_round_trips(base: &str, script: &str) {
    for (src, (w, h), format, want) in [
        (
            "photo-rocket-640x427.jpg",
            (300, 300),
            Format::Jpeg,
            Size::new(300, 200),
        ),
        (
            "photo-chelsea-cat-451x300.png",
            (200, 200),
            Format::Png,
            Size::new(200, 133),
        ),
        (
            "webp-lossy-hopper-128x128.webp",
            (100, 100),
            Format::Webp,
            Size::new(100, 100),
        ),
        (
            "exif-orient-6.jpg",
            (100, 100),
            Format::Jpeg,
            Size::new(100, 67),
        ),
    ] {
        let url = format!("{base}{script}?src={src}&width={w}&height={h}");
        let r = get(&url);
        assert_eq!(r.status, 302, "{url}: {} {}", r.status, r.body_text());
        let location = r.header("location").expect("Location").to_string();
        let file = follow(&url, &location);
        assert_eq!(file.status, 200, "{location}");
        assert_eq!(
            file.header("content-type"),
            Some(format.mime()),
            "{location}"
        );
        let cc = file.header_all("cache-control").join(", ");
        assert!(
            cc.contains("max-age=31536000"),
            "{location}: Cache-Control {cc:?}"
        );
        assert_eq!(dims(&file.body), (format, want), "{location}");
        // Asked again: a hit, the same redirect.
        let again = get(&url);
        assert_eq!(again.header("location"), Some(location.as_str()));
    }
    let bad = get(&format!("{base}{script}?src=nope.jpg&width=10&height=10"));
    assert_eq!(bad.status, 404, "{}", bad.body_text());
    let bad = get(&format!(
        "{base}{script}?src=photo-rocket-640x427.jpg&width=0&height=10"
    ));
    assert_eq!(bad.status, 400, "{}", bad.body_text());
}

pub fn site_with_samples() -> Site {
    let site = Site::new();
    for f in [
        "photo-rocket-640x427.jpg",
        "photo-chelsea-cat-451x300.png",
        "webp-lossy-hopper-128x128.webp",
        "exif-orient-6.jpg",
    ] {
        site.add_original(f);
    }
    site
}

#[test]
fn nginx_with_fcgiwrap() {
    let site = site_with_samples();
    let nginx = Nginx::cgi(&site);
    check_round_trips(&nginx.base(), "/cgi-bin/imgserv.cgi");
}

#[test]
fn apache_mod_cgi() {
    let site = site_with_samples();
    let apache = Apache::cgi(&site);
    check_round_trips(&apache.base(), "/cgi-bin/imgserv.cgi");
}

#[test]
fn standalone_server() {
    let site = site_with_samples();
    let (_server, base) = crate::support::standalone(&site);
    check_round_trips(&base, "/imgserv.cgi");
    let page = get(&format!("{base}/"));
    assert_eq!(page.status, 200);
    assert!(
        page.body_text()
            .contains("/imgserv.cgi?src=photo-rocket-640x427.jpg")
    );
    for path in [
        "/cache/../imgserv.toml",
        "/cache/%2e%2e/imgserv.toml",
        "/cache/",
        "/elsewhere",
    ] {
        assert_eq!(get(&format!("{base}{path}")).status, 404, "{path}");
    }
}

/// A long-lived server remembers the variants it served for a second (`api/recent.rs`): an
/// evicted file is noticed at once, a replaced original within that second.
#[test]
fn a_long_lived_server_notices_evicted_variants_and_replaced_originals() {
    let site = Site::new();
    site.add_original_as("photo-rocket-640x427.jpg", "a.jpg");
    let (_server, base) = crate::support::standalone(&site);
    let url = format!("{base}/imgserv.cgi?src=a.jpg&width=300&height=300");
    let first = get(&url);
    assert_eq!(first.status, 302);
    let location = first.header("location").unwrap().to_string();
    let file = crate::redirector::variant_file(&site, &location);
    assert!(file.is_file());
    // Evicted behind the server's back (by imgserv-evict, say): rendered again at once.
    std::fs::remove_file(&file).unwrap();
    let again = get(&url);
    assert_eq!(again.header("location"), Some(location.as_str()));
    assert!(file.is_file(), "the variant is rendered again");
    // The original replaced by another picture: a new version, within a second.
    site.add_original_as("photo-chelsea-cat-451x300.png", "a.jpg");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let replaced = get(&url);
    assert_eq!(replaced.status, 302);
    let new_location = replaced.header("location").unwrap();
    assert_ne!(
        new_location, location,
        "a replaced original has new variants"
    );
    let bytes = get(&format!("{base}{new_location}")).body;
    assert_eq!(dims(&bytes), (Format::Png, Size::new(300, 200)));
}
