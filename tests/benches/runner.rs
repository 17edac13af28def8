//! `cargo bench -p cairn-tests --bench runner`: what the orchestrator costs
//! per task, with state, policy and audit on.
//!
//! Side by side in one run:
//! - the bare wasmtime loop of the sandbox benchmark (per task);
//! - 10,000 trivial tasks through `cairn::runner::run`: all independent
//!   (wide), one long chain, and the 1,000-task DAG (10 wide x 100 deep) of
//!   PERFORMANCE.md's peer table — each task preflight-authorized, its
//!   attempt recorded in the audit log (synced) and in SQLite, a signed
//!   checkpoint at the end;
//! - warm `cairn run`s of the hello and ETL examples, as processes (needs
//!   `cargo build --release -p cairn` and the examples built: `cairn build`).
//!
//! Prints a table; the goal is per-task overhead within 2x of the bare loop.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark fails loudly"
)]

#[path = "support/bare.rs"]
mod bare;
#[path = "support/workflow.rs"]
mod workflow;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn::sandbox::{EngineSettings, Sandbox};
use workflow::Bench;

const RULES: &str =
    r#"@id("anyone-runs") permit (principal, action == Cairn::Action::"run", resource);"#;

/// A manifest of `n` trivial tasks; `needs(i)` names what task `i` waits for.
fn manifest(n: usize, needs: impl Fn(usize) -> Option<usize>) -> String {
    let mut text = String::from("[workflow]\nname = \"bench\"\npolicies = [\"p\"]\n");
    for i in 0..n {
        let _ = write!(
            text,
            "[tasks.t{i}]\ncomponent = {:?}\n",
            cairn_tests::WAT_TRIVIAL_TASK
        );
        if let Some(up) = needs(i) {
            let _ = writeln!(text, "needs = [\"t{up}\"]");
        }
    }
    text
}

/// Run `manifest` through the runner; wall time of the run (setup excluded).
fn run(runtime: &tokio::runtime::Runtime, manifest: &str, jobs: usize) -> Duration {
    Bench::new(RULES, manifest).run(runtime, "bench", jobs)
}

fn main() {
    let n: usize = std::env::var("CAIRN_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let jobs = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = Sandbox::new(&EngineSettings::default(), None).unwrap();
    let trivial = std::fs::read(cairn_tests::WAT_TRIVIAL_TASK).unwrap();
    let bare = bare::bare_loop(sandbox.engine(), &trivial, 20_000);

    let wide = run(&runtime, &manifest(n, |_| None), jobs);
    let chain = run(&runtime, &manifest(n, |i| i.checked_sub(1)), jobs);
    let dag = run(&runtime, &manifest(1000, |i| i.checked_sub(10)), jobs);
    let per = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n as f64;

    println!("runner benchmark: {n} trivial tasks, --jobs {jobs}, state + policy + audit on");
    println!("  bare wasmtime loop, per task                {bare:>10.2} us");
    for (name, took, count) in [
        ("wide (all independent)", wide, n),
        ("long chain", chain, n),
        ("10 wide x 100 deep (1,000 tasks)", dag, 1000),
    ] {
        println!(
            "  {name:<34}  {:>8.1} ms total  {:>8.1} us/task  ({:.0}x bare)",
            took.as_secs_f64() * 1e3,
            per(took, count),
            per(took, count) / bare
        );
    }
    example_process("hello", "demo");
    example_process("etl", "alice");
}

/// A warm `cairn run` of `examples/NAME` as a process: the median of
/// several runs after one that warms the compile cache.
fn example_process(name: &str, user: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cairn = root.join("target/release/cairn");
    if !cairn.is_file() {
        println!(
            "  warm `cairn run` of {name}: build it first with `cargo build --release -p cairn`"
        );
        return;
    }
    let example = format!("examples/{name}");
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let once = || {
        let start = Instant::now();
        let out = std::process::Command::new(&cairn)
            .current_dir(&root)
            .args(["run", &example, "--as", user, "--state-dir"])
            .arg(state.path())
            .arg("--cache-dir")
            .arg(cache.path())
            .output()
            .unwrap();
        out.status.success().then(|| start.elapsed()).ok_or(out)
    };
    let cold = match once() {
        Ok(cold) => cold,
        Err(out) => {
            println!(
                "  warm `cairn run` of {name}: it failed; build its tasks first (`cairn build {example}`):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
    };
    let mut warm: Vec<Duration> = (0..9).map(|_| once().unwrap()).collect();
    warm.sort();
    println!(
        "  {:<46}cold {:.1} ms, warm median {:.1} ms (goal: tens of ms)",
        format!("`cairn run {example}` as a process"),
        cold.as_secs_f64() * 1e3,
        warm[4].as_secs_f64() * 1e3,
    );
}
