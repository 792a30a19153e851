//! The S3 store: any S3-compatible endpoint, object key `<prefix>ab/cd/<id>.<ext>`.
//!
//! Requests are presigned with SigV4 by `rusty-s3` (sans-IO) and sent by a blocking `ureq`
//! agent: no async runtime in a CGI process. The agent never uses a proxy from the environment
//! (a CGI environment is attacker-influenced: `HTTP_PROXY` is a header), never follows
//! redirects (a redirect from S3 means a wrong region or endpoint, which must be fixed in the
//! config, not followed with a signature for another host), and gives up after 5 s connecting
//! and 60 s in all.
//!
//! How answers map to [`StoreError`]:
//! - connection refused, DNS failure, timeout, any 5xx → `Unavailable` (retry later);
//! - 403 (`SignatureDoesNotMatch`, `InvalidAccessKeyId`/`NotSignedUp`, `AccessDenied`, …), 400 with a broken
//!   authorization (usually a wrong region) and `NoSuchBucket` → `Denied`, naming the S3 code:
//!   all are configuration mistakes that retrying will not fix. A HEAD answer has no body, so
//!   `exists` on a missing bucket says `false`; the following `put` names the bucket;
//! - 404 / `NoSuchKey` → `NotFound` (`Ok` for `delete`);
//! - anything else (3xx, other 4xx, a body over the limit) → `Protocol`.
//!
//! Messages never contain a URL: a presigned URL is a credential for a few minutes.

use std::fmt;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use ureq::Agent;
use ureq::http::Response;

use super::{Object, Store, StoreError, key};
use crate::domain::format::Format;
use crate::domain::original::OriginalId;

/// Time to set up a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole request, body included.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Time for an original streamed to a client (`open`) to arrive whole once S3 has answered:
/// the body moves at the client's pace, so the 60 s of a whole request would cut a large
/// original to a slow client short.
const STREAM_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long a presigned URL is valid. It is used at once; the margin covers a slow upload's
/// start and a little clock skew.
const SIGNED_FOR: Duration = Duration::from_secs(300);
/// The largest object `get` reads (ureq's default limit is 10 MB, less than many originals).
const MAX_OBJECT_BYTES: u64 = 1 << 32;
/// The most of an error answer we read.
const MAX_ERROR_BYTES: u64 = 64 << 10;

/// What [`S3Store::new`] needs; [`StoreConfig::S3`](super::StoreConfig::S3) holds the validated
/// values.
#[derive(Clone)]
pub struct S3Options {
    /// `http(s)://host[:port][/path]`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// `https://host/bucket/key` rather than `https://bucket.host/key`.
    pub path_style: bool,
    pub access_key: String,
    pub secret_key: String,
    /// Prepended to every key: empty or ending in `/`.
    pub prefix: String,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key", &self.access_key)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why an endpoint and bucket cannot make bucket URLs, or `None` when they can. Pure; used by
/// config validation so that the message names the key.
pub fn check_bucket(endpoint: &str, bucket: &str, path_style: bool) -> Result<(), String> {
    bucket_of(endpoint, bucket, path_style, "us-east-1").map(|_| ())
}

fn bucket_of(
    endpoint: &str,
    bucket: &str,
    path_style: bool,
    region: &str,
) -> Result<Bucket, String> {
    let url: url::Url = endpoint
        .parse()
        .map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the endpoint must not contain credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the endpoint must not have a query or a fragment".into());
    }
    let style = if path_style {
        UrlStyle::Path
    } else {
        UrlStyle::VirtualHost
    };
    Bucket::new(url, style, bucket.to_string(), region.to_string()).map_err(|e| match e {
        rusty_s3::BucketError::UnsupportedScheme => {
            "the endpoint must be http:// or https://".into()
        }
        rusty_s3::BucketError::MissingHost => "the endpoint has no host".into(),
        rusty_s3::BucketError::ParseError(e) if path_style => {
            format!("no bucket URL from this endpoint and bucket: {e}")
        }
        rusty_s3::BucketError::ParseError(e) => format!(
            "no virtual-host bucket URL from this endpoint and bucket ({e}): an IP address or a \
             bucket name that is not a host-name label needs path_style = true"
        ),
    })
}

