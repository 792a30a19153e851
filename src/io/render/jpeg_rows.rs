//! A colour JPEG decoded through libjpeg directly: all its rows (`jpeg::decode`), or a band of
//! them for the split decode of `jpeg::decode_resized_split` (two instances on the same bytes,
//! on two threads, each producing half of the output rows). A baseline scan's entropy decoding
//! is ours ([`jpeg_entropy`], ~12 % less CPU a 12 MP render; `IMGSERV_OWN_ENTROPY=0` leaves it
//! to libjpeg): after `jpeg_start_decompress`, `cinfo->entropy`, libjpeg's entropy module, is
//! pointed at ours, whose public part is the struct libjpeg calls through (`decode_mcu`, also
//! with no blocks for `jpeg_skip_scanlines`). `mozjpeg-sys` keeps that pointer and the scan's
//! MCU layout private, so they are read through [`Tail`], the end of the decompressor struct.
//! `mozjpeg-sys` is pinned to one version, and every offset this module relies on ([`LAYOUT`],
//! from `offset_of!`) is compared with the C compiler's own for that version's headers
//! (`jpeg_layout.c`, compiled by build.rs): by a test, and once a process before our decoder is
//! first installed; on any difference libjpeg keeps its own. Our decoder is installed only
//! when libjpeg's view of the scan (components, blocks per MCU, their components, spectral
//! selection, the source position) is the same as [`jpeg_entropy::Layout`]'s.
//!
//! The crate denies `unsafe_code`; this module is one of its three reviewed exceptions (with
//! `webp.rs` and `src/io/malloc.rs`). The safe `mozjpeg` crate does not expose `jpeg_skip_scanlines`, with which the
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

use std::mem;
use std::ops::Range;
use std::os::raw::{c_int, c_uint, c_ulong, c_void};
use std::panic::{self, AssertUnwindSafe};

use mozjpeg_sys as ffi;

use super::jpeg_entropy;

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
    bytes: &'a [u8],
    /// Our entropy decoder, once in place of libjpeg's ([`Decoder::own_entropy_decoding`]);
    /// dropped after `cinfo` is destroyed.
    entropy: Option<Box<Entropy>>,
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
                bytes,
                entropy: None,
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

    /// Starts decompressing, skips to row `rows.start` and reads the rows up to `rows.end`,
    /// with our entropy decoder where it applies if `own_entropy`. May unwind (libjpeg
    /// error); `None` when libjpeg stops short (no more rows).
    fn read(&mut self, rows: Range<u32>, own_entropy: bool) -> Option<Vec<u8>> {
        let width = self.cinfo.output_width as usize;
        let line = width * 3;
        let count = rows.end.checked_sub(rows.start)? as usize;
        // Not zeroed first (a 9 MB memset a 12 MP render at half scale): libjpeg writes every
        // row, and the length is set only when all were written.
        let mut data: Vec<u8> = Vec::with_capacity(count * line);
        // SAFETY: `cinfo` was initialised by `new` and its header read; the calls follow
        // libjpeg's order (start, skip, read). Each `jpeg_read_scanlines` call gets one row
        // pointer into `data`'s allocation with `line` = output_width × 3 bytes left behind it
        // (an RGB output row, the size libjpeg writes), and is asked for at most one row; each
        // successful call wrote its whole row, so after `count` of them the first
        // `count * line` bytes are initialised.
        unsafe {
            ffi::jpeg_start_decompress(&mut self.cinfo);
            if own_entropy {
                self.own_entropy_decoding();
            }
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
            let rows = data.spare_capacity_mut();
            for row in 0..count {
                let mut ptr = rows[row * line..].as_mut_ptr().cast::<u8>();
                if ffi::jpeg_read_scanlines(&mut self.cinfo, &mut ptr, 1) != 1 {
                    return None;
                }
            }
            data.set_len(count * line);
        }
        Some(data)
    }
}

