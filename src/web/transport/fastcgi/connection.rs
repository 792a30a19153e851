//! One connection's I/O loop: records read from the socket go through the [`Session`], and
//! replies and responses are written back, under the read timeout while a request is under way.
//!
//! Accepting connections is `server`'s; this works on any `Read + Write`, so `replay` uses it too.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::time::Duration;

use crate::io::http::{Request, Response};

use super::Options;
use super::record::{ConnectionError, HEADER_LEN, MAX_CONTENT_LEN, read_record};
use super::response::{respond, write_response};
use super::session::{Event, Session};

/// Speaks FastCGI on one connection until the peer closes it, a request without
/// `FCGI_KEEP_CONN` has been answered, or something fails — a read that waits longer than
/// `opts.read_timeout` inside a request included. `set_timeout` sets the socket's read timeout.
pub(super) fn run_connection<S: Read + Write>(
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::thread;
    use std::time::{Duration, Instant};

    use crate::web::transport::fastcgi::test_support::*;
    use crate::web::transport::fastcgi::{HEADER_LEN, Options, ROLE_RESPONDER, kind};

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
}
