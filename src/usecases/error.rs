//! The one place where every layer's error becomes an HTTP status, a stable kebab-case code
//! and a sysexits exit code. Each layer owns its own enum; this module only classifies.

use crate::domain::format::Format;
use crate::domain::query::QueryError;
use crate::io::cache::CacheError;
use crate::io::catalog::CatalogError;
use crate::io::config::ConfigError;
use crate::io::http::RequestError;
use crate::io::ldap::LdapError;
use crate::io::login_failures::FailureLogError;
use crate::io::metrics::MetricsError;
use crate::io::render::RenderError;
use crate::io::replay::ReplayError;
use crate::io::source::SourceError;
use crate::io::store::StoreError;
use crate::usecases::passwords::PasswordError;
use crate::usecases::sign::SignError;

/// Any error the handler or a tool can meet.
/// Why an upload was refused before anything was stored (decoding problems are
/// `RenderError`s, catalog and store problems their own).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is larger than `[limits] max_source_bytes`.
    #[error("the upload is {bytes} bytes, more than the limit of {limit}")]
    TooLarge { bytes: u64, limit: u64 },
    /// An image format not listed in `[api] types`.
    #[error("{} images are not accepted here", .0.mime())]
    TypeNotAccepted(Format),
    /// The bytes carry the marks of a SHA-1 collision attack.
    #[error("the upload looks like a SHA-1 collision attack")]
    Collision,
}

/// Why nobody was logged in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No method accepted the user and password. The message never says which was wrong.
    #[error("wrong user name or password")]
    Refused,
    /// No method accepted, and at least one could not decide (logged with the reason).
    #[error("logins cannot be checked now; retry later")]
    Unavailable,
    /// Too many failed logins of this user name or from this address (`[login]`): the attempt
    /// was refused without checking the password, whether the user exists or not.
    #[error("too many failed logins; retry in {retry_after} s")]
    Throttled {
        /// Seconds until an attempt may go ahead (`Retry-After`).
        retry_after: u64,
    },
}

/// Why a request's session did not do (see `usecases::session`).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No live session: no cookie, an unknown, expired or logged-out one, a disabled user,
    /// and no `REMOTE_USER` either.
    #[error("not logged in")]
    NoSession,
    /// A state-changing request with a session cookie but without its CSRF token (or with
    /// another).
    #[error("missing or wrong CSRF token (send it in X-CSRF-Token or the csrf_token field)")]
    CsrfFailed,
    /// A login sent from a page of another site (`Origin`, `Sec-Fetch-Site`).
    #[error("login from another site refused ({0})")]
    CrossOrigin(String),
    /// The kernel's random generator could not be read for a new token.
    #[error("reading random bytes: {0}")]
    Random(std::io::Error),
}

