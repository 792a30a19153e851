//! The redirector's core: the variant of a source for a bounding box — found in the cache (by
//! [`quick`] without the index, else with one indexed read), or rendered, stored and indexed
//! under a per-variant lock so that concurrent requests for the same missing variant render it
//! once.
//!
//! Shared by the HTTP handler and the tools; knows nothing of HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use crate::domain::format::Format;
use crate::domain::geometry::{self, BoundingBox, Size};
use crate::domain::original::OriginalId;
use crate::io::cache::{self, Cache, SourceKey};
use crate::io::catalog::Image;
use crate::io::config::Config;
use crate::io::metrics::{self, Stage};
use crate::io::render::{self, Probe, RenderError};
use crate::io::source::{SourceError, local, remote};
use crate::io::store::Store;
use crate::usecases::error::Error;

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

impl Variant {
    /// A variant found in the cache (a hit: nothing rendered, no bytes in hand).
    pub fn found(rel: String, size: Size, format: Format) -> Variant {
        Variant {
            rel,
            size,
            format,
            rendered: false,
            bytes: None,
        }
    }
}

/// A source, resolved once ([`resolve_source`]) for [`quick`] and [`plan`].
pub struct Source(Resolved);

/// Resolves `src`: a local original (its version from its metadata), or a remote one
/// (fetched or revalidated).
pub fn resolve_source(config: &Config, src: &str) -> Result<Source, Error> {
    resolve(config, src).map(Source)
}

/// A source, resolved: who it is and where its bytes are.
struct Resolved {
    key: SourceKey,
    origin: Origin,
}

/// Where a source's bytes are read from.
enum Origin {
    /// A local file (an original under the root, or a local copy of a remote one).
    File(PathBuf),
    /// An uploaded original in the store, read only when a variant must be rendered.
    Stored {
        store: Arc<dyn Store>,
        id: OriginalId,
        format: Format,
    },
}

/// The cache identity of an uploaded original: its content never changes, so its id is also
/// its version.
pub fn stored_key(id: &OriginalId) -> SourceKey {
    SourceKey {
        ident: format!("store:{id}"),
        version: id.to_string(),
    }
}

fn resolve(config: &Config, src: &str) -> Result<Resolved, Error> {
    if remote::is_remote(src) {
        let fetched = remote::fetch(&config.remote_options(), src)?;
        return Ok(Resolved {
            key: SourceKey {
                ident: format!("remote:{src}"),
                version: fetched.version,
            },
            origin: Origin::File(fetched.path),
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
        origin: Origin::File(local.path),
    })
}

/// A variant of an uploaded original on disk in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub size: Size,
    pub format: Format,
    pub bytes: u64,
}

/// The variants of the uploaded original `id` that the cache holds now (its variant
/// directory's `WxH.ext` files), smallest first. The 404 handler's links to them are not
/// counted again.
pub fn cached_of(config: &Config, id: &OriginalId) -> Vec<Cached> {
    let dir = config.cache.dir.join(stored_key(id).dir());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<Cached> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (stem, ext) = name.rsplit_once('.')?;
            let format = Format::from_ext(ext)?;
            let size: Size = stem.parse().ok()?;
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            Some(Cached {
                size,
                format,
                bytes: meta.len(),
            })
        })
        .collect();
    out.sort_by_key(|c| (c.size.width, c.size.height));
    out
}

/// The variant of `source` fitted into `bbox`, when the cache has it and it can be found
/// without the index: the source's version (a changed original is a new one) names its
/// version directory, whose [`cache::SOURCE_FACTS`] link gives what the index would (format
/// and displayed size), and the variant's file is there and was written or stamped within the
/// access interval — so the index's access time stays at most one interval stale, as
/// [`Cache::touch`] keeps it anyway. A CGI hit then opens no database at all.
///
/// `None` sends the request down the full path ([`plan`] and [`realize`], with the same
/// `source`), which renders misses, forgets missing files and stamps hits.
pub fn quick(config: &Config, source: &Source, bbox: BoundingBox) -> Option<Variant> {
    let dir = source.0.key.dir();
    let (format, original) = cache::source_facts(&config.cache.dir, &dir)?;
    let size = geometry::fit(original, bbox, config.cache.raster);
    let format = format.output();
    let rel = cache::variant_path(&dir, size, format);
    let meta = std::fs::metadata(config.cache.dir.join(&rel)).ok()?;
    let fresh = meta.is_file() && cache::recently_stamped(&meta, config.cache.access_interval);
    let found = fresh.then(|| Variant::found(rel, size, format));
    if found.is_some() {
        metrics::hit();
    }
    found
}

/// Where the variant of a source for a box is (or will be), worked out without rendering:
/// from the index when the source is known (one indexed read), else from its header.
pub struct Plan {
    source: Resolved,
    /// Path relative to the cache directory (and to a mirror's base URL).
    pub rel: String,
    pub size: Size,
    pub format: Format,
    /// Whether the index lists the variant and its file is there.
    indexed: bool,
    /// The original's bytes and header when they had to be read to plan.
    read: Option<(Vec<u8>, Probe)>,
}

/// Plans the variant of `source` fitted into `bbox`.
pub fn plan(
    config: &Config,
    cache: &Cache,
    source: Source,
    bbox: BoundingBox,
) -> Result<Plan, Error> {
    plan_resolved(config, cache, source.0, bbox, |source| {
        let (bytes, probe) = read(config, source)?;
        Ok((probe.size(), probe.format, Some((bytes, probe))))
    })
}

