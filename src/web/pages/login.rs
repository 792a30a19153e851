//! `/admin/login` and `/admin/logout`: the login form (every configured method, through the
//! same chain and throttle as `POST /api/session`), and logout. A failed login says the same
//! whether the user exists or not.

use askama::Template;

use crate::io::http::{Request, Response};
use crate::usecases::error::{AuthError, Error};
use crate::usecases::session;

use super::layout::{self, Layout, html, redirect, safe_next};
use super::{Site, Visitor, visitor};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    layout: Layout<'a>,
    /// The safe page to go on to (`/admin/…`), sent back with the form.
    next: &'a str,
    /// What was typed, kept after a failure (never the password).
    user: &'a str,
    error: Option<String>,
    /// Who the web server says the visitor is (`REMOTE_USER`).
    remote_user: Option<&'a str>,
}

fn render(
    req: &Request,
    v: &Visitor,
    next: &str,
    user: &str,
    status: u16,
    error: Option<String>,
) -> Response {
    let remote_user = match v {
        Visitor::Remote(p) => Some(p.user.as_str()),
        _ => None,
    };
    let page = LoginPage {
        layout: Layout::new(&req.path, v),
        next,
        user,
        error,
        remote_user,
    };
    html(status, page.render())
}

/// `GET /admin/login`.
pub fn show<S: Site>(site: &S, req: &Request) -> Result<Response, Error> {
    // The form must show even when the session store fails (logging in may still work).
    let v = visitor(site, req).unwrap_or(Visitor::Nobody);
    let next = layout::next_of_query(&req.query);
    Ok(render(req, &v, &next, "", 200, None))
}

/// `POST /admin/login`: `user`, `password`, `next`.
pub fn submit<S: Site>(site: &S, req: &Request) -> Result<Response, Error> {
    // Login CSRF: another site's page must not log the visitor in as someone else.
    session::check_origin(req)?;
    let form = super::view::form(req)?;
    let user = form.get("user").unwrap_or("").trim();
    let password = form.get("password").unwrap_or("");
    let next = form
        .get("next")
        .filter(|n| safe_next(n).is_some())
        .unwrap_or("/admin/");
    let nobody = Visitor::Nobody;
    if user.is_empty() || password.is_empty() {
        let msg = "Enter your user name and your password.".to_string();
        return Ok(render(req, &nobody, next, user, 400, Some(msg)));
    }
    match site.log_in(req, user, password) {
        Ok((_, cookie)) => {
            let rest = safe_next(next).unwrap_or("");
            let to = format!("{}{rest}", layout::root(&req.path));
            Ok(redirect(&to).with_cookie(&cookie))
        }
        Err(e @ Error::Auth(_)) => {
            let msg = match &e {
                Error::Auth(AuthError::Throttled { retry_after }) => {
                    format!("Too many failed logins. Try again in {retry_after} seconds.")
                }
                Error::Auth(AuthError::Unavailable) => {
                    "Logins cannot be checked just now. Try again in a minute.".to_string()
                }
                _ => "The user name or the password is wrong.".to_string(),
            };
            log::info!("page login refused: {}", e.code());
            let resp = render(req, &nobody, next, user, e.status(), Some(msg));
            Ok(match e.retry_after() {
                Some(secs) => resp.with_header("Retry-After", secs.to_string()),
                None => resp,
            })
        }
        Err(e) => Err(e),
    }
}

/// `POST /admin/logout` (the CSRF token checked): ends the session, back to the login page.
pub fn log_out<S: Site>(site: &S, req: &Request, v: &Visitor) -> Result<Response, Error> {
    let to = format!("{}login", layout::root(&req.path));
    match v {
        Visitor::Session(s) => {
            let clear = site.log_out(s)?;
            log::info!("session of {:?} ended by logout", s.principal.user);
            Ok(redirect(&to).with_cookie(&clear))
        }
        // The web server's own authentication, or nobody: nothing here to end.
        _ => Ok(redirect(&to)),
    }
}
