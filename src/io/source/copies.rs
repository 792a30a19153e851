//! The directory of local copies of remote originals, as a whole: the lock that makes
//! concurrent misses on one URL fetch it once (across processes), the last-use stamp, and the
//! byte budget that evicts the least recently used copies.
//!
//! `remote` owns the network and the format of one copy (`<key>.img` and `<key>.meta`, written
//! through `*.tmp` files and renames); this module only counts, orders and removes them by key.
//! The budget counts every file of the directory by its length (what `du --apparent-size`
//! counts), `.meta` sidecars and unfinished `*.tmp` files included; a download in flight may
//! pass it for as long as it lasts.

use std::collections::BTreeMap;
use std::fs::{self, File, FileTimes, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// The subdirectory of the striped lock files (empty files, so they cost no budget).
const LOCKS: &str = "locks";

/// A `*.tmp` file older than this belongs to a process that died mid-download (a download is
/// bounded by `[remote] timeout`, at most a few minutes): it is removed.
const ABANDONED_TMP: Duration = Duration::from_secs(3600);

/// Held while one URL's copy is fetched or revalidated; released on drop.
pub struct FetchLock {
    _file: File,
}

/// Takes the lock of the copy `key` (one of 256 striped lock files in `dir/locks`, as renders
/// lock their variants): a second process missing the same URL waits here, then finds the
/// copy the first one fetched. The stripes are their own files, not the render locks, so a
/// process that holds a render lock may fetch.
pub fn lock(dir: &Path, key: &str) -> io::Result<FetchLock> {
    let file = open_stripe(dir, key)?;
    file.lock()?;
    Ok(FetchLock { _file: file })
}

fn open_stripe(dir: &Path, key: &str) -> io::Result<File> {
    let locks = dir.join(LOCKS);
    fs::create_dir_all(&locks)?;
    let stripe = Sha256::digest(key.as_bytes())[0];
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o666)
        .open(locks.join(format!("{stripe:02x}.lock")))
}

/// Records a use of the copy `img` (whose metadata is `meta`): sets its access time to now,
/// unless it was set within `interval`, so that uses normally write nothing. The access time
/// orders the copies for eviction; reads alone would not keep it (relatime, noatime).
pub fn touch(img: &Path, meta: &fs::Metadata, interval: Duration) {
    let atime = SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(meta.atime()).unwrap_or(0),
            u32::try_from(meta.atime_nsec()).unwrap_or(0),
        );
    let recent = SystemTime::now()
        .duration_since(atime)
        .is_ok_and(|age| age < interval);
    if recent {
        return;
    }
    let stamped =
        File::open(img).and_then(|f| f.set_times(FileTimes::new().set_accessed(SystemTime::now())));
    if let Err(e) = stamped {
        log::debug!("stamp {}: {e}", img.display());
    }
}

/// One URL's files in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// The file name before the first dot (a hash of the URL).
    pub key: String,
    /// The URL, from the `.meta` sidecar, read only for the copies that go (for the report);
    /// empty when it is missing or unreadable.
    pub url: String,
    /// `.img` and `.meta` together.
    pub bytes: u64,
    /// Unix nanoseconds of the last use: the `.img`'s access time (or the sidecar's modification
    /// time without an `.img`).
    pub last_use: i128,
}

/// What a trim removed and kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Least recently used first.
    pub removed: Vec<Copy>,
    /// Abandoned `*.tmp` files removed, and their bytes.
    pub abandoned: (u64, u64),
    pub kept: u64,
    pub kept_bytes: u64,
}

impl Trimmed {
    /// The one summary line for the log.
    pub fn summary(&self) -> String {
        let bytes: u64 = self.removed.iter().map(|c| c.bytes).sum();
        format!(
            "evicted {} remote copies ({bytes} bytes) and {} abandoned temporary files ({} bytes); kept {} ({} bytes)",
            self.removed.len(),
            self.abandoned.0,
            self.abandoned.1,
            self.kept,
            self.kept_bytes
        )
    }
}

/// The copies in `dir`, and the temporary files as `(path name, bytes, modified)`.
struct Scan {
    copies: Vec<Copy>,
    temps: Vec<(String, u64, SystemTime)>,
}

