//! Routes: the one transport-agnostic handler that every adapter (CGI, FastCGI, standalone)
//! calls. It sends each request to the redirector, the REST interface under `/api/`, or the
//! 404 handler — every route declared once in `ROUTES`, with the authentication and body it
//! needs, checked by [`route::dispatch`] before its handler runs — and turns errors into responses (plain text for image URLs, JSON for the API);
//! the error-to-status table itself lives in `error`.
//!
//! Connections (cache index, catalog) and the store are pooled here, so a FastCGI server
//! reuses them across requests; the route modules only borrow them.

mod categories;
mod desk;
mod handler404;
mod images;
mod metrics;
mod permissions;
mod recent;
mod redirector;
pub mod route;
mod session;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::principal::{Method, Principal};
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
use crate::usecases::session::{Session, Sessions};
use crate::usecases::sign::{self, SignError, Verified};
use route::{Auth, BodyLimit, Route};

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
    /// Login sessions, `[sessions]`.
    sessions: Sessions,
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
            sessions: Sessions::new(&config, long_lived),
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
            None => {
                let mut c = Catalog::open(&self.config.state.catalog_path())?;
                // `[permissions] root_grants`, once per catalog: one indexed read after that.
                self.permissions().seed_root(&mut c)?;
                c
            }
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
        // The web server's 404 signal, not a path: the handler checks its own method.
        if let Some(missing) = &req.missing {
            return self.handle404(req, missing);
        }
        // The dashboard answers its own errors, as pages.
        if crate::web::pages::owns(&req.path) {
            return Ok(crate::web::pages::handle(self, req));
        }
        route::dispatch(self, ROUTES, req)?
            .ok_or_else(|| RequestError::NoRoute(req.path.clone()).into())
    }
}

impl route::Gate for App {
    fn max_body_bytes(&self) -> u64 {
        self.config.api.max_body_bytes
    }

    fn public_reads(&self) -> bool {
        self.config.api.public_reads
    }

    fn verify(&self, req: &Request, rights: Rights) -> Result<Verified, Error> {
        self.authorize(req, rights)
    }

    fn session(&self, req: &Request) -> Result<Option<Session>, Error> {
        // No cookie, no read: a request without a session costs nothing more.
        let Some(token) = req.cookie(self.sessions.cookie_name()) else {
            return Ok(None);
        };
        self.with_catalog(|catalog| self.sessions.find(catalog, &token))
    }

    fn remote_user(&self, req: &Request) -> Result<Option<Principal>, Error> {
        // Not listed, or not set: no catalog read.
        let listed = self.config.auth.methods.contains(&Method::RemoteUser);
        if req.remote_user.is_none() || !listed {
            return Ok(None);
        }
        self.with_catalog(|catalog| {
            crate::usecases::auth::remote_user(&self.config, catalog, req.remote_user.as_deref())
        })
    }
}

