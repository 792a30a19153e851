//! The counters of failed logins (`state/login_failures.sqlite`), shared by every process of a
//! site — each CGI request is its own process — so that a user name or an address is slowed
//! down whichever process it reaches.
//!
//! An attempt is counted as a failure *before* its password is checked, in the same write
//! transaction that decides it may go ahead: of many attempts racing in parallel, each sees
//! the ones before it, and no burst gets past the free failures. A success or an outage then
//! settles the attempt ([`FailureLog::succeeded`], [`FailureLog::undo`]). What counts as a
//! failure and how long to wait is `domain::throttle`'s; this module only stores.
//!
//! A file of its own rather than a catalog table: an attack is a flood of writes, which here
//! never wait for (nor hold up) the catalog's write lock and its synced commits, and the
//! counters are disposable (losing them lifts the waits, nothing else), so commits are not
//! synced and a backup of the catalog does not carry them.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::domain::throttle::{Counter, Kind, Policy};
use crate::io::db;

/// Why the counters could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FailureLogError {
    /// The database stayed locked for longer than the busy timeout.
    #[error("login failure counters busy: {0}")]
    Busy(String),
    /// Any other SQLite failure (cannot create the file, disk full, corrupt database).
    #[error("login failure counters: {0}")]
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for FailureLogError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                FailureLogError::Busy(e.to_string())
            }
            _ => FailureLogError::Db(e),
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS failures (
    kind TEXT NOT NULL,         -- 'user' (a folded user name) or 'address'
    key TEXT NOT NULL,
    failures INTEGER NOT NULL,  -- counted since first_ms
    first_ms INTEGER NOT NULL,  -- unix ms of the first failure counted
    last_ms INTEGER NOT NULL,   -- unix ms of the last one
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS failures_last ON failures (last_ms);
";
const VERSION: i64 = 1;

/// Whether an attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It must wait this much longer; nothing was written.
    Wait(Duration),
    /// It was counted as a failure: the user's counter and the address's (when given) now hold
    /// these many.
    Counted { user: u32, address: Option<u32> },
}

/// One counter, for `imgserv-admin login-throttle list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: Kind,
    pub key: String,
    pub failures: u32,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// One connection to the counters.
pub struct FailureLog {
    conn: Connection,
}

fn kind_column(text: &str) -> Kind {
    if text == "address" {
        Kind::Address
    } else {
        Kind::User
    }
}

impl FailureLog {
    /// Opens (creating) the counters at `path`.
    pub fn open(path: &Path) -> Result<FailureLog, FailureLogError> {
        Ok(FailureLog {
            conn: db::open(path, db::Sync::Normal, SCHEMA, VERSION)?,
        })
    }

    fn counter(conn: &Connection, kind: Kind, key: &str) -> rusqlite::Result<Option<Counter>> {
        conn.prepare_cached("SELECT failures, last_ms FROM failures WHERE kind = ?1 AND key = ?2")?
            .query_row(params![kind.as_str(), key], |r| {
                Ok(Counter {
                    failures: r.get::<_, i64>(0)?.clamp(0, i64::from(u32::MAX)) as u32,
                    last_ms: r.get(1)?,
                })
            })
            .optional()
    }

    /// The longest wait `policy` asks of the `user` counter and the `address` one at `now_ms`.
    fn wait(
        conn: &Connection,
        policy: &Policy,
        user: &str,
        address: Option<&str>,
        now_ms: i64,
    ) -> rusqlite::Result<Duration> {
        let mut wait = policy.wait(Kind::User, Self::counter(conn, Kind::User, user)?, now_ms);
        if let Some(address) = address {
            let c = Self::counter(conn, Kind::Address, address)?;
            wait = wait.max(policy.wait(Kind::Address, c, now_ms));
        }
        Ok(wait)
    }

