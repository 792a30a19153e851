//! Colour management: the ICC profile an original embeds (JPEG APP2 `ICC_PROFILE` segments,
//! PNG `iCCP`, WebP `ICCP`), and what a variant does with it ([`ColorManagement`]): its
//! pixels converted to sRGB (the default; a variant carries no profile, and browsers take
//! untagged images as sRGB), or left as they are with the original's profile embedded.
//! Without either, a Display P3 or Adobe RGB photo (every recent phone, many cameras) is shown
//! as if its numbers were sRGB: dull.
//!
//! The conversion is `moxcms`'s (pure Rust, already in the tree through `image`; chosen over
//! `lcms2` and `qcms`: BENCHMARKS.md, "Colour management"), on the resized pixels, so it costs a few
//! milliseconds a variant whatever the original's size. A profile whose primaries, white and
//! tone curves are sRGB's (the profile most photos carry, under many names) is recognised by
//! those values and costs no transform.
//!
//! Not converted: gray and CMYK profiles (the pixels are left as decoded), and profiles that
//! do not parse (ignored, as browsers ignore them).

use moxcms::{ColorProfile, DataColorSpace, TransformOptions};

use super::{Format, Layout, Pixels};

/// What a variant does with its original's ICC profile (`[render] color_management`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorManagement {
    /// Pixels in another RGB colour space are converted to sRGB; the variant has no profile.
    #[default]
    Convert,
    /// Pixels as decoded, with the original's profile embedded in the variant.
    Keep,
    /// Profiles ignored: pixels as decoded and no profile (wide-gamut photos look dull).
    Off,
}

impl ColorManagement {
    pub const NAMES: [&'static str; 3] = ["convert", "keep", "off"];

    pub fn from_name(name: &str) -> Option<ColorManagement> {
        Some(match name {
            "convert" => ColorManagement::Convert,
            "keep" => ColorManagement::Keep,
            "off" => ColorManagement::Off,
            _ => return None,
        })
    }
}

/// The ICC profile embedded in `bytes`, if any (and whole: a JPEG's profile split over
/// several APP2 segments is reassembled, and dropped when a piece is missing).
pub fn icc_profile(bytes: &[u8], format: Format) -> Option<Vec<u8>> {
    match format {
        Format::Jpeg => jpeg_icc(bytes),
        Format::Png => png_icc(bytes),
        Format::Webp => webp_icc(bytes),
        Format::Gif => None,
    }
}

/// The `ICC_PROFILE` APP2 segments before the first scan, in their sequence numbers' order
/// (ICC.1 annex B.4: "ICC_PROFILE\0", the 1-based number of this piece, the number of pieces).
fn jpeg_icc(bytes: &[u8]) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let mut pieces: Vec<(u8, u8, &[u8])> = Vec::new();
    let mut pos = 2;
    loop {
        while bytes.get(pos..pos + 2) == Some(&[0xFF, 0xFF]) {
            pos += 1;
        }
        if *bytes.get(pos)? != 0xFF {
            break;
        }
        let marker = *bytes.get(pos + 1)?;
        pos += 2;
        match marker {
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 | 0xDA => break,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]));
        let segment = bytes.get(pos + 2..pos + len.max(2))?;
        if marker == 0xE2 && segment.len() > TAG.len() + 2 && segment.starts_with(TAG) {
            let rest = &segment[TAG.len()..];
            pieces.push((rest[0], rest[1], &rest[2..]));
        }
        pos += len.max(2);
    }
    let count = pieces.first()?.1;
    pieces.sort_by_key(|p| p.0);
    let complete = usize::from(count) == pieces.len()
        && pieces
            .iter()
            .enumerate()
            .all(|(i, p)| p.1 == count && usize::from(p.0) == i + 1);
    complete.then(|| pieces.iter().flat_map(|p| p.2).copied().collect())
}

/// The `iCCP` chunk's profile, as the `png` crate inflates it (it reads up to the first
/// `IDAT`, no pixels).
fn png_icc(bytes: &[u8]) -> Option<Vec<u8>> {
    use image::ImageDecoder;
    let mut decoder = image::codecs::png::PngDecoder::new(std::io::Cursor::new(bytes)).ok()?;
    decoder.icc_profile().ok().flatten()
}