/// Plans the variant of an uploaded original fitted into `bbox`, from the catalog's facts:
/// nothing is read from the store until a variant has to be rendered.
pub fn plan_stored(
    config: &Config,
    cache: &Cache,
    store: Arc<dyn Store>,
    image: &Image,
    bbox: BoundingBox,
) -> Result<Plan, Error> {
    let format = crate::io::catalog::format_of(&image.mime)
        .ok_or_else(|| RenderError::Unsupported(format!("catalogued as {}", image.mime)))?;
    let key = stored_key(&image.id);
    let source = Resolved {
        key,
        origin: Origin::Stored {
            store,
            id: image.id.clone(),
            format,
        },
    };
    let size = Size::new(image.width, image.height);
    plan_resolved(config, cache, source, bbox, |_| Ok((size, format, None)))
}

/// The plan from the index (one read) when the source is known there, else from what
/// `unknown` says of it: its displayed size, its format and, when it had to read them, its
/// bytes and header.
fn plan_resolved(
    config: &Config,
    cache: &Cache,
    source: Resolved,
    bbox: BoundingBox,
    unknown: impl FnOnce(&Resolved) -> Result<(Size, Format, Option<(Vec<u8>, Probe)>), Error>,
) -> Result<Plan, Error> {
    if let Some(known) = cache.lookup(&source.key)? {
        let size = geometry::fit(known.size, bbox, config.cache.raster);
        let format = known.format.output();
        let rel = cache::variant_path(&known.dir, size, format);
        let file = std::fs::metadata(cache.file(&rel))
            .ok()
            .filter(|m| m.is_file());
        let indexed = match (known.variants.iter().find(|v| v.path == rel), file) {
            (Some(v), Some(meta)) => {
                if let Err(e) = cache.hit(&known, v, &meta) {
                    // A busy index must not fail a hit: the access time only guides eviction.
                    log::warn!("touch {rel}: {e}");
                }
                true
            }
            (Some(_), None) => {
                // The file went missing behind the index's back: forget the row, render again.
                if let Err(e) = cache.forget(&rel) {
                    log::warn!("forget {rel}: {e}");
                }
                false
            }
            (None, _) => false,
        };
        return Ok(Plan {
            source,
            rel,
            size,
            format,
            indexed,
            read: None,
        });
    }
    let (original, format, read) = unknown(&source)?;
    let size = geometry::fit(original, bbox, config.cache.raster);
    let format = format.output();
    let rel = cache::variant_path(&source.key.dir(), size, format);
    Ok(Plan {
        source,
        rel,
        size,
        format,
        indexed: false,
        read,
    })
}

fn read(config: &Config, source: &Resolved) -> Result<(Vec<u8>, Probe), Error> {
    metrics::time(Stage::Read, || read_untimed(config, source))
}

fn read_untimed(config: &Config, source: &Resolved) -> Result<(Vec<u8>, Probe), Error> {
    let bytes = match &source.origin {
        Origin::File(path) => local::read_limited(path, config.limits.max_source_bytes)?,
        Origin::Stored { store, id, format } => store.get(id, *format)?,
    };
    let probe = render::probe(&bytes, config.limits.max_pixels)?;
    Ok((bytes, probe))
}

/// Makes a planned variant exist in the local cache: a hit returns at once; a miss renders
/// under its own lock, so concurrent requests for it render it once (and other variants of
/// the same source render in parallel).
pub fn realize(config: &Config, cache: &mut Cache, plan: Plan) -> Result<Variant, Error> {
    let found = || Variant::found(plan.rel.clone(), plan.size, plan.format);
    if plan.indexed {
        metrics::hit();
        return Ok(found());
    }
    metrics::miss();
    let _lock = cache.lock(&plan.rel)?;
    // Someone may have rendered it while we waited for the lock.
    let known = cache.lookup(&plan.source.key)?;
    if known.is_some_and(|k| k.variants.iter().any(|v| v.path == plan.rel))
        && cache.file(&plan.rel).is_file()
    {
        metrics::coalesced();
        return Ok(found());
    }
    let (bytes, probe) = match plan.read {
        Some(read) => read,
        None => read(config, &plan.source)?,
    };
    let rendered = render::render(&bytes, &probe, plan.size, &config.render)?;
    metrics::rendered();
    if rendered.size != plan.size || rendered.format != plan.format {
        let msg = format!(
            "rendered {} {:?} instead of {} {:?}",
            rendered.size, rendered.format, plan.size, plan.format
        );
        return Err(RenderError::Encode(msg).into());
    }
    cache.store(
        &plan.source.key,
        (probe.format, probe.size()),
        &plan.rel,
        plan.size,
        &rendered.bytes,
    )?;
    Ok(Variant {
        rel: plan.rel,
        size: plan.size,
        format: plan.format,
        rendered: true,
        bytes: Some(rendered.bytes),
    })
}

/// Renders a planned variant in memory, without touching the cache (the 404 handler with
/// `variants_on_disk = false`).
pub fn render_only(config: &Config, plan: Plan) -> Result<Variant, Error> {
    metrics::miss();
    let (bytes, probe) = match plan.read {
        Some(read) => read,
        None => read(config, &plan.source)?,
    };
    let rendered = render::render(&bytes, &probe, plan.size, &config.render)?;
    metrics::rendered();
    Ok(Variant {
        rel: plan.rel,
        size: rendered.size,
        format: rendered.format,
        rendered: true,
        bytes: Some(rendered.bytes),
    })
}

/// The variant of `src` fitted into `bbox` in the local cache: a hit costs one indexed read
/// and a `stat`; a miss renders.
pub fn get(
    config: &Config,
    cache: &mut Cache,
    src: &str,
    bbox: BoundingBox,
) -> Result<Variant, Error> {
    let plan = plan(config, cache, resolve_source(config, src)?, bbox)?;
    realize(config, cache, plan)
}
