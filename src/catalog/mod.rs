//! The catalog: what is known about each original (mime, size, owner, category, free metadata),
//! full-text search over it, the files waiting to be deleted, and the users and API keys.
//!
//! All SQL lives here, behind plain Rust types, so that another database can follow. It does
//! not store bytes (that is `store`), check signatures (`sign`) or speak HTTP (`api`).
//!
//! Files and rows never disagree for long, and never so that an original is lost:
//! - an upload first records an intent ([`Catalog::begin_upload`]), then places the file, then
//!   inserts the row and drops the intent in one transaction; a crash leaves the intent, which
//!   the sweep turns into a removal once it is older than the grace period;
//! - a deletion removes the row and records what to remove in one transaction, then removes it;
//! - every removal claims its row in a short transaction that first checks the image has not
//!   come back and no fresh upload of it is in flight, removes the objects with no lock held,
//!   then drops the row; an upload of the same bytes waits while such a claim is live (see
//!   `removal`, which owns that protocol).
//!
//! The catalog file holds API key secrets (HMAC needs them on the server): it must be readable
//! only by the server's user.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::original::OriginalId;
use crate::query::QueryError;

mod removal;

pub use removal::{CLAIM_LEASE, Claim, Claimed, UPLOAD_WAIT};

/// Why the catalog could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No image with this id.
    #[error("no image {0}")]
    NotFound(OriginalId),
    /// No user with this name.
    #[error("no user {0:?}")]
    UserNotFound(String),
    /// A user with this name exists already.
    #[error("user {0:?} exists already")]
    UserExists(String),
    /// No API key with this id.
    #[error("no API key {0:?}")]
    KeyNotFound(String),
    /// A user name that is empty, too long or has characters outside `[A-Za-z0-9._@-]`.
    #[error("user name {0}")]
    BadUserName(String),
    /// A category path with a `.` or `..` segment, a control character, or over the limits.
    #[error("category {0}")]
    BadCategory(String),
    /// Metadata that is not a JSON object or is larger than [`MAX_META_BYTES`].
    #[error("metadata {0}")]
    BadMeta(String),
    /// A rights list with an unknown or no right; the message names it.
    #[error("rights: {0}")]
    BadRights(String),
    /// A search parameter out of range; the message names it.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// An upload met a removal of the same original (a deletion of the same bytes) that did
    /// not finish within [`UPLOAD_WAIT`]; nothing was stored. Retrying later succeeds.
    #[error("an earlier deletion of {0} is still removing its original; retry later")]
    Removing(OriginalId),
    /// An upload took so long between its intent and its insert (longer than `[evict]
    /// upload_grace`) that a removal of its original may have run meanwhile; nothing was
    /// recorded. Retrying succeeds.
    #[error("the upload of {0} outlived the upload grace period; retry")]
    UploadExpired(OriginalId),
    /// The catalog stayed locked beyond the busy timeout.
    #[error("catalog is busy: {0}")]
    Busy(String),
    /// The SQLite database failed (or holds a row this code cannot read).
    #[error("catalog database: {0}")]
    Db(rusqlite::Error),
    /// Creating the catalog's directory or reading random bytes for a key failed.
    #[error("catalog i/o: {0}")]
    Io(#[from] io::Error),
}

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                CatalogError::Busy(e.to_string())
            }
            _ => CatalogError::Db(e),
        }
    }
}

/// Largest metadata object, as compact JSON.
pub const MAX_META_BYTES: usize = 64 * 1024;
/// Most segments in a category path.
pub const MAX_CATEGORY_DEPTH: usize = 16;
/// Longest category path, in bytes, including slashes.
pub const MAX_CATEGORY_BYTES: usize = 255;
/// Largest page of search results.
pub const MAX_PER_PAGE: u32 = 100;
/// Most words of a search that are used; the rest are ignored.
const MAX_TERMS: usize = 16;

// 2: `removals` (claims of pending rows).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    seq      INTEGER PRIMARY KEY,       -- also the rowid of its images_fts row
    id       TEXT NOT NULL UNIQUE,      -- SHA-1 of the bytes, 40 lower-case hex digits
    mime     TEXT NOT NULL,
    ext      TEXT NOT NULL,             -- the original object's extension, from mime
    width    INTEGER NOT NULL,
    height   INTEGER NOT NULL,
    bytes    INTEGER NOT NULL,
    created  INTEGER NOT NULL,          -- unix time in milliseconds
    updated  INTEGER NOT NULL,          -- unix time in milliseconds
    owner    TEXT,                      -- a user name; kept when the user is deleted
    category TEXT NOT NULL,             -- normalised: '/' or '/a/b'
    meta     TEXT NOT NULL              -- a JSON object
);
CREATE INDEX IF NOT EXISTS images_listing ON images (created DESC, id);
CREATE INDEX IF NOT EXISTS images_category ON images (category);
-- Kept in step with images by this module (same transaction), not by triggers: the indexed
-- text is flattened from the JSON in Rust.
CREATE VIRTUAL TABLE IF NOT EXISTS images_fts USING fts5 (
    category, meta, tokenize = 'unicode61 remove_diacritics 2'
);
-- Objects to remove from storage. 'original' and 'variants' rows come from a deletion;
-- 'upload' rows are intents written before an original is placed, dropped with the insert.
CREATE TABLE IF NOT EXISTS pending_deletes (
    id      INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('original', 'variants', 'upload')),
    image   TEXT NOT NULL,
    ext     TEXT NOT NULL,
    created INTEGER NOT NULL            -- unix time in milliseconds
);
CREATE INDEX IF NOT EXISTS pending_image ON pending_deletes (image);
-- A removal in progress (src/catalog/removal.rs): the pending row a process is removing the
-- objects of, with no lock held, until `expires` (unix ms). The id is the claim's token.
CREATE TABLE IF NOT EXISTS removals (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    pending INTEGER NOT NULL UNIQUE REFERENCES pending_deletes (id) ON DELETE CASCADE,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    name    TEXT PRIMARY KEY,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id      TEXT PRIMARY KEY,           -- 'ak_' and 16 hex digits, public
    user    TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    secret  TEXT NOT NULL,              -- 64 hex digits; the HMAC key is this text
    rights  INTEGER NOT NULL,           -- Rights bits
    created INTEGER NOT NULL,
    revoked INTEGER                     -- unix time in milliseconds, NULL while valid
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user);
";

