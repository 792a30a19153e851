//! A band of a colour JPEG's rows decoded through libjpeg directly, for the split decode of
//! `jpeg::decode_resized_split`: two instances on the same bytes, on two threads, each producing
//! half of the output rows.
//!
//! The crate denies `unsafe_code`; this module is one of its three reviewed exceptions (with
//! `webp.rs` and `src/malloc.rs`). The safe `mozjpeg` crate does not expose `jpeg_skip_scanlines`, with which the
//! instance decoding the lower band skips the upper one (for a baseline file the skipped rows
//! are still entropy-decoded, but not inverse-transformed, upsampled or colour-converted; for a
//! progressive one the coefficients are all decoded by `jpeg_start_decompress` anyway and the
//! skip costs nothing), nor stopping after some rows without an error. So [`decode_rows`]
//! calls libjpeg through `mozjpeg-sys` (the copy the `mozjpeg` crate links).
//!
//! Errors: libjpeg reports a fatal error by calling `error_exit`, which must not return. As in
//! the `mozjpeg` crate (its `errormgr.rs`), ours unwinds (`resume_unwind` with the message) out
//! through the C frames, which `mozjpeg-sys` declares `extern "C-unwind"`, and [`decode_rows`]
//! catches it with `catch_unwind`; the decompressor is then destroyed by [`Decoder`]'s `Drop`,
//! which frees everything libjpeg allocated. Warnings (corrupt entropy data, a file ending
//! mid-scan) are silenced, as in the `mozjpeg` crate: `jpeg::parse_header` has already checked
//! that the data is complete.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem;
use std::ops::Range;
use std::os::raw::{c_int, c_ulong};
use std::panic::{self, AssertUnwindSafe};

use mozjpeg_sys as ffi;

/// How the output is scaled and upsampled; both instances of a split decode must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// DCT scale numerator over 8 (8, 4, 2 or 1).
    pub scale_num: u8,
    /// Interpolated chroma upsampling (libjpeg's `do_fancy_upsampling`).
    pub fancy: bool,
}

/// What [`open`] found: the scaled output size and the height of one iMCU row in output rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub imcu_rows: u32,
}

/// Rows `first..first + data.len() / (width * 3)` of the scaled output, RGB, no padding.
#[derive(Debug)]
pub struct Band {
    pub first: u32,
    pub data: Vec<u8>,
}

/// A libjpeg decompressor over `bytes` with our error manager. `cinfo` and `err` are boxed so
/// that the pointers libjpeg keeps (`cinfo.err`, and the sub-objects' back references through
/// the calls) stay valid while the struct is moved around.
struct Decoder<'a> {
    cinfo: Box<ffi::jpeg_decompress_struct>,
    _err: Box<ffi::jpeg_error_mgr>,
    _bytes: PhantomData<&'a [u8]>,
}

