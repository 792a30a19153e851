//! A private S3-compatible server: `s3s-fs` on 127.0.0.1, serving a temporary directory, with
//! fixed credentials. It checks SigV4 signatures, so a wrong secret really gets a 403.
//! Installed by `scripts/install-deps.sh` (`cargo install s3s-fs`).

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::{Child, free_port, is_executable};

/// A running `s3s-fs`; stopped when dropped. Objects are files: `<root>/<bucket>/<key>`.
pub struct S3Server {
    // Declared first so that it stops before its directory goes.
    child: Child,
    port: u16,
    dir: TempDir,
}

impl S3Server {
    pub const ACCESS_KEY: &str = "imgserv-test-access";
    pub const SECRET_KEY: &str = "imgserv-test-secret-d6f1c0b9";
    pub const REGION: &str = "us-east-1";
    /// The bucket that exists (a directory under the root).
    pub const BUCKET: &str = "originals";

    pub fn start() -> S3Server {
        let program = s3s_fs();
        let dir = tempfile::Builder::new()
            .prefix("imgserv-s3-")
            .tempdir()
            .expect("create a temp dir");
        let root = dir.path().join("root");
        fs::create_dir_all(root.join(Self::BUCKET)).unwrap();
        let port = free_port();
        let mut command = Command::new(program);
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", Self::ACCESS_KEY])
            .args(["--secret-key", Self::SECRET_KEY])
            .arg(&root)
            .env("RUST_LOG", "s3s_fs=debug,s3s=info");
        let mut child = Child::spawn("s3s-fs", command, dir.path());
        child.wait_for_port(port, Duration::from_secs(20));
        S3Server { child, port, dir }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory whose subdirectories are the buckets.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The file that holds `key` in [`Self::BUCKET`].
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.root().join(Self::BUCKET).join(key)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.child.log()
    }
}

/// The `s3s-fs` binary: `$CARGO_HOME/bin`, `~/.cargo/bin`, then PATH. Panics naming the
/// installer when missing: the S3 tests must fail, never skip.
fn s3s_fs() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".cargo")));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = cargo_home
        .map(|c| c.join("bin"))
        .into_iter()
        .chain(std::env::split_paths(&path));
    for dir in candidates {
        let candidate = dir.join("s3s-fs");
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!(
        "`s3s-fs` is not installed (looked in ~/.cargo/bin and on PATH): run \
         scripts/install-deps.sh, which runs `cargo install --locked s3s-fs@0.14.1 --features \
         binary` (a few minutes)"
    );
}
