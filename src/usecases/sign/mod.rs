//! Request and URL signatures: HMAC-SHA256 over a canonical form of the request, exactly as
//! specified in imgserv-signing(7), which any client can implement. Requests are signed in one
//! of two versions ([`Version`]); both verify.
//!
//! Pure: the caller passes the time and a key lookup; this module never reads the clock,
//! the catalog or the configuration. It authenticates and reports the key's rights; which
//! right a route needs is the route's business ([`Verified::require`]), and remembering
//! accepted signatures against replays is the `replay` module's.
//!
//! Paths are the path below imgserv's mount point, as the handler sees it (CGI `PATH_INFO`,
//! already percent-decoded once), so a signature does not depend on where imgserv is mounted.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};
use sha2::{Digest, Sha256};

use crate::domain::hex;
use crate::io::catalog::{ApiKey, Rights};
use crate::io::http::Request;

type HmacSha256 = Hmac<Sha256>;

/// The `Authorization` scheme and first line of a version 1 request's string to sign.
pub const SCHEME: &str = "IMGSERV-HMAC-SHA256";
/// The same for version 2, which also signs `Content-Type`.
pub const SCHEME_V2: &str = "IMGSERV2-HMAC-SHA256";
/// The first line of a URL's string to sign.
pub const URL_SCHEME: &str = "IMGSERV-URL";
/// Unix seconds when the client signed (header names are lower case, as in `Request`).
pub const DATE_HEADER: &str = "x-imgserv-date";
/// Lower-case hex SHA-256 of the request body.
pub const CONTENT_HEADER: &str = "x-imgserv-content-sha256";
/// The query parameter carrying a URL signature: `sig=<key id>.<hex>`.
pub const SIG_PARAM: &str = "sig";
/// The optional query parameter with a URL's expiry in unix seconds; signed like the rest.
pub const EXP_PARAM: &str = "exp";

/// Bytes left as they are in canonical paths and queries: RFC 3986 unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The same for paths, which keep their slashes.
const PATH_UNRESERVED: &AsciiSet = &UNRESERVED.remove(b'/');

/// The versions of the request scheme. The `Authorization` scheme names the version and is
/// also the first line of the string to sign, so a signature made for one version never
/// verifies as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Six lines: scheme, method, path, query, date, body hash. `Content-Type` is not signed,
    /// so whoever can change a v1 request in transit can change how its body is read (a
    /// multipart boundary, say) without breaking the signature.
    V1,
    /// Seven lines: v1 with the `Content-Type` as sent before the body hash.
    V2,
}

impl Version {
    /// The `Authorization` scheme and first line of the string to sign.
    pub fn scheme(self) -> &'static str {
        match self {
            Version::V1 => SCHEME,
            Version::V2 => SCHEME_V2,
        }
    }

    /// The version a scheme names (compared without regard to case).
    fn of_scheme(name: &str) -> Option<Version> {
        [Version::V1, Version::V2]
            .into_iter()
            .find(|v| v.scheme().eq_ignore_ascii_case(name))
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// No `Authorization: IMGSERV-HMAC-SHA256 …` header, or no `sig` on a URL that needs one.
    #[error("the request is not signed")]
    Unsigned,
    /// A signature header or parameter that does not parse; the text says which.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The key id is not in the catalog.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    /// The key was revoked (reported only to holders of its secret).
    #[error("key {0} is revoked")]
    RevokedKey(String),
    /// The key's expiry (`imgserv-admin key add --expires`) has passed (reported only to
    /// holders of its secret).
    #[error("key {0} has expired")]
    ExpiredKey(String),
    /// The key's user is disabled (reported only to holders of its secret).
    #[error("the user of key {0} is disabled")]
    DisabledUser(String),
    /// The request's date is further from the server's clock than the allowed skew, or a
    /// URL's `exp` has passed.
    #[error("signature expired or dated in the future")]
    Expired,
    /// The body's SHA-256 is not the one in `X-Imgserv-Content-SHA256`.
    #[error("body does not match X-Imgserv-Content-SHA256")]
    BodyMismatch,
    /// The HMAC does not match: wrong secret, or the request was changed after signing.
    #[error("signature does not match")]
    BadSignature,
    /// The key is valid but lacks a right the request needs.
    #[error("key lacks the right {needed}")]
    InsufficientRights { needed: Rights },
    /// This signature was accepted before, for a write: a client signs every write afresh.
    #[error("this signed request was accepted before; sign it again to repeat it")]
    Replayed,
}

