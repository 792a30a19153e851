//! Request and response bodies on the real transports: a `Content-Length` over
//! `[api] max_body_bytes` is answered 413 before any of the body is read (CGI, FastCGI,
//! standalone); a large body waiting for its signature check, and a large original on its way
//! out (from a directory and from S3), never sit whole in the server's memory; a refused body
//! leaves no file behind.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use imgserv::domain::original::OriginalId;
use imgserv::io::catalog::{Catalog, Inserted};
use imgserv::usecases::ingest::{self, Upload};
use imgserv::web::transport::fastcgi::{
    HEADER_LEN, Header, KEEP_CONN, ROLE_RESPONDER, encode_params, encode_record, kind,
};

use crate::support::{Child, S3Server, Site, fixture_bytes, free_port, imgserv_cgi};

/// How long a server may take to answer a refused body; it never gets the body, so waiting
/// this long means it is waiting for it.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// A JPEG of `size` bytes or a little more: a real 640×427 photo with comment segments after
/// its SOI, so it passes every upload check while costing no pixels.
fn big_jpeg(size: usize) -> Vec<u8> {
    let photo = fixture_bytes("photo-rocket-640x427.jpg");
    let mut out = photo[..2].to_vec();
    let mut n = 0u32;
    while out.len() + photo.len() < size {
        let payload = 65_533usize;
        out.extend_from_slice(&[0xff, 0xfe, 0xff, 0xff]);
        out.extend((0..payload).map(|i| b'a' + ((i as u32 + n) % 26) as u8));
        n += 1;
    }
    out.extend_from_slice(&photo[2..]);
    out
}

/// Peak resident memory of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Every file below `dir`.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// `imgserv-cgi --fastcgi 127.0.0.1:PORT` for `site`.
fn fastcgi_server(site: &Site) -> (Child, u16) {
    let port = free_port();
    let mut cmd = Command::new(imgserv_cgi());
    cmd.args(["--fastcgi", &format!("127.0.0.1:{port}"), "--config"])
        .arg(site.config_path())
        .args(["--workers", "2"]);
    let mut server = Child::spawn("fastcgi", cmd, site.dir());
    server.wait_for_port(port, Duration::from_secs(10));
    (server, port)
}

