//! Decoding, resizing and encoding images.

/// Why an image could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The bytes are not an image of any known format (text, HTML, empty).
    #[error("not an image")]
    NotAnImage,
    /// A known image format that this server does not render (e.g. TIFF).
    #[error("unsupported image format: {0}")]
    Unsupported(String),
    /// The image is damaged: bad structure, checksum or entropy data.
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// The image ends before its data does.
    #[error("truncated image")]
    Truncated,
    /// The header declares more pixels (or a larger side) than allowed.
    #[error("image is {width}x{height}, over the limit of {max} pixels")]
    TooManyPixels { width: u64, height: u64, max: u64 },
    /// Encoding the output failed.
    #[error("encoding failed: {0}")]
    Encode(String),
}
