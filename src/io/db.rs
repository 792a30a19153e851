//! SQLite connections as imgserv opens them, for every database it keeps (the cache index,
//! the catalog, the mirror index): WAL, a busy timeout, foreign keys, and the schema created
//! or upgraded by `user_version` — safely when many CGI processes open a fresh file at once.
//! A schema is either one idempotent script ([`open`], for what can be rebuilt) or an ordered
//! list of numbered [`Migration`]s ([`connect`], then [`migrate`]: the catalog).
//!
//! The SQL of each database stays in its own module; this one only opens and upgrades.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

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
    let mut conn = connect(path, sync)?;
    if user_version(&conn)? < version {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(schema)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(conn)
}

/// Opens `path` (creating it) as [`open`] does, in WAL mode, but leaves its schema alone: for
/// a database upgraded by [`migrate`].
pub fn connect(path: &Path, sync: Sync) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
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
    Ok(conn)
}

/// One numbered step of a schema: what brings a database from `version - 1` to `version`.
/// Steps are never edited once released (a database made by them exists somewhere); a change
/// is a new step at the end.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The `user_version` the database has once this step committed; the first step is 1.
    pub version: i64,
    /// What the step changes, for the log.
    pub what: &'static str,
    /// Runs in the step's own write transaction; an error rolls the step back.
    pub apply: fn(&Transaction<'_>) -> rusqlite::Result<()>,
}

/// Why [`migrate`] could not bring a database up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database was made or upgraded by a newer program: its `user_version` is past the
    /// last step this code knows, and this code changes nothing in it.
    #[error("schema version {found} is newer than this program knows (at most {known})")]
    TooNew { found: i64, known: i64 },
    /// SQLite failed, or a step did; the steps before it stay committed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// Brings `conn` to the last of `steps` (numbered 1, 2, … in order), each step in its own
/// immediate transaction that also records its number in `user_version`, so that a failed or
/// killed upgrade resumes at the step it stopped in. Many processes may do this at once: each
/// reads the version again under the write lock and skips what another one applied. A
/// database already up to date is only read. Returns the version it found.
pub fn migrate(conn: &mut Connection, steps: &[Migration]) -> Result<i64, MigrateError> {
    let known = steps.last().map_or(0, |s| s.version);
    debug_assert!(
        steps.iter().zip(1..).all(|(s, n)| s.version == n),
        "migrations are numbered 1, 2, … in order"
    );
    let found = user_version(conn)?;
    if found > known {
        return Err(MigrateError::TooNew { found, known });
    }
    for step in steps.iter().filter(|s| s.version > found) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = user_version(&tx)?;
        if now > known {
            return Err(MigrateError::TooNew { found: now, known });
        }
        if now >= step.version {
            continue;
        }
        (step.apply)(&tx)?;
        tx.pragma_update(None, "user_version", step.version)?;
        tx.commit()?;
        log::info!("schema upgraded to version {}: {}", step.version, step.what);
    }
    Ok(found)
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
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

    /// Two steps: a table with a row, then a column (an `ALTER` fails when run twice).
    const STEPS: &[Migration] = &[
        Migration {
            version: 1,
            what: "t",
            apply: |tx| tx.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);"),
        },
        Migration {
            version: 2,
            what: "t.y",
            apply: |tx| tx.execute_batch("ALTER TABLE t ADD COLUMN y INTEGER NOT NULL DEFAULT 2;"),
        },
    ];

    fn version(conn: &Connection) -> i64 {
        user_version(conn).unwrap()
    }

    #[test]
    fn migrations_run_in_order_each_once() {
        let t = tempfile::tempdir().unwrap();
        let mut conn = connect(&t.path().join("m.sqlite"), Sync::Full).unwrap();
        assert_eq!(migrate(&mut conn, &STEPS[..1]).unwrap(), 0);
        assert_eq!(version(&conn), 1);
        assert_eq!(migrate(&mut conn, STEPS).unwrap(), 1, "only step 2 runs");
        assert_eq!(migrate(&mut conn, STEPS).unwrap(), 2, "nothing runs");
        let row: (i64, i64) = conn
            .query_row("SELECT x, y FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((row, version(&conn)), ((1, 2), 2));
    }

    #[test]
    fn a_failing_step_rolls_back_alone_and_is_retried() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("m.sqlite");
        let failing = [
            STEPS[0],
            Migration {
                version: 2,
                what: "fails half-way",
                apply: |tx| {
                    tx.execute_batch("CREATE TABLE u (x INTEGER); SELECT nope FROM missing;")
                },
            },
        ];
        let mut conn = connect(&path, Sync::Full).unwrap();
        let err = migrate(&mut conn, &failing).unwrap_err();
        assert!(matches!(err, MigrateError::Db(_)), "{err}");
        assert_eq!(version(&conn), 1, "step 1 stays committed");
        let u: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'u'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(u, 0, "step 2 left nothing");
        drop(conn);
        let mut conn = connect(&path, Sync::Full).unwrap();
        assert_eq!(migrate(&mut conn, STEPS).unwrap(), 1);
        assert_eq!(version(&conn), 2);
    }

    #[test]
    fn a_database_newer_than_the_steps_is_refused_untouched() {
        let t = tempfile::tempdir().unwrap();
        let mut conn = connect(&t.path().join("m.sqlite"), Sync::Full).unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
        let err = migrate(&mut conn, STEPS).unwrap_err();
        assert!(
            matches!(err, MigrateError::TooNew { found: 3, known: 2 }),
            "{err}"
        );
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!((tables, version(&conn)), (0, 3));
    }

    #[test]
    fn many_openers_migrating_a_fresh_file_apply_each_step_once() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("fresh.sqlite");
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    let mut conn = connect(&path, Sync::Full).unwrap();
                    migrate(&mut conn, STEPS).unwrap();
                });
            }
        });
        let conn = connect(&path, Sync::Full).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!((rows, version(&conn)), (1, 2));
    }
}
