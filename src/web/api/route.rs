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
use crate::io::catalog::Rights;
use crate::io::http::{Request, RequestError, Response};
use crate::usecases::error::Error;
use crate::usecases::sign::Verified;

/// What a route needs to know of the caller before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone (the image URLs check their own `sig` under `[security] require_signed_urls`,
    /// since presets are exempt from it: a property of the query, not of the caller).
    Public,
    /// A signed request (`usecases::sign`) whose key has these rights; a write's signature is
    /// accepted once.
    Signed(Rights),
    /// A REST read: anyone with `[api] public_reads` (a signed one as its key), else as
    /// `Signed(Rights::READ)`.
    Read,
    // Sessions (issue 12) add `Session(…)` here: a logged-in principal, checked by the same
    // dispatcher, the handler receiving it in `Caller`.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials were needed (or `[api] public_reads` made none needed).
    Anonymous,
    /// A signed request, its key and rights.
    Key(Verified),
}

impl Caller {
    /// The user a signed request acts for.
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::Anonymous => None,
            Caller::Key(v) => Some(&v.user),
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
        // A signed read is its key's user even so (permissions may give them more than
        // `public`); a signature that does not verify reads as nobody's, as before.
        Auth::Read if app.public_reads() => match req.header("authorization") {
            Some(_) => app
                .verify(req, Rights::READ)
                .map_or(Caller::Anonymous, Caller::Key),
            None => Caller::Anonymous,
        },
        Auth::Read => Caller::Key(app.verify(req, Rights::READ)?),
        Auth::Signed(rights) => Caller::Key(app.verify(req, rights)?),
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
    use crate::usecases::sign::SignError;

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
}
