//! Categories: paths like `/travel/norway`, their canonical form, and the tree with counts.

use std::collections::BTreeMap;

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::{CatalogError, Categories, SqliteCatalog, shorten};

/// Most segments in a category path.
pub const MAX_CATEGORY_DEPTH: usize = 16;
/// Longest category path, in bytes, including slashes.
pub const MAX_CATEGORY_BYTES: usize = 255;

/// A category with the images directly in it and in it or below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Category {
    /// `/` or `/a/b`.
    pub path: String,
    /// Images in exactly this category.
    pub images: u64,
    /// Images in this category or any below it.
    pub total: u64,
}

impl Categories for SqliteCatalog {
    fn categories(&self) -> Result<Vec<Category>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT category, count(*) FROM images GROUP BY category")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        // Keyed by segments, so that '/a' < '/a/b' < '/a-b' (a parent before its children).
        let mut tree: BTreeMap<Vec<String>, (u64, u64)> = BTreeMap::new();
        tree.insert(Vec::new(), (0, 0));
        for row in rows {
            let (path, n) = row?;
            let n = n.max(0) as u64;
            let segments: Vec<String> = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            for depth in 0..=segments.len() {
                let entry = tree.entry(segments[..depth].to_vec()).or_default();
                entry.1 += n;
                if depth == segments.len() {
                    entry.0 += n;
                }
            }
        }
        Ok(tree
            .into_iter()
            .map(|(segments, (images, total))| Category {
                path: format!("/{}", segments.join("/")),
                images,
                total,
            })
            .collect())
    }

    fn category_has_images(&self, path: &str) -> Result<bool, CatalogError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM images WHERE category = ?1 LIMIT 1")?
            .query_row([path], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

/// The canonical form of a category path: `/` or `/a/b`. Leading, trailing and repeated
/// slashes are dropped (`travel//norway/` is `/travel/norway`); `.` and `..` segments,
/// control characters and backslashes are refused, as are more than [`MAX_CATEGORY_DEPTH`]
/// segments or [`MAX_CATEGORY_BYTES`] bytes. Case is kept.
pub fn normalize_category(raw: &str) -> Result<String, CatalogError> {
    let bad = |why: &str| CatalogError::BadCategory(format!("{}: {why}", shorten(raw)));
    let segments: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
    for s in &segments {
        if *s == "." || *s == ".." {
            return Err(bad("has a '.' or '..' segment"));
        }
        if s.chars().any(|c| c.is_control() || c == '\\') {
            return Err(bad("has a control character or a backslash"));
        }
        if s.trim() != *s {
            return Err(bad("a segment starts or ends with a space"));
        }
    }
    if segments.len() > MAX_CATEGORY_DEPTH {
        return Err(bad(&format!(
            "is deeper than {MAX_CATEGORY_DEPTH} segments"
        )));
    }
    let path = format!("/{}", segments.join("/"));
    if path.len() > MAX_CATEGORY_BYTES {
        return Err(bad(&format!("is longer than {MAX_CATEGORY_BYTES} bytes")));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::io::catalog::testing::*;

    #[test]
    fn category_normalisation() {
        #[rustfmt::skip]
        let good = [
            ("",                 "/"),
            ("/",                "/"),
            ("///",              "/"),
            ("travel",           "/travel"),
            ("/Travel/Norway/",  "/Travel/Norway"),
            ("a//b",             "/a/b"),
            ("/ø/日本 語/x.y",    "/ø/日本 語/x.y"),
            ("/...",             "/..."),
        ];
        for (raw, want) in good {
            assert_eq!(normalize_category(raw).unwrap(), want, "{raw:?}");
        }
        let deep = "/a".repeat(MAX_CATEGORY_DEPTH + 1);
        let long = format!("/{}", "x".repeat(MAX_CATEGORY_BYTES));
        for raw in [
            "/a/..", "./a", "/a/./b", "/a\nb", "/a\\b", "/a\0", "/ a", &deep, &long,
        ] {
            assert!(
                matches!(normalize_category(raw), Err(CatalogError::BadCategory(_))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn category_tree_counts() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        assert_eq!(
            c.categories().unwrap(),
            [Category {
                path: "/".into(),
                images: 0,
                total: 0
            }]
        );
        add(&mut c, 1, "/travel/norway", json!({}));
        add(&mut c, 2, "/travel/norway", json!({}));
        add(&mut c, 3, "/travel", json!({}));
        add(&mut c, 4, "/travel-x", json!({}));
        add(&mut c, 5, "/", json!({}));
        add(&mut c, 6, "/a/b/c", json!({}));
        let got: Vec<(String, u64, u64)> = c
            .categories()
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.images, c.total))
            .collect();
        let want = [
            ("/", 1, 6),
            ("/a", 0, 1),
            ("/a/b", 0, 1),
            ("/a/b/c", 1, 1),
            ("/travel", 1, 3),
            ("/travel/norway", 2, 2),
            ("/travel-x", 1, 1),
        ];
        let want: Vec<(String, u64, u64)> = want
            .iter()
            .map(|(p, i, t)| (p.to_string(), *i, *t))
            .collect();
        assert_eq!(got, want);
    }
}
