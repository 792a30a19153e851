use super::*;
use copy::hex;
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use tiny_http::{Header, Response, ResponseBox, StatusCode};

// ---- pure parts ----------------------------------------------------------------------

#[test]
fn is_remote_accepts_http_and_https_in_any_case() {
    for (src, remote) in [
        ("http://a/b", true),
        ("HTTPS://a/b", true),
        ("HtTp://a", true),
        ("ftp://a/b", false),
        ("http:/a", false),
        ("photos/http://a", false),
        ("", false),
        ("é", false),
    ] {
        assert_eq!(is_remote(src), remote, "{src}");
    }
}

#[test]
fn bad_urls_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    for url in [
        "http://user:pass@127.0.0.1/a.jpg",
        "http://user@127.0.0.1/a.jpg",
        "ftp://127.0.0.1/a.jpg",
        "file:///etc/passwd",
        "http://",
        "http:///a.jpg",
        "http://127.0.0.1:99999/a.jpg",
        "http://127.0.0.1:0/a.jpg",
        "http://127.0.0.1:8x/a.jpg",
        "http://[::1]:65536/a.jpg",
        "http://127.0.0.1/a b.jpg",
        "http://127.0.0.1/\n",
        "not a url",
        "",
    ] {
        let err = fetch(&opts, url).unwrap_err();
        assert!(matches!(err, SourceError::Invalid(_)), "{url:?}: {err:?}");
    }
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn host_checks_happen_before_any_network() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.allow_hosts.clear();
    let err = fetch(&opts, "http://127.0.0.1/a.jpg").unwrap_err();
    assert!(
        matches!(&err, SourceError::Forbidden(m) if m == "remote sources are disabled"),
        "{err:?}"
    );
    opts.allow_hosts = vec!["images.example.com".to_owned()];
    let err = fetch(&opts, "https://other.example.com/a.jpg").unwrap_err();
    assert!(
        matches!(&err, SourceError::Forbidden(m) if m.contains("other.example.com")),
        "{err:?}"
    );
}

#[test]
fn freshness_is_by_whole_seconds_and_never_from_the_future() {
    let hour = Duration::from_secs(3600);
    assert!(is_fresh(100, 100, hour));
    assert!(is_fresh(100, 3699, hour));
    assert!(!is_fresh(100, 3700, hour));
    assert!(!is_fresh(100, 100, Duration::ZERO));
    assert!(!is_fresh(200, 100, hour));
}

// ---- against loopback servers --------------------------------------------------------

#[test]
fn fetches_a_complete_copy_with_a_content_version() {
    let body = b"\x89PNG fake image bytes".to_vec();
    let served = body.clone();
    let server = TestServer::start(move |_, _| ok(&served));
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir.path().join("remote"));

    let got = fetch(&opts, &server.url("/a.png")).unwrap();

    assert_eq!(got.bytes, body.len() as u64);
    assert_eq!(fs::read(&got.path).unwrap(), body);
    assert_eq!(got.version, hex(&Sha256::digest(&body)[..8]));
    assert_eq!(got.version.len(), 16);
    let key = hex(&Sha256::digest(server.url("/a.png").as_bytes())[..16]);
    assert_eq!(got.path, opts.dir.join(format!("{key}.img")));
    assert_eq!(
        files(&opts.dir),
        [format!("{key}.img"), format!("{key}.meta")]
    );
    let meta = Meta::parse(&fs::read_to_string(opts.dir.join(format!("{key}.meta"))).unwrap());
    assert_eq!(
        meta.map(|m| (m.version, m.bytes)),
        Some((got.version, got.bytes))
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("user-agent"), Some(opts.user_agent.as_str()));
}

#[test]
fn private_addresses_are_refused_before_any_request() {
    let server = TestServer::start(|_, _| ok(b"secret"));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.allow_private = false;

    // A literal address is refused by the allow-list step.
    let err = fetch(&opts, &server.url("/a")).unwrap_err();
    assert!(
        matches!(&err, SourceError::Forbidden(m) if m.contains("loopback")),
        "{err:?}"
    );

    // A name is refused by the resolver, i.e. on the address that would be connected to.
    opts.allow_hosts = vec!["localhost".to_owned()];
    let url = format!("http://localhost:{}/a", server.port);
    let err = fetch(&opts, &url).unwrap_err();
    assert!(
        matches!(&err, SourceError::Forbidden(m) if m.contains("localhost")),
        "{err:?}"
    );

    assert_eq!(server.hits(), 0);
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn redirect_chain_within_the_limit_is_followed() {
    let server = TestServer::start(|seen, _| match seen.url.as_str() {
        "/one" => redirect(301, "/two"),
        "/two" => redirect(302, "three?x=1"),
        "/three?x=1" => redirect(307, &format!("http://127.0.0.1:{}/final", seen.port)),
        "/final" => ok(b"landed"),
        _ => status(500),
    });
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());

    let got = fetch(&opts, &server.url("/one")).unwrap();

    assert_eq!(fs::read(&got.path).unwrap(), b"landed");
    let urls: Vec<String> = server.seen().into_iter().map(|s| s.url).collect();
    assert_eq!(urls, ["/one", "/two", "/three?x=1", "/final"]);
}

