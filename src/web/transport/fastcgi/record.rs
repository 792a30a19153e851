//! The FastCGI record layer (§3, §8): the protocol constants, a record's header, decoding a
//! record from a slice or reading one from a stream, and writing records and streams of them.
//!
//! It knows nothing of requests: the name-value pairs inside `FCGI_PARAMS` are `params`'s, what
//! a sequence of records means is `session`'s.

use std::io::{self, Read, Write};

/// The only protocol version there is (`FCGI_VERSION_1`).
pub const VERSION_1: u8 = 1;
/// Length of a record header (`FCGI_HEADER_LEN`).
pub const HEADER_LEN: usize = 8;
/// The largest record content: the length field is 16 bits.
pub const MAX_CONTENT_LEN: usize = 0xffff;
/// Bound on one request's whole `FCGI_PARAMS` stream, so a client cannot exhaust memory.
/// nginx sends a few KiB; 1 MiB leaves room for very long cookies and URLs.
pub const MAX_PARAMS_LEN: usize = 1 << 20;

/// Record types (FastCGI 1.0 §8).
pub mod kind {
    pub const BEGIN_REQUEST: u8 = 1;
    pub const ABORT_REQUEST: u8 = 2;
    pub const END_REQUEST: u8 = 3;
    pub const PARAMS: u8 = 4;
    pub const STDIN: u8 = 5;
    pub const STDOUT: u8 = 6;
    pub const STDERR: u8 = 7;
    pub const DATA: u8 = 8;
    pub const GET_VALUES: u8 = 9;
    pub const GET_VALUES_RESULT: u8 = 10;
    pub const UNKNOWN_TYPE: u8 = 11;
}

/// `role` of `FCGI_BEGIN_REQUEST`: the only one we serve.
pub const ROLE_RESPONDER: u16 = 1;
/// `flags` bit of `FCGI_BEGIN_REQUEST`: keep the connection open after this request.
pub const KEEP_CONN: u8 = 1;

/// `protocolStatus` of `FCGI_END_REQUEST`.
pub mod status {
    pub const REQUEST_COMPLETE: u8 = 0;
    pub const CANT_MPX_CONN: u8 = 1;
    pub const OVERLOADED: u8 = 2;
    pub const UNKNOWN_ROLE: u8 = 3;
}

/// The web server broke the record protocol; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A record header carries a version other than 1 (or the stream is not FastCGI at all).
    #[error("unsupported FastCGI version {0}")]
    Version(u8),
    /// The input ends inside a name-value pair (or a record, for the slice decoder's callers).
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// An `FCGI_BEGIN_REQUEST` body is not the 8 bytes the specification fixes.
    #[error("FCGI_BEGIN_REQUEST body of {0} bytes, expected 8")]
    BeginRequestLength(usize),
    /// An `FCGI_BEGIN_REQUEST` names the request id that is already in progress.
    #[error("request id {0} begun twice")]
    DuplicateRequestId(u16),
    /// A request's `FCGI_PARAMS` stream grows beyond [`MAX_PARAMS_LEN`].
    #[error("FCGI_PARAMS stream longer than {MAX_PARAMS_LEN} bytes")]
    ParamsTooLarge,
}

/// A record header (§3.3), with the version already checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub request_id: u16,
    pub content_len: u16,
    pub padding_len: u8,
}

impl Header {
    /// Decodes the 8 header bytes.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, ProtocolError> {
        if bytes[0] != VERSION_1 {
            return Err(ProtocolError::Version(bytes[0]));
        }
        Ok(Header {
            kind: bytes[1],
            request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content_len: u16::from_be_bytes([bytes[4], bytes[5]]),
            padding_len: bytes[6],
        })
    }

    /// Encodes the header, version 1, reserved byte 0.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [id_hi, id_lo] = self.request_id.to_be_bytes();
        let [len_hi, len_lo] = self.content_len.to_be_bytes();
        [
            VERSION_1,
            self.kind,
            id_hi,
            id_lo,
            len_hi,
            len_lo,
            self.padding_len,
            0,
        ]
    }

    /// Content plus padding: what follows the header on the wire.
    fn body_len(&self) -> usize {
        usize::from(self.content_len) + usize::from(self.padding_len)
    }
}

/// One decoded record; `content` excludes the padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: u8,
    pub request_id: u16,
    pub content: &'a [u8],
}

