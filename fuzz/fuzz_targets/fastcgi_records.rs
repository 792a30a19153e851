//! Arbitrary bytes through the FastCGI params parser, the record decoder and a whole
//! connection (`imgserv::web::transport::fastcgi::fuzz_one`, the same entry point as the `fuzz_smoke`
//! unit test). A crash input belongs in `fuzz/regressions/`, which a unit test replays.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    imgserv::web::transport::fastcgi::fuzz_one(data);
});
