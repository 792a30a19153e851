//! `[dashboard]`: how the Browse and Search pages (and `GET /api/images` without `page`) cut
//! their listings, and the box of the thumbnails they show. What a page holds is
//! `usecases::browse`'s; the pages themselves are the web layer's.

use serde::Deserialize;

use super::value::Problems;
use crate::domain::geometry::Size;

/// Images per page unless `per_page` says otherwise.
pub const DEFAULT_PER_PAGE: u32 = 24;
/// The most images one page (of the dashboard or the REST listing) may hold.
pub const MAX_PER_PAGE: u32 = 100;
/// The thumbnails' box unless `thumbnail` says otherwise.
const DEFAULT_THUMBNAIL: Size = Size {
    width: 240,
    height: 240,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardConfig {
    /// Images per page, from 1 to [`MAX_PER_PAGE`].
    pub per_page: u32,
    /// The box thumbnails are fitted into (a variant served by the 404 handler).
    pub thumbnail: Size,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            per_page: DEFAULT_PER_PAGE,
            thumbnail: DEFAULT_THUMBNAIL,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDashboard {
    per_page: Option<i64>,
    thumbnail: Option<String>,
}

pub(super) fn validate_dashboard(
    raw: &RawDashboard,
    limits: &super::Limits,
    p: &mut Problems,
) -> DashboardConfig {
    let per_page = p.int(
        "dashboard.per_page",
        raw.per_page,
        1,
        i64::from(MAX_PER_PAGE),
        DEFAULT_PER_PAGE,
    );
    let thumbnail = match raw.thumbnail.as_deref().map(str::parse::<Size>) {
        None => DEFAULT_THUMBNAIL,
        Some(Ok(s)) if s.width <= limits.max_width && s.height <= limits.max_height => s,
        Some(Ok(s)) => {
            p.add(
                "dashboard.thumbnail",
                format!("{s} is larger than limits.max_width x limits.max_height"),
            );
            DEFAULT_THUMBNAIL
        }
        Some(Err(e)) => {
            p.add("dashboard.thumbnail", e);
            DEFAULT_THUMBNAIL
        }
    };
    DashboardConfig {
        per_page,
        thumbnail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::config::from_str;

    #[test]
    fn defaults_bounds_and_messages() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("originals")).unwrap();
        let base = format!(
            "[originals]\nroot = {:?}\n[cache]\ndir = {:?}\n",
            d.path().join("originals"),
            d.path().join("cache")
        );
        let c = from_str(&base, d.path()).unwrap();
        assert_eq!(c.dashboard, DashboardConfig::default());
        assert_eq!(c.dashboard.per_page, 24);
        let c = from_str(
            &format!("{base}[dashboard]\nper_page = 100\nthumbnail = \"320x200\"\n"),
            d.path(),
        )
        .unwrap();
        assert_eq!(
            (c.dashboard.per_page, c.dashboard.thumbnail),
            (100, Size::new(320, 200))
        );
        for (text, key) in [
            ("per_page = 0", "dashboard.per_page"),
            ("per_page = 101", "dashboard.per_page"),
            ("thumbnail = \"big\"", "dashboard.thumbnail"),
            ("thumbnail = \"99999x10\"", "dashboard.thumbnail"),
        ] {
            let err = from_str(&format!("{base}[dashboard]\n{text}\n"), d.path())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
