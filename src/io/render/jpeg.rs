//! JPEG through libjpeg-turbo's code (the `mozjpeg` crate, SIMD): header parsing of our own
//! (size, EXIF orientation, Adobe transform, and the check that the data is complete), decoding
//! at a reduced DCT scale (a progressive file then without its final AC refinement scans), a
//! baseline file's entropy decoding done by our own `jpeg_entropy` (through `jpeg_rows`), on
//! two threads for a large baseline file in the long-lived servers (`jpeg_rows`), and encoding
//! with libjpeg-turbo's defaults.
//!
//! libjpeg reports errors by unwinding (the crate's error manager); every call into it is
//! wrapped in `catch_unwind`, here and in `jpeg_rows`. libjpeg only *warns* about a file that ends
//! mid-scan and fills the rest with grey, so completeness is checked before decoding.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use super::helpers;
use super::jpeg_rows::{self, Params};
use super::pixels::band_source_rows;
use super::{Filter, Layout, Pixels, RenderError};
use crate::domain::geometry::Size;

/// What the JPEG header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub size: Size,
    pub orientation: u8,
    /// The Adobe APP14 marker's presence (its CMYK data is stored inverted).
    pub adobe: bool,
    /// A progressive frame (SOF2, SOF6, SOF10, SOF14): all scans are entropy-decoded before
    /// the first row comes out.
    pub progressive: bool,
}

/// Walks the marker segments up to the first scan, then checks that an end-of-image marker
/// follows somewhere after it.
pub fn parse_header(bytes: &[u8]) -> Result<Header, RenderError> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err(RenderError::NotAnImage);
    }
    let mut pos = 2;
    let mut size = None;
    let mut orientation = 1;
    let mut adobe = false;
    let mut progressive = false;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while bytes.get(pos) == Some(&0xFF) && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (bytes.get(pos), bytes.get(pos + 1)) else {
            return Err(if pos >= bytes.len() {
                RenderError::Truncated
            } else {
                RenderError::Corrupt(format!("expected a marker at byte {pos}"))
            });
        };
        pos += 2;
        match marker {
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 => return Err(RenderError::Corrupt("second start-of-image marker".into())),
            0xD9 => {
                return Err(RenderError::Corrupt(
                    "no image data before end of image".into(),
                ));
            }
            _ => {}
        }
        let len = match bytes.get(pos..pos + 2) {
            Some(l) => usize::from(u16::from_be_bytes([l[0], l[1]])),
            None => return Err(RenderError::Truncated),
        };
        if len < 2 {
            return Err(RenderError::Corrupt(format!(
                "segment length {len} at byte {pos}"
            )));
        }
        let Some(segment) = bytes.get(pos + 2..pos + len) else {
            return Err(RenderError::Truncated);
        };
        match marker {
            // APP1 "Exif\0\0" followed by a TIFF structure.
            0xE1 if segment.starts_with(b"Exif\0\0") => {
                orientation = image::metadata::Orientation::from_exif_chunk(&segment[6..])
                    .map_or(1, |o| o.to_exif());
            }
            0xEE if segment.starts_with(b"Adobe") => adobe = true,
            // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if segment.len() < 6 {
                    return Err(RenderError::Corrupt("short frame header".into()));
                }
                let h = u32::from(u16::from_be_bytes([segment[1], segment[2]]));
                let w = u32::from(u16::from_be_bytes([segment[3], segment[4]]));
                if w == 0 || h == 0 {
                    return Err(RenderError::Corrupt(format!(
                        "frame header declares {w}x{h}"
                    )));
                }
                size = Some(Size::new(w, h));
                progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
            }
            0xDA => {
                let size =
                    size.ok_or_else(|| RenderError::Corrupt("scan before frame header".into()))?;
                if !has_end_of_image(&bytes[pos + len..]) {
                    return Err(RenderError::Truncated);
                }
                return Ok(Header {
                    size,
                    orientation,
                    adobe,
                    progressive,
                });
            }
            _ => {}
        }
        pos += len;
    }
}

