//! What this process has done, counted in memory: hits, misses, renders, coalesced waits,
//! evictions, rejections by code, bytes served, and latency histograms of the render stages
//! (read, decode, resize, encode). `GET /metrics` renders them in the Prometheus text format.
//!
//! Counters are process-wide atomics, so that counting costs a hit a relaxed add, and the
//! stage timers are one `Instant::now` pair. Only the long-lived servers (FastCGI, standalone)
//! expose them ([`expose`], with `[metrics] enabled`): a CGI process answers one request and
//! exits, so its counters would always read one; there `/metrics` is 404.
//!
//! The module also keeps, per thread, what the request being handled did to the cache (hit or
//! miss) and its error code, for the one log line per request (`api`). It does not decide what
//! is a hit; `variant` and the redirector tell it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why `/metrics` refused a request.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The client's address is not in `[metrics] allow`.
    #[error("metrics are not served to {0}")]
    Forbidden(String),
}

/// A stage of a render whose latency is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the original's bytes (file, copy of a remote source, or store) and its header.
    Read,
    /// Decoding to pixels (a split decode, which resizes as it decodes, counts here whole).
    Decode,
    Resize,
    Encode,
}

impl Stage {
    const ALL: [Stage; 4] = [Stage::Read, Stage::Decode, Stage::Resize, Stage::Encode];

    fn name(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Decode => "decode",
            Stage::Resize => "resize",
            Stage::Encode => "encode",
        }
    }
}

/// Upper bounds of the histogram buckets, in microseconds (1 ms to 10 s).
const BUCKETS_US: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// A latency histogram: one counter per bucket (not cumulative; summed when rendered).
struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS_US.len()],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static RENDERS: AtomicU64 = AtomicU64::new(0);
static COALESCED: AtomicU64 = AtomicU64::new(0);
static EVICTIONS: AtomicU64 = AtomicU64::new(0);
static BYTES_SERVED: AtomicU64 = AtomicU64::new(0);
/// Error responses by (status, code): only errors take the lock.
static REJECTIONS: Mutex<BTreeMap<(u16, &'static str), u64>> = Mutex::new(BTreeMap::new());
static STAGES: [Histogram; 4] = [const { Histogram::new() }; 4];
static EXPOSED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// What the request on this thread did to the cache: `"hit"` or `"miss"`.
    static OUTCOME: Cell<Option<&'static str>> = const { Cell::new(None) };
    /// The error code of the request on this thread, when it failed.
    static CODE: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// A variant found in the cache.
pub fn hit() {
    HITS.fetch_add(1, Ordering::Relaxed);
    OUTCOME.with(|o| o.set(Some("hit")));
}

/// A variant not in the cache: it is rendered, or waited for ([`coalesced`]).
pub fn miss() {
    MISSES.fetch_add(1, Ordering::Relaxed);
    OUTCOME.with(|o| o.set(Some("miss")));
}

/// A variant rendered.
pub fn rendered() {
    RENDERS.fetch_add(1, Ordering::Relaxed);
}

/// A miss that waited for another request's render of the same variant and used it.
pub fn coalesced() {
    COALESCED.fetch_add(1, Ordering::Relaxed);
}

/// Variants evicted to stay under `[cache] max_bytes`.
pub fn evicted(count: u64) {
    EVICTIONS.fetch_add(count, Ordering::Relaxed);
}

/// A response body of `bytes` sent by the handler.
pub fn served(bytes: u64) {
    BYTES_SERVED.fetch_add(bytes, Ordering::Relaxed);
}

/// An error answered with `status` and `code`.
pub fn rejected(status: u16, code: &'static str) {
    *REJECTIONS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((status, code))
        .or_default() += 1;
    CODE.with(|c| c.set(Some(code)));
}

/// Runs `f` and records how long it took as `stage`.
pub fn time<T>(stage: Stage, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    observe(stage, started.elapsed());
    out
}

/// Records that `stage` took `took`.
pub fn observe(stage: Stage, took: Duration) {
    STAGES[stage as usize].observe(took);
}

/// Clears this thread's notes on the request (call when a request starts).
pub fn begin_request() {
    OUTCOME.with(|o| o.set(None));
    CODE.with(|c| c.set(None));
}

/// This thread's notes on the request just handled: (hit/miss, error code).
pub fn request_notes() -> (Option<&'static str>, Option<&'static str>) {
    (OUTCOME.with(Cell::get), CODE.with(Cell::get))
}

/// Lets `/metrics` answer in this process: the long-lived servers call it, a CGI process never.
pub fn expose() {
    EXPOSED.store(true, Ordering::Relaxed);
}

/// Whether [`expose`] was called: this process is a long-lived server.
pub fn exposed() -> bool {
    EXPOSED.load(Ordering::Relaxed)
}

/// `[metrics]`: `GET /metrics` in the FastCGI and standalone servers. `config` validates the
/// file's `[metrics]` into it (and re-exports it as `config::MetricsConfig`).
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// Off by default.
    pub enabled: bool,
    /// Addresses and networks that may read them; empty: any.
    pub allow: Vec<Network>,
}