/// The `ICCP` chunk of an extended (`VP8X`) WebP file.
fn webp_icc(bytes: &[u8]) -> Option<Vec<u8>> {
    webp_chunks(bytes)
        .find(|(fourcc, _)| fourcc == b"ICCP")
        .map(|(_, data)| data.to_vec())
}

/// A RIFF WebP file's chunks after the 12-byte header: FourCC and payload.
fn webp_chunks(bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 12;
    std::iter::from_fn(move || {
        let header = bytes.get(pos..pos + 8)?;
        let fourcc: [u8; 4] = header[..4].try_into().ok()?;
        let size = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
        let data = bytes.get(pos + 8..pos.checked_add(8 + size)?)?;
        pos += 8 + size + (size & 1);
        Some((fourcc, data))
    })
}

/// Converts `pixels` (RGB or RGBA) from the colour space `icc` describes to sRGB. `false` when
/// nothing was done: an sRGB profile, a gray or CMYK one, gray pixels, a profile that does not
/// parse or that `moxcms` cannot build a transform for.
pub fn to_srgb(pixels: &mut Pixels, icc: &[u8]) -> bool {
    let layout = match pixels.layout {
        Layout::Rgb8 => moxcms::Layout::Rgb,
        Layout::Rgba8 => moxcms::Layout::Rgba,
        Layout::L8 | Layout::La8 => return false,
    };
    let Ok(profile) = ColorProfile::new_from_slice(icc) else {
        log::debug!("ignoring an ICC profile that does not parse");
        return false;
    };
    if profile.color_space != DataColorSpace::Rgb || is_srgb(&profile) {
        return false;
    }
    let srgb = ColorProfile::new_srgb();
    let transform =
        match profile.create_transform_8bit(layout, &srgb, layout, TransformOptions::default()) {
            Ok(t) => t,
            Err(e) => {
                log::debug!("ignoring an ICC profile without a transform to sRGB: {e}");
                return false;
            }
        };
    let mut out = vec![0u8; pixels.data.len()];
    if transform.transform(&pixels.data, &mut out).is_err() {
        return false;
    }
    pixels.data = out;
    true
}

/// Whether `profile` is sRGB in all but name: its colorants (D50-adapted primaries, as the
/// `rXYZ`/`gXYZ`/`bXYZ` tags hold them) and tone curves are sRGB's, to within what 8-bit
/// pixels can show. Profiles that carry lookup tables instead are not.
fn is_srgb(profile: &ColorProfile) -> bool {
    let srgb = ColorProfile::new_srgb();
    // s15Fixed16 tags, rounded differently by each profile maker: 0.003 is a hundredth of the
    // distance to the nearest other common primaries (Display P3's red is 0.05 away).
    let close = |a: moxcms::Xyzd, b: moxcms::Xyzd| {
        (a.x - b.x).abs() < 0.003 && (a.y - b.y).abs() < 0.003 && (a.z - b.z).abs() < 0.003
    };
    let trcs = [&profile.red_trc, &profile.green_trc, &profile.blue_trc];
    profile.lut_a_to_b_perceptual.is_none()
        && profile.lut_a_to_b_colorimetric.is_none()
        && close(profile.red_colorant, srgb.red_colorant)
        && close(profile.green_colorant, srgb.green_colorant)
        && close(profile.blue_colorant, srgb.blue_colorant)
        && trcs.iter().all(|t| t.as_ref().is_some_and(is_srgb_curve))
}

/// Whether a tone curve is the sRGB curve: within 0.002 (half a step of 8-bit linear light
/// near white; gamma 2.2 is 0.004 away in the mid-tones) at 64 points.
fn is_srgb_curve(curve: &moxcms::ToneReprCurve) -> bool {
    (0..=64).all(|i| {
        let x = f64::from(i) / 64.0;
        eval_curve(curve, x).is_some_and(|y| (y - srgb_eotf(x)).abs() < 0.002)
    })
}

/// The sRGB EOTF (IEC 61966-2-1): encoded value to linear light, both 0–1.
fn srgb_eotf(x: f64) -> f64 {
    if x <= 0.04045 {
        x / 12.92
    } else {
        ((x + 0.055) / 1.055).powf(2.4)
    }
}

