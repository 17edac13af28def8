//! The tick loop: when a schedule's tick is due, decide it and record it,
//! then start its run.
//!
//! [`schedule`](super::schedule) says which ticks are due and which catch-up
//! skips; here each due tick is checked against the pause and the overlap
//! policy, asked of the workflow's policies as the schedule's principal
//! (`trigger`, via `schedule`), and recorded as a `tick` before anything
//! else: a `run` tick with the `trigger` naming it (both synced before the
//! run starts), a `skip` tick with why. The log is the schedule's memory:
//! on start, each schedule goes on from the last tick recorded (a tick
//! recorded but whose run never started is started once, by
//! [`Runs::recover`](super::runs::Runs::recover)), and pauses are read
//! back. So a crash between a tick and its run yields exactly one run, and
//! no tick is decided twice. Never touches HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Notify;

use super::catalog::{Catalog, Served};
use super::runs::{Phase, Runs, StartError, Trigger};
use super::schedule::{Overlap, Spec, Step, Tick, Why};
use crate::audit::record::{Event, records};
use crate::policy::service::Asked;

/// The longest the loop sleeps without looking at the clock again (the
/// wall clock can jump; a host can sleep).
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// How long a schedule whose tick could not be recorded waits to try
/// again.
const RETRY: Duration = Duration::from_secs(5);

/// A schedule: (workflow, schedule).
type Key = (String, String);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The last tick of a schedule, as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastTick {
    pub nominal: String,
    pub actual: String,
    /// `run` or `skip`.
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

#[derive(Debug, Default)]
struct Book {
    /// The last tick handled (or the instant a range of them ends).
    cursors: HashMap<Key, Timestamp>,
    /// Paused (`true`) or resumed through the API: wins over the manifest.
    paused: HashMap<Key, bool>,
    last: HashMap<Key, LastTick>,
    /// The last [`RECENT_SKIPS`] ticks of each schedule that started no
    /// run, newest last.
    skipped: HashMap<Key, std::collections::VecDeque<LastTick>>,
    /// When each schedule is next due, and the served version that was
    /// computed for.
    due: HashMap<Key, (usize, Option<Timestamp>)>,
    /// When each schedule ticks (its cron and zone), as last served.
    when: HashMap<Key, (String, String)>,
}

/// A tick to come: its nominal time (UTC, RFC 3339) and the same on the
/// schedule's clock.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Upcoming {
    pub nominal: String,
    pub local: String,
}

/// Skipped ticks kept per schedule for the API and the web UI.
pub const RECENT_SKIPS: usize = 20;

/// Upcoming ticks the API shows per schedule.
pub const UPCOMING: usize = 10;

impl Book {
    /// Note `last` as schedule `key`'s last tick.
    fn note(&mut self, key: Key, last: LastTick) {
        if last.decision != "run" {
            let skipped = self.skipped.entry(key.clone()).or_default();
            if skipped.len() == RECENT_SKIPS {
                skipped.pop_front();
            }
            skipped.push_back(last.clone());
        }
        self.last.insert(key, last);
    }
}

