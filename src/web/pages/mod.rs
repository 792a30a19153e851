//! The dashboard's pages under `/admin/`: server-rendered HTML from the compile-time-checked
//! templates in `templates/`, one module per page family — `login`, `home`, `browse` (and the
//! move of selected images), `image` (an image, its edit and delete), `search`, `upload`,
//! `categories`, and for administrators `admin` (users, groups, API keys), `grants` and
//! `system` (cache, status, configuration) — beside the shared ones (`layout`: the frame,
//! security headers and safe links; `view`: links, dates, sizes, the tree, forms; `embed`: the
//! URLs to embed an image; `assets`: the stylesheet and script; `errors`: errors as pages).
//! Handlers are thin: what they read and change is the use cases' (`browse`, `categories`,
//! `people`, `permissions`, `session`, `auth`), through [`Site`], and every change is checked
//! and logged there or in the REST code it shares ([`Site::upload`], [`Site::change`],
//! [`Site::delete`]).
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

mod admin;
mod assets;
mod browse;
mod categories;
mod embed;
mod errors;
mod grants;
mod home;
mod image;
mod layout;
mod login;
mod search;
mod system;
mod upload;
mod view;

use crate::domain::original::OriginalId;
use crate::domain::principal::Principal;
use crate::io::catalog::{Catalog, Image, Inserted};
use crate::io::config::Config;
use crate::io::http::cookie::SetCookie;
use crate::io::http::{Request, RequestError, Response};
use crate::usecases::error::{Error, SessionError};
use crate::usecases::ingest::Upload;
use crate::usecases::permissions::{Actor, Permissions};
use crate::usecases::records::{Change, Records};
use crate::usecases::session::{self, Session};

pub use layout::safe_next;

/// The path prefix of the pages (below the script).
pub const PREFIX: &str = "/admin";

/// The most a page's form body may be (a login, a metadata edit, a move of a page of images);
/// the upload form's is `[api] max_body_bytes`.
const MAX_FORM_BYTES: u64 = 64 << 10;

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
    /// Runs `f` with a catalog connection and the visitor as the permission rules see them:
    /// what the pages read (listings, the tree, an image) they read through this.
    fn desk<T>(
        &self,
        visitor: &Visitor,
        f: impl FnOnce(&mut Desk<'_>) -> Result<T, Error>,
    ) -> Result<T, Error>;
    /// Adds an original as `POST /api/images` does: edit on the category, logged.
    fn upload(&self, visitor: &Visitor, bytes: &[u8], upload: &Upload) -> Result<Inserted, Error>;
    /// Changes an image's metadata and/or category as `POST|PATCH /api/images/{id}/meta`
    /// does: edit on the image and on the target category, logged.
    fn change(&self, visitor: &Visitor, id: &OriginalId, change: &Change) -> Result<Image, Error>;
    /// Deletes an image, its original and its variants as `DELETE /api/images/{id}` does.
    fn delete(&self, visitor: &Visitor, id: &OriginalId) -> Result<(), Error>;
    /// The dashboard's thumbnail of an image the public may not view (so no static URL
    /// shows it), after checking that the visitor may: the variant's bytes, kept by no
    /// shared cache.
    fn thumbnail(&self, visitor: &Visitor, id: &OriginalId) -> Result<Response, Error>;
}

/// What a page reads with: the configuration, the record cache, a catalog connection and who
/// acts (see [`Site::desk`]).
pub struct Desk<'a> {
    pub config: &'a Config,
    pub records: &'a Records,
    pub catalog: &'a mut Catalog,
    pub actor: Actor,
}

