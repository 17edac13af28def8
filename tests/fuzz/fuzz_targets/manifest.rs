//! Fuzzes `cairn::fuzz::manifest`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::manifest(data));
