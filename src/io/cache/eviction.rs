//! Keeping the cache under its space limit: least recently used variants go, rows first in
//! batches, then their files, unlinked in parallel.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{TransactionBehavior, params};

use super::index::totals;
use super::{Cache, CacheError};
/// What an eviction removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evicted {
    pub count: u64,
    pub bytes: u64,
}

/// Rows deleted per eviction transaction: large enough that the commits (each rewrites the
/// index pages its rows touched) are few, small enough that a concurrent store waits for the
/// write lock a fraction of a second, not its busy timeout.
pub const EVICT_BATCH: usize = 8192;

/// Threads that unlink an evicted batch's files. An unlink is mostly a wait, not work: on a
/// file system mounted with `discard` (like the bench machine's), freeing a file's block sends
/// a discard to the device and waits for it (~0.5 ms). Overlapping those waits is what makes a
/// large eviction fast; a handful of files is removed on the calling thread.
const UNLINK_THREADS: usize = 16;

/// Fewer files than this are removed on the calling thread: threads would cost more.
const UNLINKS_INLINE: usize = 4 * UNLINK_THREADS;

/// Removes the files `rels` (relative to `dir`), in parallel when there are many. A file
/// already gone is fine; returns the other failures, by index into `rels`.
pub fn remove_files<S: AsRef<str> + Sync>(dir: &Path, rels: &[S]) -> Vec<(usize, io::Error)> {
    let remove = |i: usize| match fs::remove_file(dir.join(rels[i].as_ref())) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Some((i, e)),
        _ => None,
    };
    if rels.len() < UNLINKS_INLINE {
        return (0..rels.len()).filter_map(remove).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..UNLINK_THREADS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= rels.len() {
                        break;
                    }
                    if let Some(f) = remove(i) {
                        failed.lock().unwrap_or_else(|e| e.into_inner()).push(f);
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
    failed.sort_by_key(|(i, _)| *i);
    failed
}

impl Cache {
    /// Evicts least-recently-used variants (ties: oldest created first) until the total is at
    /// most `budget` bytes, never the one named by `keep`. Rows go first, in transactions of up
    /// to [`EVICT_BATCH`] rows, then their files, so a crash can leave only unindexed files,
    /// which the eviction sweep removes.
    ///
    /// Each batch walks `variants_lru` from its start (deleted rows leave the index, so that is
    /// no re-scan) and deletes by rowid; the totals are read inside the batch's transaction, so
    /// that two evicting processes do not both take the same excess.
    pub fn evict_to(&mut self, budget: u64, keep: Option<&str>) -> Result<Evicted, CacheError> {
        let dir = self.dir.clone();
        let unlink = |paths: Vec<String>| {
            for (i, e) in remove_files(&dir, &paths) {
                log::warn!("evict {}: {e}", paths[i]);
            }
        };
        // A large eviction unlinks one batch's files while the next batch's rows are chosen
        // and deleted: the unlinks mostly wait on the disk (BENCHMARKS.md).
        std::thread::scope(|s| {
            let mut evicted = Evicted::default();
            let mut unlinking: Option<std::thread::ScopedJoinHandle<()>> = None;
            let result = loop {
                let victims = match self.evict_batch(budget, keep) {
                    Ok(v) if v.is_empty() => break Ok(()),
                    Ok(v) => v,
                    Err(e) => break Err(e),
                };
                evicted.count += victims.len() as u64;
                evicted.bytes += victims.iter().map(|(_, b)| b).sum::<u64>();
                let paths: Vec<String> = victims.into_iter().map(|(p, _)| p).collect();
                if let Some(previous) = unlinking.take() {
                    let _ = previous.join();
                }
                if paths.len() < UNLINKS_INLINE {
                    unlink(paths);
                } else {
                    unlinking = Some(s.spawn(|| unlink(paths)));
                }
            };
            if let Some(last) = unlinking {
                let _ = last.join();
            }
            crate::io::metrics::evicted(evicted.count);
            result.map(|()| evicted)
        })
    }

    /// One batch of [`Cache::evict_to`]: chooses and deletes (commits) the rows of up to
    /// [`EVICT_BATCH`] least-recently-used variants while the total is over `budget`; returns
    /// their paths and sizes, whose files the caller removes. Empty when nothing is over.
    fn evict_batch(
        &mut self,
        budget: u64,
        keep: Option<&str>,
    ) -> Result<Vec<(String, u64)>, CacheError> {
        // Under budget (every store's case but a few): a read, no write lock taken.
        if totals(&self.conn)?.bytes <= budget {
            return Ok(Vec::new());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read again under the write lock: another process may have evicted meanwhile.
        let total = totals(&tx)?.bytes;
        if total <= budget {
            return Ok(Vec::new());
        }
        let mut over = total - budget;
        let victims: Vec<(i64, String, u64)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT rowid, path, bytes FROM variants INDEXED BY variants_lru
                 ORDER BY last_access, created LIMIT ?1",
            )?;
            let mut rows = stmt.query(params![EVICT_BATCH as i64 + 1])?;
            let mut chosen = Vec::new();
            while over > 0 && chosen.len() < EVICT_BATCH {
                let Some(row) = rows.next()? else { break };
                let path: String = row.get(1)?;
                if keep == Some(path.as_str()) {
                    continue;
                }
                let bytes = row.get::<_, i64>(2)?.max(0) as u64;
                chosen.push((row.get(0)?, path, bytes));
                over = over.saturating_sub(bytes);
            }
            chosen
        };
        if victims.is_empty() {
            return Ok(Vec::new());
        }
        {
            let mut del = tx.prepare_cached("DELETE FROM variants WHERE rowid = ?1")?;
            for (rowid, _, _) in &victims {
                del.execute(params![rowid])?;
            }
        }
        tx.commit()?;
        Ok(victims.into_iter().map(|(_, p, b)| (p, b)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::format::Format;
    use crate::domain::geometry::Size;
    use crate::io::cache::tests::{key, open, store_used_at, summed};
    use crate::io::cache::{Totals, variant_path, write_atomically};

    #[test]
    fn eviction_removes_least_recently_used_first() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, 250);
        // Make access order explicit: variant n was last used at time n.
        let rels: Vec<String> = (0..5).map(|n| store_used_at(&mut c, n, 50)).collect();
        assert_eq!(c.totals().unwrap().bytes, 250);
        // Use variant 0 again: now variant 1 is the least recently used.
        c.conn
            .execute(
                "UPDATE variants SET last_access = 100 WHERE path = ?1",
                params![rels[0]],
            )
            .unwrap();
        let k = key(9);
        let rel = variant_path(&k.dir(), Size::new(10, 10), Format::Png);
        c.store(
            &k,
            (Format::Png, Size::new(20, 20)),
            &rel,
            Size::new(10, 10),
            &[0; 120],
        )
        .unwrap();
        // 370 bytes > 250: variants 1, 2 and 3 (150 bytes) go; 0, 4 and the new one stay.
        let totals = c.totals().unwrap();
        assert_eq!(
            totals,
            Totals {
                bytes: 220,
                count: 3
            }
        );
        for (n, r) in rels.iter().enumerate() {
            let kept = n == 0 || n == 4;
            assert_eq!(c.file(r).exists(), kept, "file of variant {n}");
            assert_eq!(
                c.variant_row(r).unwrap().is_some(),
                kept,
                "row of variant {n}"
            );
        }
        assert!(c.file(&rel).exists());
    }

    #[test]
    fn eviction_in_batches_is_lru_order_and_spares_keep() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, u64::MAX / 4);
        let n = 2 * EVICT_BATCH as i64 + 100;
        let tx = c.conn.transaction().unwrap();
        tx.execute(
            "INSERT INTO sources (id, ident, version, dir, format, width, height, created)
             VALUES (1, 'local:x', '1', 'r/00/x', 'png', 1, 1, 0)",
            [],
        )
        .unwrap();
        for i in 0..n {
            // Pairs share a last access; the older creation goes first.
            tx.execute(
                "INSERT INTO variants (path, source_id, width, height, bytes, created, last_access)
                 VALUES (?1, 1, 1, 1, 10, ?2, ?3)",
                params![format!("r/00/x/{i}.png"), n - i, i / 2],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        // Real files for the first 300 (removed in parallel) and the last one.
        let rel = |i: i64| format!("r/00/x/{i}.png");
        for i in (0..300).chain([n - 1]) {
            write_atomically(&c.file(&rel(i)), b"x").unwrap();
        }
        let keep = rel(2);
        let leave = 50;
        let e = c.evict_to((leave * 10) as u64, Some(&keep)).unwrap();
        assert_eq!(
            e,
            Evicted {
                count: (n - leave) as u64,
                bytes: ((n - leave) * 10) as u64
            }
        );
        assert_eq!(
            c.totals().unwrap(),
            Totals {
                bytes: leave as u64 * 10,
                count: leave as u64
            }
        );
        assert!(c.variant_row(&keep).unwrap().is_some(), "keep stays");
        assert!(c.file(&keep).exists());
        for i in (n - leave + 2)..n {
            assert!(
                c.variant_row(&rel(i)).unwrap().is_some(),
                "newest {i} stays"
            );
        }
        // The last pair evicted in part shares a last access: the earlier created went.
        assert!(c.variant_row(&rel(n - leave + 1)).unwrap().is_none());
        assert!(c.variant_row(&rel(n - leave)).unwrap().is_some());
        assert!(c.variant_row(&rel(n - leave - 1)).unwrap().is_none());
        assert!(c.file(&rel(n - 1)).exists());
        for i in (0..300).filter(|&i| i != 2) {
            assert!(!c.file(&rel(i)).exists(), "file {i} removed");
        }
    }

    #[test]
    fn a_full_cache_evicts_down_to_the_low_water_mark_once() {
        let t = tempfile::tempdir().unwrap();
        // 1,000 bytes, low water at 90 % (the default): 900.
        let mut c = open(&t, 1000);
        assert_eq!(c.low_water, 900);
        // Distinct, increasing access times: the first stored is the least recently used.
        let mut n = 0;
        let mut store = |c: &mut Cache| {
            n += 1;
            store_used_at(c, n - 1, 100)
        };
        let rels: Vec<String> = (0..10).map(|_| store(&mut c)).collect();
        assert_eq!(
            c.totals().unwrap(),
            Totals {
                bytes: 1000,
                count: 10
            }
        );
        // The eleventh goes over the limit: its store evicts the two least recently used,
        // down to 900 bytes, not just the one that would do.
        let eleventh = store(&mut c);
        assert_eq!(
            c.totals().unwrap(),
            Totals {
                bytes: 900,
                count: 9
            }
        );
        assert!(!c.file(&rels[0]).exists() && !c.file(&rels[1]).exists());
        assert!(c.file(&rels[2]).exists() && c.file(&eleventh).exists());
        // The next one fits under the limit again: nothing is evicted.
        store(&mut c);
        assert_eq!(
            c.totals().unwrap(),
            Totals {
                bytes: 1000,
                count: 10
            }
        );
        assert!(c.file(&rels[2]).exists());
        assert_eq!(summed(&c), c.totals().unwrap());
    }
}
