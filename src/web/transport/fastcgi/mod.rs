//! FastCGI 1.0 responder: the record codec (headers, name-value pairs, the records we write),
//! a per-connection state machine, and a bounded thread-per-connection server around them.
//!
//! It owns the FastCGI transport only: bytes become a [`Request`](crate::io::http::Request) through
//! [`request_from_meta_vars`](crate::io::http::request_from_meta_vars), and a
//! [`Response`](crate::io::http::Response) goes back through [`cgi_head`](crate::io::http::cgi_head). No routing.
//! Only the Responder role is served; connections are not multiplexed (`FCGI_MPXS_CONNS=0`).
//!
//! We wrote this instead of using the `fastcgi` crate (1.0.0) because of three defects seen
//! behind nginx: (1) a parameter with non-UTF-8 bytes (nginx's decoded `PATH_INFO` for
//! `/x/%FF`) silently dropped that parameter and every later one; (2) the peer closing a
//! kept-alive connection panicked the connection thread; (3) an `accept()` error such as
//! `EMFILE` panicked the accept loop. Here params stay bytes until one place turns them into
//! a `400`, every per-connection failure ends only that connection, and accept errors back off.
//!
//! The submodules, bottom up: `record` (headers, record types, reading and writing records),
//! `params` (name-value pairs), `session` (a connection's protocol state, free of I/O),
//! `response` (calling the handler, writing its answer), `connection` (one connection's I/O
//! loop), `listener` (TCP, unix and fd 0 sockets) and `server` ([`serve`]'s accept loop);
//! `replay` runs a connection over bytes for tests and fuzzing, and `semaphore` bounds open
//! connections here and in the standalone server.

mod connection;
mod listener;
mod params;
mod record;
mod replay;
mod response;
mod semaphore;
mod server;
mod session;
#[cfg(test)]
mod test_support;

use std::thread;
use std::time::Duration;

use crate::io::http::body::Limits;

pub use listener::Listener;
pub(super) use listener::is_timeout;
pub use params::{Pair, encode_params, parse_params};
pub use record::{
    HEADER_LEN, Header, KEEP_CONN, MAX_CONTENT_LEN, MAX_PARAMS_LEN, ProtocolError, ROLE_RESPONDER,
    Record, VERSION_1, decode_record, encode_end_request, encode_record, kind, status,
    write_record, write_stream,
};
pub use replay::{fuzz_one, replay};
pub use response::write_response;
pub(super) use semaphore::Semaphore;
pub use server::serve;

/// How the server is bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Threads that run the handler ([`Workers`](super::workers::Workers)): requests handled
    /// at once; the rest wait. Idle connections hold none.
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
