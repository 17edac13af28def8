//! Hard limits on one task instance, and the guard that enforces them.
//!
//! Every limit has a safe default (see [`Limits::default`]); a task can only
//! be given other values explicitly. The [`Guard`] lives in each store: it is
//! wasmtime's resource limiter, and it remembers *which* limit a guest ran
//! into, so that a later trap is reported as "memory limit" rather than as an
//! anonymous crash. It must never grant more than its limits say.

use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::http::HttpLimits;

/// Most core instances one task may have (the default): the engine's
/// instance pool is sized for this many per task, so a task's own limit
/// (`instances` in a manifest, `--instances`) may lower it, not raise it.
pub const MAX_INSTANCES: usize = 64;

/// Limits on one task attempt. All sizes are bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock bound on the whole attempt, including time blocked in host
    /// calls. Default 60 s.
    pub timeout: Duration,
    /// Bound on time spent executing wasm code (counted in epoch ticks of
    /// [`EPOCH_TICK`]). Default 60 s.
    pub cpu_time: Duration,
    /// Linear memory, summed over the instance's memories. Default 256 MiB.
    pub memory: u64,
    /// Elements of any one table. Default 100,000.
    pub table_elements: u64,
    /// Core instances per task: a component is several (componentize-py
    /// 0.25's CPython is 14, one per shared library, and each native
    /// extension adds one; componentize-js 0.23's is 4). Default and most
    /// [`MAX_INSTANCES`].
    pub instances: usize,
    /// Tables per task (both toolchains above use 2). Default 32.
    pub tables: usize,
    /// Linear memories per task (both toolchains above use 1; jco's
    /// QuickJS output and wasmtime's adapters use more). Default 32.
    pub memories: usize,
    /// Captured stdout. Default 1 MiB.
    pub stdout: u64,
    /// Captured stderr. Default 1 MiB.
    pub stderr: u64,
    /// Log messages, summed. Default 1 MiB.
    pub logs: u64,
    /// Each output. Default 64 MiB.
    pub output: u64,
    /// All outputs of a command task together (everything under
    /// `/outputs`). Default 256 MiB.
    pub outputs_total: u64,
    /// Bytes passed in one host call (an input read, an output written).
    /// Default 16 MiB.
    pub call_bytes: u64,
    /// Open handles (files, streams, directories) at once. Default 1,024.
    pub handles: usize,
    /// Outgoing HTTP: 100 requests per attempt, 10 MiB per request body and
    /// per response body, 30 s per request.
    pub http: HttpLimits,
}

/// How often the engine's epoch advances; the resolution of CPU limits.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

const MIB: u64 = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            cpu_time: Duration::from_secs(60),
            memory: 256 * MIB,
            table_elements: 100_000,
            instances: MAX_INSTANCES,
            tables: 32,
            memories: 32,
            stdout: MIB,
            stderr: MIB,
            logs: MIB,
            output: 64 * MIB,
            outputs_total: 256 * MIB,
            call_bytes: 16 * MIB,
            handles: 1024,
            http: HttpLimits {
                requests: 100,
                request_bytes: 10 * MIB,
                response_bytes: 10 * MIB,
                timeout: Duration::from_secs(30),
            },
        }
    }
}

impl Limits {
    /// The CPU budget in epoch ticks (at least one).
    pub(crate) fn cpu_ticks(&self) -> u64 {
        let ticks = self.cpu_time.as_nanos() / EPOCH_TICK.as_nanos();
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

/// Which limit a guest ran into first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Breach {
    Memory,
    Table,
    Cpu,
}

/// The per-store resource limiter; records the first limit breached.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) limits: Limits,
    pub(crate) breach: Option<Breach>,
    /// Epoch ticks during which the guest was running wasm code.
    pub(crate) cpu_ticks: u64,
}

impl Guard {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            breach: None,
            cpu_ticks: 0,
        }
    }

    fn record(&mut self, breach: Breach) {
        self.breach.get_or_insert(breach);
    }
}

impl ResourceLimiter for Guard {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // `desired` is per memory; a task rarely has more than one, and the
        // `memories` limit bounds the product.
        let ok = u64::try_from(desired).is_ok_and(|d| d <= self.limits.memory);
        if !ok {
            self.record(Breach::Memory);
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = u64::try_from(desired).is_ok_and(|d| d <= self.limits.table_elements);
        if !ok {
            self.record(Breach::Table);
        }
        Ok(ok)
    }

    // Growth can also fail below Cairn's limit, when the engine itself cannot
    // give more (a pool slot's capacity, the address space): for the guest it
    // is the same wall, so it is recorded the same way.
    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.record(Breach::Memory);
        Ok(())
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.record(Breach::Table);
        Ok(())
    }

    fn instances(&self) -> usize {
        self.limits.instances
    }

    fn tables(&self) -> usize {
        self.limits.tables
    }

    fn memories(&self) -> usize {
        self.limits.memories
    }
}

/// Run on every epoch tick while the guest executes wasm: counts CPU time,
/// and either lets the guest go on (yielding to other tasks) or stops it.
pub(crate) fn on_epoch_tick(guard: &mut Guard) -> wasmtime::Result<wasmtime::UpdateDeadline> {
    guard.cpu_ticks += 1;
    if guard.cpu_ticks > guard.limits.cpu_ticks() {
        guard.record(Breach::Cpu);
        return Err(wasmtime::format_err!("cpu time limit exceeded"));
    }
    Ok(wasmtime::UpdateDeadline::Yield(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_growth_beyond_limit_is_refused_and_remembered() {
        let mut guard = Guard::new(Limits {
            memory: 1024,
            ..Limits::default()
        });
        assert!(guard.memory_growing(0, 1024, None).is_ok_and(|ok| ok));
        assert!(guard.memory_growing(1024, 1025, None).is_ok_and(|ok| !ok));
        assert!(guard.table_growing(0, usize::MAX, None).is_ok_and(|ok| !ok));
        assert_eq!(guard.breach, Some(Breach::Memory), "first breach wins");
    }

    #[test]
    fn cpu_budget_counts_ticks() {
        let limits = Limits {
            cpu_time: EPOCH_TICK * 3,
            ..Limits::default()
        };
        let mut guard = Guard::new(limits);
        for _ in 0..3 {
            assert!(on_epoch_tick(&mut guard).is_ok());
        }
        assert!(on_epoch_tick(&mut guard).is_err());
        assert_eq!(guard.breach, Some(Breach::Cpu));
    }
}
