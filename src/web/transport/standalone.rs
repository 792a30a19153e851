//! The standalone HTTP server (`--listen`): the handler at the script path, the cache directory
//! as immutable static files under the cache URL, and an optional page at `/`. It exists so
//! that `make run` needs no web server; production sites put nginx or Apache in front.

use std::fs;
use std::io::{self, Read};
use std::net::{IpAddr, TcpListener};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::fastcgi::Semaphore;
use super::http1::{self, Head};
use super::workers::Workers;
use crate::domain::format::Format;
use crate::io::http::body::{self, Limits};
use crate::io::http::{Handler, Request, Response};

/// What the standalone server serves besides the handler.
pub struct Options {
    /// Requests for this path (and below it) go to the handler, e.g. `/imgserv.cgi`.
    pub script_name: String,
    /// `(url prefix, directory, Cache-Control)` served as static files.
    pub static_dir: Option<(String, PathBuf, String)>,
    /// HTML served at `/`.
    pub index_html: Option<String>,
    /// Threads that run the handler: requests handled at once; the rest wait. Reading a
    /// request holds none.
    pub workers: usize,
    /// Most open connections, one thread each; `accept` waits while this many are open.
    pub max_conns: usize,
    /// How long a connection may send nothing (idle, or inside a head or body) before it is
    /// closed.
    pub read_timeout: Duration,
    /// Largest request body (a larger `Content-Length` is refused before the body is read),
    /// and where longer bodies are spooled.
    pub body: Limits,
}

