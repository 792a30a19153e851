//! The catalog's tables, and opening the file.

use std::fs;
use std::io;
use std::path::Path;

use super::{Catalog, CatalogError};

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
}