/// Whether an EOI marker (`FF D9`) occurs in the entropy-coded data and the segments after it.
/// Inside scan data a 0xFF is always followed by 0x00 (stuffing) or a restart marker, so an
/// `FF D9` there is the real end. Searched from the end, where a complete file has it: scanning
/// a 3 MB photo from the front took 2.3 ms, twice a render (probe and decode).
fn has_end_of_image(data: &[u8]) -> bool {
    data.windows(2).rev().any(|w| w == [0xFF, 0xD9])
}

/// How much shrinking the DCT-domain decode leaves to the resampling filter, at least.
/// libvips' thumbnail leaves a factor of two; 1.5 decodes photos fitted by a factor of 3 to 4
/// (6 MP into 800×600) at half scale too, 1.6–1.9× faster for them, within the PSNR guard of
/// tests/it/quality.rs (the scaled IDCT is a low-pass filter, not a block average).
pub const LANCZOS_HEADROOM: f64 = 1.5;

/// The factor by which `stored` must shrink to `target` (the smaller of the two axes' ratios).
fn shrink_factor(stored: Size, target: Size) -> f64 {
    f64::min(
        f64::from(stored.width) / f64::from(target.width.max(1)),
        f64::from(stored.height) / f64::from(target.height.max(1)),
    )
}

/// The DCT shrink (1, 2, 4 or 8) for decoding `stored` when `target` is wanted: the largest
/// that leaves at least [`LANCZOS_HEADROOM`] to the resampling filter, which keeps the result
/// as sharp as a full decode.
pub fn dct_shrink(stored: Size, target: Size) -> u32 {
    let factor = shrink_factor(stored, target);
    [8, 4, 2]
        .into_iter()
        .find(|&s| factor >= f64::from(s) * LANCZOS_HEADROOM)
        .unwrap_or(1)
}

/// The decoding parameters for `stored` fitted into `target`: the DCT scale of [`dct_shrink`],
/// and whether chroma is interpolated.
fn params(stored: Size, target: Size) -> Params {
    let shrink = dct_shrink(stored, target);
    // Chroma replicated (libjpeg's merged upsampler, which also converts the colours in the
    // same pass) instead of interpolated, when the resampling filter that follows shrinks
    // by 1.5 or more and so averages the difference away; faster (BENCHMARKS.md).
    Params {
        scale_num: (8 / shrink) as u8,
        fancy: shrink_factor(stored, target) / f64::from(shrink) < 1.5,
    }
}

/// Decoded (DCT-scaled) pictures from this many pixels are decoded and resized on two threads
/// by [`decode_resized_split`]; below, the second thread's start and the second header parse
/// are not worth it.
pub const SPLIT_MIN_PIXELS: u64 = 1_000_000;

/// The share of the output rows decoded by the instance that starts at the top, for a baseline
/// file: the other instance entropy-decodes the rows it skips, so it gets fewer. 0.6 and 0.7
/// measured alike in the server (nexus6p 47.8 and 50.0 ms, noise ±3); in one process 0.7–0.8
/// looked better (36 against 44 ms single-threaded; the lower instance's skip of half the rows
/// alone takes ~13 ms of entropy decoding).
const BASELINE_TOP_SHARE: f64 = 0.6;

