//! The one log line per request, at info level: method, route, status, error code, what the
//! cache did (hit or miss) and milliseconds, as `key=value` words:
//!
//! ```text
//! method=GET route=resize status=302 code=- cache=hit ms=3
//! ```
//!
//! No path, query or address: queries carry signatures, and the web server's access log
//! has the rest. The route is a fixed word (`resize`, `cache-404`, `api`, `status`,
//! `metrics`, `other`), `-` stands for "none". What the request did is read from the notes
//! `metrics` keeps for the handling thread.

use std::time::Duration;

use crate::io::http::{Request, Response};

/// Logs the line for `req`, answered with `resp` after `took`.
pub fn log(req: &Request, route: &str, resp: &Response, took: Duration) {
    let (cache, code) = crate::io::metrics::request_notes();
    log::info!("{}", line(req, route, resp.status, code, cache, took));
}

/// The line itself (pure, for tests).
pub fn line(
    req: &Request,
    route: &str,
    status: u16,
    code: Option<&str>,
    cache: Option<&str>,
    took: Duration,
) -> String {
    // The method comes from the client: only a token's characters are written.
    let method: String = req
        .method
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(16)
        .collect();
    format!(
        "method={method} route={route} status={status} code={} cache={} ms={}",
        code.unwrap_or("-"),
        cache.unwrap_or("-"),
        took.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_every_field_and_no_injected_text() {
        let mut req = Request::get("/", "src=a.jpg&sig=secret");
        assert_eq!(
            line(
                &req,
                "resize",
                302,
                None,
                Some("hit"),
                Duration::from_millis(7)
            ),
            "method=GET route=resize status=302 code=- cache=hit ms=7"
        );
        req.method = "GE T\nfake=1".into();
        let l = line(&req, "other", 404, Some("not-found"), None, Duration::ZERO);
        assert_eq!(
            l,
            "method=GETfake1 route=other status=404 code=not-found cache=- ms=0"
        );
    }
}
