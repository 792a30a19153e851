//! Answering a request from the cache: what the index knows of a source and its variants, and
//! recording a hit, in the index and in the [`SOURCE_FACTS`] link and file stamps that let
//! later hits skip the index (`variant::quick`).

use std::fs::{self, File, FileTimes};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::params;

use super::{Cache, CacheError, SourceKey, now};
use crate::domain::format::Format;
use crate::domain::geometry::Size;
/// What the index knows about a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub id: i64,
    pub format: Format,
    /// As displayed.
    pub size: Size,
    pub dir: String,
    pub variants: Vec<KnownVariant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownVariant {
    pub path: String,
    pub last_access: i64,
}

/// The name, in a source's version directory, of the symbolic link whose target records the
/// source's format and displayed size as the index has them (`jpg-4032x3024`): one `readlink`
/// reads it, one `symlink` writes it whole. Eviction, mirror lists and the web server ignore it
/// (a dot name, and not a regular file).
pub const SOURCE_FACTS: &str = ".source";

/// The source's format and displayed size, as the [`SOURCE_FACTS`] link in the version
/// directory `dir` (relative to `cache_dir`) records them; `None` when there is no such link or
/// it says something else.
pub fn source_facts(cache_dir: &Path, dir: &str) -> Option<(Format, Size)> {
    let target = fs::read_link(cache_dir.join(dir).join(SOURCE_FACTS)).ok()?;
    let (format, size) = target.to_str()?.split_once('-')?;
    let (w, h) = size.split_once('x')?;
    let size = Size::new(w.parse().ok()?, h.parse().ok()?);
    if size.width == 0 || size.height == 0 {
        return None;
    }
    Some((Format::from_ext(format)?, size))
}

/// Whether a variant's file was written, or had an access recorded by [`Cache::hit`], less than
/// `interval` ago: both set its status-change time (`ctime`), which serving it never does.
pub fn recently_stamped(meta: &fs::Metadata, interval: Duration) -> bool {
    let ctime = meta.ctime() * 1000 + meta.ctime_nsec() / 1_000_000;
    let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    now().saturating_sub(ctime) < interval
}

