//! Small pieces the content pages share: query strings for links, dates and sizes in words,
//! the category tree as nested lists, and a page's query parameters.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::domain::geometry::{self, Size};
use crate::io::catalog::Category;
use crate::io::config::Config;
use crate::io::http::form::{self, Form, Limits};
use crate::io::http::{Request, RequestError};
use crate::usecases::browse::{Card, Thumbnail};
use crate::usecases::error::Error;

/// A query component: everything but unreserved characters and `/` encoded (a category
/// path reads as itself).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `a=1&b=x%20y` from pairs; pairs with an empty value are left out.
pub fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, COMPONENT)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A page's form (urlencoded, or multipart without files).
pub fn form(req: &Request) -> Result<Form, Error> {
    Ok(Form::read(req, &Limits::default(), |_, _| Ok(())).map_err(RequestError::from)?)
}

/// An error a form shows above itself (the visitor's: `400`, `404`, `409`, `422`), as its
/// status and words; any other is answered as an error page.
pub fn shown(e: Error) -> Result<(u16, String), Error> {
    match e.status() {
        400 | 404 | 409 | 422 => Ok((e.status(), e.public_message())),
        _ => Err(e),
    }
}

/// The request for a page shown again after its form failed: the same, with `query`.
pub fn again(req: &Request, query: String) -> Request {
    Request {
        query,
        ..req.clone()
    }
}

/// The page's query parameters.
pub fn params(raw: &str) -> Result<Form, RequestError> {
    form::urlencoded(raw.as_bytes(), &Limits::default()).map_err(RequestError::from)
}

/// A card's thumbnail when no static URL shows it (the public may not view the image, or its
/// box needs a signature): the page's own checked route, `image/<id>/thumbnail` from `root`.
pub fn checked_thumbnail(config: &Config, root: &str, card: &Card) -> Thumbnail {
    let original = Size::new(card.width, card.height);
    let size = geometry::fit(original, config.dashboard.thumbnail, config.cache.raster);
    Thumbnail {
        url: format!("{root}image/{}/thumbnail", card.id),
        width: size.width,
        height: size.height,
    }
}

/// Every card's thumbnail: [`checked_thumbnail`] where no static URL shows it.
pub fn thumbnails<'c>(config: &Config, root: &str, cards: impl Iterator<Item = &'c mut Card>) {
    for card in cards {
        if card.thumbnail.is_none() {
            card.thumbnail = Some(checked_thumbnail(config, root, card));
        }
    }
}

/// A Unix time in milliseconds as `2026-12-02 07:50 UTC`.
pub fn date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// A byte count in words: `912 bytes`, `1.2 MB` (decimal units, as file managers show).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A category's last segment, or `All images` for the root.
pub fn name(path: &str) -> &str {
    match path.rsplit('/').next() {
        Some("") | None => "All images",
        Some(last) => last,
    }
}

/// One entry of the category tree as the templates nest it: close `close_before` open lists,
/// show the entry, and open a list for its children when `has_children`.
pub struct TreeRow {
    pub path: String,
    /// `browse?category=…`, relative to `/admin/`.
    pub href: String,
    pub name: String,
    pub total: u64,
    pub current: bool,
    pub close_before: usize,
    pub has_children: bool,
}

/// The tree's rows (categories in the catalog's order, a parent before its children), and how
/// many lists are still open after the last. A category whose parent is not in the list (not
/// visible to the viewer) nests under its nearest listed ancestor.
pub fn tree(categories: &[Category], current: &str) -> (Vec<TreeRow>, usize) {
    let mut rows: Vec<TreeRow> = Vec::with_capacity(categories.len());
    let mut stack: Vec<&str> = Vec::new();
    let mut prev_depth = 0;
    for c in categories {
        let within = |parent: &str| parent == "/" || c.path.starts_with(&format!("{parent}/"));
        while stack.last().is_some_and(|p| !within(p)) {
            stack.pop();
        }
        let depth = stack.len();
        if let Some(prev) = rows.last_mut() {
            prev.has_children = depth > prev_depth;
        }
        rows.push(TreeRow {
            path: c.path.clone(),
            href: format!("browse?{}", query(&[("category", &c.path)])),
            name: name(&c.path).to_string(),
            total: c.total,
            current: c.path == current,
            close_before: prev_depth.saturating_sub(depth),
            has_children: false,
        });
        prev_depth = depth;
        stack.push(&c.path);
    }
    (rows, prev_depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(path: &str, images: u64) -> Category {
        Category {
            path: path.into(),
            images,
            total: images,
        }
    }

    /// The tree as markup-like text, to check the nesting.
    fn nest(categories: &[Category]) -> String {
        let (rows, open) = tree(categories, "/a");
        let mut out = String::from("[");
        for r in &rows {
            out.push_str(&"]".repeat(r.close_before));
            out.push_str(&r.name);
            if r.has_children {
                out.push('[');
            } else {
                out.push(' ');
            }
        }
        out.push_str(&"]".repeat(open));
        out.push(']');
        out
    }

    #[test]
    fn the_tree_nests_and_closes_every_list() {
        let flat = [cat("/", 0), cat("/a", 1), cat("/b", 2)];
        assert_eq!(nest(&flat), "[All images[a b ]]");
        let deep = [
            cat("/", 0),
            cat("/a", 1),
            cat("/a/x", 1),
            cat("/a/x/y", 1),
            cat("/b", 2),
            cat("/b/z", 1),
        ];
        assert_eq!(nest(&deep), "[All images[a[x[y ]]b[z ]]]");
        // A hidden parent: its child nests under the nearest listed ancestor.
        let gap = [cat("/", 0), cat("/a/x", 1), cat("/ab", 1)];
        assert_eq!(nest(&gap), "[All images[x ab ]]");
        let (rows, _) = tree(&deep, "/a");
        assert!(rows[1].current && !rows[2].current);
    }

    #[test]
    fn dates_sizes_and_queries_read_as_words() {
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(1_796_197_805_000), "2026-12-02 07:50 UTC");
        assert_eq!(date(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(bytes(912), "912 bytes");
        assert_eq!(bytes(1_234_567), "1.2 MB");
        assert_eq!(
            query(&[("category", "/a b/c"), ("after", ""), ("q", "x&y")]),
            "category=/a%20b/c&q=x%26y"
        );
        assert_eq!(name("/"), "All images");
        assert_eq!(name("/a/b"), "b");
    }
}
