//! The filesystem store: `<dir>/ab/cd/<id>.<ext>`, each file written to a temporary name in its
//! final directory, flushed to disk and renamed, so that a crash or a full disk leaves either the
//! whole original or nothing (and at worst a `.*.tmp` file, never a partial original).
//!
//! `dir` must be outside any web root: originals are private, only variants are published.
//! Deletes leave empty fan-out directories in place: removing them would race with a put that
//! just created them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Object, Store, StoreError, key};
use crate::domain::format::Format;
use crate::domain::original::OriginalId;

/// Originals as files under one directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    dir: PathBuf,
}

impl FsStore {
    /// A store rooted at `dir`; nothing is created until the first `put`.
    pub fn new(dir: PathBuf) -> FsStore {
        FsStore { dir }
    }

    /// The file an original is (or would be) stored in.
    pub fn path(&self, id: &OriginalId, format: Format) -> PathBuf {
        self.dir.join(key(id, format))
    }
}

impl Store for FsStore {
    fn put(&self, id: &OriginalId, format: Format, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(id, format);
        match fs::symlink_metadata(&path) {
            // Same id, same bytes: an existing original is never rewritten. A length mismatch
            // means the file was damaged or put there by hand; leave it for a human.
            Ok(m) if m.is_file() && m.len() == bytes.len() as u64 => return Ok(()),
            Ok(m) if m.is_file() => {
                return Err(StoreError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} exists with {} bytes instead of {}; not replaced",
                        path.display(),
                        m.len(),
                        bytes.len()
                    ),
                )));
            }
            // Not a regular file (a directory, a symlink): the rename below fails or replaces
            // only a symlink, never someone's data.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let dir = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(dir)?;
        write_durably(dir, &path, bytes)?;
        Ok(())
    }

    fn get(&self, id: &OriginalId, format: Format) -> Result<Vec<u8>, StoreError> {
        fs::read(self.path(id, format)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound,
            _ => e.into(),
        })
    }

    fn open(&self, id: &OriginalId, format: Format) -> Result<Object, StoreError> {
        let file = File::open(self.path(id, format)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound,
            _ => e.into(),
        })?;
        // The length of this file, even if a delete unlinks its name meanwhile.
        let len = file.metadata()?.len();
        Ok(Object {
            reader: Box::new(file),
            len,
        })
    }

    fn exists(&self, id: &OriginalId, format: Format) -> Result<bool, StoreError> {
        match fs::metadata(self.path(id, format)) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, id: &OriginalId, format: Format) -> Result<(), StoreError> {
        match fs::remove_file(self.path(id, format)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("fs:{}", self.dir.display())
    }
}

/// Temp file in `dir` (mode 0644 whatever the umask), write, fsync, rename to `path`, fsync the
/// directory so the new name survives a power cut too. The temp file is removed on any failure.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("original");
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(bytes: &[u8]) -> OriginalId {
        OriginalId::of(bytes).unwrap()
    }

    #[test]
    fn round_trip_in_the_fanout_layout_with_mode_0644() {
        let d = tempfile::tempdir().unwrap();
        let store = FsStore::new(d.path().to_path_buf());
        let bytes = b"not really a jpeg".as_slice();
        let id = id(bytes);
        store.put(&id, Format::Jpeg, bytes).unwrap();
        let path = d.path().join(id.fanout()).with_extension("jpg");
        assert_eq!(fs::read(&path).unwrap(), bytes);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(store.get(&id, Format::Jpeg).unwrap(), bytes);
        assert!(
            !store.exists(&id, Format::Png).unwrap(),
            "format is part of the key"
        );
        assert!(matches!(
            store.get(&id, Format::Png),
            Err(StoreError::NotFound)
        ));
    }

    #[test]
    fn an_existing_file_of_another_length_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let store = FsStore::new(d.path().to_path_buf());
        let id = id(b"abc");
        let path = store.path(&id, Format::Png);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"something else").unwrap();
        let err = store.put(&id, Format::Png, b"abc").unwrap_err();
        assert!(err.to_string().contains("not replaced"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"something else");
    }
}
