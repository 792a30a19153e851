//! Grants and per-object settings: who holds which privilege on which object, and which
//! objects stop inheritance. Objects are named `category:/PATH` (the path normalised like a
//! category; `category:/` is the root). What the grants mean is the domain's
//! (`domain::permission`); this module stores them and reads an object's chain of ancestors
//! in one query.

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::{CatalogError, Grants, SqliteCatalog, normalize_category, now_ms, shorten};
use crate::domain::permission::{Grant, Grantee, Node, Privilege};

/// The root of the category tree, as an object name.
pub const ROOT_OBJECT: &str = "category:/";

/// An object's canonical name: `category:` and a normalised category path (`category:/a/b`).
/// Anything else (another kind, a bad path) is [`CatalogError::BadObject`].
pub fn normalize_object(raw: &str) -> Result<String, CatalogError> {
    let Some(path) = raw.strip_prefix("category:") else {
        return Err(CatalogError::BadObject(format!(
            "{}: expected category:/PATH",
            shorten(raw)
        )));
    };
    let path = normalize_category(path)
        .map_err(|e| CatalogError::BadObject(format!("{}: {e}", shorten(raw))))?;
    Ok(category_object(&path))
}

/// The object name of a normalised category path.
pub fn category_object(path: &str) -> String {
    format!("category:{path}")
}

/// The names of a normalised object and its ancestors, the object first, the root last.
fn ancestors(object: &str) -> Vec<String> {
    let path = object.strip_prefix("category:").unwrap_or("/");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    (0..=segments.len())
        .rev()
        .map(|n| category_object(&format!("/{}", segments[..n].join("/"))))
        .collect()
}

/// A grant as stored, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGrant {
    pub object: String,
    pub grant: Grant,
    /// Who granted it (a user name), when known.
    pub granted_by: Option<String>,
    /// Unix time in milliseconds.
    pub created: i64,
}

