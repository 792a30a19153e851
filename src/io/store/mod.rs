//! Where originals live: a [`Store`] keeps an original's bytes under its [`OriginalId`], on the
//! local filesystem ([`fs`]) or in any S3-compatible bucket ([`s3`]), chosen by `[store] type`.
//!
//! Both backends use the same key layout, `<id.fanout()>.<ext>` (`ab/cd/<id>.jpg`), write
//! atomically (a reader sees the whole original or nothing) and never replace an existing object:
//! the key is the content's SHA-1, so an existing object already holds these bytes.
//! This module stores bytes only; it does not hash, sniff, resize or describe them (`original`,
//! `render`, `catalog` do).

pub mod fs;
pub mod s3;

use std::io;
use std::path::PathBuf;

use serde::Deserialize;

use crate::domain::format::Format;
use crate::domain::original::OriginalId;

/// Storage for originals, keyed by id and format.
pub trait Store: Send + Sync {
    /// Stores the original's bytes under its id; idempotent (same id = same bytes); atomic:
    /// readers never see a partial object; never overwrites an existing object with different
    /// content.
    fn put(&self, id: &OriginalId, format: Format, bytes: &[u8]) -> Result<(), StoreError>;
    /// The original's bytes; [`StoreError::NotFound`] when absent.
    fn get(&self, id: &OriginalId, format: Format) -> Result<Vec<u8>, StoreError>;
    /// The original's bytes as a stream, with its length, for sending it on without holding
    /// it in memory; [`StoreError::NotFound`] when absent. Errors while reading show up as
    /// `io::Error`s of the reader.
    fn open(&self, id: &OriginalId, format: Format) -> Result<Object, StoreError>;
    /// Whether the original is stored.
    fn exists(&self, id: &OriginalId, format: Format) -> Result<bool, StoreError>;
    /// Removes the original; `Ok` when it is already absent.
    fn delete(&self, id: &OriginalId, format: Format) -> Result<(), StoreError>;
    /// A short human description for logs ("fs:/var/lib/imgserv/originals",
    /// "s3:http://127.0.0.1:9000/bucket").
    fn describe(&self) -> String;
}

/// An original being read: a reader and the number of bytes it will give.
pub struct Object {
    pub reader: Box<dyn io::Read + Send>,
    pub len: u64,
}

/// Where uploaded originals are kept (`[store]`); [`open`] makes a `Store` of it. `config`
/// validates the file's `[store]` into it (and re-exports it as `config::StoreConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Files under `dir`, laid out `ab/cd/<id>.<ext>`.
    Fs { dir: PathBuf },
    /// Objects in an S3-compatible bucket, keyed `<prefix>ab/cd/<id>.<ext>`.
    S3 {
        /// `http(s)://host[:port][/path]`, without a trailing slash.
        endpoint: String,
        region: String,
        bucket: String,
        /// `endpoint/bucket/key` rather than `bucket.endpoint/key`.
        path_style: bool,
        access_key: String,
        secret_key: Secret,
        /// Empty or ending in `/`.
        prefix: String,
    },
}

/// A credential: kept out of `Debug` output (and so out of logs and panic messages).
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Opens the store the configuration names. Nothing is created and nothing is contacted: the
/// filesystem store makes its directories on the first `put`, and an unreachable S3 endpoint
/// shows up as [`StoreError::Unavailable`] on the first request, so that the redirector keeps
/// serving cached variants meanwhile.
pub fn open(config: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
    match config {
        StoreConfig::Fs { dir } => Ok(Box::new(fs::FsStore::new(dir.clone()))),
        StoreConfig::S3 {
            endpoint,
            region,
            bucket,
            path_style,
            access_key,
            secret_key,
            prefix,
        } => Ok(Box::new(s3::S3Store::new(&s3::S3Options {
            endpoint: endpoint.clone(),
            region: region.clone(),
            bucket: bucket.clone(),
            path_style: *path_style,
            access_key: access_key.clone(),
            secret_key: secret_key.expose().to_string(),
            prefix: prefix.clone(),
        })?)),
    }
}

/// The relative key of an original in every backend: `ab/cd/<id>.<ext>`.
pub fn key(id: &OriginalId, format: Format) -> String {
    format!("{}.{}", id.fanout(), format.ext())
}

/// Why the store could not do what was asked. `error::Error::class` maps each variant to an
/// HTTP status, a stable code and an exit code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No object under this id and format.
    #[error("no such original")]
    NotFound,
    /// The store cannot be reached now: connection refused, DNS failure, timeout, or an S3 5xx
    /// answer (`SlowDown`, `ServiceUnavailable`). Worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused us: wrong credentials or signature, access denied, a bucket that does
    /// not exist. The message says which; retrying will not help until the config changes.
    #[error("store refused access: {0}")]
    Denied(String),
    /// No space left on the device, or the disk quota is exhausted.
    #[error("store is full (no space left on device or quota exceeded)")]
    Full,
    /// Another filesystem error (permissions, a read-only filesystem, a file where a directory
    /// should be).
    #[error("store i/o: {0}")]
    Io(io::Error),
    /// S3 answered something we do not understand (an unexpected status or redirect, a bad URL
    /// for the configured endpoint, TLS trouble).
    #[error("unexpected answer from the store: {0}")]
    Protocol(String),
}

impl From<io::Error> for StoreError {
    /// ENOSPC and EDQUOT become [`StoreError::Full`], everything else [`StoreError::Io`].
    fn from(e: io::Error) -> Self {
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StoreError::Full,
            _ if matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT)) => StoreError::Full,
            _ => StoreError::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_use_the_fanout_and_the_format_extension() {
        let id = OriginalId::of(b"hello world").unwrap();
        assert_eq!(
            key(&id, Format::Jpeg),
            "2a/ae/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed.jpg"
        );
        assert_eq!(
            key(&id, Format::Webp),
            "2a/ae/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed.webp"
        );
    }

    #[test]
    fn full_disks_and_quotas_are_full_other_errors_io() {
        for (errno, full) in [
            (28, true),
            (122, true),
            (13, false),
            (30, false),
            (2, false),
        ] {
            let e = StoreError::from(io::Error::from_raw_os_error(errno));
            assert_eq!(matches!(e, StoreError::Full), full, "errno {errno}: {e:?}");
            assert_eq!(
                matches!(e, StoreError::Io(_)),
                !full,
                "errno {errno}: {e:?}"
            );
        }
    }
}
