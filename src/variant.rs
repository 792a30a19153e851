//! The redirector's core: the variant of a source for a bounding box — found in the cache with
//! one indexed read, or rendered, stored and indexed under a per-source lock so that concurrent
//! requests for the same missing variant render it once.
//!
//! Shared by the HTTP handler and the tools; knows nothing of HTTP.

use std::path::PathBuf;

use crate::cache::{self, Cache, Known, SourceKey};
use crate::config::Config;
use crate::error::Error;
use crate::geometry::{self, BoundingBox, Size};
use crate::render::{self, Format, RenderError};
use crate::source::{SourceError, local, remote};

/// A variant ready to be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Path relative to the cache directory (and URL path relative to the cache URL).
    pub rel: String,
    pub size: Size,
    pub format: Format,
    /// Whether this call rendered it (a miss) rather than finding it (a hit).
    pub rendered: bool,
    /// The bytes when this call rendered them.
    pub bytes: Option<Vec<u8>>,
}

/// A source, resolved: who it is and where its bytes are.
struct Resolved {
    key: SourceKey,
    path: PathBuf,
}

fn resolve(config: &Config, src: &str) -> Result<Resolved, Error> {
    if remote::is_remote(src) {
        let fetched = remote::fetch(&config.remote_options(), src)?;
        return Ok(Resolved {
            key: SourceKey {
                ident: format!("remote:{src}"),
                version: fetched.version,
            },
            path: fetched.path,
        });
    }
    if src.contains("://") {
        let msg = "src: only http:// and https:// URLs are supported";
        return Err(SourceError::Invalid(msg.into()).into());
    }
    let local = local::resolve(&config.originals.root, src, config.limits.max_source_bytes)?;
    Ok(Resolved {
        key: SourceKey {
            ident: format!("local:{}", local.rel),
            version: local.version,
        },
        path: local.path,
    })
}

/// The variant path a known source has for `bbox`, if its file is there.
fn find(
    config: &Config,
    cache: &Cache,
    known: &Known,
    bbox: BoundingBox,
) -> Option<(String, Size)> {
    let size = geometry::fit(known.size, bbox, config.cache.raster);
    let rel = cache::variant_path(&known.dir, size, known.format.output());
    let variant = known.variants.iter().find(|v| v.path == rel)?;
    if !cache.file(&rel).is_file() {
        // The file went missing behind the index's back: forget the row and render again.
        if let Err(e) = cache.forget(&rel) {
            log::warn!("forget {rel}: {e}");
        }
        return None;
    }
    if let Err(e) = cache.touch(variant) {
        // A busy index must not fail a hit; the access time is only a hint for eviction.
        log::warn!("touch {rel}: {e}");
    }
    Some((rel, size))
}

/// The variant of `src` fitted into `bbox`: a hit costs one indexed read and a `stat`; a miss
/// renders under the source's lock.
pub fn get(
    config: &Config,
    cache: &mut Cache,
    src: &str,
    bbox: BoundingBox,
) -> Result<Variant, Error> {
    let source = resolve(config, src)?;
    let hit = |cache: &Cache| -> Result<Option<Variant>, Error> {
        let Some(known) = cache.lookup(&source.key)? else {
            return Ok(None);
        };
        Ok(
            find(config, cache, &known, bbox).map(|(rel, size)| Variant {
                rel,
                size,
                format: known.format.output(),
                rendered: false,
                bytes: None,
            }),
        )
    };
    if let Some(v) = hit(cache)? {
        return Ok(v);
    }
    let _lock = cache.lock(&source.key)?;
    // Someone may have rendered it while we waited for the lock.
    if let Some(v) = hit(cache)? {
        return Ok(v);
    }
    let bytes = local::read_limited(&source.path, config.limits.max_source_bytes)?;
    let probe = render::probe(&bytes, config.limits.max_pixels)?;
    let original = probe.size();
    let size = geometry::fit(original, bbox, config.cache.raster);
    let rendered = render::render(&bytes, &probe, size, &config.render)?;
    if rendered.size != size {
        let msg = format!("rendered {} instead of {size}", rendered.size);
        return Err(RenderError::Encode(msg).into());
    }
    let rel = cache::variant_path(&source.key.dir(), size, rendered.format);
    cache.store(
        &source.key,
        (probe.format, original),
        &rel,
        size,
        &rendered.bytes,
    )?;
    Ok(Variant {
        rel,
        size,
        format: rendered.format,
        rendered: true,
        bytes: Some(rendered.bytes),
    })
}
