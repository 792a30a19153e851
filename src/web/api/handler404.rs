//! The 404 handler: the web server looks for `<cache url>/<id>/<width>/<height>.<ext>` in
//! `[cache] dir` first and, when the file is missing, runs imgserv and says so (Apache's
//! `ErrorDocument 404`, nginx `try_files $uri @imgserv` with `IMGSERV_404`; see
//! `http::target`). This renders the uploaded original `<id>` into the box with the raster
//! rules and answers with the bytes.
//!
//! Only canonical names are written: `<width>/<height>` must be the size served, and `<ext>`
//! the format served, spelled as imgserv spells them; the file there is a second name of the
//! variant in the index (`Cache::alias`), so eviction counts and removes it. Any other box
//! (one that snaps to another size, no extension, `0300`) gets a permanent redirect to the
//! canonical URL, whose file is written first. An original thus has at most one name here
//! per raster step, however many boxes are asked for.
//!
//! The web server serves the files written here to anyone, without asking imgserv: a variant
//! is written (or answered) only for an image `public` may view, where variants count as
//! public unless a rule hides them — as if `[api] public_reads` were on, so that an image in
//! an `inherit = false` category without a `public` grant gets `404`, as an unknown id does
//! (no word on whether it exists).

use std::fs;
use std::io;
use std::path::Path;

use super::{App, RequestError};
use crate::domain::format::Format;
use crate::domain::geometry::{self, BoundingBox, Size};
use crate::domain::original::OriginalId;
use crate::domain::query;
use crate::io::cache::CacheError;
use crate::io::catalog::{CatalogError, Image};
use crate::io::config::Config;
use crate::io::http::{Request, Response};
use crate::usecases::error::Error;
use crate::usecases::permissions::Actor;
use crate::usecases::variant;

/// How often a variant that went (evicted, or its original deleted, by another process)
/// between storing it and naming it is stored again before the request gets `503`.
const ALIAS_TRIES: u32 = 3;

/// The path below the cache URL of `missing`, the URL path the web server found no file for;
/// a 404 when it is not below the cache URL (or is the cache URL itself).
fn cache_path(config: &Config, missing: &str) -> Result<String, Error> {
    let cache = config.cache.url.as_str();
    let prefix = match cache.find("://") {
        Some(i) => cache[i + 3..].find('/').map_or("", |j| &cache[i + 3 + j..]),
        None => cache,
    };
    missing
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|rel| !rel.is_empty())
        .map(str::to_string)
        .ok_or_else(|| RequestError::NoRoute(missing.to_string()).into())
}

/// `<id>/<width>/<height>[.<ext>]`, parsed.
struct Target {
    id: OriginalId,
    bbox: BoundingBox,
    ext: Option<Format>,
}

fn parse(config: &Config, rel: &str) -> Result<Target, Error> {
    let no_such = || RequestError::NoRoute(format!("{}/{rel}", config.cache.url));
    let parts: Vec<&str> = rel.split('/').collect();
    let [id, width, last] = parts.as_slice() else {
        return Err(no_such().into());
    };
    let id: OriginalId = id.parse().map_err(|_| no_such())?;
    let (height, ext) = match last.split_once('.') {
        Some((h, ext)) => (h, Some(Format::from_ext(ext).ok_or_else(no_such)?)),
        None => (*last, None),
    };
    let limits = &config.limits;
    let bbox = BoundingBox::new(
        query::dimension("width", Some(width), limits.max_width)?,
        query::dimension("height", Some(height), limits.max_height)?,
    );
    Ok(Target { id, bbox, ext })
}

