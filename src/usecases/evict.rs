//! `imgserv-evict`: removes variants from `[cache] dir` not accessed for longer than
//! `max_idle`, created longer ago than `max_age`, and then the least recently used beyond
//! `max_bytes`; tidies what a crash leaves (temporary files older than [`TEMPORARY_GRACE`],
//! index rows of sources with no variant left) and recounts the index's totals from its rows;
//! then runs the catalog's delete sweep, deletes expired login sessions, and trims the local copies of remote originals to
//! `[remote] max_bytes` (as the server does after each fetch; see `source::copies`).
//!
//! The directory is the truth, not the index: files the web server serves never reach imgserv
//! (the index's access time is stale for them, and the 404 handler's links are not in the index
//! at all), so a variant's last access is the newer of the index's and the file's atime. Paths
//! that share an inode (a 404-handler link and its canonical file) are one variant: counted
//! once, removed together.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::io::cache::{Cache, CacheError, EVICT_BATCH, Totals, remove_files, write_atomically};
use crate::io::catalog::Catalog;
use crate::io::config::{Config, EvictConfig};
use crate::io::source::SourceError;
use crate::io::source::copies::{self, Trimmed};
use crate::usecases::error::Error;
use crate::usecases::purge::{self, SweepReport};
use crate::usecases::session::Sessions;

/// One variant on disk: every path of one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the cache directory.
    pub paths: Vec<String>,
    pub bytes: u64,
    /// Unix milliseconds.
    pub last_access: i64,
    /// Unix milliseconds.
    pub created: i64,
}

/// Why an entry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Idle,
    Age,
    Budget,
}

/// A temporary file (`.<name>….tmp`) older than this is left from a crash, not a write in
/// flight: [`crate::io::cache::write_atomically`] renames its file away within the second it
/// wrote it (a render happens before, not during, the write).
pub const TEMPORARY_GRACE: Duration = Duration::from_secs(3600);

/// What a run did (or would do, with `dry_run`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub removed: Vec<(Entry, Reason)>,
    pub kept: u64,
    pub kept_bytes: u64,
    /// Temporary files older than [`TEMPORARY_GRACE`], removed (listed in a dry run).
    pub temporaries: Vec<Entry>,
    /// Index rows of sources with no variant left, forgotten (counted in a dry run).
    pub sources_forgotten: u64,
    /// The index's totals before and after they were recounted; `None` in a dry run.
    pub totals: Option<(Totals, Totals)>,
    /// `None` in a dry run.
    pub sweep: Option<SweepReport>,
    /// The local copies of remote originals.
    pub remote: Trimmed,
    /// Expired login sessions deleted from the catalog (`[sessions] store = "catalog"`);
    /// `None` in a dry run.
    pub sessions: Option<u64>,
}

impl Report {
    /// The one summary line for the log.
    pub fn summary(&self) -> String {
        let count = |r: Reason| self.removed.iter().filter(|(_, why)| *why == r).count();
        let bytes: u64 = self.removed.iter().map(|(e, _)| e.bytes).sum();
        let sweep = match &self.sweep {
            Some(s) => format!(
                "sweep removed {}, cancelled {}, deferred {}",
                s.removed, s.cancelled, s.deferred
            ),
            None => "no sweep (dry run)".into(),
        };
        let tidied = format!(
            "{} stale temporaries, {} unused sources",
            self.temporaries.len(),
            self.sources_forgotten
        );
        let totals = match self.totals {
            Some((was, now)) if was != now => format!(
                "; index totals corrected from {} variants ({} bytes) to {} ({} bytes)",
                was.count, was.bytes, now.count, now.bytes
            ),
            _ => String::new(),
        };
        let sessions = match self.sessions {
            Some(n) => format!("; {n} expired sessions"),
            None => String::new(),
        };
        format!(
            "evicted {} variants ({bytes} bytes: {} idle, {} old, {} over budget); kept {} ({} bytes); {tidied}{totals}; {sweep}; {}{sessions}",
            self.removed.len(),
            count(Reason::Idle),
            count(Reason::Age),
            count(Reason::Budget),
            self.kept,
            self.kept_bytes,
            self.remote.summary()
        )
    }
}

