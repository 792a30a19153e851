//! The 404 handler: the web server looks for `<cache url>/<id>/<width>/<height>[.<ext>]` in
//! `[cache] dir` first and, when the file is missing, runs imgserv (nginx `try_files $uri
//! @imgserv`, Apache `ErrorDocument 404`). This renders the uploaded original `<id>` into the
//! box with the raster rules, links the file at exactly the path the web server looked at (to
//! the one canonical variant in the index, so boxes that snap to one size share a file), and
//! answers with the bytes. The next request never reaches imgserv.

use std::fs;
use std::io;
use std::path::Path;

use percent_encoding::percent_decode_str;

use super::{ApiError, App};
use crate::cache::write_atomically;
use crate::catalog::{CatalogError, Image};
use crate::config::Config;
use crate::error::Error;
use crate::geometry::{BoundingBox, Size};
use crate::http::{self, Request, Response};
use crate::original::OriginalId;
use crate::query;
use crate::render::Format;
use crate::variant;

/// The path below the cache URL when this request is the web server's stand-in for a missing
/// file there (Apache's `REDIRECT_URL`, else the request URI), `None` for any other request.
pub(super) fn cache_path(config: &Config, req: &Request) -> Option<String> {
    if !req.path.is_empty() {
        return None;
    }
    let url_path = match req.header(http::REDIRECT_URL) {
        Some(url) => url.to_string(),
        None => {
            let uri = req.header(http::REQUEST_URI)?;
            let path = uri.split(['?', '#']).next().unwrap_or_default();
            percent_decode_str(path).decode_utf8().ok()?.into_owned()
        }
    };
    let cache = config.cache.url.as_str();
    let prefix = match cache.find("://") {
        Some(i) => cache[i + 3..].find('/').map_or("", |j| &cache[i + 3 + j..]),
        None => cache,
    };
    url_path
        .strip_prefix(prefix)?
        .strip_prefix('/')
        .filter(|rel| !rel.is_empty())
        .map(str::to_string)
}

/// `<id>/<width>/<height>[.<ext>]`, parsed.
struct Target {
    id: OriginalId,
    bbox: BoundingBox,
    ext: Option<Format>,
}

fn parse(config: &Config, rel: &str) -> Result<Target, Error> {
    let no_such = || ApiError::NoRoute(format!("{}/{rel}", config.cache.url));
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
    pub(super) fn handle404(&self, req: &Request, rel: &str) -> Result<Response, Error> {
        if !matches!(req.method.as_str(), "GET" | "HEAD") {
            return Err(ApiError::Method { allow: "GET, HEAD" }.into());
        }
        let target = parse(&self.config, rel)?;
        let preset = self
            .config
            .presets
            .values()
            .any(|boxes| boxes.contains(&target.bbox));
        if !preset {
            let query = req.header(http::REDIRECT_QUERY).unwrap_or(&req.query);
            self.check_signed_url(&format!("/{rel}"), query)?;
        }
        let image = self.with_catalog(|c| {
            c.get(&target.id)?
                .ok_or_else(|| CatalogError::NotFound(target.id.clone()).into())
        })?;
        let store = self.store()?;
        let on_disk = self.config.cache.variants_on_disk;
        let v = self.with_cache(|cache| {
            let plan = variant::plan_stored(&self.config, cache, store, &image, target.bbox)?;
            if target.ext.is_some_and(|ext| ext != plan.format) {
                return Err(ApiError::NoRoute(format!("{}/{rel}", self.config.cache.url)).into());
            }
            if !on_disk {
                return variant::render_only(&self.config, plan);
            }
            let v = variant::realize(&self.config, cache, plan)?;
            link(&cache.file(&v.rel), &self.config.cache.dir.join(rel))
                .map_err(crate::cache::CacheError::Io)?;
            Ok(v)
        })?;
        log::info!(
            "404 handler {rel} -> {} {}",
            v.rel,
            if v.rendered { "rendered" } else { "linked" }
        );
        self.direct(v)
    }

    /// Removes the variant of `image` for `bbox`: the canonical file and the 404 handler's
    /// files for that box. Whether there was anything to remove.
    pub(super) fn remove_variant(&self, image: &Image, bbox: Size) -> Result<bool, Error> {
        let store = self.store()?;
        self.with_cache(|cache| {
            let plan = variant::plan_stored(&self.config, cache, store, image, bbox)?;
            let io = crate::cache::CacheError::Io;
            let mut removed = remove(&cache.file(&plan.rel)).map_err(io)?;
            cache.forget(&plan.rel)?;
            let base = format!("{}/{}/{}", image.id, bbox.width, bbox.height);
            for rel in [base.clone(), format!("{base}.{}", plan.format.ext())] {
                removed |= remove(&self.config.cache.dir.join(rel)).map_err(io)?;
            }
            Ok(removed)
        })
    }
}

/// Makes `target` the same file as `canonical` (a hard link, or a copy where links are not
/// possible), atomically: the web server sees the old state or the whole file.
fn link(canonical: &Path, target: &Path) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".link.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_file(&tmp);
    match fs::hard_link(canonical, &tmp) {
        Ok(()) => fs::rename(&tmp, target).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        }),
        Err(_) => write_atomically(target, &fs::read(canonical)?),
    }
}

fn remove(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
