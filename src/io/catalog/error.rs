//! What can go wrong in the catalog: one error type for every operation.

use std::io;

use crate::domain::original::OriginalId;
use crate::domain::query::QueryError;
use crate::io::db::MigrateError;

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
    /// No group with this name.
    #[error("no group {0:?}")]
    GroupNotFound(String),
    /// A group with this name exists already.
    #[error("group {0:?} exists already")]
    GroupExists(String),
    /// Removing a user from a group they are not in.
    #[error("user {user:?} is not a member of group {group:?}")]
    NotMember { group: String, user: String },
    /// A group name that is empty, too long or has characters outside `[A-Za-z0-9._@-]`.
    #[error("group name {0}")]
    BadGroupName(String),
    /// A role other than `admin`, `editor` or `viewer`.
    #[error("role {0}")]
    BadRole(String),
    /// An object name other than `category:/PATH` (or with a bad path).
    #[error("object {0}")]
    BadObject(String),
    /// Revoking a grant the grantee does not hold on the object.
    #[error("{grantee} holds no grant on {object}")]
    GrantNotFound { object: String, grantee: String },
    /// No API key with this id.
    #[error("no API key {0:?}")]
    KeyNotFound(String),
    /// A user name that is empty, too long or has characters outside `[A-Za-z0-9._@-]`.
    #[error("user name {0}")]
    BadUserName(String),
    /// A category path with a `.` or `..` segment, a control character, or over the limits.
    #[error("category {0}")]
    BadCategory(String),
    /// No category with this path: no row for it or below it.
    #[error("no category {0:?}")]
    CategoryNotFound(String),
    /// Creating, or renaming to, a category that exists (it has a row, or one below it does,
    /// which makes it show in the tree).
    #[error("category {0:?} exists already")]
    CategoryExists(String),
    /// Deleting a category that holds images, directly or below it.
    #[error(
        "category {path:?} holds {images} image(s), in it or below it: move or delete them first"
    )]
    CategoryNotEmpty { path: String, images: u64 },
    /// A change the tree cannot make: renaming, moving or deleting the root, or moving a
    /// category below itself.
    #[error("{0}")]
    BadCategoryChange(String),
    /// Metadata that is not a JSON object or is larger than [`MAX_META_BYTES`](super::MAX_META_BYTES).
    #[error("metadata {0}")]
    BadMeta(String),
    /// A rights list with an unknown or no right; the message names it.
    #[error("rights: {0}")]
    BadRights(String),
    /// A search parameter out of range; the message names it.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// An upload met a removal of the same original (a deletion of the same bytes) that did
    /// not finish within [`UPLOAD_WAIT`](super::UPLOAD_WAIT); nothing was stored. Retrying later succeeds.
    #[error("an earlier deletion of {0} is still removing its original; retry later")]
    Removing(OriginalId),
    /// An upload took so long between its intent and its insert (longer than `[evict]
    /// upload_grace`) that a removal of its original may have run meanwhile; nothing was
    /// recorded. Retrying succeeds.
    #[error("the upload of {0} outlived the upload grace period; retry")]
    UploadExpired(OriginalId),
    /// The catalog was written by a newer imgserv: its schema version is past the last
    /// migration this code knows. Nothing was changed.
    #[error(
        "catalog schema version {found} is newer than this imgserv knows (at most {known}); \
         run the imgserv that upgraded it, or restore a backup"
    )]
    TooNew { found: i64, known: i64 },
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

impl From<MigrateError> for CatalogError {
    fn from(e: MigrateError) -> Self {
        match e {
            MigrateError::TooNew { found, known } => CatalogError::TooNew { found, known },
            MigrateError::Db(e) => e.into(),
        }
    }
}