#[test]
fn redirects_are_checked_like_the_first_url() {
    let server = TestServer::start(|seen, _| match seen.url.as_str() {
        "/elsewhere" => redirect(302, "http://elsewhere.invalid/a.jpg"),
        "/ftp" => redirect(301, "ftp://127.0.0.1/a.jpg"),
        "/creds" => redirect(301, "http://u:p@127.0.0.1/a.jpg"),
        _ => redirect(302, ""),
    });
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());

    let err = fetch(&opts, &server.url("/elsewhere")).unwrap_err();
    assert!(
        matches!(&err, SourceError::Forbidden(m) if m.contains("elsewhere.invalid")),
        "{err:?}"
    );
    for path in ["/ftp", "/creds", "/empty"] {
        let err = fetch(&opts, &server.url(path)).unwrap_err();
        assert!(
            matches!(&err, SourceError::Remote(m) if m.contains("redirect")),
            "{path}: {err:?}"
        );
    }
    assert_eq!(server.hits(), 4);
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn redirect_loop_stops_after_max_redirects() {
    let server = TestServer::start(|_, _| redirect(308, "/loop"));
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());

    let err = fetch(&opts, &server.url("/loop")).unwrap_err();

    assert!(
        matches!(&err, SourceError::Remote(m) if m == "too many redirects"),
        "{err:?}"
    );
    assert_eq!(server.hits(), opts.max_redirects as usize + 1);
}

