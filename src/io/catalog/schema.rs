//! The catalog's tables, as numbered migrations, and opening the file (private, then brought
//! up to the latest schema).

use std::fs;
use std::io;
use std::path::Path;

use super::{CatalogError, SqliteCatalog};
use crate::io::db::{self, Migration};

/// The catalog's schema, step by step (see [`crate::io::db::migrate`]): a catalog at version `n`
/// has had steps 1 to `n`, and `user_version` says which `n`. Catalogs made before the steps
/// were numbered recorded 1 (the first release) or 2 (with `removals`), exactly these steps'
/// tables, so they are recognised as they are. A change to the schema is a new step at the
/// end, with its test; a released step is never edited.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "images, their search index, pending deletes, users and API keys",
        apply: |tx| tx.execute_batch(V1_TABLES),
    },
    Migration {
        version: 2,
        what: "removals (claims of pending rows)",
        apply: |tx| tx.execute_batch(V2_REMOVALS),
    },
    Migration {
        version: 3,
        what: "users' roles, passwords and disabled flag; groups; key expiry",
        apply: |tx| tx.execute_batch(V3_PEOPLE),
    },
    Migration {
        version: 4,
        what: "login sessions",
        apply: |tx| tx.execute_batch(V4_SESSIONS),
    },
    Migration {
        version: 5,
        what: "grants and per-object settings (permissions)",
        apply: |tx| tx.execute_batch(V5_GRANTS),
    },
    Migration {
        version: 6,
        what: "indexes for keyset pagination within a category (newest first, by name)",
        apply: |tx| tx.execute_batch(V6_BROWSE),
    },
    Migration {
        version: 7,
        what: "stored categories with their image counts, kept by triggers on images",
        apply: |tx| tx.execute_batch(V7_CATEGORIES),
    },
    Migration {
        version: 8,
        what: "indexes for keyset pagination of a category and everything below it",
        apply: |tx| tx.execute_batch(V8_BELOW),
    },
];

/// Step 1, as first released.
const V1_TABLES: &str = "
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

/// Step 2: the removal protocol's claims.
const V2_REMOVALS: &str = "
-- A removal in progress (src/io/catalog/removal.rs): the pending row a process is removing the
-- objects of, with no lock held, until `expires` (unix ms). The id is the claim's token.
CREATE TABLE IF NOT EXISTS removals (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    pending INTEGER NOT NULL UNIQUE REFERENCES pending_deletes (id) ON DELETE CASCADE,
    expires INTEGER NOT NULL
);
";

/// Step 3: people. Users get a role, an optional local password (an argon2id PHC string; NULL
/// for users who log in elsewhere, e.g. LDAP, or only hold keys), a disabled flag and an update
/// time; groups and their members; keys an optional expiry.
///
/// Users from before get the role `editor`: until now a user could do exactly what their keys'
/// rights allowed (read, write, delete, admin), and a key acts with at most its user's
/// permissions, so the role must not take a right away from an existing key; `editor` is what a
/// key-holding user was (it uploads and changes images), and the keys' own rights (kept as they
/// are) still cap each key. They get no password (they never had one) and stay enabled.
const V3_PEOPLE: &str = "
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'editor'
    CHECK (role IN ('admin', 'editor', 'viewer'));
ALTER TABLE users ADD COLUMN password_hash TEXT;   -- argon2id PHC string; NULL: no local password
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
ALTER TABLE users ADD COLUMN updated INTEGER NOT NULL DEFAULT 0;   -- unix time in milliseconds
UPDATE users SET updated = created;
CREATE TABLE groups (
    name    TEXT PRIMARY KEY,
    created INTEGER NOT NULL            -- unix time in milliseconds
);
CREATE TABLE group_members (
    grp     TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
    user    TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    added   INTEGER NOT NULL,           -- unix time in milliseconds
    PRIMARY KEY (grp, user)
) WITHOUT ROWID;
CREATE INDEX group_members_user ON group_members (user);
ALTER TABLE api_keys ADD COLUMN expires INTEGER;    -- unix time in milliseconds; NULL: never
";