/// Serves until the process ends: a thread per connection (at most `max_conns`), and the
/// handler on `workers` threads of its own ([`Workers`]).
pub fn serve(addr: &str, handler: Arc<dyn Handler>, opts: Options) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    log::info!("listening on http://{addr}{}", opts.script_name);
    let opts = Arc::new(opts);
    let conns = Semaphore::new(opts.max_conns.max(1));
    let workers = Arc::new(Workers::start(opts.workers, handler)?);
    loop {
        let permit = conns.acquire();
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and the like: wait rather than spin.
                log::warn!("accept: {e}");
                drop(permit);
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let (opts, workers) = (opts.clone(), workers.clone());
        let spawned = thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || {
                let _permit = permit;
                let answer = |head: &Head, declared: Option<u64>, body: &mut dyn Read| {
                    let peer = peer.ip();
                    route(head, declared, body, peer, &opts, &workers)
                };
                http1::serve_connection(&stream, opts.read_timeout, &answer);
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn route(
    head: &Head,
    declared: Option<u64>,
    input: &mut dyn Read,
    peer: IpAddr,
    opts: &Options,
    workers: &Workers,
) -> Response {
    let method = head.method.to_ascii_uppercase();
    let url = head.target.as_str();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let Ok(path) = percent_encoding::percent_decode_str(path).decode_utf8() else {
        return Response::error(400, "bad-request", "request path is not valid UTF-8");
    };
    let path = path.into_owned();
    if let (Some(html), "/") = (&opts.index_html, path.as_str()) {
        return Response::new(200)
            .with_header("Content-Type", "text/html; charset=utf-8")
            .with_body(html.clone().into_bytes());
    }
    let handle = |req: Request| workers.handle(req);
    let below = |prefix: &str| path.strip_prefix(prefix).and_then(|r| r.strip_prefix('/'));
    // The script first: it may be mounted below the cache URL (or the cache URL be the root).
    let script = opts.script_name.as_str();
    let in_script = path
        .strip_prefix(script)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    let in_static = (!in_script)
        .then(|| {
            let s = opts.static_dir.as_ref()?;
            Some((below(&s.0)?, s))
        })
        .flatten();
    if let Some((rel, (_, dir, cache_control))) = in_static {
        if let Some(resp) = static_file(dir, rel, cache_control, &method) {
            return resp;
        }
        // A missing file is the handler's, as behind nginx's `try_files $uri @imgserv`: it
        // may be a 404-handler URL that renders the variant and leaves it here.
        return handle(Request {
            method,
            query: query.to_string(),
            remote_addr: Some(peer.to_string()),
            missing: Some(path.clone()),
            ..Request::default()
        });
    }
    let rest = match path.strip_prefix(script) {
        Some(rest) if in_script => rest,
        _ => return Response::error(404, "not-found", format!("no such resource: {path}")),
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Response::error(404, "not-found", format!("no such resource: {path}"));
    }
    let body = match body::receive(&opts.body, declared, input) {
        Ok(body) => body,
        Err(e) => return e.response(),
    };
    handle(Request {
        method,
        path: rest.to_string(),
        query: query.to_string(),
        headers: head.fields.clone(),
        body,
        remote_addr: Some(peer.to_string()),
        missing: None,
        // Plain HTTP only: TLS, where there is any, ends in a proxy in front.
        https: false,
        // No authentication of its own: a client's `REMOTE_USER`-like header is just a header.
        remote_user: None,
    })
}

/// A file below `dir`, refusing anything that is not a plain relative path.
///
/// `None` when `rel` is a plain path whose file is missing (the handler's case).
fn static_file(dir: &Path, rel: &str, cache_control: &str, method: &str) -> Option<Response> {
    if method != "GET" && method != "HEAD" {
        let resp = Response::error(405, "method-not-allowed", "use GET or HEAD");
        return Some(resp.with_header("Allow", "GET, HEAD"));
    }
    let rel_path = Path::new(rel);
    let plain = rel_path
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    let hidden = rel.split('/').any(|c| c.starts_with('.'));
    if rel.is_empty() || !plain || hidden {
        return Some(Response::error(404, "not-found", "no such file"));
    }
    match fs::read(dir.join(rel_path)) {
        Ok(bytes) => {
            let mime = rel_path
                .extension()
                .and_then(|e| e.to_str())
                .and_then(Format::from_ext)
                .map_or("application/octet-stream", Format::mime);
            let mut resp = Response::new(200)
                .with_header("Content-Type", mime)
                .with_header("Cache-Control", cache_control)
                .with_header("X-Content-Type-Options", "nosniff")
                .with_body(bytes);
            if method == "HEAD" {
                let len = resp.body.len().to_string();
                resp = resp
                    .with_header("Content-Length", len)
                    .with_body(Vec::new());
            }
            Some(resp)
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::http::cookie::SetCookie;
    use std::io::Write;
    use std::net::TcpStream;

    #[test]
    fn every_set_cookie_reaches_the_client() {
        // Echoes the request's cookies back; plain HTTP, so never `Secure`.
        let handler = |req: Request| {
            req.cookies()
                .iter()
                .fold(Response::new(200), |resp, (name, value)| {
                    let c = SetCookie::new(name, value).unwrap().secure(req.is_https());
                    resp.with_cookie(&c)
                })
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = Options {
            script_name: "/imgserv.cgi".into(),
            static_dir: None,
            index_html: None,
            workers: 1,
            max_conns: 4,
            read_timeout: Duration::from_secs(10),
            body: Limits::default(),
        };
        let addr = format!("127.0.0.1:{port}");
        let listen = addr.clone();
        thread::spawn(move || serve(&listen, Arc::new(handler), opts));
        let mut stream = (0..200)
            .find_map(|_| {
                TcpStream::connect(&addr).ok().or_else(|| {
                    thread::sleep(Duration::from_millis(10));
                    None
                })
            })
            .expect("the server listens");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .write_all(
                b"GET /imgserv.cgi/x HTTP/1.1\r\nHost: t\r\nCookie: a=1; b=2\r\n\
                  X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        let cookies: Vec<&str> = reply
            .lines()
            .filter_map(|l| l.strip_prefix("Set-Cookie: "))
            .collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }
}
