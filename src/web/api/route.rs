//! The route table: every route declared once — its methods, its path pattern, the
//! authentication it needs and the body it may have — and the one dispatcher that checks both
//! before the route's handler runs, so no handler repeats them.
//!
//! Order of checks, as the routes had them before the table: the path (an image id that does
//! not parse is a `404`), the method (`405` with `Allow`), the body (`413`), then the caller
//! (`401`/`403`). The transports have already refused a body over `[api] max_body_bytes`
//! (`411`/`413`, before reading it); a route's own limit can only be lower.
//!
//! This module knows no route's meaning: `ROUTES` in `api` is the table, `images` and the
//! other route modules its handlers.

use crate::domain::original::OriginalId;
use crate::domain::principal::Principal;
use crate::io::catalog::Rights;
use crate::io::http::{Request, RequestError, Response};
use crate::usecases::error::{Error, SessionError};
use crate::usecases::session::{self, Session};
use crate::usecases::sign::Verified;

/// What a route needs to know of the caller before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone, and nobody is looked up: the caller is `Anonymous` even with a session cookie,
    /// so that an image hit stays one indexed read when the browser sends the cookie (its path
    /// is `/`). The image URLs check their own `sig` under `[security] require_signed_urls`
    /// (presets are exempt from it: a property of the query, not of the caller).
    Public,
    /// A signed request (`usecases::sign`) whose key has these rights; a write's signature is
    /// accepted once.
    Signed(Rights),
    /// A REST read: anyone with `[api] public_reads` (a signed one as its key), else as
    /// `Signed(Rights::READ)`.
    Read,
    /// Anyone logged in: a session cookie (with its CSRF token on a state-changing request,
    /// else `403 csrf-failed`), else `REMOTE_USER` when `[auth] methods` lists `remote_user`;
    /// else `401 no-session`.
    Session,
}

/// The request body a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// No body: a non-empty one is refused with `413` (the route would ignore it).
    Empty,
    /// Up to `[api] max_body_bytes`.
    Default,
    /// Up to this many bytes (lower than `[api] max_body_bytes` to mean anything: the
    /// transports receive no more than that).
    Bytes(u64),
}

/// Who called, as the route's [`Auth`] found out.
///
/// A `Read` route under `[api] public_reads` still gets the logged-in principal when the request
/// has one (a session, `REMOTE_USER`), as permissions may give them more than `public`; a
/// `Public` route never looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials were needed (or `[api] public_reads` made none needed) and none came.
    Anonymous,
    /// A signed request, its key and rights.
    Key(Verified),
    /// A session cookie's principal (its CSRF token checked when the method changes things).
    Session(Session),
    /// `REMOTE_USER`'s principal (`[auth] methods` lists `remote_user`).
    Remote(Principal),
}

impl Caller {
    /// The user the caller acts for.
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::Anonymous => None,
            Caller::Key(v) => Some(&v.user),
            Caller::Session(s) => Some(&s.principal.user),
            Caller::Remote(p) => Some(&p.user),
        }
    }

    /// The logged-in principal (a session's or `REMOTE_USER`'s); `None` for a signed request
    /// (its key's user is [`Caller::user`]) and for nobody.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Session(s) => Some(&s.principal),
            Caller::Remote(p) => Some(p),
            Caller::Anonymous | Caller::Key(_) => None,
        }
    }
}

/// What the dispatcher hands a route's handler: the path's parameters and the caller.
#[derive(Debug)]
pub struct Matched<'r> {
    /// The `{id}` segment, parsed.
    pub id: Option<OriginalId>,
    /// The other `{…}` segments, in order.
    pub params: Vec<&'r str>,
    pub caller: Caller,
}

