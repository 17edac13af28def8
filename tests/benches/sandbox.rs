//! `cargo bench -p cairn-tests`: what Cairn's sandbox costs per task.
//!
//! Measured side by side in one run, on one core:
//! - a bare wasmtime loop: new store, instantiate a pre-linked trivial
//!   component, call `run`, drop — on the same engine configuration Cairn
//!   uses, and on wasmtime's defaults;
//! - the same component through `Sandbox::run`: capabilities, limits, CPU and
//!   wall-clock bounds, captured stdio, outcome classification;
//! - the hello example (a real Rust component with WASI) through the sandbox;
//! - cold (compile) vs warm (compile-cache hit) loading of the hello example;
//! - cold and warm start of the languages example's Python and JavaScript
//!   tasks, when `cairn build examples/languages` has built them.
//!
//! Prints a table; the goal is Cairn within 1.5x of the bare loop.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark fails loudly"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use cairn::name::Name;
use cairn::sandbox::{Capabilities, EngineSettings, Limits, Mount, MountMode, Sandbox, TaskSpec};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

#[path = "support/bare.rs"]
mod bare;
use bare::{BATCHES, Failure, bare_loop, per_iter};

/// The bare loop again, but instantiating and calling asynchronously, on
/// fibers, as Cairn must to bound time spent blocked in host calls.
fn bare_async_loop(
    engine: &Engine,
    wasm: &[u8],
    iters: usize,
    runtime: &tokio::runtime::Runtime,
) -> f64 {
    let component = Component::new(engine, wasm).expect("compile");
    let linker = Linker::<()>::new(engine);
    let pre = linker.instantiate_pre(&component).expect("link");
    per_iter(iters, || {
        runtime.block_on(async {
            let mut store = Store::new(engine, ());
            store.set_epoch_deadline(u64::MAX / 2);
            let instance = pre
                .instantiate_async(&mut store)
                .await
                .expect("instantiate");
            let run = instance
                .get_typed_func::<(), (Result<(), Failure>,)>(&mut store, "run")
                .expect("run export");
            let (result,) = run.call_async(&mut store, ()).await.expect("call");
            assert!(result.is_ok());
        });
    })
}