/// Step 4: login sessions (`usecases::session`). A row is found by the SHA-256 of the
/// session's token (the cookie's value is never stored, so a copy of the catalog logs nobody
/// in); `token_hash` is the primary key of a table without rowid, so the lookup is one search
/// of one b-tree, which joins the user's row by its primary key. `groups` and `roles` are what
/// the login method said beyond the catalog (a directory's groups, a program's role); the
/// catalog's own are read live at each request. `catalog_user` says the user had a catalog row
/// at login: deleting it then ends the session.
const V4_SESSIONS: &str = "
CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,          -- SHA-256 of the cookie's token, 64 hex digits
    user         TEXT NOT NULL,
    method       TEXT NOT NULL,             -- how they logged in: local, ldap, command
    groups       TEXT NOT NULL,             -- the method's own groups, one per line
    roles        TEXT NOT NULL,             -- the method's own roles, one per line
    catalog_user INTEGER NOT NULL CHECK (catalog_user IN (0, 1)),
    csrf         TEXT NOT NULL,             -- the CSRF token, 64 hex digits
    created      INTEGER NOT NULL,          -- unix time in milliseconds
    last_seen    INTEGER NOT NULL           -- unix time in milliseconds, updated lazily
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user);
CREATE INDEX sessions_last_seen ON sessions (last_seen);
CREATE INDEX sessions_created ON sessions (created);
";

/// Step 5: permissions. One privilege per grantee per object (granting again replaces);
/// objects are `category:/PATH`; `object_settings` holds `inherit = false` (and marks the root
/// as set up with `[permissions] root_grants`, see `Catalog::seed_root`). No grant is written
/// for existing data: users from before are editors (step 3), and the editor role is an
/// implicit grant at the root, so their keys keep doing what they did.
const V5_GRANTS: &str = "
CREATE TABLE grants (
    object     TEXT NOT NULL,           -- 'category:/' or 'category:/a/b'
    grantee    TEXT NOT NULL,           -- 'user:NAME', 'group:NAME', 'registered', 'public'
    privilege  TEXT NOT NULL CHECK (privilege IN ('view', 'edit', 'admin')),
    granted_by TEXT,                    -- a user name; NULL for the configuration or a creator
    created    INTEGER NOT NULL,        -- unix time in milliseconds
    PRIMARY KEY (object, grantee)
) WITHOUT ROWID;
CREATE INDEX grants_grantee ON grants (grantee);
CREATE TABLE object_settings (
    object  TEXT PRIMARY KEY,
    inherit INTEGER NOT NULL DEFAULT 1 CHECK (inherit IN (0, 1))
) WITHOUT ROWID;
";

/// Step 6: browsing a category page by page without `OFFSET` (`browse`): an index per order,
/// led by the category, so that a page after a cursor is one seek and `LIMIT` rows. The name
/// is an expression index: the metadata `title` when it is a string (trimmed, not blank, its
/// first 100 characters) or else the id, compared ASCII-case-insensitively (`NOCASE`); the
/// query must spell the expression exactly so (`browse::NAME_KEY`, checked by a test).
const V6_BROWSE: &str = "
CREATE INDEX images_category_created ON images (category, created DESC, id);
CREATE INDEX images_category_name ON images (
    category,
    substr(coalesce(nullif(trim(CASE json_type(meta, '$.title') WHEN 'text'
        THEN json_extract(meta, '$.title') END), ''), id), 1, 100) COLLATE NOCASE,
    id
);
";

