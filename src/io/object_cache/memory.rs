//! The in-process backend: a map bounded by bytes, least recently used entries evicted first.
//! Useful only in a long-lived process (FastCGI, standalone): a CGI process starts empty and
//! dies after one request. It sees no write made by another process (`imgserv-admin`), so its
//! entries live at most the cache's TTL.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes counted for an entry besides its key and value: the map's slots, the order index and
/// the allocations' headers, roughly, so that many tiny entries cannot exceed the bound.
pub const ENTRY_OVERHEAD: usize = 96;

/// A byte-bounded LRU map with per-entry expiry.
pub struct MemoryCache {
    max_bytes: usize,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    entries: HashMap<String, Entry>,
    /// Use tick → key: the first is the least recently used.
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
}

struct Entry {
    value: Vec<u8>,
    expires: Instant,
    tick: u64,
}

fn cost(key: &str, value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl MemoryCache {
    pub fn new(max_bytes: u64) -> MemoryCache {
        MemoryCache {
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            inner: Mutex::new(Lru::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A panic while holding the lock leaves a consistent map (every change is completed
        // before the next), so a poisoned lock is used as it is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value, if present and not expired; marks it as just used.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut lru = self.lock();
        let now = Instant::now();
        let lru = &mut *lru;
        let entry = lru.entries.get_mut(key)?;
        if entry.expires <= now {
            lru.remove(key);
            return None;
        }
        lru.tick += 1;
        let old = std::mem::replace(&mut entry.tick, lru.tick);
        let value = entry.value.clone();
        if let Some(k) = lru.order.remove(&old) {
            lru.order.insert(lru.tick, k);
        }
        Some(value)
    }

    /// Stores a value for `ttl`, evicting the least recently used entries to stay within the
    /// bound; a value larger than the whole bound is not stored.
    pub fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        let mut lru = self.lock();
        lru.remove(key);
        let size = cost(key, value);
        if size > self.max_bytes {
            return;
        }
        while lru.bytes + size > self.max_bytes {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            if let Some(e) = lru.entries.remove(&oldest) {
                lru.bytes -= cost(&oldest, &e.value);
            }
        }
        lru.tick += 1;
        let tick = lru.tick;
        lru.order.insert(tick, key.to_string());
        lru.entries.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                expires: Instant::now() + ttl,
                tick,
            },
        );
        lru.bytes += size;
    }

    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Bytes counted against the bound.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Lru {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.tick);
            self.bytes -= cost(key, &e.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn stays_within_its_bytes_and_evicts_the_least_recently_used() {
        let one = cost("k0", &[0; 100]);
        let c = MemoryCache::new(3 * one as u64);
        for i in 0..3 {
            c.set(&format!("k{i}"), &[i; 100], HOUR);
        }
        assert_eq!((c.len(), c.bytes()), (3, 3 * one));
        // k0 is read, so k1 is now the least recently used and goes first.
        assert_eq!(c.get("k0"), Some(vec![0; 100]));
        c.set("k3", &[3; 100], HOUR);
        assert_eq!(c.get("k1"), None);
        assert!(c.get("k0").is_some() && c.get("k2").is_some() && c.get("k3").is_some());
        assert_eq!(c.bytes(), 3 * one);
        // A large value evicts as many as it needs, oldest first (k2 was read before k0 here).
        c.get("k2");
        c.get("k0");
        c.set("big", &[9; 250], HOUR);
        assert!(c.bytes() <= 3 * one, "{} > {}", c.bytes(), 3 * one);
        assert_eq!(c.get("k3"), None);
        assert_eq!(c.get("k2"), None, "k2 was used before k0");
        assert!(c.get("k0").is_some() && c.get("big").is_some());
    }

    #[test]
    fn replaces_deletes_expires_and_refuses_what_cannot_fit() {
        let c = MemoryCache::new(1000);
        c.set("a", b"one", HOUR);
        c.set("a", b"two!", HOUR);
        assert_eq!(c.get("a"), Some(b"two!".to_vec()));
        assert_eq!((c.len(), c.bytes()), (1, cost("a", b"two!")));
        c.delete("a");
        assert_eq!((c.get("a"), c.bytes()), (None, 0));
        c.set("old", b"x", Duration::ZERO);
        assert_eq!(c.get("old"), None, "expired");
        assert_eq!(c.bytes(), 0, "an expired entry is dropped when found");
        c.set("huge", &[0; 2000], HOUR);
        assert_eq!((c.get("huge"), c.len()), (None, 0));
        // Many small entries: the overhead counts, so the bound holds.
        for i in 0..100 {
            c.set(&format!("{i}"), b"", HOUR);
        }
        assert!(c.bytes() <= 1000 && c.len() == 1000 / cost("10", b""));
    }
}