/// What a key may do. Rights are independent: `admin` does not imply `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights(u8);

impl Rights {
    pub const NONE: Rights = Rights(0);
    /// List, search and fetch images and their metadata.
    pub const READ: Rights = Rights(1);
    /// Upload images, change metadata and categories.
    pub const WRITE: Rights = Rights(2);
    /// Delete images.
    pub const DELETE: Rights = Rights(4);
    /// Manage users and keys through the API.
    pub const ADMIN: Rights = Rights(8);
    const NAMES: [(&'static str, Rights); 4] = [
        ("read", Rights::READ),
        ("write", Rights::WRITE),
        ("delete", Rights::DELETE),
        ("admin", Rights::ADMIN),
    ];

    /// Whether every right of `other` is in `self`.
    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// Rights from stored bits; unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Rights {
        Rights(bits & 0x0F)
    }
}

impl std::ops::BitOr for Rights {
    type Output = Rights;
    fn bitor(self, rhs: Rights) -> Rights {
        Rights(self.0 | rhs.0)
    }
}

impl FromStr for Rights {
    type Err = CatalogError;

    /// `read,write,delete,admin` in any order and combination, commas with optional spaces.
    fn from_str(s: &str) -> Result<Rights, CatalogError> {
        let mut rights = Rights::NONE;
        for word in s.split(',').map(str::trim) {
            let Some((_, r)) = Rights::NAMES.iter().find(|(n, _)| *n == word) else {
                let shown: String = word.chars().take(32).collect();
                return Err(CatalogError::BadRights(format!(
                    "unknown right {shown:?} (expected read, write, delete or admin)"
                )));
            };
            rights = rights | *r;
        }
        Ok(rights)
    }
}

impl fmt::Display for Rights {
    /// `read,write`; `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Rights::NAMES
            .iter()
            .filter(|(_, r)| self.contains(*r))
            .map(|(n, _)| *n)
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// An image as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Image {
    #[serde(serialize_with = "serialize_id")]
    pub id: OriginalId,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// Unix time in milliseconds.
    pub created: i64,
    /// Unix time in milliseconds of the last change to metadata or category.
    pub updated: i64,
    pub owner: Option<String>,
    /// `/` or `/a/b`.
    pub category: String,
    pub meta: Map<String, Value>,
}

fn serialize_id<S: serde::Serializer>(id: &OriginalId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(id.as_str())
}

/// An image to record; `category` is normalised by [`Catalog::insert`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewImage {
    pub id: OriginalId,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub owner: Option<String>,
    pub category: String,
    pub meta: Map<String, Value>,
}

/// What an insert found.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// A new row (HTTP `201`).
    New(Image),
    /// The same bytes were there already; their row is untouched (HTTP `200`).
    Existed(Image),
}

impl Inserted {
    pub fn image(&self) -> &Image {
        match self {
            Inserted::New(i) | Inserted::Existed(i) => i,
        }
    }
}

/// A search: `q` words (all must match, in metadata keys, values or the category), within
/// `category` and its descendants, newest first without `q`, best match first with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Free text; blank means no text filter.
    pub q: Option<String>,
    /// A category path; it and all categories below it. `None` or `/` means everything.
    pub category: Option<String>,
    /// From 1.
    pub page: u32,
    /// From 1 to [`MAX_PER_PAGE`].
    pub per_page: u32,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            q: None,
            category: None,
            page: 1,
            per_page: 20,
        }
    }
}

/// One page of results and the number of all matches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub items: Vec<Image>,
    pub total: u64,
}

/// A category with the images directly in it and in it or below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Category {
    /// `/` or `/a/b`.
    pub path: String,
    /// Images in exactly this category.
    pub images: u64,
    /// Images in this category or any below it.
    pub total: u64,
}

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
    pending_id: i64,
    image: OriginalId,
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

/// A user who may hold API keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    /// Unix time in milliseconds.
    pub created: i64,
    /// Keys not revoked.
    pub keys: u32,
}

/// A key's secret: the HMAC key. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret text (64 hex digits); its ASCII bytes are the HMAC key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// An API key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `ak_` and 16 hex digits; public.
    pub id: String,
    pub user: String,
    pub rights: Rights,
    pub secret: Secret,
    /// Unix time in milliseconds.
    pub created: i64,
    /// When it was revoked, in unix milliseconds.
    pub revoked: Option<i64>,
}

/// The catalog database.
pub struct Catalog {
    conn: Connection,
}

const IMAGE_COLUMNS: &str =
    "i.id, i.mime, i.width, i.height, i.bytes, i.created, i.updated, i.owner, i.category, i.meta";

impl Catalog {
    /// Opens (creating when missing, with mode 0600) the catalog at `path`, e.g.
    /// `<state>/catalog.sqlite`.
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        if !path.exists() {
            // Create it private before SQLite does: it holds the API keys' secrets.
            use std::os::unix::fs::OpenOptionsExt;
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        // FULL: a committed deletion or key revocation must survive a power cut.
        let conn = crate::db::open(path, crate::db::Sync::Full, SCHEMA, SCHEMA_VERSION)?;
        Ok(Catalog { conn })
    }

    // ---- images ------------------------------------------------------------------------

    /// One image.
    pub fn get(&self, id: &OriginalId) -> Result<Option<Image>, CatalogError> {
        get_image(&self.conn, id)
    }

