//! `[remote]`: which remote originals may be fetched, and how; [`Config::remote_options`] hands
//! them to `source::remote` with the limits and the directory the copies live in.

use std::time::Duration;

use serde::Deserialize;

use super::Config;
use super::value::{DurationValue, Problems, SizeValue};
use crate::io::source::remote::RemoteOptions;

#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub allow_hosts: Vec<String>,
    pub allow_private: bool,
    pub max_redirects: u32,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub ttl: Duration,
    /// Local copies of remote originals together keep within this many bytes.
    pub max_bytes: u64,
}

impl Config {
    /// The options for fetching remote originals; local copies live under the state directory.
    pub fn remote_options(&self) -> RemoteOptions {
        RemoteOptions {
            allow_hosts: self.remote.allow_hosts.clone(),
            allow_private: self.remote.allow_private,
            max_redirects: self.remote.max_redirects,
            connect_timeout: self.remote.connect_timeout,
            timeout: self.remote.timeout,
            max_source_bytes: self.limits.max_source_bytes,
            max_bytes: self.remote.max_bytes,
            access_interval: self.cache.access_interval,
            ttl: self.remote.ttl,
            dir: self.state.dir.join("remote"),
            user_agent: concat!("imgserv/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemote {
    allow_hosts: Option<Vec<String>>,
    allow_private: Option<bool>,
    max_redirects: Option<i64>,
    connect_timeout: Option<DurationValue>,
    timeout: Option<DurationValue>,
    ttl: Option<DurationValue>,
    max_bytes: Option<SizeValue>,
}

/// `[remote]`; the copies' budget holds at least one original of `max_source_bytes`.
pub(super) fn validate_remote(
    raw: RawRemote,
    max_source_bytes: u64,
    p: &mut Problems,
) -> RemoteConfig {
    let allow_hosts = raw.allow_hosts.unwrap_or_default();
    for host in &allow_hosts {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        // An IPv6 address is an entry too, bare or in brackets as in a URL ("[2001:db8::5]").
        let ipv6 = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
        if !ipv6 && (bare.is_empty() || bare.contains(['/', ':', '*', ' ', '@'])) {
            p.add("remote.allow_hosts", format!("expected host names like \"images.example.com\" or \"*.example.com\", got {host:?}"));
        }
    }
    let remote = RemoteConfig {
        allow_hosts: allow_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        allow_private: raw.allow_private.unwrap_or(false),
        max_redirects: p.int::<u32>("remote.max_redirects", raw.max_redirects, 0, 20, 3),
        connect_timeout: p.duration(
            "remote.connect_timeout",
            raw.connect_timeout.as_ref(),
            Duration::from_secs(5),
        ),
        timeout: p.duration(
            "remote.timeout",
            raw.timeout.as_ref(),
            Duration::from_secs(20),
        ),
        ttl: p.duration("remote.ttl", raw.ttl.as_ref(), Duration::from_secs(3600)),
        // One copy can be as large as limits.max_source_bytes: the budget holds at least one.
        max_bytes: p.size(
            "remote.max_bytes",
            raw.max_bytes.as_ref(),
            (1 << 30).max(max_source_bytes),
        ),
    };
    if remote.max_bytes < max_source_bytes {
        p.add(
            "remote.max_bytes",
            format!(
                "must be at least limits.max_source_bytes ({max_source_bytes} bytes): the largest copy must fit"
            ),
        );
    }
    remote
}

#[cfg(test)]
mod tests {
    use crate::io::config::from_str;
    use crate::io::config::tests::{dirs, minimal};

    #[test]
    fn allow_hosts_take_names_wildcards_and_ip_addresses() {
        let d = dirs();
        let ok = format!(
            "{}[remote]\nallow_hosts = [\"img.example.org\", \"*.cdn.example.net\", \"192.0.2.7\", \"2001:db8::5\", \"[2001:db8::6]\"]\n",
            minimal()
        );
        assert_eq!(from_str(&ok, d.path()).unwrap().remote.allow_hosts.len(), 5);
        for bad in [
            "[2001:db8::5",
            "2001:db8::5]",
            "*.2001:db8::5",
            "host:80",
            "a b",
        ] {
            let text = format!("{}[remote]\nallow_hosts = [{bad:?}]\n", minimal());
            let err = from_str(&text, d.path()).unwrap_err().to_string();
            assert!(err.contains("remote.allow_hosts"), "{bad}: {err}");
        }
    }

    #[test]
    fn remote_copies_have_a_budget_that_holds_the_largest_copy() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(c.remote.max_bytes, 1 << 30);
        assert_eq!(c.remote_options().max_bytes, 1 << 30);
        assert_eq!(
            c.remote_options().max_source_bytes,
            c.limits.max_source_bytes
        );
        let big = format!("{}[limits]\nmax_source_bytes = \"2 GiB\"\n", minimal());
        let c = from_str(&big, d.path()).unwrap();
        assert_eq!(c.remote.max_bytes, 2 << 30, "the default grows to one copy");
        let c = from_str(
            &format!("{}[remote]\nmax_bytes = \"100 MiB\"\n", minimal()),
            d.path(),
        );
        assert_eq!(c.unwrap().remote.max_bytes, 100 << 20);
        let errs = from_str(
            &format!("{}[remote]\nmax_bytes = \"1 MiB\"\n", minimal()),
            d.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            errs.contains("remote.max_bytes: must be at least limits.max_source_bytes"),
            "{errs}"
        );
    }
}
