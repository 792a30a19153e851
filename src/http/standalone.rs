//! The standalone HTTP server (`--listen`): the handler at the script path, the cache directory
//! as immutable static files under the cache URL, and an optional page at `/`. It exists so
//! that `make run` needs no web server; production sites put nginx or Apache in front.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::thread;

use super::body::{self, Limits};
use super::{Handler, Request, Response};
use crate::render::Format;

/// What the standalone server serves besides the handler.
pub struct Options {
    /// Requests for this path (and below it) go to the handler, e.g. `/imgserv.cgi`.
    pub script_name: String,
    /// `(url prefix, directory, Cache-Control)` served as static files.
    pub static_dir: Option<(String, PathBuf, String)>,
    /// HTML served at `/`.
    pub index_html: Option<String>,
    /// Threads answering requests.
    pub workers: usize,
    /// Largest request body (a larger `Content-Length` is refused before the body is read),
    /// and where longer bodies are spooled.
    pub body: Limits,
}

/// Serves until the process ends.
pub fn serve(addr: &str, handler: Arc<dyn Handler>, opts: Options) -> io::Result<()> {
    let server = tiny_http::Server::http(addr).map_err(io::Error::other)?;
    log::info!("listening on http://{addr}{}", opts.script_name);
    let server = Arc::new(server);
    let opts = Arc::new(opts);
    let threads: Vec<_> = (0..opts.workers.max(1))
        .map(|_| {
            let (server, handler, opts) = (server.clone(), handler.clone(), opts.clone());
            thread::spawn(move || {
                loop {
                    match server.recv() {
                        Ok(req) => answer(req, handler.as_ref(), &opts),
                        Err(e) => log::warn!("accept: {e}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn answer(mut raw: tiny_http::Request, handler: &dyn Handler, opts: &Options) {
    let resp = route(&mut raw, handler, opts);
    // A HEAD response has no body but announces the length a GET would have; tiny_http sends
    // no body for HEAD and takes the length from here.
    let length = match resp.header("content-length").and_then(|v| v.parse().ok()) {
        Some(n) if resp.body_len() == 0 => n,
        _ => resp.body_len() as usize,
    };
    let headers = resp
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
        .filter_map(|(name, value)| {
            tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
        })
        .collect();
    let streamed = resp.stream.as_ref().and_then(|s| s.take());
    let data: Box<dyn io::Read + Send> = match streamed {
        Some(reader) => Box::new(io::Cursor::new(resp.body).chain(reader)),
        None => Box::new(io::Cursor::new(resp.body)),
    };
    let out = tiny_http::Response::new(
        tiny_http::StatusCode(resp.status),
        headers,
        data,
        Some(length),
        None,
    );
    if let Err(e) = raw.respond(out) {
        log::debug!("writing the response: {e}");
    }
}

fn route(raw: &mut tiny_http::Request, handler: &dyn Handler, opts: &Options) -> Response {
    let method = raw.method().as_str().to_ascii_uppercase();
    let url = raw.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let Ok(path) = percent_encoding::percent_decode_str(path).decode_utf8() else {
        return Response::error(400, "bad-request", "request path is not valid UTF-8");
    };
    let path = path.into_owned();
    if let (Some(html), "/") = (&opts.index_html, path.as_str()) {
        return Response::new(200)
            .with_header("Content-Type", "text/html; charset=utf-8")
            .with_body(html.clone().into_bytes());
    }
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
        let req = Request {
            method,
            query: query.to_string(),
            remote_addr: raw.remote_addr().map(|a| a.ip().to_string()),
            missing: Some(path.clone()),
            ..Request::default()
        };
        return super::cgi::handle_catching(handler, req);
    }
    let rest = match path.strip_prefix(script) {
        Some(rest) if in_script => rest,
        _ => return Response::error(404, "not-found", format!("no such resource: {path}")),
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Response::error(404, "not-found", format!("no such resource: {path}"));
    }
    let declared = raw.body_length().map(|n| n as u64);
    let body = match body::receive(&opts.body, declared, raw.as_reader()) {
        Ok(body) => body,
        Err(e) => return e.response(),
    };
    let req = Request {
        method,
        path: rest.to_string(),
        query: query.to_string(),
        headers: raw
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase(),
                    h.value.as_str().to_string(),
                )
            })
            .collect(),
        body,
        remote_addr: raw.remote_addr().map(|a| a.ip().to_string()),
        missing: None,
    };
    super::cgi::handle_catching(handler, req)
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
