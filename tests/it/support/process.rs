//! Child processes that cannot outlive their test, and loopback ports.

use std::collections::HashSet;
use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1. Never hands out the same port twice in one test run, so
/// parallel tests don't race for the port one of them just released.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    wait_until(timeout, || TcpStream::connect(("127.0.0.1", port)).is_ok())
}

pub(crate) fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live process (a zombie, which nobody may reap in a container, is dead).
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_field(&stat, 0).is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The live processes in process group `pgid`.
pub fn process_group_members(pgid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let state = stat_field(&stat, 0);
        let group = stat_field(&stat, 2).and_then(|g| g.parse::<u32>().ok());
        if group == Some(pgid) && state.is_some_and(|s| s != "Z" && s != "X") {
            pids.push(pid);
        }
    }
    pids
}

/// Field `n` after the command name in /proc/PID/stat (0 = state, 2 = process group).
fn stat_field(stat: &str, n: usize) -> Option<&str> {
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(n)
}

/// Sends `signal` (a name like "TERM") to a process group, through the shell's `kill` builtin
/// (the crate denies unsafe code, and procps' kill may not be installed).
fn kill_group(pgid: u32, signal: &str) {
    let _ = Command::new("/bin/sh")
        .args(["-c", &format!("kill -s {signal} -- -{pgid} 2>/dev/null")])
        .status();
}

/// A child process in its own process group, with stdout and stderr going to a log file.
///
/// Dropping it stops the whole group (SIGTERM, then SIGKILL after 5 s), so nginx workers,
/// Apache children and CGI processes go too. If the test is panicking the log is re-printed
/// on stderr, each line prefixed with `[name]`.
pub struct Child {
    name: String,
    child: std::process::Child,
    log: PathBuf,
    /// The write end of the child's stdin when it was started with [`Child::spawn_tethered`]:
    /// it closes when this process ends, however it ends.
    tether: Option<std::process::ChildStdin>,
}

impl Child {
    /// Starts `command` with stdin closed and its output in `log_dir/<name>.log`.
    pub fn spawn(name: &str, command: Command, log_dir: &Path) -> Child {
        Child::start(name, command, log_dir, Stdio::null())
    }

    /// Like [`Child::spawn`], but the child's stdin is a pipe that stays open for as long as
    /// this `Child` (or the test process) lives: a wrapper that waits for end of file on stdin
    /// then stops its group (`cat >/dev/null; kill …`) dies with the test process even when
    /// nothing runs `Drop` — a child kept in a `static`, a panic under `panic = "abort"`, a
    /// SIGKILL of the test binary.
    pub fn spawn_tethered(name: &str, command: Command, log_dir: &Path) -> Child {
        let mut child = Child::start(name, command, log_dir, Stdio::piped());
        child.tether = child.child.stdin.take();
        child
    }

    fn start(name: &str, mut command: Command, log_dir: &Path, stdin: Stdio) -> Child {
        let log = log_dir.join(format!("{name}.log"));
        let file = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        command
            .stdin(stdin)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({command:?}): {e}"));
        Child {
            name: name.into(),
            child,
            log,
            tether: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The PID, which is also the process group ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What the process wrote on stdout and stderr so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits until the process accepts connections on `port`; panics with its log if it exits
    /// first or the timeout passes.
    pub fn wait_for_port(&mut self, port: u16, timeout: Duration) {
        self.wait_ready(timeout, &format!("port {port}"), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Waits until `ready` holds; panics with the log if the process exits first or time is up.
    pub fn wait_ready(&mut self, timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) {
        let mut exited = None;
        let ok = wait_until(timeout, || {
            exited = self.exited();
            exited.is_some() || ready()
        });
        if let Some(status) = exited {
            panic!(
                "{} exited ({status}) before {what} was ready; its output:\n{}",
                self.name,
                self.log()
            );
        }
        assert!(
            ok,
            "{} did not make {what} ready within {timeout:?}; its output:\n{}",
            self.name,
            self.log()
        );
    }

    /// SIGKILL to the whole group, as a crash would; waits until every member is gone.
    pub fn kill(&mut self) {
        let pgid = self.pid();
        kill_group(pgid, "KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_until(Duration::from_secs(10), || {
            process_group_members(pgid).is_empty()
        });
    }

    /// Stops the process group and waits for every member to go. Idempotent.
    pub fn stop(&mut self) {
        self.tether = None;
        let pgid = self.pid();
        if self.exited().is_none() || !process_group_members(pgid).is_empty() {
            kill_group(pgid, "TERM");
            let gone = wait_until(Duration::from_secs(5), || {
                let _ = self.exited();
                process_group_members(pgid).is_empty()
            });
            if !gone {
                eprintln!(
                    "[{}] did not stop on SIGTERM within 5 s: SIGKILL",
                    self.name
                );
                kill_group(pgid, "KILL");
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            let name = &self.name;
            eprintln!("----- [{name}] output ({}) -----", self.log.display());
            for line in self.log().lines() {
                eprintln!("[{name}] {line}");
            }
        }
    }
}
