//! The wasmtime engine Cairn runs every task on, and its epoch clock.
//!
//! Owns the engine configuration: which wasm features a guest may use (only
//! what Cairn's guests need — no threads, no GC, no exceptions, no memory64;
//! multi-memory, as real toolchains emit it),
//! the wasm stack bound, epoch interruption, and the instance allocator. The
//! configuration is part of the compile-cache key, so anything that changes
//! generated code must go through [`EngineSettings`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, WasmFeatures,
};

use super::limits::EPOCH_TICK;

/// Engine-wide settings: the ones that cannot differ between tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// Deepest wasm stack a guest may use, in bytes. Default 1 MiB.
    pub max_wasm_stack: usize,
    /// With a pool: the largest linear memory a slot holds, in bytes, so a
    /// task's memory limit is effectively at most this. Without a pool it is
    /// unused and `Limits::memory` alone applies. Default 4 GiB.
    pub max_memory: u64,
    /// With a pool: the largest table a slot holds, in elements (each slot
    /// reserves room for this many). Without a pool it is unused and
    /// `Limits::table_elements` alone applies. Default 100,000, the default
    /// per-task limit.
    pub max_table_elements: usize,
    /// Pre-allocate instance slots (faster instantiation, for many tasks) for
    /// this many concurrent instances; `None` allocates on demand.
    pub pool: Option<u32>,
}

impl EngineSettings {
    /// The settings for running workflows `jobs` tasks at a time: a pool
    /// with a slot for each (and a few more), so that instantiating a task
    /// costs microseconds rather than mapping its memory afresh.
    #[must_use]
    pub fn for_runs(jobs: usize) -> Self {
        let slots = u32::try_from(jobs.max(4)).unwrap_or(u32::MAX).min(1024);
        Self {
            pool: Some(slots),
            ..Self::default()
        }
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_wasm_stack: 1 << 20,
            max_memory: 4 << 30,
            max_table_elements: 100_000,
            pool: None,
        }
    }
}

/// Build the engine for `settings`.
///
/// # Errors
///
/// When wasmtime rejects the configuration (e.g. the pool cannot reserve
/// its address space).
pub fn build(settings: &EngineSettings) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .max_wasm_stack(settings.max_wasm_stack)
        .wasm_backtrace_max_frames(core::num::NonZeroUsize::new(64))
        .wasm_component_model(true)
        // What Rust, C and most WASI toolchains emit; nothing more.
        .wasm_simd(true)
        .wasm_relaxed_simd(false)
        .wasm_bulk_memory(true)
        .wasm_multi_value(true)
        .wasm_tail_call(true)
        // Standard, and what components with several memories need (jco's
        // QuickJS output; wasmtime's adapters between memories).
        .wasm_multi_memory(true)
        .wasm_memory64(false)
        .wasm_wide_arithmetic(false)
        .wasm_custom_page_sizes(false);
    // Features a sandboxed task has no use for; some are compiled out of this
    // wasmtime build already, and turning them off is then a no-op.
    for feature in [
        WasmFeatures::THREADS,
        WasmFeatures::SHARED_EVERYTHING_THREADS,
        WasmFeatures::GC,
        WasmFeatures::FUNCTION_REFERENCES,
        WasmFeatures::EXCEPTIONS,
        WasmFeatures::LEGACY_EXCEPTIONS,
        WasmFeatures::STACK_SWITCHING,
        WasmFeatures::CM_ASYNC,
    ] {
        config.wasm_features(feature, false);
    }
    if let Some(slots) = settings.pool {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(
            settings, slots,
        )));
    }
    Engine::new(&config)
}

/// Pool sized for `slots` concurrent tasks. Keeping a little memory resident
/// between instances avoids the page-release stalls that make two threads
/// slower than one (see PERFORMANCE.md).
fn pooling(settings: &EngineSettings, slots: u32) -> PoolingAllocationConfig {
    // A component is several core instances (the guest, libc adapters,
    // shared libraries...): any one task may use up to the per-task limits
    // (`Limits`), as without a pool. Memories and tables are reserved per
    // slot, so the pool holds fewer of them on average than one task may
    // have; core instances cost nothing until used.
    let defaults = super::Limits::default();
    let per_task = 8;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(
            slots.saturating_mul(u32::try_from(defaults.instances).unwrap_or(u32::MAX)),
        )
        .total_memories(slots.saturating_mul(per_task))
        .total_tables(slots.saturating_mul(per_task))
        .total_stacks(slots)
        .max_memories_per_component(u32::try_from(defaults.memories).unwrap_or(u32::MAX))
        .max_tables_per_component(u32::try_from(defaults.tables).unwrap_or(u32::MAX))
        .max_core_instances_per_component(u32::try_from(defaults.instances).unwrap_or(u32::MAX))
        .max_memory_size(usize::try_from(settings.max_memory).unwrap_or(usize::MAX))
        .table_elements(settings.max_table_elements)
        .linear_memory_keep_resident(256 * 1024)
        .table_keep_resident(64 * 1024)
        .async_stack_keep_resident(64 * 1024)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("cairn-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The ticker holds no locks; a panic there has nothing to report.
            let _ = thread.join();
        }
    }
}
