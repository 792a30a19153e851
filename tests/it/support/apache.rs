//! `Apache`: a private Apache httpd on a free loopback port, configured from a shipped snippet:
//! `etc/apache-cgi.conf` (mod_cgid), `etc/apache-fastcgi.conf` (mod_proxy_fcgi to
//! `imgserv-cgi --fastcgi`) or `etc/apache-fcgid.conf` (mod_fcgid).

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{Child, free_port, wait_until};
use super::{Site, imgserv_cgi, require_program, substitute};

const START_TIMEOUT: Duration = Duration::from_secs(20);
const MODULES: &str = "/usr/lib/apache2/modules";
/// The modules every set-up loads (event MPM, as Debian's default).
const BASE_MODULES: &[&str] = &[
    "mpm_event",
    "authz_core",
    "mime",
    "alias",
    "env",
    "dir",
    "headers",
];

/// A private `apache2 -d DIR -f DIR/httpd.conf -DFOREGROUND`, stopped on drop, and the FastCGI
/// server it talks to for `etc/apache-fastcgi.conf`.
///
/// Apache refuses to run its children as root, so when the tests run as root they (and the
/// CGI) run as www-data: the site is world-writable for that reason. The CGI program is copied
/// into DIR/cgi-bin, because the repository (target/) may sit where www-data cannot reach
/// (/root).
pub struct Apache {
    dir: PathBuf,
    port: u16,
    // Field order is drop order: Apache first, then its backend.
    server: Child,
    backend: Option<Child>,
}

/// `name` (an `etc/` snippet that runs a program from `/usr/local/lib/cgi-bin`) for `site`, with
/// `program` copied into `dir` as that program.
fn program_snippet(site: &Site, dir: &Path, program: &Path, name: &str) -> String {
    let cgi_bin = copy_program(dir, program);
    let snippet = read_snippet(name);
    let snippet = substitute(&snippet, name, "/var/cache/imgserv", path(&site.cache()));
    let snippet = substitute(&snippet, name, "/usr/local/lib/cgi-bin", path(&cgi_bin));
    substitute(
        &snippet,
        name,
        "/etc/imgserv/imgserv.toml",
        path(&site.config_path()),
    )
}

impl Apache {
    /// Apache running the built `imgserv-cgi` per `etc/apache-cgi.conf`.
    pub fn cgi(site: &Site) -> Apache {
        Apache::cgi_with(site, &imgserv_cgi())
    }

    /// The `etc/apache-cgi.conf` set-up with another CGI program at `/cgi-bin/imgserv.cgi`.
    pub fn cgi_with(site: &Site, program: &Path) -> Apache {
        let dir = site.subdir("apache-");
        let snippet = program_snippet(site, &dir, program, "etc/apache-cgi.conf");
        let cgid = format!("ScriptSock {}/cgid.sock\n", path(&dir));
        Apache::start(dir, &snippet, &["cgid"], &cgid, None)
    }

    /// The `etc/apache-cgi.conf` set-up behind HTTP Basic authentication (mod_auth_basic with
    /// the users of `htpasswd`), which hands the CGI `REMOTE_USER`.
    pub fn cgi_basic_auth(site: &Site, htpasswd: &Path) -> Apache {
        let dir = site.subdir("apache-");
        let snippet = program_snippet(site, &dir, &imgserv_cgi(), "etc/apache-cgi.conf");
        let snippet = format!(
            "{snippet}\n<Location /cgi-bin/imgserv.cgi>\n    AuthType Basic\n    AuthName imgserv\n    AuthBasicProvider file\n    AuthUserFile {}\n    Require valid-user\n</Location>\n",
            path(htpasswd)
        );
        let cgid = format!("ScriptSock {}/cgid.sock\n", path(&dir));
        let modules = [
            "cgid",
            "auth_basic",
            "authn_core",
            "authn_file",
            "authz_user",
        ];
        Apache::start(dir, &snippet, &modules, &cgid, None)
    }

    /// Apache proxying to `imgserv-cgi --fastcgi SOCKET --config SITE/imgserv.toml` per
    /// `etc/apache-fastcgi.conf` (mod_proxy_fcgi).
    pub fn fastcgi(site: &Site) -> Apache {
        let dir = site.subdir("apache-");
        let socket = dir.join("fcgi.sock");
        let mut command = Command::new(imgserv_cgi());
        command
            .arg("--fastcgi")
            .arg(&socket)
            .arg("--config")
            .arg(site.config_path());
        let mut backend = Child::spawn("fastcgi", command, &dir);
        backend.wait_ready(
            START_TIMEOUT,
            &format!("socket {}", socket.display()),
            || UnixStream::connect(&socket).is_ok(),
        );
        // Apache's children run as www-data: let them connect (etc/apache-fastcgi.conf says how
        // a real installation does it).
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
        let name = "etc/apache-fastcgi.conf";
        let snippet = read_snippet(name);
        let snippet = substitute(&snippet, name, "/var/cache/imgserv", path(&site.cache()));
        let snippet = substitute(
            &snippet,
            name,
            "unix:/run/imgserv/fcgi.sock",
            &format!("unix:{}", path(&socket)),
        );
        Apache::start(dir, &snippet, &["proxy", "proxy_fcgi"], "", Some(backend))
    }

