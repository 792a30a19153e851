//! Shared by the submodules' tests: a tiny FastCGI client written from the specification (the
//! records a web server sends, the replies it reads back) and a real server to send them to.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::io::http::{Handler, Request, Response};

use super::{Listener, Options, ROLE_RESPONDER, kind, serve};

// ---- a tiny FastCGI client, written from the specification, not from the code it tests ----

/// A record as a web server might send it: padded with 3 garbage bytes, which is legal
/// and not a multiple of 8, so the server must honour `paddingLength`.
pub(super) fn rec(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let len = u16::try_from(content.len()).unwrap().to_be_bytes();
    let id = id.to_be_bytes();
    let mut out = vec![1, kind, id[0], id[1], len[0], len[1], 3, 0];
    out.extend_from_slice(content);
    out.extend_from_slice(&[0xaa; 3]);
    out
}

pub(super) fn begin(id: u16, role: u16, keep_conn: bool) -> Vec<u8> {
    let role = role.to_be_bytes();
    rec(
        kind::BEGIN_REQUEST,
        id,
        &[role[0], role[1], u8::from(keep_conn), 0, 0, 0, 0, 0],
    )
}

/// A stream of `kind` records carrying `data` in pieces of `piece` bytes, then its end.
pub(super) fn stream(kind: u8, id: u16, data: &[u8], piece: usize) -> Vec<u8> {
    let mut out: Vec<u8> = data.chunks(piece).flat_map(|c| rec(kind, id, c)).collect();
    out.extend(rec(kind, id, &[]));
    out
}

pub(super) fn nv(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        for len in [name.len(), value.len()] {
            if len < 128 {
                out.push(len as u8);
            } else {
                out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
            }
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// A whole request, params split into 7-byte records, body into 1000-byte ones.
pub(super) fn request(id: u16, keep_conn: bool, params: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = begin(id, ROLE_RESPONDER, keep_conn);
    out.extend(stream(kind::PARAMS, id, &nv(params), 7));
    out.extend(stream(kind::STDIN, id, body, 1000));
    out
}

pub(super) fn get_request(id: u16, keep_conn: bool, path: &[u8]) -> Vec<u8> {
    let params: &[(&str, &[u8])] = &[
        ("REQUEST_METHOD", b"GET"),
        ("PATH_INFO", path),
        ("QUERY_STRING", b"w=1"),
        ("REQUEST_URI", b"/img/x?w=1"),
    ];
    request(id, keep_conn, params, b"")
}

pub(super) fn read_rec(r: &mut impl Read) -> io::Result<(u8, u16, Vec<u8>)> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    assert_eq!(h[0], 1, "version");
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let mut content = vec![0; len + usize::from(h[6])];
    r.read_exact(&mut content)?;
    content.truncate(len);
    Ok((h[1], u16::from_be_bytes([h[2], h[3]]), content))
}

/// What came back for one request.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) head: String,
    pub(super) body: Vec<u8>,
    pub(super) app_status: u32,
    pub(super) protocol_status: u8,
}

pub(super) fn read_reply(r: &mut impl Read, id: u16) -> Reply {
    let mut stdout = Vec::new();
    let mut stdout_ended = false;
    loop {
        let (kind, rid, content) = read_rec(r).expect("a record");
        assert_eq!(rid, id, "request id");
        match kind {
            kind::STDOUT if content.is_empty() => stdout_ended = true,
            kind::STDOUT => {
                assert!(!stdout_ended, "STDOUT after its end");
                stdout.extend(content);
            }
            kind::END_REQUEST => {
                assert_eq!(content.len(), 8);
                assert!(stdout_ended || stdout.is_empty(), "STDOUT not ended");
                let app_status = u32::from_be_bytes(content[..4].try_into().unwrap());
                let split = stdout.windows(4).position(|w| w == b"\r\n\r\n");
                let (head, body) = match split {
                    Some(i) => (&stdout[..i], stdout[i + 4..].to_vec()),
                    None => (&stdout[..], Vec::new()),
                };
                let head = String::from_utf8(head.to_vec()).unwrap();
                let status = head
                    .strip_prefix("Status: ")
                    .map_or(0, |s| s[..3].parse().unwrap());
                return Reply {
                    status,
                    head,
                    body,
                    app_status,
                    protocol_status: content[4],
                };
            }
            other => panic!("unexpected record type {other}"),
        }
    }
}

// ---- a real server ----

/// `/echo` answers the body; `/big/N` N patterned bytes; `/panic` panics; anything else
/// answers "METHOD path?query".
pub(super) fn app(req: Request) -> Response {
    if req.path == "/panic" {
        panic!("test handler panic");
    }
    if req.path == "/echo" {
        let mut body = Vec::new();
        req.body.reader().read_to_end(&mut body).unwrap();
        return Response::new(200).with_body(body);
    }
    if let Some(n) = req.path.strip_prefix("/big/") {
        return Response::new(200).with_body(pattern(n.parse().unwrap()));
    }
    Response::text(200, format!("{} {}?{}", req.method, req.path, req.query))
}

pub(super) fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

pub(super) fn start_with(handler: Arc<dyn Handler>, opts: Options) -> SocketAddr {
    let listener = Listener::bind("127.0.0.1:0").unwrap();
    let Listener::Tcp(tcp) = &listener else {
        panic!("not TCP")
    };
    let addr = tcp.local_addr().unwrap();
    thread::spawn(move || serve(listener, handler, &opts));
    addr
}

pub(super) fn start(opts: Options) -> SocketAddr {
    start_with(Arc::new(app), opts)
}

pub(super) fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    // A bug should fail the test, not hang it.
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// One GET on a fresh connection without keep-alive.
pub(super) fn get(addr: SocketAddr, path: &[u8]) -> Reply {
    let mut s = connect(addr);
    s.write_all(&get_request(1, false, path)).unwrap();
    read_reply(&mut s, 1)
}

pub(super) fn assert_closed(s: &mut impl Read) {
    let mut byte = [0u8; 1];
    assert_eq!(s.read(&mut byte).unwrap(), 0, "connection still open");
}
