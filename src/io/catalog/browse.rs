//! Browsing page by page with cursors (keyset pagination): a category's images newest first or
//! by name, and full-text matches by relevance, each page starting after a
//! [`Position`] — never an `OFFSET`, so page 1,000 costs what page 1 costs.
//!
//! - A listing of several categories (a category and those below it) reads, for each one,
//!   the next `limit` keys after the cursor from its own index (`images_category_created`,
//!   `images_category_name`, schema step 6: one seek each), merges them, and reads the
//!   `limit` rows that win: `k` categories cost `k` seeks, whatever the page number.
//! - A category and everything below it: `below` (one scan in order when the subtree is
//!   large, the seeks above when it is small).
//! - Full-text matches: `matches` (the newest `matches::RANKED` by bm25,
//!   then the rest newest first).
//!
//! Which categories to list (those the caller may view) is the caller's choice; this module
//! only reads.

use std::cmp::Ordering;
use std::collections::HashMap;

use rusqlite::params;
use rusqlite::types::Value;
use serde::Serialize;

use super::images::{IMAGE_COLUMNS, image_row};
use super::{Browse, CatalogError, Image, SqliteCatalog, collect};
use crate::domain::cursor::{Order, Position};

/// The name an image is listed by (`Order::Name`): exactly the expression of the index
/// `images_category_name` (schema step 6), or SQLite would not use it.
pub(super) const NAME_KEY: &str =
    "substr(coalesce(nullif(trim(CASE json_type(meta, '$.title') WHEN 'text'
        THEN json_extract(meta, '$.title') END), ''), id), 1, 100)";

/// Most rows one call returns.
pub const MAX_LIMIT: u32 = 101;

/// An image and where it sits in its listing's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub image: Image,
    pub position: Position,
}

/// A full-text match: the image, its position, and the best fragment of its metadata with the
/// matched words marked.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub image: Image,
    pub position: Position,
    pub snippet: Vec<Fragment>,
}

/// A piece of text, matched or not: what a page shows highlighted is structure, never markup
/// (the text is escaped like any other when shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fragment {
    pub text: String,
    pub is_match: bool,
}

/// Marks the snippet's matches (control characters: the flattened metadata never needs them
/// to be read; one inside a value only moves a highlight, it never becomes markup).
const OPEN: char = '\u{2}';
const CLOSE: char = '\u{3}';

impl Browse for SqliteCatalog {
    fn listing(
        &self,
        categories: &[String],
        order: Order,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Listed>, CatalogError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let (k, id) = cursor_keys(order, after)?;
        let (key_sql, sort, cond) = keyset(order, after.is_some());
        // `key` is an alias SQLite resolves to the expression, so the index still applies.
        let sql = format!(
            "SELECT {key_sql} AS key, id FROM images WHERE category = ?1 {cond}
             ORDER BY {sort} LIMIT ?4"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut keys: Vec<Key> = Vec::new();
        for category in categories {
            let rows = stmt.query_map(params![category, k, id, limit], |r| {
                Ok((r.get::<_, Value>(0)?, r.get::<_, String>(1)?))
            })?;
            keys.extend(collect(rows)?);
        }
        keys.sort_by(|a, b| compare(order, a, b));
        keys.truncate(limit as usize);
        self.listed(order, keys)
    }

    fn listing_below(
        &self,
        category: &str,
        hidden: &[String],
        order: Order,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Listed>, CatalogError> {
        self.below(category, hidden, order, after, limit)
    }

    fn matching(
        &self,
        words: &str,
        category: Option<&str>,
        hidden: &[String],
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Hit>, CatalogError> {
        self.matches(words, category, hidden, after, limit)
    }
}

impl SqliteCatalog {
    /// The images of `keys` (in a listing's order) with their positions.
    pub(super) fn listed(&self, order: Order, keys: Vec<Key>) -> Result<Vec<Listed>, CatalogError> {
        let ids: Vec<&str> = keys.iter().map(|(_, id)| id.as_str()).collect();
        let mut rows = self.rows(&ids)?;
        keys.into_iter()
            .filter_map(|(key, id)| {
                let image = rows.remove(&id)?;
                let position = match (order, key) {
                    (Order::Newest, _) => Position::Newest {
                        created: image.created,
                        id,
                    },
                    (Order::Name, Value::Text(key)) => Position::Name { key, id },
                    (Order::Name, _) => return Some(Err(super::bad_column(0, "key"))),
                };
                Some(Ok(Listed { image, position }))
            })
            .collect()
    }

    /// The rows of `ids`, by id, in one query.
    fn rows(&self, ids: &[&str]) -> Result<HashMap<String, Image>, CatalogError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images i WHERE i.id IN (SELECT value FROM json_each(?1))"
        ))?;
        let rows = collect(stmt.query_map([list], image_row)?)?;
        Ok(rows
            .into_iter()
            .map(|i| (i.id.as_str().to_string(), i))
            .collect())
    }
}

