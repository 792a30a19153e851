//! HTML form bodies as a page reads them: `application/x-www-form-urlencoded` parsed as a
//! stream from the received body, and one [`Form`] view — text fields by name, repeated names
//! kept in order — over that and `multipart/form-data`, whose file parts are handed to the
//! caller as streams (as the upload route reads them), never collected here.
//!
//! Bounded: at most [`Limits::max_fields`] fields of at most [`Limits::max_field_bytes`] each,
//! so a form costs memory in proportion to those limits, not to the body. This module does not
//! decide what a field means nor check CSRF tokens.

use std::io::{self, BufRead, BufReader, Read};

use super::multipart::{self, PartHead};
use super::{Request, RequestError};

/// How much of a form is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most text fields (a longer form is refused, not cut).
    pub max_fields: usize,
    /// Largest text field: for urlencoded bodies the encoded `name=value` pair, for multipart
    /// the field's bytes.
    pub max_field_bytes: u64,
}

impl Default for Limits {
    /// Room for any page's form: 256 fields of 64 KiB.
    fn default() -> Self {
        Limits {
            max_fields: 256,
            max_field_bytes: 64 << 10,
        }
    }
}

/// Why a form could not be read; every one is the client's (`400`, `415`) but `Io`.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// More fields than [`Limits::max_fields`].
    #[error("the form has more than {0} fields")]
    TooManyFields(usize),
    /// A field longer than [`Limits::max_field_bytes`].
    #[error("a form field is over {0} bytes")]
    FieldTooLarge(u64),
    /// A field's name or value that is not UTF-8 once percent-decoded.
    #[error("form field {0:?} is not UTF-8")]
    NotUtf8(String),
    /// A multipart body that is not well formed.
    #[error("{0}")]
    Malformed(String),
    /// A body that is neither form type.
    #[error("unsupported content type {0:?}")]
    ContentType(String),
    /// Reading the received body failed.
    #[error("reading the form: {0}")]
    Io(io::Error),
}

impl From<FormError> for RequestError {
    fn from(e: FormError) -> Self {
        match e {
            FormError::ContentType(t) => RequestError::ContentType(t),
            FormError::Io(e) => RequestError::BodyIo(e),
            other => RequestError::BadBody(other.to_string()),
        }
    }
}

impl From<multipart::FormError> for FormError {
    fn from(e: multipart::FormError) -> Self {
        match e {
            multipart::FormError::Malformed(why) => FormError::Malformed(why),
            multipart::FormError::Io(e) => read_error(e),
        }
    }
}

/// A malformed multipart body shows up as `InvalidData` from a part's reader.
fn read_error(e: io::Error) -> FormError {
    if e.kind() == io::ErrorKind::InvalidData {
        FormError::Malformed(e.to_string())
    } else {
        FormError::Io(e)
    }
}

/// The text fields of a form, in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of field `name`, in order (checkboxes, multiple selects).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every field, in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// Reads the form of `req`: urlencoded, or multipart with each file part (a part with a
    /// `filename`) given to `on_file` as a stream, in the order sent. `on_file` must read the
    /// part or leave it; what it leaves is skipped.
    pub fn read(
        req: &Request,
        limits: &Limits,
        mut on_file: impl FnMut(&PartHead, &mut dyn Read) -> Result<(), FormError>,
    ) -> Result<Form, FormError> {
        let content_type = req.header("content-type").unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return urlencoded(req.body.reader(), limits);
        }
        let Some(boundary) = multipart::boundary(content_type) else {
            return Err(FormError::ContentType(content_type.into()));
        };
        let mut parts = multipart::Form::new(req.body.reader(), &boundary);
        let mut form = Form::default();
        while let Some(head) = parts.next_part()? {
            if head.filename.is_some() {
                on_file(&head, &mut parts)?;
                continue;
            }
            if form.fields.len() == limits.max_fields {
                return Err(FormError::TooManyFields(limits.max_fields));
            }
            let mut bytes = Vec::new();
            (&mut parts)
                .take(limits.max_field_bytes + 1)
                .read_to_end(&mut bytes)
                .map_err(read_error)?;
            if bytes.len() as u64 > limits.max_field_bytes {
                return Err(FormError::FieldTooLarge(limits.max_field_bytes));
            }
            let value =
                String::from_utf8(bytes).map_err(|_| FormError::NotUtf8(head.name.clone()))?;
            form.fields.push((head.name, value));
        }
        Ok(form)
    }
}

