//! `imgserv-admin fsck [--repair]`: compares the cache index with the cache directory and the
//! catalog with the store, and reports each problem on one line; `--repair` fixes what can be
//! fixed without losing an original.
//!
//! | kind | what | repair |
//! |---|---|---|
//! | `orphan-variant` | a file under `r/` that the index does not list | removed |
//! | `orphan-link` | a 404-handler file under `<id>/` of an image not in the catalog | removed |
//! | `missing-variant` | an index row whose file is gone | row removed (rendered again on demand) |
//! | `temporary-file` | a `*.tmp` left by an interrupted write (cache or filesystem store) | removed |
//! | `wrong-totals` | the index's running totals differ from its rows | recounted |
//! | `missing-original` | a catalog row whose object the store does not have | none: restore it from a backup, or delete the image |
//! | `orphan-original` | a store object that no catalog row (or pending upload or delete) names | catalogued again (category `/`, metadata `{"fsck": "recovered"}`), never removed |
//! | `damaged-original` | such an object whose bytes do not hash to its name, or are no image | none |
//!
//! Files and objects changed in the last [`IN_FLIGHT`] are left out: they may belong to a write
//! under way. Everything is read through the modules that own it (`cache`, `catalog`, `store`);
//! store objects are listed for the filesystem store only (an S3 bucket is not listed, so
//! orphan objects there are not found).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::domain::format::Format;
use crate::domain::original::OriginalId;
use crate::io::cache::Cache;
use crate::io::catalog::{Catalog, NewImage};
use crate::io::config::{Config, StoreConfig};
use crate::io::render;
use crate::io::store::Store;
use crate::usecases::error::Error;

/// Files and objects younger than this are taken to be writes under way, not problems.
pub const IN_FLIGHT: Duration = Duration::from_secs(600);

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OrphanVariant,
    OrphanLink,
    MissingVariant,
    TemporaryFile,
    WrongTotals,
    MissingOriginal,
    OrphanOriginal,
    DamagedOriginal,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::OrphanVariant => "orphan-variant",
            Kind::OrphanLink => "orphan-link",
            Kind::MissingVariant => "missing-variant",
            Kind::TemporaryFile => "temporary-file",
            Kind::WrongTotals => "wrong-totals",
            Kind::MissingOriginal => "missing-original",
            Kind::OrphanOriginal => "orphan-original",
            Kind::DamagedOriginal => "damaged-original",
        }
    }
}

/// One problem: a line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: Kind,
    /// The path (relative to its directory: `cache/…`, `store/…`), the image id, or `totals`.
    pub what: String,
    pub detail: String,
    /// `None` without `--repair` or when nothing can be done; else whether the repair worked.
    pub repair: Option<Result<String, String>>,
}

impl Problem {
    /// Whether the problem is still there after this run.
    pub fn remains(&self) -> bool {
        !matches!(self.repair, Some(Ok(_)))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind.name(), self.what, self.detail)?;
        match &self.repair {
            Some(Ok(done)) => write!(f, " (repaired: {done})"),
            Some(Err(why)) => write!(f, " (not repaired: {why})"),
            None => Ok(()),
        }
    }
}

/// Checks everything; with `repair`, fixes what it can as it goes.
pub fn check(config: &Config, repair: bool) -> Result<Vec<Problem>, Error> {
    let mut cache = Cache::open(
        &config.cache.dir,
        &config.state.index_path(),
        config.cache.max_bytes,
        config.cache.access_interval,
    )?;
    let mut catalog = Catalog::open(&config.state.catalog_path())?;
    let store = crate::io::store::open(&config.store)?;
    let catalogued: BTreeMap<OriginalId, String> = catalog.originals()?.into_iter().collect();
    let mut problems = Vec::new();
    check_cache(config, &mut cache, &catalogued, repair, &mut problems)?;
    check_store(
        config,
        store.as_ref(),
        &mut catalog,
        &catalogued,
        repair,
        &mut problems,
    )?;
    Ok(problems)
}