/// Decodes and resizes a colour JPEG to `target` on two threads: two libjpeg instances on the
/// same bytes, one producing the upper output rows and stopping, the other skipping to the
/// lower ones (`jpeg_rows`), each resizing its own band of source rows (with the filter's
/// support either side) into its rows of the result. The same pixels as [`decode`] and
/// [`Pixels::resize`], to rounding (tests below), except for a progressive file at half scale
/// or smaller, from which `decode` leaves out the final AC refinement (`render` splits only
/// baseline files; the upper band gets [`BASELINE_TOP_SHARE`] of the rows). Wall time is the
/// entropy decoding, which is serial, plus half of the rest (IDCT, colour conversion, resize). `Ok(None)` for what stays on the single-thread path:
/// gray and CMYK files, small pictures, and no idle helper thread (`helpers`).
pub fn decode_resized_split(
    bytes: &[u8],
    stored: Size,
    target: Size,
    filter: Filter,
) -> Result<Option<Pixels>, RenderError> {
    let params = params(stored, target);
    let Some(geometry) = jpeg_rows::open(bytes, params).map_err(RenderError::Corrupt)? else {
        return Ok(None);
    };
    let full = Size::new(geometry.width, geometry.height);
    if full.pixels() < SPLIT_MIN_PIXELS || target.height < 2 || full.height < target.height {
        return Ok(None);
    }
    let split = ((f64::from(target.height) * BASELINE_TOP_SHARE).round() as u32)
        .clamp(1, target.height - 1);
    let upper_out = 0..split;
    let lower_out = split..target.height;
    let upper_src = 0..band_source_rows(full.height, target.height, upper_out.clone()).end;
    // The lower instance starts on an iMCU row boundary, one iMCU row early: the rows right
    // after a skip may lack the context rows of interpolated (fancy) upsampling.
    let lower_first = band_source_rows(full.height, target.height, lower_out.clone()).start;
    let imcu = geometry.imcu_rows.max(1);
    let lower_first = (lower_first / imcu * imcu).saturating_sub(imcu);
    let lower_src = lower_first..full.height;

    let line = target.width as usize * 3;
    // The lower band goes to a long-lived helper thread (`helpers`), which needs what it reads
    // to be its own: a copy of the file (a memcpy, ~0.3 ms for 4 MB) and a buffer of its rows,
    // copied into place after.
    let lower = {
        let bytes: Arc<[u8]> = Arc::from(bytes);
        let rows = (lower_out.end - lower_out.start) as usize;
        helpers::try_run(move || {
            let mut dst = vec![0u8; line * rows];
            band(
                &bytes, params, full, target, filter, lower_src, lower_out, &mut dst,
            )?;
            Ok::<_, RenderError>(dst)
        })
    };
    let Some(lower) = lower else {
        return Ok(None);
    };
    let mut data = vec![0u8; line * target.height as usize];
    let (upper_dst, lower_dst) = data.split_at_mut(line * split as usize);
    band(
        bytes, params, full, target, filter, upper_src, upper_out, upper_dst,
    )?;
    let lower = match lower.recv() {
        Ok(Ok(lower)) => lower?,
        Ok(Err(_)) => {
            return Err(RenderError::Corrupt(
                "jpeg: decoding thread panicked".into(),
            ));
        }
        Err(_) => return Err(RenderError::Corrupt("jpeg: decoding thread gone".into())),
    };
    lower_dst.copy_from_slice(&lower);
    Ok(Some(Pixels {
        width: target.width,
        height: target.height,
        layout: Layout::Rgb8,
        data,
    }))
}

/// Decodes source rows `src` of `bytes` and resizes them into output rows `out` of `target`,
/// written to `dst`: one band of [`decode_resized_split`].
#[allow(clippy::too_many_arguments)]
fn band(
    bytes: &[u8],
    params: Params,
    full: Size,
    target: Size,
    filter: Filter,
    src: std::ops::Range<u32>,
    out: std::ops::Range<u32>,
    dst: &mut [u8],
) -> Result<(), RenderError> {
    let band = jpeg_rows::decode_rows(bytes, params, src)
        .map_err(RenderError::Corrupt)?
        .ok_or(RenderError::Truncated)?;
    let pixels = Pixels {
        width: full.width,
        height: (band.data.len() / (full.width as usize * 3)) as u32,
        layout: Layout::Rgb8,
        data: band.data,
    };
    pixels.resize_band_into(band.first, full, target, out, filter, dst)
}

