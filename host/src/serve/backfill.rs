//! Backfills: a schedule's past nominal times, run now, each once.
//!
//! A backfill is an object of its own in the audit log: `backfill-started`
//! (its id, range, `reprocess`, `max_active` and every nominal time it
//! covers, after the `access` that allowed its requester to `trigger` the
//! workflow `via` `backfill`), then for each nominal time in order a
//! `trigger` (`via` `backfill`, naming the `backfill-started` as its
//! cause, with the nominal time) or a `backfill-skipped` with why, and at
//! last `backfill-ended` (`done` once every nominal time is handled and
//! its runs are over, or `cancelled`). Runs start as the requester, never
//! as the schedule's `as`: a backfill grants nothing its requester lacks.
//!
//! A nominal time is identified as a scheduled run is, by (workflow,
//! schedule, nominal time), across ticks and backfills ([`Runs::runs_of`]),
//! so `reprocess = missing` never starts a second run of one, and no
//! `reprocess` starts one while another of it is still active. At most
//! `max_active` of a backfill's runs are active at once. The log is the
//! backfill's memory: a service started again goes on with the nominal
//! times not yet handled. Never decides who may do what: callers bring
//! an allowed `access` record.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use super::catalog::{Catalog, Served};
use super::runs::{Identity, Runs, Standing, StartError, Trigger};
use super::schedule::{MAX_BACKFILL, RangeError, Spec};
use crate::audit::record::{Event, records};

/// The most runs of one backfill active at once.
pub const MAX_ACTIVE: u32 = 1_000;

/// How often a backfill waiting for room looks again, at the latest.
const POLL: Duration = Duration::from_secs(1);

/// How long a backfill whose step could not be recorded waits to try
/// again.
const RETRY: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which nominal times that already have a run get another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprocess {
    /// None: only nominal times no run has.
    Missing,
    /// Those whose latest run failed or was cancelled, too.
    Failed,
    /// Every one.
    All,
}

impl Reprocess {
    pub const NAMES: &'static [&'static str] = &["missing", "failed", "all"];

    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "missing" => Some(Self::Missing),
            "failed" => Some(Self::Failed),
            "all" => Some(Self::All),
            _ => None,
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Failed => "failed",
            Self::All => "all",
        }
    }
}

/// What a backfill is asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    pub schedule: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub max_active: u32,
    pub reprocess: Reprocess,
}

/// Why a backfill cannot start (nothing was recorded) or be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("workflow `{workflow}` has no schedule `{schedule}`; {}", known_schedules(.known))]
    NoSchedule {
        workflow: String,
        schedule: String,
        known: Vec<String>,
    },
    #[error(transparent)]
    Range(#[from] RangeError),
    #[error("max_active must be 1 to {MAX_ACTIVE}, not {0}")]
    MaxActive(u32),
    /// A range bound that is not a time.
    #[error("{0}")]
    Usage(String),
    #[error("no backfill `{0}` here; `cairn backfills list WORKFLOW` shows them")]
    NoBackfill(String),
    #[error("backfill `{0}` has ended ({1}); nothing to cancel")]
    Ended(String, String),
    #[error("the service is shutting down; try again when it is back")]
    Draining,
    #[error("the audit log: {0}")]
    Audit(String),
}

impl BackfillError {
    /// Whether the caller's request is at fault (a usage error).
    #[must_use]
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::NoSchedule { .. } | Self::Range(_) | Self::MaxActive(_) | Self::Usage(_)
        )
    }
}

fn known_schedules(known: &[String]) -> String {
    if known.is_empty() {
        "it declares none (`[schedules.NAME]`)".to_owned()
    } else {
        format!("it declares `{}`", known.join("`, `"))
    }
}

/// Schedule `name` of `served`.
///
/// # Errors
///
/// It has none of that name.
pub fn schedule_of<'a>(served: &'a Served, name: &str) -> Result<&'a Spec, BackfillError> {
    let schedules = &served.workflow.plan.schedules;
    schedules
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| BackfillError::NoSchedule {
            workflow: served.name.clone(),
            schedule: name.to_owned(),
            known: schedules.iter().map(|s| s.name.clone()).collect(),
        })
}

