//! The dashboard's pages under `/admin/`: server-rendered HTML from the compile-time-checked
//! templates in `templates/`, one module per page family (`login`, `home`) beside the shared
//! ones (`layout`: the frame, security headers and safe links; `assets`: the stylesheet and
//! script; `errors`: errors as pages). Handlers are thin: logins, sessions and CSRF are
//! `usecases::session`'s and `usecases::auth`'s.
//!
//! Every page but the login page and the assets needs a logged-in caller (a session, or
//! `REMOTE_USER` when `[auth] methods` lists `remote_user`): a `GET` without one is sent to the
//! login page (`303`, with `next`), anything else gets a `401` page. A `POST` needs the
//! session's CSRF token in the form field `csrf_token` (`403` page otherwise).
//!
//! Links are relative to the page (`/admin/x` links `y` for `/admin/y`): the pages do not know
//! the URL the script is mounted at (`/cgi-bin/imgserv.cgi`, `/imgserv.cgi`, …), and need not.
//!
//! This module does not know `App`: the REST side implements [`Site`] for it, so the pages
//! import nothing of the routes.

mod assets;
mod errors;
mod home;
mod layout;
mod login;

use crate::domain::principal::Principal;
use crate::io::config::Config;
use crate::io::http::cookie::SetCookie;
use crate::io::http::{Request, RequestError, Response};
use crate::usecases::error::{Error, SessionError};
use crate::usecases::session::{self, Session};

pub use layout::safe_next;

/// The path prefix of the pages (below the script).
pub const PREFIX: &str = "/admin";

/// The most a page's form body may be (a login, a logout): short fields and their framing.
const MAX_FORM_BYTES: u64 = 16 << 10;

/// What the pages ask of the application.
pub trait Site {
    fn config(&self) -> &Config;
    /// The live session of the request's session cookie, if any.
    fn session(&self, req: &Request) -> Result<Option<Session>, Error>;
    /// `REMOTE_USER`'s principal, when `[auth] methods` lists `remote_user`.
    fn remote_user(&self, req: &Request) -> Result<Option<Principal>, Error>;
    /// Checks a login (the methods, throttled as `POST /api/session` is) and opens a new
    /// session in place of the request's: the session and its cookie.
    fn log_in(
        &self,
        req: &Request,
        user: &str,
        password: &str,
    ) -> Result<(Session, SetCookie), Error>;
    /// Ends a session: the cookie that clears it in the browser.
    fn log_out(&self, session: &Session) -> Result<SetCookie, Error>;
}

/// Whoever a page is for.
#[derive(Debug, Clone)]
pub enum Visitor {
    Nobody,
    Session(Session),
    /// The web server's user (no session, so no CSRF token: changes are checked by origin).
    Remote(Principal),
}

impl Visitor {
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Visitor::Nobody => None,
            Visitor::Session(s) => Some(&s.principal),
            Visitor::Remote(p) => Some(p),
        }
    }

    fn csrf_token(&self) -> Option<&str> {
        match self {
            Visitor::Session(s) => Some(&s.csrf_token),
            _ => None,
        }
    }
}

/// Whether `path` (below the script) is one of the pages'.
pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/admin/")
}

/// Answers a request for a page: always HTML (or an asset), errors included.
pub fn handle<S: Site>(site: &S, req: &Request) -> Response {
    let page = &req.path[PREFIX.len()..];
    let resp = match route(site, req, page) {
        Ok(resp) => resp,
        Err(e) => errors::page(site, req, &e),
    };
    layout::secure(resp, site.config())
}

/// Who is logged in; a session whose store fails is an error, not nobody.
fn visitor<S: Site>(site: &S, req: &Request) -> Result<Visitor, Error> {
    if let Some(s) = site.session(req)? {
        return Ok(Visitor::Session(s));
    }
    Ok(site
        .remote_user(req)?
        .map_or(Visitor::Nobody, Visitor::Remote))
}

/// The logged-in visitor a page needs; a `GET` without one is sent to log in.
fn required<S: Site>(site: &S, req: &Request) -> Result<Result<Visitor, Response>, Error> {
    match visitor(site, req)? {
        Visitor::Nobody if matches!(req.method.as_str(), "GET" | "HEAD") => {
            Ok(Err(layout::to_login(req)))
        }
        Visitor::Nobody => Err(SessionError::NoSession.into()),
        v => Ok(Ok(v)),
    }
}

/// Refuses a state-changing request without the session's CSRF token (`csrf_token` field),
/// or, for the web server's user, from another site's page.
fn check_csrf(req: &Request, visitor: &Visitor) -> Result<(), Error> {
    match visitor {
        Visitor::Session(s) => {
            if session::csrf_matches(req, &s.csrf_token)? {
                Ok(())
            } else {
                log::warn!(
                    "page form of {:?}: CSRF token missing or wrong",
                    s.principal.user
                );
                Err(SessionError::CsrfFailed.into())
            }
        }
        Visitor::Remote(_) => Ok(session::check_origin(req)?),
        Visitor::Nobody => Err(SessionError::NoSession.into()),
    }
}

fn method_not_allowed(allow: &str) -> Error {
    RequestError::Method {
        allow: allow.into(),
    }
    .into()
}

fn route<S: Site>(site: &S, req: &Request, page: &str) -> Result<Response, Error> {
    if let Some(asset) = page.strip_prefix("/static/") {
        return assets::serve(req, asset);
    }
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    let post = req.method == "POST";
    if post && req.body.len() > MAX_FORM_BYTES {
        return Err(RequestError::BodyTooLarge(MAX_FORM_BYTES).into());
    }
    if !post && !req.body.is_empty() {
        return Err(RequestError::BodyTooLarge(0).into());
    }
    match page {
        // The pages link relative to `/admin/`: a path without the slash is sent to it.
        "" if get => Ok(layout::redirect("admin/")),
        "" => Err(method_not_allowed("GET, HEAD")),
        "/" if get => match required(site, req)? {
            Ok(v) => home::show(site, req, &v),
            Err(to_login) => Ok(to_login),
        },
        "/" => Err(method_not_allowed("GET, HEAD")),
        "/login" if get => login::show(site, req),
        "/login" if post => login::submit(site, req),
        "/login" => Err(method_not_allowed("GET, HEAD, POST")),
        "/logout" if post => {
            let v = visitor(site, req)?;
            // Nobody logged in: nothing to end (a stale tab), so no token to check.
            if !matches!(v, Visitor::Nobody) {
                check_csrf(req, &v)?;
            }
            login::log_out(site, req, &v)
        }
        "/logout" => Err(method_not_allowed("POST")),
        _ => Err(RequestError::NoRoute(req.path.clone()).into()),
    }
}

#[cfg(test)]
mod tests;
