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
mod tests {
    use super::*;

    const KEY_ID: &str = "ak_0123456789abcdef";
    const SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    /// 2026-01-01T00:00:00Z.
    const DATE: u64 = 1_767_225_600;

    fn key(revoked: bool) -> KeyInfo {
        KeyInfo {
            user: "alice".into(),
            rights: Rights::READ | Rights::WRITE,
            secret: SECRET.as_bytes().to_vec(),
            revoked,
            expires: None,
            user_disabled: false,
        }
    }

    fn lookup(id: &str) -> Result<Option<KeyInfo>, SignError> {
        Ok((id == KEY_ID).then(|| key(false)))
    }

    /// A request signed at `DATE`, its `Content-Type` (if any) last among its headers: the
    /// date, content hash and `Authorization` are headers 0, 1 and 2.
    fn signed_as(
        version: Version,
        method: &str,
        path: &str,
        query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Request {
        let mut req = Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: content_type
                .map(|t| vec![("content-type".to_string(), t.to_string())])
                .unwrap_or_default(),
            body: body.to_vec().into(),
            ..Request::default()
        };
        let mut headers = sign_request(version, KEY_ID, SECRET.as_bytes(), &req, DATE).to_vec();
        headers.append(&mut req.headers);
        req.headers = headers;
        req
    }

    /// Signed with the current version, without `Content-Type`.
    fn signed(method: &str, path: &str, query: &str, body: &[u8]) -> Request {
        signed_as(Version::V2, method, path, query, None, body)
    }

    fn check_at(req: &Request, now: u64) -> Result<Verified, SignError> {
        verify(req, now, Duration::from_secs(300), lookup)
    }

    /// (version, method, path, query, Content-Type, body, string to sign, signature).
    type Vector = (
        Version,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static [u8],
        &'static str,
        &'static str,
    );

    /// The vectors of imgserv-signing(7), computed there by an independent Python client (a
    /// test in tests/it/docs.rs runs it): 1 to 3 in version 1, 5 to 7 in version 2 (4 is the
    /// URL below). Change them only with the page.
    #[rustfmt::skip]
    const VECTORS: [Vector; 6] = [
        (Version::V1, "POST", "/api/images", "category=%2Ftravel%2Fnorway", "", b"hello world",
         "IMGSERV-HMAC-SHA256\nPOST\n/api/images\ncategory=%2Ftravel%2Fnorway\n1767225600\nb94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
         "88f741d8565213da13310825278e0c23d0e920605d170db7583d3c517a1e6647"),
        (Version::V1, "PATCH", "/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed/meta", "", "", b"{\"title\":\"Fjord\",\"draft\":null}",
         "IMGSERV-HMAC-SHA256\nPATCH\n/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed/meta\n\n1767225600\n2fda396c8fc07594dea4fca9e31a94ee46852c8a43be6ed35c3b50d0b70181be",
         "b58ab73ed66cd65a6f51c22da392eaeb296f861bbc181a7796d1bfaf5d4574a1"),
        (Version::V1, "GET", "/api/images", "q=fjord+%c3%b8resund&per_page=10&page=2&category=/travel&q=sunset", "", b"",
         "IMGSERV-HMAC-SHA256\nGET\n/api/images\ncategory=%2Ftravel&page=2&per_page=10&q=fjord%20%C3%B8resund&q=sunset\n1767225600\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
         "d4d4b14114bc5ca3b84c542b7c3c67684b45066c4b45f8744852a85c9faa607c"),
        (Version::V2, "POST", "/api/images", "category=%2Ftravel%2Fnorway", "image/jpeg", b"hello world",
         "IMGSERV2-HMAC-SHA256\nPOST\n/api/images\ncategory=%2Ftravel%2Fnorway\n1767225600\nimage/jpeg\nb94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
         "804ecc477c8fa1c224c85651cdd6a9f15741acebd6499e85de276c8e74d76d16"),
        (Version::V2, "PATCH", "/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed/meta", "", "application/json", b"{\"title\":\"Fjord\",\"draft\":null}",
         "IMGSERV2-HMAC-SHA256\nPATCH\n/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed/meta\n\n1767225600\napplication/json\n2fda396c8fc07594dea4fca9e31a94ee46852c8a43be6ed35c3b50d0b70181be",
         "cccb87959e72c148246f0ea189cbaf7db1f20097f77e2dd8e6a5d495d59be883"),
        (Version::V2, "DELETE", "/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed", "", "", b"",
         "IMGSERV2-HMAC-SHA256\nDELETE\n/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed\n\n1767225600\n\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
         "01cf2f75d5bbe3405138ef48193eb9a283a62bbf7f61d17fa46db12c493526b8"),
    ];
    const URL_QUERY: &str = "src=photos%2Fa+b.jpg&height=600&width=800&exp=1767229200";
    const URL_STS: &str =
        "IMGSERV-URL\n/\nexp=1767229200&height=600&src=photos%2Fa%20b.jpg&width=800";
    const URL_SIG: &str =
        "ak_0123456789abcdef.715b2704546fa477119a2858d257f07960ff4f3a53a0481ccc7aeabc1e9a0ee0";

