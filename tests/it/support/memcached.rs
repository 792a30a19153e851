//! A private memcached on a free loopback port (Debian's `memcached`, installed by
//! `scripts/install-deps.sh`), run in the foreground and stopped by its PID; and a "blackhole":
//! a TCP listener that accepts connections and never answers, the worst a memcached can do.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use super::{Child, free_port, require_program};

/// A running memcached; stopped (SIGTERM to its PID) when dropped.
pub struct Memcached {
    // Declared first so that it stops before its directory goes.
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Memcached {
    pub fn start() -> Memcached {
        let dir = tempfile::Builder::new()
            .prefix("imgserv-memcached-")
            .tempdir()
            .expect("create a temp dir");
        let mut m = Memcached {
            child: None,
            port: free_port(),
            dir,
        };
        m.restart();
        m
    }

    /// Starts it again on the same port (after [`Memcached::kill`]), empty.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "memcached is running");
        let mut command = Command::new(memcached());
        command.args([
            "-l",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "0",
            "-m",
            "64",
        ]);
        // memcached refuses to run as root without a user to switch to.
        if is_root() {
            command.args(["-u", "nobody"]);
        }
        let mut child = Child::spawn("memcached", command, self.dir.path());
        child.wait_for_port(self.port, Duration::from_secs(10));
        self.child = Some(child);
    }

    /// Kills it (SIGKILL, by PID): what a crash or an OOM kill does.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// `127.0.0.1:PORT`, as `[object_cache] servers` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn memcached() -> PathBuf {
    require_program("memcached")
}

/// Whether the tests run as root (CI does), read from /proc rather than with libc.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A listener that accepts and never answers; it holds every connection until dropped.
pub struct Blackhole {
    port: u16,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (s, h) = (stop.clone(), held.clone());
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => h.lock().unwrap().push(conn),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Blackhole { port, stop, held }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
