//! The protocol between uploads and removals of the same bytes, on the catalog's rows: upload
//! intents ([`Catalog::begin_upload`]) and removal claims ([`Catalog::claim`], then
//! [`Catalog::finish`] or [`Catalog::release`]).
//!
//! An original's key is its content's SHA-1, so an upload of bytes that are being deleted puts
//! to the very key the removal deletes, and a store's `put` keeps an object already there. The
//! two must never overlap: a removal that ran after the put would leave the new catalog row
//! pointing at nothing. Each side therefore announces itself in a short write transaction and
//! checks for the other there, so SQLite's write lock orders the announcements:
//! - an upload records an intent unless a live claim on the same original exists (then it
//!   waits for the removal to finish, a bounded time);
//! - a removal claims its pending row unless the image is back (then the row is dropped) or a
//!   live intent of the same original exists (then the row waits for a later sweep);
//! - the store I/O runs outside any transaction: a slow or hanging S3 DELETE holds no lock, so
//!   other uploads, metadata changes and key revocations go on meanwhile;
//! - an insert checks that no removal passed its intent over (a claim drops the intents past
//!   the grace period): an upload that was only slow is refused, never recorded over a hole.
//!
//! "Live": an intent younger than the grace period the caller gives (`[evict] upload_grace`),
//! a claim younger than [`CLAIM_LEASE`]. Older ones were left by a process that died; the
//! sweep takes them over. The one assumption left is that no removal runs longer than the
//! lease. Nothing here touches a store or a file.

use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::images::get_image;
use super::{
    CatalogError, Doomed, Intent, PendingDelete, Removals, SqliteCatalog, Swept, ext_of, now_ms,
};
use crate::domain::original::OriginalId;
use crate::io::db::BUSY_TIMEOUT;

/// How long a claim holds a pending row. Far longer than a removal can take (the S3 store gives
/// up on a request after 60 s, a file is one unlink), so a claim this old was left by a process
/// that died: the next sweep takes the row over, and uploads of the original stop waiting.
pub const CLAIM_LEASE: Duration = Duration::from_secs(300);

/// How long [`Catalog::begin_upload`] waits for a removal of the same original to finish
/// before answering [`CatalogError::Removing`]: as long as a writer waits for the lock.
pub const UPLOAD_WAIT: Duration = BUSY_TIMEOUT;

/// A pending row this process may now remove, outside any transaction; hand it back to
/// [`Catalog::finish`] when the objects are gone, or to [`Catalog::release`] when the removal
/// failed.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "finish or release the claim, or the row stays claimed until the lease ends"]
pub struct Claim {
    /// The `removals` row: never reused, so a claim taken over after its lease cannot finish
    /// or release its successor's.
    token: i64,
    pending: PendingDelete,
}

impl Claim {
    /// The row to remove.
    pub fn pending(&self) -> &PendingDelete {
        &self.pending
    }
}

/// What [`Catalog::claim`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Claimed {
    /// Remove the objects now, then finish (or release) the claim.
    Yours(Claim),
    /// Nothing to remove now (never [`Swept::Removed`]).
    Not(Swept),
}

