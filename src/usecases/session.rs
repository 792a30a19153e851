//! Login sessions: a login (`usecases::auth::login`) turned into a random token for a cookie,
//! the session found again from that cookie at each request (with its timeouts, and the user's
//! current catalog row so that disabling a user or changing their groups reaches existing
//! sessions at once), logout, and the CSRF and origin checks that go with cookies.
//!
//! The token (32 random bytes, hex) is only ever in the cookie: the store keeps its SHA-256,
//! so a copy of the catalog or of memcached logs nobody in. Every login makes a new token and
//! deletes the session the request came with (no fixation). `last_seen` is written only when
//! it is older than a tenth of `[sessions] idle_timeout`, so a session costs one read per
//! request and a write now and then, not a write per request; a session therefore ends between
//! 0.9 and 1 × `idle_timeout` after its last use.
//!
//! It does not route, set headers or read cookies (the routes do), nor throttle logins
//! (`usecases::auth`).

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::principal::{Method, Principal, Role};
use crate::io::catalog::{Catalog, SessionRecord, UserNow};
use crate::io::config::{Config, SessionStore, SessionsConfig};
use crate::io::http::form::{Form, Limits};
use crate::io::http::{Request, RequestError};
use crate::io::object_cache::Memcached;
use crate::usecases::auth;
use crate::usecases::error::{Error, SessionError};

/// The request header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field a page sends the CSRF token in.
pub const CSRF_FIELD: &str = "csrf_token";
/// The cookie's `Path`: the whole site, so that the 404 handler's `/cache/…` requests (which
/// permissions will check) get it as well as the script's own URLs.
pub const COOKIE_PATH: &str = "/";

/// A logged-in session, as a request finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub principal: Principal,
    /// What a state-changing request must send back (`X-CSRF-Token` or `csrf_token`).
    pub csrf_token: String,
    /// The SHA-256 of the cookie's token: the session's key in the store.
    pub id: String,
}

/// The JSON the session routes answer with.
#[derive(Debug, Serialize)]
pub struct Answer<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub roles: &'a [Role],
    pub method: &'static str,
    /// `null` for `REMOTE_USER`, which has no session.
    pub csrf_token: Option<&'a str>,
}

impl<'a> Answer<'a> {
    pub fn new(principal: &'a Principal, csrf_token: Option<&'a str>) -> Self {
        Answer {
            user: &principal.user,
            groups: &principal.groups,
            roles: &principal.roles,
            method: principal.method.as_str(),
            csrf_token,
        }
    }
}

/// Where sessions are kept, from `[sessions]`.
pub struct Sessions {
    config: SessionsConfig,
    memcached: Option<Memcached>,
    /// Memcached keys: `imgserv:session:<object_cache.prefix>:<id>`.
    prefix: String,
}

impl Sessions {
    /// Contacts nothing. `long_lived` is false in a CGI process (which then shares what it
    /// learns of a memcached's outage through the state directory).
    pub fn new(config: &Config, long_lived: bool) -> Sessions {
        let memcached = match &config.sessions.store {
            SessionStore::Catalog => None,
            SessionStore::Memcached { servers, timeout } => {
                let shared = config
                    .object_cache
                    .shared_dir
                    .as_deref()
                    .filter(|_| !long_lived);
                Some(Memcached::new(servers, *timeout, shared))
            }
        };
        Sessions {
            config: config.sessions.clone(),
            memcached,
            prefix: format!("imgserv:session:{}:", config.object_cache.prefix),
        }
    }

    pub fn cookie_name(&self) -> &str {
        &self.config.cookie_name
    }

    /// The session cookie's `Max-Age`: the absolute timeout (the idle one is the server's).
    pub fn cookie_max_age(&self) -> Duration {
        self.config.absolute_timeout
    }

