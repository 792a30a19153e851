//! The redirector through the built CGI binary (no web server): status, headers, the file on
//! disk and its real dimensions; errors with their statuses and nothing left behind.

use std::fs;
use std::path::Path;

use imgserv::domain::format::Format;
use imgserv::domain::geometry::{Raster, Size, fit};
use imgserv::io::render;

use crate::support::{Cgi, CgiResponse, Site};

/// Format and size of an encoded image, read by the library's own header parser.
pub fn dims(bytes: &[u8]) -> (Format, Size) {
    let p = render::probe(bytes, u64::MAX).expect("an image");
    (p.format, p.size())
}

/// Every regular file below `dir` (recursively), relative to it: temporaries (dot names)
/// included, symbolic links (a version directory's `.source`) not.
pub fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(p);
            } else if !kind.is_symlink() {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// The number of variant rows in the site's index.
pub fn variant_rows(site: &Site) -> i64 {
    let db = site.state().join("cache.sqlite");
    if !db.exists() {
        return 0;
    }
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM variants", [], |r| r.get(0))
        .unwrap_or(0)
}

fn resize(site: &Site, src: &str, w: u32, h: u32) -> CgiResponse {
    Cgi::new(site)
        .query(&format!("src={src}&width={w}&height={h}"))
        .run()
}

/// Where the file a redirect's `Location` names lives on disk.
pub fn variant_file(site: &Site, location: &str) -> std::path::PathBuf {
    let rel = location
        .strip_prefix(&format!("{}/", site.cache_url()))
        .unwrap_or_else(|| panic!("{location} is not below the cache URL"));
    site.cache().join(rel)
}

/// The cached file a redirect points at.
fn cached_file(site: &Site, r: &CgiResponse) -> Vec<u8> {
    let path = variant_file(site, r.header("location").expect("a Location header"));
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn redirects_to_a_file_of_the_promised_size() {
    let site = Site::new();
    #[rustfmt::skip]
    let cases = [
        ("photo-rocket-640x427.jpg",        (640, 427),  (300, 200), Format::Jpeg),
        ("photo-chelsea-cat-451x300.png",   (451, 300),  (200, 200), Format::Png),
        ("webp-lossy-hopper-128x128.webp",  (128, 128),  (100, 80),  Format::Webp),
        ("gif-static-hopper-128x128.gif",   (128, 128),  (64, 64),   Format::Png),
        ("panorama-wide-4000x50.jpg",       (4000, 50),  (800, 600), Format::Jpeg),
        ("photo-rocket-640x427.jpg",        (640, 427),  (2000, 2000), Format::Jpeg),
    ];
    for (name, (ow, oh), (bw, bh), format) in cases {
        site.add_original(name);
        let r = resize(&site, name, bw, bh);
        assert_eq!(r.status, 302, "{name}: {r:?}");
        let want = fit(Size::new(ow, oh), Size::new(bw, bh), Raster::default());
        let location = r.header("location").unwrap();
        assert!(
            location.ends_with(&format!("/{}x{}.{}", want.width, want.height, format.ext())),
            "{name}: {location} should name {want}"
        );
        assert!(location.starts_with("/cache/r/"), "{location}");
        assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
        assert_eq!(dims(&cached_file(&site, &r)), (format, want), "{name}");
    }
}

#[test]
fn head_answers_without_a_body() {
    let site = Site::new();
    site.add_original("photo-rocket-640x427.jpg");
    let r = Cgi::new(&site)
        .method("HEAD")
        .query("src=photo-rocket-640x427.jpg&width=100&height=100")
        .run();
    assert_eq!(r.status, 302, "{r:?}");
    assert!(r.header("location").is_some());
    assert!(r.body.is_empty());
}

#[test]
fn boxes_that_snap_alike_share_one_variant() {
    let site = Site::new();
    site.add_original("photo-rocket-640x427.jpg");
    let a = resize(&site, "photo-rocket-640x427.jpg", 300, 300);
    let b = Cgi::new(&site)
        .query("src=photo-rocket-640x427.jpg&width=320&height=310")
        .env("IMGSERV_LOG", "debug") // hits are logged at debug: nginx's access log has them
        .run();
    assert_eq!(a.status, 302);
    assert_eq!(a.header("location"), b.header("location"));
    assert!(a.header("location").unwrap().ends_with("/300x200.jpg"));
    assert_eq!(variant_rows(&site), 1);
    assert_eq!(files_below(&site.cache()).len(), 1);
    // The second was a hit: the log says so.
    assert!(b.stderr.contains(" hit "), "{}", &*b.stderr);
}

#[test]
fn a_changed_original_gets_a_new_path() {
    let site = Site::new();
    let path = site.add_original_as("photo-rocket-640x427.jpg", "images/1.jpg");
    let before = resize(&site, "images/1.jpg", 300, 300);
    fs::write(
        &path,
        crate::support::fixture_bytes("photo-hopper-128x128.png"),
    )
    .unwrap();
    let after = resize(&site, "images/1.jpg", 300, 300);
    assert_eq!(after.status, 302, "{after:?}");
    assert_ne!(before.header("location"), after.header("location"));
    assert_eq!(
        dims(&cached_file(&site, &after)),
        (Format::Png, Size::new(128, 128))
    );
}

#[test]
fn bad_parameters_are_400_naming_the_parameter() {
    let site = Site::new();
    site.add_original("photo-rocket-640x427.jpg");
    for (query, param) in [
        ("width=10&height=10", "src"),
        ("src=photo-rocket-640x427.jpg&height=10", "width"),
        ("src=photo-rocket-640x427.jpg&width=0&height=10", "width"),
        ("src=photo-rocket-640x427.jpg&width=-3&height=10", "width"),
        ("src=photo-rocket-640x427.jpg&width=ten&height=10", "width"),
        (
            "src=photo-rocket-640x427.jpg&width=10&height=99999",
            "height",
        ),
    ] {
        let r = Cgi::new(&site).query(query).run();
        assert_eq!(r.status, 400, "{query}: {r:?}");
        assert!(
            r.body_text().contains(&format!("'{param}'")),
            "{query}: {}",
            r.body_text()
        );
    }
    assert!(files_below(&site.cache()).is_empty());
}

#[test]
fn sources_outside_the_originals_are_refused() {
    let site = Site::new();
    site.add_original("photo-rocket-640x427.jpg");
    fs::write(
        site.dir().join("secret.jpg"),
        crate::support::fixture_bytes("tiny-1x1.jpg"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        site.dir().join("secret.jpg"),
        site.originals().join("link.jpg"),
    )
    .unwrap();
    for (src, status) in [
        ("../secret.jpg", 403),
        ("%2e%2e/secret.jpg", 403),
        ("%2E%2E%2Fsecret.jpg", 403),
        ("/etc/passwd", 403),
        ("link.jpg", 403),
        ("%252e%252e/secret.jpg", 404),
        ("nope.jpg", 404),
    ] {
        let r = Cgi::new(&site)
            .query(&format!("src={src}&width=10&height=10"))
            .run();
        assert_eq!(r.status, status, "{src}: {r:?}");
    }
    assert!(files_below(&site.cache()).is_empty());
}

#[test]
fn bad_images_get_their_status_and_leave_nothing() {
    let site = Site::new();
    for (name, status) in [
        ("bad-text-named.jpg", 415),
        ("bad-html-named.jpg", 415),
        ("bad-zero-bytes.jpg", 415),
        ("bad-truncated-half-640x427.jpg", 422),
        ("bad-png-crc-ihdr.png", 422),
        ("bomb-png-50000x50000.png", 413),
        ("bomb-jpeg-65500x65500.jpg", 413),
    ] {
        site.add_original(name);
        let r = resize(&site, name, 100, 100);
        assert_eq!(r.status, status, "{name}: {r:?}");
        assert!(!r.body_text().is_empty(), "{name}: a reason");
    }
    assert!(files_below(&site.cache()).is_empty());
    assert_eq!(variant_rows(&site), 0);
}

#[test]
fn serve_direct_answers_with_the_bytes() {
    let site = Site::with_config("[cache]\nserve_direct = true\n");
    site.add_original("photo-rocket-640x427.jpg");
    for _ in 0..2 {
        let r = resize(&site, "photo-rocket-640x427.jpg", 300, 300);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some("image/jpeg"));
        assert_eq!(dims(&r.body), (Format::Jpeg, Size::new(300, 200)));
    }
}

#[test]
fn orientation_is_applied_and_metadata_stripped() {
    let site = Site::new();
    site.add_original("exif-orient-6.jpg");
    site.add_original("photo-nexus6p-exif-4032x3024.jpg");
    let r = resize(&site, "exif-orient-6.jpg", 800, 600);
    assert_eq!(
        dims(&cached_file(&site, &r)),
        (Format::Jpeg, Size::new(800, 533))
    );
    let r = resize(&site, "photo-nexus6p-exif-4032x3024.jpg", 400, 400);
    let bytes = cached_file(&site, &r);
    assert_eq!(dims(&bytes), (Format::Jpeg, Size::new(400, 300)));
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!has(b"Exif\0\0"), "EXIF must be stripped");
    assert!(
        !has(b"ICC_PROFILE"),
        "ICC profile is stripped with the rest"
    );
}

#[test]
fn cgi_arguments_from_the_query_are_ignored() {
    // RFC 3875 §4.4: a query without '=' may arrive as command-line words.
    let site = Site::new();
    site.add_original("photo-rocket-640x427.jpg");
    let r = Cgi::new(&site)
        .arg("--bogus")
        .query("src=photo-rocket-640x427.jpg&width=100&height=100")
        .run();
    assert_eq!(r.status, 302, "{r:?}");
}

#[test]
fn other_methods_and_paths() {
    let site = Site::new();
    let r = Cgi::new(&site)
        .method("POST")
        .body("text/plain", b"x")
        .run();
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = Cgi::new(&site).path_info("/x/y").run();
    assert_eq!(r.status, 404, "{r:?}");
}

#[test]
fn a_bad_configuration_is_a_valid_500_not_a_broken_response() {
    let site = Site::with_config("[cache]\nraster = 0\n");
    let r = resize(&site, "x.jpg", 10, 10);
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.stderr.contains("cache.raster"), "{}", &*r.stderr);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imgserv-admin"))
        .args(["check-config"])
        .arg(site.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cache.raster: expected an integer from 1 to 10000, got 0"),
        "{stderr}"
    );
    // The servers refuse to start with the same message.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imgserv-cgi"))
        .args(["--listen", "127.0.0.1:1", "--config"])
        .arg(site.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cache.raster"));
}

#[test]
fn non_utf8_meta_variables_get_a_response() {
    let site = Site::new();
    site.add_original("photo-rocket-640x427.jpg");
    // A raw byte in a header the handler does not read changes nothing.
    let r = Cgi::new(&site)
        .env_bytes("HTTP_REFERER", b"http://a/caf\xe9")
        .query("src=photo-rocket-640x427.jpg&width=100&height=100")
        .run();
    assert_eq!(r.status, 302, "{r:?}");
    // One in a variable it needs is refused, naming it.
    let r = Cgi::new(&site)
        .env_bytes("PATH_INFO", b"/x/\xff")
        .query("src=photo-rocket-640x427.jpg&width=100&height=100")
        .run();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body_text().contains("PATH_INFO"));
}

#[test]
fn started_by_hand_without_a_mode_is_a_usage_error() {
    let site = Site::new();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_imgserv-cgi"))
            .args(args)
            .env_remove("GATEWAY_INTERFACE")
            .env("IMGSERV_CONFIG", site.config_path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
    assert_eq!(run(&["--no-such-flag"]).status.code(), Some(64));
    assert_eq!(run(&["--help"]).status.code(), Some(0));
}
