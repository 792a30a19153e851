//! `multipart/form-data` bodies (RFC 7578), as browsers and `curl -F` send them: the parts with
//! their names, file names and types, and each part's bytes read as a stream.
//!
//! [`Form`] reads any `Read` incrementally through one fixed buffer and finds delimiters with
//! `memchr::memmem` (linear in the worst case), looking at every body byte a bounded number of
//! times — so a body full of almost-delimiters costs what any body of its size costs.
//! Only what the upload API needs; no nested `multipart/mixed`, no `Content-Transfer-Encoding`.

use std::io::{self, Read};

use memchr::memmem;

/// The longest header block of one part.
const MAX_HEAD: usize = 16 << 10;
/// Bytes searched at once (at least); the buffer holds this plus one delimiter.
const CHUNK: usize = 64 << 10;

/// The head of one part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHead {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename`, when the part is a file.
    pub filename: Option<String>,
    /// Its `Content-Type`, when given.
    pub content_type: Option<String>,
}

/// One part of a form with its bytes, as [`parse`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename`, when the part is a file.
    pub filename: Option<String>,
    /// Its `Content-Type`, when given.
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// The boundary of a `multipart/form-data` content type; `None` for any other type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// A malformed form or a failed read, with a message saying which.
#[derive(Debug)]
pub enum FormError {
    /// The body is not a well-formed form; the message says what is wrong.
    Malformed(String),
    /// Reading the body failed.
    Io(io::Error),
}

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormError::Malformed(why) => f.write_str(why),
            FormError::Io(e) => write!(f, "reading the form: {e}"),
        }
    }
}

fn malformed<T>(why: &str) -> Result<T, FormError> {
    Err(FormError::Malformed(why.to_string()))
}

/// A form read part by part: [`Form::next_part`] gives each part's head, then `read` (the
/// form is a `Read`) gives that part's bytes up to the next delimiter.
pub struct Form<R> {
    input: R,
    /// `\r\n--boundary`: every delimiter, the first one included (see `new`).
    finder: memmem::Finder<'static>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Positions below this (absolute in `buf`) are known not to start a delimiter.
    clear_to: usize,
    /// Where the current part's data ends, once its delimiter has been found.
    data_end: Option<usize>,
    /// Whether a part's data is being read (else the next thing is a delimiter's tail).
    in_part: bool,
    done: bool,
    scanned: u64,
}

impl<R: Read> Form<R> {
    /// A form with this boundary over `input`.
    pub fn new(input: R, boundary: &str) -> Self {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        let mut buf = vec![0u8; CHUNK + delimiter.len() + MAX_HEAD];
        // The first delimiter may open the body without a CRLF before it: reading the body as
        // if it had one makes every delimiter alike, and the preamble a part nobody reads.
        buf[..2].copy_from_slice(b"\r\n");
        Form {
            input,
            finder: memmem::Finder::new(&delimiter).into_owned(),
            buf,
            start: 0,
            end: 2,
            eof: false,
            clear_to: 0,
            data_end: None,
            in_part: true,
            done: false,
            scanned: 0,
        }
    }