impl App {
    /// Answers for `missing`, the URL path of a missing file the web server hands over.
    pub(super) fn handle404(&self, req: &Request, missing: &str) -> Result<Response, Error> {
        if !matches!(req.method.as_str(), "GET" | "HEAD") {
            return Err(RequestError::Method {
                allow: "GET, HEAD".into(),
            }
            .into());
        }
        let rel = cache_path(&self.config, missing)?;
        let rel = rel.as_str();
        let target = parse(&self.config, rel)?;
        let raster = self.config.cache.raster;
        let image = self.with_catalog(|c| Ok(c.get(&target.id)?))?;
        let original = image.as_ref().map(|i| Size::new(i.width, i.height));
        // Preset boxes stay unsigned, and so do the sizes they are served at (where their
        // redirects lead). Unsigned, an unknown id is refused like any other: no word on
        // whether it exists.
        let preset = self.config.presets.values().flatten().any(|&b| {
            b == target.bbox || original.is_some_and(|o| geometry::fit(o, b, raster) == target.bbox)
        });
        if !preset {
            self.check_signed_url(&format!("/{rel}"), &req.query)?;
        }
        let (Some(image), Some(original)) = (image, original) else {
            return Err(CatalogError::NotFound(target.id.clone()).into());
        };
        let public = self.with_catalog(|c| {
            Ok(self
                .permissions()
                .for_variants()
                .explain_image(c, &Actor::Anonymous, &image)?
                .is_some())
        })?;
        if !public {
            log::info!("404 handler {rel}: {} is not public", image.id);
            return Err(CatalogError::NotFound(target.id.clone()).into());
        }
        let store = self.store()?;
        let on_disk = self.config.cache.variants_on_disk;
        // The box that renders the size this name asks for, when it names a served size.
        let serving = geometry::box_serving(original, target.bbox, raster);
        let (v, canonical) = self.with_cache(|cache| {
            let bbox = serving.unwrap_or(target.bbox);
            let plan = variant::plan_stored(&self.config, cache, store.clone(), &image, bbox)?;
            if target.ext.is_some_and(|ext| ext != plan.format) {
                return Err(RequestError::NoRoute(missing.to_string()).into());
            }
            let canonical = name(&image.id, plan.size, plan.format);
            if !on_disk {
                // Nothing is written: a redirect needs no render.
                let v = (rel == canonical)
                    .then(|| variant::render_only(&self.config, plan))
                    .transpose()?;
                return Ok((v, canonical));
            }
            // The canonical file is written before a redirect to it, so that the redirect's
            // target is a plain file for the web server (and needs no signature).
            let mut v = variant::realize(&self.config, cache, plan)?;
            let mut tries = 1;
            while !cache.alias(&v.rel, &canonical)? {
                // Another process evicted the variant, or deleted its original, between
                // storing and naming it: plan it again (a deleted original is then not found)
                // and store it again, a few times at most.
                if tries == ALIAS_TRIES {
                    return Err(CacheError::Busy(format!("{rel}: evicted {tries} times")).into());
                }
                tries += 1;
                log::info!("404 handler {rel}: {} went before it was named", v.rel);
                let plan = variant::plan_stored(&self.config, cache, store.clone(), &image, bbox)?;
                v = variant::realize(&self.config, cache, plan)?;
            }
            log::info!(
                "404 handler {rel} -> {} {}",
                v.rel,
                if v.rendered { "rendered" } else { "linked" }
            );
            // The alias is the name eviction spared.
            v.rel.clone_from(&canonical);
            Ok((Some(v), canonical))
        })?;
        match v {
            Some(v) if rel == canonical => self.direct(v),
            _ => {
                log::info!("404 handler {rel} -> {canonical} (redirect)");
                Ok(self.moved(&canonical))
            }
        }
    }

    /// The permanent redirect to the canonical name `rel`: cacheable as long as the file,
    /// since an original's id names its bytes and so its size.
    fn moved(&self, rel: &str) -> Response {
        let url = format!("{}/{rel}", self.config.cache.url);
        Response::text(301, format!("Moved Permanently: {url}"))
            .with_header("Location", url)
            .with_header(
                "Cache-Control",
                self.config.cache.file_cache_control.clone(),
            )
    }

    /// Removes the variant of `image` for `bbox`: the canonical file and the 404 handler's
    /// name for it (and the names of this very box that 404 handlers before canonical names
    /// wrote). Whether there was anything to remove.
    pub(super) fn remove_variant(&self, image: &Image, bbox: Size) -> Result<bool, Error> {
        let store = self.store()?;
        self.with_cache(|cache| {
            let plan = variant::plan_stored(&self.config, cache, store, image, bbox)?;
            let io = crate::io::cache::CacheError::Io;
            let mut removed = false;
            let legacy = format!("{}/{}/{}", image.id, bbox.width, bbox.height);
            let names = [
                plan.rel.clone(),
                name(&image.id, plan.size, plan.format),
                format!("{legacy}.{}", plan.format.ext()),
                legacy,
            ];
            for rel in names {
                cache.forget(&rel)?;
                removed |= remove(&cache.file(&rel)).map_err(io)?;
            }
            Ok(removed)
        })
    }
}

/// The one name the 404 handler writes for the variant of `id` served at `size`.
fn name(id: &OriginalId, size: Size, format: Format) -> String {
    format!("{id}/{}/{}.{}", size.width, size.height, format.ext())
}

fn remove(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