/// The nominal times `request` covers of `served` at `now`.
///
/// # Errors
///
/// No such schedule, a bad `max_active`, a reversed, future, empty or
/// too large range.
pub fn nominal_times(
    served: &Served,
    request: &Request,
    now: Timestamp,
) -> Result<Vec<Timestamp>, BackfillError> {
    if request.max_active == 0 || request.max_active > MAX_ACTIVE {
        return Err(BackfillError::MaxActive(request.max_active));
    }
    let spec = schedule_of(served, &request.schedule)?;
    Ok(spec
        .between(request.from, request.to, now, MAX_BACKFILL)?
        .into_iter()
        .map(|t| t.nominal)
        .collect())
}

/// A range bound as given: an instant (`2026-11-01T02:30:00Z`, or with an
/// offset), or a date or date and time on the schedule's clock
/// (`2026-11-01`, `2026-11-01T02:30`). A date that ends a range (`end`)
/// covers that whole day.
///
/// # Errors
///
/// None of those.
pub fn parse_bound(text: &str, spec: &Spec, end: bool) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let on_clock = |dt: jiff::civil::DateTime| {
        spec.zone
            .to_ambiguous_zoned(dt)
            .compatible()
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string())
    };
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>()
        && text.contains('T')
    {
        return on_clock(dt);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        if !end {
            return on_clock(date.to_datetime(jiff::civil::Time::midnight()));
        }
        let next = date.tomorrow().map_err(|e| e.to_string())?;
        let start = on_clock(next.to_datetime(jiff::civil::Time::midnight()))?;
        // A cron's ticks fall on whole seconds: the day's last one.
        return Ok(start
            .checked_sub(jiff::SignedDuration::from_secs(1))
            .unwrap_or(start));
    }
    Err(format!(
        "`{text}` is not a time: give an instant (`2026-11-01T02:30:00Z`) or a date or time on the schedule's clock ({}: `2026-11-01`, `2026-11-01T02:30`)",
        spec.timezone
    ))
}

/// The request to backfill schedule `schedule` of `served` from `from` to
/// `to` (as [`parse_bound`] reads them).
///
/// # Errors
///
/// No such schedule, a bound that is not a time.
pub fn request_of(
    served: &Served,
    schedule: &str,
    from: &str,
    to: &str,
    max_active: u32,
    reprocess: Reprocess,
) -> Result<Request, BackfillError> {
    let spec = schedule_of(served, schedule)?;
    let bound = |text: &str, end: bool, what: &str| {
        parse_bound(text, spec, end).map_err(|e| BackfillError::Usage(format!("{what}: {e}")))
    };
    Ok(Request {
        schedule: schedule.to_owned(),
        from: bound(from, false, "--from")?,
        to: bound(to, true, "--to")?,
        max_active,
        reprocess,
    })
}

/// Why a nominal time with runs `existing` (oldest first, standing as
/// `standing` says) gets no new run under `reprocess`: `active` or
/// `exists`.
#[must_use]
pub fn skip_for(reprocess: Reprocess, standing: &[Standing]) -> Option<&'static str> {
    if standing.contains(&Standing::Active) {
        return Some("active");
    }
    match (reprocess, standing.last()) {
        (Reprocess::Missing, Some(_)) | (Reprocess::Failed, Some(Standing::Succeeded)) => {
            Some("exists")
        }
        _ => None,
    }
}