fn main() {
    let iters: usize = std::env::var("CAIRN_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let trivial = std::fs::read(cairn_tests::WAT_TRIVIAL_TASK).unwrap();
    // CAIRN_BENCH_POOL=0 selects the on-demand allocator (e.g. under valgrind,
    // which cannot reserve a pool's address space).
    let pool: u32 = std::env::var("CAIRN_BENCH_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let settings = EngineSettings {
        pool: (pool > 0).then_some(pool),
        ..EngineSettings::default()
    };
    let sandbox = Sandbox::new(&settings, None).expect("sandbox");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let bare_same = bare_loop(sandbox.engine(), &trivial, iters);
    let bare_default = bare_loop(&Engine::default(), &trivial, iters);
    let bare_async = bare_async_loop(sandbox.engine(), &trivial, iters, &runtime);

    let outputs = tempfile::tempdir().unwrap();
    let spec = TaskSpec {
        caps: Capabilities::default(),
        limits: Limits::default(),
        outputs_dir: outputs.path().to_owned(),
        log_sink: None,
        exchange_sink: None,
        gate: None,
    };
    let program = sandbox
        .load(Path::new(cairn_tests::WAT_TRIVIAL_TASK), None)
        .unwrap();
    let cairn_trivial = per_iter(iters, || {
        let attempt = runtime.block_on(sandbox.run(&program, &spec)).unwrap();
        assert!(attempt.outcome.is_success());
    });

    let hello = sandbox.load(Path::new(cairn_tests::HELLO), None).unwrap();
    let hello_iters = (iters / 10).max(100);
    let cairn_hello = per_iter(hello_iters, || {
        // Each attempt writes its output file: give it a fresh directory.
        let dir = tempfile::tempdir().unwrap();
        let spec = TaskSpec {
            outputs_dir: dir.path().to_owned(),
            ..spec.clone()
        };
        let attempt = runtime.block_on(sandbox.run(&hello, &spec)).unwrap();
        assert!(attempt.outcome.is_success());
    });
    let tempdir_cost = per_iter(hello_iters, || drop(tempfile::tempdir().unwrap()));

    let (cold, warm) = cold_and_warm(&settings);
    let hello_size = hello.load_stats().size;

    println!("sandbox benchmark: per task, one core, median of {BATCHES} batches of {iters}");
    println!("  bare wasmtime loop, Cairn's engine config   {bare_same:>8.2} us");
    println!("  bare wasmtime loop, wasmtime defaults       {bare_default:>8.2} us");
    println!("  bare wasmtime loop, async (on fibers)       {bare_async:>8.2} us");
    println!("  cairn sandbox (capabilities, limits)        {cairn_trivial:>8.2} us");
    println!(
        "  ratio cairn / bare (same engine)            {:>8.2} x   (goal <= 1.5x)",
        cairn_trivial / bare_same
    );
    println!(
        "  hello example through cairn (WASI, output)  {:>8.2} us   (incl. {tempdir_cost:.2} us for a fresh output dir)",
        cairn_hello
    );
    println!("compile cache, hello example ({} KiB)", hello_size / 1024);
    println!(
        "  cold load (compile + cache write)           {:>8.2} ms",
        ms(cold)
    );
    println!(
        "  warm load (cache hit)                       {:>8.2} ms",
        ms(warm)
    );
    languages(&settings, &runtime);
}

/// One task of the languages example, with what it needs to run.
struct LanguageTask {
    what: &'static str,
    wasm: std::path::PathBuf,
    caps: Capabilities,
}

/// Cold and warm start of the languages example's Python and JavaScript
/// tasks: load and one run in a fresh sandbox (as a new `cairn run`
/// process does), first with an empty compile cache, then with the cache
/// warm; and a further run of the loaded component (another attempt in the
/// same process). Skipped, saying why, until the example is built.
fn languages(settings: &EngineSettings, runtime: &tokio::runtime::Runtime) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let built = repo.join("target/wasm32-wasip2/languages");
    let (ingest, profile) = (built.join("ingest.wasm"), built.join("profile.wasm"));
    if !ingest.is_file() || !profile.is_file() {
        println!(
            "python and javascript tasks: skipped, not built (`cairn build examples/languages`, which needs componentize-py and componentize-js; README \"Tasks in Python and JavaScript\")"
        );
        return;
    }
    let name = |n: &str| Name::new(n).unwrap();
    let ingest_caps = Capabilities {
        env: vec![("MAX_KWH".into(), "20".into())],
        outputs: Some(vec![name("readings"), name("feeders"), name("rejects")]),
        mounts: vec![Mount {
            host: repo.join("examples/languages/data"),
            guest: "/data".into(),
            mode: MountMode::Ro,
        }],
        ..Capabilities::default()
    };
    // profile reads what ingest wrote: run ingest once for its outputs.
    let outputs = tempfile::tempdir().unwrap();
    let first = run_once(
        &Sandbox::new(settings, None).unwrap(),
        &ingest,
        &ingest_caps,
        outputs.path(),
        runtime,
    );
    assert!(first.outcome.is_success(), "{:?}", first.outcome);
    let profile_caps = Capabilities {
        inputs: first
            .outputs
            .iter()
            .filter(|o| matches!(o.name.as_str(), "readings" | "feeders"))
            .map(|o| (o.name.clone(), o.path.clone()))
            .collect(),
        outputs: Some(vec![name("load")]),
        ..Capabilities::default()
    };
    let tasks = [
        LanguageTask {
            what: "python (componentize-py), ingest",
            wasm: ingest,
            caps: ingest_caps,
        },
        LanguageTask {
            what: "javascript (componentize-js), profile",
            wasm: profile,
            caps: profile_caps,
        },
    ];
    println!("python and javascript tasks (the languages example): median of 5 where warm");
    for task in &tasks {
        let cache = tempfile::tempdir().unwrap();
        let start = |cache: &Path| {
            let sandbox = Sandbox::new(settings, Some(cache)).unwrap();
            let began = Instant::now();
            let program = sandbox.load(&task.wasm, None).unwrap();
            let loaded = began.elapsed();
            let dir = tempfile::tempdir().unwrap();
            let attempt = runtime
                .block_on(sandbox.run(&program, &spec_for(&task.caps, dir.path())))
                .unwrap();
            assert!(
                attempt.outcome.is_success(),
                "{}: {:?}",
                task.what,
                attempt.outcome
            );
            (
                loaded,
                began.elapsed(),
                program.load_stats().cache_hit,
                sandbox,
                program,
            )
        };
        let (cold_load, cold, hit, ..) = start(cache.path());
        assert!(!hit);
        let mut warm: Vec<(Duration, Duration)> = (0..5)
            .map(|_| {
                let (load, total, hit, ..) = start(cache.path());
                assert!(hit);
                (load, total)
            })
            .collect();
        warm.sort_by_key(|w| w.1);
        let (warm_load, warm_total) = warm[warm.len() / 2];
        let (.., sandbox, program) = start(cache.path());
        let mut again: Vec<Duration> = (0..5)
            .map(|_| {
                let dir = tempfile::tempdir().unwrap();
                let began = Instant::now();
                let attempt = runtime
                    .block_on(sandbox.run(&program, &spec_for(&task.caps, dir.path())))
                    .unwrap();
                assert!(attempt.outcome.is_success());
                began.elapsed()
            })
            .collect();
        again.sort();
        let size = program.load_stats().size;
        println!("  {} ({:.1} MB)", task.what, size as f64 / 1e6);
        println!(
            "    cold start: compile + cache write, then run {:>9.1} ms  (compile {:.1} ms)",
            ms(cold),
            ms(cold_load)
        );
        println!(
            "    warm start: cache hit, then run            {:>9.1} ms  (load {:.1} ms)",
            ms(warm_total),
            ms(warm_load)
        );
        println!(
            "    another run of the loaded component        {:>9.1} ms",
            ms(again[again.len() / 2])
        );
    }
}