/// Decides what goes (pure): idle, then old, then least recently used beyond the budget.
pub fn select(
    mut entries: Vec<Entry>,
    limits: &EvictConfig,
    now_ms: i64,
) -> (Vec<(Entry, Reason)>, Vec<Entry>) {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    entries.sort_by_key(|e| (e.last_access, e.created));
    let mut gone = Vec::new();
    let mut kept = Vec::new();
    for e in entries {
        if limits
            .max_idle
            .is_some_and(|d| now_ms - e.last_access > ms(d))
        {
            gone.push((e, Reason::Idle));
        } else if limits.max_age.is_some_and(|d| now_ms - e.created > ms(d)) {
            gone.push((e, Reason::Age));
        } else {
            kept.push(e);
        }
    }
    if let Some(budget) = limits.max_bytes {
        let mut total: u64 = kept.iter().map(|e| e.bytes).sum();
        let mut still = Vec::new();
        // Oldest access first.
        for e in kept {
            if total > budget {
                total -= e.bytes;
                gone.push((e, Reason::Budget));
            } else {
                still.push(e);
            }
        }
        kept = still;
    }
    (gone, kept)
}

/// What is below the cache directory.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every variant, with the index's access times folded in.
    pub variants: Vec<Entry>,
    /// Temporary files (`.<name>….tmp`), their `created` the last write.
    pub temporaries: Vec<Entry>,
}

/// Every variant and temporary file below the cache directory, in one walk.
pub fn scan(dir: &Path, cache: &Cache) -> Result<Scan, Error> {
    let mut by_inode: BTreeMap<(u64, u64), Entry> = BTreeMap::new();
    let mut temporaries = Vec::new();
    for item in walkdir::WalkDir::new(dir).min_depth(1) {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                log::warn!("evict: {e}");
                continue;
            }
        };
        let name = item.file_name().to_string_lossy();
        let hidden = name.starts_with('.');
        let temporary = hidden && name.ends_with(".tmp");
        if !item.file_type().is_file() || (hidden && !temporary) {
            continue;
        }
        let Ok(rel) = item.path().strip_prefix(dir) else {
            continue;
        };
        let rel = rel.to_string_lossy().into_owned();
        let meta = match item.metadata() {
            Ok(m) => m,
            // Renamed or evicted since the walk listed it.
            Err(e) if e.io_error().map(|e| e.kind()) == Some(std::io::ErrorKind::NotFound) => {
                continue;
            }
            Err(e) => return Err(CacheError::Io(e.into()).into()),
        };
        let atime = meta.atime() * 1000 + meta.atime_nsec() / 1_000_000;
        let mtime = meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000;
        if temporary {
            temporaries.push(Entry {
                paths: vec![rel],
                bytes: meta.len(),
                last_access: atime,
                created: mtime,
            });
            continue;
        }
        let indexed = cache.variant_row(&rel)?.map_or(0, |(_, last, _)| last);
        let entry = by_inode.entry((meta.dev(), meta.ino())).or_insert(Entry {
            paths: Vec::new(),
            bytes: meta.len(),
            last_access: 0,
            created: mtime,
        });
        entry.paths.push(rel);
        entry.last_access = entry.last_access.max(atime).max(indexed);
        entry.created = entry.created.min(mtime);
    }
    Ok(Scan {
        variants: by_inode.into_values().collect(),
        temporaries,
    })
}

