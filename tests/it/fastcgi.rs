//! The FastCGI responder behind real nginx (`fastcgi_pass`, kept-alive connections): round
//! trips over `--fastcgi` and over a socket handed in on fd 0 (spawn-fcgi), and the three
//! failures of the `fastcgi` crate that ours must not have — parameters lost to non-UTF-8
//! bytes, a worker killed by nginx closing kept-alive connections, the server ended by an
//! `accept()` error.

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use crate::support::{Nginx, get, imgserv_cgi, pid_alive};
use crate::web::{check_round_trips, site_with_samples};

const REQUEST: &str = "/cgi-bin/imgserv.cgi?src=photo-rocket-640x427.jpg&width=300&height=300";

fn assert_redirects(nginx: &Nginx) {
    let r = get(&nginx.url(REQUEST));
    assert_eq!(r.status, 302, "{} {}", r.status, r.body_text());
    assert!(r.header("location").unwrap().ends_with("/300x200.jpg"));
}

#[test]
fn nginx_fastcgi_pass() {
    let site = site_with_samples();
    let nginx = Nginx::fastcgi(&site);
    check_round_trips(&nginx.base(), "/cgi-bin/imgserv.cgi");
}

#[test]
fn listening_socket_on_fd_0_from_spawn_fcgi() {
    let site = site_with_samples();
    let nginx = Nginx::fastcgi_spawn_fcgi(&site);
    check_round_trips(&nginx.base(), "/cgi-bin/imgserv.cgi");
}

#[test]
fn non_utf8_request_path_is_refused_not_stripped() {
    let site = site_with_samples();
    let nginx = Nginx::fastcgi(&site);
    // nginx decodes PATH_INFO (and DOCUMENT_URI, SCRIPT_NAME) to the raw byte 0xFF.
    let r =
        get(&nginx
            .url("/cgi-bin/imgserv.cgi/x/%FF?src=photo-rocket-640x427.jpg&width=300&height=300"));
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert!(r.body_text().contains("PATH_INFO"), "{}", r.body_text());
    // A Latin-1 byte in a header the handler does not read loses nothing either.
    let r = crate::support::request("GET", &nginx.url(REQUEST), &[("X-Name", "caf\u{e9}")], &[]);
    assert_eq!(r.status, 302, "{}", r.body_text());
    assert_redirects(&nginx);
}

#[test]
fn nginx_reloading_kept_alive_connections_kills_nothing() {
    let site = site_with_samples();
    let nginx = Nginx::fastcgi(&site);
    for _ in 0..4 {
        for _ in 0..8 {
            assert_redirects(&nginx);
        }
        // Old workers close their kept-alive upstream connections, mid-stream for us.
        nginx.reload();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_redirects(&nginx);
    let backend = nginx.backend().unwrap();
    assert!(
        pid_alive(backend.pid()),
        "the FastCGI server died:\n{}",
        backend.log()
    );
    assert!(!backend.log().contains("panicked"), "{}", backend.log());
}

#[test]
fn accept_errors_do_not_end_the_server() {
    let site = site_with_samples();
    let config = site.config_path();
    // Few file descriptors, so that a burst of connections makes accept() fail with EMFILE.
    let nginx = Nginx::fastcgi_with(&site, |socket| {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("ulimit -n 40 && exec \"$0\" --fastcgi \"$1\" --config \"$2\"")
            .arg(imgserv_cgi())
            .arg(socket)
            .arg(&config);
        sh
    });
    assert_redirects(&nginx);
    let socket = nginx.dir().join("fcgi.sock");
    let flood: Vec<UnixStream> = (0..80)
        .filter_map(|_| UnixStream::connect(&socket).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(flood);
    std::thread::sleep(Duration::from_millis(300));
    let backend = nginx.backend().unwrap();
    assert!(
        pid_alive(backend.pid()),
        "the FastCGI server died:\n{}",
        backend.log()
    );
    let mut ok = false;
    for _ in 0..20 {
        if get(&nginx.url(REQUEST)).status == 302 {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ok, "no answer after the flood:\n{}", backend.log());
    assert!(
        backend.log().to_lowercase().contains("too many open files"),
        "the flood should have made accept() fail:\n{}",
        backend.log()
    );
}