/// A listing's sort key (`created` or the name key) and the image's id.
pub(super) type Key = (Value, String);

/// The cursor as SQL parameters (the key, the id), checked against the order.
pub(super) fn cursor_keys(
    order: Order,
    after: Option<&Position>,
) -> Result<(Option<Value>, Option<&String>), CatalogError> {
    match (order, after) {
        (_, None) => Ok((None, None)),
        (Order::Newest, Some(Position::Newest { created, id })) => {
            Ok((Some(Value::Integer(*created)), Some(id)))
        }
        (Order::Name, Some(Position::Name { key, id })) => {
            Ok((Some(Value::Text(key.clone())), Some(id)))
        }
        _ => {
            Err(crate::domain::query::QueryError::BadCursor("made for another order".into()).into())
        }
    }
}

/// The SQL of a listing in `order`: the key's expression, the `ORDER BY`, and the condition
/// "after the cursor" on `?2` (key) and `?3` (id) when there is one.
pub(super) fn keyset(order: Order, after: bool) -> (&'static str, &'static str, &'static str) {
    let (key_sql, sort) = match order {
        Order::Newest => ("created", "created DESC, id"),
        Order::Name => (NAME_KEY, "key COLLATE NOCASE, id"),
    };
    let cond = match (order, after) {
        (_, false) => "",
        (Order::Newest, true) => "AND created <= ?2 AND (created < ?2 OR id > ?3)",
        (Order::Name, true) => {
            "AND key COLLATE NOCASE >= ?2 AND (key COLLATE NOCASE > ?2 OR id > ?3)"
        }
    };
    (key_sql, sort, cond)
}

/// The order of two keys of a listing, as SQLite orders them: creation time descending, or
/// the name with `NOCASE` (ASCII letters folded, then bytes); then the id.
fn compare(order: Order, a: &Key, b: &Key) -> Ordering {
    use rusqlite::types::Value::{Integer, Text};
    let first = match (order, &a.0, &b.0) {
        (Order::Newest, Integer(x), Integer(y)) => y.cmp(x),
        (Order::Name, Text(x), Text(y)) => nocase(x).cmp(nocase(y)),
        _ => Ordering::Equal,
    };
    first.then_with(|| a.1.cmp(&b.1))
}

fn nocase(s: &str) -> impl Iterator<Item = u8> + '_ {
    // SQLite's NOCASE folds A-Z only, then compares bytes.
    s.bytes().map(|b| b.to_ascii_lowercase())
}

