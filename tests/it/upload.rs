//! The shared bad-input corpus (`reject:` rows of tests/fixtures/MANIFEST.tsv) through the
//! upload API: every file refused with a 4xx and a reason, nothing in the store, the catalog
//! or the pending rows; every good file accepted at its displayed size.

use crate::api::{Api, json};
use crate::redirector::files_below;
use crate::support::{fixture_bytes, repo_root};

fn manifest() -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (cols[0].to_string(), cols[6] == "ok")
        })
        .collect()
}

#[test]
fn every_bad_file_is_refused_and_nothing_is_stored() {
    let store = tempfile::tempdir().unwrap();
    let api = Api::new(&format!("[store]\ndir = \"{}\"\n", store.path().display()));
    let bad: Vec<String> = manifest()
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(f, _)| f)
        .collect();
    assert!(bad.len() >= 15);
    for file in &bad {
        let resp = api.call("POST", "/api/images", "", &fixture_bytes(file));
        let v = json(&resp);
        assert!((400..500).contains(&resp.status), "{file}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.len() > 5),
            "{file}: a reason, got {v}"
        );
    }
    assert_eq!(
        files_below(store.path()),
        Vec::<String>::new(),
        "nothing stored"
    );
    let catalog = api.catalog();
    assert_eq!(catalog.search(&Default::default()).unwrap().total, 0);
    assert!(
        catalog.pending().unwrap().is_empty(),
        "no upload intent left behind"
    );
}

#[test]
fn good_files_are_accepted() {
    let api = Api::new("");
    for (file, _) in manifest().into_iter().filter(|(_, ok)| *ok).take(12) {
        let (status, v) = api.upload(&file, "");
        assert_eq!(status, 201, "{file}: {v}");
    }
}

/// `imgserv-upload` on a directory tree: folders become categories, duplicates are skipped,
/// every non-image is reported and the rest goes on, the exit code says something failed.
#[test]
fn the_upload_tool_walks_directories_and_reports_each_failure() {
    use crate::support::Site;
    use std::process::Command;
    let site = Site::new();
    let tree = site.dir().join("incoming");
    std::fs::create_dir_all(tree.join("norway/fjords")).unwrap();
    let put = |name: &str, rel: &str| std::fs::write(tree.join(rel), fixture_bytes(name)).unwrap();
    put("photo-rocket-640x427.jpg", "rocket.jpg");
    put("photo-chelsea-cat-451x300.png", "norway/cat.png");
    put(
        "webp-lossy-hopper-128x128.webp",
        "norway/fjords/hopper.webp",
    );
    put("photo-rocket-640x427.jpg", "norway/fjords/same-rocket.jpg");
    put("bad-text-named.jpg", "norway/notes.jpg");
    put("bad-truncated-half-640x427.jpg", "broken.jpg");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_imgserv-upload"))
            .arg("--config")
            .arg(site.config_path())
            .args([
                "--category",
                "/travel",
                "--categories-from-dirs",
                "--meta",
                "by=test",
                "--meta",
                "year=2026",
            ])
            .arg(&tree)
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("6 files: 3 added, 1 already there, 2 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("notes.jpg: not an image"), "{stderr}");
    assert!(stderr.contains("broken.jpg: truncated image"), "{stderr}");
    let ids: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids.len(), 4, "{stdout}");
    assert!(ids.iter().all(|id| id.len() == 40));

    let config = imgserv::io::config::load(&site.config_path(), &[]).unwrap();
    let catalog = imgserv::io::catalog::Catalog::open(&config.state.catalog_path()).unwrap();
    let cats: Vec<(String, u64)> = catalog
        .categories()
        .unwrap()
        .into_iter()
        .map(|c| (c.path, c.images))
        .collect();
    // Depth first in name order: fjords/same-rocket.jpg comes before the top-level rocket.jpg,
    // so the photo is filed under fjords and rocket.jpg is the duplicate.
    assert!(stdout.contains("rocket.jpg (already there)"), "{stdout}");
    assert!(
        !stdout.contains("same-rocket.jpg (already there)"),
        "{stdout}"
    );
    for want in [
        ("/travel", 0),
        ("/travel/norway", 1),
        ("/travel/norway/fjords", 2),
    ] {
        assert!(
            cats.contains(&(want.0.to_string(), want.1)),
            "{want:?} in {cats:?}"
        );
    }
    let image = catalog.get(&ids[0].parse().unwrap()).unwrap().unwrap();
    assert_eq!(image.meta["by"], "test");
    assert_eq!(image.meta["year"], 2026);

    // Again: everything is already there.
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("6 files: 0 added, 4 already there, 2 failed"),
        "{stderr}"
    );
}