/// Originals as objects in an S3 bucket.
pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
    agent: Agent,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.describe())
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A store for the bucket; contacts nothing.
    pub fn new(options: &S3Options) -> Result<S3Store, StoreError> {
        let bucket = bucket_of(
            &options.endpoint,
            &options.bucket,
            options.path_style,
            &options.region,
        )
        .map_err(|e| StoreError::Protocol(format!("store.endpoint: {e}")))?;
        let config = Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(TIMEOUT))
            .user_agent(concat!("imgserv/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(S3Store {
            bucket,
            credentials: Credentials::new(&options.access_key, &options.secret_key),
            prefix: options.prefix.clone(),
            agent: config.into(),
        })
    }

    /// The object key of an original: `<prefix>ab/cd/<id>.<ext>`.
    pub fn object_key(&self, id: &OriginalId, format: Format) -> String {
        format!("{}{}", self.prefix, key(id, format))
    }

    /// Status and body of an answer; only network trouble is an error here.
    fn finish(
        &self,
        op: &str,
        sent: Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Vec<u8>), StoreError> {
        let mut response = sent.map_err(|e| network(op, e))?;
        let status = response.status().as_u16();
        let limit = if status == 200 {
            MAX_OBJECT_BYTES
        } else {
            MAX_ERROR_BYTES
        };
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| network(op, e))?;
        Ok((status, body))
    }
}

impl Store for S3Store {
    fn put(&self, id: &OriginalId, format: Format, bytes: &[u8]) -> Result<(), StoreError> {
        // Never rewrite an existing object: same key, same bytes, and a rewrite would still
        // bump its date, add a version in a versioned bucket and cost the upload.
        if self.exists(id, format)? {
            return Ok(());
        }
        let key = self.object_key(id, format);
        let mut action = self.bucket.put_object(Some(&self.credentials), &key);
        action.headers_mut().insert("content-type", format.mime());
        // A conditional write closes the window between HEAD and PUT where servers support it
        // (AWS since 2024, MinIO, s3s); the others ignore it and rewrite the same bytes.
        action.headers_mut().insert("if-none-match", "*");
        let url = action.sign(SIGNED_FOR);
        let sent = self
            .agent
            .put(url.as_str())
            .header("content-type", format.mime())
            .header("if-none-match", "*")
            .send(bytes);
        match self.finish("PUT", sent)? {
            // 412: someone stored it since our HEAD; same key, same bytes.
            (200 | 412, _) => Ok(()),
            (status, body) => Err(failure("PUT", status, &body, &self.bucket)),
        }
    }

    fn get(&self, id: &OriginalId, format: Format) -> Result<Vec<u8>, StoreError> {
        let key = self.object_key(id, format);
        let url = self
            .bucket
            .get_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        match self.finish("GET", self.agent.get(url.as_str()).call())? {
            (200, body) => Ok(body),
            (404, body) if !is_no_such_bucket(&body) => Err(StoreError::NotFound),
            (status, body) => Err(failure("GET", status, &body, &self.bucket)),
        }
    }

    fn open(&self, id: &OriginalId, format: Format) -> Result<Object, StoreError> {
        let key = self.object_key(id, format);
        let url = self
            .bucket
            .get_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        let response = self
            .agent
            .get(url.as_str())
            .config()
            .timeout_global(None)
            .timeout_recv_response(Some(TIMEOUT))
            .timeout_recv_body(Some(STREAM_TIMEOUT))
            .build()
            .call()
            .map_err(|e| network("GET", e))?;
        let status = response.status().as_u16();
        let len = response.body().content_length();
        match (status, len) {
            // The body is read as the client takes it, up to the length S3 announced.
            (200, Some(len)) => {
                let reader = response
                    .into_body()
                    .into_with_config()
                    .limit(MAX_OBJECT_BYTES)
                    .reader();
                Ok(Object {
                    reader: Box::new(reader),
                    len,
                })
            }
            // Without a length (chunked): read it whole, as `get` does.
            _ => match self.finish("GET", Ok(response))? {
                (200, body) => Ok(Object {
                    len: body.len() as u64,
                    reader: Box::new(std::io::Cursor::new(body)),
                }),
                (404, body) if !is_no_such_bucket(&body) => Err(StoreError::NotFound),
                (status, body) => Err(failure("GET", status, &body, &self.bucket)),
            },
        }
    }

