//! Helpers shared by the integration tests: a temporary site, the CGI runner, private web
//! servers and an HTTP client. It owns process and file plumbing only; it knows nothing about
//! images (the library exposes its own helpers for that).

// Every topic module uses a different subset of the helpers.
#![allow(dead_code, unused_imports)]

pub mod admin;
mod apache;
pub mod axe;
pub mod browser;
mod cgi;
mod http;
mod memcached;
mod nginx;
mod process;
mod s3;
mod site;
pub mod slapd;

pub use admin::imgserv_admin;
pub use apache::Apache;
pub use cgi::{Cgi, CgiResponse, Killed};
pub use http::{HttpResponse, follow, get, request, try_request};
pub use memcached::{Blackhole, Memcached};
pub use nginx::{Nginx, spawn_fcgi};
pub use process::{Child, free_port, pid_alive, process_group_members, wait_for_port};
pub use s3::S3Server;
pub use site::{Site, fixture, fixture_bytes};
pub use slapd::Slapd;

use std::path::{Path, PathBuf};

/// The built `imgserv-cgi` binary.
pub fn imgserv_cgi() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_imgserv-cgi"))
}

/// `imgserv-cgi --listen` on a free loopback port with `site`'s configuration, and its base
/// URL (`http://127.0.0.1:PORT`); stopped when the `Child` is dropped.
pub fn standalone(site: &Site) -> (Child, String) {
    let port = free_port();
    let mut cmd = std::process::Command::new(imgserv_cgi());
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(site.config_path());
    let mut server = Child::spawn("standalone", cmd, site.dir());
    server.wait_for_port(port, std::time::Duration::from_secs(10));
    (server, format!("http://127.0.0.1:{port}"))
}

/// The repository root (for `etc/`, `tests/fixtures/`).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Finds a program on PATH or in the sbin directories (where Debian puts nginx, apache2 and
/// fcgiwrap, which are not on a normal user's PATH). Panics naming the installer when missing:
/// a test that needs a web server must fail, never skip.
pub fn require_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed (looked on PATH and in /usr/sbin): \
         run scripts/install-deps.sh (as root) to install the test dependencies"
    );
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Replaces every occurrence of `from` in a shipped configuration snippet, panicking when there
/// is none: the harness runs the snippets operators paste, so a renamed path must break the test
/// rather than silently test something else.
fn substitute(text: &str, snippet: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "{snippet} no longer contains `{from}`: update the snippet or tests/it/support"
    );
    text.replace(from, to)
}
