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
//! - what a user sees: whole `cairn run` processes (release build, fresh
//!   state directory each, compile cache warm) of a no-op wasip2 `fn
//!   main(){}` task: the peer DAG (median of 5), 10,000 independent tasks,
//!   a chain of 10,000 and one of 100,000 (`CAIRN_BENCH_BIG=0` leaves that
//!   out), each with its peak memory (the child's maximum resident set);
//! - a 1,000-way fan-out (`for_each`) with a fan-in after it: the time to
//!   plan it (parse, plan, expand) and to run it, beside 1,000 independent
//!   tasks written out one by one; and the same fan-out over a task's
//!   output (expanded when it arrives), beside the same list written in
//!   the manifest after the same task;
//! - warm `cairn run`s of the hello and ETL examples, as processes (needs
//!   `cargo build --release -p cairn` and the examples built: `cairn build`).
//!
//! Prints a table; the goals (ARCHITECTURE.md, "The run engine"): per-task
//! overhead within 2x of the bare loop; the DAG in-process under 30 ms and
//! as a process faster than Dask's 0.27 s; 10,000 tasks as a process under
//! 1 s and 200 MiB; the 100,000-task chain under 1 GiB.
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
    manifest_of(cairn_tests::WAT_TRIVIAL_TASK, n, needs)
}

