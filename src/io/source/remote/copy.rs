//! One URL's local copy in `RemoteOptions::dir`: the `<key>.img` bytes and the `<key>.meta`
//! sidecar (URL, validators, fetch time, content version), each landed by renaming a
//! temporary file over it. The directory as a whole (fetch locks, budget, eviction) is
//! `copies`'; the network is `download`'s.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{Fetched, RemoteOptions, copies, is_fresh, unix_now};

/// `ETag` and `Last-Modified` of a copy, sent back as `If-None-Match` / `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Validators {
    pub(super) etag: Option<String>,
    pub(super) last_modified: Option<String>,
    /// `scheme://host:port` of the server that sent them (after redirects, not always the
    /// URL's own); `None` for sidecars written before it was recorded: then none are sent.
    pub(super) origin: Option<String>,
}

/// The sidecar of a local copy, stored as `key=value` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Meta {
    pub(super) url: String,
    pub(super) validators: Validators,
    /// Unix seconds of the last successful fetch or revalidation.
    pub(super) fetched_at: u64,
    pub(super) version: String,
    pub(super) bytes: u64,
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
    pub(super) fn parse(text: &str) -> Option<Meta> {
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
pub(super) struct LocalCopy {
    /// First 32 hex digits of the SHA-256 of the URL.
    pub(super) key: String,
    pub(super) img: PathBuf,
    meta: PathBuf,
}

impl LocalCopy {
    pub(super) fn new(dir: &Path, url: &str) -> LocalCopy {
        let key = hex(&Sha256::digest(url.as_bytes())[..16]);
        LocalCopy {
            img: dir.join(format!("{key}.img")),
            meta: dir.join(format!("{key}.meta")),
            key,
        }
    }

    /// The sidecar, if it belongs to `url` and the image beside it (whose metadata comes
    /// second) has the recorded size.
    pub(super) fn load(&self, url: &str) -> Option<(Meta, fs::Metadata)> {
        let meta = Meta::parse(&fs::read_to_string(&self.meta).ok()?)?;
        let img = fs::metadata(&self.img).ok()?;
        (meta.url == url && img.len() == meta.bytes).then_some((meta, img))
    }

    /// The copy, if it is younger than the TTL; records the use.
    pub(super) fn fresh(&self, url: &str, opts: &RemoteOptions) -> Option<Fetched> {
        let (meta, img) = self.load(url)?;
        if !is_fresh(meta.fetched_at, unix_now(), opts.ttl) {
            return None;
        }
        copies::touch(&self.img, &img, opts.access_interval);
        Some(self.fetched(&meta))
    }

    /// Records a use of the copy, as [`LocalCopy::fresh`] does.
    pub(super) fn touch(&self, opts: &RemoteOptions) {
        if let Ok(img) = fs::metadata(&self.img) {
            copies::touch(&self.img, &img, opts.access_interval);
        }
    }

    pub(super) fn write_meta(&self, dir: &Path, meta: &Meta) -> io::Result<()> {
        let mut temp = TempFile::create(dir, &self.key)?;
        temp.file.write_all(meta.render().as_bytes())?;
        temp.persist(&self.meta)
    }

    pub(super) fn remove(&self) {
        for path in [&self.meta, &self.img] {
            if let Err(err) = fs::remove_file(path)
                && err.kind() != io::ErrorKind::NotFound
            {
                log::warn!("cannot remove {}: {err}", path.display());
            }
        }
    }

    pub(super) fn fetched(&self, meta: &Meta) -> Fetched {
        Fetched {
            path: self.img.clone(),
            version: meta.version.clone(),
            bytes: meta.bytes,
        }
    }
}

/// A uniquely named `*.tmp` file that is deleted on drop unless renamed into place.
pub(super) struct TempFile {
    path: PathBuf,
    pub(super) file: File,
    persisted: bool,
}

impl TempFile {
    pub(super) fn create(dir: &Path, key: &str) -> io::Result<TempFile> {
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
    pub(super) fn persist(mut self, to: &Path) -> io::Result<()> {
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

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
