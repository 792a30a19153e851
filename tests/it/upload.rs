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