/// Which served version `served` is (the address of its allocation; only
/// compared, never followed).
fn version(served: &Arc<Served>) -> usize {
    Arc::as_ptr(served).addr()
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shown {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    #[serde(rename = "as")]
    pub principal: String,
    pub params: std::collections::BTreeMap<String, String>,
    pub dst_gap: &'static str,
    pub dst_repeat: &'static str,
    pub catch_up: &'static str,
    pub catch_up_window_s: u64,
    pub overlap: &'static str,
    pub jitter_ms: u64,
    pub paused: bool,
    /// The next tick's nominal time, UTC, and on the schedule's clock.
    pub next: Option<String>,
    pub next_local: Option<String>,
    /// The next [`UPCOMING`] ticks: nominal time (UTC) and on the
    /// schedule's clock.
    pub upcoming: Vec<Upcoming>,
    pub last: Option<LastTick>,
    /// Recent ticks that started no run, and why, newest first.
    pub skipped: Vec<LastTick>,
    pub tzdb: &'static str,
}

/// The service's schedules.
#[derive(Debug)]
pub struct Scheduler {
    catalog: Arc<Mutex<Catalog>>,
    runs: Arc<Runs>,
    /// When the scheduler started: a tick due before was missed.
    up_since: Timestamp,
    book: Mutex<Book>,
    wake: Notify,
}

impl Scheduler {
    /// The schedules of `catalog`, going on from what `log` (the audit
    /// log's bytes) recorded of them.
    #[must_use]
    pub fn new(catalog: Arc<Mutex<Catalog>>, runs: Arc<Runs>, log: &[u8]) -> Arc<Self> {
        let mut book = Book::default();
        for record in records(log) {
            match record.event {
                Event::Tick {
                    workflow,
                    schedule,
                    nominal,
                    actual,
                    decision,
                    why,
                    through,
                    starts,
                    ..
                } => {
                    let key = (workflow, schedule);
                    let reached = through
                        .as_deref()
                        .unwrap_or(&nominal)
                        .parse::<Timestamp>()
                        .ok();
                    if let Some(reached) = reached {
                        let cursor = book.cursors.entry(key.clone()).or_insert(reached);
                        *cursor = (*cursor).max(reached);
                    }
                    book.note(
                        key,
                        LastTick {
                            nominal,
                            actual,
                            decision,
                            why,
                            run: starts,
                        },
                    );
                }
                Event::Pause {
                    workflow,
                    schedule,
                    paused,
                    ..
                } => {
                    book.paused.insert((workflow, schedule), paused);
                }
                _ => {}
            }
        }
        Arc::new(Self {
            catalog,
            runs,
            up_since: Timestamp::now(),
            book: Mutex::new(book),
            wake: Notify::new(),
        })
    }

    /// Look again now (the catalog or a pause changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Run until the service drains.
    pub async fn run(self: Arc<Self>) {
        while !self.runs.draining() {
            let now = Timestamp::now();
            let next = self.tick(now).await;
            let sleep = next.map_or(MAX_SLEEP, |at| {
                Duration::try_from(at.duration_since(Timestamp::now()))
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_SLEEP)
            });
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// Handle every tick due at `now`; returns when the next one is due.
    pub async fn tick(&self, now: Timestamp) -> Option<Timestamp> {
        let served: Vec<Arc<Served>> = lock(&self.catalog).all().cloned().collect();
        let mut due_now = Vec::new();
        let mut next: Option<Timestamp> = None;
        {
            let mut book = lock(&self.book);
            for s in &served {
                for (i, spec) in s.workflow.plan.schedules.iter().enumerate() {
                    let key = (s.name.clone(), spec.name.clone());
                    let version = version(s);
                    let due = match book.due.get(&key) {
                        Some((v, due)) if *v == version => *due,
                        _ => {
                            // A schedule whose cron or zone changed starts
                            // from now: the new cron's ticks before the edit
                            // were never due.
                            let when = (spec.cron.text().to_owned(), spec.timezone.clone());
                            let changed = book
                                .when
                                .insert(key.clone(), when.clone())
                                .is_some_and(|before| before != when);
                            let cursor = book.cursors.entry(key.clone()).or_insert(now);
                            if changed {
                                *cursor = (*cursor).max(now);
                            }
                            let cursor = *cursor;
                            let due = spec.next_after(cursor).map(|t| spec.due_at(&s.name, &t));
                            book.due.insert(key, (version, due));
                            due
                        }
                    };
                    match due {
                        Some(at) if at <= now => due_now.push((Arc::clone(s), i)),
                        Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                        None => {}
                    }
                }
            }
        }
        for (s, i) in due_now {
            let Some(spec) = s.workflow.plan.schedules.get(i) else {
                continue;
            };
            let due = self.fire(&s, spec, now).await;
            if let Some(at) = due {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// Handle schedule `spec`'s due ticks; returns when it is next due.
    async fn fire(&self, served: &Arc<Served>, spec: &Spec, now: Timestamp) -> Option<Timestamp> {
        let key = (served.name.clone(), spec.name.clone());
        let cursor = lock(&self.book).cursors.get(&key).copied().unwrap_or(now);
        let mut reached = cursor;
        let mut failed = false;
        for step in spec.plan(&served.name, cursor, now, self.up_since) {
            let (handled, last) = match step {
                Step::Skip {
                    tick,
                    why,
                    through,
                    count,
                } => {
                    let end = through.unwrap_or(tick.nominal);
                    (
                        end,
                        self.skip(served, spec, &tick, now, &why, through, count, None),
                    )
                }
                Step::Run(tick) => (tick.nominal, self.start(served, spec, &tick, now).await),
            };
            match last {
                Ok(last) => {
                    reached = handled;
                    lock(&self.book).note(key.clone(), last);
                }
                Err(e) => {
                    tracing::warn!(
                        "schedule {} of {}: a tick was not handled ({e}); trying again in {} s",
                        spec.name,
                        served.name,
                        RETRY.as_secs()
                    );
                    failed = true;
                    break;
                }
            }
        }
        let due = if failed {
            now.checked_add(jiff::SignedDuration::from_secs(
                RETRY.as_secs().cast_signed(),
            ))
            .ok()
        } else {
            spec.next_after(reached)
                .map(|t| spec.due_at(&served.name, &t))
        };
        let mut book = lock(&self.book);
        book.cursors.insert(key.clone(), reached);
        book.due.insert(key, (version(served), due));
        due
    }

    /// Tick `tick` is due to run: unless paused, overlapping or denied,
    /// start its run.
    async fn start(
        &self,
        served: &Arc<Served>,
        spec: &Spec,
        tick: &Tick,
        now: Timestamp,
    ) -> Result<LastTick, String> {
        let key = (served.name.clone(), spec.name.clone());
        let paused = lock(&self.book)
            .paused
            .get(&key)
            .copied()
            .unwrap_or(spec.paused);
        if paused {
            return self.skip(served, spec, tick, now, &Why::Paused, None, None, None);
        }
        let active = self.runs.of_schedule(&served.name, &spec.name);
        let mut serial = false;
        let mut detail = None;
        match spec.overlap {
            Overlap::Skip => {
                if let Some(previous) = active.first() {
                    let why = Why::Overlap(format!(
                        "run {} of this schedule is still {} (overlap `skip`)",
                        previous.id,
                        phase(previous.phase)
                    ));
                    return self.skip(served, spec, tick, now, &why, None, None, None);
                }
            }
            Overlap::BufferOne => {
                if let Some(waiting) = active.iter().find(|a| a.phase == Phase::Queued) {
                    let why = Why::Overlap(format!(
                        "run {} of this schedule already waits for the one before it (overlap `buffer_one`)",
                        waiting.id
                    ));
                    return self.skip(served, spec, tick, now, &why, None, None, None);
                }
                serial = true;
            }
            Overlap::CancelPrevious => {
                let mut cancelled = Vec::new();
                for previous in &active {
                    if self.runs.cancel(&previous.id).await {
                        cancelled.push(previous.id.clone());
                    }
                }
                if !cancelled.is_empty() {
                    detail = Some(format!(
                        "cancelled the run(s) of this schedule still going: {} (overlap `cancel_previous`)",
                        cancelled.join(", ")
                    ));
                }
            }
            Overlap::Allow => {}
        }
        let (access, allowed) = super::decide_recorded(
            self.runs.state(),
            served,
            &spec.principal,
            "",
            Asked::Trigger {
                via: "schedule",
                trigger: &spec.name,
            },
        )?;
        if !allowed {
            return self.skip(
                served,
                spec,
                tick,
                now,
                &Why::Denied,
                None,
                None,
                Some(access),
            );
        }
        // A backfill may have run this nominal time (a tick missed while
        // the service was down, caught up now), or be starting it.
        let identity = (
            served.name.clone(),
            spec.name.clone(),
            tick.nominal.to_string(),
        );
        let claim = self.runs.claim(identity.clone());
        let existing = self.runs.runs_of(&identity);
        if claim.is_none() || !existing.is_empty() {
            let why = Why::Exists(existing);
            return self.skip(served, spec, tick, now, &why, None, None, Some(access));
        }
        crate::runner::crash_point("before-tick");
        let run = crate::runner::new_run_id();
        let mut event = tick_event(served, spec, tick, now);
        if let Event::Tick {
            decision,
            access: a,
            starts,
            detail: d,
            ..
        } = &mut event
        {
            "run".clone_into(decision);
            *a = Some(access);
            *starts = Some(run.clone());
            *d = detail;
        }
        let params = match spec.params_at(tick.nominal) {
            Ok(params) => params,
            Err(e) => {
                let why = Why::NotStarted(e);
                return self.skip(served, spec, tick, now, &why, None, None, Some(access));
            }
        };
        let trigger = Trigger {
            via: "schedule",
            user: spec.principal.clone(),
            token: String::new(),
            access,
            run: Some(run.clone()),
            source: Some(spec.name.clone()),
            cause: Some(event),
            serial,
            given: None,
            caused_by: None,
            nominal: Some(tick.nominal.to_string()),
            backfill: None,
            traceparent: None,
        };
        match self.runs.trigger(served, &params, trigger).await {
            Ok(id) => Ok(LastTick {
                nominal: tick.nominal.to_string(),
                actual: now.to_string(),
                decision: "run".to_owned(),
                why: None,
                run: Some(id),
            }),
            // Not recorded: the tick is decided again (the service back up,
            // it is a missed one, for catch-up).
            Err(e @ (StartError::Audit(_) | StartError::Draining)) => Err(e.to_string()),
            Err(e) => {
                let why = Why::NotStarted(e.to_string());
                self.skip(served, spec, tick, now, &why, None, None, Some(access))
            }
        }
    }

    /// Record tick `tick` (and those up to `through`) as starting no run.
    #[allow(clippy::too_many_arguments)]
    fn skip(
        &self,
        served: &Served,
        spec: &Spec,
        tick: &Tick,
        now: Timestamp,
        why: &Why,
        through: Option<Timestamp>,
        count: Option<u64>,
        access: Option<u64>,
    ) -> Result<LastTick, String> {
        let mut event = tick_event(served, spec, tick, now);
        if let Event::Tick {
            why: w,
            detail,
            through: t,
            count: c,
            access: a,
            ..
        } = &mut event
        {
            *w = Some(why.code().to_owned());
            *detail = Some(why.detail());
            *t = through.map(|t| t.to_string());
            *c = count;
            *a = access;
        }
        let mut log = lock(&self.runs.state().log);
        log.append("", event).map_err(|e| e.to_string())?;
        log.sync().map_err(|e| e.to_string())?;
        Ok(LastTick {
            nominal: tick.nominal.to_string(),
            actual: now.to_string(),
            decision: "skip".to_owned(),
            why: Some(why.code().to_owned()),
            run: None,
        })
    }

    /// Pause (or resume) schedule `schedule` of `workflow` as record
    /// `access` allowed `user` (token `token`): recorded, then in effect.
    ///
    /// # Errors
    ///
    /// The log failing.
    pub fn set_paused(
        &self,
        workflow: &str,
        schedule: &str,
        paused: bool,
        user: &str,
        token: &str,
        access: u64,
    ) -> Result<(), String> {
        {
            let mut log = lock(&self.runs.state().log);
            log.append(
                "",
                Event::Pause {
                    workflow: workflow.to_owned(),
                    schedule: schedule.to_owned(),
                    paused,
                    user: user.to_owned(),
                    token: token.to_owned(),
                    access,
                },
            )
            .map_err(|e| e.to_string())?;
            log.sync().map_err(|e| e.to_string())?;
        }
        lock(&self.book)
            .paused
            .insert((workflow.to_owned(), schedule.to_owned()), paused);
        self.wake();
        Ok(())
    }

    /// The schedules of `served`, as the API shows them.
    #[must_use]
    pub fn shown(&self, served: &Served) -> Vec<Shown> {
        let book = lock(&self.book);
        served
            .workflow
            .plan
            .schedules
            .iter()
            .map(|spec| {
                let key = (served.name.clone(), spec.name.clone());
                let cursor = book.cursors.get(&key).copied().unwrap_or(self.up_since);
                let next = spec.next_after(cursor);
                let mut upcoming = Vec::new();
                let mut at = next.as_ref().map(|t| t.nominal);
                while let Some(nominal) = at.filter(|_| upcoming.len() < UPCOMING) {
                    upcoming.push(Upcoming {
                        nominal: nominal.to_string(),
                        local: spec.local(nominal),
                    });
                    at = spec.next_after(nominal).map(|t| t.nominal);
                }
                Shown {
                    name: spec.name.clone(),
                    cron: spec.cron.text().to_owned(),
                    timezone: spec.timezone.clone(),
                    principal: spec.principal.clone(),
                    params: spec.params.clone(),
                    dst_gap: spec.gap.name(),
                    dst_repeat: spec.repeat.name(),
                    catch_up: spec.catch_up.name(),
                    catch_up_window_s: spec.window.as_secs(),
                    overlap: spec.overlap.name(),
                    jitter_ms: u64::try_from(spec.jitter.as_millis()).unwrap_or(u64::MAX),
                    paused: book.paused.get(&key).copied().unwrap_or(spec.paused),
                    next: next.as_ref().map(|t| t.nominal.to_string()),
                    next_local: next.as_ref().map(|t| spec.local(t.nominal)),
                    upcoming,
                    last: book.last.get(&key).cloned(),
                    skipped: book
                        .skipped
                        .get(&key)
                        .map(|s| s.iter().rev().cloned().collect())
                        .unwrap_or_default(),
                    tzdb: super::schedule::tzdb_version(),
                }
            })
            .collect()
    }
}

fn phase(p: Phase) -> &'static str {
    match p {
        Phase::Queued => "waiting its turn",
        Phase::Running => "running",
    }
}

/// The `tick` record of `tick`, handled at `now`, as a skip with nothing
/// said yet.
fn tick_event(served: &Served, spec: &Spec, tick: &Tick, now: Timestamp) -> Event {
    let dst_gap = tick.gap.map(|(n, first)| {
        let what = if n == 1 {
            format!("wall time {first}")
        } else {
            format!("{n} wall times from {first}")
        };
        format!(
            "stands for {what}, in the DST gap (dst_gap `{}`)",
            spec.gap.name()
        )
    });
    Event::Tick {
        workflow: served.name.clone(),
        schedule: spec.name.clone(),
        user: spec.principal.clone(),
        nominal: tick.nominal.to_string(),
        local: spec.local(tick.nominal),
        actual: now.to_string(),
        tzdb: super::schedule::tzdb_version().to_owned(),
        decision: "skip".to_owned(),
        why: None,
        detail: None,
        through: None,
        count: None,
        dst_gap,
        access: None,
        starts: None,
    }
}
