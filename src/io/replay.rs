//! The replay log: the signatures of accepted signed writes, remembered in shared storage
//! (`state/replay.sqlite`) so that a captured request cannot be sent again while its date is
//! still within the clock skew — not by another CGI process, nor by another FastCGI worker.
//!
//! A signature is recorded in the same SQLite statement that decides it is new (its digest is
//! the primary key), so of two identical requests arriving together exactly one is accepted.
//! Expired entries are pruned by every insert. Which requests must be remembered, and for how
//! long, is the caller's decision; this module only remembers.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::io::db;

/// Why the replay log could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The database stayed locked for longer than the busy timeout.
    #[error("replay log busy: {0}")]
    Busy(String),
    /// Any other SQLite failure (cannot create the file, disk full, corrupt database).
    #[error("replay log: {0}")]
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for ReplayError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                ReplayError::Busy(e.to_string())
            }
            _ => ReplayError::Db(e),
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS seen (
    digest BLOB PRIMARY KEY,   -- SHA-256 of the key id and the signature
    expires INTEGER NOT NULL   -- unix seconds after which the entry is pruned
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_expires ON seen (expires);
";
const VERSION: i64 = 1;

/// One connection to the replay log.
pub struct ReplayLog {
    conn: Connection,
}

impl ReplayLog {
    /// Opens (creating) the log at `path`. Commits are synced (`Full`): a write accepted just
    /// before a power cut must stay refused after it, as its effect on the catalog does stay.
    pub fn open(path: &Path) -> Result<ReplayLog, ReplayError> {
        Ok(ReplayLog {
            conn: db::open(path, db::Sync::Full, SCHEMA, VERSION)?,
        })
    }

    /// Records the signature `signature` made with key `key_id`, kept until `now + keep`
    /// (unix seconds); `true` when it was new, `false` when an unexpired entry had it already.
    /// Entries expired at `now` are pruned in the same transaction.
    pub fn remember(
        &mut self,
        key_id: &str,
        signature: &[u8],
        now: u64,
        keep: Duration,
    ) -> Result<bool, ReplayError> {
        let digest = Sha256::new()
            .chain_update(key_id.as_bytes())
            .chain_update([b'\n'])
            .chain_update(signature)
            .finalize();
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let expires = now.saturating_add(i64::try_from(keep.as_secs()).unwrap_or(i64::MAX));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM seen WHERE expires < ?1", [now])?;
        let inserted = tx.execute(
            "INSERT INTO seen (digest, expires) VALUES (?1, ?2) ON CONFLICT (digest) DO NOTHING",
            params![&digest[..], expires],
        )?;
        tx.commit()?;
        Ok(inserted == 1)
    }

    /// How many entries the log holds (expired ones not yet pruned included).
    pub fn len(&self) -> Result<u64, ReplayError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM seen", [], |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }

    /// Whether the log holds no entry.
    pub fn is_empty(&self) -> Result<bool, ReplayError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    const KEEP: Duration = Duration::from_secs(600);

    #[test]
    fn a_signature_is_new_once_until_it_expires() {
        let t = tempfile::tempdir().unwrap();
        let mut log = ReplayLog::open(&t.path().join("replay.sqlite")).unwrap();
        let sig = [7u8; 32];
        assert!(log.remember("ak_1", &sig, 1000, KEEP).unwrap());
        assert!(!log.remember("ak_1", &sig, 1000, KEEP).unwrap());
        assert!(
            !log.remember("ak_1", &sig, 1600, KEEP).unwrap(),
            "kept up to now + keep"
        );
        // The same bytes under another key are another signature.
        assert!(log.remember("ak_2", &sig, 1000, KEEP).unwrap());
        // Once expired the entry is pruned (by any insert), and the log stays small.
        assert!(log.remember("ak_3", &[1u8; 32], 1601, KEEP).unwrap());
        assert_eq!(log.len().unwrap(), 1);
        assert!(log.remember("ak_1", &sig, 1601, KEEP).unwrap());
    }

    #[test]
    fn of_many_connections_racing_with_one_signature_exactly_one_wins() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("replay.sqlite");
        let racers = 8;
        let start = Barrier::new(racers);
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..racers)
                .map(|_| {
                    s.spawn(|| {
                        // Each its own connection, as separate processes would have.
                        let mut log = ReplayLog::open(&path).unwrap();
                        start.wait();
                        log.remember("ak_1", &[9u8; 32], 1000, KEEP).unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(wins, 1);
    }
}
