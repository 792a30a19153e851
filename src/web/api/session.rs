//! `/api/session`: log in (`POST`, JSON or a form), who is logged in (`GET`), log out
//! (`DELETE`, with the CSRF token). The handlers only translate: sessions, CSRF and origin
//! checks are `usecases::session`'s, the cookie's syntax `io::http::cookie`'s.

use crate::io::http::cookie::{CookieError, SameSite, SetCookie};
use crate::io::http::{Request, Response};
use crate::usecases::error::{Error, SessionError};
use crate::usecases::session::{self, Answer, COOKIE_PATH, Session};
use crate::usecases::throttle;

use super::App;
use super::route::{Caller, Matched};

/// The most a login body may be: two short fields and a form's framing.
pub(super) const MAX_LOGIN_BYTES: u64 = 16 << 10;

fn json(status: u16, answer: &Answer<'_>) -> Response {
    let body = serde_json::to_vec(answer).unwrap_or_default();
    Response::new(status)
        .with_header("Content-Type", "application/json")
        .with_header("Cache-Control", "no-store")
        .with_body([body, b"\n".to_vec()].concat())
}

/// A cookie the `io::http::cookie` rules refuse can only come from a bad `cookie_name`, which
/// `[sessions]` validation keeps out.
fn cookie_error(e: CookieError) -> Error {
    crate::io::config::ConfigError::Invalid {
        key: "sessions.cookie_name".into(),
        msg: e.to_string(),
    }
    .into()
}

impl App {
    /// `POST /api/session`.
    pub(super) fn login(&self, req: &Request) -> Result<Response, Error> {
        session::check_origin(req)?;
        let (user, password) = session::credentials(req)?;
        let (session, set) = self.open_session(req, &user, &password)?;
        let answer = Answer::new(&session.principal, Some(&session.csrf_token));
        Ok(json(200, &answer).with_cookie(&set))
    }

    /// Checks a login from the request's client (throttled) and opens a session in place of
    /// the request's: the session and its cookie. Shared by the API and the login page.
    pub(super) fn open_session(
        &self,
        req: &Request,
        user: &str,
        password: &str,
    ) -> Result<(Session, SetCookie), Error> {
        let name = self.sessions.cookie_name();
        let old = req.cookie(name);
        let address = throttle::client_address(req, &self.config.server.trusted_proxies);
        let (session, token) = self.with_catalog(|catalog| {
            let old = old.as_deref();
            self.sessions
                .login(&self.config, catalog, (user, password), address, old)
        })?;
        let set = SetCookie::new(name, &token)
            .and_then(|c| c.path(COOKIE_PATH))
            .map_err(cookie_error)?
            .max_age(self.sessions.cookie_max_age())
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(req.is_https());
        Ok((session, set))
    }

    /// Ends a session: the cookie that clears it.
    pub(super) fn end_session(&self, s: &Session) -> Result<SetCookie, Error> {
        self.with_catalog(|catalog| self.sessions.end(catalog, &s.id))?;
        Ok(SetCookie::removal(self.sessions.cookie_name(), COOKIE_PATH)
            .map_err(cookie_error)?
            .http_only(true)
            .same_site(SameSite::Lax))
    }

    /// `GET /api/session`.
    pub(super) fn whoami(&self, m: &Matched<'_>) -> Result<Response, Error> {
        match &m.caller {
            Caller::Session(s) => Ok(json(200, &Answer::new(&s.principal, Some(&s.csrf_token)))),
            Caller::Remote(p) => Ok(json(200, &Answer::new(p, None))),
            _ => Err(SessionError::NoSession.into()),
        }
    }

    /// `DELETE /api/session` (the dispatcher checked the CSRF token).
    pub(super) fn logout(&self, m: &Matched<'_>) -> Result<Response, Error> {
        let mut clear = None;
        let (user, ended) = match &m.caller {
            Caller::Session(s) => {
                clear = Some(self.end_session(s)?);
                log::info!("session of {:?} ended by logout", s.principal.user);
                (s.principal.user.as_str(), true)
            }
            // The web server's own authentication: nothing here to end.
            Caller::Remote(p) => (p.user.as_str(), false),
            _ => return Err(SessionError::NoSession.into()),
        };
        let body = serde_json::json!({ "user": user, "logged_out": ended });
        let clear = match clear {
            Some(c) => c,
            None => SetCookie::removal(self.sessions.cookie_name(), COOKIE_PATH)
                .map_err(cookie_error)?
                .http_only(true)
                .same_site(SameSite::Lax),
        };
        Ok(Response::new(200)
            .with_header("Content-Type", "application/json")
            .with_header("Cache-Control", "no-store")
            .with_body(format!("{body}\n").into_bytes())
            .with_cookie(&clear))
    }
}
