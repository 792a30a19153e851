//! The redirector: `?src=…&width=…&height=…` (or `&preset=`) answers a redirect to the cached
//! variant (rendering it on a miss), to a mirror holding it, or the bytes themselves.

use std::time::Instant;

use super::App;
use crate::domain::query;
use crate::io::http::{Request, Response};
use crate::usecases::error::Error;
use crate::usecases::variant::{self, Variant};

impl App {
    /// The redirector: `?src=…&width=…&height=…`.
    pub(super) fn resize(&self, req: &Request) -> Result<Response, Error> {
        let limits = &self.config.limits;
        let presets = &self.config.presets;
        let q = query::parse_resize(&req.query, limits.max_width, limits.max_height, presets)?;
        if !is_preset(&req.query) {
            self.check_signed_url(&req.path, &req.query)?;
        }
        let started = Instant::now();
        // Renders are news for the error log; hits and mirror redirects are in the web
        // server's access log already, so they are logged only at debug level (a line per
        // hit would flood nginx's error log through CGI's and FastCGI's stderr).
        let log = |what: &str, rel: &str| {
            let level = if what == "rendered" {
                log::Level::Info
            } else {
                log::Level::Debug
            };
            let ms = started.elapsed().as_millis();
            log::log!(
                level,
                "{} src={} box={} -> {rel} {what} ({ms} ms)",
                req.method,
                q.src,
                q.bbox
            );
        };
        // Without mirrors, a hit is answered without the index when it can be: a long-lived
        // server's variant served within the last second from memory (see `recent`), else one
        // whose version directory and file say enough (`variant::quick`). With mirrors, every
        // request asks the mirror map. The source is resolved once, for both paths.
        let remember = self.mirrors.is_none();
        if remember && let Some(v) = self.recent.get(&q.src, q.bbox, &self.config.cache.dir) {
            crate::io::metrics::hit();
            log("hit", &v.rel);
            return self.local(v);
        }
        let source = variant::resolve_source(&self.config, &q.src)?;
        if remember && let Some(v) = variant::quick(&self.config, &source, q.bbox) {
            log("hit", &v.rel);
            self.recent.remember(&q.src, q.bbox, &v);
            return self.local(v);
        }
        enum Served {
            Mirror { url: String, rel: String },
            Local(Variant),
        }
        let served = self.with_cache(|cache| {
            let plan = variant::plan(&self.config, cache, source, q.bbox)?;
            if let Some(url) = self.on_mirror(&plan.rel) {
                return Ok(Served::Mirror { url, rel: plan.rel });
            }
            variant::realize(&self.config, cache, plan).map(Served::Local)
        })?;
        let v = match served {
            Served::Mirror { url, rel } => {
                log("mirror", &rel);
                return Ok(self.redirect(url));
            }
            Served::Local(v) => {
                log(if v.rendered { "rendered" } else { "hit" }, &v.rel);
                v
            }
        };
        if remember {
            self.recent.remember(&q.src, q.bbox, &v);
        }
        self.local(v)
    }

    /// The answer for a variant in the local cache: a redirect to it, or its bytes.
    fn local(&self, v: Variant) -> Result<Response, Error> {
        if self.config.cache.serve_direct {
            self.direct(v)
        } else {
            Ok(self.redirect(format!("{}/{}", self.config.cache.url, v.rel)))
        }
    }

    fn redirect(&self, url: String) -> Response {
        let cache_control = self.config.cache.redirect_cache_control.clone();
        Response::text(302, format!("Found: {url}"))
            .with_header("Location", url)
            .with_header("Cache-Control", cache_control)
    }

    /// The URL of `rel` on a mirror holding it, if any. A broken mirror map is logged and
    /// ignored: the variant is then served locally.
    fn on_mirror(&self, rel: &str) -> Option<String> {
        let mirrors = self.mirrors.as_ref()?;
        mirrors.pick(rel).unwrap_or_else(|e| {
            log::error!("mirrors: {e}");
            None
        })
    }

    /// `serve_direct = true`: the variant's bytes in the response.
    pub(super) fn direct(&self, v: Variant) -> Result<Response, Error> {
        let bytes = match v.bytes {
            Some(b) => b,
            None => std::fs::read(self.config.cache.dir.join(&v.rel))
                .map_err(crate::io::cache::CacheError::Io)?,
        };
        Ok(Response::new(200)
            .with_header("Content-Type", v.format.mime())
            .with_header(
                "Cache-Control",
                self.config.cache.file_cache_control.clone(),
            )
            .with_body(bytes))
    }
}

/// Whether the query names a preset: presets are the sizes the operator chose, so they may
/// stay unsigned under `require_signed_urls`.
fn is_preset(query: &str) -> bool {
    query
        .split('&')
        .any(|p| p.split_once('=').map_or(p, |(n, _)| n) == "preset")
}