impl Removals for SqliteCatalog {
    fn begin_upload_within(
        &mut self,
        id: &OriginalId,
        mime: &str,
        wait: Duration,
    ) -> Result<Intent, CatalogError> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            if !removing(&tx, id, now)? {
                tx.prepare_cached(
                    "INSERT INTO pending_deletes (kind, image, ext, created)
                     VALUES ('upload', ?1, ?2, ?3)",
                )?
                .execute(params![id.as_str(), ext_of(mime), now])?;
                let pending_id = tx.last_insert_rowid();
                tx.commit()?;
                return Ok(Intent {
                    pending_id,
                    image: id.clone(),
                });
            }
            drop(tx);
            if Instant::now() >= deadline {
                return Err(CatalogError::Removing(id.clone()));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn claim(&mut self, pending: &PendingDelete, grace: Duration) -> Result<Claimed, CatalogError> {
        let now = now_ms();
        let grace = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let fresh = now.saturating_sub(grace);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let still = tx
            .prepare_cached("SELECT 1 FROM pending_deletes WHERE id = ?1")?
            .query_row(params![pending.id], |_| Ok(()))
            .optional()?
            .is_some();
        if !still {
            return Ok(Claimed::Not(Swept::Gone));
        }
        let held = tx
            .prepare_cached("SELECT 1 FROM removals WHERE pending = ?1 AND expires > ?2")?
            .query_row(params![pending.id, now], |_| Ok(()))
            .optional()?
            .is_some();
        if held {
            return Ok(Claimed::Not(Swept::Deferred));
        }
        if pending.what != Doomed::Variants {
            if get_image(&tx, &pending.image)?.is_some() {
                tx.prepare_cached("DELETE FROM pending_deletes WHERE id = ?1")?
                    .execute(params![pending.id])?;
                tx.commit()?;
                return Ok(Claimed::Not(Swept::Cancelled));
            }
            // A young intent row being swept counts as in flight itself.
            let in_flight = tx
                .prepare_cached(
                    "SELECT 1 FROM pending_deletes
                     WHERE image = ?1 AND kind = 'upload' AND created > ?2 LIMIT 1",
                )?
                .query_row(params![pending.image.as_str(), fresh], |_| Ok(()))
                .optional()?
                .is_some();
            if in_flight {
                return Ok(Claimed::Not(Swept::Deferred));
            }
        }
        if pending.what != Doomed::Variants {
            // Every other intent of these bytes is past the grace period, its upload taken for
            // dead, and this removal does its row's work. The rows go, so that an upload that
            // was only slow learns at its insert that its original may be gone.
            tx.prepare_cached(
                "DELETE FROM pending_deletes
                 WHERE image = ?1 AND kind = 'upload' AND id != ?2
                   AND id NOT IN (SELECT pending FROM removals)",
            )?
            .execute(params![pending.image.as_str(), pending.id])?;
        }
        // A claim past its lease was left by a dead process: this one replaces it.
        tx.prepare_cached("DELETE FROM removals WHERE pending = ?1")?
            .execute(params![pending.id])?;
        let lease = i64::try_from(CLAIM_LEASE.as_millis()).unwrap_or(i64::MAX);
        tx.prepare_cached("INSERT INTO removals (pending, expires) VALUES (?1, ?2)")?
            .execute(params![pending.id, now.saturating_add(lease)])?;
        let token = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Claimed::Yours(Claim {
            token,
            pending: pending.clone(),
        }))
    }

    fn finish(&mut self, claim: Claim) -> Result<(), CatalogError> {
        self.conn
            .prepare_cached(
                "DELETE FROM pending_deletes WHERE id = (SELECT pending FROM removals WHERE id = ?1)",
            )?
            .execute(params![claim.token])?;
        Ok(())
    }

    fn release(&mut self, claim: Claim) -> Result<(), CatalogError> {
        self.conn
            .prepare_cached("DELETE FROM removals WHERE id = ?1")?
            .execute(params![claim.token])?;
        Ok(())
    }
}

