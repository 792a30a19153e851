//! A connection over in-memory bytes ([`replay`]) and the fuzz target's body ([`fuzz_one`]):
//! the same decoder and state machine as the server, without a socket, for tests and fuzzing.

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::io::http::body::Limits;
use crate::io::http::{Handler, Request, Response};
use crate::web::transport::cgi::handle_catching;

use super::Options;
use super::connection::run_connection;
use super::params::{encode_params, parse_params};
use super::record::{HEADER_LEN, decode_record};

/// Runs one connection over in-memory bytes, as if a web server had sent `input` and then
/// closed its side, and returns what we would have written back. Uses the same decoder and
/// state machine as [`serve`](super::serve); for tests and fuzzing.
pub fn replay(input: &[u8], handler: &dyn Handler, opts: &Options) -> Vec<u8> {
    struct Loopback<'a> {
        input: &'a [u8],
        output: Vec<u8>,
    }
    impl Read for Loopback<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Loopback<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut io = Loopback {
        input,
        output: Vec::new(),
    };
    let run = |req| handle_catching(handler, req);
    if let Err(e) = run_connection(&mut io, &|_| Ok(()), &run, opts) {
        log::debug!("fastcgi replay: {e}");
    }
    io.output
}

/// The fuzz target's body, shared with the unit tests: `data` through the params parser, the
/// slice record decoder, and a whole connection with an echoing handler. Must never panic.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    if let Ok(pairs) = parse_params(data) {
        let again = encode_params(pairs.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        assert_eq!(
            parse_params(&again).as_ref(),
            Ok(&pairs),
            "params round trip"
        );
    }
    let mut rest = data;
    while let Ok(Some((record, used))) = decode_record(rest) {
        assert!(record.content.len() + HEADER_LEN <= used && used <= rest.len());
        rest = &rest[used..];
    }
    let echo = |req: Request| Response::text(200, format!("{req:?}"));
    let opts = Options {
        workers: 1,
        max_conns: 1,
        body: Limits {
            max_bytes: 1024,
            ..Limits::default()
        },
        read_timeout: Duration::from_secs(1),
    };
    let out = replay(data, &echo, &opts);
    // Whatever we wrote must itself be well-formed records.
    let mut rest = out.as_slice();
    while !rest.is_empty() {
        let (_, used) = decode_record(rest)
            .ok()
            .flatten()
            .expect("replay output is whole records");
        rest = &rest[used..];
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::web::transport::fastcgi::kind;
    use crate::web::transport::fastcgi::test_support::*;

    #[test]
    fn replay_answers_like_the_server() {
        let input = [
            get_request(1, true, b"/a"),
            rec(kind::GET_VALUES, 0, &nv(&[("FCGI_MPXS_CONNS", b"")])),
            get_request(2, false, b"/x/\xff"),
            get_request(3, false, b"/never-read"),
        ]
        .concat();
        let out = replay(&input, &app, &Options::default());
        let mut r = &out[..];
        assert_eq!(read_reply(&mut r, 1).status, 200);
        assert_eq!(read_rec(&mut r).unwrap().0, kind::GET_VALUES_RESULT);
        assert_eq!(read_reply(&mut r, 2).status, 400);
        assert!(r.is_empty(), "answered after a request without keep_conn");
    }

    /// xorshift64*: deterministic, so CI sees the same inputs every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn fuzz_smoke() {
        let seeds = [
            get_request(1, true, b"/a"),
            [
                get_request(1, true, b"/x/\xff"),
                get_request(2, false, b"/b"),
            ]
            .concat(),
            request(
                1,
                false,
                &[("REQUEST_METHOD", b"POST"), ("PATH_INFO", b"/echo")],
                &[1; 3000],
            ),
            [
                begin(1, 2, true),
                begin(3, 1, false),
                rec(kind::ABORT_REQUEST, 3, b""),
            ]
            .concat(),
            rec(kind::GET_VALUES, 0, &nv(&[("FCGI_MAX_CONNS", b"")])),
            nv(&[("A", b"b"), ("LONG", &[b'x'; 200])]),
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for i in 0..4000 {
            let input = if i % 4 == 0 {
                let len = rng.below(300);
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                let mut input = seeds[rng.below(seeds.len())].clone();
                for _ in 0..=rng.below(4) {
                    if input.is_empty() {
                        break;
                    }
                    let at = rng.below(input.len());
                    match rng.below(4) {
                        0 => input[at] = rng.next() as u8,
                        1 => input.truncate(at),
                        2 => input.insert(at, rng.next() as u8),
                        _ => input[at] ^= 0x80,
                    }
                }
                input
            };
            fuzz_one(&input);
        }
    }

    #[test]
    fn fuzz_regressions_replay() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            // Files only: other targets keep theirs in subdirectories (jpeg_entropy/).
            if path.is_file() && path.extension().is_none_or(|e| e != "md") {
                fuzz_one(&fs::read(&path).unwrap());
            }
        }
    }
}
