//! The `cairn` binary's outer shell: version, usage errors, unbuilt commands.
//!
//! Also the reason `cargo test --workspace` always builds a fresh `cairn`
//! binary (cargo builds a package's binaries for its integration tests),
//! which the end-to-end tests in `tests/` then run.
#![allow(clippy::expect_used, reason = "tests fail loudly by design")]

use std::process::Command;

fn cairn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .expect("run cairn")
}

#[test]
fn version_names_the_package_version() {
    let out = cairn(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("cairn {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_and_say_what_to_do() {
    let out = cairn(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: cairn"));
    let out = cairn(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand 'frobnicate'"));
}