/// Whether no removal has passed over `intent` since [`Catalog::begin_upload`]: its row is still
/// there (a removal of the same original drops the intents past the grace period) and not
/// claimed (the sweep of that very intent).
pub(super) fn intent_holds(tx: &Transaction, intent: &Intent) -> Result<bool, CatalogError> {
    Ok(tx
        .prepare_cached(
            "SELECT 1 FROM pending_deletes
             WHERE id = ?1 AND kind = 'upload' AND image = ?2
               AND id NOT IN (SELECT pending FROM removals)",
        )?
        .query_row(
            params![intent.pending_id, intent.image.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Records the original object of an upload that gave up as a dead upload's, at once past the
/// grace period: the sweep removes it unless the image comes back.
pub(super) fn leave_for_sweep(
    tx: &Transaction,
    id: &OriginalId,
    ext: &str,
) -> Result<(), CatalogError> {
    tx.prepare_cached(
        "INSERT INTO pending_deletes (kind, image, ext, created) VALUES ('upload', ?1, ?2, 0)",
    )?
    .execute(params![id.as_str(), ext])?;
    Ok(())
}

/// Whether a live claim removes the original object of `id` (an original or upload row).
fn removing(tx: &Transaction, id: &OriginalId, now: i64) -> Result<bool, CatalogError> {
    Ok(tx
        .prepare_cached(
            "SELECT 1 FROM removals r JOIN pending_deletes p ON p.id = r.pending
             WHERE p.image = ?1 AND p.kind != 'variants' AND r.expires > ?2 LIMIT 1",
        )?
        .query_row(params![id.as_str(), now], |_| Ok(()))
        .optional()?
        .is_some())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;

    use serde_json::Map;

    use super::*;
    use crate::io::catalog::Catalog;
    use crate::io::catalog::{Inserted, NewImage, Rights};

    const GRACE: Duration = Duration::from_secs(3600);

    fn open(t: &tempfile::TempDir) -> Catalog {
        Catalog::open(&t.path().join("catalog.sqlite")).unwrap()
    }

    fn id(n: u32) -> OriginalId {
        OriginalId::of(&n.to_le_bytes()).unwrap()
    }

    fn new(n: u32) -> NewImage {
        NewImage {
            id: id(n),
            mime: "image/jpeg".into(),
            width: 1,
            height: 1,
            bytes: 1,
            owner: None,
            category: "/".into(),
            meta: Map::new(),
        }
    }

    /// Image `n` catalogued, then deleted: its original and variants rows.
    fn deleted(c: &mut Catalog, n: u32) -> Vec<PendingDelete> {
        c.insert(&new(n), None).unwrap();
        c.delete(&id(n)).unwrap().pending
    }

    fn claimed(c: &mut Catalog, p: &PendingDelete) -> Claim {
        match c.claim(p, GRACE).unwrap() {
            Claimed::Yours(claim) => claim,
            Claimed::Not(why) => panic!("not claimed: {why:?}"),
        }
    }

    #[test]
    fn an_upload_in_flight_defers_the_removal_of_its_original_only() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let pending = deleted(&mut c, 1);
        let intent = c.begin_upload(&id(1), "image/jpeg").unwrap();
        assert_eq!(
            c.claim(&pending[0], GRACE).unwrap(),
            Claimed::Not(Swept::Deferred)
        );
        let variants = claimed(&mut c, &pending[1]);
        c.finish(variants).unwrap();
        c.insert(&new(1), Some(intent)).unwrap();
        assert_eq!(
            c.claim(&pending[0], GRACE).unwrap(),
            Claimed::Not(Swept::Cancelled)
        );
        assert_eq!(c.pending().unwrap(), []);
    }

    #[test]
    fn a_running_removal_makes_an_upload_of_the_same_bytes_wait() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let pending = deleted(&mut c, 1);
        let claim = claimed(&mut c, &pending[0]);
        // A claim on the variants only does not hold uploads.
        let variants = claimed(&mut c, &pending[1]);
        let short = Duration::from_millis(50);
        assert!(matches!(
            c.begin_upload_within(&id(1), "image/jpeg", short),
            Err(CatalogError::Removing(i)) if i == id(1)
        ));
        assert_eq!(c.pending().unwrap().len(), 2, "no intent recorded");
        // Other bytes are not held.
        let other = c.begin_upload_within(&id(2), "image/jpeg", short).unwrap();
        c.insert(&new(2), Some(other)).unwrap();
        // Another sweeper leaves a claimed row alone.
        assert_eq!(
            open(&t).claim(&pending[0], GRACE).unwrap(),
            Claimed::Not(Swept::Deferred)
        );
        // The upload waits until the removal is done, then goes ahead.
        let (started, waiting) = mpsc::channel();
        let path = t.path().to_path_buf();
        let upload = thread::spawn(move || {
            let mut c = Catalog::open(&path.join("catalog.sqlite")).unwrap();
            started.send(()).unwrap();
            let intent = c.begin_upload(&id(1), "image/jpeg").unwrap();
            c.insert(&new(1), Some(intent)).unwrap()
        });
        waiting.recv().unwrap();
        thread::sleep(Duration::from_millis(200));
        assert!(!upload.is_finished(), "the upload waits for the removal");
        c.finish(claim).unwrap();
        assert!(matches!(upload.join().unwrap(), Inserted::New(_)));
        c.finish(variants).unwrap();
        assert_eq!(c.pending().unwrap(), []);
    }

    #[test]
    fn a_failed_removal_releases_its_claim_and_a_dead_ones_is_taken_over() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let short = Duration::from_millis(50);
        let pending = deleted(&mut c, 1);
        let claim = claimed(&mut c, &pending[0]);
        c.release(claim).unwrap();
        assert_eq!(c.pending().unwrap().len(), 2, "the row stays for the sweep");
        let intent = c.begin_upload_within(&id(1), "image/jpeg", short).unwrap();
        c.insert(&new(1), Some(intent)).unwrap();
        assert_eq!(
            c.claim(&pending[0], GRACE).unwrap(),
            Claimed::Not(Swept::Cancelled)
        );

        // A process died holding a claim: once the lease is over, the next sweep takes the
        // row over, the dead claim can no longer finish it, and uploads stop waiting.
        let raw = rusqlite::Connection::open(t.path().join("catalog.sqlite")).unwrap();
        let expire = || {
            raw.execute("UPDATE removals SET expires = ?1", params![now_ms() - 1])
                .unwrap()
        };
        let pending = deleted(&mut c, 2);
        let dead = claimed(&mut c, &pending[0]);
        expire();
        let live = claimed(&mut c, &pending[0]);
        c.finish(dead).unwrap();
        assert!(
            c.pending().unwrap().contains(&pending[0]),
            "the dead claim removed nothing"
        );
        c.finish(live).unwrap();
        assert!(!c.pending().unwrap().contains(&pending[0]));
        let pending = deleted(&mut c, 3);
        let _dead = claimed(&mut c, &pending[0]);
        expire();
        let intent = c.begin_upload_within(&id(3), "image/jpeg", short).unwrap();
        c.insert(&new(3), Some(intent)).unwrap();
    }

    #[test]
    fn a_slow_upload_passed_over_by_a_removal_records_nothing() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        // Its intent outlived the grace period (zero here): the deletion's removal goes ahead.
        let pending = deleted(&mut c, 1);
        let slow = c.begin_upload(&id(1), "image/jpeg").unwrap();
        let claim = match c.claim(&pending[0], Duration::ZERO).unwrap() {
            Claimed::Yours(claim) => claim,
            Claimed::Not(why) => panic!("not claimed: {why:?}"),
        };
        c.finish(claim).unwrap();
        assert!(matches!(
            c.insert(&new(1), Some(slow)),
            Err(CatalogError::UploadExpired(i)) if i == id(1)
        ));
        assert_eq!(c.get(&id(1)).unwrap(), None);
        // What it placed after the removal is left for the sweep, past the grace period.
        let left = c.pending().unwrap().pop().unwrap();
        assert_eq!(
            (left.what, &left.image, left.created),
            (Doomed::Upload, &id(1), 0)
        );
        c.sweep(&left, GRACE, |_| Ok::<(), CatalogError>(()))
            .unwrap();
        // The sweep of its own intent, likewise (while it runs, and after).
        let slow = c.begin_upload(&id(2), "image/jpeg").unwrap();
        let row = c.pending().unwrap().pop().unwrap();
        assert_eq!((row.what, &row.image), (Doomed::Upload, &id(2)));
        let Claimed::Yours(claim) = c.claim(&row, Duration::ZERO).unwrap() else {
            panic!("not claimed");
        };
        let again = c.begin_upload_within(&id(2), "image/jpeg", Duration::ZERO);
        assert!(matches!(again, Err(CatalogError::Removing(_))));
        assert!(matches!(
            c.insert(&new(2), Some(slow)),
            Err(CatalogError::UploadExpired(_))
        ));
        c.finish(claim).unwrap();
        assert_eq!(c.get(&id(2)).unwrap(), None);
        let left = c.pending().unwrap().pop().unwrap();
        assert_eq!((left.what, &left.image), (Doomed::Upload, &id(2)));
        c.sweep(&left, GRACE, |_| Ok::<(), CatalogError>(()))
            .unwrap();
        // Bytes catalogued meanwhile by another upload: nothing lost, the row is there.
        c.insert(&new(3), None).unwrap();
        let slow = c.begin_upload(&id(3), "image/jpeg").unwrap();
        let row = c.pending().unwrap().pop().unwrap();
        assert_eq!(
            c.claim(&row, Duration::ZERO).unwrap(),
            Claimed::Not(Swept::Cancelled)
        );
        assert!(matches!(
            c.insert(&new(3), Some(slow)).unwrap(),
            Inserted::Existed(_)
        ));
        // An intent within the grace period holds.
        let intent = c.begin_upload(&id(4), "image/jpeg").unwrap();
        assert!(matches!(
            c.insert(&new(4), Some(intent)).unwrap(),
            Inserted::New(_)
        ));
        assert_eq!(c.pending().unwrap(), [pending[1].clone()]);
    }

    /// The store I/O of a removal runs with no lock held: while it hangs, another connection
    /// revokes a key, adds one and records an upload at once (the lock was held for the whole
    /// removal once, and they waited the busy timeout, then failed).
    #[test]
    fn a_hanging_removal_holds_no_lock() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        c.add_user("alice").unwrap();
        let key = c.add_key("alice", Rights::WRITE).unwrap();
        let pending = deleted(&mut c, 1);
        let (inside, removing) = mpsc::channel();
        let (release, hang) = mpsc::channel::<()>();
        let sweeper = thread::spawn(move || {
            c.sweep(&pending[0], GRACE, |_| {
                inside.send(()).unwrap();
                // An S3 DELETE that stalls (until the test is done).
                let _ = hang.recv_timeout(Duration::from_secs(30));
                Ok::<(), CatalogError>(())
            })
        });
        removing.recv().unwrap();
        let started = Instant::now();
        let mut other = open(&t);
        assert!(other.revoke(&key.id).unwrap().revoked.is_some());
        other.add_key("alice", Rights::READ).unwrap();
        let intent = other.begin_upload(&id(2), "image/jpeg").unwrap();
        other.insert(&new(2), Some(intent)).unwrap();
        let took = started.elapsed();
        release.send(()).unwrap();
        assert_eq!(sweeper.join().unwrap().unwrap(), Swept::Removed);
        // Well under the busy timeout they used to wait (then fail), with room for a slow CI.
        assert!(took < BUSY_TIMEOUT / 2, "writes waited {took:?}");
    }

    #[test]
    fn uploads_and_removals_of_the_same_bytes() {
        // The shared helpers, not this module's `new` and `open`.
        use crate::io::catalog::testing::{add, new, open};
        use serde_json::json;

        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let grace = Duration::from_secs(3600);
        let never = |_: &PendingDelete| -> Result<(), CatalogError> { panic!("removed") };
        // Deleted, then uploaded again before the sweep: the original must stay.
        add(&mut c, 1, "/", json!({}));
        let d = c.delete(&id(1)).unwrap();
        let intent = c.begin_upload(&id(1), "image/jpeg").unwrap();
        // While the upload is in flight, the original is not removed.
        assert_eq!(
            c.sweep(&d.pending[0], grace, never).unwrap(),
            Swept::Deferred
        );
        assert!(matches!(
            c.insert(&new(1, "/", json!({})), Some(intent)).unwrap(),
            Inserted::New(_)
        ));
        assert_eq!(
            c.sweep(&d.pending[0], grace, never).unwrap(),
            Swept::Cancelled
        );
        // Variants go whatever happened: they are rendered again.
        let mut variants = false;
        let r = c.sweep(&d.pending[1], grace, |_| {
            variants = true;
            Ok::<(), CatalogError>(())
        });
        assert_eq!((r.unwrap(), variants), (Swept::Removed, true));
        assert_eq!(c.pending().unwrap(), [], "the intent went with the insert");
        // An upload that crashed after placing its file: removed once past the grace period.
        let _crashed = c.begin_upload(&id(2), "image/png").unwrap();
        let p = c.pending().unwrap();
        assert_eq!(
            (p.len(), p[0].what, p[0].ext.as_str()),
            (1, Doomed::Upload, "png")
        );
        assert_eq!(c.sweep(&p[0], grace, never).unwrap(), Swept::Deferred);
        let mut gone = None;
        let r = c.sweep(&p[0], Duration::ZERO, |p| {
            gone = Some(p.image.clone());
            Ok::<(), CatalogError>(())
        });
        assert_eq!((r.unwrap(), gone), (Swept::Removed, Some(id(2))));
        // An intent passed with another image's insert is not dropped.
        let stray = c.begin_upload(&id(4), "image/jpeg").unwrap();
        c.insert(&new(5, "/", json!({})), Some(stray)).unwrap();
        let p = c.pending().unwrap();
        assert_eq!((p.len(), &p[0].image), (1, &id(4)));
        c.sweep(&p[0], Duration::ZERO, |_| Ok::<(), CatalogError>(()))
            .unwrap();
        // An intent for bytes that existed all along never removes them.

        add(&mut c, 3, "/", json!({}));
        let _late = c.begin_upload(&id(3), "image/jpeg").unwrap();
        let p = c.pending().unwrap();
        assert_eq!(
            c.sweep(&p[0], Duration::ZERO, never).unwrap(),
            Swept::Cancelled
        );
        assert!(c.get(&id(3)).unwrap().is_some());
    }
}