/// A `curv` or `para` tag's value at `x` (ICC.1 10.6 and 10.18); `None` for a malformed one.
fn eval_curve(curve: &moxcms::ToneReprCurve, x: f64) -> Option<f64> {
    match curve {
        moxcms::ToneReprCurve::Lut(table) => match table.len() {
            0 => Some(x),
            // One entry: a gamma, u8Fixed8.
            1 => Some(x.powf(f64::from(table[0]) / 256.0)),
            n => {
                let at = x * (n - 1) as f64;
                let i = (at.floor() as usize).min(n - 2);
                let t = at - i as f64;
                let (a, b) = (f64::from(table[i]), f64::from(table[i + 1]));
                Some((a + (b - a) * t) / 65535.0)
            }
        },
        moxcms::ToneReprCurve::Parametric(p) => {
            let p: Vec<f64> = p.iter().map(|&v| f64::from(v)).collect();
            let pow = |base: f64, g: f64| base.max(0.0).powf(g);
            Some(match p.as_slice() {
                [g] => pow(x, *g),
                [g, a, b] => {
                    if x >= -b / a {
                        pow(a * x + b, *g)
                    } else {
                        0.0
                    }
                }
                [g, a, b, c] => {
                    if x >= -b / a {
                        pow(a * x + b, *g) + c
                    } else {
                        *c
                    }
                }
                [g, a, b, c, d] => {
                    if x >= *d {
                        pow(a * x + b, *g)
                    } else {
                        c * x
                    }
                }
                [g, a, b, c, d, e, f] => {
                    if x >= *d {
                        pow(a * x + b, *g) + e
                    } else {
                        c * x + f
                    }
                }
                _ => return None,
            })
        }
    }
}

/// `encoded` (a variant as `format` writes it) with `icc` embedded: APP2 segments after the
/// JPEG's SOI and JFIF segment, an `iCCP` chunk after the PNG's `IHDR`, an `ICCP` chunk after
/// the WebP's `VP8X` (added when the encoder wrote a simple file). Unchanged when the format
/// cannot hold it (a profile over 255 JPEG segments, 16 MB).
pub fn embed(encoded: Vec<u8>, format: Format, icc: &[u8]) -> Vec<u8> {
    let embedded = match format {
        Format::Jpeg => embed_jpeg(&encoded, icc),
        Format::Png => embed_png(&encoded, icc),
        Format::Webp => embed_webp(&encoded, icc),
        Format::Gif => None,
    };
    embedded.unwrap_or(encoded)
}

fn embed_jpeg(encoded: &[u8], icc: &[u8]) -> Option<Vec<u8>> {
    // A segment holds 65,535 bytes less its length field and the 14-byte tag and numbers.
    const PIECE: usize = 65_535 - 2 - 14;
    let pieces: Vec<&[u8]> = icc.chunks(PIECE).collect();
    let count = u8::try_from(pieces.len()).ok()?;
    // After SOI, and after the JFIF APP0 segment that must come first when there is one.
    let mut at = 2;
    if encoded.get(2..4)? == [0xFF, 0xE0] {
        at += 2 + usize::from(u16::from_be_bytes([*encoded.get(4)?, *encoded.get(5)?]));
    }
    let mut out = Vec::with_capacity(encoded.len() + icc.len() + 18 * pieces.len());
    out.extend_from_slice(encoded.get(..at)?);
    for (i, piece) in pieces.iter().enumerate() {
        out.extend_from_slice(&[0xFF, 0xE2]);
        out.extend_from_slice(&((piece.len() + 16) as u16).to_be_bytes());
        out.extend_from_slice(b"ICC_PROFILE\0");
        out.extend_from_slice(&[i as u8 + 1, count]);
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&encoded[at..]);
    Some(out)
}

