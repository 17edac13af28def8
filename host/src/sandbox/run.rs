//! Running one attempt: build the store, bound it, classify how it ended.
//!
//! The store gets exactly the task's capabilities. The attempt is bounded on
//! every side at once: CPU time by epoch ticks, wall-clock time by a timer
//! that also covers time blocked in host calls, command outputs by a watcher
//! that stops the guest when `/outputs` grows past its limits, and memory,
//! tables, handles and streams by the guard and the captures. Whatever the
//! guest does, the result is an [`Attempt`]; only host-side set-up problems
//! (a mount that does not exist) are errors.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, I32Exit, WasiView as _};

use super::caps::{Capabilities, MountMode};
use super::host_api::{HostState, LogSink, cairn::task::types::Failure};
use super::http::{Egress, EgressPlan, ExchangeSink};
use super::limits::{Breach, Guard, Limits, on_epoch_tick};
use super::outcome::{Attempt, Clock, Outcome, Output, Resource};
use super::program::{Kind, Linked, Program};
use super::stdio::Capture;
use super::wasi::{LazyWasi, Preopen, WasiPlan};
use super::{ComponentState, ModuleState, Sandbox};
use crate::digest::Digest;
use crate::name::Name;
use crate::secrets::Redactor;

/// Everything one attempt needs besides the program.
#[derive(Clone)]
pub struct TaskSpec {
    /// What the task may touch.
    pub caps: Capabilities,
    /// How far it may go.
    pub limits: Limits,
    /// An existing, empty directory owned by the caller, where the attempt's
    /// outputs are written (for command tasks, it is the guest's `/outputs`).
    pub outputs_dir: PathBuf,
    /// Called with each log line as it is emitted.
    pub log_sink: Option<LogSink>,
    /// Called with each HTTP request as it ends (allowed or not).
    pub exchange_sink: Option<ExchangeSink>,
    /// Asked about each policy-relevant host call; `None` allows whatever
    /// the capabilities declare (as `cairn exec` does).
    pub gate: Option<Arc<dyn super::Gate>>,
}

impl std::fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSpec")
            .field("caps", &self.caps)
            .field("limits", &self.limits)
            .field("outputs_dir", &self.outputs_dir)
            .finish_non_exhaustive()
    }
}

/// Why an attempt could not be set up. These are the host's or the caller's
/// problems (a missing mount, an unreadable input), never the guest's.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot mount `{}` at `{guest}`: {source}; check that the directory exists", host.display())]
    Mount {
        host: PathBuf,
        guest: String,
        source: std::io::Error,
    },
    #[error("cannot prepare input `{name}` from `{}`: {source}", path.display())]
    Input {
        name: Name,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot prepare the task's directories: {0}")]
    Staging(std::io::Error),
}

/// Most entries a command task may leave under `/outputs`.
const MAX_OUTPUT_ENTRIES: usize = 1024;

/// How the bounded part of an attempt ended.
enum Ended<R> {
    Returned(R),
    Failed {
        error: wasmtime::Error,
        instantiating: bool,
    },
    WallTimeout,
    OutputFlood {
        stream: String,
        limit: u64,
    },
}

impl<R> Ended<R> {
    fn map<U>(self, f: impl FnOnce(R) -> U) -> Ended<U> {
        match self {
            Self::Returned(r) => Ended::Returned(f(r)),
            Self::Failed {
                error,
                instantiating,
            } => Ended::Failed {
                error,
                instantiating,
            },
            Self::WallTimeout => Ended::WallTimeout,
            Self::OutputFlood { stream, limit } => Ended::OutputFlood { stream, limit },
        }
    }
}

