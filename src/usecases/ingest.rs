//! Adding an original: its bytes are checked (an accepted type by content, a header within the
//! limits, pixels that decode, no SHA-1 collision), then placed by the catalog's upload
//! protocol — intent, store, insert — so that a failure at any step leaves nothing behind for
//! long (the sweep removes an object whose insert never came).
//!
//! Shared by the upload API and `imgserv-upload`; it knows nothing of HTTP or terminals.

use serde_json::{Map, Value};

use crate::domain::format::Format;
use crate::domain::geometry::{BoundingBox, Raster, fit};
use crate::domain::original::{IdError, OriginalId};
use crate::io::catalog::{Catalog, Inserted, NewImage};
use crate::io::config::Config;
use crate::io::render;
use crate::io::store::Store;
use crate::usecases::error::{Error, IngestError};

/// What the uploader says about an original.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// A category path (`/travel/norway`); empty is the root.
    pub category: String,
    pub meta: Map<String, Value>,
    /// The user whose key signed the upload, if any.
    pub owner: Option<String>,
}

/// Checks `bytes` and adds them to the store and the catalog. The same bytes twice give
/// [`Inserted::Existed`] with the first row untouched.
pub fn ingest(
    config: &Config,
    store: &dyn Store,
    catalog: &mut Catalog,
    bytes: &[u8],
    upload: &Upload,
) -> Result<Inserted, Error> {
    let len = bytes.len() as u64;
    if len > config.limits.max_source_bytes {
        return Err(IngestError::TooLarge {
            bytes: len,
            limit: config.limits.max_source_bytes,
        }
        .into());
    }
    let format = Format::sniff(bytes).map_err(render::RenderError::from)?;
    if !config.api.types.contains(&format) {
        return Err(IngestError::TypeNotAccepted(format).into());
    }
    let probe = render::probe(bytes, config.limits.max_pixels)?;
    // A header can promise what the data cannot keep (truncated or corrupt scans): decode
    // once, at a reduced scale where the format allows it, before anything is stored.
    let small = fit(
        probe.stored,
        BoundingBox::new(256, 256),
        Raster::new(1).unwrap_or_default(),
    );
    render::decode(bytes, &probe, small)?;
    let id = OriginalId::of(bytes).map_err(|e| match e {
        IdError::Collision | IdError::Malformed(_) => IngestError::Collision,
    })?;
    let mime = format.mime();
    let new = NewImage {
        id: id.clone(),
        mime: mime.to_string(),
        width: probe.size().width,
        height: probe.size().height,
        bytes: len,
        owner: upload.owner.clone(),
        category: upload.category.clone(),
        meta: upload.meta.clone(),
    };
    // Fail on a bad category or metadata before the store is touched.
    crate::io::catalog::normalize_category(&new.category)?;
    if let Some(existing) = catalog.get(&id)? {
        return Ok(Inserted::Existed(existing));
    }
    let intent = catalog.begin_upload(&id, mime)?;
    store.put(&id, format, bytes)?;
    Ok(catalog.insert_granting(&new, Some(intent), config.permissions.privilege_for_creator)?)
}
