//! Login sessions in the catalog (`[sessions] store = "catalog"`): rows found by the hash of
//! their token, with the user's current catalog row joined in the same read. What a session
//! means (timeouts, the principal, CSRF) is `usecases::session`'s; this module only stores.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::users::Role;
use super::{CatalogError, Sessions, SqliteCatalog};

/// A session as stored (also what the memcached store keeps, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: String,
    /// How they logged in (`Method::as_str`).
    pub method: String,
    /// The login method's own groups (a directory's), beyond the catalog's.
    pub groups: Vec<String>,
    /// The login method's own roles, beyond the catalog's (`Role::as_str`).
    pub roles: Vec<String>,
    /// Whether the user had a catalog row at login (deleting it ends the session).
    pub catalog_user: bool,
    pub csrf: String,
    /// Unix time in milliseconds.
    pub created: i64,
    /// Unix time in milliseconds, updated lazily.
    pub last_seen: i64,
}

/// A user's catalog row as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNow {
    pub role: Role,
    pub disabled: bool,
    pub groups: Vec<String>,
}

/// The one read of a request with a session: the session by its token's hash (the primary key
/// of a table without rowid), the user's row by its primary key, the groups by
/// `group_members_user`. `EXPLAIN QUERY PLAN` is checked by a test below.
pub const LOOKUP: &str = "
SELECT s.user, s.method, s.groups, s.roles, s.catalog_user, s.csrf, s.created, s.last_seen,
       u.name IS NOT NULL, u.role, u.disabled,
       (SELECT group_concat(grp, char(10)) FROM group_members m WHERE m.user = s.user)
FROM sessions s LEFT JOIN users u ON u.name = s.user
WHERE s.token_hash = ?1";

fn split(joined: String) -> Vec<String> {
    joined
        .split('\n')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Sessions for SqliteCatalog {
    fn session(
        &self,
        token_hash: &str,
    ) -> Result<Option<(SessionRecord, Option<UserNow>)>, CatalogError> {
        Ok(self
            .conn
            .prepare_cached(LOOKUP)?
            .query_row(params![token_hash], |r| {
                let record = SessionRecord {
                    user: r.get(0)?,
                    method: r.get(1)?,
                    groups: split(r.get(2)?),
                    roles: split(r.get(3)?),
                    catalog_user: r.get(4)?,
                    csrf: r.get(5)?,
                    created: r.get(6)?,
                    last_seen: r.get(7)?,
                };
                let now = if r.get::<_, bool>(8)? {
                    let role: String = r.get(9)?;
                    Some(UserNow {
                        role: role
                            .parse()
                            .map_err(|_| super::conversion(9, "role: admin, editor or viewer"))?,
                        disabled: r.get(10)?,
                        groups: r
                            .get::<_, Option<String>>(11)?
                            .map(split)
                            .unwrap_or_default(),
                    })
                } else {
                    None
                };
                Ok((record, now))
            })
            .optional()?)
    }

    fn insert_session(
        &mut self,
        token_hash: &str,
        s: &SessionRecord,
        replaces: Option<&str>,
        idle_before: i64,
        created_before: i64,
    ) -> Result<u64, CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut gone = 0;
        if let Some(old) = replaces {
            gone += tx
                .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
                .execute(params![old])?;
        }
        gone += tx
            .prepare_cached("DELETE FROM sessions WHERE last_seen < ?1 OR created < ?2")?
            .execute(params![idle_before, created_before])?;
        tx.prepare_cached(
            "INSERT INTO sessions (token_hash, user, method, groups, roles, catalog_user, csrf,
                                   created, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            token_hash,
            s.user,
            s.method,
            s.groups.join("\n"),
            s.roles.join("\n"),
            s.catalog_user,
            s.csrf,
            s.created,
            s.last_seen
        ])?;
        tx.commit()?;
        Ok(gone as u64)
    }

    fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), CatalogError> {
        self.conn
            .prepare_cached("UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1")?
            .execute(params![token_hash, now])?;
        Ok(())
    }

    fn delete_session(&self, token_hash: &str) -> Result<bool, CatalogError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
            .execute(params![token_hash])?
            > 0)
    }

    fn sweep_sessions(&self, idle_before: i64, created_before: i64) -> Result<u64, CatalogError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM sessions WHERE last_seen < ?1 OR created < ?2")?
            .execute(params![idle_before, created_before])? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::catalog::Catalog;

    fn record(user: &str, at: i64) -> SessionRecord {
        SessionRecord {
            user: user.into(),
            method: "local".into(),
            groups: vec!["ldap-a".into()],
            roles: vec![],
            catalog_user: true,
            csrf: "c".repeat(64),
            created: at,
            last_seen: at,
        }
    }

    #[test]
    fn a_session_is_read_with_its_users_current_row() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&t.path().join("c.sqlite")).unwrap();
        c.add_user("ann").unwrap();
        c.add_group("darkroom").unwrap();
        c.add_member("darkroom", "ann").unwrap();
        c.insert_session("h1", &record("ann", 1000), None, 0, 0)
            .unwrap();
        let (rec, now) = c.session("h1").unwrap().unwrap();
        assert_eq!(rec, record("ann", 1000));
        let now = now.unwrap();
        assert!(!now.disabled);
        assert_eq!(now.groups, ["darkroom"]);
        assert!(c.session("h2").unwrap().is_none());
        // A user without a catalog row (a directory's).
        c.insert_session("h3", &record("zed", 1000), None, 0, 0)
            .unwrap();
        assert_eq!(c.session("h3").unwrap().unwrap().1, None);
        c.touch_session("h1", 5000).unwrap();
        assert_eq!(c.session("h1").unwrap().unwrap().0.last_seen, 5000);
        assert!(c.delete_session("h1").unwrap());
        assert!(!c.delete_session("h1").unwrap());
    }

    #[test]
    fn inserting_replaces_the_old_session_and_sweeps_expired_ones() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&t.path().join("c.sqlite")).unwrap();
        c.insert_session("old", &record("a", 9000), None, 0, 0)
            .unwrap();
        c.insert_session("idle", &record("a", 100), None, 0, 0)
            .unwrap();
        let mut aged = record("a", 50);
        aged.last_seen = 9500;
        c.insert_session("aged", &aged, None, 0, 0).unwrap();
        let gone = c
            .insert_session("new", &record("a", 10_000), Some("old"), 1000, 60)
            .unwrap();
        assert_eq!(gone, 3);
        assert!(c.session("new").unwrap().is_some());
        for h in ["old", "idle", "aged"] {
            assert!(c.session(h).unwrap().is_none(), "{h}");
        }
        assert_eq!(c.sweep_sessions(20_000, 0).unwrap(), 1);
    }

    #[test]
    fn the_lookup_is_one_search_of_each_index() {
        let t = tempfile::tempdir().unwrap();
        let c = SqliteCatalog::open(&t.path().join("c.sqlite")).unwrap();
        let plan: Vec<String> = c
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {LOOKUP}"))
            .unwrap()
            .query_map(["x"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        println!("{}", plan.join("\n"));
        assert!(plan.iter().all(|l| !l.starts_with("SCAN")), "{plan:?}");
        assert!(
            plan.iter()
                .any(|l| l.starts_with("SEARCH s USING PRIMARY KEY (token_hash=?)")),
            "{plan:?}"
        );
        assert!(
            plan.iter().any(|l| l.contains("SEARCH u USING INDEX")),
            "{plan:?}"
        );
        assert!(
            plan.iter()
                .any(|l| l.contains("SEARCH m USING COVERING INDEX group_members_user")),
            "{plan:?}"
        );
    }
}
