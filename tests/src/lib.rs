//! Paths of the guest programs built by `build.rs`, for the end-to-end tests.
//!
//! `HELLO` is the example task, `TASK` the test Cairn task (its `mode` input
//! picks a behaviour), `CMD_*` the wasm32-wasip2 command programs, `P1_*` the
//! same programs as wasm32-wasip1 core modules, `WAT_*` hand-written fixtures.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
