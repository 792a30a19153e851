//! Users: the names API keys belong to.

use rusqlite::{TransactionBehavior, params};
use serde::Serialize;

use super::{Catalog, CatalogError, collect, now_ms, shorten};

/// A user who may hold API keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    /// Unix time in milliseconds.
    pub created: i64,
    /// Keys not revoked.
    pub keys: u32,
}

impl Catalog {
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
