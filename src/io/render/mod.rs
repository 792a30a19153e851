//! Turning an original's bytes into a variant's bytes: sniff and probe (header only, before any
//! large allocation), decode (JPEG at a reduced DCT scale and still WebP scaled by libwebp when
//! the target is much smaller), resize with `fast_image_resize`, apply the EXIF orientation,
//! encode.
//!
//! This module works on bytes in memory. It decides nothing about sizes (see `geometry`) and
//! touches no files (see `cache` and `source`).

pub mod color;
#[doc(hidden)]
pub mod entropy_check;
mod helpers;
mod jpeg;
mod jpeg_entropy;
mod jpeg_rows;
mod pixels;
mod webp;

use std::io::Cursor;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use image::{ImageDecoder, ImageFormat};

pub use color::ColorManagement;
pub use pixels::{Layout, Pixels};

use crate::domain::format::{Format, Unrecognised};
use crate::domain::geometry::Size;
use crate::io::metrics::{self, Stage};

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
    /// The header declares more pixels than allowed.
    #[error("image is {width}x{height}, over the limit of {max} pixels")]
    TooManyPixels { width: u64, height: u64, max: u64 },
    /// Encoding the output failed.
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// The `image` crate's name for a format.
fn image_format(format: Format) -> ImageFormat {
    match format {
        Format::Jpeg => ImageFormat::Jpeg,
        Format::Png => ImageFormat::Png,
        Format::Gif => ImageFormat::Gif,
        Format::Webp => ImageFormat::WebP,
    }
}

impl From<Unrecognised> for RenderError {
    fn from(e: Unrecognised) -> Self {
        match e {
            Unrecognised::Unsupported(what) => RenderError::Unsupported(what.into()),
            Unrecognised::NotAnImage => RenderError::NotAnImage,
        }
    }
}

/// The resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    Lanczos3,
    CatmullRom,
    Mitchell,
    Bilinear,
    Box,
    Nearest,
}

impl Filter {
    pub const NAMES: [&'static str; 6] = [
        "lanczos3",
        "catmullrom",
        "mitchell",
        "bilinear",
        "box",
        "nearest",
    ];

    pub fn from_name(name: &str) -> Option<Filter> {
        Some(match name {
            "lanczos3" => Filter::Lanczos3,
            "catmullrom" => Filter::CatmullRom,
            "mitchell" => Filter::Mitchell,
            "bilinear" => Filter::Bilinear,
            "box" => Filter::Box,
            "nearest" => Filter::Nearest,
            _ => return None,
        })
    }

    fn alg(self) -> fast_image_resize::ResizeAlg {
        use fast_image_resize::{FilterType as F, ResizeAlg as A};
        match self {
            Filter::Lanczos3 => A::Convolution(F::Lanczos3),
            Filter::CatmullRom => A::Convolution(F::CatmullRom),
            Filter::Mitchell => A::Convolution(F::Mitchell),
            Filter::Bilinear => A::Convolution(F::Bilinear),
            Filter::Box => A::Convolution(F::Box),
            Filter::Nearest => A::Nearest,
        }
    }
}

/// How variants are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// Lossy WebP quality, 1–100 (lossless WebP sources stay lossless).
    pub webp_quality: u8,
    pub filter: Filter,
    /// Fast PNG compression (bigger files, much less CPU) instead of the best.
    pub png_fast: bool,
    /// Largest original in pixels; checked on the header before decoding.
    pub max_pixels: u64,
    /// What a variant does with its original's ICC profile.
    pub color: ColorManagement,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            quality: 85,
            webp_quality: 80,
            filter: Filter::default(),
            png_fast: true,
            max_pixels: 50_000_000,
            color: ColorManagement::default(),
        }
    }
}

/// What the header says about an original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub format: Format,
    /// The size as stored, before orientation.
    pub stored: Size,
    /// EXIF orientation 1–8 (0 and invalid values count as 1).
    pub orientation: u8,
    /// A progressive JPEG (all its scans come before the first row of pixels).
    pub progressive: bool,
}

impl Probe {
    /// The size as displayed: `stored`, with the sides swapped for orientations 5–8.
    pub fn size(&self) -> Size {
        if self.orientation >= 5 {
            self.stored.transposed()
        } else {
            self.stored
        }
    }
}

/// A rendered variant.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub size: Size,
}

