//! `multipart/form-data` bodies (RFC 7578), as browsers and `curl -F` send them: the parts with
//! their names, file names, types and bytes. Pure: the whole body is in memory already.
//!
//! Only what the upload API needs; no nested `multipart/mixed`, no `Content-Transfer-Encoding`.

/// One part of a form.
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

/// Splits a body into its parts; the message says what is wrong with a malformed one.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut rest = match find(body, &delimiter) {
        Some(i) => &body[i + delimiter.len()..],
        None => return Err("no boundary in the body".into()),
    };
    let mut next_delimiter = b"\r\n".to_vec();
    next_delimiter.extend_from_slice(&delimiter);
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("a boundary line is not followed by CRLF")?;
        let end = find(rest, &next_delimiter).ok_or("a part has no closing boundary")?;
        parts.push(part(&rest[..end])?);
        rest = &rest[end + next_delimiter.len()..];
    }
}

fn part(raw: &[u8]) -> Result<Part, String> {
    let split = find(raw, b"\r\n\r\n").ok_or("a part has no blank line after its headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "part headers are not UTF-8")?;
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let (header, value) = line.split_once(':').ok_or("a part header has no ':'")?;
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
    Ok(Part {
        name: name.ok_or("a part has no name")?,
        filename,
        content_type,
        data: raw[split + 4..].to_vec(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [
            &b"no boundary"[..],
            b"--XY\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
            b"--XY\r\nno colon\r\n\r\nx\r\n--XY--",
            b"--XY\r\nContent-Type: text/plain\r\n\r\nx\r\n--XY--",
        ] {
            assert!(
                parse(body, "XY").is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
