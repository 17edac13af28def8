//! Fuzzes `cairn::fuzz::wasm`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::wasm(data));