/// What the server knows of a key, for verifying.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub user: String,
    pub rights: Rights,
    /// The HMAC key: the ASCII bytes of the key's secret as `imgserv-admin key add` prints it.
    pub secret: Vec<u8>,
    pub revoked: bool,
    /// Unix seconds from which the key is refused; `None`: never.
    pub expires: Option<u64>,
    /// The key's user is disabled: the key is refused.
    pub user_disabled: bool,
}

impl std::fmt::Debug for KeyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyInfo")
            .field("user", &self.user)
            .field("rights", &self.rights)
            .field("revoked", &self.revoked)
            .field("expires", &self.expires)
            .field("user_disabled", &self.user_disabled)
            .finish_non_exhaustive()
    }
}

/// A catalog key as the verifier needs it.
impl From<ApiKey> for KeyInfo {
    fn from(k: ApiKey) -> Self {
        KeyInfo {
            user: k.user,
            rights: k.rights,
            secret: k.secret.expose().as_bytes().to_vec(),
            revoked: k.revoked.is_some(),
            // Milliseconds rounded down to seconds: refused from the second it expires in.
            expires: k.expires.map(|ms| u64::try_from(ms).unwrap_or(0) / 1000),
            user_disabled: k.user_disabled,
        }
    }
}

/// A request or URL whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key_id: String,
    pub user: String,
    pub rights: Rights,
    /// The HMAC the client sent (and the server recomputed): what identifies this signed
    /// request for the replay log.
    pub signature: [u8; 32],
}

impl Verified {
    /// `Ok` when the key has every right in `needed`.
    pub fn require(&self, needed: Rights) -> Result<(), SignError> {
        if self.rights.contains(needed) {
            Ok(())
        } else {
            Err(SignError::InsufficientRights { needed })
        }
    }
}

/// The canonical path: every byte of the (already percent-decoded) path percent-encoded
/// except unreserved characters and `/`, with upper-case hex; the empty path is `/`.
pub fn canonical_path(decoded: &str) -> String {
    if decoded.is_empty() {
        return "/".into();
    }
    percent_encode(decoded.as_bytes(), PATH_UNRESERVED).to_string()
}

/// The canonical query of a raw (still encoded) query string: split at `&` (empty parts
/// dropped), each part at its first `=` (none: empty value); `+` is a space; names and values
/// percent-decoded to bytes and encoded again (unreserved characters kept, upper-case hex);
/// pairs whose decoded name is in `skip` dropped; sorted by encoded name then encoded value,
/// byte-wise; joined as `name=value` with `&`.
pub fn canonical_query(raw: &str, skip: &[&str]) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = decode(name);
            if skip.iter().any(|s| s.as_bytes() == name.as_slice()) {
                return None;
            }
            Some((
                percent_encode(&name, UNRESERVED).to_string(),
                percent_encode(&decode(value), UNRESERVED).to_string(),
            ))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn decode(s: &str) -> Vec<u8> {
    percent_decode(s.replace('+', " ").as_bytes()).collect()
}

/// The canonical `Content-Type` (v2): the value as sent without surrounding spaces and tabs;
/// none is the empty string. `None` when it holds a control character, which could forge a
/// line of the string to sign.
pub fn canonical_content_type(value: Option<&str>) -> Option<&str> {
    let value = value.unwrap_or("").trim_matches([' ', '\t']);
    (!value.chars().any(char::is_control)).then_some(value)
}

