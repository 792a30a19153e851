//! Routes: the one transport-agnostic handler that every adapter (CGI, FastCGI, standalone)
//! calls. It sends each request to the redirector, the REST interface under `/api/`, or the
//! 404 handler, and turns errors into responses (plain text for image URLs, JSON for the API);
//! the error-to-status table itself lives in `error`.
//!
//! Connections (cache index, catalog) and the store are pooled here, so a FastCGI server
//! reuses them across requests; the route modules only borrow them.

mod handler404;
mod images;
mod metrics;
mod recent;
mod redirector;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::io::cache::Cache;
use crate::io::catalog::{Catalog, Rights};
use crate::io::config::Config;
use crate::io::http::RequestError;
use crate::io::http::{Handler, Request, Response};
use crate::io::replay::ReplayLog;
use crate::io::store::{self, Store};
use crate::usecases::error::Error;
use crate::usecases::mirror::Mirrors;
use crate::usecases::records::Records;
use crate::usecases::sign::{self, SignError, Verified};

/// The application: configuration plus small pools of connections (SQLite connections are not
/// shared between threads; each request borrows one).
pub struct App {
    config: Config,
    pool: Mutex<Vec<Cache>>,
    catalogs: Mutex<Vec<Catalog>>,
    store: Mutex<Option<Arc<dyn Store>>>,
    /// Opened on the first signed write; one connection is enough, as SQLite lets one writer
    /// at a time in anyway.
    replays: Mutex<Option<ReplayLog>>,
    mirrors: Option<Mirrors>,
    /// Variants served in the last second (used without a mirror map only).
    recent: recent::Recent,
    /// Keys and image records through `[object_cache]`.
    records: Records,
}

impl App {
    pub fn new(config: Config) -> App {
        let mirrors = config
            .mirrors
            .map
            .clone()
            .map(|map| Mirrors::new(map, config.state.dir.join("mirrors.sqlite")));
        // CGI sets GATEWAY_INTERFACE in the environment; FastCGI and standalone servers do not.
        let long_lived = std::env::var_os("GATEWAY_INTERFACE").is_none();
        App {
            records: Records::new(&config, long_lived),
            config,
            pool: Mutex::new(Vec::new()),
            catalogs: Mutex::new(Vec::new()),
            store: Mutex::new(None),
            replays: Mutex::new(None),
            mirrors,
            recent: recent::Recent::default(),
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
            None => self.config.open_cache()?,
        };
        let result = f(&mut cache);
        if let Ok(mut p) = self.pool.lock() {
            p.push(cache);
        }
        result
    }

    /// Runs `f` with a catalog connection from the pool (opening one when none is free).
    fn with_catalog<T>(
        &self,
        f: impl FnOnce(&mut Catalog) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let pooled = self.catalogs.lock().ok().and_then(|mut p| p.pop());
        let mut catalog = match pooled {
            Some(c) => c,
            None => Catalog::open(&self.config.state.catalog_path())?,
        };
        let result = f(&mut catalog);
        if let Ok(mut p) = self.catalogs.lock() {
            p.push(catalog);
        }
        result
    }

