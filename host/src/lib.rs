//! Cairn: a workflow runner whose tasks are sandboxed WebAssembly components.
//!
//! This crate is the host: the runtime and the `cairn` command-line tool.
//! Modules depend one way, from the CLI down:
//! `cli` → `sandbox` → {`secrets`, `name`, `digest`}.
//! See ARCHITECTURE.md for the map and the invariants each module keeps.

pub mod audit;
pub mod build;
pub mod cli;
pub mod diag;
pub mod digest;
pub mod dirhash;
#[doc(hidden)]
pub mod fuzz;
pub mod guard;
pub mod launch;
pub mod manifest;
pub mod name;
pub mod observe;
pub mod pg;
pub mod plan;
pub mod policy;
pub mod recover;
pub mod resume;
pub mod runner;
pub mod sandbox;
pub mod secrets;
pub mod serve;
pub mod state;
pub mod units;
pub mod workflow;
