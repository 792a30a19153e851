//! Still WebP decoded through libwebp's advanced API, scaled down while decoding.
//!
//! The crate denies `unsafe_code`; this module is its one reviewed exception. libwebp can shrink
//! a picture while it decodes it (`WebPDecoderConfig.options.use_scaling`: the rows are rescaled
//! in YUV as they come out of the decoder, and only the small picture is converted to RGB and
//! stored), which is what vipsthumbnail does and what made a 4096² lossy WebP fitted into 600²
//! cost 1.11–1.45× vipsthumbnail with the `webp` crate's safe `Decoder` (full size only). No
//! safe crate exposes that option, so [`decode`] calls `WebPDecode` through `libwebp-sys` (the
//! same copy the `webp` crate links). The unsafe surface is that one function: the output
//! buffer is a Rust `Vec` handed to libwebp as external memory, so libwebp allocates no pixels
//! and there is nothing to free but its bookkeeping (`WebPFreeDecBuffer`, called anyway).
#![allow(unsafe_code)]

use libwebp_sys as sys;

use super::jpeg::LANCZOS_HEADROOM;
use super::{Layout, Pixels, RenderError};
use crate::domain::geometry::Size;

/// The size to have libwebp decode `stored` to when `target` is wanted: scaled so that the
/// resampling filter that follows still shrinks by at least [`LANCZOS_HEADROOM`] on both axes,
/// or `stored` itself when that would not be smaller.
pub fn scaled_size(stored: Size, target: Size) -> Size {
    let ratio = |want: u32, have: u32| f64::from(want.max(1)) * LANCZOS_HEADROOM / f64::from(have);
    // The larger of the two axes' ratios, so that neither axis drops below the headroom.
    let r = f64::max(
        ratio(target.width, stored.width),
        ratio(target.height, stored.height),
    );
    if r >= 1.0 {
        return stored;
    }
    let side = |have: u32| ((f64::from(have) * r).ceil() as u32).clamp(1, have);
    let scaled = Size::new(side(stored.width), side(stored.height));
    if scaled.width < stored.width && scaled.height < stored.height {
        scaled
    } else {
        stored
    }
}

/// Decodes a still WebP of the probed size `stored` (already checked against the pixel limit),
/// scaled down by libwebp to [`scaled_size`] for `target` unless the file is lossy with alpha
/// (libwebp's lossy rescaler does not weight colours by alpha; the resampling filter does).
/// `Ok(None)` for an animation, which libwebp's still-image decoder does not read.
pub fn decode(bytes: &[u8], stored: Size, target: Size) -> Result<Option<Pixels>, RenderError> {
    let mut config = sys::WebPDecoderConfig::new()
        .map_err(|()| RenderError::Corrupt("webp: libwebp decoder version mismatch".into()))?;
    // SAFETY: `bytes` is a live slice and its length is passed with it; libwebp only reads
    // within it and writes the features into `config.input`, a valid, initialised struct.
    let status = unsafe { sys::WebPGetFeatures(bytes.as_ptr(), bytes.len(), &mut config.input) };
    check(status)?;
    let features = config.input;
    if features.has_animation != 0 {
        return Ok(None);
    }
    // Check the header against the probe before allocating: the probe is what the pixel limit
    // was checked on.
    let declared = Size::new(
        u32::try_from(features.width).unwrap_or(0),
        u32::try_from(features.height).unwrap_or(0),
    );
    if declared != stored {
        return Err(RenderError::Corrupt(format!(
            "webp: bitstream is {declared}, header says {stored}"
        )));
    }
    let alpha = features.has_alpha != 0;
    const LOSSLESS: i32 = 2; // `WebPBitstreamFeatures.format`: 0 mixed, 1 lossy, 2 lossless
    let out = if alpha && features.format != LOSSLESS {
        stored
    } else {
        scaled_size(stored, target)
    };
    let (layout, colorspace) = if alpha {
        (Layout::Rgba8, sys::WEBP_CSP_MODE::MODE_RGBA)
    } else {
        (Layout::Rgb8, sys::WEBP_CSP_MODE::MODE_RGB)
    };
    let too_large = || RenderError::Corrupt(format!("webp: {out} does not fit the decoder"));
    let stride = out.width as usize * layout.channels();
    let len = stride
        .checked_mul(out.height as usize)
        .ok_or_else(too_large)?;
    let c_int = |v: u32| i32::try_from(v).map_err(|_| too_large());
    let (out_w, out_h) = (c_int(out.width)?, c_int(out.height)?);
    if out != stored {
        config.options.use_scaling = 1;
        config.options.scaled_width = out_w;
        config.options.scaled_height = out_h;
    }
    let mut data = vec![0u8; len];
    config.output.colorspace = colorspace;
    config.output.is_external_memory = 1;
    config.output.u.RGBA = sys::WebPRGBABuffer {
        rgba: data.as_mut_ptr(),
        stride: i32::try_from(stride).map_err(|_| too_large())?,
        size: data.len(),
    };
    // SAFETY: `bytes` is a live slice passed with its length. `config` was initialised by
    // `WebPInitDecoderConfig` (in `WebPDecoderConfig::new`) and only plain fields were set since.
    // The output is external memory: `data`, exclusively borrowed for this call, `len` =
    // `stride` × `out.height` bytes with `stride` = `out.width` × the mode's bytes per pixel, the
    // size libwebp checks the buffer against (`CheckDecBuffer`) before it writes there.
    // `WebPFreeDecBuffer` frees only what libwebp allocated itself (nothing for external memory,
    // per decode.h) and leaves `data` alone; it is called after `WebPDecode` returned, whatever
    // it returned, and before `data` is used or moved.
    let status = unsafe {
        let status = sys::WebPDecode(bytes.as_ptr(), bytes.len(), &mut config);
        sys::WebPFreeDecBuffer(&mut config.output);
        status
    };
    check(status)?;
    if (config.output.width, config.output.height) != (out_w, out_h) {
        return Err(RenderError::Corrupt(format!(
            "webp: decoded {}x{}, expected {out}",
            config.output.width, config.output.height
        )));
    }
    Ok(Some(Pixels {
        width: out.width,
        height: out.height,
        layout,
        data,
    }))
}

