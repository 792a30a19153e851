//! Attacks, each a table run through the real CGI binary: server-side request forgery against
//! remote sources, and path traversal in every route that takes a path.
//!
//! The SSRF cases run the CGI inside a network namespace of its own (`unshare --net`), where
//! not even loopback is up: should a check ever regress, the request fails locally instead of
//! sending a packet to a private or metadata address. Names still resolve there, from
//! /etc/hosts, so the DNS cases exercise the resolver-side check.

use std::fs;
use std::path::PathBuf;

use crate::redirector::files_below;
use crate::support::{Cgi, CgiResponse, Site, require_program};

/// Hosts whose addresses are refused, each in a URL form an attacker would try. The allow-list
/// names every one of them, so what refuses them is the address check, not the allow-list.
const SSRF_HOSTS: &[&str] = &[
    // Loopback, unspecified, private, shared, link-local (cloud metadata), special IPv4 ranges.
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.255",
    "100.64.0.1",
    "100.100.100.200",
    "100.127.255.255",
    "169.254.169.254",
    "169.254.0.1",
    "192.0.0.170",
    "192.0.2.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    // The same addresses in the notations inet_aton accepts (decimal, hex, octal, short).
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "017700000001",
    "0177.0.0.1",
    "127.1",
    "127.0.1",
    "0",
    "10.1",
    "3232235777",
    "0xa9fea9fe",
    "2852039166",
    // IPv6: loopback, unspecified, and forms that embed or route to IPv4 addresses.
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:10.0.0.1]",
    "[::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:7f00:1::]",
    "[2002:a9fe:a9fe::]",
    "[fe80::1]",
    "[fc00::1]",
    "[fd00:ec2::254]",
    "[fec0::1]",
    "[ff02::1]",
    "[2001::1]",
    "[2001:db8::1]",
    "[100::1]",
    // Names that resolve to loopback (from /etc/hosts: the namespace has no DNS, so names
    // that need a DNS server, "localhost." among them, fail to resolve there instead).
    "localhost",
    "LOCALHOST",
];

/// URLs refused for their form before any address is looked at: credentials, schemes other
/// than http(s), ports that are not numbers. (Their status is 400 `bad-source`.)
const BAD_URLS: &[&str] = &[
    "http://user:pass@127.0.0.1/a.jpg",
    "http://images.example.org@127.0.0.1/a.jpg",
    "http://127.0.0.1:80@images.example.org/a.jpg",
    "ftp://127.0.0.1/a.jpg",
    "gopher://127.0.0.1:70/_a",
    "http://127.0.0.1:http/a.jpg",
    "http://[::1/a.jpg",
];

/// The files of remote copies in `[state] dir/remote` (its fetch locks aside).
fn remote_copies(site: &Site) -> Vec<String> {
    files_below(&site.state().join("remote"))
        .into_iter()
        .filter(|f| !f.starts_with("locks/"))
        .collect()
}

/// The CGI started inside a fresh network namespace (no interface up).
fn isolated(site: &Site) -> Cgi {
    let unshare = require_program("unshare");
    Cgi::program(&unshare)
        .arg("--net")
        .arg(crate::support::imgserv_cgi().to_str().unwrap())
        .env("IMGSERV_CONFIG", site.config_path().to_str().unwrap())
}

fn resize(cgi: Cgi, src: &str) -> CgiResponse {
    let src = percent_encoding::utf8_percent_encode(src, percent_encoding::NON_ALPHANUMERIC);
    cgi.query(&format!("src={src}&width=100&height=100")).run()
}

