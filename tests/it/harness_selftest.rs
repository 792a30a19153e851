//! Proves the test harness itself: each web server set-up starts, routes a CGI redirect to a
//! static file and stops without leaving processes behind. Independent of imgserv working (the
//! CGI here is a shell script), so a failure here points at the machine or the harness.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{
    Apache, Cgi, Nginx, Site, follow, free_port, get, pid_alive, process_group_members,
    require_program, spawn_fcgi,
};

/// A CGI that redirects to /cache/hello.txt and echoes its environment in a header.
fn redirect_script(dir: &Path) -> PathBuf {
    let script = dir.join("redirect.cgi");
    fs::write(
        &script,
        "#!/bin/sh\n\
         printf 'Status: 302 Found\\r\\n'\n\
         printf 'Location: /cache/hello.txt\\r\\n'\n\
         printf 'X-Config: %s\\r\\n' \"$IMGSERV_CONFIG\"\n\
         printf 'X-Query: %s\\r\\n' \"$QUERY_STRING\"\n\
         printf 'X-User: %s\\r\\n' \"$(id -un)\"\n\
         printf 'Content-Type: text/plain\\r\\n\\r\\nmoved\\n'\n",
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn site_with_static_file() -> Site {
    let site = Site::new();
    fs::write(site.cache().join("hello.txt"), b"hello from the cache\n").unwrap();
    site
}

/// GET the redirector, check the 302, follow it to the static file.
fn assert_redirect_then_static(base: &str, expect_config: Option<&Path>) {
    let url = format!("{base}/cgi-bin/imgserv.cgi?src=a.jpg&width=10");
    let r = get(&url);
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.header("location"), Some("/cache/hello.txt"), "{r:?}");
    assert_eq!(r.header("x-query"), Some("src=a.jpg&width=10"), "{r:?}");
    if let Some(config) = expect_config {
        assert_eq!(r.header("x-config"), config.to_str(), "{r:?}");
    }
    let file = follow(&url, r.header("location").unwrap());
    assert_eq!(file.status, 200, "{file:?}");
    assert_eq!(file.body, b"hello from the cache\n");
    let cache_control = file.header_all("cache-control").join(", ");
    assert!(
        cache_control.contains("max-age="),
        "no long caching: {file:?}"
    );
}

fn running_as_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
    uid.split_whitespace().next() == Some("0")
}

fn assert_all_gone(pids: &[u32], groups: &[u32]) {
    for &pid in pids {
        assert!(!pid_alive(pid), "process {pid} survived its Drop");
    }
    for &group in groups {
        let left = process_group_members(group);
        assert!(left.is_empty(), "process group {group} survived: {left:?}");
    }
}

#[test]
fn cgi_runner_parses_a_script_response() {
    let site = Site::new();
    let script = redirect_script(site.dir());
    let r = Cgi::program(&script)
        .env("IMGSERV_CONFIG", "/x.toml")
        .query("src=b.png")
        .run();
    assert_eq!((r.status, r.reason.as_str()), (302, "Found"));
    assert_eq!(r.header("Location"), Some("/cache/hello.txt"));
    assert_eq!(r.header("x-config"), Some("/x.toml"));
    assert_eq!(r.header("x-query"), Some("src=b.png"));
    assert_eq!(r.body, b"moved\n");
    assert!(r.exit.success());
}

#[test]
fn cgi_runner_feeds_a_body_larger_than_a_pipe() {
    let site = Site::new();
    // Answers before reading its input, then exits: the runner must not deadlock.
    let script = site.dir().join("early.cgi");
    fs::write(
        &script,
        "#!/bin/sh\nprintf 'Status: 413 Too Large\\r\\n\\r\\n'\n",
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let body = vec![b'x'; 4 << 20];
    let r = Cgi::program(&script)
        .method("POST")
        .body("application/octet-stream", &body)
        .run();
    assert_eq!(r.status, 413);
}

#[test]
fn site_is_reachable_by_other_users() {
    let site = Site::with_config("[cache]\nurl = \"/variants\"\n[extra]\nkey = 1\n");
    let config = fs::read_to_string(site.config_path()).unwrap();
    assert!(config.contains("/variants"), "{config}");
    assert!(config.contains(site.cache().to_str().unwrap()), "{config}");
    assert!(config.contains("[extra]"), "{config}");
    let photo = site.add_original_as("photo-rocket-640x427.jpg", "a/b/rocket.jpg");
    assert!(photo.is_file());
    for dir in [site.originals(), site.cache(), site.state()] {
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o777, "{}", dir.display());
    }
    assert!(site.dir().starts_with("/tmp"));
}