    fn exists(&self, id: &OriginalId, format: Format) -> Result<bool, StoreError> {
        let key = self.object_key(id, format);
        let url = self
            .bucket
            .head_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        match self.finish("HEAD", self.agent.head(url.as_str()).call())? {
            (200, _) => Ok(true),
            (404, _) => Ok(false),
            (status, body) => Err(failure("HEAD", status, &body, &self.bucket)),
        }
    }

    fn delete(&self, id: &OriginalId, format: Format) -> Result<(), StoreError> {
        let key = self.object_key(id, format);
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        match self.finish("DELETE", self.agent.delete(url.as_str()).call())? {
            (200 | 204, _) => Ok(()),
            (404, body) if !is_no_such_bucket(&body) => Ok(()),
            (status, body) => Err(failure("DELETE", status, &body, &self.bucket)),
        }
    }

    fn describe(&self) -> String {
        let base = self.bucket.base_url().as_str().trim_end_matches('/');
        format!("s3:{base}/{}", self.prefix)
            .trim_end_matches('/')
            .to_string()
    }
}

/// A request that got no HTTP answer.
fn network(op: &str, err: ureq::Error) -> StoreError {
    match err {
        ureq::Error::Timeout(t) => StoreError::Unavailable(format!("{op} timed out ({t})")),
        ureq::Error::HostNotFound => {
            StoreError::Unavailable(format!("{op}: the endpoint's host name does not resolve"))
        }
        ureq::Error::ConnectionFailed => {
            StoreError::Unavailable(format!("{op}: cannot connect to the endpoint"))
        }
        ureq::Error::Io(e) => StoreError::Unavailable(format!("{op}: {e}")),
        ureq::Error::BodyExceedsLimit(n) => {
            StoreError::Protocol(format!("{op}: answer larger than {n} bytes"))
        }
        // Its text holds the presigned URL.
        ureq::Error::BadUri(_) => StoreError::Protocol(format!("{op}: the URL was refused")),
        other => StoreError::Protocol(format!("{op}: {other}")),
    }
}

/// An HTTP answer other than the expected ones, classified by status and S3 error code.
fn failure(op: &str, status: u16, body: &[u8], bucket: &Bucket) -> StoreError {
    let code = xml_text(body, "Code");
    let detail = xml_text(body, "Message")
        .map(|m| format!(" ({})", m.chars().take(200).collect::<String>()))
        .unwrap_or_default();
    match (status, code.as_deref()) {
        (_, Some("NoSuchBucket")) => StoreError::Denied(format!(
            "bucket {:?} does not exist (NoSuchBucket)",
            bucket.name()
        )),
        (
            403,
            Some(
                c @ ("SignatureDoesNotMatch"
                | "InvalidAccessKeyId"
                | "NotSignedUp"
                | "InvalidToken"
                | "ExpiredToken"
                | "InvalidSecurity"),
            ),
        ) => StoreError::Denied(format!("S3 refused the credentials: {c}{detail}")),
        (403, Some(c @ "RequestTimeTooSkewed")) => StoreError::Denied(format!(
            "S3 refused the request: {c} (this machine's clock is off){detail}"
        )),
        (403, Some(c)) => StoreError::Denied(format!("S3 denied access: {c}{detail}")),
        (403, None) => StoreError::Denied(format!(
            "S3 answered {op} with 403 Forbidden and no error code: wrong credentials \
             (access key or secret), a bad signature, or access denied"
        )),
        (
            400,
            Some(
                c @ ("AuthorizationHeaderMalformed"
                | "AuthorizationQueryParametersError"
                | "InvalidRegion"),
            ),
        ) => StoreError::Denied(format!(
            "S3 refused the credentials: {c} (is store.region right?){detail}"
        )),
        (500..=599, code) => StoreError::Unavailable(format!(
            "S3 answered {op} with {status}{}",
            code.map(|c| format!(" {c}")).unwrap_or_default()
        )),
        (_, code) => StoreError::Protocol(format!(
            "S3 answered {op} with {status}{}",
            code.map(|c| format!(" {c}")).unwrap_or_default()
        )),
    }
}

