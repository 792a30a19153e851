//! Cookies: the `Cookie` request header read (RFC 6265 §5.4, leniently, never panicking on
//! what a client sends) and `Set-Cookie` values built (§4.1), refusing a name, value or
//! attribute that would break the header.
//!
//! This module knows nothing of sessions or of what a cookie means; it only translates.

use std::fmt;
use std::time::{Duration, SystemTime};

/// The cookies of a request's `Cookie` headers, in the order sent: `name=value` pairs separated
/// by `;`, a value's surrounding double quotes removed. A pair without `=`, with a name that is
/// not a token or a value with characters outside `cookie-octet` is skipped, not fatal: the
/// other cookies still count (a browser sends what other sites' scripts may have set).
pub fn parse(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim_matches([' ', '\t']);
            let value = value.trim_matches([' ', '\t']);
            let value = match value.strip_prefix('"') {
                Some(inner) => inner.strip_suffix('"')?,
                None => value,
            };
            (is_token(name) && is_cookie_value(value)).then(|| (name.into(), value.into()))
        })
        .collect()
}

/// Whether `s` is an RFC 9110 `token` (a cookie's name): visible ASCII without separators.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `s` is made of RFC 6265 `cookie-octet`s: visible ASCII but `"`, `,`, `;` and `\`.
fn is_cookie_value(s: &str) -> bool {
    s.bytes()
        .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

/// What a cookie may be sent along with (`SameSite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Also on top-level navigations from other sites (a link to a page): a session cookie.
    Lax,
    /// Only on requests started by this site.
    Strict,
}

/// A part of a `Set-Cookie` that would break the header or let a value add attributes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// The name is empty or not a token.
    #[error("cookie name {0:?} is not a token")]
    Name(String),
    /// The value has a character outside `cookie-octet` (a space, `;`, `,`, `"`, `\`, a
    /// control or non-ASCII character).
    #[error("value of cookie {0:?} has a character a cookie cannot carry")]
    Value(String),
    /// The `Path` has `;` or a control character.
    #[error("path of cookie {0:?} has `;` or a control character")]
    Path(String),
}

/// One `Set-Cookie` value, built field by field; [`SetCookie::new`] checks name and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    name: String,
    value: String,
    path: Option<String>,
    max_age: Option<Duration>,
    expires: Option<SystemTime>,
    http_only: bool,
    secure: bool,
    same_site: Option<SameSite>,
}

impl SetCookie {
    /// A cookie `name=value` with no attributes (a session cookie, for every path the browser
    /// picks by default).
    pub fn new(name: &str, value: &str) -> Result<SetCookie, CookieError> {
        if !is_token(name) {
            return Err(CookieError::Name(name.into()));
        }
        if !is_cookie_value(value) {
            return Err(CookieError::Value(name.into()));
        }
        Ok(SetCookie {
            name: name.into(),
            value: value.into(),
            path: None,
            max_age: None,
            expires: None,
            http_only: false,
            secure: false,
            same_site: None,
        })
    }

    /// A cookie that tells the browser to forget `name` at `path` (empty, `Max-Age=0`, an
    /// `Expires` in 1970 for clients that ignore `Max-Age`).
    pub fn removal(name: &str, path: &str) -> Result<SetCookie, CookieError> {
        Ok(SetCookie::new(name, "")?
            .path(path)?
            .max_age(Duration::ZERO)
            .expires(SystemTime::UNIX_EPOCH))
    }

    /// `Path=`: the URL prefix the cookie is sent for.
    pub fn path(mut self, path: &str) -> Result<SetCookie, CookieError> {
        if path.bytes().any(|b| b == b';' || b.is_ascii_control()) {
            return Err(CookieError::Path(self.name));
        }
        self.path = Some(path.into());
        Ok(self)
    }

    /// `Max-Age=` in whole seconds (rounded down); zero removes the cookie.
    pub fn max_age(mut self, age: Duration) -> SetCookie {
        self.max_age = Some(age);
        self
    }

    /// `Expires=` (an HTTP date, seconds resolution): for clients that ignore `Max-Age`.
    pub fn expires(mut self, at: SystemTime) -> SetCookie {
        self.expires = Some(at);
        self
    }

    /// `HttpOnly`: scripts in the page cannot read it.
    pub fn http_only(mut self, on: bool) -> SetCookie {
        self.http_only = on;
        self
    }

    /// `Secure`: sent over HTTPS only (set it when the request came over HTTPS,
    /// `Request::is_https`).
    pub fn secure(mut self, on: bool) -> SetCookie {
        self.secure = on;
        self
    }

