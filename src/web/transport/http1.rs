//! HTTP/1.1 on one connection, for the standalone server: request heads read within fixed
//! limits (request line, whole head, number of fields), `Content-Length` bodies, keep-alive,
//! and a read timeout on every read, so that a client that stalls or sends an endless head
//! holds neither memory nor a thread for long. It frames requests and responses only; what a
//! request means is the caller's. Deliberately absent: chunked request bodies (refused `411`),
//! pipelining beyond answering requests in order, TLS (production sites put nginx or Apache in
//! front).

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::io::http::{Response, reason};

/// The longest request line, `\r\n` included: a longer one is `414`.
pub const MAX_LINE: usize = 8 << 10;
/// The longest request head (request line and header fields): a longer one is `431`.
pub const MAX_HEAD: usize = 64 << 10;
/// The most header fields in a request: more is `431`.
pub const MAX_FIELDS: usize = 100;

/// A request's line and header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The request target as sent: path and query, not decoded.
    pub target: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor: u8,
    /// Field names lower-cased, values without surrounding blanks, in order.
    pub fields: Vec<(String, String)>,
}

impl Head {
    /// The first field with this (lower-case) name.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the client keeps the connection after this request (RFC 9112 §9.3).
    fn keep_alive(&self) -> bool {
        if self.minor == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }
}

/// Why a request head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The connection failed, ended inside a head, or sent nothing within the read timeout.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The request line is longer than [`MAX_LINE`].
    #[error("request line over {MAX_LINE} bytes")]
    LineTooLong,
    /// The head is longer than [`MAX_HEAD`].
    #[error("request head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// The head has more than [`MAX_FIELDS`] fields.
    #[error("more than {MAX_FIELDS} header fields")]
    TooManyFields,
    /// Not an HTTP/1.x request line or header field, or a body framed in a way we refuse.
    #[error("{0}")]
    Malformed(&'static str),
    /// A `Transfer-Encoding` (a chunked body): only `Content-Length` bodies are read.
    #[error("a body needs Content-Length (Transfer-Encoding is not supported)")]
    LengthRequired,
}

impl HeadError {
    /// What the client is told before the connection is closed; `None` when it cannot be told.
    pub fn response(&self) -> Option<Response> {
        let (status, code) = match self {
            HeadError::Io(_) => return None,
            HeadError::LineTooLong => (414, "uri-too-long"),
            HeadError::HeadTooLarge | HeadError::TooManyFields => {
                (431, "request-header-fields-too-large")
            }
            HeadError::Malformed(_) => (400, "bad-request"),
            HeadError::LengthRequired => (411, "length-required"),
        };
        Some(Response::error(status, code, self))
    }
}

