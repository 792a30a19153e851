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
const WITHIN: &str = "(?1 = '/' OR category = ?1 OR (category > ?1 || '/' AND category < ?1 || '0'))
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
        self.below_with(category, hidden, order, after, limit, None)
            .map(|(rows, _)| rows)
    }

    /// [`below`](Self::below), with the plan forced when `force` says so.
    pub(super) fn below_with(
        &self,
        category: &str,
        hidden: &[String],
        order: Order,
        after: Option<&Position>,
        limit: u32,
        force: Option<Plan>,
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
                let all = match few.len() <= FEW {
                    true => few,
                    false => self.subtree(category, usize::MAX)?,
                };
                return seeks(all);
            }
        }
        let budget = match force {
            Some(Plan::Scan) => u32::MAX,
            _ => SCAN_BUDGET,
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
