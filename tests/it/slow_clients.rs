//! Slow, stalled and oversized clients against the real `imgserv-cgi` servers: a connection
//! that stops inside a request is closed after `[server] read_timeout` without holding a
//! worker, and the standalone server bounds a request head (line, size, field count) and goes
//! on serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Child, Site, free_port, get, imgserv_cgi};

/// Workers and connections as small as they go, and a one-second read timeout.
const TIGHT: &str = "[server]\nworkers = 1\nread_timeout = \"1s\"\n";

fn connect(base: &str) -> TcpStream {
    let s = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    // A server that never closes should fail the test, not hang it.
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Reads until the server closes; panics if it has not within 15 s.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("connection still open: {e}"),
        }
    }
}

#[test]
fn standalone_closes_a_stalled_client_after_read_timeout_holding_no_worker() {
    let site = Site::with_config(TIGHT);
    let (_server, base) = crate::support::standalone(&site);
    let stalls: [(&str, &[u8]); 3] = [
        ("mid-line", b"GET /imgserv.cgi?src=a.jpg&w=1"),
        ("mid-head", b"GET / HTTP/1.1\r\nHost: x\r\n"),
        (
            "mid-body",
            b"POST /imgserv.cgi/api/images HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
        ),
    ];
    for (what, bytes) in stalls {
        let mut stalled = connect(&base);
        stalled.write_all(bytes).unwrap();
        thread::sleep(Duration::from_millis(200));
        // Meanwhile the only worker serves someone else.
        let t = Instant::now();
        assert_eq!(get(&format!("{base}/")).status, 200, "{what}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{what}: waited {:?}",
            t.elapsed()
        );
        read_until_closed(&mut stalled);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: closed after {:?}",
            t.elapsed()
        );
    }
    assert_eq!(get(&format!("{base}/")).status, 200);
}

/// Sends `request` from another thread (the server may answer before it has read it all) and
/// returns the status line of the answer, after which the server must have closed.
fn status_line_of(base: &str, request: Vec<u8>) -> String {
    let mut s = connect(base);
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let _ = w.write_all(&request);
    });
    let answer = read_until_closed(&mut s);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn standalone_bounds_the_request_head_and_goes_on_serving() {
    let site = Site::with_config(TIGHT);
    let (_server, base) = crate::support::standalone(&site);
    let cases = [
        (
            "a 1 MiB request line",
            format!("GET /imgserv.cgi?src={} HTTP/1.1\r\n\r\n", "a".repeat(1 << 20)),
            "HTTP/1.1 414 ",
        ),
        (
            "a 100 KiB header field",
            format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(100 << 10)),
            "HTTP/1.1 431 ",
        ),
        (
            "20,000 header fields",
            format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(20_000)),
            "HTTP/1.1 431 ",
        ),
        (
            "a chunked body",
            "POST /imgserv.cgi/api/images HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_string(),
            "HTTP/1.1 411 ",
        ),
        (
            "two Content-Lengths",
            "POST /imgserv.cgi/api/images HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
                .to_string(),
            "HTTP/1.1 400 ",
        ),
    ];
    for (what, request, want) in cases {
        let line = status_line_of(&base, request.into_bytes());
        assert!(line.starts_with(want), "{what}: {line:?}");
        assert_eq!(get(&format!("{base}/")).status, 200, "after {what}");
    }
}

#[test]
fn fastcgi_closes_a_client_stalled_mid_record_after_read_timeout() {
    let site = Site::with_config(&format!("{TIGHT}max_conns = 1\n"));
    let port = free_port();
    let mut cmd = Command::new(imgserv_cgi());
    cmd.args(["--fastcgi", &format!("127.0.0.1:{port}"), "--config"])
        .arg(site.config_path());
    let mut server = Child::spawn("fastcgi", cmd, site.dir());
    server.wait_for_port(port, Duration::from_secs(10));
    let base = format!("127.0.0.1:{port}");
    // Half of an FCGI_BEGIN_REQUEST record (version 1, type 1, id 1, 8 bytes of content).
    let mut stalled = connect(&base);
    stalled.write_all(&[1, 1, 0, 1, 0, 8, 0, 0, 0, 1]).unwrap();
    let t = Instant::now();
    read_until_closed(&mut stalled);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        t.elapsed()
    );
    // Its only connection slot is free again: a management query is answered.
    let mut next = connect(&base);
    let mut query = vec![1, 9, 0, 0, 0, 16, 0, 0, 14, 0];
    query.extend_from_slice(b"FCGI_MAX_CONNS");
    next.write_all(&query).unwrap();
    let mut head = [0u8; 8];
    next.read_exact(&mut head).unwrap();
    assert_eq!(head[1], 10, "FCGI_GET_VALUES_RESULT");
}
