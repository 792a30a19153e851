//! Catalog lookups through the object cache: API keys (every signed request) and image records
//! (`GET /api/images/{id}` and its metadata; a category's rename rewrites many at once). Callers read and write these rows through here, so
//! that every write of a row forgets its cached copy right after the catalog commits.
//!
//! Only found rows are cached: a key or image created later is seen at once. What a write made
//! elsewhere cannot forget — another process with the memory backend (`imgserv-admin`), or a
//! memcached unreachable at the time and not restarted since — stays visible for at most
//! `[object_cache] ttl`. A lookup racing a write may put back the row it read just before the
//! write; the TTL bounds that too.
//!
//! A new kind of cached lookup (sessions, effective permissions) is one [`Namespace`] and one
//! call of [`Records::cached`] in its use case, plus a `forget` after each write.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::original::OriginalId;
use crate::io::catalog::{ApiKey, Catalog, CatalogError, CategoryRenamed, Image, Rights};
use crate::io::config::Config;
use crate::io::object_cache::{Namespace, ObjectCache};
use crate::usecases::sign::KeyInfo;

/// API keys by id.
pub const KEYS: Namespace = Namespace("key");
/// Image records by original id.
pub const IMAGES: Namespace = Namespace("image");
/// The generation of permission-relevant data (grants, settings, groups, roles): one number
/// that every change replaces, part of the key of every cached permission (`usecases::
/// permissions`), so that one write forgets them all.
const GENERATION: Namespace = Namespace("perm-gen");

/// The catalog's hot rows, cached.
pub struct Records {
    cache: ObjectCache,
}

impl Records {
    /// The cache the configuration names; `long_lived` is false in a CGI process.
    pub fn new(config: &Config, long_lived: bool) -> Records {
        Records {
            cache: ObjectCache::open(&config.object_cache, long_lived),
        }
    }

    /// `load`'s row for `id`, from the cache when it is there; a found row is cached as `C`.
    pub fn cached<T, C, E>(
        &self,
        ns: Namespace,
        id: &str,
        load: impl FnOnce() -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E>
    where
        C: Serialize + for<'de> Deserialize<'de> + From<T> + TryInto<T>,
        T: Clone,
    {
        // A cached value that does not convert back (a corrupt entry) is a miss.
        if let Some(Ok(hit)) = self.cache.get_json::<C>(ns, id).map(C::try_into) {
            return Ok(Some(hit));
        }
        let row = load()?;
        if let Some(row) = &row {
            self.cache.set_json(ns, id, &C::from(row.clone()));
        }
        Ok(row)
    }

    /// The current permissions generation (see [`Records::bump_generation`]); a fresh one is
    /// stored when the cache has none (never cached, expired or evicted), so that no entry
    /// cached under an older one can come back. `0` without a cache.
    pub fn generation(&self) -> u64 {
        if !self.cache.is_enabled() {
            return 0;
        }
        if let Some(n) = self.cache.get_json::<u64>(GENERATION, "current") {
            return n;
        }
        self.bump_generation()
    }

    /// Starts a new permissions generation: every cached permission and principal is
    /// forgotten. Call it after every write of grants, object settings, groups or roles.
    pub fn bump_generation(&self) -> u64 {
        // Time-based, so that a generation lost with its entry is never reused.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let next = self
            .cache
            .get_json::<u64>(GENERATION, "current")
            .map_or(now, |n| now.max(n + 1));
        self.cache.set_json(GENERATION, "current", &next);
        next
    }

    /// Forgets `id`'s cached row: call it after every write of that row.
    pub fn forget(&self, ns: Namespace, id: &str) {
        self.cache.delete(ns, id);
    }

    /// A key as the signature check needs it.
    pub fn key(&self, catalog: &Catalog, id: &str) -> Result<Option<KeyInfo>, CatalogError> {
        self.cached::<_, CachedKey, _>(KEYS, id, || Ok(catalog.key(id)?.map(KeyInfo::from)))
    }

    /// Revokes a key; it stops verifying at once in every process sharing the cache.
    pub fn revoke_key(&self, catalog: &mut Catalog, id: &str) -> Result<ApiKey, CatalogError> {
        let key = catalog.revoke(id);
        self.forget(KEYS, id);
        key
    }

    /// Forgets the cached keys of `user`: call it after a change of the user that its keys
    /// carry (disabled, deleted).
    pub fn forget_keys_of(&self, catalog: &Catalog, user: &str) -> Result<(), CatalogError> {
        for key in catalog.keys()?.into_iter().filter(|k| k.user == user) {
            self.forget(KEYS, &key.id);
        }
        Ok(())
    }

    /// One image's catalog row.
    pub fn image(&self, catalog: &Catalog, id: &OriginalId) -> Result<Option<Image>, CatalogError> {
        self.cached::<_, Image, _>(IMAGES, id.as_str(), || catalog.get(id))
    }

    /// Replaces (or, with `merge`, merges by RFC 7396) an image's metadata.
    pub fn change_meta(
        &self,
        catalog: &mut Catalog,
        id: &OriginalId,
        meta: &Map<String, Value>,
        merge: bool,
    ) -> Result<Image, CatalogError> {
        let image = if merge {
            catalog.merge_meta(id, meta)
        } else {
            catalog.replace_meta(id, meta)
        };
        self.forget(IMAGES, id.as_str());
        image
    }

    /// Moves an image to another category.
    pub fn move_image(
        &self,
        catalog: &mut Catalog,
        id: &OriginalId,
        category: &str,
    ) -> Result<Image, CatalogError> {
        let image = catalog.move_to(id, category);
        self.forget(IMAGES, id.as_str());
        image
    }

    /// Renames (moves) a category and everything below it (see
    /// `Categories::rename_category`), forgetting the record of every image that moved.
    pub fn rename_category(
        &self,
        catalog: &mut Catalog,
        from: &str,
        to: &str,
    ) -> Result<CategoryRenamed, CatalogError> {
        let renamed = catalog.rename_category(from, to)?;
        for id in &renamed.images {
            self.forget(IMAGES, id.as_str());
        }
        Ok(renamed)
    }

    /// Deletes an image's row (and records what to remove; see `Catalog::delete`).
    pub fn delete_image(
        &self,
        catalog: &mut Catalog,
        id: &OriginalId,
    ) -> Result<crate::io::catalog::Deleted, CatalogError> {
        let deleted = catalog.delete(id);
        self.forget(IMAGES, id.as_str());
        deleted
    }
}

/// A change to an image: new metadata (replacing, or merged by RFC 7396), a new category, or
/// both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    pub meta: Option<Map<String, Value>>,
    /// Merge `meta` into what is there rather than replace it.
    pub merge: bool,
    pub category: Option<String>,
}