/// A progressive file without its final AC refinement scans (`Ah=1, Al=0`, `Ss>0`: the lowest
/// bit of the AC coefficients), for a decode at half scale or smaller; `None` when there are
/// none, or when the structure is not as [`parse_header`] left it (then the file is decoded as
/// it is). Those scans are a third to a half of a progressive photo's bytes and about half of
/// its entropy decoding (bridge 81 → 43 ms decode and resize, aitzgorri 75 → 40, friends
/// 41 → 24); the picture fitted into 800×600 differs from the exact one by 45–52 dB PSNR
/// (aitzgorri 44.8, friends 47.2, bridge 51.7), within the quality guard against
/// vipsthumbnail (tests/it/quality.rs). Scans are found by their markers: inside entropy-coded
/// data a 0xFF is followed by 0x00 (stuffing) or a restart marker.
fn without_final_ac_refinement(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut dropped = false;
    let mut start = 0; // start of the run of bytes kept since the last dropped scan
    let mut pos = 2;
    loop {
        if *bytes.get(pos)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(pos + 1)?;
        match marker {
            0xFF => {
                pos += 1;
                continue;
            }
            0xD9 => break,
            0x01 | 0xD0..=0xD8 => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([
            *bytes.get(pos + 2)?,
            *bytes.get(pos + 3)?,
        ]));
        let segment = bytes.get(pos + 4..pos + 2 + len)?;
        let mut end = pos + 2 + len;
        // A sequential frame has no refinement scans: stop before walking its data.
        if matches!(
            marker,
            0xC0 | 0xC1 | 0xC3 | 0xC5 | 0xC7 | 0xC9 | 0xCB | 0xCD | 0xCF
        ) {
            return None;
        }
        if marker == 0xDA {
            let n = usize::from(*segment.first()?);
            let ss = *segment.get(1 + 2 * n)?;
            let ah_al = *segment.get(3 + 2 * n)?;
            // The entropy-coded data runs to the next marker.
            loop {
                let ff = end + bytes.get(end..)?.iter().position(|&b| b == 0xFF)?;
                match *bytes.get(ff + 1)? {
                    0x00 | 0xD0..=0xD7 => end = ff + 2,
                    _ => {
                        end = ff;
                        break;
                    }
                }
            }
            if ss > 0 && ah_al == 0x10 {
                kept.push(&bytes[start..pos]);
                start = end;
                dropped = true;
            }
        }
        pos = end;
    }
    if !dropped {
        return None;
    }
    kept.push(&bytes[start..]);
    Some(kept.concat())
}

/// Decodes bytes that [`parse_header`] accepted (through `render::probe`, which found `stored`),
/// shrunk in the DCT domain as far as [`dct_shrink`] allows for `target`. The header is read
/// again only for a CMYK file, whose Adobe marker says how its inks are stored.
pub fn decode(bytes: &[u8], stored: Size, target: Size) -> Result<Pixels, RenderError> {
    let params = params(stored, target);
    let stripped = if params.scale_num <= 4 {
        without_final_ac_refinement(bytes)
    } else {
        None
    };
    if stripped.is_none() {
        // A colour file, through `jpeg_rows`, whose libjpeg takes our entropy decoder for a
        // baseline scan (`jpeg_entropy`); gray and CMYK go on below.
        if let Some((geometry, data)) =
            jpeg_rows::decode_all(bytes, params).map_err(RenderError::Corrupt)?
        {
            return checked(Pixels {
                width: geometry.width,
                height: geometry.height,
                layout: Layout::Rgb8,
                data,
            });
        }
    }
    let result = panic::catch_unwind(AssertUnwindSafe(|| -> std::io::Result<Pixels> {
        let mut d = mozjpeg::Decompress::new_mem(stripped.as_deref().unwrap_or(bytes))?;
        // `scale` takes a numerator over 8.
        d.scale(params.scale_num);
        if !params.fancy {
            d.do_fancy_upsampling(false);
        }
        if stripped.is_some() {
            // Block smoothing would take the missing bit for an unfinished picture and blur it.
            d.do_block_smoothing(false);
        }
        let (layout, width, height, data) = match d.image()? {
            mozjpeg::decompress::Format::RGB(mut s) => {
                let data: Vec<u8> = s.read_scanlines()?;
                let (w, h) = (s.width(), s.height());
                s.finish()?;
                (Layout::Rgb8, w, h, data)
            }
            mozjpeg::decompress::Format::Gray(mut s) => {
                let data: Vec<u8> = s.read_scanlines()?;
                let (w, h) = (s.width(), s.height());
                s.finish()?;
                (Layout::L8, w, h, data)
            }
            mozjpeg::decompress::Format::CMYK(mut s) => {
                let cmyk: Vec<u8> = s.read_scanlines()?;
                let (w, h) = (s.width(), s.height());
                s.finish()?;
                let header = parse_header(bytes).map_err(std::io::Error::other)?;
                (Layout::Rgb8, w, h, cmyk_to_rgb(&cmyk, header.adobe))
            }
        };
        Ok(Pixels {
            width: u32::try_from(width).unwrap_or(0),
            height: u32::try_from(height).unwrap_or(0),
            layout,
            data,
        })
    }));
    match result {
        Ok(Ok(pixels)) => checked(pixels),
        Ok(Err(e)) => Err(RenderError::Corrupt(format!("jpeg: {e}"))),
        Err(payload) => Err(RenderError::Corrupt(panic_message(payload))),
    }
}

