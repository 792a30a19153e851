//! Keyset pagination of `GET /api/images` through CGI runs of the built binary: following
//! `next` cursors to the end (newest first with equal timestamps, by name, full-text matches),
//! pages that neither overlap nor skip, `total` on the first page only, tampered or foreign
//! cursors refused with `400 bad-cursor`, the deprecated `page=` still answering, highlighted
//! snippets whose markup stays text, and a private category left out.

use imgserv::io::catalog::{Catalog, NewImage};
use rusqlite::params;
use serde_json::{Value, json};

use crate::api::{load, unsigned};
use crate::support::{Cgi, Site};

fn id(n: u32) -> String {
    imgserv::domain::original::OriginalId::of(&n.to_le_bytes())
        .unwrap()
        .as_str()
        .to_string()
}

/// Public reads, 3 per page; 10 images in `/a`, 5 in `/a/b`, 4 in `/private` (inherit off),
/// most of them created in the same millisecond.
fn site() -> Site {
    let site = Site::with_config("[api]\npublic_reads = true\n[dashboard]\nper_page = 3\n");
    let path = load(&site).state.catalog_path();
    let mut c = Catalog::open(&path).unwrap();
    for n in 0..19u32 {
        let category = match n {
            0..10 => "/a",
            10..15 => "/a/b",
            _ => "/private",
        };
        let Value::Object(meta) = json!({
            "title": format!("Fjord {:02} <script>alert({n})</script>", 30 - n),
        }) else {
            unreachable!()
        };
        c.insert(
            &NewImage {
                id: imgserv::domain::original::OriginalId::of(&n.to_le_bytes()).unwrap(),
                mime: "image/png".into(),
                width: 640,
                height: 480,
                bytes: 100,
                owner: None,
                category: category.into(),
                meta,
            },
            None,
        )
        .unwrap();
    }
    c.set_inherit("category:/private", false).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE images SET created = 5000 + (seq % 3)", params![])
        .unwrap();
    site
}

fn get(site: &Site, query: &str) -> (u16, Value) {
    let r = Cgi::request(site, &unsigned("GET", "/api/images", query, b"")).run();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// Every page from `query`, following `next`: the ids in order and the pages' sizes.
fn follow(site: &Site, query: &str) -> (Vec<String>, Vec<usize>) {
    let (mut ids, mut sizes) = (Vec::new(), Vec::new());
    let mut q = query.to_string();
    for _ in 0..50 {
        let (status, v) = get(site, &q);
        assert_eq!(status, 200, "{q}: {v}");
        let items = v["items"].as_array().unwrap();
        sizes.push(items.len());
        ids.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_string()));
        assert_eq!(
            v["total"].is_null(),
            q.contains("after="),
            "total on page 1 only: {v}"
        );
        match v["next"].as_str() {
            Some(next) => q = format!("{query}&after={next}"),
            None => return (ids, sizes),
        }
    }
    panic!("no end");
}

#[test]
fn rest_cursor_pagination_through_cgi() {
    let site = site();
    let path = load(&site).state.catalog_path();
    let c = Catalog::open(&path).unwrap();

    // Newest first, ties by id, a category and below; the private category left out.
    let (ids, sizes) = follow(&site, "category=%2Fa");
    assert_eq!(sizes, [3, 3, 3, 3, 3]);
    let mut want: Vec<(i64, String)> = (0..15)
        .map(|n| {
            let i = c.get(&id(n).parse().unwrap()).unwrap().unwrap();
            (-i.created, id(n))
        })
        .collect();
    want.sort();
    assert_eq!(ids, want.into_iter().map(|(_, i)| i).collect::<Vec<_>>());
    let (_, first) = get(&site, "category=%2Fa");
    assert_eq!(
        (first["total"].as_u64(), first["per_page"].as_u64()),
        (Some(15), Some(3))
    );

    // Everything an anonymous caller may see: never the private category.
    let (ids, _) = follow(&site, "per_page=4");
    assert_eq!(ids.len(), 15);
    assert!(!ids.iter().any(|i| (15..19).any(|n| id(n) == *i)));

    // By name ("Fjord 30" down to "Fjord 16": image 14 first).
    let (ids, _) = follow(&site, "category=%2Fa&order=name&per_page=4");
    assert_eq!(ids, (0..15).rev().map(id).collect::<Vec<_>>());

    // Full-text matches by relevance, with safe snippets.
    let (ids, sizes) = follow(&site, "q=script&category=%2Fa%2Fb");
    assert_eq!((ids.len(), sizes), (5, vec![3, 2]));
    let (_, v) = get(&site, "q=SCRIPT&category=%2Fa%2Fb&per_page=1");
    let snippet = v["items"][0]["snippet"].as_array().unwrap();
    let text: String = snippet
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(text.contains("<script>alert("), "{v}");
    assert!(
        snippet
            .iter()
            .any(|f| f["is_match"] == true && f["text"] == "script")
    );

    // Bad cursors: altered, foreign, garbage; page with after.
    let next = first["next"].as_str().unwrap().to_string();
    let mut altered = next.clone().into_bytes();
    altered[5] = if altered[5] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for q in [
        format!("category=%2Fa&after={altered}"),
        format!("category=%2Fa%2Fb&after={next}"),
        format!("category=%2Fa&order=name&after={next}"),
        format!("q=fjord&category=%2Fa&after={next}"),
        "after=%FF%FE".replace("%FF%FE", "not-a-cursor"),
    ] {
        let (status, v) = get(&site, &q);
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("bad-cursor")),
            "{q}: {v}"
        );
    }
    let (status, v) = get(&site, &format!("page=2&after={next}"));
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("bad-request")),
        "{v}"
    );
    let (status, v) = get(&site, "order=size");
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("bad-request")),
        "{v}"
    );

    // The deprecated offset pages still answer as before.
    let (status, v) = get(&site, "category=%2Fa&page=2&per_page=4");
    assert_eq!(status, 200);
    assert_eq!(
        (
            v["total"].as_u64(),
            v["page"].as_u64(),
            v["items"].as_array().unwrap().len()
        ),
        (Some(15), Some(2), 4)
    );
    assert!(v.get("next").is_none());
}