impl Sandbox {
    /// Run one attempt of `program` with `spec`.
    ///
    /// # Errors
    ///
    /// Only for set-up problems on the host side ([`RunError`]); everything the
    /// guest does ends in the returned [`Attempt`]'s outcome.
    pub async fn run(&self, program: &Program, spec: &TaskSpec) -> Result<Attempt, RunError> {
        let started = Instant::now();
        let limits = &spec.limits;
        let redactor = Arc::new(Redactor::new(
            spec.caps
                .secrets
                .values()
                .chain(spec.caps.inject.values().map(|i| &i.value)),
        ));
        let placeholders: BTreeMap<_, _> = spec
            .caps
            .inject
            .iter()
            .map(|(name, injection)| {
                (
                    name.clone(),
                    (super::http::placeholder(name), injection.clone()),
                )
            })
            .collect();
        let stdout = Capture::new(limits.stdout);
        let stderr = Capture::new(limits.stderr);

        let mut plan = WasiPlan {
            args: std::iter::once(program.name().to_owned())
                .chain(spec.caps.args.iter().cloned())
                .collect(),
            env: spec.caps.env.clone(),
            stdin: spec.caps.stdin.clone(),
            stdout: Some(stdout.clone()),
            stderr: Some(stderr.clone()),
            preopens: Vec::new(),
        };
        for mount in &spec.caps.mounts {
            let perms = match mount.mode {
                MountMode::Ro => FsPerms::ReadOnly,
                MountMode::Rw => FsPerms::ReadWrite,
            };
            plan.preopens
                .push(preopen(&mount.host, &mount.guest, perms)?);
        }
        let is_command = program.kind() != Kind::CairnTask;
        // A task that may write no outputs gets `/outputs` read-only, and
        // nothing is looked for there afterwards.
        let no_outputs = spec.caps.outputs.as_ref().is_some_and(Vec::is_empty);
        // Kept alive until the attempt ends: the guest's `/inputs`.
        let _inputs = if is_command && !spec.caps.inputs.is_empty() {
            let dir = stage_inputs(&spec.caps)?;
            plan.preopens
                .push(preopen(dir.path(), "/inputs", FsPerms::ReadOnly)?);
            Some(dir)
        } else {
            None
        };
        if is_command {
            let perms = if no_outputs {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            plan.preopens
                .push(preopen(&spec.outputs_dir, "/outputs", perms)?);
        }

        let guard = Guard::new(limits.clone());
        let (ended, guard, host) = match &program.linked {
            Linked::Task(pre) => {
                let mut store =
                    component_store(pre.engine(), spec, &redactor, &placeholders, plan, guard);
                let ended = bounded(limits, None, async {
                    let task = pre
                        .instantiate_async(&mut store)
                        .await
                        .map_err(|e| (e, true))?;
                    task.call_run(&mut store).await.map_err(|e| (e, false))
                })
                .await;
                let state = store.into_data();
                let requests = state.egress.take();
                (
                    ended.map(task_result),
                    state.guard,
                    Some((state.host, requests)),
                )
            }
            Linked::Command(pre) => {
                let mut store =
                    component_store(pre.engine(), spec, &redactor, &placeholders, plan, guard);
                let ended = bounded(limits, Some(&spec.outputs_dir), async {
                    let cmd = pre
                        .instantiate_async(&mut store)
                        .await
                        .map_err(|e| (e, true))?;
                    cmd.wasi_cli_run()
                        .call_run(&mut store)
                        .await
                        .map_err(|e| (e, false))
                })
                .await;
                let state = store.into_data();
                let requests = state.egress.take();
                let ended = ended.map(|r| match r {
                    Ok(()) => Outcome::Success,
                    Err(()) => exited(1),
                });
                (ended, state.guard, Some((state.host, requests)))
            }
            Linked::Core(pre) => {
                let mut p1 = plan.build_p1();
                p1.ctx().table.set_max_capacity(limits.handles);
                let mut store = Store::new(pre.module().engine(), ModuleState { wasi: p1, guard });
                bound_store(&mut store, |s| &mut s.guard);
                let ended = bounded(limits, Some(&spec.outputs_dir), async {
                    let instance = pre
                        .instantiate_async(&mut store)
                        .await
                        .map_err(|e| (e, true))?;
                    let start = instance
                        .get_typed_func::<(), ()>(&mut store, "_start")
                        .map_err(|e| (e, true))?;
                    start
                        .call_async(&mut store, ())
                        .await
                        .map_err(|e| (e, false))
                })
                .await;
                let state = store.into_data();
                (ended.map(|()| Outcome::Success), state.guard, None)
            }
        };

        let (host, (requests, http_denials)) = match host {
            Some((host, requests)) => (Some(host), requests),
            None => (None, Default::default()),
        };
        let status = is_command.then(|| exit_status(&ended)).flatten();
        let mut outcome =
            classify(ended, &guard, &stdout, &stderr, host.as_ref()).masked(&redactor);
        // A status only where the program's own end decided the outcome (not
        // where a limit it ran into did).
        let exit_status =
            status.filter(|_| matches!(outcome, Outcome::Success | Outcome::GuestError { .. }));
        let mut outputs = Vec::new();
        if outcome.is_success() {
            match host.as_ref() {
                Some(host) if program.kind() == Kind::CairnTask => {
                    outputs.clone_from(&host.written)
                }
                _ if no_outputs => {}
                _ => match collect_outputs(&spec.outputs_dir, &spec.caps) {
                    Ok(collected) => outputs = collected,
                    Err(invalid) => outcome = invalid,
                },
            }
        }
        let (logs, mut denials) = host.map(|h| (h.logs, h.denials)).unwrap_or_default();
        denials.extend(http_denials);
        Ok(Attempt {
            outcome,
            exit_status,
            duration: started.elapsed(),
            stdout: redactor.mask(&stdout.take()),
            stderr: redactor.mask(&stderr.take()),
            logs,
            denials,
            requests,
            outputs,
        })
    }
}

/// A directory to preopen, checked now so that a missing one is reported
/// before the attempt starts (it is opened when the guest first uses WASI).
fn preopen(host: &Path, guest: &str, perms: FsPerms) -> Result<Preopen, RunError> {
    let err = |source| RunError::Mount {
        host: host.to_owned(),
        guest: guest.to_owned(),
        source,
    };
    if std::fs::metadata(host).map_err(err)?.is_dir() {
        Ok(Preopen {
            host: host.to_owned(),
            guest: guest.to_owned(),
            perms,
        })
    } else {
        Err(err(std::io::Error::other("not a directory")))
    }
}

fn host_state(
    spec: &TaskSpec,
    redactor: Arc<Redactor>,
    placeholders: &BTreeMap<Name, (String, super::Injection)>,
) -> HostState {
    HostState {
        placeholders: placeholders
            .iter()
            .map(|(name, (placeholder, _))| (name.clone(), placeholder.clone()))
            .collect(),
        inputs: spec.caps.inputs.clone(),
        declared_outputs: spec.caps.outputs.clone(),
        secrets: spec.caps.secrets.clone(),
        outputs_dir: spec.outputs_dir.clone(),
        call_bytes: spec.limits.call_bytes,
        output_limit: spec.limits.output,
        log_limit: spec.limits.logs,
        redactor,
        sink: spec.log_sink.clone(),
        gate: spec.gate.clone(),
        written: Vec::new(),
        logs: Vec::new(),
        log_bytes: 0,
        logs_overflowed: false,
        denials: Vec::new(),
    }
}

fn egress(
    spec: &TaskSpec,
    redactor: Arc<Redactor>,
    placeholders: BTreeMap<Name, (String, super::Injection)>,
) -> Egress {
    Egress::new(EgressPlan {
        network: spec.caps.network.clone(),
        placeholders,
        gate: spec.gate.clone(),
        limits: spec.limits.http.clone(),
        redactor,
        sink: spec.exchange_sink.clone(),
    })
}

/// The store of a component attempt: its WASI plan, host interface and
/// egress, bounded by the guard.
fn component_store(
    engine: &wasmtime::Engine,
    spec: &TaskSpec,
    redactor: &Arc<Redactor>,
    placeholders: &BTreeMap<Name, (String, super::Injection)>,
    plan: WasiPlan,
    guard: Guard,
) -> Store<ComponentState> {
    let host = host_state(spec, Arc::clone(redactor), placeholders);
    let egress = egress(spec, Arc::clone(redactor), placeholders.clone());
    let mut table = ResourceTable::new();
    table.set_max_capacity(spec.limits.handles);
    let mut store = Store::new(
        engine,
        ComponentState {
            wasi: LazyWasi::new(plan),
            table,
            guard,
            host,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            egress,
        },
    );
    bound_store(&mut store, |s| &mut s.guard);
    store
}

/// Install the guard as limiter and the CPU budget as epoch callback.
fn bound_store<T: 'static>(store: &mut Store<T>, guard: fn(&mut T) -> &mut Guard) {
    store.limiter(move |s| guard(s));
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut ctx| on_epoch_tick(guard(ctx.data_mut())));
}

