//! Search: a page of images, newest first or by full-text relevance, within a category.

use rusqlite::params;
use serde::Serialize;

use super::images::{IMAGE_COLUMNS, image_row};
use super::{CatalogError, Image, Search, SqliteCatalog, collect, normalize_category};
use crate::domain::query::QueryError;

/// Largest page of search results.
pub const MAX_PER_PAGE: u32 = 100;
/// Most words of a search that are used; the rest are ignored.
const MAX_TERMS: usize = 16;

/// A search: `q` words (all must match, in metadata keys, values or the category), within
/// `category` and its descendants, newest first without `q`, best match first with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Free text; blank means no text filter.
    pub q: Option<String>,
    /// A category path; it and all categories below it. `None` or `/` means everything.
    pub category: Option<String>,
    /// From 1.
    pub page: u32,
    /// From 1 to [`MAX_PER_PAGE`].
    pub per_page: u32,
    /// Categories (normalised, exactly these, not their descendants) whose images are left
    /// out: those the caller may not view.
    pub hidden: Vec<String>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            q: None,
            category: None,
            page: 1,
            per_page: 20,
            hidden: Vec::new(),
        }
    }
}

/// One page of results and the number of all matches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub items: Vec<Image>,
    pub total: u64,
}

impl Search for SqliteCatalog {
    fn search(&self, query: &Query) -> Result<Page, CatalogError> {
        if query.page == 0 || query.page > 1_000_000 {
            return Err(QueryError::Invalid {
                name: "page",
                reason: format!("expected an integer from 1 to 1000000, got {}", query.page),
            }
            .into());
        }
        if query.per_page == 0 || query.per_page > MAX_PER_PAGE {
            return Err(QueryError::Invalid {
                name: "per_page",
                reason: format!(
                    "expected an integer from 1 to {MAX_PER_PAGE}, got {}",
                    query.per_page
                ),
            }
            .into());
        }
        let total = self.count(query)?;
        let (category, hidden) = scope(query)?;
        let limit = i64::from(query.per_page);
        let offset = i64::from(query.page - 1) * limit;
        let none = None::<i64>;
        let Some(q) = words(query) else {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT {IMAGE_COLUMNS} FROM images i WHERE {WITHIN}
                 ORDER BY i.created DESC, i.id LIMIT ?2 OFFSET ?3"
            ))?;
            let items = collect(
                stmt.query_map(params![category, limit, offset, none, hidden], image_row)?,
            )?;
            return Ok(Page { items, total });
        };
        let Some(fts) = fts_query(q) else {
            // Only punctuation: nothing can match a word that has no letters or digits.
            return Ok(Page {
                items: Vec::new(),
                total: 0,
            });
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images_fts JOIN images i ON i.seq = images_fts.rowid
             WHERE images_fts MATCH ?4 AND {WITHIN}
             ORDER BY bm25(images_fts), i.created DESC, i.id LIMIT ?2 OFFSET ?3"
        ))?;
        let items =
            collect(stmt.query_map(params![category, limit, offset, fts, hidden], image_row)?)?;
        Ok(Page { items, total })
    }

    fn count(&self, query: &Query) -> Result<u64, CatalogError> {
        let (category, hidden) = scope(query)?;
        let none = None::<i64>;
        let total: i64 = match words(query) {
            None => self
                .conn
                .prepare_cached(&format!("SELECT count(*) FROM images i WHERE {WITHIN}"))?
                .query_row(params![category, none, none, none, hidden], |r| r.get(0))?,
            Some(q) => match fts_query(q) {
                None => 0,
                Some(fts) => self
                    .conn
                    .prepare_cached(&format!(
                        "SELECT count(*) FROM images_fts JOIN images i ON i.seq = images_fts.rowid
                         WHERE images_fts MATCH ?4 AND {WITHIN}"
                    ))?
                    .query_row(params![category, none, none, fts, hidden], |r| r.get(0))?,
            },
        };
        Ok(total.max(0) as u64)
    }
}