    /// Body bytes examined by delimiter searches so far: a measure of the work done, which
    /// stays within a small multiple of the body's length.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    fn delimiter_len(&self) -> usize {
        self.finder.needle().len()
    }

    /// Reads more input into the buffer (moving unread bytes to its start first); false at
    /// the end of the input.
    fn fill(&mut self) -> Result<bool, FormError> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.clear_to = self.clear_to.saturating_sub(self.start);
            self.data_end = self.data_end.map(|e| e - self.start);
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Ok(true);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FormError::Io(e)),
            }
        }
    }

    /// Makes sure the current part's data that can be handed out is in the buffer: returns
    /// the end (exclusive) of the bytes from `start` that are surely data, which is `start`
    /// only when the part has ended.
    fn data_available(&mut self) -> Result<usize, FormError> {
        let dlen = self.delimiter_len();
        loop {
            if let Some(end) = self.data_end {
                return Ok(end);
            }
            // Search only once a chunk has arrived (or the input ended), so that small reads
            // do not make the same tail be searched again and again.
            let pending = self.end - self.clear_to.max(self.start);
            if pending < CHUNK + dlen && !self.eof {
                let unread = self.end - self.start;
                self.fill()?;
                if self.end - self.start > unread {
                    continue;
                }
            }
            let from = self.clear_to.max(self.start);
            // The search stops at the first match: it has looked at the bytes up to its end.
            match self.finder.find(&self.buf[from..self.end]) {
                Some(at) => {
                    self.scanned += (at + dlen) as u64;
                    self.data_end = Some(from + at);
                    return Ok(from + at);
                }
                None if self.eof => return malformed("a part has no closing boundary"),
                None => {
                    self.scanned += (self.end - from) as u64;
                    // A delimiter may still begin in the last dlen - 1 bytes.
                    self.clear_to = self.end.saturating_sub(dlen - 1).max(from);
                    if self.clear_to > self.start {
                        return Ok(self.clear_to);
                    }
                    self.fill()?;
                }
            }
        }
    }

    /// At least `n` bytes from `start` in the buffer (fewer only at the end of the input).
    fn want(&mut self, n: usize) -> Result<(), FormError> {
        while self.end - self.start < n {
            if !self.fill()? {
                break;
            }
        }
        Ok(())
    }

    /// Skips what is left of the current part and reads the next part's head; `None` after
    /// the closing delimiter.
    pub fn next_part(&mut self) -> Result<Option<PartHead>, FormError> {
        if self.done {
            return Ok(None);
        }
        if self.in_part {
            let mut sink = [0u8; 8192];
            while self.read_part(&mut sink)? > 0 {}
            // At the delimiter: step over it.
            let dlen = self.delimiter_len();
            self.start += dlen;
            self.clear_to = self.start;
            self.data_end = None;
            self.in_part = false;
        }
        self.want(2)?;
        let after = &self.buf[self.start..self.end];
        if after.starts_with(b"--") {
            self.done = true;
            return Ok(None);
        }
        if !after.starts_with(b"\r\n") {
            return malformed("a boundary line is not followed by CRLF");
        }
        self.start += 2;
        // The head ends at the first empty line; an empty head is just that line.
        self.want(2)?;
        let head_len = if self.buf[self.start..self.end].starts_with(b"\r\n") {
            0
        } else {
            self.want(MAX_HEAD)?;
            let window = &self.buf[self.start..self.end.min(self.start + MAX_HEAD)];
            match memmem::find(window, b"\r\n\r\n") {
                Some(at) => {
                    self.scanned += at as u64 + 4;
                    at + 2
                }
                None => return malformed("a part has no blank line after its headers"),
            }
        };
        let head = std::str::from_utf8(&self.buf[self.start..self.start + head_len])
            .map_err(|_| FormError::Malformed("part headers are not UTF-8".into()))?;
        let part = parse_head(head)?;
        self.start += head_len + 2;
        self.clear_to = self.start;
        self.in_part = true;
        Ok(Some(part))
    }

    /// The current part's bytes; `Ok(0)` at its end.
    fn read_part(&mut self, out: &mut [u8]) -> Result<usize, FormError> {
        if !self.in_part {
            return Ok(0);
        }
        let until = self.data_available()?;
        let n = (until - self.start).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// The current part's bytes, up to its closing delimiter.
impl<R: Read> Read for Form<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.read_part(out).map_err(|e| match e {
            FormError::Io(e) => e,
            FormError::Malformed(why) => io::Error::new(io::ErrorKind::InvalidData, why),
        })
    }
}

fn parse_head(head: &str) -> Result<PartHead, FormError> {
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let Some((header, value)) = line.split_once(':') else {
            return malformed("a part header has no ':'");
        };
        if header.trim().eq_ignore_ascii_case("content-disposition") {
            for param in value.split(';').skip(1) {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "name" => name = Some(v),
                    "filename" => filename = Some(v),
                    _ => {}
                }
            }
        } else if header.trim().eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_string());
        }
    }
    let Some(name) = name else {
        return malformed("a part has no name");
    };
    Ok(PartHead {
        name,
        filename,
        content_type,
    })
}