    #[test]
    fn vectors() {
        for (version, method, path, query, content_type, body, sts, sig) in VECTORS {
            let content = content_sha256(body);
            let date = DATE.to_string();
            let got = string_to_sign(version, method, path, query, &date, content_type, &content);
            assert_eq!(got, sts);
            assert_eq!(signature(SECRET.as_bytes(), &got), sig);
            let content_type = Some(content_type).filter(|t| !t.is_empty());
            let req = signed_as(version, method, path, query, content_type, body);
            assert_eq!(
                req.headers[2].1,
                format!("{} Credential={KEY_ID}, Signature={sig}", version.scheme())
            );
            assert!(check_at(&req, DATE).is_ok());
        }
        assert_eq!(url_string_to_sign("", URL_QUERY), URL_STS);
        assert_eq!(
            sign_url(KEY_ID, SECRET.as_bytes(), "", URL_QUERY),
            format!("{URL_QUERY}&sig={URL_SIG}")
        );
    }

    #[test]
    fn the_man_page_has_the_vectors() {
        let page = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/man/imgserv-signing.7"
        ));
        for (_, _, _, _, _, _, sts, sig) in VECTORS {
            assert!(page.contains(sig), "man/imgserv-signing.7 lacks {sig}");
            for line in sts.lines().filter(|l| !l.is_empty()) {
                let roff = line.replace('-', "\\-");
                assert!(page.contains(&roff), "man/imgserv-signing.7 lacks {line}");
            }
        }
        assert!(page.contains(URL_SIG));
        assert!(page.contains(SECRET) && page.contains(KEY_ID));
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_path(""), "/");
        assert_eq!(canonical_path("/a b/ø~x+y"), "/a%20b/%C3%B8~x%2By");
        #[rustfmt::skip]
        let cases = [
            ("",                    ""),
            ("&&",                  ""),
            ("b=2&a=1",             "a=1&b=2"),
            ("a=2&a=10&a=1",        "a=1&a=10&a=2"),
            ("flag&x=",             "flag=&x="),
            ("x=a=b",               "x=a%3Db"),
            ("x=%2f%2F/",           "x=%2F%2F%2F"),
            ("x=a+b%20c%2Bd",       "x=a%20b%20c%2Bd"),
            ("x=%7e%41",            "x=~A"),
            ("x=%zz%",              "x=%25zz%25"),
            ("x=%ff",               "x=%FF"),
            ("%78=1",               "x=1"),
        ];
        for (raw, want) in cases {
            assert_eq!(canonical_query(raw, &[]), want, "{raw}");
        }
        assert_eq!(canonical_query("sig=1&%73ig=2&a=1", &[SIG_PARAM]), "a=1");
    }

    #[test]
    fn query_order_and_encoding_do_not_matter() {
        let req = signed("GET", "/api/images", "page=2&q=a+b", b"");
        for query in ["q=a%20b&page=2", "page=2&q=a%20b&", "q=%61+b&page=%32"] {
            let moved = Request {
                query: query.into(),
                ..req.clone()
            };
            assert!(check_at(&moved, DATE).is_ok(), "{query}");
        }
    }

    #[test]
    fn tampering_is_refused_in_both_versions() {
        for version in [Version::V1, Version::V2] {
            tampering_is_refused(version);
        }
    }

    fn tampering_is_refused(version: Version) {
        let req = signed_as(version, "POST", "/api/images", "category=a", None, b"bytes");
        let sent = req.headers[2].1.split("Signature=").nth(1).unwrap();
        assert_eq!(
            check_at(&req, DATE).unwrap(),
            Verified {
                key_id: KEY_ID.into(),
                user: "alice".into(),
                rights: Rights::READ | Rights::WRITE,
                signature: unhex32(sent).unwrap(),
            }
        );
        let tampered: [(&str, Request); 6] = [
            (
                "method",
                Request {
                    method: "PUT".into(),
                    ..req.clone()
                },
            ),
            (
                "path",
                Request {
                    path: "/api/images/x".into(),
                    ..req.clone()
                },
            ),
            (
                "query",
                Request {
                    query: "category=b".into(),
                    ..req.clone()
                },
            ),
            (
                "extra param",
                Request {
                    query: "category=a&page=2".into(),
                    ..req.clone()
                },
            ),
            ("date", {
                let mut r = req.clone();
                r.headers[0].1 = (DATE + 1).to_string();
                r
            }),
            ("content header and body", {
                let mut r = req.clone();
                r.body = b"other".to_vec().into();
                r.headers[1].1 = content_sha256(b"other");
                r
            }),
        ];
        for (what, r) in tampered {
            assert_eq!(
                check_at(&r, DATE),
                Err(SignError::BadSignature),
                "{version:?}: {what}"
            );
        }
        let body_only = Request {
            body: b"other".to_vec().into(),
            ..req.clone()
        };
        assert_eq!(check_at(&body_only, DATE), Err(SignError::BodyMismatch));
        let mut flipped = req.clone();
        let auth = &mut flipped.headers[2].1;
        let last = if auth.ends_with('0') { "1" } else { "0" };
        auth.replace_range(auth.len() - 1.., last);
        assert_eq!(check_at(&flipped, DATE), Err(SignError::BadSignature));
    }

    /// With a `Content-Type` header set to `value` (`None`: removed).
    fn with_type(req: &Request, value: Option<&str>) -> Request {
        let mut r = req.clone();
        r.headers.retain(|(n, _)| n != "content-type");
        if let Some(v) = value {
            r.headers.push(("content-type".into(), v.into()));
        }
        r
    }

    #[test]
    fn version_2_signs_the_content_type_and_version_1_does_not() {
        let form = "multipart/form-data; boundary=B0undary";
        let v2 = signed_as(
            Version::V2,
            "POST",
            "/api/images",
            "",
            Some(form),
            b"--B0undary--",
        );
        assert!(check_at(&v2, DATE).is_ok());
        // Surrounding spaces are not signed; anything else in the value is.
        assert!(check_at(&with_type(&v2, Some(&format!(" {form}\t"))), DATE).is_ok());
        for changed in [
            Some("multipart/form-data; boundary=other"),
            Some("image/jpeg"),
            Some(""),
            None,
        ] {
            assert_eq!(
                check_at(&with_type(&v2, changed), DATE),
                Err(SignError::BadSignature),
                "{changed:?}"
            );
        }
        // Signed without one, a Content-Type added later breaks it; empty is the same as none.
        let bare = signed_as(Version::V2, "DELETE", "/api/images/x", "", None, b"");
        assert!(check_at(&with_type(&bare, Some("")), DATE).is_ok());
        assert_eq!(
            check_at(&with_type(&bare, Some("text/plain")), DATE),
            Err(SignError::BadSignature)
        );
        // A control character could forge a line of the string to sign.
        assert!(matches!(
            check_at(&with_type(&v2, Some("text/plain\n1767225600")), DATE),
            Err(SignError::Malformed(_))
        ));

        // Version 1 still verifies, and (its known weakness) ignores Content-Type.
        let v1 = signed_as(
            Version::V1,
            "POST",
            "/api/images",
            "",
            Some(form),
            b"--B0undary--",
        );
        assert!(check_at(&v1, DATE).is_ok());
        assert!(check_at(&with_type(&v1, Some("image/jpeg")), DATE).is_ok());

        // The scheme name is signed: a signature of one version does not pass as the other.
        for (req, other) in [(&v1, SCHEME_V2), (&v2, SCHEME)] {
            let mut r = req.clone();
            let sig = r.headers[2].1.split_once(' ').unwrap().1.to_string();
            r.headers[2].1 = format!("{other} {sig}");
            assert_eq!(check_at(&r, DATE), Err(SignError::BadSignature), "{other}");
        }
        // Scheme names are compared without regard to case.
        let mut lower = v2.clone();
        lower.headers[2].1 = lower.headers[2]
            .1
            .replacen(SCHEME_V2, "imgserv2-hmac-sha256", 1);
        assert!(check_at(&lower, DATE).is_ok());
    }

    #[test]
    fn clock_skew_both_ways() {
        let req = signed("DELETE", "/api/images/x", "", b"");
        assert!(check_at(&req, DATE + 300).is_ok());
        assert!(check_at(&req, DATE - 300).is_ok());
        assert_eq!(check_at(&req, DATE + 301), Err(SignError::Expired));
        assert_eq!(check_at(&req, DATE - 301), Err(SignError::Expired));
    }

    fn wrong_secret() -> KeyInfo {
        KeyInfo {
            secret: b"another secret".to_vec(),
            ..key(false)
        }
    }

    #[test]
    fn keys_unknown_revoked_expired_disabled_wrong() {
        let req = signed("POST", "/api/images", "", b"x");
        let unknown = verify(&req, DATE, Duration::from_secs(300), |_| {
            Ok::<_, SignError>(None)
        });
        assert_eq!(unknown, Err(SignError::UnknownKey(KEY_ID.into())));
        let revoked = verify(&req, DATE, Duration::from_secs(300), |_| {
            Ok::<_, SignError>(Some(key(true)))
        });
        assert_eq!(revoked, Err(SignError::RevokedKey(KEY_ID.into())));
        // A revoked key with the wrong secret learns nothing about revocation.
        let wrong = KeyInfo {
            secret: b"another secret".to_vec(),
            ..key(true)
        };
        let r = verify(&req, DATE, Duration::from_secs(300), |_| {
            Ok::<_, SignError>(Some(wrong))
        });
        assert_eq!(r, Err(SignError::BadSignature));
        // An expired key, and a disabled user's key, the same way.
        let at = |expires| {
            verify(&req, DATE, Duration::from_secs(300), |_| {
                Ok::<_, SignError>(Some(KeyInfo {
                    expires: Some(expires),
                    ..key(false)
                }))
            })
        };
        assert_eq!(at(DATE), Err(SignError::ExpiredKey(KEY_ID.into())));
        assert!(at(DATE + 1).is_ok());
        let disabled = KeyInfo {
            user_disabled: true,
            ..key(false)
        };
        let r = verify(&req, DATE, Duration::from_secs(300), |_| {
            Ok::<_, SignError>(Some(disabled.clone()))
        });
        assert_eq!(r, Err(SignError::DisabledUser(KEY_ID.into())));
        for hidden in [
            KeyInfo {
                expires: Some(DATE),
                ..wrong_secret()
            },
            KeyInfo {
                user_disabled: true,
                ..wrong_secret()
            },
        ] {
            let r = verify(&req, DATE, Duration::from_secs(300), |_| {
                Ok::<_, SignError>(Some(hidden))
            });
            assert_eq!(r, Err(SignError::BadSignature));
        }
        // The URL form too.
        let url = sign_url(KEY_ID, SECRET.as_bytes(), "/x.jpg", "w=1");
        let expired = verify_url("/x.jpg", &url, DATE, |_| {
            Ok::<_, SignError>(Some(KeyInfo {
                expires: Some(DATE - 10),
                ..key(false)
            }))
        });
        assert_eq!(expired, Err(SignError::ExpiredKey(KEY_ID.into())));
        // The lookup's own error passes through.
        let busy = verify(&req, DATE, Duration::from_secs(300), |_| {
            Err::<Option<KeyInfo>, _>(SignError::Malformed("db".into()))
        });
        assert_eq!(busy, Err(SignError::Malformed("db".into())));
    }

    #[test]
    fn unsigned_and_malformed() {
        let plain = Request::get("/api/images", "");
        assert_eq!(check_at(&plain, DATE), Err(SignError::Unsigned));
        // The parsing below is the same for both versions.
        let req = signed_as(Version::V1, "POST", "/api/images", "", None, b"x");
        let with = |i: usize, v: &str| {
            let mut r = req.clone();
            r.headers[i].1 = v.into();
            r
        };
        assert_eq!(
            check_at(&with(2, "Basic dXNlcjpwYXNz"), DATE),
            Err(SignError::Unsigned)
        );
        let sig = req.headers[2]
            .1
            .split("Signature=")
            .nth(1)
            .unwrap()
            .to_string();
        for auth in [
            "IMGSERV-HMAC-SHA256".to_string(),
            format!("IMGSERV-HMAC-SHA256 Signature={sig}"),
            format!("IMGSERV-HMAC-SHA256 Credential=, Signature={sig}"),
            format!("IMGSERV-HMAC-SHA256 Credential={KEY_ID}"),
            format!(
                "IMGSERV-HMAC-SHA256 Credential={KEY_ID}, Signature={}",
                &sig[..63]
            ),
            format!(
                "IMGSERV-HMAC-SHA256 Credential={KEY_ID}, Signature={}g",
                &sig[..63]
            ),
            format!("IMGSERV-HMAC-SHA256 Credential={KEY_ID}, Signature={sig}, Signature={sig}"),
            format!("IMGSERV-HMAC-SHA256 Credential={KEY_ID}, Signature={sig}, Region=x"),
            format!("IMGSERV-HMAC-SHA256 Credential={KEY_ID} Signature={sig}"),
        ] {
            let r = check_at(&with(2, &auth), DATE);
            assert!(matches!(r, Err(SignError::Malformed(_))), "{auth}: {r:?}");
        }
        // Parameter order and spacing are free.
        let swapped = format!("IMGSERV-HMAC-SHA256 Signature={sig} ,Credential={KEY_ID}");
        assert!(check_at(&with(2, &swapped), DATE).is_ok());
        for date in [
            "",
            "-1767225600",
            "1767225600.0",
            " 1767225600",
            "1e9",
            "9999999999999",
        ] {
            let r = check_at(&with(0, date), DATE);
            assert!(
                matches!(r, Err(SignError::Malformed(_))),
                "date {date:?}: {r:?}"
            );
        }
        let upper = req.headers[1].1.to_ascii_uppercase();
        assert!(matches!(
            check_at(&with(1, &upper), DATE),
            Err(SignError::Malformed(_))
        ));
        let mut twice = req.clone();
        twice.headers.push((DATE_HEADER.into(), DATE.to_string()));
        assert!(matches!(
            check_at(&twice, DATE),
            Err(SignError::Malformed(_))
        ));
        let mut missing = req.clone();
        missing.headers.remove(1);
        assert!(matches!(
            check_at(&missing, DATE),
            Err(SignError::Malformed(_))
        ));
    }

    #[test]
    fn rights_are_checked_by_the_caller() {
        let v = check_at(&signed("GET", "/", "", b""), DATE).unwrap();
        assert!(v.require(Rights::READ | Rights::WRITE).is_ok());
        assert_eq!(
            v.require(Rights::DELETE),
            Err(SignError::InsufficientRights {
                needed: Rights::DELETE
            })
        );
    }

    fn url_check(path: &str, query: &str, now: u64) -> Result<Verified, SignError> {
        verify_url(path, query, now, lookup)
    }

    #[test]
    fn signed_urls() {
        let q = sign_url(
            KEY_ID,
            SECRET.as_bytes(),
            "",
            "src=a.jpg&width=800&height=600",
        );
        assert!(url_check("", &q, DATE).is_ok());
        assert!(url_check("/", &q, DATE).is_ok(), "empty path is /");
        // Reordered and re-encoded, still valid; an old sig is replaced when signing again.
        let parts: Vec<&str> = q.split('&').rev().collect();
        assert!(url_check("", &parts.join("&"), DATE).is_ok());
        let again = sign_url(KEY_ID, SECRET.as_bytes(), "", &q);
        assert_eq!(again, q);
        for (path, query) in [
            ("", q.replace("width=800", "width=801")),
            ("", q.replace("src=a.jpg", "src=b.jpg")),
            ("", format!("{q}&extra=1")),
            ("/other", q.clone()),
        ] {
            assert_eq!(
                url_check(path, &query, DATE),
                Err(SignError::BadSignature),
                "{query}"
            );
        }
        let missing = "src=a.jpg&width=800&height=600";
        assert_eq!(url_check("", missing, DATE), Err(SignError::Unsigned));
        for bad in [
            format!("{missing}&sig=nodot"),
            format!("{missing}&sig=.{}", "0".repeat(64)),
            format!("{missing}&sig={KEY_ID}.abc"),
            format!("{q}&sig={KEY_ID}.{}", "0".repeat(64)),
            format!("{q}&exp=1&exp=2"),
        ] {
            assert!(
                matches!(url_check("", &bad, DATE), Err(SignError::Malformed(_))),
                "{bad}"
            );
        }
        let other = format!("{missing}&sig=ak_ffffffffffffffff.{}", "0".repeat(64));
        assert_eq!(
            url_check("", &other, DATE),
            Err(SignError::UnknownKey("ak_ffffffffffffffff".into()))
        );
    }

    #[test]
    fn signed_urls_expire() {
        let q = sign_url(KEY_ID, SECRET.as_bytes(), "", URL_QUERY);
        assert!(url_check("", &q, 1_767_229_200).is_ok(), "valid up to exp");
        assert_eq!(url_check("", &q, 1_767_229_201), Err(SignError::Expired));
        // exp is signed: extending it breaks the signature.
        let longer = q.replace("exp=1767229200", "exp=1767239200");
        assert_eq!(url_check("", &longer, DATE), Err(SignError::BadSignature));
        let junk = q.replace("exp=1767229200", "exp=soon");
        assert!(matches!(
            url_check("", &junk, DATE),
            Err(SignError::Malformed(_))
        ));
    }

    #[test]
    fn whole_urls_for_the_admin_tool() {
        let href =
            "https://img.example.org/imgserv.cgi?src=photos%2Fa+b.jpg&height=600&width=800#top";
        let signed = sign_href(
            href,
            "/imgserv.cgi/",
            KEY_ID,
            SECRET.as_bytes(),
            Some(1_767_229_200),
        )
        .unwrap();
        assert_eq!(
            signed,
            format!("https://img.example.org/imgserv.cgi?{URL_QUERY}&sig={URL_SIG}")
        );
        let (_, query) = signed.split_once('?').unwrap();
        assert!(url_check("", query, DATE).is_ok());
        // Below the mount point, the path is signed; a path elsewhere is refused.
        let deep = sign_href(
            "/img/cache/a%20b.jpg?w=1",
            "/img",
            KEY_ID,
            SECRET.as_bytes(),
            None,
        )
        .unwrap();
        let (path, query) = deep.split_once('?').unwrap();
        assert_eq!(path, "/img/cache/a%20b.jpg");
        assert!(url_check("/cache/a b.jpg", query, DATE).is_ok());
        assert!(sign_href("/other/x", "/img", KEY_ID, SECRET.as_bytes(), None).is_err());
        assert!(sign_href("/imgx", "/img", KEY_ID, SECRET.as_bytes(), None).is_err());
    }

    #[test]
    fn a_catalog_key_verifies_with_its_secret_and_rights_until_revoked() {
        let t = tempfile::tempdir().unwrap();
        let mut c = crate::io::catalog::Catalog::open(&t.path().join("catalog.sqlite")).unwrap();
        c.add_user("alice").unwrap();
        let k = c.add_key("alice", Rights::READ | Rights::DELETE).unwrap();
        let info = KeyInfo::from(c.key(&k.id).unwrap().unwrap());
        assert_eq!(
            (info.user.as_str(), info.rights, info.revoked),
            ("alice", Rights::READ | Rights::DELETE, false)
        );
        assert_eq!(info.secret, k.secret.expose().as_bytes());
        c.revoke(&k.id).unwrap();
        let info: KeyInfo = c.key(&k.id).unwrap().unwrap().into();
        assert!(info.revoked && info.secret == k.secret.expose().as_bytes());
        // An expiry in milliseconds, in seconds here; the user's disabled flag follows.
        let k = c
            .add_key_expiring("alice", Rights::READ, Some(1_767_225_600_999))
            .unwrap();
        let info = KeyInfo::from(c.key(&k.id).unwrap().unwrap());
        assert_eq!(
            (info.expires, info.user_disabled),
            (Some(1_767_225_600), false)
        );
        c.set_disabled("alice", true).unwrap();
        assert!(KeyInfo::from(c.key(&k.id).unwrap().unwrap()).user_disabled);
    }

    #[test]
    fn keys_of_a_catalog_made_before_migrations_keep_exactly_their_rights() {
        use crate::io::catalog::testing::made_before_migrations;
        let all = [Rights::READ, Rights::WRITE, Rights::DELETE, Rights::ADMIN];
        for version in [1, 2] {
            let t = tempfile::tempdir().unwrap();
            let path = t.path().join("catalog.sqlite");
            let keys = made_before_migrations(&path, version);
            let c = crate::io::catalog::Catalog::open(&path).unwrap();
            for k in &keys {
                let mut req = Request {
                    method: "GET".into(),
                    path: "/api/images".into(),
                    ..Request::default()
                };
                req.headers =
                    sign_request(Version::V2, k.id, k.secret.as_bytes(), &req, DATE).to_vec();
                let verified = verify(&req, DATE, Duration::from_secs(300), |id| {
                    Ok::<_, SignError>(c.key(id).unwrap().map(KeyInfo::from))
                });
                if k.revoked {
                    assert_eq!(verified, Err(SignError::RevokedKey(k.id.into())));
                    continue;
                }
                let verified = verified.unwrap();
                assert_eq!(verified.user, k.user, "v{version} {}", k.id);
                for right in all {
                    assert_eq!(
                        verified.require(right).is_ok(),
                        k.rights.contains(right),
                        "v{version} {} {right}",
                        k.id
                    );
                }
            }
        }
    }
}
