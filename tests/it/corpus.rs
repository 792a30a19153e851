//! The whole test corpus (`tests/fixtures/MANIFEST.tsv`) through the handler, in process: every
//! `ok` file renders to the promised size, every `reject:` file gets a 4xx with a reason and
//! leaves nothing in the cache.

use imgserv::domain::geometry::{Raster, Size, fit};
use imgserv::io::http::{Handler, Request};
use imgserv::web::api::App;

use crate::redirector::{dims, files_below, variant_file, variant_rows};
use crate::support::{Site, repo_root};

/// One MANIFEST row.
struct Entry {
    file: String,
    format: String,
    width: u32,
    height: u32,
    ok: bool,
}

impl Entry {
    /// The displayed size: the stored one, turned for EXIF orientations 5–8.
    fn displayed(&self) -> Size {
        let turned = (5..=8).any(|o| self.format.contains(&format!("EXIF orientation={o}")));
        if turned {
            Size::new(self.height, self.width)
        } else {
            Size::new(self.width, self.height)
        }
    }
}

fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Entry {
                file: cols[0].to_string(),
                format: cols[2].to_string(),
                width: cols[3].parse().unwrap_or(0),
                height: cols[4].parse().unwrap_or(0),
                ok: cols[6] == "ok",
            }
        })
        .collect()
}

fn app(site: &Site) -> App {
    App::new(imgserv::io::config::load(&site.config_path(), &[]).unwrap())
}

fn get(app: &App, query: &str) -> imgserv::io::http::Response {
    app.handle(Request::get("", query))
}

#[test]
fn every_good_file_renders_at_the_promised_size() {
    let site = Site::new();
    let app = app(&site);
    let entries = manifest();
    assert!(entries.iter().filter(|e| e.ok).count() >= 40);
    for e in entries.iter().filter(|e| e.ok) {
        site.add_original(&e.file);
        for bbox in [Size::new(300, 300), Size::new(64, 2000)] {
            let q = format!("src={}&width={}&height={}", e.file, bbox.width, bbox.height);
            let resp = get(&app, &q);
            assert_eq!(
                resp.status,
                302,
                "{}: {}",
                e.file,
                String::from_utf8_lossy(&resp.body)
            );
            let bytes =
                std::fs::read(variant_file(&site, resp.header("location").unwrap())).unwrap();
            let want = fit(e.displayed(), bbox, Raster::default());
            assert_eq!(dims(&bytes).1, want, "{} in {bbox}", e.file);
        }
    }
}

#[test]
fn every_bad_file_is_refused_with_a_reason_and_leaves_nothing() {
    let site = Site::new();
    let app = app(&site);
    let entries = manifest();
    assert!(entries.iter().filter(|e| !e.ok).count() >= 15);
    for e in entries.iter().filter(|e| !e.ok) {
        site.add_original(&e.file);
        let resp = get(&app, &format!("src={}&width=300&height=300", e.file));
        let body = String::from_utf8_lossy(&resp.body);
        assert!(
            (400..500).contains(&resp.status),
            "{}: {} {body}",
            e.file,
            resp.status
        );
        assert!(body.len() > 10, "{}: a reason, got {body:?}", e.file);
        assert!(
            files_below(&site.cache()).is_empty(),
            "{}: left files",
            e.file
        );
    }
    assert_eq!(variant_rows(&site), 0);
}
