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

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::{SourceError, copies};

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

// ---------------------------------------------------------------------------------------------
// Network

/// What a successful exchange produced.
enum Download {
    /// `304`: the local copy is still current.
    NotModified { validators: Validators },
    /// `2xx`: new bytes, complete in a temporary file.
    Body(Body),
}

struct Body {
    temp: TempFile,
    version: String,
    bytes: u64,
    validators: Validators,
}

/// Why a download failed; decides between stale-if-error, dropping the copy and plain errors.
#[derive(Debug)]
enum Failure {
    /// The final answer had this non-2xx status.
    Status(u16),
    /// Connection refused, DNS failure, timeout, TLS or protocol trouble: what the client may
    /// read (a fixed phrase), and the library's own words for the log, which may hold
    /// addresses.
    Network {
        reason: &'static str,
        detail: String,
    },
    /// Anything else (refusals, size limit, local I/O), returned as is.
    Source(SourceError),
}

impl Failure {
    /// Failures that say nothing about the original itself: a stale copy is better than none.
    fn is_transient(&self) -> bool {
        match self {
            Failure::Network { .. } => true,
            Failure::Status(status) => (500..=599).contains(status),
            Failure::Source(_) => false,
        }
    }

    fn network(reason: &'static str, detail: impl std::fmt::Display) -> Failure {
        Failure::Network {
            reason,
            detail: detail.to_string(),
        }
    }

    fn from_ureq(err: ureq::Error) -> Failure {
        match err {
            ureq::Error::Other(inner) => match inner.downcast::<Refused>() {
                Ok(refused) => {
                    // The resolved address stays in the log (the resolver logged it).
                    let why = format!("host {} resolves to a non-public address", refused.host);
                    Failure::Source(SourceError::Forbidden(why))
                }
                Err(other) => Failure::network("connection failed", other),
            },
            ureq::Error::Timeout(t) => Failure::network("timed out", t),
            ureq::Error::HostNotFound => Failure::network("host not found", "no address"),
            ureq::Error::Io(err) => Failure::from_io(err),
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) => Failure::network("TLS failed", err),
            ureq::Error::ConnectionFailed => Failure::network("connection failed", err),
            other => Failure::network("protocol error", other),
        }
    }

    /// A read error from the body, which may wrap a ureq error such as a timeout.
    fn from_io(err: io::Error) -> Failure {
        if err.get_ref().is_some_and(|inner| inner.is::<ureq::Error>()) {
            if let Some(inner) = err.into_inner()
                && let Ok(inner) = inner.downcast::<ureq::Error>()
            {
                return Failure::from_ureq(*inner);
            }
            return Failure::network("i/o error", "wrapped ureq error");
        }
        let reason = match err.kind() {
            io::ErrorKind::ConnectionRefused => "connection refused",
            io::ErrorKind::ConnectionReset => "connection reset",
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out",
            io::ErrorKind::UnexpectedEof => "connection closed early",
            _ => "i/o error",
        };
        Failure::network(reason, err)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(status) => write!(f, "HTTP {status}"),
            Failure::Network { reason, detail } => write!(f, "{reason} ({detail})"),
            Failure::Source(err) => write!(f, "{err}"),
        }
    }
}

impl From<Failure> for SourceError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Status(status) => SourceError::Remote(format!("HTTP {status}")),
            Failure::Network { reason, .. } => SourceError::Remote(reason.to_owned()),
            Failure::Source(err) => err,
        }
    }
}

impl From<SourceError> for Failure {
    fn from(err: SourceError) -> Self {
        Failure::Source(err)
    }
}

impl From<io::Error> for Failure {
    /// Local I/O only (the temporary file); network reads go through `Failure::from_io`.
    fn from(err: io::Error) -> Self {
        Failure::Source(SourceError::Io(err))
    }
}

/// Fetches `target`, following redirects by hand so every hop is checked like the first URL.
fn download(
    opts: &RemoteOptions,
    target: &Target,
    copy: &LocalCopy,
    existing: Option<&Meta>,
) -> Result<Download, Failure> {
    let agent = agent(opts);
    let deadline = Instant::now() + opts.timeout;
    let mut current = target.clone();
    for _hop in 0..=opts.max_redirects {
        let remaining = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| Failure::network("timed out", "the whole fetch took too long"))?;
        // ureq's global timeout restarts per request; the remaining budget keeps `opts.timeout`
        // a limit for the whole chain.
        let mut request = agent
            .get(current.url.as_str())
            .config()
            .timeout_global(Some(remaining))
            .build();
        // Validators go back only to the origin that gave them: after a redirect to another
        // host they would tell it what this server holds from the first.
        let conditional = existing
            .map(|meta| &meta.validators)
            .filter(|v| v.origin.as_deref() == Some(current.origin().as_str()));
        if let Some(validators) = conditional {
            if let Some(etag) = &validators.etag {
                request = request.header("If-None-Match", etag.as_str());
            }
            if let Some(date) = &validators.last_modified {
                request = request.header("If-Modified-Since", date.as_str());
            }
        }

        let started = Instant::now();
        let response = request.call().map_err(|err| {
            let failure = Failure::from_ureq(err);
            log::warn!("GET {}: {failure}", current.url);
            failure
        })?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut validators = Validators {
            etag: header("etag").filter(|v| is_single_line(v)),
            last_modified: header("last-modified").filter(|v| is_single_line(v)),
            origin: None,
        };
        if validators.etag.is_some() || validators.last_modified.is_some() {
            validators.origin = Some(current.origin());
        }
        let log_done = |bytes: u64| {
            let ms = started.elapsed().as_millis();
            log::info!("GET {}: {status}, {bytes} bytes, {ms} ms", current.url);
        };

        match status {
            301 | 302 | 303 | 307 | 308 => {
                log_done(0);
                // A broken redirect is the origin's fault, not a network hiccup: no stale copy.
                let bad = |why: String| Failure::Source(SourceError::Remote(why));
                let location = header("location")
                    .ok_or_else(|| bad(format!("HTTP {status} without Location")))?;
                let next = resolve_location(&current.uri, &location)
                    .ok_or_else(|| bad("bad redirect Location".to_owned()))?;
                let next = Target::parse(&next).map_err(|err| match err {
                    SourceError::Invalid(why) => {
                        // The Location may name an internal address: the log gets it, the
                        // client only the kind of failure.
                        log::warn!("GET {}: bad redirect: {why}", current.url);
                        bad("bad redirect Location".to_owned())
                    }
                    other => Failure::Source(other),
                })?;
                check_redirect(&current, &next)?;
                current = next;
                check_target(opts, &current)?;
            }
            304 if conditional.is_some() => {
                log_done(0);
                return Ok(Download::NotModified { validators });
            }
            // 206 is never asked for; a partial body must not become the copy.
            200..=299 if status != 206 => {
                let declared = response
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
                if let Some(len) = declared.filter(|&len| len > opts.max_source_bytes) {
                    log::warn!("GET {}: Content-Length {len} over the limit", current.url);
                    return Err(SourceError::TooLarge {
                        limit: opts.max_source_bytes,
                    }
                    .into());
                }
                let (temp, version, bytes) = save_body(opts, copy, response.into_body())
                    .inspect_err(|failure| {
                        log::warn!("GET {}: {status}, body failed: {failure}", current.url);
                    })?;
                log::info!(
                    "GET {}: {status}, {bytes} bytes, {} ms",
                    current.url,
                    started.elapsed().as_millis()
                );
                return Ok(Download::Body(Body {
                    temp,
                    version,
                    bytes,
                    validators,
                }));
            }
            _ => {
                log_done(0);
                return Err(Failure::Status(status));
            }
        }
    }
    log::warn!("GET {}: too many redirects", target.url);
    Err(SourceError::Remote("too many redirects".to_owned()).into())
}

