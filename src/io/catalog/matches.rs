//! Full-text matches page by page (keyset pagination), in an order whose pages cost little
//! however common the words are.
//!
//! The order: the [`RANKED`] newest matches (by `seq`, the order images were added, within the
//! category and without the hidden categories) come first, best match first (bm25, then
//! `seq`); every older match follows, newest first. A word in fewer than [`RANKED`] images is
//! thus ordered by relevance alone, as before; a common word ranks its newest matches and
//! lists the rest by age, so that no page scores every match (bm25 is computed, not
//! indexed: 100,000 matches cost ~60 ms a page to rank).
//!
//! A page reads:
//! - on the first page, the `seq` of the [`RANKED`]th newest match (the *floor*: FTS5 reads
//!   its matches in `rowid` order, newest first, with no score), which the cursor then carries,
//!   so that every page ranks the same set;
//! - in the ranked part, the scores of the matches from the floor up (at most [`RANKED`] and
//!   those added since), keeping those after the cursor's `(rank, seq)`;
//! - in the rest, the matches below the cursor's `seq`, newest first: `limit` rows;
//! - and only then the images and highlighted snippets of the `limit` rows shown.
//!
//! Scores move when the index changes (an upload between two pages), so a page of the ranked
//! part may then repeat or miss a match near its edge; within a stable catalog the pages
//! neither overlap nor skip.

use std::collections::HashMap;

use rusqlite::params;

use super::browse::{Hit, MAX_LIMIT, fragments};
use super::images::{IMAGE_COLUMNS, image_row};
use super::search::fts_query;
use super::{CatalogError, SqliteCatalog, collect, normalize_category};
use crate::domain::cursor::Position;
use crate::domain::query::QueryError;

/// How many of the newest matches are ordered by relevance.
pub const RANKED: u32 = 1_000;

/// Whether `i`'s category is within `?2` (NULL: everywhere) and not one of the JSON array `?3`.
const WITHIN: &str = "(?2 IS NULL OR i.category = ?2
        OR (i.category > ?2 || '/' AND i.category < ?2 || '0'))
    AND i.category NOT IN (SELECT value FROM json_each(?3))";

/// The rows shown and their snippets: `?1` the FTS5 query, `?2` a JSON array of `seq`s.
fn shown_sql() -> String {
    format!(
        "SELECT {IMAGE_COLUMNS}, i.seq, snippet(images_fts, -1, char(2), char(3), '…', 12)
         FROM json_each(?2) AS shown
         CROSS JOIN images_fts ON images_fts.rowid = shown.value
         JOIN images i ON i.seq = images_fts.rowid
         WHERE images_fts MATCH ?1"
    )
}

impl SqliteCatalog {
    pub(super) fn matches(
        &self,
        words: &str,
        category: Option<&str>,
        hidden: &[String],
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Hit>, CatalogError> {
        self.matches_with(words, category, hidden, after, limit, RANKED)
    }

    /// [`matches`](Self::matches) ranking the `ranked` newest (the tests' smaller sets).
    pub(super) fn matches_with(
        &self,
        words: &str,
        category: Option<&str>,
        hidden: &[String],
        after: Option<&Position>,
        limit: u32,
        ranked: u32,
    ) -> Result<Vec<Hit>, CatalogError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let Some(fts) = fts_query(words) else {
            return Ok(Vec::new());
        };
        let category = match category {
            None => None,
            Some(c) => Some(normalize_category(c)?).filter(|c| c != "/"),
        };
        let hidden = serde_json::to_string(hidden).unwrap_or_else(|_| "[]".into());
        let within = (fts.as_str(), category.as_deref(), hidden.as_str());
        // One snapshot for the page's reads (the floor, the positions, the rows shown).
        let _snapshot = self.conn.unchecked_transaction()?;
        let (mut found, floor) = match after {
            None => {
                let floor = self.floor(within, ranked)?;
                (self.ranked(within, floor, None, limit)?, Some(floor))
            }
            Some(&Position::Rank { rank, seq, floor }) => (
                self.ranked(within, floor, Some((rank, seq)), limit)?,
                Some(floor),
            ),
            Some(&Position::Recent { seq }) => (self.recent(within, seq, limit)?, None),
            Some(_) => return Err(QueryError::BadCursor("made for another order".into()).into()),
        };
        // The ranked part ended within this page: the rest follows, below the floor (none
        // with floor 0: every match was ranked).
        if let Some(floor) = floor
            && found.len() < limit as usize
            && floor > 0
        {
            let more = self.recent(within, floor, limit - found.len() as u32)?;
            found.extend(more);
        }
        self.hits(&fts, found)
    }