fn scan(dir: &Path) -> io::Result<Scan> {
    let mut copies: BTreeMap<String, Copy> = BTreeMap::new();
    let mut temps = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Scan {
                copies: Vec::new(),
                temps,
            });
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = match entry.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            // Removed since the listing (another process evicted or replaced it).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if name.ends_with(".tmp") {
            temps.push((name, meta.len(), meta.modified()?));
            continue;
        }
        let Some((key, ext)) = name.split_once('.') else {
            continue;
        };
        if !matches!(ext, "img" | "meta") {
            continue;
        }
        let copy = copies.entry(key.to_owned()).or_insert_with(|| Copy {
            key: key.to_owned(),
            url: String::new(),
            bytes: 0,
            last_use: i128::MIN,
        });
        copy.bytes += meta.len();
        if ext == "img" {
            copy.last_use = nanos(meta.atime(), meta.atime_nsec());
        } else if copy.last_use == i128::MIN {
            copy.last_use = nanos(meta.mtime(), meta.mtime_nsec());
        }
    }
    Ok(Scan {
        copies: copies.into_values().collect(),
        temps,
    })
}

/// The URL a copy's sidecar names, or "" when it has none.
fn url_of(dir: &Path, key: &str) -> String {
    fs::read_to_string(dir.join(format!("{key}.meta")))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("url=").map(str::to_owned))
        })
        .unwrap_or_default()
}

fn nanos(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

/// Removes abandoned `*.tmp` files, then the least recently used copies until the directory
/// holds at most `max_bytes`. `keep` (the copy just fetched, about to be read) is never
/// removed, nor is a copy whose fetch lock another fetch holds. With `dry_run`, only says
/// what would go.
pub fn trim(dir: &Path, max_bytes: u64, keep: Option<&str>, dry_run: bool) -> io::Result<Trimmed> {
    let Scan { mut copies, temps } = scan(dir)?;
    let now = SystemTime::now();
    let mut report = Trimmed::default();
    let mut total: u64 = copies.iter().map(|c| c.bytes).sum();
    for (name, bytes, modified) in temps {
        let abandoned = now
            .duration_since(modified)
            .is_ok_and(|age| age > ABANDONED_TMP);
        if abandoned && (dry_run || remove(&dir.join(&name))) {
            report.abandoned.0 += 1;
            report.abandoned.1 += bytes;
        } else {
            total += bytes;
        }
    }
    copies.sort_by(|a, b| (a.last_use, &a.key).cmp(&(b.last_use, &b.key)));
    let mut kept = Vec::new();
    for mut copy in copies {
        let candidate = total > max_bytes && keep != Some(copy.key.as_str());
        if candidate {
            copy.url = url_of(dir, &copy.key);
        }
        if candidate && (dry_run || remove_copy(dir, &copy.key)) {
            total -= copy.bytes;
            report.removed.push(copy);
        } else {
            kept.push(copy);
        }
    }
    report.kept = kept.len() as u64;
    report.kept_bytes = kept.iter().map(|c| c.bytes).sum();
    if total > max_bytes {
        log::warn!(
            "{}: {total} bytes of remote copies left over the budget of {max_bytes} (in use)",
            dir.display()
        );
    }
    Ok(report)
}

/// Removes one copy, sidecar first (a reader then never pairs a sidecar with a missing image),
/// unless its fetch lock is held; whether it went.
fn remove_copy(dir: &Path, key: &str) -> bool {
    let stripe = match open_stripe(dir, key) {
        Ok(file) => file,
        Err(e) => {
            log::warn!("{}: {e}", dir.display());
            return false;
        }
    };
    match stripe.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return false,
        Err(TryLockError::Error(e)) => {
            log::warn!("{}: {e}", dir.display());
            return false;
        }
    }
    let meta = remove(&dir.join(format!("{key}.meta")));
    let img = remove(&dir.join(format!("{key}.img")));
    meta && img
}

