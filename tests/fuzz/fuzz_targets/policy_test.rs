//! Fuzzes `cairn::fuzz::policy_test`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::policy_test(data));
