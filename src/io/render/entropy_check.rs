//! The differential check of our entropy decoder ([`super::jpeg_entropy`]) against libjpeg's
//! own: a JPEG decoded both ways ([`super::jpeg_rows`], with and without ours) must give the
//! same pixels, or the same error. The `jpeg_entropy` fuzz target runs [`fuzz_one`] on inputs
//! mutated from the fixtures (fuzz/README.md); the tests here run it on a few hundred mutated
//! fixtures and on the fuzzer's regressions, so plain `cargo test` exercises it.
//!
//! It does not judge the pixels themselves (libjpeg's are the reference), nor decode what our
//! decoder never sees: gray, CMYK and progressive files take libjpeg's path on both sides.

use std::ops::Range;

use super::jpeg_rows::{self, Params};

/// Source pixels above which an input is skipped: a header may declare a huge picture for a
/// few bytes of data, and the fuzzer's time is better spent on more inputs than on its zeros.
const MAX_PIXELS: u64 = 1 << 22;

/// The fuzz target's body: panics with [`difference`]'s description when the two decoders
/// disagree on `data`.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    if let Some(difference) = difference(data) {
        panic!("our entropy decoder differs from libjpeg's: {difference}");
    }
}

/// How the two decoders disagree on `data`, if they do. The output scale and upsampling
/// follow from the input's length, so the fuzzer reaches them all. Compared: all rows, and the
/// lower half as the split decode reads it (libjpeg skipping the upper rows, which runs our
/// decoder with no blocks to fill).
pub fn difference(data: &[u8]) -> Option<String> {
    let params = Params {
        scale_num: [8, 4, 2, 1][data.len() % 4],
        fancy: (data.len() / 4).is_multiple_of(2),
    };
    let geometry = jpeg_rows::open(data, params).ok()??;
    let scale = u64::from(8 / params.scale_num);
    let pixels = u64::from(geometry.width) * u64::from(geometry.height) * scale * scale;
    if pixels > MAX_PIXELS {
        return None;
    }
    let imcu = geometry.imcu_rows.max(1);
    let lower = geometry.height / 2 / imcu * imcu;
    [0..geometry.height, lower..geometry.height]
        .into_iter()
        .find_map(|rows| compare(data, params, rows))
}

/// Rows `rows` both ways: `None` when the results are the same.
fn compare(data: &[u8], params: Params, rows: Range<u32>) -> Option<String> {
    let ours = jpeg_rows::decode_rows_with(data, params, rows.clone(), true);
    let theirs = jpeg_rows::decode_rows_with(data, params, rows.clone(), false);
    let at = format!(
        "rows {rows:?} at {}/8, fancy {}",
        params.scale_num, params.fancy
    );
    match (ours, theirs) {
        (Ok(Some(a)), Ok(Some(b))) if a.first == b.first && a.data == b.data => None,
        (Ok(Some(a)), Ok(Some(b))) => {
            let first = a.data.iter().zip(&b.data).position(|(x, y)| x != y);
            Some(format!(
                "{at}: pixels differ (lengths {} and {}, first different byte {first:?})",
                a.data.len(),
                b.data.len()
            ))
        }
        (Ok(None), Ok(None)) => None,
        (Err(a), Err(b)) if a == b => None,
        (a, b) => Some(format!(
            "{at}: ours {}, libjpeg's {}",
            verdict(&a),
            verdict(&b)
        )),
    }
}

fn verdict(result: &Result<Option<jpeg_rows::Band>, String>) -> String {
    match result {
        Ok(Some(band)) => format!("{} bytes of pixels", band.data.len()),
        Ok(None) => "fewer rows than announced".into(),
        Err(e) => format!("error {e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    use crate::io::render::fixture;

    /// A xorshift generator: the same mutations on every run.
    struct Mutator(u64);

    impl Mutator {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }

        /// One to four of the fuzzer's kinds of damage, anywhere in the file (headers and
        /// tables included, where most inputs become ones libjpeg refuses or decodes itself).
        fn mutate(&mut self, original: &[u8]) -> Vec<u8> {
            let mut bytes = original.to_vec();
            for _ in 0..1 + self.below(4) {
                let len = bytes.len();
                let at = self.below(len);
                match self.below(7) {
                    0 => bytes[at] ^= 1 << self.below(8),
                    1 => bytes[at] = self.below(256) as u8,
                    2 => {
                        let marker = [0xD0 + self.below(8) as u8, 0xD9, 0x00, 0xFF, 0xC4];
                        let code = marker[self.below(marker.len())];
                        bytes.splice(at..at, [0xFF, code]);
                    }
                    3 => bytes.truncate(at.max(2)),
                    4 => {
                        let end = (at + 1 + self.below(64)).min(len);
                        bytes.drain(at..end);
                    }
                    5 => {
                        let end = (at + 1 + self.below(64)).min(len);
                        let chunk = bytes[at..end].to_vec();
                        let to = self.below(len);
                        bytes.splice(to..to, chunk);
                    }
                    _ => {
                        let end = (at + 1 + self.below(32)).min(len);
                        for b in &mut bytes[at..end] {
                            *b = self.below(256) as u8;
                        }
                    }
                }
            }
            bytes
        }
    }

    #[test]
    fn mutated_fixtures_decode_the_same_both_ways() {
        // Restart intervals (30 MCUs), 4:2:0 and a wide one of 50 rows, a 1×1, a progressive
        // one (libjpeg's decoder on both sides: the check itself is checked to pass there).
        let seeds = [
            ("jpeg-malformed-exif-decodable-480x640.jpg", 150),
            ("panorama-wide-4000x50.jpg", 60),
            ("photo-rocket-640x427.jpg", 40),
            ("tiny-1x1.jpg", 40),
            ("jpeg-progressive-cat-320x240.jpg", 20),
        ];
        let mut mutator = Mutator(0x2545_F491_4F6C_DD1D);
        let mut decoded = 0;
        for (name, rounds) in seeds {
            let original = fixture(name);
            assert_eq!(difference(&original), None, "{name}");
            for round in 0..rounds {
                let bytes = mutator.mutate(&original);
                if let Some(difference) = difference(&bytes) {
                    panic!("{name}, mutation {round}: {difference}");
                }
                decoded += usize::from(
                    jpeg_rows::open(
                        &bytes,
                        Params {
                            scale_num: 8,
                            fancy: true,
                        },
                    )
                    .is_ok_and(|g| g.is_some()),
                );
            }
        }
        // Most mutants still have a colour picture to decode: the check is not vacuous.
        assert!(decoded >= 200, "{decoded} mutants decoded");
    }

    #[test]
    fn fuzz_regressions_replay() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/jpeg_entropy");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "md") {
                let bytes = std::fs::read(&path).unwrap();
                assert_eq!(difference(&bytes), None, "{}", path.display());
            }
        }
    }
}