#[test]
fn nginx_static_only_serves_files() {
    let site = site_with_static_file();
    let (pid, port) = {
        let nginx = Nginx::static_only(&site.cache());
        let r = get(&nginx.url("/hello.txt"));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, b"hello from the cache\n");
        assert_eq!(get(&nginx.url("/missing")).status, 404);
        // A second instance on another port, at the same time.
        let other = Nginx::static_only(&site.cache());
        assert_ne!(other.port(), nginx.port());
        assert_eq!(get(&other.url("/hello.txt")).status, 200);
        (nginx.master().pid(), nginx.port())
    };
    assert_all_gone(&[pid], &[pid]);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn nginx_fcgiwrap_runs_a_cgi_and_serves_the_cache() {
    let site = site_with_static_file();
    let script = redirect_script(site.dir());
    let (master, backend) = {
        let nginx = Nginx::cgi_with(&site, &script);
        assert_redirect_then_static(&nginx.base(), Some(&site.config_path()));
        // A file missing from the cache goes to the CGI (the 404 handler), with its URL.
        let missing = get(&nginx.url("/cache/missing.txt?x=1"));
        assert_eq!(missing.status, 302, "{missing:?}");
        assert_eq!(missing.header("x-query"), Some("x=1"));
        (nginx.master().pid(), nginx.backend().unwrap().pid())
    };
    assert_all_gone(&[master, backend], &[master, backend]);
}

#[test]
fn nginx_fastcgi_keeps_working_across_a_reload() {
    let site = site_with_static_file();
    // fcgiwrap stands in for `imgserv-cgi --fastcgi`: it finds the script as
    // DOCUMENT_ROOT + SCRIPT_NAME.
    let fcgiwrap = require_program("fcgiwrap");
    let (master, backend) = {
        let nginx = Nginx::fastcgi_with(&site, |socket| {
            let mut command = Command::new(&fcgiwrap);
            command.arg("-s").arg(format!("unix:{}", socket.display()));
            command
        });
        let cgi_bin = nginx.docroot().join("cgi-bin");
        fs::create_dir_all(&cgi_bin).unwrap();
        fs::rename(redirect_script(site.dir()), cgi_bin.join("imgserv.cgi")).unwrap();
        assert_redirect_then_static(&nginx.base(), None);
        nginx.reload();
        assert_redirect_then_static(&nginx.base(), None);
        (nginx.master().pid(), nginx.backend().unwrap().pid())
    };
    assert_all_gone(&[master, backend], &[master, backend]);
}

#[test]
fn nginx_fastcgi_through_spawn_fcgi() {
    let site = site_with_static_file();
    let fcgiwrap = require_program("fcgiwrap");
    let (master, backend) = {
        // fcgiwrap, like imgserv-cgi, serves the listening socket it finds on fd 0.
        let nginx =
            Nginx::fastcgi_with(&site, |socket| spawn_fcgi(socket, &[fcgiwrap.as_os_str()]));
        let cgi_bin = nginx.docroot().join("cgi-bin");
        fs::create_dir_all(&cgi_bin).unwrap();
        fs::rename(redirect_script(site.dir()), cgi_bin.join("imgserv.cgi")).unwrap();
        assert_redirect_then_static(&nginx.base(), None);
        (nginx.master().pid(), nginx.backend().unwrap().pid())
    };
    assert_all_gone(&[master, backend], &[master, backend]);
}

#[test]
fn apache_runs_a_cgi_and_serves_the_cache() {
    let site = site_with_static_file();
    let script = redirect_script(site.dir());
    let pid = {
        let apache = Apache::cgi_with(&site, &script);
        assert_redirect_then_static(&apache.base(), Some(&site.config_path()));
        // Apache never runs CGIs as root: as root, the site must work for www-data.
        if running_as_root() {
            let r = get(&apache.url("/cgi-bin/imgserv.cgi"));
            assert_eq!(r.header("x-user"), Some("www-data"), "{r:?}");
        }
        let second = Apache::cgi_with(&site, &script);
        assert_redirect_then_static(&second.base(), Some(&site.config_path()));
        apache.server().pid()
    };
    assert_all_gone(&[pid], &[pid]);
}

#[test]
fn free_ports_are_not_repeated() {
    let ports: std::collections::HashSet<u16> = (0..50).map(|_| free_port()).collect();
    assert_eq!(ports.len(), 50);
}