    /// Whether there is any image, read from the table itself (for `/status`, which must see
    /// a damaged file, not only open it).
    pub fn probe(&self) -> Result<bool, CatalogError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM images LIMIT 1")?
            .query_row([], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Every image's id and its original object's extension, in id order (for `fsck`).
    pub fn originals(&self) -> Result<Vec<(OriginalId, String)>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, ext FROM images ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, ext) = row?;
            out.push((id.parse().map_err(|_| bad_column(0, "id"))?, ext));
        }
        Ok(out)
    }

    /// Records an image whose original is in place, and drops its upload intent in the same
    /// transaction. The same id twice gives [`Inserted::Existed`] with the first row untouched.
    /// An intent a removal passed over (the upload outlived the grace period, so its original
    /// may be gone) gives [`CatalogError::UploadExpired`]: no image is recorded, and what the
    /// upload placed is left for the sweep.
    pub fn insert(
        &mut self,
        new: &NewImage,
        intent: Option<Intent>,
    ) -> Result<Inserted, CatalogError> {
        let category = normalize_category(&new.category)?;
        let meta = meta_json(&new.meta)?;
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(i) = intent.as_ref().filter(|i| i.image == new.id)
            && !removal::intent_holds(&tx, i)?
            && get_image(&tx, &new.id)?.is_none()
        {
            removal::leave_for_sweep(&tx, &new.id, ext_of(&new.mime))?;
            tx.commit()?;
            return Err(CatalogError::UploadExpired(new.id.clone()));
        }
        let added = tx
            .prepare_cached(
                "INSERT INTO images (id, mime, ext, width, height, bytes, created, updated, owner, category, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                new.id.as_str(),
                new.mime,
                ext_of(&new.mime),
                new.width,
                new.height,
                i64::try_from(new.bytes).unwrap_or(i64::MAX),
                now,
                new.owner,
                category,
                meta
            ])?;
        if added == 1 {
            let seq = tx.last_insert_rowid();
            tx.prepare_cached(
                "INSERT INTO images_fts (rowid, category, meta) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![seq, category, meta_text(&new.meta)])?;
        }
        if let Some(i) = intent {
            // Only an intent for these bytes: another image's stays for the sweep.
            tx.prepare_cached(
                "DELETE FROM pending_deletes WHERE id = ?1 AND kind = 'upload' AND image = ?2",
            )?
            .execute(params![i.pending_id, new.id.as_str()])?;
        }
        let image =
            get_image(&tx, &new.id)?.ok_or_else(|| CatalogError::NotFound(new.id.clone()))?;
        tx.commit()?;
        Ok(if added == 1 {
            Inserted::New(image)
        } else {
            Inserted::Existed(image)
        })
    }

    /// Replaces the metadata object.
    pub fn replace_meta(
        &mut self,
        id: &OriginalId,
        meta: &Map<String, Value>,
    ) -> Result<Image, CatalogError> {
        self.update(id, |image| {
            image.meta = meta.clone();
            Ok(())
        })
    }

    /// Merges `patch` into the metadata with JSON Merge Patch (RFC 7396): a `null` removes
    /// its key, an object merges into an object, anything else replaces.
    pub fn merge_meta(
        &mut self,
        id: &OriginalId,
        patch: &Map<String, Value>,
    ) -> Result<Image, CatalogError> {
        self.update(id, |image| {
            merge_patch(&mut image.meta, patch);
            Ok(())
        })
    }

    /// Moves an image to another category (normalised).
    pub fn move_to(&mut self, id: &OriginalId, category: &str) -> Result<Image, CatalogError> {
        let category = normalize_category(category)?;
        self.update(id, |image| {
            image.category = category;
            Ok(())
        })
    }

    /// Reads, changes and writes one image's category and metadata in one transaction.
    fn update(
        &mut self,
        id: &OriginalId,
        change: impl FnOnce(&mut Image) -> Result<(), CatalogError>,
    ) -> Result<Image, CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut image = get_image(&tx, id)?.ok_or_else(|| CatalogError::NotFound(id.clone()))?;
        change(&mut image)?;
        let meta = meta_json(&image.meta)?;
        image.updated = now_ms().max(image.updated);
        let seq: i64 = tx
            .prepare_cached(
                "UPDATE images SET category = ?2, meta = ?3, updated = ?4 WHERE id = ?1 RETURNING seq",
            )?
            .query_row(
                params![id.as_str(), image.category, meta, image.updated],
                |r| r.get(0),
            )?;
        tx.prepare_cached("UPDATE images_fts SET category = ?2, meta = ?3 WHERE rowid = ?1")?
            .execute(params![seq, image.category, meta_text(&image.meta)])?;
        tx.commit()?;
        Ok(image)
    }

    /// Removes an image's row and records its original and its variants as pending deletes,
    /// in one transaction. The caller then passes each pending row to [`Catalog::sweep`];
    /// whatever a crash leaves, `imgserv-evict` sweeps later.
    pub fn delete(&mut self, id: &OriginalId) -> Result<Deleted, CatalogError> {
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

    /// Every pending row, oldest first: for the sweep.
    pub fn pending(&self) -> Result<Vec<PendingDelete>, CatalogError> {
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

    /// A page of images: newest first, or by relevance (bm25) when `q` has words.
    pub fn search(&self, query: &Query) -> Result<Page, CatalogError> {
        if query.page == 0 || query.page > 1_000_000 {
            return Err(QueryError::Invalid {
                name: "page",
                reason: format!("expected an integer from 1 to 1000000, got {}", query.page),
            }
            .into());
        }
        if query.per_page == 0 || query.per_page > MAX_PER_PAGE {
            return Err(QueryError::Invalid {
                name: "per_page",
                reason: format!(
                    "expected an integer from 1 to {MAX_PER_PAGE}, got {}",
                    query.per_page
                ),
            }
            .into());
        }
        let category = match query.category.as_deref() {
            None => None,
            Some(c) => Some(normalize_category(c)?).filter(|c| c != "/"),
        };
        let limit = i64::from(query.per_page);
        let offset = i64::from(query.page - 1) * limit;
        // Descendants of '/a' are exactly the paths in ('/a/', '/a0'): '0' follows '/'.
        let within = "(?1 IS NULL OR i.category = ?1 OR (i.category > ?1 || '/' AND i.category < ?1 || '0'))";
        let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let Some(q) = q else {
            let total: i64 = self
                .conn
                .prepare_cached(&format!("SELECT count(*) FROM images i WHERE {within}"))?
                .query_row(params![category], |r| r.get(0))?;
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT {IMAGE_COLUMNS} FROM images i WHERE {within}
                 ORDER BY i.created DESC, i.id LIMIT ?2 OFFSET ?3"
            ))?;
            let items = collect(stmt.query_map(params![category, limit, offset], image_row)?)?;
            return Ok(Page {
                items,
                total: total as u64,
            });
        };
        let Some(fts) = fts_query(q) else {
            // Only punctuation: nothing can match a word that has no letters or digits.
            return Ok(Page {
                items: Vec::new(),
                total: 0,
            });
        };
        let total: i64 = self
            .conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM images_fts JOIN images i ON i.seq = images_fts.rowid
                 WHERE images_fts MATCH ?4 AND {within}"
            ))?
            .query_row(params![category, None::<i64>, None::<i64>, fts], |r| {
                r.get(0)
            })?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images_fts JOIN images i ON i.seq = images_fts.rowid
             WHERE images_fts MATCH ?4 AND {within}
             ORDER BY bm25(images_fts), i.created DESC, i.id LIMIT ?2 OFFSET ?3"
        ))?;
        let items = collect(stmt.query_map(params![category, limit, offset, fts], image_row)?)?;
        Ok(Page {
            items,
            total: total as u64,
        })
    }

    /// Every category that holds an image, with its ancestors, in tree order (a parent before
    /// its children, siblings by name); the root `/` comes first and counts everything.
    pub fn categories(&self) -> Result<Vec<Category>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT category, count(*) FROM images GROUP BY category")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        // Keyed by segments, so that '/a' < '/a/b' < '/a-b' (a parent before its children).
        let mut tree: BTreeMap<Vec<String>, (u64, u64)> = BTreeMap::new();
        tree.insert(Vec::new(), (0, 0));
        for row in rows {
            let (path, n) = row?;
            let n = n.max(0) as u64;
            let segments: Vec<String> = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            for depth in 0..=segments.len() {
                let entry = tree.entry(segments[..depth].to_vec()).or_default();
                entry.1 += n;
                if depth == segments.len() {
                    entry.0 += n;
                }
            }
        }
        Ok(tree
            .into_iter()
            .map(|(segments, (images, total))| Category {
                path: format!("/{}", segments.join("/")),
                images,
                total,
            })
            .collect())
    }

    // ---- users and keys ----------------------------------------------------------------

    /// Adds a user.
    pub fn add_user(&mut self, name: &str) -> Result<User, CatalogError> {
        check_user_name(name)?;
        let created = now_ms();
        let added = self
            .conn
            .prepare_cached(
                "INSERT INTO users (name, created) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, created])?;
        if added == 0 {
            return Err(CatalogError::UserExists(name.to_string()));
        }
        Ok(User {
            name: name.to_string(),
            created,
            keys: 0,
        })
    }

    /// All users by name, with their number of valid keys.
    pub fn users(&self) -> Result<Vec<User>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.name, u.created, count(k.id) FROM users u
             LEFT JOIN api_keys k ON k.user = u.name AND k.revoked IS NULL
             GROUP BY u.name ORDER BY u.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(User {
                name: r.get(0)?,
                created: r.get(1)?,
                keys: r.get(2)?,
            })
        })?;
        collect(rows)
    }

    /// Deletes a user and all their keys (they stop verifying at once); images they own keep
    /// the name as their owner. Returns how many keys went with them.
    pub fn del_user(&mut self, name: &str) -> Result<u64, CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let keys = tx
            .prepare_cached("DELETE FROM api_keys WHERE user = ?1")?
            .execute(params![name])?;
        let users = tx
            .prepare_cached("DELETE FROM users WHERE name = ?1")?
            .execute(params![name])?;
        if users == 0 {
            return Err(CatalogError::UserNotFound(name.to_string()));
        }
        tx.commit()?;
        Ok(keys as u64)
    }

    /// Creates a key for `user`: a public id `ak_<16 hex>` and a secret of 32 random bytes
    /// as 64 hex digits, from the kernel's random source. The secret is shown once by the
    /// tool; the catalog keeps it because HMAC needs it to verify.
    pub fn add_key(&mut self, user: &str, rights: Rights) -> Result<ApiKey, CatalogError> {
        if rights == Rights::NONE {
            return Err(CatalogError::BadRights(
                "a key needs at least one right".into(),
            ));
        }
        let mut random = [0u8; 40];
        fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
        let key = ApiKey {
            id: format!("ak_{}", crate::cache::hex(&random[..8])),
            user: user.to_string(),
            rights,
            secret: Secret(crate::cache::hex(&random[8..])),
            created: now_ms(),
            revoked: None,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists = tx
            .prepare_cached("SELECT 1 FROM users WHERE name = ?1")?
            .query_row(params![user], |_| Ok(()))
            .optional()?
            .is_some();
        if !exists {
            return Err(CatalogError::UserNotFound(user.to_string()));
        }
        tx.prepare_cached(
            "INSERT INTO api_keys (id, user, secret, rights, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            key.id,
            key.user,
            key.secret.0,
            key.rights.bits(),
            key.created
        ])?;
        tx.commit()?;
        Ok(key)
    }

    /// All keys, revoked ones included, by user then creation.
    pub fn keys(&self) -> Result<Vec<ApiKey>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, user, rights, secret, created, revoked FROM api_keys ORDER BY user, created, id",
        )?;
        collect(stmt.query_map([], key_row)?)
    }

    /// One key, revoked or not.
    pub fn key(&self, id: &str) -> Result<Option<ApiKey>, CatalogError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, user, rights, secret, created, revoked FROM api_keys WHERE id = ?1",
            )?
            .query_row(params![id], key_row)
            .optional()?)
    }

    /// Revokes a key; revoking it again keeps the first time.
    pub fn revoke(&mut self, id: &str) -> Result<ApiKey, CatalogError> {
        self.conn
            .prepare_cached("UPDATE api_keys SET revoked = coalesce(revoked, ?2) WHERE id = ?1")?
            .execute(params![id, now_ms()])?;
        self.key(id)?
            .ok_or_else(|| CatalogError::KeyNotFound(id.chars().take(64).collect()))
    }
}

