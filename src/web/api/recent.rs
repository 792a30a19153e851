//! Recent variants, remembered by a long-lived server (FastCGI, standalone) so that a hit on a
//! variant served within the last [`TRUST`] costs a map lookup and a `stat` of its file,
//! instead of resolving the source (a canonicalisation and a `stat` of the original), an index
//! read (with its file locks) and the same `stat`.
//!
//! What that trusts, and for how long:
//! - the original is not looked at for up to [`TRUST`] (1 s): a replaced original is noticed
//!   within that, as a changed mirror map is;
//! - the variant's file is checked on every request, so one evicted by another process is
//!   noticed at once (the request then takes the full path and renders it again);
//! - access times still reach the index: an entry expires after [`TRUST`], and the full path
//!   that follows refreshes `last_access` when it is older than the access interval.
//!
//! A CGI process serves one request: it never finds anything here.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::format::Format;
use crate::domain::geometry::{BoundingBox, Size};
use crate::usecases::variant::Variant;

/// How long an entry is used without looking at the original or the index.
pub const TRUST: Duration = Duration::from_secs(1);

/// Entries kept at most; when full, expired ones are dropped, then all.
const CAPACITY: usize = 16_384;

/// Variants recently served, by source and box.
pub struct Recent {
    trust: Duration,
    map: Mutex<HashMap<(String, BoundingBox), Entry>>,
}

struct Entry {
    rel: String,
    size: Size,
    format: Format,
    at: Instant,
}

impl Default for Recent {
    fn default() -> Self {
        Recent::new(TRUST)
    }
}

impl Recent {
    pub fn new(trust: Duration) -> Recent {
        Recent {
            trust,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The variant of `src` in `bbox`, when it was served less than [`TRUST`] ago and its
    /// file (below `cache_dir`) is still there.
    pub fn get(&self, src: &str, bbox: BoundingBox, cache_dir: &Path) -> Option<Variant> {
        let (rel, size, format) = {
            let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            let e = map.get(&(src.to_string(), bbox))?;
            if e.at.elapsed() >= self.trust {
                return None;
            }
            (e.rel.clone(), e.size, e.format)
        };
        if !cache_dir.join(&rel).is_file() {
            self.forget(src, bbox);
            return None;
        }
        Some(Variant::found(rel, size, format))
    }

    /// Remembers that `v` is the variant of `src` in `bbox`, as of now.
    pub fn remember(&self, src: &str, bbox: BoundingBox, v: &Variant) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, e| e.at.elapsed() < self.trust);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(
            (src.to_string(), bbox),
            Entry {
                rel: v.rel.clone(),
                size: v.size,
                format: v.format,
                at: Instant::now(),
            },
        );
    }

    fn forget(&self, src: &str, bbox: BoundingBox) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(src.to_string(), bbox));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(rel: &str) -> Variant {
        Variant {
            rel: rel.into(),
            size: Size::new(40, 30),
            format: Format::Jpeg,
            rendered: true,
            bytes: Some(vec![1, 2, 3]),
        }
    }

    #[test]
    fn a_recent_variant_is_found_while_trusted_and_its_file_exists() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a.jpg"), b"x").unwrap();
        let recent = Recent::new(Duration::from_millis(200));
        let bbox = Size::new(50, 50);
        assert_eq!(recent.get("a.jpg", bbox, t.path()), None);
        recent.remember("a.jpg", bbox, &variant("a.jpg"));
        let found = recent.get("a.jpg", bbox, t.path()).unwrap();
        // Found, not rendered, and without the bytes of the render that put it there.
        assert_eq!(
            (found.rel.as_str(), found.size),
            ("a.jpg", Size::new(40, 30))
        );
        assert!(!found.rendered && found.bytes.is_none());
        // Another box, or another source, is another entry.
        assert_eq!(recent.get("a.jpg", Size::new(60, 50), t.path()), None);
        assert_eq!(recent.get("b.jpg", bbox, t.path()), None);
        // Past its trust, the entry is not used: the full path looks again.
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(recent.get("a.jpg", bbox, t.path()), None);
    }

    #[test]
    fn a_variant_whose_file_is_gone_is_forgotten() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("a.jpg");
        std::fs::write(&file, b"x").unwrap();
        let recent = Recent::default();
        let bbox = Size::new(50, 50);
        recent.remember("a.jpg", bbox, &variant("a.jpg"));
        assert!(recent.get("a.jpg", bbox, t.path()).is_some());
        std::fs::remove_file(&file).unwrap();
        assert_eq!(recent.get("a.jpg", bbox, t.path()), None);
        // Gone from the map too: the file coming back is not enough.
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(recent.get("a.jpg", bbox, t.path()), None);
    }

    #[test]
    fn a_full_map_keeps_only_fresh_entries() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a.jpg"), b"x").unwrap();
        let recent = Recent::new(Duration::ZERO);
        for n in 0..CAPACITY + 10 {
            recent.remember(&format!("{n}.jpg"), Size::new(1, 1), &variant("a.jpg"));
        }
        assert!(recent.map.lock().unwrap().len() <= CAPACITY);
    }
}