/// Step 7: categories stored, so that one can exist empty (created in the dashboard, or
/// emptied by moves) and the tree with counts is read from a small table, not grouped from
/// every image. A category exists while it has a row (the root always has one); its
/// ancestors are implied (the tree shows `/a` when `/a/b` has a row). `images` counts the
/// images directly in it, kept exact by triggers on `images` in the same transaction as every
/// insert, move and delete, whatever code (or SQL) writes them: an image's category gets a
/// row if it had none. A row whose count drops to 0 stays, as a category the user saw (or
/// made) must not vanish silently; deleting one is `Categories::delete_category`.
/// Existing catalogs get a row per category their images name, with its count.
const V7_CATEGORIES: &str = "
CREATE TABLE categories (
    path   TEXT PRIMARY KEY,            -- normalised: '/' or '/a/b'
    images INTEGER NOT NULL DEFAULT 0   -- images directly in it, kept by the triggers below
) WITHOUT ROWID;
INSERT INTO categories (path, images) VALUES ('/', 0);
INSERT INTO categories (path, images)
    SELECT category, count(*) FROM images WHERE true GROUP BY category
    ON CONFLICT (path) DO UPDATE SET images = excluded.images;
CREATE TRIGGER categories_image_added AFTER INSERT ON images BEGIN
    INSERT INTO categories (path, images) VALUES (NEW.category, 1)
        ON CONFLICT (path) DO UPDATE SET images = images + 1;
END;
CREATE TRIGGER categories_image_deleted AFTER DELETE ON images BEGIN
    UPDATE categories SET images = images - 1 WHERE path = OLD.category;
END;
CREATE TRIGGER categories_image_moved AFTER UPDATE OF category ON images
    WHEN NEW.category IS NOT OLD.category BEGIN
    UPDATE categories SET images = images - 1 WHERE path = OLD.category;
    INSERT INTO categories (path, images) VALUES (NEW.category, 1)
        ON CONFLICT (path) DO UPDATE SET images = images + 1;
END;
";

/// Step 8: listing a category and everything below it page by page (`below`): an index per
/// order led by the order's key and holding the category, so that a page is one scan in
/// order from the cursor, each entry's category checked in the index. `images_listing`
/// (created DESC, id) is a prefix of the first: dropped. The name's expression is step 6's
/// (`browse::NAME_KEY`).
const V8_BELOW: &str = "
CREATE INDEX images_created_category ON images (created DESC, id, category);
CREATE INDEX images_name_category ON images (
    substr(coalesce(nullif(trim(CASE json_type(meta, '$.title') WHEN 'text'
        THEN json_extract(meta, '$.title') END), ''), id), 1, 100) COLLATE NOCASE,
    id,
    category
);
DROP INDEX images_listing;
";

