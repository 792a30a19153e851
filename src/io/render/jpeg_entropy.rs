//! The Huffman decoding of a baseline JPEG's scan, for libjpeg to use instead of its own
//! (`jpeg_rows` puts it in place of libjpeg's `decode_mcu`; libjpeg does everything else).
//!
//! A 12 MP photo's render is ~70 % entropy decoding (BENCHMARKS.md, item 16), which libjpeg-turbo
//! does one code at a time: an 8-bit lookup for the code, then the coefficient's bits read
//! apart. Here one 10-bit lookup gives the code and the coefficient's value together for the
//! short codes that make up most of a photo (end-of-block and runs of zeros included), and the
//! bit buffer lives in registers for a whole block. The coefficients are the same as
//! libjpeg's, so are the pixels (tests in `jpeg_rows`), also where a file's data goes wrong as
//! libjpeg's rules have it: blocks left zero from the MCU in which the data runs out (a marker
//! or the end of the file in the middle of a scan) up to the next restart, and restart markers
//! missing or out of order resynchronised as its default `jpeg_resync_to_restart` does (tested
//! on damaged files), and a code the table does not have read as libjpeg reads it (17 bits
//! and a zero).
//!
//! What it covers: one interleaved Huffman scan with every component (baseline or extended
//! sequential, 8-bit), with or without restart intervals, and no fill bytes (0xFF 0xFF) in its
//! data. [`Layout::parse`] says `None` for anything else, which libjpeg then decodes itself.

/// Bits looked up at once.
const FAST_BITS: u32 = 10;

/// The zig-zag order (libjpeg's `jpeg_natural_order`), with 64 more entries pointing at the last
/// coefficient: runs in corrupt data may run past it (libjpeg does the same, with 16).
#[rustfmt::skip]
const NATURAL: [u8; 128] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
    20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
    59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
];

/// A run that ends the block: end-of-block in the one-lookup table.
const END_OF_BLOCK_RUN: i32 = 64;

/// One Huffman table, derived as libjpeg derives it (`jpeg_make_d_derived_tbl`).
struct Table {
    /// By the next [`FAST_BITS`] bits: `length << 8 | symbol` of a code that short, else 0.
    lookup: Box<[u16; 1 << FAST_BITS]>,
    /// AC tables only, by the next [`FAST_BITS`] bits: `value << 16 | run << 8 | bits` when the
    /// code and the coefficient's own bits both fit (end-of-block is run 64, sixteen zeros
    /// run 15 of a zero), else 0.
    coefficient: Box<[i32; 1 << FAST_BITS]>,
    /// The largest code of each length (-1: none), for codes longer than [`FAST_BITS`].
    max_code: [i32; 18],
    /// Added to a code of each length to find its symbol in `symbols`.
    offset: [i32; 17],
    symbols: [u8; 256],
}

impl Table {
    /// `counts[i]`: codes of length `i + 1`; `symbols`: in code order. `None` for a table
    /// libjpeg would refuse (`JERR_BAD_HUFF_TABLE`).
    fn new(counts: &[u8; 16], symbols: &[u8], dc: bool) -> Option<Table> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || total != symbols.len() || (dc && symbols.iter().any(|&s| s > 15)) {
            return None;
        }
        let mut table = Table {
            lookup: Box::new([0; 1 << FAST_BITS]),
            coefficient: Box::new([0; 1 << FAST_BITS]),
            max_code: [-1; 18],
            offset: [0; 17],
            symbols: [0; 256],
        };
        table.symbols[..total].copy_from_slice(symbols);
        let mut code: i32 = 0;
        let mut k = 0usize;
        for length in 1..=16u32 {
            let n = usize::from(counts[length as usize - 1]);
            table.offset[length as usize] = k as i32 - code;
            for _ in 0..n {
                if code >= 1 << length {
                    return None;
                }
                if length <= FAST_BITS {
                    table.fill(code as u32, length, symbols[k], dc);
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                table.max_code[length as usize] = code - 1;
            }
            code <<= 1;
        }
        table.max_code[17] = i32::MAX;
        Some(table)
    }

