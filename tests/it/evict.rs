//! `imgserv-evict` on a real cache: by age, by access (the file's atime counts, for files the
//! web server serves without imgserv, and the 404 handler's links count with their canonical
//! file), by budget, the dry run, and the sweep it runs.

use std::fs::{self, File, FileTimes};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use imgserv::io::config::EvictConfig;
use imgserv::usecases::evict::{self, Reason};

use crate::api::{Api, get_404};
use crate::redirector::files_below;

const DAY: Duration = Duration::from_secs(86_400);

/// Sets a file's atime and mtime to `ago` before now.
fn age(path: &Path, accessed_ago: Duration, modified_ago: Duration) {
    let now = SystemTime::now();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(
            FileTimes::new()
                .set_accessed(now - accessed_ago)
                .set_modified(now - modified_ago),
        )
        .unwrap();
}

/// Three variants of one upload through the 404 handler: 300, 200 and 100 pixels wide.
fn three_variants() -> (Api, String) {
    let api = Api::new("");
    let (_, image) = api.upload("photo-rocket-640x427.jpg", "");
    let id = image["id"].as_str().unwrap().to_string();
    for w in [300, 200, 100] {
        let h = height(w);
        assert_eq!(
            get_404(&api.app, &format!("/cache/{id}/{w}/{h}.jpg"), "").status,
            200
        );
    }
    // The index's own access times, pushed back too, so that only the files speak.
    let conn = rusqlite::Connection::open(api.site.state().join("cache.sqlite")).unwrap();
    conn.execute("UPDATE variants SET last_access = 0, created = 0", [])
        .unwrap();
    (api, id)
}

/// The height the 640×427 rocket is served at for each width.
fn height(w: u32) -> u32 {
    match w {
        300 => 200,
        200 => 133,
        100 => 67,
        _ => unreachable!(),
    }
}

fn variant(api: &Api, id: &str, w: u32) -> std::path::PathBuf {
    api.site.cache().join(format!("{id}/{w}/{}.jpg", height(w)))
}

/// Ages every path of the variant (the link and the canonical file share times).
fn age_variant(api: &Api, id: &str, w: u32, accessed: Duration, modified: Duration) {
    age(&variant(api, id, w), accessed, modified);
}

fn left(api: &Api, id: &str) -> Vec<u32> {
    [300, 200, 100]
        .into_iter()
        .filter(|w| variant(api, id, *w).exists())
        .collect()
}

#[test]
fn by_access_the_file_atime_counts() {
    let (api, id) = three_variants();
    age_variant(&api, &id, 300, DAY * 40, DAY * 40);
    age_variant(&api, &id, 200, Duration::ZERO, DAY * 40); // served by nginx yesterday
    age_variant(&api, &id, 100, DAY * 2, DAY * 2);
    let limits = EvictConfig {
        max_idle: Some(DAY * 30),
        ..EvictConfig::default()
    };
    let report = evict::evict(api.config(), &limits, false).unwrap();
    assert_eq!(left(&api, &id), [200, 100]);
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].1, Reason::Idle);
    assert_eq!(
        report.removed[0].0.paths.len(),
        2,
        "the link and its canonical file: {:?}",
        report.removed
    );
    assert!(
        report.summary().starts_with("evicted 1 variants"),
        "{}",
        report.summary()
    );
}

#[test]
fn by_age() {
    let (api, id) = three_variants();
    age_variant(&api, &id, 300, Duration::ZERO, DAY * 400);
    let limits = EvictConfig {
        max_age: Some(DAY * 365),
        ..EvictConfig::default()
    };
    let report = evict::evict(api.config(), &limits, false).unwrap();
    assert_eq!(left(&api, &id), [200, 100]);
    assert_eq!(report.removed[0].1, Reason::Age);
}

