//! The render quality guard: the fast path (JPEG decoded at a reduced DCT scale, Lanczos3,
//! libjpeg-turbo at quality 85) must stay visually equivalent to vipsthumbnail's output and
//! about as small, still WebP scaled by libwebp while decoding must stay as close to the full
//! decode as vipsthumbnail's, and every EXIF orientation must come out upright.
//!
//! Quality is PSNR against a reference that is the full-resolution decode, oriented and resized
//! with Lanczos3 to the output's own size, not re-encoded. Needs `vipsthumbnail`
//! (scripts/install-deps.sh).

use std::fs;
use std::path::Path;
use std::process::Command;

use imgserv::domain::geometry::{Raster, Size, fit};
use imgserv::io::render::{self, Filter, Layout, Pixels, RenderOptions};

use crate::support::{fixture, fixture_bytes, repo_root, require_program};

/// Photos over this many pixels are the ones the DCT-scaled decode matters for.
const LARGE_PHOTO_PIXELS: u64 = 5_000_000;
/// How much lower than vipsthumbnail's our PSNR may be, in dB.
const PSNR_SLACK_DB: f64 = 0.5;
/// How far our output's size may be from vipsthumbnail's, as a fraction of vips'.
const BYTES_TOLERANCE: f64 = 0.15;

/// `photo-*.jpg` fixtures over [`LARGE_PHOTO_PIXELS`], by the MANIFEST's width and height.
fn large_jpeg_photos() -> Vec<String> {
    let manifest = fs::read_to_string(repo_root().join("tests/fixtures/MANIFEST.tsv"))
        .expect("read tests/fixtures/MANIFEST.tsv");
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().expect("MANIFEST header").split('\t').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|&c| c == name)
            .unwrap_or_else(|| panic!("MANIFEST has no `{name}` column"))
    };
    let (file, width, height) = (column("file"), column("width"), column("height"));
    lines
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .filter(|row| row[file].starts_with("photo-") && row[file].ends_with(".jpg"))
        .filter(|row| {
            let side = |i: usize| row[i].parse::<u64>().unwrap_or(0);
            side(width) * side(height) > LARGE_PHOTO_PIXELS
        })
        .map(|row| row[file].to_string())
        .collect()
}

/// Decodes a JPEG to RGB at full resolution, upright.
fn decode_rgb(bytes: &[u8], what: &str) -> Pixels {
    let probe = render::probe(bytes, u64::MAX).unwrap_or_else(|e| panic!("probe {what}: {e}"));
    let pixels = render::decode_full(bytes, &probe)
        .unwrap_or_else(|e| panic!("decode {what}: {e}"))
        .orient(probe.orientation)
        .to_rgb_or_rgba();
    assert_eq!(pixels.layout, Layout::Rgb8, "{what}");
    pixels
}

/// The full-resolution picture resized with Lanczos3 to `size`, not re-encoded.
fn reference(full: &Pixels, size: Size) -> Pixels {
    full.clone()
        .resize(size, Filter::Lanczos3)
        .expect("reference resize")
}

/// PSNR in dB over all channels of two pictures of the same size and layout (infinite when
/// equal).
fn psnr(a: &Pixels, b: &Pixels) -> f64 {
    assert_eq!(a.size(), b.size(), "PSNR of pictures of different sizes");
    assert_eq!(a.layout, b.layout, "PSNR of pictures of different layouts");
    let sum: u64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)).pow(2))
        .sum();
    let mse = sum as f64 / a.data.len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// vipsthumbnail's JPEG of `src` fitted into `bbox`, quality 85, metadata stripped.
fn vipsthumbnail(src: &Path, bbox: Size, dir: &Path) -> Vec<u8> {
    vipsthumbnail_as(src, bbox, &dir.join("vips.jpg"), "[Q=85,strip]")
}

