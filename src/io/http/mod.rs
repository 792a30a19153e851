//! HTTP as the handler sees it: a transport-agnostic [`Request`] and [`Response`], and the
//! adapters that translate CGI, FastCGI and plain HTTP bytes to and from them.
//!
//! This module owns no routing and no image logic (see `api`); the adapters only translate.

pub mod body;
pub mod cookie;
pub mod form;
pub mod multipart;
pub mod target;

use std::fmt;
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

pub use body::Body;

/// One request, as every transport delivers it.
///
/// Values that arrive as bytes (CGI meta-variables, FastCGI params) must be valid UTF-8:
/// an adapter refuses a request whose meta-variables are not with `400` instead of dropping
/// them, so the handler never sees a request with parameters silently missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, `POST`, … upper case, as sent.
    pub method: String,
    /// The path below the script (CGI `PATH_INFO`), percent-decoded, `""` when there is none.
    pub path: String,
    /// The raw query string without the `?`, still percent-encoded.
    pub query: String,
    /// Request headers with lower-case names (`content-type`, `if-none-match`, …).
    pub headers: Vec<(String, String)>,
    /// The request body (empty for `GET`/`HEAD`), received within `[api] max_body_bytes`;
    /// routes read it as a stream.
    pub body: Body,
    /// The peer's address when the transport knows it (CGI `REMOTE_ADDR`).
    pub remote_addr: Option<String>,
    /// The decoded URL path of a missing file that this request stands in for, when the web
    /// server says so explicitly (Apache's `ErrorDocument 404`, `IMGSERV_404` from the shipped
    /// nginx snippets, the standalone server's fallback; see [`target`]): the 404 handler's
    /// requests. Never set from anything a client sends.
    pub missing: Option<String>,
    /// Whether the request came over HTTPS, as the web server says (`HTTPS=on` in the CGI or
    /// FastCGI parameters). The standalone server speaks plain HTTP only, and a proxy's
    /// `X-Forwarded-Proto` is not believed: a client could send it.
    pub https: bool,
    /// The user the web server's own authentication established (CGI `REMOTE_USER`, the
    /// FastCGI parameter of that name). The standalone server never sets it; it counts only
    /// when `[auth] methods` lists `remote_user`.
    pub remote_user: Option<String>,
}

impl Request {
    /// A `GET` request for `path?query`, for tests and tools.
    pub fn get(path: &str, query: &str) -> Self {
        Request {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            ..Request::default()
        }
    }

    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the response should carry no body.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Whether the request came over HTTPS (for a cookie's `Secure`).
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The request's cookies in the order sent, from every `Cookie` header
    /// ([`cookie::parse`]: invalid pairs skipped).
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| cookie::parse(v))
            .collect()
    }

    /// The first cookie of this name.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// One response: status, headers, a body in memory and optionally a [`Stream`] sent after it.
///
/// Generated bodies are in memory (images served directly are bounded by the render limits);
/// an original is streamed from the store, never held whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes sent after `body`, read as they are written out.
    pub stream: Option<Stream>,
}

/// A response body read from elsewhere (a file, an S3 object) while it is sent, with its
/// length known in advance for `Content-Length`. Sent once: the first writer takes it.
#[derive(Clone)]
pub struct Stream {
    reader: Arc<Mutex<Option<Box<dyn Read + Send>>>>,
    len: u64,
}

impl Stream {
    /// `len` bytes from `reader` (a shorter reader ends the response early; more is not read).
    pub fn new(reader: Box<dyn Read + Send>, len: u64) -> Stream {
        Stream {
            reader: Arc::new(Mutex::new(Some(Box::new(reader.take(len))))),
            len,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The reader, for the one who writes the response out; `None` once taken.
    pub fn take(&self) -> Option<Box<dyn Read + Send>> {
        self.reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stream({} bytes)", self.len)
    }
}

/// Streams are equal only to themselves (their clones).
impl PartialEq for Stream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.reader, &other.reader)
    }
}

