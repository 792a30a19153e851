//! Memory held by the long-running servers: what renders leave resident is bounded by
//! `[server] workers`, not by the number of connections the web server opens.
//!
//! glibc keeps a render's buffers in the arena of the thread that rendered (on purpose:
//! `src/io/malloc.rs`), and every thread that allocates gets an arena of its own. When the handler
//! ran on connection threads, each connection that rendered a large original kept about one
//! render's working set; `make soak` saw the FastCGI server's RSS climb minute after minute
//! (RELIABILITY.md). Renders now run on `workers` threads (`src/web/transport/workers.rs`).

use std::fs;
use std::thread;

use crate::support::{Nginx, Site, get};

const LARGE: &str = "photo-analogpattern-2880x2160.jpg";

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// A miss: the large original into a box no other request asked for, followed to the variant.
fn render(base: &str, script: &str, width: u32) {
    let resp = get(&format!(
        "{base}{script}?src={LARGE}&width={width}&height=2000"
    ));
    assert_eq!(resp.status, 302, "{}", resp.body_text());
}

/// One render's resident cost measured on the server, then `connections` renders at once, each
/// on its own connection: the server must end below base + (workers + 1) renders' peaks.
fn renders_stay_within_workers(base: &str, script: &str, pid: u32) {
    let at_start = rss(pid);
    render(base, script, 1600);
    let one = rss(pid).saturating_sub(at_start);
    assert!(
        one > 8 << 20,
        "one render of {LARGE} left only {one} bytes resident: the test measures nothing"
    );
    let connections = 6;
    let clients: Vec<_> = (0..connections)
        .map(|i| {
            let base = base.to_string();
            let script = script.to_string();
            thread::spawn(move || render(&base, &script, 1500 - 100 * i))
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let after = rss(pid);
    let workers = 1;
    let bound = at_start + (workers + 1) * one;
    eprintln!(
        "RSS: {} KiB at start, one render +{} KiB, after {connections} at once {} KiB (bound {} KiB)",
        at_start >> 10,
        one >> 10,
        after >> 10,
        bound >> 10
    );
    assert!(
        after < bound,
        "{connections} concurrent renders: RSS {} MiB at start, one render +{} MiB, now {} MiB, \
         over the bound of {} MiB",
        at_start >> 20,
        one >> 20,
        after >> 20,
        bound >> 20
    );
}

const ONE_WORKER: &str = "[server]\nworkers = 1\n";

#[test]
fn standalone_rss_is_bounded_by_workers_not_connections() {
    let site = Site::with_config(ONE_WORKER);
    site.add_original(LARGE);
    let (server, base) = crate::support::standalone(&site);
    renders_stay_within_workers(&base, "/imgserv.cgi", server.pid());
}

#[test]
fn fastcgi_rss_is_bounded_by_workers_not_connections() {
    let site = Site::with_config(ONE_WORKER);
    site.add_original(LARGE);
    let nginx = Nginx::fastcgi(&site);
    let pid = nginx.backend().unwrap().pid();
    renders_stay_within_workers(&nginx.base(), "/cgi-bin/imgserv.cgi", pid);
}