impl Grants for SqliteCatalog {
    fn chain(&self, object: &str) -> Result<Vec<Node>, CatalogError> {
        let names = ancestors(object);
        let marks = vec!["?"; names.len()].join(", ");
        let sql = format!(
            "SELECT object, grantee, privilege, NULL FROM grants WHERE object IN ({marks})
             UNION ALL
             SELECT object, NULL, NULL, inherit FROM object_settings WHERE object IN ({marks})
             ORDER BY 1, 2"
        );
        let mut nodes: Vec<Node> = names
            .iter()
            .map(|n| Node {
                object: n.clone(),
                grants: Vec::new(),
                inherit: true,
            })
            .collect();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let both = names.iter().chain(names.iter());
        let rows = stmt.query_map(rusqlite::params_from_iter(both), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<bool>>(3)?,
            ))
        })?;
        for row in rows {
            let (object, grantee, privilege, inherit) = row?;
            if let Some(node) = nodes.iter_mut().find(|n| n.object == object) {
                add_row(node, grantee, privilege, inherit)?;
            }
        }
        Ok(nodes)
    }

    fn all_nodes(&self) -> Result<std::collections::HashMap<String, Node>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT object, grantee, privilege, NULL FROM grants
             UNION ALL SELECT object, NULL, NULL, inherit FROM object_settings",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<bool>>(3)?,
            ))
        })?;
        let mut nodes = std::collections::HashMap::new();
        for row in rows {
            let (object, grantee, privilege, inherit) = row?;
            let node = nodes.entry(object.clone()).or_insert_with(|| Node {
                object,
                grants: Vec::new(),
                inherit: true,
            });
            add_row(node, grantee, privilege, inherit)?;
        }
        Ok(nodes)
    }

    fn grants_on(&self, object: &str) -> Result<Vec<StoredGrant>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT grantee, privilege, granted_by, created FROM grants WHERE object = ?1
             ORDER BY grantee",
        )?;
        let rows = stmt.query_map(params![object], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (grantee, privilege, granted_by, created) = row?;
            out.push(StoredGrant {
                object: object.to_string(),
                grant: Grant {
                    grantee: grantee
                        .parse()
                        .map_err(|_| super::bad_column(0, "grantee"))?,
                    privilege: privilege
                        .parse()
                        .map_err(|_| super::bad_column(1, "privilege"))?,
                },
                granted_by,
                created,
            });
        }
        Ok(out)
    }

    fn grant(
        &mut self,
        object: &str,
        grant: &Grant,
        granted_by: Option<&str>,
    ) -> Result<(), CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        grantee_exists(&tx, &grant.grantee)?;
        put_grant(&tx, object, grant, granted_by)?;
        tx.commit()?;
        Ok(())
    }

    fn revoke_grant(&mut self, object: &str, grantee: &Grantee) -> Result<(), CatalogError> {
        let removed = self
            .conn
            .prepare_cached("DELETE FROM grants WHERE object = ?1 AND grantee = ?2")?
            .execute(params![object, grantee.to_string()])?;
        if removed == 0 {
            return Err(CatalogError::GrantNotFound {
                object: object.to_string(),
                grantee: grantee.to_string(),
            });
        }
        Ok(())
    }

    fn set_inherit(&mut self, object: &str, inherit: bool) -> Result<(), CatalogError> {
        self.conn
            .prepare_cached(
                "INSERT INTO object_settings (object, inherit) VALUES (?1, ?2)
                 ON CONFLICT (object) DO UPDATE SET inherit = excluded.inherit",
            )?
            .execute(params![object, inherit])?;
        Ok(())
    }

    fn seed_root(&mut self, grants: &[Grant]) -> Result<bool, CatalogError> {
        let marked = |c: &rusqlite::Connection| -> Result<bool, CatalogError> {
            Ok(
                c.prepare_cached("SELECT 1 FROM object_settings WHERE object = ?1")?
                    .query_row(params![ROOT_OBJECT], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        };
        if marked(&self.conn)? {
            return Ok(false);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if marked(&tx)? {
            return Ok(false);
        }
        for grant in grants {
            // A group named in the configuration may not exist yet: stored all the same, it
            // reaches the group's members once it does.
            put_grant(&tx, ROOT_OBJECT, grant, None)?;
        }
        tx.prepare_cached("INSERT INTO object_settings (object, inherit) VALUES (?1, 1)")?
            .execute(params![ROOT_OBJECT])?;
        tx.commit()?;
        Ok(true)
    }
}

/// A row of the chain queries (a grant, or a setting) added to its node.
fn add_row(
    node: &mut Node,
    grantee: Option<String>,
    privilege: Option<String>,
    inherit: Option<bool>,
) -> Result<(), CatalogError> {
    if let Some(inherit) = inherit {
        node.inherit = inherit;
    }
    if let (Some(grantee), Some(privilege)) = (grantee, privilege) {
        node.grants.push(Grant {
            grantee: grantee
                .parse()
                .map_err(|_| super::bad_column(1, "grantee"))?,
            privilege: privilege
                .parse()
                .map_err(|_| super::bad_column(2, "privilege"))?,
        });
    }
    Ok(())
}

/// The names of a normalised object and its ancestors (see [`ancestors`]), for callers that
/// build chains from [`Catalog::all_nodes`].
pub fn object_ancestors(object: &str) -> Vec<String> {
    ancestors(object)
}

/// Inserts or replaces a grant.
pub(super) fn put_grant(
    tx: &Transaction,
    object: &str,
    grant: &Grant,
    granted_by: Option<&str>,
) -> Result<(), CatalogError> {
    tx.prepare_cached(
        "INSERT INTO grants (object, grantee, privilege, granted_by, created)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (object, grantee) DO UPDATE SET privilege = excluded.privilege,
             granted_by = excluded.granted_by, created = excluded.created",
    )?
    .execute(params![
        object,
        grant.grantee.to_string(),
        grant.privilege.as_str(),
        granted_by,
        now_ms()
    ])?;
    Ok(())
}

/// The creator's grant on a category their upload made exist: only when none of its images
/// was there before (`first`), never on the root (the first upload to `/` must not make its
/// uploader an administrator of everything), and never replacing a grant the user holds.
pub(super) fn creator_grant(
    tx: &Transaction,
    category: &str,
    owner: &str,
    privilege: Privilege,
) -> Result<(), CatalogError> {
    if category == "/" {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO grants (object, grantee, privilege, granted_by, created)
         VALUES (?1, ?2, ?3, NULL, ?4) ON CONFLICT (object, grantee) DO NOTHING",
    )?
    .execute(params![
        category_object(category),
        Grantee::User(owner.to_string()).to_string(),
        privilege.as_str(),
        now_ms()
    ])?;
    Ok(())
}

fn grantee_exists(tx: &Transaction, grantee: &Grantee) -> Result<(), CatalogError> {
    let (sql, name, missing): (&str, &str, fn(String) -> CatalogError) = match grantee {
        Grantee::User(n) => (
            "SELECT 1 FROM users WHERE name = ?1",
            n,
            CatalogError::UserNotFound,
        ),
        Grantee::Group(n) => (
            "SELECT 1 FROM groups WHERE name = ?1",
            n,
            CatalogError::GroupNotFound,
        ),
        Grantee::Registered | Grantee::Public => return Ok(()),
    };
    let found = tx
        .prepare_cached(sql)?
        .query_row(params![name], |_| Ok(()))
        .optional()?
        .is_some();
    if found {
        Ok(())
    } else {
        Err(missing(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::io::catalog::testing::*;

    fn g(grantee: &str, privilege: &str) -> Grant {
        Grant {
            grantee: grantee.parse().unwrap(),
            privilege: privilege.parse().unwrap(),
        }
    }

    #[test]
    fn object_names() {
        for (raw, want) in [
            ("category:/", "category:/"),
            ("category:", "category:/"),
            ("category:travel//norway/", "category:/travel/norway"),
        ] {
            assert_eq!(normalize_object(raw).unwrap(), want, "{raw}");
        }
        for bad in ["/travel", "album:3", "category:/a/../b", "Category:/a"] {
            assert!(
                matches!(normalize_object(bad), Err(CatalogError::BadObject(_))),
                "{bad}"
            );
        }
        assert_eq!(
            ancestors("category:/a/b"),
            ["category:/a/b", "category:/a", "category:/"]
        );
        assert_eq!(ancestors("category:/"), ["category:/"]);
    }

    #[test]
    fn grants_chains_and_inheritance() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        c.add_user("ann").unwrap();
        c.add_group("staff").unwrap();
        c.grant("category:/a", &g("user:ann", "view"), Some("root"))
            .unwrap();
        // Granting again replaces.
        c.grant("category:/a", &g("user:ann", "admin"), None)
            .unwrap();
        c.grant("category:/", &g("public", "view"), None).unwrap();
        c.grant("category:/a/b", &g("group:staff", "edit"), None)
            .unwrap();
        c.grant("category:/x", &g("registered", "edit"), None)
            .unwrap();
        c.set_inherit("category:/a/b", false).unwrap();
        let chain = c.chain("category:/a/b").unwrap();
        let shown: Vec<(String, Vec<Grant>, bool)> = chain
            .into_iter()
            .map(|n| (n.object, n.grants, n.inherit))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "category:/a/b".into(),
                    vec![g("group:staff", "edit")],
                    false
                ),
                ("category:/a".into(), vec![g("user:ann", "admin")], true),
                ("category:/".into(), vec![g("public", "view")], true),
            ]
        );
        let all = c.all_nodes().unwrap();
        assert_eq!(all.len(), 4);
        assert!(!all["category:/a/b"].inherit);
        assert_eq!(all["category:/x"].grants, [g("registered", "edit")]);
        c.set_inherit("category:/a/b", true).unwrap();
        assert!(c.chain("category:/a/b").unwrap()[0].inherit);
        let listed = c.grants_on("category:/a").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].granted_by, None);
        // Unknown users and groups are refused; public and registered need no row.
        assert!(matches!(
            c.grant("category:/", &g("user:nobody", "view"), None),
            Err(CatalogError::UserNotFound(_))
        ));
        assert!(matches!(
            c.grant("category:/", &g("group:nope", "view"), None),
            Err(CatalogError::GroupNotFound(_))
        ));
        c.revoke_grant("category:/a", &"user:ann".parse().unwrap())
            .unwrap();
        assert!(matches!(
            c.revoke_grant("category:/a", &"user:ann".parse().unwrap()),
            Err(CatalogError::GrantNotFound { .. })
        ));
        assert!(c.chain("category:/a").unwrap()[0].grants.is_empty());
        // A deleted user's and group's grants go with them.
        c.grant("category:/a", &g("user:ann", "view"), None)
            .unwrap();
        c.del_user("ann").unwrap();
        c.del_group("staff").unwrap();
        assert!(c.grants_on("category:/a").unwrap().is_empty());
        assert!(c.grants_on("category:/a/b").unwrap().is_empty());
    }

    #[test]
    fn the_root_is_seeded_once() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let seed = [g("public", "view"), g("group:staff", "edit")];
        assert!(c.seed_root(&seed).unwrap());
        assert_eq!(c.chain(ROOT_OBJECT).unwrap()[0].grants.len(), 2);
        // Revoking them is the administrator's choice: not seeded again.
        c.revoke_grant(ROOT_OBJECT, &Grantee::Public).unwrap();
        assert!(!c.seed_root(&seed).unwrap());
        assert_eq!(c.chain(ROOT_OBJECT).unwrap()[0].grants.len(), 1);
    }

    #[test]
    fn the_creator_of_a_category_gets_a_grant_with_the_insert() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let admin = Some(Privilege::Admin);
        let mut img = new(1, "/trips", json!({}));
        img.owner = Some("cat".into());
        c.insert_granting(&img, None, admin).unwrap();
        assert_eq!(
            c.grants_on("category:/trips").unwrap()[0].grant,
            g("user:cat", "admin")
        );
        // A second uploader to the same category gets nothing: it existed.
        let mut img = new(2, "/trips", json!({}));
        img.owner = Some("dog".into());
        c.insert_granting(&img, None, admin).unwrap();
        assert_eq!(c.grants_on("category:/trips").unwrap().len(), 1);
        // Never on the root; nothing with "none" or without an owner.
        let mut img = new(3, "/", json!({}));
        img.owner = Some("eel".into());
        c.insert_granting(&img, None, admin).unwrap();
        assert!(c.grants_on(ROOT_OBJECT).unwrap().is_empty());
        let mut img = new(4, "/other", json!({}));
        img.owner = Some("fox".into());
        c.insert_granting(&img, None, None).unwrap();
        let mut img = new(5, "/third", json!({}));
        img.owner = None;
        c.insert_granting(&img, None, admin).unwrap();
        assert!(c.grants_on("category:/other").unwrap().is_empty());
        assert!(c.grants_on("category:/third").unwrap().is_empty());
    }
}