    /// Checks `user` and `password` from the client `address` (`auth::login_from`: the
    /// methods, slowed down after repeated failures) and opens a new session, ending the one
    /// of `old_token` (the cookie the request came with) if any. Returns the session and its
    /// token, for the cookie.
    pub fn login(
        &self,
        config: &Config,
        catalog: &mut Catalog,
        (user, password): (&str, &str),
        address: Option<&str>,
        old_token: Option<&str>,
    ) -> Result<(Session, String), Error> {
        let principal = auth::login_from(config, catalog, user, password, address)?;
        let catalog_user = catalog.credentials(&principal.user)?.is_some();
        let token = random_hex()?;
        let csrf = random_hex()?;
        let id = hash(&token);
        let now = now_ms();
        // What the catalog says is read live at each request: keep only what the method said
        // beyond it (a directory's groups and role, a program's).
        let from_catalog = principal.method == Method::Local;
        let record = SessionRecord {
            user: principal.user.clone(),
            method: principal.method.as_str().into(),
            groups: if from_catalog {
                Vec::new()
            } else {
                principal.groups.clone()
            },
            roles: if from_catalog {
                Vec::new()
            } else {
                principal.roles.iter().map(|r| r.as_str().into()).collect()
            },
            catalog_user,
            csrf: csrf.clone(),
            created: now,
            last_seen: now,
        };
        let old = old_token.filter(|t| well_formed(t)).map(hash);
        match &self.memcached {
            None => {
                let (idle_before, created_before) = self.cutoffs(now);
                let gone = catalog.insert_session(
                    &id,
                    &record,
                    old.as_deref(),
                    idle_before,
                    created_before,
                )?;
                log::debug!("session login: {gone} old or expired sessions deleted");
            }
            Some(m) => {
                if let Some(old) = &old {
                    m.delete(&self.key(old));
                }
                self.put(m, &id, &record);
            }
        }
        log::info!("session opened for {:?}", principal.user);
        let session = Session {
            principal,
            csrf_token: csrf,
            id,
        };
        Ok((session, token))
    }

    /// The live session of cookie value `token`, if any: not past either timeout, its user
    /// neither disabled nor deleted. Records the use when `last_seen` is old enough.
    pub fn find(&self, catalog: &Catalog, token: &str) -> Result<Option<Session>, Error> {
        if !well_formed(token) {
            return Ok(None);
        }
        let id = hash(token);
        let found = match &self.memcached {
            None => catalog.session(&id)?,
            Some(m) => match m
                .get(&self.key(&id))
                .and_then(|b| serde_json::from_slice::<SessionRecord>(&b).ok())
            {
                None => None,
                Some(record) => {
                    let now = catalog.credentials(&record.user)?.map(|c| UserNow {
                        role: c.role,
                        disabled: c.disabled,
                        groups: c.groups,
                    });
                    Some((record, now))
                }
            },
        };
        let Some((record, user_now)) = found else {
            return Ok(None);
        };
        let now = now_ms();
        let (idle_before, created_before) = self.cutoffs(now);
        if record.last_seen < idle_before || record.created < created_before {
            log::info!("session of {:?} timed out", record.user);
            self.end(catalog, &id)?;
            return Ok(None);
        }
        let Some(principal) = principal(&record, user_now) else {
            log::info!("session of {:?}: the user is disabled or gone", record.user);
            return Ok(None);
        };
        if now - record.last_seen >= ms(self.config.idle_timeout) / 10 {
            match &self.memcached {
                None => catalog.touch_session(&id, now)?,
                Some(m) => {
                    let touched = SessionRecord {
                        last_seen: now,
                        ..record.clone()
                    };
                    self.put(m, &id, &touched);
                }
            }
        }
        Ok(Some(Session {
            principal,
            csrf_token: record.csrf,
            id,
        }))
    }

    /// Ends the session `id` (logout, or found expired).
    pub fn end(&self, catalog: &Catalog, id: &str) -> Result<(), Error> {
        match &self.memcached {
            None => {
                catalog.delete_session(id)?;
            }
            Some(m) => m.delete(&self.key(id)),
        }
        Ok(())
    }

    /// Deletes expired sessions (the catalog store; memcached expires its own). How many.
    pub fn sweep(&self, catalog: &Catalog) -> Result<u64, Error> {
        if self.memcached.is_some() {
            return Ok(0);
        }
        let (idle_before, created_before) = self.cutoffs(now_ms());
        Ok(catalog.sweep_sessions(idle_before, created_before)?)
    }

