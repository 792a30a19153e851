//! `Nginx`: a private nginx on a free loopback port, configured from the shipped snippets
//! `etc/nginx-cgi.conf` and `etc/nginx-fastcgi.conf`.

use std::fs;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{Child, free_port, process_group_members, wait_until};
use super::{Site, imgserv_cgi, repo_root, require_program, substitute};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A private nginx (`nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'`) and, for the CGI and
/// FastCGI set-ups, the backend it talks to (fcgiwrap, or `imgserv-cgi --fastcgi`), both
/// stopped on drop. Its files (config, logs, sockets) are in a subdirectory of the site.
///
/// The master runs as root with `user root;` so its workers can read anything; the backends
/// run as whoever runs the tests.
pub struct Nginx {
    dir: PathBuf,
    port: u16,
    // Field order is drop order: nginx first, then its backend.
    master: Child,
    backend: Option<Child>,
    _scratch: Option<tempfile::TempDir>,
}

impl Nginx {
    /// nginx + fcgiwrap running the built `imgserv-cgi` as a CGI, per `etc/nginx-cgi.conf`.
    pub fn cgi(site: &Site) -> Nginx {
        Nginx::cgi_with(site, &imgserv_cgi())
    }

    /// The `etc/nginx-cgi.conf` set-up with another CGI program at `/cgi-bin/imgserv.cgi`.
    pub fn cgi_with(site: &Site, program: &Path) -> Nginx {
        let fcgiwrap = require_program("fcgiwrap");
        let dir = site.subdir("nginx-");
        let socket = dir.join("fcgiwrap.sock");
        let mut command = Command::new(fcgiwrap);
        command.arg("-s").arg(format!("unix:{}", socket.display()));
        let backend = start_backend("fcgiwrap", command, &dir, &socket);
        let snippet = read_snippet("etc/nginx-cgi.conf");
        let server = |port: u16| {
            let s = &snippet;
            let s = substitute(s, "etc/nginx-cgi.conf", "listen 80;", &listen(port));
            let s = substitute(
                &s,
                "etc/nginx-cgi.conf",
                "/var/cache/imgserv",
                path(&site.cache()),
            );
            let s = substitute(
                &s,
                "etc/nginx-cgi.conf",
                "/usr/local/lib/cgi-bin/imgserv.cgi",
                path(program),
            );
            let s = substitute(
                &s,
                "etc/nginx-cgi.conf",
                "/etc/imgserv/imgserv.toml",
                path(&site.config_path()),
            );
            substitute(
                &s,
                "etc/nginx-cgi.conf",
                "unix:/run/fcgiwrap.socket",
                &format!("unix:{}", socket.display()),
            )
        };
        Nginx::start(dir, Some(backend), None, server)
    }

    /// nginx `fastcgi_pass`-ing (kept-alive connections) to `imgserv-cgi --fastcgi SOCKET
    /// --config SITE/imgserv.toml`, per `etc/nginx-fastcgi.conf`.
    pub fn fastcgi(site: &Site) -> Nginx {
        let config = site.config_path();
        Nginx::fastcgi_with(site, |socket| {
            let mut command = Command::new(imgserv_cgi());
            command
                .arg("--fastcgi")
                .arg(socket)
                .arg("--config")
                .arg(&config);
            command
        })
    }

    /// Like `fastcgi`, but the socket is opened by `spawn-fcgi -n` and handed to
    /// `imgserv-cgi --config ...` on fd 0 (no `--fastcgi` flag), as etc/nginx-fastcgi.conf shows.
    pub fn fastcgi_spawn_fcgi(site: &Site) -> Nginx {
        let config = site.config_path();
        Nginx::fastcgi_with(site, |socket| {
            spawn_fcgi(
                socket,
                &[
                    imgserv_cgi().as_os_str(),
                    "--config".as_ref(),
                    config.as_os_str(),
                ],
            )
        })
    }

    /// The `etc/nginx-fastcgi.conf` set-up with another FastCGI server: `backend` gets the
    /// unix socket path it must listen on. `docroot()` is nginx's document root (fcgiwrap finds
    /// its script as DOCUMENT_ROOT + SCRIPT_NAME).
    pub fn fastcgi_with(site: &Site, backend: impl FnOnce(&Path) -> Command) -> Nginx {
        let dir = site.subdir("nginx-");
        let socket = dir.join("fcgi.sock");
        let backend = start_backend("fastcgi", backend(&socket), &dir, &socket);
        let snippet = read_snippet("etc/nginx-fastcgi.conf");
        let server = |port: u16| {
            let s = &snippet;
            let name = "etc/nginx-fastcgi.conf";
            let s = substitute(s, name, "listen 80;", &listen(port));
            let s = substitute(&s, name, "/var/cache/imgserv", path(&site.cache()));
            substitute(
                &s,
                name,
                "unix:/run/imgserv/fcgi.sock",
                &format!("unix:{}", socket.display()),
            )
        };
        Nginx::start(dir, Some(backend), None, server)
    }