/// Which runs each (workflow, schedule, nominal time) has, oldest first,
/// as the log `bytes` records them: a tick's `starts`, a scheduled or
/// backfilled trigger's `nominal`.
#[must_use]
pub fn identities(bytes: &[u8]) -> HashMap<Identity, Vec<String>> {
    let mut identities: HashMap<Identity, Vec<String>> = HashMap::new();
    let mut note = |key: Identity, run: String| {
        let runs = identities.entry(key).or_default();
        if !runs.contains(&run) {
            runs.push(run);
        }
    };
    // Each `backfill-started` → (workflow, schedule).
    let mut backfills: HashMap<u64, (String, String)> = HashMap::new();
    for record in records(bytes) {
        match record.event {
            Event::Tick {
                workflow,
                schedule,
                nominal,
                starts: Some(run),
                ..
            } => note((workflow, schedule, nominal), run),
            Event::BackfillStarted {
                workflow, schedule, ..
            } => {
                backfills.insert(record.seq, (workflow, schedule));
            }
            Event::Trigger {
                via,
                workflow,
                starts,
                source: Some(source),
                nominal: Some(nominal),
                cause,
                ..
            } if via == "schedule"
                || (via == "backfill"
                    && cause.and_then(|c| backfills.get(&c))
                        == Some(&(workflow.clone(), source.clone()))) =>
            {
                note((workflow, source, nominal), starts);
            }
            _ => {}
        }
    }
    identities
}

/// How each run the log `bytes` records ended (`run-finished`'s status,
/// the last one), for standing without a service.
#[must_use]
pub fn standings(bytes: &[u8]) -> HashMap<String, Standing> {
    let mut ended = HashMap::new();
    for record in records(bytes) {
        if let Event::RunFinished { status, .. } = record.event {
            let standing = match status.as_str() {
                "succeeded" => Standing::Succeeded,
                "failed" | "cancelled" | "refused" => Standing::Failed,
                _ => Standing::Active,
            };
            ended.insert(record.run, standing);
        }
    }
    ended
}

/// A policy refusal a nominal time's run would meet.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    pub task: String,
    pub action: String,
    pub what: String,
    pub policies: Vec<String>,
}

/// What one nominal time of a dry run would do (as the API answers it,
/// and the CLI reads it back).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Planned {
    pub nominal: String,
    /// On the schedule's clock.
    pub local: String,
    /// `run`, `skip` (a run of it exists or is active) or `refused` (its
    /// parameters, or policy, would refuse the run).
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The runs it has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
}

/// A dry run of `request` on `served` as `user` at `now`: for each
/// nominal time, whether it would run, be skipped, or be refused (and by
/// which policies). Nothing is recorded. Evaluates policies: call it on
/// a thread with Cedar's stack.
///
/// # Errors
///
/// What [`nominal_times`] refuses.
pub fn dry_run(
    existing: &dyn Fn(&Identity) -> Vec<(String, Standing)>,
    served: &Served,
    user: &str,
    request: &Request,
    now: Timestamp,
) -> Result<Vec<Planned>, BackfillError> {
    let times = nominal_times(served, request, now)?;
    let spec = schedule_of(served, &request.schedule)?;
    let mut planned = Vec::with_capacity(times.len());
    for at in times {
        let nominal = at.to_string();
        let (existing, standing): (Vec<String>, Vec<Standing>) = existing(&(
            served.name.clone(),
            request.schedule.clone(),
            nominal.clone(),
        ))
        .into_iter()
        .unzip();
        let mut step = Planned {
            local: spec.local(at),
            nominal,
            action: "run".to_owned(),
            why: None,
            runs: existing,
            params: BTreeMap::new(),
            refused: Vec::new(),
        };
        if let Some(why) = skip_for(request.reprocess, &standing) {
            "skip".clone_into(&mut step.action);
            step.why = Some(why.to_owned());
            planned.push(step);
            continue;
        }
        let refused = |mut step: Planned, why: String| {
            "refused".clone_into(&mut step.action);
            step.why = Some(why);
            step
        };
        let values = match spec
            .params_at(at)
            .and_then(|given| served.workflow.plan.param_values(&given))
        {
            Ok(values) => values,
            Err(e) => {
                planned.push(refused(step, e));
                continue;
            }
        };
        step.params.clone_from(&values);
        let plan = served.workflow.plan.clone().with_params(&values);
        match crate::policy::preflight(&plan, &served.policies, user) {
            Ok(preflight) => {
                step.refused = preflight
                    .denied()
                    .map(|d| Refusal {
                        task: d.task.clone(),
                        action: d.action.to_owned(),
                        what: d.what.clone(),
                        policies: d.policies.clone(),
                    })
                    .collect();
                if step.refused.is_empty() {
                    planned.push(step);
                } else {
                    let n = step.refused.len();
                    planned.push(refused(step, format!("policy denies {n} request(s)")));
                }
            }
            Err(e) => planned.push(refused(step, e.to_string())),
        }
    }
    Ok(planned)
}