/// An agent that never uses a proxy, never follows redirects itself, returns every status as a
/// response, and resolves through `GuardedResolver`.
fn agent(opts: &RemoteOptions) -> ureq::Agent {
    let config = Config::builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_global(Some(opts.timeout))
        .user_agent(opts.user_agent.as_str());
    // The unit tests' https origin has a throwaway certificate; nothing else changes.
    #[cfg(test)]
    let config = config.tls_config(
        ureq::tls::TlsConfig::builder()
            .disable_verification(true)
            .build(),
    );
    let config = config.build();
    let resolver = GuardedResolver {
        allow_private: opts.allow_private,
    };
    ureq::Agent::with_parts(config, DefaultConnector::default(), resolver)
}

/// Streams `body` into a temporary file in `opts.dir`, counting and hashing as it goes.
fn save_body(
    opts: &RemoteOptions,
    copy: &LocalCopy,
    body: ureq::Body,
) -> Result<(TempFile, String, u64), Failure> {
    let mut temp = TempFile::create(&opts.dir, &copy.key)?;
    let mut reader = body.into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Failure::from_io(err)),
        };
        total += n as u64;
        if total > opts.max_source_bytes {
            return Err(SourceError::TooLarge {
                limit: opts.max_source_bytes,
            }
            .into());
        }
        hasher.update(&buf[..n]);
        temp.file.write_all(&buf[..n])?;
    }
    Ok((temp, hex(&hasher.finalize()[..8]), total))
}

// ---------------------------------------------------------------------------------------------
// Local copies

/// `ETag` and `Last-Modified` of a copy, sent back as `If-None-Match` / `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
    /// `scheme://host:port` of the server that sent them (after redirects, not always the
    /// URL's own); `None` for sidecars written before it was recorded: then none are sent.
    origin: Option<String>,
}

/// The sidecar of a local copy, stored as `key=value` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    url: String,
    validators: Validators,
    /// Unix seconds of the last successful fetch or revalidation.
    fetched_at: u64,
    version: String,
    bytes: u64,
}

impl Meta {
    fn render(&self) -> String {
        let mut out = format!("url={}\n", self.url);
        if let Some(etag) = &self.validators.etag {
            out += &format!("etag={etag}\n");
        }
        if let Some(date) = &self.validators.last_modified {
            out += &format!("last_modified={date}\n");
        }
        if let Some(origin) = &self.validators.origin {
            out += &format!("validators_from={origin}\n");
        }
        out += &format!(
            "fetched_at={}\nversion={}\nbytes={}\n",
            self.fetched_at, self.version, self.bytes
        );
        out
    }

    /// `None` for anything unexpected: the copy is then simply fetched again.
    fn parse(text: &str) -> Option<Meta> {
        let (mut url, mut fetched_at, mut version, mut bytes) = (None, None, None, None);
        let mut validators = Validators::default();
        for line in text.lines() {
            let (key, value) = line.split_once('=')?;
            match key {
                "url" => url = Some(value.to_owned()),
                "etag" => validators.etag = Some(value.to_owned()),
                "last_modified" => validators.last_modified = Some(value.to_owned()),
                "validators_from" => validators.origin = Some(value.to_owned()),
                "fetched_at" => fetched_at = Some(value.parse().ok()?),
                "version" => version = Some(value.to_owned()),
                "bytes" => bytes = Some(value.parse().ok()?),
                _ => {}
            }
        }
        Some(Meta {
            url: url?,
            validators,
            fetched_at: fetched_at?,
            version: version?,
            bytes: bytes?,
        })
    }
}

/// The two files of one URL's copy: `<key>.img` and `<key>.meta`.
struct LocalCopy {
    /// First 32 hex digits of the SHA-256 of the URL.
    key: String,
    img: PathBuf,
    meta: PathBuf,
}

impl LocalCopy {
    fn new(dir: &Path, url: &str) -> LocalCopy {
        let key = hex(&Sha256::digest(url.as_bytes())[..16]);
        LocalCopy {
            img: dir.join(format!("{key}.img")),
            meta: dir.join(format!("{key}.meta")),
            key,
        }
    }