/// Run `work` until it ends, the wall clock runs out, or (for command tasks)
/// `/outputs` grows past its limits.
async fn bounded<R>(
    limits: &Limits,
    outputs: Option<&Path>,
    work: impl Future<Output = Result<R, (wasmtime::Error, bool)>>,
) -> Ended<R> {
    let watch = async {
        let Some(dir) = outputs else {
            return std::future::pending().await;
        };
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            if let Some(flood) = outputs_flood(dir, limits) {
                return flood;
            }
        }
    };
    tokio::select! {
        result = work => match result {
            Ok(value) => Ended::Returned(value),
            Err((error, instantiating)) => Ended::Failed { error, instantiating },
        },
        () = tokio::time::sleep(limits.timeout) => Ended::WallTimeout,
        (stream, limit) = watch => Ended::OutputFlood { stream, limit },
    }
}

/// The limit `/outputs` breaks, if any: an output too large, all outputs
/// together too large, or too many entries.
fn outputs_flood(dir: &Path, limits: &Limits) -> Option<(String, u64)> {
    let mut total: u64 = 0;
    let mut entries = 0usize;
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(read) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in read.flatten() {
            entries += 1;
            if entries > MAX_OUTPUT_ENTRIES {
                return Some((
                    "the number of entries under /outputs".into(),
                    MAX_OUTPUT_ENTRIES as u64,
                ));
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
                continue;
            }
            if meta.len() > limits.output {
                let name = entry.file_name().to_string_lossy().into_owned();
                return Some((format!("output `{name}`"), limits.output));
            }
            total = total.saturating_add(meta.len());
            if total > limits.outputs_total {
                return Some(("all outputs together".into(), limits.outputs_total));
            }
        }
    }
    None
}

