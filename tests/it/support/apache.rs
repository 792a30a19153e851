//! `Apache`: a private Apache httpd with mod_cgid on a free loopback port, configured from the
//! shipped snippet `etc/apache-cgi.conf`.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{Child, free_port, wait_until};
use super::{Site, imgserv_cgi, require_program, substitute};

const START_TIMEOUT: Duration = Duration::from_secs(20);
const MODULES: &str = "/usr/lib/apache2/modules";

/// A private `apache2 -d DIR -f DIR/httpd.conf -DFOREGROUND`, stopped on drop.
///
/// Apache refuses to run its children as root, so when the tests run as root they (and the
/// CGI) run as www-data: the site is world-writable for that reason. The CGI program is copied
/// into DIR/cgi-bin, because the repository (target/) may sit where www-data cannot reach
/// (/root). Event MPM + mod_cgid, as `a2enmod cgid` sets up on Debian.
pub struct Apache {
    dir: PathBuf,
    port: u16,
    server: Child,
}

impl Apache {
    /// Apache running the built `imgserv-cgi` per `etc/apache-cgi.conf`.
    pub fn cgi(site: &Site) -> Apache {
        Apache::cgi_with(site, &imgserv_cgi())
    }

    /// The `etc/apache-cgi.conf` set-up with another CGI program at `/cgi-bin/imgserv.cgi`.
    pub fn cgi_with(site: &Site, program: &Path) -> Apache {
        let apache2 = require_program("apache2");
        for module in [
            "mpm_event",
            "authz_core",
            "mime",
            "alias",
            "cgid",
            "env",
            "dir",
            "headers",
        ] {
            let so = Path::new(MODULES).join(format!("mod_{module}.so"));
            assert!(
                so.exists(),
                "{} is missing: run scripts/install-deps.sh (as root)",
                so.display()
            );
        }
        let dir = site.subdir("apache-");
        let cgi_bin = dir.join("cgi-bin");
        fs::create_dir(&cgi_bin).unwrap();
        let cgi = cgi_bin.join("imgserv.cgi");
        fs::copy(program, &cgi).unwrap_or_else(|e| panic!("copy {}: {e}", program.display()));
        fs::set_permissions(&cgi, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&cgi_bin, fs::Permissions::from_mode(0o755)).unwrap();

        let name = "etc/apache-cgi.conf";
        let snippet = fs::read_to_string(super::repo_root().join(name)).unwrap();
        let snippet = substitute(&snippet, name, "/var/cache/imgserv", path(&site.cache()));
        let snippet = substitute(&snippet, name, "/usr/local/lib/cgi-bin", path(&cgi_bin));
        let snippet = substitute(
            &snippet,
            name,
            "/etc/imgserv/imgserv.toml",
            path(&site.config_path()),
        );
        fs::write(dir.join("imgserv.conf"), snippet).unwrap();
        fs::create_dir(dir.join("htdocs")).unwrap();

        // A port can be taken between free_port() and Apache's bind(): retry on EADDRINUSE.
        for attempt in 1.. {
            let port = free_port();
            fs::write(dir.join("httpd.conf"), main_conf(&dir, port)).unwrap();
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
            return Apache { dir, port, server };
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

fn main_conf(dir: &Path, port: u16) -> String {
    let d = path(dir);
    let modules: String = [
        "mpm_event",
        "authz_core",
        "mime",
        "alias",
        "cgid",
        "env",
        "dir",
        "headers",
    ]
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
ScriptSock {d}/cgid.sock
StartServers 1
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
