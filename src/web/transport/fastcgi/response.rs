//! From a complete request to the records that answer it: the handler is called (or the
//! request refused with `413` or `400`) in [`respond`], and the response written as
//! `FCGI_STDOUT` records and an `FCGI_END_REQUEST` by [`write_response`].

use std::io::{self, Read, Write};

use crate::io::http::{Request, Response, cgi_head, request_from_meta_vars};

use super::params::split_params;
use super::record::{
    MAX_CONTENT_LEN, ProtocolError, encode_end_request, kind, status, write_record, write_stream,
};
use super::session::Incoming;

/// Writes a whole response for `request_id`: the CGI head and body on `FCGI_STDOUT`, the
/// empty `FCGI_STDOUT` that ends it, then `FCGI_END_REQUEST` (appStatus 0, complete).
pub fn write_response<W: Write + ?Sized>(
    w: &mut W,
    request_id: u16,
    resp: &Response,
) -> io::Result<()> {
    write_stream(w, kind::STDOUT, request_id, &cgi_head(resp))?;
    write_stream(w, kind::STDOUT, request_id, &resp.body)?;
    if let Some(mut reader) = resp.stream.as_ref().and_then(|s| s.take()) {
        // One record's worth at a time: a streamed original is never in memory whole.
        let mut buf = vec![0u8; MAX_CONTENT_LEN];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            write_record(w, kind::STDOUT, request_id, &buf[..n])?;
        }
    }
    write_record(w, kind::STDOUT, request_id, &[])?;
    w.write_all(&encode_end_request(request_id, 0, status::REQUEST_COMPLETE))?;
    w.flush()
}

/// Turns a complete request into its response: `413`, `400` naming a non-UTF-8
/// meta-variable, or what `run` answers (a worker running the handler; `500` if it panics).
pub(super) fn respond(
    incoming: Incoming,
    run: &dyn Fn(Request) -> Response,
) -> Result<Response, ProtocolError> {
    let body = match incoming.body {
        Ok(body) => body,
        Err(e) => return Ok(e.response().for_request(&Request::default())),
    };
    let pairs = split_params(&incoming.params)?;
    let req = match request_from_meta_vars(pairs, body) {
        Ok(req) => req,
        Err(name) => {
            let resp = Response::error(
                400,
                "bad-request",
                format!("meta-variable {name} is not valid UTF-8"),
            );
            return Ok(resp.for_request(&Request::default()));
        }
    };
    let method_only = Request {
        method: req.method.clone(),
        ..Request::default()
    };
    Ok(run(req).for_request(&method_only))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::transport::fastcgi::Options;
    use crate::web::transport::fastcgi::test_support::*;

    #[test]
    fn response_body_over_64k_arrives_complete() {
        let addr = start(Options::default());
        let mut s = connect(addr);
        s.write_all(&get_request(1, false, b"/big/300000")).unwrap();
        // Check the chunking on the wire, then the reassembled body.
        let (mut sizes, mut stdout) = (Vec::new(), Vec::new());
        loop {
            let (kind, _, content) = read_rec(&mut s).unwrap();
            if kind == kind::END_REQUEST {
                break;
            }
            sizes.push(content.len());
            stdout.extend(content);
        }
        assert!(sizes.iter().all(|n| *n <= MAX_CONTENT_LEN));
        assert_eq!(sizes.last(), Some(&0));
        let body_at = stdout.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(stdout[..body_at].starts_with(b"Status: 200 OK\r\n"));
        assert!(stdout[body_at..] == pattern(300_000)[..], "body differs");
    }

    #[test]
    fn non_utf8_path_info_is_400_naming_it_and_the_server_goes_on() {
        let addr = start(Options::default());
        let reply = get(addr, b"/x/\xff");
        assert_eq!(reply.status, 400);
        let text = String::from_utf8(reply.body).unwrap();
        assert!(text.contains("PATH_INFO"), "{text}");
        assert_eq!(get(addr, b"/ok").body, b"GET /ok?w=1\n");
    }

    #[test]
    fn panicking_handler_gets_500_and_the_connection_goes_on() {
        let addr = start(Options {
            workers: 1,
            ..Options::default()
        });
        let mut s = connect(addr);
        s.write_all(&get_request(1, true, b"/panic")).unwrap();
        let reply = read_reply(&mut s, 1);
        assert_eq!(reply.status, 500);
        // Same connection, and the only worker slot was given back.
        s.write_all(&get_request(2, false, b"/a")).unwrap();
        assert_eq!(read_reply(&mut s, 2).status, 200);
        assert_eq!(get(addr, b"/b").status, 200);
    }
}
