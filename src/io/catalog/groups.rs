//! Groups of users: named sets that grants (and LDAP's group mapping) will refer to. A group
//! holds no rights of its own here; what a member may do is decided above the catalog.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::users::valid_name;
use super::{CatalogError, Groups, SqliteCatalog, collect, now_ms, shorten};

/// A group as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub name: String,
    /// Unix time in milliseconds.
    pub created: i64,
    /// Member names, sorted.
    pub members: Vec<String>,
}

impl Groups for SqliteCatalog {
    fn add_group(&mut self, name: &str) -> Result<Group, CatalogError> {
        if !valid_name(name) {
            return Err(CatalogError::BadGroupName(format!(
                "{}: expected 1 to 64 of A-Z a-z 0-9 . _ @ -",
                shorten(name)
            )));
        }
        let created = now_ms();
        let added = self
            .conn
            .prepare_cached(
                "INSERT INTO groups (name, created) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, created])?;
        if added == 0 {
            return Err(CatalogError::GroupExists(name.to_string()));
        }
        Ok(Group {
            name: name.to_string(),
            created,
            members: Vec::new(),
        })
    }

    fn del_group(&mut self, name: &str) -> Result<u64, CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let members = tx
            .prepare_cached("DELETE FROM group_members WHERE grp = ?1")?
            .execute(params![name])?;
        let groups = tx
            .prepare_cached("DELETE FROM groups WHERE name = ?1")?
            .execute(params![name])?;
        tx.prepare_cached("DELETE FROM grants WHERE grantee = 'group:' || ?1")?
            .execute(params![name])?;
        if groups == 0 {
            return Err(CatalogError::GroupNotFound(name.to_string()));
        }
        tx.commit()?;
        Ok(members as u64)
    }

    fn groups(&self) -> Result<Vec<Group>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT g.name, g.created,
                    (SELECT group_concat(user, char(10)) FROM
                        (SELECT user FROM group_members m WHERE m.grp = g.name ORDER BY user))
             FROM groups g ORDER BY g.name",
        )?;
        let rows = stmt.query_map([], |r| {
            let members: Option<String> = r.get(2)?;
            Ok(Group {
                name: r.get(0)?,
                created: r.get(1)?,
                members: members
                    .map(|s| s.split('\n').map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        })?;
        collect(rows)
    }

    fn add_member(&mut self, group: &str, user: &str) -> Result<bool, CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        exists(&tx, "SELECT 1 FROM groups WHERE name = ?1", group)?
            .then_some(())
            .ok_or_else(|| CatalogError::GroupNotFound(group.to_string()))?;
        exists(&tx, "SELECT 1 FROM users WHERE name = ?1", user)?
            .then_some(())
            .ok_or_else(|| CatalogError::UserNotFound(user.to_string()))?;
        let added = tx
            .prepare_cached(
                "INSERT INTO group_members (grp, user, added) VALUES (?1, ?2, ?3)
                 ON CONFLICT (grp, user) DO NOTHING",
            )?
            .execute(params![group, user, now_ms()])?;
        tx.commit()?;
        Ok(added == 1)
    }

    fn del_member(&mut self, group: &str, user: &str) -> Result<(), CatalogError> {
        let removed = self
            .conn
            .prepare_cached("DELETE FROM group_members WHERE grp = ?1 AND user = ?2")?
            .execute(params![group, user])?;
        if removed == 1 {
            return Ok(());
        }
        if !exists(&self.conn, "SELECT 1 FROM groups WHERE name = ?1", group)? {
            return Err(CatalogError::GroupNotFound(group.to_string()));
        }
        if !exists(&self.conn, "SELECT 1 FROM users WHERE name = ?1", user)? {
            return Err(CatalogError::UserNotFound(user.to_string()));
        }
        Err(CatalogError::NotMember {
            group: group.to_string(),
            user: user.to_string(),
        })
    }
}

fn exists(conn: &rusqlite::Connection, sql: &str, name: &str) -> Result<bool, CatalogError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![name], |_| Ok(()))
        .optional()?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::catalog::testing::*;

    #[test]
    fn groups_and_members() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        c.add_user("alice").unwrap();
        c.add_user("bob").unwrap();
        c.add_group("staff").unwrap();
        c.add_group("editors").unwrap();
        assert!(matches!(
            c.add_group("staff"),
            Err(CatalogError::GroupExists(_))
        ));
        for bad in ["", "a b", "x/y", &"g".repeat(65)] {
            assert!(
                matches!(c.add_group(bad), Err(CatalogError::BadGroupName(_))),
                "{bad:?}"
            );
        }
        assert!(c.add_member("staff", "bob").unwrap());
        assert!(c.add_member("staff", "alice").unwrap());
        assert!(!c.add_member("staff", "alice").unwrap(), "already a member");
        assert!(c.add_member("editors", "alice").unwrap());
        assert!(matches!(
            c.add_member("nope", "alice"),
            Err(CatalogError::GroupNotFound(_))
        ));
        assert!(matches!(
            c.add_member("staff", "carol"),
            Err(CatalogError::UserNotFound(_))
        ));
        let groups = c.groups().unwrap();
        assert_eq!(
            groups
                .iter()
                .map(|g| (g.name.as_str(), g.members.clone()))
                .collect::<Vec<_>>(),
            [
                ("editors", vec!["alice".to_string()]),
                ("staff", vec!["alice".to_string(), "bob".to_string()])
            ]
        );
        assert_eq!(c.users().unwrap()[0].groups, ["editors", "staff"]);
        assert_eq!(
            c.credentials("alice").unwrap().unwrap().groups,
            ["editors", "staff"]
        );

        c.del_member("staff", "bob").unwrap();
        assert!(matches!(
            c.del_member("staff", "bob"),
            Err(CatalogError::NotMember { .. })
        ));
        assert!(matches!(
            c.del_member("nope", "bob"),
            Err(CatalogError::GroupNotFound(_))
        ));
        assert!(matches!(
            c.del_member("staff", "carol"),
            Err(CatalogError::UserNotFound(_))
        ));
        // Deleting a user drops their memberships; deleting a group keeps its users.
        c.del_user("alice").unwrap();
        assert_eq!(c.groups().unwrap()[1].members, Vec::<String>::new());
        c.add_member("editors", "bob").unwrap();
        assert_eq!(c.del_group("editors").unwrap(), 1);
        assert!(matches!(
            c.del_group("editors"),
            Err(CatalogError::GroupNotFound(_))
        ));
        assert_eq!(c.users().unwrap()[0].groups, Vec::<String>::new());
        assert_eq!(c.users().unwrap()[0].name, "bob");
    }
}