/// Reads format, stored size and orientation from the header, without decoding pixels, and
/// refuses originals over `max_pixels`.
pub fn probe(bytes: &[u8], max_pixels: u64) -> Result<Probe, RenderError> {
    let format = Format::sniff(bytes)?;
    let (stored, orientation, progressive) = match format {
        Format::Jpeg => {
            let header = jpeg::parse_header(bytes)?;
            (header.size, header.orientation, header.progressive)
        }
        _ => {
            let mut decoder = image_decoder(bytes, format, None)?;
            let (w, h) = decoder.dimensions();
            let orientation = decoder.orientation().map(|o| o.to_exif()).unwrap_or(1);
            (Size::new(w, h), orientation, false)
        }
    };
    if stored.width == 0 || stored.height == 0 {
        return Err(RenderError::Corrupt(format!(
            "image declares a size of {stored}"
        )));
    }
    if stored.pixels() > max_pixels {
        return Err(RenderError::TooManyPixels {
            width: stored.width.into(),
            height: stored.height.into(),
            max: max_pixels,
        });
    }
    Ok(Probe {
        format,
        stored,
        orientation,
        progressive,
    })
}

/// Whether a large colour JPEG may be decoded and resized on two threads when a core is idle
/// (see [`enable_split_decode`]).
static SPLIT_DECODE: AtomicBool = AtomicBool::new(false);

/// Renders in progress in this process.
static RENDERING: AtomicUsize = AtomicUsize::new(0);

/// Lets [`render`] decode and resize a large colour JPEG on two threads
/// (`jpeg::decode_resized_split`) when fewer renders are in progress in this process than
/// there are cores, so that the second thread takes an idle core. For the long-lived servers
/// (FastCGI, standalone), whose requests are all counted in one process; not for CGI, whose
/// processes cannot see each other's renders, and where the split, which duplicates part of
/// the entropy decoding, would take cores from the other requests under load.
pub fn enable_split_decode(on: bool) {
    SPLIT_DECODE.store(on, Ordering::Relaxed);
}

/// Counts a render in progress while it lives.
struct Rendering(usize);

impl Rendering {
    fn start() -> Rendering {
        Rendering(RENDERING.fetch_add(1, Ordering::AcqRel) + 1)
    }
}

impl Drop for Rendering {
    fn drop(&mut self) {
        RENDERING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The cores this process may use, read once.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Renders `bytes` (already probed) at `target`, a size as displayed (after orientation).
pub fn render(
    bytes: &[u8],
    probe: &Probe,
    target: Size,
    opts: &RenderOptions,
) -> Result<Rendered, RenderError> {
    // The resize happens in stored orientation; the (smaller) result is then oriented.
    let stored_target = if probe.orientation >= 5 {
        target.transposed()
    } else {
        target
    };
    let rendering = Rendering::start();
    // Baseline files only: a progressive file's scans are all entropy-decoded by
    // `jpeg_start_decompress`, 85–90 % of its decode at half scale with the page faults of the
    // coefficient buffers, and both instances would do that in full (decoding the upper half of
    // bridge, 4352×2448, alone took 99 ms of the whole decode's 103).
    let split = probe.format == Format::Jpeg
        && !probe.progressive
        && SPLIT_DECODE.load(Ordering::Relaxed)
        && rendering.0 < cores();
    let split = if split {
        let started = Instant::now();
        let split = jpeg::decode_resized_split(bytes, probe.stored, stored_target, opts.filter)?;
        if split.is_some() {
            metrics::observe(Stage::Decode, started.elapsed());
        }
        split
    } else {
        None
    };
    let mut resized = match split {
        Some(pixels) => pixels,
        None => {
            let decoded = metrics::time(Stage::Decode, || decode(bytes, probe, stored_target))?;
            metrics::time(Stage::Resize, || decoded.resize(stored_target, opts.filter))?
        }
    };
    // After the resize: the conversion costs the variant's pixels, not the original's.
    let icc = match opts.color {
        ColorManagement::Off => None,
        _ => color::icc_profile(bytes, probe.format),
    };
    let keep = match (opts.color, icc) {
        (ColorManagement::Convert, Some(icc)) => {
            color::to_srgb(&mut resized, &icc);
            None
        }
        (ColorManagement::Keep, icc) => icc,
        _ => None,
    };
    let oriented = resized.orient(probe.orientation);
    let format = probe.format.output();
    let lossless = probe.format == Format::Webp && webp_is_lossless(bytes);
    let bytes = metrics::time(Stage::Encode, || encode(&oriented, format, opts, lossless))?;
    let bytes = match keep {
        Some(icc) => color::embed(bytes, format, &icc),
        None => bytes,
    };
    Ok(Rendered {
        bytes,
        format,
        size: Size::new(oriented.width, oriented.height),
    })
}

/// Decodes the pixels, at a reduced scale when the format allows it and `stored_target` is
/// small enough (JPEG in the DCT domain, still WebP through libwebp's scaled decode).
pub fn decode(bytes: &[u8], probe: &Probe, stored_target: Size) -> Result<Pixels, RenderError> {
    match probe.format {
        Format::Jpeg => jpeg::decode(bytes, probe.stored, stored_target),
        // Still images through libwebp (SIMD, scaled while decoding); animations through
        // `image-webp` (first frame).
        Format::Webp => match webp::decode(bytes, probe.stored, stored_target)? {
            Some(pixels) => Ok(pixels),
            None => decode_image(bytes, probe),
        },
        _ => decode_image(bytes, probe),
    }
}

/// Decodes with the `image` crate, within limits derived from the probed size.
fn decode_image(bytes: &[u8], probe: &Probe) -> Result<Pixels, RenderError> {
    let decoder = image_decoder(bytes, probe.format, Some(probe.stored))?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(image_error)?;
    Ok(Pixels::from_dynamic(img))
}

/// Full-resolution decode in stored orientation, for reference renders in tests and benches.
pub fn decode_full(bytes: &[u8], probe: &Probe) -> Result<Pixels, RenderError> {
    decode(bytes, probe, probe.stored)
}

/// A decoder from the `image` crate with limits derived from the declared size, so that a
/// frame larger than its canvas (a GIF bomb) cannot allocate beyond it.
fn image_decoder<'a>(
    bytes: &'a [u8],
    format: Format,
    declared: Option<Size>,
) -> Result<impl ImageDecoder + 'a, RenderError> {
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), image_format(format));
    let mut limits = image::Limits::default();
    if let Some(size) = declared {
        limits.max_image_width = Some(size.width);
        limits.max_image_height = Some(size.height);
        // 8 bytes a pixel covers 16-bit RGBA; the slack covers decoder buffers.
        limits.max_alloc = Some(size.pixels() * 8 + (16 << 20));
    } else {
        limits.max_alloc = Some(16 << 20);
    }
    reader.limits(limits);
    reader.into_decoder().map_err(image_error)
}