impl Eq for Stream {}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            stream: None,
        }
    }

    /// A `text/plain` response with one line of text.
    pub fn text(status: u16, text: impl fmt::Display) -> Self {
        let mut body = text.to_string();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Response::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body.into_bytes())
    }

    /// A failure as clients see it: one `text/plain` line `<code>: <message>` with a stable
    /// kebab-case code, never cached.
    pub fn error(status: u16, code: &str, message: impl fmt::Display) -> Self {
        Response::text(status, format!("{code}: {message}"))
            .with_header("Cache-Control", "no-store")
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Adds a `Set-Cookie` header; a response may carry several, each sent as its own header
    /// line by every transport.
    pub fn with_cookie(self, cookie: &cookie::SetCookie) -> Self {
        self.with_header("Set-Cookie", cookie.to_string())
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// Sends `stream` as the body (after `body`, normally empty).
    pub fn with_stream(mut self, stream: Stream) -> Self {
        self.stream = Some(stream);
        self
    }

    /// The response with its stream read into `body`, for callers that want the bytes (tests,
    /// tools), not for serving.
    pub fn collect(mut self) -> std::io::Result<Response> {
        if let Some(mut reader) = self.stream.take().and_then(|s| s.take()) {
            reader.read_to_end(&mut self.body)?;
        }
        Ok(self)
    }

    /// The body's whole length: the bytes in memory and the stream's.
    pub fn body_len(&self) -> u64 {
        self.body.len() as u64 + self.stream.as_ref().map_or(0, Stream::len)
    }

    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Drops the body for a `HEAD` request, keeping `Content-Length` as it would have been.
    pub fn for_request(mut self, req: &Request) -> Self {
        if self.header("Content-Length").is_none() {
            let len = self.body_len().to_string();
            self.headers.push(("Content-Length".into(), len));
        }
        if req.is_head() {
            self.body.clear();
            self.stream = None;
        }
        self
    }
}

/// The reason phrase for the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// A request no route takes: no such route or method, or a body the route cannot read. Each
/// maps to a status in `usecases::error`.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No route for this path (or no image of this id in a URL that names one).
    #[error("no such resource: {0}")]
    NoRoute(String),
    /// The route exists but not for this method; `Allow` lists the ones it has.
    #[error("method not allowed; use {allow}")]
    Method { allow: String },
    /// A body over the route's limit (`web::api::route`), when the transport's (`[api]
    /// max_body_bytes`) let it through: a route that takes no body got one.
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(u64),
    /// A body that is not what the route reads (bad JSON, a broken multipart form, no file).
    #[error("{0}")]
    BadBody(String),
    /// A request body that is not `Content-Type` the route accepts.
    #[error("unsupported content type {0:?}")]
    ContentType(String),
    /// The received request body could not be read back (its temporary file failed).
    #[error("reading the request body: {0}")]
    BodyIo(std::io::Error),
}

/// Anything that turns a [`Request`] into a [`Response`]; shared by all transports.
pub trait Handler: Send + Sync {
    fn handle(&self, req: Request) -> Response;
}

impl<F> Handler for F
where
    F: Fn(Request) -> Response + Send + Sync,
{
    fn handle(&self, req: Request) -> Response {
        self(req)
    }
}

