//! FastCGI 1.0 responder: the record codec (headers, name-value pairs, the records we write),
//! a per-connection state machine, and a bounded thread-per-connection server around them.
//!
//! It owns the FastCGI transport only: bytes become a [`Request`] through
//! [`request_from_meta_vars`], and a [`Response`] goes back through [`cgi_head`]. No routing.
//! Only the Responder role is served; connections are not multiplexed (`FCGI_MPXS_CONNS=0`).
//!
//! We wrote this instead of using the `fastcgi` crate (1.0.0) because of three defects seen
//! behind nginx: (1) a parameter with non-UTF-8 bytes (nginx's decoded `PATH_INFO` for
//! `/x/%FF`) silently dropped that parameter and every later one; (2) the peer closing a
//! kept-alive connection panicked the connection thread; (3) an `accept()` error such as
//! `EMFILE` panicked the accept loop. Here params stay bytes until one place turns them into
//! a `400`, every per-connection failure ends only that connection, and accept errors back off.

use std::fs;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::body::{BodyError, Limits, Spool};
use super::cgi::handle_catching;
use super::workers::Workers;
use super::{Body, Handler, Request, Response, cgi_head, request_from_meta_vars};

/// The only protocol version there is (`FCGI_VERSION_1`).
pub const VERSION_1: u8 = 1;
/// Length of a record header (`FCGI_HEADER_LEN`).
pub const HEADER_LEN: usize = 8;
/// The largest record content: the length field is 16 bits.
pub const MAX_CONTENT_LEN: usize = 0xffff;
/// Bound on one request's whole `FCGI_PARAMS` stream, so a client cannot exhaust memory.
/// nginx sends a few KiB; 1 MiB leaves room for very long cookies and URLs.
pub const MAX_PARAMS_LEN: usize = 1 << 20;

/// Record types (FastCGI 1.0 §8).
pub mod kind {
    pub const BEGIN_REQUEST: u8 = 1;
    pub const ABORT_REQUEST: u8 = 2;
    pub const END_REQUEST: u8 = 3;
    pub const PARAMS: u8 = 4;
    pub const STDIN: u8 = 5;
    pub const STDOUT: u8 = 6;
    pub const STDERR: u8 = 7;
    pub const DATA: u8 = 8;
    pub const GET_VALUES: u8 = 9;
    pub const GET_VALUES_RESULT: u8 = 10;
    pub const UNKNOWN_TYPE: u8 = 11;
}

/// `role` of `FCGI_BEGIN_REQUEST`: the only one we serve.
pub const ROLE_RESPONDER: u16 = 1;
/// `flags` bit of `FCGI_BEGIN_REQUEST`: keep the connection open after this request.
pub const KEEP_CONN: u8 = 1;

/// `protocolStatus` of `FCGI_END_REQUEST`.
pub mod status {
    pub const REQUEST_COMPLETE: u8 = 0;
    pub const CANT_MPX_CONN: u8 = 1;
    pub const OVERLOADED: u8 = 2;
    pub const UNKNOWN_ROLE: u8 = 3;
}

/// The web server broke the record protocol; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A record header carries a version other than 1 (or the stream is not FastCGI at all).
    #[error("unsupported FastCGI version {0}")]
    Version(u8),
    /// The input ends inside a name-value pair (or a record, for the slice decoder's callers).
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// An `FCGI_BEGIN_REQUEST` body is not the 8 bytes the specification fixes.
    #[error("FCGI_BEGIN_REQUEST body of {0} bytes, expected 8")]
    BeginRequestLength(usize),
    /// An `FCGI_BEGIN_REQUEST` names the request id that is already in progress.
    #[error("request id {0} begun twice")]
    DuplicateRequestId(u16),
    /// A request's `FCGI_PARAMS` stream grows beyond [`MAX_PARAMS_LEN`].
    #[error("FCGI_PARAMS stream longer than {MAX_PARAMS_LEN} bytes")]
    ParamsTooLarge,
}

/// A record header (§3.3), with the version already checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub request_id: u16,
    pub content_len: u16,
    pub padding_len: u8,
}

impl Header {
    /// Decodes the 8 header bytes.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, ProtocolError> {
        if bytes[0] != VERSION_1 {
            return Err(ProtocolError::Version(bytes[0]));
        }
        Ok(Header {
            kind: bytes[1],
            request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content_len: u16::from_be_bytes([bytes[4], bytes[5]]),
            padding_len: bytes[6],
        })
    }

    /// Encodes the header, version 1, reserved byte 0.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [id_hi, id_lo] = self.request_id.to_be_bytes();
        let [len_hi, len_lo] = self.content_len.to_be_bytes();
        [
            VERSION_1,
            self.kind,
            id_hi,
            id_lo,
            len_hi,
            len_lo,
            self.padding_len,
            0,
        ]
    }

    /// Content plus padding: what follows the header on the wire.
    fn body_len(&self) -> usize {
        usize::from(self.content_len) + usize::from(self.padding_len)
    }
}

/// One decoded record; `content` excludes the padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: u8,
    pub request_id: u16,
    pub content: &'a [u8],
}

/// Decodes the record at the start of `input`. Returns the record and how many bytes it took
/// (padding included), or `None` when `input` does not yet hold a whole record.
pub fn decode_record(input: &[u8]) -> Result<Option<(Record<'_>, usize)>, ProtocolError> {
    let Some((head, rest)) = input.split_first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::decode(head)?;
    if rest.len() < header.body_len() {
        return Ok(None);
    }
    let record = Record {
        kind: header.kind,
        request_id: header.request_id,
        content: &rest[..usize::from(header.content_len)],
    };
    Ok(Some((record, HEADER_LEN + header.body_len())))
}

/// Why reading a connection stopped.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// Reads one record into `buf`. `None` on a clean end of stream between records; a stream
/// that ends inside a record is an `UnexpectedEof` I/O error.
fn read_record<'b, R: Read>(
    r: &mut R,
    buf: &'b mut Vec<u8>,
) -> Result<Option<Record<'b>>, ConnectionError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let header = Header::decode(&head)?;
    buf.clear();
    buf.resize(header.body_len(), 0);
    r.read_exact(buf)?;
    Ok(Some(Record {
        kind: header.kind,
        request_id: header.request_id,
        content: &buf[..usize::from(header.content_len)],
    }))
}

/// One name-value pair (§3.4), as bytes.
pub type Pair = (Vec<u8>, Vec<u8>);
/// A name-value pair borrowed from the params stream.
type PairRef<'a> = (&'a [u8], &'a [u8]);