fn embed_png(encoded: &[u8], icc: &[u8]) -> Option<Vec<u8>> {
    // Signature (8) and IHDR (4 length, 4 type, 13 data, 4 CRC).
    const AFTER_IHDR: usize = 8 + 25;
    if encoded.get(12..16)? != b"IHDR" || encoded.len() < AFTER_IHDR {
        return None;
    }
    // Name, its NUL, compression method 0 (zlib), then the zlib stream.
    let mut data = b"ICC profile\0\0".to_vec();
    data.extend_from_slice(&zlib_stored(icc));
    let mut out = Vec::with_capacity(encoded.len() + data.len() + 12);
    out.extend_from_slice(&encoded[..AFTER_IHDR]);
    out.extend_from_slice(&u32::try_from(data.len()).ok()?.to_be_bytes());
    let typed_start = out.len();
    out.extend_from_slice(b"iCCP");
    out.extend_from_slice(&data);
    let crc = crc32(&out[typed_start..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&encoded[AFTER_IHDR..]);
    Some(out)
}

/// A zlib stream of `data` in stored (uncompressed) deflate blocks: a profile is a few
/// kilobytes, not worth a compressor here.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
    if blocks.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0xFF, 0xFF]);
    }
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&(b << 16 | a).to_be_bytes());
    out
}

/// CRC-32 (ISO 3309, as PNG uses it), bit by bit: run over a profile once a variant.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                crc >> 1 ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn embed_webp(encoded: &[u8], icc: &[u8]) -> Option<Vec<u8>> {
    let chunks: Vec<([u8; 4], &[u8])> = webp_chunks(encoded).collect();
    let chunk = |out: &mut Vec<u8>, fourcc: &[u8; 4], data: &[u8]| {
        out.extend_from_slice(fourcc);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if data.len() & 1 == 1 {
            out.push(0);
        }
    };
    let mut body = Vec::with_capacity(encoded.len() + icc.len() + 32);
    match chunks.first()? {
        (fourcc, vp8x) if fourcc == b"VP8X" && vp8x.len() == 10 => {
            let mut vp8x = vp8x.to_vec();
            vp8x[0] |= 0x20;
            chunk(&mut body, b"VP8X", &vp8x);
            chunk(&mut body, b"ICCP", icc);
            for (fourcc, data) in chunks.iter().skip(1).filter(|c| &c.0 != b"ICCP") {
                chunk(&mut body, fourcc, data);
            }
        }
        (fourcc, data) if chunks.len() == 1 && (fourcc == b"VP8 " || fourcc == b"VP8L") => {
            let (width, height, alpha) = webp_canvas(fourcc, data)?;
            let mut vp8x = [0u8; 10];
            vp8x[0] = 0x20 | if alpha { 0x10 } else { 0 };
            vp8x[4..7].copy_from_slice(&(width - 1).to_le_bytes()[..3]);
            vp8x[7..10].copy_from_slice(&(height - 1).to_le_bytes()[..3]);
            chunk(&mut body, b"VP8X", &vp8x);
            chunk(&mut body, b"ICCP", icc);
            chunk(&mut body, fourcc, data);
        }
        _ => return None,
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&u32::try_from(body.len() + 4).ok()?.to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&body);
    Some(out)
}

