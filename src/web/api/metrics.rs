//! `GET /metrics`: the counters of `io::metrics` in Prometheus's text format, for the
//! long-lived servers.

use std::net::IpAddr;

use crate::io::http::{Request, RequestError, Response};
use crate::io::metrics::{self, MetricsConfig, MetricsError};
use crate::usecases::error::Error;

/// `GET /metrics`: 404 unless this process is a long-lived server and `[metrics] enabled`,
/// 403 for an address outside `[metrics] allow`, else the text format.
pub(super) fn respond(config: &MetricsConfig, req: &Request) -> Result<Response, Error> {
    if !(config.enabled && metrics::exposed()) {
        return Err(RequestError::NoRoute(req.path.clone()).into());
    }
    if !config.allow.is_empty() {
        let addr = req.remote_addr.as_deref().unwrap_or("");
        let ip = addr.parse::<IpAddr>().ok();
        if !ip.is_some_and(|ip| config.allow.iter().any(|n| n.contains(ip))) {
            return Err(MetricsError::Forbidden(addr.to_string()).into());
        }
    }
    Ok(Response::new(200)
        .with_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        .with_header("Cache-Control", "no-store")
        .with_body(metrics::render().into_bytes()))
}