impl From<ApiKey> for crate::sign::KeyInfo {
    fn from(k: ApiKey) -> Self {
        crate::sign::KeyInfo {
            user: k.user,
            rights: k.rights,
            secret: k.secret.0.into_bytes(),
            revoked: k.revoked.is_some(),
        }
    }
}

/// The format of a catalogued original's `mime` type, for reading it from the store.
pub fn format_of(mime: &str) -> Option<crate::render::Format> {
    use crate::render::Format;
    [Format::Jpeg, Format::Png, Format::Gif, Format::Webp]
        .into_iter()
        .find(|f| f.mime() == mime)
}

/// The extension the original object of a `mime` type is stored with; `bin` for others.
pub fn ext_of(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/avif" => "avif",
        "image/tiff" => "tif",
        "image/bmp" => "bmp",
        _ => "bin",
    }
}

/// The canonical form of a category path: `/` or `/a/b`. Leading, trailing and repeated
/// slashes are dropped (`travel//norway/` is `/travel/norway`); `.` and `..` segments,
/// control characters and backslashes are refused, as are more than [`MAX_CATEGORY_DEPTH`]
/// segments or [`MAX_CATEGORY_BYTES`] bytes. Case is kept.
pub fn normalize_category(raw: &str) -> Result<String, CatalogError> {
    let bad = |why: &str| CatalogError::BadCategory(format!("{}: {why}", shorten(raw)));
    let segments: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
    for s in &segments {
        if *s == "." || *s == ".." {
            return Err(bad("has a '.' or '..' segment"));
        }
        if s.chars().any(|c| c.is_control() || c == '\\') {
            return Err(bad("has a control character or a backslash"));
        }
        if s.trim() != *s {
            return Err(bad("a segment starts or ends with a space"));
        }
    }
    if segments.len() > MAX_CATEGORY_DEPTH {
        return Err(bad(&format!(
            "is deeper than {MAX_CATEGORY_DEPTH} segments"
        )));
    }
    let path = format!("/{}", segments.join("/"));
    if path.len() > MAX_CATEGORY_BYTES {
        return Err(bad(&format!("is longer than {MAX_CATEGORY_BYTES} bytes")));
    }
    Ok(path)
}