    /// (`last_seen` before this is idle too long, `created` before this is too old), unix ms.
    fn cutoffs(&self, now: i64) -> (i64, i64) {
        (
            now - ms(self.config.idle_timeout),
            now - ms(self.config.absolute_timeout),
        )
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    /// Stores `record` in memcached until it would be idle too long (or too old).
    fn put(&self, m: &Memcached, id: &str, record: &SessionRecord) {
        let left = ms(self.config.absolute_timeout) - (record.last_seen - record.created);
        let ttl = ms(self.config.idle_timeout).min(left).max(1000);
        if let Ok(bytes) = serde_json::to_vec(record) {
            m.set(&self.key(id), &bytes, Duration::from_millis(ttl as u64));
        }
    }
}

/// The principal of a session, with the catalog's current word; `None` when the user was
/// disabled or deleted since the login.
fn principal(record: &SessionRecord, user_now: Option<UserNow>) -> Option<Principal> {
    let method: Method = record.method.parse().ok()?;
    let mut groups = record.groups.clone();
    let mut roles: Vec<Role> = record.roles.iter().filter_map(|r| r.parse().ok()).collect();
    match user_now {
        None if record.catalog_user => return None,
        None => {}
        Some(now) if now.disabled => return None,
        Some(now) => {
            groups.extend(now.groups);
            if method == Method::Local {
                roles.push(now.role);
            }
        }
    }
    if roles.is_empty() {
        roles.push(Role::Viewer);
    }
    Some(Principal::new(&record.user, groups, roles, method))
}

/// The user name and password of a login: JSON `{"user", "password"}`, or the form fields
/// `user` and `password` (urlencoded or multipart).
pub fn credentials(req: &Request) -> Result<(String, String), Error> {
    let content_type = req.header("content-type").unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let (user, password) = if essence.eq_ignore_ascii_case("application/json") {
        #[derive(serde::Deserialize)]
        struct Login {
            user: Option<String>,
            password: Option<String>,
        }
        let mut bytes = Vec::new();
        req.body
            .reader()
            .read_to_end(&mut bytes)
            .map_err(RequestError::BodyIo)?;
        let login: Login = serde_json::from_slice(&bytes).map_err(|e| {
            RequestError::BadBody(format!("expected JSON {{\"user\", \"password\"}}: {e}"))
        })?;
        (login.user, login.password)
    } else {
        let form =
            Form::read(req, &Limits::default(), |_, _| Ok(())).map_err(RequestError::from)?;
        (
            form.get("user").map(str::to_string),
            form.get("password").map(str::to_string),
        )
    };
    match (user, password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok((u, p)),
        _ => Err(
            RequestError::BadBody("expected the fields \"user\" and \"password\"".into()).into(),
        ),
    }
}

/// Whether a state-changing request carries the session's CSRF token: in `X-CSRF-Token`, or
/// as the form field `csrf_token` of a form body. Compared in constant time.
pub fn csrf_matches(req: &Request, expected: &str) -> Result<bool, Error> {
    if let Some(given) = req.header(CSRF_HEADER) {
        return Ok(same(given, expected));
    }
    let content_type = req.header("content-type").unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let is_form = essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        || essence.eq_ignore_ascii_case("multipart/form-data");
    if !is_form || req.body.is_empty() {
        return Ok(false);
    }
    let form = Form::read(req, &Limits::default(), |_, _| Ok(())).map_err(RequestError::from)?;
    Ok(form
        .get(CSRF_FIELD)
        .is_some_and(|given| same(given, expected)))
}

/// Refuses a login a page of another site sent (login CSRF: it would log the victim in as the
/// attacker): an `Origin` that is not this site's (`null` included), or `Sec-Fetch-Site:
/// cross-site`. A request without either (curl, a script) is let through.
pub fn check_origin(req: &Request) -> Result<(), SessionError> {
    if req
        .header("sec-fetch-site")
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site"))
    {
        return Err(SessionError::CrossOrigin("cross-site".into()));
    }
    let Some(origin) = req.header("origin") else {
        return Ok(());
    };
    let refuse = || SessionError::CrossOrigin(origin.chars().take(100).collect());
    let (scheme, authority) = origin.trim().split_once("://").ok_or_else(refuse)?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return Err(refuse()),
    };
    let host = req.header("host").ok_or_else(refuse)?;
    if with_port(authority, default_port) == with_port(host.trim(), default_port) {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// `host[:port]` lower-cased, with the default port made explicit.
fn with_port(authority: &str, default_port: &str) -> String {
    let a = authority.to_ascii_lowercase();
    // `[v6]` alone, or `host` alone, has no port.
    let has_port = match a.rfind(':') {
        Some(i) => !a[i..].contains(']') && a[i + 1..].bytes().all(|b| b.is_ascii_digit()),
        None => false,
    };
    if has_port {
        a
    } else {
        format!("{a}:{default_port}")
    }
}

/// Constant-time equality of two secrets (their digests, so lengths do not show either).
fn same(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// A cookie value this module could have made: 64 lower-case hex digits.
fn well_formed(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hash(token: &str) -> String {
    crate::domain::hex(&Sha256::digest(token.as_bytes()))
}

/// 32 bytes from the kernel's generator, as 64 hex digits.
fn random_hex() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Session(SessionError::Random(e)))?;
    Ok(crate::domain::hex(&bytes))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usecases::passwords;

    fn site(extra: &str) -> (tempfile::TempDir, Config, Catalog) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("originals")).unwrap();
        let text = format!(
            "[originals]\nroot = \"originals\"\n[state]\ndir = \"state\"\n[cache]\ndir = \"cache\"\n{extra}"
        );
        let config = crate::io::config::from_str(&text, d.path()).unwrap();
        let mut catalog = Catalog::open(&config.state.catalog_path()).unwrap();
        let hash = passwords::hash("pw").unwrap();
        catalog
            .add_user_with("ann", Role::Editor, Some(&hash))
            .unwrap();
        (d, config, catalog)
    }