/// The allow-list entry for a URL's host, as written in the configuration.
fn allow_entry(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

#[test]
fn remote_sources_never_reach_private_addresses() {
    let allow: Vec<String> = SSRF_HOSTS.iter().map(|h| allow_entry(h)).collect();
    let site = Site::with_config(&format!(
        "[remote]\nallow_hosts = {}\nmax_redirects = 3\n",
        toml::Value::from(allow.clone())
    ));
    let mut cases = 0;
    for host in SSRF_HOSTS {
        for url in [
            format!("http://{host}/a.jpg"),
            format!("https://{host}:8443/latest/meta-data/"),
        ] {
            let r = resize(isolated(&site), &url);
            assert_eq!(
                (r.status, r.body_text().split(':').next().unwrap_or("")),
                (403, "source-forbidden"),
                "{url}: {r:?}"
            );
            cases += 1;
        }
    }
    for url in BAD_URLS {
        let r = resize(isolated(&site), url);
        assert!(
            matches!(r.status, 400 | 403),
            "{url} must be refused: {r:?}"
        );
        cases += 1;
    }
    assert!(cases >= 60, "{cases} cases");
    assert_eq!(
        remote_copies(&site),
        Vec::<String>::new(),
        "nothing fetched"
    );
    assert!(files_below(&site.cache()).is_empty());
}

#[test]
fn allowed_names_are_checked_on_the_address_they_resolve_to() {
    // "localhost" is on the allow-list and resolves (from /etc/hosts) to 127.0.0.1: the
    // resolver-side check refuses it whatever the allow-list says.
    let site = Site::with_config("[remote]\nallow_hosts = [\"*.localhost\", \"localhost\"]\n");
    for url in [
        "http://localhost/a.jpg",
        "http://localhost:1/a.jpg",
        "https://localhost/a.jpg",
    ] {
        let r = resize(isolated(&site), url);
        assert_eq!(r.status, 403, "{url}: {r:?}");
    }
    assert_eq!(remote_copies(&site), Vec::<String>::new());
}

/// A site with one original, and a secret beside (not below) the originals, the cache, the
/// state and the store that a traversal would aim for.
fn target_site() -> (Site, PathBuf) {
    let site = Site::new();
    site.add_original("photo-rocket-640x427.jpg");
    let secret = site.dir().join("secret.jpg");
    fs::write(&secret, crate::support::fixture_bytes("tiny-1x1.jpg")).unwrap();
    (site, secret)
}

/// Redirector `src` values aiming outside `[originals] root`: refused (403) or not found (404),
/// never rendered.
#[test]
fn traversal_in_src_is_refused() {
    let (site, _secret) = target_site();
    std::os::unix::fs::symlink("../secret.jpg", site.originals().join("up.jpg")).unwrap();
    std::os::unix::fs::symlink("/etc", site.originals().join("etc")).unwrap();
    fs::create_dir(site.originals().join("sub")).unwrap();
    let cases: &[(&str, u16)] = &[
        ("../secret.jpg", 403),
        ("sub/../../secret.jpg", 403),
        ("sub/./../../secret.jpg", 403),
        ("./../secret.jpg", 403),
        ("%2e%2e/secret.jpg", 403),
        ("%2E%2E%2Fsecret.jpg", 403),
        ("..%2fsecret.jpg", 403),
        ("/etc/passwd", 403),
        ("%2Fetc%2Fpasswd", 403),
        ("//etc/passwd", 403),
        ("up.jpg", 403),
        ("etc/passwd", 403),
        ("%252e%252e/secret.jpg", 404),
        ("..%5csecret.jpg", 404),
        ("....//secret.jpg", 404),
        ("sub/..%00/secret.jpg", 400),
        ("secret.jpg%00.png", 400),
    ];
    for (src, want) in cases {
        let r = Cgi::new(&site)
            .query(&format!("src={src}&width=10&height=10"))
            .run();
        assert_eq!(r.status, *want, "src={src}: {r:?}");
    }
    assert!(files_below(&site.cache()).is_empty());
}

/// Paths below the script (the REST interface, unknown routes) that try to climb out: never
/// a 2xx, never the bytes of a file outside the store.
#[test]
fn traversal_in_paths_below_the_script_is_refused() {
    let (site, _secret) = target_site();
    let id = "0".repeat(40);
    let paths = [
        "/api/images/../../secret.jpg".to_owned(),
        "/api/images/..%2f..%2fsecret.jpg".to_owned(),
        "/api/images/%2e%2e".to_owned(),
        "/api/images/..".to_owned(),
        "/api/images/.".to_owned(),
        "/api/images//etc/passwd".to_owned(),
        "/api/images/../../../../etc/passwd".to_owned(),
        format!("/api/images/{id}/../../../secret.jpg"),
        format!("/api/images/{id}/meta/../../../../etc/passwd"),
        format!("/api/images/{id}/variants/../../../secret.jpg"),
        format!("/api/images/{id}/variants/..%2f..%2fsecret"),
        "/api/categories/../../secret.jpg".to_owned(),
        "/../../secret.jpg".to_owned(),
        "/..".to_owned(),
        "/cache/../secret.jpg".to_owned(),
    ];
    for method in ["GET", "HEAD", "DELETE"] {
        for path in &paths {
            let r = Cgi::new(&site).method(method).path_info(path).run();
            assert!((400..500).contains(&r.status), "{method} {path}: {r:?}");
            assert!(
                !r.body.windows(4).any(|w| w == b"root") && !r.body.starts_with(b"\xff\xd8"),
                "{method} {path} leaked a file: {r:?}"
            );
        }
    }
    // A category or search parameter is a name in the catalog, never a path.
    for query in [
        "category=../../etc",
        "category=%2F..%2F..%2Fetc",
        "q=../../etc/passwd",
    ] {
        let r = Cgi::new(&site).path_info("/api/images").query(query).run();
        assert!(
            r.status == 400 || r.status == 401 || r.status == 200,
            "{query}: {r:?}"
        );
        assert!(!r.body_text().contains("root:"), "{query}: {r:?}");
    }
    assert!(site.dir().join("secret.jpg").exists(), "nothing deleted");
    assert!(site.originals().join("photo-rocket-640x427.jpg").exists());
    assert!(files_below(&site.cache()).is_empty());
}

/// Oversized and malformed parameters get a 4xx, never a 5xx or a render.
#[test]
fn oversized_parameters_are_refused() {
    let site = Site::new();
    site.add_original("photo-rocket-640x427.jpg");
    // Parameters the redirector reads: out of range, huge, repeated.
    for query in [
        format!(
            "src=photo-rocket-640x427.jpg&width={}&height=100",
            "9".repeat(5000)
        ),
        format!("src={}&width=100&height=100", "a".repeat(100_000)),
        format!("src={}.jpg&width=100&height=100", "a".repeat(300)),
        format!(
            "src=https%3A%2F%2Fimg.example.org%2F{}&width=100&height=100",
            "a".repeat(5000)
        ),
        "src=photo-rocket-640x427.jpg&width=100&width=100&height=100".to_owned(),
        "src=photo-rocket-640x427.jpg&width=-1&height=100".to_owned(),
        "src=photo-rocket-640x427.jpg&width=100000&height=100000".to_owned(),
    ] {
        let r = Cgi::new(&site).query(&query).run();
        assert!((400..500).contains(&r.status), "{:.80}: {r:?}", query);
    }
    assert!(files_below(&site.cache()).is_empty());
}

/// CRC-32 (ISO-HDLC), for PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

const HTML: &[u8] = b"<html><body><script>alert(document.cookie)</script></body></html>";

/// Real images that are also something else: HTML in a JPEG comment, a ZIP after the JPEG's
/// end, HTML in a PNG text chunk and after a GIF's trailer. (name, bytes, MIME type)
fn polyglots() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let jpeg = crate::support::fixture_bytes("photo-rocket-640x427.jpg");
    let mut jpeg_html = b"\xff\xd8\xff\xfe".to_vec();
    jpeg_html.extend(u16::try_from(HTML.len() + 2).unwrap().to_be_bytes());
    jpeg_html.extend(HTML);
    jpeg_html.extend(&jpeg[2..]);
    // An empty ZIP archive is its end-of-central-directory record alone; unzip reads it at
    // the end of the file, whatever precedes it.
    let mut jpeg_zip = jpeg.clone();
    jpeg_zip.extend(b"PK\x05\x06");
    jpeg_zip.extend([0u8; 18]);
    let png = crate::support::fixture_bytes("photo-hopper-128x128.png");
    let mut chunk = b"tEXt".to_vec();
    chunk.extend(b"Comment\0");
    chunk.extend(HTML);
    let mut png_html = png[..33].to_vec(); // the signature and IHDR
    png_html.extend(u32::try_from(chunk.len() - 4).unwrap().to_be_bytes());
    png_html.extend(&chunk);
    png_html.extend(crc32(&chunk).to_be_bytes());
    png_html.extend(&png[33..]);
    let mut gif_html = crate::support::fixture_bytes("gif-static-hopper-128x128.gif");
    gif_html.extend(HTML);
    vec![
        ("jpeg-with-html-comment", jpeg_html, "image/jpeg"),
        ("jpeg-with-zip", jpeg_zip, "image/jpeg"),
        ("png-with-html-text", png_html, "image/png"),
        ("gif-with-html-after-trailer", gif_html, "image/gif"),
    ]
}