/// vipsthumbnail's output of `src` fitted into `bbox`, written to `out` with vips' save
/// options `opts` (e.g. `[Q=85,strip]`).
fn vipsthumbnail_as(src: &Path, bbox: Size, out: &Path, opts: &str) -> Vec<u8> {
    let vips = require_program("vipsthumbnail");
    let output = Command::new(vips)
        .arg(src)
        .arg("-s")
        .arg(bbox.to_string())
        .arg("-o")
        .arg(format!("{}{opts}", out.display()))
        .output()
        .expect("run vipsthumbnail");
    assert!(
        output.status.success(),
        "vipsthumbnail {} failed ({}):\n{}",
        src.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    fs::read(out).expect("read vipsthumbnail's output")
}

struct Row {
    photo: String,
    ours: (Size, f64, usize),
    vips: (Size, f64, usize),
}

/// Our render against vipsthumbnail's, both at the size served for an 800×600 box: PSNR no more
/// than 0.5 dB lower, bytes within 15 %.
#[test]
fn large_photos_match_vipsthumbnail() {
    let photos = large_jpeg_photos();
    assert!(
        !photos.is_empty(),
        "MANIFEST.tsv lists no photo-*.jpg over 5 MP"
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = RenderOptions::default();
    let bbox = Size::new(800, 600);
    let mut rows = Vec::new();
    for photo in &photos {
        let bytes = fixture_bytes(photo);
        let probe = render::probe(&bytes, opts.max_pixels).unwrap();
        let target = fit(probe.size(), bbox, Raster::default());
        let ours = render::render(&bytes, &probe, target, &opts).unwrap();
        assert_eq!(ours.size, target, "{photo}");
        let ours_px = decode_rgb(&ours.bytes, "our output");
        assert_eq!(ours_px.size(), target, "{photo}: decoded size");

        // vips fits exactly into the box it is given: give it our (already fitted) size so that
        // both outputs have the same pixels to spend their bytes on.
        let vips_bytes = vipsthumbnail(&fixture(photo), target, dir.path());
        let vips_px = decode_rgb(&vips_bytes, "vipsthumbnail's output");
        let vips_size = vips_px.size();
        assert!(
            vips_size.width.abs_diff(target.width) <= 1
                && vips_size.height.abs_diff(target.height) <= 1,
            "{photo}: vipsthumbnail made {vips_size} for {target}"
        );

        let full = decode_rgb(&bytes, photo);
        let ours_ref = reference(&full, target);
        let vips_ref = if vips_size == target {
            ours_ref.clone()
        } else {
            reference(&full, vips_size)
        };
        rows.push(Row {
            photo: photo.clone(),
            ours: (target, psnr(&ours_px, &ours_ref), ours.bytes.len()),
            vips: (vips_size, psnr(&vips_px, &vips_ref), vips_bytes.len()),
        });
    }

    eprintln!(
        "{:<50} {:>9} {:>9} {:>10} {:>10} {:>8} {:>8} {:>7}",
        "photo", "ours", "vips", "PSNR ours", "PSNR vips", "B ours", "B vips", "bytes"
    );
    for r in &rows {
        eprintln!(
            "{:<50} {:>9} {:>9} {:>10.2} {:>10.2} {:>8} {:>8} {:>+6.1}%",
            r.photo,
            r.ours.0.to_string(),
            r.vips.0.to_string(),
            r.ours.1,
            r.vips.1,
            r.ours.2,
            r.vips.2,
            (r.ours.2 as f64 / r.vips.2 as f64 - 1.0) * 100.0
        );
    }
    let mut failures = Vec::new();
    for r in &rows {
        if r.ours.1 < r.vips.1 - PSNR_SLACK_DB {
            failures.push(format!(
                "{}: PSNR {:.2} dB, more than {PSNR_SLACK_DB} dB below vipsthumbnail's {:.2} dB",
                r.photo, r.ours.1, r.vips.1
            ));
        }
        let ratio = r.ours.2 as f64 / r.vips.2 as f64;
        if (ratio - 1.0).abs() > BYTES_TOLERANCE {
            failures.push(format!(
                "{}: {} bytes, {:+.1} % from vipsthumbnail's {} (limit ±{} %)",
                r.photo,
                r.ours.2,
                (ratio - 1.0) * 100.0,
                r.vips.2,
                BYTES_TOLERANCE * 100.0
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The fixture with each EXIF orientation 2–8 shows the same upright picture as orientation 1
/// once rendered, except for the big digit naming the orientation (hence ~31–33 dB, not more).
/// A wrong transform (a mirror, or a rotation the wrong way) scores about 8 dB.
/// (`exif-orient-0.jpg` is left out: its labels are drawn differently, 28.5 dB.)
#[test]
fn exif_orientations_render_upright() {
    let opts = RenderOptions::default();
    let bbox = Size::new(300, 200);
    let render_upright = |name: &str| {
        let bytes = fixture_bytes(name);
        let probe = render::probe(&bytes, opts.max_pixels).unwrap();
        let target = fit(probe.size(), bbox, Raster::default());
        let out = render::render(&bytes, &probe, target, &opts).unwrap();
        decode_rgb(&out.bytes, name)
    };
    let upright = render_upright("exif-orient-1.jpg");
    assert_eq!(upright.size(), Size::new(300, 200));
    let mut failures = Vec::new();
    for orientation in 2..=8 {
        let name = format!("exif-orient-{orientation}.jpg");
        let got = render_upright(&name);
        if got.size() != upright.size() {
            failures.push(format!(
                "{name}: {} instead of {}",
                got.size(),
                upright.size()
            ));
            continue;
        }
        let db = psnr(&got, &upright);
        eprintln!("{name}: {db:.2} dB against exif-orient-1.jpg");
        if db <= 30.0 {
            failures.push(format!(
                "{name}: {db:.2} dB against exif-orient-1.jpg (want > 30)"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Still WebP decoded scaled by libwebp (leaving Lanczos3 a shrink of 1.5) and then resized:
/// the decode has the promised size, and the result is close to the full decode resized with
/// Lanczos3 (≥ 30 dB) and, for the 4096² photo, no more than 0.5 dB below vipsthumbnail's
/// (which uses the same scaled decode) against that reference.
#[test]
fn webp_scaled_decode_matches_full_decode() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RenderOptions::default();
    let cases = [
        // (fixture, box, the size libwebp decodes to, compare with vipsthumbnail)
        (
            "webp-lossy-adwaita-4096x4096.webp",
            Size::new(800, 600),
            Size::new(900, 900),
            true,
        ),
        (
            "webp-lossy-hopper-128x128.webp",
            Size::new(50, 50),
            Size::new(75, 75),
            false,
        ),
        (
            "webp-lossless-simple-300x300.webp",
            Size::new(150, 150),
            Size::new(225, 225),
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (name, bbox, scaled, with_vips) in cases {
        let bytes = fixture_bytes(name);
        let probe = render::probe(&bytes, opts.max_pixels).unwrap();
        let target = fit(probe.size(), bbox, Raster::default());
        let decoded = render::decode(&bytes, &probe, target).unwrap();
        assert_eq!(decoded.size(), scaled, "{name}: scaled decode for {target}");
        assert!(
            f64::from(scaled.width) >= 1.5 * f64::from(target.width)
                && f64::from(scaled.height) >= 1.5 * f64::from(target.height),
            "{name}: {scaled} leaves less than 1.5 to the filter for {target}"
        );
        let ours = decoded.resize(target, Filter::Lanczos3).unwrap();
        let full = render::decode_full(&bytes, &probe).unwrap();
        assert_eq!(full.size(), probe.stored, "{name}: full decode");
        let reference = reference(&full, target);
        let db = psnr(&ours, &reference);
        eprintln!("{name}: {scaled} then Lanczos3 to {target}: {db:.2} dB against full decode");
        if db < 30.0 {
            failures.push(format!(
                "{name}: {db:.2} dB against the full decode (want ≥ 30)"
            ));
        }
        let rendered = render::render(&bytes, &probe, target, &opts).unwrap();
        assert_eq!(rendered.size, target, "{name}: rendered size");

        if with_vips {
            let out = dir.path().join("vips.png");
            let vips_bytes = vipsthumbnail_as(&fixture(name), target, &out, "");
            let vips_px = decode_rgb(&vips_bytes, "vipsthumbnail's output");
            assert_eq!(vips_px.size(), target, "{name}: vipsthumbnail's size");
            let vips_db = psnr(&vips_px, &reference);
            eprintln!("{name}: vipsthumbnail {vips_db:.2} dB against the same reference");
            if db < vips_db - PSNR_SLACK_DB {
                failures.push(format!(
                    "{name}: {db:.2} dB, more than {PSNR_SLACK_DB} dB below vipsthumbnail's \
                     {vips_db:.2} dB"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