/// `pixels`, if libjpeg delivered every row it announced.
fn checked(pixels: Pixels) -> Result<Pixels, RenderError> {
    let expected = pixels.width as usize * pixels.height as usize * pixels.layout.channels();
    if pixels.width == 0 || pixels.data.len() != expected {
        return Err(RenderError::Truncated);
    }
    Ok(pixels)
}

/// CMYK (as libjpeg outputs it) to RGB. Adobe files store the inks inverted (0 = full ink),
/// which is what Photoshop writes and nearly every CMYK JPEG is.
fn cmyk_to_rgb(cmyk: &[u8], adobe_inverted: bool) -> Vec<u8> {
    cmyk.chunks_exact(4)
        .flat_map(|p| {
            let [c, m, y, k] = if adobe_inverted {
                [p[0], p[1], p[2], p[3]]
            } else {
                [255 - p[0], 255 - p[1], 255 - p[2], 255 - p[3]]
            };
            let mix = |v: u8| ((u16::from(v) * u16::from(k) + 127) / 255) as u8;
            [mix(c), mix(m), mix(y)]
        })
        .collect()
}

/// Encodes gray or RGB pixels (alpha is dropped: JPEG has none) with libjpeg-turbo's defaults:
/// baseline, 4:2:0, standard tables, no metadata.
pub fn encode(pixels: &Pixels, quality: u8) -> Result<Vec<u8>, RenderError> {
    let converted;
    let (data, color_space) = match pixels.layout {
        Layout::L8 => (&pixels.data, mozjpeg::ColorSpace::JCS_GRAYSCALE),
        Layout::Rgb8 => (&pixels.data, mozjpeg::ColorSpace::JCS_RGB),
        Layout::La8 => {
            converted = pixels
                .data
                .chunks_exact(2)
                .map(|p| p[0])
                .collect::<Vec<u8>>();
            (&converted, mozjpeg::ColorSpace::JCS_GRAYSCALE)
        }
        Layout::Rgba8 => {
            converted = pixels
                .data
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect::<Vec<u8>>();
            (&converted, mozjpeg::ColorSpace::JCS_RGB)
        }
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| -> std::io::Result<Vec<u8>> {
        let mut c = mozjpeg::Compress::new(color_space);
        // Resets to libjpeg-turbo's behaviour (no trellis, no progressive): files like
        // libvips' and ImageMagick's at the same quality, at a fraction of mozjpeg's CPU.
        c.set_fastest_defaults();
        c.set_size(pixels.width as usize, pixels.height as usize);
        c.set_quality(f32::from(quality));
        let mut started = c.start_compress(Vec::with_capacity(data.len() / 8))?;
        started.write_scanlines(data)?;
        started.finish()
    }));
    match result {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(RenderError::Encode(format!("jpeg: {e}"))),
        Err(payload) => Err(RenderError::Encode(panic_message(payload))),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "libjpeg error".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_leaves_headroom_to_the_filter() {
        let s = |w, h, tw, th| dct_shrink(Size::new(w, h), Size::new(tw, th));
        assert_eq!(s(4032, 3024, 800, 600), 2);
        assert_eq!(s(4032, 3024, 200, 150), 8);
        assert_eq!(s(4032, 3024, 400, 300), 4);
        assert_eq!(s(640, 427, 300, 200), 1);
        assert_eq!(s(3088, 2056, 800, 533), 2);
        assert_eq!(s(2880, 2160, 800, 600), 2);
        assert_eq!(s(1000, 1000, 400, 400), 1);
        assert_eq!(s(4000, 50, 800, 10), 2);
        assert_eq!(s(100, 100, 100, 100), 1);
    }

    #[test]
    fn header_errors_do_not_panic() {
        for bad in [
            &b"\xFF\xD8"[..],
            b"\xFF\xD8\xFF",
            b"\xFF\xD8\xFF\xE0\x00",
            b"\xFF\xD8\xFF\xE0\x00\x01",
            b"\xFF\xD8\xFF\xE0\x00\x10abc",
            b"\xFF\xD8\xFF\xDA\x00\x02",
            b"\xFF\xD8\xFF\xC0\x00\x0B\x08\x00\x00\x00\x10\x01\x01\x11\x00",
            b"\xFF\xD8\x00\x00",
            b"\xFF\xD8\xFF\xD9",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    use crate::io::render::fixture;

    /// The split decode and resize against the single-thread path: same size, every channel
    /// within ±1 (the bands' filter positions are computed from a different origin, which can
    /// round a fixed-point weight the other way).
    fn assert_split_matches(name: &str, target: Size) {
        let bytes = fixture(name);
        let header = parse_header(&bytes).unwrap();
        let stored = header.size;
        let single = decode(&bytes, stored, target)
            .unwrap()
            .resize(target, Filter::Lanczos3)
            .unwrap();
        let split = decode_resized_split(&bytes, stored, target, Filter::Lanczos3)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} at {target} was not split"));
        assert_eq!(split.size(), single.size(), "{name} at {target}");
        assert_eq!(split.layout, single.layout);
        let off = split
            .data
            .iter()
            .zip(&single.data)
            .filter(|(a, b)| a.abs_diff(**b) > 1)
            .count();
        let max = split
            .data
            .iter()
            .zip(&single.data)
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert_eq!(off, 0, "{name} at {target}: largest difference {max:?}");
    }

    #[test]
    fn split_decode_matches_single_thread_baseline() {
        // Half-scale decode, merged upsampling.
        assert_split_matches("photo-nexus6p-exif-4032x3024.jpg", Size::new(800, 600));
        assert_split_matches("photo-analogpattern-2880x2160.jpg", Size::new(800, 600));
        // Full-scale decode with interpolated (fancy) upsampling: the rows after the skip.
        assert_split_matches("photo-nexus6p-exif-4032x3024.jpg", Size::new(3000, 2250));
    }

    #[test]
    fn split_decode_matches_single_thread_progressive() {
        // Full-scale decodes: at half scale and below `decode` leaves out the final AC
        // refinement, which the split does not.
        assert_split_matches(
            "photo-bridge-4352x2448-progressive.jpg",
            Size::new(3000, 1688),
        );
        assert_split_matches(
            "photo-friends-portrait-2056x3088-progressive.jpg",
            Size::new(1500, 2253),
        );
        assert_split_matches(
            "photo-aitzgorri-3088x2056-progressive.jpg",
            Size::new(2500, 1665),
        );
    }

    #[test]
    fn split_decode_rejects_damage_without_crashing() {
        let params = Params {
            scale_num: 4,
            fancy: false,
        };
        for name in [
            "bad-jpeg-corrupt-huffman-table.jpg",
            "bad-jpeg-fuzz-bad-sof.jpg",
            "bad-truncated-before-scan.jpg",
            "bad-zero-bytes.jpg",
        ] {
            let bytes = fixture(name);
            let decoded = jpeg_rows::open(&bytes, params)
                .and_then(|_| jpeg_rows::decode_rows(&bytes, params, 0..10));
            assert!(!matches!(decoded, Ok(Some(_))), "{name}");
        }
        // Truncated mid-scan: libjpeg only warns (grey rows), parse_header is what rejects it.
        let half = fixture("bad-truncated-half-640x427.jpg");
        assert!(matches!(parse_header(&half), Err(RenderError::Truncated)));
        // A large photo with its frame header damaged after the probe: an error, not a crash.
        let mut bytes = fixture("photo-nexus6p-exif-4032x3024.jpg");
        let stored = parse_header(&bytes).unwrap().size;
        // The frame's SOF0 (4032×3024), not the EXIF thumbnail's.
        let sof = bytes
            .windows(9)
            .position(|w| w == [0xFF, 0xC0, 0x00, 0x11, 0x08, 0x0B, 0xD0, 0x0F, 0xC0])
            .unwrap();
        bytes[sof + 4] = 0; // sample precision 0
        assert!(
            decode_resized_split(&bytes, stored, Size::new(800, 600), Filter::Lanczos3).is_err()
        );
        // Entropy data overwritten with garbage: libjpeg warns and decodes on, like `decode`.
        let mut bytes = fixture("photo-nexus6p-exif-4032x3024.jpg");
        let mid = bytes.len() / 2;
        bytes[mid..mid + 4096].fill(0xA5);
        let split = decode_resized_split(&bytes, stored, Size::new(800, 600), Filter::Lanczos3);
        assert!(matches!(split, Ok(Some(_))), "{split:?}");
    }

    #[test]
    fn final_ac_refinement_is_left_out_of_progressive_files_only() {
        let bridge = fixture("photo-bridge-4352x2448-progressive.jpg");
        let stripped = without_final_ac_refinement(&bridge).unwrap();
        // The Y and chroma final refinements: 450,714 + 31,552 + 28,569 bytes of data.
        assert!(
            stripped.len() < bridge.len() - 500_000,
            "{}",
            stripped.len()
        );
        assert!(parse_header(&stripped).unwrap().progressive);
        assert!(without_final_ac_refinement(&stripped).is_none());
        assert!(
            without_final_ac_refinement(&fixture("photo-nexus6p-exif-4032x3024.jpg")).is_none()
        );
        // Cut anywhere: no panic, and never a stream that lost its end.
        for cut in (0..bridge.len()).step_by(9973) {
            assert!(without_final_ac_refinement(&bridge[..cut]).is_none());
        }
        // Damaged files: no panic; a truncated one is never rewritten.
        for name in [
            "bad-jpeg-corrupt-huffman-table.jpg",
            "bad-jpeg-fuzz-bad-sof.jpg",
        ] {
            let _ = without_final_ac_refinement(&fixture(name));
        }
        for name in [
            "bad-truncated-before-scan.jpg",
            "bad-truncated-half-640x427.jpg",
        ] {
            assert!(
                without_final_ac_refinement(&fixture(name)).is_none(),
                "{name}"
            );
        }
        // A small progressive file has them too, and stays a valid file without them.
        let cat = fixture("jpeg-progressive-cat-320x240.jpg");
        let stripped = without_final_ac_refinement(&cat).unwrap();
        assert_eq!(parse_header(&stripped).unwrap().size, Size::new(320, 240));
    }

    #[test]
    fn cmyk_conversion() {
        // Adobe-inverted: 255 means no ink.
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 255], true), [255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 0], true), [0, 0, 0]);
        assert_eq!(cmyk_to_rgb(&[0, 255, 255, 255], true), [0, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 0], false), [255, 255, 255]);
    }

    /// What leaving out the final AC refinement costs: the picture fitted into 800×600 from the
    /// stripped file against the one from the whole file (each decoded at its half scale and
    /// resized with Lanczos3): 44.8–51.7 dB when measured; the bar leaves room for rounding.
    #[test]
    fn leaving_out_the_final_refinement_changes_little() {
        for name in [
            "photo-bridge-4352x2448-progressive.jpg",
            "photo-friends-portrait-2056x3088-progressive.jpg",
            "photo-aitzgorri-3088x2056-progressive.jpg",
        ] {
            let bytes = fixture(name);
            let stored = parse_header(&bytes).unwrap().size;
            let raster = crate::domain::geometry::Raster::new(1).unwrap();
            let target = crate::domain::geometry::fit(stored, Size::new(800, 600), raster);
            let params = params(stored, target);
            assert!(
                params.scale_num <= 4,
                "{name}: decoded at half scale or smaller"
            );
            let fitted = |bytes: &[u8]| {
                let mut d = mozjpeg::Decompress::new_mem(bytes).unwrap();
                d.scale(params.scale_num);
                d.do_fancy_upsampling(params.fancy);
                // The whole file needs no smoothing; the stripped one must not get it.
                d.do_block_smoothing(false);
                let mut s = d.rgb().unwrap();
                let data: Vec<u8> = s.read_scanlines().unwrap();
                let (width, height) = (s.width() as u32, s.height() as u32);
                let pixels = Pixels {
                    width,
                    height,
                    layout: Layout::Rgb8,
                    data,
                };
                pixels.resize(target, Filter::Lanczos3).unwrap()
            };
            let whole = fitted(&bytes);
            let stripped = fitted(&without_final_ac_refinement(&bytes).unwrap());
            let mse = whole
                .data
                .iter()
                .zip(&stripped.data)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                .sum::<f64>()
                / whole.data.len() as f64;
            let psnr = 10.0 * (255.0 * 255.0 / mse).log10();
            assert!(psnr >= 42.0, "{name}: {psnr:.2} dB");
        }
    }
}
