//! Variants on disk, indexed in SQLite, evicted least-recently-used first.

use std::io;

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
    Index(#[from] rusqlite::Error),
    /// Writing or removing a cached file failed.
    #[error("cache i/o: {0}")]
    Io(#[from] io::Error),
}
