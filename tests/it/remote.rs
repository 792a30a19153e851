//! Remote sources through the CGI binary: an allowed host is fetched, kept and resized; hosts
//! off the allow-list, private addresses and failing hosts get 403 and 502 (saying what failed,
//! not where); the copies keep within [remote] max_bytes, least recently used out first, in
//! the server and in imgserv-evict; concurrent misses in separate processes fetch once.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use imgserv::domain::format::Format;
use imgserv::domain::geometry::Size;

use crate::redirector::{dims, files_below, variant_file};
use crate::support::{Cgi, Site, fixture_bytes};

const PHOTO: &str = "photo-rocket-640x427.jpg";

/// A loopback HTTP server answering `/photo.jpg` with a fixture and anything else with 404;
/// counts requests.
fn origin() -> (String, Arc<AtomicUsize>) {
    serve(Duration::ZERO, |url| url == "/photo.jpg")
}

/// A loopback HTTP server answering the fixture photo for the paths `is_photo` accepts, after
/// `delay`, and 404 otherwise; counts requests.
fn serve(
    delay: Duration,
    is_photo: impl Fn(&str) -> bool + Send + 'static,
) -> (String, Arc<AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    thread::spawn(move || {
        let photo = fixture_bytes(PHOTO);
        for req in server.incoming_requests() {
            seen.fetch_add(1, Ordering::SeqCst);
            thread::sleep(delay);
            let resp = if is_photo(req.url()) {
                tiny_http::Response::from_data(photo.clone()).with_status_code(200)
            } else {
                tiny_http::Response::from_data(b"no".to_vec()).with_status_code(404)
            };
            let _ = req.respond(resp);
        }
    });
    (base, count)
}

/// Bytes of the files below `dir` (by length, as the budget counts them).
fn bytes_below(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// The URLs whose copies are in the site's remote directory, sorted.
fn kept_urls(site: &Site) -> Vec<String> {
    let mut urls: Vec<String> = files_below(&site.state().join("remote"))
        .iter()
        .filter(|f| f.ends_with(".meta"))
        .filter_map(|f| std::fs::read_to_string(site.state().join("remote").join(f)).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("url=").map(str::to_owned))
        })
        .collect();
    urls.sort();
    urls
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

/// A site whose remote copies fit three photos (and their sidecars), not four.
fn budget_site(copies: u64) -> Site {
    let photo = fixture_bytes(PHOTO).len() as u64;
    Site::with_config(&format!(
        "[remote]\nallow_hosts = [\"127.0.0.1\"]\nallow_private = true\nmax_bytes = {}\n\
         [limits]\nmax_source_bytes = {photo}\n[cache]\naccess_interval = \"0s\"\n",
        copies * photo + copies * 200
    ))
}

#[test]
fn remote_copies_keep_within_the_budget_least_recently_used_out_first() {
    let (base, count) = serve(Duration::ZERO, |url| url.starts_with("/photo"));
    let site = budget_site(3);
    let budget = 3 * fixture_bytes(PHOTO).len() as u64 + 600;
    let url = |n: usize| format!("{base}/photo{n:02}.jpg");
    for n in 0..3 {
        assert_eq!(resize(&site, &url(n)).status, 302);
    }
    assert_eq!(kept_urls(&site), [url(0), url(1), url(2)]);
    // photo00 used again (its copy is fresh: no request), so photo01 is now the least
    // recently used and goes for photo03.
    assert_eq!(resize(&site, &url(0)).status, 302);
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(resize(&site, &url(3)).status, 302);
    assert_eq!(kept_urls(&site), [url(0), url(2), url(3)]);
    // Many more distinct URLs: the budget holds after each, the newest stay.
    for n in 4..12 {
        let r = resize(&site, &url(n));
        assert_eq!(r.status, 302, "{r:?}");
        let on_disk = bytes_below(&site.state().join("remote"));
        assert!(on_disk <= budget, "{on_disk} bytes over {budget} after {n}");
    }
    assert_eq!(kept_urls(&site), [url(9), url(10), url(11)]);
    assert_eq!(count.load(Ordering::SeqCst), 12);
}