/// Within the query's category (and below it), leaving out the hidden categories: `?1` the
/// category (`NULL` for everywhere), `?5` the hidden ones as a JSON array. Descendants of `/a`
/// are exactly the paths in (`/a/`, `/a0`): `0` follows `/`.
const WITHIN: &str =
    "(?1 IS NULL OR i.category = ?1 OR (i.category > ?1 || '/' AND i.category < ?1 || '0'))
     AND i.category NOT IN (SELECT value FROM json_each(?5))";

/// The query's category (normalised; `None` for everywhere) and hidden categories (JSON).
fn scope(query: &Query) -> Result<(Option<String>, String), CatalogError> {
    let category = match query.category.as_deref() {
        None => None,
        Some(c) => Some(normalize_category(c)?).filter(|c| c != "/"),
    };
    let hidden = serde_json::to_string(&query.hidden).unwrap_or_else(|_| "[]".into());
    Ok((category, hidden))
}

/// The query's words, if it has any.
fn words(query: &Query) -> Option<&str> {
    query.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
}

/// A user's words as an FTS5 query that cannot be a syntax error: every word (split at
/// whitespace) becomes a quoted phrase (`"` doubled inside), so operators (`AND`, `NEAR`,
/// `*`, `(`, `:`) are plain text; words without a letter or digit are dropped, because the
/// tokenizer would drop them too. All phrases must match. `None` when no word is left.
pub(super) fn fts_query(q: &str) -> Option<String> {
    let phrases: Vec<String> = q
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .take(MAX_TERMS)
        .map(|w| {
            let w: String = w.chars().take(64).collect();
            format!("\"{}\"", w.replace('"', "\"\""))
        })
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" "))
}

#[cfg(test)]
mod tests {
    use rusqlite::params;
    use serde_json::json;

    use super::*;
    use crate::io::catalog::testing::*;