impl Decoder<'_> {
    /// Puts [`jpeg_entropy::Decoder`] in place of libjpeg's entropy decoder, after
    /// `jpeg_start_decompress` and before the first MCU, when the file is one it covers and
    /// libjpeg's view of the scan is the same as ours; otherwise libjpeg keeps its own.
    fn own_entropy_decoding(&mut self) {
        if !layout_is_the_c_compilers() {
            return;
        }
        let Some(layout) = jpeg_entropy::Layout::parse(self.bytes) else {
            return;
        };
        let data_start = layout.data_start;
        // SAFETY: `cinfo` is initialised and started; `tail` covers the end of its struct
        // (size and alignment asserted at `TAIL_OFFSET`); reading its fields is reading
        // libjpeg's state, which nothing else touches during this call.
        let tail = unsafe { &mut *tail(&mut *self.cinfo) };
        let src = self.cinfo.src;
        // SAFETY: `src` is the memory source `new` set up (non-null after `jpeg_mem_src`).
        let (next, left) = unsafe { ((*src).next_input_byte, (*src).bytes_in_buffer) };
        let same_scan = tail.comps_in_scan as usize == layout.components()
            && tail.blocks_in_MCU as usize == layout.blocks_in_mcu()
            && tail.MCU_membership.iter().map(|&m| m as usize).take(layout.blocks_in_mcu()).eq(layout.membership())
            && (tail.Ss, tail.Se, tail.Ah, tail.Al, tail.unread_marker) == (0, 63, 0, 0, 0)
            // libjpeg has read the scan header and nothing of the scan's data yet.
            && next == self.bytes.as_ptr().wrapping_add(data_start)
            && left == self.bytes.len() - data_start.min(self.bytes.len());
        if !same_scan || tail.entropy.is_null() {
            return;
        }
        let Some(decoder) = jpeg_entropy::Decoder::new(layout) else {
            return;
        };
        let mut entropy = Box::new(Entropy {
            public: EntropyPublic {
                start_pass: restart_scan,
                decode_mcu,
                insufficient_data: 0,
            },
            decoder,
            bytes: self.bytes.as_ptr(),
            len: self.bytes.len(),
        });
        // libjpeg calls `cinfo->entropy`'s functions and reads its flag through the public
        // struct at its start; its own decoder stays allocated in its pool, unused.
        tail.entropy = (&mut entropy.public as *mut EntropyPublic).cast();
        self.entropy = Some(entropy);
    }
}

/// The end of `jpeg_decompress_struct` from `max_h_samp_factor` on (libjpeg 6.2 ABI, as
/// `mozjpeg-sys` declares it without `jpeg70_abi`), whose fields the crate keeps private: the
/// scan's MCU layout, `unread_marker` and the `entropy` module pointer.
#[repr(C)]
#[allow(non_snake_case)]
struct Tail {
    max_h_samp_factor: c_int,
    max_v_samp_factor: c_int,
    min_DCT_scaled_size: c_int,
    total_iMCU_rows: c_uint,
    sample_range_limit: *mut u8,
    comps_in_scan: c_int,
    cur_comp_info: [*mut c_void; 4],
    MCUs_per_row: c_uint,
    MCU_rows_in_scan: c_uint,
    blocks_in_MCU: c_int,
    MCU_membership: [c_int; 10],
    Ss: c_int,
    Se: c_int,
    Ah: c_int,
    Al: c_int,
    unread_marker: c_int,
    master: *mut c_void,
    main: *mut c_void,
    coef: *mut c_void,
    post: *mut c_void,
    inputctl: *mut c_void,
    marker: *mut c_void,
    entropy: *mut c_void,
    idct: *mut c_void,
    upsample: *mut c_void,
    cconvert: *mut c_void,
    cquantize: *mut c_void,
}

const TAIL_OFFSET: usize = mem::offset_of!(ffi::jpeg_decompress_struct, max_h_samp_factor);
// The tail ends where the struct does, at an offset aligned for it: a different layout (another
// ABI feature, another version) fails to compile instead of misreading.
const _: () =
    assert!(TAIL_OFFSET + mem::size_of::<Tail>() == mem::size_of::<ffi::jpeg_decompress_struct>());
const _: () = assert!(TAIL_OFFSET.is_multiple_of(mem::align_of::<Tail>()));

type Cinfo = ffi::jpeg_decompress_struct;