    /// Decides whether an attempt for `user` from `address` may go ahead at `now_ms`, and when
    /// it may, counts it as a failure on both counters at once. Counters forgotten by the
    /// policy's window are pruned in the same transaction.
    pub fn admit(
        &mut self,
        policy: &Policy,
        user: &str,
        address: Option<&str>,
        now_ms: i64,
    ) -> Result<Admission, FailureLogError> {
        // A plain read first: a refused attempt (the flood of an attack) takes no write lock.
        let wait = Self::wait(&self.conn, policy, user, address, now_ms)?;
        if !wait.is_zero() {
            return Ok(Admission::Wait(wait));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Again under the write lock: another process may have counted a failure since.
        let wait = Self::wait(&tx, policy, user, address, now_ms)?;
        if !wait.is_zero() {
            return Ok(Admission::Wait(wait));
        }
        let forget_before = now_ms
            .saturating_sub(i64::try_from(policy.failure_window.as_millis()).unwrap_or(i64::MAX));
        tx.execute("DELETE FROM failures WHERE last_ms <= ?1", [forget_before])?;
        let count = |kind: Kind, key: &str| -> rusqlite::Result<u32> {
            let after = policy.after_failure(Self::counter(&tx, kind, key)?, now_ms);
            tx.prepare_cached(
                "INSERT INTO failures (kind, key, failures, first_ms, last_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (kind, key) DO UPDATE SET
                     failures = excluded.failures, last_ms = excluded.last_ms",
            )?
            .execute(params![kind.as_str(), key, after.failures, now_ms])?;
            Ok(after.failures)
        };
        let user = count(Kind::User, user)?;
        let address = address.map(|a| count(Kind::Address, a)).transpose()?;
        tx.commit()?;
        Ok(Admission::Counted { user, address })
    }

    /// Settles an admitted attempt that logged in: the user's counter is cleared, the address's
    /// loses the failure counted for this attempt (an address's other failures stand: one
    /// account of one's own must not reset a count made guessing other users' passwords).
    pub fn succeeded(&mut self, user: &str, address: Option<&str>) -> Result<(), FailureLogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM failures WHERE kind = 'user' AND key = ?1",
            [user],
        )?;
        if let Some(address) = address {
            Self::uncount(&tx, Kind::Address, address)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Settles an admitted attempt that could not be decided (a directory down): it was no
    /// failure, so each counter loses the one counted for it.
    pub fn undo(&mut self, user: &str, address: Option<&str>) -> Result<(), FailureLogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::uncount(&tx, Kind::User, user)?;
        if let Some(address) = address {
            Self::uncount(&tx, Kind::Address, address)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn uncount(conn: &Connection, kind: Kind, key: &str) -> rusqlite::Result<()> {
        conn.execute(
            "UPDATE failures SET failures = failures - 1 WHERE kind = ?1 AND key = ?2",
            params![kind.as_str(), key],
        )?;
        conn.execute(
            "DELETE FROM failures WHERE kind = ?1 AND key = ?2 AND failures <= 0",
            params![kind.as_str(), key],
        )?;
        Ok(())
    }

    /// The counters whose last failure is after `since_ms`, the latest first.
    pub fn list(&self, since_ms: i64) -> Result<Vec<Row>, FailureLogError> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, key, failures, first_ms, last_ms FROM failures
             WHERE last_ms > ?1 ORDER BY last_ms DESC, kind, key",
        )?;
        let rows = stmt.query_map([since_ms], |r| {
            Ok(Row {
                kind: kind_column(&r.get::<_, String>(0)?),
                key: r.get(1)?,
                failures: r.get::<_, i64>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
                first_ms: r.get(3)?,
                last_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes the counter of `kind` and `key`; whether there was one.
    pub fn clear(&mut self, kind: Kind, key: &str) -> Result<bool, FailureLogError> {
        let n = self.conn.execute(
            "DELETE FROM failures WHERE kind = ?1 AND key = ?2",
            params![kind.as_str(), key],
        )?;
        Ok(n > 0)
    }

    /// Removes every counter; how many there were.
    pub fn clear_all(&mut self) -> Result<usize, FailureLogError> {
        Ok(self.conn.execute("DELETE FROM failures", [])?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    fn policy() -> Policy {
        Policy {
            user_free_failures: 2,
            address_free_failures: 3,
            failure_window: Duration::from_secs(600),
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(600),
        }
    }

    const T: i64 = 1_700_000_000_000;

    #[test]
    fn attempts_are_counted_before_the_check_and_settled_after() {
        let t = tempfile::tempdir().unwrap();
        let mut log = FailureLog::open(&t.path().join("f.sqlite")).unwrap();
        let p = policy();
        let a = Some("192.0.2.1");
        assert_eq!(
            log.admit(&p, "bob", a, T).unwrap(),
            Admission::Counted {
                user: 1,
                address: Some(1)
            }
        );
        assert_eq!(
            log.admit(&p, "bob", a, T).unwrap(),
            Admission::Counted {
                user: 2,
                address: Some(2)
            }
        );
        // The user's free failures are spent: a minute from the last one.
        assert_eq!(
            log.admit(&p, "bob", a, T + 1000).unwrap(),
            Admission::Wait(Duration::from_secs(59))
        );
        // Another user from that address: one free failure left there.
        assert_eq!(
            log.admit(&p, "carol", a, T).unwrap(),
            Admission::Counted {
                user: 1,
                address: Some(3)
            }
        );
        assert!(matches!(
            log.admit(&p, "dave", a, T).unwrap(),
            Admission::Wait(_)
        ));
        // Without an address only the user counts.
        assert!(matches!(
            log.admit(&p, "dave", None, T).unwrap(),
            Admission::Counted {
                user: 1,
                address: None
            }
        ));
        // carol logged in: her counter goes, the address keeps bob's two failures.
        log.succeeded("carol", a).unwrap();
        let rows = log.list(0).unwrap();
        let find = |kind, key: &str| rows.iter().find(|r| r.kind == kind && r.key == key);
        assert!(find(Kind::User, "carol").is_none());
        assert_eq!(find(Kind::Address, "192.0.2.1").unwrap().failures, 2);
        // dave's attempt could not be decided: not a failure.
        log.undo("dave", None).unwrap();
        assert!(log.list(0).unwrap().iter().all(|r| r.key != "dave"));
        // Clearing lifts bob's wait.
        assert!(log.clear(Kind::User, "bob").unwrap());
        assert!(!log.clear(Kind::User, "bob").unwrap());
        assert!(matches!(
            log.admit(&p, "bob", None, T + 1000).unwrap(),
            Admission::Counted { user: 1, .. }
        ));
        assert_eq!(log.clear_all().unwrap(), 2);
    }

    #[test]
    fn forgotten_counters_are_pruned_by_the_next_attempt() {
        let t = tempfile::tempdir().unwrap();
        let mut log = FailureLog::open(&t.path().join("f.sqlite")).unwrap();
        let p = policy();
        for user in ["a", "b", "c"] {
            log.admit(&p, user, Some("198.51.100.7"), T).unwrap();
        }
        assert_eq!(log.list(0).unwrap().len(), 4);
        let later = T + 600_000;
        log.admit(&p, "d", None, later).unwrap();
        let rows = log.list(0).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((rows[0].key.as_str(), rows[0].failures), ("d", 1));
    }

    #[test]
    fn of_many_connections_racing_only_the_free_failures_get_through() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("f.sqlite");
        let racers = 8;
        let start = Barrier::new(racers);
        let p = policy();
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..racers)
                .map(|_| {
                    s.spawn(|| {
                        // Each its own connection, as separate processes would have.
                        let mut log = FailureLog::open(&path).unwrap();
                        start.wait();
                        log.admit(&p, "bob", None, T).unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(matches!(h.join().unwrap(), Admission::Counted { .. })))
                .sum()
        });
        assert_eq!(admitted, 2);
    }
}
