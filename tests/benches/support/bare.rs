//! The bare wasmtime loop both benchmarks compare Cairn with: new store,
//! instantiate a pre-linked component, call `run`, drop.

use std::time::Instant;

use wasmtime::component::{Component, ComponentType, Lift, Linker};
use wasmtime::{Engine, Store};

/// The failure type of `run`, for the bare loop's typed call.
#[derive(ComponentType, Lift)]
#[expect(
    dead_code,
    reason = "lifted to type-check the call; the trivial task never fails"
)]
#[component(variant)]
pub enum Failure {
    #[component(name = "transient")]
    Transient(String),
    #[component(name = "permanent")]
    Permanent(String),
}

pub const BATCHES: usize = 7;

/// Median over batches of the per-iteration time of `f`, in microseconds.
pub fn per_iter(iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let mut samples: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / iters as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[BATCHES / 2]
}

pub fn bare_loop(engine: &Engine, wasm: &[u8], iters: usize) -> f64 {
    let component = Component::new(engine, wasm).expect("compile");
    let linker = Linker::<()>::new(engine);
    let pre = linker.instantiate_pre(&component).expect("link");
    per_iter(iters, || {
        let mut store = Store::new(engine, ());
        // Cairn's engine interrupts on epochs: give the bare loop all the time.
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = pre.instantiate(&mut store).expect("instantiate");
        let run = instance
            .get_typed_func::<(), (Result<(), Failure>,)>(&mut store, "run")
            .expect("run export");
        let (result,) = run.call(&mut store, ()).expect("call");
        assert!(result.is_ok());
    })
}
