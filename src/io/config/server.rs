//! `[server]` (workers, connections and timeouts of the FastCGI and standalone servers) and
//! `[metrics]` (whether they serve `GET /metrics`, and to whom).

use std::time::Duration;

use serde::Deserialize;

use super::value::{DurationValue, Problems};
use crate::io::metrics::{MetricsConfig, Network};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Requests handled at once by the FastCGI and standalone servers, when set; see
    /// [`ServerConfig::workers`].
    workers: Option<usize>,
    /// Open connections at once.
    pub max_conns: usize,
    /// How long a FastCGI or standalone connection may send nothing while a request (its head,
    /// records or body) is being read before it is closed; also the standalone server's idle
    /// keep-alive time.
    pub read_timeout: Duration,
    /// Proxies (addresses or networks) whose `X-Forwarded-Proto: https` is believed: a
    /// request from one of them came over HTTPS (a session cookie's `Secure`). Empty by
    /// default: the header is ignored, as any client may send it.
    pub trusted_proxies: Vec<Network>,
}

impl ServerConfig {
    /// Requests handled at once by the FastCGI and standalone servers: `workers`, or one per
    /// core. The cores are counted only when asked (reading the cgroup limits costs a CGI
    /// request, which never needs them, ~6 % of a cache hit).
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    workers: Option<i64>,
    max_conns: Option<i64>,
    read_timeout: Option<DurationValue>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    enabled: Option<bool>,
    allow: Option<Vec<String>>,
}

/// `[server]`.
pub(super) fn validate_server(raw: &RawServer, p: &mut Problems) -> ServerConfig {
    let server = ServerConfig {
        workers: raw
            .workers
            .map(|n| p.int::<usize>("server.workers", Some(n), 1, 1024, 1)),
        max_conns: p.int::<usize>("server.max_conns", raw.max_conns, 1, 65_536, 256),
        read_timeout: p.duration(
            "server.read_timeout",
            raw.read_timeout.as_ref(),
            Duration::from_secs(30),
        ),
        trusted_proxies: networks("server.trusted_proxies", raw.trusted_proxies.as_deref(), p),
    };
    if server.read_timeout.is_zero() {
        p.add(
            "server.read_timeout",
            "must be at least one second: zero would never time out",
        );
    }
    server
}

/// `[metrics]`; each `allow` entry is an address or a network.
pub(super) fn validate_metrics(raw: RawMetrics, p: &mut Problems) -> MetricsConfig {
    MetricsConfig {
        enabled: raw.enabled.unwrap_or(false),
        allow: networks("metrics.allow", raw.allow.as_deref(), p),
    }
}

/// A list of addresses and networks; a bad entry is a problem naming `key`.
fn networks(key: &str, list: Option<&[String]>, p: &mut Problems) -> Vec<Network> {
    list.unwrap_or_default()
        .iter()
        .filter_map(|a| a.parse().map_err(|e| p.add(key, e)).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::io::config::from_str;
    use crate::io::config::tests::{dirs, minimal};

    #[test]
    fn server_read_timeout_defaults_to_30s_and_refuses_zero_or_garbage() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(c.server.read_timeout, Duration::from_secs(30));
        let text = format!("{}[server]\nread_timeout = \"5s\"\n", minimal());
        let c = from_str(&text, d.path()).unwrap();
        assert_eq!(c.server.read_timeout, Duration::from_secs(5));
        for bad in ["\"0s\"", "0", "\"soon\""] {
            let text = format!("{}[server]\nread_timeout = {bad}\n", minimal());
            let err = from_str(&text, d.path()).unwrap_err().to_string();
            assert!(err.contains("server.read_timeout"), "{bad}: {err}");
        }
    }

    #[test]
    fn trusted_proxies_are_none_by_default_and_bad_ones_are_named() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert!(c.server.trusted_proxies.is_empty());
        let text = format!(
            "{}[server]\ntrusted_proxies = [\"127.0.0.1\", \"fd00::/8\"]\n",
            minimal()
        );
        let c = from_str(&text, d.path()).unwrap();
        assert_eq!(c.server.trusted_proxies.len(), 2);
        let text = format!("{}[server]\ntrusted_proxies = [\"proxy\"]\n", minimal());
        let errs = from_str(&text, d.path()).unwrap_err().to_string();
        assert!(
            errs.contains("server.trusted_proxies: expected an address"),
            "{errs}"
        );
    }

    #[test]
    fn metrics_are_off_by_default_and_allow_names_bad_networks() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert!(!c.metrics.enabled && c.metrics.allow.is_empty());
        let text = format!(
            "{}[metrics]\nenabled = true\nallow = [\"127.0.0.1\", \"10.0.0.0/8\"]\n",
            minimal()
        );
        let c = from_str(&text, d.path()).unwrap();
        assert!(c.metrics.enabled);
        assert_eq!(c.metrics.allow.len(), 2);
        let text = format!("{}[metrics]\nallow = [\"10.0.0.0/33\"]\n", minimal());
        let errs = from_str(&text, d.path()).unwrap_err().to_string();
        assert!(
            errs.contains("metrics.allow: expected an address"),
            "{errs}"
        );
    }
}
