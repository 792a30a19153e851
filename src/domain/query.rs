//! Parsing the redirector's query string (`src`, `width`, `height`) into typed values. Pure: no
//! I/O, no configuration beyond the caps it is given.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::domain::geometry::BoundingBox;

/// A query parameter that is missing or unusable; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A required parameter is absent or empty.
    #[error("missing parameter '{0}'")]
    Missing(&'static str),
    /// A parameter is present but not acceptable; the text says why.
    #[error("parameter '{name}': {reason}")]
    Invalid { name: &'static str, reason: String },
    /// An `after=` cursor that this server did not make for this listing (altered, cut
    /// short, or made for another category, order or search); the text says why.
    #[error("parameter 'after': not a valid cursor for this listing ({0})")]
    BadCursor(String),
}

/// A redirector request: which original, fitted into which box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResizeQuery {
    /// Percent-decoded, exactly once.
    pub src: String,
    pub bbox: BoundingBox,
}

/// Splits a query string into percent-decoded pairs (`+` is a space, as in HTML forms).
/// A pair that does not decode to UTF-8 is an error naming the parameter.
pub fn pairs(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    let mut out = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let name = decode(name).ok_or(QueryError::Invalid {
            name: "query",
            reason: "a parameter name is not valid UTF-8".into(),
        })?;
        let value = decode(value).ok_or_else(|| QueryError::Invalid {
            name: known_name(&name),
            reason: "not valid UTF-8 after percent-decoding".into(),
        })?;
        out.push((name, value));
    }
    Ok(out)
}

fn decode(s: &str) -> Option<String> {
    let plus: Cow<str> = if s.contains('+') {
        Cow::Owned(s.replace('+', " "))
    } else {
        Cow::Borrowed(s)
    };
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

/// Error messages name parameters by a `'static` name; anything unknown is "query".
fn known_name(name: &str) -> &'static str {
    match name {
        "src" => "src",
        "width" => "width",
        "height" => "height",
        "preset" => "preset",
        "sig" => "sig",
        _ => "query",
    }
}

/// The single value of `name`, refusing it twice (`?width=1&width=2` is ambiguous).
pub fn single<'a>(
    pairs: &'a [(String, String)],
    name: &'static str,
) -> Result<Option<&'a str>, QueryError> {
    let mut found = None;
    for (n, v) in pairs {
        if n == name {
            if found.is_some() {
                return Err(QueryError::Invalid {
                    name,
                    reason: "given more than once".into(),
                });
            }
            found = Some(v.as_str());
        }
    }
    Ok(found)
}

/// A positive integer no larger than `max`: digits only, no sign, no spaces.
pub fn dimension(name: &'static str, value: Option<&str>, max: u32) -> Result<u32, QueryError> {
    let value = value
        .filter(|v| !v.is_empty())
        .ok_or(QueryError::Missing(name))?;
    let invalid = || QueryError::Invalid {
        name,
        reason: format!("expected an integer from 1 to {max}, got {value:?}"),
    };
    if value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match value.parse::<u64>() {
        Ok(n) if n >= 1 && n <= u64::from(max) => Ok(n as u32),
        _ => Err(invalid()),
    }
}

/// The longest `src` taken, decoded: Linux's PATH_MAX, and longer than any URL an image host
/// hands out. Longer values are refused before they reach the file system or the network.
pub const MAX_SRC_BYTES: usize = 4096;

