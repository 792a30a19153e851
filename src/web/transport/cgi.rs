//! The CGI adapter (RFC 3875): meta-variables from the environment, the body from standard
//! input, the response on standard output as a `Status:` line, headers and body.
//!
//! It always writes a valid `Status:` header — also when the handler panics — so the web server
//! never reports "premature end of script headers".

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::panic::{self, AssertUnwindSafe};

use crate::io::http::body::{self, Limits};
use crate::io::http::{Handler, Request, Response, cgi_head, request_from_meta_vars};

/// Builds the request from meta-variables and a body reader; an error is the response to send
/// instead (400 for a meta-variable that is not UTF-8, 413 for a `CONTENT_LENGTH` over the
/// limit, refused before standard input is read).
pub fn request_from(
    vars: &[(OsString, OsString)],
    body: &mut dyn Read,
    limits: &Limits,
) -> Result<Request, Response> {
    // RFC 3875 §4.1.2: no CONTENT_LENGTH, no body (reading on would wait for the server).
    let length = vars
        .iter()
        .find(|(n, _)| n.as_bytes() == b"CONTENT_LENGTH")
        .and_then(|(_, v)| v.to_str())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let body = body::receive(limits, Some(length), body).map_err(|e| e.response())?;
    let pairs = vars.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    request_from_meta_vars(pairs, body).map_err(|name| {
        Response::error(
            400,
            "bad-request",
            format!("meta-variable {name} is not valid UTF-8"),
        )
    })
}

/// Runs `handler` on `req`, turning a panic into a 500.
pub fn handle_catching(handler: &dyn Handler, req: Request) -> Response {
    let is_head = req.is_head();
    match panic::catch_unwind(AssertUnwindSafe(|| handler.handle(req))) {
        Ok(resp) => resp,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            log::error!("handler panicked: {msg}");
            let resp = Response::error(500, "panic", "internal error");
            if is_head {
                resp.with_body(Vec::new())
            } else {
                resp
            }
        }
    }
}

/// Writes a response the CGI way.
pub fn write_response(out: &mut dyn Write, resp: &Response) -> io::Result<()> {
    out.write_all(&cgi_head(resp))?;
    out.write_all(&resp.body)?;
    if let Some(mut reader) = resp.stream.as_ref().and_then(|s| s.take()) {
        io::copy(&mut reader, out)?;
    }
    out.flush()
}

/// Serves the one request of this process. Returns the process exit code (0 even for error
/// responses: the response is the report).
pub fn run(handler: &dyn Handler, limits: &Limits) -> i32 {
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let resp = match request_from(&vars, &mut io::stdin().lock(), limits) {
        Ok(req) => handle_catching(handler, req),
        Err(resp) => resp,
    };
    respond(&resp)
}

/// Writes `resp` to standard output; for errors before a handler exists (a bad configuration).
pub fn respond(resp: &Response) -> i32 {
    match write_response(&mut io::stdout().lock(), resp) {
        Ok(()) => 0,
        Err(e) => {
            // The client went away; nothing left to tell it.
            log::debug!("writing the response: {e}");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn vars(list: &[(&str, &[u8])]) -> Vec<(OsString, OsString)> {
        list.iter()
            .map(|(n, v)| (OsString::from(n), OsString::from_vec(v.to_vec())))
            .collect()
    }

    #[test]
    fn reads_exactly_content_length() {
        let v = vars(&[("REQUEST_METHOD", b"POST"), ("CONTENT_LENGTH", b"3")]);
        let req = request_from(&v, &mut &b"abcdef"[..], &Limits::default()).unwrap();
        assert_eq!(req.body, b"abc".to_vec().into());
        assert_eq!(req.method, "POST");
    }

    #[test]
    fn refuses_non_utf8_and_huge_bodies() {
        let v = vars(&[("PATH_INFO", b"/x/\xff")]);
        let resp = request_from(&v, &mut io::empty(), &Limits::default()).unwrap_err();
        assert_eq!(resp.status, 400);
        assert!(String::from_utf8_lossy(&resp.body).contains("PATH_INFO"));
        let v = vars(&[("CONTENT_LENGTH", b"999999999999")]);
        let resp = request_from(&v, &mut io::empty(), &Limits::default()).unwrap_err();
        assert_eq!(resp.status, 413);
    }

    #[test]
    fn every_set_cookie_is_its_own_header_line() {
        use crate::io::http::cookie::{SameSite, SetCookie};
        let v = vars(&[("HTTPS", b"on"), ("HTTP_COOKIE", b"old=1")]);
        let req = request_from(&v, &mut io::empty(), &Limits::default()).unwrap();
        let resp = Response::new(303)
            .with_header("Location", "/")
            .with_cookie(&SetCookie::removal(&req.cookies()[0].0, "/").unwrap())
            .with_cookie(
                &SetCookie::new("s", "x")
                    .unwrap()
                    .http_only(true)
                    .secure(req.is_https())
                    .same_site(SameSite::Lax),
            );
        let mut out = Vec::new();
        write_response(&mut out, &resp).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Status: 303 See Other\r\nLocation: /\r\n\
             Set-Cookie: old=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             Set-Cookie: s=x; HttpOnly; Secure; SameSite=Lax\r\n\r\n"
        );
    }

    #[test]
    fn panics_become_500() {
        let h = |_req: Request| -> Response { panic!("boom") };
        let resp = handle_catching(&h, Request::get("", ""));
        assert_eq!(resp.status, 500);
        let mut out = Vec::new();
        write_response(&mut out, &resp).unwrap();
        assert!(out.starts_with(b"Status: 500 Internal Server Error\r\n"));
    }
}
