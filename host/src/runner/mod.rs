//! Running a workflow: preflight, then each task in plan order, every event
//! in the audit log.
//!
//! Owns the order of effects: a step's records are durable (synced) before
//! the step acts on them — decisions before the run starts, `task-started`
//! before the task runs, each runtime decision before the host call it
//! allows. Outputs go to a content-addressed store (`STATE/artifacts/
//! sha256/<hex>`, written to a temporary file, synced, renamed) and reach
//! downstream tasks from there. A task starts when everything upstream of
//! it is done, up to `jobs` at once, each on its own tokio task; ready tasks
//! start in plan order. `when` decides whether a task runs after a failure.
//!
//! A resumed run ([`Start::Resume`]) starts from what the audit log says
//! was done: tasks recorded complete keep their results and outputs, the
//! rest run. A `cache = true` task whose cache key matches an earlier
//! successful attempt reuses its outputs (`cache-hit`).
//!
//! Time is tokio's clock (`tokio::time`): backoff delays, timeouts and
//! durations all read it, so tests pause and advance it instead of
//! sleeping.

pub mod approval;
mod core;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::audit::log::{AuditError, AuditLog, hex};
use crate::audit::record::{Artifact, Event, FileDigest, MountDigest, PolicyFile};
use crate::audit::verify::{Artifacts, policy_set_digest, sha256_tag};
use crate::manifest::Backoff;
use crate::manifest::Inject;
use crate::name::Name;
use crate::plan::{Dependency, Plan};
use crate::policy::{Decision, Policies, Preflight, Recorder};
use crate::resume::{Prior, Resumption};
use crate::sandbox::{
    Capabilities, Exchange, ExchangeSink, HttpLimits, Injection, Limits, LogSink, Mount, MountMode,
    Program, Sandbox, TaskSpec,
};
use crate::secrets::SecretValue;
use crate::state::{AttemptRow, RunRow, State, TaskRow};
use crate::workflow::Workflow;
pub use core::{AfterAttempt, Core, Ended, Step};

/// How a task ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It ran and succeeded.
    Succeeded,
    /// Its last attempt failed (the outcome, as shown to people).
    Failed(String),
    /// It did not run, and why.
    Skipped(String),
}

/// One task's result.
#[derive(Debug, Clone)]
pub struct TaskResult {
    /// The task.
    pub name: String,
    /// How it ended.
    pub status: Status,
    /// Attempts made.
    pub attempts: u32,
    /// Time across attempts.
    pub duration: Duration,
    /// Outputs, when it succeeded.
    pub outputs: Vec<Artifact>,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The run's id.
    pub run: String,
    /// `succeeded`, `failed` or `refused`; `interrupted` when the run was
    /// drained ([`Setup::drain`]) before it ended (no end is recorded).
    pub status: &'static str,
    /// Each task, in plan order.
    pub tasks: Vec<TaskResult>,
    /// How long.
    pub duration: Duration,
    /// The audit log, and the sequence number of the run's final checkpoint.
    pub log: PathBuf,
    /// Sequence number of the final checkpoint.
    pub checkpoint: u64,
    /// The approval gates it waits at (status `waiting`).
    pub waiting: Vec<OpenGate>,
}

/// An approval gate a run waits at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenGate {
    /// The gate task.
    pub task: String,
    /// Approvals needed.
    pub required: u32,
    /// Who approved so far.
    pub approvals: Vec<String>,
    /// What approvals are bound to.
    pub bound: String,
    /// When it times out, if it does.
    pub deadline: Option<String>,
    /// The tasks it lets through.
    pub gated: Vec<String>,
}

