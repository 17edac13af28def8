//! End-to-end tests: the real `cairn` binary on real compiled guests.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly by design"
)]

mod approvals;
mod audit;
mod backfill;
mod bad_input;
mod build;
mod cli;
mod clock;
mod examples;
mod exec;
mod fanout;
mod gate;
mod hostile;
mod isolation;
mod languages;
mod limits;
mod manifests;
mod network;
mod observe;
mod policy;
mod recovery;
mod resume;
mod schedules;
mod schema;
mod serve;
mod support;
mod tokens;
mod toolchains;
mod torture;
mod ui;
mod wasi;
mod webhooks;
