//! `GET /status`: whether this installation can serve, as JSON, from probes that each open
//! what they check afresh (never a pooled connection, which could hide a file replaced or
//! damaged since): the catalog, the cache index, the store, and the cache and state
//! directories (writable, with free space). `200` when every probe passes, `503` naming the
//! failing ones otherwise.
//!
//! It is its own route: nothing here runs on the redirector's path. It reports; it repairs
//! nothing (`fsck` does).

#![allow(unsafe_code)] // one libc call, `statvfs`, in `free_space`; no safe crate in the tree has it.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::domain::format::Format;
use crate::domain::original::OriginalId;
use crate::io::cache::Cache;
use crate::io::catalog::Catalog;
use crate::io::config::{Config, StoreConfig};
use crate::io::http::Response;

/// A file system with less free space than this fraction of its size (for unprivileged
/// users) fails its probe: writes are about to fail.
const MIN_FREE_FRACTION: f64 = 0.01;
/// Nor with less than this many bytes free, whatever its size.
const MIN_FREE_BYTES: u64 = 16 << 20;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub name: &'static str,
    /// `None` when it passed, else why not (no paths: the body is public).
    pub failure: Option<String>,
    /// What it saw, for the JSON (free bytes, totals).
    pub facts: Facts,
    pub ms: u128,
}

/// What a probe saw, for the JSON.
type Facts = Map<String, Value>;

/// Runs every probe, in order: catalog, cache index, store, cache directory, state directory.
pub fn check(config: &Config) -> Vec<Probe> {
    vec![
        probe("catalog", |facts| {
            let catalog = Catalog::open(&config.state.catalog_path()).map_err(|e| e.to_string())?;
            let images = catalog.probe().map_err(|e| e.to_string())?;
            facts.insert("has_images".into(), images.into());
            Ok(())
        }),
        probe("cache_index", |facts| {
            let cache = Cache::open(
                &config.cache.dir,
                &config.state.index_path(),
                config.cache.max_bytes,
                config.cache.access_interval,
            )
            .map_err(|e| e.to_string())?;
            let totals = cache.totals().map_err(|e| e.to_string())?;
            facts.insert("variants".into(), totals.count.into());
            facts.insert("bytes".into(), totals.bytes.into());
            Ok(())
        }),
        probe("store", |facts| {
            let store = crate::io::store::open(&config.store).map_err(|e| e.to_string())?;
            facts.insert("type".into(), store_type(&config.store).into());
            // An id no upload has: the answer (no) matters less than getting one.
            let nobody = OriginalId::of(b"imgserv status probe").map_err(|e| e.to_string())?;
            store
                .exists(&nobody, Format::Jpeg)
                .map_err(|e| e.to_string())?;
            if let StoreConfig::Fs { dir } = &config.store
                && dir.exists()
            {
                writable(dir).map_err(|e| format!("not writable: {e}"))?;
            }
            Ok(())
        }),
        probe("cache_dir", |facts| directory(&config.cache.dir, facts)),
        probe("state_dir", |facts| directory(&config.state.dir, facts)),
    ]
}

/// Runs one probe, timed.
fn probe(name: &'static str, f: impl FnOnce(&mut Facts) -> Result<(), String>) -> Probe {
    let started = Instant::now();
    let mut facts = Map::new();
    let failure = f(&mut facts).err();
    Probe {
        name,
        failure,
        facts,
        ms: started.elapsed().as_millis(),
    }
}

/// The `/status` response for `probes`.
pub fn response(probes: &[Probe]) -> Response {
    let failing: Vec<&str> = probes
        .iter()
        .filter(|p| p.failure.is_some())
        .map(|p| p.name)
        .collect();
    let mut each = Map::new();
    for p in probes {
        let mut o = p.facts.clone();
        o.insert("ok".into(), p.failure.is_none().into());
        if let Some(why) = &p.failure {
            o.insert("error".into(), why.clone().into());
        }
        o.insert("ms".into(), (p.ms as u64).into());
        each.insert(p.name.into(), Value::Object(o));
    }
    let status = if failing.is_empty() { 200 } else { 503 };
    let body = json!({
        "status": if failing.is_empty() { "ok" } else { "failing" },
        "failing": failing,
        "probes": each,
    });
    Response::new(status)
        .with_header("Content-Type", "application/json")
        .with_header("Cache-Control", "no-store")
        .with_body(format!("{body}\n").into_bytes())
}

fn store_type(store: &StoreConfig) -> &'static str {
    match store {
        StoreConfig::Fs { .. } => "fs",
        StoreConfig::S3 { .. } => "s3",
    }
}

/// A directory imgserv writes to: there, writable, with free space.
fn directory(dir: &Path, facts: &mut Facts) -> Result<(), String> {
    writable(dir).map_err(|e| format!("not writable: {e}"))?;
    let (free, total) = free_space(dir).map_err(|e| format!("statvfs: {e}"))?;
    facts.insert("free_bytes".into(), free.into());
    facts.insert("size_bytes".into(), total.into());
    if free < MIN_FREE_BYTES || (free as f64) < total as f64 * MIN_FREE_FRACTION {
        return Err(format!("nearly full: {free} of {total} bytes free"));
    }
    Ok(())
}

/// Creates, writes and removes a temporary file in `dir`.
fn writable(dir: &Path) -> io::Result<()> {
    let tmp = dir.join(format!(
        ".status.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(b"x"));
    let removed = fs::remove_file(&tmp);
    written.and(removed)
}

/// (bytes available to unprivileged users, size) of the file system holding `dir`.
#[allow(clippy::unnecessary_cast)] // the field types differ between platforms
fn free_space(dir: &Path) -> io::Result<(u64, u64)> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `st` points to a
    // `statvfs` the call fills in; it is read only after the call succeeded.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize as u64;
    Ok((st.f_bavail as u64 * frsize, st.f_blocks as u64 * frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(t: &tempfile::TempDir) -> Config {
        for d in ["originals", "cache", "state", "store"] {
            fs::create_dir(t.path().join(d)).unwrap();
        }
        crate::io::config::from_str(
            "[originals]\nroot = \"originals\"\n[cache]\ndir = \"cache\"\n[state]\ndir = \"state\"\n\
             [store]\ndir = \"store\"\n",
            t.path(),
        )
        .unwrap()
    }

    #[test]
    fn every_probe_passes_on_a_fresh_installation() {
        let t = tempfile::tempdir().unwrap();
        let probes = check(&config(&t));
        let names: Vec<_> = probes.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            ["catalog", "cache_index", "store", "cache_dir", "state_dir"]
        );
        assert!(probes.iter().all(|p| p.failure.is_none()), "{probes:?}");
        let resp = response(&probes);
        assert_eq!(resp.status, 200);
        // The probes leave nothing behind.
        let left: Vec<_> = fs::read_dir(t.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_damaged_catalog_fails_its_probe_by_name() {
        let t = tempfile::tempdir().unwrap();
        let config = config(&t);
        fs::write(config.state.catalog_path(), vec![b'x'; 4096]).unwrap();
        let probes = check(&config);
        let resp = response(&probes);
        assert_eq!(resp.status, 503);
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["failing"], json!(["catalog"]));
        assert_eq!(body["probes"]["catalog"]["ok"], json!(false));
        assert_eq!(body["probes"]["cache_index"]["ok"], json!(true));
    }
}
