//! SQLite connections as imgserv opens them, for every database it keeps (the cache index,
//! the catalog, the mirror index): WAL, a busy timeout, foreign keys, and the schema created
//! or upgraded by `user_version` — safely when many CGI processes open a fresh file at once.
//!
//! The SQL of each database stays in its own module; this one only opens.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

/// How long a connection waits for a lock before answering "busy".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Pages in the WAL after which a commit checkpoints (SQLite's default is 1,000): with
/// connections closed without a checkpoint, this bounds what an opener re-reads.
const WAL_AUTOCHECKPOINT: i64 = 64;

/// How durable commits are: `Normal` for what can be rebuilt (the cache index), `Full` for
/// what must survive a power cut (the catalog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    Normal,
    Full,
}

/// Opens `path` (creating it), in WAL mode, and brings its schema to `version` by running
/// `schema` (which must be idempotent: `CREATE … IF NOT EXISTS`) when `user_version` is lower.
pub fn open(path: &Path, sync: Sync, schema: &str, version: i64) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // A CGI process is usually the only connection, so by default its close would checkpoint
    // and delete the `-wal` file that its open had just created: an inode made and freed per
    // request (~10 % of a cache hit's time, in ext4). For what can be rebuilt (the cache and
    // mirror indexes), closing without a checkpoint keeps the file; the small auto-checkpoint
    // below keeps it short, so that the next opener's recovery reads only a few frames. The
    // catalog keeps SQLite's default: closed, it is whole in its one file, as a backup copies it.
    if sync == Sync::Normal {
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    }
    // Switching a new database to WAL takes an exclusive lock, and SQLite does not wait for it
    // through the busy handler: many processes opening a fresh file at once would see
    // SQLITE_BUSY. Setting it only when needed, and retrying, makes that race harmless.
    retry_busy(|| {
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // WAL: readers never block the writer.
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        Ok(())
    })?;
    let sync = match sync {
        Sync::Normal => "NORMAL",
        Sync::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current < version {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(schema)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(conn)
}

/// Runs `f` again while SQLite answers "busy" or "locked", for up to [`BUSY_TIMEOUT`].
pub fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    loop {
        match f() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rebuildable_databases_keep_their_wal_after_close() {
        let t = tempfile::tempdir().unwrap();
        for (sync, kept) in [(Sync::Normal, true), (Sync::Full, false)] {
            let path = t.path().join(format!("{sync:?}.sqlite"));
            let conn = open(&path, sync, "CREATE TABLE IF NOT EXISTS t (x INTEGER);", 1).unwrap();
            conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
            drop(conn);
            // The catalog (Full) is whole in its one file once closed; an index keeps its WAL.
            let wal = path.with_extension("sqlite-wal");
            assert_eq!(wal.exists(), kept, "{sync:?}");
            let again = open(&path, sync, "", 1).unwrap();
            let n: i64 = again
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 1, "{sync:?}: the row survives the close");
        }
    }

    #[test]
    fn many_openers_of_a_fresh_file_all_succeed() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("fresh.sqlite");
        let schema = "CREATE TABLE IF NOT EXISTS t (x INTEGER);";
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| open(&path, Sync::Normal, schema, 1).unwrap());
            }
        });
        let conn = open(&path, Sync::Full, schema, 1).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1);
    }
}