impl SqliteCatalog {
    /// Opens (creating when missing, with mode 0600) the catalog at `path`, e.g.
    /// `<state>/catalog.sqlite`.
    pub fn open(path: &Path) -> Result<SqliteCatalog, CatalogError> {
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
        let mut conn = db::connect(path, db::Sync::Full)?;
        db::migrate(&mut conn, MIGRATIONS)?;
        Ok(SqliteCatalog { conn })
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::io::catalog::Catalog;
    use crate::io::catalog::testing::*;
    use crate::io::catalog::{Category, Doomed, Query, Rights, Role, User};

    fn user_version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    /// A database at `path` brought to `version` by the first steps only.
    fn migrated_to(path: &Path, version: usize) {
        let mut conn = db::connect(path, db::Sync::Full).unwrap();
        db::migrate(&mut conn, &MIGRATIONS[..version]).unwrap();
    }

    #[test]
    fn steps_are_numbered_from_one_in_order() {
        let numbers: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        let want: Vec<i64> = (1..=MIGRATIONS.len() as i64).collect();
        assert_eq!(numbers, want);
    }

    #[test]
    fn step_1_makes_the_tables_of_the_first_release() {
        let t = tempfile::tempdir().unwrap();
        let (new, old) = (t.path().join("new.sqlite"), t.path().join("old.sqlite"));
        migrated_to(&new, 1);
        made_before_migrations(&old, 1);
        assert_eq!(schema(&new), schema(&old));
        assert_eq!(user_version(&new), 1);
    }

    #[test]
    fn step_2_adds_removals_and_keeps_every_row() {
        let t = tempfile::tempdir().unwrap();
        let (new, old) = (t.path().join("new.sqlite"), t.path().join("old.sqlite"));
        made_before_migrations(&new, 1);
        made_before_migrations(&old, 2);
        let before = rows(&new);
        migrated_to(&new, 2);
        assert_eq!(schema(&new), schema(&old));
        assert_eq!(user_version(&new), 2);
        let mut after = rows(&new);
        assert_eq!(after.remove("removals"), Some(vec![]));
        assert_eq!(after.remove("sqlite_sequence"), Some(vec![]));
        assert_eq!(after, before);
        // A claim goes with its pending row.
        let conn = Connection::open(&new).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute_batch(
            "INSERT INTO removals (pending, expires) VALUES (1, 0);
             DELETE FROM pending_deletes WHERE id = 1;",
        )
        .unwrap();
        let claims: i64 = conn
            .query_row("SELECT count(*) FROM removals", [], |r| r.get(0))
            .unwrap();
        assert_eq!(claims, 0);
    }

    /// The columns of users and api_keys that catalogs before step 3 had.
    const OLD_COLUMNS: &[(&str, &str)] = &[
        ("users", "name, created"),
        ("api_keys", "id, user, secret, rights, created, revoked"),
    ];

    #[test]
    fn step_3_adds_roles_groups_and_expiry_and_keeps_every_row() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("catalog.sqlite");
        let old_keys = made_before_migrations(&path, 2);
        let before = rows(&path);
        migrated_to(&path, 3);
        assert_eq!(user_version(&path), 3);
        let mut after = rows_with(&path, OLD_COLUMNS);
        assert_eq!(after.remove("groups"), Some(vec![]));
        assert_eq!(after.remove("group_members"), Some(vec![]));
        assert_eq!(after, before);
        // Users become enabled editors without a password, updated when created; keys never
        // expire and keep their rights.
        let conn = Connection::open(&path).unwrap();
        let users: Vec<(String, String, Option<String>, i64, i64, i64)> = conn
            .prepare("SELECT name, role, password_hash, disabled, created, updated FROM users ORDER BY name")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            users,
            [
                ("alice".into(), "editor".into(), None, 0, 1000, 1000),
                ("bob".into(), "editor".into(), None, 0, 2000, 2000)
            ]
        );
        let expiring: i64 = conn
            .query_row(
                "SELECT count(*) FROM api_keys WHERE expires IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(expiring, 0);
        drop(conn);
        let c = Catalog::open(&path).unwrap();
        for k in &old_keys {
            let key = c.key(k.id).unwrap().unwrap();
            assert_eq!(
                (
                    key.rights,
                    key.revoked.is_some(),
                    key.expires,
                    key.user_disabled
                ),
                (k.rights, k.revoked, None, false),
                "{}",
                k.id
            );
        }
        // The new constraints hold.
        let conn = Connection::open(&path).unwrap();
        assert!(
            conn.execute("UPDATE users SET role = 'root' WHERE name = 'bob'", [])
                .is_err()
        );
    }

    /// The grants step, found by what it does (its number depends on the steps before it).
    fn grants_step() -> usize {
        MIGRATIONS
            .iter()
            .position(|m| m.what.starts_with("grants"))
            .expect("a grants step")
    }