/// The string to sign for a request, lines joined by `\n` without a trailing newline: six
/// for [`Version::V1`], seven for [`Version::V2`], whose sixth is `content_type` (canonical,
/// see [`canonical_content_type`]); v1 ignores `content_type`.
pub fn string_to_sign(
    version: Version,
    method: &str,
    decoded_path: &str,
    raw_query: &str,
    date: &str,
    content_type: &str,
    content_sha256: &str,
) -> String {
    let mut lines = [
        version.scheme(),
        method,
        &canonical_path(decoded_path),
        &canonical_query(raw_query, &[]),
        date,
    ]
    .join("\n");
    if version == Version::V2 {
        lines.push('\n');
        lines.push_str(content_type);
    }
    format!("{lines}\n{content_sha256}")
}

/// The string to sign for a URL: three lines, the query without `sig`.
pub fn url_string_to_sign(decoded_path: &str, raw_query: &str) -> String {
    format!(
        "{URL_SCHEME}\n{}\n{}",
        canonical_path(decoded_path),
        canonical_query(raw_query, &[SIG_PARAM])
    )
}

/// Lower-case hex HMAC-SHA256 of `message` under `secret`.
pub fn signature(secret: &[u8], message: &str) -> String {
    hex(&mac(secret, message).finalize().into_bytes())
}

fn mac(secret: &[u8], message: &str) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(message.as_bytes());
    mac
}

/// Lower-case hex SHA-256.
pub fn content_sha256(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

/// The three headers a client adds to sign `req` (its method, path, query, body and, for v2,
/// `Content-Type` header as it will be sent) at `date` (unix seconds), with lower-case names.
pub fn sign_request(
    version: Version,
    key_id: &str,
    secret: &[u8],
    req: &Request,
    date: u64,
) -> [(String, String); 3] {
    let date = date.to_string();
    let content = req.body.sha256_hex();
    let content_type = canonical_content_type(req.header("content-type")).unwrap_or_default();
    let sts = string_to_sign(
        version,
        &req.method,
        &req.path,
        &req.query,
        &date,
        content_type,
        &content,
    );
    let sig = signature(secret, &sts);
    [
        (DATE_HEADER.into(), date),
        (CONTENT_HEADER.into(), content),
        (
            "authorization".into(),
            format!("{} Credential={key_id}, Signature={sig}", version.scheme()),
        ),
    ]
}

/// Checks a request's signature, of either version, at `now` (unix seconds), allowing
/// `max_skew` between the client's date and `now` in either direction. `lookup` is asked for
/// the key only after the cheap checks passed; its own errors pass through unchanged.
/// Replays are not this function's business: see the `replay` module.
pub fn verify<E: From<SignError>>(
    req: &Request,
    now: u64,
    max_skew: Duration,
    lookup: impl FnOnce(&str) -> Result<Option<KeyInfo>, E>,
) -> Result<Verified, E> {
    let Some(auth) = header(req, "authorization")? else {
        return Err(SignError::Unsigned.into());
    };
    let (scheme, params) = auth.trim().split_once(' ').unwrap_or((auth.trim(), ""));
    let Some(version) = Version::of_scheme(scheme) else {
        return Err(SignError::Unsigned.into());
    };
    let (key_id, sig) = parse_authorization(params)?;
    let date = header(req, DATE_HEADER)?.ok_or_else(|| malformed("missing X-Imgserv-Date"))?;
    let when = unix_seconds(date).ok_or_else(|| malformed("X-Imgserv-Date is not unix seconds"))?;
    if now.abs_diff(when) > max_skew.as_secs() {
        return Err(SignError::Expired.into());
    }
    let content = header(req, CONTENT_HEADER)?
        .ok_or_else(|| malformed("missing X-Imgserv-Content-SHA256"))?;
    if content.len() != 64
        || !content
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(malformed("X-Imgserv-Content-SHA256 is not 64 lower-case hex digits").into());
    }
    let content_type = match version {
        Version::V1 => "",
        Version::V2 => canonical_content_type(header(req, "content-type")?)
            .ok_or_else(|| malformed("Content-Type holds a control character"))?,
    };
    if content != req.body.sha256_hex() {
        return Err(SignError::BodyMismatch.into());
    }
    let key = lookup(key_id)?.ok_or_else(|| SignError::UnknownKey(shorten(key_id)))?;
    let sts = string_to_sign(
        version,
        &req.method,
        &req.path,
        &req.query,
        date,
        content_type,
        content,
    );
    check(&key, key_id, &sts, &sig, now)
}