/// libwebp's status as the render layer's error.
fn check(status: sys::VP8StatusCode) -> Result<(), RenderError> {
    use sys::VP8StatusCode as S;
    match status {
        S::VP8_STATUS_OK => Ok(()),
        S::VP8_STATUS_NOT_ENOUGH_DATA => Err(RenderError::Truncated),
        S::VP8_STATUS_UNSUPPORTED_FEATURE => Err(RenderError::Unsupported(
            "webp feature not supported by libwebp".into(),
        )),
        S::VP8_STATUS_BITSTREAM_ERROR => Err(RenderError::Corrupt("webp: bitstream error".into())),
        other => Err(RenderError::Corrupt(format!("webp: libwebp {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_size_leaves_headroom() {
        let s = |w, h| Size::new(w, h);
        // 4096² into 600²: 900² leaves exactly 1.5 to the filter.
        assert_eq!(scaled_size(s(4096, 4096), s(600, 600)), s(900, 900));
        // The tighter axis decides; neither axis goes below 1.5× the target.
        assert_eq!(scaled_size(s(4000, 2000), s(800, 300)), s(1200, 600));
        assert_eq!(scaled_size(s(300, 300), s(150, 150)), s(225, 225));
        // Not enough to shrink: decoded at full size.
        assert_eq!(scaled_size(s(300, 300), s(200, 200)), s(300, 300));
        assert_eq!(scaled_size(s(300, 300), s(250, 250)), s(300, 300));
        assert_eq!(scaled_size(s(100, 100), s(200, 200)), s(100, 100));
        // A side that would not shrink (a strip) keeps the full size.
        assert_eq!(scaled_size(s(4000, 2), s(100, 1)), s(4000, 2));
    }

    use crate::io::render::fixture;

    #[test]
    fn decodes_scaled_full_and_with_alpha() {
        let hopper = fixture("webp-lossy-hopper-128x128.webp");
        let stored = Size::new(128, 128);
        let p = decode(&hopper, stored, Size::new(32, 32)).unwrap().unwrap();
        assert_eq!((p.size(), p.layout), (Size::new(48, 48), Layout::Rgb8));
        assert_eq!(p.data.len(), 48 * 48 * 3);
        let p = decode(&hopper, stored, stored).unwrap().unwrap();
        assert_eq!((p.size(), p.layout), (stored, Layout::Rgb8));

        // Lossy with alpha: RGBA, at full size whatever the target.
        let alpha = fixture("webp-lossy-alpha-100x100.webp");
        let p = decode(&alpha, Size::new(100, 100), Size::new(10, 10))
            .unwrap()
            .unwrap();
        assert_eq!((p.size(), p.layout), (Size::new(100, 100), Layout::Rgba8));
        // Lossless (alpha-aware rescaler): scaled.
        let lossless = fixture("webp-lossless-simple-300x300.webp");
        let p = decode(&lossless, Size::new(300, 300), Size::new(100, 100))
            .unwrap()
            .unwrap();
        assert_eq!(p.size(), Size::new(150, 150));
    }

    #[test]
    fn animations_are_left_to_the_caller() {
        let anim = fixture("webp-animated-200x200.webp");
        assert!(
            decode(&anim, Size::new(200, 200), Size::new(50, 50))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn damaged_files_are_refused() {
        let hopper = fixture("webp-lossy-hopper-128x128.webp");
        let stored = Size::new(128, 128);
        let target = Size::new(64, 64);
        // Cut in the middle of the bitstream.
        let cut = &hopper[..hopper.len() / 2];
        assert!(matches!(
            decode(cut, stored, target),
            Err(RenderError::Truncated)
        ));
        // Only the RIFF header.
        assert!(decode(&hopper[..12], stored, target).is_err());
        // The VP8 frame's start code damaged.
        let mut bad = hopper.clone();
        let at = bad
            .windows(3)
            .position(|w| w == [0x9d, 0x01, 0x2a])
            .expect("VP8 start code");
        bad[at] = 0;
        assert!(matches!(
            decode(&bad, stored, target),
            Err(RenderError::Corrupt(_))
        ));
        // A header that does not match the probed size.
        assert!(matches!(
            decode(&hopper, Size::new(64, 64), target),
            Err(RenderError::Corrupt(_))
        ));
    }
}