/// What a run needs besides the workflow.
#[derive(Clone)]
pub struct Setup {
    /// Who starts it.
    pub user: String,
    /// Its parameters' values (already written into the plan's tasks).
    pub params: BTreeMap<String, String>,
    /// The policies, loaded.
    pub policies: Arc<Policies>,
    /// The preflight made with them.
    pub preflight: Arc<Preflight>,
    /// The sandbox.
    pub sandbox: Arc<Sandbox>,
    /// Each task's program, loaded (and pin-checked) before the run.
    pub programs: HashMap<String, Arc<Program>>,
    /// The audit log.
    pub log: Arc<Mutex<AuditLog>>,
    /// Secret values by name (every secret the workflow declares).
    pub secrets: BTreeMap<Name, SecretValue>,
    /// The state directory (artifacts live under it).
    pub state_dir: PathBuf,
    /// Called with each task's log lines and progress.
    pub progress: Arc<dyn Fn(Progress<'_>) + Send + Sync>,
    /// How many tasks may run at once.
    pub jobs: usize,
    /// The run state (`cairn runs`).
    pub state: Arc<Mutex<State>>,
    /// The `trigger` record that starts the run, for a run the service
    /// starts (named in its `run-started`).
    pub trigger: Option<u64>,
    /// What the trigger gave the run: a webhook delivery's body, in the
    /// artifact store (`trigger.body`).
    pub given: Option<(Artifact, PathBuf)>,
    /// Slots shared by every run of a process: an attempt starts only
    /// holding one (the service's global task limit), besides `jobs`.
    pub slots: Option<Arc<tokio::sync::Semaphore>>,
    /// Once this turns true, no attempt starts: the run ends `Drained`
    /// when those under way have ended, recording no end (it resumes).
    pub drain: Option<tokio::sync::watch::Receiver<bool>>,
    /// The run's trace, when traces are exported: each attempt's HTTP
    /// requests then carry its trace context where policy allows
    /// (`propagate_trace`).
    pub trace: Option<[u8; 16]>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("user", &self.user)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// Progress to show.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A task is starting an attempt.
    Started { task: &'a str, attempt: u32 },
    /// A log line or captured output of a task.
    Line { task: &'a str, text: &'a str },
    /// A task ended.
    Finished(&'a TaskResult),
    /// An attempt failed and will be retried after `delay`.
    Retrying {
        task: &'a str,
        outcome: &'a str,
        delay: Duration,
    },
    /// An approval gate opened, and waits for people.
    Waiting(&'a OpenGate),
    /// A fan-out over an upstream output expanded to `count` tasks.
    Expanded {
        task: &'a str,
        source: &'a str,
        count: usize,
    },
}

/// How a run begins.
#[derive(Debug, Clone)]
pub enum Start {
    /// From nothing.
    New,
    /// Going on from where an interrupted run stopped.
    Resume(Resumption),
}

/// Why a run could not be carried out (not a task failing: that is a
/// failed run).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("artifact store `{}`: {source}", path.display())]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("task `{task}`: {message}")]
    Task { task: String, message: String },
}

/// A new run id: UTC time and 4 random hex digits, sortable.
#[must_use]
pub fn new_run_id() -> String {
    let time = crate::audit::record::rfc3339(SystemTime::now());
    let compact: String = time
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    format!("{compact}Z-{}", hex(&bytes))
}

fn lock(log: &Mutex<AuditLog>) -> std::sync::MutexGuard<'_, AuditLog> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

fn decision_event(phase: &str, d: &Decision) -> Event {
    let entity = |uid: &cedar_policy::EntityUid| serde_json::json!({ "type": uid.type_name().to_string(), "id": uid.id().unescaped() });
    Event::Decision {
        phase: phase.to_owned(),
        task: d.task.clone(),
        action: d.action.to_owned(),
        principal: entity(&d.principal),
        resource: entity(&d.resource),
        context: d.context.clone(),
        decision: if d.allowed { "allow" } else { "deny" }.to_owned(),
        policies: d.policies.clone(),
        errors: d.errors.clone(),
    }
}

/// The policy files of `policies` as recorded: paths relative to `dir`,
/// in the order of those paths (so the set's digest does not depend on
/// where the workflow was run from: a relative folder sorts apart from an
/// absolute one differently under another working directory).
pub(crate) fn policy_files(policies: &Policies, dir: &Path) -> Vec<PolicyFile> {
    let mut files: Vec<PolicyFile> = policies
        .sources()
        .map(|(path, text)| PolicyFile {
            path: path
                .strip_prefix(dir)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned(),
            sha256: sha256_tag(text.as_bytes()),
            text: text.to_owned(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The digest of `policies` as a run records it (files relative to `dir`).
#[must_use]
pub fn policy_set_of(policies: &Policies, dir: &Path) -> String {
    policy_set_digest(&policy_files(policies, dir))
}

/// Put `file` in the store; returns its path there.
fn store(state_dir: &Path, file: &Path, digest: &str) -> Result<PathBuf, RunError> {
    let dir = state_dir.join("artifacts").join("sha256");
    let err = |source| RunError::Store {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(err)?;
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let target = dir.join(hex);
    if target.is_file() {
        return Ok(target);
    }
    // A temporary file of its own: tasks running at once may store the
    // same bytes.
    let mut tmp = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempfile_in(&dir)
        .map_err(err)?;
    let mut source = std::fs::File::open(file).map_err(err)?;
    std::io::copy(&mut source, tmp.as_file_mut()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    let mut perms = tmp.as_file().metadata().map_err(err)?.permissions();
    perms.set_readonly(true);
    tmp.as_file().set_permissions(perms).map_err(err)?;
    tmp.persist(&target).map_err(|e| err(e.error))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(target)
}

/// The delay before retry number `retry` (1-based).
fn backoff(retries: &crate::manifest::Retries, retry: u32) -> Duration {
    let base = match retries.backoff {
        Backoff::Fixed => retries.initial.0,
        Backoff::Exponential => retries.initial.0.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        ),
    };
    let capped = base.min(retries.max_delay.0);
    if retries.jitter {
        let mut byte = [0u8; 1];
        let _ = getrandom::fill(&mut byte);
        // Between half and all of the delay.
        capped / 2 + capped.mul_f64(f64::from(byte[0]) / 510.0)
    } else {
        capped
    }
}

/// Run `workflow` (already authorized by `setup.preflight`) as run `run`.
/// If the run cannot go on (the audit log or the artifact store failing),
/// it is recorded as ended in `error`, with a checkpoint, where possible.
/// Dropping the future stops the run ([`Running::stop`] waits until it
/// has stopped).
///
/// # Errors
///
/// The audit log or the artifact store failing; never a task failing.
pub async fn run(
    workflow: Arc<Workflow>,
    setup: Setup,
    run: &str,
    start: Start,
) -> Result<Summary, RunError> {
    self::start(workflow, setup, run, start).finish().await
}

/// Start run `run` of `workflow` (as [`run`] does) on a runtime worker;
/// the handle finishes or stops it.
///
/// The driver runs on one of the runtime's workers, not on the thread
/// that awaits the run: an attempt it spawns then starts on that same
/// worker (tokio runs a task spawned from a worker there next), and its
/// end wakes the driver there too, instead of every step crossing threads.
#[must_use]
pub fn start(workflow: Arc<Workflow>, setup: Setup, run: &str, start: Start) -> Running {
    let id = run.to_owned();
    Running(Some(tokio::spawn(async move {
        let log = Arc::clone(&setup.log);
        let state = Arc::clone(&setup.state);
        let started = Instant::now();
        let result = run_steps(workflow, setup, &id, start).await;
        if result.is_err() {
            let _ = ended(&log, &state, &id, "error", started.elapsed());
        }
        result
    })))
}

/// A run under way ([`start`]); dropped, it is stopped (its attempts with
/// it) without waiting.
#[derive(Debug)]
pub struct Running(Option<tokio::task::JoinHandle<Result<Summary, RunError>>>);

impl Running {
    /// Wait for the run to end.
    ///
    /// # Errors
    ///
    /// As [`run`].
    pub async fn finish(&mut self) -> Result<Summary, RunError> {
        let Some(driver) = self.0.as_mut() else {
            return Err(RunError::Task {
                task: "?".to_owned(),
                message: "the run was stopped".to_owned(),
            });
        };
        let result = driver.await;
        self.0 = None;
        result.unwrap_or_else(|e| {
            Err(RunError::Task {
                task: "?".to_owned(),
                message: format!("the run's driver ended abnormally: {e}"),
            })
        })
    }

    /// Stop the run and its attempts, and wait until nothing of it runs any
    /// more, so that what the caller records next comes after everything
    /// the run recorded.
    pub async fn stop(mut self) {
        if let Some(driver) = self.0.take() {
            driver.abort();
            let _ = driver.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(driver) = self.0.take() {
            driver.abort();
        }
    }
}

/// Record how the run begins (`run-started`, or `run-resumed`), the policy
/// set and the preflight decisions, durably, before anything runs.
fn begin(workflow: &Workflow, setup: &Setup, run: &str, start: &Start) -> Result<(), RunError> {
    let plan: &Plan = &workflow.plan;
    let files = policy_files(&setup.policies, &workflow.dir);
    let policy_set = policy_set_digest(&files);
    let manifest = FileDigest {
        path: workflow
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        sha256: sha256_tag(workflow.source.as_bytes()),
    };
    let components: BTreeMap<String, String> = setup
        .programs
        .iter()
        .map(|(task, p)| (task.clone(), format!("sha256:{}", p.digest())))
        .collect();
    // The run state first: `cairn resume` finds the manifest there even
    // when the process dies before the log says anything.
    lock_state(&setup.state).start_run(&RunRow {
        id: run.to_owned(),
        workflow: plan.name.to_string(),
        manifest: std::path::absolute(&workflow.path)
            .unwrap_or_else(|_| workflow.path.clone())
            .display()
            .to_string(),
        manifest_sha256: manifest.sha256.clone(),
        policy_set: policy_set.clone(),
        user: setup.user.clone(),
        status: "running".to_owned(),
        started: crate::audit::record::rfc3339(SystemTime::now()),
        duration_ms: None,
    })?;
    crash_point("before-run-started");
    let mut log = lock(&setup.log);
    let first = match start {
        Start::New => Event::RunStarted {
            user: setup.user.clone(),
            workflow: plan.name.to_string(),
            manifest,
            source: workflow.source.clone(),
            policy_set: policy_set.clone(),
            parameters: setup.params.clone(),
            components,
            cairn: env!("CARGO_PKG_VERSION").to_owned(),
            trigger: setup.trigger,
        },
        Start::Resume(resumption) => Event::RunResumed {
            after: resumption.after.clone(),
            manifest,
            source: resumption.source.clone(),
            policy_set: policy_set.clone(),
            components,
            changed: resumption.changed.clone(),
            kept: resumption.kept(plan),
            cairn: env!("CARGO_PKG_VERSION").to_owned(),
        },
    };
    log.append(run, first)?;
    log.append(
        run,
        Event::PolicySet {
            sha256: policy_set,
            files,
            entities: setup.preflight.entities_json()?,
        },
    )?;
    for d in &setup.preflight.decisions {
        log.append(run, decision_event("preflight", d))?;
    }
    log.sync()?;
    Ok(())
}

/// What the driver keeps of a task whose attempts are under way.
struct InFlight {
    prepared: Arc<Prepared>,
    /// When its first attempt of this process started (for its duration).
    started: Instant,
    key: Option<String>,
}

/// What the driver waits for.
enum Wake {
    /// An attempt started in plan generation `.0` ended (or could not be
    /// carried out).
    Attempted(usize, Result<Box<Attempted>, RunError>),
    /// Task `.1`'s retry delay (from plan generation `.0`) is over.
    RetryDue(usize, usize),
}

/// Task `index` of plan generation `generation`, in the current one.
fn now_index(renumbered: &[Vec<usize>], generation: usize, index: usize) -> usize {
    renumbered
        .get(generation..)
        .unwrap_or_default()
        .iter()
        .fold(index, |i, map| map.get(i).copied().unwrap_or(usize::MAX))
}

/// `items`, one per task of a plan, for the plan a fan-out expanded
/// (`old_of[i]`: where task `i` was); the expanded tasks' start empty.
fn renumber_items<T: Default>(mut items: Vec<T>, old_of: &[Option<usize>]) -> Vec<T> {
    old_of
        .iter()
        .map(|old| {
            old.and_then(|o| items.get_mut(o))
                .map(std::mem::take)
                .unwrap_or_default()
        })
        .collect()
}

/// What the driver knows of each task, by plan index.
struct Tally<'a> {
    core: &'a mut Core,
    produced: &'a mut Vec<HashMap<String, (Artifact, PathBuf)>>,
    results: &'a mut Vec<Option<TaskResult>>,
}

impl Tally<'_> {
    /// Tasks `indices` of `plan` as a resumed run found them (`priors`,
    /// taken by name): what was recorded complete is kept, the attempts
    /// of the rest are counted on.
    fn seed(
        &mut self,
        state: &Mutex<State>,
        run: &str,
        plan: &Plan,
        indices: impl Iterator<Item = usize>,
        priors: &mut HashMap<String, Prior>,
    ) -> Result<(), RunError> {
        if priors.is_empty() {
            return Ok(());
        }
        for i in indices {
            let Some(prior) = priors.remove(task_name(plan, i)) else {
                continue;
            };
            self.core
                .resume_counts(i, prior.next_attempt, prior.failures);
            let Some((result, paths)) = prior.done else {
                continue;
            };
            lock_state(state).finish_task(run, None, &task_row(&result))?;
            let stored = result
                .outputs
                .iter()
                .cloned()
                .zip(paths)
                .map(|(a, path)| (a.name.clone(), (a, path)))
                .collect();
            self.core.settle(i, ended_of(&result.status));
            set(self.produced, i, stored);
            set(self.results, i, Some(result));
        }
        Ok(())
    }
}

async fn run_steps(
    workflow: Arc<Workflow>,
    setup: Setup,
    run: &str,
    start: Start,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let plan: &Plan = &workflow.plan;
    begin(&workflow, &setup, run, &start)?;

    if setup.preflight.denied().next().is_some() {
        let checkpoint = ended(&setup.log, &setup.state, run, "refused", started.elapsed())?;
        return Ok(Summary {
            run: run.to_owned(),
            status: "refused",
            tasks: Vec::new(),
            duration: started.elapsed(),
            log: lock(&setup.log).path().to_owned(),
            checkpoint,
            waiting: Vec::new(),
        });
    }

    let n = plan.tasks.len();
    let mut core = Core::new(plan);
    let mut results: Vec<Option<TaskResult>> = vec![None; n];
    // Per task: output name -> (artifact, path in the store).
    let mut produced: Vec<HashMap<String, (Artifact, PathBuf)>> = vec![HashMap::new(); n];
    let (mut priors, gates): (HashMap<String, Prior>, _) = match start {
        Start::New => (HashMap::new(), BTreeMap::new()),
        Start::Resume(resumption) => (resumption.tasks, resumption.gates),
    };
    // Gates open now, waiting for people.
    let mut open: Vec<OpenGate> = Vec::new();
    // A resumed run keeps what was recorded complete, and counts the
    // attempts of the rest on.
    let mut tally = Tally {
        core: &mut core,
        produced: &mut produced,
        results: &mut results,
    };
    tally.seed(&setup.state, run, plan, 0..n, &mut priors)?;
    let jobs = setup.jobs.max(1);
    let mut current = Arc::new(Shared {
        workflow: Arc::clone(&workflow),
        setup,
        run: run.to_owned(),
        empty: OnceLock::new(),
    });
    let mut inflight: HashMap<usize, InFlight> = HashMap::new();
    let mut waiting: JoinSet<Wake> = JoinSet::new();
    let mut drain = current.setup.drain.clone();
    // Attempts under way (retry delays aside).
    let mut attempts = 0usize;
    // Each fan-out over an output renumbers the plan's tasks: what a
    // task's index in one generation of the plan is in the next. Wakes
    // carry the generation they were started in.
    let mut renumbered: Vec<Vec<usize>> = Vec::new();

    'run: loop {
        let shared = Arc::clone(&current);
        let setup = &shared.setup;
        let plan = &shared.workflow.plan;
        let generation = renumbered.len();
        let draining = drain.as_ref().is_some_and(|d| *d.borrow());
        while let Some(step) = core.next(!draining && core.running() < jobs) {
            let (index, reason) = match step {
                Step::Skip { index, reason } => (index, reason),
                Step::Expand { index } => {
                    match expansion(&shared, index, &produced)? {
                        Err(result) => {
                            lock_state(&setup.state).finish_task(run, None, &task_row(&result))?;
                            (setup.progress)(Progress::Finished(&result));
                            core.expansion_failed(index);
                            set(&mut results, index, Some(result));
                        }
                        Ok(expanded) => {
                            let next = &expanded.shared.workflow.plan;
                            core = core.carried_over(next, &expanded.old_of);
                            let mut new_of_old = vec![usize::MAX; plan.tasks.len()];
                            for (new, old) in expanded.old_of.iter().enumerate() {
                                if let Some(slot) = old.and_then(|o| new_of_old.get_mut(o)) {
                                    *slot = new;
                                }
                            }
                            produced = renumber_items(produced, &expanded.old_of);
                            results = renumber_items(results, &expanded.old_of);
                            inflight = inflight
                                .into_iter()
                                .filter_map(|(i, f)| Some((*new_of_old.get(i)?, f)))
                                .collect();
                            renumbered.push(new_of_old);
                            (setup.progress)(Progress::Expanded {
                                task: task_name(plan, index),
                                source: &expanded.source,
                                count: expanded.count,
                            });
                            // A resumed run keeps what the expanded tasks
                            // had done before.
                            let fresh = expanded
                                .old_of
                                .iter()
                                .enumerate()
                                .filter(|(_, old)| old.is_none())
                                .map(|(i, _)| i);
                            let mut tally = Tally {
                                core: &mut core,
                                produced: &mut produced,
                                results: &mut results,
                            };
                            tally.seed(&setup.state, run, next, fresh, &mut priors)?;
                            current = expanded.shared;
                            continue 'run;
                        }
                    }
                    continue;
                }
                Step::Open { index } => {
                    match open_gate(&shared, index, &produced, gates.get(task_name(plan, index)))? {
                        Ok(result) => {
                            lock_state(&setup.state).finish_task(run, None, &task_row(&result))?;
                            (setup.progress)(Progress::Finished(&result));
                            core.gate_closed(index, ended_of(&result.status));
                            set(&mut results, index, Some(result));
                        }
                        Err(waiting) => {
                            (setup.progress)(Progress::Waiting(&waiting));
                            open.push(waiting);
                        }
                    }
                    continue;
                }
                Step::Start { index, attempt } => {
                    match launch(&shared, &mut inflight, index, attempt, &produced)? {
                        Launched::Attempt(future) => {
                            attempts += 1;
                            waiting.spawn(async move { Wake::Attempted(generation, future.await) });
                            continue;
                        }
                        Launched::Skip(reason) => (index, reason),
                        Launched::Done(hit) => {
                            let hit = *hit;
                            lock_state(&setup.state).finish_task(
                                run,
                                None,
                                &task_row(&hit.result),
                            )?;
                            (setup.progress)(Progress::Finished(&hit.result));
                            core.settle(index, Ended::Succeeded);
                            set(&mut produced, index, hit.stored);
                            set(&mut results, index, Some(hit.result));
                            continue;
                        }
                    }
                }
            };
            let result = skipped(setup, run, index, plan, reason)?;
            core.settle(index, Ended::Skipped);
            set(&mut results, index, Some(result));
        }
        if draining && attempts == 0 && !core.is_over() {
            // Stopped between attempts: no end is recorded, and the run
            // resumes from here (its retry delays are dropped with it).
            return Ok(Summary {
                run: run.to_owned(),
                status: "interrupted",
                tasks: results.into_iter().flatten().collect(),
                duration: started.elapsed(),
                log: lock(&setup.log).path().to_owned(),
                checkpoint: 0,
                waiting: Vec::new(),
            });
        }
        let joined = match drain.as_mut().filter(|_| !draining) {
            Some(told) => tokio::select! {
                joined = waiting.join_next() => joined,
                changed = told.changed() => {
                    if changed.is_err() {
                        drain = None;
                    }
                    continue;
                }
            },
            None => waiting.join_next().await,
        };
        let Some(joined) = joined else {
            break;
        };
        if matches!(joined, Ok(Wake::Attempted(..))) {
            attempts = attempts.saturating_sub(1);
        }
        let (started_in, attempted) = match joined {
            Ok(Wake::Attempted(started_in, attempted)) => (started_in, attempted?),
            Ok(Wake::RetryDue(started_in, index)) => {
                core.retry_due(now_index(&renumbered, started_in, index));
                continue;
            }
            Err(e) => {
                return Err(RunError::Task {
                    task: "?".to_owned(),
                    message: format!("the task's worker ended abnormally: {e}"),
                });
            }
        };
        let Attempted {
            index,
            attempt,
            outcome,
            retriable,
            row,
            outputs,
            stored,
        } = *attempted;
        let index = now_index(&renumbered, started_in, index);
        let name = plan
            .tasks
            .get(index)
            .map(|t| t.task.name.value.to_string())
            .unwrap_or_default();
        match core.attempt_ended(index, outcome.is_none(), retriable) {
            AfterAttempt::Retry { retry } => {
                lock_state(&setup.state).attempt(run, &row)?;
                let delay = plan
                    .tasks
                    .get(index)
                    .and_then(|t| t.settings.retries.as_ref())
                    .map_or(Duration::ZERO, |r| backoff(&r.value, retry));
                let reason = outcome.unwrap_or_default();
                lock(&setup.log).append(
                    run,
                    Event::Retry {
                        task: name.clone(),
                        attempt,
                        delay_ms: millis(delay),
                        reason: reason.clone(),
                    },
                )?;
                (setup.progress)(Progress::Retrying {
                    task: &name,
                    outcome: &reason,
                    delay,
                });
                waiting.spawn(async move {
                    tokio::time::sleep(delay).await;
                    Wake::RetryDue(generation, index)
                });
            }
            AfterAttempt::Settled(_) => {
                let flight = inflight.remove(&index);
                if let (None, Some(key)) = (&outcome, flight.as_ref().and_then(|f| f.key.as_ref()))
                {
                    lock_state(&setup.state).remember(key, &name, run, attempt, &outputs)?;
                }
                let result = TaskResult {
                    name,
                    status: outcome.map_or(Status::Succeeded, Status::Failed),
                    attempts: attempt,
                    duration: flight.map_or(Duration::ZERO, |f| f.started.elapsed()),
                    outputs,
                };
                lock_state(&setup.state).finish_task(run, Some(&row), &task_row(&result))?;
                (setup.progress)(Progress::Finished(&result));
                set(&mut produced, index, stored);
                set(&mut results, index, Some(result));
            }
        }
    }

    let setup = &current.setup;
    let results: Vec<TaskResult> = results.into_iter().flatten().collect();
    // Nothing runs and nothing will: a gate still open stops the run here,
    // to go on (`cairn resume`) once people decide.
    let status = if core.open() > 0 {
        "waiting"
    } else if core.any_failed() {
        "failed"
    } else {
        "succeeded"
    };
    let checkpoint = ended(&setup.log, &setup.state, run, status, started.elapsed())?;
    Ok(Summary {
        run: run.to_owned(),
        status,
        tasks: results,
        duration: started.elapsed(),
        log: lock(&setup.log).path().to_owned(),
        checkpoint,
        waiting: if core.open() > 0 { open } else { Vec::new() },
    })
}

fn ended_of(status: &Status) -> Ended {
    match status {
        Status::Succeeded => Ended::Succeeded,
        Status::Failed(_) => Ended::Failed,
        Status::Skipped(_) => Ended::Skipped,
    }
}

fn task_name(plan: &Plan, index: usize) -> &str {
    plan.tasks
        .get(index)
        .map(|t| t.task.name.value.as_str())
        .unwrap_or_default()
}

/// Open gate `index` (recording it, unless it is open already and still
/// covers the same), and close it if the recorded approvals, a rejection
/// or its deadline decide it: its result then, else the gate as it waits.
fn open_gate(
    shared: &Shared,
    index: usize,
    produced: &[HashMap<String, (Artifact, PathBuf)>],
    history: Option<&crate::resume::GateHistory>,
) -> Result<Result<TaskResult, OpenGate>, RunError> {
    let plan = &shared.workflow.plan;
    let setup = &shared.setup;
    let run = shared.run.as_str();
    let name = task_name(plan, index).to_owned();
    let Some(approval) = plan
        .tasks
        .get(index)
        .and_then(|t| t.task.approval.as_ref())
        .map(|a| &a.value)
    else {
        return Err(RunError::Task {
            task: name,
            message: "is not an approval gate".to_owned(),
        });
    };
    let covers = approval::covers(shared, index, produced);
    let bound = approval::bound_of(&covers);
    let now = SystemTime::now();
    let deadline = history
        .and_then(|h| h.deadline.clone())
        .or_else(|| approval::deadline(approval, now));
    let gated: Vec<String> = plan
        .gated_by(index)
        .into_iter()
        .map(|i| task_name(plan, i).to_owned())
        .collect();
    let mut log = lock(&setup.log);
    let reopened = history.is_some_and(|h| h.bound != bound);
    if history.is_none_or(|h| h.bound != bound) {
        log.append(
            run,
            Event::GateOpened {
                task: name.clone(),
                required: approval.required,
                gated: gated.clone(),
                bound: bound.clone(),
                covers,
                deadline: deadline.clone(),
                on_timeout: approval.on_timeout.as_str().to_owned(),
            },
        )?;
    }
    let standing = approval::standing(approval, history, &bound, deadline.as_deref(), now);
    let Some(result) = standing.result() else {
        log.sync()?;
        drop(log);
        crash_point("after-gate-opened");
        if reopened {
            tracing::warn!(
                "gate `{name}` covers something else than when it opened (the manifest, policies, components, parameters or inputs changed): the approvals so far no longer count"
            );
        }
        let approvals = match standing {
            approval::Standing::Waiting(who) => who,
            _ => Vec::new(),
        };
        return Ok(Err(OpenGate {
            task: name,
            required: approval.required,
            approvals,
            bound,
            deadline,
            gated,
        }));
    };
    let by = match &standing {
        approval::Standing::Approved(who) => who.clone(),
        approval::Standing::Rejected(who) => vec![who.clone()],
        _ => Vec::new(),
    };
    log.append(
        run,
        Event::GateClosed {
            task: name.clone(),
            result: result.to_owned(),
            by: by.clone(),
        },
    )?;
    log.sync()?;
    Ok(Ok(TaskResult {
        name,
        status: crate::resume::gate_status(result, &by, approval.on_timeout.as_str()),
        attempts: 0,
        duration: Duration::ZERO,
        outputs: Vec::new(),
    }))
}

/// A fan-out over an output, expanded: the run goes on with `shared`.
struct Expanded {
    /// The run's plan with it expanded, the expanded tasks' programs and
    /// the preflight of that plan.
    shared: Arc<Shared>,
    /// Per task of the new plan, its index in the old one (none for the
    /// expanded tasks).
    old_of: Vec<Option<usize>>,
    /// What it fanned out over (`task.output`).
    source: String,
    /// How many tasks it expanded to.
    count: usize,
}

/// The decisions of a preflight that a run has made already: the same
/// request, decided the same way.
type DecisionKey = (String, &'static str, String, String, bool, Vec<String>);

fn decision_key(d: &Decision) -> DecisionKey {
    (
        d.task.clone(),
        d.action,
        d.request.clone(),
        d.context.to_string(),
        d.allowed,
        d.policies.clone(),
    )
}

/// Expand fan-out `index` over the upstream output it names, which has
/// arrived: read it (bounded), expand the plan as a list fan-out expands,
/// preflight the expanded plan as the run's user and record, durably, its
/// entities, the decisions the run did not have yet (phase `expansion`)
/// and the `expansion`. `Err` is the template's result when it cannot
/// expand (recorded with why): the output is not a JSON array, too
/// large, or policy denies something of what it would run.
fn expansion(
    shared: &Shared,
    index: usize,
    produced: &[HashMap<String, (Artifact, PathBuf)>],
) -> Result<Result<Expanded, TaskResult>, RunError> {
    let plan = &shared.workflow.plan;
    let setup = &shared.setup;
    let run = shared.run.as_str();
    let name = task_name(plan, index).to_owned();
    let Some((planned, (from, output))) = plan
        .tasks
        .get(index)
        .and_then(|p| Some((p, p.fans_out_at_run_time()?)))
    else {
        return Err(RunError::Task {
            task: name,
            message: "does not fan out over an output".to_owned(),
        });
    };
    let source = format!("{from}.{output}");
    let refuse = |sha256: Option<String>, why: String| {
        let mut log = lock(&setup.log);
        log.append(
            run,
            Event::Expansion {
                task: name.clone(),
                source: source.clone(),
                sha256,
                count: 0,
                keys: None,
                error: Some(why.clone()),
            },
        )?;
        log.sync()?;
        Ok(Err(TaskResult {
            name: name.clone(),
            status: Status::Failed(why),
            attempts: 0,
            duration: Duration::ZERO,
            outputs: Vec::new(),
        }))
    };
    let stored = planned
        .upstream
        .iter()
        .find(|u| task_name(plan, u.from) == from.as_str())
        .and_then(|u| produced.get(u.from))
        .and_then(|m| m.get(output.as_str()));
    let Some((artifact, path)) = stored else {
        return refuse(
            None,
            format!("`{from}` produced no `{output}` to fan out over"),
        );
    };
    let digest = Some(artifact.sha256.clone());
    let items = match read_fan_out(path, &artifact.sha256) {
        Ok(bytes) => match crate::manifest::run_time_elements(&bytes) {
            Ok(items) => items,
            Err(why) => return refuse(digest, format!("`{source}` {why}")),
        },
        Err(why) => return refuse(digest, format!("`{source}` {why}")),
    };
    let expanded = match plan.expand_output(index, &items) {
        Ok(expanded) => expanded,
        Err(why) => {
            return refuse(
                digest,
                format!("`{source}` has {} elements, and {why}", items.len()),
            );
        }
    };
    let preflight = crate::policy::preflight(&expanded, &setup.policies, &setup.user)?;
    let known: std::collections::HashSet<DecisionKey> =
        setup.preflight.decisions.iter().map(decision_key).collect();
    let new: Vec<&Decision> = preflight
        .decisions
        .iter()
        .filter(|d| !known.contains(&decision_key(d)))
        .collect();
    let keys = crate::manifest::fan_out_keys(&items);
    {
        let mut log = lock(&setup.log);
        let files = policy_files(&setup.policies, &shared.workflow.dir);
        log.append(
            run,
            Event::PolicySet {
                sha256: policy_set_digest(&files),
                files,
                entities: preflight.entities_json()?,
            },
        )?;
        for d in &new {
            log.append(run, decision_event("expansion", d))?;
        }
    }
    let denied: Vec<String> = new
        .iter()
        .filter(|d| !d.allowed && d.action != "declassify")
        .map(|d| format!("{} ({})", d.what, d.task))
        .collect();
    if let Some(first) = denied.first() {
        let more = match denied.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        return refuse(
            digest,
            format!("policy denies what it expands to: {first}{more}"),
        );
    }
    let indices = keys.iter().enumerate().all(|(i, k)| *k == i.to_string());
    {
        let mut log = lock(&setup.log);
        log.append(
            run,
            Event::Expansion {
                task: name.clone(),
                source: source.clone(),
                sha256: digest,
                count: items.len(),
                keys: (!indices).then(|| keys.clone()),
                error: None,
            },
        )?;
        log.sync()?;
    }
    crash_point("after-expansion");
    let mut next = setup.clone();
    if let Some(program) = setup.programs.get(&name) {
        for key in &keys {
            let task = Name::fanned(&planned.task.name.value, key).to_string();
            next.programs.insert(task, Arc::clone(program));
        }
    }
    next.preflight = Arc::new(preflight);
    let old_index: HashMap<&str, usize> = plan
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.task.name.value.as_str(), i))
        .collect();
    let old_of = expanded
        .tasks
        .iter()
        .map(|t| old_index.get(t.task.name.value.as_str()).copied())
        .collect();
    let workflow = Workflow {
        path: shared.workflow.path.clone(),
        dir: shared.workflow.dir.clone(),
        source: shared.workflow.source.clone(),
        plan: expanded,
    };
    Ok(Ok(Expanded {
        shared: Arc::new(Shared {
            workflow: Arc::new(workflow),
            setup: next,
            run: shared.run.clone(),
            empty: OnceLock::new(),
        }),
        old_of,
        source,
        count: items.len(),
    }))
}

/// The output at `path` a task fans out over: at most
/// [`crate::manifest::MAX_FAN_OUT_BYTES`], and still `sha256`.
fn read_fan_out(path: &Path, sha256: &str) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let limit = crate::manifest::MAX_FAN_OUT_BYTES;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot be read from the store (`{}`: {e})", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read from the store (`{}`: {e})", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "is over {} MiB; a fan-out reads at most that much of an output",
            limit >> 20
        ));
    }
    if sha256_tag(&bytes) != sha256 {
        return Err(format!(
            "in the store (`{}`) is no longer what the run recorded",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Record that task `index` is skipped for `reason`; its result.
fn skipped(
    setup: &Setup,
    run: &str,
    index: usize,
    plan: &Plan,
    reason: String,
) -> Result<TaskResult, RunError> {
    let name = plan
        .tasks
        .get(index)
        .map(|t| t.task.name.value.to_string())
        .unwrap_or_default();
    lock(&setup.log).append(
        run,
        Event::TaskSkipped {
            task: name.clone(),
            reason: reason.clone(),
        },
    )?;
    let result = TaskResult {
        name,
        status: Status::Skipped(reason),
        attempts: 0,
        duration: Duration::ZERO,
        outputs: Vec::new(),
    };
    lock_state(&setup.state).finish_task(run, None, &task_row(&result))?;
    (setup.progress)(Progress::Finished(&result));
    Ok(result)
}

fn set<T>(items: &mut [T], index: usize, value: T) {
    if let Some(slot) = items.get_mut(index) {
        *slot = value;
    }
}

/// What a running task needs, shared with its worker.
struct Shared {
    workflow: Arc<Workflow>,
    setup: Setup,
    run: String,
    /// An empty directory, created on first use: the read-only `/outputs`
    /// of command tasks that declare no outputs (nothing is created on disk
    /// for a task that needs nothing).
    /// Removed with the run's last reference to it.
    empty: OnceLock<tempfile::TempDir>,
}

/// A task's inputs, resolved from the store.
struct Prepared {
    inputs: BTreeMap<Name, PathBuf>,
    records: Vec<Artifact>,
    flows: Vec<Event>,
}

/// A task's inputs from what its upstream produced, or why it has none.
fn prepare(
    shared: &Shared,
    index: usize,
    produced: &[HashMap<String, (Artifact, PathBuf)>],
) -> Result<Prepared, String> {
    let plan = &shared.workflow.plan;
    let Some(planned) = plan.tasks.get(index) else {
        return Err("not in the plan".to_owned());
    };
    let name = planned.task.name.value.as_str();
    let mut prepared = Prepared {
        inputs: BTreeMap::new(),
        records: Vec::new(),
        flows: Vec::new(),
    };
    // Each input: its data (the run's trigger's, or an upstream output),
    // where that data is known by (`task.output`), and where it is stored.
    let given_key = format!("{}.body", crate::plan::TRIGGER);
    let mut sources: Vec<(&Name, String, &(Artifact, PathBuf))> = Vec::new();
    for input in &planned.from_trigger {
        let Some(given) = &shared.setup.given else {
            return Err(format!(
                "input `{input}` takes `{given_key}`, and this run was not started by a webhook delivery"
            ));
        };
        sources.push((input, given_key.clone(), given));
    }
    for up in &planned.upstream {
        let Dependency::Data { input, output } = &up.why else {
            continue;
        };
        let from = plan
            .tasks
            .get(up.from)
            .map(|t| t.task.name.value.as_str())
            .unwrap_or_default();
        let Some(stored) = produced.get(up.from).and_then(|m| m.get(output.as_str())) else {
            return Err(format!(
                "input `{input}` has no data: `{from}` produced no `{output}`"
            ));
        };
        sources.push((input, format!("{from}.{output}"), stored));
    }
    for (input, key, (artifact, path)) in sources {
        prepared.inputs.insert(input.clone(), path.clone());
        prepared.records.push(Artifact {
            name: input.to_string(),
            ..artifact.clone()
        });
        prepared.flows.push(Event::DataFlow {
            labels: shared
                .setup
                .preflight
                .labels
                .get(&key)
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default(),
            from: key,
            task: name.to_owned(),
            input: input.to_string(),
            sha256: artifact.sha256.clone(),
        });
    }
    Ok(prepared)
}

/// A task's result that needed no attempt (a cache hit).
struct Finished {
    result: TaskResult,
    stored: HashMap<String, (Artifact, PathBuf)>,
}

/// How one attempt ended, as its worker reports it.
struct Attempted {
    index: usize,
    attempt: u32,
    /// `None` when it succeeded; else the outcome, as shown to people.
    outcome: Option<String>,
    retriable: bool,
    /// The attempt's row in the run state.
    row: AttemptRow,
    outputs: Vec<Artifact>,
    stored: HashMap<String, (Artifact, PathBuf)>,
}

/// What starting a task's attempt came to.
enum Launched {
    /// The attempt, to run on a worker.
    Attempt(std::pin::Pin<Box<dyn Future<Output = Result<Box<Attempted>, RunError>> + Send>>),
    /// Its inputs have no data: it is skipped, for this reason.
    Skip(String),
    /// Its result came from the cache (recorded).
    Done(Box<Finished>),
}

/// Start attempt `attempt` of task `index`: on its first attempt in this
/// process, resolve its inputs and look its result up in the cache.
fn launch(
    shared: &Arc<Shared>,
    inflight: &mut HashMap<usize, InFlight>,
    index: usize,
    attempt: u32,
    produced: &[HashMap<String, (Artifact, PathBuf)>],
) -> Result<Launched, RunError> {
    let setup = &shared.setup;
    let run = shared.run.as_str();
    let planned = shared
        .workflow
        .plan
        .tasks
        .get(index)
        .ok_or_else(|| RunError::Task {
            task: format!("#{index}"),
            message: "not in the plan".to_owned(),
        })?;
    let name = planned.task.name.value.as_str();
    let prepared = match inflight.entry(index) {
        std::collections::hash_map::Entry::Occupied(known) => Arc::clone(&known.get().prepared),
        std::collections::hash_map::Entry::Vacant(slot) => {
            let prepared = match prepare(shared, index, produced) {
                Ok(prepared) => prepared,
                Err(reason) => return Ok(Launched::Skip(reason)),
            };
            let program = program_of(setup, name)?;
            let key = planned.task.cache.value.then(|| {
                let caps = capabilities(shared, index, &prepared);
                cache_key(&program.digest().to_string(), &prepared.records, &caps)
            });
            if let Some(key) = &key
                && let Some(hit) = cached(setup, (run, name), key, &prepared.flows)?
            {
                return Ok(Launched::Done(Box::new(hit)));
            }
            let prepared = Arc::new(prepared);
            slot.insert(InFlight {
                prepared: Arc::clone(&prepared),
                started: Instant::now(),
                key,
            });
            prepared
        }
    };
    let shared = Arc::clone(shared);
    Ok(Launched::Attempt(Box::pin(async move {
        // Waiting here for a slot shared with other runs, before anything
        // of the attempt is recorded.
        let _slot = match &shared.setup.slots {
            Some(slots) => Some(slots.acquire().await.map_err(|_| {
                RunError::Task {
                    task: shared
                        .workflow
                        .plan
                        .tasks
                        .get(index)
                        .map(|t| t.task.name.value.to_string())
                        .unwrap_or_default(),
                    message: "the process is shutting down".to_owned(),
                }
            })?),
            None => None,
        };
        one_attempt(&shared, index, attempt, &prepared)
            .await
            .map(Box::new)
    })))
}

fn program_of<'a>(setup: &'a Setup, task: &str) -> Result<&'a Arc<Program>, RunError> {
    setup.programs.get(task).ok_or_else(|| RunError::Task {
        task: task.to_owned(),
        message: "its component was not loaded".to_owned(),
    })
}

/// What task `index` may touch, with its inputs as `prepared`.
fn capabilities(shared: &Shared, index: usize, prepared: &Prepared) -> Capabilities {
    let setup = &shared.setup;
    let workflow = &shared.workflow;
    let Some(planned) = workflow.plan.tasks.get(index) else {
        return Capabilities::default();
    };
    let task = &planned.task;
    Capabilities {
        args: task.args.clone(),
        env: task
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        inputs: prepared.inputs.clone(),
        outputs: Some(task.outputs.keys().cloned().collect()),
        mounts: task
            .mounts
            .iter()
            .map(|m| Mount {
                host: workflow.dir.join(&m.host.value),
                guest: m.guest.value.clone(),
                mode: m.mode,
            })
            .collect(),
        secrets: task
            .secrets
            .iter()
            .filter_map(|s| Some((s.value.clone(), setup.secrets.get(&s.value)?.clone())))
            .collect(),
        network: task
            .network
            .iter()
            .filter_map(|h| h.value.parse().ok())
            .collect(),
        inject: task
            .inject
            .iter()
            .filter_map(|(name, how)| {
                Some((
                    name.clone(),
                    Injection {
                        value: setup.secrets.get(name)?.clone(),
                        body: how.value == Inject::HeadersAndBody,
                    },
                ))
            })
            .collect(),
        stdin: Vec::new(),
    }
}

/// The limits of a task with `settings`.
fn limits(settings: &crate::manifest::Settings) -> Limits {
    let defaults = Limits::default();
    Limits {
        timeout: settings
            .timeout
            .as_ref()
            .map_or(defaults.timeout, |t| t.value.0),
        cpu_time: settings
            .cpu_time
            .as_ref()
            .or(settings.timeout.as_ref())
            .map_or(defaults.cpu_time, |t| t.value.0),
        memory: settings
            .memory
            .as_ref()
            .map_or(defaults.memory, |m| m.value.0),
        instances: settings
            .instances
            .as_ref()
            .map_or(defaults.instances, |n| n.value as usize),
        http: HttpLimits {
            requests: settings
                .http_requests
                .as_ref()
                .map_or(defaults.http.requests, |n| n.value),
            request_bytes: settings
                .http_request_size
                .as_ref()
                .map_or(defaults.http.request_bytes, |s| s.value.0),
            response_bytes: settings
                .http_response_size
                .as_ref()
                .map_or(defaults.http.response_bytes, |s| s.value.0),
            timeout: settings
                .http_timeout
                .as_ref()
                .map_or(defaults.http.timeout, |t| t.value.0),
        },
        ..defaults.clone()
    }
}

/// Where an attempt writes its outputs.
enum Staging {
    /// A fresh directory of its own, removed when the attempt is over.
    Own(tempfile::TempDir),
    /// The run's shared empty directory, mounted read-only (the task
    /// declares no outputs).
    Empty(PathBuf),
}

impl Staging {
    fn path(&self) -> &Path {
        match self {
            Self::Own(dir) => dir.path(),
            Self::Empty(path) => path,
        }
    }
}

/// A place for an attempt's outputs: its own directory when the task
/// declares outputs, else the run's empty one.
fn staging(shared: &Shared, declares_outputs: bool) -> Result<Staging, RunError> {
    let root = shared.setup.state_dir.join("tmp");
    let err = |source| RunError::Store {
        path: root.clone(),
        source,
    };
    if !declares_outputs {
        if let Some(dir) = shared.empty.get() {
            return Ok(Staging::Empty(dir.path().to_owned()));
        }
        std::fs::create_dir_all(&root).map_err(err)?;
        let dir = tempfile::Builder::new()
            .prefix("empty-")
            .tempdir_in(&root)
            .map_err(err)?;
        // Two attempts may race to make it: one directory wins, the
        // other is removed as it drops.
        let path = shared.empty.get_or_init(|| dir).path().to_owned();
        return Ok(Staging::Empty(path));
    }
    std::fs::create_dir_all(&root).map_err(err)?;
    tempfile::Builder::new()
        .prefix("outputs-")
        .tempdir_in(&root)
        .map(Staging::Own)
        .map_err(err)
}

/// What the mounts of task `name` hold now, for its `task-started` record
/// (hashed off the async workers: a mount can be large).
async fn mount_digests(
    name: &str,
    task: &crate::manifest::Task,
    caps: &Capabilities,
) -> Result<Vec<MountDigest>, RunError> {
    if caps.mounts.is_empty() {
        return Ok(Vec::new());
    }
    let mounts: Vec<(String, Mount)> = task
        .mounts
        .iter()
        .map(|m| m.host.value.clone())
        .zip(caps.mounts.iter().cloned())
        .collect();
    let failed = |message: String| RunError::Task {
        task: name.to_owned(),
        message,
    };
    tokio::task::spawn_blocking(move || {
        mounts
            .into_iter()
            .map(|(host, mount)| {
                let hash = crate::dirhash::dir_hash(&mount.host).map_err(|e| {
                    format!(
                        "cannot record what its mount `{host}` ({}) holds: {e}",
                        mount.guest
                    )
                })?;
                Ok(MountDigest {
                    guest: mount.guest,
                    host,
                    mode: match mount.mode {
                        MountMode::Ro => "ro",
                        MountMode::Rw => "rw",
                    }
                    .to_owned(),
                    dir_hash: hash.hex,
                    files: hash.files,
                    bytes: hash.bytes,
                })
            })
            .collect::<Result<Vec<_>, String>>()
    })
    .await
    .map_err(|e| failed(e.to_string()))?
    .map_err(failed)
}

/// Run attempt `attempt_no` of task `index` on a worker: record its start
/// (after the data flowing in), run it in the sandbox with the run's gate,
/// store its outputs, record its end.
#[expect(
    clippy::too_many_lines,
    reason = "one attempt, step by step, in the order its effects must happen"
)]
async fn one_attempt(
    shared: &Shared,
    index: usize,
    attempt_no: u32,
    prepared: &Prepared,
) -> Result<Attempted, RunError> {
    let setup = &shared.setup;
    let workflow = &shared.workflow;
    let run = shared.run.as_str();
    let plan = &workflow.plan;
    let planned = plan.tasks.get(index).ok_or_else(|| RunError::Task {
        task: format!("#{index}"),
        message: "not in the plan".to_owned(),
    })?;
    let task = &planned.task;
    let name = task.name.value.as_str();
    let program = program_of(setup, name)?;
    let caps = capabilities(shared, index, prepared);
    let limits = limits(&planned.settings);
    let writes_outside = task.mounts.iter().any(|m| m.mode == MountMode::Rw);
    let mounts = mount_digests(name, task, &caps).await?;
    {
        let mut log = lock(&setup.log);
        for flow in &prepared.flows {
            log.append(run, flow.clone())?;
        }
        log.append(
            run,
            Event::TaskStarted {
                task: name.to_owned(),
                attempt: attempt_no,
                component: FileDigest {
                    path: task.component.value.clone(),
                    sha256: format!("sha256:{}", program.digest()),
                },
                inputs: prepared.records.clone(),
                when: task.when.value.as_str().to_owned(),
                mounts,
            },
        )?;
        // A task that can change the world outside its sandbox as it
        // runs (a writable mount) starts only once its start is on
        // disk. Secrets are synced as they are released (the gate's
        // recorder); other tasks only touch the sandbox and the store,
        // which a resume after a crash redoes.
        if writes_outside {
            log.sync()?;
        }
    }
    (setup.progress)(Progress::Started {
        task: name,
        attempt: attempt_no,
    });

    let recorder: Recorder = {
        let log = Arc::clone(&setup.log);
        let run = run.to_owned();
        let task_name = name.to_owned();
        Arc::new(move |d: &Decision| {
            let mut log = lock(&log);
            log.append(&run, decision_event("runtime", d))
                .map_err(|e| e.to_string())?;
            if d.allowed && d.action == "read_secret" {
                log.append(
                    &run,
                    Event::SecretRead {
                        task: task_name.clone(),
                        attempt: attempt_no,
                        name: d.resource.id().unescaped().to_owned(),
                    },
                )
                .map_err(|e| e.to_string())?;
            }
            log.sync().map_err(|e| e.to_string())
        })
    };
    let traceparent = setup.trace.map(|trace_id| {
        let origin = lock(&setup.log).origin().to_owned();
        crate::observe::trace::attempt_traceparent(&origin, trace_id, run, name, attempt_no)
    });
    let gate = setup
        .preflight
        .gate_of(plan, planned, Arc::clone(&setup.policies), &setup.user)
        .with_recorder(recorder)
        .with_trace(traceparent);
    let staging = staging(shared, !task.outputs.is_empty())?;
    let progress = Arc::clone(&setup.progress);
    let sink_task = name.to_owned();
    let sink: LogSink = Arc::new(move |line: &crate::sandbox::LogLine| {
        let text = format!("{}: {}", line.level.as_str(), line.message);
        progress(Progress::Line {
            task: &sink_task,
            text: &text,
        });
    });
    let exchange_sink: ExchangeSink = {
        let log = Arc::clone(&setup.log);
        let progress = Arc::clone(&setup.progress);
        let run = run.to_owned();
        let task_name = name.to_owned();
        Arc::new(move |e: &Exchange| {
            let text = exchange_line(e);
            progress(Progress::Line {
                task: &task_name,
                text: &text,
            });
            // A failure to record surfaces at the attempt's next record.
            if let Err(error) = lock(&log).append(&run, exchange_event(&task_name, attempt_no, e)) {
                tracing::error!(%error, "cannot record an HTTP request");
            }
        })
    };
    let spec = TaskSpec {
        caps,
        limits,
        outputs_dir: staging.path().to_owned(),
        log_sink: Some(sink),
        exchange_sink: Some(exchange_sink),
        gate: Some(Arc::new(gate)),
    };
    let attempt = setup
        .sandbox
        .run(program, &spec)
        .await
        .map_err(|e| RunError::Task {
            task: name.to_owned(),
            message: e.to_string(),
        })?;
    for stream in [&attempt.stdout, &attempt.stderr] {
        let text = String::from_utf8_lossy(stream);
        for line in text.lines() {
            (setup.progress)(Progress::Line {
                task: name,
                text: line,
            });
        }
    }
    let mut outputs = Vec::new();
    let mut stored = HashMap::new();
    if attempt.outcome.is_success() {
        for output in &attempt.outputs {
            let digest = format!("sha256:{}", output.digest);
            let path = store(&setup.state_dir, &output.path, &digest)?;
            let artifact = Artifact {
                name: output.name.to_string(),
                sha256: digest,
                bytes: output.size,
            };
            stored.insert(output.name.to_string(), (artifact.clone(), path));
            outputs.push(artifact);
        }
    }
    drop(staging);
    {
        let mut log = lock(&setup.log);
        log.append(
            run,
            Event::TaskFinished {
                task: name.to_owned(),
                attempt: attempt_no,
                outcome: attempt.outcome.kind().to_owned(),
                detail: attempt.outcome.to_string(),
                exit_status: attempt.exit_status,
                duration_ms: millis(attempt.duration),
                outputs: outputs.clone(),
            },
        )?;
        log.checkpoint_if_due(run)?;
    }
    let row = AttemptRow {
        task: name.to_owned(),
        attempt: i64::from(attempt_no),
        outcome: attempt.outcome.kind().to_owned(),
        detail: attempt.outcome.to_string(),
        duration_ms: i64::try_from(millis(attempt.duration)).unwrap_or(i64::MAX),
        stdout: attempt.stdout,
        stderr: attempt.stderr,
        logs: attempt
            .logs
            .iter()
            .map(|l| serde_json::json!({ "level": l.level.as_str(), "message": l.message }))
            .collect(),
    };
    Ok(Attempted {
        index,
        attempt: attempt_no,
        outcome: (!attempt.outcome.is_success()).then(|| attempt.outcome.to_string()),
        retriable: attempt.outcome.is_retriable(),
        row,
        outputs,
        stored,
    })
}

/// An HTTP request as its audit record.
fn exchange_event(task: &str, attempt: u32, e: &Exchange) -> Event {
    Event::HttpRequest {
        task: task.to_owned(),
        attempt,
        method: e.method.clone(),
        scheme: e.scheme.clone(),
        host: e.host.clone(),
        port: e.port,
        path: e.path.clone(),
        allowed: e.allowed,
        reason: e.reason.clone(),
        status: e.status,
        sent_bytes: e.sent,
        received_bytes: e.received,
        injected: e.injected.clone(),
        withheld: e.withheld.clone(),
        duration_ms: millis(e.duration),
    }
}

/// An HTTP request as a progress line: `http: GET http://h:80/p -> 200 (12 bytes)`.
#[must_use]
pub fn exchange_line(e: &Exchange) -> String {
    let target = format!(
        "{} {}://{}:{}{}",
        e.method, e.scheme, e.host, e.port, e.path
    );
    let mut line = match (e.allowed, e.status, &e.reason) {
        (true, Some(status), _) => {
            format!("http: {target} -> {status} ({} bytes)", e.received)
        }
        (true, None, reason) => format!(
            "http: {target} failed: {}",
            reason.as_deref().unwrap_or("no response")
        ),
        (false, _, reason) => format!(
            "http: {target} DENIED: {}",
            reason.as_deref().unwrap_or("refused")
        ),
    };
    if !e.injected.is_empty() {
        line.push_str(&format!(" [injected: {}]", e.injected.join(", ")));
    }
    if !e.withheld.is_empty() {
        line.push_str(&format!(
            " [not injected, policy: {}]",
            e.withheld.join(", ")
        ));
    }
    line
}

/// The cache key of a task: `sha256:` of the canonical JSON of everything
/// its outputs may depend on: its component, its inputs' digests, and the
/// capabilities it runs with (args, env, declared outputs and secrets).
/// Tasks with mounts or network cannot be cached (the manifest refuses it).
fn cache_key(component: &str, inputs: &[Artifact], caps: &Capabilities) -> String {
    let inputs: BTreeMap<&str, &str> = inputs
        .iter()
        .map(|a| (a.name.as_str(), a.sha256.as_str()))
        .collect();
    let env: BTreeMap<&str, &str> = caps
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut outputs: Vec<&str> = caps.outputs.iter().flatten().map(Name::as_str).collect();
    outputs.sort_unstable();
    let secrets: Vec<&str> = caps.secrets.keys().map(Name::as_str).collect();
    let key = serde_json::json!({
        "v": 1,
        "component": format!("sha256:{component}"),
        "inputs": inputs,
        "args": caps.args,
        "env": env,
        "outputs": outputs,
        "secrets": secrets,
    });
    sha256_tag(key.to_string().as_bytes())
}

/// A cached result for `key`, recorded as a `cache-hit` (after the data
/// flows into the task), if an earlier successful attempt made one whose
/// outputs are all still in the store.
fn cached(
    setup: &Setup,
    (run, name): (&str, &str),
    key: &str,
    flows: &[Event],
) -> Result<Option<Finished>, RunError> {
    let Some(hit) = lock_state(&setup.state).cached(key)? else {
        return Ok(None);
    };
    let mut stored = HashMap::new();
    let store = Artifacts::new(vec![setup.state_dir.join("artifacts")]);
    for output in &hit.outputs {
        let intact = store
            .find(&output.sha256)
            .filter(|p| std::fs::read(p).is_ok_and(|b| sha256_tag(&b) == output.sha256));
        let Some(path) = intact else {
            // Gone from the store (or changed): run the task instead.
            return Ok(None);
        };
        stored.insert(output.name.clone(), (output.clone(), path));
    }
    {
        let mut log = lock(&setup.log);
        for flow in flows {
            log.append(run, flow.clone())?;
        }
        log.append(
            run,
            Event::CacheHit {
                task: name.to_owned(),
                key: key.to_owned(),
                from_run: hit.run.clone(),
                from_attempt: hit.attempt,
                outputs: hit.outputs.clone(),
            },
        )?;
    }
    let text = format!(
        "cache hit: outputs of run {} attempt {}",
        hit.run, hit.attempt
    );
    (setup.progress)(Progress::Line {
        task: name,
        text: &text,
    });
    let result = TaskResult {
        name: name.to_owned(),
        status: Status::Succeeded,
        attempts: 0,
        duration: Duration::ZERO,
        outputs: hit.outputs,
    };
    Ok(Some(Finished { result, stored }))
}

/// Whether a task that failed `failures` times so far may run again, after
/// a failure of outcome `kind` with `detail` (as recorded): the outcome is
/// retriable and the task's retries are not used up.
#[must_use]
pub fn may_retry(plan: &Plan, task: &str, kind: &str, detail: &str, failures: u32) -> bool {
    let max = plan
        .tasks
        .iter()
        .find(|t| t.task.name.value.as_str() == task)
        .and_then(|t| t.settings.retries.as_ref())
        .map_or(0, |r| r.value.max);
    crate::sandbox::Outcome::recorded_is_retriable(kind, detail) && failures <= max
}

/// Record that run `run` was stopped (Ctrl-C) after `elapsed`, and sign a
/// checkpoint; returns its sequence number.
///
/// # Errors
///
/// The audit log failing.
pub fn cancelled(
    log: &Mutex<AuditLog>,
    state: &Mutex<State>,
    run: &str,
    elapsed: Duration,
) -> Result<u64, RunError> {
    ended(log, state, run, "cancelled", elapsed)
}

/// Record how run `run` ended, in the log (with a checkpoint: its sequence
/// number is returned) and in the run state.
fn ended(
    log: &Mutex<AuditLog>,
    state: &Mutex<State>,
    run: &str,
    status: &str,
    elapsed: Duration,
) -> Result<u64, RunError> {
    let checkpoint = {
        let mut log = lock(log);
        log.append(
            run,
            Event::RunFinished {
                status: status.to_owned(),
                duration_ms: millis(elapsed),
            },
        )?;
        crash_point("after-run-finished");
        log.checkpoint(run)?
    };
    crash_point("after-checkpoint");
    lock_state(state).finish_run(run, status, millis(elapsed))?;
    Ok(checkpoint)
}

/// For tests of the crash windows: when `CAIRN_CRASH_AT` names this point,
/// die here as a `kill -9` would (no destructors, no flushing, nothing
/// after). Unset, it costs one comparison.
pub(crate) fn crash_point(point: &str) {
    static AT: std::sync::LazyLock<Option<String>> =
        std::sync::LazyLock::new(|| std::env::var("CAIRN_CRASH_AT").ok());
    if AT.as_deref() == Some(point) {
        std::process::abort();
    }
}

fn lock_state(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A task's row in the run state.
pub(crate) fn task_row(result: &TaskResult) -> TaskRow {
    let (status, detail) = match &result.status {
        Status::Succeeded => ("succeeded", String::new()),
        Status::Failed(why) => ("failed", why.clone()),
        Status::Skipped(why) => ("skipped", why.clone()),
    };
    TaskRow {
        task: result.name.clone(),
        status: status.to_owned(),
        detail,
        attempts: i64::from(result.attempts),
        duration_ms: i64::try_from(millis(result.duration)).unwrap_or(i64::MAX),
        outputs: serde_json::to_value(&result.outputs).unwrap_or_default(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::HumanDuration;

    fn retries(backoff: Backoff, jitter: bool) -> crate::manifest::Retries {
        crate::manifest::Retries {
            max: 10,
            backoff,
            initial: HumanDuration(Duration::from_millis(100)),
            max_delay: HumanDuration(Duration::from_millis(1000)),
            jitter,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_within_half_to_all() {
        let exp = retries(Backoff::Exponential, false);
        let delays: Vec<u128> = (1..=6).map(|n| backoff(&exp, n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&exp, u32::MAX), Duration::from_millis(1000));
        let fixed = retries(Backoff::Fixed, false);
        assert_eq!(backoff(&fixed, 5), Duration::from_millis(100));
        let jittered = retries(Backoff::Exponential, true);
        for n in 1..=6 {
            let full = backoff(&exp, n);
            for _ in 0..50 {
                let d = backoff(&jittered, n);
                assert!(d >= full / 2 && d <= full, "retry {n}: {d:?} of {full:?}");
            }
        }
    }
}
