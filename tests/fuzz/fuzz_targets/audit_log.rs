//! Fuzzes `cairn::fuzz::audit_log`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::audit_log(data));