#[test]
fn by_budget_least_recently_used_first_and_the_dry_run_through_the_binary() {
    let (api, id) = three_variants();
    age_variant(&api, &id, 300, DAY * 3, DAY * 3);
    age_variant(&api, &id, 200, DAY, DAY);
    age_variant(&api, &id, 100, DAY * 2, DAY * 2);
    let small = fs::metadata(variant(&api, &id, 100)).unwrap().len();
    let budget = fs::metadata(variant(&api, &id, 200)).unwrap().len() + small;

    let out = Command::new(env!("CARGO_BIN_EXE_imgserv-evict"))
        .arg("--config")
        .arg(api.site.config_path())
        .args(["--max-bytes", &budget.to_string(), "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&format!("{id}/300/200.jpg")) && listed.starts_with("Budget"),
        "{listed}"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(log.lines().count(), 1, "one summary line: {log}");
    assert_eq!(
        left(&api, &id),
        [300, 200, 100],
        "a dry run removes nothing"
    );

    let limits = EvictConfig {
        max_bytes: Some(budget),
        ..EvictConfig::default()
    };
    evict::evict(api.config(), &limits, false).unwrap();
    assert_eq!(left(&api, &id), [200, 100]);
    assert!(
        !files_below(&api.site.cache())
            .iter()
            .any(|f| f.contains("300x")),
        "canonical file gone too"
    );
}

#[test]
fn it_runs_the_delete_sweep() {
    let (api, id) = three_variants();
    api.catalog().delete(&id.parse().unwrap()).unwrap();
    let report = evict::evict(api.config(), &EvictConfig::default(), false).unwrap();
    assert_eq!(report.sweep.unwrap().removed, 2);
    assert_eq!(files_below(&api.site.cache()), Vec::<String>::new());
    assert!(api.catalog().pending().unwrap().is_empty());
}

/// The index's running totals and the sums of its rows: ((bytes, count), (bytes, count)).
fn totals_and_rows(api: &Api) -> ((i64, i64), (i64, i64)) {
    let conn = rusqlite::Connection::open(api.site.state().join("cache.sqlite")).unwrap();
    let pair = |sql: &str| {
        conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    };
    (
        pair("SELECT bytes, count FROM totals"),
        pair("SELECT coalesce(sum(bytes), 0), count(*) FROM variants"),
    )
}

#[test]
fn it_recounts_drifted_totals_from_the_rows() {
    let (api, _) = three_variants();
    let conn = rusqlite::Connection::open(api.site.state().join("cache.sqlite")).unwrap();
    conn.execute(
        "UPDATE totals SET bytes = bytes * 3 + 7, count = count + 5",
        [],
    )
    .unwrap();
    let (drifted, rows) = totals_and_rows(&api);
    assert_ne!(drifted, rows);
    let variants = rows.1;

    let out = Command::new(env!("CARGO_BIN_EXE_imgserv-evict"))
        .arg("--config")
        .arg(api.site.config_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (totals, rows) = totals_and_rows(&api);
    assert_eq!(totals, rows, "repaired");
    assert_eq!(rows.1, variants, "no variant removed");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&format!(
            "index totals corrected from {} variants ({} bytes) to {} ({} bytes)",
            drifted.1, drifted.0, rows.1, rows.0
        )),
        "{log}"
    );
}

/// Writes a temporary file as a crashed store leaves it, last written `ago`.
fn temporary(dir: &Path, name: &str, ago: Duration) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, b"half a variant").unwrap();
    age(&path, ago, ago);
    path
}

#[test]
fn it_removes_stale_temporaries_and_sources_with_nothing_left() {
    let (api, id) = three_variants();
    let canonical = files_below(&api.site.cache())
        .into_iter()
        .find(|f| f.starts_with("r/"))
        .unwrap();
    let dir = api.site.cache().join(&canonical);
    let dir = dir.parent().unwrap();
    let stale = temporary(
        dir,
        ".300x200.jpg.4242.ThreadId(1).17.tmp",
        Duration::from_secs(7200),
    );
    let link_tmp = temporary(
        &api.site.cache().join(&id),
        ".link.4242.ThreadId(1).tmp",
        Duration::from_secs(7200),
    );
    // A store may be writing this one right now.
    let young = temporary(
        dir,
        ".200x133.jpg.4243.ThreadId(2).18.tmp",
        Duration::from_secs(60),
    );
    let sources = || -> i64 {
        rusqlite::Connection::open(api.site.state().join("cache.sqlite"))
            .unwrap()
            .query_row("SELECT count(*) FROM sources", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(sources(), 1);

    // The dry run lists the stale temporaries and removes nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_imgserv-evict"))
        .arg("--config")
        .arg(api.site.config_path())
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.lines().all(|l| l.starts_with("Temporary\t14\t")),
        "{listed}"
    );
    assert!(stale.exists() && link_tmp.exists());

    // A source whose variants are all there keeps its row.
    let report = evict::evict(api.config(), &EvictConfig::default(), false).unwrap();
    assert_eq!(report.temporaries.len(), 2);
    assert!(
        !stale.exists() && !link_tmp.exists(),
        "stale temporaries removed"
    );
    assert!(young.exists(), "a young temporary may be a write in flight");
    assert_eq!(left(&api, &id), [300, 200, 100]);
    assert_eq!(report.sources_forgotten, 0);
    assert_eq!(sources(), 1);

    // Rows gone but files there (a lost index, say): the source keeps its row too.
    let conn = rusqlite::Connection::open(api.site.state().join("cache.sqlite")).unwrap();
    conn.execute("DELETE FROM variants", []).unwrap();
    let report = evict::evict(api.config(), &EvictConfig::default(), false).unwrap();
    assert_eq!(report.sources_forgotten, 0);
    assert_eq!(sources(), 1);

    // Every variant evicted: the source's row, which nothing refers to any more, goes.
    let all = EvictConfig {
        max_bytes: Some(0),
        ..EvictConfig::default()
    };
    let report = evict::evict(api.config(), &all, false).unwrap();
    assert_eq!(left(&api, &id), Vec::<u32>::new());
    assert_eq!(report.sources_forgotten, 1);
    assert_eq!(sources(), 0);
    assert!(
        report
            .summary()
            .contains("; 0 stale temporaries, 1 unused sources; "),
        "{}",
        report.summary()
    );
    // And the image still renders: its source is read again.
    assert_eq!(
        get_404(&api.app, &format!("/cache/{id}/300/200.jpg"), "").status,
        200
    );
    assert_eq!(sources(), 1);
}