    /// Apache starting the built `imgserv-cgi` as FastCGI processes per
    /// `etc/apache-fcgid.conf` (mod_fcgid).
    pub fn fcgid(site: &Site) -> Apache {
        let dir = site.subdir("apache-");
        let snippet = program_snippet(site, &dir, &imgserv_cgi(), "etc/apache-fcgid.conf");
        let d = path(&dir);
        let fcgid = format!("FcgidIPCDir {d}/fcgid\nFcgidProcessTableFile {d}/fcgid_shm\n");
        fs::create_dir(dir.join("fcgid")).unwrap();
        fs::set_permissions(dir.join("fcgid"), fs::Permissions::from_mode(0o777)).unwrap();
        Apache::start(dir, &snippet, &["fcgid"], &fcgid, None)
    }

    /// Writes `snippet` as DIR/imgserv.conf and starts Apache with the base modules, `modules`
    /// and `extra` lines in httpd.conf.
    fn start(
        dir: PathBuf,
        snippet: &str,
        modules: &[&str],
        extra: &str,
        backend: Option<Child>,
    ) -> Apache {
        let apache2 = require_program("apache2");
        let modules: Vec<&str> = BASE_MODULES.iter().chain(modules).copied().collect();
        for module in &modules {
            let so = Path::new(MODULES).join(format!("mod_{module}.so"));
            assert!(
                so.exists(),
                "{} is missing: run scripts/install-deps.sh (as root)",
                so.display()
            );
        }
        fs::write(dir.join("imgserv.conf"), snippet).unwrap();
        fs::create_dir(dir.join("htdocs")).unwrap();

        // A port can be taken between free_port() and Apache's bind(): retry on EADDRINUSE.
        for attempt in 1.. {
            let port = free_port();
            fs::write(
                dir.join("httpd.conf"),
                main_conf(&dir, port, &modules, extra),
            )
            .unwrap();
            let mut command = Command::new(&apache2);
            command
                .arg("-d")
                .arg(&dir)
                .arg("-f")
                .arg(dir.join("httpd.conf"))
                .arg("-DFOREGROUND")
                // apache2 reads no /etc/apache2/envvars this way; give it a sane locale.
                .env("LANG", "C");
            let mut server = Child::spawn("apache2", command, &dir);
            wait_until(START_TIMEOUT, || {
                server.exited().is_some() || TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            let log = server.log() + &fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            if server.exited().is_some() && log.contains("Address already in use") && attempt < 5 {
                continue;
            }
            server.wait_for_port(port, Duration::from_millis(100));
            return Apache {
                dir,
                port,
                server,
                backend,
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

    /// The directory with httpd.conf, imgserv.conf (the substituted snippet), logs, cgi-bin/.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Apache's error log, where mod_cgid also puts the CGI's stderr.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The Apache parent process.
    pub fn server(&self) -> &Child {
        &self.server
    }

    /// The FastCGI server of `Apache::fastcgi`.
    pub fn backend(&self) -> Option<&Child> {
        self.backend.as_ref()
    }
}

/// Copies `program` to DIR/cgi-bin/imgserv.cgi (mode 0755), where www-data can run it.
fn copy_program(dir: &Path, program: &Path) -> PathBuf {
    let cgi_bin = dir.join("cgi-bin");
    fs::create_dir(&cgi_bin).unwrap();
    let cgi = cgi_bin.join("imgserv.cgi");
    fs::copy(program, &cgi).unwrap_or_else(|e| panic!("copy {}: {e}", program.display()));
    fs::set_permissions(&cgi, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&cgi_bin, fs::Permissions::from_mode(0o755)).unwrap();
    cgi_bin
}

fn read_snippet(relative: &str) -> String {
    fs::read_to_string(super::repo_root().join(relative))
        .unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

impl Drop for Apache {
    fn drop(&mut self) {
        // The CGI's stderr lands in error.log, not in the parent's output: show it on failure.
        if std::thread::panicking() {
            eprintln!("----- [apache error.log] -----");
            for line in self.error_log().lines() {
                eprintln!("[apache] {line}");
            }
        }
    }
}

fn main_conf(dir: &Path, port: u16, modules: &[&str], extra: &str) -> String {
    let d = path(dir);
    let modules: String = modules
        .iter()
        .map(|m| format!("LoadModule {m}_module {MODULES}/mod_{m}.so\n"))
        .collect();
    format!(
        "# Generated by tests/it/support/apache.rs; the imgserv part is imgserv.conf.
ServerRoot {d}
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {d}/httpd.pid
DefaultRuntimeDir {d}
Mutex file:{d}
ErrorLog {d}/error.log
LogLevel info
LogFormat \"%h %t \\\"%r\\\" %>s %b\" common
CustomLog {d}/access.log common
User www-data
Group www-data
{modules}TypesConfig /etc/mime.types
{extra}StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
DocumentRoot {d}/htdocs
<Directory />
    Require all denied
    AllowOverride None
</Directory>
Include {d}/imgserv.conf
"
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
