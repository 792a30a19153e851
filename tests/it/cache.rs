//! The variant cache through real processes: concurrent misses for one variant, and eviction
//! by space, least recently used first.

use std::fs;
use std::sync::{Arc, Barrier};
use std::thread;

use crate::redirector::{dims, files_below, variant_file, variant_rows};
use crate::support::{Cgi, CgiResponse, Site};

fn resize(site: &Site, src: &str, w: u32, h: u32) -> CgiResponse {
    Cgi::new(site)
        .query(&format!("src={src}&width={w}&height={h}"))
        .run()
}

#[test]
fn thirty_two_concurrent_misses_make_one_correct_file() {
    let site = Arc::new(Site::new());
    site.add_original("photo-bridge-4352x2448-progressive.jpg");
    let barrier = Arc::new(Barrier::new(32));
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let (site, barrier) = (site.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                resize(&site, "photo-bridge-4352x2448-progressive.jpg", 800, 600)
            })
        })
        .collect();
    let responses: Vec<CgiResponse> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let first = responses[0].header("location").map(str::to_string);
    for r in &responses {
        assert_eq!(r.status, 302, "{r:?}");
        assert_eq!(r.header("location").map(str::to_string), first);
    }
    let files = files_below(&site.cache());
    assert_eq!(
        files.len(),
        1,
        "exactly one file, no temporaries: {files:?}"
    );
    let bytes = fs::read(site.cache().join(&files[0])).unwrap();
    assert_eq!(dims(&bytes).1, imgserv::geometry::Size::new(800, 450));
    assert_eq!(variant_rows(&site), 1);
    let rendered = responses
        .iter()
        .filter(|r| r.stderr.contains(" rendered "))
        .count();
    assert_eq!(rendered, 1, "the per-source lock lets one process render");
}

/// Bytes of each variant, learnt in a scratch site with room for everything.
fn variant_sizes(requests: &[(&str, u32)]) -> Vec<u64> {
    let site = Site::new();
    requests
        .iter()
        .map(|(name, w)| {
            site.add_original(name);
            let r = resize(&site, name, *w, *w);
            assert_eq!(r.status, 302, "{r:?}");
            let path = variant_file(&site, r.header("location").unwrap());
            fs::metadata(path).unwrap().len()
        })
        .collect()
}

#[test]
fn eviction_keeps_the_cache_under_its_limit_least_recently_used_first() {
    let requests = [
        ("photo-rocket-640x427.jpg", 300),
        ("photo-chelsea-cat-451x300.png", 200),
        ("photo-hubble-deep-field-1000x872.jpg", 300),
        ("photo-astronaut-512x512.png", 200),
    ];
    let sizes = variant_sizes(&requests);
    let [a, b, c, d] = [sizes[0], sizes[1], sizes[2], sizes[3]];
    // Room for A, C and D but not for B as well.
    let limit = a + c + d + b / 2;
    let site = Site::with_config(&format!(
        "[cache]\nmax_bytes = {limit}\naccess_interval = \"0s\"\n"
    ));
    let mut locations = Vec::new();
    for (name, w) in &requests[..3] {
        site.add_original(name);
        let r = resize(&site, name, *w, *w);
        assert_eq!(r.status, 302, "{r:?}");
        locations.push(r.header("location").unwrap().to_string());
    }
    // A is used again, so B is now the least recently used.
    let (src, w) = requests[0];
    let again = Cgi::new(&site)
        .query(&format!("src={src}&width={w}&height={w}"))
        .env("IMGSERV_LOG", "debug") // hits are logged at debug: nginx's access log has them
        .run();
    assert!(again.stderr.contains(" hit "), "{}", &*again.stderr);
    site.add_original(requests[3].0);
    let r = resize(&site, requests[3].0, requests[3].1, requests[3].1);
    assert_eq!(r.status, 302, "{r:?}");
    locations.push(r.header("location").unwrap().to_string());

    let on_disk = |loc: &str| variant_file(&site, loc).exists();
    assert!(on_disk(&locations[0]), "A was used recently");
    assert!(!on_disk(&locations[1]), "B was the least recently used");
    assert!(on_disk(&locations[2]), "C fits");
    assert!(on_disk(&locations[3]), "D is new");
    assert_eq!(variant_rows(&site), 3);
    let total: u64 = files_below(&site.cache())
        .iter()
        .map(|f| fs::metadata(site.cache().join(f)).unwrap().len())
        .sum();
    assert!(total <= limit, "{total} bytes on disk, limit {limit}");
    // B comes back when asked for again: it is rendered anew.
    let r = resize(&site, requests[1].0, requests[1].1, requests[1].1);
    assert_eq!(r.status, 302);
    assert!(r.stderr.contains(" rendered "), "{}", &*r.stderr);
}

