//! The per-connection state machine, free of I/O: records in, events out. It begins a request
//! (or refuses a second one, or an unknown role), gathers its `FCGI_PARAMS` and `FCGI_STDIN`
//! streams (refusing a body over the limit, early when `CONTENT_LENGTH` says so), handles
//! `FCGI_ABORT_REQUEST` and answers the management records on request id 0.
//!
//! Reading and writing the socket is `connection`'s; calling the handler is `response`'s.

use crate::io::http::Request;
use crate::io::http::body::{Body, BodyError, Spool};

use super::Options;
use super::params::{encode_params, split_params};
use super::record::{
    KEEP_CONN, MAX_PARAMS_LEN, ProtocolError, ROLE_RESPONDER, Record, encode_end_request,
    encode_record, kind, status,
};
use super::response::write_response;

/// The request being received on a connection.
#[derive(Debug)]
pub(super) struct InProgress<'o> {
    id: u16,
    keep_conn: bool,
    params: Vec<u8>,
    params_done: bool,
    /// The body so far, or why it is refused (then the rest of `FCGI_STDIN` is skipped).
    body: Result<Spool<'o>, BodyError>,
    /// Already answered (a `CONTENT_LENGTH` over the limit): skip `FCGI_STDIN` to its end.
    answered: bool,
    stdin_done: bool,
}

/// A request whose params and body have fully arrived.
#[derive(Debug)]
pub(super) struct Incoming {
    pub(super) id: u16,
    pub(super) keep_conn: bool,
    pub(super) params: Vec<u8>,
    /// The body, or why it was refused (too long, or its spool could not be written).
    pub(super) body: Result<Body, BodyError>,
}

/// What the connection must do after a record.
#[derive(Debug)]
pub(super) enum Event {
    /// Read on.
    Nothing,
    /// Write these records, then close the connection if `close`.
    Reply { records: Vec<u8>, close: bool },
    /// Answer this request.
    Request(Incoming),
}

/// The protocol state of one connection, free of I/O: records in, events out.
#[derive(Debug)]
pub(super) struct Session<'o> {
    opts: &'o Options,
    pub(super) current: Option<InProgress<'o>>,
}

impl<'o> Session<'o> {
    pub(super) fn new(opts: &'o Options) -> Self {
        Session {
            opts,
            current: None,
        }
    }