    /// The lookup entries of a code of `length` ≤ [`FAST_BITS`] bits.
    fn fill(&mut self, code: u32, length: u32, symbol: u8, dc: bool) {
        let free = FAST_BITS - length;
        for rest in 0..1u32 << free {
            let index = (code << free | rest) as usize;
            self.lookup[index] = (length as u16) << 8 | u16::from(symbol);
            if dc {
                continue;
            }
            let run = i32::from(symbol >> 4);
            let size = u32::from(symbol & 15);
            self.coefficient[index] = if size == 0 {
                // Sixteen zeros (ZRL), or the end of the block (libjpeg: any other size-0 code).
                let run = if run == 15 { 15 } else { END_OF_BLOCK_RUN };
                run << 8 | length as i32
            } else if length + size <= FAST_BITS {
                let bits = (rest >> (free - size)) as i32;
                extend(bits, size) << 16 | run << 8 | (length + size) as i32
            } else {
                0
            };
        }
    }
}

/// A coefficient's `size` bits as its value (JPEG's EXTEND: a leading 0 means negative).
#[inline(always)]
fn extend(bits: i32, size: u32) -> i32 {
    if bits < 1 << (size - 1) {
        bits - (1 << size) + 1
    } else {
        bits
    }
}

/// What the scan needs, from the file's markers up to its first scan header.
pub struct Layout {
    /// Where the entropy-coded data starts.
    pub data_start: usize,
    /// Each block of an MCU: the component's position in the scan, its DC and AC table.
    blocks: Vec<(usize, usize, usize)>,
    dc: [Option<TableSpec>; 4],
    ac: [Option<TableSpec>; 4],
    restart_interval: u32,
}

/// A Huffman table as a DHT segment defines it: code counts by length, symbols in code order.
struct TableSpec {
    counts: [u8; 16],
    symbols: Vec<u8>,
}

impl Layout {
    /// Reads the markers of `bytes` up to the first scan header. `None` unless the frame is
    /// baseline or extended sequential Huffman, 8-bit, and the first scan holds every
    /// component in one interleaved scan (a picture libjpeg decodes MCU by MCU as it goes).
    pub fn parse(bytes: &[u8]) -> Option<Layout> {
        let mut pos = 2;
        let mut frame: Option<Vec<(u8, usize, usize)>> = None; // (id, h, v)
        let mut dc: [Option<TableSpec>; 4] = Default::default();
        let mut ac: [Option<TableSpec>; 4] = Default::default();
        let mut restart_interval = 0;
        if bytes.get(..2)? != [0xFF, 0xD8] {
            return None;
        }
        loop {
            while bytes.get(pos) == Some(&0xFF) && bytes.get(pos + 1) == Some(&0xFF) {
                pos += 1;
            }
            if *bytes.get(pos)? != 0xFF {
                return None;
            }
            let marker = *bytes.get(pos + 1)?;
            pos += 2;
            if matches!(marker, 0x01 | 0xD0..=0xD7) {
                continue;
            }
            let len = usize::from(u16::from_be_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]));
            let segment = bytes.get(pos + 2..pos + len.checked_sub(2)? + 2)?;
            match marker {
                0xC0 | 0xC1 => {
                    if frame.is_some() || *segment.first()? != 8 {
                        return None;
                    }
                    let n = usize::from(*segment.get(5)?);
                    let mut components = Vec::with_capacity(n);
                    for c in 0..n {
                        let spec = segment.get(6 + 3 * c..9 + 3 * c)?;
                        let (h, v) = (usize::from(spec[1] >> 4), usize::from(spec[1] & 15));
                        if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                            return None;
                        }
                        components.push((spec[0], h, v));
                    }
                    frame = Some(components);
                }
                // Any other frame type (progressive, lossless, arithmetic): libjpeg's own.
                0xC2..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => return None,
                0xCC => return None,
                0xC4 => {
                    let mut rest = segment;
                    while !rest.is_empty() {
                        let class = rest[0] >> 4;
                        let id = usize::from(rest[0] & 15);
                        let counts: [u8; 16] = rest.get(1..17)?.try_into().ok()?;
                        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
                        let symbols = rest.get(17..17 + total)?.to_vec();
                        let table = Some(TableSpec { counts, symbols });
                        match (class, id) {
                            (0, 0..=3) => dc[id] = table,
                            (1, 0..=3) => ac[id] = table,
                            _ => return None,
                        }
                        rest = &rest[17 + total..];
                    }
                }
                0xDD => {
                    restart_interval =
                        u32::from(u16::from_be_bytes([*segment.first()?, *segment.get(1)?]));
                }
                0xDA => {
                    let components = frame?;
                    let n = usize::from(*segment.first()?);
                    let tail = segment.get(1 + 2 * n..4 + 2 * n)?;
                    if n != components.len() || tail != [0, 63, 0] || !(1..=4).contains(&n) {
                        return None;
                    }
                    let mut blocks = Vec::new();
                    for (scan_index, c) in (0..n).map(|c| (c, 1 + 2 * c)) {
                        let (id, tables) = (segment[c], segment[c + 1]);
                        let &(_, h, v) = components.iter().find(|comp| comp.0 == id)?;
                        let (d, a) = (usize::from(tables >> 4), usize::from(tables & 15));
                        if d > 3 || a > 3 {
                            return None;
                        }
                        // A single-component scan has one block an MCU, whatever its sampling.
                        let count = if n == 1 { 1 } else { h * v };
                        blocks.extend(std::iter::repeat_n((scan_index, d, a), count));
                    }
                    if blocks.len() > 10 || has_fill_bytes(bytes.get(pos + len..)?) {
                        return None;
                    }
                    return Some(Layout {
                        data_start: pos + len,
                        blocks,
                        dc,
                        ac,
                        restart_interval,
                    });
                }
                0xD8 | 0xD9 => return None,
                _ => {}
            }
            pos += len;
        }
    }

    /// Blocks in one MCU.
    pub fn blocks_in_mcu(&self) -> usize {
        self.blocks.len()
    }

    /// Each block's component, as its position in the scan (libjpeg's `MCU_membership`).
    pub fn membership(&self) -> impl Iterator<Item = usize> + '_ {
        self.blocks.iter().map(|b| b.0)
    }

    /// Components in the scan.
    pub fn components(&self) -> usize {
        self.blocks.last().map_or(0, |b| b.0 + 1)
    }
}