/// The records of a FastCGI request's head: `BEGIN_REQUEST` and the whole `PARAMS` stream.
fn fcgi_head(id: u16, params: &[(&str, &str)]) -> Vec<u8> {
    let mut out = encode_record(
        kind::BEGIN_REQUEST,
        id,
        &[0, ROLE_RESPONDER as u8, KEEP_CONN, 0, 0, 0, 0, 0],
    );
    let pairs = encode_params(params.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    for piece in pairs.chunks(60_000) {
        out.extend(encode_record(kind::PARAMS, id, piece));
    }
    out.extend(encode_record(kind::PARAMS, id, &[]));
    out
}

/// Writes `body` as `FCGI_STDIN` records and the empty one that ends it.
fn fcgi_stdin(w: &mut impl Write, id: u16, body: &[u8]) -> std::io::Result<()> {
    for piece in body.chunks(60_000) {
        w.write_all(&encode_record(kind::STDIN, id, piece))?;
    }
    w.write_all(&encode_record(kind::STDIN, id, &[]))
}

/// The status and body of a FastCGI answer, read up to its `END_REQUEST`.
fn fcgi_reply(r: &mut impl Read) -> (u16, Vec<u8>) {
    let mut stdout = Vec::new();
    loop {
        let mut head = [0u8; HEADER_LEN];
        r.read_exact(&mut head).expect("a record header");
        let header = Header::decode(&head).unwrap();
        let mut content =
            vec![0u8; usize::from(header.content_len) + usize::from(header.padding_len)];
        r.read_exact(&mut content).unwrap();
        content.truncate(usize::from(header.content_len));
        match header.kind {
            kind::STDOUT => stdout.extend_from_slice(&content),
            kind::END_REQUEST => break,
            _ => {}
        }
    }
    let split = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a CGI head");
    let head = String::from_utf8_lossy(&stdout[..split]).into_owned();
    let status = head
        .strip_prefix("Status: ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, stdout[split + 4..].to_vec())
}

#[test]
fn cgi_answers_a_content_length_over_the_limit_before_reading_stdin() {
    let site = Site::with_config("[api]\nmax_body_bytes = 1000\n");
    let mut child = Command::new(imgserv_cgi())
        .env_clear()
        .envs([
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/cgi-bin/imgserv.cgi"),
            ("PATH_INFO", "/api/images"),
            ("QUERY_STRING", ""),
            ("CONTENT_TYPE", "image/jpeg"),
            ("CONTENT_LENGTH", "100000"),
            ("IMGSERV_CONFIG", site.config_path().to_str().unwrap()),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Standard input stays open and empty: a program that reads it waits forever.
    let stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        let _ = tx.send(out);
    });
    let answer = rx.recv_timeout(ANSWER_WITHIN);
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    let out = answer.expect("the CGI answered while its body was still unwritten");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("Status: 413 "), "{text}");
    assert!(text.contains("body-too-large"), "{text}");
}

#[test]
fn fastcgi_answers_a_content_length_over_the_limit_before_the_body_and_goes_on() {
    // Public reads: the second request, a GET of the categories, needs no signature.
    let site = Site::with_config("[api]\nmax_body_bytes = 1000\npublic_reads = true\n");
    let (_server, port) = fastcgi_server(&site);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    let params = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/api/images"),
        ("CONTENT_TYPE", "image/jpeg"),
        ("CONTENT_LENGTH", "5000"),
    ];
    s.write_all(&fcgi_head(1, &params)).unwrap();
    // Nothing of the body yet: the answer comes from the declared length alone.
    let (status, body) = fcgi_reply(&mut s);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    // The body that follows anyway is skipped, and the kept-alive connection goes on.
    fcgi_stdin(&mut s, 1, &[7; 5000]).unwrap();
    s.write_all(&fcgi_head(
        2,
        &[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/api/categories")],
    ))
    .unwrap();
    fcgi_stdin(&mut s, 2, b"").unwrap();
    let (status, body) = fcgi_reply(&mut s);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn standalone_answers_a_content_length_over_the_limit_before_the_body() {
    let site = Site::with_config("[api]\nmax_body_bytes = 1000\n");
    let (_server, base) = crate::support::standalone(&site);
    let mut s = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    s.write_all(
        b"POST /imgserv.cgi/api/images HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n\
          Content-Length: 5000000\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head)
        .expect("an answer while the body is still unsent");
    assert_eq!(&head, b"HTTP/1.1 413");
}

/// An unsigned upload of 48 MiB through FastCGI: refused 401 after its body was received to
/// an anonymous temporary file, never into memory, and nothing is left on disk.
#[test]
fn fastcgi_unsigned_large_upload_stays_out_of_memory_and_leaves_nothing() {
    let site = Site::new();
    let (server, port) = fastcgi_server(&site);
    let body = big_jpeg(48 << 20);
    let before_files = files(site.dir());
    let before = peak_rss(server.pid());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let length = body.len().to_string();
    let params = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/api/images"),
        ("CONTENT_TYPE", "image/jpeg"),
        ("CONTENT_LENGTH", length.as_str()),
    ];
    s.write_all(&fcgi_head(1, &params)).unwrap();
    fcgi_stdin(&mut s, 1, &body).unwrap();
    let (status, reply) = fcgi_reply(&mut s);
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&reply));
    let grown = peak_rss(server.pid()).saturating_sub(before);
    assert!(
        grown < body.len() as u64 / 4,
        "peak memory grew by {grown} bytes for a {}-byte body",
        body.len()
    );
    let after_files = files(site.dir());
    let new: Vec<_> = after_files.difference(&before_files).collect();
    // The catalog opened for the key lookup is all that may appear.
    assert!(
        new.iter().all(|p| p.to_string_lossy().contains(".sqlite")),
        "files left: {new:?}"
    );
}

/// Adds `bytes` to the site's store and catalog, as an upload would.
fn add_original(site: &Site, bytes: &[u8]) -> OriginalId {
    let config = imgserv::io::config::load(&site.config_path(), &[]).unwrap();
    let store = imgserv::io::store::open(&config.store).unwrap();
    let mut catalog = Catalog::open(&config.state.catalog_path()).unwrap();
    match ingest::ingest(
        &config,
        store.as_ref(),
        &mut catalog,
        bytes,
        &Upload::default(),
    ) {
        Ok(Inserted::New(image)) => image.id,
        other => panic!("ingest: {other:?}"),
    }
}

