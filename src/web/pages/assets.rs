//! The dashboard's stylesheet and script, compiled into the binary and served at URLs that
//! carry a hash of their bytes (`static/<hash>/style.css`), so a browser may keep them for a
//! year: a changed file is a new URL. The hash is computed once per process, on first use.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::io::http::{Request, RequestError, Response};
use crate::usecases::error::Error;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 2] = [
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/style.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/app.js"),
    },
];

/// The first 16 hex digits of the SHA-256 of `bytes`.
fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Each asset's URL relative to `/admin/`, in `ASSETS`' order.
fn urls() -> &'static [String; 2] {
    static URLS: OnceLock<[String; 2]> = OnceLock::new();
    URLS.get_or_init(|| ASSETS.map(|a| format!("static/{}/{}", digest(a.bytes), a.name)))
}

pub fn style_url() -> &'static str {
    &urls()[0]
}

pub fn script_url() -> &'static str {
    &urls()[1]
}

/// `GET /admin/static/<hash>/<name>`: the asset when the hash is its current one (an old
/// hash is a `404`, not today's bytes under yesterday's URL).
pub fn serve(req: &Request, rest: &str) -> Result<Response, Error> {
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return Err(RequestError::Method {
            allow: "GET, HEAD".into(),
        }
        .into());
    }
    let wanted = format!("static/{rest}");
    let found = ASSETS
        .iter()
        .zip(urls().iter())
        .find(|(_, url)| **url == wanted);
    let Some((asset, _)) = found else {
        return Err(RequestError::NoRoute(req.path.clone()).into());
    };
    Ok(Response::new(200)
        .with_header("Content-Type", asset.content_type)
        .with_header("Cache-Control", "public, max-age=31536000, immutable")
        .with_body(asset.bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_hash_of_the_bytes() {
        assert_eq!(digest(b"a"), digest(b"a"));
        assert_ne!(digest(b"a"), digest(b"b"));
        let style = style_url();
        assert!(
            style.starts_with("static/") && style.ends_with("/style.css"),
            "{style}"
        );
        assert_eq!(style.len(), "static/".len() + 16 + "/style.css".len());
        assert!(script_url().ends_with("/app.js"));
    }

    #[test]
    fn only_the_current_hash_is_served() {
        let req = Request::get("/admin/static/x", "");
        let rest = style_url().strip_prefix("static/").unwrap();
        let resp = serve(&req, rest).unwrap();
        assert_eq!(resp.header("content-type"), Some("text/css; charset=utf-8"));
        assert_eq!(
            resp.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(resp.body, ASSETS[0].bytes);
        for other in [
            "0000000000000000/style.css",
            "style.css",
            "",
            "../style.css",
        ] {
            assert_eq!(serve(&req, other).unwrap_err().status(), 404, "{other}");
        }
        let mut post = Request::get("/admin/static/x", "");
        post.method = "POST".into();
        assert_eq!(serve(&post, rest).unwrap_err().status(), 405);
    }
}
