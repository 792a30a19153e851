//! Writing a cache file so that readers, and a crash, see nothing or the whole file: a
//! temporary file synced and renamed, its directory synced after (unless `IMGSERV_FSYNC=0`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use std::os::unix::fs::OpenOptionsExt;
/// Writes a variant's bytes to its open temporary file (`File::write_all`; tests put a short
/// writer in its place).
pub(super) type Writer = fn(&mut File, &[u8]) -> io::Result<()>;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// that readers see either nothing or the whole file, also after a crash: the file's data is
/// synced before the rename, and its directory (and any directory created for it) after, so
/// that a name that survives a power cut names the whole file — variants are served as
/// immutable for a year. A file whose length is not `bytes.len()` is an error and is never
/// renamed into place. Files are world-readable: the web server serves them.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with(path, bytes, |f, b| f.write_all(b))
}

/// [`write_atomically`] with `write` filling the temporary file.
pub(super) fn write_atomically_with(path: &Path, bytes: &[u8], write: Writer) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dirs(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("variant");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(
        ".{name}.{}.{:?}.{nanos}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        write(&mut f, bytes)?;
        if durable() {
            f.sync_data()?;
        }
        let written = f.metadata()?.len();
        if written != bytes.len() as u64 {
            return Err(io::Error::other(format!(
                "{}: {written} bytes on disk, {} written",
                path.display(),
                bytes.len()
            )));
        }
        drop(f);
        fs::rename(&tmp, path)?;
        if durable() {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Whether [`write_atomically`] syncs: always, unless `IMGSERV_FSYNC=0` (kept to measure what
/// syncing costs, BENCHMARKS.md item 18; a crash may then leave empty or short variants).
fn durable() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("IMGSERV_FSYNC").is_none_or(|v| v != "0"))
}

/// Creates `dir` and its missing parents like `fs::create_dir_all`, syncing the parent of each
/// directory it creates, so that the new entries survive a crash with the file put in them.
fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {
            if durable() {
                sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
            }
            Ok(())
        }
        // Another process made it, and syncs its parent.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Syncs a directory, so that the entries created or renamed in it are on disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Makes `target` the same file as `existing` (a hard link, or a copy where links are not
/// possible), atomically: readers see the old state or the whole file.
pub(super) fn link_atomically(existing: &Path, target: &Path) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    create_dirs(dir)?;
    let tmp = dir.join(format!(
        ".link.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_file(&tmp);
    match fs::hard_link(existing, &tmp) {
        Ok(()) => {
            let renamed = fs::rename(&tmp, target);
            // Also after success: renaming a link onto another link of the same file (a name
            // linked before) does nothing and leaves `tmp` (rename(2)).
            let _ = fs::remove_file(&tmp);
            renamed?;
            if durable() {
                sync_dir(dir)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        Err(_) => write_atomically(target, &fs::read(existing)?),
    }
}