/// A route's handler: `A` is the application (`App`; a stand-in in tests).
pub type HandlerFn<A> = fn(&A, &Request, &Matched<'_>) -> Result<Response, Error>;

/// One route.
pub struct Route<A> {
    /// The methods it answers (`HEAD` listed where `GET` is).
    pub methods: &'static [&'static str],
    /// `/api/images/{id}/meta`: literal segments, `{id}` (an image id) and other `{name}`s
    /// (any one segment); `""` is the script itself (`/` too).
    pub pattern: &'static str,
    pub auth: Auth,
    pub body: BodyLimit,
    /// Whether another method gets `404`, not `405`: a route that does not show itself
    /// (`/metrics` is a `404` unless enabled).
    pub hidden: bool,
    pub handler: HandlerFn<A>,
}

/// What the dispatcher asks of the application.
pub trait Gate {
    /// `[api] max_body_bytes`.
    fn max_body_bytes(&self) -> u64;
    /// `[api] public_reads`.
    fn public_reads(&self) -> bool;
    /// Verifies a signed request for `rights` (and remembers a write's signature).
    fn verify(&self, req: &Request, rights: Rights) -> Result<Verified, Error>;
    /// The live session of the request's session cookie, if any.
    fn session(&self, req: &Request) -> Result<Option<Session>, Error>;
    /// `REMOTE_USER`'s principal, when `[auth] methods` lists `remote_user`.
    fn remote_user(&self, req: &Request) -> Result<Option<Principal>, Error>;
}