/// Every size and offset this module relies on, as Rust lays the structs out, in the order of
/// `imgserv_jpeg_layout` in `jpeg_layout.c` (the C compiler's, for the headers of the libjpeg
/// that `mozjpeg-sys` builds).
const LAYOUT: [(&str, usize); 33] = [
    (
        "sizeof(struct jpeg_decompress_struct)",
        mem::size_of::<Cinfo>(),
    ),
    (
        "_Alignof(struct jpeg_decompress_struct)",
        mem::align_of::<Cinfo>(),
    ),
    ("err", mem::offset_of!(Cinfo, common.err)),
    ("src", mem::offset_of!(Cinfo, src)),
    ("num_components", mem::offset_of!(Cinfo, num_components)),
    ("jpeg_color_space", mem::offset_of!(Cinfo, jpeg_color_space)),
    ("out_color_space", mem::offset_of!(Cinfo, out_color_space)),
    ("scale_num", mem::offset_of!(Cinfo, scale_num)),
    ("scale_denom", mem::offset_of!(Cinfo, scale_denom)),
    (
        "do_fancy_upsampling",
        mem::offset_of!(Cinfo, do_fancy_upsampling),
    ),
    ("output_width", mem::offset_of!(Cinfo, output_width)),
    ("output_height", mem::offset_of!(Cinfo, output_height)),
    (
        "output_components",
        mem::offset_of!(Cinfo, output_components),
    ),
    ("output_scanline", mem::offset_of!(Cinfo, output_scanline)),
    (
        "max_h_samp_factor",
        TAIL_OFFSET + mem::offset_of!(Tail, max_h_samp_factor),
    ),
    (
        "max_v_samp_factor",
        mem::offset_of!(Cinfo, max_v_samp_factor),
    ),
    (
        "comps_in_scan",
        TAIL_OFFSET + mem::offset_of!(Tail, comps_in_scan),
    ),
    (
        "blocks_in_MCU",
        TAIL_OFFSET + mem::offset_of!(Tail, blocks_in_MCU),
    ),
    (
        "MCU_membership",
        TAIL_OFFSET + mem::offset_of!(Tail, MCU_membership),
    ),
    ("sizeof MCU_membership", mem::size_of::<[c_int; 10]>()),
    ("Ss", TAIL_OFFSET + mem::offset_of!(Tail, Ss)),
    ("Se", TAIL_OFFSET + mem::offset_of!(Tail, Se)),
    ("Ah", TAIL_OFFSET + mem::offset_of!(Tail, Ah)),
    ("Al", TAIL_OFFSET + mem::offset_of!(Tail, Al)),
    (
        "unread_marker",
        TAIL_OFFSET + mem::offset_of!(Tail, unread_marker),
    ),
    ("entropy", TAIL_OFFSET + mem::offset_of!(Tail, entropy)),
    (
        "jpeg_source_mgr.next_input_byte",
        mem::offset_of!(ffi::jpeg_source_mgr, next_input_byte),
    ),
    (
        "jpeg_source_mgr.bytes_in_buffer",
        mem::offset_of!(ffi::jpeg_source_mgr, bytes_in_buffer),
    ),
    (
        "sizeof(struct jpeg_entropy_decoder)",
        mem::size_of::<EntropyPublic>(),
    ),
    (
        "jpeg_entropy_decoder.start_pass",
        mem::offset_of!(EntropyPublic, start_pass),
    ),
    (
        "jpeg_entropy_decoder.decode_mcu",
        mem::offset_of!(EntropyPublic, decode_mcu),
    ),
    (
        "jpeg_entropy_decoder.insufficient_data",
        mem::offset_of!(EntropyPublic, insufficient_data),
    ),
    // `Tail` is the 6.2 ABI's (no `jpeg70_abi` feature).
    ("JPEG_LIB_VERSION", 62),
];

unsafe extern "C" {
    /// `jpeg_layout.c`'s table: the C compiler's sizes and offsets, in [`LAYOUT`]'s order.
    static imgserv_jpeg_layout: [usize; 0];
    static imgserv_jpeg_layout_len: usize;
}

/// The C compiler's side of [`LAYOUT`].
fn c_layout() -> &'static [usize] {
    // SAFETY: `jpeg_layout.c` defines both: a constant array of `imgserv_jpeg_layout_len`
    // `size_t`s (`usize` on every target Rust supports), never written.
    unsafe {
        std::slice::from_raw_parts(
            std::ptr::addr_of!(imgserv_jpeg_layout).cast::<usize>(),
            imgserv_jpeg_layout_len,
        )
    }
}

/// Whether every entry of [`LAYOUT`] is the C compiler's (compared once a process).
fn layout_is_the_c_compilers() -> bool {
    static SAME: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SAME.get_or_init(|| c_layout().iter().copied().eq(LAYOUT.iter().map(|e| e.1)))
}

/// The [`Tail`] of `cinfo`.
fn tail(cinfo: *mut ffi::jpeg_decompress_struct) -> *mut Tail {
    cinfo.cast::<u8>().wrapping_add(TAIL_OFFSET).cast()
}

/// libjpeg's `struct jpeg_entropy_decoder` (jpegint.h): what the rest of libjpeg uses of an
/// entropy decoder.
#[repr(C)]
struct EntropyPublic {
    start_pass: unsafe extern "C-unwind" fn(*mut ffi::jpeg_decompress_struct),
    decode_mcu: unsafe extern "C-unwind" fn(
        *mut ffi::jpeg_decompress_struct,
        *mut ffi::JBLOCKROW,
    ) -> ffi::boolean,
    insufficient_data: ffi::boolean,
}