fn task_result(result: Result<(), Failure>) -> Outcome {
    match result {
        Ok(()) => Outcome::Success,
        Err(Failure::Transient(message)) => Outcome::GuestError {
            message,
            transient: true,
        },
        Err(Failure::Permanent(message)) => Outcome::GuestError {
            message,
            transient: false,
        },
    }
}

/// The status a command ended with: 0 when `main` returned normally, 1
/// when `wasi:cli/run` returned `err` (`exit(EXIT_FAILURE)` in preview 2),
/// the code given to `exit` otherwise; `None` when it did not exit.
fn exit_status(ended: &Ended<Outcome>) -> Option<i32> {
    match ended {
        Ended::Returned(Outcome::Success) => Some(0),
        Ended::Returned(Outcome::GuestError { .. }) => Some(1),
        Ended::Failed { error, .. } => error.downcast_ref::<I32Exit>().map(|exit| exit.0),
        _ => None,
    }
}

fn exited(code: i32) -> Outcome {
    if code == 0 {
        Outcome::Success
    } else {
        Outcome::GuestError {
            message: format!("exited with status {code}"),
            transient: false,
        }
    }
}

fn classify(
    ended: Ended<Outcome>,
    guard: &Guard,
    stdout: &Capture,
    stderr: &Capture,
    host: Option<&HostState>,
) -> Outcome {
    let limits = &guard.limits;
    let (error, instantiating) = match ended {
        Ended::Returned(outcome) => return outcome,
        Ended::WallTimeout => {
            return Outcome::Timeout {
                clock: Clock::Wall,
                limit: limits.timeout,
            };
        }
        Ended::OutputFlood { stream, limit } => return Outcome::OutputLimit { stream, limit },
        Ended::Failed {
            error,
            instantiating,
        } => (error, instantiating),
    };
    if guard.breach == Some(Breach::Cpu) {
        return Outcome::Timeout {
            clock: Clock::Cpu,
            limit: limits.cpu_time,
        };
    }
    if stdout.overflowed() {
        return Outcome::OutputLimit {
            stream: "stdout".into(),
            limit: limits.stdout,
        };
    }
    if stderr.overflowed() {
        return Outcome::OutputLimit {
            stream: "stderr".into(),
            limit: limits.stderr,
        };
    }
    if host.is_some_and(|h| h.logs_overflowed) {
        return Outcome::OutputLimit {
            stream: "logs".into(),
            limit: limits.logs,
        };
    }
    match guard.breach {
        Some(Breach::Memory) => {
            return Outcome::ResourceLimit {
                resource: Resource::Memory,
                limit: limits.memory,
            };
        }
        Some(Breach::Table) => {
            return Outcome::ResourceLimit {
                resource: Resource::Table,
                limit: limits.table_elements,
            };
        }
        _ => {}
    }
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return exited(exit.0);
    }
    if error.chain().any(|e| {
        matches!(
            e.downcast_ref(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    }) {
        return Outcome::ResourceLimit {
            resource: Resource::Handles,
            limit: limits.handles as u64,
        };
    }
    let backtrace = error
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| bt.to_string());
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return Outcome::Trap {
            reason: trap.to_string(),
            backtrace,
        };
    }
    if instantiating {
        return Outcome::Instantiation {
            message: format!("{error:#}"),
        };
    }
    Outcome::Trap {
        reason: format!("{error:#}"),
        backtrace,
    }
}

