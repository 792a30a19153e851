//! A JPEG decoded with our entropy decoder and with libjpeg's
//! (`imgserv::io::render::entropy_check::fuzz_one`, the same entry point as the unit tests): same
//! pixels or the same error, else a crash. Seed it with the fixtures (fuzz/README.md). A crash
//! input belongs in `fuzz/regressions/jpeg_entropy/`, which a unit test replays.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    imgserv::io::render::entropy_check::fuzz_one(data);
});