/// The decoding state of one scan: [`Decoder::decode_mcu`] is called once an MCU, in order.
pub struct Decoder {
    /// Per block of an MCU: component (scan position), DC table, AC table (indexes of `tables`).
    blocks: Vec<(usize, usize, usize)>,
    tables: Vec<Table>,
    predictions: [i32; 4],
    /// Unread bits, the next one the highest.
    bits: u64,
    count: u32,
    source: Source,
    /// The data ran out inside an MCU: from then on, up to the next restart, blocks stay zero
    /// (libjpeg's `insufficient_data`).
    pub insufficient: bool,
    restart_interval: u32,
    restarts_to_go: u32,
    next_restart: u8,
    /// Where blocks libjpeg discards are decoded to.
    scratch: [i16; 64],
}

impl Decoder {
    /// `None` when a table the scan uses is missing or invalid.
    pub fn new(layout: Layout) -> Option<Decoder> {
        let mut tables = Vec::new();
        let mut index = |slot: &Option<TableSpec>, dc: bool| {
            let spec = slot.as_ref()?;
            tables.push(Table::new(&spec.counts, &spec.symbols, dc)?);
            Some(tables.len() - 1)
        };
        let mut dc_index = [None; 4];
        let mut ac_index = [None; 4];
        let mut blocks = Vec::with_capacity(layout.blocks.len());
        for &(component, d, a) in &layout.blocks {
            if dc_index[d].is_none() {
                dc_index[d] = Some(index(&layout.dc[d], true)?);
            }
            if ac_index[a].is_none() {
                ac_index[a] = Some(index(&layout.ac[a], false)?);
            }
            blocks.push((component, dc_index[d]?, ac_index[a]?));
        }
        Some(Decoder {
            blocks,
            tables,
            predictions: [0; 4],
            bits: 0,
            count: 0,
            source: Source {
                pos: layout.data_start,
                stopped: false,
                padding: 0,
            },
            insufficient: false,
            restart_interval: layout.restart_interval,
            restarts_to_go: layout.restart_interval,
            next_restart: 0,
            scratch: [0; 64],
        })
    }

    /// The first byte of `data` not yet read: where libjpeg's marker reader goes on.
    pub fn position(&self) -> usize {
        self.source.pos
    }