    /// The store of originals, opened on first use (opening contacts nothing).
    fn store(&self) -> Result<Arc<dyn Store>, Error> {
        let mut slot = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s: Arc<dyn Store> = Arc::from(store::open(&self.config.store)?);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Checks a signed request and the key's rights, and accepts a write's signature only
    /// once (see [`App::remember`]).
    fn authorize(&self, req: &Request, needed: Rights) -> Result<Verified, Error> {
        let skew = self.config.security.max_clock_skew;
        let now = unix_now();
        let verified = self.with_catalog(|catalog| {
            sign::verify(req, now, skew, |id| {
                Ok::<_, Error>(self.records.key(catalog, id)?)
            })
        })?;
        verified.require(needed)?;
        if !is_safe(&req.method) {
            self.remember(&verified, now)?;
        }
        Ok(verified)
    }

    /// Records an accepted write's signature in the shared replay log, refusing it when it is
    /// there already. A signature verifies while its date is within the skew of the clock, so
    /// until at most `now + 2 × skew` (a date `skew` ahead of `now`, `skew` more of validity):
    /// it is remembered that long. The insert is the check, so two identical requests racing
    /// in two processes cannot both pass.
    fn remember(&self, verified: &Verified, now: u64) -> Result<(), Error> {
        let mut slot = self.replays.lock().unwrap_or_else(|e| e.into_inner());
        let log = match slot.as_mut() {
            Some(log) => log,
            None => slot.insert(ReplayLog::open(&self.config.state.replay_path())?),
        };
        let keep = 2 * self.config.security.max_clock_skew;
        if log.remember(&verified.key_id, &verified.signature, now, keep)? {
            Ok(())
        } else {
            log::warn!("replayed signature of key {}", verified.key_id);
            Err(SignError::Replayed.into())
        }
    }

    /// With `[security] require_signed_urls`, an image URL needs a valid `sig`; `path` is the
    /// path that was signed.
    fn check_signed_url(&self, path: &str, query: &str) -> Result<(), Error> {
        if !self.config.security.require_signed_urls {
            return Ok(());
        }
        self.with_catalog(|catalog| {
            sign::verify_url(path, query, unix_now(), |id| {
                Ok::<_, Error>(self.records.key(catalog, id)?)
            })
        })?;
        Ok(())
    }

    fn route(&self, req: &Request) -> Result<Response, Error> {
        if let Some(missing) = &req.missing {
            return self.handle404(req, missing);
        }
        if req.path == "/api" || req.path.starts_with("/api/") {
            return self.api(req);
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET" | "HEAD", "" | "/") => self.resize(req),
            ("GET" | "HEAD", "/status") => Ok(crate::usecases::status::response(
                &crate::usecases::status::check(&self.config),
            )),
            ("GET" | "HEAD", "/metrics") => metrics::respond(&self.config.metrics, req),
            (_, "" | "/") => Err(RequestError::Method { allow: "GET, HEAD" }.into()),
            _ => Err(RequestError::NoRoute(req.path.clone()).into()),
        }
    }
}

/// Safe methods (RFC 9110): reads, which may be repeated, so their signatures are not
/// remembered — a client may retry a read, and reads stay free of database writes.
fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// Unix time in seconds.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An error as the client sees it: the status, its stable code and one line, as plain text
/// (image URLs) or JSON (`json`, the API). The cause chain goes to the log only.
pub fn error_response(e: &Error, json: bool) -> Response {
    let status = e.status();
    crate::io::metrics::rejected(status, e.code());
    if status >= 500 {
        log::error!("{} ({}): {e:?}", e.code(), status);
    } else {
        log::info!("{} ({}): {e}", e.code(), status);
    }
    let mut resp = if json {
        let body = serde_json::json!({
            "error": e.public_message(),
            "code": e.code(),
            "status": status,
        });
        Response::new(status)
            .with_header("Content-Type", "application/json")
            .with_header("Cache-Control", "no-store")
            .with_body(format!("{body}\n").into_bytes())
    } else {
        Response::error(status, e.code(), e.public_message())
    };
    if status == 503 {
        resp = resp.with_header("Retry-After", "30");
    }
    if let Error::Request(RequestError::Method { allow }) = e {
        resp = resp.with_header("Allow", *allow);
    }
    resp
}

impl Handler for App {
    fn handle(&self, req: Request) -> Response {
        let started = std::time::Instant::now();
        crate::io::metrics::begin_request();
        let json = req.path == "/api" || req.path.starts_with("/api/");
        let resp = self
            .route(&req)
            .unwrap_or_else(|e| error_response(&e, json));
        // Uploaded bytes are served as the type they were sniffed as, never as HTML: a JPEG
        // that is also an HTML page (a polyglot) must not be sniffed into one by a browser.
        let resp = resp
            .for_request(&req)
            .with_header("X-Content-Type-Options", "nosniff");
        crate::io::metrics::served(resp.body.len() as u64);
        crate::web::access::log(&req, self.route_name(&req), &resp, started.elapsed());
        resp
    }
}

impl App {
    /// The route a request takes, named for the log line (a fixed word, never the query).
    fn route_name(&self, req: &Request) -> &'static str {
        if req.missing.is_some() {
            return "cache-404";
        }
        match req.path.as_str() {
            "" | "/" => "resize",
            "/status" => "status",
            "/metrics" => "metrics",
            p if p == "/api" || p.starts_with("/api/") => "api",
            _ => "other",
        }
    }
}