/// Builds a [`Request`] from CGI/FastCGI meta-variables given as raw bytes (RFC 3875 §4.1).
///
/// Returns the name of the first meta-variable that the handler needs but which is not valid
/// UTF-8, so that the adapter can answer `400` naming it instead of losing it.
pub fn request_from_meta_vars<'a, I>(vars: I, body: Body) -> Result<Request, String>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut req = Request {
        body,
        ..Request::default()
    };
    let mut target = target::Vars::default();
    for (name, value) in vars {
        let text = || {
            std::str::from_utf8(value)
                .map(str::to_string)
                .map_err(|_| String::from_utf8_lossy(name).into_owned())
        };
        // Values only compared or searched, never used as names: kept lossily rather than
        // refusing a request for them.
        let lossy = || Some(String::from_utf8_lossy(value).into_owned());
        match name {
            b"REQUEST_METHOD" => req.method = text()?,
            b"PATH_INFO" => target.path_info = Some(text()?),
            b"QUERY_STRING" => req.query = text()?,
            b"REMOTE_ADDR" => req.remote_addr = Some(text()?),
            b"REMOTE_USER" => req.remote_user = Some(text()?).filter(|u| !u.is_empty()),
            b"CONTENT_TYPE" => req.headers.push(("content-type".into(), text()?)),
            b"CONTENT_LENGTH" => {}
            // Apache and nginx (`fastcgi_param HTTPS $https if_not_empty`) say "on"; some
            // servers "1" or "ON". Anything else, or none, is plain HTTP.
            b"HTTPS" => req.https = matches!(value, b"on" | b"ON" | b"On" | b"1"),
            b"SCRIPT_FILENAME" => target.script_filename = lossy(),
            b"REQUEST_URI" => target.request_uri = lossy(),
            b"REDIRECT_STATUS" => target.redirect_status = lossy(),
            b"REDIRECT_URL" => target.redirect_url = Some(text()?),
            b"REDIRECT_QUERY_STRING" => target.redirect_query = Some(text()?),
            _ if name == target::IMGSERV_404.as_bytes() => target.imgserv_404 = Some(text()?),
            _ => {
                if let Some(h) = name.strip_prefix(b"HTTP_") {
                    let header = String::from_utf8_lossy(h)
                        .to_ascii_lowercase()
                        .replace('_', "-");
                    // The body's type and length are CONTENT_TYPE and CONTENT_LENGTH (RFC 3875
                    // 4.1.18); nginx passes HTTP_CONTENT_TYPE as well, which would make the
                    // header appear twice.
                    if ["content-type", "content-length"].contains(&header.as_str()) {
                        continue;
                    }
                    // Header values may legally carry obs-text; keep them lossily rather than
                    // refusing a request for a header nobody here reads.
                    let value = String::from_utf8_lossy(value).into_owned();
                    req.headers.push((header, value));
                }
            }
        }
    }
    if req.method.is_empty() {
        req.method = "GET".into();
    }
    req.path = target.path();
    req.missing = target.missing();
    if req.missing.is_some()
        && let Some(query) = target.missing_query()
    {
        req.query = query;
    }
    Ok(req)
}

