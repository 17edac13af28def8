//! The service's runs: every run on one [`Launcher`] and one opened state
//! directory, a task limit shared by all of them, each workflow's
//! `max_active_runs`, cancelling, draining on shutdown, and going on after
//! a crash.
//!
//! A run the service starts has a `trigger` record (after the `access`
//! that allowed it) before its `run-started`, which names it. The trigger
//! is the run's identity: on start, a trigger whose run never started
//! (the process died in between, or the run was waiting its turn) starts
//! that run, once; a run the log shows interrupted goes on from where it
//! stopped (as `cairn resume`). Never decides who may do what: callers
//! bring an allowed `access` record.
//!
//! A run that stops at an approval gate (`waiting`) holds nothing: no
//! slot, no turn. [`Runs::wake`] goes on with it as soon as its gate is
//! decided (a decision through the API, [`Runs::decide_gate`]) or its
//! deadline passes (a timer, re-armed on restart).
//!
//! A scheduled or backfilled run has an identity, (workflow, schedule,
//! nominal time): [`Runs::runs_of`] says which runs each has (from the log,
//! then from each trigger), and [`Runs::claim`] holds one while a tick or
//! a backfill decides whether to start it, so no two start the same one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};

use super::catalog::{Catalog, Served};
use crate::audit::log::AuditError;
use crate::audit::record::{Artifact, Event, records};
use crate::launch::{LaunchError, Launcher, Prepared, SecretProvider, StateDir, changes};
use crate::resume::{History, Resumption};
use crate::runner::{Progress, Start, Status, may_retry, new_run_id};
use crate::state::RunRow;
use crate::workflow::Workflow;

/// Why a decision on a gate could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Ask(#[from] crate::runner::approval::AskError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Why a run could not be started. Nothing of the run was recorded.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad parameters (the caller's mistake).
    #[error("{0}")]
    Params(String),
    /// A secret, component or policy problem on this side.
    #[error("{0}")]
    Launch(#[from] LaunchError),
    /// The service is shutting down.
    #[error("the service is shutting down; try again when it is back")]
    Draining,
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A recorded trigger: its record, the run it starts, the workflow, the
/// user, the parameters, the schedule it comes from.
type Triggered = (
    u64,
    String,
    String,
    String,
    BTreeMap<String, String>,
    Option<String>,
);

/// What a trigger asks for.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// `api`, `schedule` (and later `webhook`).
    pub via: &'static str,
    /// Who the run runs as.
    pub user: String,
    /// The token's id (`""` for none).
    pub token: String,
    /// The `access` record that allowed it.
    pub access: u64,
    /// The run's id, when the caller chose it (a tick names its run);
    /// else a new one.
    pub run: Option<String>,
    /// The schedule it comes from.
    pub source: Option<String>,
    /// Recorded just before the trigger, which names it as its cause (a
    /// schedule's tick).
    pub cause: Option<Event>,
    /// Whether the run waits for the previous run of `source` to end
    /// (overlap `buffer_one`).
    pub serial: bool,
    /// What the run is given: a webhook delivery's body, stored.
    pub given: Option<(Artifact, PathBuf)>,
    /// The record it names as its cause when `cause` is none (a
    /// backfill's `backfill-started`).
    pub caused_by: Option<u64>,
    /// A scheduled or backfilled run's nominal time (UTC, RFC 3339).
    pub nominal: Option<String>,
    /// The backfill it is part of.
    pub backfill: Option<String>,
    /// The W3C trace context the request came with (checked), if any.
    pub traceparent: Option<String>,
}

/// Where a run comes from, as its supervisor needs it: the schedule that
/// started it (and whether its runs wait for each other), what it was
/// given.
#[derive(Debug, Default)]
struct Origin {
    schedule: Option<(String, bool)>,
    given: Option<(Artifact, PathBuf)>,
    backfill: Option<String>,
    /// The trace context its trigger came with.
    traceparent: Option<String>,
}

impl Trigger {
    /// An API call's, by token `token` of `user`, allowed by `access`.
    #[must_use]
    pub fn api(user: String, token: String, access: u64) -> Self {
        Self {
            via: "api",
            user,
            token,
            access,
            run: None,
            source: None,
            cause: None,
            serial: false,
            given: None,
            caused_by: None,
            nominal: None,
            backfill: None,
            traceparent: None,
        }
    }
}

