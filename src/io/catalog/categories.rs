//! Categories: paths like `/travel/norway`, their canonical form, the tree with counts, and
//! the changes a user makes to it (create, rename or move, delete when empty).
//!
//! The tree is read from the `categories` table (schema step 7), whose counts triggers on
//! `images` keep exact: this module writes only what the triggers do not — empty categories,
//! and the rows, grants and settings that follow a rename or go with a deletion. Whether the
//! caller may make a change is `usecases::categories`'.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{CatalogError, Categories, SqliteCatalog, category_object, now_ms, shorten};
use crate::domain::original::OriginalId;
use crate::domain::permission::Privilege;

/// Most segments in a category path.
pub const MAX_CATEGORY_DEPTH: usize = 16;
/// Longest category path, in bytes, including slashes.
pub const MAX_CATEGORY_BYTES: usize = 255;

/// A category with the images directly in it and in it or below it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Category {
    /// `/` or `/a/b`.
    pub path: String,
    /// Images in exactly this category.
    pub images: u64,
    /// Images in this category or any below it.
    pub total: u64,
}

/// What [`Categories::rename_category`] moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryRenamed {
    /// Normalised paths.
    pub from: String,
    pub to: String,
    /// Stored categories moved: it and those below it.
    pub categories: u64,
    /// The images that moved with them (whose cached records are now stale).
    pub images: Vec<OriginalId>,
    /// Grants and settings rows moved.
    pub grants: u64,
    /// Grants and settings rows that were stored at the new path or below it (on no
    /// category) and were dropped.
    pub dropped: u64,
}

/// What [`Categories::delete_category`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryDeleted {
    /// Normalised path.
    pub path: String,
    /// Stored categories removed: it and the empty ones below it.
    pub categories: u64,
    /// Grants and settings rows removed with them.
    pub grants: u64,
}

/// SQL that is true when `column` is the path (or object name) `?n` or below it: equal, or
/// starting with `?n || '/'` — written as a range, which the column's index serves (`'0'` is
/// the character after `'/'`, so `/a-b` and `/a.b`, which sort between `/a` and `/a/`, stay
/// out). Not for the root, whose children do not start with `//`.
fn at_or_below(column: &str, n: u8) -> String {
    format!("({column} = ?{n} OR ({column} >= ?{n} || '/' AND {column} < ?{n} || '0'))")
}

/// Whether `path` (normalised) shows in the tree.
pub(super) fn exists(conn: &Connection, path: &str) -> Result<bool, CatalogError> {
    if path == "/" {
        return Ok(true);
    }
    Ok(conn
        .prepare_cached(&format!(
            "SELECT 1 FROM categories WHERE {} LIMIT 1",
            at_or_below("path", 1)
        ))?
        .query_row([path], |_| Ok(()))
        .optional()?
        .is_some())
}

/// `path`'s segments.
fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