    pub(super) fn on_record(&mut self, rec: Record<'_>) -> Result<Event, ProtocolError> {
        if rec.request_id == 0 {
            return self.on_management(rec);
        }
        let id = rec.request_id;
        match rec.kind {
            kind::BEGIN_REQUEST => {
                let &[role_hi, role_lo, flags, _, _, _, _, _] = rec.content else {
                    return Err(ProtocolError::BeginRequestLength(rec.content.len()));
                };
                let role = u16::from_be_bytes([role_hi, role_lo]);
                let keep_conn = flags & KEEP_CONN != 0;
                match &self.current {
                    Some(cur) if cur.id == id => Err(ProtocolError::DuplicateRequestId(id)),
                    Some(_) => Ok(Event::Reply {
                        records: encode_end_request(id, 0, status::CANT_MPX_CONN),
                        close: false,
                    }),
                    None if role != ROLE_RESPONDER => Ok(Event::Reply {
                        records: encode_end_request(id, 0, status::UNKNOWN_ROLE),
                        close: !keep_conn,
                    }),
                    None => {
                        self.current = Some(InProgress {
                            id,
                            keep_conn,
                            params: Vec::new(),
                            params_done: false,
                            body: Ok(Spool::new(&self.opts.body)),
                            answered: false,
                            stdin_done: false,
                        });
                        Ok(Event::Nothing)
                    }
                }
            }
            kind::ABORT_REQUEST => match self.current.take_if(|cur| cur.id == id) {
                // Already answered (413 from its CONTENT_LENGTH): no second END_REQUEST.
                Some(cur) if cur.answered => Ok(Event::Reply {
                    records: Vec::new(),
                    close: !cur.keep_conn,
                }),
                Some(cur) => Ok(Event::Reply {
                    records: encode_end_request(id, 0, status::REQUEST_COMPLETE),
                    close: !cur.keep_conn,
                }),
                None => Ok(Event::Nothing),
            },
            kind::PARAMS => {
                let Some(cur) = self
                    .current
                    .as_mut()
                    .filter(|c| c.id == id && !c.params_done)
                else {
                    return Ok(Event::Nothing);
                };
                if rec.content.is_empty() {
                    cur.params_done = true;
                    // The declared length is known before any of the body: refuse it now.
                    let declared = split_params(&cur.params)?
                        .into_iter()
                        .find(|(name, _)| *name == b"CONTENT_LENGTH")
                        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok());
                    if let Ok(spool) = &mut cur.body {
                        spool.declare(declared);
                    }
                    if let Err(e) = crate::io::http::body::check_declared(&self.opts.body, declared)
                    {
                        let mut records = Vec::new();
                        let resp = e.response().for_request(&Request::default());
                        write_response(&mut records, id, &resp)
                            .expect("writing to memory cannot fail");
                        cur.body = Err(e);
                        cur.answered = true;
                        return Ok(Event::Reply {
                            records,
                            close: false,
                        });
                    }
                } else if cur.params.len() + rec.content.len() > MAX_PARAMS_LEN {
                    return Err(ProtocolError::ParamsTooLarge);
                } else {
                    cur.params.extend_from_slice(rec.content);
                }
                Ok(self.complete())
            }
            kind::STDIN => {
                let Some(cur) = self
                    .current
                    .as_mut()
                    .filter(|c| c.id == id && !c.stdin_done)
                else {
                    return Ok(Event::Nothing);
                };
                if rec.content.is_empty() {
                    cur.stdin_done = true;
                } else if let Ok(spool) = &mut cur.body {
                    // Past the limit, keep reading the stream to stay in step, but not its
                    // bytes.
                    if let Err(e) = spool.push(rec.content) {
                        cur.body = Err(e);
                    }
                }
                if cur.answered && cur.stdin_done {
                    let close = !cur.keep_conn;
                    self.current = None;
                    return Ok(Event::Reply {
                        records: Vec::new(),
                        close,
                    });
                }
                Ok(self.complete())
            }
            // FCGI_DATA (Filter role) and types we do not know, on application ids: ignored.
            _ => Ok(Event::Nothing),
        }
    }

    /// Hands over the current request once both its streams have ended.
    fn complete(&mut self) -> Event {
        match self
            .current
            .take_if(|c| c.params_done && c.stdin_done && !c.answered)
        {
            Some(cur) => Event::Request(Incoming {
                id: cur.id,
                keep_conn: cur.keep_conn,
                params: cur.params,
                body: cur.body.map(Spool::finish),
            }),
            None => Event::Nothing,
        }
    }

    /// Records on request id 0 (§4).
    fn on_management(&self, rec: Record<'_>) -> Result<Event, ProtocolError> {
        let records = if rec.kind == kind::GET_VALUES {
            let conns = self.opts.max_conns.to_string();
            let mut answers: Vec<(&[u8], &[u8])> = Vec::new();
            for (name, _) in split_params(rec.content)? {
                let value: &[u8] = match name {
                    b"FCGI_MAX_CONNS" => conns.as_bytes(),
                    // One request at a time per connection, so as many requests as connections.
                    b"FCGI_MAX_REQS" => conns.as_bytes(),
                    b"FCGI_MPXS_CONNS" => b"0",
                    _ => continue,
                };
                // Once each: a request repeating a name must not grow the answer past
                // one record.
                if !answers.iter().any(|(n, _)| *n == name) {
                    answers.push((name, value));
                }
            }
            encode_record(kind::GET_VALUES_RESULT, 0, &encode_params(answers))
        } else {
            let mut body = [0u8; 8];
            body[0] = rec.kind;
            encode_record(kind::UNKNOWN_TYPE, 0, &body)
        };
        Ok(Event::Reply {
            records,
            close: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    use super::*;
    use crate::io::http::body::Limits;
    use crate::web::transport::fastcgi::parse_params;
    use crate::web::transport::fastcgi::record::{MAX_CONTENT_LEN, decode_record};
    use crate::web::transport::fastcgi::replay::replay;
    use crate::web::transport::fastcgi::test_support::*;

    #[test]
    fn get_with_params_split_across_records() {
        let addr = start(Options::default());
        let reply = get(addr, b"/img/x");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"GET /img/x?w=1\n");
        assert!(reply.head.contains("Content-Type: text/plain"));
        assert!(reply.head.contains("Content-Length: 15"));
        assert_eq!((reply.app_status, reply.protocol_status), (0, 0));
    }

    #[test]
    fn post_body_over_several_stdin_records_reaches_the_handler_intact() {
        let addr = start(Options::default());
        let body = pattern(200_001);
        let params: &[(&str, &[u8])] = &[
            ("REQUEST_METHOD", b"POST"),
            ("PATH_INFO", b"/echo"),
            ("CONTENT_LENGTH", b"200001"),
        ];
        let mut s = connect(addr);
        // Written from another thread: the server may answer before we finish writing.
        let req = request(3, false, params, &body);
        let mut w = s.try_clone().unwrap();
        let writer = thread::spawn(move || w.write_all(&req));
        let reply = read_reply(&mut s, 3);
        writer.join().unwrap().unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply.body == body, "body differs");
    }

    #[test]
    fn get_values_and_unknown_management_types() {
        let addr = start(Options {
            max_conns: 9,
            ..Options::default()
        });
        let mut s = connect(addr);
        let names: &[(&str, &[u8])] = &[
            ("FCGI_MAX_CONNS", b""),
            ("FCGI_NO_SUCH", b""),
            ("FCGI_MAX_REQS", b""),
            ("FCGI_MPXS_CONNS", b""),
        ];
        s.write_all(&rec(kind::GET_VALUES, 0, &nv(names))).unwrap();
        let (kind, id, content) = read_rec(&mut s).unwrap();
        assert_eq!((kind, id), (kind::GET_VALUES_RESULT, 0));
        let got = parse_params(&content).unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = [
            ("FCGI_MAX_CONNS", "9"),
            ("FCGI_MAX_REQS", "9"),
            ("FCGI_MPXS_CONNS", "0"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(got, want);

        s.write_all(&rec(200, 0, b"?")).unwrap();
        let (kind, id, content) = read_rec(&mut s).unwrap();
        assert_eq!((kind, id), (kind::UNKNOWN_TYPE, 0));
        assert_eq!(content, [200, 0, 0, 0, 0, 0, 0, 0]);

        s.write_all(&get_request(1, false, b"/a")).unwrap();
        assert_eq!(read_reply(&mut s, 1).status, 200);
    }

    #[test]
    fn get_values_repeating_a_name_is_answered_once() {
        let names: Vec<(&str, &[u8])> = vec![("FCGI_MAX_CONNS", b""); 4000];
        let input = rec(kind::GET_VALUES, 0, &nv(&names));
        let out = replay(&input, &app, &Options::default());
        let (kind, _, content) = read_rec(&mut &out[..]).unwrap();
        assert_eq!(kind, kind::GET_VALUES_RESULT);
        assert_eq!(parse_params(&content).unwrap().len(), 1);
    }

    #[test]
    fn unknown_role_is_refused_and_the_connection_goes_on() {
        let addr = start(Options::default());
        let mut s = connect(addr);
        let mut authorizer = begin(1, 2, true);
        authorizer.extend(stream(kind::PARAMS, 1, &nv(&[("A", b"b")]), 100));
        authorizer.extend(stream(kind::STDIN, 1, b"", 100));
        s.write_all(&authorizer).unwrap();
        let reply = read_reply(&mut s, 1);
        assert_eq!(reply.protocol_status, status::UNKNOWN_ROLE);
        assert!(reply.body.is_empty() && reply.head.is_empty());
        s.write_all(&get_request(2, false, b"/a")).unwrap();
        assert_eq!(read_reply(&mut s, 2).status, 200);
    }

    #[test]
    fn a_second_request_id_is_refused_with_cant_mpx_conn() {
        let addr = start(Options::default());
        let mut s = connect(addr);
        let full = get_request(1, false, b"/one");
        // BEGIN_REQUEST (19 bytes with our padding) and two 7-byte PARAMS records (18 each).
        let (first, rest) = full.split_at(19 + 2 * 18);
        s.write_all(first).unwrap();
        s.write_all(&begin(2, ROLE_RESPONDER, true)).unwrap();
        let refused = read_reply(&mut s, 2);
        assert_eq!(refused.protocol_status, status::CANT_MPX_CONN);
        s.write_all(&stream(kind::PARAMS, 2, &nv(&[("A", b"b")]), 100))
            .unwrap();
        s.write_all(rest).unwrap();
        assert_eq!(read_reply(&mut s, 1).body, b"GET /one?w=1\n");
    }

    #[test]
    fn abort_request_ends_it_without_calling_the_handler() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let addr = start_with(
            Arc::new(move |req: Request| {
                counted.fetch_add(1, Ordering::SeqCst);
                app(req)
            }),
            Options::default(),
        );
        let mut s = connect(addr);
        s.write_all(&begin(5, ROLE_RESPONDER, true)).unwrap();
        s.write_all(&rec(kind::PARAMS, 5, &nv(&[("PATH_INFO", b"/a")])))
            .unwrap();
        s.write_all(&rec(kind::ABORT_REQUEST, 5, b"")).unwrap();
        let reply = read_reply(&mut s, 5);
        assert_eq!((reply.protocol_status, reply.head.as_str()), (0, ""));
        s.write_all(&get_request(6, false, b"/b")).unwrap();
        assert_eq!(read_reply(&mut s, 6).status, 200);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn body_over_max_body_is_413_without_calling_the_handler() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let addr = start_with(
            Arc::new(move |req: Request| {
                counted.fetch_add(1, Ordering::SeqCst);
                app(req)
            }),
            Options {
                body: Limits {
                    max_bytes: 2500,
                    ..Limits::default()
                },
                ..Options::default()
            },
        );
        let params: &[(&str, &[u8])] = &[("REQUEST_METHOD", b"POST"), ("PATH_INFO", b"/echo")];
        let mut s = connect(addr);
        s.write_all(&request(1, true, params, &[7; 2501])).unwrap();
        assert_eq!(read_reply(&mut s, 1).status, 413);
        // Exactly the limit is fine, on the same connection.
        s.write_all(&request(2, false, params, &[7; 2500])).unwrap();
        assert_eq!(read_reply(&mut s, 2).body, [7; 2500]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn declared_length_over_max_body_is_413_before_the_body_arrives() {
        let addr = start(Options {
            body: Limits {
                max_bytes: 2500,
                ..Limits::default()
            },
            ..Options::default()
        });
        let params: &[(&str, &[u8])] = &[
            ("REQUEST_METHOD", b"POST"),
            ("PATH_INFO", b"/echo"),
            ("CONTENT_LENGTH", b"2501"),
        ];
        let mut s = connect(addr);
        let mut head = begin(1, ROLE_RESPONDER, true);
        head.extend(stream(kind::PARAMS, 1, &nv(params), 7));
        s.write_all(&head).unwrap();
        // No FCGI_STDIN yet: the answer comes from CONTENT_LENGTH alone.
        assert_eq!(read_reply(&mut s, 1).status, 413);
        // The body sent anyway is skipped, and the connection stays in step.
        s.write_all(&stream(kind::STDIN, 1, &[7; 2501], 1000))
            .unwrap();
        s.write_all(&request(1, true, &params[..2], &[8; 2500]))
            .unwrap();
        assert_eq!(read_reply(&mut s, 1).body, [8; 2500]);
        // More than CONTENT_LENGTH said is refused too.
        let mut longer = begin(1, ROLE_RESPONDER, true);
        longer.extend(stream(
            kind::PARAMS,
            1,
            &nv(&[("CONTENT_LENGTH", b"10")]),
            7,
        ));
        longer.extend(stream(kind::STDIN, 1, &[1; 11], 1000));
        s.write_all(&longer).unwrap();
        assert_eq!(read_reply(&mut s, 1).status, 413);
        // Aborted instead of sent: no second END_REQUEST for the answered request.
        s.write_all(&head).unwrap();
        assert_eq!(read_reply(&mut s, 1).status, 413);
        s.write_all(&rec(kind::ABORT_REQUEST, 1, &[])).unwrap();
        s.write_all(&request(1, false, &params[..2], &[9; 10]))
            .unwrap();
        assert_eq!(read_reply(&mut s, 1).body, [9; 10]);
    }

    #[test]
    fn params_stream_is_bounded() {
        let mut input = begin(1, ROLE_RESPONDER, true);
        let big = vec![0u8; MAX_CONTENT_LEN];
        for _ in 0..(MAX_PARAMS_LEN / MAX_CONTENT_LEN + 1) {
            input.extend(rec(kind::PARAMS, 1, &big));
        }
        let opts = Options::default();
        let mut session = Session::new(&opts);
        let mut rest = &input[..];
        let mut result = Ok(Event::Nothing);
        while let Some((record, used)) = decode_record(rest).unwrap() {
            result = session.on_record(record);
            if result.is_err() {
                break;
            }
            rest = &rest[used..];
        }
        assert!(matches!(result, Err(ProtocolError::ParamsTooLarge)));
    }
}