/// Polyglot uploads are stored as the images they also are, and served as images (with
/// `nosniff`), never as HTML; their variants are re-encoded and carry nothing of the rest.
#[test]
fn polyglot_uploads_are_stored_but_never_served_as_html() {
    use crate::api::{Api, json, sign_with, unsigned};
    use imgserv::io::http::Handler;
    let api = Api::new("");
    for (name, bytes, mime) in polyglots() {
        let resp = api.call("POST", "/api/images", "", &bytes);
        assert_eq!(
            resp.status,
            201,
            "{name}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let id = json(&resp)["id"].as_str().unwrap().to_owned();
        assert_eq!(json(&resp)["mime"], mime, "{name}");

        for method in ["GET", "HEAD"] {
            let req = sign_with(
                &api.key,
                unsigned(method, &format!("/api/images/{id}"), "", b""),
            );
            let resp = api.app.handle(req).collect().unwrap();
            assert_eq!(resp.status, 200, "{name} {method}");
            assert_eq!(resp.header("Content-Type"), Some(mime), "{name} {method}");
            assert_eq!(
                resp.header("X-Content-Type-Options"),
                Some("nosniff"),
                "{name} {method}"
            );
            if method == "GET" {
                assert_eq!(resp.body, bytes, "{name}: stored as uploaded");
            }
        }
        // 100×100 is the served size of each (its canonical 404-handler name); a GIF's
        // variant is a PNG.
        let ext = if mime == "image/jpeg" { "jpg" } else { "png" };
        let (w, h) = if name.starts_with("jpeg") {
            (100, 67)
        } else {
            (100, 100)
        };
        let variant = crate::api::get_404(&api.app, &format!("/cache/{id}/{w}/{h}.{ext}"), "");
        assert_eq!(variant.status, 200, "{name}");
        assert!(
            variant
                .header("Content-Type")
                .unwrap()
                .starts_with("image/")
        );
        assert_eq!(variant.header("X-Content-Type-Options"), Some("nosniff"));
        assert!(
            !variant.body.windows(7).any(|w| w == b"<script"),
            "{name}: the variant is re-encoded"
        );
    }
}