impl Categories for SqliteCatalog {
    fn categories(&self) -> Result<Vec<Category>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, images FROM categories")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        // Keyed by segments, so that '/a' < '/a/b' < '/a-b' (a parent before its children).
        let mut tree: BTreeMap<Vec<String>, (u64, u64)> = BTreeMap::new();
        tree.insert(Vec::new(), (0, 0));
        for row in rows {
            let (path, n) = row?;
            let n = n.max(0) as u64;
            let segments: Vec<String> = segments(&path).into_iter().map(str::to_string).collect();
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
            .prepare_cached("SELECT 1 FROM categories WHERE path = ?1 AND images > 0")?
            .query_row([path], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn category_exists(&self, path: &str) -> Result<bool, CatalogError> {
        exists(&self.conn, &normalize_category(path)?)
    }

    fn create_category(
        &mut self,
        path: &str,
        creator: Option<(&str, Privilege)>,
    ) -> Result<(), CatalogError> {
        let path = normalize_category(path)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if exists(&tx, &path)? {
            return Err(CatalogError::CategoryExists(path));
        }
        tx.prepare_cached("INSERT INTO categories (path, images) VALUES (?1, 0)")?
            .execute([&path])?;
        if let Some((user, privilege)) = creator {
            super::grants::creator_grant(&tx, &path, user, privilege)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn rename_category(&mut self, from: &str, to: &str) -> Result<CategoryRenamed, CatalogError> {
        let (from, to) = (normalize_category(from)?, normalize_category(to)?);
        check_change(&from, Some(&to))?;
        let (old_object, new_object) = (category_object(&from), category_object(&to));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !exists(&tx, &from)? {
            return Err(CatalogError::CategoryNotFound(from));
        }
        if exists(&tx, &to)? {
            return Err(CatalogError::CategoryExists(to));
        }
        // Every path that moves, checked against the limits at its new place.
        let moving: Vec<String> = tx
            .prepare(&format!(
                "SELECT path FROM categories WHERE {0}
                 UNION SELECT substr(object, 10) FROM grants WHERE {1}
                 UNION SELECT substr(object, 10) FROM object_settings WHERE {1}",
                at_or_below("path", 1),
                at_or_below("object", 2)
            ))?
            .query_map(params![from, old_object], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for path in &moving {
            let moved = format!("{to}{}", &path[from.len()..]);
            if normalize_category(&moved)? != moved {
                return Err(CatalogError::BadCategory(shorten(&moved)));
            }
        }
        // Grants and settings stored where the tree goes are on no category: they go, so
        // that the moved tree keeps exactly its own.
        let mut dropped = 0;
        for table in ["grants", "object_settings"] {
            dropped += tx
                .prepare(&format!(
                    "DELETE FROM {table} WHERE {}",
                    at_or_below("object", 1)
                ))?
                .execute([&new_object])?;
        }
        // The new rows first (empty ones move too), then the images, whose triggers count
        // them into the new rows; the old rows are then empty and go.
        let categories = tx
            .prepare(&format!(
                "INSERT INTO categories (path, images)
                 SELECT ?2 || substr(path, length(?1) + 1), 0 FROM categories WHERE {}",
                at_or_below("path", 1)
            ))?
            .execute(params![from, to])?;
        let images: Vec<OriginalId> = tx
            .prepare(&format!(
                "SELECT id FROM images WHERE {}",
                at_or_below("category", 1)
            ))?
            .query_map([&from], |r| r.get::<_, String>(0))?
            .map(|id| {
                id.map_err(CatalogError::from)?
                    .parse()
                    .map_err(|_| super::bad_column(0, "id"))
            })
            .collect::<Result<_, _>>()?;
        tx.prepare(&format!(
            "UPDATE images_fts SET category = ?2 || substr(category, length(?1) + 1)
             WHERE rowid IN (SELECT seq FROM images WHERE {})",
            at_or_below("category", 1)
        ))?
        .execute(params![from, to])?;
        tx.prepare(&format!(
            "UPDATE images SET category = ?2 || substr(category, length(?1) + 1),
                 updated = max(updated, ?3)
             WHERE {}",
            at_or_below("category", 1)
        ))?
        .execute(params![from, to, now_ms()])?;
        tx.prepare(&format!(
            "DELETE FROM categories WHERE {}",
            at_or_below("path", 1)
        ))?
        .execute([&from])?;
        let mut grants = 0;
        for table in ["grants", "object_settings"] {
            grants += tx
                .prepare(&format!(
                    "UPDATE {table} SET object = ?2 || substr(object, length(?1) + 1) WHERE {}",
                    at_or_below("object", 1)
                ))?
                .execute(params![old_object, new_object])?;
        }
        tx.commit()?;
        Ok(CategoryRenamed {
            from,
            to,
            categories: categories as u64,
            images,
            grants: grants as u64,
            dropped: dropped as u64,
        })
    }

    fn delete_category(&mut self, path: &str) -> Result<CategoryDeleted, CatalogError> {
        let path = normalize_category(path)?;
        check_change(&path, None)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !exists(&tx, &path)? {
            return Err(CatalogError::CategoryNotFound(path));
        }
        // Counted from the images themselves: what must not be orphaned.
        let images: i64 = tx
            .prepare_cached(&format!(
                "SELECT count(*) FROM images WHERE {}",
                at_or_below("category", 1)
            ))?
            .query_row([&path], |r| r.get(0))?;
        if images > 0 {
            return Err(CatalogError::CategoryNotEmpty {
                path,
                images: images as u64,
            });
        }
        let categories = tx
            .prepare_cached(&format!(
                "DELETE FROM categories WHERE {}",
                at_or_below("path", 1)
            ))?
            .execute([&path])?;
        let object = category_object(&path);
        let mut grants = 0;
        for table in ["grants", "object_settings"] {
            grants += tx
                .prepare(&format!(
                    "DELETE FROM {table} WHERE {}",
                    at_or_below("object", 1)
                ))?
                .execute([&object])?;
        }
        tx.commit()?;
        Ok(CategoryDeleted {
            path,
            categories: categories as u64,
            grants: grants as u64,
        })
    }
}

/// The refusals of a rename (`to`) or a deletion (`None`) of a normalised category that need
/// no catalog ([`CatalogError::BadCategoryChange`]): the root cannot be renamed, moved or
/// deleted, and a category cannot move below itself. For callers that check them before
/// anything else (permissions); the catalog checks them again.
pub fn check_change(path: &str, to: Option<&str>) -> Result<(), CatalogError> {
    if path == "/" {
        let what = if to.is_some() {
            "renamed or moved"
        } else {
            "deleted"
        };
        return Err(CatalogError::BadCategoryChange(format!(
            "the root category cannot be {what}"
        )));
    }
    if let Some(to) = to.filter(|to| to.starts_with(&format!("{path}/"))) {
        return Err(CatalogError::BadCategoryChange(format!(
            "{} cannot move below itself ({})",
            shorten(path),
            shorten(to)
        )));
    }
    Ok(())
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
    use crate::io::catalog::Catalog;
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

    /// The tree as (path, images, total).
    fn tree(c: &Catalog) -> Vec<(String, u64, u64)> {
        c.categories()
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.images, c.total))
            .collect()
    }

    fn rows(want: &[(&str, u64, u64)]) -> Vec<(String, u64, u64)> {
        want.iter()
            .map(|(p, i, t)| (p.to_string(), *i, *t))
            .collect()
    }

    /// Every stored count equals the images' own, and every image's category is stored.
    fn assert_exact(t: &tempfile::TempDir) {
        let conn = raw(t);
        let wrong: Vec<(String, i64, i64)> = conn
            .prepare(
                "SELECT c.path, c.images, (SELECT count(*) FROM images i WHERE i.category = c.path)
                 FROM categories c
                 WHERE c.images != (SELECT count(*) FROM images i WHERE i.category = c.path)",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(wrong, [], "stored counts that differ from the images'");
        let unstored: i64 = conn
            .query_row(
                "SELECT count(*) FROM images WHERE category NOT IN (SELECT path FROM categories)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unstored, 0, "images in a category without a row");
    }

    #[test]
    fn counts_stay_exact_through_inserts_moves_deletes_and_renames() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        add(&mut c, 1, "/a/b", json!({}));
        add(&mut c, 2, "/a", json!({}));
        add(&mut c, 3, "/x", json!({}));
        add(&mut c, 4, "/x", json!({}));
        // The same bytes again change nothing.
        c.insert(&new(1, "/elsewhere", json!({})), None).unwrap();
        assert_exact(&t);
        assert_eq!(
            tree(&c),
            rows(&[("/", 0, 4), ("/a", 1, 2), ("/a/b", 1, 1), ("/x", 2, 2)])
        );
        // A move out leaves the category, empty; metadata changes and a move to the same
        // category count nothing.
        c.move_to(&id(1), "/y").unwrap();
        c.move_to(&id(3), "/x").unwrap();
        c.merge_meta(&id(4), &meta(json!({"t": 1}))).unwrap();
        c.delete(&id(2)).unwrap();
        assert_exact(&t);
        assert_eq!(
            tree(&c),
            rows(&[
                ("/", 0, 3),
                ("/a", 0, 0),
                ("/a/b", 0, 0),
                ("/x", 2, 2),
                ("/y", 1, 1)
            ])
        );
        // A rename carries the counts; raw SQL (as a script or the benchmark writes) is
        // counted by the triggers as well.
        c.rename_category("/x", "/z/x").unwrap();
        raw(&t)
            .execute_batch(&format!(
                "INSERT INTO images (id, mime, ext, width, height, bytes, created, updated, category, meta)
                 VALUES ('{}', 'image/png', 'png', 1, 1, 1, 0, 0, '/raw', '{{}}');
                 UPDATE images SET category = '/raw' WHERE id = '{}';",
                id(9).as_str(),
                id(1).as_str()
            ))
            .unwrap();
        assert_exact(&t);
        assert_eq!(
            tree(&c),
            rows(&[
                ("/", 0, 4),
                ("/a", 0, 0),
                ("/a/b", 0, 0),
                ("/raw", 2, 2),
                ("/y", 0, 0),
                ("/z", 0, 2),
                ("/z/x", 2, 2)
            ])
        );
        assert!(c.category_has_images("/raw").unwrap());
        assert!(!c.category_has_images("/y").unwrap());
        assert!(!c.category_has_images("/z").unwrap());
    }

    fn g(grantee: &str, privilege: &str) -> crate::domain::permission::Grant {
        crate::domain::permission::Grant {
            grantee: grantee.parse().unwrap(),
            privilege: privilege.parse().unwrap(),
        }
    }

    #[test]
    fn a_rename_carries_images_their_search_text_grants_and_settings() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        c.add_user("ann").unwrap();
        let before = add(&mut c, 1, "/trips/norway", json!({"title": "Fjord"}));
        add(&mut c, 2, "/trips", json!({"title": "Bridge"}));
        add(&mut c, 3, "/trips-x", json!({"title": "Other"}));
        c.create_category("/trips/empty", None).unwrap();
        for (object, grantee) in [
            ("category:/trips", "user:ann"),
            ("category:/trips/norway", "public"),
            ("category:/trips-x", "registered"),
            // On no category yet: dropped when the tree moves there.
            ("category:/travel/2024/stale", "public"),
        ] {
            c.grant(object, &g(grantee, "view"), None).unwrap();
        }
        c.set_inherit("category:/trips/norway", false).unwrap();

        let done = c.rename_category("trips/", "/travel//2024").unwrap();
        assert_eq!(
            (done.from.as_str(), done.to.as_str()),
            ("/trips", "/travel/2024")
        );
        assert_eq!((done.categories, done.grants, done.dropped), (3, 3, 1));
        let mut moved = done.images.clone();
        moved.sort();
        let mut want = vec![id(1), id(2)];
        want.sort();
        assert_eq!(moved, want);

        // The images, with a later update time.
        let after = c.get(&id(1)).unwrap().unwrap();
        assert_eq!(after.category, "/travel/2024/norway");
        assert!(after.updated >= before.updated);
        assert_eq!(c.get(&id(3)).unwrap().unwrap().category, "/trips-x");
        // Their full-text rows: found by the new path's words, no longer by the old.
        let mut found = ids(&search(&c, Some("2024"), None));
        found.sort();
        assert_eq!(found, want);
        assert_eq!(ids(&search(&c, Some("trips"), None)), [id(3)]);
        assert_eq!(
            ids(&search(&c, Some("fjord"), Some("/travel/2024"))),
            [id(1)]
        );
        // The tree, the empty category included.
        assert_eq!(
            tree(&c),
            rows(&[
                ("/", 0, 3),
                ("/travel", 0, 2),
                ("/travel/2024", 1, 2),
                ("/travel/2024/empty", 0, 0),
                ("/travel/2024/norway", 1, 1),
                ("/trips-x", 1, 1)
            ])
        );
        assert_exact(&t);
        // Grants and settings moved; the sibling's stayed; the stale one went.
        let grants = |object: &str| -> Vec<String> {
            c.grants_on(object)
                .unwrap()
                .into_iter()
                .map(|s| s.grant.grantee.to_string())
                .collect()
        };
        assert_eq!(grants("category:/travel/2024"), ["user:ann"]);
        assert_eq!(grants("category:/travel/2024/norway"), ["public"]);
        assert_eq!(grants("category:/trips-x"), ["registered"]);
        assert!(grants("category:/trips").is_empty());
        assert!(grants("category:/trips/norway").is_empty());
        assert!(grants("category:/travel/2024/stale").is_empty());
        assert!(!c.chain("category:/travel/2024/norway").unwrap()[0].inherit);
        assert!(c.chain("category:/trips/norway").unwrap()[0].inherit);
        let nodes = c.all_nodes().unwrap();
        assert!(
            nodes.keys().all(|o| !o.starts_with("category:/trips/")),
            "{nodes:?}"
        );
    }

    #[test]
    fn changes_the_tree_cannot_make_are_refused_and_change_nothing() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        add(&mut c, 1, "/a/b", json!({}));
        add(&mut c, 2, "/p/q", json!({}));
        let deep = format!("/a{}", "/d".repeat(MAX_CATEGORY_DEPTH - 1));
        c.create_category(&deep, None).unwrap();
        let before = (
            tree(&c),
            crate::io::catalog::testing::rows(&t.path().join("state/catalog.sqlite")),
        );
        let refused = |r: Result<CategoryRenamed, CatalogError>| r.unwrap_err();
        #[rustfmt::skip]
        let renames: &[(&str, &str, &str)] = &[
            ("/",      "/n",      "BadCategoryChange"),
            ("/a",     "/a/b/c",  "BadCategoryChange"),
            ("/nope",  "/n",      "CategoryNotFound"),
            ("/a",     "/p",      "CategoryExists"),
            // Implied by /p/q: it shows in the tree.
            ("/a/b",   "/p",      "CategoryExists"),
            ("/a/b",   "/p/q",    "CategoryExists"),
            ("/a",     "/",       "CategoryExists"),
            // The deepest category below /a would pass the limit.
            ("/a",     "/z/y",    "BadCategory"),
            ("/a",     "/x/../y", "BadCategory"),
        ];
        for (from, to, want) in renames {
            let e = refused(c.rename_category(from, to));
            assert!(format!("{e:?}").starts_with(want), "{from} -> {to}: {e:?}");
        }
        for (path, want) in [
            ("/", "CategoryExists"),
            ("/a", "CategoryExists"),
            ("/p", "CategoryExists"),
            ("/a/b", "CategoryExists"),
        ] {
            let e = c.create_category(path, None).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "create {path}: {e:?}");
        }
        for (path, want) in [("/", "BadCategoryChange"), ("/nope", "CategoryNotFound")] {
            let e = c.delete_category(path).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "delete {path}: {e:?}");
        }
        let e = c.delete_category("/a").unwrap_err();
        assert!(
            matches!(&e, CatalogError::CategoryNotEmpty { path, images: 1 } if path == "/a"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "category \"/a\" holds 1 image(s), in it or below it: move or delete them first"
        );
        assert!(matches!(
            c.delete_category("/a/b"),
            Err(CatalogError::CategoryNotEmpty { images: 1, .. })
        ));
        let after = (
            tree(&c),
            crate::io::catalog::testing::rows(&t.path().join("state/catalog.sqlite")),
        );
        assert_eq!(after, before, "nothing changed");
        // One level less deep fits.
        c.rename_category("/a", "/z").unwrap();
        assert_exact(&t);
    }

    #[test]
    fn create_and_delete_empty_categories() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        c.add_user("ann").unwrap();
        c.add_user("bob").unwrap();
        // Created empty, it shows (with its implied parent) and is its creator's.
        c.create_category("/e/f", Some(("ann", Privilege::Admin)))
            .unwrap();
        c.create_category("/e-x", None).unwrap();
        assert_eq!(
            tree(&c),
            rows(&[("/", 0, 0), ("/e", 0, 0), ("/e/f", 0, 0), ("/e-x", 0, 0)])
        );
        assert!(c.category_exists("/e").unwrap() && c.category_exists("/e/f").unwrap());
        assert!(!c.category_exists("/e/g").unwrap() && c.category_exists("/").unwrap());
        assert_eq!(
            c.grants_on("category:/e/f").unwrap()[0].grant,
            g("user:ann", "admin")
        );
        // The first upload into it is not its creation: no grant for the uploader; nor for an
        // upload into its implied parent.
        for (n, category) in [(1, "/e/f"), (2, "/e")] {
            let mut img = new(n, category, json!({}));
            img.owner = Some("bob".into());
            c.insert_granting(&img, None, Some(Privilege::Admin))
                .unwrap();
        }
        assert_eq!(c.grants_on("category:/e/f").unwrap().len(), 1);
        assert!(c.grants_on("category:/e").unwrap().is_empty());
        // Emptied, it can go, with the empty rows below it and their grants and settings.
        c.delete(&id(1)).unwrap();
        c.delete(&id(2)).unwrap();
        c.create_category("/e/f/g", None).unwrap();
        c.set_inherit("category:/e/f/g", false).unwrap();
        c.grant("category:/e-x", &g("public", "view"), None)
            .unwrap();
        let gone = c.delete_category("/e").unwrap();
        assert_eq!(
            gone,
            CategoryDeleted {
                path: "/e".into(),
                categories: 3,
                grants: 2
            }
        );
        assert_eq!(tree(&c), rows(&[("/", 0, 0), ("/e-x", 0, 0)]));
        assert!(c.grants_on("category:/e/f").unwrap().is_empty());
        assert_eq!(c.all_nodes().unwrap().len(), 1, "only /e-x's grant is left");
        // An implied category goes with what is below it.
        c.create_category("/i/j", None).unwrap();
        assert_eq!(c.delete_category("/i").unwrap().categories, 1);
        assert!(!c.category_exists("/i").unwrap());
        assert_exact(&t);
    }
}
