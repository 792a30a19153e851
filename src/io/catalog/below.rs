//! A category and everything below it, page by page (keyset pagination), without listing the
//! subtree's categories first when it is large.
//!
//! Two plans give the same rows in the same order (the listing's, `browse`):
//! - **Seeks**: the subtree's categories (found by one index seek each, `images_category`),
//!   the hidden ones left out, each read from its own index after the cursor and merged
//!   (`Browse::listing`): `k` categories cost `k` seeks. Chosen for a subtree of at most
//!   [`FEW`] categories, and when the scan gives up.
//! - **Scan**: one index led by the order's key (`images_created_category`,
//!   `images_name_category`, schema step 7) read in order from the cursor, each entry kept
//!   when its category is in the subtree (a range of paths: `P`, or between `P/` and `P0`,
//!   `'0'` following `'/'`, so `/photos2` and `/photos-x` are not below `/photos`) and not
//!   hidden. The index holds the category, so no row is read to decide. A page costs the
//!   entries read until `limit` are kept, however deep the page; a subtree whose images are
//!   rare from the cursor on would cost a long scan, so after [`SCAN_BUDGET`] entries the
//!   scan gives way to the seeks, which answer exactly.
//!
//! Which categories are hidden (those the caller may not view) is the caller's choice; this
//! module only reads.

use std::collections::HashSet;

use rusqlite::params;
use rusqlite::types::Value;

use super::browse::{Key, MAX_LIMIT, cursor_keys, keyset};
use super::{Browse, CatalogError, Categories, Listed, SqliteCatalog, collect};
use crate::domain::cursor::{Order, Position};

/// A subtree of at most this many categories (holding images) is listed by their seeks.
pub(super) const FEW: usize = 8;
/// Most index entries the scan reads for a page before the seeks answer it instead: with 25
/// a page, a subtree holding at least 1 image in 80 of those after the cursor is scanned.
pub(super) const SCAN_BUDGET: u32 = 2_000;

/// Whether a row's category is in the subtree of `?1` and not among the JSON array `?4`.
const WITHIN: &str =
    "(?1 = '/' OR category = ?1 OR (category > ?1 || '/' AND category < ?1 || '0'))
    AND category NOT IN (SELECT value FROM json_each(?4))";

/// How a page was found (for the tests: both plans must agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    Seeks,
    Scan,
}

