//! Variants on disk under `[cache] dir`, indexed in SQLite under `[state] dir`, kept under a
//! space limit by evicting the least recently used.
//!
//! Layout: `r/<aa>/<30 hex>/<16 hex>/<w>x<h>.<ext>` — the first 32 hex digits hash the source's
//! identity (its canonical path or URL), the next directory its version (size + mtime, or
//! content hash), so a changed original never serves stale bytes and no `src` can collide with
//! another or reach outside the cache. Files are written to a temporary name in the same
//! directory, synced and renamed (the directory synced after), so a half-written file is never
//! visible, not even after a crash; rows and files go together. The index's running totals
//! (what a store checks against the space limit) are kept exact by triggers.
//!
//! Beside its variants, a source's version directory holds a symbolic link, [`SOURCE_FACTS`],
//! whose target records what the index records of the source (format and displayed size), and
//! each variant file's status-change time records when its last access was: together they let
//! a hit be answered without opening the index (`variant::quick`), while the index's access
//! times stay as fresh as [`Cache::touch`] keeps them.
//!
//! This module stores and evicts; it does not decode, render or fetch.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::db;
use crate::geometry::Size;
use crate::render::Format;

/// Why the cache could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The index stayed locked beyond the busy timeout.
    #[error("cache index is busy: {0}")]
    Busy(String),
    /// The variant alone is larger than the cache's space limit.
    #[error("variant does not fit in the cache")]
    Full,
    /// The SQLite index failed.
    #[error("cache index: {0}")]
    Index(rusqlite::Error),
    /// Writing or removing a cached file failed.
    #[error("cache i/o: {0}")]
    Io(#[from] io::Error),
}

impl From<rusqlite::Error> for CacheError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                CacheError::Busy(e.to_string())
            }
            _ => CacheError::Index(e),
        }
    }
}

/// 2: totals follow a replaced row (`variants_resized`), and are recounted once on upgrade.
const SCHEMA_VERSION: i64 = 2;

/// Sets the running totals to the sum of the rows.
macro_rules! recount_sql {
    () => {
        "UPDATE totals SET bytes = (SELECT coalesce(sum(bytes), 0) FROM variants),
                           count = (SELECT count(*) FROM variants)
         WHERE id = 1;"
    };
}

const SCHEMA: &str = concat!(
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

/// Who a source is: a stable identity and a version that changes with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceKey {
    /// `local:<canonical path below the originals root>` or `remote:<url>`.
    pub ident: String,
    pub version: String,
}

impl SourceKey {
    /// The directory of this source's variants, relative to the cache dir.
    pub fn dir(&self) -> String {
        let ident = hex(&Sha256::digest(self.ident.as_bytes()));
        let version = hex(&Sha256::digest(self.version.as_bytes()));
        format!("r/{}/{}/{}", &ident[..2], &ident[2..32], &version[..16])
    }
}

/// What the index knows about a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub id: i64,
    pub format: Format,
    /// As displayed.
    pub size: Size,
    pub dir: String,
    pub variants: Vec<KnownVariant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownVariant {
    pub path: String,
    pub last_access: i64,
}

/// The relative path of a variant of `size` in `dir`.
pub fn variant_path(dir: &str, size: Size, format: Format) -> String {
    format!("{dir}/{}x{}.{}", size.width, size.height, format.ext())
}

/// The name, in a source's version directory, of the symbolic link whose target records the
/// source's format and displayed size as the index has them (`jpg-4032x3024`): one `readlink`
/// reads it, one `symlink` writes it whole. Eviction, mirror lists and the web server ignore it
/// (a dot name, and not a regular file).
pub const SOURCE_FACTS: &str = ".source";

/// The source's format and displayed size, as the [`SOURCE_FACTS`] link in the version
/// directory `dir` (relative to `cache_dir`) records them; `None` when there is no such link or
/// it says something else.
pub fn source_facts(cache_dir: &Path, dir: &str) -> Option<(Format, Size)> {
    let target = fs::read_link(cache_dir.join(dir).join(SOURCE_FACTS)).ok()?;
    let (format, size) = target.to_str()?.split_once('-')?;
    let (w, h) = size.split_once('x')?;
    let size = Size::new(w.parse().ok()?, h.parse().ok()?);
    if size.width == 0 || size.height == 0 {
        return None;
    }
    Some((Format::from_ext(format)?, size))
}