fn spec_for(caps: &Capabilities, outputs_dir: &Path) -> TaskSpec {
    TaskSpec {
        caps: caps.clone(),
        limits: Limits::default(),
        outputs_dir: outputs_dir.to_owned(),
        log_sink: None,
        exchange_sink: None,
        gate: None,
    }
}

/// Load `wasm` and run it once in `sandbox`, its outputs into `outputs_dir`.
fn run_once(
    sandbox: &Sandbox,
    wasm: &Path,
    caps: &Capabilities,
    outputs_dir: &Path,
    runtime: &tokio::runtime::Runtime,
) -> cairn::sandbox::Attempt {
    let program = sandbox.load(wasm, None).unwrap();
    runtime
        .block_on(sandbox.run(&program, &spec_for(caps, outputs_dir)))
        .unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Load the hello example into an empty cache (cold), then again (warm, the
/// median of several loads), each in a fresh sandbox so nothing is in memory.
fn cold_and_warm(settings: &EngineSettings) -> (Duration, Duration) {
    let cache = tempfile::tempdir().unwrap();
    let path = Path::new(cairn_tests::HELLO);
    let load = || {
        let sandbox = Sandbox::new(settings, Some(cache.path())).unwrap();
        let start = Instant::now();
        let program = sandbox.load(path, None).unwrap();
        (start.elapsed(), program.load_stats().cache_hit)
    };
    let (cold, hit) = load();
    assert!(!hit);
    let mut warm: Vec<Duration> = (0..9)
        .map(|_| {
            let (t, hit) = load();
            assert!(hit);
            t
        })
        .collect();
    warm.sort();
    (cold, warm[warm.len() / 2])
}
