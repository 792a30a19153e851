//! The object cache: small values (catalog rows as JSON) kept in memory or in memcached so that
//! hot lookups — API keys, image records, later sessions and permissions — skip the catalog.
//!
//! It is only ever a cache: every call that fails (memcached down or slow) is a miss, never an
//! error, and callers read the catalog instead. Keeping it correct is the caller's job (the
//! `usecases::records` layer deletes an entry after every write of its row); this module only
//! stores bytes under namespaced, versioned keys with a TTL. It does not know what it stores.
//!
//! Keys are `imgserv:<format>:<site>:<namespace>:<id>`: `<site>` keeps several sites apart on
//! a shared memcached (`[object_cache] prefix`, by default a hash of the catalog's path) and
//! `<format>` ([`FORMAT`] and the release) changes whenever a cached type may have, so a new
//! release never reads an old value. Ids that would make the key too long for memcached (250
//! bytes) or hold spaces or control characters are replaced by their SHA-256.

mod memcached;
mod memory;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use memcached::{FIRST_BACKOFF, MAX_BACKOFF, MAX_PENDING, Memcached};
pub use memory::MemoryCache;

/// The version of what is cached: raise it when a cached type changes its shape.
pub const FORMAT: u32 = 2;
/// memcached's longest key.
pub const MAX_KEY_BYTES: usize = 250;
/// Largest value stored: memcached's default item size (1 MiB) less room for its header.
pub const MAX_VALUE_BYTES: usize = 1_000_000;
/// Longest TTL: memcached reads an expiry over 30 days as a unix time.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Which cache, from `[object_cache]` (validated by `config`, re-exported there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// No cache: every lookup reads the catalog.
    None,
    /// In the process, up to `max_bytes` (keys, values and overhead).
    Memory { max_bytes: u64 },
    /// memcached servers (`host:port`); each call waits at most about `timeout`.
    Memcached {
        servers: Vec<String>,
        timeout: Duration,
    },
}

/// `[object_cache]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCacheConfig {
    pub backend: Backend,
    /// How long an entry lives: the bound on how long a write that could not invalidate it
    /// (another process with the memory backend, memcached unreachable) stays unseen.
    pub ttl: Duration,
    /// Keeps this site's keys apart from other sites' on a shared memcached.
    pub prefix: String,
    /// Where short-lived (CGI) processes share what they learn of a memcached's outage (the
    /// state directory); `None`: nowhere.
    pub shared_dir: Option<std::path::PathBuf>,
}

impl Default for ObjectCacheConfig {
    fn default() -> Self {
        ObjectCacheConfig {
            backend: Backend::None,
            ttl: Duration::from_secs(300),
            prefix: "imgserv".into(),
            shared_dir: None,
        }
    }
}

/// A namespace of keys: one per kind of cached value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespace(pub &'static str);

enum Inner {
    None,
    Memory(MemoryCache),
    Memcached(Memcached),
}

/// The cache the configuration names. Opening contacts nothing.
pub struct ObjectCache {
    inner: Inner,
    ttl: Duration,
    /// `imgserv:<format>-<release>:<prefix>:`
    head: String,
}

impl ObjectCache {
    /// The cache `config` names. `long_lived` is false in a CGI process, where the memory
    /// backend would start empty and die with the request: it is then no cache at all.
    pub fn open(config: &ObjectCacheConfig, long_lived: bool) -> ObjectCache {
        let inner = match &config.backend {
            Backend::None => Inner::None,
            Backend::Memory { .. } if !long_lived => {
                log::debug!("object cache: the memory cache is per process, so none under CGI");
                Inner::None
            }
            Backend::Memory { max_bytes } => Inner::Memory(MemoryCache::new(*max_bytes)),
            Backend::Memcached { servers, timeout } => {
                // A long-lived process keeps what it learns in memory; only CGI processes,
                // which would each find an outage afresh, share it through files.
                let shared = config.shared_dir.as_deref().filter(|_| !long_lived);
                Inner::Memcached(Memcached::new(servers, *timeout, shared))
            }
        };
        ObjectCache {
            inner,
            ttl: config.ttl.min(MAX_TTL),
            head: format!(
                "imgserv:{FORMAT}-{}:{}:",
                env!("CARGO_PKG_VERSION"),
                config.prefix
            ),
        }
    }

    /// No cache.
    pub fn none() -> ObjectCache {
        ObjectCache::open(&ObjectCacheConfig::default(), false)
    }

    /// Whether this caches anything at all.
    pub fn is_enabled(&self) -> bool {
        !matches!(self.inner, Inner::None)
    }

    /// The key of `id` in `ns`, within memcached's limits.
    pub fn key(&self, ns: Namespace, id: &str) -> String {
        let key = format!("{}{}:{id}", self.head, ns.0);
        if key.len() <= MAX_KEY_BYTES && key.bytes().all(|b| b.is_ascii_graphic()) {
            return key;
        }
        let digest = crate::domain::hex(&Sha256::digest(id.as_bytes()));
        let key = format!("{}{}:#{digest}", self.head, ns.0);
        if key.len() <= MAX_KEY_BYTES {
            key
        } else {
            // A prefix so long that even a digest does not fit: hash the whole key.
            let whole = format!("{}{}:{id}", self.head, ns.0);
            format!("imgserv:#{}", crate::domain::hex(&Sha256::digest(whole)))
        }
    }