    #[test]
    fn the_grants_step_adds_empty_tables_and_keeps_every_row_and_key() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("catalog.sqlite");
        let old_keys = made_before_migrations(&path, 2);
        // The catalog as the release before the grants step left it, whatever came before.
        migrated_to(&path, grants_step());
        let before = rows(&path);
        migrated_to(&path, grants_step() + 1);
        assert_eq!(user_version(&path), grants_step() as i64 + 1);
        let mut after = rows(&path);
        assert_eq!(after.remove("grants"), Some(vec![]));
        assert_eq!(after.remove("object_settings"), Some(vec![]));
        assert_eq!(after, before, "every original, user and key as it was");
        // Keys keep their rights, users their (editor) role: what a key did, it still does
        // (the editor role is an implicit edit grant at the root; see usecases::permissions).
        migrated_to(&path, MIGRATIONS.len());
        let c = Catalog::open(&path).unwrap();
        for k in &old_keys {
            let key = c.key(k.id).unwrap().unwrap();
            assert_eq!((key.rights, key.revoked.is_some()), (k.rights, k.revoked));
            let user = c.credentials(k.user).unwrap().unwrap();
            assert_eq!(user.role, Role::Editor);
        }
        assert!(
            c.chain("category:/travel/norway")
                .unwrap()
                .iter()
                .all(|n| n.grants.is_empty() && n.inherit)
        );
        // The privilege is checked by the table.
        let conn = Connection::open(&path).unwrap();
        assert!(
            conn.execute(
                "INSERT INTO grants VALUES ('category:/', 'public', 'own', NULL, 0)",
                []
            )
            .is_err()
        );
    }

    #[test]
    fn step_4_adds_sessions_and_keeps_every_row() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("catalog.sqlite");
        made_before_migrations(&path, 2);
        migrated_to(&path, 3);
        // People as step 3 knows them: a role, a password, a group, a disabled user.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "UPDATE users SET role = 'admin', password_hash = '$argon2id$x' WHERE name = 'alice';
                 UPDATE users SET disabled = 1 WHERE name = 'bob';
                 INSERT INTO groups (name, created) VALUES ('darkroom', 5);
                 INSERT INTO group_members (grp, user, added) VALUES ('darkroom', 'alice', 6);",
            )
            .unwrap();
        let before = rows(&path);
        migrated_to(&path, 4);
        assert_eq!(user_version(&path), 4);
        let mut after = rows(&path);
        assert_eq!(after.remove("sessions"), Some(vec![]));
        assert_eq!(after, before);
        // And the catalog reads them as before, with a session beside them.
        let mut c = Catalog::open(&path).unwrap();
        let alice = c.credentials("alice").unwrap().unwrap();
        assert_eq!(
            (alice.role, alice.disabled, alice.groups),
            (Role::Admin, false, vec!["darkroom".to_string()])
        );
        assert!(c.credentials("bob").unwrap().unwrap().disabled);
        let record = crate::io::catalog::SessionRecord {
            user: "alice".into(),
            method: "local".into(),
            groups: vec![],
            roles: vec![],
            catalog_user: true,
            csrf: "0".repeat(64),
            created: 1,
            last_seen: 1,
        };
        c.insert_session("h", &record, None, 0, 0).unwrap();
        let (_, now) = c.session("h").unwrap().unwrap();
        assert_eq!(now.unwrap().groups, ["darkroom"]);
    }

    /// The names of the indexes made on `images` (not SQLite's own).
    fn indexes(path: &Path) -> Vec<String> {
        Connection::open(path)
            .unwrap()
            .prepare(
                "SELECT name FROM sqlite_master
                 WHERE type = 'index' AND tbl_name = 'images' AND sql IS NOT NULL ORDER BY name",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn step_6_adds_the_browse_indexes_and_keeps_every_row() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("catalog.sqlite");
        made_before_migrations(&path, 2);
        migrated_to(&path, 5);
        let before = rows(&path);
        assert!(!indexes(&path).contains(&"images_category_name".to_string()));
        migrated_to(&path, 6);
        assert_eq!(user_version(&path), 6);
        assert_eq!(rows(&path), before, "every row as it was");
        assert_eq!(
            indexes(&path),
            [
                "images_category",
                "images_category_created",
                "images_category_name",
                "images_listing"
            ]
        );
        // The name index holds the title or the id, and the catalog lists by it.
        let conn = Connection::open(&path).unwrap();
        let names: Vec<String> = conn
            .prepare(&format!(
                "SELECT {} FROM images INDEXED BY images_category_name ORDER BY category, 1 COLLATE NOCASE",
                super::super::browse::NAME_KEY
            ))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(names.len(), 3);
        drop(conn);
        let c = Catalog::open(&path).unwrap();
        let page = c
            .listing(
                &["/travel/norway".into()],
                crate::domain::cursor::Order::Name,
                None,
                10,
            )
            .unwrap();
        assert_eq!(page.len(), 1);
    }

    #[test]
    fn step_7_stores_the_categories_with_their_counts_and_keeps_every_row() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("catalog.sqlite");
        made_before_migrations(&path, 2);
        migrated_to(&path, 6);
        // More images in one category, and none in the root: the root gets a row anyway.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "UPDATE images SET category = '/travel' WHERE category = '/';
             UPDATE images_fts SET category = '/travel' WHERE category = '/';",
        )
        .unwrap();
        drop(conn);
        let before = rows(&path);
        migrated_to(&path, 7);
        assert_eq!(user_version(&path), 7);
        let mut after = rows(&path);
        assert_eq!(
            after.remove("categories"),
            Some(vec![
                "[Text(\"/\"), Integer(0)]".to_string(),
                "[Text(\"/travel\"), Integer(2)]".to_string(),
                "[Text(\"/travel/norway\"), Integer(1)]".to_string(),
            ])
        );
        assert_eq!(after, before, "every other row as it was");
        // The tree reads the table, and the triggers keep it: a delete, a move, an insert.
        let mut c = Catalog::open(&path).unwrap();
        let tree = |c: &Catalog| -> Vec<(String, u64, u64)> {
            c.categories()
                .unwrap()
                .into_iter()
                .map(|c| (c.path, c.images, c.total))
                .collect()
        };
        let want = |rows: &[(&str, u64, u64)]| -> Vec<(String, u64, u64)> {
            rows.iter()
                .map(|(p, i, t)| (p.to_string(), *i, *t))
                .collect()
        };
        assert_eq!(
            tree(&c),
            want(&[("/", 0, 3), ("/travel", 2, 3), ("/travel/norway", 1, 1)])
        );
        c.delete(&id(2)).unwrap();
        c.move_to(&id(3), "/new").unwrap();
        assert_eq!(
            tree(&c),
            want(&[
                ("/", 0, 2),
                ("/new", 1, 1),
                ("/travel", 0, 1),
                ("/travel/norway", 1, 1)
            ])
        );
    }

    #[test]
    fn the_below_step_adds_its_indexes_drops_the_redundant_one_and_keeps_every_row() {
        // Found by what it does: its number depends on the steps merged before it.
        let step = MIGRATIONS
            .iter()
            .position(|m| m.what.contains("everything below"))
            .expect("the below step");
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("catalog.sqlite");
        made_before_migrations(&path, 2);
        migrated_to(&path, step);
        let before = rows(&path);
        assert!(indexes(&path).contains(&"images_listing".to_string()));
        migrated_to(&path, step + 1);
        assert_eq!(user_version(&path), step as i64 + 1);
        assert_eq!(rows(&path), before, "every row as it was");
        let now = indexes(&path);
        assert!(!now.contains(&"images_listing".to_string()), "{now:?}");
        for index in ["images_created_category", "images_name_category"] {
            assert!(now.contains(&index.to_string()), "{index}: {now:?}");
        }
        // The catalog lists a subtree by them: the three images, newest first and by name.
        migrated_to(&path, MIGRATIONS.len());
        let c = Catalog::open(&path).unwrap();
        for order in [
            crate::domain::cursor::Order::Newest,
            crate::domain::cursor::Order::Name,
        ] {
            let page = c.listing_below("/", &[], order, None, 10).unwrap();
            assert_eq!(page.len(), 3, "{order:?}");
        }
    }

    #[test]
    fn a_new_catalog_has_the_schema_of_an_upgraded_one() {
        let t = tempfile::tempdir().unwrap();
        let (new, old) = (t.path().join("new.sqlite"), t.path().join("old.sqlite"));
        drop(Catalog::open(&new).unwrap());
        made_before_migrations(&old, 2);
        drop(Catalog::open(&old).unwrap());
        assert_eq!(schema(&new), schema(&old));
        assert_eq!(user_version(&new), MIGRATIONS.len() as i64);
    }

    #[test]
    fn catalogs_made_before_migrations_open_with_every_row_and_right() {
        for version in [1, 2] {
            let t = tempfile::tempdir().unwrap();
            let path = t.path().join("catalog.sqlite");
            let old_keys = made_before_migrations(&path, version);
            let mut before = rows(&path);
            let c = Catalog::open(&path).unwrap();
            assert_eq!(user_version(&path), MIGRATIONS.len() as i64, "v{version}");
            // Rows, as read by the new code.
            let keys: Vec<(String, String, Rights, String, bool)> = c
                .keys()
                .unwrap()
                .into_iter()
                .map(|k| {
                    let secret = k.secret.expose().to_string();
                    (k.id, k.user, k.rights, secret, k.revoked.is_some())
                })
                .collect();
            let mut want: Vec<_> = old_keys
                .iter()
                .map(|k| {
                    let (id, user) = (k.id.to_string(), k.user.to_string());
                    (id, user, k.rights, k.secret.clone(), k.revoked)
                })
                .collect();
            want.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
            assert_eq!(keys, want, "v{version}");
            let users = c.users().unwrap();
            let user = |name: &str, created, keys| User {
                name: name.into(),
                role: Role::Editor,
                has_password: false,
                disabled: false,
                groups: vec![],
                created,
                updated: created,
                keys,
            };
            assert_eq!(users, [user("alice", 1000, 1), user("bob", 2000, 1)]);
            let first = c.get(&id(1)).unwrap().unwrap();
            assert_eq!(
                (first.owner.as_deref(), first.category.as_str(), first.width),
                (Some("alice"), "/travel/norway", 641)
            );
            assert_eq!(first.meta["camera"]["make"], "Fujifilm");
            assert_eq!((first.created, first.updated), (3001, 3501));
            let found = c
                .search(&Query {
                    q: Some("fjord".into()),
                    ..Query::default()
                })
                .unwrap();
            assert_eq!((found.total, &found.items[0].id), (1, &id(1)));
            let categories = c.categories().unwrap();
            assert_eq!(
                categories[1],
                Category {
                    path: "/travel".into(),
                    images: 1,
                    total: 2
                }
            );
            let pending: Vec<(Doomed, String)> = c
                .pending()
                .unwrap()
                .into_iter()
                .map(|p| (p.what, p.ext))
                .collect();
            assert_eq!(pending.len(), 3, "v{version}");
            assert_eq!(pending[2], (Doomed::Upload, "gif".into()));
            drop(c);
            // And every row, byte for byte (in the columns they had).
            let mut after = rows_with(&path, OLD_COLUMNS);
            assert_eq!(after.remove("groups"), Some(vec![]));
            assert_eq!(after.remove("group_members"), Some(vec![]));
            assert_eq!(after.remove("sessions"), Some(vec![]));
            assert_eq!(after.remove("grants"), Some(vec![]));
            assert_eq!(after.remove("object_settings"), Some(vec![]));
            assert_eq!(
                after.remove("categories"),
                Some(vec![
                    "[Text(\"/\"), Integer(1)]".to_string(),
                    "[Text(\"/travel\"), Integer(1)]".to_string(),
                    "[Text(\"/travel/norway\"), Integer(1)]".to_string(),
                ]),
                "v{version}"
            );
            if version == 1 {
                assert_eq!(after.remove("removals"), Some(vec![]));
                assert_eq!(after.remove("sqlite_sequence"), Some(vec![]));
            } else {
                assert_eq!(before["removals"].len(), 1);
            }
            assert_eq!(after, std::mem::take(&mut before), "v{version}");
        }
    }

    #[test]
    fn a_catalog_from_a_newer_imgserv_is_refused_untouched() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("catalog.sqlite");
        made_before_migrations(&path, 2);
        let newer = MIGRATIONS.len() as i64 + 1;
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let before = rows(&path);
        let err = Catalog::open(&path).err().unwrap();
        assert!(
            matches!(err, CatalogError::TooNew { found, known } if found == newer && known == newer - 1),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this imgserv"), "{err}");
        assert_eq!((rows(&path), user_version(&path)), (before, newer));
    }
}