/// Splits name-value pairs (§3.4) without copying. Lengths are 1 byte (< 128) or 4 bytes with
/// the top bit set.
fn split_params(mut input: &[u8]) -> Result<Vec<PairRef<'_>>, ProtocolError> {
    fn length(input: &mut &[u8]) -> Result<usize, ProtocolError> {
        let bytes = *input;
        match bytes {
            [b, rest @ ..] if b & 0x80 == 0 => {
                *input = rest;
                Ok(usize::from(*b))
            }
            [b0, b1, b2, b3, rest @ ..] => {
                *input = rest;
                let len = u32::from_be_bytes([b0 & 0x7f, *b1, *b2, *b3]);
                // A u32 fits usize on every target we build for.
                usize::try_from(len).map_err(|_| ProtocolError::Truncated("name-value pair"))
            }
            _ => Err(ProtocolError::Truncated("name-value length")),
        }
    }
    fn take<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8], ProtocolError> {
        if input.len() < len {
            return Err(ProtocolError::Truncated("name-value pair"));
        }
        let (head, rest) = input.split_at(len);
        *input = rest;
        Ok(head)
    }
    let mut pairs = Vec::new();
    while !input.is_empty() {
        let name_len = length(&mut input)?;
        let value_len = length(&mut input)?;
        let name = take(&mut input, name_len)?;
        let value = take(&mut input, value_len)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Parses a whole `FCGI_PARAMS` stream (or a `FCGI_GET_VALUES` body) into name-value pairs.
/// Names and values stay bytes: deciding what must be UTF-8 is `request_from_meta_vars`'s job.
pub fn parse_params(input: &[u8]) -> Result<Vec<Pair>, ProtocolError> {
    Ok(split_params(input)?
        .into_iter()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect())
}

/// Encodes name-value pairs (§3.4), choosing 1- or 4-byte lengths.
///
/// # Panics
/// If a name or value is 2^31 bytes or longer, which the format cannot express.
pub fn encode_params<'a, I>(pairs: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    fn length(out: &mut Vec<u8>, len: usize) {
        match u8::try_from(len) {
            Ok(b) if b < 0x80 => out.push(b),
            _ => {
                let len = u32::try_from(len)
                    .ok()
                    .filter(|l| *l < 0x8000_0000)
                    .expect("name-value length below 2^31");
                out.extend_from_slice(&(len | 0x8000_0000).to_be_bytes());
            }
        }
    }
    let mut out = Vec::new();
    for (name, value) in pairs {
        length(&mut out, name.len());
        length(&mut out, value.len());
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
    out
}

/// Writes one record, padded to a multiple of 8 bytes as the specification recommends.
///
/// # Panics
/// If `content` is longer than [`MAX_CONTENT_LEN`]; use [`write_stream`] for longer data.
pub fn write_record<W: Write + ?Sized>(
    w: &mut W,
    kind: u8,
    request_id: u16,
    content: &[u8],
) -> io::Result<()> {
    let content_len = u16::try_from(content.len()).expect("record content of at most 65535 bytes");
    let padding_len = (8 - content.len() % 8) % 8;
    let header = Header {
        kind,
        request_id,
        content_len,
        padding_len: padding_len as u8, // < 8
    };
    w.write_all(&header.encode())?;
    w.write_all(content)?;
    w.write_all(&[0u8; 8][..padding_len])
}

/// Writes `data` as records of at most [`MAX_CONTENT_LEN`] bytes; nothing when `data` is
/// empty (the empty record that ends a stream is the caller's, written once).
pub fn write_stream<W: Write + ?Sized>(
    w: &mut W,
    kind: u8,
    request_id: u16,
    data: &[u8],
) -> io::Result<()> {
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        write_record(w, kind, request_id, chunk)?;
    }
    Ok(())
}

/// One record as bytes.
pub fn encode_record(kind: u8, request_id: u16, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + content.len() + 7);
    // Writing to a Vec cannot fail.
    let _ = write_record(&mut out, kind, request_id, content);
    out
}

/// An `FCGI_END_REQUEST` record.
pub fn encode_end_request(request_id: u16, app_status: u32, protocol_status: u8) -> Vec<u8> {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&app_status.to_be_bytes());
    body[4] = protocol_status;
    encode_record(kind::END_REQUEST, request_id, &body)
}

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

/// How the server is bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Threads that run the handler ([`Workers`]): requests handled at once; the rest wait.
    /// Idle connections hold none.
    pub workers: usize,
    /// Most open connections, one thread each; `accept` waits while this many are open.
    pub max_conns: usize,
    /// Largest request body, and where longer ones are spooled: a `CONTENT_LENGTH` over the
    /// limit is answered `413` before the body is read, a longer `FCGI_STDIN` stream gets `413`
    /// and the handler is not called.
    pub body: Limits,
    /// How long a connection may send nothing once a request or a record has begun (between
    /// its records, inside one, in the body) before it is closed, its thread and connection
    /// slot freed. An idle kept-alive connection, between requests, waits without a deadline:
    /// the web server keeps it for reuse and closes it itself.
    pub read_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
            max_conns: 256,
            body: Limits::default(),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// The request being received on a connection.
#[derive(Debug)]
struct InProgress<'o> {
    id: u16,
    keep_conn: bool,
    params: Vec<u8>,
    params_done: bool,
    /// The body so far, or why it is refused (then the rest of `FCGI_STDIN` is skipped).
    body: Result<Spool<'o>, BodyError>,
    /// Already answered (a `CONTENT_LENGTH` over the limit): skip `FCGI_STDIN` to its end.
    answered: bool,
    stdin_done: bool,
}

/// A request whose params and body have fully arrived.
#[derive(Debug)]
struct Incoming {
    id: u16,
    keep_conn: bool,
    params: Vec<u8>,
    /// The body, or why it was refused (too long, or its spool could not be written).
    body: Result<Body, BodyError>,
}

/// What the connection must do after a record.
#[derive(Debug)]
enum Event {
    /// Read on.
    Nothing,
    /// Write these records, then close the connection if `close`.
    Reply { records: Vec<u8>, close: bool },
    /// Answer this request.
    Request(Incoming),
}

/// The protocol state of one connection, free of I/O: records in, events out.
#[derive(Debug)]
struct Session<'o> {
    opts: &'o Options,
    current: Option<InProgress<'o>>,
}

impl<'o> Session<'o> {
    fn new(opts: &'o Options) -> Self {
        Session {
            opts,
            current: None,
        }
    }

