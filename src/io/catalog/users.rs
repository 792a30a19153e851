//! Users: who holds API keys and who may log in with a local password, with a role and a
//! disabled flag. Groups are `groups`'; password hashing and checking are
//! `usecases::passwords`' (this module stores the PHC string it is given, and never sees a
//! password).

use std::fmt;

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::{CatalogError, SqliteCatalog, Users, collect, now_ms, shorten};

/// What a user may do across the installation, before any per-object grant (the domain's
/// roles, stored by name).
pub use crate::domain::principal::Role;

/// A user as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Whether the user has a local password (else they log in elsewhere, or only hold keys).
    pub has_password: bool,
    /// A disabled user cannot log in and their keys are refused.
    pub disabled: bool,
    /// Their groups, by name.
    pub groups: Vec<String>,
    /// Unix time in milliseconds.
    pub created: i64,
    /// Last change of role, password or disabled flag, in unix milliseconds.
    pub updated: i64,
    /// Keys not revoked (expired ones included).
    pub keys: u32,
}

/// What a local login checks: the user's stored password hash, flag, role and groups.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub name: String,
    pub role: Role,
    /// The argon2id PHC string; `None` when the user has no local password.
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub groups: Vec<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("has_password", &self.password_hash.is_some())
            .field("disabled", &self.disabled)
            .field("groups", &self.groups)
            .finish()
    }
}

impl Users for SqliteCatalog {
    fn add_user_with(
        &mut self,
        name: &str,
        role: Role,
        password_hash: Option<&str>,
    ) -> Result<User, CatalogError> {
        check_name(name)?;
        let created = now_ms();
        let added = self
            .conn
            .prepare_cached(
                "INSERT INTO users (name, created, updated, role, password_hash)
                 VALUES (?1, ?2, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, created, role.as_str(), password_hash])?;
        if added == 0 {
            return Err(CatalogError::UserExists(name.to_string()));
        }
        Ok(User {
            name: name.to_string(),
            role,
            has_password: password_hash.is_some(),
            disabled: false,
            groups: Vec::new(),
            created,
            updated: created,
            keys: 0,
        })
    }

    fn set_password(&mut self, name: &str, hash: Option<&str>) -> Result<(), CatalogError> {
        self.update_user(name, "password_hash = ?2", hash)
    }

    fn set_disabled(&mut self, name: &str, disabled: bool) -> Result<(), CatalogError> {
        self.update_user(name, "disabled = ?2", disabled)
    }

    fn set_role(&mut self, name: &str, role: Role) -> Result<(), CatalogError> {
        self.update_user(name, "role = ?2", role.as_str())
    }

    fn users(&self) -> Result<Vec<User>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.name, u.role, u.password_hash IS NOT NULL, u.disabled, u.created, u.updated,
                    (SELECT count(*) FROM api_keys k WHERE k.user = u.name AND k.revoked IS NULL),
                    (SELECT group_concat(grp, char(10)) FROM
                        (SELECT grp FROM group_members m WHERE m.user = u.name ORDER BY grp))
             FROM users u ORDER BY u.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(User {
                name: r.get(0)?,
                role: role_column(r, 1)?,
                has_password: r.get(2)?,
                disabled: r.get(3)?,
                created: r.get(4)?,
                updated: r.get(5)?,
                keys: r.get(6)?,
                groups: lines(r.get(7)?),
            })
        })?;
        collect(rows)
    }

    fn credentials(&self, name: &str) -> Result<Option<Credentials>, CatalogError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT u.name, u.role, u.password_hash, u.disabled,
                        (SELECT group_concat(grp, char(10)) FROM
                            (SELECT grp FROM group_members m WHERE m.user = u.name ORDER BY grp))
                 FROM users u WHERE u.name = ?1",
            )?
            .query_row(params![name], |r| {
                Ok(Credentials {
                    name: r.get(0)?,
                    role: role_column(r, 1)?,
                    password_hash: r.get(2)?,
                    disabled: r.get(3)?,
                    groups: lines(r.get(4)?),
                })
            })
            .optional()?)
    }

    fn del_user(&mut self, name: &str) -> Result<u64, CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let keys = tx
            .prepare_cached("DELETE FROM api_keys WHERE user = ?1")?
            .execute(params![name])?;
        tx.prepare_cached("DELETE FROM group_members WHERE user = ?1")?
            .execute(params![name])?;
        // Their sessions end too (a user of the same name added later is someone else).
        tx.prepare_cached("DELETE FROM sessions WHERE user = ?1")?
            .execute(params![name])?;
        // A later user of the same name must not find the grants of this one.
        tx.prepare_cached("DELETE FROM grants WHERE grantee = 'user:' || ?1")?
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
}

