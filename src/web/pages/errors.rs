//! Errors as pages: the status of `usecases::error`'s one table, its message in words, and a
//! way on (log in, or the dashboard's home), never JSON.

use askama::Template;

use crate::io::http::{Request, RequestError, Response};
use crate::usecases::error::Error;

use super::layout::{Layout, html};
use super::{Site, Visitor};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout<'a>,
    title: &'static str,
    message: String,
    back: Option<&'static str>,
    back_text: &'static str,
}

/// The page's heading for a status.
fn title(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        401 => "You are not logged in",
        403 => "Forbidden",
        404 => "Page not found",
        405 => "Method not allowed",
        413 => "Too much data sent",
        429 => "Too many attempts",
        503 => "Service unavailable",
        s if s >= 500 => "Something went wrong",
        _ => "The request was refused",
    }
}

/// `e` as a page (logged as the JSON and text errors are).
pub fn page<S: Site>(site: &S, req: &Request, e: &Error) -> Response {
    let status = e.status();
    crate::io::metrics::rejected(status, e.code());
    if status >= 500 {
        log::error!("{} ({}): {e:?}", e.code(), status);
    } else {
        log::info!("{} ({}): {e}", e.code(), status);
    }
    // Who is logged in, for the frame (their name, the logout button), unless the failure
    // may be the session store's own.
    let visitor = match status {
        s if s < 500 => super::visitor(site, req).unwrap_or(Visitor::Nobody),
        _ => Visitor::Nobody,
    };
    let (back, back_text) = match status {
        401 => (Some("login"), "Log in"),
        _ => (Some(""), "Go to the dashboard"),
    };
    let page = ErrorPage {
        layout: Layout::new(&req.path, &visitor),
        title: title(status),
        message: e.public_message(),
        back,
        back_text,
    };
    let mut resp = html(status, page.render());
    if let Some(secs) = e.retry_after() {
        resp = resp.with_header("Retry-After", secs.to_string());
    }
    if let Error::Request(RequestError::Method { allow }) = e {
        resp = resp.with_header("Allow", allow.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_heading() {
        for (status, want) in [
            (403, "Forbidden"),
            (404, "Page not found"),
            (500, "Something went wrong"),
            (418, "The request was refused"),
        ] {
            assert_eq!(title(status), want);
        }
    }
}