/// Reads a line ending in `\n` of at most `max` bytes; `None` at the end of the stream before
/// its first byte. Returns the line without `\r\n` and the bytes it took.
fn read_line(
    r: &mut impl BufRead,
    max: usize,
    too_long: HeadError,
) -> Result<Option<(Vec<u8>, usize)>, HeadError> {
    let mut line = Vec::new();
    let n = Read::take(&mut *r, max as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if n >= max {
            too_long
        } else {
            io::Error::from(io::ErrorKind::UnexpectedEof).into()
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some((line, n)))
}

/// Reads one request head within the limits; `None` when the stream ends before it starts.
pub fn read_head(r: &mut impl BufRead) -> Result<Option<Head>, HeadError> {
    let mut first = read_line(r, MAX_LINE, HeadError::LineTooLong)?;
    // RFC 9112 §2.2: an empty line before a request line is ignored (once is enough).
    if matches!(&first, Some((line, _)) if line.is_empty()) {
        first = read_line(r, MAX_LINE, HeadError::LineTooLong)?;
    }
    let Some((line, mut used)) = first else {
        return Ok(None);
    };
    let line =
        std::str::from_utf8(&line).map_err(|_| HeadError::Malformed("request line is not text"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed(
            "request line is not METHOD TARGET VERSION",
        ));
    };
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(HeadError::Malformed("not an HTTP/1.0 or HTTP/1.1 request")),
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !token(method) || target.is_empty() {
        return Err(HeadError::Malformed(
            "request line is not METHOD TARGET VERSION",
        ));
    }
    let mut fields = Vec::new();
    loop {
        let budget = MAX_HEAD.saturating_sub(used);
        if budget == 0 {
            return Err(HeadError::HeadTooLarge);
        }
        let Some((line, n)) = read_line(r, budget, HeadError::HeadTooLarge)? else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        };
        used += n;
        if line.is_empty() {
            break;
        }
        if fields.len() == MAX_FIELDS {
            return Err(HeadError::TooManyFields);
        }
        let line = String::from_utf8_lossy(&line);
        let Some((name, value)) = line.split_once(':') else {
            return Err(HeadError::Malformed("header field without a colon"));
        };
        // A folded line (RFC 9112 §5.2) starts with a blank, as does a name followed by one.
        if !token(name) {
            return Err(HeadError::Malformed("header field name is not a token"));
        }
        fields.push((
            name.to_ascii_lowercase(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    Ok(Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        minor,
        fields,
    }))
}

/// The body's length from `Content-Length` (`None`: no body), refusing what could be read
/// two ways (RFC 9112 §6.3): a `Transfer-Encoding`, or `Content-Length`s that disagree.
pub fn body_length(head: &Head) -> Result<Option<u64>, HeadError> {
    if head.field("transfer-encoding").is_some() {
        return Err(HeadError::LengthRequired);
    }
    let mut length = None;
    for (_, value) in head.fields.iter().filter(|(n, _)| n == "content-length") {
        for v in value.split(',') {
            let v = v.trim();
            let n = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| v.parse::<u64>().ok())
                .flatten()
                .ok_or(HeadError::Malformed("Content-Length is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed("Content-Length values disagree"));
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// The request body: its declared bytes, no more. Sends `100 Continue` before its first read
/// when the client asked for it, so a body refused before it is read (too large, a static
/// file) is never sent.
struct BodyReader<'a, R> {
    inner: io::Take<&'a mut R>,
    continue_to: Option<&'a TcpStream>,
}

impl<R: Read> Read for BodyReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inner.limit() == 0 {
            return Ok(0);
        }
        if let Some(mut stream) = self.continue_to.take() {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        self.inner.read(buf)
    }
}

/// What answers a request: its head, its declared body length (`None`: no body) and the body,
/// which it may leave unread (the connection is then closed after the response).
pub type Answer<'a> = dyn Fn(&Head, Option<u64>, &mut dyn Read) -> Response + 'a;

/// Answers requests on `stream` with `answer` until the client closes it or asks to, sends
/// nothing for `read_timeout` (idle between requests or stalled inside one), sends a head
/// beyond the limits (answered `414`/`431`/`400`/`411`, then closed), or leaves part of a
/// body unread by the answer.
pub fn serve_connection(stream: &TcpStream, read_timeout: Duration, answer: &Answer<'_>) {
    if let Err(e) = stream.set_read_timeout(Some(read_timeout)) {
        log::debug!("http: read timeout: {e}");
        return;
    }
    // Responses go out in one flush; do not let Nagle hold back their tail.
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::with_capacity(16 << 10, stream);
    loop {
        let framed = read_head(&mut reader).and_then(|head| match head {
            Some(head) => body_length(&head).map(|len| Some((head, len))),
            None => Ok(None),
        });
        let (head, declared) = match framed {
            Ok(Some(framed)) => framed,
            Ok(None) => return,
            Err(HeadError::Io(e)) => {
                if super::fastcgi::is_timeout(&e) {
                    log::info!("http: closing a connection that sent nothing for {read_timeout:?}");
                } else {
                    log::debug!("http: connection ended: {e}");
                }
                return;
            }
            Err(e) => {
                log::info!("http: refusing a request: {e}");
                if let Some(resp) = e.response() {
                    let _ = write_response(stream, &resp, false, true);
                }
                return linger_close(stream);
            }
        };
        let expects_continue = head.minor == 1 && head.has_token("expect", "100-continue");
        let mut body = BodyReader {
            inner: Read::take(&mut reader, declared.unwrap_or(0)),
            continue_to: expects_continue.then_some(stream),
        };
        let resp = answer(&head, declared, &mut body);
        let unread = body.inner.limit() > 0;
        let keep = head.keep_alive() && !unread;
        let written = write_response(stream, &resp, head.method == "HEAD", !keep);
        if let Err(e) = written {
            log::debug!("http: writing the response: {e}");
            return;
        }
        if !keep {
            return linger_close(stream);
        }
    }
}

/// Writes `resp` with a `Content-Length`: the one the handler set for a `HEAD` (whose body is
/// empty), else the body's. Fields with a line break in them are dropped, never sent.
fn write_response(
    stream: &TcpStream,
    resp: &Response,
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(64 << 10, stream);
    write!(w, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status))?;
    let length = match resp.header("content-length").and_then(|v| v.parse().ok()) {
        Some(n) if resp.body_len() == 0 => n,
        _ => resp.body_len(),
    };
    let framing = ["content-length", "connection", "transfer-encoding"];
    for (name, value) in &resp.headers {
        let unsafe_text = |s: &str| s.contains(['\r', '\n']);
        if framing.iter().any(|f| name.eq_ignore_ascii_case(f))
            || unsafe_text(name)
            || unsafe_text(value)
        {
            continue;
        }
        write!(w, "{name}: {value}\r\n")?;
    }
    let has_body = !matches!(resp.status, 100..=199 | 204 | 304);
    if has_body {
        write!(w, "Content-Length: {length}\r\n")?;
    }
    if close {
        w.write_all(b"Connection: close\r\n")?;
    }
    w.write_all(b"\r\n")?;
    if has_body && !head_only {
        w.write_all(&resp.body)?;
        if let Some(mut reader) = resp.stream.as_ref().and_then(|s| s.take()) {
            io::copy(&mut reader, &mut w)?;
        }
    }
    w.flush()
}

/// Closes our side, then reads what the client still sends (up to a second, 1 MiB), so that
/// unread input does not make the kernel reset the connection and discard our answer.
fn linger_close(stream: &TcpStream) {
    const LINGER_FOR: Duration = Duration::from_secs(1);
    if stream.shutdown(Shutdown::Write).is_err()
        || stream.set_read_timeout(Some(LINGER_FOR)).is_err()
    {
        return;
    }
    let deadline = Instant::now() + LINGER_FOR;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < (1 << 20) && Instant::now() < deadline {
        match (&*stream).read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &[u8]) -> Result<Option<Head>, HeadError> {
        read_head(&mut io::Cursor::new(text))
    }

    #[test]
    fn heads_within_the_limits_are_read() {
        let h = head(b"\r\nGET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A:  1 \r\nx-a: 2\r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), h.minor),
            ("GET", "/a?b=1", 1)
        );
        assert_eq!(h.field("x-a"), Some("1"));
        assert_eq!(h.fields.len(), 3);
        assert!(h.keep_alive());
        let h = head(b"GET / HTTP/1.0\nConnection: Keep-Alive\n\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive());
        assert_eq!(head(b"").unwrap(), None);
        // Exactly at the limits.
        let line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_LINE - 16));
        assert_eq!(line.len(), MAX_LINE);
        assert!(head(format!("{line}\r\n").as_bytes()).unwrap().is_some());
        let fields = "A: b\r\n".repeat(MAX_FIELDS);
        assert!(
            head(format!("GET / HTTP/1.1\r\n{fields}\r\n").as_bytes())
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn heads_beyond_the_limits_or_malformed_are_refused_with_their_status() {
        let status = |text: String| {
            let e = head(text.as_bytes()).unwrap_err();
            e.response().map(|r| r.status)
        };
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE));
        assert_eq!(status(long_line), Some(414));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(status(big), Some(431));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_FIELDS + 1)
        );
        assert_eq!(status(many), Some(431));
        for bad in [
            "GET /\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nNo colon\r\n\r\n",
            "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nA : b\r\n\r\n",
        ] {
            assert_eq!(status(bad.to_string()), Some(400), "{bad:?}");
        }
        // Ending inside a head is the connection's end, not an answer.
        assert_eq!(status("GET / HTTP/1.1\r\nA: b\r\n".into()), None);
    }

    #[test]
    fn bodies_are_framed_by_one_content_length_only() {
        let framing = |fields: &str| {
            let h = head(format!("POST / HTTP/1.1\r\n{fields}\r\n").as_bytes())
                .unwrap()
                .unwrap();
            body_length(&h).map_err(|e| e.response().unwrap().status)
        };
        assert_eq!(framing(""), Ok(None));
        assert_eq!(framing("Content-Length: 12\r\n"), Ok(Some(12)));
        assert_eq!(framing("Content-Length: 12, 12\r\n"), Ok(Some(12)));
        assert_eq!(
            framing("Content-Length: 12\r\nContent-Length: 13\r\n"),
            Err(400)
        );
        assert_eq!(framing("Content-Length: -1\r\n"), Err(400));
        assert_eq!(framing("Content-Length: +1\r\n"), Err(400));
        assert_eq!(framing("Transfer-Encoding: chunked\r\n"), Err(411));
        assert_eq!(
            framing("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"),
            Err(411)
        );
    }
}