fn shorten(s: &str) -> String {
    format!("{:?}", s.chars().take(64).collect::<String>())
}

fn check_user_name(name: &str) -> Result<(), CatalogError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::BadUserName(format!(
            "{}: expected 1 to 64 of A-Z a-z 0-9 . _ @ -",
            shorten(name)
        )))
    }
}

/// Compact JSON of the metadata, refused beyond [`MAX_META_BYTES`].
fn meta_json(meta: &Map<String, Value>) -> Result<String, CatalogError> {
    let json = serde_json::to_string(meta).map_err(|e| CatalogError::BadMeta(e.to_string()))?;
    if json.len() > MAX_META_BYTES {
        return Err(CatalogError::BadMeta(format!(
            "is {} bytes as JSON, more than {MAX_META_BYTES}",
            json.len()
        )));
    }
    Ok(json)
}

/// The text full-text search sees for the metadata: every key and every scalar value, nested
/// ones included, separated by newlines.
fn meta_text(meta: &Map<String, Value>) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Null => {}
            Value::Bool(b) => {
                out.push_str(if *b { "true" } else { "false" });
                out.push('\n');
            }
            Value::Number(n) => {
                out.push_str(&n.to_string());
                out.push('\n');
            }
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(o) => {
                for (k, v) in o {
                    out.push_str(k);
                    out.push('\n');
                    walk(v, out);
                }
            }
        }
    }
    let mut out = String::new();
    for (k, v) in meta {
        out.push_str(k);
        out.push('\n');
        walk(v, &mut out);
    }
    out
}

/// RFC 7396 on objects.
fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let slot = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(t) = slot {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

/// A user's words as an FTS5 query that cannot be a syntax error: every word (split at
/// whitespace) becomes a quoted phrase (`"` doubled inside), so operators (`AND`, `NEAR`,
/// `*`, `(`, `:`) are plain text; words without a letter or digit are dropped, because the
/// tokenizer would drop them too. All phrases must match. `None` when no word is left.
fn fts_query(q: &str) -> Option<String> {
    let phrases: Vec<String> = q
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .take(MAX_TERMS)
        .map(|w| {
            let w: String = w.chars().take(64).collect();
            format!("\"{}\"", w.replace('"', "\"\""))
        })
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" "))
}

fn get_image(conn: &Connection, id: &OriginalId) -> Result<Option<Image>, CatalogError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images i WHERE i.id = ?1"
        ))?
        .query_row(params![id.as_str()], image_row)
        .optional()?)
}

