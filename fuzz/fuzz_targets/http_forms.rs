//! Arbitrary bytes through the parsers of a page's request: the `Cookie` header, urlencoded
//! and multipart form bodies (`imgserv::io::http::form::fuzz_one`, the same entry point as the
//! `fuzz_smoke` unit test in `io::http::form`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    imgserv::io::http::form::fuzz_one(data);
});