    /// Decodes the next MCU of the scan in `data` (the whole file) into `blocks`, one a block
    /// of the MCU in order, zeroed by the caller; `None` for a block to decode and discard.
    pub fn decode_mcu(&mut self, data: &[u8], blocks: &mut [Option<&mut [i16; 64]>]) {
        if self.restart_interval != 0 {
            if self.restarts_to_go == 0 {
                self.restart(data);
            }
            self.restarts_to_go -= 1;
        }
        if self.insufficient {
            return;
        }
        for (b, out) in blocks.iter_mut().enumerate().take(self.blocks.len()) {
            let (component, dc, ac) = self.blocks[b];
            let block = match out {
                Some(block) => &mut **block,
                None => &mut self.scratch,
            };
            let (dc, ac) = (&self.tables[dc], &self.tables[ac]);
            let (mut bits, mut count) = (self.bits, self.count);
            if count < 32 {
                (bits, count) = self.source.refill(data, bits, count);
            }
            let size = u32::from(symbol(dc, &mut bits, &mut count) & 15);
            if size != 0 {
                // Wrapping, as the 16-bit coefficient it becomes: corrupt data may add up.
                let p = &mut self.predictions[component & 3];
                *p = p.wrapping_add(value(&mut bits, &mut count, size));
            }
            block[0] = self.predictions[component & 3] as i16;
            let mut k = 1usize;
            while k < 64 {
                if count < 32 {
                    (bits, count) = self.source.refill(data, bits, count);
                }
                let entry = ac.coefficient[(bits >> (64 - FAST_BITS)) as usize];
                if entry != 0 {
                    k += ((entry >> 8) & 127) as usize;
                    block[usize::from(NATURAL[k & 127]) & 63] = (entry >> 16) as i16;
                    let used = (entry & 255) as u32;
                    bits <<= used;
                    count -= used;
                    k += 1;
                    continue;
                }
                let rs = symbol(ac, &mut bits, &mut count);
                let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
                if size != 0 {
                    k += run;
                    block[usize::from(NATURAL[k & 127]) & 63] =
                        value(&mut bits, &mut count, size) as i16;
                    k += 1;
                } else if run == 15 {
                    k += 16;
                } else {
                    break;
                }
            }
            self.bits = bits;
            self.count = count;
        }
        if self.count < self.source.padding {
            // Bits that were never in the file went into this MCU.
            self.insufficient = true;
        }
    }

    /// Starts the next restart interval: drops the bits left of the last, resets the DC
    /// predictions and reads the restart marker, resynchronising as libjpeg's default
    /// `jpeg_resync_to_restart` does when it is not the one expected.
    fn restart(&mut self, data: &[u8]) {
        self.bits = 0;
        self.count = 0;
        self.source.padding = 0;
        self.predictions = [0; 4];
        self.restarts_to_go = self.restart_interval;
        let desired = self.next_restart;
        self.next_restart = (desired + 1) & 7;
        let restart = |n: u8| 0xD0 + (n & 7);
        let mut from = self.source.pos;
        loop {
            // Past the end, libjpeg's memory source supplies an end-of-image marker.
            let (at, marker) = next_marker(data, from).unwrap_or((data.len(), 0xD9));
            if marker < 0xC0 || marker == restart(desired + 7) || marker == restart(desired + 6) {
                // An invalid marker or an earlier restart: on to the next marker.
                from = at + 2;
            } else if !(0xD0..=0xD7).contains(&marker)
                || marker == restart(desired + 1)
                || marker == restart(desired + 2)
            {
                // Another marker, or one of the next two restarts: left for later; this
                // interval has no data (its first MCU is decoded from zeros, as libjpeg does).
                self.source.pos = at;
                self.source.stopped = true;
                return;
            } else {
                // The restart expected (or one too far off to resynchronise with): taken.
                self.source.pos = at + 2;
                self.source.stopped = false;
                self.insufficient = false;
                return;
            }
        }
    }
}

/// Whether `data` holds two 0xFF bytes in a row: fill bytes, which no encoder writes in a scan.
/// libjpeg-turbo reads them apart in its two paths: its fast path takes the second 0xFF for a
/// marker and decodes the rest of the MCU from zeros, into the MCU's blocks, before it gives
/// the MCU to its slow path, which skips the fill bytes, decodes the data behind them and
/// writes only its own non-zero coefficients, so the fast path's stay where the slow path has
/// zeros (found by the `jpeg_entropy` fuzz target: fuzz/regressions/jpeg_entropy/). Rather
/// than copy that, such a scan is left to libjpeg. Eight bytes at a time: a 12 MP photo's
/// 4 MB in well under a millisecond.
fn has_fill_bytes(data: &[u8]) -> bool {
    let mut words = data.chunks_exact(8);
    let mut previous_ff = false;
    for word in words.by_ref() {
        let value = u64::from_be_bytes(word.try_into().unwrap_or_default());
        let inverted = !value;
        if inverted.wrapping_sub(0x0101_0101_0101_0101) & !inverted & 0x8080_8080_8080_8080 == 0 {
            previous_ff = false;
            continue;
        }
        for &b in word {
            if b == 0xFF && previous_ff {
                return true;
            }
            previous_ff = b == 0xFF;
        }
    }
    for &b in words.remainder() {
        if b == 0xFF && previous_ff {
            return true;
        }
        previous_ff = b == 0xFF;
    }
    false
}

