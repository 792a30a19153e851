//! `[api]` (the REST interface: public reads, the formats an upload may have, the largest body)
//! and `[security]` (signed URLs, and the clock skew a signed request may have).

use std::time::Duration;

use serde::Deserialize;

use super::value::{DurationValue, Problems, SizeValue};

/// The REST interface (`[api]`).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Whether API reads (originals, metadata, search, categories) need no signature; off by
    /// default, since originals keep their EXIF (GPS included). Variants are always public.
    pub public_reads: bool,
    /// Original formats an upload may have, checked by content.
    pub types: Vec<crate::domain::format::Format>,
    /// Largest request body every transport receives; a larger `Content-Length` gets `413`
    /// before the body is read.
    pub max_body_bytes: u64,
}

/// Signatures (`[security]`).
#[derive(Debug, Clone, Copy)]
pub struct SecurityConfig {
    /// Redirector and 404-handler URLs need a `sig` (presets excepted).
    pub require_signed_urls: bool,
    /// Largest difference between a signed request's date and the server's clock.
    pub max_clock_skew: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    public_reads: Option<bool>,
    types: Option<Vec<String>>,
    max_body_bytes: Option<SizeValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecurity {
    require_signed_urls: Option<bool>,
    max_clock_skew: Option<DurationValue>,
}

/// Room for the multipart form around an upload of `[limits] max_source_bytes`.
const FORM_OVERHEAD: u64 = 1 << 20;

pub(super) fn validate_api(raw: RawApi, max_source_bytes: u64, p: &mut Problems) -> ApiConfig {
    use crate::domain::format::Format;
    let names = raw
        .types
        .unwrap_or_else(|| ["jpeg", "png", "gif", "webp"].map(String::from).to_vec());
    let mut types = Vec::new();
    for name in &names {
        let format = match name.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Format::Jpeg,
            "png" => Format::Png,
            "gif" => Format::Gif,
            "webp" => Format::Webp,
            _ => {
                p.add(
                    "api.types",
                    format!("expected some of \"jpeg\", \"png\", \"gif\", \"webp\", got {name:?}"),
                );
                continue;
            }
        };
        if !types.contains(&format) {
            types.push(format);
        }
    }
    if names.is_empty() {
        p.add("api.types", "expected at least one type");
    }
    let max_body_bytes = p.size(
        "api.max_body_bytes",
        raw.max_body_bytes.as_ref(),
        max_source_bytes.saturating_add(FORM_OVERHEAD),
    );
    if max_body_bytes == 0 {
        p.add("api.max_body_bytes", "expected at least 1 byte");
    }
    ApiConfig {
        public_reads: raw.public_reads.unwrap_or(false),
        types,
        max_body_bytes,
    }
}

/// `[security]`.
pub(super) fn validate_security(raw: &RawSecurity, p: &mut Problems) -> SecurityConfig {
    SecurityConfig {
        require_signed_urls: raw.require_signed_urls.unwrap_or(false),
        max_clock_skew: p.duration(
            "security.max_clock_skew",
            raw.max_clock_skew.as_ref(),
            Duration::from_secs(300),
        ),
    }
}