/// Decodes the record at the start of `input`. Returns the record and how many bytes it took
/// (padding included), or `None` when `input` does not yet hold a whole record.
pub fn decode_record(input: &[u8]) -> Result<Option<(Record<'_>, usize)>, ProtocolError> {
    let Some((head, rest)) = input.split_first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::decode(head)?;
    if rest.len() < header.body_len() {
        return Ok(None);
    }
    let record = Record {
        kind: header.kind,
        request_id: header.request_id,
        content: &rest[..usize::from(header.content_len)],
    };
    Ok(Some((record, HEADER_LEN + header.body_len())))
}

/// Why reading a connection stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectionError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// Reads one record into `buf`. `None` on a clean end of stream between records; a stream
/// that ends inside a record is an `UnexpectedEof` I/O error.
pub(super) fn read_record<'b, R: Read>(
    r: &mut R,
    buf: &'b mut Vec<u8>,
) -> Result<Option<Record<'b>>, ConnectionError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let header = Header::decode(&head)?;
    buf.clear();
    buf.resize(header.body_len(), 0);
    r.read_exact(buf)?;
    Ok(Some(Record {
        kind: header.kind,
        request_id: header.request_id,
        content: &buf[..usize::from(header.content_len)],
    }))
}

/// Writes one record, padded to a multiple of 8 bytes as the specification recommends.
///
/// # Panics
/// If `content` is longer than [`MAX_CONTENT_LEN`]; use [`write_stream`] for longer data.
pub fn write_record<W: Write + ?Sized>(
    w: &mut W,
    kind: u8,
    request_id: u16,
    content: &[u8],
) -> io::Result<()> {
    let content_len = u16::try_from(content.len()).expect("record content of at most 65535 bytes");
    let padding_len = (8 - content.len() % 8) % 8;
    let header = Header {
        kind,
        request_id,
        content_len,
        padding_len: padding_len as u8, // < 8
    };
    w.write_all(&header.encode())?;
    w.write_all(content)?;
    w.write_all(&[0u8; 8][..padding_len])
}

/// Writes `data` as records of at most [`MAX_CONTENT_LEN`] bytes; nothing when `data` is
/// empty (the empty record that ends a stream is the caller's, written once).
pub fn write_stream<W: Write + ?Sized>(
    w: &mut W,
    kind: u8,
    request_id: u16,
    data: &[u8],
) -> io::Result<()> {
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        write_record(w, kind, request_id, chunk)?;
    }
    Ok(())
}

/// One record as bytes.
pub fn encode_record(kind: u8, request_id: u16, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + content.len() + 7);
    // Writing to a Vec cannot fail.
    let _ = write_record(&mut out, kind, request_id, content);
    out
}

/// An `FCGI_END_REQUEST` record.
pub fn encode_end_request(request_id: u16, app_status: u32, protocol_status: u8) -> Vec<u8> {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&app_status.to_be_bytes());
    body[4] = protocol_status;
    encode_record(kind::END_REQUEST, request_id, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::transport::fastcgi::test_support::*;

    #[test]
    fn records_decode_with_padding_and_wait_for_whole_records() {
        let bytes = [rec(kind::STDIN, 258, b"hello"), rec(kind::STDIN, 258, b"")].concat();
        let (first, used) = decode_record(&bytes).unwrap().unwrap();
        assert_eq!(
            first,
            Record {
                kind: kind::STDIN,
                request_id: 258,
                content: b"hello"
            }
        );
        assert_eq!(used, 8 + 5 + 3);
        let (second, used2) = decode_record(&bytes[used..]).unwrap().unwrap();
        assert_eq!((second.content, used + used2), (&b""[..], bytes.len()));
        for cut in [0, 7, 8, 12, 15] {
            assert_eq!(decode_record(&bytes[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(
            decode_record(&[2, 1, 0, 1, 0, 0, 0, 0]),
            Err(ProtocolError::Version(2))
        );
        // Our own records are padded to 8 and round-trip.
        let ours = encode_record(kind::STDOUT, 1, b"abc");
        assert_eq!(ours.len(), 16);
        assert_eq!(decode_record(&ours).unwrap().unwrap().0.content, b"abc");
    }

    #[test]
    fn streams_are_written_in_records_of_at_most_65535_bytes() {
        let data = pattern(2 * MAX_CONTENT_LEN + 10);
        let mut out = Vec::new();
        write_stream(&mut out, kind::STDOUT, 1, &data).unwrap();
        let mut rest = &out[..];
        let mut sizes = Vec::new();
        while let Some((r, used)) = decode_record(rest).unwrap() {
            sizes.push(r.content.len());
            rest = &rest[used..];
        }
        assert_eq!(sizes, [MAX_CONTENT_LEN, MAX_CONTENT_LEN, 10]);
        assert!(rest.is_empty());
    }
}
