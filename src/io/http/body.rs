//! A request body as the handler reads it: received once by the adapter, within a limit known
//! before the first byte is read, and kept in a small buffer or, past that, in an anonymous
//! temporary file (gone when the last reader drops it, also after a crash) together with its
//! length and SHA-256. So a body never sits in memory whole, and an unauthorised one leaves
//! nothing on disk.
//!
//! This module does not parse bodies (`multipart`, the API routes do) nor decide limits
//! (`config` does: `[api] max_body_bytes`).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Bodies up to this many bytes stay in memory; longer ones go to a temporary file.
pub const MEMORY_MAX: usize = 256 << 10;

/// How request bodies are received: the limit, and where longer ones are spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest body in bytes; a longer one is refused with `413`.
    pub max_bytes: u64,
    /// Directory for the temporary files of bodies over [`MEMORY_MAX`] (the state directory);
    /// the system's temporary directory when it cannot be written.
    pub spool_dir: PathBuf,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 20,
            spool_dir: std::env::temp_dir(),
        }
    }
}

/// Why a body could not be received.
#[derive(Debug)]
pub enum BodyError {
    /// The body (declared or sent) is longer than the limit.
    TooLarge(u64),
    /// Reading the body from the client failed.
    Io(io::Error),
    /// Writing the body's temporary file failed (a full disk): the server's trouble.
    Spool(io::Error),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "request body larger than {limit} bytes"),
            BodyError::Io(e) => write!(f, "reading the request body: {e}"),
            BodyError::Spool(e) => write!(f, "keeping the request body: {e}"),
        }
    }
}

impl BodyError {
    /// The response an adapter sends instead of calling the handler.
    pub fn response(&self) -> super::Response {
        match self {
            BodyError::TooLarge(_) => super::Response::error(413, "body-too-large", self),
            BodyError::Io(_) => super::Response::error(400, "bad-request", self),
            BodyError::Spool(e) => {
                log::error!("{self}");
                let resp = super::Response::error(500, "body-io", "cannot keep the request body");
                if e.kind() == io::ErrorKind::StorageFull {
                    resp.with_header("Retry-After", "30")
                } else {
                    resp
                }
            }
        }
    }
}

/// Whether a declared `Content-Length` may be read at all: refused before any byte is read.
pub fn check_declared(limits: &Limits, declared: Option<u64>) -> Result<(), BodyError> {
    match declared {
        Some(n) if n > limits.max_bytes => Err(BodyError::TooLarge(limits.max_bytes)),
        _ => Ok(()),
    }
}

/// A received request body: its bytes (in memory or in a temporary file), length and SHA-256.
/// Cheap to clone; every [`Body::reader`] starts at the first byte.
#[derive(Clone, Default)]
pub struct Body {
    data: Data,
    len: u64,
    sha256: Option<[u8; 32]>,
}

#[derive(Clone)]
enum Data {
    Memory(Arc<[u8]>),
    File(Arc<File>),
}

impl Default for Data {
    fn default() -> Self {
        Data::Memory(Arc::from(&[][..]))
    }
}

impl Body {
    /// Bytes in bytes out: the length.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body from its first byte.
    pub fn reader(&self) -> BodyReader {
        BodyReader {
            data: self.data.clone(),
            pos: 0,
            len: self.len,
        }
    }

    /// Lower-case hex SHA-256 of the body (computed while it was received).
    pub fn sha256_hex(&self) -> String {
        let digest = match self.sha256 {
            Some(d) => d,
            None => {
                let mut h = Sha256::new();
                // An in-memory body (built by a test or a tool) is hashed on demand.
                if let Data::Memory(bytes) = &self.data {
                    h.update(bytes);
                }
                h.finalize().into()
            }
        };
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The whole body, for routes that read small documents (JSON); `None` when it is longer
    /// than `max` bytes.
    pub fn to_vec(&self, max: u64) -> io::Result<Option<Vec<u8>>> {
        if self.len > max {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.len as usize);
        self.reader().read_to_end(&mut out)?;
        Ok(Some(out))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body {
            len: bytes.len() as u64,
            data: Data::Memory(bytes.into()),
            sha256: None,
        }
    }
}

impl From<&[u8]> for Body {
    fn from(bytes: &[u8]) -> Self {
        Body::from(bytes.to_vec())
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match self.data {
            Data::Memory(_) => "memory",
            Data::File(_) => "file",
        };
        write!(f, "Body({} bytes in {place})", self.len)
    }
}

/// Bodies are equal when their bytes are: same length and SHA-256.
impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.sha256_hex() == other.sha256_hex()
    }
}

impl Eq for Body {}

/// Reads a [`Body`] from the start; independent of other readers of the same body.
pub struct BodyReader {
    data: Data,
    pos: u64,
    len: u64,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.len - self.pos).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = match &self.data {
            Data::Memory(bytes) => {
                let start = self.pos as usize;
                buf[..left].copy_from_slice(&bytes[start..start + left]);
                left
            }
            // Positional reads: clones of a body share the file but not an offset.
            Data::File(file) => file.read_at(&mut buf[..left], self.pos)?,
        };
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Receives a body: bytes in, hashed and kept in memory up to [`MEMORY_MAX`], then in an
/// anonymous temporary file; refuses more than the limit.
pub struct Spool<'l> {
    limits: &'l Limits,
    /// The most bytes taken: the limit, or less when the body's length was declared.
    max: u64,
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
    hasher: Sha256,
}