    #[test]
    fn a_login_opens_a_session_that_the_cookie_finds_again() {
        let (_d, config, mut catalog) = site("");
        let sessions = Sessions::new(&config, true);
        let (s, token) = sessions
            .login(&config, &mut catalog, ("ann", "pw"), None, None)
            .unwrap();
        assert_eq!(
            (s.principal.user.as_str(), s.principal.roles.as_slice()),
            ("ann", &[Role::Editor][..])
        );
        assert!(well_formed(&token) && well_formed(&s.csrf_token));
        assert_ne!(token, s.csrf_token);
        // Only the hash is stored.
        assert_eq!(s.id, hash(&token));
        assert!(catalog.session(&token).unwrap().is_none());
        let found = sessions.find(&catalog, &token).unwrap().unwrap();
        assert_eq!(found, s);
        for bad in ["", "x", &token.to_uppercase(), &format!("{token}0")] {
            assert_eq!(sessions.find(&catalog, bad).unwrap(), None, "{bad}");
        }
        // A wrong password is the chain's 401, and opens nothing.
        let e = sessions
            .login(&config, &mut catalog, ("ann", "nope"), None, Some(&token))
            .unwrap_err();
        assert_eq!(e.code(), "bad-credentials");
        assert!(sessions.find(&catalog, &token).unwrap().is_some());
        // A new login replaces the session it came with.
        let (s2, token2) = sessions
            .login(&config, &mut catalog, ("ann", "pw"), None, Some(&token))
            .unwrap();
        assert_ne!((&token2, &s2.csrf_token), (&token, &s.csrf_token));
        assert_eq!(sessions.find(&catalog, &token).unwrap(), None);
        sessions.end(&catalog, &s2.id).unwrap();
        assert_eq!(sessions.find(&catalog, &token2).unwrap(), None);
    }

    #[test]
    fn the_catalogs_word_reaches_a_session_at_once() {
        let (_d, config, mut catalog) = site("");
        let sessions = Sessions::new(&config, true);
        let (_, token) = sessions
            .login(&config, &mut catalog, ("ann", "pw"), None, None)
            .unwrap();
        catalog.add_group("darkroom").unwrap();
        catalog.add_member("darkroom", "ann").unwrap();
        let s = sessions.find(&catalog, &token).unwrap().unwrap();
        assert_eq!(s.principal.groups, ["darkroom"]);
        catalog.set_disabled("ann", true).unwrap();
        assert_eq!(sessions.find(&catalog, &token).unwrap(), None);
        catalog.set_disabled("ann", false).unwrap();
        assert!(sessions.find(&catalog, &token).unwrap().is_some());
        catalog.del_user("ann").unwrap();
        assert_eq!(sessions.find(&catalog, &token).unwrap(), None);
    }

    #[test]
    fn idle_and_absolute_timeouts_end_a_session() {
        let (_d, config, mut catalog) =
            site("[sessions]\nidle_timeout = \"1h\"\nabsolute_timeout = \"1d\"\n");
        let sessions = Sessions::new(&config, true);
        let raw = rusqlite::Connection::open(config.state.catalog_path()).unwrap();
        let age = |id: &str, created: i64, seen: i64| {
            raw.execute(
                    "UPDATE sessions SET created = created - ?2, last_seen = last_seen - ?3 WHERE token_hash = ?1",
                    rusqlite::params![id, created, seen],
                )
                .unwrap();
        };
        let hour = 3_600_000;
        let (s, token) = sessions
            .login(&config, &mut catalog, ("ann", "pw"), None, None)
            .unwrap();
        // Seen 50 minutes ago: alive, and the use is recorded (older than a tenth).
        age(&s.id, 0, hour * 5 / 6);
        assert!(sessions.find(&catalog, &token).unwrap().is_some());
        let seen = catalog.session(&s.id).unwrap().unwrap().0.last_seen;
        assert!(now_ms() - seen < 60_000);
        // Seen 61 minutes ago: over, and gone.
        age(&s.id, 0, hour + 60_000);
        assert_eq!(sessions.find(&catalog, &token).unwrap(), None);
        assert!(catalog.session(&s.id).unwrap().is_none());
        // Used a minute ago but made 25 hours ago: over.
        let (s, token) = sessions
            .login(&config, &mut catalog, ("ann", "pw"), None, None)
            .unwrap();
        age(&s.id, 25 * hour, 60_000);
        assert_eq!(sessions.find(&catalog, &token).unwrap(), None);
        // The sweep deletes what nobody comes back for.
        let (s, _) = sessions
            .login(&config, &mut catalog, ("ann", "pw"), None, None)
            .unwrap();
        age(&s.id, 0, 2 * hour);
        assert_eq!(sessions.sweep(&catalog).unwrap(), 1);
    }

