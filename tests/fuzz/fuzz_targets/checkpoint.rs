//! Fuzzes `cairn::fuzz::checkpoint`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::checkpoint(data));