impl fmt::Debug for Spool<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spool({} bytes)", self.len)
    }
}

impl<'l> Spool<'l> {
    pub fn new(limits: &'l Limits) -> Self {
        Spool {
            limits,
            max: limits.max_bytes,
            memory: Vec::new(),
            file: None,
            len: 0,
            hasher: Sha256::new(),
        }
    }

    /// Adds bytes; [`BodyError::TooLarge`] once the body passes the limit (the bytes kept so
    /// far stay, but nothing more is taken).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), BodyError> {
        if self.len + bytes.len() as u64 > self.max {
            return Err(BodyError::TooLarge(self.max));
        }
        self.len += bytes.len() as u64;
        self.hasher.update(bytes);
        if self.file.is_none() && self.memory.len() + bytes.len() > MEMORY_MAX {
            let mut file = tempfile::tempfile_in(&self.limits.spool_dir)
                .or_else(|_| tempfile::tempfile())
                .map_err(BodyError::Spool)?;
            file.write_all(&self.memory).map_err(BodyError::Spool)?;
            self.memory = Vec::new();
            self.file = Some(file);
        }
        match &mut self.file {
            Some(file) => file.write_all(bytes).map_err(BodyError::Spool),
            None => {
                self.memory.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Copies everything `input` yields, stopping with [`BodyError::TooLarge`] as soon as it
    /// passes the limit: at most the limit plus one buffer is ever read.
    pub fn read_from(&mut self, input: &mut dyn Read) -> Result<(), BodyError> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BodyError::Io(e)),
            };
            self.push(&buf[..n])?;
        }
    }

    /// Takes no more than a declared length (within the limit): a longer body is refused as
    /// too large.
    pub fn declare(&mut self, declared: Option<u64>) {
        if let Some(n) = declared {
            self.max = self.max.min(n);
        }
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The received body.
    pub fn finish(self) -> Body {
        let data = match self.file {
            Some(file) => Data::File(Arc::new(file)),
            None => Data::Memory(self.memory.into()),
        };
        Body {
            data,
            len: self.len,
            sha256: Some(self.hasher.finalize().into()),
        }
    }
}

/// Receives a body of at most `declared` bytes (when declared) from `input`: a declared length
/// over the limit is refused before reading, and a body without one, or longer than it said,
/// is cut at the limit.
pub fn receive(
    limits: &Limits,
    declared: Option<u64>,
    input: &mut dyn Read,
) -> Result<Body, BodyError> {
    check_declared(limits, declared)?;
    let mut spool = Spool::new(limits);
    match declared {
        Some(n) => spool.read_from(&mut Read::take(&mut *input, n))?,
        None => spool.read_from(input)?,
    }
    Ok(spool.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: u64, dir: &std::path::Path) -> Limits {
        Limits {
            max_bytes,
            spool_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn small_and_large_bodies_read_back_whole_with_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let l = limits(4 << 20, dir.path());
        for size in [0, 10, MEMORY_MAX, MEMORY_MAX + 1, 3 << 20] {
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let body = receive(&l, Some(size as u64), &mut &bytes[..]).unwrap();
            assert_eq!(body.len(), size as u64);
            let mut back = Vec::new();
            body.reader().read_to_end(&mut back).unwrap();
            assert!(back == bytes, "size {size}");
            assert_eq!(body.sha256_hex(), Body::from(bytes.clone()).sha256_hex());
            assert_eq!(body, Body::from(bytes));
        }
        // Spooled bodies are anonymous files: nothing in the directory, ever.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn declared_lengths_over_the_limit_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let l = limits(100, dir.path());
        struct Untouchable;
        impl Read for Untouchable {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                panic!("the body was read");
            }
        }
        let e = receive(&l, Some(101), &mut Untouchable).unwrap_err();
        assert!(matches!(e, BodyError::TooLarge(100)));
        assert_eq!(e.response().status, 413);
    }

    #[test]
    fn a_full_spool_disk_is_the_servers_trouble() {
        let e = BodyError::Spool(io::ErrorKind::StorageFull.into());
        let resp = e.response();
        assert_eq!((resp.status, resp.header("retry-after")), (500, Some("30")));
        assert!(String::from_utf8_lossy(&resp.body).starts_with("body-io: "));
        assert_eq!(
            BodyError::Io(io::ErrorKind::UnexpectedEof.into())
                .response()
                .status,
            400
        );
    }

    #[test]
    fn undeclared_or_longer_bodies_are_cut_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let l = limits(1000, dir.path());
        let mut endless = io::repeat(7);
        let e = receive(&l, None, &mut endless).unwrap_err();
        assert!(matches!(e, BodyError::TooLarge(1000)));
        // A declared length is all that is read.
        let body = receive(&l, Some(3), &mut &b"abcdef"[..]).unwrap();
        assert_eq!(body.to_vec(10).unwrap().unwrap(), b"abc");
        assert_eq!(body.to_vec(2).unwrap(), None);
        let body = receive(&l, None, &mut &[1u8; 1000][..]).unwrap();
        assert_eq!(body.len(), 1000);
    }
}
