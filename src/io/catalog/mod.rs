//! The catalog: what is known about each original (mime, size, owner, category, free metadata),
//! full-text search over it, the files waiting to be deleted, and the users, groups and API
//! keys.
//!
//! What a catalog does is a set of traits (`backend`: images, deletions, categories, full-text
//! search, removals, users, groups, keys), and [`Catalog`] holds any implementation of them
//! all; use cases see only that, so another database (PostgreSQL, past one machine) is another
//! implementation, not a change to them. [`SqliteCatalog`] is the one backend today: all SQL
//! lives in this folder, behind plain Rust types. The catalog does not store bytes (that is
//! `store`), check signatures (`sign`) or speak HTTP (`api`).
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
//!
//! The submodules split it by concern: `backend` (the traits and `Catalog`), `schema` (the tables and opening the file), `images`,
//! `search`, `browse` (pages after a cursor), `below` (pages of a whole subtree), `matches`
//! (pages of full-text matches), `categories` (the tree, stored with its counts, and its
//! changes), `pending` (deletions and what they leave to remove), `removal`,
//! `users` (roles, password hashes, the disabled flag), `groups`, `keys` (API keys, rights and
//! expiry), `sessions` (login sessions), `grants` (permissions on objects) and `error`. Everything is used as `catalog::X`.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

mod backend;
mod below;
mod browse;
mod categories;
mod error;
mod grants;
mod groups;
mod images;
mod keys;
mod matches;
mod pending;
mod removal;
mod schema;
mod search;
mod sessions;
#[cfg(test)]
pub(crate) mod testing;
mod users;

pub use backend::{
    Browse, Catalog, CatalogBackend, Categories, Deletions, Grants, Groups, Images, Keys, Removals,
    Search, Sessions, Users,
};
pub use browse::{Fragment, Hit, Listed, MAX_LIMIT as MAX_BROWSE_LIMIT};
pub use categories::{
    Category, CategoryDeleted, CategoryRenamed, MAX_CATEGORY_BYTES, MAX_CATEGORY_DEPTH,
    check_change as check_category_change, normalize_category,
};
pub use error::CatalogError;
pub use grants::{ROOT_OBJECT, StoredGrant, category_object, normalize_object, object_ancestors};
pub use groups::Group;
pub use images::{Image, Inserted, MAX_META_BYTES, NewImage, ext_of, format_of};
pub use keys::{ApiKey, Rights, Secret};
pub use matches::RANKED as RANKED_MATCHES;
pub use pending::{Deleted, Doomed, Intent, PendingDelete, Swept};
pub use removal::{CLAIM_LEASE, Claim, Claimed, UPLOAD_WAIT};
pub use search::{MAX_PER_PAGE, Page, Query};
pub use sessions::{LOOKUP as SESSION_LOOKUP, SessionRecord, UserNow};
pub use users::{Credentials, Role, User};

/// The catalog in an SQLite file: the one backend today.
pub struct SqliteCatalog {
    conn: Connection,
}

/// `s` quoted, cut at 64 characters, for an error message.
fn shorten(s: &str) -> String {
    format!("{:?}", s.chars().take(64).collect::<String>())
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