/// Whether a variant's file was written, or had an access recorded by [`Cache::hit`], less than
/// `interval` ago: both set its status-change time (`ctime`), which serving it never does.
pub fn recently_stamped(meta: &fs::Metadata, interval: Duration) -> bool {
    let ctime = meta.ctime() * 1000 + meta.ctime_nsec() / 1_000_000;
    let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    now().saturating_sub(ctime) < interval
}

/// Totals of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub bytes: u64,
    pub count: u64,
}

/// Writes a variant's bytes to its open temporary file (`File::write_all`; tests put a short
/// writer in its place).
type Writer = fn(&mut File, &[u8]) -> io::Result<()>;

/// The cache: a directory of files and their index.
pub struct Cache {
    conn: Connection,
    dir: PathBuf,
    locks: PathBuf,
    max_bytes: u64,
    /// A store that takes the total over `max_bytes` evicts down to this.
    low_water: u64,
    access_interval: Duration,
    writer: Writer,
}

/// The low-water mark when none is configured: 90 % of the space limit.
pub fn default_low_water(max_bytes: u64) -> u64 {
    max_bytes / 10 * 9 + max_bytes % 10 * 9 / 10
}

impl Cache {
    /// Opens (creating when missing) the cache directory and its index; a store over
    /// `max_bytes` evicts down to [`default_low_water`] (see [`Cache::open_config`]).
    pub fn open(
        dir: &Path,
        index: &Path,
        max_bytes: u64,
        access_interval: Duration,
    ) -> Result<Cache, CacheError> {
        fs::create_dir_all(dir)?;
        let state = index.parent().unwrap_or(Path::new("."));
        let locks = state.join("locks");
        fs::create_dir_all(&locks)?;
        let conn = db::open(index, db::Sync::Normal, SCHEMA, SCHEMA_VERSION)?;
        Ok(Cache {
            conn,
            dir: dir.to_path_buf(),
            locks,
            max_bytes,
            low_water: default_low_water(max_bytes),
            access_interval,
            writer: |f, bytes| f.write_all(bytes),
        })
    }