fn image_row(r: &Row) -> rusqlite::Result<Image> {
    let id: String = r.get(0)?;
    let meta: String = r.get(9)?;
    Ok(Image {
        id: id.parse().map_err(|_| conversion(0, "id"))?,
        mime: r.get(1)?,
        width: r.get(2)?,
        height: r.get(3)?,
        bytes: r.get::<_, i64>(4)?.max(0) as u64,
        created: r.get(5)?,
        updated: r.get(6)?,
        owner: r.get(7)?,
        category: r.get(8)?,
        meta: serde_json::from_str(&meta).map_err(|_| conversion(9, "meta"))?,
    })
}

fn key_row(r: &Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        user: r.get(1)?,
        rights: Rights::from_bits(r.get(2)?),
        secret: Secret(r.get(3)?),
        created: r.get(4)?,
        revoked: r.get(5)?,
    })
}

fn conversion(col: usize, name: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(col, name.into(), rusqlite::types::Type::Text)
}

fn bad_column(col: usize, name: &str) -> CatalogError {
    CatalogError::Db(conversion(col, name))
}

fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> Result<Vec<T>, CatalogError> {
    rows.map(|r| r.map_err(CatalogError::from)).collect()
}

/// Unix time in milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use serde_json::json;

    fn open(t: &tempfile::TempDir) -> Catalog {
        Catalog::open(&t.path().join("state/catalog.sqlite")).unwrap()
    }

    fn id(n: u32) -> OriginalId {
        OriginalId::of(&n.to_le_bytes()).unwrap()
    }

    fn meta(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn new(n: u32, category: &str, m: Value) -> NewImage {
        NewImage {
            id: id(n),
            mime: "image/jpeg".into(),
            width: 640,
            height: 480,
            bytes: 1000 + u64::from(n),
            owner: Some("alice".into()),
            category: category.into(),
            meta: meta(m),
        }
    }

    fn add(c: &mut Catalog, n: u32, category: &str, m: Value) -> Image {
        match c.insert(&new(n, category, m), None).unwrap() {
            Inserted::New(i) => i,
            Inserted::Existed(_) => panic!("image {n} existed"),
        }
    }

    fn search(c: &Catalog, q: Option<&str>, category: Option<&str>) -> Page {
        c.search(&Query {
            q: q.map(str::to_string),
            category: category.map(str::to_string),
            per_page: 100,
            ..Query::default()
        })
        .unwrap()
    }

    fn ids(p: &Page) -> Vec<OriginalId> {
        p.items.iter().map(|i| i.id.clone()).collect()
    }

    #[test]
    fn insert_then_existed() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let first = add(&mut c, 1, "travel//norway/", json!({"title": "Fjord"}));
        assert_eq!(first.category, "/travel/norway");
        assert_eq!(first.created, first.updated);
        assert_eq!(c.get(&id(1)).unwrap().as_ref(), Some(&first));
        // The same bytes again, with other details: the first row stays as it was.
        let mut again = new(1, "/elsewhere", json!({"title": "Other"}));
        again.owner = Some("bob".into());
        assert_eq!(
            c.insert(&again, None).unwrap(),
            Inserted::Existed(first.clone())
        );
        assert_eq!(c.get(&id(1)).unwrap(), Some(first));
        assert_eq!(search(&c, Some("other"), None).total, 0);
        assert_eq!(c.get(&id(2)).unwrap(), None);
        // A bad category or oversized metadata inserts nothing.
        assert!(matches!(
            c.insert(&new(2, "/a/../b", json!({})), None),
            Err(CatalogError::BadCategory(_))
        ));
        let big = json!({"x": "y".repeat(MAX_META_BYTES)});
        assert!(matches!(
            c.insert(&new(2, "/", big), None),
            Err(CatalogError::BadMeta(_))
        ));
        assert_eq!(c.get(&id(2)).unwrap(), None);
    }

    #[test]
    fn category_normalisation() {
        #[rustfmt::skip]
        let good = [
            ("",                 "/"),
            ("/",                "/"),
            ("///",              "/"),
            ("travel",           "/travel"),
            ("/Travel/Norway/",  "/Travel/Norway"),
            ("a//b",             "/a/b"),
            ("/ø/日本 語/x.y",    "/ø/日本 語/x.y"),
            ("/...",             "/..."),
        ];
        for (raw, want) in good {
            assert_eq!(normalize_category(raw).unwrap(), want, "{raw:?}");
        }
        let deep = "/a".repeat(MAX_CATEGORY_DEPTH + 1);
        let long = format!("/{}", "x".repeat(MAX_CATEGORY_BYTES));
        for raw in [
            "/a/..", "./a", "/a/./b", "/a\nb", "/a\\b", "/a\0", "/ a", &deep, &long,
        ] {
            assert!(
                matches!(normalize_category(raw), Err(CatalogError::BadCategory(_))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn full_text_search() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        add(
            &mut c,
            1,
            "/travel/norway",
            json!({"title": "Geiranger fjord", "camera": {"make": "Fujifilm"}}),
        );
        add(
            &mut c,
            2,
            "/travel/sweden",
            json!({"title": "Øresund bridge", "tags": ["bridge", "sea"]}),
        );
        add(
            &mut c,
            3,
            "/family",
            json!({"title": "Café au lait", "year": 2024, "fjord": true}),
        );
        // By a value, a nested value, an array element, a number, a key, the category.
        assert_eq!(ids(&search(&c, Some("geiranger"), None)), [id(1)]);
        assert_eq!(ids(&search(&c, Some("FUJIFILM"), None)), [id(1)]);
        assert_eq!(ids(&search(&c, Some("sea"), None)), [id(2)]);
        assert_eq!(ids(&search(&c, Some("2024"), None)), [id(3)]);
        assert_eq!(ids(&search(&c, Some("camera"), None)), [id(1)]);
        assert_eq!(ids(&search(&c, Some("norway"), None)), [id(1)]);
        assert_eq!(ids(&search(&c, Some("travel"), None)).len(), 2);
        // Diacritics folded; all words must match; a category narrows the search.
        assert_eq!(ids(&search(&c, Some("cafe"), None)), [id(3)]);
        assert_eq!(ids(&search(&c, Some("travel bridge"), None)), [id(2)]);
        assert_eq!(ids(&search(&c, Some("fjord"), Some("/travel"))), [id(1)]);
        assert_eq!(search(&c, Some("fjord"), None).total, 2);
        // Stronger matches rank first: two hits on "bridge" beat none.
        add(&mut c, 4, "/misc", json!({"note": "a bridge"}));
        assert_eq!(ids(&search(&c, Some("bridge"), None))[0], id(2));
        // Hostile input is text, never FTS5 syntax.
        for q in [
            "\"",
            "\"\"",
            "*",
            "fjord*",
            "AND (",
            "NEAR(a b)",
            "a OR",
            "NOT",
            "title:fjord",
            "^x",
            "-x",
            "{title}: x",
            "'); DROP TABLE images; --",
            "日本",
            "🙂",
            "\u{0}",
            "a\"b",
            "((((",
            "+",
            "x NEAR/2 y",
        ] {
            let r = c.search(&Query {
                q: Some(q.into()),
                ..Query::default()
            });
            assert!(r.is_ok(), "{q:?}: {r:?}");
        }
        assert_eq!(search(&c, Some("*"), None).total, 0, "no words");
        assert_eq!(search(&c, Some("   "), None).total, 4, "blank is no filter");
        assert_eq!(ids(&search(&c, Some("title:fjord"), None)).len(), 0);
        assert_eq!(
            ids(&search(&c, Some("AND fjord"), None)).len(),
            0,
            "AND is a word"
        );
        assert_eq!(search(&c, None, None).total, 4);
    }

    #[test]
    fn listing_and_pagination() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        for n in 0..25 {
            let cat = if n % 2 == 0 { "/even" } else { "/odd/deeper" };
            add(&mut c, n, cat, json!({"n": n, "word": "common"}));
            // Distinct creation times, so that newest-first is a total order.
            c.conn
                .execute(
                    "UPDATE images SET created = ?1 WHERE id = ?2",
                    params![1000 + i64::from(n), id(n).as_str()],
                )
                .unwrap();
        }
        let page = |q: Option<&str>, cat: Option<&str>, page, per_page| {
            c.search(&Query {
                q: q.map(Into::into),
                category: cat.map(Into::into),
                page,
                per_page,
            })
            .unwrap()
        };
        let p1 = page(None, None, 1, 10);
        assert_eq!((p1.items.len(), p1.total), (10, 25));
        assert_eq!(p1.items[0].id, id(24), "newest first");
        let p3 = page(None, None, 3, 10);
        assert_eq!((p3.items.len(), p3.total), (5, 25));
        assert_eq!(p3.items[4].id, id(0));
        assert_eq!(page(None, None, 4, 10).items.len(), 0);
        let mut seen: Vec<_> = (1..=3)
            .flat_map(|n| ids(&page(None, None, n, 10)))
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 25, "pages neither overlap nor skip");
        let fts = page(Some("common"), Some("/odd"), 2, 5);
        assert_eq!((fts.items.len(), fts.total), (5, 12));
        assert_eq!(
            page(None, Some("/odd"), 1, 100).total,
            12,
            "descendants included"
        );
        assert_eq!(page(None, Some("/odd/deeper"), 1, 100).total, 12);
        assert_eq!(
            page(None, Some("/od"), 1, 100).total,
            0,
            "not a prefix match"
        );
        assert_eq!(page(None, Some("/"), 1, 100).total, 25);
        for (p, pp, name) in [(0, 10, "page"), (1, 0, "per_page"), (1, 101, "per_page")] {
            let err = c
                .search(&Query {
                    page: p,
                    per_page: pp,
                    ..Query::default()
                })
                .unwrap_err();
            assert!(
                matches!(&err, CatalogError::Query(QueryError::Invalid { name: n, .. }) if *n == name),
                "{err}"
            );
        }
    }

    #[test]
    fn category_tree_counts() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        assert_eq!(
            c.categories().unwrap(),
            [Category {
                path: "/".into(),
                images: 0,
                total: 0
            }]
        );
        add(&mut c, 1, "/travel/norway", json!({}));
        add(&mut c, 2, "/travel/norway", json!({}));
        add(&mut c, 3, "/travel", json!({}));
        add(&mut c, 4, "/travel-x", json!({}));
        add(&mut c, 5, "/", json!({}));
        add(&mut c, 6, "/a/b/c", json!({}));
        let got: Vec<(String, u64, u64)> = c
            .categories()
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.images, c.total))
            .collect();
        let want = [
            ("/", 1, 6),
            ("/a", 0, 1),
            ("/a/b", 0, 1),
            ("/a/b/c", 1, 1),
            ("/travel", 1, 3),
            ("/travel/norway", 2, 2),
            ("/travel-x", 1, 1),
        ];
        let want: Vec<(String, u64, u64)> = want
            .iter()
            .map(|(p, i, t)| (p.to_string(), *i, *t))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn merge_replace_move() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        add(
            &mut c,
            1,
            "/a",
            json!({"title": "Old", "camera": {"make": "Fuji", "lens": "23mm"}, "keep": 1}),
        );
        let merged = c
            .merge_meta(
                &id(1),
                &meta(json!({"title": "New", "camera": {"lens": null, "iso": 200}, "keep": null, "added": [1, 2]})),
            )
            .unwrap();
        assert_eq!(
            Value::Object(merged.meta.clone()),
            json!({"title": "New", "camera": {"make": "Fuji", "iso": 200}, "added": [1, 2]})
        );
        assert!(merged.updated >= merged.created);
        // An object replaces a scalar; nulls inside a new object are dropped (RFC 7396).
        let m = c
            .merge_meta(&id(1), &meta(json!({"title": {"en": "Fjord", "de": null}})))
            .unwrap();
        assert_eq!(m.meta["title"], json!({"en": "Fjord"}));
        assert_eq!(ids(&search(&c, Some("fjord"), None)), [id(1)]);
        assert_eq!(
            search(&c, Some("old"), None).total,
            0,
            "index follows merges"
        );
        let replaced = c
            .replace_meta(&id(1), &meta(json!({"only": "this"})))
            .unwrap();
        assert_eq!(Value::Object(replaced.meta), json!({"only": "this"}));
        assert_eq!(
            search(&c, Some("fuji"), None).total,
            0,
            "index follows replaces"
        );
        assert_eq!(c.get(&id(1)).unwrap().unwrap().meta["only"], "this");
        let moved = c.move_to(&id(1), "b/c/").unwrap();
        assert_eq!(moved.category, "/b/c");
        assert_eq!(ids(&search(&c, None, Some("/b"))), [id(1)]);
        assert_eq!(search(&c, None, Some("/a")).total, 0);
        assert_eq!(
            ids(&search(&c, Some("c"), None)),
            [id(1)],
            "index follows moves"
        );
        assert!(matches!(
            c.move_to(&id(1), "/.."),
            Err(CatalogError::BadCategory(_))
        ));
        for r in [
            c.merge_meta(&id(9), &Map::new()),
            c.replace_meta(&id(9), &Map::new()),
            c.move_to(&id(9), "/x"),
        ] {
            assert!(matches!(r, Err(CatalogError::NotFound(_))));
        }
        let big = meta(json!({"x": "y".repeat(MAX_META_BYTES)}));
        assert!(matches!(
            c.merge_meta(&id(1), &big),
            Err(CatalogError::BadMeta(_))
        ));
        assert_eq!(
            c.get(&id(1)).unwrap().unwrap().meta["only"],
            "this",
            "unchanged"
        );
    }

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

    #[test]
    fn uploads_and_removals_of_the_same_bytes() {
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

    #[test]
    fn users_and_keys() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        assert_eq!(c.users().unwrap(), []);
        c.add_user("alice").unwrap();
        c.add_user("bob@example.org").unwrap();
        assert!(matches!(
            c.add_user("alice"),
            Err(CatalogError::UserExists(_))
        ));
        for bad in ["", "a b", "x/y", "ünï", &"x".repeat(65)] {
            assert!(
                matches!(c.add_user(bad), Err(CatalogError::BadUserName(_))),
                "{bad:?}"
            );
        }
        let k1 = c.add_key("alice", Rights::READ | Rights::WRITE).unwrap();
        let k2 = c.add_key("alice", Rights::ADMIN).unwrap();
        let k3 = c.add_key("bob@example.org", Rights::READ).unwrap();
        assert!(k1.id.starts_with("ak_") && k1.id.len() == 19);
        assert!(k1.id[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(k1.secret.expose().len(), 64);
        assert_ne!(k1.secret, k2.secret);
        assert_ne!(k1.id, k2.id);
        assert!(
            !format!("{k1:?}").contains(k1.secret.expose()),
            "Debug hides the secret"
        );
        assert!(matches!(
            c.add_key("carol", Rights::READ),
            Err(CatalogError::UserNotFound(_))
        ));
        assert!(matches!(
            c.add_key("alice", Rights::NONE),
            Err(CatalogError::BadRights(_))
        ));
        assert_eq!(c.key(&k1.id).unwrap(), Some(k1.clone()));
        assert_eq!(c.keys().unwrap().len(), 3);
        let users = c.users().unwrap();
        assert_eq!((users[0].name.as_str(), users[0].keys), ("alice", 2));
        // Revoking keeps the key (its use is reported as revoked), idempotently.
        let revoked = c.revoke(&k1.id).unwrap();
        let when = revoked.revoked.unwrap();
        assert_eq!(c.revoke(&k1.id).unwrap().revoked, Some(when));
        assert!(matches!(
            c.revoke("ak_nope"),
            Err(CatalogError::KeyNotFound(_))
        ));
        let info: crate::sign::KeyInfo = c.key(&k1.id).unwrap().unwrap().into();
        assert!(info.revoked && info.secret == k1.secret.expose().as_bytes());
        assert_eq!(c.users().unwrap()[0].keys, 1);
        // Deleting a user deletes their keys.
        assert_eq!(c.del_user("alice").unwrap(), 2);
        assert_eq!(c.key(&k2.id).unwrap(), None);
        assert!(matches!(
            c.del_user("alice"),
            Err(CatalogError::UserNotFound(_))
        ));
        assert_eq!(c.keys().unwrap(), [k3]);
        // The file is private: it holds the secrets.
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(t.path().join("state/catalog.sqlite"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }

    #[test]
    fn rights_parse_and_print() {
        let r: Rights = "read, write,admin".parse().unwrap();
        assert_eq!(r, Rights::READ | Rights::WRITE | Rights::ADMIN);
        assert_eq!(r.to_string(), "read,write,admin");
        assert!(!r.contains(Rights::DELETE));
        assert!(r.contains(Rights::READ | Rights::ADMIN));
        assert_eq!(Rights::NONE.to_string(), "none");
        assert_eq!(
            Rights::from_bits(0xFF).to_string(),
            "read,write,delete,admin"
        );
        for (bad, named) in [
            ("read,wrte", "\"wrte\""),
            ("", "\"\""),
            ("read,", "\"\""),
            ("READ", "\"READ\""),
        ] {
            let err = bad.parse::<Rights>().unwrap_err().to_string();
            assert!(err.contains(named), "{bad:?}: {err}");
        }
    }
}