/// Parses an `application/x-www-form-urlencoded` body (the WHATWG URL standard's parser):
/// `&`-separated pairs split at the first `=`, `+` as a space, `%XX` decoded (a `%` not
/// followed by two hex digits stays as it is), empty pairs skipped. Read as a stream: only the
/// pair being parsed is held.
pub fn urlencoded(input: impl Read, limits: &Limits) -> Result<Form, FormError> {
    let mut input = BufReader::new(input);
    let mut form = Form::default();
    let mut pair = Vec::new();
    loop {
        pair.clear();
        // One byte past the limit tells a pair at the limit from a longer one.
        let cap = limits.max_field_bytes + 1;
        let n = (&mut input)
            .take(cap)
            .read_until(b'&', &mut pair)
            .map_err(FormError::Io)?;
        if n == 0 {
            return Ok(form);
        }
        let ended = pair.last() == Some(&b'&');
        if ended {
            pair.pop();
        }
        if pair.len() as u64 > limits.max_field_bytes {
            return Err(FormError::FieldTooLarge(limits.max_field_bytes));
        }
        if !pair.is_empty() {
            if form.fields.len() == limits.max_fields {
                return Err(FormError::TooManyFields(limits.max_fields));
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (&pair[..], &b""[..]),
            };
            let name = decode(name).map_err(|_| FormError::NotUtf8(lossy_name(name)))?;
            let value = decode(value).map_err(|_| FormError::NotUtf8(name.clone()))?;
            form.fields.push((name, value));
        }
        if !ended && (n as u64) < cap {
            return Ok(form);
        }
    }
}

/// A name that is not UTF-8, for the error message.
fn lossy_name(raw: &[u8]) -> String {
    let decoded = decode_bytes(raw);
    String::from_utf8_lossy(&decoded).into_owned()
}

fn decode(raw: &[u8]) -> Result<String, std::string::FromUtf8Error> {
    String::from_utf8(decode_bytes(raw))
}

