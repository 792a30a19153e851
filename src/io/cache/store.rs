//! Putting variants into the cache and taking their rows out: a store (file, then row, then
//! eviction over the limit), an alias (a second name the index counts), and forgetting rows.
//! What goes when the cache is full is `eviction`'s.

use std::fs;

use rusqlite::{TransactionBehavior, params};

use super::atomic::{link_atomically, write_atomically_with};
use super::index::totals;
use super::{Cache, CacheError, SourceKey, now};
use crate::domain::format::Format;
use crate::domain::geometry::Size;
impl Cache {
    /// Writes a variant's bytes atomically and durably and indexes it (with its source when
    /// that is new); when that takes the total over the space limit, evicts least recently
    /// used variants down to the low-water mark, so that the misses after it do not evict
    /// again (one eviction every `max_bytes - low_water` bytes, not one a miss).
    pub fn store(
        &mut self,
        key: &SourceKey,
        source: (Format, Size),
        rel: &str,
        size: Size,
        bytes: &[u8],
    ) -> Result<(), CacheError> {
        let len = bytes.len() as u64;
        if len > self.max_bytes {
            return Err(CacheError::Full);
        }
        let path = self.dir.join(rel);
        // Only a file of exactly `len` bytes, on disk, is indexed (and then served as
        // immutable for a year).
        write_atomically_with(&path, bytes, self.writer)?;
        let dir = key.dir();
        let now = now();
        let indexed = (|| -> Result<(), CacheError> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR IGNORE INTO sources (ident, version, dir, format, width, height, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    key.ident,
                    key.version,
                    dir,
                    source.0.ext(),
                    source.1.width,
                    source.1.height,
                    now
                ],
            )?;
            let source_id: i64 = tx.query_row(
                "SELECT id FROM sources WHERE ident = ?1 AND version = ?2",
                params![key.ident, key.version],
                |r| r.get(0),
            )?;
            // An upsert, not `INSERT OR REPLACE`: the update trigger keeps the totals exact.
            tx.execute(
                "INSERT INTO variants (path, source_id, width, height, bytes, created, last_access, hits)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 0)
                 ON CONFLICT (path) DO UPDATE SET
                    source_id = excluded.source_id, width = excluded.width,
                    height = excluded.height, bytes = excluded.bytes, created = excluded.created,
                    last_access = excluded.last_access, hits = 0",
                params![rel, source_id, size.width, size.height, len as i64, now],
            )?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = indexed {
            // No row, no file: a failed store leaves nothing behind.
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.link_source_facts(&dir, source.0, source.1);
        if totals(&self.conn)?.bytes > self.max_bytes {
            self.evict_to(self.low_water, Some(rel))?;
        }
        Ok(())
    }

    /// Gives the indexed variant `rel` a second name, `alias` (the 404 handler's file at the
    /// path the web server looks at): a hard link (a copy where links are not possible),
    /// written atomically, and a row of its own with the variant's source, size and bytes.
    /// Every name on disk is thus in the index: eviction removes it, and the space limit
    /// counts its bytes — twice while both names share the inode, which errs towards
    /// evicting early, never towards filling the disk (a name the index never sees would
    /// keep the bytes of an evicted variant alive). Then evicts as [`Cache::store`] does.
    ///
    /// The row goes first, so a crash can leave a row without a file (forgotten when it is
    /// evicted), never an uncounted file. `false`, with nothing written, when `rel` is no
    /// longer indexed: another process evicted it, or removed its original, since it was
    /// stored (the caller decides whether to store it again).
    pub fn alias(&mut self, rel: &str, alias: &str) -> Result<bool, CacheError> {
        let added = self
            .conn
            .prepare_cached(
                // Not INSERT OR REPLACE: its delete fires no trigger, so the totals would count
                // a name linked again twice.
                "INSERT INTO variants (path, source_id, width, height, bytes, created, last_access, hits)
                 SELECT ?2, source_id, width, height, bytes, ?3, ?3, 0 FROM variants WHERE path = ?1
                 ON CONFLICT (path) DO UPDATE SET last_access = excluded.last_access",
            )?
            .execute(params![rel, alias, now()])?;
        if added == 0 {
            return Ok(false);
        }
        if let Err(e) = link_atomically(&self.dir.join(rel), &self.dir.join(alias)) {
            let _ = self.forget(alias);
            return Err(e.into());
        }
        self.evict_to(self.max_bytes, Some(alias))?;
        Ok(true)
    }

    /// Removes the rows of `rels` in one transaction (callers evicting many remove the files
    /// after this returns, in chunks of [`EVICT_BATCH`](super::EVICT_BATCH)).
    pub fn forget_all<S: AsRef<str>>(&mut self, rels: &[S]) -> Result<(), CacheError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut del = tx.prepare_cached("DELETE FROM variants WHERE path = ?1")?;
            for rel in rels {
                del.execute(params![rel.as_ref()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes one variant's row (when its file is gone, say).
    pub fn forget(&self, rel: &str) -> Result<(), CacheError> {
        self.conn
            .prepare_cached("DELETE FROM variants WHERE path = ?1")?
            .execute(params![rel])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::cache::tests::{key, open};
    use crate::io::cache::{Totals, variant_path};
    use std::io::Write;

    #[test]
    fn an_alias_is_counted_and_evicted_like_a_variant() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, 1000);
        let k = key(1);
        let rel = variant_path(&k.dir(), Size::new(10, 10), Format::Png);
        let facts = (Format::Png, Size::new(20, 20));
        c.store(&k, facts, &rel, Size::new(10, 10), &[7; 300])
            .unwrap();
        assert!(c.alias(&rel, "abc/10/10.png").unwrap());
        assert!(c.alias(&rel, "abc/10/10.png").unwrap());
        let names = fs::read_dir(c.file("abc/10")).unwrap().count();
        assert_eq!(names, 1, "again: the same name, no temporary left");
        use std::os::unix::fs::MetadataExt;
        let ino = |r: &str| fs::metadata(c.file(r)).unwrap().ino();
        assert_eq!(ino(&rel), ino("abc/10/10.png"), "one file, two names");
        assert_eq!(
            c.totals().unwrap(),
            Totals {
                bytes: 600,
                count: 2
            }
        );
        assert_eq!(c.lookup(&k).unwrap().unwrap().variants.len(), 2);
        // Evicting everything removes both names, so the bytes are really gone.
        assert_eq!(c.evict_to(0, None).unwrap().count, 2);
        assert!(!c.file(&rel).exists() && !c.file("abc/10/10.png").exists());
        assert_eq!(c.totals().unwrap(), Totals::default());
        // An alias of a variant the index no longer has (evicted, or its original deleted, by
        // another process since it was stored) is no error the client should see: `false`,
        // and nothing written.
        assert!(!c.alias(&rel, "abc/10/10.png").unwrap());
        assert!(!c.file("abc/10/10.png").exists());
        assert_eq!(c.totals().unwrap(), Totals::default());
    }

    #[test]
    fn a_variant_whose_length_differs_from_what_was_written_is_never_indexed() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, 1 << 20);
        // A write that reports success but leaves half the bytes (a lying file system, a
        // delayed allocation that failed): the file is shorter than what was written.
        c.writer = |f, bytes| f.write_all(&bytes[..bytes.len() / 2]);
        let k = key(1);
        let rel = variant_path(&k.dir(), Size::new(10, 5), Format::Jpeg);
        let err = c
            .store(
                &k,
                (Format::Jpeg, Size::new(100, 50)),
                &rel,
                Size::new(10, 5),
                &[7; 100],
            )
            .unwrap_err();
        assert!(matches!(err, CacheError::Io(_)), "{err:?}");
        assert!(
            err.to_string().contains("50 bytes on disk, 100 written"),
            "{err}"
        );
        assert_eq!(c.variant_row(&rel).unwrap(), None, "indexed");
        assert_eq!(c.totals().unwrap(), Totals::default());
        // Nothing under the final name, no temporary left.
        let dir = c.file(&k.dir());
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn too_big_for_the_cache() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, 10);
        let k = key(1);
        let rel = variant_path(&k.dir(), Size::new(10, 10), Format::Png);
        let err = c
            .store(
                &k,
                (Format::Png, Size::new(20, 20)),
                &rel,
                Size::new(10, 10),
                &[0; 11],
            )
            .unwrap_err();
        assert!(matches!(err, CacheError::Full));
        assert!(!c.file(&rel).exists());
        assert_eq!(c.lookup(&k).unwrap(), None);
    }
}