    /// The `seq` of the `ranked`th newest match, or 0 (every match ranked) when there are
    /// fewer.
    fn floor(
        &self,
        (fts, category, hidden): (&str, Option<&str>, &str),
        ranked: u32,
    ) -> Result<i64, CatalogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT i.seq FROM images_fts JOIN images i ON i.seq = images_fts.rowid
             WHERE images_fts MATCH ?1 AND {WITHIN}
             ORDER BY images_fts.rowid DESC LIMIT 1 OFFSET ?4"
        ))?;
        let mut rows = stmt.query(params![fts, category, hidden, ranked.saturating_sub(1)])?;
        Ok(match rows.next()? {
            Some(r) => r.get(0)?,
            None => 0,
        })
    }

    /// The positions of the ranked matches (`seq` ≥ `floor`) after `after`, best first.
    fn ranked(
        &self,
        (fts, category, hidden): (&str, Option<&str>, &str),
        floor: i64,
        after: Option<(f64, i64)>,
        limit: u32,
    ) -> Result<Vec<Position>, CatalogError> {
        let (rank, seq) = (after.map(|a| a.0), after.map(|a| a.1));
        // Only the score and seq go through the sort; the rows shown are read afterwards.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT bm25(images_fts) AS score, i.seq
             FROM images_fts JOIN images i ON i.seq = images_fts.rowid
             WHERE images_fts MATCH ?1 AND images_fts.rowid >= ?7 AND {WITHIN}
               AND (?5 IS NULL OR score > ?5 OR (score = ?5 AND i.seq > ?6))
             ORDER BY score, i.seq LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![fts, category, hidden, limit, rank, seq, floor],
            |r| {
                Ok(Position::Rank {
                    rank: r.get(0)?,
                    seq: r.get(1)?,
                    floor,
                })
            },
        )?;
        collect(rows)
    }

    /// The positions of the matches below `before` (a `seq`), newest first.
    fn recent(
        &self,
        (fts, category, hidden): (&str, Option<&str>, &str),
        before: i64,
        limit: u32,
    ) -> Result<Vec<Position>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT i.seq FROM images_fts JOIN images i ON i.seq = images_fts.rowid
             WHERE images_fts MATCH ?1 AND images_fts.rowid < ?5 AND {WITHIN}
             ORDER BY images_fts.rowid DESC LIMIT ?4"
        ))?;
        let rows = stmt.query_map(params![fts, category, hidden, limit, before], |r| {
            Ok(Position::Recent { seq: r.get(0)? })
        })?;
        collect(rows)
    }

    /// The images and highlighted snippets at `positions`, in their order.
    fn hits(&self, fts: &str, positions: Vec<Position>) -> Result<Vec<Hit>, CatalogError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let seq_of = |p: &Position| match p {
            Position::Rank { seq, .. } | Position::Recent { seq } => *seq,
            _ => 0,
        };
        let seqs: Vec<i64> = positions.iter().map(seq_of).collect();
        let list = serde_json::to_string(&seqs).unwrap_or_else(|_| "[]".into());
        // The list drives (CROSS JOIN keeps it outside): one rowid lookup in the index per row,
        // where `rowid IN (…)` would make FTS5 read every match and test it against the list.
        let mut stmt = self.conn.prepare_cached(&shown_sql())?;
        let rows = stmt.query_map(params![fts, list], |r| {
            Ok((
                r.get::<_, i64>(10)?,
                (image_row(r)?, fragments(&r.get::<_, String>(11)?)),
            ))
        })?;
        let mut shown: HashMap<i64, _> = collect(rows)?.into_iter().collect();
        // A row gone since (deleted between the two reads) is left out.
        Ok(positions
            .into_iter()
            .filter_map(|position| {
                let (image, snippet) = shown.remove(&seq_of(&position))?;
                Some(Hit {
                    image,
                    position,
                    snippet,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::io::catalog::testing::*;

    fn world(t: &tempfile::TempDir) -> SqliteCatalog {
        let mut c = open(t);
        for n in 0..40u32 {
            let cat = ["/a", "/a/b", "/a2", "/hidden"][n as usize % 4];
            // The word 1 to 5 times: scores differ, and tie.
            let words = "fjord ".repeat(1 + (n as usize * 7) % 5);
            add(
                &mut c,
                n,
                cat,
                json!({"title": format!("n{n}"), "note": words}),
            );
        }
        drop(c);
        SqliteCatalog::open(&t.path().join("state/catalog.sqlite")).unwrap()
    }

    fn seq(p: &Position) -> i64 {
        match p {
            Position::Rank { seq, .. } | Position::Recent { seq } => *seq,
            _ => panic!("{p:?}"),
        }
    }

    /// Every page, following cursors: (seq, position) of each match.
    fn pages(
        c: &SqliteCatalog,
        category: Option<&str>,
        hidden: &[String],
        per: u32,
        ranked: u32,
    ) -> Vec<Position> {
        let (mut out, mut after) = (Vec::new(), None);
        loop {
            let page = c
                .matches_with("FJORD", category, hidden, after.as_ref(), per, ranked)
                .unwrap();
            out.extend(page.iter().map(|h| h.position.clone()));
            match page.last() {
                Some(h) if page.len() == per as usize => after = Some(h.position.clone()),
                _ => return out,
            }
        }
    }

    #[test]
    fn the_newest_are_ranked_then_the_rest_come_newest_first() {
        let t = tempfile::tempdir().unwrap();
        let c = world(&t);
        let hidden = vec!["/hidden".to_string()];
        for category in [None, Some("/a")] {
            // Every match ranked: the order of relevance (bm25, then seq).
            let all = pages(&c, category, &hidden, 100, u32::MAX);
            let mut want = all.clone();
            want.sort_by(|a, b| match (a, b) {
                (
                    Position::Rank {
                        rank: x, seq: s, ..
                    },
                    Position::Rank {
                        rank: y, seq: t, ..
                    },
                ) => x.total_cmp(y).then(s.cmp(t)),
                _ => panic!(),
            });
            assert_eq!(all, want);
            let n = if category.is_none() { 30 } else { 20 };
            assert_eq!(
                all.len(),
                n,
                "{category:?}: /a2 is not below /a, /hidden is hidden"
            );
            for ranked in [1, 7, 29, 30, 31, 100] {
                // The `ranked` newest in their order of relevance, then the rest newest first.
                let mut newest: Vec<i64> = all.iter().map(seq).collect();
                newest.sort_by(|a, b| b.cmp(a));
                let (top, rest) = newest.split_at(newest.len().min(ranked as usize));
                let mut want: Vec<i64> = all.iter().map(seq).filter(|s| top.contains(s)).collect();
                want.extend(rest);
                for per in [1, 3, 7, 100] {
                    let got = pages(&c, category, &hidden, per, ranked);
                    let seqs: Vec<i64> = got.iter().map(seq).collect();
                    assert_eq!(seqs, want, "{category:?}, {ranked} ranked, {per} a page");
                    let ranked_part = got
                        .iter()
                        .filter(|p| matches!(p, Position::Rank { .. }))
                        .count();
                    assert_eq!(ranked_part, top.len());
                }
            }
        }
    }

    #[test]
    fn a_cursor_from_before_the_floor_ranks_every_match() {
        let t = tempfile::tempdir().unwrap();
        let c = world(&t);
        let all = pages(&c, None, &[], 100, u32::MAX);
        // Floor 0 (what a cursor made before the floor decodes to): the old order goes on.
        let Position::Rank { rank, seq, .. } = all[4].clone() else {
            panic!()
        };
        let after = Position::Rank {
            rank,
            seq,
            floor: 0,
        };
        let next = c
            .matches_with("fjord", None, &[], Some(&after), 3, 5)
            .unwrap();
        let got: Vec<Position> = next.into_iter().map(|h| h.position).collect();
        assert_eq!(got, all[5..8]);
        // A listing's cursor is refused.
        let newest = Position::Newest {
            created: 0,
            id: String::new(),
        };
        assert!(matches!(
            c.matches("fjord", None, &[], Some(&newest), 3),
            Err(CatalogError::Query(QueryError::BadCursor(_)))
        ));
    }

    #[test]
    fn only_the_shown_rows_are_read_with_their_snippets() {
        let t = tempfile::tempdir().unwrap();
        let c = world(&t);
        let plan = |sql: &str| -> String {
            c.conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params!["x", "[1, 2]"], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let shown = plan(&shown_sql());
        assert!(shown.starts_with("SCAN shown"), "{shown}");
        assert!(
            shown.contains("images_fts VIRTUAL TABLE INDEX 0:=M"),
            "{shown}"
        );
        let hits = c.matches_with("fjord", None, &[], None, 4, 10).unwrap();
        assert_eq!(hits.len(), 4);
        for h in &hits {
            assert!(
                h.snippet.iter().any(|f| f.is_match && f.text == "fjord"),
                "{h:?}"
            );
        }
    }
}