/// A manifest of `n` tasks running `component`, shaped by `needs`.
fn manifest_of(component: &str, n: usize, needs: impl Fn(usize) -> Option<usize>) -> String {
    let mut text = String::from("[workflow]\nname = \"bench\"\npolicies = [\"p\"]\n");
    for i in 0..n {
        let _ = write!(text, "[tasks.t{i}]\ncomponent = {component:?}\n");
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
    // Processes first, while this one is small: a child's peak memory
    // (`ru_maxrss`) starts from its parent's at the fork.
    processes();
    let n: usize = std::env::var("CAIRN_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let jobs = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The bare loop on the engine runs use (a pool, `EngineSettings::for_runs`).
    let sandbox = Sandbox::new(&EngineSettings::for_runs(jobs), None).unwrap();
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
    fan_out(&runtime, jobs);
    example_process("hello", "demo");
    example_process("etl", "alice");
}

/// A 1,000-way fan-out and a task after all of it: planned (the median of
/// 5: parse, plan, expand) and run, beside 1,000 tasks written out.
fn fan_out(runtime: &tokio::runtime::Runtime, jobs: usize) {
    let n = 1000;
    let elements: Vec<String> = (0..n).map(|i| format!("\"e{i}\"")).collect();
    let fanned = format!(
        "[workflow]\nname = \"bench\"\npolicies = [\"p\"]\n[tasks.fan]\ncomponent = {:?}\nfor_each = [{}]\n[tasks.after]\ncomponent = {:?}\nneeds = [\"fan\"]\n",
        cairn_tests::WAT_TRIVIAL_TASK,
        elements.join(", "),
        cairn_tests::WAT_TRIVIAL_TASK,
    );
    let mut planned: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let manifest = cairn::manifest::parse(&fanned).unwrap();
            let plan = cairn::plan::Plan::new(&manifest).unwrap();
            let values = plan.param_values(&[]).unwrap();
            let plan = plan.with_params(&values);
            assert_eq!(plan.tasks.len(), n + 1);
            start.elapsed()
        })
        .collect();
    planned.sort();
    let mut out = manifest(n, |_| None);
    let all: Vec<String> = (0..n).map(|i| format!("\"t{i}\"")).collect();
    let _ = write!(
        out,
        "[tasks.after]\ncomponent = {:?}\nneeds = [{}]\n",
        cairn_tests::WAT_TRIVIAL_TASK,
        all.join(", ")
    );
    // Side by side, alternating, five of each: the medians.
    let (mut written, mut fanned_out) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        written.push(run(runtime, &out, jobs));
        fanned_out.push(run(runtime, &fanned, jobs));
    }
    written.sort();
    fanned_out.sort();
    let (written, ran) = (written[2], fanned_out[2]);
    println!(
        "  1,000-way fan-out + 1 after it: planned {:.1} ms; run {:.1} ms ({:.1} us/task), 1,000 + 1 written out {:.1} ms (medians of 5, alternating)",
        planned[2].as_secs_f64() * 1e3,
        ran.as_secs_f64() * 1e3,
        ran.as_secs_f64() * 1e6 / (n + 1) as f64,
        written.as_secs_f64() * 1e3,
    );

    // The same fan-out over a task's output (expanded, preflighted and
    // recorded when it arrives), beside the same list in the manifest
    // after the same task.
    let list = format!(
        "[workflow]\nname = \"bench\"\npolicies = [\"p\"]\n[tasks.list]\ncomponent = {:?}\nenv = {{ MODE = \"emit\", COUNT = \"{n}\" }}\noutputs = [\"echo\"]\n",
        cairn_tests::TASK
    );
    let numbers: Vec<String> = (0..n).map(|i| format!("\"{i}\"")).collect();
    let tail = format!(
        "[tasks.after]\ncomponent = {:?}\nneeds = [\"fan\"]\n",
        cairn_tests::WAT_TRIVIAL_TASK
    );
    let over_output = format!(
        "{list}[tasks.fan]\ncomponent = {:?}\nfor_each = \"list.echo\"\n{tail}",
        cairn_tests::WAT_TRIVIAL_TASK
    );
    let in_manifest = format!(
        "{list}[tasks.fan]\ncomponent = {:?}\nneeds = [\"list\"]\nfor_each = [{}]\n{tail}",
        cairn_tests::WAT_TRIVIAL_TASK,
        numbers.join(", ")
    );
    let (mut listed, mut expanded) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        listed.push(run(runtime, &in_manifest, jobs));
        expanded.push(run(runtime, &over_output, jobs));
    }
    listed.sort();
    expanded.sort();
    let (listed, expanded) = (listed[2], expanded[2]);
    // A list's tasks are preflighted before the run (outside the time
    // above), an output's within it, when they are known: the list's
    // preflight, to compare like with like.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("p")).unwrap();
    std::fs::write(dir.path().join("p/rules.cedar"), RULES).unwrap();
    std::fs::write(dir.path().join("workflow.toml"), &in_manifest).unwrap();
    let mut loaded = cairn::workflow::load(&dir.path().join("workflow.toml")).unwrap();
    let values = loaded.plan.param_values(&[]).unwrap();
    loaded.plan = loaded.plan.with_params(&values);
    let policies = cairn::policy::Policies::of_workflow(&loaded).unwrap();
    let mut preflights: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let done = cairn::policy::preflight(&loaded.plan, &policies, "alice").unwrap();
            assert!(done.denied().next().is_none());
            start.elapsed()
        })
        .collect();
    preflights.sort();
    let like = listed + preflights[2];
    println!(
        "  the same over a task's output (+ that task): run {:.1} ms; the list in the manifest after the same task {:.1} ms, + its preflight {:.1} ms = {:.1} ms ({:.2}x that; medians of 5, alternating)",
        expanded.as_secs_f64() * 1e3,
        listed.as_secs_f64() * 1e3,
        preflights[2].as_secs_f64() * 1e3,
        like.as_secs_f64() * 1e3,
        expanded.as_secs_f64() / like.as_secs_f64(),
    );
}