    fn on_record(&mut self, rec: Record<'_>) -> Result<Event, ProtocolError> {
        if rec.request_id == 0 {
            return self.on_management(rec);
        }
        let id = rec.request_id;
        match rec.kind {
            kind::BEGIN_REQUEST => {
                let &[role_hi, role_lo, flags, _, _, _, _, _] = rec.content else {
                    return Err(ProtocolError::BeginRequestLength(rec.content.len()));
                };
                let role = u16::from_be_bytes([role_hi, role_lo]);
                let keep_conn = flags & KEEP_CONN != 0;
                match &self.current {
                    Some(cur) if cur.id == id => Err(ProtocolError::DuplicateRequestId(id)),
                    Some(_) => Ok(Event::Reply {
                        records: encode_end_request(id, 0, status::CANT_MPX_CONN),
                        close: false,
                    }),
                    None if role != ROLE_RESPONDER => Ok(Event::Reply {
                        records: encode_end_request(id, 0, status::UNKNOWN_ROLE),
                        close: !keep_conn,
                    }),
                    None => {
                        self.current = Some(InProgress {
                            id,
                            keep_conn,
                            params: Vec::new(),
                            params_done: false,
                            body: Ok(Spool::new(&self.opts.body)),
                            answered: false,
                            stdin_done: false,
                        });
                        Ok(Event::Nothing)
                    }
                }
            }
            kind::ABORT_REQUEST => match self.current.take_if(|cur| cur.id == id) {
                // Already answered (413 from its CONTENT_LENGTH): no second END_REQUEST.
                Some(cur) if cur.answered => Ok(Event::Reply {
                    records: Vec::new(),
                    close: !cur.keep_conn,
                }),
                Some(cur) => Ok(Event::Reply {
                    records: encode_end_request(id, 0, status::REQUEST_COMPLETE),
                    close: !cur.keep_conn,
                }),
                None => Ok(Event::Nothing),
            },
            kind::PARAMS => {
                let Some(cur) = self
                    .current
                    .as_mut()
                    .filter(|c| c.id == id && !c.params_done)
                else {
                    return Ok(Event::Nothing);
                };
                if rec.content.is_empty() {
                    cur.params_done = true;
                    // The declared length is known before any of the body: refuse it now.
                    let declared = split_params(&cur.params)?
                        .into_iter()
                        .find(|(name, _)| *name == b"CONTENT_LENGTH")
                        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok());
                    if let Ok(spool) = &mut cur.body {
                        spool.declare(declared);
                    }
                    if let Err(e) = super::body::check_declared(&self.opts.body, declared) {
                        let mut records = Vec::new();
                        let resp = e.response().for_request(&Request::default());
                        write_response(&mut records, id, &resp)
                            .expect("writing to memory cannot fail");
                        cur.body = Err(e);
                        cur.answered = true;
                        return Ok(Event::Reply {
                            records,
                            close: false,
                        });
                    }
                } else if cur.params.len() + rec.content.len() > MAX_PARAMS_LEN {
                    return Err(ProtocolError::ParamsTooLarge);
                } else {
                    cur.params.extend_from_slice(rec.content);
                }
                Ok(self.complete())
            }
            kind::STDIN => {
                let Some(cur) = self
                    .current
                    .as_mut()
                    .filter(|c| c.id == id && !c.stdin_done)
                else {
                    return Ok(Event::Nothing);
                };
                if rec.content.is_empty() {
                    cur.stdin_done = true;
                } else if let Ok(spool) = &mut cur.body {
                    // Past the limit, keep reading the stream to stay in step, but not its
                    // bytes.
                    if let Err(e) = spool.push(rec.content) {
                        cur.body = Err(e);
                    }
                }
                if cur.answered && cur.stdin_done {
                    let close = !cur.keep_conn;
                    self.current = None;
                    return Ok(Event::Reply {
                        records: Vec::new(),
                        close,
                    });
                }
                Ok(self.complete())
            }
            // FCGI_DATA (Filter role) and types we do not know, on application ids: ignored.
            _ => Ok(Event::Nothing),
        }
    }

    /// Hands over the current request once both its streams have ended.
    fn complete(&mut self) -> Event {
        match self
            .current
            .take_if(|c| c.params_done && c.stdin_done && !c.answered)
        {
            Some(cur) => Event::Request(Incoming {
                id: cur.id,
                keep_conn: cur.keep_conn,
                params: cur.params,
                body: cur.body.map(Spool::finish),
            }),
            None => Event::Nothing,
        }
    }

    /// Records on request id 0 (§4).
    fn on_management(&self, rec: Record<'_>) -> Result<Event, ProtocolError> {
        let records = if rec.kind == kind::GET_VALUES {
            let conns = self.opts.max_conns.to_string();
            let mut answers: Vec<(&[u8], &[u8])> = Vec::new();
            for (name, _) in split_params(rec.content)? {
                let value: &[u8] = match name {
                    b"FCGI_MAX_CONNS" => conns.as_bytes(),
                    // One request at a time per connection, so as many requests as connections.
                    b"FCGI_MAX_REQS" => conns.as_bytes(),
                    b"FCGI_MPXS_CONNS" => b"0",
                    _ => continue,
                };
                // Once each: a request repeating a name must not grow the answer past
                // one record.
                if !answers.iter().any(|(n, _)| *n == name) {
                    answers.push((name, value));
                }
            }
            encode_record(kind::GET_VALUES_RESULT, 0, &encode_params(answers))
        } else {
            let mut body = [0u8; 8];
            body[0] = rec.kind;
            encode_record(kind::UNKNOWN_TYPE, 0, &body)
        };
        Ok(Event::Reply {
            records,
            close: false,
        })
    }
}

/// A counting semaphore: at most `n` permits out at once.
#[derive(Debug)]
pub(super) struct Semaphore {
    free: Mutex<usize>,
    freed: Condvar,
}

/// Returns its slot to the semaphore when dropped, also while unwinding.
pub(super) struct Permit(Arc<Semaphore>);

impl Semaphore {
    pub(super) fn new(n: usize) -> Arc<Self> {
        Arc::new(Semaphore {
            free: Mutex::new(n),
            freed: Condvar::new(),
        })
    }

    /// Waits for a free slot.
    pub(super) fn acquire(self: &Arc<Self>) -> Permit {
        // Nothing panics while holding the lock, so a poisoned lock still holds a valid count.
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Permit(Arc::clone(self))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

/// Turns a complete request into its response: `413`, `400` naming a non-UTF-8
/// meta-variable, or what `run` answers (a worker running the handler; `500` if it panics).
fn respond(
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

/// Speaks FastCGI on one connection until the peer closes it, a request without
/// `FCGI_KEEP_CONN` has been answered, or something fails — a read that waits longer than
/// `opts.read_timeout` inside a request included. `set_timeout` sets the socket's read timeout.
fn run_connection<S: Read + Write>(
    io: S,
    set_timeout: &dyn Fn(Option<Duration>) -> io::Result<()>,
    run: &dyn Fn(Request) -> Response,
    opts: &Options,
) -> Result<(), ConnectionError> {
    let mut reader = BufReader::with_capacity(HEADER_LEN + MAX_CONTENT_LEN + 256, io);
    let mut session = Session::new(opts);
    let mut buf = Vec::new();
    let mut timed = false;
    loop {
        if session.current.is_none() && reader.buffer().is_empty() {
            // Idle between requests: no deadline until the next record's first byte.
            if timed {
                set_timeout(None)?;
                timed = false;
            }
            match reader.fill_buf() {
                Ok([]) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if !timed {
            set_timeout(Some(opts.read_timeout))?;
            timed = true;
        }
        let Some(record) = read_record(&mut reader, &mut buf)? else {
            return Ok(());
        };
        match session.on_record(record)? {
            Event::Nothing => {}
            Event::Reply { records, close } => {
                let w = reader.get_mut();
                w.write_all(&records)?;
                w.flush()?;
                if close {
                    return Ok(());
                }
            }
            Event::Request(incoming) => {
                let (id, keep_conn) = (incoming.id, incoming.keep_conn);
                let resp = respond(incoming, run)?;
                let mut w =
                    BufWriter::with_capacity(HEADER_LEN + MAX_CONTENT_LEN + 8, reader.get_mut());
                write_response(&mut w, id, &resp)?;
                if !keep_conn {
                    return Ok(());
                }
            }
        }
    }
}

/// Runs one connection over in-memory bytes, as if a web server had sent `input` and then
/// closed its side, and returns what we would have written back. Uses the same decoder and
/// state machine as [`serve`]; for tests and fuzzing.
pub fn replay(input: &[u8], handler: &dyn Handler, opts: &Options) -> Vec<u8> {
    struct Loopback<'a> {
        input: &'a [u8],
        output: Vec<u8>,
    }
    impl Read for Loopback<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Loopback<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut io = Loopback {
        input,
        output: Vec::new(),
    };
    let run = |req| handle_catching(handler, req);
    if let Err(e) = run_connection(&mut io, &|_| Ok(()), &run, opts) {
        log::debug!("fastcgi replay: {e}");
    }
    io.output
}

/// The fuzz target's body, shared with the unit tests: `data` through the params parser, the
/// slice record decoder, and a whole connection with an echoing handler. Must never panic.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    if let Ok(pairs) = parse_params(data) {
        let again = encode_params(pairs.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        assert_eq!(
            parse_params(&again).as_ref(),
            Ok(&pairs),
            "params round trip"
        );
    }
    let mut rest = data;
    while let Ok(Some((record, used))) = decode_record(rest) {
        assert!(record.content.len() + HEADER_LEN <= used && used <= rest.len());
        rest = &rest[used..];
    }
    let echo = |req: Request| Response::text(200, format!("{req:?}"));
    let opts = Options {
        workers: 1,
        max_conns: 1,
        body: Limits {
            max_bytes: 1024,
            ..Limits::default()
        },
        read_timeout: Duration::from_secs(1),
    };
    let out = replay(data, &echo, &opts);
    // Whatever we wrote must itself be well-formed records.
    let mut rest = out.as_slice();
    while !rest.is_empty() {
        let (_, used) = decode_record(rest)
            .ok()
            .flatten()
            .expect("replay output is whole records");
        rest = &rest[used..];
    }
}

/// A listening socket: TCP or unix.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// An accepted connection.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    /// Closes our side, then reads what the peer still sends (up to a second, 1 MiB), so that
    /// unread input does not make the kernel reset the connection and discard our last
    /// records before the web server has read them.
    fn linger_close(self) {
        let (shut, timeout) = match &self {
            Stream::Tcp(s) => (
                s.shutdown(Shutdown::Write),
                s.set_read_timeout(Some(LINGER_FOR)),
            ),
            Stream::Unix(s) => (
                s.shutdown(Shutdown::Write),
                s.set_read_timeout(Some(LINGER_FOR)),
            ),
        };
        if shut.is_err() || timeout.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_FOR;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < (1 << 20) && Instant::now() < deadline {
            match (&self).read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    }
}

/// How long [`Stream::linger_close`] waits for the peer to close its side.
const LINGER_FOR: Duration = Duration::from_secs(1);

impl Listener {
    /// `"127.0.0.1:9000"` or `"[::1]:9000"` → TCP; anything with a `/` (`"/run/imgserv.sock"`,
    /// `"./x.sock"`) → a unix socket. A socket file left behind by a dead server is replaced;
    /// a live one (something accepts on it) or any other kind of file is left alone and the
    /// bind fails.
    pub fn bind(addr: &str) -> io::Result<Listener> {
        let with_addr = |e: io::Error| io::Error::new(e.kind(), format!("{addr}: {e}"));
        if !addr.contains('/') {
            return TcpListener::bind(addr)
                .map(Listener::Tcp)
                .map_err(with_addr);
        }
        let path = Path::new(addr);
        if let Ok(meta) = fs::symlink_metadata(path)
            && meta.file_type().is_socket()
        {
            if UnixStream::connect(path).is_ok() {
                return Err(with_addr(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another server is listening on this socket",
                )));
            }
            fs::remove_file(path).map_err(with_addr)?;
        }
        UnixListener::bind(path)
            .map(Listener::Unix)
            .map_err(with_addr)
    }

    /// The listening socket a web server or `spawn-fcgi` passes as fd 0 (FastCGI §2.2), or
    /// `None` when fd 0 is anything else — a pipe, file, tty, `/dev/null`, a connected socket
    /// or closed — which means we run as plain CGI.
    pub fn from_stdin() -> io::Result<Option<Listener>> {
        // EBADF: fd 0 is closed. 9 on Linux, the BSDs and macOS alike.
        const EBADF: i32 = 9;
        match io::stdin().as_fd().try_clone_to_owned() {
            Ok(fd) => listener_from_fd(fd),
            Err(e) if e.raw_os_error() == Some(EBADF) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                // Responses go out in one flush; do not let Nagle hold back its tail.
                if let Err(e) = s.set_nodelay(true) {
                    log::debug!("fastcgi: TCP_NODELAY: {e}");
                }
                Ok(Stream::Tcp(s))
            }
            Listener::Unix(l) => Ok(Stream::Unix(l.accept()?.0)),
        }
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(on),
            Listener::Unix(l) => l.set_nonblocking(on),
        }
    }
}

