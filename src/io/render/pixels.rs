//! A decoded picture in memory (8 bits a channel), and what is done to it between decoding and
//! encoding: resizing and the eight EXIF orientations.

use fast_image_resize::{self as fr, PixelType};

use super::{Filter, RenderError};
use crate::domain::geometry::Size;

/// Channel layout, 8 bits a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    L8,
    La8,
    Rgb8,
    Rgba8,
}

impl Layout {
    pub fn channels(self) -> usize {
        match self {
            Layout::L8 => 1,
            Layout::La8 => 2,
            Layout::Rgb8 => 3,
            Layout::Rgba8 => 4,
        }
    }

    fn pixel_type(self) -> PixelType {
        match self {
            Layout::L8 => PixelType::U8,
            Layout::La8 => PixelType::U8x2,
            Layout::Rgb8 => PixelType::U8x3,
            Layout::Rgba8 => PixelType::U8x4,
        }
    }

    pub(super) fn extended_color_type(self) -> image::ExtendedColorType {
        match self {
            Layout::L8 => image::ExtendedColorType::L8,
            Layout::La8 => image::ExtendedColorType::La8,
            Layout::Rgb8 => image::ExtendedColorType::Rgb8,
            Layout::Rgba8 => image::ExtendedColorType::Rgba8,
        }
    }
}

/// Pixels, row-major, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub data: Vec<u8>,
}

impl Pixels {
    pub fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }

    /// Converts an `image` decode, reducing 16-bit and float images to 8 bits a channel.
    pub fn from_dynamic(img: image::DynamicImage) -> Pixels {
        use image::DynamicImage as D;
        let (width, height) = (img.width(), img.height());
        let (layout, data) = match img {
            D::ImageLuma8(b) => (Layout::L8, b.into_raw()),
            D::ImageLumaA8(b) => (Layout::La8, b.into_raw()),
            D::ImageRgb8(b) => (Layout::Rgb8, b.into_raw()),
            D::ImageRgba8(b) => (Layout::Rgba8, b.into_raw()),
            D::ImageLuma16(_) => (Layout::L8, img.to_luma8().into_raw()),
            D::ImageLumaA16(_) => (Layout::La8, img.to_luma_alpha8().into_raw()),
            other if other.color().has_alpha() => (Layout::Rgba8, other.to_rgba8().into_raw()),
            other => (Layout::Rgb8, other.to_rgb8().into_raw()),
        };
        Pixels {
            width,
            height,
            layout,
            data,
        }
    }

    /// Gray becomes RGB and gray+alpha RGBA; colour layouts are returned unchanged.
    pub fn to_rgb_or_rgba(&self) -> Pixels {
        let data = match self.layout {
            Layout::L8 => self.data.iter().flat_map(|&l| [l, l, l]).collect(),
            Layout::La8 => self
                .data
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect(),
            Layout::Rgb8 | Layout::Rgba8 => return self.clone(),
        };
        let layout = if self.layout == Layout::La8 {
            Layout::Rgba8
        } else {
            Layout::Rgb8
        };
        Pixels {
            width: self.width,
            height: self.height,
            layout,
            data,
        }
    }

    /// Resizes to exactly `target` (alpha-aware for layouts with alpha). Returns `self` when the
    /// size is already right.
    pub fn resize(self, target: Size, filter: Filter) -> Result<Pixels, RenderError> {
        if self.size() == target {
            return Ok(self);
        }
        let layout = self.layout;
        let src =
            fr::images::Image::from_vec_u8(self.width, self.height, self.data, layout.pixel_type())
                .map_err(|e| RenderError::Corrupt(format!("pixel buffer: {e}")))?;
        let mut dst = fr::images::Image::new(target.width, target.height, layout.pixel_type());
        let options = fr::ResizeOptions::new().resize_alg(filter.alg());
        fr::Resizer::new()
            .resize(&src, &mut dst, &options)
            .map_err(|e| RenderError::Corrupt(format!("resize: {e}")))?;
        Ok(Pixels {
            width: target.width,
            height: target.height,
            layout,
            data: dst.into_vec(),
        })
    }

    /// Resizes the rows `band_first..` of a picture `full` in size (the rows this band holds:
    /// `self`, `full.width` wide) into rows `out_rows` of its resize to `target`, written to
    /// `dst` (`out_rows.len()` rows of `target.width` pixels). The filter sees the same source
    /// positions as in [`Pixels::resize`] of the whole picture, so bands resized apart and
    /// stacked give its result (to rounding), provided each band holds [`band_source_rows`].
    pub fn resize_band_into(
        &self,
        band_first: u32,
        full: Size,
        target: Size,
        out_rows: std::ops::Range<u32>,
        filter: Filter,
        dst: &mut [u8],
    ) -> Result<(), RenderError> {
        let pt = self.layout.pixel_type();
        let err = |e: &dyn std::fmt::Display| RenderError::Corrupt(format!("resize band: {e}"));
        let src = fr::images::ImageRef::new(self.width, self.height, &self.data, pt)
            .map_err(|e| err(&e))?;
        let out_height = out_rows.end - out_rows.start;
        let mut out = fr::images::Image::from_slice_u8(target.width, out_height, dst, pt)
            .map_err(|e| err(&e))?;
        let scale = f64::from(full.height) / f64::from(target.height);
        let top = f64::from(out_rows.start) * scale - f64::from(band_first);
        let bottom = f64::from(out_rows.end) * scale - f64::from(band_first);
        let (top, bottom) = (top.max(0.0), bottom.min(f64::from(self.height)));
        let options = fr::ResizeOptions::new().resize_alg(filter.alg()).crop(
            0.0,
            top,
            f64::from(full.width),
            bottom - top,
        );
        fr::Resizer::new()
            .resize(&src, &mut out, &options)
            .map_err(|e| err(&e))
    }

    /// Applies an EXIF orientation (1–8; anything else counts as 1) so that the result is
    /// upright.
    pub fn orient(self, orientation: u8) -> Pixels {
        if !(2..=8).contains(&orientation) {
            return self;
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let n = self.layout.channels();
        let transposed = orientation >= 5;
        let (ow, oh) = if transposed { (h, w) } else { (w, h) };
        let mut out = vec![0u8; self.data.len()];
        for y in 0..oh {
            for x in 0..ow {
                // Where output pixel (x, y) comes from in the stored picture.
                let (sx, sy) = match orientation {
                    2 => (w - 1 - x, y),
                    3 => (w - 1 - x, h - 1 - y),
                    4 => (x, h - 1 - y),
                    5 => (y, x),
                    6 => (y, h - 1 - x),
                    7 => (w - 1 - y, h - 1 - x),
                    _ => (w - 1 - y, x), // 8
                };
                let s = (sy * w + sx) * n;
                let d = (y * ow + x) * n;
                out[d..d + n].copy_from_slice(&self.data[s..s + n]);
            }
        }
        Pixels {
            width: ow as u32,
            height: oh as u32,
            layout: self.layout,
            data: out,
        }
    }
}