    /// `SameSite=Lax|Strict`.
    pub fn same_site(mut self, same_site: SameSite) -> SetCookie {
        self.same_site = Some(same_site);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The header value, attributes in a fixed order.
impl fmt::Display for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)?;
        if let Some(path) = &self.path {
            write!(f, "; Path={path}")?;
        }
        if let Some(age) = self.max_age {
            write!(f, "; Max-Age={}", age.as_secs())?;
        }
        if let Some(at) = self.expires {
            write!(f, "; Expires={}", httpdate::fmt_http_date(at))?;
        }
        if self.http_only {
            f.write_str("; HttpOnly")?;
        }
        if self.secure {
            f.write_str("; Secure")?;
        }
        match self.same_site {
            Some(SameSite::Lax) => f.write_str("; SameSite=Lax")?,
            Some(SameSite::Strict) => f.write_str("; SameSite=Strict")?,
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(header: &str) -> Vec<(String, String)> {
        parse(header)
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cookie_headers_read_as_browsers_send_them() {
        let table: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("a=1", &[("a", "1")]),
            ("a=1; b=2", &[("a", "1"), ("b", "2")]),
            // Lenient about spacing, as §5.4 readers are.
            ("a=1;b=2 ;  c = 3", &[("a", "1"), ("b", "2"), ("c", "3")]),
            // Quoted values lose their quotes; an unterminated quote is not a value.
            ("q=\"x y\"", &[]),
            ("q=\"xy\"; r=\"open", &[("q", "xy")]),
            ("e=", &[("e", "")]),
            ("e=\"\"", &[("e", "")]),
            // Repeated names are kept, in order (the more specific path first, §5.4).
            ("s=1; s=2", &[("s", "1"), ("s", "2")]),
            // Broken pairs are skipped, the rest still count.
            ("novalue; a=1", &[("a", "1")]),
            ("=1; a=1", &[("a", "1")]),
            ("bad name=1; a=1", &[("a", "1")]),
            ("a=x,y; b=2", &[("b", "2")]),
            ("a=x\\y; b=2", &[("b", "2")]),
            ("a=é; b=2", &[("b", "2")]),
            // The first `=` splits; base64 padding stays in the value.
            ("t=YWJj==", &[("t", "YWJj==")]),
            (";;; a=1 ;", &[("a", "1")]),
        ];
        for (header, want) in table {
            assert_eq!(pairs(header), owned(want), "{header:?}");
        }
    }

    #[test]
    fn odd_cookie_headers_never_panic() {
        let mut odd: Vec<String> = [
            "\"",
            "=",
            ";",
            "\"=\"",
            "a=\"",
            "a=\"\"\"",
            "=\"\"",
            "\u{0}=\u{0}",
            "a=b=c",
            "a=\u{7f}",
            "\t;\t",
            "ä=ö; 🍪=1",
            "a=1;;;;;;",
            "\r\n a=1",
        ]
        .map(String::from)
        .to_vec();
        // Every short string over an alphabet of the characters the parser looks at.
        let alphabet = ['a', '=', ';', '"', ' ', '\t', ',', '\\', 'é'];
        for n in 0..4usize {
            let total = alphabet.len().pow(n as u32);
            for mut i in 0..total {
                let mut s = String::new();
                for _ in 0..n {
                    s.push(alphabet[i % alphabet.len()]);
                    i /= alphabet.len();
                }
                odd.push(s);
            }
        }
        for header in &odd {
            for (name, value) in parse(header) {
                // Whatever is returned can be sent back in a Set-Cookie unchanged.
                assert!(SetCookie::new(&name, &value).is_ok(), "{header:?}");
            }
        }
    }

    #[test]
    fn set_cookie_values_carry_every_attribute() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let c = SetCookie::new("imgserv_session", "abc-123")
            .unwrap()
            .path("/")
            .unwrap()
            .max_age(Duration::from_millis(3_600_999))
            .expires(at)
            .http_only(true)
            .secure(true)
            .same_site(SameSite::Lax);
        assert_eq!(
            c.to_string(),
            "imgserv_session=abc-123; Path=/; Max-Age=3600; \
             Expires=Fri, 15 Jan 2027 08:00:00 GMT; HttpOnly; Secure; SameSite=Lax"
        );
        let plain = SetCookie::new("a", "1")
            .unwrap()
            .same_site(SameSite::Strict);
        assert_eq!(plain.to_string(), "a=1; SameSite=Strict");
        assert_eq!(
            SetCookie::removal("a", "/api").unwrap().to_string(),
            "a=; Path=/api; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }

    #[test]
    fn set_cookie_refuses_what_would_break_the_header() {
        for name in ["", "a b", "a;b", "a=b", "a\r\nb", "é", "a,b", "(a)"] {
            assert_eq!(
                SetCookie::new(name, "v"),
                Err(CookieError::Name(name.into())),
                "{name:?}"
            );
        }
        for value in [
            "a b", "a;b", "a\"b", "\"a\"", "a,b", "a\\b", "a\nb", "é", "\u{7f}",
        ] {
            assert_eq!(
                SetCookie::new("n", value),
                Err(CookieError::Value("n".into())),
                "{value:?}"
            );
        }
        let c = SetCookie::new("n", "v").unwrap();
        assert_eq!(c.clone().path("/a;b"), Err(CookieError::Path("n".into())));
        assert_eq!(c.path("/a\nb"), Err(CookieError::Path("n".into())));
    }
}
