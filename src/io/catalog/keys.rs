//! API keys and their rights: what a signed request may do.

use std::fmt;
use std::fs;
use std::io::Read;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use super::{CatalogError, Keys, SqliteCatalog, collect, now_ms};

/// What a key may do. Rights are independent: `admin` does not imply `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights(u8);

impl Rights {
    pub const NONE: Rights = Rights(0);
    /// List, search and fetch images and their metadata.
    pub const READ: Rights = Rights(1);
    /// Upload images, change metadata and categories.
    pub const WRITE: Rights = Rights(2);
    /// Delete images.
    pub const DELETE: Rights = Rights(4);
    /// Manage users and keys through the API.
    pub const ADMIN: Rights = Rights(8);
    const NAMES: [(&'static str, Rights); 4] = [
        ("read", Rights::READ),
        ("write", Rights::WRITE),
        ("delete", Rights::DELETE),
        ("admin", Rights::ADMIN),
    ];

    /// Whether every right of `other` is in `self`.
    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// Rights from stored bits; unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Rights {
        Rights(bits & 0x0F)
    }
}

impl std::ops::BitOr for Rights {
    type Output = Rights;
    fn bitor(self, rhs: Rights) -> Rights {
        Rights(self.0 | rhs.0)
    }
}

impl FromStr for Rights {
    type Err = CatalogError;

    /// `read,write,delete,admin` in any order and combination, commas with optional spaces.
    fn from_str(s: &str) -> Result<Rights, CatalogError> {
        let mut rights = Rights::NONE;
        for word in s.split(',').map(str::trim) {
            let Some((_, r)) = Rights::NAMES.iter().find(|(n, _)| *n == word) else {
                let shown: String = word.chars().take(32).collect();
                return Err(CatalogError::BadRights(format!(
                    "unknown right {shown:?} (expected read, write, delete or admin)"
                )));
            };
            rights = rights | *r;
        }
        Ok(rights)
    }
}

impl fmt::Display for Rights {
    /// `read,write`; `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Rights::NAMES
            .iter()
            .filter(|(_, r)| self.contains(*r))
            .map(|(n, _)| *n)
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// A key's secret: the HMAC key. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret text (64 hex digits); its ASCII bytes are the HMAC key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// An API key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `ak_` and 16 hex digits; public.
    pub id: String,
    pub user: String,
    pub rights: Rights,
    pub secret: Secret,
    /// Unix time in milliseconds.
    pub created: i64,
    /// When it was revoked, in unix milliseconds.
    pub revoked: Option<i64>,
    /// When it stops verifying, in unix milliseconds; `None`: never.
    pub expires: Option<i64>,
    /// Whether its user is disabled (then the key is refused too); read from the user's row.
    pub user_disabled: bool,
}

/// A key's columns, with its user's disabled flag, for [`key_row`].
const KEY_COLUMNS: &str = "k.id, k.user, k.rights, k.secret, k.created, k.revoked, k.expires,
    u.disabled FROM api_keys k JOIN users u ON u.name = k.user";

impl Keys for SqliteCatalog {
    fn add_key_expiring(
        &mut self,
        user: &str,
        rights: Rights,
        expires: Option<i64>,
    ) -> Result<ApiKey, CatalogError> {
        if rights == Rights::NONE {
            return Err(CatalogError::BadRights(
                "a key needs at least one right".into(),
            ));
        }
        let mut random = [0u8; 40];
        fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
        let mut key = ApiKey {
            id: format!("ak_{}", crate::domain::hex(&random[..8])),
            user: user.to_string(),
            rights,
            secret: Secret(crate::domain::hex(&random[8..])),
            created: now_ms(),
            revoked: None,
            expires,
            user_disabled: false,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        key.user_disabled = tx
            .prepare_cached("SELECT disabled FROM users WHERE name = ?1")?
            .query_row(params![user], |r| r.get(0))
            .optional()?
            .ok_or_else(|| CatalogError::UserNotFound(user.to_string()))?;
        tx.prepare_cached(
            "INSERT INTO api_keys (id, user, secret, rights, created, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            key.id,
            key.user,
            key.secret.0,
            key.rights.bits(),
            key.created,
            key.expires
        ])?;
        tx.commit()?;
        Ok(key)
    }

    fn keys(&self) -> Result<Vec<ApiKey>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} ORDER BY k.user, k.created, k.id"
        ))?;
        collect(stmt.query_map([], key_row)?)
    }

    fn key(&self, id: &str) -> Result<Option<ApiKey>, CatalogError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {KEY_COLUMNS} WHERE k.id = ?1"))?
            .query_row(params![id], key_row)
            .optional()?)
    }

    fn revoke(&mut self, id: &str) -> Result<ApiKey, CatalogError> {
        self.conn
            .prepare_cached("UPDATE api_keys SET revoked = coalesce(revoked, ?2) WHERE id = ?1")?
            .execute(params![id, now_ms()])?;
        self.key(id)?
            .ok_or_else(|| CatalogError::KeyNotFound(id.chars().take(64).collect()))
    }
}

