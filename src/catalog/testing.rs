//! Helpers for the catalog's unit tests: a catalog in a temporary directory, and images
//! numbered 0, 1, 2, … with JSON metadata.

use serde_json::{Map, Value};

use super::{Catalog, Image, Inserted, NewImage, Page, Query};
use crate::original::OriginalId;

pub(super) fn open(t: &tempfile::TempDir) -> Catalog {
    Catalog::open(&t.path().join("state/catalog.sqlite")).unwrap()
}

pub(super) fn id(n: u32) -> OriginalId {
    OriginalId::of(&n.to_le_bytes()).unwrap()
}

pub(super) fn meta(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

pub(super) fn new(n: u32, category: &str, m: Value) -> NewImage {
    NewImage {
        id: id(n),
        mime: "image/jpeg".into(),
        width: 640,
        height: 480,
        bytes: 1000 + u64::from(n),
        owner: Some("alice".into()),
        category: category.into(),
        meta: meta(m),
    }
}

pub(super) fn add(c: &mut Catalog, n: u32, category: &str, m: Value) -> Image {
    match c.insert(&new(n, category, m), None).unwrap() {
        Inserted::New(i) => i,
        Inserted::Existed(_) => panic!("image {n} existed"),
    }
}

pub(super) fn search(c: &Catalog, q: Option<&str>, category: Option<&str>) -> Page {
    c.search(&Query {
        q: q.map(str::to_string),
        category: category.map(str::to_string),
        per_page: 100,
        ..Query::default()
    })
    .unwrap()
}

pub(super) fn ids(p: &Page) -> Vec<OriginalId> {
    p.items.iter().map(|i| i.id.clone()).collect()
}