/// The cache directory against the index, then the index's totals.
fn check_cache(
    config: &Config,
    cache: &mut Cache,
    catalogued: &BTreeMap<OriginalId, String>,
    repair: bool,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let dir = &config.cache.dir;
    let indexed: BTreeMap<String, u64> = cache.variants()?.into_iter().collect();
    for (rel, meta) in files(dir) {
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        let problem = if name.ends_with(".tmp") {
            (Kind::TemporaryFile, "left by an interrupted write")
        } else if name.starts_with('.') {
            continue;
        } else if rel.starts_with("r/") {
            if indexed.contains_key(&rel) {
                continue;
            }
            (Kind::OrphanVariant, "not in the cache index")
        } else if let Some(Ok(id)) = rel.split('/').next().map(str::parse::<OriginalId>) {
            if catalogued.contains_key(&id) {
                continue;
            }
            (Kind::OrphanLink, "its image is not in the catalog")
        } else {
            continue;
        };
        if recent(&meta) {
            continue;
        }
        let repaired = repair.then(|| remove(&dir.join(&rel)));
        problems.push(found(
            problem.0,
            format!("cache/{rel}"),
            problem.1,
            repaired,
        ));
    }
    for rel in indexed.keys() {
        if dir.join(rel).is_file() {
            continue;
        }
        let repaired = repair.then(|| {
            cache
                .forget(rel)
                .map(|()| "row removed".to_string())
                .map_err(|e| e.to_string())
        });
        let what = format!("cache/{rel}");
        problems.push(found(
            Kind::MissingVariant,
            what,
            "indexed, no file",
            repaired,
        ));
    }
    let (recorded, counted) = cache.audit_totals()?;
    if recorded != counted {
        let detail = format!(
            "the index records {} bytes in {} variants, its rows add up to {} bytes in {}",
            recorded.bytes, recorded.count, counted.bytes, counted.count
        );
        let repaired = repair.then(|| {
            cache
                .recount()
                .map(|(_, t)| format!("now {} bytes in {} variants", t.bytes, t.count))
                .map_err(|e| e.to_string())
        });
        problems.push(found(Kind::WrongTotals, "totals".into(), &detail, repaired));
    }
    Ok(())
}

/// The catalog against the store, then (filesystem store only) the store against the catalog.
fn check_store(
    config: &Config,
    store: &dyn Store,
    catalog: &mut Catalog,
    catalogued: &BTreeMap<OriginalId, String>,
    repair: bool,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    for (id, ext) in catalogued {
        // An original of a type the store cannot key is no object to look for.
        let Some(format) = Format::from_ext(ext) else {
            continue;
        };
        if !store.exists(id, format)? {
            let detail =
                "catalogued, not in the store: restore it from a backup, or delete the image";
            problems.push(found(Kind::MissingOriginal, id.to_string(), detail, None));
        }
    }
    let StoreConfig::Fs { dir } = &config.store else {
        return Ok(());
    };
    // Objects a pending upload or delete names are the sweep's, not orphans.
    let pending: BTreeSet<OriginalId> = catalog.pending()?.into_iter().map(|p| p.image).collect();
    for (rel, meta) in files(dir) {
        if recent(&meta) {
            continue;
        }
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if name.ends_with(".tmp") {
            let repaired = repair.then(|| remove(&dir.join(&rel)));
            let what = format!("store/{rel}");
            let detail = "left by an interrupted write";
            problems.push(found(Kind::TemporaryFile, what, detail, repaired));
            continue;
        }
        let Some((id, format)) = object_of(&rel) else {
            continue;
        };
        if catalogued.contains_key(&id) || pending.contains(&id) {
            continue;
        }
        let what = format!("store/{rel}");
        match recover(config, store, &id, format) {
            Err(why) => problems.push(found(Kind::DamagedOriginal, what, &why, None)),
            Ok(new) => {
                let repaired = repair.then(|| {
                    catalog
                        .insert(&new, None)
                        .map(|_| "catalogued again in /".to_string())
                        .map_err(|e| e.to_string())
                });
                let detail = "in the store, not in the catalog";
                problems.push(found(Kind::OrphanOriginal, what, detail, repaired));
            }
        }
    }
    Ok(())
}

