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
//!
//! Its parts: `index` (the schema, the running totals, `fsck`'s reads and repairs), `lookup`
//! (what is known of a source, and recording hits), `store` (storing, aliases, forgetting
//! rows), `eviction` (keeping under the space limit), `lock` (one render of a variant at a
//! time), `atomic` (writing a file whole and durably). This file holds the [`Cache`] handle,
//! its error and the layout of its directory.

mod atomic;
mod eviction;
mod index;
mod lock;
mod lookup;
mod store;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::domain::format::Format;
use crate::domain::geometry::Size;
use crate::domain::hex;
use crate::io::db;

pub use atomic::write_atomically;
pub use eviction::{EVICT_BATCH, Evicted, remove_files};
pub use index::Totals;
pub use lock::VariantLock;
pub use lookup::{Known, KnownVariant, SOURCE_FACTS, recently_stamped, source_facts};

use atomic::Writer;
use index::{SCHEMA, SCHEMA_VERSION};

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

/// The relative path of a variant of `size` in `dir`.
pub fn variant_path(dir: &str, size: Size, format: Format) -> String {
    format!("{dir}/{}x{}.{}", size.width, size.height, format.ext())
}

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
    /// `max_bytes` evicts down to [`default_low_water`] (see [`Cache::set_low_water`]).
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

    /// Evicts down to `bytes` (at most `max_bytes`) once `max_bytes` is reached; the default is
    /// [`default_low_water`].
    pub fn set_low_water(&mut self, bytes: u64) {
        self.low_water = bytes.min(self.max_bytes);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The absolute path of a variant.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// Unix time in milliseconds: fine enough to order accesses within one second.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    pub(super) fn key(n: u32) -> SourceKey {
        SourceKey {
            ident: format!("local:img{n}.jpg"),
            version: "1-1".into(),
        }
    }

    pub(super) fn open(t: &tempfile::TempDir, max: u64) -> Cache {
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
    pub(super) fn store_used_at(c: &mut Cache, n: u32, bytes: usize) -> String {
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

    /// The totals as the rows have them.
    pub(super) fn summed(c: &Cache) -> Totals {
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
}