/// Splits a whole body into its parts; the message says what is wrong with a malformed one.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let mut form = Form::new(body, boundary);
    let mut parts = Vec::new();
    while let Some(head) = form.next_part().map_err(|e| e.to_string())? {
        let mut data = Vec::new();
        form.read_to_end(&mut data).map_err(|e| e.to_string())?;
        parts.push(Part {
            name: head.name,
            filename: head.filename,
            content_type: head.content_type,
            data,
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        for (ct, want) in [
            ("multipart/form-data; boundary=abc", Some("abc")),
            (
                "Multipart/Form-Data; charset=x; boundary=\"a b\"",
                Some("a b"),
            ),
            ("multipart/form-data", None),
            ("image/jpeg", None),
        ] {
            assert_eq!(boundary(ct).as_deref(), want, "{ct}");
        }
    }

    #[test]
    fn parts_with_names_files_and_binary_bytes() {
        let body = b"preamble\r\n--XY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\r\n--X\x00\r\n--XY\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\n/travel\r\n--XY--\r\n";
        let parts = parse(body, "XY").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "file");
        assert_eq!(parts[0].filename.as_deref(), Some("a.jpg"));
        assert_eq!(parts[0].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(parts[0].data, b"\xff\xd8\r\n--X\x00");
        assert_eq!(
            (parts[1].name.as_str(), &parts[1].data[..]),
            ("category", &b"/travel"[..])
        );
        // Without a preamble, and read one byte at a time.
        let body = &body[10..];
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(out.len()).min(1);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut form = Form::new(Trickle(body), "XY");
        let head = form.next_part().unwrap().unwrap();
        assert_eq!(head.name, "file");
        let mut data = Vec::new();
        form.read_to_end(&mut data).unwrap();
        assert_eq!(data, b"\xff\xd8\r\n--X\x00");
        assert_eq!(form.next_part().unwrap().unwrap().name, "category");
        // The rest of a part nobody read is skipped.
        assert!(form.next_part().unwrap().is_none());
    }

    #[test]
    fn large_parts_cross_the_buffer_intact() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 13) as u8).collect();
        let mut body = b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".to_vec();
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n--b--");
        let parts = parse(&body, "b").unwrap();
        assert!(parts[0].data == data);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [
            &b"no boundary"[..],
            b"--XY\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
            b"--XY\r\nno colon\r\n\r\nx\r\n--XY--",
            b"--XY\r\nContent-Type: text/plain\r\n\r\nx\r\n--XY--",
            b"--XY\r\nContent-Disposition: form-data; name=\"a\"",
            b"--XYjunk",
        ] {
            assert!(
                parse(body, "XY").is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// Bodies that cost a naive search O(n·m): runs of `-` against a boundary of dashes (every
    /// position of the old `windows().position()` search compared all 71 dashes before the
    /// `x`, 72 byte comparisons per body byte), and many almost-delimiters. Each body byte is
    /// handed to the searcher a bounded number of times, and `memmem` is O(n + m) per search.
    #[test]
    fn almost_delimiters_cost_linear_work() {
        let boundary = format!("{}x", "-".repeat(69));
        let dashes = "-".repeat(1 << 20);
        let body = format!(
            "{dashes}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n\
             {dashes}\r\n--{boundary}--"
        );
        let mut form = Form::new(body.as_bytes(), &boundary);
        assert_eq!(form.next_part().unwrap().unwrap().name, "f");
        let mut data = Vec::new();
        form.read_to_end(&mut data).unwrap();
        assert!(data == dashes.as_bytes());
        assert!(form.next_part().unwrap().is_none());
        let n = body.len() as u64;
        assert!(form.scanned() <= 2 * n, "{} for {n}", form.scanned());

        // Many tiny parts: each head and each part's data is looked at once.
        let mut body = Vec::new();
        for i in 0..5_000 {
            body.extend_from_slice(
                format!("--b\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(b"--b--");
        let mut form = Form::new(&body[..], "b");
        let mut parts = 0;
        while form.next_part().unwrap().is_some() {
            parts += 1;
        }
        assert_eq!(parts, 5_000);
        assert!(
            form.scanned() <= 2 * body.len() as u64,
            "{}",
            form.scanned()
        );

        let boundary = "B".repeat(70);
        let near = format!("\r\n--{}", &boundary[..69]);
        for repeats in [1_000, 10_000, 40_000] {
            let mut body =
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n")
                    .into_bytes();
            for _ in 0..repeats {
                body.extend_from_slice(near.as_bytes());
                body.push(b'x');
            }
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let mut form = Form::new(&body[..], &boundary);
            form.next_part().unwrap().unwrap();
            let mut data = Vec::new();
            form.read_to_end(&mut data).unwrap();
            assert_eq!(data.len(), repeats * (near.len() + 1));
            assert!(form.next_part().unwrap().is_none());
            let n = body.len() as u64;
            assert!(
                form.scanned() <= 2 * n,
                "{} bytes scanned for a {n}-byte body",
                form.scanned()
            );
        }
    }
}
