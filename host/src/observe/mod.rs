//! What operators watch, derived from the audit log's records as they are
//! appended (ARCHITECTURE.md, "Observability"): [`Observer`] is the log's
//! [`Tap`], and turns each record into metrics; nothing here keeps a
//! second account of events beside the log.
//!
//! The tap is called while the log is held: everything here updates
//! memory only, never waits and never writes to the log.

pub mod lineage;
pub mod metrics;
pub mod notify;
pub mod otlp;
pub mod send;
pub mod trace;
pub mod transport;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::metrics::{counter, gauge, histogram};

use self::metrics as m;
use crate::audit::log::Tap;
use crate::audit::record::{Event, Record};

/// Runs remembered as triggered but not started (queued), at most.
const TRIGGERED_AT_MOST: usize = 100_000;

/// Where records that make a notification are handed on (the service's
/// notifier). Called under the log's lock: it must only queue.
pub trait Outbox: Send + Sync {
    /// Record `record` of a run of `workflow` (its bytes `line`) may
    /// make notifications. `false`: the queue was full and they were
    /// dropped.
    fn offer(&self, record: &Record, workflow: &str, line: &[u8]) -> bool;
}

/// The log's tap: counts what the records say, hands what makes a
/// notification to the outbox, and ended spans and checkpointed lineage
/// events to their exporters.
#[derive(Default)]
pub struct Observer {
    memory: Mutex<Memory>,
    metrics: m::Metrics,
    outbox: std::sync::OnceLock<Arc<dyn Outbox>>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

/// What the records so far leave open, for the records that follow.
#[derive(Debug, Default)]
struct Memory {
    /// Each run's workflow, while it may still record something (a run
    /// that ended `succeeded`, `failed` or `refused` is forgotten).
    runs: HashMap<String, String>,
    /// Runs triggered and not started yet: how, and the instant their
    /// trigger-to-start delay is measured from.
    triggered: HashMap<String, (String, jiff::Timestamp)>,
    /// Approval gates open: (run, task) and the run's workflow.
    gates: BTreeMap<(String, String), String>,
    /// Workflows that have had a gate open, so a count fallen to zero
    /// shows zero.
    gated: BTreeSet<String>,
    /// The last checkpoint: when it was recorded, and how many records it
    /// covers.
    checkpoint: Option<(jiff::Timestamp, u64)>,
    /// Records in the log.
    size: u64,
    /// Spans from the records, when traces are exported, and where ended
    /// ones go (`None` once closed).
    tracer: Option<trace::Tracer>,
    spans: Option<otlp::Spans>,
    /// Lineage events from the records, when they are exported, and where
    /// checkpointed ones go (`None` once closed).
    lineage: Option<lineage::Lineage>,
    events: Option<transport::Events>,
}

/// The exporters a process runs: wait for what they hold with
/// [`Exporting::finish`].
#[derive(Debug, Default)]
pub struct Exporting {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Exporting {
    /// Stop `observer` queueing, and give what is queued up to `limit` to
    /// be sent; what is not sent by then is lost (and was logged).
    pub async fn finish(self, observer: &Observer, limit: Duration) {
        observer.close();
        let deadline = tokio::time::Instant::now() + limit;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Observer {
    /// An observer that has seen nothing.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Learn what log `bytes` (as found at start) leaves open: its runs'
    /// workflows, open gates, runs triggered but not started, the last
    /// checkpoint. Counts nothing: counters start at zero with the process.
    /// Only the records that matter are decoded.
    pub fn learn(&self, bytes: &[u8]) {
        const KINDS: &[&[u8]] = &[
            b"run-started\"",
            b"run-finished\"",
            b"trigger\"",
            b"gate-opened\"",
            b"gate-closed\"",
            b"checkpoint\"",
        ];
        /// What spans are made of, besides.
        const TRACED: &[&[u8]] = &[
            b"task-started\"",
            b"task-finished\"",
            b"task-skipped\"",
            b"cache-hit\"",
        ];
        /// What lineage events are made of, besides.
        const LINEAGE: &[&[u8]] = &[
            b"run-resumed\"",
            b"policy-set\"",
            b"decision\"",
            b"data-flow\"",
            b"retry\"",
        ];
        let kind = memchr::memmem::Finder::new(b"\"kind\":\"");
        let mut memory = self.lock();
        let traced = memory.tracer.is_some() || memory.lineage.is_some();
        let lineage = memory.lineage.is_some();
        let mut size = 0;
        for line in bytes.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            size += 1;
            let wanted = kind.find(line).is_some_and(|at| {
                let rest = line.get(at + 8..).unwrap_or_default();
                KINDS.iter().any(|k| rest.starts_with(k))
                    || (traced && TRACED.iter().any(|k| rest.starts_with(k)))
                    || (lineage && LINEAGE.iter().any(|k| rest.starts_with(k)))
            });
            if !wanted {
                continue;
            }
            if let Ok(record) = serde_json::from_slice::<Record>(line) {
                let workflow = memory.remember_of_run(&record);
                // Spans and events of what came before are not made
                // again: what a checkpoint covered was sent then.
                if let Some(tracer) = memory.tracer.as_mut() {
                    let _ = tracer.record(&record, &workflow);
                }
                if let Some(lineage) = memory.lineage.as_mut() {
                    let _ = lineage.record(&record, line);
                }
            }
        }
        memory.size = size;
    }

    /// Every metric, in the Prometheus text format. `active` is the runs
    /// active now, by workflow and phase (`queued`, `running`), with
    /// every served workflow present (zero when none), so a count that
    /// falls to zero is seen.
    #[must_use]
    pub fn render(&self, active: &BTreeMap<(String, &'static str), u64>) -> String {
        let now = jiff::Timestamp::now();
        {
            let memory = self.lock();
            self.metrics.with(|| {
                for ((workflow, phase), n) in active {
                    gauge!(m::RUNS_ACTIVE, "workflow" => workflow.clone(), "phase" => *phase)
                        .set(*n as f64);
                }
                for workflow in &memory.gated {
                    let open = memory.gates.values().filter(|w| *w == workflow).count();
                    gauge!(m::APPROVALS_WAITING, "workflow" => workflow.clone()).set(open as f64);
                }
                gauge!(m::AUDIT_LOG_RECORDS).set(memory.size as f64);
                if let Some((at, covered)) = memory.checkpoint {
                    let age = now.duration_since(at).as_secs_f64().max(0.0);
                    gauge!(m::CHECKPOINT_AGE).set(age);
                    // The checkpoint record itself follows what it covers.
                    let unsigned = memory.size.saturating_sub(covered + 1);
                    gauge!(m::UNSIGNED_RECORDS).set(unsigned as f64);
                }
            });
        }
        self.metrics.render()
    }

    /// Make spans of the records with `tracer` from now on (and of the
    /// runs [`Observer::learn`] finds under way), and put them in `spans`.
    pub fn trace(&self, tracer: trace::Tracer, spans: otlp::Spans) {
        let mut memory = self.lock();
        memory.tracer = Some(tracer);
        memory.spans = Some(spans);
    }

    /// Make lineage events of the records with `lineage` from now on (and
    /// of the runs [`Observer::learn`] finds under way), and put them in
    /// `events` once a checkpoint covers them.
    pub fn lineage(&self, lineage: lineage::Lineage, events: transport::Events) {
        let mut memory = self.lock();
        memory.lineage = Some(lineage);
        memory.events = Some(events);
    }

    /// Export traces to `otlp` and lineage to `lineage` (each when
    /// given), for the log whose checkpoints name `origin` (the service
    /// at `base_url`, `""` for none): call before [`Observer::learn`].
    pub fn start_exporting(
        self: &Arc<Self>,
        origin: &str,
        base_url: &str,
        otlp: Option<otlp::Config>,
        lineage: Option<transport::Config>,
    ) -> Exporting {
        let mut tasks = Vec::new();
        if let Some(otlp) = otlp {
            let (spans, queue) = tokio::sync::mpsc::channel(otlp::QUEUE);
            self.trace(
                trace::Tracer::new(origin.to_owned(), base_url.to_owned()),
                spans,
            );
            let lost = Arc::clone(self);
            tasks.push(tokio::spawn(otlp::export(otlp, queue, move |n| {
                lost.lost("traces", n);
            })));
        }
        if let Some(config) = lineage {
            let (events, queue) = tokio::sync::mpsc::channel(transport::QUEUE);
            self.lineage(
                lineage::Lineage::new(origin.to_owned(), config.namespace.clone()),
                events,
            );
            let lost = Arc::clone(self);
            tasks.push(tokio::spawn(transport::export(config, queue, move |n| {
                lost.lost("lineage", n);
            })));
        }
        Exporting { tasks }
    }

    /// Queue nothing more for the exporters (what is queued is still
    /// sent, and then they end).
    pub fn close(&self) {
        let mut memory = self.lock();
        memory.spans = None;
        memory.events = None;
    }

    /// `n` items `exporter` could not deliver.
    pub fn lost(&self, exporter: &'static str, n: usize) {
        self.metrics.with(|| {
            counter!(m::EXPORT_DROPPED, "exporter" => exporter).increment(n as u64);
        });
    }

    /// Hand what makes notifications to `outbox` from now on (once).
    pub fn send_to(&self, outbox: Arc<dyn Outbox>) {
        let _ = self.outbox.set(outbox);
    }

    /// Drain what histograms hold between scrapes.
    pub fn upkeep(&self) {
        self.metrics.upkeep();
    }

    /// Start the series of served workflow `workflow` at zero, so that
    /// queries over them (and alerts on their rates) have something to
    /// read before the first run ends.
    pub fn serving(&self, workflow: &str) {
        self.lock().gated.insert(workflow.to_owned());
        let wf = || workflow.to_owned();
        self.metrics.with(|| {
            for outcome in ["succeeded", "failed"] {
                counter!(m::RUNS_FINISHED, "workflow" => wf(), "outcome" => outcome).increment(0);
            }
            for result in ["sent", "denied"] {
                counter!(m::TASK_HTTP_REQUESTS, "workflow" => wf(), "result" => result)
                    .increment(0);
            }
            counter!(m::RUNS_RESUMED, "workflow" => wf()).increment(0);
            counter!(m::TASK_RETRIES, "workflow" => wf()).increment(0);
            counter!(m::TASKS_SKIPPED, "workflow" => wf()).increment(0);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Tap for Observer {
    fn recorded(&self, record: &Record, line: &[u8]) {
        let mut memory = self.lock();
        memory.size = record.seq + 1;
        let delay = match &record.event {
            Event::RunStarted { .. } => memory.triggered.get(&record.run).cloned(),
            _ => None,
        };
        let workflow = memory.remember_of_run(record);
        let spans = memory
            .tracer
            .as_mut()
            .map(|tracer| tracer.record(record, &workflow))
            .unwrap_or_default();
        let lost_spans = queue(memory.spans.as_ref(), spans);
        let (events, held_over) = memory
            .lineage
            .as_mut()
            .map(|lineage| (lineage.record(record, line), lineage.take_dropped()))
            .unwrap_or_default();
        let lost_events = queue(memory.events.as_ref(), events) + held_over;
        drop(memory);
        if lost_spans > 0 {
            self.lost("traces", lost_spans);
        }
        if lost_events > 0 {
            self.lost("lineage", lost_events);
        }
        let dropped = notify::kind_of(record).is_some()
            && self
                .outbox
                .get()
                .is_some_and(|outbox| !outbox.offer(record, &workflow, line));
        self.metrics.with(|| {
            count(record, &workflow, delay.as_ref());
        });
        if dropped {
            self.lost("notifications", 1);
        }
    }
}

/// Put `items` in `queue` without waiting; how many were lost (the queue
/// full or closed, or none).
fn queue<T>(queue: Option<&tokio::sync::mpsc::Sender<Vec<T>>>, items: Vec<T>) -> usize {
    let n = items.len();
    if n == 0 {
        return 0;
    }
    match queue.map(|q| q.try_send(items)) {
        Some(Ok(())) => 0,
        _ => n,
    }
}

impl Memory {
    /// [`Memory::remember`] `record`, and return its run's workflow: as
    /// known before it (a run's end forgets it), or as it makes it known
    /// (its start); `""` outside runs.
    fn remember_of_run(&mut self, record: &Record) -> String {
        let before = self.runs.get(&record.run).cloned();
        self.remember(record);
        before
            .or_else(|| self.runs.get(&record.run).cloned())
            .unwrap_or_default()
    }

    /// Keep what `record` leaves open.
    fn remember(&mut self, record: &Record) {
        let run = &record.run;
        match &record.event {
            Event::RunStarted { workflow, .. } => {
                self.triggered.remove(run);
                self.runs.insert(run.clone(), workflow.clone());
            }
            Event::Trigger {
                via,
                starts,
                nominal,
                ..
            } => {
                let from = match (via.as_str(), nominal) {
                    ("schedule", Some(nominal)) => nominal.parse().ok(),
                    _ => None,
                }
                .or_else(|| record.time.parse().ok());
                if let Some(from) = from
                    && self.triggered.len() < TRIGGERED_AT_MOST
                {
                    self.triggered.insert(starts.clone(), (via.clone(), from));
                }
            }
            Event::GateOpened { task, .. } => {
                let workflow = self.runs.get(run).cloned().unwrap_or_default();
                self.gated.insert(workflow.clone());
                self.gates.insert((run.clone(), task.clone()), workflow);
            }
            Event::GateClosed { task, .. } => {
                self.gates.remove(&(run.clone(), task.clone()));
            }
            Event::RunFinished { status, .. } => {
                if status != "waiting" {
                    self.gates.retain(|(r, _), _| r != run);
                }
                if matches!(status.as_str(), "succeeded" | "failed" | "refused") {
                    self.runs.remove(run);
                }
            }
            Event::Checkpoint { size, .. } => {
                if let Ok(at) = record.time.parse() {
                    self.checkpoint = Some((at, *size));
                }
            }
            _ => {}
        }
    }
}

/// Count `record` of a run of `workflow` (`""` outside runs); `delay` is
/// how and since when a starting run was triggered.
fn count(record: &Record, workflow: &str, delay: Option<&(String, jiff::Timestamp)>) {
    let wf = || workflow.to_owned();
    counter!(m::AUDIT_RECORDS, "kind" => record.event.kind()).increment(1);
    match &record.event {
        Event::RunStarted { workflow, .. } => {
            let via = delay.map_or("cli".to_owned(), |(via, _)| via.clone());
            if let Some((_, from)) = delay
                && let Ok(at) = record.time.parse::<jiff::Timestamp>()
            {
                let seconds = at.duration_since(*from).as_secs_f64().max(0.0);
                histogram!(m::TRIGGER_TO_START, "via" => via.clone()).record(seconds);
            }
            counter!(m::RUNS_STARTED, "workflow" => workflow.clone(), "via" => via).increment(1);
        }
        Event::RunResumed { .. } => counter!(m::RUNS_RESUMED, "workflow" => wf()).increment(1),
        Event::RunFinished {
            status,
            duration_ms,
        } => {
            counter!(m::RUNS_FINISHED, "workflow" => wf(), "outcome" => status.clone())
                .increment(1);
            histogram!(m::RUN_DURATION, "workflow" => wf(), "outcome" => status.clone())
                .record(*duration_ms as f64 / 1000.0);
        }
        Event::TaskFinished {
            outcome,
            duration_ms,
            ..
        } => {
            counter!(m::TASK_ATTEMPTS, "workflow" => wf(), "outcome" => outcome.clone())
                .increment(1);
            histogram!(m::TASK_DURATION, "workflow" => wf(), "outcome" => outcome.clone())
                .record(*duration_ms as f64 / 1000.0);
        }
        Event::Retry { .. } => counter!(m::TASK_RETRIES, "workflow" => wf()).increment(1),
        Event::TaskSkipped { .. } => counter!(m::TASKS_SKIPPED, "workflow" => wf()).increment(1),
        Event::CacheHit { .. } => counter!(m::TASK_CACHE_HITS, "workflow" => wf()).increment(1),
        Event::SecretRead { .. } => counter!(m::SECRET_READS, "workflow" => wf()).increment(1),
        Event::HttpRequest { allowed, .. } => {
            let result = if *allowed { "sent" } else { "denied" };
            counter!(m::TASK_HTTP_REQUESTS, "workflow" => wf(), "result" => result).increment(1);
        }
        Event::Decision {
            phase,
            action,
            decision,
            ..
        } => {
            counter!(m::POLICY_DECISIONS, "phase" => phase.clone(), "action" => action.clone(), "decision" => decision.clone())
                .increment(1);
        }
        Event::Access {
            action, decision, ..
        } => {
            counter!(m::POLICY_DECISIONS, "phase" => "access", "action" => action.clone(), "decision" => decision.clone())
                .increment(1);
        }
        Event::Approval { decision, .. } => {
            counter!(m::POLICY_DECISIONS, "phase" => "approval", "action" => "approve", "decision" => decision.clone())
                .increment(1);
        }
        Event::Tick {
            workflow,
            schedule,
            decision,
            why,
            count,
            ..
        } => {
            let outcome = match (decision.as_str(), why.as_deref()) {
                ("run", _) => "started",
                (_, Some("overlap")) => "overlap",
                (_, Some("paused")) => "paused",
                (_, Some("outside-catch-up-window" | "catch-up-none" | "superseded")) => "missed",
                (_, Some("denied")) => "denied",
                _ => "other",
            };
            counter!(m::SCHEDULE_TICKS, "workflow" => workflow.clone(), "schedule" => schedule.clone(), "outcome" => outcome)
                .increment(count.unwrap_or(1).max(1));
        }
        Event::Notification {
            workflow,
            notification,
            result,
            ..
        } => {
            counter!(m::NOTIFICATIONS, "workflow" => workflow.clone(), "notification" => notification.clone(), "result" => result.clone())
                .increment(1);
        }
        Event::Delivery {
            workflow,
            webhook,
            result,
            ..
        } => {
            counter!(m::WEBHOOK_DELIVERIES, "workflow" => workflow.clone(), "webhook" => webhook.clone(), "result" => result.clone())
                .increment(1);
        }
        _ => {}
    }
}

/// An environment of `vars` only, for tests of configuration.
#[cfg(test)]
pub(crate) fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::log::AuditLog;
    use crate::audit::note::Signer;
    use std::sync::Arc;

    fn started(workflow: &str) -> Event {
        Event::RunStarted {
            user: "alice".into(),
            workflow: workflow.into(),
            manifest: crate::audit::record::FileDigest {
                path: "workflow.toml".into(),
                sha256: "sha256:00".into(),
            },
            source: String::new(),
            policy_set: "sha256:00".into(),
            parameters: BTreeMap::new(),
            components: BTreeMap::new(),
            cairn: "test".into(),
            trigger: None,
        }
    }

    fn gate(task: &str) -> Event {
        Event::GateOpened {
            task: task.into(),
            required: 1,
            gated: vec![],
            bound: "sha256:00".into(),
            covers: serde_json::Value::Null,
            deadline: None,
            on_timeout: "fail".into(),
        }
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn records_become_counts_with_no_run_or_user_in_a_label() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(
            &dir.path().join("log.jsonl"),
            Signer::from_seed("t", &[1; 32]),
        )
        .unwrap();
        let observer = Arc::new(Observer::new());
        log.tap(observer.clone());
        log.append("r1", started("etl")).unwrap();
        log.append("r1", gate("deploy")).unwrap();
        log.append(
            "r1",
            Event::RunFinished {
                status: "waiting".into(),
                duration_ms: 1500,
            },
        )
        .unwrap();
        log.checkpoint("").unwrap();
        let text = observer.render(&BTreeMap::new());
        assert_eq!(
            value(
                &text,
                r#"cairn_runs_started_total{workflow="etl",via="cli"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                r#"cairn_runs_finished_total{workflow="etl",outcome="waiting"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&text, r#"cairn_approvals_waiting{workflow="etl"}"#),
            Some(1.0)
        );
        assert_eq!(value(&text, "cairn_audit_unsigned_records"), Some(0.0));
        assert!(!text.contains("r1") && !text.contains("alice"), "{text}");

        // A new observer learns the open gate from the log as found.
        drop(log);
        let again = Observer::new();
        again.learn(&std::fs::read(dir.path().join("log.jsonl")).unwrap());
        let text = again.render(&BTreeMap::new());
        assert_eq!(
            value(&text, r#"cairn_approvals_waiting{workflow="etl"}"#),
            Some(1.0),
            "{text}"
        );
        assert_eq!(value(&text, "cairn_audit_log_records"), Some(5.0));
        assert!(!text.contains("cairn_runs_started_total{"), "{text}");
    }
}