    #[test]
    fn a_directorys_groups_and_roles_are_kept_and_the_catalogs_added() {
        let record = |catalog_user| SessionRecord {
            user: "dan".into(),
            method: "ldap".into(),
            groups: vec!["staff".into()],
            roles: vec!["admin".into()],
            catalog_user,
            csrf: String::new(),
            created: 0,
            last_seen: 0,
        };
        let now = |disabled| UserNow {
            role: Role::Viewer,
            disabled,
            groups: vec!["darkroom".into()],
        };
        let p = principal(&record(false), None).unwrap();
        assert_eq!(
            (p.groups, p.roles, p.method),
            (vec!["staff".to_string()], vec![Role::Admin], Method::Ldap)
        );
        let p = principal(&record(true), Some(now(false))).unwrap();
        assert_eq!(p.groups, ["darkroom", "staff"]);
        assert_eq!(p.roles, [Role::Admin]);
        assert_eq!(principal(&record(true), None), None);
        assert_eq!(principal(&record(false), Some(now(true))), None);
    }

    fn request(headers: &[(&str, &str)], body: &[u8]) -> Request {
        let mut r = Request::get("/api/session", "");
        r.method = "POST".into();
        r.headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        r.body = body.into();
        r
    }

    #[test]
    fn only_this_sites_pages_may_log_someone_in() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], true),
            (&[("host", "img.example")], true),
            (
                &[("host", "img.example"), ("origin", "http://img.example")],
                true,
            ),
            (
                &[("host", "img.example:80"), ("origin", "http://IMG.example")],
                true,
            ),
            (
                &[
                    ("host", "img.example"),
                    ("origin", "https://img.example:443"),
                ],
                true,
            ),
            (
                &[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "http://127.0.0.1:8080"),
                ],
                true,
            ),
            (
                &[("host", "[::1]:8080"), ("origin", "http://[::1]:8080")],
                true,
            ),
            (
                &[("host", "img.example"), ("origin", "http://evil.example")],
                false,
            ),
            (
                &[
                    ("host", "img.example"),
                    ("origin", "http://img.example:8080"),
                ],
                false,
            ),
            (&[("host", "img.example"), ("origin", "null")], false),
            (&[("origin", "http://img.example")], false),
            (
                &[("host", "img.example"), ("origin", "ftp://img.example")],
                false,
            ),
            (&[("sec-fetch-site", "cross-site")], false),
            (&[("sec-fetch-site", "same-origin")], true),
        ];
        for (headers, ok) in cases {
            assert_eq!(
                check_origin(&request(headers, b"")).is_ok(),
                *ok,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn credentials_come_as_json_or_a_form() {
        let json = ("content-type", "application/json");
        let form = ("content-type", "application/x-www-form-urlencoded");
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            &'a [u8],
            Option<(&'a str, &'a str)>,
        );
        let cases: &[Case] = &[
            (
                &[json],
                br#"{"user":"ann","password":"p w"}"#,
                Some(("ann", "p w")),
            ),
            (&[form], b"user=ann&password=p+w%21", Some(("ann", "p w!"))),
            (&[json], br#"{"user":"ann"}"#, None),
            (&[json], br#"{"user":"","password":"x"}"#, None),
            (&[json], b"nope", None),
            (&[form], b"password=x", None),
            (&[], b"user=ann&password=x", None),
        ];
        for (headers, body, want) in cases {
            let got = credentials(&request(headers, body));
            match want {
                Some((u, p)) => assert_eq!(got.unwrap(), (u.to_string(), p.to_string())),
                None => assert!(got.is_err(), "{:?}", String::from_utf8_lossy(body)),
            }
        }
        let boundary = "XyZ";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nann\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\npw\r\n--{boundary}--\r\n"
        );
        let ct = format!("multipart/form-data; boundary={boundary}");
        let got = credentials(&request(&[("content-type", &ct)], body.as_bytes())).unwrap();
        assert_eq!(got, ("ann".into(), "pw".into()));
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }
}