#[test]
fn not_found_is_a_remote_error() {
    let server = TestServer::start(|_, _| status(404));
    let dir = tempfile::tempdir().unwrap();

    let err = fetch(&options(dir.path()), &server.url("/missing")).unwrap_err();

    assert!(
        matches!(&err, SourceError::Remote(m) if m.contains("404")),
        "{err:?}"
    );
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn content_length_over_the_limit_is_too_large() {
    let server = TestServer::start(|_, _| ok(&[7; 1000]));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.max_source_bytes = 999;

    let err = fetch(&opts, &server.url("/big")).unwrap_err();

    assert!(
        matches!(err, SourceError::TooLarge { limit: 999 }),
        "{err:?}"
    );
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn chunked_body_growing_past_the_limit_is_too_large() {
    let server = TestServer::start(|_, _| {
        // No length: tiny_http sends it chunked, so only counting can catch it.
        let endless: Box<dyn Read + Send> = Box::new(io::repeat(b'x').take(10 << 20));
        Response::new(StatusCode(200), vec![], endless, None, None)
    });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.max_source_bytes = 100_000;

    let err = fetch(&opts, &server.url("/endless")).unwrap_err();

    assert!(
        matches!(err, SourceError::TooLarge { limit: 100_000 }),
        "{err:?}"
    );
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn slow_server_times_out_quickly() {
    let server = TestServer::start(|_, _| {
        std::thread::sleep(Duration::from_millis(1500));
        ok(b"late")
    });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.timeout = Duration::from_millis(300);

    let started = Instant::now();
    let err = fetch(&opts, &server.url("/slow")).unwrap_err();

    assert!(
        matches!(&err, SourceError::Remote(m) if m.contains("timed out")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn copy_within_ttl_is_used_without_network() {
    let server = TestServer::start(|_, _| ok(b"once"));
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());

    let first = fetch(&opts, &server.url("/a")).unwrap();
    let second = fetch(&opts, &server.url("/a")).unwrap();

    assert_eq!(first, second);
    assert_eq!(server.hits(), 1);
}

#[test]
fn not_modified_keeps_the_copy_and_refreshes_fetched_at() {
    let server = TestServer::start(|seen, _| {
        if seen.header("if-none-match") == Some("\"v1\"") {
            status(304)
        } else {
            ok(b"same bytes")
                .with_header(header("ETag", "\"v1\""))
                .with_header(header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT"))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.ttl = Duration::ZERO;
    let url = server.url("/a");

    let first = fetch(&opts, &url).unwrap();
    // Pretend the copy is old, to see fetched_at move.
    let copy = LocalCopy::new(&opts.dir, &url);
    let (mut meta, _) = copy.load(&url).unwrap();
    meta.fetched_at = 1;
    copy.write_meta(&opts.dir, &meta).unwrap();
    let second = fetch(&opts, &url).unwrap();

    assert_eq!(first, second);
    assert_eq!(fs::read(&second.path).unwrap(), b"same bytes");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("if-none-match"), None);
    assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""));
    assert_eq!(
        seen[1].header("if-modified-since"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );
    let (meta, _) = copy.load(&url).unwrap();
    assert!(meta.fetched_at > 1);
    assert_eq!(meta.validators.etag.as_deref(), Some("\"v1\""));
}

#[test]
fn changed_bytes_give_a_new_version() {
    let server = TestServer::start(|_, n| ok(format!("body number {n}").as_bytes()));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.ttl = Duration::ZERO;
    let url = server.url("/a");

    let first = fetch(&opts, &url).unwrap();
    let second = fetch(&opts, &url).unwrap();

    assert_ne!(first.version, second.version);
    assert_eq!(first.path, second.path);
    assert_eq!(fs::read(&second.path).unwrap(), b"body number 1");
    assert_eq!(files(dir.path()).len(), 2, "only .img and .meta");
}

#[test]
fn stale_copy_is_served_when_the_server_is_gone_or_failing() {
    let server = TestServer::start(|_, n| if n == 0 { ok(b"kept") } else { status(503) });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.ttl = Duration::ZERO;
    let url = server.url("/a");

    let first = fetch(&opts, &url).unwrap();
    assert_eq!(
        fetch(&opts, &url).unwrap(),
        first,
        "503 serves the stale copy"
    );
    drop(server);
    assert_eq!(fetch(&opts, &url).unwrap(), first, "refused connection too");
    assert_eq!(fs::read(&first.path).unwrap(), b"kept");
}

#[test]
fn gone_on_revalidation_drops_the_copy() {
    let server = TestServer::start(|_, n| if n == 0 { ok(b"doomed") } else { status(410) });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.ttl = Duration::ZERO;
    let url = server.url("/a");

    fetch(&opts, &url).unwrap();
    let err = fetch(&opts, &url).unwrap_err();

    assert!(
        matches!(&err, SourceError::Remote(m) if m.contains("410")),
        "{err:?}"
    );
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn validators_are_never_sent_to_another_host_after_a_redirect() {
    // Host B: the redirect's target, with validators of its own.
    let b = TestServer::start(|_, _| {
        ok(b"from b")
            .with_header(header("ETag", "\"b1\""))
            .with_header(header("Last-Modified", "Thu, 22 Oct 2015 07:28:00 GMT"))
    });
    let b_url = format!("http://localhost:{}/b", b.port);
    // Host A: answers itself first, with its validators, then redirects to B.
    let a = TestServer::start(move |_, n| match n {
        0 => ok(b"from a")
            .with_header(header("ETag", "\"a1\""))
            .with_header(header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")),
        _ => redirect(302, &b_url),
    });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.allow_hosts.push("localhost".to_owned());
    opts.ttl = Duration::ZERO;
    let url = a.url("/a");

    assert_eq!(
        fs::read(fetch(&opts, &url).unwrap().path).unwrap(),
        b"from a"
    );
    // Revalidation: A gets its own validators back, B none of them.
    assert_eq!(
        fs::read(fetch(&opts, &url).unwrap().path).unwrap(),
        b"from b"
    );
    let (a_seen, b_seen) = (a.seen(), b.seen());
    assert_eq!(a_seen[1].header("if-none-match"), Some("\"a1\""));
    assert_eq!(b_seen.len(), 1);
    assert_eq!(b_seen[0].header("if-none-match"), None, "{b_seen:?}");
    assert_eq!(b_seen[0].header("if-modified-since"), None, "{b_seen:?}");
    // The copy now holds B's validators: they go to B, not to A.
    fetch(&opts, &url).unwrap();
    let (a_seen, b_seen) = (a.seen(), b.seen());
    assert_eq!(a_seen[2].header("if-none-match"), None, "{a_seen:?}");
    assert_eq!(a_seen[2].header("if-modified-since"), None, "{a_seen:?}");
    assert_eq!(b_seen[1].header("if-none-match"), Some("\"b1\""));
}

#[test]
fn concurrent_misses_on_one_url_fetch_it_once() {
    let server = TestServer::start(|_, _| {
        std::thread::sleep(Duration::from_millis(300));
        ok(b"slow and single")
    });
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let url = server.url("/a");
    let got: Vec<Fetched> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| fetch(&opts, &url).unwrap()))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(got.iter().all(|g| *g == got[0]));
    assert_eq!(server.hits(), 1);
}

#[test]
fn client_messages_hold_no_address_the_log_does() {
    let server = TestServer::start(|_, _| redirect(302, "ftp://10.9.8.7/secret.jpg"));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    let err = fetch(&opts, &server.url("/a")).unwrap_err();
    assert!(!err.to_string().contains("10.9.8.7"), "{err}");
    // A name resolving to a refused address: the host, not the address.
    opts.allow_private = false;
    opts.allow_hosts = vec!["localhost".to_owned()];
    let err = fetch(&opts, &format!("http://localhost:{}/a", server.port)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("localhost"), "{text}");
    assert!(
        !text.contains("127.0.0.1") && !text.contains("::1"),
        "{text}"
    );
    // Network failures: a fixed phrase for the client. A port nothing listens on (not the
    // server's: its listener may still be closing, and a connection to it then is reset).
    drop(server);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = options(dir.path());
    opts.ttl = Duration::ZERO;
    let err = fetch(&opts, &format!("http://127.0.0.1:{port}/gone")).unwrap_err();
    assert!(
        matches!(&err, SourceError::Remote(m) if m == "connection refused"),
        "{err:?}"
    );
}

#[test]
fn an_https_origin_redirecting_to_http_is_refused() {
    let plain = TestServer::start(|_, _| ok(b"in the clear"));
    let tls = TlsServer::start(&format!(
        "HTTP/1.0 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
        plain.url("/x.jpg")
    ));
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());

    let err = fetch(&opts, &tls.url("/redirect")).unwrap_err();

    assert!(
        matches!(&err, SourceError::Forbidden(m) if m.contains("https to http")),
        "{err:?}"
    );
    assert_eq!(plain.hits(), 0, "nothing was asked in the clear");
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

// ---- helpers -------------------------------------------------------------------------

/// `openssl s_server -HTTP` on 127.0.0.1 with a throwaway certificate, answering every
/// path with the raw HTTP response `answer`; killed on drop.
struct TlsServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    fn start(answer: &str) -> TlsServer {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("redirect"), answer).unwrap();
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
            ])
            .current_dir(dir.path())
            .stderr(Stdio::null())
            .status()
            .expect("openssl (scripts/install-deps.sh installs it)");
        assert!(made.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args([
                "s_server", "-quiet", "-HTTP", "-cert", "cert.pem", "-key", "key.pem",
            ])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let server = TlsServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(dir: &Path) -> RemoteOptions {
    RemoteOptions {
        allow_hosts: vec!["127.0.0.1".to_owned()],
        allow_private: true,
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        dir: dir.to_owned(),
        user_agent: "imgserv-test".to_owned(),
        ..RemoteOptions::default()
    }
}

/// File names in `dir` but the lock files' directory, sorted; empty when it does not exist.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name != "locks")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

fn ok(body: &[u8]) -> ResponseBox {
    Response::from_data(body.to_vec()).boxed()
}

fn status(code: u16) -> ResponseBox {
    Response::empty(code).boxed()
}

fn redirect(code: u16, location: &str) -> ResponseBox {
    Response::empty(code)
        .with_header(header("Location", location))
        .boxed()
}

/// One request as the test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    url: String,
    headers: Vec<(String, String)>,
    port: u16,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny_http server on 127.0.0.1 answering with `handler(request, index)` and recording
/// every request; stopped on drop.
struct TestServer {
    server: Arc<tiny_http::Server>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
    port: u16,
}

impl TestServer {
    fn start(handler: impl Fn(&Seen, usize) -> ResponseBox + Send + 'static) -> TestServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (server, seen) = (Arc::clone(&server), Arc::clone(&seen));
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let this = Seen {
                        url: request.url().to_owned(),
                        headers: request
                            .headers()
                            .iter()
                            .map(|h| (h.field.to_string(), h.value.to_string()))
                            .collect(),
                        port,
                    };
                    let index = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(this.clone());
                        seen.len() - 1
                    };
                    // The client may have hung up (limits, timeouts): ignore write errors.
                    let _ = request.respond(handler(&this, index));
                }
            })
        };
        TestServer {
            server,
            seen,
            thread: Some(thread),
            port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