/// Safe methods (RFC 9110), which change nothing and so need no CSRF token.
fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The logged-in caller: a session (refused with `403 csrf-failed` when a state-changing
/// request lacks its CSRF token), else `REMOTE_USER`'s principal (refused with `403
/// cross-origin` when a state-changing request comes from another site's page).
fn logged_in<A: Gate>(app: &A, req: &Request) -> Result<Option<Caller>, Error> {
    if let Some(s) = app.session(req)? {
        if !is_safe(&req.method) && !session::csrf_matches(req, &s.csrf_token)? {
            log::warn!(
                "session of {:?}: CSRF token missing or wrong",
                s.principal.user
            );
            return Err(SessionError::CsrfFailed.into());
        }
        return Ok(Some(Caller::Session(s)));
    }
    let Some(principal) = app.remote_user(req)? else {
        return Ok(None);
    };
    // The browser re-sends the web server's credentials (HTTP Basic) with a request another
    // site's page makes, and there is no token to ask for: a change must come from this site.
    if !is_safe(&req.method) {
        session::check_origin(req)?;
    }
    Ok(Some(Caller::Remote(principal)))
}

/// The path as routes see it: API paths without trailing slashes (`/api/images/` is
/// `/api/images`), `/` as the script itself; other paths exactly.
fn normalise(path: &str) -> &str {
    if path == "/api" || path.starts_with("/api/") {
        path.trim_end_matches('/')
    } else if path == "/" {
        ""
    } else {
        path
    }
}

/// The `{…}` segments of `path` when it has `pattern`'s shape. A last `{*}` takes the rest
/// of the path, slashes included (an object name such as `category:/a/b`).
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Vec<(&'static str, &'p str)>> {
    let mut pat = pattern.split('/');
    let mut rest = Some(path);
    let mut params = Vec::new();
    loop {
        let got = rest.map(|r| r.split_once('/').map_or((r, None), |(g, n)| (g, Some(n))));
        match (pat.next(), got) {
            (None, None) => return Some(params),
            (Some("{*}"), Some(_)) => {
                params.push(("", rest.filter(|r| !r.is_empty())?));
                return pat.next().is_none().then_some(params);
            }
            (Some(p), Some((g, next))) if p.starts_with('{') && p.ends_with('}') => {
                params.push((if p == "{id}" { "id" } else { "" }, g));
                rest = next;
            }
            (Some(p), Some((g, next))) if p == g => rest = next,
            _ => return None,
        }
    }
}

/// Sends `req` to the route of `table` it matches, having checked its method, body and
/// caller; `Ok(None)` when no route has this path.
pub fn dispatch<A: Gate>(
    app: &A,
    table: &[Route<A>],
    req: &Request,
) -> Result<Option<Response>, Error> {
    let path = normalise(&req.path);
    let mut found = table
        .iter()
        .filter_map(|r| matches(r.pattern, path).map(|params| (r, params)))
        .peekable();
    let Some((_, params)) = found.peek() else {
        return Ok(None);
    };
    let mut id = None;
    let mut rest = Vec::new();
    for (kind, text) in params.clone() {
        if kind == "id" {
            let parsed = text
                .parse()
                .map_err(|_| RequestError::NoRoute(format!("/api/images/{text}")))?;
            id = Some(parsed);
        } else {
            rest.push(text);
        }
    }
    let same_path: Vec<&Route<A>> = found.map(|(r, _)| r).collect();
    let Some(route) = same_path
        .iter()
        .find(|r| r.methods.contains(&req.method.as_str()))
    else {
        if same_path.iter().all(|r| r.hidden) {
            return Err(RequestError::NoRoute(req.path.clone()).into());
        }
        let allow: Vec<&str> = same_path
            .iter()
            .flat_map(|r| r.methods.iter().copied())
            .collect();
        return Err(RequestError::Method {
            allow: allow.join(", "),
        }
        .into());
    };
    let limit = match route.body {
        BodyLimit::Empty => 0,
        BodyLimit::Default => app.max_body_bytes(),
        BodyLimit::Bytes(n) => n.min(app.max_body_bytes()),
    };
    if req.body.len() > limit {
        return Err(RequestError::BodyTooLarge(limit).into());
    }
    let caller = match route.auth {
        Auth::Public => Caller::Anonymous,
        Auth::Session => logged_in(app, req)?.ok_or(SessionError::NoSession)?,
        Auth::Read | Auth::Signed(_) => {
            let (rights, open) = match route.auth {
                Auth::Signed(rights) => (rights, false),
                _ => (Rights::READ, app.public_reads()),
            };
            if req.header("authorization").is_some() {
                // A signed request is its key's user, also where reads are public (grants may
                // give them more than `public`); under `public_reads` a signature that does not
                // verify reads as nobody's, as before.
                match app.verify(req, rights) {
                    Ok(verified) => Caller::Key(verified),
                    Err(_) if open => Caller::Anonymous,
                    Err(e) => return Err(e),
                }
            } else if let Some(caller) = logged_in(app, req)? {
                // A session (its CSRF token checked for a change) or the web server's user:
                // the route's permission check decides, as for a key's user.
                caller
            } else if open {
                Caller::Anonymous
            } else {
                // Nobody: the signature's own error (`401 unsigned`).
                Caller::Key(app.verify(req, rights)?)
            }
        }
    };
    let matched = Matched {
        id,
        params: rest,
        caller,
    };
    (route.handler)(app, req, &matched).map(Some)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::domain::principal::{Method, Role};
    use crate::usecases::sign::SignError;

    thread_local! {
        /// How many times this thread's `Fake` looked for a session.
        static SESSION_READS: Cell<u32> = const { Cell::new(0) };
    }

    /// A stand-in application: a signature is "valid" when the request has `x-key: RIGHTS`
    /// (bits of `Rights`); counts handler calls.
    struct Fake {
        public_reads: bool,
        calls: Cell<u32>,
    }

    impl Gate for Fake {
        fn max_body_bytes(&self) -> u64 {
            100
        }
        fn public_reads(&self) -> bool {
            self.public_reads
        }
        fn verify(&self, req: &Request, rights: Rights) -> Result<Verified, Error> {
            let has = match req.header("x-key") {
                Some("all") => Rights::READ | Rights::WRITE | Rights::DELETE,
                Some("read") => Rights::READ,
                _ => return Err(SignError::Unsigned.into()),
            };
            let v = Verified {
                key_id: "k".into(),
                user: "u".into(),
                rights: has,
                signature: [0; 32],
            };
            v.require(rights)?;
            Ok(v)
        }
        /// A "session" is the header `x-session: NAME`; its CSRF token is "tok".
        fn session(&self, req: &Request) -> Result<Option<Session>, Error> {
            SESSION_READS.with(|n| n.set(n.get() + 1));
            Ok(req.header("x-session").map(|name| Session {
                principal: Principal::new(name, vec![], vec![Role::Viewer], Method::Local),
                csrf_token: "tok".into(),
                id: "id".into(),
            }))
        }
        fn remote_user(&self, req: &Request) -> Result<Option<Principal>, Error> {
            Ok(req
                .remote_user
                .as_deref()
                .map(|name| Principal::new(name, vec![], vec![Role::Viewer], Method::RemoteUser)))
        }
    }

    fn ran(app: &Fake, _: &Request, m: &Matched<'_>) -> Result<Response, Error> {
        app.calls.set(app.calls.get() + 1);
        let text = format!("{:?} {:?} {:?}", m.id.is_some(), m.params, m.caller.user());
        Ok(Response::text(200, text))
    }

    const TABLE: &[Route<Fake>] = &[
        Route {
            methods: &["GET", "HEAD"],
            pattern: "/api/things",
            auth: Auth::Read,
            body: BodyLimit::Empty,
            hidden: false,
            handler: ran,
        },
        Route {
            methods: &["POST"],
            pattern: "/api/things",
            auth: Auth::Signed(Rights::WRITE),
            body: BodyLimit::Bytes(10),
            hidden: false,
            handler: ran,
        },
        Route {
            methods: &["PUT"],
            pattern: "/api/things/{id}/{size}",
            auth: Auth::Signed(Rights::WRITE),
            body: BodyLimit::Default,
            hidden: false,
            handler: ran,
        },
        Route {
            methods: &["GET", "DELETE"],
            pattern: "/api/me",
            auth: Auth::Session,
            body: BodyLimit::Default,
            hidden: false,
            handler: ran,
        },
        Route {
            methods: &["POST"],
            pattern: "/api/open",
            auth: Auth::Public,
            body: BodyLimit::Default,
            hidden: false,
            handler: ran,
        },
        Route {
            methods: &["GET"],
            pattern: "/secret",
            auth: Auth::Public,
            body: BodyLimit::Empty,
            hidden: true,
            handler: ran,
        },
    ];

    fn req(method: &str, path: &str, key: Option<&str>, body: &[u8]) -> Request {
        let mut r = Request::get(path, "");
        r.method = method.into();
        r.body = body.into();
        if let Some(k) = key {
            r.headers.push(("x-key".into(), k.into()));
        }
        r
    }

    /// The status (or 0 when no route matched) and whether the handler ran.
    fn run(app: &Fake, r: Request) -> (u16, bool) {
        let before = app.calls.get();
        let status = match dispatch(app, TABLE, &r) {
            Ok(Some(resp)) => resp.status,
            Ok(None) => 0,
            Err(e) => e.status(),
        };
        (status, app.calls.get() > before)
    }

    #[test]
    fn a_routes_body_limit_is_enforced_before_its_handler_runs() {
        let app = Fake {
            public_reads: false,
            calls: Cell::new(0),
        };
        let all = Some("all");
        assert_eq!(
            run(&app, req("POST", "/api/things", all, &[1; 10])),
            (200, true)
        );
        // Over the route's 10 bytes (well within [api] max_body_bytes): 413, no handler,
        // and before the caller is looked at (no signature needed to be told).
        assert_eq!(
            run(&app, req("POST", "/api/things", all, &[1; 11])),
            (413, false)
        );
        assert_eq!(
            run(&app, req("POST", "/api/things", None, &[1; 11])),
            (413, false)
        );
        // A GET takes no body.
        assert_eq!(
            run(&app, req("GET", "/api/things", all, b"x")),
            (413, false)
        );
        // The default is [api] max_body_bytes.
        let id = "0123456789abcdef0123456789abcdef01234567";
        let put = |n: usize| req("PUT", &format!("/api/things/{id}/9x9"), all, &vec![0; n]);
        assert_eq!(run(&app, put(100)), (200, true));
        assert_eq!(run(&app, put(101)), (413, false));
        let e = dispatch(&app, TABLE, &req("GET", "/api/things", all, b"x")).unwrap_err();
        assert_eq!(e.code(), "body-too-large");
    }

    #[test]
    fn authentication_is_checked_before_the_handler_runs() {
        let app = Fake {
            public_reads: false,
            calls: Cell::new(0),
        };
        assert_eq!(
            run(&app, req("GET", "/api/things", None, b"")),
            (401, false)
        );
        assert_eq!(
            run(&app, req("GET", "/api/things/", Some("read"), b"")),
            (200, true)
        );
        assert_eq!(
            run(&app, req("POST", "/api/things", Some("read"), b"")),
            (403, false)
        );
        let public = Fake {
            public_reads: true,
            calls: Cell::new(0),
        };
        assert_eq!(
            run(&public, req("HEAD", "/api/things", None, b"")),
            (200, true)
        );
        assert_eq!(
            run(&public, req("POST", "/api/things", None, b"")),
            (401, false)
        );
        // Under public reads, a signed read is its key's caller; one that does not verify is
        // nobody's.
        let mut signed = req("GET", "/api/things", Some("read"), b"");
        signed.headers.push(("authorization".into(), "x".into()));
        let resp = dispatch(&public, TABLE, &signed).unwrap().unwrap();
        assert_eq!(resp.body, b"false [] Some(\"u\")\n");
        let mut bad = req("GET", "/api/things", None, b"");
        bad.headers.push(("authorization".into(), "x".into()));
        let resp = dispatch(&public, TABLE, &bad).unwrap().unwrap();
        assert_eq!(resp.body, b"false [] None\n");
    }

    #[test]
    fn a_rest_segment_takes_the_rest_of_the_path() {
        let m = |pattern, path| {
            matches(pattern, path).map(|p| p.into_iter().map(|(_, v)| v).collect::<Vec<_>>())
        };
        assert_eq!(
            m("/api/p/{*}", "/api/p/category:/a/b"),
            Some(vec!["category:/a/b"])
        );
        assert_eq!(m("/api/p/{*}", "/api/p/category:"), Some(vec!["category:"]));
        assert_eq!(m("/api/p/{*}", "/api/p/"), None);
        assert_eq!(m("/api/p/{*}", "/api/p"), None);
        assert_eq!(m("/api/p/{x}", "/api/p/a/b"), None);
        assert_eq!(m("", ""), Some(vec![]));
        assert_eq!(m("/api/images/{id}", "/api/images/x"), Some(vec!["x"]));
    }

    #[test]
    fn paths_and_methods_are_matched_first() {
        let app = Fake {
            public_reads: false,
            calls: Cell::new(0),
        };
        assert_eq!(run(&app, req("GET", "/api/other", None, b"")), (0, false));
        assert_eq!(
            run(&app, req("GET", "/api/things/x", None, b"")),
            (0, false)
        );
        // Another method: 405 listing every method of the path, in table order, before the
        // body or the caller are looked at.
        let e = dispatch(&app, TABLE, &req("DELETE", "/api/things", None, &[0; 500])).unwrap_err();
        assert!(
            matches!(&e, Error::Request(RequestError::Method { allow }) if allow == "GET, HEAD, POST"),
            "{e:?}"
        );
        // A hidden route does not show itself.
        assert_eq!(run(&app, req("POST", "/secret", None, b"")), (404, false));
        assert_eq!(run(&app, req("GET", "/secret/", None, b"")), (0, false));
        // An id that does not parse is a 404 before anything else.
        assert_eq!(
            run(&app, req("PUT", "/api/things/nope/9x9", None, b"")),
            (404, false)
        );
        assert_eq!(
            run(&app, req("GET", "/api/things/nope/9x9", None, b"")),
            (404, false)
        );
    }

    /// The handler's answer (the caller's user) or the error's status.
    fn answer(app: &Fake, r: Request) -> Result<String, u16> {
        match dispatch(app, TABLE, &r) {
            Ok(Some(resp)) => Ok(String::from_utf8(resp.body).unwrap().trim_end().to_string()),
            Ok(None) => Err(0),
            Err(e) => Err(e.status()),
        }
    }

    fn with(mut r: Request, headers: &[(&str, &str)]) -> Request {
        for (n, v) in headers {
            r.headers.push((n.to_string(), v.to_string()));
        }
        r
    }

    #[test]
    fn a_session_route_takes_a_session_else_remote_user_and_checks_csrf() {
        let app = Fake {
            public_reads: false,
            calls: Cell::new(0),
        };
        let get = || req("GET", "/api/me", None, b"");
        let delete = || req("DELETE", "/api/me", None, b"");
        assert_eq!(answer(&app, get()), Err(401));
        assert_eq!(
            answer(&app, with(get(), &[("x-session", "ann")])),
            Ok("false [] Some(\"ann\")".into())
        );
        let mut remote = get();
        remote.remote_user = Some("rob".into());
        assert_eq!(
            answer(&app, remote.clone()),
            Ok("false [] Some(\"rob\")".into())
        );
        // The session comes first.
        assert_eq!(
            answer(&app, with(remote, &[("x-session", "ann")])),
            Ok("false [] Some(\"ann\")".into())
        );
        // A state-changing request needs the token: header or form field.
        let s = ("x-session", "ann");
        assert_eq!(answer(&app, with(delete(), &[s])), Err(403));
        assert_eq!(
            answer(&app, with(delete(), &[s, ("x-csrf-token", "nope")])),
            Err(403)
        );
        assert!(answer(&app, with(delete(), &[s, ("x-csrf-token", "tok")])).is_ok());
        let form = |body: &[u8]| {
            with(
                req("DELETE", "/api/me", None, body),
                &[s, ("content-type", "application/x-www-form-urlencoded")],
            )
        };
        assert!(answer(&app, form(b"a=1&csrf_token=tok")).is_ok());
        assert_eq!(answer(&app, form(b"csrf_token=tokk")), Err(403));
        // REMOTE_USER has no session, so no token to check (the web server's own
        // authentication answers for it).
        let mut remote = delete();
        remote.remote_user = Some("rob".into());
        assert!(answer(&app, remote).is_ok());
        let e = dispatch(&app, TABLE, &with(delete(), &[s])).unwrap_err();
        assert_eq!(e.code(), "csrf-failed");
        assert_eq!(
            dispatch(&app, TABLE, &get()).unwrap_err().code(),
            "no-session"
        );
    }

    #[test]
    fn routes_see_who_is_logged_in_but_never_without_the_csrf_token() {
        let app = Fake {
            public_reads: false,
            calls: Cell::new(0),
        };
        // A public route (the redirector's image URLs) does not even look: a browser sends
        // the session cookie with every image it loads, and a hit must stay one read.
        let post = || req("POST", "/api/open", None, b"");
        let s = ("x-session", "ann");
        let reads = SESSION_READS.with(Cell::get);
        assert_eq!(answer(&app, post()), Ok("false [] None".into()));
        assert_eq!(
            answer(&app, with(post(), &[s, ("x-csrf-token", "tok")])),
            Ok("false [] None".into())
        );
        assert_eq!(SESSION_READS.with(Cell::get), reads);
        // A session stands in for a key on the REST routes (the handler's permission check
        // decides what it may do), with its CSRF token for a change; nobody gets the
        // signature's 401.
        assert_eq!(
            answer(&app, with(req("GET", "/api/things", None, b""), &[s])),
            Ok("false [] Some(\"ann\")".into())
        );
        assert_eq!(answer(&app, req("GET", "/api/things", None, b"")), Err(401));
        assert_eq!(
            answer(&app, with(req("POST", "/api/things", None, b""), &[s])),
            Err(403)
        );
        assert_eq!(
            answer(
                &app,
                with(
                    req("POST", "/api/things", None, b""),
                    &[s, ("x-csrf-token", "tok")]
                )
            ),
            Ok("false [] Some(\"ann\")".into())
        );
        // A signature that is there is checked, session or not.
        assert_eq!(
            answer(
                &app,
                with(req("POST", "/api/things", Some("read"), b""), &[s])
            ),
            Err(403)
        );
        let public = Fake {
            public_reads: true,
            calls: Cell::new(0),
        };
        assert_eq!(
            answer(&public, with(req("GET", "/api/things", None, b""), &[s])),
            Ok("false [] Some(\"ann\")".into())
        );
    }
}