/// A snippet marked with [`OPEN`] and [`CLOSE`] as fragments; the flattened metadata's line
/// breaks (between values) become ` · `.
pub(super) fn fragments(marked: &str) -> Vec<Fragment> {
    let mut out: Vec<Fragment> = Vec::new();
    let mut text = String::new();
    let mut is_match = false;
    let flush = |text: &mut String, is_match: bool, out: &mut Vec<Fragment>| {
        if !text.is_empty() {
            out.push(Fragment {
                text: std::mem::take(text),
                is_match,
            });
        }
    };
    for c in marked.trim().chars() {
        match c {
            OPEN => {
                flush(&mut text, is_match, &mut out);
                is_match = true;
            }
            CLOSE => {
                flush(&mut text, is_match, &mut out);
                is_match = false;
            }
            '\n' => text.push_str(" · "),
            c => text.push(c),
        }
    }
    flush(&mut text, is_match, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use rusqlite::params;
    use serde_json::json;

    use super::*;
    use crate::domain::original::OriginalId;
    use crate::io::catalog::testing::*;

    /// Every page of a listing, following positions.
    fn all_pages(c: &SqliteCatalog, cats: &[&str], order: Order, per: u32) -> Vec<OriginalId> {
        let cats: Vec<String> = cats.iter().map(|c| c.to_string()).collect();
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = c.listing(&cats, order, after.as_ref(), per).unwrap();
            assert!(page.len() <= per as usize);
            out.extend(page.iter().map(|l| l.image.id.clone()));
            match page.last() {
                Some(l) if page.len() == per as usize => after = Some(l.position.clone()),
                _ => return out,
            }
        }
    }

    fn sqlite(t: &tempfile::TempDir) -> SqliteCatalog {
        SqliteCatalog::open(&t.path().join("state/catalog.sqlite")).unwrap()
    }

    #[test]
    fn pages_are_stable_with_equal_timestamps_across_categories() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let raw = raw(&t);
        for n in 0..40 {
            let cat = ["/a", "/a/b", "/c"][n as usize % 3];
            add(&mut c, n, cat, json!({"n": n}));
            // Four timestamps only: most rows tie, and ties go by id.
            raw.execute(
                "UPDATE images SET created = ?1 WHERE id = ?2",
                params![1000 + i64::from(n % 4), id(n).as_str()],
            )
            .unwrap();
        }
        let c = sqlite(&t);
        let mut want: Vec<(i64, String)> = (0..40)
            .filter(|n| n % 3 != 2)
            .map(|n| (-(1000 + i64::from(n % 4)), id(n).as_str().to_string()))
            .collect();
        want.sort();
        let want: Vec<String> = want.into_iter().map(|(_, id)| id).collect();
        for per in [1, 3, 7, 26, 100] {
            let got: Vec<String> = all_pages(&c, &["/a", "/a/b"], Order::Newest, per)
                .iter()
                .map(|i| i.as_str().to_string())
                .collect();
            assert_eq!(got, want, "per page {per}");
        }
        assert_eq!(all_pages(&c, &["/c"], Order::Newest, 5).len(), 13);
        assert!(all_pages(&c, &["/nowhere"], Order::Newest, 5).is_empty());
        assert!(all_pages(&c, &[], Order::Newest, 5).is_empty());
    }

    #[test]
    fn by_name_is_the_title_or_the_id_case_folded() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        add(&mut c, 1, "/x", json!({"title": "banana"}));
        add(&mut c, 2, "/x", json!({"title": "Apple"}));
        add(&mut c, 3, "/y", json!({"title": "  cherry  "}));
        add(&mut c, 4, "/x", json!({"title": 42}));
        add(&mut c, 5, "/y", json!({"title": "   "}));
        add(&mut c, 6, "/y", json!({"title": "apple"}));
        add(&mut c, 7, "/x", json!({"title": "Zürich"}));
        let c = sqlite(&t);
        let got = all_pages(&c, &["/x", "/y"], Order::Name, 2);
        // Ids are hex (digits first, then a-f), so untitled images sort among the names by id.
        let mut want: Vec<(String, OriginalId)> = [
            (id(1), "banana".to_string()),
            (id(2), "apple".into()),
            (id(3), "cherry".into()),
            (id(4), id(4).as_str().into()),
            (id(5), id(5).as_str().into()),
            (id(6), "apple".into()),
            (id(7), "zürich".into()),
        ]
        .into_iter()
        .map(|(i, k)| (k, i))
        .collect();
        want.sort();
        assert_eq!(got, want.into_iter().map(|(_, i)| i).collect::<Vec<_>>());
        let first = &c.listing(&["/y".into()], Order::Name, None, 1).unwrap()[0];
        assert!(
            matches!(&first.position, Position::Name { key, .. } if key == "apple" || key.len() == 40)
        );
        // A cursor of another order is refused, not misread.
        let newest = Position::Newest {
            created: 0,
            id: String::new(),
        };
        let err = c
            .listing(&["/x".into()], Order::Name, Some(&newest), 5)
            .unwrap_err();
        assert!(
            matches!(
                err,
                CatalogError::Query(crate::domain::query::QueryError::BadCursor(_))
            ),
            "{err}"
        );
    }

    #[test]
    fn a_page_is_one_index_seek_per_category() {
        let t = tempfile::tempdir().unwrap();
        drop(open(&t));
        let c = sqlite(&t);
        for (order, index) in [
            (Order::Newest, "images_category_created"),
            (Order::Name, "images_category_name"),
        ] {
            let (key_sql, sort) = match order {
                Order::Newest => ("created", "created DESC, id"),
                Order::Name => (NAME_KEY, "key COLLATE NOCASE, id"),
            };
            let cond = match order {
                Order::Newest => "AND created <= ?2 AND (created < ?2 OR id > ?3)",
                Order::Name => {
                    "AND key COLLATE NOCASE >= ?2 AND (key COLLATE NOCASE > ?2 OR id > ?3)"
                }
            };
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT {key_sql} AS key, id FROM images WHERE category = ?1 {cond}
                 ORDER BY {sort} LIMIT ?4"
            );
            let plan: Vec<String> = c
                .conn
                .prepare(&sql)
                .unwrap()
                .query_map(params!["/a", 1, "x", 5], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let plan = plan.join("\n");
            assert!(plan.contains(index), "{order:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{order:?} sorts: {plan}");
        }
    }

    #[test]
    fn matches_page_by_rank_with_safe_highlights() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        for n in 0..30 {
            let cat = if n % 2 == 0 { "/even" } else { "/odd" };
            let words = "fjord ".repeat(1 + n as usize % 5);
            add(
                &mut c,
                n,
                cat,
                json!({"title": format!("n{n}"), "note": words}),
            );
        }
        add(
            &mut c,
            99,
            "/odd",
            json!({"title": "<script>alert(1)</script> fjord <b>x</b>"}),
        );
        let c = sqlite(&t);
        let pages = |category: Option<&str>, hidden: &[String], per: u32| {
            let mut out = Vec::new();
            let mut after = None;
            loop {
                let page = c
                    .matching("FJORD", category, hidden, after.as_ref(), per)
                    .unwrap();
                out.extend(page.iter().map(|h| h.image.id.clone()));
                match page.last() {
                    Some(h) if page.len() == per as usize => after = Some(h.position.clone()),
                    _ => return out,
                }
            }
        };
        let whole = pages(None, &[], 100);
        assert_eq!(whole.len(), 31);
        for per in [1, 4, 10] {
            assert_eq!(pages(None, &[], per), whole, "per page {per}");
        }
        assert_eq!(pages(Some("/odd"), &[], 4).len(), 16);
        assert_eq!(pages(None, &["/odd".to_string()], 4).len(), 15);
        let hit = c.matching("script", None, &[], None, 5).unwrap().remove(0);
        let text: String = hit.snippet.iter().map(|f| f.text.as_str()).collect();
        assert!(text.contains("<script>alert(1)</script>"), "{text}");
        let marked: Vec<&str> = hit
            .snippet
            .iter()
            .filter(|f| f.is_match)
            .map(|f| f.text.as_str())
            .collect();
        assert_eq!(marked, ["script", "script"], "{:?}", hit.snippet);
        assert!(c.matching("***", None, &[], None, 5).unwrap().is_empty());
    }

    #[test]
    fn fragments_split_on_the_marks() {
        let f = |t: &str, m| Fragment {
            text: t.into(),
            is_match: m,
        };
        assert_eq!(
            fragments("a \u{2}b\u{3} c\nd\u{2}e\u{3}"),
            [
                f("a ", false),
                f("b", true),
                f(" c · d", false),
                f("e", true)
            ]
        );
        assert_eq!(fragments(""), []);
    }
}