/// The source rows (of `full_height`) that output rows `out_rows` of a resize to
/// `target_height` read: the filter's support (3 output pixels for Lanczos3, the widest filter,
/// scaled when shrinking) either side of their centres, and a row more for rounding.
pub fn band_source_rows(
    full_height: u32,
    target_height: u32,
    out_rows: std::ops::Range<u32>,
) -> std::ops::Range<u32> {
    let scale = f64::from(full_height) / f64::from(target_height.max(1));
    let radius = 3.0 * scale.max(1.0);
    let first = (f64::from(out_rows.start) + 0.5) * scale - radius;
    let last = (f64::from(out_rows.end) - 0.5) * scale + radius;
    let first = (first.floor() - 1.0).max(0.0) as u32;
    let last = ((last.ceil() + 1.0).max(0.0) as u32).min(full_height);
    first.min(last)..last
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×2 gray picture with distinct values:
    /// ```text
    /// 1 2 3
    /// 4 5 6
    /// ```
    fn sample() -> Pixels {
        Pixels {
            width: 3,
            height: 2,
            layout: Layout::L8,
            data: vec![1, 2, 3, 4, 5, 6],
        }
    }

    #[test]
    fn orientations() {
        #[rustfmt::skip]
        let cases: [(u8, (u32, u32), [u8; 6]); 8] = [
            (1, (3, 2), [1, 2, 3, 4, 5, 6]),
            (2, (3, 2), [3, 2, 1, 6, 5, 4]),   // mirror
            (3, (3, 2), [6, 5, 4, 3, 2, 1]),   // 180°
            (4, (3, 2), [4, 5, 6, 1, 2, 3]),   // flip
            (5, (2, 3), [1, 4, 2, 5, 3, 6]),   // transpose
            (6, (2, 3), [4, 1, 5, 2, 6, 3]),   // 90° clockwise
            (7, (2, 3), [6, 3, 5, 2, 4, 1]),   // transverse
            (8, (2, 3), [3, 6, 2, 5, 1, 4]),   // 90° counter-clockwise
        ];
        for (o, (w, h), want) in cases {
            let got = sample().orient(o);
            assert_eq!((got.width, got.height), (w, h), "orientation {o}");
            assert_eq!(got.data, want, "orientation {o}");
        }
        assert_eq!(sample().orient(0), sample());
        assert_eq!(sample().orient(9), sample());
    }

    #[test]
    fn resize_keeps_layout_and_size() {
        let p = Pixels {
            width: 40,
            height: 20,
            layout: Layout::Rgba8,
            data: vec![200; 40 * 20 * 4],
        };
        let r = p.resize(Size::new(10, 5), Filter::Lanczos3).unwrap();
        assert_eq!((r.width, r.height, r.layout), (10, 5, Layout::Rgba8));
        assert_eq!(r.data.len(), 10 * 5 * 4);
        assert!(r.data.iter().all(|&v| v.abs_diff(200) <= 1));
    }
}