/// Serialises a response head the CGI way (`Status:` line, headers, blank line), which is also
/// what a FastCGI responder writes to its `FCGI_STDOUT` stream.
pub fn cgi_head(resp: &Response) -> Vec<u8> {
    let mut out = format!("Status: {} {}\r\n", resp.status, reason(resp.status));
    for (name, value) in &resp.headers {
        // A header value must never be able to start a new header or the body.
        let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        out.push_str(name);
        out.push_str(": ");
        out.push_str(&value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_vars_become_a_request() {
        let vars: Vec<(&[u8], &[u8])> = vec![
            (b"REQUEST_METHOD", b"HEAD"),
            (b"QUERY_STRING", b"src=a.jpg&width=10"),
            (b"PATH_INFO", b"/x"),
            (b"HTTP_IF_NONE_MATCH", b"\"abc\""),
            (b"REQUEST_URI", b"/cache/a/1/2.jpg?x"),
            (b"HTTP_REDIRECT_STATUS", b"404"),
            (b"HTTP_REDIRECT_URL", b"/cache/a/1/2.jpg"),
            (b"HTTP_IMGSERV_404", b"/cache/a/1/2.jpg"),
            (b"CONTENT_TYPE", b"image/png"),
            (b"HTTP_CONTENT_TYPE", b"image/png"),
            (b"HTTP_CONTENT_LENGTH", b"0"),
        ];
        let req = request_from_meta_vars(vars, Body::default()).unwrap();
        assert_eq!(req.method, "HEAD");
        assert_eq!(req.query, "src=a.jpg&width=10");
        assert_eq!(req.path, "/x");
        assert_eq!(req.header("if-none-match"), Some("\"abc\""));
        assert_eq!(
            req.missing, None,
            "a client header is not the server's signal"
        );
        // Once, from CONTENT_TYPE (a signature covering it refuses a header given twice).
        let types: Vec<_> = req
            .headers
            .iter()
            .filter(|(n, _)| n == "content-type")
            .collect();
        assert_eq!(
            types,
            [&("content-type".to_string(), "image/png".to_string())]
        );
        assert_eq!(req.header("content-length"), None);
    }

    #[test]
    fn the_web_servers_signal_makes_a_404_handler_request() {
        let apache: Vec<(&[u8], &[u8])> = vec![
            (b"QUERY_STRING", b""),
            (b"REDIRECT_STATUS", b"404"),
            (b"REDIRECT_URL", b"/cache/a/1/2.jpg"),
            (b"REDIRECT_QUERY_STRING", b"sig=x"),
        ];
        let req = request_from_meta_vars(apache, Body::default()).unwrap();
        assert_eq!(req.missing.as_deref(), Some("/cache/a/1/2.jpg"));
        assert_eq!(
            req.query, "sig=x",
            "the missing URL's query, not the stand-in's"
        );
        let nginx: Vec<(&[u8], &[u8])> = vec![
            (b"QUERY_STRING", b"sig=y"),
            (b"REDIRECT_STATUS", b"200"),
            (b"IMGSERV_404", b"/cache/a/1/2.jpg"),
        ];
        let req = request_from_meta_vars(nginx, Body::default()).unwrap();
        assert_eq!(req.missing.as_deref(), Some("/cache/a/1/2.jpg"));
        assert_eq!(req.query, "sig=y");
        let bad: Vec<(&[u8], &[u8])> = vec![(b"IMGSERV_404", b"/cache/\xff")];
        assert_eq!(
            request_from_meta_vars(bad, Body::default()),
            Err("IMGSERV_404".to_string())
        );
    }

    #[test]
    fn remote_user_comes_from_the_meta_var_only() {
        let req =
            |vars: Vec<(&[u8], &[u8])>| request_from_meta_vars(vars, Body::default()).unwrap();
        assert_eq!(
            req(vec![(b"REMOTE_USER", b"rob")]).remote_user.as_deref(),
            Some("rob")
        );
        assert_eq!(req(vec![(b"REMOTE_USER", b"")]).remote_user, None);
        // A client's `Remote-User` header is a header, nothing more.
        let r = req(vec![(b"HTTP_REMOTE_USER", b"admin")]);
        assert_eq!(
            (r.remote_user.as_deref(), r.header("remote-user")),
            (None, Some("admin"))
        );
        // Not UTF-8: refused, naming it, rather than dropped.
        let vars: Vec<(&[u8], &[u8])> = vec![(b"REMOTE_USER", b"\xff")];
        assert_eq!(
            request_from_meta_vars(vars, Body::default()).unwrap_err(),
            "REMOTE_USER"
        );
    }

    #[test]
    fn https_and_cookies_come_from_the_meta_vars() {
        let vars: Vec<(&[u8], &[u8])> = vec![
            (b"HTTPS", b"on"),
            (b"HTTP_COOKIE", b"a=1; b=\"2\"; broken; a=3"),
        ];
        let req = request_from_meta_vars(vars, Body::default()).unwrap();
        assert!(req.is_https());
        assert_eq!(req.cookie("a").as_deref(), Some("1"));
        assert_eq!(req.cookie("b").as_deref(), Some("2"));
        assert_eq!(req.cookies().len(), 3);
        for https in [&b"off"[..], b"", b"yes"] {
            let vars: Vec<(&[u8], &[u8])> = vec![(b"HTTPS", https)];
            assert!(
                !request_from_meta_vars(vars, Body::default())
                    .unwrap()
                    .is_https()
            );
        }
        // A client's own header says nothing about the connection.
        let vars: Vec<(&[u8], &[u8])> = vec![(b"HTTP_X_FORWARDED_PROTO", b"https")];
        assert!(
            !request_from_meta_vars(vars, Body::default())
                .unwrap()
                .is_https()
        );
    }

    #[test]
    fn non_utf8_meta_var_is_named_not_dropped() {
        let vars: Vec<(&[u8], &[u8])> =
            vec![(b"PATH_INFO", b"/x/\xff"), (b"QUERY_STRING", b"src=a.jpg")];
        assert_eq!(
            request_from_meta_vars(vars, Body::default()),
            Err("PATH_INFO".to_string())
        );
    }

    #[test]
    fn head_keeps_length_drops_body() {
        let req = Request {
            method: "HEAD".into(),
            ..Request::default()
        };
        let resp = Response::text(200, "hello").for_request(&req);
        assert!(resp.body.is_empty());
        assert_eq!(resp.header("content-length"), Some("6"));
    }

    #[test]
    fn cgi_head_strips_newlines_from_values() {
        let resp = Response::new(302).with_header("Location", "/a\r\nSet-Cookie: x");
        let head = String::from_utf8(cgi_head(&resp)).unwrap();
        assert_eq!(
            head,
            "Status: 302 Found\r\nLocation: /aSet-Cookie: x\r\n\r\n"
        );
    }
}
