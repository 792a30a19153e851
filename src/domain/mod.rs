//! The domain: pure code, no I/O — what a box, a raster, a request's parameters, an original's
//! id and an image format are. Everything else builds on it; it imports nothing of the crate
//! outside this folder.

pub mod cursor;
pub mod format;
pub mod geometry;
pub mod original;
pub mod permission;
pub mod principal;
pub mod query;
pub mod throttle;

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