impl Desk<'_> {
    /// The permission rules for this desk's configuration and caches.
    pub fn permissions(&self) -> Permissions<'_> {
        Permissions::new(self.config, self.records)
    }
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
    // The upload form's files come within `[api] max_body_bytes` (the transports'
    // limit); every other form is small.
    if post && page != "/upload" && req.body.len() > MAX_FORM_BYTES {
        return Err(RequestError::BodyTooLarge(MAX_FORM_BYTES).into());
    }
    if !post && !req.body.is_empty() {
        return Err(RequestError::BodyTooLarge(0).into());
    }
    match page {
        // The pages link relative to `/admin/`: a path without the slash is sent to it.
        "" if get => Ok(layout::redirect("admin/")),
        "" => Err(method_not_allowed("GET, HEAD")),
        "/" if get => with_visitor(site, req, |v| home::show(site, req, v)),
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
        "/browse" if get => with_visitor(site, req, |v| browse::show(site, req, v)),
        "/browse" => Err(method_not_allowed("GET, HEAD")),
        "/search" if get => with_visitor(site, req, |v| search::show(site, req, v)),
        "/search" => Err(method_not_allowed("GET, HEAD")),
        "/upload" if get => with_visitor(site, req, |v| upload::show(site, req, v)),
        "/upload" if post => changing(site, req, |v| upload::submit(site, req, v)),
        "/upload" => Err(method_not_allowed("GET, HEAD, POST")),
        "/users" if get => with_visitor(site, req, |v| admin::users(site, req, v, None)),
        "/users" if post => changing(site, req, |v| admin::add_user(site, req, v)),
        "/user" if get => with_visitor(site, req, |v| admin::show_user(site, req, v)),
        "/user" if post => changing(site, req, |v| admin::change_user(site, req, v)),
        "/groups" if post => changing(site, req, |v| admin::groups(site, req, v)),
        "/keys" if get => with_visitor(site, req, |v| admin::keys(site, req, v)),
        "/keys" if post => changing(site, req, |v| admin::change_keys(site, req, v)),
        "/categories" if get => with_visitor(site, req, |v| categories::show(site, req, v, None)),
        "/categories" if post => changing(site, req, |v| categories::change(site, req, v)),
        "/categories" => Err(method_not_allowed("GET, HEAD, POST")),
        "/grants" if get => with_visitor(site, req, |v| grants::show(site, req, v, None)),
        "/grants" if post => changing(site, req, |v| grants::change(site, req, v)),
        "/system" if get => with_visitor(site, req, |v| system::show(site, req, v)),
        "/system" if post => changing(site, req, |v| system::change(site, req, v)),
        "/users" | "/user" | "/keys" | "/grants" | "/system" => {
            Err(method_not_allowed("GET, HEAD, POST"))
        }
        "/groups" => Err(method_not_allowed("POST")),
        "/move" if post => changing(site, req, |v| browse::submit(site, req, v)),
        "/move" => Err(method_not_allowed("POST")),
        _ => match page.strip_prefix("/image/") {
            Some(rest) => image_route(site, req, rest, get, post),
            None => Err(RequestError::NoRoute(req.path.clone()).into()),
        },
    }
}

/// `/admin/image/{id}`, `…/edit`, `…/delete`.
fn image_route<S: Site>(
    site: &S,
    req: &Request,
    rest: &str,
    get: bool,
    post: bool,
) -> Result<Response, Error> {
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(id) = id.parse::<OriginalId>() else {
        return Err(RequestError::NoRoute(req.path.clone()).into());
    };
    match action {
        "" if get => with_visitor(site, req, |v| image::show(site, req, v, &id)),
        "" => Err(method_not_allowed("GET, HEAD")),
        "edit" if get => with_visitor(site, req, |v| image::edit(site, req, v, &id)),
        "edit" if post => changing(site, req, |v| image::save(site, req, v, &id)),
        "delete" if get => with_visitor(site, req, |v| image::confirm(site, req, v, &id)),
        "delete" if post => changing(site, req, |v| image::delete(site, req, v, &id)),
        "edit" | "delete" => Err(method_not_allowed("GET, HEAD, POST")),
        "thumbnail" if get => match required(site, req)? {
            Ok(v) => site.thumbnail(&v, &id),
            Err(to_login) => Ok(to_login),
        },
        "thumbnail" => Err(method_not_allowed("GET, HEAD")),
        _ => Err(RequestError::NoRoute(req.path.clone()).into()),
    }
}

/// A page for a logged-in visitor (the others are sent to log in).
fn with_visitor<S: Site>(
    site: &S,
    req: &Request,
    page: impl FnOnce(&Visitor) -> Result<Response, Error>,
) -> Result<Response, Error> {
    match required(site, req)? {
        Ok(v) => page(&v),
        Err(to_login) => Ok(to_login),
    }
}

/// A form's `POST` by a logged-in visitor with the session's CSRF token.
fn changing<S: Site>(
    site: &S,
    req: &Request,
    change: impl FnOnce(&Visitor) -> Result<Response, Error>,
) -> Result<Response, Error> {
    let v = visitor(site, req)?;
    check_csrf(req, &v)?;
    change(&v)
}

#[cfg(test)]
mod tests;