/// Gets `/api/images/{id}` from a FastCGI server; returns the server's peak memory growth.
fn download_through_fastcgi(server: &Child, port: u16, id: &OriginalId, want: &[u8]) -> u64 {
    let before = peak_rss(server.pid());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let path = format!("/api/images/{id}");
    s.write_all(&fcgi_head(
        1,
        &[("REQUEST_METHOD", "GET"), ("PATH_INFO", &path)],
    ))
    .unwrap();
    fcgi_stdin(&mut s, 1, b"").unwrap();
    let (status, body) = fcgi_reply(&mut s);
    assert_eq!(
        status,
        200,
        "{}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    assert!(body == want, "the original came back different");
    peak_rss(server.pid()).saturating_sub(before)
}

/// A 48 MiB original put in `site`'s store, downloaded through the FastCGI server: its peak
/// memory grows by less than a quarter of the original's size.
fn streams_a_48_mib_original_out(site: &Site) {
    let original = big_jpeg(48 << 20);
    let id = add_original(site, &original);
    let (server, port) = fastcgi_server(site);
    let grown = download_through_fastcgi(&server, port, &id, &original);
    assert!(
        grown < original.len() as u64 / 4,
        "peak memory grew by {grown} bytes for a {}-byte original",
        original.len()
    );
}

#[test]
fn fastcgi_streams_a_large_original_out_of_the_fs_store() {
    // Public reads: the raw FastCGI GET is not signed (what is measured is memory).
    let site = Site::with_config("[api]\npublic_reads = true\n");
    streams_a_48_mib_original_out(&site);
}

#[test]
fn fastcgi_streams_a_large_original_out_of_s3() {
    let s3 = S3Server::start();
    let site = Site::with_config(&format!(
        "[api]\npublic_reads = true\n[store]\ntype = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\n",
        s3.endpoint(),
        S3Server::BUCKET,
        S3Server::ACCESS_KEY,
        S3Server::SECRET_KEY
    ));
    streams_a_48_mib_original_out(&site);
}

/// The whole way behind real nginx: a signed multipart upload of a 20 MiB original through
/// FastCGI (read part by part from its spooled body), then the original streamed back.
#[test]
fn nginx_fastcgi_signed_multipart_upload_and_streamed_original() {
    let site = Site::new();
    let config = imgserv::io::config::load(&site.config_path(), &[]).unwrap();
    let key = {
        let mut catalog = Catalog::open(&config.state.catalog_path()).unwrap();
        catalog.add_user("alice").unwrap();
        catalog
            .add_key(
                "alice",
                imgserv::io::catalog::Rights::WRITE | imgserv::io::catalog::Rights::READ,
            )
            .unwrap()
    };
    let nginx = crate::support::Nginx::fastcgi(&site);
    let original = big_jpeg(20 << 20);
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\n/big\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n\
        Content-Type: image/jpeg\r\n\r\n"
        .to_vec();
    body.extend_from_slice(&original);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let mut req = crate::api::unsigned("POST", "/api/images", "", &body);
    req.headers.push((
        "content-type".into(),
        "multipart/form-data; boundary=XyZ".into(),
    ));
    let req = crate::api::sign_with(&key, req);
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let url = nginx.url("/cgi-bin/imgserv.cgi/api/images");
    let r = crate::support::request("POST", &url, &headers, &body);
    assert_eq!(r.status, 201, "{}", r.body_text());
    let id = OriginalId::of(&original).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["category"], "/big");
    assert_eq!(json["bytes"], original.len() as u64);

    let path = format!("/api/images/{id}");
    let req = crate::api::sign_with(&key, crate::api::unsigned("GET", &path, "", b""));
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let r = crate::support::request(
        "GET",
        &nginx.url(&format!("/cgi-bin/imgserv.cgi{path}")),
        &headers,
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.header("content-length"),
        Some(original.len().to_string().as_str())
    );
    assert!(r.body == original, "the original came back different");
}

/// A CGI process whose data segment is limited to 24 MiB (`ulimit -d`) still answers an
/// unsigned 48 MiB upload: the body goes to an anonymous temporary file, never into memory
/// (the old adapter read it into one buffer, and the allocation failed).
#[test]
fn cgi_unsigned_large_upload_stays_out_of_memory() {
    let site = Site::new();
    let before_files = files(site.dir());
    let body = big_jpeg(48 << 20);
    let cgi = imgserv_cgi();
    let r = crate::support::Cgi::program(Path::new("/bin/sh"))
        .arg("-c")
        .arg("ulimit -d 24576 && exec \"$0\"")
        .arg(cgi.to_str().unwrap())
        .env("IMGSERV_CONFIG", site.config_path().to_str().unwrap())
        .method("POST")
        .path_info("/api/images")
        .body("image/jpeg", &body)
        .run();
    assert_eq!(r.status, 401, "{}\n{}", r.body_text(), r.stderr.0);
    let after_files = files(site.dir());
    let new: Vec<_> = after_files.difference(&before_files).collect();
    assert!(
        new.iter().all(|p| p.to_string_lossy().contains(".sqlite")),
        "files left: {new:?}"
    );
}

/// A route's own body limit (here: routes that take no body) is enforced by the route table
/// before authentication and before the handler: the real CGI binary answers `413` to a read
/// or a delete that carries a body, signed or not, and the image is untouched.
#[test]
fn cgi_a_route_that_takes_no_body_refuses_one_before_its_handler() {
    let site = Site::new();
    let id = add_original(&site, &fixture_bytes("photo-rocket-640x427.jpg"));
    let image = format!("/api/images/{id}");
    for (method, path) in [
        ("GET", "/api/categories"),
        ("HEAD", image.as_str()),
        ("DELETE", image.as_str()),
    ] {
        let r = crate::support::Cgi::new(&site)
            .method(method)
            .path_info(path)
            .body("text/plain", b"unexpected")
            .run();
        assert_eq!(r.status, 413, "{method} {path}: {}", r.stderr.0);
        if method != "HEAD" {
            assert!(
                r.body_text().contains("body-too-large"),
                "{}",
                r.body_text()
            );
        }
        // Without a body the same request reaches authentication (no signature: 401).
        let r = crate::support::Cgi::new(&site)
            .method(method)
            .path_info(path)
            .run();
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body_text());
    }
    let config = imgserv::io::config::load(&site.config_path(), &[]).unwrap();
    let catalog = Catalog::open(&config.state.catalog_path()).unwrap();
    assert!(
        catalog.get(&id).unwrap().is_some(),
        "the image is still there"
    );
}
