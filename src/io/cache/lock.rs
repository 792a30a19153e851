//! The render lock: one variant is rendered once across processes and threads, while the
//! other variants of its source render in parallel.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;

use sha2::{Digest, Sha256};

use super::{Cache, CacheError};
/// Held while a source's variant is rendered; released on drop.
pub struct VariantLock {
    _file: File,
}

impl Cache {
    /// Takes the lock that serialises rendering of one variant (`rel`) across processes and
    /// threads, so concurrent misses for it render it once while other variants of the same
    /// source render in parallel (one of 256 striped lock files in the state directory, so
    /// nothing litters the cache).
    pub fn lock(&self, rel: &str) -> Result<VariantLock, CacheError> {
        let digest = Sha256::digest(rel.as_bytes());
        let path = self.locks.join(format!("{:02x}.lock", digest[0]));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o666)
            .open(path)?;
        file.lock()?;
        Ok(VariantLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::format::Format;
    use crate::domain::geometry::Size;
    use crate::io::cache::tests::{key, open};
    use crate::io::cache::variant_path;
    use std::time::Duration;

    #[test]
    fn variants_of_one_source_lock_separately() {
        let t = tempfile::tempdir().unwrap();
        let c = open(&t, 1 << 20);
        let dir = key(1).dir();
        let stripe = |rel: &str| Sha256::digest(rel.as_bytes())[0];
        let a = variant_path(&dir, Size::new(800, 600), Format::Jpeg);
        // Another box of the same source whose lock is another stripe.
        let b = (1..)
            .map(|w| variant_path(&dir, Size::new(w, 600), Format::Jpeg))
            .find(|b| stripe(b) != stripe(&a))
            .unwrap();
        let _held = c.lock(&a).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = open(&t, 1 << 20);
        std::thread::spawn(move || {
            let _b = other.lock(&b).unwrap();
            tx.send(()).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("rendering one box of a source must not wait for another box's render");
    }
}
