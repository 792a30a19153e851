//! The variant cache through real processes: concurrent misses for one variant, eviction by
//! space (least recently used first, down to the low-water mark), and what a miss syncs.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use crate::redirector::{dims, files_below, variant_file, variant_rows};
use crate::support::{Cgi, CgiResponse, Site, imgserv_cgi};

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
    assert_eq!(
        dims(&bytes).1,
        imgserv::domain::geometry::Size::new(800, 450)
    );
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
    // Low water at the limit: each miss over it evicts just what it must (the low-water mark
    // has its own test below).
    let site = Site::with_config(&format!(
        "[cache]\nmax_bytes = {limit}\nlow_water = \"100%\"\naccess_interval = \"0s\"\n"
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

#[test]
fn a_miss_over_the_limit_evicts_down_to_the_low_water_mark_and_the_next_misses_do_not() {
    let src = "photo-rocket-640x427.jpg";
    let widths = [300, 250, 100, 200, 150];
    let requests: Vec<(&str, u32)> = widths.iter().map(|w| (src, *w)).collect();
    let s = variant_sizes(&requests);
    // The fourth miss goes over the limit; low water leaves room for the third and fourth
    // only, so it evicts the first two — where evicting to the limit would take the first.
    let limit = s[0] + s[1] + s[2] + s[3] / 2;
    let low_water = s[2] + s[3];
    assert!(
        s[1] + s[2] + s[3] <= limit,
        "sizes {s:?}: the first alone would do"
    );
    assert!(
        s[2] + s[3] + s[4] <= limit,
        "sizes {s:?}: the fifth must fit"
    );
    let site = Site::with_config(&format!(
        "[cache]\nmax_bytes = {limit}\nlow_water = {low_water}\n"
    ));
    site.add_original(src);
    let mut files = Vec::new();
    for w in widths {
        let r = resize(&site, src, w, w);
        assert_eq!(r.status, 302, "{r:?}");
        assert!(r.stderr.contains(" rendered "), "{}", &*r.stderr);
        files.push(variant_file(&site, r.header("location").unwrap()));
        if files.len() == 4 {
            let left: Vec<bool> = files.iter().map(|f| f.exists()).collect();
            assert_eq!(left, [false, false, true, true], "after the fourth miss");
            assert_eq!(variant_rows(&site), 2);
        }
    }
    // The fifth miss fits under the limit: it evicted nothing.
    let left: Vec<bool> = files.iter().map(|f| f.exists()).collect();
    assert_eq!(left, [false, false, true, true, true]);
    assert_eq!(variant_rows(&site), 3);
    let conn = rusqlite::Connection::open(site.state().join("cache.sqlite")).unwrap();
    let totals: (i64, i64) = conn
        .query_row("SELECT bytes, count FROM totals", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(totals, ((s[2] + s[3] + s[4]) as i64, 3));
}

/// A traced system call and its path arguments.
type Call = (String, Vec<String>);

/// The path in a `strace -y` argument (`5</a/b>` → `/a/b`) or a quoted one (`"/a/b"`).
fn traced_path(arg: &str) -> &str {
    let arg = arg.trim();
    match arg.split_once('<') {
        Some((_, rest)) => rest.trim_end_matches('>'),
        None => arg.trim_matches('"'),
    }
}

#[test]
fn a_miss_syncs_its_file_before_the_rename_and_the_directories_after() {
    let site = Site::new();
    let src = "photo-rocket-640x427.jpg";
    site.add_original(src);
    let log = site.dir().join("strace.log");
    let r = Cgi::program(Path::new("/usr/bin/strace"))
        .env("IMGSERV_CONFIG", site.config_path().to_str().unwrap())
        .arg("-f")
        .arg("-qq")
        .arg("-y")
        .arg("-o")
        .arg(log.to_str().unwrap())
        .arg("-e")
        .arg("trace=mkdir,mkdirat,fsync,fdatasync,rename,renameat,renameat2,pwrite64")
        .arg(imgserv_cgi().to_str().unwrap())
        .query(&format!("src={src}&width=300&height=300"))
        .run();
    assert_eq!(r.status, 302, "{r:?}");
    let file = variant_file(&site, r.header("location").unwrap());
    let trace = fs::read_to_string(&log).unwrap();
    // (syscall, its path arguments), in order, of the calls that succeeded.
    let calls: Vec<Call> = trace
        .lines()
        .filter_map(|line| {
            // "PID  call(…) = ret": strace pads the PID to five columns.
            let call = line.split_once(' ').map_or(line, |(_, c)| c).trim_start();
            let (name, args) = call.split_once('(')?;
            let (args, ret) = args.rsplit_once(") = ")?;
            if ret.starts_with('-') {
                return None;
            }
            let paths = args
                .split(", ")
                .filter(|a| a.contains('/'))
                .map(|a| traced_path(a).to_string())
                .collect();
            Some((name.to_string(), paths))
        })
        .collect();
    let at = |what: &str, pred: &dyn Fn(&Call) -> bool| {
        calls
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("no {what} in the trace:\n{trace}"))
    };
    let file = file.to_str().unwrap();
    let dir = Path::new(file).parent().unwrap().to_str().unwrap();
    let rename = at("rename to the variant", &|(n, p)| {
        n.starts_with("rename") && p.last().is_some_and(|p| p == file)
    });
    let tmp = calls[rename].1[0].clone();
    assert!(tmp.ends_with(".tmp"), "{tmp}");
    let data = at("sync of the temporary file", &|(n, p)| {
        (n == "fdatasync" || n == "fsync") && p.first() == Some(&tmp)
    });
    assert!(
        data < rename,
        "the file is synced before it is renamed:\n{trace}"
    );
    let dir_sync = at("sync of the variant's directory", &|(n, p)| {
        n == "fsync" && p.first().is_some_and(|p| p == dir)
    });
    assert!(
        dir_sync > rename,
        "the directory is synced after the rename:\n{trace}"
    );
    // It is indexed after that: the index's WAL is written after the directory's sync.
    at("index write after the sync", &|(n, p)| {
        n == "pwrite64" && p.first().is_some_and(|p| p.ends_with("cache.sqlite-wal"))
    });
    assert!(
        calls[dir_sync..]
            .iter()
            .any(|(n, p)| n == "pwrite64" && p[0].ends_with("cache.sqlite-wal")),
        "indexed after the sync:\n{trace}"
    );
    // Every directory made for it is synced into its parent.
    let below_cache = format!("{}/", site.cache().display());
    let made: Vec<&String> = calls
        .iter()
        .filter(|(n, p)| {
            n.starts_with("mkdir") && p.first().is_some_and(|p| p.starts_with(&below_cache))
        })
        .map(|(_, p)| &p[0])
        .collect();
    assert!(!made.is_empty(), "a new source's directories:\n{trace}");
    for d in made {
        let parent = Path::new(d).parent().unwrap().to_str().unwrap();
        assert!(
            calls
                .iter()
                .any(|(n, p)| n == "fsync" && p.first().is_some_and(|p| p == parent)),
            "{parent} not synced after {d} was made:\n{trace}"
        );
    }
}