/// Parses `src` and either `width` and `height` (capped) or `preset`, a name from `presets`
/// whose first box is used.
pub fn parse_resize(
    query: &str,
    max_width: u32,
    max_height: u32,
    presets: &BTreeMap<String, Vec<BoundingBox>>,
) -> Result<ResizeQuery, QueryError> {
    let pairs = pairs(query)?;
    let src = single(&pairs, "src")?
        .filter(|s| !s.is_empty())
        .ok_or(QueryError::Missing("src"))?;
    if src.contains('\0') {
        return Err(QueryError::Invalid {
            name: "src",
            reason: "contains a NUL byte".into(),
        });
    }
    if src.len() > MAX_SRC_BYTES {
        return Err(QueryError::Invalid {
            name: "src",
            reason: format!("longer than {MAX_SRC_BYTES} bytes"),
        });
    }
    let (width, height) = (single(&pairs, "width")?, single(&pairs, "height")?);
    let bbox = match single(&pairs, "preset")? {
        Some(_) if width.is_some() || height.is_some() => {
            return Err(QueryError::Invalid {
                name: "preset",
                reason: "give either preset or width and height, not both".into(),
            });
        }
        Some(name) => *presets
            .get(name)
            .and_then(|boxes| boxes.first())
            .ok_or_else(|| QueryError::Invalid {
                name: "preset",
                reason: format!("no preset called {name:?}"),
            })?,
        None => BoundingBox::new(
            dimension("width", width, max_width)?,
            dimension("height", height, max_height)?,
        ),
    };
    Ok(ResizeQuery {
        src: src.to_string(),
        bbox,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::geometry::Size;

    fn parse(q: &str) -> Result<ResizeQuery, QueryError> {
        let presets = BTreeMap::from([
            ("thumb".to_string(), vec![Size::new(100, 100)]),
            (
                "two".to_string(),
                vec![Size::new(50, 40), Size::new(800, 600)],
            ),
        ]);
        parse_resize(q, 4096, 4096, &presets)
    }

    #[test]
    fn presets() {
        assert_eq!(
            parse("src=a.jpg&preset=thumb").unwrap().bbox,
            Size::new(100, 100)
        );
        assert_eq!(
            parse("src=a.jpg&preset=two").unwrap().bbox,
            Size::new(50, 40)
        );
        let err = parse("src=a.jpg&preset=nope").unwrap_err().to_string();
        assert_eq!(err, "parameter 'preset': no preset called \"nope\"");
        let err = parse("src=a.jpg&preset=thumb&width=5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("either preset or width and height"), "{err}");
        assert!(parse("src=a.jpg&preset=thumb&preset=two").is_err());
    }

    #[test]
    fn good_queries() {
        let q = parse("src=images/1.jpg&width=800&height=600").unwrap();
        assert_eq!(q.src, "images/1.jpg");
        assert_eq!(q.bbox, Size::new(800, 600));
        let q = parse("width=1&height=4096&src=a%20b+c.jpg&cachebuster=7").unwrap();
        assert_eq!(q.src, "a b c.jpg");
        assert_eq!(q.bbox, Size::new(1, 4096));
        // Decoded exactly once: an encoded percent stays a literal percent.
        assert_eq!(
            parse("src=%252e%252e/x&width=1&height=1").unwrap().src,
            "%2e%2e/x"
        );
    }

    #[test]
    fn bad_queries_name_the_parameter() {
        #[rustfmt::skip]
        let cases = [
            ("width=1&height=1",                    "missing parameter 'src'"),
            ("src=&width=1&height=1",               "missing parameter 'src'"),
            ("src=a.jpg&height=1",                  "missing parameter 'width'"),
            ("src=a.jpg&width=1",                   "missing parameter 'height'"),
            ("src=a.jpg&width=&height=1",           "missing parameter 'width'"),
            ("src=a.jpg&width=0&height=1",          "parameter 'width': expected an integer from 1 to 4096, got \"0\""),
            ("src=a.jpg&width=-5&height=1",         "parameter 'width': expected an integer"),
            ("src=a.jpg&width=abc&height=1",        "parameter 'width': expected an integer"),
            ("src=a.jpg&width=1.5&height=1",        "parameter 'width': expected an integer"),
            ("src=a.jpg&width=%2B5&height=1",       "parameter 'width': expected an integer"),
            ("src=a.jpg&width=4097&height=1",       "parameter 'width': expected an integer from 1 to 4096"),
            ("src=a.jpg&width=99999999999&height=1","parameter 'width': expected an integer"),
            ("src=a.jpg&width=1&height=0",          "parameter 'height': expected an integer"),
            ("src=a.jpg&width=1&height=1e3",        "parameter 'height': expected an integer"),
            ("src=a.jpg&width=1&width=2&height=1",  "parameter 'width': given more than once"),
            ("src=a%00b&width=1&height=1",          "parameter 'src': contains a NUL byte"),
            ("src=%FF&width=1&height=1",            "parameter 'src': not valid UTF-8"),
        ];
        for (q, want) in cases {
            let got = parse(q).unwrap_err().to_string();
            assert!(got.starts_with(want), "{q}: got {got:?}, want {want:?}");
        }
        let longest = "a".repeat(MAX_SRC_BYTES);
        assert_eq!(
            parse(&format!("src={longest}&width=1&height=1"))
                .unwrap()
                .src,
            longest
        );
        let got = parse(&format!("src={longest}b&width=1&height=1")).unwrap_err();
        assert_eq!(got.to_string(), "parameter 'src': longer than 4096 bytes");
    }
}