/// Variants found in the cache and not, by this process since it started.
pub fn hits_and_misses() -> (u64, u64) {
    (HITS.load(Ordering::Relaxed), MISSES.load(Ordering::Relaxed))
}

/// Every metric in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    let mut out = String::new();
    let counters: [(&str, &str, &AtomicU64); 6] = [
        (
            "imgserv_cache_hits_total",
            "Variants found in the cache.",
            &HITS,
        ),
        (
            "imgserv_cache_misses_total",
            "Variants not in the cache.",
            &MISSES,
        ),
        ("imgserv_renders_total", "Variants rendered.", &RENDERS),
        (
            "imgserv_coalesced_waits_total",
            "Misses that waited for another request's render of the same variant.",
            &COALESCED,
        ),
        (
            "imgserv_evictions_total",
            "Variants evicted to stay under the cache's space limit.",
            &EVICTIONS,
        ),
        (
            "imgserv_bytes_served_total",
            "Response body bytes sent by imgserv (not files the web server sends itself).",
            &BYTES_SERVED,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Ordering::Relaxed)
        );
    }
    let name = "imgserv_rejections_total";
    let _ = writeln!(
        out,
        "# HELP {name} Error responses by status and code.\n# TYPE {name} counter"
    );
    let rejections = REJECTIONS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for ((status, code), n) in rejections {
        let _ = writeln!(out, "{name}{{code=\"{code}\",status=\"{status}\"}} {n}");
    }
    let name = "imgserv_stage_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time spent in each stage of a render.\n# TYPE {name} histogram"
    );
    for stage in Stage::ALL {
        let h = &STAGES[stage as usize];
        let label = stage.name();
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS_US.iter().zip(&h.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{stage=\"{label}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let count = h.count.load(Ordering::Relaxed);
        let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{stage=\"{label}\",le=\"+Inf\"}} {count}\n\
             {name}_sum{{stage=\"{label}\"}} {sum}\n\
             {name}_count{{stage=\"{label}\"}} {count}"
        );
    }
    out
}

/// An address or a network (`127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`), for
/// `[metrics] allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let p = u32::from(self.prefix);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - p).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - p).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Network, String> {
        let bad = || format!("expected an address or a network like \"10.0.0.0/8\", got {s:?}");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Network { addr, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_their_addresses_only() {
        let cases = [
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("10.0.0.0/8", "10.200.3.4", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.0/24", "192.168.1.255", true),
            ("192.168.1.0/24", "192.168.2.1", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "::1", false),
            ("::1", "::1", true),
            ("::1", "127.0.0.1", false),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
        ];
        for (net, ip, inside) in cases {
            let n: Network = net.parse().unwrap();
            assert_eq!(n.contains(ip.parse().unwrap()), inside, "{ip} in {net}");
        }
        for bad in ["", "10.0.0.0/33", "::/129", "localhost", "10.0.0.0/x"] {
            assert!(bad.parse::<Network>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_text_format_has_every_metric_and_cumulative_buckets() {
        hit();
        rendered();
        rejected(404, "not-found");
        time(Stage::Encode, || {
            std::thread::sleep(Duration::from_millis(2))
        });
        let text = render();
        for line in [
            "# TYPE imgserv_cache_hits_total counter",
            "imgserv_rejections_total{code=\"not-found\",status=\"404\"}",
            "imgserv_stage_seconds_bucket{stage=\"encode\",le=\"+Inf\"}",
            "imgserv_stage_seconds_count{stage=\"read\"}",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // Buckets are cumulative: never decreasing, ending at the count.
        let encode: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("imgserv_stage_seconds_bucket{stage=\"encode\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(encode.windows(2).all(|w| w[0] <= w[1]), "{encode:?}");
        // Other tests of this process render too: at least this one is counted.
        assert!(*encode.last().unwrap() >= 1);
    }
}