/// Every route but the 404 handler's, each once: methods, path, who may call it, what body it
/// takes (see [`route`]). A path's methods are listed in the order `Allow` names them.
const ROUTES: &[Route<App>] = &[
    Route {
        methods: &["GET", "HEAD"],
        pattern: "",
        auth: Auth::Public,
        body: BodyLimit::Empty,
        hidden: false,
        handler: |app, req, _| app.resize(req),
    },
    Route {
        methods: &["GET", "HEAD"],
        pattern: "/status",
        auth: Auth::Public,
        body: BodyLimit::Empty,
        hidden: true,
        handler: |app, _, _| {
            let status = crate::usecases::status::check(&app.config);
            Ok(crate::usecases::status::response(&status))
        },
    },
    Route {
        methods: &["GET", "HEAD"],
        pattern: "/metrics",
        // Its own address list, `[metrics] allow` (403), when it is on at all (else 404).
        auth: Auth::Public,
        body: BodyLimit::Empty,
        hidden: true,
        handler: |app, req, _| metrics::respond(&app.config.metrics, req),
    },
    Route {
        methods: &["GET", "HEAD"],
        pattern: "/api/images",
        auth: Auth::Read,
        body: BodyLimit::Empty,
        hidden: false,
        handler: |app, req, m| app.search(req, m),
    },
    Route {
        methods: &["POST"],
        pattern: "/api/images",
        auth: Auth::Signed(Rights::WRITE),
        // `[api] max_body_bytes` is sized for this route: `[limits] max_source_bytes` and
        // room for the form around it.
        body: BodyLimit::Default,
        hidden: false,
        handler: |app, req, m| app.upload(req, m),
    },
    Route {
        methods: &["GET", "HEAD"],
        pattern: "/api/images/{id}",
        auth: Auth::Read,
        body: BodyLimit::Empty,
        hidden: false,
        handler: |app, req, m| app.original(req, m),
    },
    Route {
        methods: &["DELETE"],
        pattern: "/api/images/{id}",
        auth: Auth::Signed(Rights::DELETE),
        body: BodyLimit::Empty,
        hidden: false,
        handler: |app, _, m| app.delete(m),
    },
    Route {
        methods: &["GET", "HEAD"],
        pattern: "/api/images/{id}/meta",
        auth: Auth::Read,
        body: BodyLimit::Empty,
        hidden: false,
        handler: |app, _, m| app.meta(m),
    },
    Route {
        methods: &["POST", "PATCH"],
        pattern: "/api/images/{id}/meta",
        auth: Auth::Signed(Rights::WRITE),
        // Read up to 1 MiB (`images::MAX_FIELD`), a longer document refused as `400
        // bad-body` by the handler, as before the table.
        body: BodyLimit::Default,
        hidden: false,
        handler: |app, req, m| app.change_meta(req, m),
    },
    Route {
        methods: &["DELETE"],
        pattern: "/api/images/{id}/variants/{size}",
        auth: Auth::Signed(Rights::DELETE),
        body: BodyLimit::Empty,
        hidden: false,
        handler: |app, req, m| app.delete_variant(req, m),
    },
    Route {
        methods: &["POST"],
        pattern: "/api/session",
        // Anyone may try; the handler refuses another site's page (login CSRF).
        auth: Auth::Public,
        body: BodyLimit::Bytes(session::MAX_LOGIN_BYTES),
        hidden: false,
        handler: |app, req, _| app.login(req),
    },
    Route {
        methods: &["GET", "HEAD"],
        pattern: "/api/session",
        auth: Auth::Session,
        body: BodyLimit::Empty,
        hidden: false,
        handler: |app, _, m| app.whoami(m),
    },
    Route {
        methods: &["DELETE"],
        pattern: "/api/session",
        auth: Auth::Session,
        // A form may carry the CSRF token.
        body: BodyLimit::Bytes(session::MAX_LOGIN_BYTES),
        hidden: false,
        handler: |app, _, m| app.logout(m),
    },
    Route {
        methods: &["GET", "HEAD"],
        pattern: "/api/categories",
        auth: Auth::Read,
        body: BodyLimit::Empty,
        hidden: false,
        handler: |app, _, m| app.categories(m),
    },
    Route {
        methods: &["POST"],
        pattern: "/api/categories",
        // Edit on the parent (checked by the use case), as an upload into a new category.
        auth: Auth::Signed(Rights::WRITE),
        body: BodyLimit::Bytes(categories::MAX_BODY),
        hidden: false,
        handler: |app, req, m| app.create_category(req, m),
    },
    Route {
        methods: &["DELETE"],
        pattern: "/api/categories",
        // Admin on the category (its grants go with it): a key's `admin` right.
        auth: Auth::Signed(Rights::ADMIN),
        body: BodyLimit::Bytes(categories::MAX_BODY),
        hidden: false,
        handler: |app, req, m| app.delete_category(req, m),
    },
    Route {
        methods: &["POST"],
        pattern: "/api/categories/move",
        // Admin on the category (its grants move with it), edit on a new parent.
        auth: Auth::Signed(Rights::ADMIN),
        body: BodyLimit::Bytes(categories::MAX_BODY),
        hidden: false,
        handler: |app, req, m| app.move_category(req, m),
    },
    Route {
        methods: &["GET", "HEAD"],
        pattern: "/api/permissions/{*}",
        auth: Auth::Read,
        body: BodyLimit::Empty,
        hidden: false,
        handler: |app, _, m| app.describe_permissions(m),
    },
    Route {
        methods: &["POST", "DELETE"],
        pattern: "/api/permissions/{*}",
        // The key's `admin` right, and admin on the object (checked by the use case).
        auth: Auth::Signed(Rights::ADMIN),
        body: BodyLimit::Bytes(4096),
        hidden: false,
        handler: |app, req, m| app.change_permissions(req, m),
    },
];