/// The HMAC first, then revocation, expiry and the user's disabled flag: only a holder of the
/// secret learns that a key is revoked, expired or its user disabled.
fn check<E: From<SignError>>(
    key: &KeyInfo,
    key_id: &str,
    message: &str,
    sig: &[u8; 32],
    now: u64,
) -> Result<Verified, E> {
    mac(&key.secret, message)
        .verify_slice(sig)
        .map_err(|_| SignError::BadSignature)?;
    if key.revoked {
        return Err(SignError::RevokedKey(key_id.to_string()).into());
    }
    if key.expires.is_some_and(|at| now >= at) {
        return Err(SignError::ExpiredKey(key_id.to_string()).into());
    }
    if key.user_disabled {
        return Err(SignError::DisabledUser(key_id.to_string()).into());
    }
    Ok(Verified {
        key_id: key_id.to_string(),
        user: key.user.clone(),
        rights: key.rights,
        signature: *sig,
    })
}

/// `Credential=<key id>, Signature=<64 hex>` in either order, each exactly once.
fn parse_authorization(params: &str) -> Result<(&str, [u8; 32]), SignError> {
    let (mut credential, mut signature) = (None, None);
    for part in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| malformed("Authorization parameters are name=value"))?;
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "Signature" => &mut signature,
            _ => return Err(malformed("unknown Authorization parameter")),
        };
        if slot.replace(value.trim()).is_some() {
            return Err(malformed("an Authorization parameter is given twice"));
        }
    }
    let key_id = credential
        .filter(|c| !c.is_empty())
        .ok_or_else(|| malformed("Authorization lacks Credential"))?;
    let sig = signature.ok_or_else(|| malformed("Authorization lacks Signature"))?;
    let sig = unhex32(sig).ok_or_else(|| malformed("Signature is not 64 hex digits"))?;
    Ok((key_id, sig))
}

/// The one value of a header (names are lower case in `Request`); twice is malformed.
fn header<'a>(req: &'a Request, name: &str) -> Result<Option<&'a str>, SignError> {
    let mut found = None;
    for (n, v) in &req.headers {
        if n.eq_ignore_ascii_case(name) && found.replace(v.as_str()).is_some() {
            return Err(SignError::Malformed(format!("header {name} given twice")));
        }
    }
    Ok(found)
}

