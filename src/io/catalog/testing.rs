//! Helpers for the catalog's unit tests: a catalog in a temporary directory, and images
//! numbered 0, 1, 2, … with JSON metadata; catalogs as the code before numbered migrations
//! made them, for the upgrade tests (here and in `sign`).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, params};
use serde_json::{Map, Value};

use super::{Catalog, Image, Inserted, NewImage, Page, Query, Rights};
use crate::domain::original::OriginalId;

pub(super) fn open(t: &tempfile::TempDir) -> Catalog {
    Catalog::open(&t.path().join("state/catalog.sqlite")).unwrap()
}

pub(crate) fn id(n: u32) -> OriginalId {
    OriginalId::of(&n.to_le_bytes()).unwrap()
}

pub(super) fn meta(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

pub(super) fn new(n: u32, category: &str, m: Value) -> NewImage {
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

pub(super) fn add(c: &mut Catalog, n: u32, category: &str, m: Value) -> Image {
    match c.insert(&new(n, category, m), None).unwrap() {
        Inserted::New(i) => i,
        Inserted::Existed(_) => panic!("image {n} existed"),
    }
}

pub(super) fn search(c: &Catalog, q: Option<&str>, category: Option<&str>) -> Page {
    c.search(&Query {
        q: q.map(str::to_string),
        category: category.map(str::to_string),
        per_page: 100,
        ..Query::default()
    })
    .unwrap()
}

pub(super) fn ids(p: &Page) -> Vec<OriginalId> {
    p.items.iter().map(|i| i.id.clone()).collect()
}

/// The schema as imgserv's code wrote it before the steps were numbered, frozen here so that
/// an edit to a released step shows: version 1 (commit 8b32abf) …
const MADE_V1: &str = "
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
CREATE VIRTUAL TABLE IF NOT EXISTS images_fts USING fts5 (
    category, meta, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS pending_deletes (
    id      INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('original', 'variants', 'upload')),
    image   TEXT NOT NULL,
    ext     TEXT NOT NULL,
    created INTEGER NOT NULL            -- unix time in milliseconds
);
CREATE INDEX IF NOT EXISTS pending_image ON pending_deletes (image);
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

/// … and what version 2 (commit 10d1e99) added.
const MADE_V2: &str = "
CREATE TABLE IF NOT EXISTS removals (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    pending INTEGER NOT NULL UNIQUE REFERENCES pending_deletes (id) ON DELETE CASCADE,
    expires INTEGER NOT NULL
);
";

/// A key of a catalog from [`made_before_migrations`], and what it may do.
pub(crate) struct OldKey {
    pub(crate) id: &'static str,
    pub(crate) user: &'static str,
    pub(crate) secret: String,
    pub(crate) rights: Rights,
    pub(crate) revoked: bool,
}

/// Makes at `path` a catalog as imgserv's code before numbered migrations left it at
/// `version` (1 or 2): that schema, WAL, `user_version`, and rows as that code wrote them —
/// users alice and bob; keys alice read+write, bob delete+admin, alice read (revoked); images
/// 1 to 3 with metadata in `/travel/norway`, `/travel` and `/`, in the search index; image 4
/// deleted (its original and variants pending), an upload of image 5 in flight, and in
/// version 2 a claim on image 4's original. Returns the keys.
pub(crate) fn made_before_migrations(path: &Path, version: i64) -> Vec<OldKey> {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(MADE_V1).unwrap();
    if version >= 2 {
        conn.execute_batch(MADE_V2).unwrap();
    }
    conn.pragma_update(None, "user_version", version).unwrap();
    let keys = vec![
        OldKey {
            id: "ak_00000000000000a1",
            user: "alice",
            secret: "a1".repeat(32),
            rights: Rights::READ | Rights::WRITE,
            revoked: false,
        },
        OldKey {
            id: "ak_00000000000000b2",
            user: "bob",
            secret: "b2".repeat(32),
            rights: Rights::DELETE | Rights::ADMIN,
            revoked: false,
        },
        OldKey {
            id: "ak_00000000000000a3",
            user: "alice",
            secret: "a3".repeat(32),
            rights: Rights::READ,
            revoked: true,
        },
    ];
    conn.execute_batch("INSERT INTO users VALUES ('alice', 1000), ('bob', 2000)")
        .unwrap();
    for (n, k) in keys.iter().enumerate() {
        conn.execute(
            "INSERT INTO api_keys (id, user, secret, rights, created, revoked)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                k.id,
                k.user,
                k.secret,
                k.rights.bits(),
                1100 + n as i64,
                k.revoked.then_some(5000)
            ],
        )
        .unwrap();
    }
    let images = [
        (
            1,
            "image/jpeg",
            "jpg",
            Some("alice"),
            "/travel/norway",
            r#"{"camera":{"make":"Fujifilm"},"title":"Geiranger fjord"}"#,
            "camera\nmake\nFujifilm\ntitle\nGeiranger fjord\n",
        ),
        (
            2,
            "image/png",
            "png",
            Some("bob"),
            "/travel",
            r#"{"tags":["bridge","sea"]}"#,
            "tags\nbridge\nsea\n",
        ),
        (3, "image/webp", "webp", None, "/", "{}", ""),
    ];
    for (n, mime, ext, owner, category, meta, text) in images {
        conn.execute(
            "INSERT INTO images (id, mime, ext, width, height, bytes, created, updated, owner, category, meta)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                id(n).as_str(),
                mime,
                ext,
                640 + n,
                480 + n,
                1000 + n,
                3000 + n,
                3500 + n,
                owner,
                category,
                meta
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO images_fts (rowid, category, meta) VALUES (?1, ?2, ?3)",
            params![conn.last_insert_rowid(), category, text],
        )
        .unwrap();
    }
    for (kind, n, ext) in [
        ("original", 4, "jpg"),
        ("variants", 4, "jpg"),
        ("upload", 5, "gif"),
    ] {
        conn.execute(
            "INSERT INTO pending_deletes (kind, image, ext, created) VALUES (?1, ?2, ?3, 4000)",
            params![kind, id(n).as_str(), ext],
        )
        .unwrap();
    }
    if version >= 2 {
        conn.execute(
            "INSERT INTO removals (pending, expires) VALUES (1, 9999999999999)",
            [],
        )
        .unwrap();
    }
    keys
}

/// Every row of every table of the database at `path` (FTS5's own tables included), each
/// table's rows sorted: what an upgrade must keep.
pub(super) fn rows(path: &Path) -> BTreeMap<String, Vec<String>> {
    rows_with(path, &[])
}

/// [`rows`], with the columns of the tables `only` names limited to the ones given: what an
/// upgrade that adds columns must keep.
pub(super) fn rows_with(path: &Path, only: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let conn = Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let mut all = BTreeMap::new();
    for table in tables {
        let columns = only
            .iter()
            .find(|(t, _)| *t == table)
            .map_or("*", |(_, c)| c);
        let mut stmt = conn
            .prepare(&format!("SELECT {columns} FROM \"{table}\""))
            .unwrap();
        let width = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                (0..width)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map(|row| format!("{row:?}"))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        rows.sort();
        all.insert(table, rows);
    }
    all
}

/// The schema of the database at `path`: every table, index and trigger with its SQL.
pub(super) fn schema(path: &Path) -> Vec<(String, String, Option<String>)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

impl super::Catalog {
    /// The connection, for tests that set up rows no public method writes (a session aged).
    pub(crate) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }
}