fn key_row(r: &Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        user: r.get(1)?,
        rights: Rights::from_bits(r.get(2)?),
        secret: Secret(r.get(3)?),
        created: r.get(4)?,
        revoked: r.get(5)?,
        expires: r.get(6)?,
        user_disabled: r.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::io::catalog::testing::*;

    #[test]
    fn users_and_keys() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        assert_eq!(c.users().unwrap(), []);
        c.add_user("alice").unwrap();
        c.add_user("bob@example.org").unwrap();
        assert!(matches!(
            c.add_user("alice"),
            Err(CatalogError::UserExists(_))
        ));
        for bad in ["", "a b", "x/y", "ünï", &"x".repeat(65)] {
            assert!(
                matches!(c.add_user(bad), Err(CatalogError::BadUserName(_))),
                "{bad:?}"
            );
        }
        let k1 = c.add_key("alice", Rights::READ | Rights::WRITE).unwrap();
        let k2 = c.add_key("alice", Rights::ADMIN).unwrap();
        let k3 = c.add_key("bob@example.org", Rights::READ).unwrap();
        assert!(k1.id.starts_with("ak_") && k1.id.len() == 19);
        assert!(k1.id[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(k1.secret.expose().len(), 64);
        assert_ne!(k1.secret, k2.secret);
        assert_ne!(k1.id, k2.id);
        assert!(
            !format!("{k1:?}").contains(k1.secret.expose()),
            "Debug hides the secret"
        );
        assert!(matches!(
            c.add_key("carol", Rights::READ),
            Err(CatalogError::UserNotFound(_))
        ));
        assert!(matches!(
            c.add_key("alice", Rights::NONE),
            Err(CatalogError::BadRights(_))
        ));
        assert_eq!(c.key(&k1.id).unwrap(), Some(k1.clone()));
        assert_eq!(c.keys().unwrap().len(), 3);
        let users = c.users().unwrap();
        assert_eq!((users[0].name.as_str(), users[0].keys), ("alice", 2));
        // Revoking keeps the key (its use is reported as revoked), idempotently.
        let revoked = c.revoke(&k1.id).unwrap();
        let when = revoked.revoked.unwrap();
        assert_eq!(c.revoke(&k1.id).unwrap().revoked, Some(when));
        assert!(matches!(
            c.revoke("ak_nope"),
            Err(CatalogError::KeyNotFound(_))
        ));
        assert_eq!(c.users().unwrap()[0].keys, 1);
        // Deleting a user deletes their keys.
        assert_eq!(c.del_user("alice").unwrap(), 2);
        assert_eq!(c.key(&k2.id).unwrap(), None);
        assert!(matches!(
            c.del_user("alice"),
            Err(CatalogError::UserNotFound(_))
        ));
        assert_eq!(c.keys().unwrap(), std::slice::from_ref(&k3));
        // An expiry is kept; a disabled user shows on their keys.
        let k4 = c
            .add_key_expiring("bob@example.org", Rights::READ, Some(1234))
            .unwrap();
        assert_eq!(c.key(&k4.id).unwrap().unwrap().expires, Some(1234));
        c.set_disabled("bob@example.org", true).unwrap();
        assert!(c.key(&k3.id).unwrap().unwrap().user_disabled);
        assert!(c.keys().unwrap().iter().all(|k| k.user_disabled));
        // The file is private: it holds the secrets.
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(t.path().join("state/catalog.sqlite"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }

    #[test]
    fn rights_parse_and_print() {
        let r: Rights = "read, write,admin".parse().unwrap();
        assert_eq!(r, Rights::READ | Rights::WRITE | Rights::ADMIN);
        assert_eq!(r.to_string(), "read,write,admin");
        assert!(!r.contains(Rights::DELETE));
        assert!(r.contains(Rights::READ | Rights::ADMIN));
        assert_eq!(Rights::NONE.to_string(), "none");
        assert_eq!(
            Rights::from_bits(0xFF).to_string(),
            "read,write,delete,admin"
        );
        for (bad, named) in [
            ("read,wrte", "\"wrte\""),
            ("", "\"\""),
            ("read,", "\"\""),
            ("READ", "\"READ\""),
        ] {
            let err = bad.parse::<Rights>().unwrap_err().to_string();
            assert!(err.contains(named), "{bad:?}: {err}");
        }
    }
}