    /// Opens the cache as `config` describes it (`[cache]`, `[state] dir`).
    pub fn open_config(config: &Config) -> Result<Cache, CacheError> {
        let c = &config.cache;
        let mut cache = Cache::open(
            &c.dir,
            &config.state.index_path(),
            c.max_bytes,
            c.access_interval,
        )?;
        cache.low_water = c.low_water.min(c.max_bytes);
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The absolute path of a variant.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The source and all its variants, in one indexed read.
    pub fn lookup(&self, key: &SourceKey) -> Result<Option<Known>, CacheError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.id, s.format, s.width, s.height, s.dir, v.path, v.last_access
             FROM sources s LEFT JOIN variants v ON v.source_id = s.id
             WHERE s.ident = ?1 AND s.version = ?2",
        )?;
        let mut rows = stmt.query(params![key.ident, key.version])?;
        let mut known: Option<Known> = None;
        while let Some(row) = rows.next()? {
            let k = match known.as_mut() {
                Some(k) => k,
                None => {
                    let format: String = row.get(1)?;
                    known.insert(Known {
                        id: row.get(0)?,
                        format: Format::from_ext(&format).ok_or_else(|| {
                            CacheError::Index(rusqlite::Error::InvalidColumnType(
                                1,
                                "format".into(),
                                rusqlite::types::Type::Text,
                            ))
                        })?,
                        size: Size::new(row.get(2)?, row.get(3)?),
                        dir: row.get(4)?,
                        variants: Vec::new(),
                    })
                }
            };
            if let Some(path) = row.get::<_, Option<String>>(5)? {
                k.variants.push(KnownVariant {
                    path,
                    last_access: row.get(6)?,
                });
            }
        }
        Ok(known)
    }

    /// Records a hit: refreshes the last-access time only when it is older than the access
    /// interval, so that hits normally write nothing. Returns whether it wrote.
    pub fn touch(&self, variant: &KnownVariant) -> Result<bool, CacheError> {
        let now = now();
        let interval = i64::try_from(self.access_interval.as_millis()).unwrap_or(i64::MAX);
        if now.saturating_sub(variant.last_access) < interval {
            return Ok(false);
        }
        self.conn
            .prepare_cached(
                "UPDATE variants SET last_access = ?1, hits = hits + 1 WHERE path = ?2",
            )?
            .execute(params![now, variant.path])?;
        Ok(true)
    }

    /// Records a hit on an indexed variant whose file is there (`meta`): [`Cache::touch`]es its
    /// row and, when the file's last stamp is older than the access interval, stamps it again
    /// (sets its access time, and so its status-change time) and makes sure its directory has
    /// the [`SOURCE_FACTS`] link, so that hits within the next interval need no index
    /// (`variant::quick`). Neither is an error: both only save later hits work.
    pub fn hit(
        &self,
        known: &Known,
        variant: &KnownVariant,
        meta: &fs::Metadata,
    ) -> Result<(), CacheError> {
        self.touch(variant)?;
        if !recently_stamped(meta, self.access_interval) {
            let path = self.file(&variant.path);
            let stamped = File::open(&path)
                .and_then(|f| f.set_times(FileTimes::new().set_accessed(SystemTime::now())));
            if let Err(e) = stamped {
                // Not the file's owner (say, precached by another user): hits of this
                // variant then keep taking the index path.
                log::debug!("stamp {}: {e}", path.display());
            }
            self.link_source_facts(&known.dir, known.format, known.size);
        }
        Ok(())
    }

    /// Writes the [`SOURCE_FACTS`] link of the version directory `dir`, unless it is there.
    fn link_source_facts(&self, dir: &str, format: Format, size: Size) {
        let link = self.dir.join(dir).join(SOURCE_FACTS);
        let target = format!("{}-{}x{}", format.ext(), size.width, size.height);
        match std::os::unix::fs::symlink(target, &link) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                log::warn!("{}: {e}", link.display());
            }
            _ => {}
        }
    }

    /// Takes the lock that serialises rendering of one variant (`rel`) across processes and
    /// threads, so concurrent misses for it render it once while other variants of the same
    /// source render in parallel (one of 256 striped lock files in the state directory, so
    /// nothing litters the cache).
    pub fn lock(&self, rel: &str) -> Result<VariantLock, CacheError> {
        let digest = Sha256::digest(rel.as_bytes());
        let path = self.locks.join(format!("{:02x}.lock", digest[0]));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o666)
            .open(path)?;
        file.lock()?;
        Ok(VariantLock { _file: file })
    }

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
            crate::metrics::evicted(evicted.count);
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
    /// after this returns, in chunks of [`EVICT_BATCH`]).
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