/// Decimal digits only, at most 12 (beyond the year 33000).
fn unix_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Exactly 64 hex digits (either case) as 32 bytes.
fn unhex32(s: &str) -> Option<[u8; 32]> {
    unhex(s)?.try_into().ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn malformed(why: &str) -> SignError {
    SignError::Malformed(why.to_string())
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The query to use for a signed URL: `raw_query` without any `sig`, then
/// `sig=<key id>.<hex>`. Add `exp=<unix seconds>` to `raw_query` first to make it expire.
pub fn sign_url(key_id: &str, secret: &[u8], decoded_path: &str, raw_query: &str) -> String {
    let kept: Vec<&str> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| decode(p.split_once('=').map_or(*p, |(n, _)| n)) != SIG_PARAM.as_bytes())
        .collect();
    let sig = signature(secret, &url_string_to_sign(decoded_path, raw_query));
    let mut out = kept.join("&");
    if !out.is_empty() {
        out.push('&');
    }
    out.push_str(&format!("{SIG_PARAM}={key_id}.{sig}"));
    out
}

/// Checks a URL's `sig` at `now` (unix seconds), and its `exp` when present.
pub fn verify_url<E: From<SignError>>(
    decoded_path: &str,
    raw_query: &str,
    now: u64,
    lookup: impl FnOnce(&str) -> Result<Option<KeyInfo>, E>,
) -> Result<Verified, E> {
    let mut sig = None;
    let mut exp = None;
    for part in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let slot = match decode(name).as_slice() {
            b"sig" => &mut sig,
            b"exp" => &mut exp,
            _ => continue,
        };
        if slot.replace(decode(value)).is_some() {
            return Err(malformed("sig or exp given twice").into());
        }
    }
    let Some(sig) = sig else {
        return Err(SignError::Unsigned.into());
    };
    if let Some(exp) = exp {
        let exp = std::str::from_utf8(&exp)
            .ok()
            .and_then(unix_seconds)
            .ok_or_else(|| malformed("exp is not unix seconds"))?;
        if now > exp {
            return Err(SignError::Expired.into());
        }
    }
    let sig = String::from_utf8(sig).map_err(|_| malformed("sig is <key id>.<hex>"))?;
    let (key_id, hex_sig) = sig
        .rsplit_once('.')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| malformed("sig is <key id>.<hex>"))?;
    let hex_sig = unhex32(hex_sig).ok_or_else(|| malformed("sig is <key id>.<64 hex digits>"))?;
    let key = lookup(key_id)?.ok_or_else(|| SignError::UnknownKey(shorten(key_id)))?;
    check(
        &key,
        key_id,
        &url_string_to_sign(decoded_path, raw_query),
        &hex_sig,
        now,
    )
}

/// The path of a URL or path, without query.
pub fn url_path(url: &str) -> String {
    let rest = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or("", |j| &url[i + 3 + j..]),
        None => url,
    };
    rest.split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Signs a whole URL for `imgserv-admin sign-url`: `href` is absolute
/// (`https://host/imgserv.cgi?src=…`) or a path; `base` is the path where imgserv is mounted
/// (`/imgserv.cgi`, or empty when it serves the site root), removed before signing; `exp`
/// adds an expiry. Returns `href` with the signed query.
pub fn sign_href(
    href: &str,
    base: &str,
    key_id: &str,
    secret: &[u8],
    exp: Option<u64>,
) -> Result<String, SignError> {
    let href = href.split('#').next().unwrap_or_default();
    let (origin, rest) = match href.find("://") {
        Some(i) => {
            let after = &href[i + 3..];
            let cut = after.find(['/', '?']).unwrap_or(after.len());
            href.split_at(i + 3 + cut)
        }
        None => ("", href),
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let base = base.trim_end_matches('/');
    let below = path
        .strip_prefix(base)
        .filter(|p| p.is_empty() || p.starts_with('/'))
        .ok_or_else(|| malformed(&format!("the URL's path is not below {base:?}")))?;
    let decoded = String::from_utf8(percent_decode(below.as_bytes()).collect())
        .map_err(|_| malformed("the URL's path is not UTF-8 after percent-decoding"))?;
    let mut query: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| exp.is_none() || decode(p.split_once('=').map_or(*p, |(n, _)| n)) != b"exp")
        .collect();
    let exp_pair = exp.map(|e| format!("{EXP_PARAM}={e}"));
    if let Some(e) = &exp_pair {
        query.push(e);
    }
    let signed = sign_url(key_id, secret, &decoded, &query.join("&"));
    Ok(format!("{origin}{path}?{signed}"))
}

#[cfg(test)]
mod tests;