/// Removes a file; a file already gone counts as removed.
fn remove(path: &Path) -> bool {
    match fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => {
            log::warn!("cannot remove {}: {e}", path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a copy of `bytes` image bytes used `ago` before now.
    fn copy(dir: &Path, key: &str, bytes: usize, ago: Duration) {
        fs::write(dir.join(format!("{key}.img")), vec![0; bytes]).unwrap();
        fs::write(
            dir.join(format!("{key}.meta")),
            format!("url=http://h/{key}\n"),
        )
        .unwrap();
        File::options()
            .write(true)
            .open(dir.join(format!("{key}.img")))
            .unwrap()
            .set_times(FileTimes::new().set_accessed(SystemTime::now() - ago))
            .unwrap();
    }

    fn left(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != LOCKS)
            .collect();
        names.sort();
        names
    }

    fn bytes_on_disk(dir: &Path) -> u64 {
        walkdir::WalkDir::new(dir)
            .into_iter()
            .map(|e| e.unwrap().metadata().unwrap())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    }

    #[test]
    fn least_recently_used_copies_go_until_the_budget_holds() {
        let dir = tempfile::tempdir().unwrap();
        let min = Duration::from_secs(60);
        copy(dir.path(), "a", 1000, min * 3);
        copy(dir.path(), "b", 1000, min);
        copy(dir.path(), "c", 1000, min * 2);
        copy(dir.path(), "d", 1000, Duration::ZERO);
        // "a" is the oldest but just fetched: it stays, and "c" and "b" go instead.
        let report = trim(dir.path(), 2100, Some("a"), false).unwrap();
        let gone: Vec<&str> = report.removed.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(gone, ["c", "b"]);
        assert_eq!(report.removed[0].url, "http://h/c");
        assert_eq!(left(dir.path()), ["a.img", "a.meta", "d.img", "d.meta"]);
        assert!(bytes_on_disk(dir.path()) <= 2100);
        assert_eq!(report.kept, 2);
        assert_eq!(report.kept_bytes, bytes_on_disk(dir.path()));
    }

    #[test]
    fn a_dry_run_removes_nothing_and_a_missing_directory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        copy(dir.path(), "a", 1000, Duration::from_secs(60));
        copy(dir.path(), "b", 1000, Duration::ZERO);
        let report = trim(dir.path(), 1500, None, true).unwrap();
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.removed[0].key, "a");
        assert_eq!(left(dir.path()).len(), 4);
        let none = trim(&dir.path().join("missing"), 0, None, false).unwrap();
        assert_eq!(none, Trimmed::default());
    }

    #[test]
    fn abandoned_temporary_files_go_and_fresh_ones_count() {
        let dir = tempfile::tempdir().unwrap();
        copy(dir.path(), "a", 100, Duration::ZERO);
        let old = dir.path().join("a.1-2-3.tmp");
        fs::write(&old, vec![0; 500]).unwrap();
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - ABANDONED_TMP * 2)
            .unwrap();
        fs::write(dir.path().join("b.1-2-4.tmp"), vec![0; 50]).unwrap();
        let report = trim(dir.path(), 1000, None, false).unwrap();
        assert_eq!(report.abandoned, (1, 500));
        assert!(report.removed.is_empty());
        assert_eq!(left(dir.path()), ["a.img", "a.meta", "b.1-2-4.tmp"]);
    }

    #[test]
    fn a_copy_being_fetched_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        copy(dir.path(), "a", 1000, Duration::from_secs(60));
        copy(dir.path(), "b", 1000, Duration::ZERO);
        let held = lock(dir.path(), "a").unwrap();
        let report = trim(dir.path(), 1500, None, false).unwrap();
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.removed[0].key, "b", "a is in use; b goes instead");
        drop(held);
        let report = trim(dir.path(), 1500, None, false).unwrap();
        assert!(report.removed.is_empty(), "within the budget now");
    }

    #[test]
    fn uses_are_stamped_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        copy(dir.path(), "a", 10, hour);
        let img = dir.path().join("a.img");
        let before = fs::metadata(&img).unwrap();
        touch(&img, &before, Duration::from_secs(7200));
        assert_eq!(fs::metadata(&img).unwrap().atime(), before.atime());
        touch(&img, &before, Duration::from_secs(60));
        let after = fs::metadata(&img).unwrap().atime();
        assert!(
            after >= before.atime() + 3500,
            "{after} vs {}",
            before.atime()
        );
    }
}
