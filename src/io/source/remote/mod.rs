//! Remote sources: fetching `http(s)://` originals from allowed hosts and keeping a local copy of
//! each, revalidated after a TTL.
//!
//! This module owns the network side (URL checks, the SSRF guard, redirects, timeouts, size limits)
//! and the format of one local copy in `RemoteOptions::dir`; the directory as a whole (the fetch
//! lock, the byte budget, eviction) is `copies`'. It does not decode images and does not cache
//! rendered variants: callers get a path to complete bytes and a content version to key on.
//!
//! Every file lands by writing a uniquely named temporary file in the same directory and renaming
//! it over the final name. A rename is atomic on POSIX file systems, so readers see either the old
//! complete `.img` or the new complete one, never a half-written file. Fetches and revalidations
//! of one URL hold its fetch lock, so they never race each other between the `.img` and its
//! `.meta` (two renames); an eviction in between leaves a sidecar without its image, which reads
//! as no copy and is fetched again.
//!
//! What a client reads of a failure is a fixed phrase ("timed out", "HTTP 404"); addresses,
//! resolved IPs and the library's own words go to the log.
//!
//! Its parts: `target` (URL syntax, the allow-list, redirect hops), `address` (refused
//! addresses and the resolver that applies them), `download` (the HTTP exchange and how its
//! failures read), `copy` (one URL's files on disk). This file holds the options and `fetch`,
//! which decides between a fresh copy, a revalidation and a stale copy.

mod address;
mod copy;
mod download;
mod target;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{SourceError, copies};
use copy::{LocalCopy, Meta};
use download::{Download, Failure, download};
use target::{Target, check_target};

/// How remote originals may be fetched and where their local copies live.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Exact host names, or `*.example.com` for any subdomain (not `example.com` itself).
    /// Empty: remote sources are off.
    pub allow_hosts: Vec<String>,
    /// Allow loopback, private, link-local and other non-public addresses (tests, intranets).
    pub allow_private: bool,
    /// Redirect hops followed, each one re-checked like the first URL.
    pub max_redirects: u32,
    /// Limit for setting up one connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit for the whole fetch: every hop, headers and body.
    pub timeout: Duration,
    /// Largest body accepted, counted while streaming (decoded bytes).
    pub max_source_bytes: u64,
    /// All local copies together keep within this many bytes: after each fetch, the least
    /// recently used others are removed (see `copies`).
    pub max_bytes: u64,
    /// A use of a copy records its time (for eviction) at most this often.
    pub access_interval: Duration,
    /// A local copy younger than this is used without any network traffic; an older one is
    /// revalidated with a conditional request. Resolution: whole seconds.
    pub ttl: Duration,
    /// Where local copies live; created if missing.
    pub dir: PathBuf,
    /// `User-Agent` sent with every request.
    pub user_agent: String,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            allow_hosts: Vec::new(),
            allow_private: false,
            max_redirects: 3,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(20),
            max_source_bytes: 32 << 20,
            max_bytes: 1 << 30,
            access_interval: Duration::from_secs(60),
            ttl: Duration::from_secs(3600),
            dir: PathBuf::from("/var/lib/imgserv/remote"),
            user_agent: concat!("imgserv/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// A local copy of a remote original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The complete local copy (never a partial file).
    pub path: PathBuf,
    /// First 16 hex digits of the SHA-256 of the bytes: changes iff the bytes change.
    pub version: String,
    /// Size of the copy in bytes.
    pub bytes: u64,
}

/// Whether `src` names a remote original (`http://` or `https://`, scheme in any case).
pub fn is_remote(src: &str) -> bool {
    let prefix = |p: &str| {
        src.get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    prefix("http://") || prefix("https://")
}

/// Returns a complete local copy of `url`, fetching or revalidating it as `opts` says.
///
/// A copy younger than `opts.ttl` is returned without network traffic. An older one is
/// revalidated; if that fails with a network error or a 5xx, the stale copy is served (and a
/// warning logged); a 404 or 410 drops it. Fetches and revalidations of one URL hold its fetch
/// lock, so concurrent misses (threads or processes) make one request; after one, the least
/// recently used other copies go until all fit in `opts.max_bytes`.
pub fn fetch(opts: &RemoteOptions, url: &str) -> Result<Fetched, SourceError> {
    let target = Target::parse(url)?;
    check_target(opts, &target)?;

    let copy = LocalCopy::new(&opts.dir, url);
    if let Some(fresh) = copy.fresh(url, opts) {
        return Ok(fresh);
    }
    fs::create_dir_all(&opts.dir)?;
    let lock = copies::lock(&opts.dir, &copy.key)?;
    // Another process may have fetched or revalidated it while this one waited.
    if let Some(fresh) = copy.fresh(url, opts) {
        return Ok(fresh);
    }
    let existing = copy.load(url).map(|(meta, _)| meta);
    let fetched = revalidate(opts, url, &target, &copy, existing);
    drop(lock);
    if fetched.is_ok() {
        let trimmed = copies::trim(&opts.dir, opts.max_bytes, Some(&copy.key), false);
        match trimmed {
            Ok(t) if !t.removed.is_empty() || t.abandoned.0 > 0 => {
                log::info!("{}: {}", opts.dir.display(), t.summary());
            }
            Ok(_) => {}
            Err(e) => log::warn!("{}: cannot keep the budget: {e}", opts.dir.display()),
        }
    }
    fetched
}

/// Fetches `url` again, conditionally when a copy `existing` is there; under the fetch lock.
fn revalidate(
    opts: &RemoteOptions,
    url: &str,
    target: &Target,
    copy: &LocalCopy,
    existing: Option<Meta>,
) -> Result<Fetched, SourceError> {
    let now = unix_now();
    match (download(opts, target, copy, existing.as_ref()), existing) {
        (Ok(Download::NotModified { validators }), Some(mut meta)) => {
            // A 304 may carry fresher validators; keep the old ones otherwise.
            meta.validators.etag = validators.etag.or(meta.validators.etag);
            meta.validators.last_modified =
                validators.last_modified.or(meta.validators.last_modified);
            meta.fetched_at = now;
            copy.write_meta(&opts.dir, &meta)?;
            copy.touch(opts);
            Ok(copy.fetched(&meta))
        }
        (Ok(Download::NotModified { .. }), None) => {
            // Unreachable in practice: validators are only sent when a copy exists.
            Err(SourceError::Remote(
                "unexpected 304 Not Modified".to_owned(),
            ))
        }
        (Ok(Download::Body(body)), _) => {
            body.temp.persist(&copy.img)?;
            let meta = Meta {
                url: url.to_owned(),
                validators: body.validators,
                fetched_at: now,
                version: body.version,
                bytes: body.bytes,
            };
            copy.write_meta(&opts.dir, &meta)?;
            Ok(copy.fetched(&meta))
        }
        (Err(Failure::Status(status @ (404 | 410))), existing) => {
            if existing.is_some() {
                log::warn!("remote original {url} is gone ({status}): dropping the local copy");
                copy.remove();
            }
            Err(Failure::Status(status).into())
        }
        (Err(failure), Some(meta)) if failure.is_transient() => {
            log::warn!("revalidating {url} failed ({failure}): serving the stale local copy");
            copy.touch(opts);
            Ok(copy.fetched(&meta))
        }
        (Err(failure), _) => Err(failure.into()),
    }
}

fn is_fresh(fetched_at: u64, now: u64, ttl: Duration) -> bool {
    // A timestamp from the future (clock stepped back) counts as stale rather than fresh forever.
    now.checked_sub(fetched_at)
        .is_some_and(|age| age < ttl.as_secs())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