/// A hit as the web server's CGI makes it, logging at debug (where hits are logged).
fn hit(site: &Site, src: &str, w: u32, h: u32) -> CgiResponse {
    Cgi::new(site)
        .query(&format!("src={src}&width={w}&height={h}"))
        .env("IMGSERV_LOG", "debug")
        .run()
}

/// The index row of the variant a redirect points at: (last_access, hits).
fn access_row(site: &Site, location: &str) -> (i64, i64) {
    let rel = location
        .strip_prefix(&format!("{}/", site.cache_url()))
        .unwrap();
    let conn = rusqlite::Connection::open(site.state().join("cache.sqlite")).unwrap();
    conn.query_row(
        "SELECT last_access, hits FROM variants WHERE path = ?1",
        [rel],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn a_hit_within_the_access_interval_opens_no_index() {
    let site = Site::with_config("[cache]\naccess_interval = \"1h\"\n");
    let src = "photo-rocket-640x427.jpg";
    let original = site.add_original(src);
    let first = resize(&site, src, 300, 300);
    assert_eq!(first.status, 302, "{first:?}");
    let location = first.header("location").unwrap().to_string();

    // Without its index the cache still answers the hit: no database is opened (or created).
    let index = site.state().join("cache.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", index.display()));
    }
    let again = hit(&site, src, 300, 300);
    assert_eq!(again.status, 302, "{again:?}");
    assert_eq!(again.header("location"), Some(location.as_str()));
    assert!(again.stderr.contains(" hit "), "{}", &*again.stderr);
    assert!(!index.exists(), "the hit opened the index");

    // A changed original is a new version: rendered again, not served from the old directory.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(&original)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let changed = hit(&site, src, 300, 300);
    assert_eq!(changed.status, 302, "{changed:?}");
    assert!(
        changed.stderr.contains(" rendered "),
        "{}",
        &*changed.stderr
    );
    assert_ne!(changed.header("location"), Some(location.as_str()));
    assert_eq!(variant_rows(&site), 1);

    // A variant file removed behind the cache's back is rendered again, not redirected to.
    let now_at = changed.header("location").unwrap().to_string();
    fs::remove_file(variant_file(&site, &now_at)).unwrap();
    let gone = hit(&site, src, 300, 300);
    assert!(gone.stderr.contains(" rendered "), "{}", &*gone.stderr);
    assert!(variant_file(&site, &now_at).is_file());
}

#[test]
fn hits_record_their_access_once_per_interval() {
    let site = Site::with_config("[cache]\naccess_interval = \"1s\"\n");
    let src = "photo-rocket-640x427.jpg";
    site.add_original(src);
    let first = resize(&site, src, 300, 300);
    assert_eq!(first.status, 302, "{first:?}");
    let location = first.header("location").unwrap().to_string();
    let created = access_row(&site, &location);
    assert_eq!(created.1, 0);

    // Within the interval a hit writes nothing.
    assert!(hit(&site, src, 300, 300).stderr.contains(" hit "));
    assert_eq!(access_row(&site, &location), created);

    // After it, the next hit records the access once, in the index and on the file…
    thread::sleep(std::time::Duration::from_millis(1100));
    let atime_before = fs::metadata(variant_file(&site, &location))
        .unwrap()
        .accessed()
        .unwrap();
    assert!(hit(&site, src, 300, 300).stderr.contains(" hit "));
    let touched = access_row(&site, &location);
    assert_eq!(touched.1, 1, "one recorded access");
    assert!(touched.0 > created.0, "{touched:?} after {created:?}");
    let atime_after = fs::metadata(variant_file(&site, &location))
        .unwrap()
        .accessed()
        .unwrap();
    assert!(atime_after > atime_before);
    // …and the hits right after it write nothing again.
    assert!(hit(&site, src, 300, 300).stderr.contains(" hit "));
    assert_eq!(access_row(&site, &location), touched);
}