/// Our entropy decoder as libjpeg sees it: the public part first, so that `cinfo->entropy`
/// points at both.
#[repr(C)]
struct Entropy {
    public: EntropyPublic,
    decoder: jpeg_entropy::Decoder,
    /// The file (`Decoder::bytes`, which outlives the decompressor).
    bytes: *const u8,
    len: usize,
}

/// `start_pass`: called for a new scan, which the files we decode do not have (libjpeg stops
/// with an error at a second scan of a single-scan file before calling it); nothing to do.
unsafe extern "C-unwind" fn restart_scan(_cinfo: *mut ffi::jpeg_decompress_struct) {}

/// `decode_mcu`: decodes the next MCU into `mcu_data`'s blocks (libjpeg zeroed them), or
/// discards it when `mcu_data` is null (`jpeg_skip_scanlines`), then moves libjpeg's source to
/// where our decoder stopped reading.
unsafe extern "C-unwind" fn decode_mcu(
    cinfo: *mut ffi::jpeg_decompress_struct,
    mcu_data: *mut ffi::JBLOCKROW,
) -> ffi::boolean {
    // SAFETY: libjpeg calls this only through `cinfo->entropy`, which `own_entropy_decoding`
    // pointed at an `Entropy` that lives until the decompressor is destroyed; `bytes`/`len`
    // are the file libjpeg's memory source reads, alive as long. `mcu_data`, when not null,
    // holds `blocks_in_MCU` pointers to distinct blocks of 64 coefficients (libjpeg's MCU
    // buffer), which `own_entropy_decoding` checked is our layout's count; no other
    // reference to them exists during the call.
    unsafe {
        let tail = &mut *tail(cinfo);
        let entropy = &mut *tail.entropy.cast::<Entropy>();
        let data = std::slice::from_raw_parts(entropy.bytes, entropy.len);
        let mut blocks: [Option<&mut [i16; 64]>; 10] = Default::default();
        let n = (tail.blocks_in_MCU as usize).min(10);
        if !mcu_data.is_null() {
            for (b, slot) in blocks.iter_mut().enumerate().take(n) {
                *slot = (*mcu_data.add(b)).as_mut();
            }
        }
        entropy.decoder.decode_mcu(data, &mut blocks[..n]);
        entropy.public.insufficient_data = ffi::boolean::from(entropy.decoder.insufficient);
        let pos = entropy.decoder.position().min(entropy.len);
        let src = (*cinfo).src;
        (*src).next_input_byte = entropy.bytes.add(pos);
        (*src).bytes_in_buffer = entropy.len - pos;
    }
    1
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
    decode_rows_with(bytes, params, rows, own_entropy())
}

/// Whether baseline scans go through our entropy decoder (`IMGSERV_OWN_ENTROPY=0`: libjpeg's
/// own, for comparisons).
fn own_entropy() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("IMGSERV_OWN_ENTROPY").is_none_or(|v| v != "0"))
}

/// [`decode_rows`], with our entropy decoder or (`own_entropy` false) libjpeg's.
pub(super) fn decode_rows_with(
    bytes: &[u8],
    params: Params,
    rows: Range<u32>,
    own_entropy: bool,
) -> Result<Option<Band>, String> {
    let first = rows.start;
    let data = guarded(|| {
        let mut d = Decoder::new(bytes, params);
        if !d.is_colour() {
            return None;
        }
        d.read(rows, own_entropy)
    })?;
    Ok(data.map(|data| Band { first, data }))
}

