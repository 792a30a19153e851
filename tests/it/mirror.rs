//! Precache and mirrors, the whole workflow: precache a tree → export the list → real `rsync
//! --files-from` into two mirror directories served by real nginx → import the lists → the
//! redirector sends requests to the mirrors in proportion to their bandwidth.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use imgserv::io::http::{Handler, Request};
use imgserv::web::api::App;

use crate::redirector::{dims, files_below};
use crate::support::{Cgi, Nginx, Site, follow, get, require_program};

const PHOTOS: [&str; 3] = [
    "photo-rocket-640x427.jpg",
    "photo-chelsea-cat-451x300.png",
    "photo-hubble-deep-field-1000x872.jpg",
];

fn tool(name: &str, site: &Site, args: &[&str]) -> Output {
    let bin = match name {
        "imgserv-precache" => env!("CARGO_BIN_EXE_imgserv-precache"),
        _ => env!("CARGO_BIN_EXE_imgserv-mirror"),
    };
    let out = Command::new(bin)
        .arg("--config")
        .arg(site.config_path())
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("{name} {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

/// Runs `name` like [`tool`] and fails the test (with its stderr, printed by `tool`) unless it
/// succeeded.
fn tool_ok(name: &str, site: &Site, args: &[&str]) -> Output {
    let out = tool(name, site, args);
    assert!(out.status.success(), "{name} {args:?}: {}", out.status);
    out
}

fn site_with_tree(extra_config: &str) -> Site {
    let site = Site::with_config(extra_config);
    for (i, p) in PHOTOS.iter().enumerate() {
        site.add_original_as(p, &format!("album{}/{p}", i % 2));
    }
    site
}

#[test]
fn precached_variants_are_what_the_redirector_serves() {
    let site = site_with_tree("[presets]\nthumb = [\"100x100\"]\n");
    let list = site.dir().join("variants.list");
    let out = tool_ok(
        "imgserv-precache",
        &site,
        &[
            "--box",
            "300x300",
            "--preset",
            "thumb",
            "--jobs",
            "2",
            "--list",
            list.to_str().unwrap(),
            site.originals().to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("6 variants: 6 rendered, 0 already cached, 0 failed"),
        "{stderr}"
    );
    let listed: Vec<String> = fs::read_to_string(&list)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(listed.len(), 6);
    assert_eq!(listed, files_below(&site.cache()));

    // The redirector finds every one of them: nothing is rendered again.
    for p in PHOTOS {
        let src = PHOTOS.iter().position(|q| *q == p).unwrap() % 2;
        for query in [
            format!("src=album{src}/{p}&width=300&height=300"),
            format!("src=album{src}/{p}&preset=thumb"),
        ] {
            let r = Cgi::new(&site)
                .query(&query)
                .env("IMGSERV_LOG", "debug")
                .run();
            assert_eq!(r.status, 302, "{query}: {r:?}");
            assert!(r.stderr.contains(" hit "), "{query}: {}", &*r.stderr);
            let rel = r.header("location").unwrap().trim_start_matches("/cache/");
            assert!(listed.iter().any(|l| l == rel), "{rel} not precached");
        }
    }
    // Running again renders nothing.
    let out = tool_ok(
        "imgserv-precache",
        &site,
        &["--box", "300x300", "--preset", "thumb", "album0", "album1"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("6 variants: 0 rendered, 6 already cached"),
        "{stderr}"
    );
}

#[test]
fn precache_reports_each_failure_and_goes_on() {
    let site = site_with_tree("");
    site.add_original_as("bad-truncated-half-640x427.jpg", "album0/broken.jpg");
    site.add_original_as("bad-text-named.jpg", "album0/notes.jpg");
    fs::write(
        site.originals().join("album0/README.txt"),
        "not an image, not a candidate",
    )
    .unwrap();
    let out = tool(
        "imgserv-precache",
        &site,
        &["--box", "200x200", ".", "nope.jpg"],
    );
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed: album0/broken.jpg (200x200): truncated image"),
        "{stderr}"
    );
    assert!(
        stderr.contains("failed: album0/notes.jpg (200x200): not an image"),
        "{stderr}"
    );
    assert!(stderr.contains("failed: nope.jpg: not found"), "{stderr}");
    assert!(stderr.contains("3 rendered"), "{stderr}");
    assert_eq!(files_below(&site.cache()).len(), 3);
    // Usage errors.
    assert_eq!(
        tool("imgserv-precache", &site, &["album0"]).status.code(),
        Some(64)
    );
    assert_eq!(
        tool("imgserv-precache", &site, &["--preset", "nope", "album0"])
            .status
            .code(),
        Some(64)
    );
}

/// `rsync --files-from` of `list` from the cache into `dest`.
fn rsync(site: &Site, list: &Path, dest: &Path) {
    let rsync = require_program("rsync");
    let status = Command::new(rsync)
        .arg("-a")
        .arg(format!("--files-from={}", list.display()))
        .arg(format!("{}/", site.cache().display()))
        .arg(format!("{}/", dest.display()))
        .status()
        .unwrap();
    assert!(status.success());
}

/// Pearson's chi-square of observed counts against expected proportions.
fn chi_square(observed: &[f64], weights: &[f64]) -> f64 {
    let n: f64 = observed.iter().sum();
    let total: f64 = weights.iter().sum();
    observed
        .iter()
        .zip(weights)
        .map(|(o, w)| {
            let e = n * w / total;
            (o - e) * (o - e) / e
        })
        .sum()
}

#[test]
fn requests_land_on_mirrors_in_proportion_to_their_bandwidth() {
    let site = site_with_tree("[mirrors]\nmap = \"mirrors.toml\"\n");
    let list = site.dir().join("all.list");
    tool_ok(
        "imgserv-precache",
        &site,
        &["--box", "300x300", "--list", list.to_str().unwrap(), "."],
    );
    assert_eq!(fs::read_to_string(&list).unwrap().lines().count(), 3);
    let src_of = |i: usize| format!("src=album{}/{}&width=300&height=300", i % 2, PHOTOS[i]);
    // Where each photo's variant is, as the redirector says before there are mirrors.
    let rel: Vec<String> = (0..3)
        .map(|i| {
            let r = Cgi::new(&site).query(&src_of(i)).run();
            r.header("location")
                .unwrap()
                .trim_start_matches("/cache/")
                .to_string()
        })
        .collect();

    // Mirror a (weight 3) gets everything; mirror b (weight 1) photos 1 and 2.
    let a_dir = site.dir().join("mirror-a");
    let b_dir = site.dir().join("mirror-b");
    rsync(&site, &list, &a_dir);
    let b_list = site.dir().join("b.list");
    fs::write(&b_list, format!("{}\n{}\n", rel[1], rel[2])).unwrap();
    rsync(&site, &b_list, &b_dir);
    let a = Nginx::static_only(&a_dir);
    let b = Nginx::static_only(&b_dir);

    // b's holdings come from what rsync lists on it, a's from the precache list.
    let listing = Command::new(require_program("rsync"))
        .arg("-r")
        .arg("--list-only")
        .arg(format!("{}/", b_dir.display()))
        .output()
        .unwrap();
    let b_listing = site.dir().join("b.rsync-list");
    fs::write(&b_listing, &listing.stdout).unwrap();
    let a_url = a.base();
    let b_url = b.base();
    tool_ok(
        "imgserv-mirror",
        &site,
        &["add", "a", &a_url, "--weight", "3"],
    );
    tool_ok(
        "imgserv-mirror",
        &site,
        &["add", "b", &b_url, "--weight", "1"],
    );
    tool_ok(
        "imgserv-mirror",
        &site,
        &["import-list", "a", list.to_str().unwrap()],
    );
    tool_ok(
        "imgserv-mirror",
        &site,
        &["import-list", "b", b_listing.to_str().unwrap()],
    );
    let listed = tool("imgserv-mirror", &site, &["list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("weight 3\t3 files"), "{listed}");
    assert!(listed.contains("weight 1\t2 files"), "{listed}");

    // Through the CGI: the redirect lands on a mirror, which serves the right picture.
    let r = Cgi::new(&site).query(&src_of(1)).run();
    assert_eq!(r.status, 302, "{r:?}");
    let location = r.header("location").unwrap();
    assert!(
        location.starts_with(&a_url) || location.starts_with(&b_url),
        "{location}"
    );
    let file = follow(&a_url, location);
    assert_eq!(file.status, 200);
    assert_eq!(dims(&file.body).1.width, 300);

    // 2000 redirects of a file both hold: 3:1, by a chi-square test (1 degree of freedom,
    // p > 0.001 ⟺ χ² < 10.83).
    let config = imgserv::io::config::load(&site.config_path(), &[]).unwrap();
    let app = App::new(config);
    let mut counts: HashMap<&str, f64> = HashMap::new();
    for _ in 0..2000 {
        let resp = app.handle(Request::get("", &src_of(1)));
        let loc = resp.header("location").unwrap().to_string();
        let who = if loc.starts_with(&a_url) {
            "a"
        } else if loc.starts_with(&b_url) {
            "b"
        } else {
            "local"
        };
        *counts.entry(who).or_default() += 1.0;
    }
    let (ca, cb) = (
        counts.get("a").copied().unwrap_or(0.0),
        counts.get("b").copied().unwrap_or(0.0),
    );
    assert_eq!(ca + cb, 2000.0, "{counts:?}");
    let chi2 = chi_square(&[ca, cb], &[3.0, 1.0]);
    assert!(
        chi2 < 10.83,
        "a {ca}, b {cb}: chi-square {chi2:.2} rejects 3:1"
    );

    // A file only a holds always goes to a.
    for _ in 0..200 {
        let loc = app
            .handle(Request::get("", &src_of(0)))
            .header("location")
            .unwrap()
            .to_string();
        assert!(loc.starts_with(&a_url), "{loc}");
    }
    // A variant no mirror holds is served locally.
    let r = app.handle(Request::get(
        "",
        "src=album0/photo-rocket-640x427.jpg&width=100&height=100",
    ));
    assert!(r.header("location").unwrap().starts_with("/cache/"));

    // verify drops a file deleted from a mirror, and then only b serves it.
    fs::remove_file(a_dir.join(&rel[2])).unwrap();
    let out = tool("imgserv-mirror", &site, &["verify", "a"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("a: 2 present, 1 missing (dropped), 0 unchecked"),
        "{report}"
    );
    let app = App::new(imgserv::io::config::load(&site.config_path(), &[]).unwrap());
    for _ in 0..50 {
        let loc = app
            .handle(Request::get("", &src_of(2)))
            .header("location")
            .unwrap()
            .to_string();
        assert!(loc.starts_with(&b_url), "{loc}");
        assert_eq!(get(&loc).status, 200);
    }
    let exported = tool("imgserv-mirror", &site, &["export-list", "a"]);
    assert_eq!(String::from_utf8_lossy(&exported.stdout).lines().count(), 2);
}

#[test]
fn a_long_lived_server_notices_a_changed_map() {
    let site = site_with_tree("[mirrors]\nmap = \"mirrors.toml\"\n");
    let list = site.dir().join("all.list");
    tool_ok(
        "imgserv-precache",
        &site,
        &["--box", "300x300", "--list", list.to_str().unwrap(), "."],
    );
    let (_server, base) = crate::support::standalone(&site);
    let url = format!(
        "{base}/imgserv.cgi?src=album0/{}&width=300&height=300",
        PHOTOS[0]
    );
    assert!(get(&url).header("location").unwrap().starts_with("/cache/"));
    tool_ok(
        "imgserv-mirror",
        &site,
        &[
            "add",
            "far",
            "http://mirror.invalid/c",
            "--list",
            list.to_str().unwrap(),
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let location = get(&url).header("location").unwrap().to_string();
    assert!(
        location.starts_with("http://mirror.invalid/c/r/"),
        "{location}"
    );
    tool_ok("imgserv-mirror", &site, &["remove", "far"]);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert!(get(&url).header("location").unwrap().starts_with("/cache/"));
}

#[test]
fn every_flag_and_command_is_in_the_man_pages() {
    for (bin, page, commands) in [
        (
            env!("CARGO_BIN_EXE_imgserv-precache"),
            "man/imgserv-precache.1",
            &[][..],
        ),
        (
            env!("CARGO_BIN_EXE_imgserv-upload"),
            "man/imgserv-upload.1",
            &[][..],
        ),
        (
            env!("CARGO_BIN_EXE_imgserv-evict"),
            "man/imgserv-evict.8",
            &[][..],
        ),
        (
            env!("CARGO_BIN_EXE_imgserv-mirror"),
            "man/imgserv-mirror.1",
            &[
                "add",
                "remove",
                "list",
                "import-list",
                "export-list",
                "verify",
            ][..],
        ),
    ] {
        let page = fs::read_to_string(crate::support::repo_root().join(page))
            .unwrap()
            .replace("\\-", "-");
        let mut help =
            String::from_utf8(Command::new(bin).arg("--help").output().unwrap().stdout).unwrap();
        for c in commands {
            assert!(page.contains(c), "{c} is not in its man page");
            let sub = Command::new(bin)
                .args([c, "--help"])
                .output()
                .unwrap()
                .stdout;
            help.push_str(&String::from_utf8(sub).unwrap());
        }
        // Options are the lines of --help that start with a flag.
        for line in help.lines() {
            let line = line.trim_start();
            let Some(flag) = line
                .split([' ', ',', '='])
                .next()
                .filter(|f| f.starts_with("--"))
            else {
                continue;
            };
            if !["--help", "--version"].contains(&flag) {
                assert!(page.contains(flag), "{flag} is not in its man page");
            }
        }
    }
}