/// How a nominal time of a backfill was handled.
#[derive(Debug, Clone)]
enum Done {
    Run(String),
    Skip { why: String, detail: Option<String> },
}

#[derive(Debug, Default)]
struct Progress {
    /// Per nominal time, in order.
    done: Vec<Option<Done>>,
    /// `done` or `cancelled`, and by whom.
    ended: Option<(String, Option<String>)>,
}

#[derive(Debug)]
struct Entry {
    id: String,
    workflow: String,
    schedule: String,
    user: String,
    token: String,
    access: u64,
    from: String,
    to: String,
    reprocess: Reprocess,
    max_active: u32,
    nominal: Vec<String>,
    /// Its `backfill-started` record.
    seq: u64,
    progress: Mutex<Progress>,
    /// Held while a nominal time is handled, and to cancel: a cancel
    /// never lands between a decision to start a run and its trigger.
    turn: tokio::sync::Mutex<()>,
    cancel: watch::Sender<bool>,
}

/// A backfill, as the API and `cairn backfill` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shown {
    pub id: String,
    pub workflow: String,
    pub schedule: String,
    pub user: String,
    pub from: String,
    pub to: String,
    pub reprocess: &'static str,
    pub max_active: u32,
    /// `running` (submitting, or its runs still going), `done`,
    /// `cancelled`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<String>,
    /// Nominal times in all, and how many are not handled yet.
    pub total: usize,
    pub pending: usize,
    /// Runs started, by how they stand now.
    pub started: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub active: usize,
    pub skipped: usize,
    pub runs: Vec<ShownRun>,
    pub skips: Vec<ShownSkip>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ShownRun {
    pub nominal: String,
    pub run: String,
    /// `active`, `succeeded` or `failed` (failed or cancelled).
    pub standing: &'static str,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ShownSkip {
    pub nominal: String,
    pub why: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Every backfill of the service (or of one `cairn backfill`).
#[derive(Debug)]
pub struct Backfills {
    runs: Arc<Runs>,
    catalog: Arc<Mutex<Catalog>>,
    book: Mutex<BTreeMap<String, Arc<Entry>>>,
    drivers: Mutex<tokio::task::JoinSet<()>>,
}

impl Backfills {
    /// The backfills `log` (the audit log's bytes) records, to go on with
    /// ([`Backfills::resume`]) and show.
    #[must_use]
    pub fn new(runs: Arc<Runs>, catalog: Arc<Mutex<Catalog>>, log: &[u8]) -> Arc<Self> {
        let mut book: BTreeMap<String, Entry> = BTreeMap::new();
        let mut by_seq: HashMap<u64, String> = HashMap::new();
        let place = |entry: &Entry, nominal: &str| entry.nominal.iter().position(|n| n == nominal);
        for record in records(log) {
            match record.event {
                Event::BackfillStarted {
                    backfill,
                    workflow,
                    schedule,
                    user,
                    token,
                    access,
                    from,
                    to,
                    reprocess,
                    max_active,
                    nominal,
                } => {
                    by_seq.insert(record.seq, backfill.clone());
                    let done = vec![None; nominal.len()];
                    book.insert(
                        backfill.clone(),
                        Entry {
                            id: backfill,
                            workflow,
                            schedule,
                            user,
                            token,
                            access,
                            from,
                            to,
                            reprocess: Reprocess::from_name(&reprocess)
                                .unwrap_or(Reprocess::Missing),
                            max_active: max_active.clamp(1, MAX_ACTIVE),
                            nominal,
                            seq: record.seq,
                            progress: Mutex::new(Progress { done, ended: None }),
                            turn: tokio::sync::Mutex::new(()),
                            cancel: watch::Sender::new(false),
                        },
                    );
                }
                Event::BackfillSkipped {
                    backfill,
                    nominal,
                    why,
                    detail,
                    ..
                } => {
                    if let Some(entry) = book.get(&backfill)
                        && let Some(i) = place(entry, &nominal)
                        && let Some(slot) = lock(&entry.progress).done.get_mut(i)
                    {
                        *slot = Some(Done::Skip { why, detail });
                    }
                }
                Event::Trigger {
                    via,
                    starts,
                    cause: Some(cause),
                    nominal: Some(nominal),
                    ..
                } if via == "backfill" => {
                    if let Some(entry) = by_seq.get(&cause).and_then(|id| book.get(id))
                        && let Some(i) = place(entry, &nominal)
                        && let Some(slot) = lock(&entry.progress).done.get_mut(i)
                    {
                        *slot = Some(Done::Run(starts));
                    }
                }
                Event::BackfillEnded {
                    backfill,
                    result,
                    user,
                    ..
                } => {
                    if let Some(entry) = book.get(&backfill) {
                        lock(&entry.progress).ended = Some((result, user));
                    }
                }
                _ => {}
            }
        }
        Arc::new(Self {
            runs,
            catalog,
            book: Mutex::new(book.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()),
            drivers: Mutex::new(tokio::task::JoinSet::new()),
        })
    }

    /// Go on with every backfill the log shows unfinished.
    pub fn resume(self: &Arc<Self>) -> Vec<String> {
        let entries: Vec<Arc<Entry>> = lock(&self.book)
            .values()
            .filter(|e| lock(&e.progress).ended.is_none())
            .cloned()
            .collect();
        let mut notes = Vec::new();
        for entry in entries {
            notes.push(format!(
                "backfill {} of schedule {} of {} goes on",
                entry.id, entry.schedule, entry.workflow
            ));
            self.spawn(entry);
        }
        notes
    }

    /// Start backfill `request` of `served` for `user` (token `token`), as
    /// record `access` allowed (a `trigger` `via` `backfill`): recorded,
    /// then submitted in the background. Returns how it stands.
    ///
    /// # Errors
    ///
    /// A bad request (nothing recorded), or the log failing.
    pub fn start(
        self: &Arc<Self>,
        served: &Served,
        user: &str,
        token: &str,
        access: u64,
        request: &Request,
    ) -> Result<Shown, BackfillError> {
        if self.runs.draining() {
            return Err(BackfillError::Draining);
        }
        let times = nominal_times(served, request, Timestamp::now())?;
        let nominal: Vec<String> = times.iter().map(ToString::to_string).collect();
        let id = format!("backfill-{}", crate::runner::new_run_id());
        let event = Event::BackfillStarted {
            backfill: id.clone(),
            workflow: served.name.clone(),
            schedule: request.schedule.clone(),
            user: user.to_owned(),
            token: token.to_owned(),
            access,
            from: request.from.to_string(),
            to: request.to.to_string(),
            reprocess: request.reprocess.name().to_owned(),
            max_active: request.max_active,
            nominal: nominal.clone(),
        };
        let seq = {
            let mut log = lock(&self.runs.state().log);
            let seq = log
                .append("", event)
                .map_err(|e| BackfillError::Audit(e.to_string()))?;
            log.sync()
                .map_err(|e| BackfillError::Audit(e.to_string()))?;
            seq
        };
        let entry = Arc::new(Entry {
            id: id.clone(),
            workflow: served.name.clone(),
            schedule: request.schedule.clone(),
            user: user.to_owned(),
            token: token.to_owned(),
            access,
            from: request.from.to_string(),
            to: request.to.to_string(),
            reprocess: request.reprocess,
            max_active: request.max_active,
            progress: Mutex::new(Progress {
                done: vec![None; nominal.len()],
                ended: None,
            }),
            nominal,
            seq,
            turn: tokio::sync::Mutex::new(()),
            cancel: watch::Sender::new(false),
        });
        lock(&self.book).insert(id, Arc::clone(&entry));
        let shown = self.show_entry(&entry);
        self.spawn(entry);
        Ok(shown)
    }

    /// Cancel backfill `id` as `user` (token `token`), allowed by record
    /// `access`: no more nominal times are submitted, its active runs are
    /// cancelled.
    ///
    /// # Errors
    ///
    /// No such backfill, one that has ended, or the log failing.
    pub async fn cancel(
        &self,
        id: &str,
        user: &str,
        token: &str,
        access: u64,
    ) -> Result<Shown, BackfillError> {
        let entry = lock(&self.book)
            .get(id)
            .cloned()
            .ok_or_else(|| BackfillError::NoBackfill(id.to_owned()))?;
        let turn = entry.turn.lock().await;
        if let Some((result, _)) = &lock(&entry.progress).ended {
            return Err(BackfillError::Ended(id.to_owned(), result.clone()));
        }
        {
            let mut log = lock(&self.runs.state().log);
            log.append(
                "",
                Event::BackfillEnded {
                    backfill: id.to_owned(),
                    result: "cancelled".to_owned(),
                    user: Some(user.to_owned()),
                    token: Some(token.to_owned()),
                    access: Some(access),
                },
            )
            .and_then(|_| log.sync())
            .map_err(|e| BackfillError::Audit(e.to_string()))?;
        }
        lock(&entry.progress).ended = Some(("cancelled".to_owned(), Some(user.to_owned())));
        entry.cancel.send_replace(true);
        drop(turn);
        for run in self.runs.active_of_backfill(id) {
            self.runs.cancel(&run).await;
        }
        Ok(self.show_entry(&entry))
    }

    /// Backfill `id`, as it stands.
    #[must_use]
    pub fn show(&self, id: &str) -> Option<Shown> {
        let entry = lock(&self.book).get(id).cloned()?;
        Some(self.show_entry(&entry))
    }

    /// The backfills of `workflow`, newest first.
    #[must_use]
    pub fn of_workflow(&self, workflow: &str) -> Vec<Shown> {
        let entries: Vec<Arc<Entry>> = lock(&self.book)
            .values()
            .filter(|e| e.workflow == workflow)
            .cloned()
            .collect();
        let mut shown: Vec<Shown> = entries.iter().map(|e| self.show_entry(e)).collect();
        shown.reverse();
        shown
    }

    /// The backfills that have not ended.
    #[must_use]
    pub fn running(&self) -> Vec<String> {
        lock(&self.book)
            .values()
            .filter(|e| lock(&e.progress).ended.is_none())
            .map(|e| e.id.clone())
            .collect()
    }

    /// Whether backfill `id` has ended, and none of its runs is active.
    #[must_use]
    pub fn finished(&self, id: &str) -> bool {
        let ended = lock(&self.book)
            .get(id)
            .is_none_or(|e| lock(&e.progress).ended.is_some());
        ended && self.runs.active_of_backfill(id).is_empty()
    }

    /// Wait until backfill `id` has [`finished`](Self::finished).
    pub async fn wait(&self, id: &str) {
        loop {
            let left = self.runs.left();
            tokio::pin!(left);
            left.as_mut().enable();
            if self.finished(id) {
                return;
            }
            tokio::select! {
                () = left => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Stop submitting (the service is going down): what is not handled
    /// yet is when it is back.
    pub async fn stop(&self) {
        let mut drivers = std::mem::take(&mut *lock(&self.drivers));
        drivers.shutdown().await;
    }

    fn spawn(self: &Arc<Self>, entry: Arc<Entry>) {
        let me = Arc::clone(self);
        lock(&self.drivers).spawn(async move { me.drive(entry).await });
    }

    fn show_entry(&self, entry: &Entry) -> Shown {
        let progress = lock(&entry.progress);
        let mut shown = Shown {
            id: entry.id.clone(),
            workflow: entry.workflow.clone(),
            schedule: entry.schedule.clone(),
            user: entry.user.clone(),
            from: entry.from.clone(),
            to: entry.to.clone(),
            reprocess: entry.reprocess.name(),
            max_active: entry.max_active,
            status: String::new(),
            cancelled_by: None,
            total: entry.nominal.len(),
            pending: 0,
            started: 0,
            succeeded: 0,
            failed: 0,
            active: 0,
            skipped: 0,
            runs: Vec::new(),
            skips: Vec::new(),
        };
        for (nominal, done) in entry.nominal.iter().zip(&progress.done) {
            match done {
                None => shown.pending += 1,
                Some(Done::Run(run)) => {
                    shown.started += 1;
                    let standing = match self.runs.standing(run) {
                        Standing::Active => {
                            shown.active += 1;
                            "active"
                        }
                        Standing::Succeeded => {
                            shown.succeeded += 1;
                            "succeeded"
                        }
                        Standing::Failed => {
                            shown.failed += 1;
                            "failed"
                        }
                    };
                    shown.runs.push(ShownRun {
                        nominal: nominal.clone(),
                        run: run.clone(),
                        standing,
                    });
                }
                Some(Done::Skip { why, detail }) => {
                    shown.skipped += 1;
                    shown.skips.push(ShownSkip {
                        nominal: nominal.clone(),
                        why: why.clone(),
                        detail: detail.clone(),
                    });
                }
            }
        }
        shown.status = match &progress.ended {
            None => "running".to_owned(),
            Some((result, by)) => {
                shown.cancelled_by.clone_from(by);
                result.clone()
            }
        };
        shown
    }

    /// Submit `entry`'s nominal times not handled yet, in order, at most
    /// `max_active` runs at once; then wait for its runs and record it
    /// `done`. Returns early when cancelled or the service drains.
    async fn drive(self: Arc<Self>, entry: Arc<Entry>) {
        let mut cancelled = entry.cancel.subscribe();
        let stop = |c: &watch::Receiver<bool>| *c.borrow() || self.runs.draining();
        loop {
            let next = lock(&entry.progress).done.iter().position(Option::is_none);
            let Some(i) = next else {
                break;
            };
            if !self
                .fewer_than(&entry, &mut cancelled, entry.max_active as usize)
                .await
            {
                return;
            }
            let turn = entry.turn.lock().await;
            if stop(&cancelled) {
                return;
            }
            let Some(nominal) = entry.nominal.get(i).cloned() else {
                return;
            };
            match self.step(&entry, &nominal).await {
                Ok(done) => {
                    if let Some(slot) = lock(&entry.progress).done.get_mut(i) {
                        *slot = Some(done);
                    }
                }
                Err(Step::Stop) => return,
                Err(Step::Retry(e)) => {
                    tracing::warn!(
                        "backfill {}: nominal time {nominal} was not handled ({e}); trying again in {} s",
                        entry.id,
                        RETRY.as_secs()
                    );
                    drop(turn);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
            drop(turn);
        }
        // Every nominal time handled: done once its runs are.
        if !self.fewer_than(&entry, &mut cancelled, 1).await {
            return;
        }
        let _turn = entry.turn.lock().await;
        if stop(&cancelled) || lock(&entry.progress).ended.is_some() {
            return;
        }
        let recorded = {
            let mut log = lock(&self.runs.state().log);
            log.append(
                "",
                Event::BackfillEnded {
                    backfill: entry.id.clone(),
                    result: "done".to_owned(),
                    user: None,
                    token: None,
                    access: None,
                },
            )
            .and_then(|_| log.sync())
        };
        if let Err(e) = recorded {
            tracing::warn!(
                "backfill {} is done, but its end was not recorded ({e}); it is when the service is back",
                entry.id
            );
        }
        // Over either way: nothing is left to submit or wait for.
        lock(&entry.progress).ended = Some(("done".to_owned(), None));
    }

    /// Wait until fewer than `most` runs of `entry` are active: `false`
    /// if it is cancelled or the service drains first.
    async fn fewer_than(
        &self,
        entry: &Entry,
        cancelled: &mut watch::Receiver<bool>,
        most: usize,
    ) -> bool {
        loop {
            let left = self.runs.left();
            tokio::pin!(left);
            left.as_mut().enable();
            if *cancelled.borrow() || self.runs.draining() {
                return false;
            }
            if self.runs.active_of_backfill(&entry.id).len() < most {
                return true;
            }
            tokio::select! {
                () = left => {}
                _ = cancelled.changed() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Handle nominal time `nominal` of `entry`: start its run, or record
    /// why not.
    async fn step(&self, entry: &Entry, nominal: &str) -> Result<Done, Step> {
        let identity: Identity = (
            entry.workflow.clone(),
            entry.schedule.clone(),
            nominal.to_owned(),
        );
        let Some(_claim) = self.runs.claim(identity.clone()) else {
            let detail = "a run of it is being started now (a tick, or another backfill)";
            return self.skip(
                entry,
                nominal,
                "active",
                Some(detail.to_owned()),
                Vec::new(),
            );
        };
        let existing = self.runs.runs_of(&identity);
        let standing: Vec<Standing> = existing.iter().map(|r| self.runs.standing(r)).collect();
        if let Some(why) = skip_for(entry.reprocess, &standing) {
            return self.skip(entry, nominal, why, None, existing);
        }
        let served = lock(&self.catalog).get(&entry.workflow);
        let Some(served) = served else {
            let detail = format!("workflow {} is not served", entry.workflow);
            return self.skip(entry, nominal, "not-started", Some(detail), Vec::new());
        };
        let params = match schedule_of(&served, &entry.schedule)
            .map_err(|e| e.to_string())
            .and_then(|spec| {
                let at: Timestamp = nominal.parse().map_err(|e| format!("{nominal}: {e}"))?;
                spec.params_at(at)
            }) {
            Ok(params) => params,
            Err(e) => return self.skip(entry, nominal, "not-started", Some(e), Vec::new()),
        };
        let trigger = Trigger {
            via: "backfill",
            user: entry.user.clone(),
            token: entry.token.clone(),
            access: entry.access,
            run: None,
            source: Some(entry.schedule.clone()),
            cause: None,
            serial: false,
            given: None,
            caused_by: Some(entry.seq),
            nominal: Some(nominal.to_owned()),
            backfill: Some(entry.id.clone()),
            traceparent: None,
        };
        match self.runs.trigger(&served, &params, trigger).await {
            Ok(run) => Ok(Done::Run(run)),
            Err(StartError::Draining) => Err(Step::Stop),
            Err(StartError::Audit(e)) => Err(Step::Retry(e.to_string())),
            Err(e) => self.skip(
                entry,
                nominal,
                "not-started",
                Some(e.to_string()),
                Vec::new(),
            ),
        }
    }

    fn skip(
        &self,
        entry: &Entry,
        nominal: &str,
        why: &str,
        detail: Option<String>,
        runs: Vec<String>,
    ) -> Result<Done, Step> {
        let mut log = lock(&self.runs.state().log);
        log.append(
            "",
            Event::BackfillSkipped {
                backfill: entry.id.clone(),
                nominal: nominal.to_owned(),
                why: why.to_owned(),
                detail: detail.clone(),
                runs,
            },
        )
        .and_then(|_| log.sync())
        .map_err(|e| Step::Retry(e.to_string()))?;
        Ok(Done::Skip {
            why: why.to_owned(),
            detail,
        })
    }
}

/// A step that did not come to a decision.
#[derive(Debug)]
enum Step {
    /// Cancelled or draining: stop.
    Stop,
    /// The log failed: again, later.
    Retry(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reprocess_decides_which_nominal_times_run_again() {
        use Standing::{Active, Failed, Succeeded};
        let cases: &[(Reprocess, &[Standing], Option<&str>)] = &[
            (Reprocess::Missing, &[], None),
            (Reprocess::Missing, &[Failed], Some("exists")),
            (Reprocess::Failed, &[], None),
            (Reprocess::Failed, &[Failed], None),
            (Reprocess::Failed, &[Failed, Succeeded], Some("exists")),
            (Reprocess::Failed, &[Succeeded, Failed], None),
            (Reprocess::All, &[Succeeded], None),
            (Reprocess::All, &[Succeeded, Active], Some("active")),
            (Reprocess::Failed, &[Active], Some("active")),
        ];
        for (reprocess, standing, want) in cases {
            assert_eq!(
                skip_for(*reprocess, standing),
                *want,
                "{reprocess:?} {standing:?}"
            );
        }
    }
}