/// [`KeyInfo`] as cached.
#[derive(Serialize, Deserialize)]
struct CachedKey {
    user: String,
    rights: u8,
    secret: String,
    revoked: bool,
    expires: Option<u64>,
    user_disabled: bool,
}

impl From<KeyInfo> for CachedKey {
    fn from(k: KeyInfo) -> Self {
        CachedKey {
            user: k.user,
            rights: k.rights.bits(),
            secret: String::from_utf8_lossy(&k.secret).into_owned(),
            revoked: k.revoked,
            expires: k.expires,
            user_disabled: k.user_disabled,
        }
    }
}

impl From<CachedKey> for KeyInfo {
    fn from(k: CachedKey) -> Self {
        KeyInfo {
            user: k.user,
            rights: Rights::from_bits(k.rights),
            secret: k.secret.into_bytes(),
            revoked: k.revoked,
            expires: k.expires,
            user_disabled: k.user_disabled,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::io::catalog::{NewImage, testing::id};
    use crate::io::object_cache::{Backend, ObjectCacheConfig};

    fn records() -> Records {
        let config = ObjectCacheConfig {
            backend: Backend::Memory { max_bytes: 1 << 20 },
            ..ObjectCacheConfig::default()
        };
        Records {
            cache: ObjectCache::open(&config, true),
        }
    }

    fn meta(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_cached_key_revoked_here_stops_verifying_at_once() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&t.path().join("catalog.sqlite")).unwrap();
        c.add_user("alice").unwrap();
        let k = c.add_key("alice", Rights::READ).unwrap();
        let r = records();
        assert_eq!(r.key(&c, "ak_nope").unwrap(), None);
        let info = r.key(&c, &k.id).unwrap().unwrap();
        assert!(!info.revoked && info.secret == k.secret.expose().as_bytes());
        // Cached: the catalog's own revoke is not seen (that is what forgetting is for)...
        c.revoke(&k.id).unwrap();
        assert!(!r.key(&c, &k.id).unwrap().unwrap().revoked);
        // ...and revoking through the records forgets it.
        r.revoke_key(&mut c, &k.id).unwrap();
        assert!(r.key(&c, &k.id).unwrap().unwrap().revoked);
        // A key added after a miss on its id is found: misses are not cached.
        let k2 = c.add_key("alice", Rights::WRITE).unwrap();
        assert_eq!(r.key(&c, &k2.id).unwrap().unwrap().rights, Rights::WRITE);
    }

    #[test]
    fn image_writes_forget_the_cached_record() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&t.path().join("catalog.sqlite")).unwrap();
        let new = NewImage {
            id: id(1),
            mime: "image/png".into(),
            width: 3,
            height: 2,
            bytes: 100,
            owner: None,
            category: "/a".into(),
            meta: meta(json!({"title": "one"})),
        };
        c.insert(&new, None).unwrap();
        let r = records();
        let first = r.image(&c, &id(1)).unwrap().unwrap();
        assert_eq!(
            r.image(&c, &id(1)).unwrap().unwrap(),
            first,
            "a hit is the same row"
        );
        r.change_meta(&mut c, &id(1), &meta(json!({"title": "two"})), false)
            .unwrap();
        assert_eq!(r.image(&c, &id(1)).unwrap().unwrap().meta["title"], "two");
        r.change_meta(&mut c, &id(1), &meta(json!({"x": 1})), true)
            .unwrap();
        let merged = r.image(&c, &id(1)).unwrap().unwrap().meta;
        assert_eq!(
            (merged["title"].clone(), merged["x"].clone()),
            (json!("two"), json!(1))
        );
        r.move_image(&mut c, &id(1), "/b").unwrap();
        assert_eq!(r.image(&c, &id(1)).unwrap().unwrap().category, "/b");
        r.rename_category(&mut c, "/b", "/c/b").unwrap();
        assert_eq!(r.image(&c, &id(1)).unwrap().unwrap().category, "/c/b");
        r.delete_image(&mut c, &id(1)).unwrap();
        assert_eq!(r.image(&c, &id(1)).unwrap(), None);
    }
}
