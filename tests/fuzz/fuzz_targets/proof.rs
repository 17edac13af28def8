//! Fuzzes `cairn::fuzz::proof`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::proof(data));