/// Classifies a descriptor without unsafe code: `getpeername` failing with `ENOTCONN` means an
/// unconnected (listening) socket; whether `getsockname` yields a unix or an inet address then
/// tells the two kinds apart.
fn listener_from_fd(fd: OwnedFd) -> io::Result<Option<Listener>> {
    let probe = UnixStream::from(fd);
    match probe.peer_addr() {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
        // Not a socket, or a connected one (some servers run CGI over a socketpair).
        _ => return Ok(None),
    }
    let unix = UnixListener::from(OwnedFd::from(probe));
    if unix.local_addr().is_ok() {
        return Ok(Some(Listener::Unix(unix)));
    }
    let tcp = TcpListener::from(OwnedFd::from(unix));
    match tcp.local_addr() {
        Ok(_) => Ok(Some(Listener::Tcp(tcp))),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd 0 is an unconnected socket but neither unix nor TCP: {e}"),
        )),
    }
}

/// A socket read timeout: `EAGAIN` (`WouldBlock`) on Linux, `TimedOut` elsewhere.
pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Waits after failed accepts: 10 ms doubling to 1 s, back to 10 ms after a success.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    const MIN: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Backoff(Self::MIN)
    }

    fn failed(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (wait * 2).min(Self::MAX);
        wait
    }

    fn reset(&mut self) {
        self.0 = Self::MIN;
    }
}