    /// The sidecar, if it belongs to `url` and the image beside it (whose metadata comes
    /// second) has the recorded size.
    fn load(&self, url: &str) -> Option<(Meta, fs::Metadata)> {
        let meta = Meta::parse(&fs::read_to_string(&self.meta).ok()?)?;
        let img = fs::metadata(&self.img).ok()?;
        (meta.url == url && img.len() == meta.bytes).then_some((meta, img))
    }

    /// The copy, if it is younger than the TTL; records the use.
    fn fresh(&self, url: &str, opts: &RemoteOptions) -> Option<Fetched> {
        let (meta, img) = self.load(url)?;
        if !is_fresh(meta.fetched_at, unix_now(), opts.ttl) {
            return None;
        }
        copies::touch(&self.img, &img, opts.access_interval);
        Some(self.fetched(&meta))
    }

    /// Records a use of the copy, as [`LocalCopy::fresh`] does.
    fn touch(&self, opts: &RemoteOptions) {
        if let Ok(img) = fs::metadata(&self.img) {
            copies::touch(&self.img, &img, opts.access_interval);
        }
    }

    fn write_meta(&self, dir: &Path, meta: &Meta) -> io::Result<()> {
        let mut temp = TempFile::create(dir, &self.key)?;
        temp.file.write_all(meta.render().as_bytes())?;
        temp.persist(&self.meta)
    }

    fn remove(&self) {
        for path in [&self.meta, &self.img] {
            if let Err(err) = fs::remove_file(path)
                && err.kind() != io::ErrorKind::NotFound
            {
                log::warn!("cannot remove {}: {err}", path.display());
            }
        }
    }

    fn fetched(&self, meta: &Meta) -> Fetched {
        Fetched {
            path: self.img.clone(),
            version: meta.version.clone(),
            bytes: meta.bytes,
        }
    }
}