    /// The bytes stored for `id`, or `None` (absent, expired, or the cache unreachable).
    pub fn get(&self, ns: Namespace, id: &str) -> Option<Vec<u8>> {
        match &self.inner {
            Inner::None => None,
            Inner::Memory(m) => m.get(&self.key(ns, id)),
            Inner::Memcached(m) => m.get(&self.key(ns, id)),
        }
    }

    /// Stores `value` for the TTL; too large a value is not stored.
    pub fn set(&self, ns: Namespace, id: &str, value: &[u8]) {
        if value.len() > MAX_VALUE_BYTES {
            return;
        }
        match &self.inner {
            Inner::None => {}
            Inner::Memory(m) => m.set(&self.key(ns, id), value, self.ttl),
            Inner::Memcached(m) => m.set(&self.key(ns, id), value, self.ttl),
        }
    }

    /// Forgets `id` (after a write to what it caches).
    pub fn delete(&self, ns: Namespace, id: &str) {
        match &self.inner {
            Inner::None => {}
            Inner::Memory(m) => m.delete(&self.key(ns, id)),
            Inner::Memcached(m) => m.delete(&self.key(ns, id)),
        }
    }

    /// A value stored by [`ObjectCache::set_json`]; one that no longer decodes is a miss.
    pub fn get_json<T: DeserializeOwned>(&self, ns: Namespace, id: &str) -> Option<T> {
        let bytes = self.get(ns, id)?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn set_json<T: Serialize>(&self, ns: Namespace, id: &str, value: &T) {
        if !self.is_enabled() {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(value) {
            self.set(ns, id, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: Namespace = Namespace("test");

    fn memory(prefix: &str) -> ObjectCache {
        ObjectCache::open(
            &ObjectCacheConfig {
                backend: Backend::Memory { max_bytes: 1 << 20 },
                prefix: prefix.into(),
                ..ObjectCacheConfig::default()
            },
            true,
        )
    }

    #[test]
    fn keys_are_namespaced_versioned_and_fit_memcached() {
        let c = memory("site1");
        let k = c.key(NS, "ak_0123");
        assert_eq!(
            k,
            format!(
                "imgserv:{FORMAT}-{}:site1:test:ak_0123",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_ne!(memory("site2").key(NS, "ak_0123"), k);
        assert_ne!(c.key(Namespace("other"), "ak_0123"), k);
        for id in ["x".repeat(300), "a b".into(), "ü".into(), "a\nb".into()] {
            let k = c.key(NS, &id);
            assert!(k.len() <= MAX_KEY_BYTES && k.bytes().all(|b| b.is_ascii_graphic()));
            assert!(k.contains(":test:#"), "{k}");
        }
        assert_ne!(c.key(NS, &"x".repeat(300)), c.key(NS, &"x".repeat(301)));
        let long = memory(&"p".repeat(240));
        assert!(long.key(NS, "id").len() <= MAX_KEY_BYTES);
        assert_ne!(long.key(NS, "id"), long.key(NS, "id2"));
    }

    #[test]
    fn stores_typed_values_and_forgets_them() {
        let c = memory("s");
        assert_eq!(c.get_json::<Vec<u32>>(NS, "a"), None);
        c.set_json(NS, "a", &vec![1u32, 2]);
        assert_eq!(c.get_json::<Vec<u32>>(NS, "a"), Some(vec![1, 2]));
        assert_eq!(
            c.get_json::<String>(NS, "a"),
            None,
            "another shape is a miss"
        );
        c.delete(NS, "a");
        assert_eq!(c.get(NS, "a"), None);
        c.set(NS, "big", &vec![0; MAX_VALUE_BYTES + 1]);
        assert_eq!(c.get(NS, "big"), None);
    }

    #[test]
    fn none_and_memory_under_cgi_cache_nothing() {
        let config = ObjectCacheConfig {
            backend: Backend::Memory { max_bytes: 1 << 20 },
            ..ObjectCacheConfig::default()
        };
        for c in [ObjectCache::none(), ObjectCache::open(&config, false)] {
            assert!(!c.is_enabled());
            c.set(NS, "a", b"1");
            assert_eq!(c.get(NS, "a"), None);
        }
    }

    #[test]
    fn an_unreachable_memcached_is_a_quick_miss() {
        // A port nothing listens on: refused at once; the call still answers within the
        // timeout, and later calls skip the server until the back-off is over.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = ObjectCache::open(
            &ObjectCacheConfig {
                backend: Backend::Memcached {
                    servers: vec![format!("127.0.0.1:{port}")],
                    timeout: Duration::from_millis(100),
                },
                ..ObjectCacheConfig::default()
            },
            true,
        );
        let start = std::time::Instant::now();
        assert_eq!(c.get(NS, "a"), None);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        let start = std::time::Instant::now();
        for _ in 0..100 {
            c.set(NS, "a", b"1");
            assert_eq!(c.get(NS, "a"), None);
        }
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "skipped while down"
        );
    }
}