fn decode_bytes(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                raw.get(i + 1).and_then(|&b| hex(b)),
                raw.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Arbitrary bytes through every parser a page's request meets: the `Cookie` header, an
/// urlencoded body and a multipart one (fields collected, files read), with small limits so
/// that every limit is reached. The `http_forms` fuzz target's entry point; a unit test runs it
/// on mutated inputs. Panics only on a bug.
pub fn fuzz_one(data: &[u8]) {
    let limits = Limits {
        max_fields: 8,
        max_field_bytes: 64,
    };
    let text = String::from_utf8_lossy(data);
    for (name, value) in super::cookie::parse(&text) {
        assert!(super::cookie::SetCookie::new(&name, &value).is_ok());
    }
    if let Ok(form) = urlencoded(data, &limits) {
        assert!(form.fields.len() <= limits.max_fields);
    }
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=b",
    ] {
        let req = Request {
            method: "POST".into(),
            headers: vec![("content-type".into(), content_type.into())],
            body: data.into(),
            ..Request::default()
        };
        let mut file_bytes = 0u64;
        let read = Form::read(&req, &limits, |_, part| {
            file_bytes += io::copy(part, &mut io::sink()).map_err(read_error)?;
            Ok(())
        });
        if let Ok(form) = read {
            assert!(form.fields.len() <= limits.max_fields);
            assert!(file_bytes <= data.len() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<(String, String)>, String> {
        urlencoded(body.as_bytes(), &Limits::default())
            .map(|f| f.fields)
            .map_err(|e| e.to_string())
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn urlencoded_bodies_decode_as_browsers_encode_them() {
        let table: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("a=1", &[("a", "1")]),
            ("a=1&b=two+words", &[("a", "1"), ("b", "two words")]),
            ("a=%2B%26%3D%25", &[("a", "+&=%")]),
            ("caf%C3%A9=cr%c3%a8me", &[("café", "crème")]),
            ("a=1&&b=2&", &[("a", "1"), ("b", "2")]),
            ("flag&x=", &[("flag", ""), ("x", "")]),
            ("a=b=c", &[("a", "b=c")]),
            (
                "a=100%&b=%zz&c=%4",
                &[("a", "100%"), ("b", "%zz"), ("c", "%4")],
            ),
            (
                "tag=x&tag=y&tag=x",
                &[("tag", "x"), ("tag", "y"), ("tag", "x")],
            ),
            ("=v", &[("", "v")]),
        ];
        for (body, want) in table {
            assert_eq!(parse(body), Ok(owned(want)), "{body:?}");
        }
        let form = urlencoded(&b"tag=x&q=1&tag=y"[..], &Limits::default()).unwrap();
        assert_eq!(form.get("tag"), Some("x"));
        assert_eq!(form.all("tag").collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(form.get("none"), None);
    }

    #[test]
    fn invalid_utf8_is_refused_naming_the_field() {
        assert_eq!(
            parse("name=%FF"),
            Err("form field \"name\" is not UTF-8".into())
        );
        assert_eq!(
            parse("a=1&%C3=x"),
            Err("form field \"\u{fffd}\" is not UTF-8".into())
        );
    }

    #[test]
    fn limits_bound_what_is_read() {
        let limits = Limits {
            max_fields: 3,
            max_field_bytes: 8,
        };
        let read = |body: &[u8]| urlencoded(body, &limits).map(|f| f.fields.len());
        assert_eq!(read(b"a=1&b=2&c=3").unwrap(), 3);
        assert_eq!(read(b"a=1&b=2&c=3&&&").unwrap(), 3);
        assert!(matches!(
            read(b"a=1&b=2&c=3&d"),
            Err(FormError::TooManyFields(3))
        ));
        // A pair of exactly 8 bytes, at the end or before `&`, is fine; 9 is not.
        assert_eq!(read(b"abc=5678").unwrap(), 1);
        assert_eq!(read(b"abc=5678&x=1").unwrap(), 2);
        assert!(matches!(
            read(b"abc=56789"),
            Err(FormError::FieldTooLarge(8))
        ));
        assert!(matches!(
            read(b"x=1&abc=56789&y"),
            Err(FormError::FieldTooLarge(8))
        ));
        // An endless body stops at the first over-long field, having read little of it.
        let mut endless = io::repeat(b'a');
        let e = urlencoded(&mut endless, &limits).unwrap_err();
        assert!(matches!(e, FormError::FieldTooLarge(8)));
        let mut endless = io::repeat(b'&');
        let e = urlencoded((&mut endless).take(1 << 20), &limits).unwrap();
        assert!(e.fields.is_empty());
    }

    #[test]
    fn fuzz_smoke() {
        let seeds: [&[u8]; 4] = [
            b"a=1&b=%C3%A9+x&c&&d=%zz; s=\"q\"",
            b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--b\r\n\
              Content-Disposition: form-data; name=\"u\"; filename=\"x\"\r\n\r\nDATA\r\n--b--\r\n",
            b"",
            b"%%%===&&&;;;\"\"\"\xff\xfe",
        ];
        // Deterministic mutations: every seed with each byte replaced, dropped or repeated.
        let mut state = 0x2545_f491_u32;
        for seed in seeds {
            crate::io::http::form::fuzz_one(seed);
            for _ in 0..400 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let mut input = seed.to_vec();
                if input.is_empty() {
                    input.push(state as u8);
                }
                let at = state as usize % input.len();
                match state % 3 {
                    0 => input[at] = (state >> 8) as u8,
                    1 => {
                        input.remove(at);
                    }
                    _ => {
                        let byte = input[at];
                        input.splice(at..at, std::iter::repeat_n(byte, 100));
                    }
                }
                fuzz_one(&input);
            }
        }
    }

    fn request(content_type: &str, body: &[u8]) -> Request {
        Request {
            method: "POST".into(),
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            ..Request::default()
        }
    }

    #[test]
    fn one_view_over_urlencoded_and_multipart() {
        let urlencoded = request(
            "application/x-www-form-urlencoded; charset=UTF-8",
            b"title=A+day&tag=sea&tag=sky",
        );
        let body = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"title\"\r\n\r\nA day\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"tag\"\r\n\r\nsea\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\
            Content-Type: image/jpeg\r\n\r\nJPEGBYTES\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"tag\"\r\n\r\nsky\r\n\
            --XyZ--\r\n";
        let multipart = request("multipart/form-data; boundary=XyZ", body);
        for req in [urlencoded, multipart] {
            let mut files = Vec::new();
            let form = Form::read(&req, &Limits::default(), |head, data| {
                let mut bytes = Vec::new();
                data.read_to_end(&mut bytes).map_err(FormError::Io)?;
                files.push((head.filename.clone().unwrap(), bytes));
                Ok(())
            })
            .unwrap();
            assert_eq!(form.get("title"), Some("A day"));
            assert_eq!(form.all("tag").collect::<Vec<_>>(), ["sea", "sky"]);
            if req.header("content-type").unwrap().starts_with("multipart") {
                assert_eq!(files, [("a.jpg".to_string(), b"JPEGBYTES".to_vec())]);
            } else {
                assert!(files.is_empty());
            }
        }
    }

    #[test]
    fn multipart_fields_are_bounded_and_checked() {
        let field = |value: &[u8]| {
            let mut body = b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n".to_vec();
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n--b--\r\n");
            request("multipart/form-data; boundary=b", &body)
        };
        let limits = Limits {
            max_fields: 1,
            max_field_bytes: 4,
        };
        let read = |req: &Request| Form::read(req, &limits, |_, _| Ok(()));
        assert_eq!(read(&field(b"abcd")).unwrap().get("f"), Some("abcd"));
        assert!(matches!(
            read(&field(b"abcde")),
            Err(FormError::FieldTooLarge(4))
        ));
        assert!(matches!(read(&field(b"\xff")), Err(FormError::NotUtf8(n)) if n == "f"));
        let two = request(
            "multipart/form-data; boundary=b",
            b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
              --b\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--b--\r\n",
        );
        assert!(matches!(read(&two), Err(FormError::TooManyFields(1))));
        let broken = request("multipart/form-data; boundary=b", b"--b\r\nno head end");
        let e = RequestError::from(read(&broken).unwrap_err());
        assert!(matches!(e, RequestError::BadBody(_)), "{e:?}");
        let json = request("application/json", b"{}");
        let e = RequestError::from(read(&json).unwrap_err());
        assert!(matches!(e, RequestError::ContentType(t) if t == "application/json"));
    }
}