/// Width, height and whether it has alpha, from a simple file's `VP8 ` or `VP8L` bitstream.
fn webp_canvas(fourcc: &[u8; 4], data: &[u8]) -> Option<(u32, u32, bool)> {
    if fourcc == b"VP8L" {
        // Signature 0x2F, then 14 bits width − 1, 14 bits height − 1, 1 bit alpha (LSB first).
        let bits = u32::from_le_bytes(data.get(1..5)?.try_into().ok()?);
        Some((
            (bits & 0x3FFF) + 1,
            (bits >> 14 & 0x3FFF) + 1,
            bits >> 28 & 1 == 1,
        ))
    } else {
        // A key frame: 3-byte tag, start code 9D 01 2A, 14-bit width and height.
        if data.get(3..6)? != [0x9D, 0x01, 0x2A] {
            return None;
        }
        let w = u32::from(u16::from_le_bytes([data[6], *data.get(7)?]) & 0x3FFF);
        let h = u32::from(u16::from_le_bytes([*data.get(8)?, *data.get(9)?]) & 0x3FFF);
        Some((w, h, false))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::domain::geometry::Size;
    use crate::io::render::{self, RenderOptions};

    use crate::io::render::fixture;

    fn description(icc: &[u8]) -> String {
        match ColorProfile::new_from_slice(icc).unwrap().description {
            Some(moxcms::ProfileText::PlainString(s)) => s,
            Some(moxcms::ProfileText::Localizable(l)) => l[0].value.clone(),
            Some(moxcms::ProfileText::Description(d)) => d.ascii_string,
            other => format!("{other:?}"),
        }
    }

    /// Mean CIELAB colour (D65 white) of sRGB pixels, as scripts/mean-lab.py computes it for
    /// the references: each pixel to linear light, XYZ, Lab, then the mean.
    fn mean_lab(pixels: &Pixels) -> [f64; 3] {
        let rgb = pixels.to_rgb_or_rgba();
        let step = if rgb.layout == Layout::Rgba8 { 4 } else { 3 };
        let mut sum = [0.0; 3];
        let mut n = 0.0;
        for p in rgb.data.chunks_exact(step) {
            let lab = lab([p[0], p[1], p[2]]);
            for (s, v) in sum.iter_mut().zip(lab) {
                *s += v;
            }
            n += 1.0;
        }
        sum.map(|s| s / n)
    }

    fn lab([r, g, b]: [u8; 3]) -> [f64; 3] {
        let [r, g, b] = [r, g, b].map(|c| srgb_eotf(f64::from(c) / 255.0));
        let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
        let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
        let f = |t: f64| {
            let d: f64 = 6.0 / 29.0;
            if t > d.powi(3) {
                t.cbrt()
            } else {
                t / (3.0 * d * d) + 4.0 / 29.0
            }
        };
        let (fx, fy, fz) = (f(x), f(y), f(z));
        [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
    }

    /// CIE76 ΔE.
    fn delta_e(a: [f64; 3], b: [f64; 3]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    fn decoded(bytes: &[u8]) -> Pixels {
        let probe = render::probe(bytes, 50_000_000).unwrap();
        render::decode_full(bytes, &probe).unwrap()
    }

    /// `name` rendered at half size with `color`, decoded: the variant's pixels.
    fn variant(name: &str, color: ColorManagement) -> (Vec<u8>, Pixels) {
        let bytes = fixture(name);
        let probe = render::probe(&bytes, 50_000_000).unwrap();
        let size = probe.size();
        let opts = RenderOptions {
            color,
            ..RenderOptions::default()
        };
        let target = Size::new(size.width / 2, size.height / 2);
        let out = render::render(&bytes, &probe, target, &opts).unwrap();
        let pixels = decoded(&out.bytes);
        (out.bytes, pixels)
    }

    /// The mean CIELAB colour of Little CMS's conversion of each fixture to sRGB, printed by
    /// scripts/icc-fixtures.sh (jpgicc -q100 for the JPEGs, tificc for the PNG and WebP,
    /// decoded by ImageMagick 6.9.11, averaged by scripts/mean-lab.py).
    const REFERENCES: [(&str, [f64; 3]); 4] = [
        ("photo-rocket-640x427.jpg", [24.15, 3.10, -15.97]),
        ("icc-displayp3-640x427.jpg", [24.24, 3.11, -15.87]),
        ("icc-adobergb-320x214.png", [23.89, 3.01, -16.02]),
        ("icc-displayp3-320x214.webp", [24.16, 2.59, -15.98]),
    ];

    #[test]
    fn wide_gamut_variants_have_the_reference_conversions_colours() {
        for (name, reference) in REFERENCES {
            let (bytes, pixels) = variant(name, ColorManagement::Convert);
            let mean = mean_lab(&pixels);
            let de = delta_e(mean, reference);
            eprintln!("{name}: mean {mean:.2?}, reference {reference:?}, ΔE {de:.2}");
            assert!(
                de <= 2.0,
                "{name}: mean {mean:?}, reference {reference:?}, ΔE {de:.2}"
            );
            // sRGB pixels: no profile left in the variant.
            assert_eq!(
                icc_profile(&bytes, Format::sniff(&bytes).unwrap()),
                None,
                "{name}"
            );
        }
        // The Adobe RGB photos are over ΔE 2 off when their profile is dropped (the defect);
        // the Display P3 ones, whose gamut is closer to sRGB, differ less in the mean (and
        // more pixel by pixel: `conversion_matches_little_cms_pixel_by_pixel`).
        for (name, reference) in &REFERENCES[..1] {
            let mean = mean_lab(&variant(name, ColorManagement::Off).1);
            assert!(
                delta_e(mean, *reference) > 2.0,
                "{name} unconverted: {mean:?}"
            );
        }
        let (name, reference) = REFERENCES[2];
        let mean = mean_lab(&variant(name, ColorManagement::Off).1);
        assert!(
            delta_e(mean, reference) > 2.0,
            "{name} unconverted: {mean:?}"
        );
    }

    /// Against `jpgicc` run here (liblcms2-utils, from scripts/install-deps.sh): the same
    /// file's pixels, converted by both, compared one by one.
    #[test]
    fn conversion_matches_little_cms_pixel_by_pixel() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["photo-rocket-640x427.jpg", "icc-displayp3-640x427.jpg"] {
            let input = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name);
            let output = dir.path().join(name);
            let status = Command::new("jpgicc")
                .arg("-q100")
                .arg(&input)
                .arg(&output)
                .output();
            // A reference the suite needs: fail, never skip, when it is missing.
            let status = status.unwrap_or_else(|e| {
                panic!("jpgicc (liblcms2-utils): {e}; run scripts/install-deps.sh as root")
            });
            assert!(status.status.success(), "jpgicc {name}: {status:?}");
            let reference = decoded(&std::fs::read(&output).unwrap());
            let bytes = fixture(name);
            let original = decoded(&bytes);
            let mut ours = original.clone();
            assert!(to_srgb(
                &mut ours,
                &icc_profile(&bytes, Format::Jpeg).unwrap()
            ));
            let mean_de = |pixels: &Pixels| {
                let pairs = pixels
                    .data
                    .chunks_exact(3)
                    .zip(reference.data.chunks_exact(3));
                let n = pixels.data.len() / 3;
                pairs
                    .map(|(a, b)| delta_e(lab([a[0], a[1], a[2]]), lab([b[0], b[1], b[2]])))
                    .sum::<f64>()
                    / n as f64
            };
            let converted = mean_de(&ours);
            let unconverted = mean_de(&original);
            eprintln!("{name}: ΔE a pixel {converted:.2} converted, {unconverted:.2} not");
            assert!(converted <= 1.0, "{name}: ΔE {converted:.2} a pixel");
            assert!(
                unconverted >= 1.5,
                "{name} unconverted: ΔE {unconverted:.2}"
            );
            let (ours, theirs) = (mean_lab(&ours), mean_lab(&reference));
            assert!(delta_e(ours, theirs) <= 2.0, "{name}: {ours:?} {theirs:?}");
        }
    }

    #[test]
    fn profiles_are_read_from_every_format() {
        let adobe = icc_profile(&fixture("photo-rocket-640x427.jpg"), Format::Jpeg).unwrap();
        assert_eq!(description(&adobe), "Adobe RGB (1998)");
        assert_eq!(
            icc_profile(&fixture("icc-adobergb-320x214.png"), Format::Png),
            Some(adobe)
        );
        let p3 = icc_profile(&fixture("icc-displayp3-640x427.jpg"), Format::Jpeg).unwrap();
        assert!(
            description(&p3).starts_with("Display P3"),
            "{}",
            description(&p3)
        );
        assert_eq!(
            icc_profile(&fixture("icc-displayp3-320x214.webp"), Format::Webp),
            Some(p3)
        );
        assert_eq!(icc_profile(&fixture("tiny-1x1.jpg"), Format::Jpeg), None);
        assert_eq!(icc_profile(&fixture("tiny-1x1.jpg"), Format::Png), None);
    }

    #[test]
    fn a_profile_split_over_segments_is_reassembled_or_dropped() {
        // 399,788 bytes in seven APP2 segments.
        let bytes = fixture("jpeg-icc-large-profile-425x250.jpg");
        let icc = icc_profile(&bytes, Format::Jpeg).unwrap();
        assert_eq!(icc.len(), 399_788);
        assert_eq!(u32::from_be_bytes(icc[..4].try_into().unwrap()), 399_788);
        // Its third segment renamed: a piece is missing, no profile.
        let third = bytes
            .windows(14)
            .position(|w| w.starts_with(b"ICC_PROFILE\0") && w[12] == 3)
            .unwrap();
        let mut damaged = bytes.clone();
        damaged[third] = b'X';
        assert_eq!(icc_profile(&damaged, Format::Jpeg), None);
        // And embedded again, in as many segments.
        let tiny = fixture("tiny-1x1.jpg");
        let with = embed(tiny, Format::Jpeg, &icc);
        assert_eq!(icc_profile(&with, Format::Jpeg), Some(icc));
        assert_eq!(decoded(&with).width, 1);
    }

    #[test]
    fn srgb_profiles_cost_no_transform() {
        // HP's "sRGB IEC61966-2.1" and Google's sRGB (a phone's), as photos carry them.
        for name in [
            "photo-hubble-deep-field-1000x872.jpg",
            "photo-nexus6p-exif-4032x3024.jpg",
        ] {
            let icc = icc_profile(&fixture(name), Format::Jpeg).unwrap();
            assert!(
                is_srgb(&ColorProfile::new_from_slice(&icc).unwrap()),
                "{name}"
            );
            let mut pixels = decoded(&fixture("tiny-1x1.jpg"));
            assert!(!to_srgb(&mut pixels, &icc), "{name}");
        }
        for name in ["photo-rocket-640x427.jpg", "icc-displayp3-640x427.jpg"] {
            let icc = icc_profile(&fixture(name), Format::Jpeg).unwrap();
            assert!(
                !is_srgb(&ColorProfile::new_from_slice(&icc).unwrap()),
                "{name}"
            );
        }
        // Gamma 2.2 with sRGB's primaries is not sRGB.
        let mut gamma = ColorProfile::new_srgb();
        let curve = moxcms::ToneReprCurve::Parametric(vec![2.2]);
        gamma.red_trc = Some(curve.clone());
        gamma.green_trc = Some(curve.clone());
        gamma.blue_trc = Some(curve);
        assert!(!is_srgb(&gamma));
        assert!(is_srgb(&ColorProfile::new_srgb()));
    }

    #[test]
    fn keep_embeds_the_originals_profile_in_every_output_format() {
        for (name, format) in [
            ("photo-rocket-640x427.jpg", Format::Jpeg),
            ("icc-adobergb-320x214.png", Format::Png),
            ("icc-displayp3-320x214.webp", Format::Webp),
        ] {
            let original = icc_profile(&fixture(name), format).unwrap();
            let (kept, pixels) = variant(name, ColorManagement::Keep);
            assert_eq!(Format::sniff(&kept).unwrap(), format);
            assert_eq!(
                icc_profile(&kept, format).as_ref(),
                Some(&original),
                "{name}"
            );
            assert!(pixels.width > 100, "{name} decodes");
            // The pixels are the original's: the mean stays where "off" puts it.
            let (_, off) = variant(name, ColorManagement::Off);
            assert!(delta_e(mean_lab(&pixels), mean_lab(&off)) < 0.5, "{name}");
        }
        // Lossy and lossless WebP (simple files, no VP8X), one with alpha (VP8X and ALPH), a
        // PNG from a GIF: each gets the chunks it needs.
        let icc = icc_profile(&fixture("icc-displayp3-640x427.jpg"), Format::Jpeg).unwrap();
        for name in [
            "webp-lossy-hopper-128x128.webp",
            "webp-lossless-simple-300x300.webp",
            "webp-lossy-alpha-100x100.webp",
            "gif-static-hopper-128x128.gif",
        ] {
            let bytes = fixture(name);
            let probe = render::probe(&bytes, 50_000_000).unwrap();
            let opts = RenderOptions::default();
            let out = render::render(&bytes, &probe, probe.size(), &opts).unwrap();
            let with = embed(out.bytes, out.format, &icc);
            assert_eq!(
                icc_profile(&with, out.format).as_ref(),
                Some(&icc),
                "{name}"
            );
            assert_eq!(decoded(&with).width, probe.size().width, "{name}");
        }
    }
}
