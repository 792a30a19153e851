//! [`serve`]: the accept loop, bounded by `max_conns` and backing off when `accept()` fails,
//! a thread per connection, and the [`Workers`] that run the handler.

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::io::http::Handler;
use crate::web::transport::workers::Workers;

use super::Options;
use super::connection::run_connection;
use super::listener::{Listener, is_timeout};
use super::record::ConnectionError;
use super::semaphore::Semaphore;

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
    use std::io::{Read, Write};

    use super::*;
    use crate::web::transport::fastcgi::test_support::*;

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
    fn every_set_cookie_reaches_the_web_server() {
        use crate::io::http::cookie::SetCookie;
        use crate::io::http::{Request, Response};
        // Echoes the request's cookies back as cookies, `Secure` when it came over HTTPS.
        let handler = |req: Request| {
            req.cookies()
                .iter()
                .fold(Response::new(204), |resp, (name, value)| {
                    let c = SetCookie::new(name, value).unwrap().secure(req.is_https());
                    resp.with_cookie(&c)
                })
        };
        let addr = start_with(Arc::new(handler), Options::default());
        let params: &[(&str, &[u8])] = &[
            ("REQUEST_METHOD", b"GET"),
            ("HTTPS", b"on"),
            ("HTTP_COOKIE", b"a=1; b=\"2\"; c=3"),
        ];
        let mut s = connect(addr);
        s.write_all(&request(1, false, params, b"")).unwrap();
        let reply = read_reply(&mut s, 1);
        assert_eq!(reply.status, 204);
        let cookies: Vec<&str> = reply
            .head
            .lines()
            .filter_map(|l| l.strip_prefix("Set-Cookie: "))
            .collect();
        assert_eq!(cookies, ["a=1; Secure", "b=2; Secure", "c=3; Secure"]);
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
}
