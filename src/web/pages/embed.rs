//! The URLs an image page offers to embed an image: the 404 handler's canonical names of its
//! preset sizes, its thumbnail and its full size, signed with the visitor's own newest API
//! key when `[security] require_signed_urls` asks for a signature (preset sizes never do).

use crate::domain::geometry::{self, Size};
use crate::domain::permission::Privilege;
use crate::io::catalog::{self, ApiKey, Image};
use crate::usecases::error::Error;
use crate::usecases::permissions::Actor;
use crate::usecases::sign;

use super::Desk;

/// One URL to copy, and what it shows.
pub struct Embed {
    pub label: String,
    pub url: String,
}

/// The visitor's newest key that verifies now, if any.
fn own_key(d: &Desk<'_>, now_ms: i64) -> Result<Option<ApiKey>, Error> {
    let Some(user) = d.actor.principal().map(|p| p.user.clone()) else {
        return Ok(None);
    };
    Ok(d.catalog
        .keys()?
        .into_iter()
        .filter(|k| k.user == user && k.revoked.is_none() && k.expires.is_none_or(|t| t > now_ms))
        .max_by_key(|k| k.created))
}

/// The URLs to embed `image`, and a sentence on how they may be used.
///
/// A cache URL that is a path (`/cache`) is made absolute with `origin` (the page's own,
/// `http://host`), as a page elsewhere would need it.
pub fn urls(
    d: &Desk<'_>,
    image: &Image,
    origin: Option<&str>,
) -> Result<(Vec<Embed>, String), Error> {
    let config = d.config;
    let prefix = match origin {
        Some(o) if config.cache.url.starts_with('/') => o,
        _ => "",
    };
    let Some(format) = catalog::format_of(&image.mime).map(|f| f.output()) else {
        return Ok((Vec::new(), "Images of this type have no variants.".into()));
    };
    let object = catalog::category_object(&image.category);
    let public = d.permissions().for_variants().may(
        d.catalog,
        &Actor::Anonymous,
        Privilege::View,
        &object,
    )?;
    if !public {
        return Ok((
            Vec::new(),
            format!(
                "The public may not view {}, so the 404 handler does not serve its variants.",
                image.category
            ),
        ));
    }
    let original = Size::new(image.width, image.height);
    let raster = config.cache.raster;
    let url = |size: Size| {
        format!(
            "{prefix}{}/{}/{}/{}.{}",
            config.cache.url,
            image.id,
            size.width,
            size.height,
            format.ext()
        )
    };
    let mut out: Vec<Embed> = Vec::new();
    for (name, boxes) in &config.presets {
        for &b in boxes {
            let size = geometry::fit(original, b, raster);
            out.push(Embed {
                label: format!("Preset {name} ({} × {})", size.width, size.height),
                url: url(size),
            });
        }
    }
    let mut free = vec![
        (
            "Thumbnail",
            geometry::fit(original, config.dashboard.thumbnail, raster),
        ),
        ("Full size", original),
    ];
    free.retain(|(_, s)| !out.iter().any(|e| e.url == url(*s)));
    let mut note = "The 404 handler serves these; paste one into an img tag.".to_string();
    let key = if config.security.require_signed_urls {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let key = own_key(d, now)?;
        note = match &key {
            Some(k) => format!(
                "Sizes other than the presets need a signature: these are signed with your key {}.",
                k.id
            ),
            None => "Sizes other than the presets need a signature, and you have no API key \
                     to sign them with: ask an administrator for one, or use \
                     imgserv-admin sign-url."
                .into(),
        };
        if key.is_none() {
            free.clear();
        }
        key
    } else {
        None
    };
    let base = sign::url_path(&config.cache.url);
    for (label, size) in free {
        let plain = url(size);
        let url = match &key {
            Some(k) => sign::sign_href(&plain, &base, &k.id, k.secret.expose().as_bytes(), None)?,
            None => plain,
        };
        out.push(Embed {
            label: format!("{label} ({} × {})", size.width, size.height),
            url,
        });
    }
    Ok((out, note))
}
