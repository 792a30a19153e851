//! Criterion micro-benchmarks of the render pipeline's stages on a 12 MP photo fitted into
//! 800×600: geometry, decode (full and DCT-shrunk), resize, encode, and the whole render.
//! `cargo bench --bench render`; `make bench` runs it first.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use imgserv::domain::format::Format;
use imgserv::domain::geometry::{self, BoundingBox, Raster, Size};
use imgserv::io::render::{self, Filter, RenderOptions};

const PHOTO: &str = "photo-nexus6p-exif-4032x3024.jpg";
const PNG: &str = "photo-astronaut-512x512.png";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn benches(c: &mut Criterion) {
    let opts = RenderOptions::default();
    let bytes = fixture(PHOTO);
    let probe = render::probe(&bytes, opts.max_pixels).unwrap();
    let bbox: BoundingBox = Size::new(800, 600);
    let raster = Raster::new(50).unwrap();
    let target = geometry::fit(probe.stored, bbox, raster);

    c.bench_function("geometry/fit", |b| {
        b.iter(|| geometry::fit(black_box(Size::new(4032, 3024)), black_box(bbox), raster))
    });
    c.bench_function("probe/jpeg-12MP", |b| {
        b.iter(|| render::probe(black_box(&bytes), opts.max_pixels).unwrap())
    });

    let mut g = c.benchmark_group("decode");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.bench_function("jpeg-12MP-full", |b| {
        b.iter(|| render::decode_full(black_box(&bytes), &probe).unwrap())
    });
    g.bench_function("jpeg-12MP-dct-shrunk-for-800x600", |b| {
        b.iter(|| render::decode(black_box(&bytes), &probe, target).unwrap())
    });
    let png = fixture(PNG);
    let png_probe = render::probe(&png, opts.max_pixels).unwrap();
    g.bench_function("png-512x512", |b| {
        b.iter(|| render::decode_full(black_box(&png), &png_probe).unwrap())
    });
    g.finish();

    let shrunk = render::decode(&bytes, &probe, target).unwrap();
    let mut g = c.benchmark_group("resize");
    g.sample_size(20);
    g.bench_function(format!("lanczos3-{}-to-{target}", shrunk.size()), |b| {
        b.iter(|| {
            shrunk
                .clone()
                .resize(black_box(target), Filter::Lanczos3)
                .unwrap()
        })
    });
    g.finish();

    let small = shrunk.clone().resize(target, Filter::Lanczos3).unwrap();
    let mut g = c.benchmark_group("encode");
    g.sample_size(20);
    g.bench_function(format!("jpeg-q85-{target}"), |b| {
        b.iter(|| render::encode(black_box(&small), Format::Jpeg, &opts, false).unwrap())
    });
    g.bench_function(format!("png-fast-{target}"), |b| {
        b.iter(|| render::encode(black_box(&small), Format::Png, &opts, false).unwrap())
    });
    g.bench_function(format!("webp-q80-{target}"), |b| {
        b.iter(|| render::encode(black_box(&small), Format::Webp, &opts, false).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("render");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.bench_function("jpeg-12MP-into-800x600", |b| {
        b.iter(|| render::render(black_box(&bytes), &probe, target, &opts).unwrap())
    });
    g.finish();
}

/// Colour management (`[render] color_management`): the conversion of a variant's pixels to
/// sRGB from Adobe RGB and Display P3 (and the sRGB profile's check, which converts nothing),
/// and a whole render of the Adobe RGB photo with it, with the profile kept instead, and without.
fn color_benches(c: &mut Criterion) {
    use imgserv::io::render::{ColorManagement, color};
    let mut g = c.benchmark_group("color");
    g.sample_size(20);
    let rocket = fixture("photo-rocket-640x427.jpg");
    let probe = render::probe(&rocket, u64::MAX).unwrap();
    let pixels = render::decode_full(&rocket, &probe).unwrap();
    for (name, file) in [
        ("adobe-rgb", "photo-rocket-640x427.jpg"),
        ("display-p3", "icc-displayp3-640x427.jpg"),
        ("srgb-recognised", "photo-hubble-deep-field-1000x872.jpg"),
    ] {
        let icc = color::icc_profile(&fixture(file), Format::Jpeg).unwrap();
        g.bench_function(format!("to-srgb-{name}-640x427"), |b| {
            b.iter(|| color::to_srgb(&mut pixels.clone(), black_box(&icc)))
        });
    }
    g.bench_function("clone-640x427 (subtract from to-srgb)", |b| {
        b.iter(|| black_box(pixels.clone()))
    });
    let target = Size::new(320, 213);
    for (name, color) in [
        ("convert", ColorManagement::Convert),
        ("keep", ColorManagement::Keep),
        ("off", ColorManagement::Off),
    ] {
        let opts = RenderOptions {
            color,
            ..RenderOptions::default()
        };
        g.bench_function(
            format!("render-adobe-rgb-640x427-into-320x213-{name}"),
            |b| b.iter(|| render::render(black_box(&rocket), &probe, target, &opts).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(render_benches, benches, color_benches);
criterion_main!(render_benches);
