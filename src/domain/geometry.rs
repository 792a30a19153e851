//! The served size of a picture: fit into a bounding box, never upscale, snap the width to the
//! raster, let the height follow. Pure integer arithmetic; no I/O, no floating point.
//!
//! This module decides sizes only; it does not know formats, files or URLs.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// A picture's width and height in pixels (after EXIF orientation is applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    pub const fn new(width: u32, height: u32) -> Self {
        Size { width, height }
    }

    /// Width × height, without overflow.
    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The same size with the sides swapped (a 90° rotation).
    pub fn transposed(self) -> Self {
        Size::new(self.height, self.width)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// `"800x600"` → `Size`; both sides must be integers > 0.
impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (w, h) = s
            .split_once('x')
            .ok_or_else(|| format!("expected WIDTHxHEIGHT like \"800x600\", got {s:?}"))?;
        let side = |t: &str| match t.parse::<u32>() {
            Ok(n) if n > 0 && t.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(format!(
                "expected WIDTHxHEIGHT with integers > 0, got {s:?}"
            )),
        };
        Ok(Size::new(side(w)?, side(h)?))
    }
}

/// The box a picture must fit into.
pub type BoundingBox = Size;

/// The step that served widths snap to, so that slightly different boxes share one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raster(pub NonZeroU32);