/// A uniquely named `*.tmp` file that is deleted on drop unless renamed into place.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create(dir: &Path, key: &str) -> io::Result<TempFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("{key}.{}-{nanos}-{n}.tmp", std::process::id()));
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        persisted: false,
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Renames the file over `to`, atomically replacing what was there.
    fn persist(mut self, to: &Path) -> io::Result<()> {
        self.file.flush()?;
        fs::rename(&self.path, to)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_single_line(value: &str) -> bool {
    !value.contains(['\n', '\r'])
}

// ---------------------------------------------------------------------------------------------
// Checks: URL, host allow-list, addresses

/// A URL that passed the strict syntax checks.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    uri: Uri,
    /// Lower case, without IPv6 brackets or a trailing dot.
    host: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, SourceError> {
        let invalid = |why: &str| SourceError::Invalid(format!("{why}: {url}"));
        if !is_remote(url) {
            return Err(invalid("not an http(s) URL"));
        }
        let uri: Uri = url.parse().map_err(|_| invalid("not a valid URL"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("URL without a host"))?;
        if authority.as_str().contains('@') {
            // Not echoed: the message may reach logs and clients.
            return Err(SourceError::Invalid(
                "credentials in URLs are not allowed".to_owned(),
            ));
        }
        // `Authority::port()` silently yields `None` for a bad port (and ureq would then use
        // the default one), so check the text after the host ourselves.
        let port = authority.as_str()[authority.host().len()..].strip_prefix(':');
        if port.is_some_and(|p| !p.is_empty() && !p.parse::<u16>().is_ok_and(|p| p != 0)) {
            return Err(invalid("bad port in URL"));
        }
        let host = normalize_host(authority.host());
        if host.is_empty() {
            return Err(invalid("URL without a host"));
        }
        Ok(Target {
            url: uri.to_string(),
            uri,
            host,
        })
    }
}

impl Target {
    fn is_https(&self) -> bool {
        self.uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    }

    /// `scheme://host:port`, with the scheme's default port when none is given: what the
    /// validators of an answer belong to.
    fn origin(&self) -> String {
        let (scheme, default) = if self.is_https() {
            ("https", 443)
        } else {
            ("http", 80)
        };
        let port = self.uri.port_u16().unwrap_or(default);
        match self.host.contains(':') {
            true => format!("{scheme}://[{}]:{port}", self.host),
            false => format!("{scheme}://{}:{port}", self.host),
        }
    }
}

fn normalize_host(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// The checks that need no network: allow-list, and literal IP addresses.
fn check_target(opts: &RemoteOptions, target: &Target) -> Result<(), SourceError> {
    let refuse = |why: String| {
        log::warn!("refused remote source {}: {why}", target.url);
        Err(SourceError::Forbidden(why))
    };
    if opts.allow_hosts.is_empty() {
        return refuse("remote sources are disabled".to_owned());
    }
    if !host_allowed(&opts.allow_hosts, &target.host) {
        return refuse(format!("host {} is not allowed", target.host));
    }
    if !opts.allow_private
        && let Ok(ip) = target.host.parse::<IpAddr>()
        && let Some(why) = refusal(ip)
    {
        return refuse(format!("{ip} is a {why} address"));
    }
    Ok(())
}

/// The checks of a redirect hop beyond those of any URL: no https to http downgrade (the
/// original would then travel, and could be replaced, in the clear).
fn check_redirect(from: &Target, to: &Target) -> Result<(), SourceError> {
    if from.is_https() && !to.is_https() {
        log::warn!("GET {}: refused redirect to {}", from.url, to.url);
        return Err(SourceError::Forbidden(
            "redirect from https to http refused".to_owned(),
        ));
    }
    Ok(())
}

/// Whether `host` (normalized) matches an entry: exact, or `*.suffix` for strict subdomains.
fn host_allowed(allow: &[String], host: &str) -> bool {
    allow.iter().any(|entry| {
        let entry = normalize_host(entry.trim());
        match entry.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .and_then(|sub| sub.strip_suffix('.'))
                .is_some_and(|sub| !sub.is_empty()),
            None => host == entry,
        }
    })
}

/// Resolves a `Location` header against the URL that sent it (RFC 3986 §5.2, enough of it for
/// real redirects). The result is parsed and checked again by the caller.
fn resolve_location(base: &Uri, location: &str) -> Option<String> {
    let location = location.trim();
    let location = location.split('#').next().unwrap_or_default();
    if location.is_empty() {
        return None;
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let has_scheme = location.split_once(':').is_some_and(|(s, _)| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if has_scheme {
        return Some(location.to_owned());
    }
    if location.starts_with("//") {
        return Some(format!("{scheme}:{location}"));
    }
    let (path, query) = match location.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (location, None),
    };
    let path = if path.is_empty() {
        base.path().to_owned()
    } else if path.starts_with('/') {
        remove_dot_segments(path)
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        remove_dot_segments(&format!("/{}{path}", dir.trim_start_matches('/')))
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    Some(format!("{scheme}://{authority}{path}{query}"))
}

/// RFC 3986 §5.2.4 for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
        if last && matches!(*segment, "." | "..") {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

/// Why a connection to `ip` is refused when private addresses are not allowed, or `None` for a
/// public address. Covers loopback, private, shared, link-local (cloud metadata), multicast,
/// reserved ranges, and IPv6 forms that embed or route to IPv4 addresses.
fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => refusal_v4(ip),
        IpAddr::V6(ip) => refusal_v6(ip),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (255, 255, 255) if ip == Ipv4Addr::BROADCAST => "broadcast",
        (0, _, _) => "unspecified",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private",
        // 100.64/10, which includes Alibaba Cloud's metadata service 100.100.100.200.
        (100, 64..=127, _) => "shared (CGNAT)",
        (127, _, _) => "loopback",
        // Includes the AWS/GCP/Azure metadata service 169.254.169.254.
        (169, 254, _) => "link-local",
        (192, 0, 0) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (mapped): the kernel connects to the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refusal_v4(v4);
    }
    match s {
        // ::a.b.c.d (IPv4-compatible, deprecated): never legitimate.
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(refusal_v4(embedded(hi, lo)).unwrap_or("reserved")),
        // NAT64 well-known prefix: reaches the embedded IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => refusal_v4(embedded(hi, lo)),
        // 6to4: reaches the embedded IPv4 address.
        [0x2002, hi, lo, ..] => refusal_v4(embedded(hi, lo)),
        // Teredo tunnels embed addresses we cannot vet.
        [0x2001, 0, ..] => Some("reserved"),
        [0x2001, 0xdb8, ..] => Some("documentation"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Some("unique-local"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Some("link-local"),
        [first, ..] if first & 0xffc0 == 0xfec0 => Some("site-local"),
        [first, ..] if first & 0xff00 == 0xff00 => Some("multicast"),
        // Only 2000::/3 is global unicast; everything else is reserved or special.
        [first, ..] if first & 0xe000 != 0x2000 => Some("reserved"),
        _ => None,
    }
}

/// A resolver that drops refused addresses after DNS, so the check applies to the address
/// actually connected to (a name cannot rebind between a check and the connect).
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

/// Every address of a host was refused; carried through ureq as `Error::Other`.
#[derive(Debug, thiserror::Error)]
#[error("host {host} resolves to a {why} address ({ip})")]
struct Refused {
    host: String,
    ip: IpAddr,
    why: &'static str,
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let found = DefaultResolver::default().resolve(uri, config, timeout)?;
        if self.allow_private {
            return Ok(found);
        }
        let mut kept = self.empty();
        let mut refused = None;
        for addr in &found {
            match refusal(addr.ip()) {
                None => kept.push(*addr),
                Some(why) => refused = Some((addr.ip(), why)),
            }
        }
        match refused {
            Some((ip, why)) if kept.is_empty() => {
                let host = uri.host().map(normalize_host).unwrap_or_default();
                let refused = Refused { host, ip, why };
                log::warn!("refused remote source {uri}: {refused}");
                Err(ureq::Error::Other(Box::new(refused)))
            }
            _ => Ok(kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use tiny_http::{Header, Response, ResponseBox, StatusCode};

    // ---- pure parts ----------------------------------------------------------------------

    #[test]
    fn is_remote_accepts_http_and_https_in_any_case() {
        for (src, remote) in [
            ("http://a/b", true),
            ("HTTPS://a/b", true),
            ("HtTp://a", true),
            ("ftp://a/b", false),
            ("http:/a", false),
            ("photos/http://a", false),
            ("", false),
            ("é", false),
        ] {
            assert_eq!(is_remote(src), remote, "{src}");
        }
    }

    #[test]
    fn refusal_table() {
        let table: &[(&str, Option<&str>)] = &[
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.215.14", None),
            ("172.15.255.255", None),
            ("172.32.0.1", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("223.255.255.255", None),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.254", Some("loopback")),
            ("10.0.0.1", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("shared (CGNAT)")),
            ("100.100.100.200", Some("shared (CGNAT)")),
            ("169.254.169.254", Some("link-local")),
            ("192.0.0.170", Some("reserved")),
            ("192.0.2.1", Some("documentation")),
            ("198.18.0.1", Some("benchmarking")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            ("240.0.0.1", Some("reserved")),
            ("255.255.255.255", Some("broadcast")),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:80b::200e", None),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::808:808", None),
            ("2002:808:808::1", None),
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fe80::1", Some("link-local")),
            ("febf::1", Some("link-local")),
            ("fec0::1", Some("site-local")),
            ("fc00::1", Some("unique-local")),
            ("fd00:ec2::254", Some("unique-local")),
            ("ff02::1", Some("multicast")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("link-local")),
            ("::ffff:10.1.2.3", Some("private")),
            ("::127.0.0.1", Some("loopback")),
            ("::8.8.8.8", Some("reserved")),
            ("64:ff9b::a9fe:a9fe", Some("link-local")),
            ("2002:7f00:1::", Some("loopback")),
            ("2001::1", Some("reserved")),
            ("2001:db8::1", Some("documentation")),
            ("100::1", Some("reserved")),
        ];
        for (ip, want) in table {
            let got = refusal(ip.parse().unwrap());
            assert_eq!(got, *want, "{ip}");
        }
    }

    #[test]
    fn wildcard_entries_match_strict_subdomains_only() {
        let allow = |entries: &[&str]| entries.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        let wild = allow(&["*.example.com"]);
        for (host, ok) in [
            ("a.example.com", true),
            ("a.b.example.com", true),
            ("example.com", false),
            ("evilexample.com", false),
            ("a.evilexample.com", false),
            ("example.com.evil.org", false),
            (".example.com", false),
        ] {
            assert_eq!(host_allowed(&wild, host), ok, "{host}");
        }
        let both = allow(&["*.Example.com", "example.com."]);
        assert!(host_allowed(&both, "example.com"));
        assert!(host_allowed(&both, "img.example.com"));
        assert!(!host_allowed(&allow(&["example.com"]), "a.example.com"));
    }

    #[test]
    fn bad_urls_are_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        for url in [
            "http://user:pass@127.0.0.1/a.jpg",
            "http://user@127.0.0.1/a.jpg",
            "ftp://127.0.0.1/a.jpg",
            "file:///etc/passwd",
            "http://",
            "http:///a.jpg",
            "http://127.0.0.1:99999/a.jpg",
            "http://127.0.0.1:0/a.jpg",
            "http://127.0.0.1:8x/a.jpg",
            "http://[::1]:65536/a.jpg",
            "http://127.0.0.1/a b.jpg",
            "http://127.0.0.1/\n",
            "not a url",
            "",
        ] {
            let err = fetch(&opts, url).unwrap_err();
            assert!(matches!(err, SourceError::Invalid(_)), "{url:?}: {err:?}");
        }
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn targets_normalize_the_host() {
        for (url, host) in [
            ("http://Images.Example.COM./a.jpg", "images.example.com"),
            ("HTTPS://[::1]:8443/a.jpg", "::1"),
            ("http://127.0.0.1:8080/a.jpg?w=1#top", "127.0.0.1"),
            ("http://h:/a.jpg", "h"),
        ] {
            assert_eq!(Target::parse(url).unwrap().host, host, "{url}");
        }
    }

    #[test]
    fn host_checks_happen_before_any_network() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.allow_hosts.clear();
        let err = fetch(&opts, "http://127.0.0.1/a.jpg").unwrap_err();
        assert!(
            matches!(&err, SourceError::Forbidden(m) if m == "remote sources are disabled"),
            "{err:?}"
        );
        opts.allow_hosts = vec!["images.example.com".to_owned()];
        let err = fetch(&opts, "https://other.example.com/a.jpg").unwrap_err();
        assert!(
            matches!(&err, SourceError::Forbidden(m) if m.contains("other.example.com")),
            "{err:?}"
        );
    }

    #[test]
    fn locations_resolve_against_the_base() {
        let base: Uri = "http://h:8080/a/b/c.jpg?x=1".parse().unwrap();
        for (location, want) in [
            ("https://o.example/z", Some("https://o.example/z")),
            ("//o.example/z", Some("http://o.example/z")),
            ("/z.jpg", Some("http://h:8080/z.jpg")),
            ("/z.jpg?q=2#frag", Some("http://h:8080/z.jpg?q=2")),
            ("d.jpg", Some("http://h:8080/a/b/d.jpg")),
            ("../d.jpg", Some("http://h:8080/a/d.jpg")),
            ("../../../../d.jpg", Some("http://h:8080/d.jpg")),
            ("./", Some("http://h:8080/a/b/")),
            ("..", Some("http://h:8080/a/")),
            ("?y=2", Some("http://h:8080/a/b/c.jpg?y=2")),
            ("/a/./b/../z", Some("http://h:8080/a/z")),
            ("  /padded  ", Some("http://h:8080/padded")),
            ("", None),
            ("#only", None),
        ] {
            assert_eq!(
                resolve_location(&base, location).as_deref(),
                want,
                "{location:?}"
            );
        }
    }

    #[test]
    fn meta_round_trips_and_rejects_garbage() {
        let meta = Meta {
            url: "https://a.example/x.jpg?v=1&w=2".to_owned(),
            validators: Validators {
                etag: Some("W/\"abc=\"".to_owned()),
                last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
                origin: Some("https://a.example:443".to_owned()),
            },
            fetched_at: 1_700_000_000,
            version: "0123456789abcdef".to_owned(),
            bytes: 42,
        };
        assert_eq!(Meta::parse(&meta.render()), Some(meta.clone()));
        let bare = Meta {
            validators: Validators::default(),
            ..meta
        };
        assert_eq!(Meta::parse(&bare.render()), Some(bare));
        assert_eq!(Meta::parse(""), None);
        assert_eq!(
            Meta::parse("url=x\nfetched_at=soon\nversion=v\nbytes=1\n"),
            None
        );
        assert_eq!(Meta::parse("garbage"), None);
    }

    #[test]
    fn freshness_is_by_whole_seconds_and_never_from_the_future() {
        let hour = Duration::from_secs(3600);
        assert!(is_fresh(100, 100, hour));
        assert!(is_fresh(100, 3699, hour));
        assert!(!is_fresh(100, 3700, hour));
        assert!(!is_fresh(100, 100, Duration::ZERO));
        assert!(!is_fresh(200, 100, hour));
    }

    // ---- against loopback servers --------------------------------------------------------

    #[test]
    fn fetches_a_complete_copy_with_a_content_version() {
        let body = b"\x89PNG fake image bytes".to_vec();
        let served = body.clone();
        let server = TestServer::start(move |_, _| ok(&served));
        let dir = tempfile::tempdir().unwrap();
        let opts = options(&dir.path().join("remote"));

        let got = fetch(&opts, &server.url("/a.png")).unwrap();

        assert_eq!(got.bytes, body.len() as u64);
        assert_eq!(fs::read(&got.path).unwrap(), body);
        assert_eq!(got.version, hex(&Sha256::digest(&body)[..8]));
        assert_eq!(got.version.len(), 16);
        let key = hex(&Sha256::digest(server.url("/a.png").as_bytes())[..16]);
        assert_eq!(got.path, opts.dir.join(format!("{key}.img")));
        assert_eq!(
            files(&opts.dir),
            [format!("{key}.img"), format!("{key}.meta")]
        );
        let meta = Meta::parse(&fs::read_to_string(opts.dir.join(format!("{key}.meta"))).unwrap());
        assert_eq!(
            meta.map(|m| (m.version, m.bytes)),
            Some((got.version, got.bytes))
        );
        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].header("user-agent"), Some(opts.user_agent.as_str()));
    }

    #[test]
    fn private_addresses_are_refused_before_any_request() {
        let server = TestServer::start(|_, _| ok(b"secret"));
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.allow_private = false;

        // A literal address is refused by the allow-list step.
        let err = fetch(&opts, &server.url("/a")).unwrap_err();
        assert!(
            matches!(&err, SourceError::Forbidden(m) if m.contains("loopback")),
            "{err:?}"
        );

        // A name is refused by the resolver, i.e. on the address that would be connected to.
        opts.allow_hosts = vec!["localhost".to_owned()];
        let url = format!("http://localhost:{}/a", server.port);
        let err = fetch(&opts, &url).unwrap_err();
        assert!(
            matches!(&err, SourceError::Forbidden(m) if m.contains("localhost")),
            "{err:?}"
        );

        assert_eq!(server.hits(), 0);
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn redirect_chain_within_the_limit_is_followed() {
        let server = TestServer::start(|seen, _| match seen.url.as_str() {
            "/one" => redirect(301, "/two"),
            "/two" => redirect(302, "three?x=1"),
            "/three?x=1" => redirect(307, &format!("http://127.0.0.1:{}/final", seen.port)),
            "/final" => ok(b"landed"),
            _ => status(500),
        });
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());

        let got = fetch(&opts, &server.url("/one")).unwrap();

        assert_eq!(fs::read(&got.path).unwrap(), b"landed");
        let urls: Vec<String> = server.seen().into_iter().map(|s| s.url).collect();
        assert_eq!(urls, ["/one", "/two", "/three?x=1", "/final"]);
    }

    #[test]
    fn redirects_are_checked_like_the_first_url() {
        let server = TestServer::start(|seen, _| match seen.url.as_str() {
            "/elsewhere" => redirect(302, "http://elsewhere.invalid/a.jpg"),
            "/ftp" => redirect(301, "ftp://127.0.0.1/a.jpg"),
            "/creds" => redirect(301, "http://u:p@127.0.0.1/a.jpg"),
            _ => redirect(302, ""),
        });
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());

        let err = fetch(&opts, &server.url("/elsewhere")).unwrap_err();
        assert!(
            matches!(&err, SourceError::Forbidden(m) if m.contains("elsewhere.invalid")),
            "{err:?}"
        );
        for path in ["/ftp", "/creds", "/empty"] {
            let err = fetch(&opts, &server.url(path)).unwrap_err();
            assert!(
                matches!(&err, SourceError::Remote(m) if m.contains("redirect")),
                "{path}: {err:?}"
            );
        }
        assert_eq!(server.hits(), 4);
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn redirect_loop_stops_after_max_redirects() {
        let server = TestServer::start(|_, _| redirect(308, "/loop"));
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());

        let err = fetch(&opts, &server.url("/loop")).unwrap_err();

        assert!(
            matches!(&err, SourceError::Remote(m) if m == "too many redirects"),
            "{err:?}"
        );
        assert_eq!(server.hits(), opts.max_redirects as usize + 1);
    }

    #[test]
    fn not_found_is_a_remote_error() {
        let server = TestServer::start(|_, _| status(404));
        let dir = tempfile::tempdir().unwrap();

        let err = fetch(&options(dir.path()), &server.url("/missing")).unwrap_err();

        assert!(
            matches!(&err, SourceError::Remote(m) if m.contains("404")),
            "{err:?}"
        );
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn content_length_over_the_limit_is_too_large() {
        let server = TestServer::start(|_, _| ok(&[7; 1000]));
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.max_source_bytes = 999;

        let err = fetch(&opts, &server.url("/big")).unwrap_err();

        assert!(
            matches!(err, SourceError::TooLarge { limit: 999 }),
            "{err:?}"
        );
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn chunked_body_growing_past_the_limit_is_too_large() {
        let server = TestServer::start(|_, _| {
            // No length: tiny_http sends it chunked, so only counting can catch it.
            let endless: Box<dyn Read + Send> = Box::new(io::repeat(b'x').take(10 << 20));
            Response::new(StatusCode(200), vec![], endless, None, None)
        });
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.max_source_bytes = 100_000;

        let err = fetch(&opts, &server.url("/endless")).unwrap_err();

        assert!(
            matches!(err, SourceError::TooLarge { limit: 100_000 }),
            "{err:?}"
        );
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn slow_server_times_out_quickly() {
        let server = TestServer::start(|_, _| {
            std::thread::sleep(Duration::from_millis(1500));
            ok(b"late")
        });
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.timeout = Duration::from_millis(300);

        let started = Instant::now();
        let err = fetch(&opts, &server.url("/slow")).unwrap_err();

        assert!(
            matches!(&err, SourceError::Remote(m) if m.contains("timed out")),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(1200),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn copy_within_ttl_is_used_without_network() {
        let server = TestServer::start(|_, _| ok(b"once"));
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());

        let first = fetch(&opts, &server.url("/a")).unwrap();
        let second = fetch(&opts, &server.url("/a")).unwrap();

        assert_eq!(first, second);
        assert_eq!(server.hits(), 1);
    }

    #[test]
    fn not_modified_keeps_the_copy_and_refreshes_fetched_at() {
        let server = TestServer::start(|seen, _| {
            if seen.header("if-none-match") == Some("\"v1\"") {
                status(304)
            } else {
                ok(b"same bytes")
                    .with_header(header("ETag", "\"v1\""))
                    .with_header(header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT"))
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.ttl = Duration::ZERO;
        let url = server.url("/a");

        let first = fetch(&opts, &url).unwrap();
        // Pretend the copy is old, to see fetched_at move.
        let copy = LocalCopy::new(&opts.dir, &url);
        let (mut meta, _) = copy.load(&url).unwrap();
        meta.fetched_at = 1;
        copy.write_meta(&opts.dir, &meta).unwrap();
        let second = fetch(&opts, &url).unwrap();

        assert_eq!(first, second);
        assert_eq!(fs::read(&second.path).unwrap(), b"same bytes");
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].header("if-none-match"), None);
        assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""));
        assert_eq!(
            seen[1].header("if-modified-since"),
            Some("Wed, 21 Oct 2015 07:28:00 GMT")
        );
        let (meta, _) = copy.load(&url).unwrap();
        assert!(meta.fetched_at > 1);
        assert_eq!(meta.validators.etag.as_deref(), Some("\"v1\""));
    }

    #[test]
    fn changed_bytes_give_a_new_version() {
        let server = TestServer::start(|_, n| ok(format!("body number {n}").as_bytes()));
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.ttl = Duration::ZERO;
        let url = server.url("/a");

        let first = fetch(&opts, &url).unwrap();
        let second = fetch(&opts, &url).unwrap();

        assert_ne!(first.version, second.version);
        assert_eq!(first.path, second.path);
        assert_eq!(fs::read(&second.path).unwrap(), b"body number 1");
        assert_eq!(files(dir.path()).len(), 2, "only .img and .meta");
    }

    #[test]
    fn stale_copy_is_served_when_the_server_is_gone_or_failing() {
        let server = TestServer::start(|_, n| if n == 0 { ok(b"kept") } else { status(503) });
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.ttl = Duration::ZERO;
        let url = server.url("/a");

        let first = fetch(&opts, &url).unwrap();
        assert_eq!(
            fetch(&opts, &url).unwrap(),
            first,
            "503 serves the stale copy"
        );
        drop(server);
        assert_eq!(fetch(&opts, &url).unwrap(), first, "refused connection too");
        assert_eq!(fs::read(&first.path).unwrap(), b"kept");
    }

    #[test]
    fn gone_on_revalidation_drops_the_copy() {
        let server = TestServer::start(|_, n| if n == 0 { ok(b"doomed") } else { status(410) });
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.ttl = Duration::ZERO;
        let url = server.url("/a");

        fetch(&opts, &url).unwrap();
        let err = fetch(&opts, &url).unwrap_err();

        assert!(
            matches!(&err, SourceError::Remote(m) if m.contains("410")),
            "{err:?}"
        );
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn https_to_http_redirects_are_refused() {
        let target = |url: &str| Target::parse(url).unwrap();
        for (from, to, ok) in [
            ("https://a.example/x", "http://a.example/x", false),
            ("HTTPS://a.example/x", "http://b.example:443/x", false),
            ("https://a.example/x", "https://b.example/x", true),
            ("http://a.example/x", "https://a.example/x", true),
            ("http://a.example/x", "http://b.example/x", true),
        ] {
            let got = check_redirect(&target(from), &target(to));
            assert_eq!(got.is_ok(), ok, "{from} -> {to}: {got:?}");
            if let Err(err) = got {
                assert!(matches!(err, SourceError::Forbidden(_)), "{err:?}");
            }
        }
    }

    #[test]
    fn origins_name_scheme_host_and_port() {
        for (url, origin) in [
            ("http://A.example/x", "http://a.example:80"),
            ("https://a.example/x", "https://a.example:443"),
            ("http://a.example:8080/x", "http://a.example:8080"),
            ("https://[::1]/x", "https://[::1]:443"),
        ] {
            assert_eq!(Target::parse(url).unwrap().origin(), origin, "{url}");
        }
    }

    #[test]
    fn validators_are_never_sent_to_another_host_after_a_redirect() {
        // Host B: the redirect's target, with validators of its own.
        let b = TestServer::start(|_, _| {
            ok(b"from b")
                .with_header(header("ETag", "\"b1\""))
                .with_header(header("Last-Modified", "Thu, 22 Oct 2015 07:28:00 GMT"))
        });
        let b_url = format!("http://localhost:{}/b", b.port);
        // Host A: answers itself first, with its validators, then redirects to B.
        let a = TestServer::start(move |_, n| match n {
            0 => ok(b"from a")
                .with_header(header("ETag", "\"a1\""))
                .with_header(header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")),
            _ => redirect(302, &b_url),
        });
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        opts.allow_hosts.push("localhost".to_owned());
        opts.ttl = Duration::ZERO;
        let url = a.url("/a");

        assert_eq!(
            fs::read(fetch(&opts, &url).unwrap().path).unwrap(),
            b"from a"
        );
        // Revalidation: A gets its own validators back, B none of them.
        assert_eq!(
            fs::read(fetch(&opts, &url).unwrap().path).unwrap(),
            b"from b"
        );
        let (a_seen, b_seen) = (a.seen(), b.seen());
        assert_eq!(a_seen[1].header("if-none-match"), Some("\"a1\""));
        assert_eq!(b_seen.len(), 1);
        assert_eq!(b_seen[0].header("if-none-match"), None, "{b_seen:?}");
        assert_eq!(b_seen[0].header("if-modified-since"), None, "{b_seen:?}");
        // The copy now holds B's validators: they go to B, not to A.
        fetch(&opts, &url).unwrap();
        let (a_seen, b_seen) = (a.seen(), b.seen());
        assert_eq!(a_seen[2].header("if-none-match"), None, "{a_seen:?}");
        assert_eq!(a_seen[2].header("if-modified-since"), None, "{a_seen:?}");
        assert_eq!(b_seen[1].header("if-none-match"), Some("\"b1\""));
    }

    #[test]
    fn concurrent_misses_on_one_url_fetch_it_once() {
        let server = TestServer::start(|_, _| {
            std::thread::sleep(Duration::from_millis(300));
            ok(b"slow and single")
        });
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let url = server.url("/a");
        let got: Vec<Fetched> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| fetch(&opts, &url).unwrap()))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(got.iter().all(|g| *g == got[0]));
        assert_eq!(server.hits(), 1);
    }

    #[test]
    fn client_messages_hold_no_address_the_log_does() {
        let server = TestServer::start(|_, _| redirect(302, "ftp://10.9.8.7/secret.jpg"));
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        let err = fetch(&opts, &server.url("/a")).unwrap_err();
        assert!(!err.to_string().contains("10.9.8.7"), "{err}");
        // A name resolving to a refused address: the host, not the address.
        opts.allow_private = false;
        opts.allow_hosts = vec!["localhost".to_owned()];
        let err = fetch(&opts, &format!("http://localhost:{}/a", server.port)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("localhost"), "{text}");
        assert!(
            !text.contains("127.0.0.1") && !text.contains("::1"),
            "{text}"
        );
        // Network failures: a fixed phrase for the client.
        let port = server.port;
        drop(server);
        let mut opts = options(dir.path());
        opts.ttl = Duration::ZERO;
        let err = fetch(&opts, &format!("http://127.0.0.1:{port}/gone")).unwrap_err();
        assert!(
            matches!(&err, SourceError::Remote(m) if m == "connection refused"),
            "{err:?}"
        );
    }

    #[test]
    fn an_https_origin_redirecting_to_http_is_refused() {
        let plain = TestServer::start(|_, _| ok(b"in the clear"));
        let tls = TlsServer::start(&format!(
            "HTTP/1.0 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
            plain.url("/x.jpg")
        ));
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());

        let err = fetch(&opts, &tls.url("/redirect")).unwrap_err();

        assert!(
            matches!(&err, SourceError::Forbidden(m) if m.contains("https to http")),
            "{err:?}"
        );
        assert_eq!(plain.hits(), 0, "nothing was asked in the clear");
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    // ---- helpers -------------------------------------------------------------------------

    /// `openssl s_server -HTTP` on 127.0.0.1 with a throwaway certificate, answering every
    /// path with the raw HTTP response `answer`; killed on drop.
    struct TlsServer {
        child: std::process::Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl TlsServer {
        fn start(answer: &str) -> TlsServer {
            use std::process::{Command, Stdio};
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("redirect"), answer).unwrap();
            let made = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "key.pem",
                    "-out",
                    "cert.pem",
                ])
                .current_dir(dir.path())
                .stderr(Stdio::null())
                .status()
                .expect("openssl (scripts/install-deps.sh installs it)");
            assert!(made.success());
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new("openssl")
                .args([
                    "s_server", "-quiet", "-HTTP", "-cert", "cert.pem", "-key", "key.pem",
                ])
                .args(["-accept", &format!("127.0.0.1:{port}")])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let server = TlsServer {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "openssl s_server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }

        fn url(&self, path: &str) -> String {
            format!("https://127.0.0.1:{}{path}", self.port)
        }
    }

    impl Drop for TlsServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn options(dir: &Path) -> RemoteOptions {
        RemoteOptions {
            allow_hosts: vec!["127.0.0.1".to_owned()],
            allow_private: true,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            dir: dir.to_owned(),
            user_agent: "imgserv-test".to_owned(),
            ..RemoteOptions::default()
        }
    }

    /// File names in `dir` but the lock files' directory, sorted; empty when it does not exist.
    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|name| name != "locks")
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn header(name: &str, value: &str) -> Header {
        Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
    }

    fn ok(body: &[u8]) -> ResponseBox {
        Response::from_data(body.to_vec()).boxed()
    }

    fn status(code: u16) -> ResponseBox {
        Response::empty(code).boxed()
    }

    fn redirect(code: u16, location: &str) -> ResponseBox {
        Response::empty(code)
            .with_header(header("Location", location))
            .boxed()
    }

    /// One request as the test server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        url: String,
        headers: Vec<(String, String)>,
        port: u16,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A tiny_http server on 127.0.0.1 answering with `handler(request, index)` and recording
    /// every request; stopped on drop.
    struct TestServer {
        server: Arc<tiny_http::Server>,
        seen: Arc<Mutex<Vec<Seen>>>,
        thread: Option<JoinHandle<()>>,
        port: u16,
    }

    impl TestServer {
        fn start(handler: impl Fn(&Seen, usize) -> ResponseBox + Send + 'static) -> TestServer {
            let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
            let port = server.server_addr().to_ip().unwrap().port();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let thread = {
                let (server, seen) = (Arc::clone(&server), Arc::clone(&seen));
                std::thread::spawn(move || {
                    for request in server.incoming_requests() {
                        let this = Seen {
                            url: request.url().to_owned(),
                            headers: request
                                .headers()
                                .iter()
                                .map(|h| (h.field.to_string(), h.value.to_string()))
                                .collect(),
                            port,
                        };
                        let index = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(this.clone());
                            seen.len() - 1
                        };
                        // The client may have hung up (limits, timeouts): ignore write errors.
                        let _ = request.respond(handler(&this, index));
                    }
                })
            };
            TestServer {
                server,
                seen,
                thread: Some(thread),
                port,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://127.0.0.1:{}{path}", self.port)
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        fn hits(&self) -> usize {
            self.seen.lock().unwrap().len()
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.server.unblock();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