/// A warm `cairn run` of `examples/NAME` as a process: the median of
/// several runs after one that warms the compile cache.
fn example_process(name: &str, user: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let Some(cairn) = release_cairn(&format!("warm `cairn run` of {name}")) else {
        return;
    };
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
            // The first problem is enough to say what to do (usually: the
            // example's tasks are not built yet).
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no message");
            println!(
                "  warm `cairn run` of {name}: it failed ({first}); build its tasks first: `cairn build {example}`"
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

/// A workflow of `n` no-op wasip2 commands in a fresh folder, shaped by
/// `needs`; returns the folder.
fn noop_workflow(n: usize, needs: impl Fn(usize) -> Option<usize>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("p")).unwrap();
    std::fs::write(dir.path().join("p/rules.cedar"), RULES).unwrap();
    let text = manifest_of(cairn_tests::CMD_NOOP, n, needs);
    std::fs::write(dir.path().join("workflow.toml"), text).unwrap();
    dir
}

/// One `cairn run` of the workflow in `dir` with a fresh state directory:
/// its wall time and peak resident memory in bytes.
fn process_run(cairn: &Path, dir: &Path, cache: &Path) -> (Duration, u64) {
    let state = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let child = std::process::Command::new(cairn)
        .arg("run")
        .arg(dir)
        .args(["--as", "alice", "--state-dir"])
        .arg(state.path())
        .arg("--cache-dir")
        .arg(cache)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak) = wait_with_peak(child);
    let took = start.elapsed();
    assert!(
        status == 0,
        "cairn run {} exited with {status}",
        dir.display()
    );
    (took, peak)
}

/// Wait for `child`; its exit status and peak resident set in bytes (what
/// `/usr/bin/time` reports as maximum resident set size).
fn wait_with_peak(child: std::process::Child) -> (i32, u64) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    #[allow(
        unsafe_code,
        reason = "wait4 is the only way to read a child's peak memory"
    )]
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (`child` is
    // dropped without waiting); both pointers are to live locals.
    #[allow(
        unsafe_code,
        reason = "wait4 is the only way to read a child's peak memory"
    )]
    let waited = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    // ru_maxrss is in KiB on Linux.
    (code, u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024)
}

/// The process rows: what a user running `cairn run` sees.
fn processes() {
    let Some(cairn) = release_cairn("`cairn run` as a process") else {
        return;
    };
    println!(
        "`cairn run` as a process: release build, fresh state each run, compile cache warm, a no-op wasip2 `fn main(){{}}` per task"
    );
    let cache = tempfile::tempdir().unwrap();
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    let dag = noop_workflow(1000, |i| i.checked_sub(10));
    // The first run fills the compile cache.
    let _ = process_run(&cairn, dag.path(), cache.path());
    let mut runs: Vec<(Duration, u64)> = (0..5)
        .map(|_| process_run(&cairn, dag.path(), cache.path()))
        .collect();
    runs.sort();
    let (took, peak) = runs[2];
    println!(
        "  `cairn run`, peer DAG, 1,000 tasks (median of 5)  {:>8.1} ms        {:>7.1} MiB peak  (Dask as a process: 270 ms)",
        took.as_secs_f64() * 1e3,
        mib(peak)
    );
    let mut cases: Vec<(&str, tempfile::TempDir)> = vec![
        ("10,000 independent tasks", noop_workflow(10_000, |_| None)),
        (
            "a chain of 10,000 tasks",
            noop_workflow(10_000, |i| i.checked_sub(1)),
        ),
    ];
    if std::env::var("CAIRN_BENCH_BIG").as_deref() != Ok("0") {
        cases.push((
            "a chain of 100,000 tasks",
            noop_workflow(100_000, |i| i.checked_sub(1)),
        ));
    }
    for (name, dir) in &cases {
        let (took, peak) = process_run(&cairn, dir.path(), cache.path());
        println!(
            "  `cairn run`, {name:<34}  {:>8.1} ms        {:>7.1} MiB peak",
            took.as_secs_f64() * 1e3,
            mib(peak)
        );
    }
}

/// The release `cairn` binary, or `None` (saying how to build it, for the
/// row named `what`).
fn release_cairn(what: &str) -> Option<std::path::PathBuf> {
    let cairn = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/cairn");
    if cairn.is_file() {
        return Some(cairn);
    }
    println!("  {what}: build it first with `cargo build --release -p cairn`");
    None
}