impl Raster {
    /// A raster of `step` pixels; `None` for 0.
    pub fn new(step: u32) -> Option<Self> {
        NonZeroU32::new(step).map(Raster)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl Default for Raster {
    fn default() -> Self {
        Raster(NonZeroU32::new(50).expect("50 is not zero"))
    }
}

/// The size served for `original` in the box `bbox`.
///
/// With `s = min(W/ow, H/oh, 1)`:
/// 1. `s == 1` (the box holds the original): the original's size; never upscale.
/// 2. otherwise `fw = max(1, ⌊ow·s⌋)`; the width snaps down to the raster,
///    `sw = ⌊fw/r⌋·r`, or stays `fw` when that is 0; the height follows the width,
///    `sh = max(1, round_half_up(oh·sw/ow))`, so the ratio is kept to within a pixel.
///
/// A picture so narrow that a width of one pixel is already too tall for the box (a 1×5000
/// strip into 100×100) cannot keep its ratio: its height is capped at the box's so that the
/// result always fits.
pub fn fit(original: Size, bbox: BoundingBox, raster: Raster) -> Size {
    let (ow, oh) = (u64::from(original.width), u64::from(original.height));
    let (bw, bh) = (u64::from(bbox.width), u64::from(bbox.height));
    if ow == 0 || oh == 0 {
        return original;
    }
    if bw >= ow && bh >= oh {
        return original;
    }
    // s = W/ow when W/ow <= H/oh, i.e. W·oh <= H·ow; all products fit in u64 (u32·u32).
    let fw = if bw * oh <= bh * ow {
        bw
    } else {
        (ow * bh) / oh
    };
    let fw = fw.max(1);
    let r = u64::from(raster.get());
    let sw = match (fw / r) * r {
        0 => fw,
        snapped => snapped,
    };
    // round_half_up(oh·sw/ow) = ⌊(2·oh·sw + ow) / (2·ow)⌋, in u128 since 2·oh·sw can pass 2^64.
    let (oh, sw, ow) = (u128::from(oh), u128::from(sw), u128::from(ow));
    let sh = ((2 * oh * sw + ow) / (2 * ow)).clamp(1, u128::from(bh));
    Size::new(to_u32(sw), to_u32(sh))
}

/// A box that [`fit`] turns into exactly `size` for `original`, or `None` when `size` is not
/// a size ever served for it (off the raster, a ratio more than half a pixel off, larger than
/// the original). Every size `fit` returns has one: the box itself, or the box as wide as
/// the size and unbounded in height (a height rounded down makes the box itself a little
/// too low for the width: 640×427 in 300×300 is 300×200, but 300×200 gives 250×167).
///
/// The 404 handler names a variant's file by its served size; this is how it renders the
/// size a name asks for, and tells a served size from a box that snaps to another.
pub fn box_serving(original: Size, size: Size, raster: Raster) -> Option<BoundingBox> {
    [size, Size::new(size.width, u32::MAX)]
        .into_iter()
        .find(|&bbox| fit(original, bbox, raster) == size)
}

fn to_u32<T: TryInto<u32>>(n: T) -> u32 {
    // Every value above is at most a side of the original or of the box.
    n.try_into()
        .ok()
        .expect("a fitted side never exceeds an input side")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(step: u32) -> Raster {
        Raster::new(step).unwrap()
    }

    #[test]
    fn table() {
        type Case = (&'static str, (u32, u32), (u32, u32), u32, (u32, u32));
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // name,                          original,       box,          raster, served
            ("landscape",                     (4000, 3000),   (800, 600),   50,  (800, 600)),
            ("landscape odd box",             (4000, 3000),   (820, 640),   50,  (800, 600)),
            ("landscape width snaps",         (3088, 2056),   (800, 600),   50,  (800, 533)),
            ("landscape height-bound",        (4352, 2448),   (1000, 300),  50,  (500, 281)),
            ("portrait",                      (2056, 3088),   (800, 600),   50,  (350, 526)),
            ("portrait exif 6 (1200x1800)",   (1200, 1800),   (800, 600),   50,  (400, 600)),
            ("square",                        (512, 512),     (300, 300),   50,  (300, 300)),
            ("square snaps",                  (512, 512),     (320, 320),   50,  (300, 300)),
            ("box larger than original",      (640, 427),     (800, 600),   50,  (640, 427)),
            ("box equal to original",         (640, 427),     (640, 427),   50,  (640, 427)),
            ("box wider, not taller",         (640, 427),     (2000, 400),  50,  (550, 367)),
            ("fitted width below one step",   (640, 427),     (40, 40),     50,  (40, 27)),
            ("1x1 original",                  (1, 1),         (100, 100),   50,  (1, 1)),
            ("1x1 box",                       (640, 427),     (1, 1),       50,  (1, 1)),
            ("4000x50 panorama",              (4000, 50),     (800, 600),   50,  (800, 10)),
            ("4000x50 panorama tiny box",     (4000, 50),     (30, 30),     50,  (30, 1)),
            ("940x2 strip",                   (940, 2),       (100, 100),   50,  (100, 1)),
            ("50x2900 tall strip",            (50, 2900),     (800, 600),   50,  (10, 580)),
            ("1x5000 cannot keep ratio",      (1, 5000),      (100, 100),   50,  (1, 100)),
            ("raster 1 keeps exact fit",      (3088, 2056),   (800, 600),   1,   (800, 533)),
            ("raster 1 height-bound",         (2056, 3088),   (800, 600),   1,   (399, 599)),
            ("raster larger than width",      (3088, 2056),   (800, 600),   1000, (800, 533)),
            ("rounding half up",              (3, 2),         (1, 1),       1,   (1, 1)),
            ("rounding half up 2",            (4, 2),         (3, 3),       1,   (3, 2)),
        ];
        for &(name, (ow, oh), (bw, bh), step, (sw, sh)) in cases {
            let got = fit(Size::new(ow, oh), Size::new(bw, bh), r(step));
            assert_eq!(got, Size::new(sw, sh), "{name}");
        }
    }

    /// The invariants, checked exhaustively on small sizes and on a deterministic sample of
    /// large ones.
    #[test]
    fn invariants() {
        let check = |o: Size, b: Size, rs: Raster| {
            let s = fit(o, b, rs);
            let ctx = format!("{o} into {b} raster {}", rs.get());
            assert!(s.width >= 1 && s.height >= 1, "{ctx}: empty {s}");
            assert!(
                s.width <= o.width && s.height <= o.height,
                "{ctx}: upscaled {s}"
            );
            if b.width >= o.width && b.height >= o.height {
                assert_eq!(s, o, "{ctx}");
                return;
            }
            assert!(
                s.width <= b.width && s.height <= b.height,
                "{ctx}: {s} outside box"
            );
            let step = rs.get();
            assert!(
                s.width.is_multiple_of(step) || s.width < step,
                "{ctx}: width {s} not on the raster"
            );
            // Ratio within a pixel: |sh - oh·sw/ow| <= 1/2 unless capped by the box.
            let exact2 = 2 * u64::from(o.height) * u64::from(s.width);
            let diff2 = (2 * u64::from(s.height) * u64::from(o.width)).abs_diff(exact2);
            let capped = s.height == b.height || s.height == 1;
            assert!(
                diff2 <= u64::from(o.width) || capped,
                "{ctx}: ratio off in {s}"
            );
            // Deterministic: the same inputs always give the same size.
            assert_eq!(fit(o, b, rs), s);
            // Every served size has a box serving exactly it (the 404 handler's names).
            let serving = box_serving(o, s, rs).map(|b| fit(o, b, rs));
            assert_eq!(serving, Some(s), "{ctx}: {s} has no box");
        };
        for ow in 1..=24 {
            for oh in 1..=24 {
                for bw in 1..=24 {
                    for bh in 1..=24 {
                        for step in [1, 5, 50] {
                            check(Size::new(ow, oh), Size::new(bw, bh), r(step));
                        }
                    }
                }
            }
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |max: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u32::try_from(1 + x % max).unwrap()
        };
        for _ in 0..200_000 {
            let o = Size::new(next(70_000), next(70_000));
            let b = Size::new(next(10_000), next(10_000));
            let step = next(200);
            check(o, b, r(step));
        }
        check(
            Size::new(u32::MAX, u32::MAX - 1),
            Size::new(u32::MAX - 2, 7),
            r(50),
        );
    }

    #[test]
    fn box_serving_tells_served_sizes_from_boxes() {
        let rocket = Size::new(640, 427);
        // 300×300 snaps to 300×200; 300×200 as a box would give 250×167, yet is served.
        assert_eq!(fit(rocket, Size::new(300, 300), r(50)), Size::new(300, 200));
        assert_eq!(fit(rocket, Size::new(300, 200), r(50)), Size::new(250, 167));
        assert_eq!(
            box_serving(rocket, Size::new(300, 200), r(50)),
            Some(Size::new(300, u32::MAX))
        );
        assert_eq!(
            box_serving(rocket, Size::new(250, 167), r(50)),
            Some(Size::new(250, 167))
        );
        assert_eq!(box_serving(rocket, rocket, r(50)), Some(rocket));
        for not_served in [(300, 300), (300, 201), (310, 207), (700, 467), (640, 428)] {
            let size = Size::new(not_served.0, not_served.1);
            assert_eq!(box_serving(rocket, size, r(50)), None, "{size}");
        }
        // A strip capped by the box is served at the box's height.
        let strip = Size::new(1, 5000);
        assert_eq!(fit(strip, Size::new(100, 100), r(50)), Size::new(1, 100));
        assert_eq!(
            box_serving(strip, Size::new(1, 100), r(50)),
            Some(Size::new(1, 100))
        );
    }

    #[test]
    fn size_parses() {
        assert_eq!("800x600".parse::<Size>(), Ok(Size::new(800, 600)));
        for bad in [
            "800", "0x600", "800x", "x600", "-1x5", "8a0x600", "+8x6", " 8x6",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
    }
}
