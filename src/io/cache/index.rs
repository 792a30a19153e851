//! The SQLite index of the cache: its schema (and upgrades), the running totals the triggers
//! keep exact, and the whole-index reads and repairs of `fsck` and the sweep. Lookups, stores
//! and eviction are their own modules.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Cache, CacheError, EVICT_BATCH};
/// 2: totals follow a replaced row (`variants_resized`), and are recounted once on upgrade.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// Sets the running totals to the sum of the rows.
macro_rules! recount_sql {
    () => {
        "UPDATE totals SET bytes = (SELECT coalesce(sum(bytes), 0) FROM variants),
                           count = (SELECT count(*) FROM variants)
         WHERE id = 1;"
    };
}

pub(super) const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS sources (
    id      INTEGER PRIMARY KEY,
    ident   TEXT NOT NULL,              -- 'local:<path>' or 'remote:<url>'
    version TEXT NOT NULL,              -- changes whenever the original's bytes may have
    dir     TEXT NOT NULL,              -- its variants' directory, relative to the cache dir
    format  TEXT NOT NULL,
    width   INTEGER NOT NULL,           -- as displayed (after EXIF orientation)
    height  INTEGER NOT NULL,
    created INTEGER NOT NULL,           -- unix time in milliseconds
    UNIQUE (ident, version)
);
CREATE TABLE IF NOT EXISTS variants (
    path        TEXT PRIMARY KEY,       -- relative to the cache dir; the cache key
    source_id   INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    created     INTEGER NOT NULL,       -- unix time in milliseconds
    last_access INTEGER NOT NULL,       -- refreshed at most once per access interval
    hits        INTEGER NOT NULL DEFAULT 0  -- refreshes of last_access: a lower bound
);
CREATE INDEX IF NOT EXISTS variants_lru ON variants (last_access, created);
CREATE INDEX IF NOT EXISTS variants_source ON variants (source_id);
-- Running totals, so that the space check never scans the table.
CREATE TABLE IF NOT EXISTS totals (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    bytes INTEGER NOT NULL,
    count INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS variants_added AFTER INSERT ON variants BEGIN
    UPDATE totals SET bytes = bytes + NEW.bytes, count = count + 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS variants_removed AFTER DELETE ON variants BEGIN
    UPDATE totals SET bytes = bytes - OLD.bytes, count = count - 1 WHERE id = 1;
END;
-- A variant stored again over its row is an upsert (an UPDATE): `INSERT OR REPLACE` would
-- delete the old row without firing `variants_removed` (SQLite fires delete triggers of a
-- REPLACE only with recursive triggers on) and count the path twice.
CREATE TRIGGER IF NOT EXISTS variants_resized AFTER UPDATE OF bytes ON variants BEGIN
    UPDATE totals SET bytes = bytes - OLD.bytes + NEW.bytes WHERE id = 1;
END;
-- Run when the schema is created or upgraded: totals that drifted under version 1 (replaced
-- rows counted twice) are made exact once.
",
    recount_sql!()
);

/// Totals of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub bytes: u64,
    pub count: u64,
}

/// The running totals, read on `conn` (or inside a transaction on it).
pub(super) fn totals(conn: &Connection) -> Result<Totals, CacheError> {
    Ok(conn
        .prepare_cached("SELECT bytes, count FROM totals WHERE id = 1")?
        .query_row([], |r| {
            Ok(Totals {
                bytes: r.get::<_, i64>(0)?.max(0) as u64,
                count: r.get::<_, i64>(1)?.max(0) as u64,
            })
        })
        .optional()?
        .unwrap_or_default())
}

impl Cache {
    /// Bytes and number of variants in the index.
    pub fn totals(&self) -> Result<Totals, CacheError> {
        totals(&self.conn)
    }