/// The `{id}` of a route whose pattern has one (the dispatcher parsed it).
pub(super) fn image<'m>(m: &'m route::Matched<'_>) -> &'m crate::domain::original::OriginalId {
    m.id.as_ref().expect("the route's pattern has {id}")
}

/// Safe methods (RFC 9110): reads, which may be repeated, so their signatures are not
/// remembered — a client may retry a read, and reads stay free of database writes.
fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// Whether a trusted proxy (`[server] trusted_proxies`) says the request came over HTTPS:
/// `X-Forwarded-Proto: https` from a peer in the list. The last value of a list counts (the one
/// the nearest proxy added); from any other peer the header means nothing.
fn forwarded_https(req: &Request, trusted: &[crate::io::metrics::Network]) -> bool {
    use std::net::{IpAddr, SocketAddr};
    if trusted.is_empty() {
        return false;
    }
    // CGI's REMOTE_ADDR is an address, the standalone server's peer an address and a port.
    let peer = req.remote_addr.as_deref().and_then(|a| {
        a.parse::<IpAddr>()
            .ok()
            .or_else(|| a.parse::<SocketAddr>().ok().map(|s| s.ip()))
    });
    let from_trusted = peer.is_some_and(|ip| trusted.iter().any(|n| n.contains(ip)));
    from_trusted
        && req
            .header("x-forwarded-proto")
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
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
    if let Some(secs) = e.retry_after() {
        resp = resp.with_header("Retry-After", secs.to_string());
    }
    if let Error::Request(RequestError::Method { allow }) = e {
        resp = resp.with_header("Allow", allow.clone());
    }
    resp
}

impl Handler for App {
    fn handle(&self, mut req: Request) -> Response {
        let started = std::time::Instant::now();
        req.https = req.https || forwarded_https(&req, &self.config.server.trusted_proxies);
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
            p if crate::web::pages::owns(p) => "admin",
            _ => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_proxy_says_a_request_came_over_https() {
        let trusted: Vec<_> = ["127.0.0.1", "10.0.0.0/8"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let req = |peer: Option<&str>, proto: Option<&str>| {
            let mut r = Request::get("/", "");
            r.remote_addr = peer.map(String::from);
            if let Some(p) = proto {
                r.headers.push(("x-forwarded-proto".into(), p.into()));
            }
            r
        };
        let cases = [
            (Some("127.0.0.1"), Some("https"), true),
            (Some("127.0.0.1:40000"), Some("HTTPS"), true),
            (Some("10.1.2.3"), Some("http, https"), true),
            (Some("10.1.2.3"), Some("https, http"), false),
            (Some("127.0.0.1"), Some("http"), false),
            (Some("127.0.0.1"), None, false),
            (Some("192.0.2.1"), Some("https"), false),
            (Some("not an address"), Some("https"), false),
            (None, Some("https"), false),
        ];
        for (peer, proto, want) in cases {
            assert_eq!(
                forwarded_https(&req(peer, proto), &trusted),
                want,
                "{peer:?} {proto:?}"
            );
        }
        assert!(!forwarded_https(
            &req(Some("127.0.0.1"), Some("https")),
            &[]
        ));
    }

    #[test]
    fn a_throttled_login_says_when_to_retry() {
        use crate::usecases::error::AuthError;
        let e = Error::Auth(AuthError::Throttled { retry_after: 42 });
        let resp = error_response(&e, true);
        assert_eq!(resp.status, 429);
        assert_eq!(resp.header("retry-after"), Some("42"));
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["code"], "too-many-logins");
        let refused = error_response(&Error::Auth(AuthError::Refused), true);
        assert_eq!(refused.header("retry-after"), None);
        let outage = error_response(&Error::Auth(AuthError::Unavailable), true);
        assert_eq!(outage.header("retry-after"), Some("30"));
    }
}