/// A private directory holding the task's inputs under their names, for the
/// guest's read-only `/inputs`. Files are hard-linked where possible (no copy;
/// the guest cannot write through a read-only mount), copied otherwise.
fn stage_inputs(caps: &Capabilities) -> Result<tempfile::TempDir, RunError> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-inputs-")
        .tempdir()
        .map_err(RunError::Staging)?;
    for (name, path) in &caps.inputs {
        let err = |source| RunError::Input {
            name: name.clone(),
            path: path.clone(),
            source,
        };
        let source = std::fs::canonicalize(path).map_err(err)?;
        if !std::fs::metadata(&source).map_err(err)?.is_file() {
            return Err(err(std::io::Error::other("not a regular file")));
        }
        let target = dir.path().join(name.as_str());
        if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target).map_err(err)?;
        }
    }
    Ok(dir)
}

/// The outputs a command task left in `dir`: regular files at the top level
/// with valid, allowed names. Anything else fails the attempt; nothing is
/// ever followed through a symlink.
fn collect_outputs(dir: &Path, caps: &Capabilities) -> Result<Vec<Output>, Outcome> {
    let invalid = |name: &str, reason: &str| Outcome::InvalidOutput {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let read =
        std::fs::read_dir(dir).map_err(|e| invalid("/outputs", &format!("cannot list: {e}")))?;
    let mut outputs = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| invalid("/outputs", &format!("cannot list: {e}")))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(|e| invalid(&file_name, &e.to_string()))?;
        if !meta.file_type().is_file() {
            return Err(invalid(
                &file_name,
                "outputs must be regular files (not links or directories)",
            ));
        }
        let name = Name::new(&file_name).map_err(|e| invalid(&file_name, &e.to_string()))?;
        if !caps.may_write(&name) {
            return Err(invalid(&file_name, "the task does not declare this output"));
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| invalid(&file_name, &e.to_string()))?;
        outputs.push(Output {
            name,
            path: entry.path(),
            size: meta.len(),
            digest: Digest::of(&bytes),
        });
    }
    outputs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(outputs)
}