/// Decodes all rows of a colour JPEG: the output geometry and the RGB rows; `Ok(None)` for gray,
/// CMYK and other colour spaces, and when libjpeg delivers fewer rows than it announced.
pub fn decode_all(bytes: &[u8], params: Params) -> Result<Option<(Geometry, Vec<u8>)>, String> {
    guarded(|| {
        let mut d = Decoder::new(bytes, params);
        if !d.is_colour() {
            return None;
        }
        let geometry = d.geometry();
        let data = d.read(0..geometry.height, own_entropy())?;
        // SAFETY: all rows were read; finishing lets libjpeg read up to the end of the image,
        // as the `mozjpeg` crate's decode does (an error unwinds to `guarded`).
        unsafe { ffi::jpeg_finish_decompress(&mut d.cinfo) };
        Some((geometry, data))
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Vec<(String, Vec<u8>)> {
        let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("tests/fixtures")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    type Decoded = Result<Option<Band>, String>;

    /// Both decoders' output for `bytes`, all rows (`None` where libjpeg has no colour picture).
    fn both(bytes: &[u8], params: Params) -> Option<(Decoded, Decoded)> {
        let geometry = open(bytes, params).ok()??;
        // Not the decompression bomb (65,500² declared): the probe refuses it before decoding.
        if u64::from(geometry.width) * u64::from(geometry.height) > 50_000_000 {
            return None;
        }
        let rows = 0..geometry.height;
        Some((
            decode_rows_with(bytes, params, rows.clone(), true),
            decode_rows_with(bytes, params, rows, false),
        ))
    }

    /// Whether libjpeg decodes `bytes` with our entropy decoder.
    fn takes_our_decoder(bytes: &[u8]) -> bool {
        guarded(|| {
            let mut d = Decoder::new(
                bytes,
                Params {
                    scale_num: 1,
                    fancy: false,
                },
            );
            d.is_colour() && d.read(0..1, true).is_some() && d.entropy.is_some()
        })
        .unwrap_or(false)
    }

    fn same(a: &Decoded, b: &Decoded) -> bool {
        match (a, b) {
            (Ok(Some(a)), Ok(Some(b))) => a.first == b.first && a.data == b.data,
            (Ok(None), Ok(None)) | (Err(_), Err(_)) => true,
            _ => false,
        }
    }

    #[test]
    fn every_offset_relied_on_is_the_c_compilers() {
        let c = c_layout();
        assert_eq!(
            c.len(),
            LAYOUT.len(),
            "jpeg_layout.c and LAYOUT list the same entries"
        );
        let wrong: Vec<String> = LAYOUT
            .iter()
            .zip(c)
            .filter(|((_, rust), c)| rust != *c)
            .map(|((name, rust), c)| format!("{name}: Rust {rust}, C {c}"))
            .collect();
        assert!(
            wrong.is_empty(),
            "libjpeg's layout is not Tail's: {wrong:?}"
        );
        assert!(layout_is_the_c_compilers());
    }

    #[test]
    fn our_entropy_decoding_gives_libjpegs_pixels() {
        let mut hooked = 0;
        for (name, bytes) in fixtures() {
            // The 12 MP photo at two scales only: this test runs unoptimised.
            let scales: &[u8] = if bytes.len() > 1 << 20 {
                &[4, 1]
            } else {
                &[8, 4, 2, 1]
            };
            for &scale_num in scales {
                for fancy in [true, false] {
                    let params = Params { scale_num, fancy };
                    let Some((ours, theirs)) = both(&bytes, params) else {
                        continue;
                    };
                    assert!(
                        same(&ours, &theirs),
                        "{name} at {scale_num}/8, fancy {fancy}"
                    );
                }
            }
            if takes_our_decoder(&bytes) {
                hooked += 1;
            }
        }
        // Baseline photos, the EXIF orientation set, one with restart intervals.
        assert!(hooked >= 15, "{hooked} files took our decoder");
    }

    #[test]
    fn damaged_scans_decode_as_libjpeg_decodes_them() {
        // Restart intervals (30 MCUs) and none; every damage keeps the file's size.
        for name in [
            "jpeg-malformed-exif-decodable-480x640.jpg",
            "photo-rocket-640x427.jpg",
        ] {
            let bytes = std::fs::read(format!(
                "{}/tests/fixtures/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let start = jpeg_entropy::Layout::parse(&bytes)
                .expect("a baseline scan")
                .data_start;
            let params = Params {
                scale_num: 8,
                fancy: true,
            };
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            let mut next = |n: usize| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % n as u64) as usize
            };
            for round in 0..100 {
                let mut damaged = bytes.clone();
                let at = start + next(bytes.len() - start - 2);
                match round % 5 {
                    // A flipped byte, a marker in the middle, a run of 0xFF, noise, the end cut
                    // off.
                    0 => damaged[at] ^= 1 << next(8),
                    1 => damaged[at..at + 2].copy_from_slice(&[0xFF, 0xD0 + next(8) as u8]),
                    2 => damaged[at..(at + 16).min(bytes.len())].fill(0xFF),
                    3 => {
                        for b in &mut damaged[at..(at + 4096).min(bytes.len())] {
                            *b = next(256) as u8;
                        }
                    }
                    _ => damaged.truncate(at),
                }
                // Never a panic, a crash or a hang, and libjpeg's own verdict and pixels: the
                // same zeros after the data runs out, the same resynchronisation at restarts.
                let Some((ours, theirs)) = both(&damaged, params) else {
                    continue;
                };
                assert!(same(&ours, &theirs), "{name} round {round}");
            }
        }
    }
}
