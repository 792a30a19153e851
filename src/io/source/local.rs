//! Local originals: a `src` resolved under the originals root, never outside it.
//!
//! `..` components and absolute paths are refused before touching the file system; what is
//! left is canonicalised (resolving every symlink) and must still lie under the root, so a
//! symlink leading outside is refused too. The version is the file's size and modification
//! time, so a replaced original gets a new cache directory without reading its bytes.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::SourceError;

/// A resolved local original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSource {
    /// Canonical absolute path.
    pub path: PathBuf,
    /// Canonical path relative to the root, `/`-separated.
    pub rel: String,
    pub len: u64,
    /// `<size>-<mtime in ns>`.
    pub version: String,
}

/// Resolves `src` under `root` (which must be canonical).
pub fn resolve(root: &Path, src: &str, max_bytes: u64) -> Result<LocalSource, SourceError> {
    if src.is_empty() || src.contains('\0') {
        return Err(SourceError::Invalid("src must be a relative path".into()));
    }
    let rel = Path::new(src);
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(SourceError::Forbidden("src must not contain '..'".into()));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(SourceError::Forbidden("src must be a relative path".into()));
            }
        }
    }
    let not_found = || SourceError::NotFound(format!("no such original: {src}"));
    let path = match fs::canonicalize(root.join(rel)) {
        Ok(p) => p,
        Err(e)
            if matches!(
                e.kind(),
                // InvalidFilename: a name longer than the file system takes (ENAMETOOLONG).
                io::ErrorKind::NotFound
                    | io::ErrorKind::NotADirectory
                    | io::ErrorKind::InvalidFilename
            ) =>
        {
            return Err(not_found());
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(SourceError::Forbidden(format!(
                "original not readable: {src}"
            )));
        }
        Err(e) => return Err(SourceError::Io(e)),
    };
    let Ok(inside) = path.strip_prefix(root) else {
        return Err(SourceError::Forbidden(format!(
            "src leads outside the originals directory: {src}"
        )));
    };
    let meta = fs::metadata(&path)?;
    if !meta.is_file() {
        return Err(not_found());
    }
    if meta.len() > max_bytes {
        return Err(SourceError::TooLarge { limit: max_bytes });
    }
    let rel = inside
        .to_str()
        .ok_or_else(|| SourceError::Invalid("original's path is not UTF-8".into()))?
        .to_string();
    let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    Ok(LocalSource {
        version: format!("{}-{mtime_ns}", meta.len()),
        len: meta.len(),
        rel,
        path,
    })
}

/// Reads a file of at most `max_bytes` bytes (it may have grown since it was resolved).
pub fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>, SourceError> {
    let file = fs::File::open(path).map_err(|e| match e.kind() {
        // No path in the message: it reaches the client.
        io::ErrorKind::NotFound => SourceError::NotFound("no such original".into()),
        io::ErrorKind::PermissionDenied => SourceError::Forbidden("original not readable".into()),
        _ => SourceError::Io(e),
    })?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(SourceError::TooLarge { limit: max_bytes });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("originals");
        fs::create_dir_all(root.join("images")).unwrap();
        fs::write(root.join("images/1.jpg"), b"12345").unwrap();
        fs::write(t.path().join("secret.jpg"), b"secret").unwrap();
        symlink(t.path().join("secret.jpg"), root.join("images/escape.jpg")).unwrap();
        symlink("1.jpg", root.join("images/alias.jpg")).unwrap();
        symlink("/", root.join("rootlink")).unwrap();
        let root = fs::canonicalize(root).unwrap();
        (t, root)
    }

    #[test]
    fn resolves_inside_the_root() {
        let (_t, root) = setup();
        let s = resolve(&root, "images/1.jpg", 100).unwrap();
        assert_eq!(s.rel, "images/1.jpg");
        assert_eq!(s.len, 5);
        assert!(s.version.starts_with("5-"));
        assert_eq!(
            resolve(&root, "./images//1.jpg", 100).unwrap().rel,
            "images/1.jpg"
        );
        // A symlink inside the root is followed to its canonical name.
        assert_eq!(
            resolve(&root, "images/alias.jpg", 100).unwrap().rel,
            "images/1.jpg"
        );
    }

    #[test]
    fn refuses_escapes() {
        let (_t, root) = setup();
        let forbidden = |src: &str| {
            assert!(
                matches!(resolve(&root, src, 100), Err(SourceError::Forbidden(_))),
                "{src} should be forbidden, got {:?}",
                resolve(&root, src, 100)
            );
        };
        forbidden("../secret.jpg");
        forbidden("images/../../secret.jpg");
        forbidden("images/../1.jpg");
        forbidden("/etc/passwd");
        forbidden("images/escape.jpg");
        forbidden("rootlink/etc/passwd");
    }

    #[test]
    fn missing_and_odd_paths() {
        let (_t, root) = setup();
        for src in [
            "images/2.jpg",
            "images",
            "images/1.jpg/x",
            "%2e%2e/secret.jpg",
            &"a".repeat(300),
            &format!("images/{}.jpg", "b".repeat(256)),
        ] {
            assert!(
                matches!(resolve(&root, src, 100), Err(SourceError::NotFound(_))),
                "{src}: {:?}",
                resolve(&root, src, 100)
            );
        }
        assert!(matches!(
            resolve(&root, "", 100),
            Err(SourceError::Invalid(_))
        ));
        assert!(matches!(
            resolve(&root, "images/1.jpg", 4),
            Err(SourceError::TooLarge { limit: 4 })
        ));
    }

    #[test]
    fn version_changes_with_the_file() {
        let (_t, root) = setup();
        let a = resolve(&root, "images/1.jpg", 100).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(root.join("images/1.jpg"), b"54321").unwrap();
        let b = resolve(&root, "images/1.jpg", 100).unwrap();
        assert_ne!(a.version, b.version);
    }
}