/// Why a caller may not do something to an object (`usecases::permissions`).
#[derive(Debug, thiserror::Error)]
pub enum PermissionError {
    /// Nobody is logged in (an anonymous read under `[api] public_reads`) and `public` may not
    /// do it: credentials might help.
    #[error("{privilege} on {object} needs a signed request or a login")]
    LoginRequired {
        privilege: crate::domain::permission::Privilege,
        object: String,
    },
    /// The caller (or their key) holds less than `privilege` on the object.
    #[error("{who} may not {privilege} {object}")]
    Denied {
        privilege: crate::domain::permission::Privilege,
        object: String,
        who: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Ldap(#[from] LdapError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    FailureLog(#[from] FailureLogError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Permission(#[from] PermissionError),
}

/// sysexits(3) codes used by the tools.
pub mod exit {
    pub const OK: i32 = 0;
    pub const USAGE: i32 = 64;
    pub const DATAERR: i32 = 65;
    pub const NOINPUT: i32 = 66;
    pub const NOUSER: i32 = 67;
    pub const UNAVAILABLE: i32 = 69;
    pub const SOFTWARE: i32 = 70;
    pub const OSERR: i32 = 71;
    pub const CANTCREAT: i32 = 73;
    pub const IOERR: i32 = 74;
    pub const TEMPFAIL: i32 = 75;
    pub const NOPERM: i32 = 77;
    pub const CONFIG: i32 = 78;
}

/// ENOSPC or EDQUOT.
fn no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// SQLite could not grow its file or journal (SQLITE_FULL).
fn sqlite_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

impl Error {
    /// (HTTP status, stable code, exit code) in one table.
    fn class(&self) -> (u16, &'static str, i32) {
        match self {
            // A full file system under the cache or state directory (the store has its own
            // `store-full`): the request may succeed once space is freed.
            Error::Source(SourceError::Io(e)) | Error::Cache(CacheError::Io(e)) if no_space(e) => {
                (507, "disk-full", exit::CANTCREAT)
            }
            Error::Cache(CacheError::Index(e)) | Error::Catalog(CatalogError::Db(e))
                if sqlite_full(e) =>
            {
                (507, "disk-full", exit::CANTCREAT)
            }
            Error::Query(QueryError::BadCursor(_))
            | Error::Catalog(CatalogError::Query(QueryError::BadCursor(_))) => {
                (400, "bad-cursor", exit::USAGE)
            }
            Error::Query(_) => (400, "bad-request", exit::USAGE),
            Error::Source(e) => match e {
                SourceError::Invalid(_) => (400, "bad-source", exit::USAGE),
                SourceError::Forbidden(_) => (403, "source-forbidden", exit::NOPERM),
                SourceError::NotFound(_) => (404, "source-not-found", exit::NOINPUT),
                SourceError::TooLarge { .. } => (413, "source-too-large", exit::DATAERR),
                SourceError::Remote(_) => (502, "remote-failed", exit::UNAVAILABLE),
                SourceError::Io(_) => (500, "source-io", exit::IOERR),
            },
            Error::Render(e) => match e {
                RenderError::NotAnImage => (415, "not-an-image", exit::DATAERR),
                RenderError::Unsupported(_) => (415, "unsupported-format", exit::DATAERR),
                RenderError::Corrupt(_) => (422, "corrupt-image", exit::DATAERR),
                RenderError::Truncated => (422, "truncated-image", exit::DATAERR),
                RenderError::TooManyPixels { .. } => (413, "too-many-pixels", exit::DATAERR),
                RenderError::Encode(_) => (500, "encode-failed", exit::SOFTWARE),
            },
            Error::Cache(e) => match e {
                CacheError::Busy(_) => (503, "cache-busy", exit::TEMPFAIL),
                CacheError::Full => (507, "cache-full", exit::CANTCREAT),
                CacheError::Index(_) => (500, "cache-index", exit::SOFTWARE),
                CacheError::Io(_) => (500, "cache-io", exit::IOERR),
            },
            Error::Config(_) => (500, "config", exit::CONFIG),
            Error::Catalog(e) => match e {
                CatalogError::NotFound(_) => (404, "image-not-found", exit::NOINPUT),
                CatalogError::UserNotFound(_) => (404, "user-not-found", exit::NOUSER),
                CatalogError::KeyNotFound(_) => (404, "key-not-found", exit::NOINPUT),
                CatalogError::UserExists(_) => (409, "user-exists", exit::CANTCREAT),
                CatalogError::BadUserName(_) => (400, "bad-user-name", exit::USAGE),
                CatalogError::GroupNotFound(_) => (404, "group-not-found", exit::NOUSER),
                CatalogError::GroupExists(_) => (409, "group-exists", exit::CANTCREAT),
                CatalogError::NotMember { .. } => (404, "not-a-member", exit::NOUSER),
                CatalogError::BadGroupName(_) => (400, "bad-group-name", exit::USAGE),
                CatalogError::BadRole(_) => (400, "bad-role", exit::USAGE),
                CatalogError::BadCategory(_) => (400, "bad-category", exit::USAGE),
                CatalogError::CategoryNotFound(_) => (404, "category-not-found", exit::NOINPUT),
                CatalogError::CategoryExists(_) => (409, "category-exists", exit::CANTCREAT),
                CatalogError::CategoryNotEmpty { .. } => (409, "category-not-empty", exit::DATAERR),
                CatalogError::BadCategoryChange(_) => (400, "bad-category-change", exit::USAGE),
                CatalogError::BadObject(_) => (400, "bad-object", exit::USAGE),
                CatalogError::GrantNotFound { .. } => (404, "grant-not-found", exit::NOINPUT),
                CatalogError::BadMeta(_) => (400, "bad-metadata", exit::DATAERR),
                CatalogError::BadRights(_) => (400, "bad-rights", exit::USAGE),
                CatalogError::Query(_) => (400, "bad-request", exit::USAGE),
                CatalogError::Removing(_) => (503, "removal-in-progress", exit::TEMPFAIL),
                CatalogError::UploadExpired(_) => (503, "upload-expired", exit::TEMPFAIL),
                CatalogError::TooNew { .. } => (500, "catalog-too-new", exit::CONFIG),
                CatalogError::Busy(_) => (503, "catalog-busy", exit::TEMPFAIL),
                CatalogError::Db(_) => (500, "catalog-db", exit::SOFTWARE),
                CatalogError::Io(_) => (500, "catalog-io", exit::IOERR),
            },
            Error::Sign(e) => match e {
                SignError::Unsigned => (401, "unsigned", exit::NOPERM),
                SignError::Malformed(_) => (400, "malformed-signature", exit::USAGE),
                SignError::UnknownKey(_) => (401, "unknown-key", exit::NOPERM),
                SignError::RevokedKey(_) => (401, "revoked-key", exit::NOPERM),
                SignError::ExpiredKey(_) => (401, "expired-key", exit::NOPERM),
                SignError::DisabledUser(_) => (401, "disabled-user", exit::NOPERM),
                SignError::Expired => (401, "expired-signature", exit::NOPERM),
                SignError::BodyMismatch => (400, "body-mismatch", exit::DATAERR),
                SignError::BadSignature => (401, "bad-signature", exit::NOPERM),
                SignError::InsufficientRights { .. } => (403, "insufficient-rights", exit::NOPERM),
                SignError::Replayed => (401, "replayed-signature", exit::NOPERM),
            },
            Error::Replay(e) => match e {
                ReplayError::Busy(_) => (503, "replay-log-busy", exit::TEMPFAIL),
                ReplayError::Db(_) => (500, "replay-log-db", exit::SOFTWARE),
            },
            Error::Store(e) => match e {
                StoreError::NotFound => (404, "original-not-found", exit::NOINPUT),
                StoreError::Unavailable(_) => (503, "store-unavailable", exit::TEMPFAIL),
                StoreError::Denied(_) => (500, "store-denied", exit::NOPERM),
                StoreError::Full => (507, "store-full", exit::CANTCREAT),
                StoreError::Io(_) => (500, "store-io", exit::IOERR),
                StoreError::Protocol(_) => (502, "store-protocol", exit::UNAVAILABLE),
            },
            Error::Request(e) => match e {
                RequestError::NoRoute(_) => (404, "not-found", exit::NOINPUT),
                RequestError::Method { .. } => (405, "method-not-allowed", exit::USAGE),
                RequestError::BadBody(_) => (400, "bad-body", exit::DATAERR),
                RequestError::BodyTooLarge(_) => (413, "body-too-large", exit::DATAERR),
                RequestError::ContentType(_) => (415, "unsupported-content-type", exit::DATAERR),
                RequestError::BodyIo(_) => (500, "body-io", exit::IOERR),
            },
            Error::Ingest(e) => match e {
                IngestError::TooLarge { .. } => (413, "upload-too-large", exit::DATAERR),
                IngestError::TypeNotAccepted(_) => (415, "type-not-accepted", exit::DATAERR),
                IngestError::Collision => (422, "sha1-collision", exit::DATAERR),
            },
            Error::Metrics(e) => match e {
                MetricsError::Forbidden(_) => (403, "metrics-forbidden", exit::NOPERM),
            },
            Error::Password(e) => match e {
                PasswordError::Empty | PasswordError::TooLong | PasswordError::NotUtf8 => {
                    (400, "bad-password", exit::USAGE)
                }
                PasswordError::Hash(_) => (500, "password-hash", exit::SOFTWARE),
                PasswordError::Read(_) => (500, "password-read", exit::IOERR),
            },
            // Either way nobody can log in through the directory for now: 503, not 401, so
            // that a client does not take it for wrong credentials.
            Error::Ldap(e) => match e {
                LdapError::Unavailable { .. } | LdapError::Tls { .. } => {
                    (503, "ldap-unavailable", exit::UNAVAILABLE)
                }
                LdapError::CaFile(_)
                | LdapError::ServiceBind { .. }
                | LdapError::Directory { .. } => (503, "ldap-misconfigured", exit::CONFIG),
            },
            Error::Auth(e) => match e {
                AuthError::Refused => (401, "bad-credentials", exit::NOPERM),
                AuthError::Unavailable => (503, "auth-unavailable", exit::UNAVAILABLE),
                AuthError::Throttled { .. } => (429, "too-many-logins", exit::TEMPFAIL),
            },
            Error::FailureLog(e) => match e {
                FailureLogError::Busy(_) => (503, "login-log-busy", exit::TEMPFAIL),
                FailureLogError::Db(_) => (500, "login-log-db", exit::SOFTWARE),
            },
            Error::Session(e) => match e {
                SessionError::NoSession => (401, "no-session", exit::NOPERM),
                SessionError::CsrfFailed => (403, "csrf-failed", exit::NOPERM),
                SessionError::CrossOrigin(_) => (403, "cross-origin", exit::NOPERM),
                SessionError::Random(_) => (500, "session-random", exit::OSERR),
            },
            Error::Permission(e) => match e {
                PermissionError::LoginRequired { .. } => (401, "login-required", exit::NOPERM),
                PermissionError::Denied { .. } => (403, "permission-denied", exit::NOPERM),
            },
        }
    }

    /// The HTTP status a client gets.
    pub fn status(&self) -> u16 {
        self.class().0
    }

    /// A stable kebab-case code, for logs and JSON bodies.
    pub fn code(&self) -> &'static str {
        self.class().1
    }

    /// How many seconds a client should wait before trying again (`Retry-After`), when the
    /// error says: a throttled login its own wait, any other 503 half a minute.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::Auth(AuthError::Throttled { retry_after }) => Some(*retry_after),
            _ if self.status() == 503 => Some(30),
            _ => None,
        }
    }

    /// The sysexits code a tool exits with.
    pub fn exit_code(&self) -> i32 {
        self.class().2
    }

    /// What a client may read: server-side failures say only what failed, in fixed words, so
    /// no path, address or library message leaks; the full chain goes to the log. A remote
    /// failure's reason is one of `source::remote`'s fixed phrases ("HTTP 404", "timed out").
    pub fn public_message(&self) -> String {
        match self {
            Error::Source(e @ SourceError::Remote(_)) => e.to_string(),
            _ if self.status() < 500 => self.to_string(),
            _ => match self.code() {
                "cache-busy" => "the cache index is busy; retry later".to_owned(),
                "catalog-busy" => "the catalog is busy; retry later".to_owned(),
                "login-log-busy" => "logins cannot be checked now; retry later".to_owned(),
                "store-unavailable" => {
                    "the store of originals is unavailable; retry later".to_owned()
                }
                "store-protocol" => "the store of originals gave an unexpected answer".to_owned(),
                "ldap-unavailable" | "ldap-misconfigured" => {
                    "the directory cannot check passwords now; retry later".to_owned()
                }
                code => format!("internal error ({code})"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_messages_hold_no_address_or_path() {
        let inner = "GET http://10.0.0.5:9000/bucket/ab/cd: connection refused (/var/lib/x)";
        for e in [
            Error::Store(StoreError::Unavailable(inner.into())),
            Error::Store(StoreError::Protocol(inner.into())),
            Error::Cache(CacheError::Busy(inner.into())),
            Error::Catalog(CatalogError::Busy(inner.into())),
            Error::Source(SourceError::Io(std::io::Error::other(inner))),
            Error::Ldap(LdapError::Unavailable {
                url: "ldap://10.0.0.5".into(),
                msg: inner.into(),
            }),
            Error::Ldap(LdapError::ServiceBind {
                url: "ldap://10.0.0.5".into(),
                dn: "cn=reader".into(),
                msg: inner.into(),
            }),
        ] {
            let message = e.public_message();
            assert!(
                !message.contains("10.0.0.5") && !message.contains("/var/lib"),
                "{}: {message}",
                e.code()
            );
            assert!(!message.is_empty());
        }
        // A remote failure says what failed: its reason is a fixed phrase.
        let remote = Error::Source(SourceError::Remote("HTTP 404".into()));
        assert_eq!(remote.public_message(), "remote source failed: HTTP 404");
        let busy = Error::Cache(CacheError::Busy(inner.into()));
        assert_eq!(
            busy.public_message(),
            "the cache index is busy; retry later"
        );
        // Client errors keep their own words.
        let forbidden = Error::Source(SourceError::Forbidden("host x is not allowed".into()));
        assert_eq!(forbidden.public_message(), "host x is not allowed");
    }
}