impl<'a> Decoder<'a> {
    /// Creates the decompressor and reads the header. May unwind (libjpeg error).
    fn new(bytes: &'a [u8], params: Params) -> Decoder<'a> {
        // SAFETY: an all-zero `jpeg_error_mgr` and `jpeg_decompress_struct` are valid bit
        // patterns (plain C structs of integers, pointers and `Option` function pointers);
        // `jpeg_std_error` fills in the error manager's defaults, and `jpeg_create_decompress`
        // initialises `cinfo` (its `err` set first, as libjpeg requires). `bytes` outlives the
        // decoder (the `'a` of `_bytes`), so the memory source libjpeg reads from stays valid;
        // libjpeg only reads from it. The decoder owns both boxes, so `Drop` destroys `cinfo`
        // before the error manager it points to is freed.
        unsafe {
            let mut err: Box<ffi::jpeg_error_mgr> = Box::new(mem::zeroed());
            ffi::jpeg_std_error(&mut err);
            err.error_exit = Some(unwind_error_exit);
            err.emit_message = Some(silence_message);
            let mut cinfo: Box<ffi::jpeg_decompress_struct> = Box::new(mem::zeroed());
            cinfo.common.err = &mut *err;
            ffi::jpeg_create_decompress(&mut *cinfo);
            let mut d = Decoder {
                cinfo,
                _err: err,
                _bytes: PhantomData,
            };
            ffi::jpeg_mem_src(&mut d.cinfo, bytes.as_ptr(), bytes.len() as c_ulong);
            ffi::jpeg_read_header(&mut d.cinfo, 1);
            d.cinfo.scale_num = params.scale_num.into();
            d.cinfo.scale_denom = 8;
            d.cinfo.do_fancy_upsampling = ffi::boolean::from(params.fancy);
            d.cinfo.out_color_space = ffi::J_COLOR_SPACE::JCS_RGB;
            ffi::jpeg_calc_output_dimensions(&mut d.cinfo);
            d
        }
    }

    /// Whether this is a three-component YCbCr or RGB file (what the split handles; gray and
    /// CMYK files stay on the single-thread path).
    fn is_colour(&self) -> bool {
        self.cinfo.num_components == 3
            && matches!(
                self.cinfo.jpeg_color_space,
                ffi::J_COLOR_SPACE::JCS_YCbCr | ffi::J_COLOR_SPACE::JCS_RGB
            )
    }

    fn geometry(&self) -> Geometry {
        Geometry {
            width: self.cinfo.output_width,
            height: self.cinfo.output_height,
            // An iMCU row is `max_v_samp_factor` blocks of `scale_num` output rows each.
            imcu_rows: u32::try_from(self.cinfo.max_v_samp_factor)
                .unwrap_or(1)
                .max(1)
                * self.cinfo.scale_num.max(1),
        }
    }

    /// Starts decompressing, skips to row `rows.start` and reads the rows up to `rows.end`.
    /// May unwind (libjpeg error); `None` when libjpeg stops short (no more rows).
    fn read(&mut self, rows: Range<u32>) -> Option<Vec<u8>> {
        let width = self.cinfo.output_width as usize;
        let line = width * 3;
        let count = rows.end.checked_sub(rows.start)? as usize;
        let mut data = vec![0u8; count * line];
        // SAFETY: `cinfo` was initialised by `new` and its header read; the calls follow
        // libjpeg's order (start, skip, read). Each `jpeg_read_scanlines` call gets one row
        // pointer into `data` with `line` = output_width × 3 bytes left behind it (an RGB
        // output row, the size libjpeg writes), and is asked for at most one row.
        unsafe {
            ffi::jpeg_start_decompress(&mut self.cinfo);
            if self.cinfo.output_width as usize != width
                || self.cinfo.output_components != 3
                || self.cinfo.output_height < rows.end
            {
                return None;
            }
            let mut skipped = 0;
            while skipped < rows.start {
                let n = ffi::jpeg_skip_scanlines(&mut self.cinfo, rows.start - skipped);
                if n == 0 {
                    return None;
                }
                skipped += n;
            }
            if self.cinfo.output_scanline != rows.start {
                return None;
            }
            for row in data.chunks_exact_mut(line) {
                let mut ptr = row.as_mut_ptr();
                if ffi::jpeg_read_scanlines(&mut self.cinfo, &mut ptr, 1) != 1 {
                    return None;
                }
            }
        }
        Some(data)
    }
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        // SAFETY: `cinfo` was initialised by `jpeg_create_decompress` in `new`, and is
        // destroyed once, here; destroying is allowed in any state (also after an unwind out
        // of libjpeg, or before the image is finished) and frees all of libjpeg's memory.
        unsafe { ffi::jpeg_destroy_decompress(&mut self.cinfo) }
    }
}

/// Reads the header of `bytes` with `params`: the output geometry for a colour file, `None` for
/// gray, CMYK and other colour spaces.
pub fn open(bytes: &[u8], params: Params) -> Result<Option<Geometry>, String> {
    guarded(|| {
        let d = Decoder::new(bytes, params);
        d.is_colour().then(|| d.geometry())
    })
}

/// Decodes output rows `rows` of a colour JPEG (one [`open`] accepted, with the same `params`).
/// `Ok(None)` when libjpeg delivers fewer rows (or a different geometry) than expected.
pub fn decode_rows(bytes: &[u8], params: Params, rows: Range<u32>) -> Result<Option<Band>, String> {
    let first = rows.start;
    let data = guarded(|| {
        let mut d = Decoder::new(bytes, params);
        if !d.is_colour() {
            return None;
        }
        d.read(rows)
    })?;
    Ok(data.map(|data| Band { first, data }))
}

/// Runs `f`, turning an unwind out of libjpeg (our `error_exit`) into its message.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "libjpeg error".into())
    })
}

/// libjpeg's `error_exit`: formats the message and unwinds (must not return).
#[cold]
extern "C-unwind" fn unwind_error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    let mut buffer = [0u8; 80];
    // SAFETY: `cinfo.err` points to our error manager (set in `Decoder::new`), whose
    // `format_message` was set by `jpeg_std_error`; it writes at most JMSG_LENGTH_MAX (80)
    // bytes, NUL-terminated, into the buffer. The declared parameter type (`&[u8; 80]`) is
    // mozjpeg-sys's; the buffer is written through the pointer, as in the `mozjpeg` crate.
    let msg = unsafe {
        match cinfo.err.as_ref().and_then(|e| e.format_message) {
            Some(format) => {
                let format = mem::transmute::<
                    unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, &[u8; 80]),
                    unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, *mut u8),
                >(format);
                format(cinfo, buffer.as_mut_ptr());
                let text = buffer.split(|&c| c == 0).next().unwrap_or_default();
                String::from_utf8_lossy(text).into_owned()
            }
            None => "unknown error".into(),
        }
    };
    panic::resume_unwind(Box::new(format!("libjpeg fatal error: {msg}")));
}

/// libjpeg's `emit_message`: warnings and trace messages are dropped.
#[cold]
extern "C-unwind" fn silence_message(_cinfo: &mut ffi::jpeg_common_struct, _level: c_int) {}
