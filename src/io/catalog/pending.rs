//! Deletions and what they leave to remove from storage: the `pending_deletes` rows (an
//! image's original and variants, an upload's intent) that the sweep in `removal` acts on.

use rusqlite::{TransactionBehavior, params};

use super::images::get_image;
use super::{CatalogError, Deletions, Image, SqliteCatalog, bad_column, now_ms};
use crate::domain::original::OriginalId;

/// What a pending row asks the sweep to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doomed {
    /// The original object `(image, ext)` of a deleted image.
    Original,
    /// Every cached variant of a deleted image.
    Variants,
    /// The original object `(image, ext)` of an upload that never committed (once older than
    /// the grace period).
    Upload,
}

impl Doomed {
    fn as_str(self) -> &'static str {
        match self {
            Doomed::Original => "original",
            Doomed::Variants => "variants",
            Doomed::Upload => "upload",
        }
    }

    fn parse(s: &str) -> Option<Doomed> {
        match s {
            "original" => Some(Doomed::Original),
            "variants" => Some(Doomed::Variants),
            "upload" => Some(Doomed::Upload),
            _ => None,
        }
    }
}

/// A row of `pending_deletes`: something to remove from storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelete {
    pub id: i64,
    pub what: Doomed,
    pub image: OriginalId,
    /// The original object's extension (`jpg`, `png`, …), see [`ext_of`].
    pub ext: String,
    /// Unix time in milliseconds.
    pub created: i64,
}

/// The result of a deletion: the row as it was and what is now to be removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    pub image: Image,
    pub pending: Vec<PendingDelete>,
}

/// An upload in flight, from [`Catalog::begin_upload`] to [`Catalog::insert`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "pass it to Catalog::insert, or the sweep removes the file after the grace period"]
pub struct Intent {
    pub(super) pending_id: i64,
    pub(super) image: OriginalId,
}

/// What [`Catalog::sweep`] did with one pending row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swept {
    /// The remover ran and the row is gone.
    Removed,
    /// The image is in the catalog again (uploaded anew): nothing removed, row dropped.
    Cancelled,
    /// An upload of the same image is in flight, or another process is removing the row's
    /// objects: nothing removed, row kept for later.
    Deferred,
    /// Another sweep handled the row already.
    Gone,
}

impl Deletions for SqliteCatalog {
    fn delete(&mut self, id: &OriginalId) -> Result<Deleted, CatalogError> {
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let image = get_image(&tx, id)?.ok_or_else(|| CatalogError::NotFound(id.clone()))?;
        let (seq, ext): (i64, String) = tx
            .prepare_cached("DELETE FROM images WHERE id = ?1 RETURNING seq, ext")?
            .query_row(params![id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        tx.prepare_cached("DELETE FROM images_fts WHERE rowid = ?1")?
            .execute(params![seq])?;
        let mut pending = Vec::new();
        for what in [Doomed::Original, Doomed::Variants] {
            tx.prepare_cached(
                "INSERT INTO pending_deletes (kind, image, ext, created) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![what.as_str(), id.as_str(), ext, now])?;
            pending.push(PendingDelete {
                id: tx.last_insert_rowid(),
                what,
                image: id.clone(),
                ext: ext.clone(),
                created: now,
            });
        }
        tx.commit()?;
        Ok(Deleted { image, pending })
    }

    fn pending(&self) -> Result<Vec<PendingDelete>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, kind, image, ext, created FROM pending_deletes ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, image, ext, created) = row?;
            out.push(PendingDelete {
                id,
                what: Doomed::parse(&kind).ok_or_else(|| bad_column(1, "kind"))?,
                image: image.parse().map_err(|_| bad_column(2, "image"))?,
                ext,
                created,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::io::catalog::testing::*;

    #[test]
    fn delete_records_pending_in_the_same_transaction() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        add(&mut c, 1, "/a", json!({"title": "gone soon"}));
        add(&mut c, 2, "/a", json!({"title": "stays"}));
        let deleted = c.delete(&id(1)).unwrap();
        assert_eq!(deleted.image.id, id(1));
        let kinds: Vec<(Doomed, &str)> = deleted
            .pending
            .iter()
            .map(|p| (p.what, p.ext.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [(Doomed::Original, "jpg"), (Doomed::Variants, "jpg")]
        );
        assert_eq!(c.get(&id(1)).unwrap(), None);
        assert_eq!(search(&c, Some("soon"), None).total, 0, "FTS row gone too");
        assert!(matches!(c.delete(&id(1)), Err(CatalogError::NotFound(_))));
        // A crash before the files went: the rows survive a reopen.
        drop(c);
        let mut c = open(&t);
        assert_eq!(c.pending().unwrap(), deleted.pending);
        let mut removed = Vec::new();
        for p in c.pending().unwrap() {
            let r = c.sweep(&p, Duration::ZERO, |p| {
                removed.push(p.what);
                Ok::<(), CatalogError>(())
            });
            assert_eq!(r.unwrap(), Swept::Removed);
        }
        assert_eq!(removed, [Doomed::Original, Doomed::Variants]);
        assert_eq!(c.pending().unwrap(), []);
        // A second sweep of the same row finds it gone.
        let r = c.sweep(
            &deleted.pending[0],
            Duration::ZERO,
            |_| -> Result<(), CatalogError> { panic!("removed twice") },
        );
        assert_eq!(r.unwrap(), Swept::Gone);
        assert!(c.get(&id(2)).unwrap().is_some());
    }

    #[test]
    fn a_failed_removal_keeps_the_row() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        add(&mut c, 1, "/", json!({}));
        let d = c.delete(&id(1)).unwrap();
        let r = c.sweep(&d.pending[0], Duration::ZERO, |_| {
            Err(CatalogError::Io(io::Error::other("storage down")))
        });
        assert!(matches!(r, Err(CatalogError::Io(_))));
        assert_eq!(c.pending().unwrap().len(), 2, "retried by the next sweep");
    }
}
