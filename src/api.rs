//! Routes: the one transport-agnostic handler that every adapter (CGI, FastCGI, standalone)
//! calls. It maps requests to the redirector (`variant`) and results and errors to responses;
//! the error-to-status table itself lives in `error`.

use std::sync::Mutex;
use std::time::Instant;

use crate::cache::Cache;
use crate::config::Config;
use crate::error::Error;
use crate::http::{Handler, Request, Response};
use crate::mirror::Mirrors;
use crate::query;
use crate::variant::{self, Variant};

/// The application: configuration plus a small pool of cache connections (SQLite connections
/// are not shared between threads; each request borrows one).
pub struct App {
    config: Config,
    pool: Mutex<Vec<Cache>>,
    mirrors: Option<Mirrors>,
}

impl App {
    pub fn new(config: Config) -> App {
        let mirrors = config
            .mirrors
            .map
            .clone()
            .map(|map| Mirrors::new(map, config.state.dir.join("mirrors.sqlite")));
        App {
            config,
            pool: Mutex::new(Vec::new()),
            mirrors,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs `f` with a cache connection from the pool (opening one when none is free).
    fn with_cache<T>(&self, f: impl FnOnce(&mut Cache) -> Result<T, Error>) -> Result<T, Error> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        let mut cache = match pooled {
            Some(c) => c,
            None => Cache::open(
                &self.config.cache.dir,
                &self.config.state.index_path(),
                self.config.cache.max_bytes,
                self.config.cache.access_interval,
            )?,
        };
        let result = f(&mut cache);
        if let Ok(mut p) = self.pool.lock() {
            p.push(cache);
        }
        result
    }

    /// The redirector: `?src=…&width=…&height=…`.
    fn resize(&self, req: &Request) -> Result<Response, Error> {
        let limits = &self.config.limits;
        let presets = &self.config.presets;
        let q = query::parse_resize(&req.query, limits.max_width, limits.max_height, presets)?;
        let started = Instant::now();
        let log = |what: &str, rel: &str| {
            let ms = started.elapsed().as_millis();
            log::info!(
                "{} src={} box={} -> {rel} {what} ({ms} ms)",
                req.method,
                q.src,
                q.bbox
            );
        };
        enum Served {
            Mirror { url: String, rel: String },
            Local(Variant),
        }
        let served = self.with_cache(|cache| {
            let plan = variant::plan(&self.config, cache, &q.src, q.bbox)?;
            if let Some(url) = self.on_mirror(&plan.rel) {
                return Ok(Served::Mirror { url, rel: plan.rel });
            }
            variant::realize(&self.config, cache, plan).map(Served::Local)
        })?;
        let (url, v) = match served {
            Served::Mirror { url, rel } => {
                log("mirror", &rel);
                return Ok(self.redirect(url));
            }
            Served::Local(v) => {
                log(if v.rendered { "rendered" } else { "hit" }, &v.rel);
                (format!("{}/{}", self.config.cache.url, v.rel), v)
            }
        };
        if self.config.cache.serve_direct {
            self.direct(v)
        } else {
            Ok(self.redirect(url))
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
    fn direct(&self, v: Variant) -> Result<Response, Error> {
        let bytes = match v.bytes {
            Some(b) => b,
            None => std::fs::read(self.config.cache.dir.join(&v.rel))
                .map_err(crate::cache::CacheError::Io)?,
        };
        Ok(Response::new(200)
            .with_header("Content-Type", v.format.mime())
            .with_header(
                "Cache-Control",
                self.config.cache.file_cache_control.clone(),
            )
            .with_body(bytes))
    }

    fn route(&self, req: &Request) -> Result<Response, Error> {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET" | "HEAD", "" | "/") => self.resize(req),
            (_, "" | "/") => Ok(
                Response::error(405, "method-not-allowed", "use GET or HEAD")
                    .with_header("Allow", "GET, HEAD"),
            ),
            _ => Ok(Response::error(
                404,
                "not-found",
                format!("no such resource: {}", req.path),
            )),
        }
    }
}

/// An error as the client sees it: the status, its stable code and one line. The cause chain
/// goes to the log only.
pub fn error_response(e: &Error) -> Response {
    let status = e.status();
    if status >= 500 {
        log::error!("{} ({}): {e:?}", e.code(), status);
    } else {
        log::info!("{} ({}): {e}", e.code(), status);
    }
    Response::error(status, e.code(), e.public_message())
}

impl Handler for App {
    fn handle(&self, req: Request) -> Response {
        let resp = self.route(&req).unwrap_or_else(|e| error_response(&e));
        resp.for_request(&req)
    }
}
