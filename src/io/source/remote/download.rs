//! The HTTP side of a remote fetch: one GET with redirects followed by hand (each hop checked
//! like the first URL), validators sent back only to the origin that gave them, the time and
//! size limits, the body streamed into a temporary file; and how a failure reads (a fixed
//! phrase for the client, the details for the log). What becomes of the copy is `fetch`'s.

use std::io::{self, Read, Write};
use std::time::Instant;

use sha2::{Digest, Sha256};
use ureq::config::Config;
use ureq::unversioned::transport::DefaultConnector;

use super::address::{GuardedResolver, Refused};
use super::copy::{LocalCopy, Meta, TempFile, Validators, hex};
use super::target::{Target, check_redirect, check_target, resolve_location};
use super::{RemoteOptions, SourceError};

/// What a successful exchange produced.
pub(super) enum Download {
    /// `304`: the local copy is still current.
    NotModified { validators: Validators },
    /// `2xx`: new bytes, complete in a temporary file.
    Body(Body),
}

pub(super) struct Body {
    pub(super) temp: TempFile,
    pub(super) version: String,
    pub(super) bytes: u64,
    pub(super) validators: Validators,
}

/// Why a download failed; decides between stale-if-error, dropping the copy and plain errors.
#[derive(Debug)]
pub(super) enum Failure {
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
    pub(super) fn is_transient(&self) -> bool {
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
pub(super) fn download(
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

fn is_single_line(value: &str) -> bool {
    !value.contains(['\n', '\r'])
}