/// The running totals, read on `conn` (or inside a transaction on it).
fn totals(conn: &Connection) -> Result<Totals, CacheError> {
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

/// Held while a source's variant is rendered; released on drop.
pub struct VariantLock {
    _file: File,
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// that readers see either nothing or the whole file, also after a crash: the file's data is
/// synced before the rename, and its directory (and any directory created for it) after, so
/// that a name that survives a power cut names the whole file — variants are served as
/// immutable for a year. A file whose length is not `bytes.len()` is an error and is never
/// renamed into place. Files are world-readable: the web server serves them.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with(path, bytes, |f, b| f.write_all(b))
}

/// [`write_atomically`] with `write` filling the temporary file.
fn write_atomically_with(path: &Path, bytes: &[u8], write: Writer) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dirs(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("variant");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(
        ".{name}.{}.{:?}.{nanos}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        write(&mut f, bytes)?;
        if durable() {
            f.sync_data()?;
        }
        let written = f.metadata()?.len();
        if written != bytes.len() as u64 {
            return Err(io::Error::other(format!(
                "{}: {written} bytes on disk, {} written",
                path.display(),
                bytes.len()
            )));
        }
        drop(f);
        fs::rename(&tmp, path)?;
        if durable() {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Whether [`write_atomically`] syncs: always, unless `IMGSERV_FSYNC=0` (kept to measure what
/// syncing costs, BENCHMARKS.md item 18; a crash may then leave empty or short variants).
fn durable() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("IMGSERV_FSYNC").is_none_or(|v| v != "0"))
}

/// Creates `dir` and its missing parents like `fs::create_dir_all`, syncing the parent of each
/// directory it creates, so that the new entries survive a crash with the file put in them.
fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {
            if durable() {
                sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
            }
            Ok(())
        }
        // Another process made it, and syncs its parent.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Syncs a directory, so that the entries created or renamed in it are on disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Makes `target` the same file as `existing` (a hard link, or a copy where links are not
/// possible), atomically: readers see the old state or the whole file.
fn link_atomically(existing: &Path, target: &Path) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    create_dirs(dir)?;
    let tmp = dir.join(format!(
        ".link.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_file(&tmp);
    match fs::hard_link(existing, &tmp) {
        Ok(()) => {
            let renamed = fs::rename(&tmp, target);
            // Also after success: renaming a link onto another link of the same file (a name
            // linked before) does nothing and leaves `tmp` (rename(2)).
            let _ = fs::remove_file(&tmp);
            renamed?;
            if durable() {
                sync_dir(dir)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        Err(_) => write_atomically(target, &fs::read(existing)?),
    }
}

/// Unix time in milliseconds: fine enough to order accesses within one second.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> SourceKey {
        SourceKey {
            ident: format!("local:img{n}.jpg"),
            version: "1-1".into(),
        }
    }

    fn open(t: &tempfile::TempDir, max: u64) -> Cache {
        Cache::open(
            &t.path().join("cache"),
            &t.path().join("state/cache.sqlite"),
            max,
            Duration::from_secs(60),
        )
        .unwrap()
    }

    /// Stores a 10×10 PNG variant of source `n` holding `bytes` bytes, last used at time `n`
    /// (so the variants stored first are the least recently used); returns its path.
    fn store_used_at(c: &mut Cache, n: u32, bytes: usize) -> String {
        let k = key(n);
        let rel = variant_path(&k.dir(), Size::new(10, 10), Format::Png);
        c.store(
            &k,
            (Format::Png, Size::new(20, 20)),
            &rel,
            Size::new(10, 10),
            &vec![0; bytes],
        )
        .unwrap();
        c.conn
            .execute(
                "UPDATE variants SET last_access = ?1 WHERE path = ?2",
                params![n, rel],
            )
            .unwrap();
        rel
    }

    #[test]
    fn layout_is_hashed_and_versioned() {
        let a = key(1).dir();
        assert!(a.starts_with("r/"));
        assert_eq!(
            a.split('/').map(str::len).collect::<Vec<_>>(),
            [1, 2, 30, 16]
        );
        assert_ne!(a, key(2).dir());
        let mut changed = key(1);
        changed.version = "2-1".into();
        assert_eq!(a[..35], changed.dir()[..35], "same source, same parent");
        assert_ne!(a, changed.dir(), "new version, new directory");
        let evil = SourceKey {
            ident: "local:../../etc/passwd".into(),
            version: "x".into(),
        };
        assert!(
            evil.dir()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'/' || b == b'r')
        );
    }

    #[test]
    fn store_lookup_touch() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, 1 << 20);
        assert_eq!(c.lookup(&key(1)).unwrap(), None);
        let k = key(1);
        let rel = variant_path(&k.dir(), Size::new(10, 5), Format::Jpeg);
        c.store(
            &k,
            (Format::Jpeg, Size::new(100, 50)),
            &rel,
            Size::new(10, 5),
            b"abc",
        )
        .unwrap();
        assert_eq!(fs::read(c.file(&rel)).unwrap(), b"abc");
        let known = c.lookup(&k).unwrap().unwrap();
        assert_eq!(known.size, Size::new(100, 50));
        assert_eq!(known.format, Format::Jpeg);
        assert_eq!(known.variants.len(), 1);
        assert_eq!(known.variants[0].path, rel);
        // A fresh entry is not rewritten on a hit; an old one is.
        assert!(!c.touch(&known.variants[0]).unwrap());
        let old = KnownVariant {
            last_access: 0,
            ..known.variants[0].clone()
        };
        assert!(c.touch(&old).unwrap());
        assert_eq!(c.variant_row(&rel).unwrap().unwrap().2, 1);
        assert_eq!(c.totals().unwrap(), Totals { bytes: 3, count: 1 });
        // No temporary file is left next to it: only the source's facts.
        let dir = c.file(&k.dir());
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [SOURCE_FACTS, "10x5.jpg"]);
    }

    #[test]
    fn source_facts_and_stamps_let_hits_skip_the_index() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, 1 << 20);
        let k = key(1);
        let rel = variant_path(&k.dir(), Size::new(10, 5), Format::Jpeg);
        let source = (Format::Gif, Size::new(100, 50));
        c.store(&k, source, &rel, Size::new(10, 5), b"abc").unwrap();
        // The store records the source as the index does.
        assert_eq!(source_facts(c.dir(), &k.dir()), Some(source));
        assert_eq!(source_facts(c.dir(), &key(2).dir()), None);
        // A file just written is freshly stamped: for the access interval, not for zero.
        let meta = fs::metadata(c.file(&rel)).unwrap();
        assert!(recently_stamped(&meta, Duration::from_secs(60)));
        assert!(!recently_stamped(&meta, Duration::ZERO));

        // A link that says anything else is no facts.
        let link = c.file(&k.dir()).join(SOURCE_FACTS);
        for bad in ["jpg-0x5", "bmp-10x5", "jpg-10", "jpg-10x5x2", "-", "jpg-x5"] {
            fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(bad, &link).unwrap();
            assert_eq!(source_facts(c.dir(), &k.dir()), None, "{bad:?}");
        }

        // A hit whose stamp is older than the interval stamps the file again (its access
        // time, so its status-change time too) and puts the facts back.
        fs::remove_file(&link).unwrap();
        let long_ago = UNIX_EPOCH + Duration::from_secs(1_000_000);
        File::open(c.file(&rel))
            .unwrap()
            .set_times(FileTimes::new().set_accessed(long_ago))
            .unwrap();
        let stale = Cache {
            access_interval: Duration::ZERO,
            ..open(&t, 1 << 20)
        };
        let known = stale.lookup(&k).unwrap().unwrap();
        let meta = fs::metadata(stale.file(&rel)).unwrap();
        stale.hit(&known, &known.variants[0], &meta).unwrap();
        let after = fs::metadata(stale.file(&rel)).unwrap();
        assert!(after.atime() > 1_000_000, "stamped: {}", after.atime());
        assert_eq!(source_facts(c.dir(), &k.dir()), Some(source));
        // The row was touched too (the interval is zero), and the file's bytes are unchanged.
        assert_eq!(stale.variant_row(&rel).unwrap().unwrap().2, 1);
        assert_eq!(fs::read(c.file(&rel)).unwrap(), b"abc");
    }

    #[test]
    fn variants_of_one_source_lock_separately() {
        let t = tempfile::tempdir().unwrap();
        let c = open(&t, 1 << 20);
        let dir = key(1).dir();
        let stripe = |rel: &str| Sha256::digest(rel.as_bytes())[0];
        let a = variant_path(&dir, Size::new(800, 600), Format::Jpeg);
        // Another box of the same source whose lock is another stripe.
        let b = (1..)
            .map(|w| variant_path(&dir, Size::new(w, 600), Format::Jpeg))
            .find(|b| stripe(b) != stripe(&a))
            .unwrap();
        let _held = c.lock(&a).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = open(&t, 1 << 20);
        std::thread::spawn(move || {
            let _b = other.lock(&b).unwrap();
            tx.send(()).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("rendering one box of a source must not wait for another box's render");
    }

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

    /// The totals as the rows have them.
    fn summed(c: &Cache) -> Totals {
        c.conn
            .query_row(
                "SELECT coalesce(sum(bytes), 0), count(*) FROM variants",
                [],
                |r| {
                    Ok(Totals {
                        bytes: r.get::<_, i64>(0)? as u64,
                        count: r.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .unwrap()
    }

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
