//! `[sessions]`: where login sessions live (the catalog, or memcached), how long they last
//! without use and at most, and the cookie's name. It does not create or check sessions
//! (`usecases::session` does).

use std::time::Duration;

use serde::Deserialize;

use super::value::{DurationValue, Problems};

/// Where sessions are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStore {
    /// A `sessions` table in the catalog (the default): one indexed read per request.
    Catalog,
    /// memcached, the servers of `[object_cache] servers`; each call waits at most `timeout`
    /// (`[object_cache] timeout`).
    Memcached {
        servers: Vec<String>,
        timeout: Duration,
    },
}

/// `[sessions]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsConfig {
    pub store: SessionStore,
    /// A session unused this long is over.
    pub idle_timeout: Duration,
    /// A session this old is over, used or not.
    pub absolute_timeout: Duration,
    /// The session cookie's name.
    pub cookie_name: String,
}

const DEFAULT_IDLE: Duration = Duration::from_secs(2 * 3600);
const DEFAULT_ABSOLUTE: Duration = Duration::from_secs(7 * 24 * 3600);
/// memcached reads an expiry over 30 days as a unix time.
const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_COOKIE: &str = "imgserv_session";

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            store: SessionStore::Catalog,
            idle_timeout: DEFAULT_IDLE,
            absolute_timeout: DEFAULT_ABSOLUTE,
            cookie_name: DEFAULT_COOKIE.into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessions {
    store: Option<String>,
    idle_timeout: Option<DurationValue>,
    absolute_timeout: Option<DurationValue>,
    cookie_name: Option<String>,
}

/// `servers` and `timeout` are `[object_cache] servers` and `timeout` (as validated there,
/// whatever `[object_cache] type` is).
pub(super) fn validate_sessions(
    raw: RawSessions,
    servers: &[String],
    timeout: Duration,
    p: &mut Problems,
) -> SessionsConfig {
    let store = match raw.store.as_deref().unwrap_or("catalog") {
        "catalog" => SessionStore::Catalog,
        "memcached" => {
            if servers.is_empty() {
                p.add(
                    "sessions.store",
                    "\"memcached\" needs [object_cache] servers, like [\"127.0.0.1:11211\"]",
                );
            }
            SessionStore::Memcached {
                servers: servers.to_vec(),
                timeout,
            }
        }
        other => {
            p.add(
                "sessions.store",
                format!("expected \"catalog\" or \"memcached\", got {other:?}"),
            );
            SessionStore::Catalog
        }
    };
    let mut timeout = |key: &str, value: Option<&DurationValue>, default: Duration| {
        let d = p.duration(key, value, default);
        if value.is_some() && (d < Duration::from_secs(1) || d > MAX_TIMEOUT) {
            p.add(
                key,
                "expected a duration of at least 1 s and at most 30 days",
            );
        }
        d
    };
    let idle_timeout = timeout(
        "sessions.idle_timeout",
        raw.idle_timeout.as_ref(),
        DEFAULT_IDLE,
    );
    let absolute_timeout = timeout(
        "sessions.absolute_timeout",
        raw.absolute_timeout.as_ref(),
        DEFAULT_ABSOLUTE,
    );
    if idle_timeout > absolute_timeout {
        p.add(
            "sessions.idle_timeout",
            "expected at most sessions.absolute_timeout",
        );
    }
    let cookie_name = raw.cookie_name.unwrap_or_else(|| DEFAULT_COOKIE.into());
    // An RFC 6265 token, and nothing a browser treats specially (`__Host-` needs `Secure`,
    // which a plain-HTTP site cannot give).
    if cookie_name.is_empty()
        || cookie_name.len() > 64
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        || cookie_name.starts_with("__")
    {
        p.add(
            "sessions.cookie_name",
            "expected 1 to 64 of A-Z a-z 0-9 _ -, not starting with \"__\"",
        );
    }
    SessionsConfig {
        store,
        idle_timeout,
        absolute_timeout,
        cookie_name,
    }
}

#[cfg(test)]
mod tests {
    use super::super::from_str;
    use super::super::tests::{dirs, minimal};
    use super::*;

    #[test]
    fn defaults_are_the_catalog_two_hours_and_seven_days() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(c.sessions, SessionsConfig::default());
        assert_eq!(c.sessions.cookie_name, "imgserv_session");
    }

    #[test]
    fn memcached_takes_the_object_cache_servers() {
        let d = dirs();
        let text = format!(
            "{}[sessions]\nstore = \"memcached\"\nidle_timeout = \"10m\"\n[object_cache]\nservers = [\"127.0.0.1:11211\"]\ntimeout = \"50ms\"\n",
            minimal()
        );
        let c = from_str(&text, d.path()).unwrap();
        assert_eq!(
            c.sessions.store,
            SessionStore::Memcached {
                servers: vec!["127.0.0.1:11211".into()],
                timeout: Duration::from_millis(50)
            }
        );
        assert_eq!(c.sessions.idle_timeout, Duration::from_secs(600));
    }

    #[test]
    fn bad_values_are_named() {
        let d = dirs();
        let cases = [
            (
                "store = \"memcached\"",
                "sessions.store: \"memcached\" needs [object_cache] servers",
            ),
            ("store = \"redis\"", "sessions.store: expected \"catalog\""),
            (
                "idle_timeout = \"0s\"",
                "sessions.idle_timeout: expected a duration of at least 1 s",
            ),
            (
                "absolute_timeout = \"60d\"",
                "sessions.absolute_timeout: expected a duration of at least 1 s and at most 30 days",
            ),
            (
                "idle_timeout = \"2d\"\nabsolute_timeout = \"1d\"",
                "sessions.idle_timeout: expected at most sessions.absolute_timeout",
            ),
            ("cookie_name = \"a b\"", "sessions.cookie_name: expected"),
            (
                "cookie_name = \"__Host-x\"",
                "sessions.cookie_name: expected",
            ),
        ];
        for (line, want) in cases {
            let text = format!("{}[sessions]\n{line}\n", minimal());
            let err = from_str(&text, d.path()).unwrap_err().to_string();
            assert!(err.contains(want), "{line}: {err}");
        }
    }
}
