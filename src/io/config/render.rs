//! `[limits]` (the largest original and the largest request), `[render]` (how variants are
//! resized and encoded) and `[presets]` (named lists of boxes, within the limits).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::value::{Problems, SizeValue};
use crate::domain::geometry::Size;
use crate::io::render::{ColorManagement, Filter, RenderOptions};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest original, in pixels, read from the header before decoding.
    pub max_pixels: u64,
    /// Largest `width` a request may ask for.
    pub max_width: u32,
    /// Largest `height` a request may ask for.
    pub max_height: u32,
    /// Largest original file, in bytes.
    pub max_source_bytes: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    max_pixels: Option<i64>,
    max_width: Option<i64>,
    max_height: Option<i64>,
    max_source_bytes: Option<SizeValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRender {
    quality: Option<i64>,
    webp_quality: Option<i64>,
    filter: Option<String>,
    png_compression: Option<String>,
    color_management: Option<String>,
}

/// `[limits]`.
pub(super) fn validate_limits(raw: &RawLimits, p: &mut Problems) -> Limits {
    let max_pixels = p.int::<u64>("limits.max_pixels", raw.max_pixels, 1, 1 << 40, 50_000_000);
    let max_width = p.int::<u32>("limits.max_width", raw.max_width, 1, 65_535, 4096);
    let max_height = p.int::<u32>("limits.max_height", raw.max_height, 1, 65_535, 4096);
    let max_source_bytes = p.size(
        "limits.max_source_bytes",
        raw.max_source_bytes.as_ref(),
        64 << 20,
    );
    Limits {
        max_pixels,
        max_width,
        max_height,
        max_source_bytes,
    }
}

/// `[render]`; `max_pixels` is `[limits] max_pixels`, which the decoders enforce too.
pub(super) fn validate_render(raw: &RawRender, max_pixels: u64, p: &mut Problems) -> RenderOptions {
    let quality = p.int::<u8>("render.quality", raw.quality, 1, 100, 85);
    let webp_quality = p.int::<u8>("render.webp_quality", raw.webp_quality, 1, 100, 80);
    let filter = match raw.filter.as_deref() {
        None => Filter::default(),
        Some(name) => Filter::from_name(name).unwrap_or_else(|| {
            p.add(
                "render.filter",
                format!("expected one of {}, got {name:?}", Filter::NAMES.join(", ")),
            );
            Filter::default()
        }),
    };
    let color = match raw.color_management.as_deref() {
        None => ColorManagement::default(),
        Some(name) => ColorManagement::from_name(name).unwrap_or_else(|| {
            p.add(
                "render.color_management",
                format!(
                    "expected one of {}, got {name:?}",
                    ColorManagement::NAMES.join(", ")
                ),
            );
            ColorManagement::default()
        }),
    };
    let png_fast = match raw.png_compression.as_deref() {
        None | Some("fast") => true,
        Some("best") => false,
        Some(other) => {
            p.add(
                "render.png_compression",
                format!("expected \"fast\" or \"best\", got {other:?}"),
            );
            true
        }
    };
    RenderOptions {
        quality,
        webp_quality,
        filter,
        png_fast,
        max_pixels,
        color,
    }
}

/// `[presets]`: each name of lower-case letters, digits, `_` and `-`, with at least one box,
/// every box within `[limits]`.
pub(super) fn validate_presets(
    raw: BTreeMap<String, Vec<String>>,
    limits: &Limits,
    p: &mut Problems,
) -> BTreeMap<String, Vec<Size>> {
    let mut presets = BTreeMap::new();
    for (name, boxes) in raw {
        let key = format!("presets.{name}");
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            p.add(
                &key,
                "preset names are lower-case letters, digits, '_' and '-'",
            );
        }
        if boxes.is_empty() {
            p.add(&key, "expected at least one box like \"800x600\"");
        }
        let mut sizes = Vec::new();
        for b in &boxes {
            match b.parse::<Size>() {
                Ok(s) if s.width <= limits.max_width && s.height <= limits.max_height => {
                    sizes.push(s)
                }
                Ok(s) => p.add(
                    &key,
                    format!("{s} is larger than limits.max_width x limits.max_height"),
                ),
                Err(e) => p.add(&key, e),
            }
        }
        presets.insert(name, sizes);
    }
    presets
}