/// Serves FastCGI on `listener` forever: one thread per connection reads requests and writes
/// responses, and `opts.workers` threads ([`Workers`]) run the handler.
///
/// Returns only on a setup error (zero `workers` or `max_conns`, a listener that cannot be made
/// blocking); a failing connection or `accept()` is logged and the loop goes on.
pub fn serve(listener: Listener, handler: Arc<dyn Handler>, opts: &Options) -> io::Result<()> {
    if opts.workers == 0 || opts.max_conns == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "fastcgi: workers and max_conns must be at least 1",
        ));
    }
    // A socket inherited on fd 0 may be non-blocking; accept() would then spin.
    listener.set_nonblocking(false)?;
    let conns = Semaphore::new(opts.max_conns);
    let workers = Arc::new(Workers::start(opts.workers, handler)?);
    let mut backoff = Backoff::new();
    loop {
        let permit = conns.acquire();
        let stream = match listener.accept() {
            Ok(stream) => stream,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let wait = backoff.failed();
                log::warn!("fastcgi: accept: {e}; retrying in {wait:?}");
                drop(permit);
                thread::sleep(wait);
                continue;
            }
        };
        backoff.reset();
        let (workers, opts) = (Arc::clone(&workers), opts.clone());
        let spawned = thread::Builder::new()
            .name("fastcgi-conn".into())
            .spawn(move || {
                let _permit = permit;
                let set_timeout = |t| stream.set_read_timeout(t);
                let run = |req| workers.handle(req);
                match run_connection(&stream, &set_timeout, &run, &opts) {
                    Ok(()) => log::debug!("fastcgi: connection done"),
                    Err(ConnectionError::Io(e)) if is_timeout(&e) => log::info!(
                        "fastcgi: closing a connection that sent nothing for {:?} mid-request",
                        opts.read_timeout
                    ),
                    Err(ConnectionError::Io(e)) => log::debug!("fastcgi: connection ended: {e}"),
                    Err(ConnectionError::Protocol(e)) => log::warn!("fastcgi: closing: {e}"),
                }
                stream.linger_close();
            });
        if let Err(e) = spawned {
            let wait = backoff.failed();
            log::warn!("fastcgi: cannot start a connection thread: {e}; retrying in {wait:?}");
            thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // ---- a tiny FastCGI client, written from the specification, not from the code above ----

    /// A record as a web server might send it: padded with 3 garbage bytes, which is legal
    /// and not a multiple of 8, so the server must honour `paddingLength`.
    fn rec(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
        let len = u16::try_from(content.len()).unwrap().to_be_bytes();
        let id = id.to_be_bytes();
        let mut out = vec![1, kind, id[0], id[1], len[0], len[1], 3, 0];
        out.extend_from_slice(content);
        out.extend_from_slice(&[0xaa; 3]);
        out
    }

    fn begin(id: u16, role: u16, keep_conn: bool) -> Vec<u8> {
        let role = role.to_be_bytes();
        rec(
            kind::BEGIN_REQUEST,
            id,
            &[role[0], role[1], u8::from(keep_conn), 0, 0, 0, 0, 0],
        )
    }

    /// A stream of `kind` records carrying `data` in pieces of `piece` bytes, then its end.
    fn stream(kind: u8, id: u16, data: &[u8], piece: usize) -> Vec<u8> {
        let mut out: Vec<u8> = data.chunks(piece).flat_map(|c| rec(kind, id, c)).collect();
        out.extend(rec(kind, id, &[]));
        out
    }

    fn nv(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in pairs {
            for len in [name.len(), value.len()] {
                if len < 128 {
                    out.push(len as u8);
                } else {
                    out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
                }
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(value);
        }
        out
    }

    /// A whole request, params split into 7-byte records, body into 1000-byte ones.
    fn request(id: u16, keep_conn: bool, params: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
        let mut out = begin(id, ROLE_RESPONDER, keep_conn);
        out.extend(stream(kind::PARAMS, id, &nv(params), 7));
        out.extend(stream(kind::STDIN, id, body, 1000));
        out
    }

    fn get_request(id: u16, keep_conn: bool, path: &[u8]) -> Vec<u8> {
        let params: &[(&str, &[u8])] = &[
            ("REQUEST_METHOD", b"GET"),
            ("PATH_INFO", path),
            ("QUERY_STRING", b"w=1"),
            ("REQUEST_URI", b"/img/x?w=1"),
        ];
        request(id, keep_conn, params, b"")
    }

    fn read_rec(r: &mut impl Read) -> io::Result<(u8, u16, Vec<u8>)> {
        let mut h = [0u8; 8];
        r.read_exact(&mut h)?;
        assert_eq!(h[0], 1, "version");
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let mut content = vec![0; len + usize::from(h[6])];
        r.read_exact(&mut content)?;
        content.truncate(len);
        Ok((h[1], u16::from_be_bytes([h[2], h[3]]), content))
    }

    /// What came back for one request.
    #[derive(Debug)]
    struct Reply {
        status: u16,
        head: String,
        body: Vec<u8>,
        app_status: u32,
        protocol_status: u8,
    }

    fn read_reply(r: &mut impl Read, id: u16) -> Reply {
        let mut stdout = Vec::new();
        let mut stdout_ended = false;
        loop {
            let (kind, rid, content) = read_rec(r).expect("a record");
            assert_eq!(rid, id, "request id");
            match kind {
                kind::STDOUT if content.is_empty() => stdout_ended = true,
                kind::STDOUT => {
                    assert!(!stdout_ended, "STDOUT after its end");
                    stdout.extend(content);
                }
                kind::END_REQUEST => {
                    assert_eq!(content.len(), 8);
                    assert!(stdout_ended || stdout.is_empty(), "STDOUT not ended");
                    let app_status = u32::from_be_bytes(content[..4].try_into().unwrap());
                    let split = stdout.windows(4).position(|w| w == b"\r\n\r\n");
                    let (head, body) = match split {
                        Some(i) => (&stdout[..i], stdout[i + 4..].to_vec()),
                        None => (&stdout[..], Vec::new()),
                    };
                    let head = String::from_utf8(head.to_vec()).unwrap();
                    let status = head
                        .strip_prefix("Status: ")
                        .map_or(0, |s| s[..3].parse().unwrap());
                    return Reply {
                        status,
                        head,
                        body,
                        app_status,
                        protocol_status: content[4],
                    };
                }
                other => panic!("unexpected record type {other}"),
            }
        }
    }

    // ---- a real server ----

    /// `/echo` answers the body; `/big/N` N patterned bytes; `/panic` panics; anything else
    /// answers "METHOD path?query".
    fn app(req: Request) -> Response {
        if req.path == "/panic" {
            panic!("test handler panic");
        }
        if req.path == "/echo" {
            let mut body = Vec::new();
            req.body.reader().read_to_end(&mut body).unwrap();
            return Response::new(200).with_body(body);
        }
        if let Some(n) = req.path.strip_prefix("/big/") {
            return Response::new(200).with_body(pattern(n.parse().unwrap()));
        }
        Response::text(200, format!("{} {}?{}", req.method, req.path, req.query))
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    fn start_with(handler: Arc<dyn Handler>, opts: Options) -> SocketAddr {
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let Listener::Tcp(tcp) = &listener else {
            panic!("not TCP")
        };
        let addr = tcp.local_addr().unwrap();
        thread::spawn(move || serve(listener, handler, &opts));
        addr
    }

    fn start(opts: Options) -> SocketAddr {
        start_with(Arc::new(app), opts)
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        // A bug should fail the test, not hang it.
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// One GET on a fresh connection without keep-alive.
    fn get(addr: SocketAddr, path: &[u8]) -> Reply {
        let mut s = connect(addr);
        s.write_all(&get_request(1, false, path)).unwrap();
        read_reply(&mut s, 1)
    }

    fn assert_closed(s: &mut impl Read) {
        let mut byte = [0u8; 1];
        assert_eq!(s.read(&mut byte).unwrap(), 0, "connection still open");
    }

    #[test]
    fn get_with_params_split_across_records() {
        let addr = start(Options::default());
        let reply = get(addr, b"/img/x");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"GET /img/x?w=1\n");
        assert!(reply.head.contains("Content-Type: text/plain"));
        assert!(reply.head.contains("Content-Length: 15"));
        assert_eq!((reply.app_status, reply.protocol_status), (0, 0));
    }

    #[test]
    fn two_requests_on_one_kept_alive_connection_then_close() {
        let addr = start(Options::default());
        let mut s = connect(addr);
        s.write_all(&get_request(1, true, b"/a")).unwrap();
        assert_eq!(read_reply(&mut s, 1).body, b"GET /a?w=1\n");
        s.write_all(&get_request(2, true, b"/b")).unwrap();
        assert_eq!(read_reply(&mut s, 2).body, b"GET /b?w=1\n");
        // The last one without FCGI_KEEP_CONN: the server closes after answering.
        s.write_all(&get_request(1, false, b"/c")).unwrap();
        assert_eq!(read_reply(&mut s, 1).body, b"GET /c?w=1\n");
        assert_closed(&mut s);
    }

    #[test]
    fn without_keep_conn_the_server_closes() {
        let addr = start(Options::default());
        let mut s = connect(addr);
        s.write_all(&get_request(7, false, b"/a")).unwrap();
        assert_eq!(read_reply(&mut s, 7).status, 200);
        assert_closed(&mut s);
    }

    #[test]
    fn post_body_over_several_stdin_records_reaches_the_handler_intact() {
        let addr = start(Options::default());
        let body = pattern(200_001);
        let params: &[(&str, &[u8])] = &[
            ("REQUEST_METHOD", b"POST"),
            ("PATH_INFO", b"/echo"),
            ("CONTENT_LENGTH", b"200001"),
        ];
        let mut s = connect(addr);
        // Written from another thread: the server may answer before we finish writing.
        let req = request(3, false, params, &body);
        let mut w = s.try_clone().unwrap();
        let writer = thread::spawn(move || w.write_all(&req));
        let reply = read_reply(&mut s, 3);
        writer.join().unwrap().unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply.body == body, "body differs");
    }

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
    fn peer_closing_mid_request_or_mid_response_ends_only_that_connection() {
        // One connection at a time: the next one is served only if the previous thread ended.
        let addr = start(Options {
            workers: 1,
            max_conns: 1,
            ..Options::default()
        });
        let full = get_request(1, true, b"/a");
        let cuts: Vec<&[u8]> = vec![
            &[],              // connect, close
            &full[..3],       // inside the first header
            &full[..16 + 11], // inside the BEGIN_REQUEST record
            &full[..40],      // inside the params
            &full,            // a whole request, the reply never read
        ];
        for cut in cuts {
            let mut s = connect(addr);
            s.write_all(cut).unwrap();
            drop(s);
            assert_eq!(
                get(addr, b"/next").status,
                200,
                "after cut at {}",
                cut.len()
            );
        }
        // Mid-response: far more than the socket buffers hold, read a little, hang up.
        let mut s = connect(addr);
        s.write_all(&get_request(1, true, b"/big/16000000"))
            .unwrap();
        let mut some = [0u8; 1000];
        s.read_exact(&mut some).unwrap();
        drop(s);
        assert_eq!(get(addr, b"/next").status, 200);
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

    #[test]
    fn get_values_and_unknown_management_types() {
        let addr = start(Options {
            max_conns: 9,
            ..Options::default()
        });
        let mut s = connect(addr);
        let names: &[(&str, &[u8])] = &[
            ("FCGI_MAX_CONNS", b""),
            ("FCGI_NO_SUCH", b""),
            ("FCGI_MAX_REQS", b""),
            ("FCGI_MPXS_CONNS", b""),
        ];
        s.write_all(&rec(kind::GET_VALUES, 0, &nv(names))).unwrap();
        let (kind, id, content) = read_rec(&mut s).unwrap();
        assert_eq!((kind, id), (kind::GET_VALUES_RESULT, 0));
        let got = parse_params(&content).unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = [
            ("FCGI_MAX_CONNS", "9"),
            ("FCGI_MAX_REQS", "9"),
            ("FCGI_MPXS_CONNS", "0"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(got, want);

        s.write_all(&rec(200, 0, b"?")).unwrap();
        let (kind, id, content) = read_rec(&mut s).unwrap();
        assert_eq!((kind, id), (kind::UNKNOWN_TYPE, 0));
        assert_eq!(content, [200, 0, 0, 0, 0, 0, 0, 0]);

        s.write_all(&get_request(1, false, b"/a")).unwrap();
        assert_eq!(read_reply(&mut s, 1).status, 200);
    }

    #[test]
    fn get_values_repeating_a_name_is_answered_once() {
        let names: Vec<(&str, &[u8])> = vec![("FCGI_MAX_CONNS", b""); 4000];
        let input = rec(kind::GET_VALUES, 0, &nv(&names));
        let out = replay(&input, &app, &Options::default());
        let (kind, _, content) = read_rec(&mut &out[..]).unwrap();
        assert_eq!(kind, kind::GET_VALUES_RESULT);
        assert_eq!(parse_params(&content).unwrap().len(), 1);
    }

    #[test]
    fn unknown_role_is_refused_and_the_connection_goes_on() {
        let addr = start(Options::default());
        let mut s = connect(addr);
        let mut authorizer = begin(1, 2, true);
        authorizer.extend(stream(kind::PARAMS, 1, &nv(&[("A", b"b")]), 100));
        authorizer.extend(stream(kind::STDIN, 1, b"", 100));
        s.write_all(&authorizer).unwrap();
        let reply = read_reply(&mut s, 1);
        assert_eq!(reply.protocol_status, status::UNKNOWN_ROLE);
        assert!(reply.body.is_empty() && reply.head.is_empty());
        s.write_all(&get_request(2, false, b"/a")).unwrap();
        assert_eq!(read_reply(&mut s, 2).status, 200);
    }

    #[test]
    fn a_second_request_id_is_refused_with_cant_mpx_conn() {
        let addr = start(Options::default());
        let mut s = connect(addr);
        let full = get_request(1, false, b"/one");
        // BEGIN_REQUEST (19 bytes with our padding) and two 7-byte PARAMS records (18 each).
        let (first, rest) = full.split_at(19 + 2 * 18);
        s.write_all(first).unwrap();
        s.write_all(&begin(2, ROLE_RESPONDER, true)).unwrap();
        let refused = read_reply(&mut s, 2);
        assert_eq!(refused.protocol_status, status::CANT_MPX_CONN);
        s.write_all(&stream(kind::PARAMS, 2, &nv(&[("A", b"b")]), 100))
            .unwrap();
        s.write_all(rest).unwrap();
        assert_eq!(read_reply(&mut s, 1).body, b"GET /one?w=1\n");
    }

    #[test]
    fn abort_request_ends_it_without_calling_the_handler() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let addr = start_with(
            Arc::new(move |req: Request| {
                counted.fetch_add(1, Ordering::SeqCst);
                app(req)
            }),
            Options::default(),
        );
        let mut s = connect(addr);
        s.write_all(&begin(5, ROLE_RESPONDER, true)).unwrap();
        s.write_all(&rec(kind::PARAMS, 5, &nv(&[("PATH_INFO", b"/a")])))
            .unwrap();
        s.write_all(&rec(kind::ABORT_REQUEST, 5, b"")).unwrap();
        let reply = read_reply(&mut s, 5);
        assert_eq!((reply.protocol_status, reply.head.as_str()), (0, ""));
        s.write_all(&get_request(6, false, b"/b")).unwrap();
        assert_eq!(read_reply(&mut s, 6).status, 200);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn body_over_max_body_is_413_without_calling_the_handler() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let addr = start_with(
            Arc::new(move |req: Request| {
                counted.fetch_add(1, Ordering::SeqCst);
                app(req)
            }),
            Options {
                body: Limits {
                    max_bytes: 2500,
                    ..Limits::default()
                },
                ..Options::default()
            },
        );
        let params: &[(&str, &[u8])] = &[("REQUEST_METHOD", b"POST"), ("PATH_INFO", b"/echo")];
        let mut s = connect(addr);
        s.write_all(&request(1, true, params, &[7; 2501])).unwrap();
        assert_eq!(read_reply(&mut s, 1).status, 413);
        // Exactly the limit is fine, on the same connection.
        s.write_all(&request(2, false, params, &[7; 2500])).unwrap();
        assert_eq!(read_reply(&mut s, 2).body, [7; 2500]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn declared_length_over_max_body_is_413_before_the_body_arrives() {
        let addr = start(Options {
            body: Limits {
                max_bytes: 2500,
                ..Limits::default()
            },
            ..Options::default()
        });
        let params: &[(&str, &[u8])] = &[
            ("REQUEST_METHOD", b"POST"),
            ("PATH_INFO", b"/echo"),
            ("CONTENT_LENGTH", b"2501"),
        ];
        let mut s = connect(addr);
        let mut head = begin(1, ROLE_RESPONDER, true);
        head.extend(stream(kind::PARAMS, 1, &nv(params), 7));
        s.write_all(&head).unwrap();
        // No FCGI_STDIN yet: the answer comes from CONTENT_LENGTH alone.
        assert_eq!(read_reply(&mut s, 1).status, 413);
        // The body sent anyway is skipped, and the connection stays in step.
        s.write_all(&stream(kind::STDIN, 1, &[7; 2501], 1000))
            .unwrap();
        s.write_all(&request(1, true, &params[..2], &[8; 2500]))
            .unwrap();
        assert_eq!(read_reply(&mut s, 1).body, [8; 2500]);
        // More than CONTENT_LENGTH said is refused too.
        let mut longer = begin(1, ROLE_RESPONDER, true);
        longer.extend(stream(
            kind::PARAMS,
            1,
            &nv(&[("CONTENT_LENGTH", b"10")]),
            7,
        ));
        longer.extend(stream(kind::STDIN, 1, &[1; 11], 1000));
        s.write_all(&longer).unwrap();
        assert_eq!(read_reply(&mut s, 1).status, 413);
        // Aborted instead of sent: no second END_REQUEST for the answered request.
        s.write_all(&head).unwrap();
        assert_eq!(read_reply(&mut s, 1).status, 413);
        s.write_all(&rec(kind::ABORT_REQUEST, 1, &[])).unwrap();
        s.write_all(&request(1, false, &params[..2], &[9; 10]))
            .unwrap();
        assert_eq!(read_reply(&mut s, 1).body, [9; 10]);
    }

    #[test]
    fn idle_kept_alive_connections_hold_no_worker() {
        let addr = start(Options {
            workers: 1,
            ..Options::default()
        });
        let mut idle = connect(addr);
        idle.write_all(&get_request(1, true, b"/a")).unwrap();
        assert_eq!(read_reply(&mut idle, 1).status, 200);
        assert_eq!(get(addr, b"/b").status, 200);
        idle.write_all(&get_request(2, false, b"/c")).unwrap();
        assert_eq!(read_reply(&mut idle, 2).status, 200);
    }

    /// A POST of 10 bytes whose params and body are each in one record.
    fn post_request() -> Vec<u8> {
        let params: &[(&str, &[u8])] = &[
            ("REQUEST_METHOD", b"POST"),
            ("PATH_INFO", b"/echo"),
            ("CONTENT_LENGTH", b"10"),
        ];
        let mut out = begin(1, ROLE_RESPONDER, true);
        out.extend(stream(kind::PARAMS, 1, &nv(params), 1000));
        out.extend(stream(kind::STDIN, 1, b"0123456789", 5));
        out
    }

    #[test]
    fn a_client_stalled_inside_a_request_is_closed_after_read_timeout_holding_no_worker() {
        let addr = start(Options {
            workers: 1,
            read_timeout: Duration::from_secs(1),
            ..Options::default()
        });
        let full = post_request();
        let begin_len = begin(1, ROLE_RESPONDER, true).len();
        let cuts = [
            ("mid-header of the first record", 3),
            ("mid-record", begin_len + HEADER_LEN + 4),
            ("between records", begin_len),
            ("mid-body", full.len() - HEADER_LEN - 4),
        ];
        for (what, cut) in cuts {
            let mut stalled = connect(addr);
            stalled.write_all(&full[..cut]).unwrap();
            // Meanwhile another client is served by the only worker.
            assert_eq!(get(addr, b"/b").status, 200, "{what}");
            let t = Instant::now();
            assert_closed(&mut stalled);
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{what}: {:?}",
                t.elapsed()
            );
        }
        // The whole request on a kept-alive connection, then idle past the timeout: an idle
        // connection between requests is the web server's to close, not ours.
        let mut kept = connect(addr);
        kept.write_all(&full).unwrap();
        assert_eq!(read_reply(&mut kept, 1).body, b"0123456789");
        thread::sleep(Duration::from_millis(1500));
        kept.write_all(&get_request(2, false, b"/c")).unwrap();
        assert_eq!(read_reply(&mut kept, 2).status, 200);
    }

    #[test]
    fn a_stalled_client_frees_the_last_connection_slot_after_read_timeout() {
        let addr = start(Options {
            max_conns: 1,
            read_timeout: Duration::from_secs(1),
            ..Options::default()
        });
        let full = post_request();
        let mut stalled = connect(addr);
        stalled.write_all(&full[..full.len() - 3]).unwrap();
        thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        // Accepted by the kernel, served once the stalled connection is closed.
        assert_eq!(get(addr, b"/b").status, 200);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_closed(&mut stalled);
    }

    #[test]
    fn max_conns_bounds_open_connections() {
        let addr = start(Options {
            max_conns: 1,
            ..Options::default()
        });
        let mut first = connect(addr);
        first.write_all(&get_request(1, true, b"/a")).unwrap();
        assert_eq!(read_reply(&mut first, 1).status, 200);
        // The kernel completes the handshake, but nobody serves it while `first` is open.
        let mut second = connect(addr);
        second.write_all(&get_request(1, false, b"/b")).unwrap();
        second
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut byte = [0u8; 1];
        let waited = second.read(&mut byte).unwrap_err();
        assert!(matches!(
            waited.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        drop(first);
        second
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        assert_eq!(read_reply(&mut second, 1).status, 200);
    }

    #[test]
    fn unix_socket_serves_requests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imgserv.sock");
        let listener = Listener::bind(path.to_str().unwrap()).unwrap();
        assert!(matches!(listener, Listener::Unix(_)));
        thread::spawn(move || serve(listener, Arc::new(app), &Options::default()));
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&get_request(1, true, b"/u")).unwrap();
        assert_eq!(read_reply(&mut s, 1).body, b"GET /u?w=1\n");
        s.write_all(&get_request(2, false, b"/big/70000")).unwrap();
        assert_eq!(read_reply(&mut s, 2).body, pattern(70_000));
        assert_closed(&mut s);
    }

    #[test]
    fn bind_replaces_a_stale_socket_but_never_a_file_or_a_live_socket() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-socket");
        fs::write(&file, "keep me").unwrap();
        assert!(Listener::bind(file.to_str().unwrap()).is_err());
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");

        let sock = dir.path().join("s.sock");
        let sock = sock.to_str().unwrap();
        drop(UnixListener::bind(sock).unwrap()); // leaves the socket file behind
        let live = Listener::bind(sock).unwrap();
        let err = Listener::bind(sock).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(live);

        let relative = Listener::bind("./target/../target/fastcgi-test.sock");
        assert!(matches!(relative, Ok(Listener::Unix(_))));
        let _ = fs::remove_file("./target/fastcgi-test.sock");
    }

    #[test]
    fn descriptors_are_classified_like_fd_0() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let got = listener_from_fd(OwnedFd::from(tcp)).unwrap();
        assert!(matches!(got, Some(Listener::Tcp(_))));

        let dir = tempfile::tempdir().unwrap();
        let unix = UnixListener::bind(dir.path().join("s")).unwrap();
        let got = listener_from_fd(OwnedFd::from(unix)).unwrap();
        assert!(matches!(got, Some(Listener::Unix(_))));

        let (a, _b) = UnixStream::pair().unwrap();
        assert!(listener_from_fd(OwnedFd::from(a)).unwrap().is_none());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(listener_from_fd(OwnedFd::from(conn)).unwrap().is_none());
        let (reader, _writer) = io::pipe().unwrap();
        assert!(listener_from_fd(OwnedFd::from(reader)).unwrap().is_none());
        let null = fs::File::open("/dev/null").unwrap();
        assert!(listener_from_fd(OwnedFd::from(null)).unwrap().is_none());
    }

    /// Run again as a child by `fd_0_listener_is_served_like_spawn_fcgi`; a no-op otherwise.
    #[test]
    fn child_serving_fd_0() {
        let Ok(want) = std::env::var("IMGSERV_TEST_FD0") else {
            return;
        };
        match (want.as_str(), Listener::from_stdin().unwrap()) {
            ("none", None) => {}
            ("tcp", Some(l @ Listener::Tcp(_))) | ("unix", Some(l @ Listener::Unix(_))) => {
                serve(l, Arc::new(app), &Options::default()).unwrap();
            }
            (want, got) => panic!("fd 0: wanted {want}, got {got:?}"),
        }
    }

    /// Kills the child when the test ends, passing or not.
    struct Child(std::process::Child);

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn fd_0_listener_is_served_like_spawn_fcgi() {
        use std::process::{Command, Stdio};
        let spawn = |stdin: Stdio, want: &str| {
            let child = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "http::fastcgi::tests::child_serving_fd_0"])
                .env("IMGSERV_TEST_FD0", want)
                .stdin(stdin)
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            Child(child)
        };
        let mut cgi = spawn(Stdio::null(), "none");
        assert!(cgi.0.wait().unwrap().success(), "/dev/null is not FastCGI");

        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let _server = spawn(Stdio::from(OwnedFd::from(tcp)), "tcp");
        assert_eq!(get(addr, b"/spawned").body, b"GET /spawned?w=1\n");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fcgi.sock");
        let unix = UnixListener::bind(&path).unwrap();
        let _server = spawn(Stdio::from(OwnedFd::from(unix)), "unix");
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&get_request(1, false, b"/u")).unwrap();
        assert_eq!(read_reply(&mut s, 1).status, 200);
    }

    #[test]
    fn serve_refuses_zero_limits() {
        for opts in [
            Options {
                workers: 0,
                ..Options::default()
            },
            Options {
                max_conns: 0,
                ..Options::default()
            },
        ] {
            let listener = Listener::bind("127.0.0.1:0").unwrap();
            let err = serve(listener, Arc::new(app), &opts).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..9).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.failed(), Duration::from_millis(10));
    }

    // ---- the pure codec ----

    #[test]
    fn params_with_one_and_four_byte_lengths() {
        let long = vec![b'v'; 300];
        let cases: Vec<(Vec<u8>, Vec<PairRef>)> = vec![
            (vec![], vec![]),
            (b"\x01\x02AVV".to_vec(), vec![(b"A", b"VV")]),
            (b"\x00\x00".to_vec(), vec![(b"", b"")]),
            // A 4-byte length may also encode a short one.
            (b"\x80\x00\x00\x01\x01AB".to_vec(), vec![(b"A", b"B")]),
            (
                [&b"\x04\x80\x00\x01\x2cPATH"[..], &long].concat(),
                vec![(b"PATH", &long)],
            ),
            (
                b"\x01\x00X\x01\x01YZ".to_vec(),
                vec![(b"X", b""), (b"Y", b"Z")],
            ),
            (b"\x01\x01\xff\xfe".to_vec(), vec![(b"\xff", b"\xfe")]),
        ];
        for (input, want) in cases {
            let want: Vec<(Vec<u8>, Vec<u8>)> =
                want.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
            assert_eq!(parse_params(&input), Ok(want.clone()), "{input:?}");
            let again = encode_params(want.iter().map(|(n, v)| (&n[..], &v[..])));
            assert_eq!(parse_params(&again), Ok(want));
        }
        assert_eq!(
            encode_params([(&b"A"[..], &long[..])])[..5],
            [1, 0x80, 0, 1, 0x2c]
        );
    }

    #[test]
    fn truncated_params_are_an_error() {
        let cases: &[&[u8]] = &[
            b"\x01",
            b"\x01\x02AV",
            b"\x80\x00\x00",
            b"\x01\x80\x00",
            b"\x80\x00\x00\x05\x00abcd",
            b"\xff\xff\xff\xff\x00",
            b"\x01\x01AB\x05",
        ];
        for input in cases {
            assert!(
                matches!(parse_params(input), Err(ProtocolError::Truncated(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn records_decode_with_padding_and_wait_for_whole_records() {
        let bytes = [rec(kind::STDIN, 258, b"hello"), rec(kind::STDIN, 258, b"")].concat();
        let (first, used) = decode_record(&bytes).unwrap().unwrap();
        assert_eq!(
            first,
            Record {
                kind: kind::STDIN,
                request_id: 258,
                content: b"hello"
            }
        );
        assert_eq!(used, 8 + 5 + 3);
        let (second, used2) = decode_record(&bytes[used..]).unwrap().unwrap();
        assert_eq!((second.content, used + used2), (&b""[..], bytes.len()));
        for cut in [0, 7, 8, 12, 15] {
            assert_eq!(decode_record(&bytes[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(
            decode_record(&[2, 1, 0, 1, 0, 0, 0, 0]),
            Err(ProtocolError::Version(2))
        );
        // Our own records are padded to 8 and round-trip.
        let ours = encode_record(kind::STDOUT, 1, b"abc");
        assert_eq!(ours.len(), 16);
        assert_eq!(decode_record(&ours).unwrap().unwrap().0.content, b"abc");
    }

    #[test]
    fn streams_are_written_in_records_of_at_most_65535_bytes() {
        let data = pattern(2 * MAX_CONTENT_LEN + 10);
        let mut out = Vec::new();
        write_stream(&mut out, kind::STDOUT, 1, &data).unwrap();
        let mut rest = &out[..];
        let mut sizes = Vec::new();
        while let Some((r, used)) = decode_record(rest).unwrap() {
            sizes.push(r.content.len());
            rest = &rest[used..];
        }
        assert_eq!(sizes, [MAX_CONTENT_LEN, MAX_CONTENT_LEN, 10]);
        assert!(rest.is_empty());
    }

    #[test]
    fn replay_answers_like_the_server() {
        let input = [
            get_request(1, true, b"/a"),
            rec(kind::GET_VALUES, 0, &nv(&[("FCGI_MPXS_CONNS", b"")])),
            get_request(2, false, b"/x/\xff"),
            get_request(3, false, b"/never-read"),
        ]
        .concat();
        let out = replay(&input, &app, &Options::default());
        let mut r = &out[..];
        assert_eq!(read_reply(&mut r, 1).status, 200);
        assert_eq!(read_rec(&mut r).unwrap().0, kind::GET_VALUES_RESULT);
        assert_eq!(read_reply(&mut r, 2).status, 400);
        assert!(r.is_empty(), "answered after a request without keep_conn");
    }

    #[test]
    fn params_stream_is_bounded() {
        let mut input = begin(1, ROLE_RESPONDER, true);
        let big = vec![0u8; MAX_CONTENT_LEN];
        for _ in 0..(MAX_PARAMS_LEN / MAX_CONTENT_LEN + 1) {
            input.extend(rec(kind::PARAMS, 1, &big));
        }
        let opts = Options::default();
        let mut session = Session::new(&opts);
        let mut rest = &input[..];
        let mut result = Ok(Event::Nothing);
        while let Some((record, used)) = decode_record(rest).unwrap() {
            result = session.on_record(record);
            if result.is_err() {
                break;
            }
            rest = &rest[used..];
        }
        assert!(matches!(result, Err(ProtocolError::ParamsTooLarge)));
    }

    /// xorshift64*: deterministic, so CI sees the same inputs every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn fuzz_smoke() {
        let seeds = [
            get_request(1, true, b"/a"),
            [
                get_request(1, true, b"/x/\xff"),
                get_request(2, false, b"/b"),
            ]
            .concat(),
            request(
                1,
                false,
                &[("REQUEST_METHOD", b"POST"), ("PATH_INFO", b"/echo")],
                &[1; 3000],
            ),
            [
                begin(1, 2, true),
                begin(3, 1, false),
                rec(kind::ABORT_REQUEST, 3, b""),
            ]
            .concat(),
            rec(kind::GET_VALUES, 0, &nv(&[("FCGI_MAX_CONNS", b"")])),
            nv(&[("A", b"b"), ("LONG", &[b'x'; 200])]),
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for i in 0..4000 {
            let input = if i % 4 == 0 {
                let len = rng.below(300);
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                let mut input = seeds[rng.below(seeds.len())].clone();
                for _ in 0..=rng.below(4) {
                    if input.is_empty() {
                        break;
                    }
                    let at = rng.below(input.len());
                    match rng.below(4) {
                        0 => input[at] = rng.next() as u8,
                        1 => input.truncate(at),
                        2 => input.insert(at, rng.next() as u8),
                        _ => input[at] ^= 0x80,
                    }
                }
                input
            };
            fuzz_one(&input);
        }
    }

    #[test]
    fn fuzz_regressions_replay() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            // Files only: other targets keep theirs in subdirectories (jpeg_entropy/).
            if path.is_file() && path.extension().is_none_or(|e| e != "md") {
                fuzz_one(&fs::read(&path).unwrap());
            }
        }
    }
}