impl Cache {
    /// The source and all its variants, in one indexed read.
    pub fn lookup(&self, key: &SourceKey) -> Result<Option<Known>, CacheError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.id, s.format, s.width, s.height, s.dir, v.path, v.last_access
             FROM sources s LEFT JOIN variants v ON v.source_id = s.id
             WHERE s.ident = ?1 AND s.version = ?2",
        )?;
        let mut rows = stmt.query(params![key.ident, key.version])?;
        let mut known: Option<Known> = None;
        while let Some(row) = rows.next()? {
            let k = match known.as_mut() {
                Some(k) => k,
                None => {
                    let format: String = row.get(1)?;
                    known.insert(Known {
                        id: row.get(0)?,
                        format: Format::from_ext(&format).ok_or_else(|| {
                            CacheError::Index(rusqlite::Error::InvalidColumnType(
                                1,
                                "format".into(),
                                rusqlite::types::Type::Text,
                            ))
                        })?,
                        size: Size::new(row.get(2)?, row.get(3)?),
                        dir: row.get(4)?,
                        variants: Vec::new(),
                    })
                }
            };
            if let Some(path) = row.get::<_, Option<String>>(5)? {
                k.variants.push(KnownVariant {
                    path,
                    last_access: row.get(6)?,
                });
            }
        }
        Ok(known)
    }

    /// Records a hit: refreshes the last-access time only when it is older than the access
    /// interval, so that hits normally write nothing. Returns whether it wrote.
    pub fn touch(&self, variant: &KnownVariant) -> Result<bool, CacheError> {
        let now = now();
        let interval = i64::try_from(self.access_interval.as_millis()).unwrap_or(i64::MAX);
        if now.saturating_sub(variant.last_access) < interval {
            return Ok(false);
        }
        self.conn
            .prepare_cached(
                "UPDATE variants SET last_access = ?1, hits = hits + 1 WHERE path = ?2",
            )?
            .execute(params![now, variant.path])?;
        Ok(true)
    }

    /// Records a hit on an indexed variant whose file is there (`meta`): [`Cache::touch`]es its
    /// row and, when the file's last stamp is older than the access interval, stamps it again
    /// (sets its access time, and so its status-change time) and makes sure its directory has
    /// the [`SOURCE_FACTS`] link, so that hits within the next interval need no index
    /// (`variant::quick`). Neither is an error: both only save later hits work.
    pub fn hit(
        &self,
        known: &Known,
        variant: &KnownVariant,
        meta: &fs::Metadata,
    ) -> Result<(), CacheError> {
        self.touch(variant)?;
        if !recently_stamped(meta, self.access_interval) {
            let path = self.file(&variant.path);
            let stamped = File::open(&path)
                .and_then(|f| f.set_times(FileTimes::new().set_accessed(SystemTime::now())));
            if let Err(e) = stamped {
                // Not the file's owner (say, precached by another user): hits of this
                // variant then keep taking the index path.
                log::debug!("stamp {}: {e}", path.display());
            }
            self.link_source_facts(&known.dir, known.format, known.size);
        }
        Ok(())
    }

    /// Writes the [`SOURCE_FACTS`] link of the version directory `dir`, unless it is there.
    pub(super) fn link_source_facts(&self, dir: &str, format: Format, size: Size) {
        let link = self.dir.join(dir).join(SOURCE_FACTS);
        let target = format!("{}-{}x{}", format.ext(), size.width, size.height);
        match std::os::unix::fs::symlink(target, &link) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                log::warn!("{}: {e}", link.display());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::cache::tests::{key, open};
    use crate::io::cache::{Totals, variant_path};
    use std::time::UNIX_EPOCH;

    #[test]
    fn store_lookup_touch() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, 1 << 20);
        assert_eq!(c.lookup(&key(1)).unwrap(), None);
        let k = key(1);
        let rel = variant_path(&k.dir(), Size::new(10, 5), Format::Jpeg);
        c.store(
            &k,
            (Format::Jpeg, Size::new(100, 50)),
            &rel,
            Size::new(10, 5),
            b"abc",
        )
        .unwrap();
        assert_eq!(fs::read(c.file(&rel)).unwrap(), b"abc");
        let known = c.lookup(&k).unwrap().unwrap();
        assert_eq!(known.size, Size::new(100, 50));
        assert_eq!(known.format, Format::Jpeg);
        assert_eq!(known.variants.len(), 1);
        assert_eq!(known.variants[0].path, rel);
        // A fresh entry is not rewritten on a hit; an old one is.
        assert!(!c.touch(&known.variants[0]).unwrap());
        let old = KnownVariant {
            last_access: 0,
            ..known.variants[0].clone()
        };
        assert!(c.touch(&old).unwrap());
        assert_eq!(c.variant_row(&rel).unwrap().unwrap().2, 1);
        assert_eq!(c.totals().unwrap(), Totals { bytes: 3, count: 1 });
        // No temporary file is left next to it: only the source's facts.
        let dir = c.file(&k.dir());
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [SOURCE_FACTS, "10x5.jpg"]);
    }

    #[test]
    fn source_facts_and_stamps_let_hits_skip_the_index() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t, 1 << 20);
        let k = key(1);
        let rel = variant_path(&k.dir(), Size::new(10, 5), Format::Jpeg);
        let source = (Format::Gif, Size::new(100, 50));
        c.store(&k, source, &rel, Size::new(10, 5), b"abc").unwrap();
        // The store records the source as the index does.
        assert_eq!(source_facts(c.dir(), &k.dir()), Some(source));
        assert_eq!(source_facts(c.dir(), &key(2).dir()), None);
        // A file just written is freshly stamped: for the access interval, not for zero.
        let meta = fs::metadata(c.file(&rel)).unwrap();
        assert!(recently_stamped(&meta, Duration::from_secs(60)));
        assert!(!recently_stamped(&meta, Duration::ZERO));

        // A link that says anything else is no facts.
        let link = c.file(&k.dir()).join(SOURCE_FACTS);
        for bad in ["jpg-0x5", "bmp-10x5", "jpg-10", "jpg-10x5x2", "-", "jpg-x5"] {
            fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(bad, &link).unwrap();
            assert_eq!(source_facts(c.dir(), &k.dir()), None, "{bad:?}");
        }

        // A hit whose stamp is older than the interval stamps the file again (its access
        // time, so its status-change time too) and puts the facts back.
        fs::remove_file(&link).unwrap();
        let long_ago = UNIX_EPOCH + Duration::from_secs(1_000_000);
        File::open(c.file(&rel))
            .unwrap()
            .set_times(FileTimes::new().set_accessed(long_ago))
            .unwrap();
        let stale = Cache {
            access_interval: Duration::ZERO,
            ..open(&t, 1 << 20)
        };
        let known = stale.lookup(&k).unwrap().unwrap();
        let meta = fs::metadata(stale.file(&rel)).unwrap();
        stale.hit(&known, &known.variants[0], &meta).unwrap();
        let after = fs::metadata(stale.file(&rel)).unwrap();
        assert!(after.atime() > 1_000_000, "stamped: {}", after.atime());
        assert_eq!(source_facts(c.dir(), &k.dir()), Some(source));
        // The row was touched too (the interval is zero), and the file's bytes are unchanged.
        assert_eq!(stale.variant_row(&rel).unwrap().unwrap().2, 1);
        assert_eq!(fs::read(c.file(&rel)).unwrap(), b"abc");
    }
}
