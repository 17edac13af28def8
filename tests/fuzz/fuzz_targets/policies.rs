//! Fuzzes `cairn::fuzz::policies`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::policies(data));