/// `ab/cd/<id>.<ext>` as the store lays it out, or `None` for any other name.
fn object_of(rel: &str) -> Option<(OriginalId, Format)> {
    let (stem, ext) = rel.rsplit_once('.')?;
    let id: OriginalId = stem.rsplit('/').next()?.parse().ok()?;
    let format = Format::from_ext(ext)?;
    (crate::io::store::key(&id, format) == rel).then_some((id, format))
}

/// The catalog row an orphan object gets back: its bytes must hash to its name and be an image.
fn recover(
    config: &Config,
    store: &dyn Store,
    id: &OriginalId,
    format: Format,
) -> Result<NewImage, String> {
    let bytes = store.get(id, format).map_err(|e| e.to_string())?;
    if OriginalId::of(&bytes).ok().as_ref() != Some(id) {
        return Err("its bytes do not hash to its name".into());
    }
    let probe = render::probe(&bytes, config.limits.max_pixels)
        .map_err(|e| format!("not a readable image: {e}"))?;
    if probe.format != format {
        return Err(format!("a {:?} stored as .{}", probe.format, format.ext()));
    }
    let mut meta = Map::new();
    meta.insert("fsck".into(), Value::from("recovered"));
    Ok(NewImage {
        id: id.clone(),
        mime: format.mime().to_string(),
        width: probe.size().width,
        height: probe.size().height,
        bytes: bytes.len() as u64,
        owner: None,
        category: "/".into(),
        meta,
    })
}

fn found(
    kind: Kind,
    what: String,
    detail: &str,
    repair: Option<Result<String, String>>,
) -> Problem {
    Problem {
        kind,
        what,
        detail: detail.to_string(),
        repair,
    }
}

/// Every file and symbolic link below `dir`, as (relative path, metadata), in path order; a
/// directory that cannot be read is logged and skipped.
fn files(dir: &Path) -> Vec<(String, fs::Metadata)> {
    let mut out = Vec::new();
    for item in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                log::warn!("fsck: {e}");
                continue;
            }
        };
        if item.file_type().is_dir() {
            continue;
        }
        let (Ok(rel), Ok(meta)) = (item.path().strip_prefix(dir), item.metadata()) else {
            continue;
        };
        if let Some(rel) = rel.to_str() {
            out.push((rel.to_string(), meta));
        }
    }
    out
}

/// Whether a file changed within [`IN_FLIGHT`] (or in the future).
fn recent(meta: &fs::Metadata) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_none_or(|age| age < IN_FLIGHT)
}

fn remove(path: &Path) -> Result<String, String> {
    match fs::remove_file(path) {
        Ok(()) => Ok("removed".into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok("already gone".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_store_layout_names_an_object() {
        let id = OriginalId::of(b"x").unwrap();
        let rel = crate::io::store::key(&id, Format::Png);
        assert_eq!(object_of(&rel), Some((id.clone(), Format::Png)));
        let misplaced = format!("00/00/{id}.png");
        for other in [
            misplaced.as_str(),
            "ab/cd/x.png",
            "readme.txt",
            "ab/cd/.x.png.1.tmp",
        ] {
            assert_eq!(object_of(other), None, "{other}");
        }
    }

    #[test]
    fn a_line_says_what_where_and_what_was_done() {
        let mut p = found(
            Kind::OrphanVariant,
            "cache/r/x.jpg".into(),
            "not indexed",
            None,
        );
        assert_eq!(p.to_string(), "orphan-variant cache/r/x.jpg: not indexed");
        assert!(p.remains());
        p.repair = Some(Ok("removed".into()));
        assert_eq!(
            p.to_string(),
            "orphan-variant cache/r/x.jpg: not indexed (repaired: removed)"
        );
        assert!(!p.remains());
    }
}