/// The next marker at or after `from`, as libjpeg's `next_marker` finds it (skipping other
/// bytes, fill bytes and stuffed zeros): where its 0xFF is (the last of any fill bytes) and its
/// code.
fn next_marker(data: &[u8], mut from: usize) -> Option<(usize, u8)> {
    loop {
        from += data.get(from..)?.iter().position(|&b| b == 0xFF)?;
        while data.get(from + 1) == Some(&0xFF) {
            from += 1;
        }
        match *data.get(from + 1)? {
            0 => from += 2,
            marker => return Some((from, marker)),
        }
    }
}

/// Decodes one symbol of `table` from `bits` (at least 17 valid bits).
#[inline(always)]
fn symbol(table: &Table, bits: &mut u64, count: &mut u32) -> u8 {
    let entry = table.lookup[(*bits >> (64 - FAST_BITS)) as usize];
    if entry != 0 {
        let length = u32::from(entry >> 8);
        *bits <<= length;
        *count -= length;
        return entry as u8;
    }
    for length in FAST_BITS + 1..=16 {
        let code = (*bits >> (64 - length)) as i32;
        if code <= table.max_code[length as usize] {
            *bits <<= length;
            *count -= length;
            return table.symbols[(code + table.offset[length as usize]) as usize & 255];
        }
    }
    // No code this long has these bits (corrupt data): like libjpeg, take 17 bits (it reads
    // one more before it gives up) and go on with a zero.
    *bits <<= 17;
    *count -= 17;
    0
}

/// A coefficient's `size` bits, taken from `bits`, as its value.
#[inline(always)]
fn value(bits: &mut u64, count: &mut u32, size: u32) -> i32 {
    let raw = (*bits >> (64 - size)) as i32;
    *bits <<= size;
    *count -= size;
    extend(raw, size)
}

/// Where the bits come from: the file, from `pos` on.
struct Source {
    /// Next byte of the file to read.
    pos: usize,
    /// A marker or the end of the data was reached: only zeros follow.
    stopped: bool,
    /// Zero bits in the decoder's `bits` that are not the file's (after `stopped`).
    padding: u32,
}

impl Source {
    /// Tops `bits` (`count` valid) up to at least 57 valid bits from `data`, undoing the
    /// 0xFF 0x00 byte stuffing. At a marker, or past the end, it adds zero bits (counted in
    /// `padding`) and reads no further (`stopped`): the marker is left for libjpeg's marker
    /// reader.
    #[inline(always)]
    fn refill(&mut self, data: &[u8], mut bits: u64, mut count: u32) -> (u64, u32) {
        if !self.stopped
            && let Some(next) = data.get(self.pos..self.pos + 8)
        {
            let word = u64::from_be_bytes(next.try_into().unwrap_or_default());
            // No 0xFF byte among the eight: take as many whole bytes as fit.
            let inverted = !word;
            if inverted.wrapping_sub(0x0101_0101_0101_0101) & !inverted & 0x8080_8080_8080_8080 == 0
            {
                let n = (63 - count) >> 3;
                bits |= (word >> (64 - 8 * n)) << (64 - count - 8 * n);
                self.pos += n as usize;
                return (bits, count + 8 * n);
            }
        }
        while count <= 56 {
            let mut byte = 0;
            if !self.stopped {
                match data.get(self.pos) {
                    Some(&0xFF) => {
                        let mut next = self.pos + 1;
                        while data.get(next) == Some(&0xFF) {
                            next += 1;
                        }
                        if data.get(next) == Some(&0) {
                            byte = 0xFF;
                            self.pos = next + 1;
                        } else {
                            self.stopped = true;
                        }
                    }
                    Some(&b) => {
                        byte = b;
                        self.pos += 1;
                    }
                    None => self.stopped = true,
                }
            }
            if self.stopped {
                self.padding += 8;
            }
            bits |= u64::from(byte) << (56 - count);
            count += 8;
        }
        (bits, count)
    }
}
