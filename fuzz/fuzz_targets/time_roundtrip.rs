//! `TimeFrames` parsing: any text either parses, and then its canonical form (`Display`) parses
//! back to an equal value and prints identically again (the canonical form is a fixed point); or
//! it fails with a `ParseError` whose span lies within the input on char boundaries and whose
//! `render` does not panic.
//!
//! Run: `cargo +nightly fuzz run time_roundtrip -- -dict=time.dict` (from `fuzz/`).

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use oco_core::constraint::TimeFrames;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    common::check_roundtrip::<TimeFrames>(&input);
});
