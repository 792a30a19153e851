//! `[object_cache]`: which cache keeps catalog lookups (API keys, image records) — none, the
//! process's memory, or memcached — its limits, and how long a call to memcached may take.

use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::value::{DurationValue, Problems, SizeValue};
use crate::io::object_cache::{Backend, MAX_TTL, ObjectCacheConfig};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObjectCache {
    #[serde(rename = "type")]
    kind: Option<String>,
    memory: Option<SizeValue>,
    servers: Option<Vec<String>>,
    timeout: Option<DurationValue>,
    ttl: Option<DurationValue>,
    prefix: Option<String>,
}

const DEFAULT_MEMORY: u64 = 64 << 20;
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Past this, a memcached that hangs would hold each request too long to be worth it.
const MAX_TIMEOUT: Duration = Duration::from_secs(5);

impl RawObjectCache {
    /// `servers` as written (`[sessions] store = "memcached"` uses them whatever `type` is).
    pub(super) fn servers(&self) -> &[String] {
        self.servers.as_deref().unwrap_or_default()
    }

    /// `timeout` as written, or its default; a bad one is reported by
    /// [`validate_object_cache`], and the default used here.
    pub(super) fn timeout(&self) -> Duration {
        let mut scratch = Problems(Vec::new());
        let t = scratch.duration(
            "object_cache.timeout",
            self.timeout.as_ref(),
            DEFAULT_TIMEOUT,
        );
        if scratch.0.is_empty() && !t.is_zero() && t <= MAX_TIMEOUT {
            t
        } else {
            DEFAULT_TIMEOUT
        }
    }
}

/// `state` (the state directory) names the site when no `prefix` is given, by the catalog's
/// path, and is where CGI processes share a memcached's outage.
pub(super) fn validate_object_cache(
    raw: RawObjectCache,
    state: &super::StateConfig,
    p: &mut Problems,
) -> ObjectCacheConfig {
    let catalog = state.catalog_path();
    let timeout = p.duration(
        "object_cache.timeout",
        raw.timeout.as_ref(),
        DEFAULT_TIMEOUT,
    );
    if raw.timeout.is_some() && (timeout.is_zero() || timeout > MAX_TIMEOUT) {
        p.add(
            "object_cache.timeout",
            format!(
                "expected a duration above 0 and at most {} s, like \"100ms\"",
                MAX_TIMEOUT.as_secs()
            ),
        );
    }
    let ttl = p.duration("object_cache.ttl", raw.ttl.as_ref(), DEFAULT_TTL);
    if ttl.is_zero() || ttl > MAX_TTL {
        p.add(
            "object_cache.ttl",
            "expected a duration of at least 1 s and at most 30 days",
        );
    }
    let memory = p.size("object_cache.memory", raw.memory.as_ref(), DEFAULT_MEMORY);
    if memory < 1 << 20 {
        p.add("object_cache.memory", "expected at least 1 MiB");
    }
    let servers = raw.servers.unwrap_or_default();
    for s in &servers {
        if !is_host_port(s) {
            p.add(
                "object_cache.servers",
                format!("expected \"host:port\" entries like \"127.0.0.1:11211\", got {s:?}"),
            );
        }
    }
    let backend = match raw.kind.as_deref().unwrap_or("none") {
        "none" => Backend::None,
        "memory" => Backend::Memory { max_bytes: memory },
        "memcached" => {
            if servers.is_empty() {
                p.add(
                    "object_cache.servers",
                    "type = \"memcached\" needs at least one server, like [\"127.0.0.1:11211\"]",
                );
            }
            Backend::Memcached { servers, timeout }
        }
        other => {
            p.add(
                "object_cache.type",
                format!("expected \"none\", \"memory\" or \"memcached\", got {other:?}"),
            );
            Backend::None
        }
    };
    let prefix = match raw.prefix {
        Some(prefix) => {
            if prefix.is_empty()
                || prefix.len() > 64
                || !prefix.bytes().all(|b| b.is_ascii_graphic() && b != b':')
            {
                p.add(
                    "object_cache.prefix",
                    "expected 1 to 64 printable ASCII characters, no spaces or colons",
                );
            }
            prefix
        }
        None => crate::domain::hex(&Sha256::digest(catalog.as_os_str().as_encoded_bytes())[..8]),
    };
    ObjectCacheConfig {
        backend,
        ttl,
        prefix,
        shared_dir: Some(state.dir.clone()),
    }
}

/// `host:port` or `[v6]:port`, with a port number.
fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}

#[cfg(test)]
mod tests {
    use crate::io::config::from_str;
    use crate::io::config::tests::{dirs, minimal};
    use crate::io::object_cache::Backend;

    #[test]
    fn defaults_types_and_errors_naming_keys() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(c.object_cache.backend, Backend::None);
        assert_eq!(
            c.object_cache.prefix.len(),
            16,
            "a hash of the catalog's path"
        );
        let c = from_str(
            &format!(
                "{}[object_cache]\ntype = \"memory\"\nmemory = \"8 MiB\"\n",
                minimal()
            ),
            d.path(),
        )
        .unwrap();
        assert_eq!(
            c.object_cache.backend,
            Backend::Memory { max_bytes: 8 << 20 }
        );
        let c = from_str(
            &format!(
                "{}[object_cache]\ntype = \"memcached\"\nservers = [\"127.0.0.1:11211\", \
                 \"cache.example.org:11212\", \"[::1]:11211\"]\ntimeout = \"250ms\"\n\
                 prefix = \"site-a\"\nttl = \"1m\"\n",
                minimal()
            ),
            d.path(),
        )
        .unwrap();
        let Backend::Memcached { servers, timeout } = &c.object_cache.backend else {
            panic!("{:?}", c.object_cache.backend);
        };
        assert_eq!((servers.len(), timeout.as_millis()), (3, 250));
        assert_eq!(c.object_cache.prefix, "site-a");
        assert_eq!(c.object_cache.ttl.as_secs(), 60);
        for (text, key) in [
            ("type = \"apc\"", "object_cache.type"),
            ("type = \"memcached\"", "object_cache.servers"),
            ("servers = [\"localhost\"]", "object_cache.servers"),
            ("servers = [\"h:0\"]", "object_cache.servers"),
            ("servers = [\"a b:1\"]", "object_cache.servers"),
            ("timeout = \"0s\"", "object_cache.timeout"),
            ("timeout = \"1m\"", "object_cache.timeout"),
            ("timeout = \"soon\"", "object_cache.timeout"),
            ("memory = \"1 KiB\"", "object_cache.memory"),
            ("memory = \"lots\"", "object_cache.memory"),
            ("ttl = \"60d\"", "object_cache.ttl"),
            ("prefix = \"a b\"", "object_cache.prefix"),
            ("prefix = \"a:b\"", "object_cache.prefix"),
            ("prefix = \"\"", "object_cache.prefix"),
        ] {
            let errs = from_str(&format!("{}[object_cache]\n{text}\n", minimal()), d.path())
                .unwrap_err()
                .to_string();
            assert!(errs.contains(key), "{text}: {errs}");
        }
    }
}
