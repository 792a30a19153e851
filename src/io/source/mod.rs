//! Where originals come from: paths under the originals root (`local`) and allowed remote URLs
//! (`remote`). This module resolves and reads sources; it knows nothing of rendering or caching.

pub mod copies;
pub mod local;
pub mod remote;

use std::io;

/// Why a source could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The `src` is not a usable path or URL (empty, NUL bytes, a URL that does not parse, a
    /// scheme other than http/https).
    #[error("{0}")]
    Invalid(String),
    /// The `src` escapes the originals root (`..`, an absolute path, a symlink leading outside),
    /// or names a remote host that is not allowed or resolves to a refused address.
    #[error("{0}")]
    Forbidden(String),
    /// No such original.
    #[error("{0}")]
    NotFound(String),
    /// The original is larger than the configured byte limit.
    #[error("source is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The remote host failed: connection refused, timeout, a non-2xx answer, too many redirects.
    /// The text is a fixed phrase (and a status number), never an address: clients read it.
    #[error("remote source failed: {0}")]
    Remote(String),
    /// Reading the original or writing the local copy failed.
    #[error("i/o error on source: {0}")]
    Io(#[from] io::Error),
}