/// How a run of a (workflow, schedule, nominal time) stands, for a
/// backfill deciding whether to start another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Triggered, queued, running, interrupted (it goes on) or waiting at
    /// a gate.
    Active,
    Succeeded,
    /// Failed, cancelled or refused.
    Failed,
}

/// How an active run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Waiting for its workflow's `max_active_runs`.
    Queued,
    /// Running.
    Running,
}

#[derive(Debug, Clone, Copy)]
enum Control {
    /// Stop it and record it cancelled.
    Cancel,
}

#[derive(Debug)]
struct Active {
    workflow: String,
    user: String,
    schedule: Option<String>,
    backfill: Option<String>,
    phase: Phase,
    control: mpsc::Sender<Control>,
}

/// A run, as the service knows it while it is active.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActiveRun {
    pub id: String,
    pub workflow: String,
    pub user: String,
    /// The schedule that started it.
    pub schedule: Option<String>,
    pub phase: Phase,
}

/// Every run of the service.
pub struct Runs {
    launcher: Launcher,
    state: StateDir,
    /// The service's task limit, shared by every run.
    slots: Arc<Semaphore>,
    jobs: usize,
    drain: watch::Sender<bool>,
    active: Mutex<HashMap<String, Active>>,
    /// Per workflow with `max_active_runs`: its turns.
    turns: Mutex<HashMap<String, Arc<Semaphore>>>,
    secrets: Box<dyn SecretProvider + Send + Sync>,
    supervisors: Mutex<tokio::task::JoinSet<()>>,
    /// Runs a [`Runs::wake`] is deciding about now: two at once (two
    /// approvals, an approval at the deadline) must not both resume one.
    waking: Mutex<HashSet<String>>,
    /// (workflow, schedule, nominal time) → the runs started for it, in
    /// order: what a backfill must not duplicate.
    identities: Mutex<HashMap<Identity, Vec<String>>>,
    /// Told whenever a run stops being active.
    left: tokio::sync::Notify,
    /// Identities a run is being decided and started for now
    /// ([`Runs::claim`]).
    claimed: Mutex<HashSet<Identity>>,
    /// Per run the service started, how (`api`, `schedule`, `webhook`,
    /// `backfill`), from its `trigger` record.
    vias: Mutex<HashMap<String, String>>,
    /// Set when traces are exported: the log's origin, which runs' traces
    /// and attempts' spans are derived from.
    traced: std::sync::OnceLock<String>,
}

/// A claim on an identity ([`Runs::claim`]), released when dropped.
#[derive(Debug)]
pub struct Claim {
    runs: Arc<Runs>,
    identity: Identity,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.runs.claimed).remove(&self.identity);
    }
}