fn is_no_such_bucket(body: &[u8]) -> bool {
    xml_text(body, "Code").as_deref() == Some("NoSuchBucket")
}

/// The text of the first `<tag>…</tag>` in an S3 error document. S3 error bodies are tiny and
/// flat, so a search is enough and no XML parser is linked for it.
fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{tag}>"))?;
    let value = text[start..start + len].trim();
    (!value.is_empty()).then(|| unescape(value))
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> Bucket {
        bucket_of("http://127.0.0.1:9000", "originals", true, "us-east-1").unwrap()
    }

    fn error_body(code: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
             <Message>It &amp; went wrong</Message><RequestId>1</RequestId></Error>"
        )
        .into_bytes()
    }

    #[test]
    fn answers_are_classified() {
        let b = bucket();
        let cases: &[(u16, &str, &str)] = &[
            (403, "SignatureDoesNotMatch", "Denied"),
            (403, "InvalidAccessKeyId", "Denied"),
            (403, "AccessDenied", "Denied"),
            (403, "", "Denied"),
            (404, "NoSuchBucket", "Denied"),
            (400, "AuthorizationQueryParametersError", "Denied"),
            (500, "InternalError", "Unavailable"),
            (503, "SlowDown", "Unavailable"),
            (502, "", "Unavailable"),
            (301, "PermanentRedirect", "Protocol"),
            (400, "InvalidArgument", "Protocol"),
            (409, "", "Protocol"),
        ];
        for &(status, code, want) in cases {
            let body = if code.is_empty() {
                Vec::new()
            } else {
                error_body(code)
            };
            let err = failure("PUT", status, &body, &b);
            let got = format!("{err:?}");
            assert!(got.starts_with(want), "{status} {code}: {got}");
            assert!(err.to_string().contains(code), "{status} {code}: {err}");
        }
    }

    #[test]
    fn credential_refusals_say_so_and_keep_the_s3_message() {
        let err = failure("GET", 403, &error_body("SignatureDoesNotMatch"), &bucket());
        assert_eq!(
            err.to_string(),
            "store refused access: S3 refused the credentials: SignatureDoesNotMatch \
             (It & went wrong)"
        );
        let err = failure("HEAD", 403, b"", &bucket());
        assert!(err.to_string().contains("wrong credentials"), "{err}");
        let err = failure("PUT", 404, &error_body("NoSuchBucket"), &bucket());
        assert_eq!(
            err.to_string(),
            "store refused access: bucket \"originals\" does not exist (NoSuchBucket)"
        );
    }

    #[test]
    fn xml_text_finds_flat_tags() {
        assert_eq!(
            xml_text(&error_body("NoSuchKey"), "Code").as_deref(),
            Some("NoSuchKey")
        );
        assert_eq!(xml_text(b"<Error></Error>", "Code"), None);
        assert_eq!(xml_text(b"\xff\xfe", "Code"), None);
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(check_bucket("http://127.0.0.1:9000", "b", true).is_ok());
        assert!(check_bucket("https://s3.example.com/base", "b", false).is_ok());
        for (endpoint, path_style, want) in [
            ("ftp://example.com", true, "http:// or https://"),
            ("not a url", true, "is not a URL"),
            ("http://user:pw@example.com", true, "credentials"),
            ("http://example.com/?x=1", true, "query"),
            ("http://127.0.0.1:9000", false, "path_style = true"),
        ] {
            let err = check_bucket(endpoint, "b", path_style).unwrap_err();
            assert!(err.contains(want), "{endpoint}: {err}");
        }
    }

    #[test]
    fn keys_and_descriptions() {
        let id = OriginalId::of(b"hello world").unwrap();
        let store = S3Store::new(&S3Options {
            endpoint: "http://127.0.0.1:9000".into(),
            region: "us-east-1".into(),
            bucket: "originals".into(),
            path_style: true,
            access_key: "k".into(),
            secret_key: "very secret".into(),
            prefix: "img/".into(),
        })
        .unwrap();
        assert_eq!(
            store.object_key(&id, Format::Jpeg),
            "img/2a/ae/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed.jpg"
        );
        assert_eq!(store.describe(), "s3:http://127.0.0.1:9000/originals/img");
        assert!(!format!("{store:?}").contains("very secret"));
    }
}
