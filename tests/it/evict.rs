//! `imgserv-evict` on a real cache: by age, by access (the file's atime counts, for files the
//! web server serves without imgserv, and the 404 handler's links count with their canonical
//! file), by budget, the dry run, and the sweep it runs.

use std::fs::{self, File, FileTimes};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use imgserv::config::EvictConfig;
use imgserv::evict::{self, Reason};

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