impl SqliteCatalog {
    fn update_user(
        &mut self,
        name: &str,
        set: &str,
        value: impl rusqlite::ToSql,
    ) -> Result<(), CatalogError> {
        let changed = self
            .conn
            .prepare_cached(&format!(
                "UPDATE users SET {set}, updated = ?3 WHERE name = ?1"
            ))?
            .execute(params![name, value, now_ms()])?;
        if changed == 0 {
            return Err(CatalogError::UserNotFound(name.to_string()));
        }
        Ok(())
    }
}

fn role_column(r: &rusqlite::Row, col: usize) -> rusqlite::Result<Role> {
    let text: String = r.get(col)?;
    text.parse()
        .map_err(|_| super::conversion(col, "role: admin, editor or viewer"))
}

/// Names joined by newlines (never in a name) as `group_concat` gives them.
fn lines(joined: Option<String>) -> Vec<String> {
    joined
        .map(|s| s.split('\n').map(str::to_string).collect())
        .unwrap_or_default()
}

/// User and group names: 1 to 64 of `[A-Za-z0-9._@-]`.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

fn check_name(name: &str) -> Result<(), CatalogError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(CatalogError::BadUserName(format!(
            "{}: expected 1 to 64 of A-Z a-z 0-9 . _ @ -",
            shorten(name)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::catalog::testing::*;

    #[test]
    fn roles_passwords_and_the_disabled_flag() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let plain = c.add_user("keys-only").unwrap();
        assert_eq!((plain.role, plain.has_password), (Role::Editor, false));
        let hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA";
        c.add_user_with("vera", Role::Viewer, Some(hash)).unwrap();
        assert!(matches!(
            c.add_user_with("vera", Role::Admin, None),
            Err(CatalogError::UserExists(_))
        ));
        let creds = c.credentials("vera").unwrap().unwrap();
        assert_eq!(
            (creds.role, creds.password_hash.as_deref(), creds.disabled),
            (Role::Viewer, Some(hash), false)
        );
        assert!(
            !format!("{creds:?}").contains("argon2"),
            "Debug hides the hash"
        );
        assert_eq!(c.credentials("nobody").unwrap(), None);

        c.set_disabled("vera", true).unwrap();
        c.set_role("vera", Role::Admin).unwrap();
        c.set_password("vera", None).unwrap();
        let creds = c.credentials("vera").unwrap().unwrap();
        assert_eq!(
            (creds.role, creds.password_hash, creds.disabled),
            (Role::Admin, None, true)
        );
        for missing in [
            c.set_disabled("nobody", true),
            c.set_password("nobody", Some(hash)),
            c.set_role("nobody", Role::Viewer),
        ] {
            assert!(matches!(missing, Err(CatalogError::UserNotFound(_))));
        }
        let users = c.users().unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(
            (users[1].name.as_str(), users[1].role, users[1].disabled),
            ("vera", Role::Admin, true)
        );
        assert!(users[1].updated >= users[1].created);
    }

    #[test]
    fn roles_parse_and_print() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(r.to_string(), r.as_str());
        }
        for bad in ["", "Admin", "root", "editor "] {
            assert!(bad.parse::<Role>().is_err(), "{bad:?}");
        }
    }
}
