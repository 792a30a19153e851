//! The sockets: a [`Listener`] bound to a TCP address or a unix socket path, or handed over
//! on fd 0 as `spawn-fcgi` and web servers do (§2.2), and the accepted [`Stream`] with its
//! read timeout and lingering close.
//!
//! What is said on a connection is `connection`'s; the accept loop is `server`'s.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// A listening socket: TCP or unix.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// An accepted connection.
#[derive(Debug)]
pub(super) enum Stream {
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
    pub(super) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    /// Closes our side, then reads what the peer still sends (up to a second, 1 MiB), so that
    /// unread input does not make the kernel reset the connection and discard our last
    /// records before the web server has read them.
    pub(super) fn linger_close(self) {
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

    pub(super) fn accept(&self) -> io::Result<Stream> {
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

    pub(super) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
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
pub(in crate::web::transport) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::thread;

    use super::*;
    use crate::web::transport::fastcgi::test_support::*;
    use crate::web::transport::fastcgi::{Options, serve};

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

        // A relative path (as `--fastcgi run/imgserv.sock` gives): a directory of its own below
        // the working directory, wherever the build directory is.
        let here = tempfile::tempdir_in(".").unwrap();
        let name = here.path().file_name().unwrap().to_str().unwrap();
        let relative = Listener::bind(&format!("./{name}/../{name}/fastcgi-test.sock"));
        assert!(matches!(relative, Ok(Listener::Unix(_))), "{relative:?}");
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
                .args([
                    "--exact",
                    "web::transport::fastcgi::listener::tests::child_serving_fd_0",
                ])
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
}