/// A scheduled run's identity: (workflow, schedule, nominal time).
pub type Identity = (String, String, String);

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs")
            .field("state", &self.state.path())
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Runs {
    /// Runs on `launcher` in `state`, at most `jobs` tasks at once across
    /// all of them, with secrets from `secrets`.
    #[must_use]
    pub fn new(
        launcher: Launcher,
        state: StateDir,
        jobs: usize,
        secrets: Box<dyn SecretProvider + Send + Sync>,
    ) -> Arc<Self> {
        Arc::new(Self {
            launcher,
            state,
            slots: Arc::new(Semaphore::new(jobs.max(1))),
            jobs: jobs.max(1),
            drain: watch::Sender::new(false),
            active: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
            secrets,
            supervisors: Mutex::new(tokio::task::JoinSet::new()),
            waking: Mutex::new(HashSet::new()),
            identities: Mutex::new(HashMap::new()),
            left: tokio::sync::Notify::new(),
            claimed: Mutex::new(HashSet::new()),
            vias: Mutex::new(HashMap::new()),
            traced: std::sync::OnceLock::new(),
        })
    }

    /// Traces are exported (spans of the log whose checkpoints name
    /// `origin`): runs' attempts carry their trace context to the HTTP
    /// requests policy allows it for.
    pub fn traced(&self, origin: String) {
        let _ = self.traced.set(origin);
    }

    /// Claim `identity` while whether to start a run of it is decided and
    /// the run triggered: `None` while another claim holds it. A tick and
    /// a backfill (or two backfills) deciding one nominal time at once
    /// cannot both start it.
    #[must_use]
    pub fn claim(self: &Arc<Self>, identity: Identity) -> Option<Claim> {
        lock(&self.claimed).insert(identity.clone()).then(|| Claim {
            runs: Arc::clone(self),
            identity,
        })
    }

    /// Learn from the log `bytes` which runs each (workflow, schedule,
    /// nominal time) has ([`super::backfill::identities`]).
    pub fn learn(&self, bytes: &[u8]) {
        lock(&self.vias).extend(vias(bytes));
        let mut identities = lock(&self.identities);
        for (key, runs) in super::backfill::identities(bytes) {
            let known = identities.entry(key).or_default();
            for run in runs {
                if !known.contains(&run) {
                    known.push(run);
                }
            }
        }
    }

    /// How the service started run `run` (`api`, `schedule`, `webhook`,
    /// `backfill`); `cli` for a run `cairn run` made in the same state.
    #[must_use]
    pub fn via(&self, run: &str) -> String {
        lock(&self.vias)
            .get(run)
            .cloned()
            .unwrap_or_else(|| "cli".to_owned())
    }

    /// The runs started for `identity`, oldest first.
    #[must_use]
    pub fn runs_of(&self, identity: &Identity) -> Vec<String> {
        lock(&self.identities)
            .get(identity)
            .cloned()
            .unwrap_or_default()
    }

    /// How run `run` stands.
    #[must_use]
    pub fn standing(&self, run: &str) -> Standing {
        if lock(&self.active).contains_key(run) {
            return Standing::Active;
        }
        let status = lock(&self.state.state)
            .run(run)
            .ok()
            .flatten()
            .map(|r| r.status);
        match status.as_deref() {
            Some("succeeded") => Standing::Succeeded,
            Some("failed" | "cancelled" | "refused") => Standing::Failed,
            _ => Standing::Active,
        }
    }

    /// The runs of backfill `backfill` active now (a run waiting at a gate
    /// is not).
    #[must_use]
    pub fn active_of_backfill(&self, backfill: &str) -> Vec<String> {
        lock(&self.active)
            .iter()
            .filter(|(_, a)| a.backfill.as_deref() == Some(backfill))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Resolves once a run stops being active after this is called (or
    /// `enable`d): for a backfill waiting below its `max_active`.
    pub fn left(&self) -> tokio::sync::futures::Notified<'_> {
        self.left.notified()
    }

    /// Run `id` is no longer active.
    fn leave(&self, id: &str) {
        lock(&self.active).remove(id);
        self.left.notify_waiters();
    }

    /// The opened state directory (its log and run state).
    #[must_use]
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Whether the service is shutting down.
    #[must_use]
    pub fn draining(&self) -> bool {
        *self.drain.borrow()
    }

    /// The runs active now (queued or running).
    #[must_use]
    pub fn active(&self) -> Vec<ActiveRun> {
        let mut runs: Vec<ActiveRun> = lock(&self.active)
            .iter()
            .map(|(id, a)| ActiveRun {
                id: id.clone(),
                workflow: a.workflow.clone(),
                user: a.user.clone(),
                schedule: a.schedule.clone(),
                phase: a.phase,
            })
            .collect();
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        runs
    }

    /// Artifact `artifact` given to a run, where the store keeps it.
    fn stored(&self, artifact: &Artifact) -> (Artifact, PathBuf) {
        (
            artifact.clone(),
            crate::launch::stored_path(self.state.path(), artifact),
        )
    }

    /// Secret `name`'s value, from the service's secret providers.
    ///
    /// # Errors
    ///
    /// What is wrong, as the provider says.
    pub fn secret(&self, name: &crate::name::Name) -> Result<crate::secrets::SecretValue, String> {
        self.secrets.secret(name)
    }

    /// The active runs schedule `schedule` of `workflow` started.
    #[must_use]
    pub fn of_schedule(&self, workflow: &str, schedule: &str) -> Vec<ActiveRun> {
        let mut runs = self.active();
        runs.retain(|a| a.workflow == workflow && a.schedule.as_deref() == Some(schedule));
        runs
    }

    /// Whether run `id` is active, and how.
    #[must_use]
    pub fn phase(&self, id: &str) -> Option<Phase> {
        lock(&self.active).get(id).map(|a| a.phase)
    }

    /// Start a run of `served` with `params` (`NAME=VALUE`, the rest take
    /// their defaults) as `trigger` says: prepared (secrets, components,
    /// preflight), then its `trigger` record, synced, then started (or
    /// queued for its workflow's turn). Returns the run's id.
    ///
    /// # Errors
    ///
    /// Bad parameters, a run that cannot be prepared, or the log failing:
    /// then no `trigger` was recorded.
    pub async fn trigger(
        self: &Arc<Self>,
        served: &Arc<Served>,
        params: &[(String, String)],
        trigger: Trigger,
    ) -> Result<String, StartError> {
        if self.draining() {
            return Err(StartError::Draining);
        }
        let params = served
            .workflow
            .plan
            .param_values(params)
            .map_err(StartError::Params)?;
        let (workflow, prepared) = self.prepare(served, &trigger.user, params.clone()).await?;
        let id = trigger.run.clone().unwrap_or_else(new_run_id);
        let seq = {
            let mut log = lock(&self.state.log);
            let cause = match trigger.cause {
                Some(event) => Some(log.append("", event)?),
                None => trigger.caused_by,
            };
            let seq = log.append(
                "",
                Event::Trigger {
                    via: trigger.via.to_owned(),
                    workflow: served.name.clone(),
                    starts: id.clone(),
                    user: trigger.user.clone(),
                    token: trigger.token.clone(),
                    parameters: params,
                    access: trigger.access,
                    source: trigger.source.clone(),
                    cause,
                    body: trigger.given.as_ref().map(|(a, _)| a.clone()),
                    nominal: trigger.nominal.clone(),
                    traceparent: trigger.traceparent.clone(),
                },
            )?;
            log.sync()?;
            seq
        };
        lock(&self.vias).insert(id.clone(), trigger.via.to_owned());
        if let (Some(source), Some(nominal)) = (&trigger.source, &trigger.nominal) {
            lock(&self.identities)
                .entry((served.name.clone(), source.clone(), nominal.clone()))
                .or_default()
                .push(id.clone());
        }
        crate::runner::crash_point(match trigger.via {
            "schedule" => "after-tick",
            "webhook" => "after-delivery",
            "backfill" => "after-backfill-trigger",
            _ => "after-trigger",
        });
        let origin = Origin {
            schedule: trigger
                .source
                .filter(|_| trigger.via == "schedule")
                .map(|s| (s, trigger.serial)),
            given: trigger.given,
            backfill: trigger.backfill,
            traceparent: trigger.traceparent,
        };
        self.launch(
            served,
            workflow,
            prepared,
            id.clone(),
            Start::New,
            Some(seq),
            origin,
        );
        Ok(id)
    }

    /// Secrets, components, preflight: on a blocking thread (a component
    /// may compile).
    async fn prepare(
        self: &Arc<Self>,
        served: &Arc<Served>,
        user: &str,
        params: BTreeMap<String, String>,
    ) -> Result<(Workflow, Prepared), StartError> {
        let me = Arc::clone(self);
        let served = Arc::clone(served);
        let user = user.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut workflow = (*served.workflow).clone();
            workflow.plan = workflow.plan.with_params(&params);
            let prepared = me.launcher.prepare(
                &workflow,
                &served.policies,
                &user,
                params,
                me.secrets.as_ref(),
                crate::launch::Release::All,
            )?;
            Ok((workflow, prepared))
        })
        .await
        .unwrap_or_else(|e| Err(StartError::Params(format!("preparing the run failed: {e}"))))
    }

    /// Supervise run `id`: wait for its turns (its schedule's previous
    /// run, when its origin says serial; its workflow's
    /// `max_active_runs`), run it, and answer a cancel.
    #[allow(clippy::too_many_arguments)]
    fn launch(
        self: &Arc<Self>,
        served: &Arc<Served>,
        workflow: Workflow,
        prepared: Prepared,
        id: String,
        start: Start,
        trigger: Option<u64>,
        origin: Origin,
    ) {
        let Origin {
            schedule,
            given,
            backfill,
            traceparent,
        } = origin;
        let trace = self.traced.get().map(|origin| {
            let remote = traceparent
                .as_deref()
                .and_then(crate::observe::trace::TraceParent::parse);
            crate::observe::trace::run_trace(origin, &id, remote.as_ref())
        });
        let (control, mut told) = mpsc::channel(1);
        lock(&self.active).insert(
            id.clone(),
            Active {
                workflow: served.name.clone(),
                user: prepared.user.clone(),
                schedule: schedule.as_ref().map(|(s, _)| s.clone()),
                backfill,
                phase: Phase::Queued,
                control,
            },
        );
        let turn = |key: String, most: usize| {
            Arc::clone(
                lock(&self.turns)
                    .entry(key)
                    .or_insert_with(|| Arc::new(Semaphore::new(most))),
            )
        };
        let mut turns = Vec::new();
        if let Some((name, true)) = &schedule {
            turns.push(turn(format!("{}\0{name}", served.name), 1));
        }
        if let Some(most) = served.workflow.plan.max_active_runs {
            turns.push(turn(served.name.clone(), most as usize));
        }
        let me = Arc::clone(self);
        let served = Arc::clone(served);
        let policies = Arc::clone(&served.policies);
        let supervised = async move {
            let mut held = Vec::new();
            for turn in turns {
                let mut draining = me.drain.subscribe();
                tokio::select! {
                    permit = turn.acquire_owned() => held.extend(permit.ok()),
                    _ = told.recv() => {
                        me.cancel_queued(&id, &served, &prepared.user);
                        me.leave(&id);
                        return;
                    }
                    // Still only triggered: it starts when the service is back.
                    _ = draining.wait_for(|d| *d) => {
                        me.leave(&id);
                        return;
                    }
                }
            }
            if let Some(active) = lock(&me.active).get_mut(&id) {
                active.phase = Phase::Running;
            }
            let mut setup =
                me.launcher
                    .setup(prepared, policies, &me.state, progress(id.clone()), me.jobs);
            setup.trigger = trigger;
            setup.given = given;
            setup.slots = Some(Arc::clone(&me.slots));
            setup.drain = Some(me.drain.subscribe());
            setup.trace = trace;
            let began = std::time::Instant::now();
            let mut running = crate::runner::start(Arc::new(workflow), setup, &id, start);
            let mut waiting = false;
            tokio::select! {
                summary = running.finish() => match summary {
                    Ok(summary) => {
                        tracing::info!("run {id} {}", summary.status);
                        waiting = summary.status == "waiting";
                    }
                    Err(e) => tracing::info!("run {id} could not go on: {e}"),
                },
                Some(Control::Cancel) = told.recv() => {
                    running.stop().await;
                    match crate::runner::cancelled(&me.state.log, &me.state.state, &id, began.elapsed()) {
                        Ok(_) => tracing::info!("run {id} cancelled"),
                        Err(e) => tracing::info!("run {id} cancelled, but its end was not recorded: {e}"),
                    }
                }
            }
            me.leave(&id);
            if waiting {
                // Decided while it ran, or to time out later: it holds
                // nothing meanwhile.
                drop(held);
                me.wake(&served, &id).await;
            }
        };
        lock(&self.supervisors).spawn(supervised);
    }

    /// A run cancelled while waiting its turn: it never started, so its
    /// end is all there is to record (and its row, for `cairn runs`).
    fn cancel_queued(&self, id: &str, served: &Served, user: &str) {
        let mut log = lock(&self.state.log);
        let recorded = log
            .append(
                id,
                Event::RunFinished {
                    status: "cancelled".to_owned(),
                    duration_ms: 0,
                },
            )
            .and_then(|_| log.sync());
        drop(log);
        let row = RunRow {
            id: id.to_owned(),
            workflow: served.name.clone(),
            manifest: served.workflow.path.display().to_string(),
            manifest_sha256: served.manifest_sha256.clone(),
            policy_set: served.policy_set.clone(),
            user: user.to_owned(),
            status: "cancelled".to_owned(),
            started: crate::audit::record::rfc3339(std::time::SystemTime::now()),
            duration_ms: Some(0),
        };
        let mut state = lock(&self.state.state);
        if let Err(e) = recorded
            .map_err(|e| e.to_string())
            .and_then(|()| state.start_run(&row).map_err(|e| e.to_string()))
        {
            tracing::info!("run {id} cancelled before it started, but not recorded: {e}");
        }
    }

    /// Cancel run `id`: `true` if it was active (it is then stopped and
    /// recorded cancelled), `false` if it is not.
    pub async fn cancel(&self, id: &str) -> bool {
        let control = lock(&self.active).get(id).map(|a| a.control.clone());
        match control {
            Some(control) => control.send(Control::Cancel).await.is_ok(),
            None => false,
        }
    }

    /// Go on with what a stopped or killed service left: runs the log
    /// shows interrupted resume; triggers whose run never started start
    /// it. Runs whose workflow is not served, or changed since they
    /// started, stay as they are (reported).
    ///
    /// # Errors
    ///
    /// The audit log cannot be read.
    pub async fn recover(self: &Arc<Self>, catalog: &Catalog) -> Result<Vec<String>, StartError> {
        let path = StateDir::log_path(self.state.path());
        let bytes = std::fs::read(&path).map_err(|source| {
            StartError::Audit(AuditError::Io {
                path: path.clone(),
                source,
            })
        })?;
        let mut notes = Vec::new();
        let mut started: HashSet<String> = HashSet::new();
        // Each trigger: its record, the run it starts, the workflow, who, parameters.
        let mut triggers: Vec<Triggered> = Vec::new();
        // Each run a schedule started: the schedule.
        let mut sources: HashMap<String, String> = HashMap::new();
        // Each run a webhook started: the body it was given.
        let mut bodies: HashMap<String, Artifact> = HashMap::new();
        // Each run a backfill started: the backfill.
        let mut backfill_of: HashMap<String, String> = HashMap::new();
        let mut backfills: HashMap<u64, String> = HashMap::new();
        let mut traces: HashMap<String, String> = HashMap::new();
        self.learn(&bytes);
        for record in records(&bytes) {
            match record.event {
                Event::RunStarted { .. } | Event::RunFinished { .. } => {
                    started.insert(record.run);
                }
                Event::BackfillStarted { backfill, .. } => {
                    backfills.insert(record.seq, backfill);
                }
                Event::Trigger {
                    via,
                    workflow,
                    starts: run,
                    user,
                    parameters,
                    source,
                    body,
                    cause,
                    traceparent,
                    ..
                } => {
                    if via == "backfill"
                        && let Some(b) = cause.and_then(|c| backfills.get(&c))
                    {
                        backfill_of.insert(run.clone(), b.clone());
                    }
                    if let Some(traceparent) = traceparent {
                        traces.insert(run.clone(), traceparent);
                    }
                    let source = source.filter(|_| via == "schedule");
                    if let Some(source) = &source {
                        sources.insert(run.clone(), source.clone());
                    }
                    if let Some(body) = body {
                        bodies.insert(run.clone(), body);
                    }
                    triggers.push((record.seq, run, workflow, user, parameters, source));
                }
                _ => {}
            }
        }
        // Triggered, never started: start them now, once.
        for (seq, run, workflow, user, params, source) in triggers {
            if started.contains(&run) {
                continue;
            }
            let Some(served) = catalog.get(&workflow) else {
                notes.push(format!(
                    "run {run} was triggered but {workflow} is not served; it does not start"
                ));
                continue;
            };
            match self.prepare(&served, &user, params).await {
                Ok((wf, prepared)) => {
                    let origin = Origin {
                        schedule: source.map(|s| {
                            let serial = serial(&served, &s);
                            (s, serial)
                        }),
                        given: bodies.get(&run).map(|b| self.stored(b)),
                        backfill: backfill_of.get(&run).cloned(),
                        traceparent: traces.remove(&run),
                    };
                    self.launch(
                        &served,
                        wf,
                        prepared,
                        run.clone(),
                        Start::New,
                        Some(seq),
                        origin,
                    );
                    notes.push(format!("run {run} of {workflow} was triggered before the service stopped; starting it"));
                }
                Err(e) => notes.push(format!("run {run} of {workflow} cannot start: {e}")),
            }
        }
        // Waiting at a gate: go on if it was decided, else wait for its deadline.
        let waiting = lock(&self.state.state)
            .runs_with_status("waiting")
            .map_err(LaunchError::from)?;
        for run in waiting {
            let row = lock(&self.state.state).run(&run).ok().flatten();
            if let Some(served) = row.and_then(|r| catalog.get(&r.workflow)) {
                self.wake(&served, &run).await;
                notes.push(format!("run {run} waits at an approval gate"));
            }
        }
        // Interrupted: go on.
        let interrupted = lock(&self.state.state)
            .runs_with_status("interrupted")
            .map_err(LaunchError::from)?;
        for run in interrupted {
            let origin = Origin {
                schedule: sources.get(&run).cloned().map(|s| (s, false)),
                given: bodies.get(&run).map(|b| self.stored(b)),
                backfill: backfill_of.get(&run).cloned(),
                traceparent: traces.get(&run).cloned(),
            };
            match self.resume(catalog, &bytes, &run, origin).await {
                Ok(note) => notes.push(note),
                Err(why) => notes.push(format!("run {run} stays interrupted: {why}")),
            }
        }
        Ok(notes)
    }

    async fn resume(
        self: &Arc<Self>,
        catalog: &Catalog,
        bytes: &[u8],
        run: &str,
        origin: Origin,
    ) -> Result<String, String> {
        let row = lock(&self.state.state)
            .run(run)
            .map_err(|e| e.to_string())?
            .ok_or("it is not in the run state")?;
        let served = catalog
            .get(&row.workflow)
            .ok_or_else(|| format!("{} is not served", row.workflow))?;
        self.resume_served(&served, bytes, run, origin).await
    }

    async fn resume_served(
        self: &Arc<Self>,
        served: &Arc<Served>,
        bytes: &[u8],
        run: &str,
        mut origin: Origin,
    ) -> Result<String, String> {
        let plan = &served.workflow.plan;
        let history = History::read(bytes, run, &|task, kind, detail, failures| {
            may_retry(plan, task, kind, detail, failures)
        })
        .map_err(|e| e.to_string())?
        .ok_or("the audit log has none of its records")?;
        if !history.resumable() {
            return Err(format!("it ended ({})", history.standing()));
        }
        let (workflow, prepared) = self
            .prepare(served, &history.user, history.params.clone())
            .await
            .map_err(|e| e.to_string())?;
        let changed = changes(&history, &workflow, &served.policies, &prepared);
        if !changed.is_empty() {
            return Err(format!(
                "it changed since it started ({}); stop the service and go on with `cairn resume {run} --allow-changes`",
                changed.join("; ")
            ));
        }
        let resumption =
            Resumption::new(&history, &workflow.plan, self.state.path(), changed, None)?;
        let kept = resumption.kept(&workflow.plan).len();
        let total = resumption.total(&workflow.plan);
        self.launch(
            served,
            workflow,
            prepared,
            run.to_owned(),
            Start::Resume(resumption),
            None,
            {
                origin.schedule = origin.schedule.map(|(s, _)| {
                    let serial = serial(served, &s);
                    (s, serial)
                });
                origin
            },
        );
        Ok(format!(
            "run {run} of {} goes on ({kept} of {total} task(s) recorded complete)",
            served.name
        ))
    }

    /// Decide `ask` (the caller's decision on a gate of one of its runs)
    /// and record it, under the log's lock, synced: what it came to, and
    /// the record's number. The caller wakes the run ([`Runs::wake`]).
    ///
    /// # Errors
    ///
    /// No such run or gate, or the log failing.
    pub fn decide_gate(
        &self,
        ask: &crate::runner::approval::Ask<'_>,
    ) -> Result<(crate::runner::approval::Decided, u64), GateError> {
        let mut log = lock(&self.state.log);
        let path = StateDir::log_path(self.state.path());
        let bytes = std::fs::read(&path).map_err(|source| {
            GateError::Audit(AuditError::Io {
                path: path.clone(),
                source,
            })
        })?;
        let decided = crate::runner::approval::decide(&bytes, ask)?;
        let at = log.append(ask.run, decided.event.clone())?;
        log.sync()?;
        Ok((decided, at))
    }

    /// Go on with run `run` of `served` if it waits at a gate that is now
    /// decided (or timed out); else arm a timer for its earliest deadline.
    /// Nothing for a run that is active or over.
    pub fn wake<'a>(
        self: &'a Arc<Self>,
        served: &'a Arc<Served>,
        run: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(self.wake_now(served, run))
    }

    async fn wake_now(self: &Arc<Self>, served: &Arc<Served>, run: &str) {
        if !lock(&self.waking).insert(run.to_owned()) {
            return;
        }
        // Released however this ends, a dropped request's future too.
        struct Claim<'a>(&'a Mutex<HashSet<String>>, &'a str);
        impl Drop for Claim<'_> {
            fn drop(&mut self) {
                lock(self.0).remove(self.1);
            }
        }
        let _claim = Claim(&self.waking, run);
        self.wake_once(served, run).await;
    }

    /// [`Runs::wake`], with no other wake of `run` under way.
    async fn wake_once(self: &Arc<Self>, served: &Arc<Served>, run: &str) {
        if lock(&self.active).contains_key(run) || self.draining() {
            return;
        }
        let path = StateDir::log_path(self.state.path());
        let Ok(bytes) = std::fs::read(&path) else {
            return;
        };
        let Ok(Some(history)) = History::read(&bytes, run, &|_, _, _, _| false) else {
            return;
        };
        if history.ended.as_deref() != Some("waiting") {
            return;
        }
        let now = std::time::SystemTime::now();
        let mut due = false;
        let mut next: Option<std::time::SystemTime> = None;
        for gate in history.gates.values().filter(|g| !g.closed) {
            let (decided, deadline) = crate::runner::approval::due(gate, now);
            due |= decided;
            next = match (next, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if due {
            let origin = self.origin_of(&bytes, run);
            match self.resume_served(served, &bytes, run, origin).await {
                Ok(note) => tracing::info!("{note}: its approval gate was decided"),
                Err(why) => tracing::info!("run {run} waits on: {why}"),
            }
            return;
        }
        let Some(at) = next else {
            return;
        };
        let wait = at.duration_since(now).unwrap_or_default();
        let me = Arc::clone(self);
        let served = Arc::clone(served);
        let run = run.to_owned();
        let mut draining = self.drain.subscribe();
        tokio::spawn(async move {
            let drained = async move {
                let _ = draining.wait_for(|d| *d).await.map(|_| ());
            };
            let due = tokio::select! {
                () = tokio::time::sleep(wait) => true,
                () = drained => false,
            };
            if due {
                me.wake(&served, &run).await;
            }
        });
    }

    /// How run `run` was started, from the log `bytes`: its schedule, the
    /// body a webhook gave it, the trace context it came with.
    fn origin_of(&self, bytes: &[u8], run: &str) -> Origin {
        let mut origin = Origin::default();
        let mut backfills: HashMap<u64, String> = HashMap::new();
        for record in records(bytes) {
            match record.event {
                Event::BackfillStarted { backfill, .. } => {
                    backfills.insert(record.seq, backfill);
                }
                Event::Trigger {
                    via,
                    starts,
                    source,
                    body,
                    cause,
                    traceparent,
                    ..
                } if starts == run => {
                    if via == "backfill" {
                        origin.backfill = cause.and_then(|c| backfills.get(&c)).cloned();
                    }
                    origin.schedule = source.filter(|_| via == "schedule").map(|s| (s, false));
                    origin.given = body.map(|b| self.stored(&b));
                    origin.traceparent = traceparent;
                }
                _ => {}
            }
        }
        origin
    }

    /// Shut down: start nothing more, let attempts under way finish
    /// within `grace`, stop the rest (they resume when the service is
    /// back), and sign a checkpoint over everything recorded.
    ///
    /// # Errors
    ///
    /// The audit log failing at the end.
    pub async fn shutdown(&self, grace: Duration) -> Result<(), AuditError> {
        self.drain.send_replace(true);
        let mut supervisors = std::mem::take(&mut *lock(&self.supervisors));
        let drained = tokio::time::timeout(grace, async {
            while supervisors.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            let left = supervisors.len();
            tracing::info!(
                "{left} run(s) still had tasks running after the {:.0} s grace period; stopped (they go on when the service is back)",
                grace.as_secs_f64()
            );
            supervisors.shutdown().await;
        }
        lock(&self.state.log).close()
    }
}

/// Whether runs of schedule `schedule` of `served` wait for each other
/// (overlap `buffer_one`).
fn serial(served: &Served, schedule: &str) -> bool {
    served
        .workflow
        .plan
        .schedules
        .iter()
        .any(|s| s.name == schedule && s.overlap == super::schedule::Overlap::BufferOne)
}

/// What a run of the service shows on its stderr: each task's end.
fn progress(run: String) -> Arc<dyn Fn(Progress<'_>) + Send + Sync> {
    Arc::new(move |p| {
        if let Progress::Finished(result) = p {
            let status = match &result.status {
                Status::Succeeded => "ok".to_owned(),
                Status::Failed(why) => format!("failed: {why}"),
                Status::Skipped(why) => format!("skipped: {why}"),
            };
            tracing::info!(
                run = %run,
                task = %result.name,
                "run {run} task {} {status}",
                result.name
            );
        }
    })
}

/// Per run, how its `trigger` record in the log `bytes` says it started.
fn vias(bytes: &[u8]) -> HashMap<String, String> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| std::str::from_utf8(line).is_ok_and(|l| l.contains("\"kind\":\"trigger\"")))
        .filter_map(|line| serde_json::from_slice::<crate::audit::record::Record>(line).ok())
        .filter_map(|record| match record.event {
            Event::Trigger { via, starts, .. } => Some((starts, via)),
            _ => None,
        })
        .collect()
}
