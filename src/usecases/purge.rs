//! Removing what the catalog says must go: the original object of a deleted image (or of an
//! upload that never committed) and every variant of a deleted image — the index's canonical
//! files under `r/…` and the 404 handler's files under `<id>/…` in the cache directory.
//!
//! Every removal runs through [`Catalog::sweep`], which orders it with uploads of the same bytes
//! (an upload in flight defers the removal; a removal running makes the upload wait) and holds
//! no catalog lock while the store or the cache directory is touched; a crash anywhere leaves
//! the pending row, and the next [`sweep`] finishes the job.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::domain::format::Format;
use crate::domain::original::OriginalId;
use crate::io::cache::{Cache, CacheError};
use crate::io::catalog::{Catalog, Doomed, PendingDelete, Swept};
use crate::io::config::Config;
use crate::io::store::Store;
use crate::usecases::error::Error;
use crate::usecases::variant::stored_key;

/// What a sweep did, for the one summary line of `imgserv-evict`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Rows whose objects were removed.
    pub removed: u64,
    /// Rows dropped because the image came back.
    pub cancelled: u64,
    /// Rows left for later (an upload in flight, or a removal that failed).
    pub deferred: u64,
}

/// Removes one pending row's objects; anything already gone counts as removed.
pub fn remove(
    config: &Config,
    store: &dyn Store,
    cache: &Cache,
    pending: &PendingDelete,
) -> Result<(), Error> {
    match pending.what {
        Doomed::Original | Doomed::Upload => match Format::from_ext(&pending.ext) {
            Some(format) => store.delete(&pending.image, format)?,
            None => log::warn!(
                "purge: {} has an unknown extension {:?}; nothing to remove",
                pending.image,
                pending.ext
            ),
        },
        Doomed::Variants => remove_variants(config, cache, &pending.image)?,
    }
    Ok(())
}

/// Removes every variant of an uploaded original from the cache directory and the index.
pub fn remove_variants(config: &Config, cache: &Cache, id: &OriginalId) -> Result<(), Error> {
    let key = stored_key(id);
    if let Some(known) = cache.lookup(&key)? {
        for v in &known.variants {
            remove_file(&cache.file(&v.path)).map_err(CacheError::Io)?;
            cache.forget(&v.path)?;
        }
    }
    remove_tree(&config.cache.dir.join(key.dir())).map_err(CacheError::Io)?;
    remove_tree(&config.cache.dir.join(id.as_str())).map_err(CacheError::Io)?;
    Ok(())
}

/// Runs every pending row through the catalog's sweep; a row whose removal fails stays for the
/// next run and is logged.
pub fn sweep(
    config: &Config,
    store: &dyn Store,
    cache: &Cache,
    catalog: &mut Catalog,
    grace: Duration,
) -> Result<SweepReport, Error> {
    let mut report = SweepReport::default();
    for pending in catalog.pending()? {
        // A young upload intent counts as in flight itself, so the catalog defers it.
        let swept = catalog.sweep::<Error>(&pending, grace, |p| remove(config, store, cache, p));
        match swept {
            Ok(Swept::Removed) => report.removed += 1,
            Ok(Swept::Cancelled) => report.cancelled += 1,
            Ok(Swept::Deferred) => report.deferred += 1,
            Ok(Swept::Gone) => {}
            Err(e) => {
                log::warn!("sweep {} {:?}: {e}", pending.image, pending.what);
                report.deferred += 1;
            }
        }
    }
    Ok(report)
}

/// Handles the rows a deletion just created, at once; a failure is logged and left to the
/// next sweep (the deletion itself is committed). An upload of the same bytes in flight (an
/// intent younger than `[evict] upload_grace`) keeps the original: its row will point at it.
pub fn finish_delete(
    config: &Config,
    store: &dyn Store,
    cache: &Cache,
    catalog: &mut Catalog,
    pending: &[PendingDelete],
) {
    for p in pending {
        let grace = config.evict.upload_grace;
        let done = catalog.sweep::<Error>(p, grace, |p| remove(config, store, cache, p));
        if let Err(e) = done {
            log::warn!("delete {}: {:?} left for the sweep: {e}", p.image, p.what);
        }
    }
}

fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