impl SqliteCatalog {
    pub(super) fn below(
        &self,
        category: &str,
        hidden: &[String],
        order: Order,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Listed>, CatalogError> {
        self.below_with(category, hidden, order, after, limit, None, SCAN_BUDGET)
            .map(|(rows, _)| rows)
    }

    /// [`below`](Self::below), with the plan forced when `force` says so and the scan's
    /// budget `budget`; with the plan that answered.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn below_with(
        &self,
        category: &str,
        hidden: &[String],
        order: Order,
        after: Option<&Position>,
        limit: u32,
        force: Option<Plan>,
        budget: u32,
    ) -> Result<(Vec<Listed>, Plan), CatalogError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        // Refuse a cursor of another order before choosing a plan.
        cursor_keys(order, after)?;
        // One snapshot for the page's reads (the categories, the keys, the rows).
        let _snapshot = self.conn.unchecked_transaction()?;
        let hidden_set: HashSet<&str> = hidden.iter().map(String::as_str).collect();
        let shown = |paths: Vec<String>| -> Vec<String> {
            paths
                .into_iter()
                .filter(|p| !hidden_set.contains(p.as_str()))
                .collect()
        };
        let seeks = |paths: Vec<String>| {
            self.listing(&shown(paths), order, after, limit)
                .map(|rows| (rows, Plan::Seeks))
        };
        if force != Some(Plan::Scan) {
            let few = self.subtree(category, FEW + 1)?;
            if few.len() <= FEW || force == Some(Plan::Seeks) {
                let all = if few.len() <= FEW {
                    few
                } else {
                    self.subtree(category, usize::MAX)?
                };
                return seeks(all);
            }
        }
        let budget = match force {
            Some(Plan::Scan) => u32::MAX,
            _ => budget,
        };
        match self.scan(category, hidden, order, after, limit, budget)? {
            Some(keys) => Ok((self.listed(order, keys)?, Plan::Scan)),
            None => seeks(self.subtree(category, usize::MAX)?),
        }
    }

    /// The first `limit` keys after the cursor in the subtree, hidden categories left out,
    /// read from the order's index; `None` when `budget` entries did not settle the page.
    fn scan(
        &self,
        category: &str,
        hidden: &[String],
        order: Order,
        after: Option<&Position>,
        limit: u32,
        budget: u32,
    ) -> Result<Option<Vec<Key>>, CatalogError> {
        let (k, id) = cursor_keys(order, after)?;
        let (key_sql, sort, cond) = keyset(order, after.is_some());
        let index = match order {
            Order::Newest => "images_created_category",
            Order::Name => "images_name_category",
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {key_sql} AS key, id, {WITHIN} FROM images INDEXED BY {index}
             WHERE 1 {cond} ORDER BY {sort} LIMIT ?5"
        ))?;
        let hidden = serde_json::to_string(hidden).unwrap_or_else(|_| "[]".into());
        let mut rows = stmt.query(params![category, k, id, hidden, budget])?;
        let mut read = 0;
        let mut keys = Vec::new();
        while let Some(r) = rows.next()? {
            read += 1;
            if r.get::<_, bool>(2)? {
                keys.push((r.get::<_, Value>(0)?, r.get::<_, String>(1)?));
                if keys.len() == limit as usize {
                    return Ok(Some(keys));
                }
            }
        }
        // Fewer entries than the budget: the index ended, and the page is whole.
        Ok((read < budget).then_some(keys))
    }

    /// The categories holding images in the subtree of `category` (it included), at most
    /// `most`, in byte order: one index seek each.
    pub(super) fn subtree(&self, category: &str, most: usize) -> Result<Vec<String>, CatalogError> {
        // Below the root: every path (they start with '/', before '0'); else `P` itself,
        // then the paths between `P/` and `P0`.
        let (from, until, exact) = match category {
            "/" => (String::new(), "0".to_string(), false),
            p => (format!("{p}/"), format!("{p}0"), true),
        };
        let mut out = Vec::new();
        if exact && self.category_has_images(category)? {
            out.push(category.to_string());
        }
        let most = i64::try_from(most.saturating_sub(out.len())).unwrap_or(-1);
        let mut stmt = self.conn.prepare_cached(
            "WITH RECURSIVE c(path) AS (
                 SELECT (SELECT min(category) FROM images WHERE category > ?1 AND category < ?2)
                 UNION ALL
                 SELECT (SELECT min(category) FROM images WHERE category > c.path AND category < ?2)
                 FROM c WHERE c.path IS NOT NULL
             )
             SELECT path FROM c WHERE path IS NOT NULL LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![from, until, most], |r| r.get::<_, String>(0))?;
        out.extend(collect(rows)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::params;
    use serde_json::json;

    use super::*;
    use crate::io::catalog::testing::*;

    /// Categories that share prefixes with `/photos` without being below it, deep ones, and
    /// more than [`FEW`] below `/photos`.
    const CATEGORIES: &[&str] = &[
        "/",
        "/photos",
        "/photos/a",
        "/photos/a/b",
        "/photos/a-b",
        "/photos/b",
        "/photos/c",
        "/photos/d",
        "/photos/e",
        "/photos/f",
        "/photos/g",
        "/photos/secret",
        "/photos/secret/deeper",
        "/photos2",
        "/photos-x",
        "/photos.old",
        "/photo",
        "/other",
    ];

    /// Five a category: fewer in all than a listing's largest page.
    const IMAGES: u32 = 90;

    fn world(t: &tempfile::TempDir) -> SqliteCatalog {
        let mut c = open(t);
        let raw = raw(t);
        for n in 0..IMAGES {
            let cat = CATEGORIES[n as usize % CATEGORIES.len()];
            let title = match n % 4 {
                0 => json!(format!("Title {}", n % 7)),
                1 => json!(format!("title {}", n % 5)),
                2 => json!("  "),
                _ => json!(n),
            };
            add(&mut c, n, cat, json!({"title": title}));
            // Few timestamps: ties across categories, broken by the id.
            raw.execute(
                "UPDATE images SET created = ?1 WHERE id = ?2",
                params![1000 + i64::from(n % 9), id(n).as_str()],
            )
            .unwrap();
        }
        drop(c);
        SqliteCatalog::open(&t.path().join("state/catalog.sqlite")).unwrap()
    }

    fn below(category: &str, path: &str) -> bool {
        category == "/" || path == category || path.starts_with(&format!("{category}/"))
    }

    /// The plan and scan budget of page `n` (from 0).
    type Choice = dyn Fn(usize) -> (Option<Plan>, u32);

    /// Every page, each asked with the plan `plan(page number)` and budget, following cursors.
    fn pages(
        c: &SqliteCatalog,
        category: &str,
        hidden: &[String],
        order: Order,
        per: u32,
        plan: impl Fn(usize) -> (Option<Plan>, u32),
    ) -> (Vec<String>, Vec<Plan>) {
        let (mut out, mut plans, mut after) = (Vec::new(), Vec::new(), None);
        loop {
            let (force, budget) = plan(plans.len());
            let (page, used) = c
                .below_with(category, hidden, order, after.as_ref(), per, force, budget)
                .unwrap();
            plans.push(used);
            out.extend(page.iter().map(|l| l.image.id.as_str().to_string()));
            match page.last() {
                Some(l) if page.len() == per as usize => after = Some(l.position.clone()),
                _ => return (out, plans),
            }
        }
    }

    /// What the listing of the subtree's categories, named one by one, gives (the plan the
    /// use cases had before).
    fn by_list(c: &SqliteCatalog, category: &str, hidden: &[String], order: Order) -> Vec<String> {
        let cats: Vec<String> = CATEGORIES
            .iter()
            .filter(|p| below(category, p) && !hidden.iter().any(|h| h == *p))
            .map(|p| p.to_string())
            .collect();
        c.listing(&cats, order, None, MAX_LIMIT)
            .unwrap()
            .into_iter()
            .map(|l| l.image.id.as_str().to_string())
            .collect()
    }

    #[test]
    fn every_plan_lists_what_the_list_of_categories_did() {
        let t = tempfile::tempdir().unwrap();
        let c = world(&t);
        let hidden = vec!["/photos/secret".to_string(), "/photos2".to_string()];
        for order in [Order::Newest, Order::Name] {
            for category in [
                "/",
                "/photos",
                "/photos/a",
                "/photos2",
                "/photo",
                "/nowhere",
            ] {
                for hidden in [&[][..], &hidden[..]] {
                    let want = by_list(&c, category, hidden, order);
                    let what = format!("{order:?} {category} hidden {hidden:?}");
                    assert!(want.len() < MAX_LIMIT as usize, "{what}");
                    if category == "/photos" {
                        assert!(want.len() > 50, "{what}: {}", want.len());
                    }
                    for per in [1, 4, 7, 100] {
                        let plans: [(&str, &Choice); 5] = [
                            ("auto", &|_| (None, SCAN_BUDGET)),
                            ("seeks", &|_| (Some(Plan::Seeks), SCAN_BUDGET)),
                            ("scan", &|_| (Some(Plan::Scan), SCAN_BUDGET)),
                            // Cursors of one plan followed by the other.
                            ("alternating", &|n| {
                                let p = [Plan::Seeks, Plan::Scan][n % 2];
                                (Some(p), SCAN_BUDGET)
                            }),
                            // A scan that gives up at once: the seeks answer.
                            ("budget 3", &|_| (None, 3)),
                        ];
                        for (name, plan) in plans {
                            let (got, _) = pages(&c, category, hidden, order, per, plan);
                            assert_eq!(got, want, "{what}, {per} a page, {name}");
                        }
                    }
                }
            }
        }
        // The subtree holds no hidden image, and nothing beside it.
        let hidden_ids: Vec<String> = (0..IMAGES)
            .filter(|n| {
                let cat = CATEGORIES[*n as usize % CATEGORIES.len()];
                hidden.iter().any(|h| h == cat)
            })
            .map(|n| id(n).as_str().to_string())
            .collect();
        let (all, _) = pages(&c, "/", &hidden, Order::Newest, 10, |_| {
            (Some(Plan::Scan), 9)
        });
        assert_eq!(all.len(), IMAGES as usize - hidden_ids.len());
        assert!(all.iter().all(|i| !hidden_ids.contains(i)));
    }

    #[test]
    fn large_subtrees_are_scanned_small_ones_sought() {
        let t = tempfile::tempdir().unwrap();
        let c = world(&t);
        let auto = |category: &str, budget| {
            pages(&c, category, &[], Order::Newest, 5, |_| (None, budget)).1
        };
        assert!(
            auto("/photos", SCAN_BUDGET)
                .iter()
                .all(|p| *p == Plan::Scan)
        );
        assert!(auto("/", SCAN_BUDGET).iter().all(|p| *p == Plan::Scan));
        assert!(
            auto("/photos/a", SCAN_BUDGET)
                .iter()
                .all(|p| *p == Plan::Seeks)
        );
        assert!(auto("/photos", 3).contains(&Plan::Seeks));
        // The subtree's categories, one seek each, prefixes that are not parents left out.
        assert_eq!(
            c.subtree("/photos/a", 100).unwrap(),
            ["/photos/a", "/photos/a/b"]
        );
        assert_eq!(c.subtree("/photos", 3).unwrap().len(), 3);
        assert_eq!(c.subtree("/", 100).unwrap().len(), CATEGORIES.len());
        assert!(c.subtree("/nowhere", 100).unwrap().is_empty());
        // A cursor of another order is refused by every plan.
        let name = Position::Name {
            key: "x".into(),
            id: String::new(),
        };
        for force in [None, Some(Plan::Seeks), Some(Plan::Scan)] {
            let err = c
                .below_with("/photos", &[], Order::Newest, Some(&name), 5, force, 9)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    CatalogError::Query(crate::domain::query::QueryError::BadCursor(_))
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn the_scan_reads_one_covering_index_in_order() {
        let t = tempfile::tempdir().unwrap();
        let c = world(&t);
        for (order, index) in [
            (Order::Newest, "images_created_category"),
            (Order::Name, "images_name_category"),
        ] {
            let (key_sql, sort, cond) = keyset(order, true);
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT {key_sql} AS key, id, {WITHIN} FROM images
                 INDEXED BY {index} WHERE 1 {cond} ORDER BY {sort} LIMIT ?5"
            );
            let key = match order {
                Order::Newest => Value::Integer(5),
                Order::Name => Value::Text("x".into()),
            };
            let plan: Vec<String> = c
                .conn
                .prepare(&sql)
                .unwrap()
                .query_map(params!["/a", key, "x", "[]", 5], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let plan = plan.join("\n");
            // By name, in the index's order too (SQLite does not count an index on an
            // expression as covering: it reads the row as well).
            assert!(
                plan.contains(&format!("INDEX {index}")),
                "{order:?}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{order:?} sorts: {plan}");
        }
    }
}