    /// Every indexed variant's path and bytes, in path order (for `fsck`).
    pub fn variants(&self) -> Result<Vec<(String, u64)>, CacheError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, bytes FROM variants ORDER BY path")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The running totals and the totals counted from the rows, read in one statement (so one
    /// snapshot): they differ only when the totals went wrong.
    pub fn audit_totals(&self) -> Result<(Totals, Totals), CacheError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT t.bytes, t.count,
                    (SELECT coalesce(sum(bytes), 0) FROM variants), (SELECT count(*) FROM variants)
             FROM totals t WHERE t.id = 1",
            )?
            .query_row([], |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                Ok((
                    Totals {
                        bytes: n(0)?,
                        count: n(1)?,
                    },
                    Totals {
                        bytes: n(2)?,
                        count: n(3)?,
                    },
                ))
            })?)
    }

    /// Sets the running totals to the sum of the rows, which the triggers otherwise keep them
    /// at: this repairs totals that drifted (under schema version 1, or by hand). Returns them
    /// before and after; one scan of the rows.
    pub fn recount(&mut self) -> Result<(Totals, Totals), CacheError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before = totals(&tx)?;
        tx.execute("INSERT OR IGNORE INTO totals VALUES (1, 0, 0)", [])?;
        tx.execute(recount_sql!(), [])?;
        let after = totals(&tx)?;
        tx.commit()?;
        Ok((before, after))
    }

    /// Sources that no variant row refers to (all theirs were evicted): (id, directory).
    pub fn unused_sources(&self) -> Result<Vec<(i64, String)>, CacheError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, dir FROM sources s
             WHERE NOT EXISTS (SELECT 1 FROM variants v WHERE v.source_id = s.id)",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets those of the sources `ids` that still have no variant row (a store may have
    /// indexed one since they were listed: the check and the delete are one statement). The
    /// next miss of such a source reads its header again. Returns how many went.
    pub fn forget_sources(&mut self, ids: &[i64]) -> Result<u64, CacheError> {
        let mut gone = 0;
        for chunk in ids.chunks(EVICT_BATCH) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut del = tx.prepare_cached(
                    "DELETE FROM sources WHERE id = ?1
                     AND NOT EXISTS (SELECT 1 FROM variants WHERE source_id = ?1)",
                )?;
                for id in chunk {
                    gone += del.execute(params![id])? as u64;
                }
            }
            tx.commit()?;
        }
        Ok(gone)
    }

    /// The index row of one variant: (bytes, last_access, hits).
    pub fn variant_row(&self, rel: &str) -> Result<Option<(u64, i64, i64)>, CacheError> {
        Ok(self
            .conn
            .prepare_cached("SELECT bytes, last_access, hits FROM variants WHERE path = ?1")?
            .query_row(params![rel], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
            })
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::format::Format;
    use crate::domain::geometry::Size;
    use crate::io::cache::tests::{key, open, summed};
    use crate::io::cache::variant_path;

    #[test]
    fn totals_stay_the_sum_of_the_rows_when_a_row_is_replaced() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, 1 << 20);
        let k = key(1);
        let rel = variant_path(&k.dir(), Size::new(10, 5), Format::Jpeg);
        let source = (Format::Jpeg, Size::new(100, 50));
        c.store(&k, source, &rel, Size::new(10, 5), &[1; 300])
            .unwrap();
        // Its file went missing and it was rendered again, or two stores raced: a second
        // store of the same path replaces the row.
        c.store(&k, source, &rel, Size::new(10, 5), &[2; 200])
            .unwrap();
        let want = Totals {
            bytes: 200,
            count: 1,
        };
        assert_eq!(summed(&c), want);
        assert_eq!(c.totals().unwrap(), want, "the totals drifted");
        assert_eq!(c.variant_row(&rel).unwrap().unwrap().0, 200);
        // Evicting it takes the totals to zero, not below.
        c.forget(&rel).unwrap();
        assert_eq!(c.totals().unwrap(), Totals::default());
    }

    #[test]
    fn recount_and_the_schema_upgrade_repair_drifted_totals() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, 1 << 20);
        for n in 0..3 {
            let k = key(n);
            let rel = variant_path(&k.dir(), Size::new(10, 5), Format::Jpeg);
            c.store(
                &k,
                (Format::Jpeg, Size::new(100, 50)),
                &rel,
                Size::new(10, 5),
                &[0; 7],
            )
            .unwrap();
        }
        let right = Totals {
            bytes: 21,
            count: 3,
        };
        let wrong = Totals {
            bytes: 999,
            count: 9,
        };
        let drift = |c: &Cache| {
            c.conn
                .execute("UPDATE totals SET bytes = 999, count = 9", [])
                .unwrap();
        };
        drift(&c);
        assert_eq!(c.recount().unwrap(), (wrong, right));
        assert_eq!(c.totals().unwrap(), right);
        // An index of schema version 1 is recounted once when opened.
        drift(&c);
        c.conn.pragma_update(None, "user_version", 1).unwrap();
        drop(c);
        assert_eq!(open(&t, 1 << 20).totals().unwrap(), right);
    }
}