/// Runs one eviction: scan, select, remove (unless `dry_run`), tidy, recount, sweep.
pub fn evict(config: &Config, limits: &EvictConfig, dry_run: bool) -> Result<Report, Error> {
    let mut cache = config.open_cache()?;
    let found = scan(&config.cache.dir, &cache)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let grace = i64::try_from(TEMPORARY_GRACE.as_millis()).unwrap_or(i64::MAX);
    let temporaries: Vec<Entry> = found
        .temporaries
        .into_iter()
        .filter(|t| now - t.created > grace)
        .collect();
    let (gone, kept) = select(found.variants, limits, now);
    if !dry_run {
        // Rows first, in one transaction per chunk, then the chunk's files: a crash leaves
        // unindexed files (the next scan finds them), never rows without files.
        let paths: Vec<&str> = gone
            .iter()
            .flat_map(|(e, _)| e.paths.iter().map(String::as_str))
            .collect();
        for chunk in paths.chunks(EVICT_BATCH) {
            cache.forget_all(chunk)?;
            if let Some((_, err)) = remove_files(&config.cache.dir, chunk).into_iter().next() {
                return Err(CacheError::Io(err).into());
            }
        }
        let paths: Vec<&str> = temporaries.iter().map(|t| t.paths[0].as_str()).collect();
        for (i, e) in remove_files(&config.cache.dir, &paths) {
            log::warn!("evict {}: {e}", paths[i]);
        }
    }
    let sources_forgotten = unused_sources(&mut cache, &kept, dry_run)?;
    let totals = if dry_run {
        None
    } else {
        Some(cache.recount()?)
    };
    let mut sessions = None;
    let sweep = if dry_run {
        None
    } else {
        let store = crate::io::store::open(&config.store)?;
        let mut catalog = Catalog::open(&config.state.catalog_path())?;
        let swept = purge::sweep(
            config,
            store.as_ref(),
            &cache,
            &mut catalog,
            limits.upload_grace,
        )?;
        sessions = Some(Sessions::new(config, false).sweep(&catalog)?);
        Some(swept)
    };
    let copies = config.remote_options();
    let remote =
        copies::trim(&copies.dir, copies.max_bytes, None, dry_run).map_err(SourceError::Io)?;
    let report = Report {
        remote,
        kept: kept.len() as u64,
        kept_bytes: kept.iter().map(|e| e.bytes).sum(),
        removed: gone,
        temporaries,
        sources_forgotten,
        totals,
        sweep,
        sessions,
    };
    if !dry_run {
        let line = format!("{now}\t{}\n", report.summary());
        // What the dashboard shows as the last eviction; the run itself is done either way.
        if let Err(e) = write_atomically(&last_run_path(config), line.as_bytes()) {
            log::warn!("evict: the record of this run could not be written: {e}");
        }
    }
    Ok(report)
}

/// Where the last (not dry) run's time and summary are kept.
fn last_run_path(config: &Config) -> PathBuf {
    config.state.dir.join("last-evict.txt")
}

/// The last run's time (unix ms) and summary, if one was recorded.
pub fn last_run(config: &Config) -> Option<(i64, String)> {
    let text = std::fs::read_to_string(last_run_path(config)).ok()?;
    let (time, summary) = text.trim_end().split_once('\t')?;
    Some((time.parse().ok()?, summary.to_string()))
}

/// Forgets (unless `dry_run`: counts) the index rows of sources that no variant row refers to
/// and whose directory holds no variant file (`kept` lists those left), so that the rows of
/// sources long evicted do not pile up. Returns how many.
fn unused_sources(cache: &mut Cache, kept: &[Entry], dry_run: bool) -> Result<u64, Error> {
    let with_files: BTreeSet<&str> = kept
        .iter()
        .flat_map(|e| &e.paths)
        .filter_map(|p| p.rsplit_once('/').map(|(dir, _)| dir))
        .collect();
    let ids: Vec<i64> = cache
        .unused_sources()?
        .into_iter()
        .filter(|(_, dir)| !with_files.contains(dir.as_str()))
        .map(|(id, _)| id)
        .collect();
    if dry_run {
        return Ok(ids.len() as u64);
    }
    Ok(cache.forget_sources(&ids)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, bytes: u64, last_access: i64, created: i64) -> Entry {
        Entry {
            paths: vec![name.into()],
            bytes,
            last_access,
            created,
        }
    }

    #[test]
    fn idle_then_old_then_least_recently_used_beyond_the_budget() {
        let day = 86_400_000;
        let now = 100 * day;
        let entries = vec![
            entry("idle", 10, now - 40 * day, now - 40 * day),
            entry("old", 10, now, now - 400 * day),
            entry("lru", 10, now - 5 * day, now - 5 * day),
            entry("recent", 10, now - day, now - 5 * day),
            entry("newest", 10, now, now),
        ];
        let limits = EvictConfig {
            max_idle: Some(Duration::from_secs(30 * 86_400)),
            max_age: Some(Duration::from_secs(365 * 86_400)),
            max_bytes: Some(20),
            upload_grace: Duration::ZERO,
        };
        let (gone, kept) = select(entries, &limits, now);
        let names = |v: Vec<&Entry>| v.iter().map(|e| e.paths[0].clone()).collect::<Vec<_>>();
        assert_eq!(
            gone.iter()
                .map(|(e, r)| (e.paths[0].as_str(), *r))
                .collect::<Vec<_>>(),
            [
                ("idle", Reason::Idle),
                ("old", Reason::Age),
                ("lru", Reason::Budget)
            ]
        );
        assert_eq!(names(kept.iter().collect()), ["recent", "newest"]);
        let (gone, _) = select(vec![entry("a", 1, 0, 0)], &EvictConfig::default(), now);
        assert!(gone.is_empty(), "no limits, nothing goes");
    }
}