    /// nginx serving `root` at `/` (for mirror tests), with files of its own in a temp dir.
    pub fn static_only(root: &Path) -> Nginx {
        let scratch = tempfile::Builder::new()
            .prefix("imgserv-it-nginx-")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = scratch.path().to_path_buf();
        let server = |port: u16| {
            format!(
                "server {{\n    {}\n    location / {{ root {}; }}\n}}\n",
                listen(port),
                path(root)
            )
        };
        Nginx::start(dir, None, Some(scratch), server)
    }

    fn start(
        dir: PathBuf,
        backend: Option<Child>,
        scratch: Option<tempfile::TempDir>,
        server: impl Fn(u16) -> String,
    ) -> Nginx {
        let nginx = require_program("nginx");
        for sub in ["html", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // The snippets `include fastcgi_params;`, relative to the directory of nginx.conf.
        fs::copy("/etc/nginx/fastcgi_params", dir.join("fastcgi_params"))
            .expect("copy /etc/nginx/fastcgi_params (is nginx installed? scripts/install-deps.sh)");
        // A port can be taken between free_port() and nginx's bind(): retry on EADDRINUSE.
        for attempt in 1.. {
            let port = free_port();
            fs::write(dir.join("server.conf"), server(port)).unwrap();
            fs::write(dir.join("nginx.conf"), main_conf(&dir)).unwrap();
            let mut command = Command::new(&nginx);
            command
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .args(["-g", "daemon off;"]);
            let mut master = Child::spawn("nginx", command, &dir);
            wait_until(START_TIMEOUT, || {
                master.exited().is_some() || TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            let in_use = master.log().contains("Address already in use");
            if master.exited().is_some() && in_use && attempt < 5 {
                continue;
            }
            // Returns at once when listening; else panics with nginx's output.
            master.wait_for_port(port, Duration::from_millis(100));
            return Nginx {
                dir,
                port,
                master,
                backend,
                _scratch: scratch,
            };
        }
        unreachable!()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` + `path_and_query`
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base())
    }

    /// The directory with nginx.conf, server.conf (the substituted snippet), logs and sockets.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's document root (`root` at http level; the snippets don't set one).
    pub fn docroot(&self) -> PathBuf {
        self.dir.join("html")
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The nginx master.
    pub fn master(&self) -> &Child {
        &self.master
    }

    /// fcgiwrap or the FastCGI server, if any.
    pub fn backend(&self) -> Option<&Child> {
        self.backend.as_ref()
    }

    /// `nginx -s reload`, then waits until the old workers have exited (so later requests
    /// reach the new ones and kept-alive upstream connections have been closed).
    pub fn reload(&self) {
        let master = self.master.pid();
        let old: Vec<u32> = process_group_members(master)
            .into_iter()
            .filter(|&p| p != master)
            .collect();
        // Captured: nginx prints a "signal process started" notice on stderr.
        let out = Command::new(require_program("nginx"))
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "reload"])
            .output()
            .expect("run nginx -s reload");
        assert!(
            out.status.success(),
            "nginx -s reload: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.error_log()
        );
        let done = wait_until(Duration::from_secs(15), || {
            let now = process_group_members(master);
            old.iter().all(|p| !now.contains(p)) && now.len() > 1
        });
        assert!(
            done,
            "nginx reload did not replace its workers:\n{}",
            self.error_log()
        );
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // nginx logs to error.log, not to its output: show it when the test failed.
        if std::thread::panicking() {
            eprintln!("----- [nginx error.log] -----");
            for line in self.error_log().lines() {
                eprintln!("[nginx] {line}");
            }
        }
    }
}

/// `spawn-fcgi -n -s SOCKET -- PROGRAM ARGS...`: `-n` keeps it in the foreground (it execs the
/// program with the listening socket on fd 0), so the `Child` is the FastCGI server itself.
pub fn spawn_fcgi(socket: &Path, program_and_args: &[&std::ffi::OsStr]) -> Command {
    let mut command = Command::new(require_program("spawn-fcgi"));
    command
        .arg("-n")
        .arg("-s")
        .arg(socket)
        .arg("--")
        .args(program_and_args);
    command
}

fn start_backend(name: &str, command: Command, dir: &Path, socket: &Path) -> Child {
    let mut child = Child::spawn(name, command, dir);
    child.wait_ready(
        START_TIMEOUT,
        &format!("socket {}", socket.display()),
        || UnixStream::connect(socket).is_ok(),
    );
    child
}

fn main_conf(dir: &Path) -> String {
    let d = path(dir);
    format!(
        "# Generated by tests/it/support/nginx.rs; the server block is in server.conf.
user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {d}/access.log;
    root {d}/html;
    client_body_temp_path {d}/tmp/body;
    fastcgi_temp_path {d}/tmp/fastcgi;
    proxy_temp_path {d}/tmp/proxy;
    scgi_temp_path {d}/tmp/scgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    include {d}/server.conf;
}}
"
    )
}

fn read_snippet(relative: &str) -> String {
    fs::read_to_string(repo_root().join(relative))
        .unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

fn listen(port: u16) -> String {
    format!("listen 127.0.0.1:{port};")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