    #[test]
    fn full_text_search() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        add(
            &mut c,
            1,
            "/travel/norway",
            json!({"title": "Geiranger fjord", "camera": {"make": "Fujifilm"}}),
        );
        add(
            &mut c,
            2,
            "/travel/sweden",
            json!({"title": "Øresund bridge", "tags": ["bridge", "sea"]}),
        );
        add(
            &mut c,
            3,
            "/family",
            json!({"title": "Café au lait", "year": 2024, "fjord": true}),
        );
        // By a value, a nested value, an array element, a number, a key, the category.
        assert_eq!(ids(&search(&c, Some("geiranger"), None)), [id(1)]);
        assert_eq!(ids(&search(&c, Some("FUJIFILM"), None)), [id(1)]);
        assert_eq!(ids(&search(&c, Some("sea"), None)), [id(2)]);
        assert_eq!(ids(&search(&c, Some("2024"), None)), [id(3)]);
        assert_eq!(ids(&search(&c, Some("camera"), None)), [id(1)]);
        assert_eq!(ids(&search(&c, Some("norway"), None)), [id(1)]);
        assert_eq!(ids(&search(&c, Some("travel"), None)).len(), 2);
        // Diacritics folded; all words must match; a category narrows the search.
        assert_eq!(ids(&search(&c, Some("cafe"), None)), [id(3)]);
        assert_eq!(ids(&search(&c, Some("travel bridge"), None)), [id(2)]);
        assert_eq!(ids(&search(&c, Some("fjord"), Some("/travel"))), [id(1)]);
        assert_eq!(search(&c, Some("fjord"), None).total, 2);
        // Stronger matches rank first: two hits on "bridge" beat none.
        add(&mut c, 4, "/misc", json!({"note": "a bridge"}));
        assert_eq!(ids(&search(&c, Some("bridge"), None))[0], id(2));
        // Hostile input is text, never FTS5 syntax.
        for q in [
            "\"",
            "\"\"",
            "*",
            "fjord*",
            "AND (",
            "NEAR(a b)",
            "a OR",
            "NOT",
            "title:fjord",
            "^x",
            "-x",
            "{title}: x",
            "'); DROP TABLE images; --",
            "日本",
            "🙂",
            "\u{0}",
            "a\"b",
            "((((",
            "+",
            "x NEAR/2 y",
        ] {
            let r = c.search(&Query {
                q: Some(q.into()),
                ..Query::default()
            });
            assert!(r.is_ok(), "{q:?}: {r:?}");
        }
        assert_eq!(search(&c, Some("*"), None).total, 0, "no words");
        assert_eq!(search(&c, Some("   "), None).total, 4, "blank is no filter");
        assert_eq!(ids(&search(&c, Some("title:fjord"), None)).len(), 0);
        assert_eq!(
            ids(&search(&c, Some("AND fjord"), None)).len(),
            0,
            "AND is a word"
        );
        assert_eq!(search(&c, None, None).total, 4);
        // Hidden categories (the caller may not view them) are left out, totals too.
        let all = search(&c, None, None);
        let one = all.items[0].category.clone();
        let left = c
            .search(&Query {
                hidden: vec![one.clone()],
                per_page: 100,
                ..Query::default()
            })
            .unwrap();
        let shown = all.items.iter().filter(|i| i.category != one).count() as u64;
        assert_eq!(left.total, shown);
        assert!(left.items.iter().all(|i| i.category != one));
        let words = c
            .search(&Query {
                q: Some("fjord".into()),
                hidden: vec!["/nowhere".into()],
                ..Query::default()
            })
            .unwrap();
        assert_eq!(words.total, search(&c, Some("fjord"), None).total);
    }

    #[test]
    fn listing_and_pagination() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let raw = raw(&t);
        for n in 0..25 {
            let cat = if n % 2 == 0 { "/even" } else { "/odd/deeper" };
            add(&mut c, n, cat, json!({"n": n, "word": "common"}));
            // Distinct creation times, so that newest-first is a total order.
            raw.execute(
                "UPDATE images SET created = ?1 WHERE id = ?2",
                params![1000 + i64::from(n), id(n).as_str()],
            )
            .unwrap();
        }
        let page = |q: Option<&str>, cat: Option<&str>, page, per_page| {
            c.search(&Query {
                q: q.map(Into::into),
                category: cat.map(Into::into),
                page,
                per_page,
                hidden: Vec::new(),
            })
            .unwrap()
        };
        let p1 = page(None, None, 1, 10);
        assert_eq!((p1.items.len(), p1.total), (10, 25));
        assert_eq!(p1.items[0].id, id(24), "newest first");
        let p3 = page(None, None, 3, 10);
        assert_eq!((p3.items.len(), p3.total), (5, 25));
        assert_eq!(p3.items[4].id, id(0));
        assert_eq!(page(None, None, 4, 10).items.len(), 0);
        let mut seen: Vec<_> = (1..=3)
            .flat_map(|n| ids(&page(None, None, n, 10)))
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 25, "pages neither overlap nor skip");
        let fts = page(Some("common"), Some("/odd"), 2, 5);
        assert_eq!((fts.items.len(), fts.total), (5, 12));
        assert_eq!(
            page(None, Some("/odd"), 1, 100).total,
            12,
            "descendants included"
        );
        assert_eq!(page(None, Some("/odd/deeper"), 1, 100).total, 12);
        assert_eq!(
            page(None, Some("/od"), 1, 100).total,
            0,
            "not a prefix match"
        );
        assert_eq!(page(None, Some("/"), 1, 100).total, 25);
        // The count alone is the total, words or not, hidden categories left out.
        for (q, cat, hidden, want) in [
            (None, None, vec![], 25),
            (Some("common"), Some("/odd"), vec![], 12),
            (Some("common"), None, vec!["/even".to_string()], 12),
            (None, Some("/od"), vec![], 0),
            (Some("!!"), None, vec![], 0),
        ] {
            let query = Query {
                q: q.map(Into::into),
                category: cat.map(Into::into),
                hidden,
                ..Query::default()
            };
            assert_eq!(c.count(&query).unwrap(), want, "{q:?} {cat:?}");
        }
        for (p, pp, name) in [(0, 10, "page"), (1, 0, "per_page"), (1, 101, "per_page")] {
            let err = c
                .search(&Query {
                    page: p,
                    per_page: pp,
                    ..Query::default()
                })
                .unwrap_err();
            assert!(
                matches!(&err, CatalogError::Query(QueryError::Invalid { name: n, .. }) if *n == name),
                "{err}"
            );
        }
    }
}