fn image_error(e: image::ImageError) -> RenderError {
    use image::ImageError as E;
    match e {
        E::Limits(l) => RenderError::Corrupt(format!("over decoding limits: {l}")),
        E::Unsupported(u) => RenderError::Unsupported(u.to_string()),
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => RenderError::Truncated,
        E::IoError(io) => RenderError::Corrupt(io.to_string()),
        E::Decoding(d) => {
            let msg = d.to_string();
            let lower = msg.to_ascii_lowercase();
            if lower.contains("eof") || lower.contains("end of") || lower.contains("truncat") {
                RenderError::Truncated
            } else {
                RenderError::Corrupt(msg)
            }
        }
        other => RenderError::Corrupt(other.to_string()),
    }
}

/// Encodes pixels as `format` with the options' quality (`lossless` only matters for WebP).
pub fn encode(
    pixels: &Pixels,
    format: Format,
    opts: &RenderOptions,
    lossless: bool,
) -> Result<Vec<u8>, RenderError> {
    match format {
        Format::Jpeg => jpeg::encode(pixels, opts.quality),
        Format::Png => encode_png(pixels, opts.png_fast),
        Format::Webp => encode_webp(pixels, opts.webp_quality, lossless),
        Format::Gif => Err(RenderError::Encode("GIF output is not supported".into())),
    }
}

fn encode_png(pixels: &Pixels, fast: bool) -> Result<Vec<u8>, RenderError> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut out = Vec::new();
    let (compression, filter) = if fast {
        (CompressionType::Fast, FilterType::Adaptive)
    } else {
        (CompressionType::Best, FilterType::Adaptive)
    };
    PngEncoder::new_with_quality(&mut out, compression, filter)
        .write_image(
            &pixels.data,
            pixels.width,
            pixels.height,
            pixels.layout.extended_color_type(),
        )
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok(out)
}

fn encode_webp(pixels: &Pixels, quality: u8, lossless: bool) -> Result<Vec<u8>, RenderError> {
    let rgb;
    let (data, has_alpha) = match pixels.layout {
        Layout::Rgb8 => (&pixels.data, false),
        Layout::Rgba8 => (&pixels.data, true),
        Layout::L8 | Layout::La8 => {
            rgb = pixels.to_rgb_or_rgba();
            (&rgb.data, pixels.layout == Layout::La8)
        }
    };
    let encoder = if has_alpha {
        ::webp::Encoder::from_rgba(data, pixels.width, pixels.height)
    } else {
        ::webp::Encoder::from_rgb(data, pixels.width, pixels.height)
    };
    let mem = encoder
        .encode_simple(lossless, f32::from(quality))
        .map_err(|e| RenderError::Encode(format!("webp: {e:?}")))?;
    Ok(mem.to_vec())
}

/// Whether a WebP file holds a lossless (`VP8L`) bitstream, so that its variants stay lossless.
fn webp_is_lossless(bytes: &[u8]) -> bool {
    // RIFF header (12 bytes), then chunks: FourCC, little-endian size, payload padded to even.
    let mut pos = 12;
    while let Some(header) = bytes.get(pos..pos + 8) {
        match &header[..4] {
            b"VP8L" => return true,
            b"VP8 " => return false,
            _ => {}
        }
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        pos = pos
            .saturating_add(8)
            .saturating_add(size)
            .saturating_add(size & 1);
    }
    false
}

/// A file of `tests/fixtures`, for the render modules' unit tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