#[test]
fn imgserv_evict_trims_remote_copies_to_the_budget() {
    let (base, _) = serve(Duration::ZERO, |url| url.starts_with("/photo"));
    let site = budget_site(4);
    let url = |n: usize| format!("{base}/photo{n}.jpg");
    for n in 0..4 {
        assert_eq!(resize(&site, &url(n)).status, 302);
    }
    assert_eq!(kept_urls(&site).len(), 4);
    // A smaller budget in the configuration: two copies.
    let photo = fixture_bytes(PHOTO).len() as u64;
    let budget = 2 * photo + 400;
    site.write_config(&format!(
        "[remote]\nmax_bytes = {budget}\n[limits]\nmax_source_bytes = {photo}\n"
    ));
    let evict = |dry_run: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_imgserv-evict"));
        command.arg("--config").arg(site.config_path());
        if dry_run {
            command.arg("--dry-run");
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        out
    };
    let out = evict(true);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [
            format!("Remote\t{}\t{}", photo + meta_len(&site, &url(0)), url(0)),
            format!("Remote\t{}\t{}", photo + meta_len(&site, &url(1)), url(1)),
        ]
    );
    assert_eq!(kept_urls(&site).len(), 4, "a dry run removes nothing");
    let out = evict(false);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("evicted 2 remote copies"),
        "{out:?}"
    );
    assert!(bytes_below(&site.state().join("remote")) <= budget);
    assert_eq!(kept_urls(&site), [url(2), url(3)]);
}

/// The length of the sidecar of `url`'s copy.
fn meta_len(site: &Site, url: &str) -> u64 {
    let dir = site.state().join("remote");
    files_below(&dir)
        .iter()
        .filter(|f| f.ends_with(".meta"))
        .map(|f| dir.join(f))
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .any(|l| l == format!("url={url}"))
        })
        .map(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

#[test]
fn concurrent_misses_in_separate_processes_fetch_once() {
    // A slow origin, so that every process misses while the first one fetches.
    let (base, count) = serve(Duration::from_millis(700), |url| url == "/photo.jpg");
    let site = Site::with_config("[remote]\nallow_hosts = [\"127.0.0.1\"]\nallow_private = true\n");
    let url = format!("{base}/photo.jpg");
    let answers: Vec<_> = thread::scope(|scope| {
        let runs: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| resize(&site, &url)))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for r in &answers {
        assert_eq!(r.status, 302, "{r:?}");
        assert_eq!(r.header("location"), answers[0].header("location"));
    }
    assert_eq!(count.load(Ordering::SeqCst), 1, "one fetch at the origin");
}

#[test]
fn remote_failures_say_what_failed_not_where() {
    // An origin redirecting to an internal address in a form that is refused.
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    thread::spawn(move || {
        for req in server.incoming_requests() {
            let location = tiny_http::Header::from_bytes("Location", "ftp://10.20.30.40/x.jpg");
            let resp = tiny_http::Response::empty(302).with_header(location.unwrap());
            let _ = req.respond(resp);
        }
    });
    let site = Site::with_config(
        "[remote]\nallow_hosts = [\"127.0.0.1\", \"localhost\"]\nallow_private = true\n",
    );
    let r = resize(&site, &format!("{base}/a.jpg"));
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body_text().contains("redirect"), "{}", r.body_text());
    assert!(!r.body_text().contains("10.20.30.40"), "{}", r.body_text());
    assert!(
        r.stderr.contains("10.20.30.40"),
        "the log has it: {:?}",
        r.stderr
    );

    // A name resolving to a refused address: the client learns the host, not the address.
    site.write_config("[remote]\nallow_hosts = [\"localhost\"]\n");
    let port = base.rsplit(':').next().unwrap();
    let r = resize(&site, &format!("http://localhost:{port}/a.jpg"));
    assert_eq!(r.status, 403, "{r:?}");
    let text = r.body_text();
    assert!(text.contains("localhost"), "{text}");
    assert!(
        !text.contains("127.0.0.1") && !text.contains("::1"),
        "{text}"
    );
    assert!(
        r.stderr.contains("127.0.0.1") || r.stderr.contains("::1"),
        "{:?}",
        r.stderr
    );
}
