//! What an interrupted run already did, read back from the audit log, so
//! `cairn resume` can finish it without doing anything twice.
//!
//! The audit log is the record of truth: a task is complete when its end
//! (`task-finished` that is not followed by a `retry`, `task-skipped`, or
//! `cache-hit`) is in the log. The runner syncs a task's outputs into the
//! artifact store before it records `task-finished`, so a recorded output
//! is in the store; [`Resumption::new`] checks that anyway, byte for byte.
//! An attempt that started but has no end (the process was killed) runs
//! again, as the next attempt; it does not count against the retries.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audit::record::{Artifact, Event, Record};
use crate::audit::verify::{Artifacts, sha256_tag};
use crate::plan::Plan;
use crate::runner::{Status, TaskResult};

/// A run as its records tell it.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Who started it.
    pub user: String,
    /// `sha256:` of the manifest it runs now (as started or last resumed).
    pub manifest: String,
    /// `sha256:` of its policy set now.
    pub policy_set: String,
    /// Each task's component digest now.
    pub components: BTreeMap<String, String>,
    /// The parameters it was started with.
    pub params: BTreeMap<String, String>,
    /// How it last ended (`run-finished`), if it did.
    pub ended: Option<String>,
    /// How long it took, as its last `run-finished` says.
    pub duration_ms: Option<u64>,
    /// Each task that started or ended.
    pub tasks: BTreeMap<String, TaskHistory>,
    /// How many records the run has after its `run-started`.
    pub records: usize,
    /// Each approval gate that opened, by task.
    pub gates: BTreeMap<String, GateHistory>,
}

/// One approval gate's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateHistory {
    /// What its latest opening binds approvals to.
    pub bound: String,
    /// When it first opened's deadline (RFC 3339), if it has one.
    pub deadline: Option<String>,
    /// Decisions that counted, in order: (approver, verdict, bound).
    pub counted: Vec<(String, String, String)>,
    /// Whether it closed (then its end is the task's).
    pub closed: bool,
    /// What a timeout means: `fail` or `skip`.
    pub on_timeout: String,
    /// Approvals it requires.
    pub required: u32,
}

impl GateHistory {
    /// How the gate stands for approvals of `bound`: the distinct people
    /// who approved it, and who rejected it first, if anyone did.
    #[must_use]
    pub fn standing(&self, bound: &str) -> (Vec<String>, Option<String>) {
        let mut approvers: Vec<String> = Vec::new();
        for (who, verdict, of) in &self.counted {
            if of != bound {
                continue;
            }
            if verdict == "reject" {
                return (approvers, Some(who.clone()));
            }
            if !approvers.contains(who) {
                approvers.push(who.clone());
            }
        }
        (approvers, None)
    }
}

/// One task's records.
#[derive(Debug, Clone, Default)]
pub struct TaskHistory {
    /// The highest attempt number started.
    pub last_attempt: u32,
    /// Attempts that ended in failure.
    pub failures: u32,
    /// Time the ended attempts took.
    pub duration: Duration,
    /// How it ended, if it did.
    pub end: Option<TaskResult>,
}

/// Why the log cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("audit log record {seq}: {message}; check the log with `cairn audit verify`")]
pub struct HistoryError {
    seq: usize,
    message: String,
}

impl History {
    /// Read run `run`'s records from the log `bytes`; `None` when the log
    /// has no `run-started` for it. `retriable` tells whether a failed
    /// attempt (its outcome kind and detail) of a task may be retried, for
    /// a failure recorded without the `retry` that would have followed it.
    ///
    /// # Errors
    ///
    /// A line that is not a record.
    pub fn read(
        bytes: &[u8],
        run: &str,
        retriable: &dyn Fn(&str, &str, &str, u32) -> bool,
    ) -> Result<Option<Self>, HistoryError> {
        let mut found = Self::read_runs(bytes, &|id| id == run, retriable)?;
        Ok(found.remove(run))
    }

    /// [`History::read`] for every run `wanted` picks, in one pass over the
    /// log; runs without a `run-started` are left out.
    ///
    /// # Errors
    ///
    /// A line that is not a record.
    pub fn read_runs(
        bytes: &[u8],
        wanted: &dyn Fn(&str) -> bool,
        retriable: &dyn Fn(&str, &str, &str, u32) -> bool,
    ) -> Result<HashMap<String, Self>, HistoryError> {
        let mut runs: HashMap<String, Self> = HashMap::new();
        for (seq, piece) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            // A last line without its newline is a torn tail (the process
            // died writing it): opening the log moves it aside.
            let Some(line) = piece.strip_suffix(b"\n") else {
                break;
            };
            let (record, _) = Record::decode(line).map_err(|e| HistoryError {
                seq,
                message: e.to_string(),
            })?;
            if record.run.is_empty() || !wanted(&record.run) {
                continue;
            }
            if let Event::RunStarted {
                user,
                manifest,
                policy_set,
                components,
                parameters,
                ..
            } = &record.event
            {
                runs.insert(
                    record.run.clone(),
                    Self {
                        user: user.clone(),
                        manifest: manifest.sha256.clone(),
                        policy_set: policy_set.clone(),
                        components: components.clone(),
                        params: parameters.clone(),
                        ..Self::default()
                    },
                );
                continue;
            }
            let Some(h) = runs.get_mut(&record.run) else {
                continue;
            };
            h.records += 1;
            h.event(record.event, retriable);
        }
        Ok(runs)
    }

    fn event(&mut self, event: Event, retriable: &dyn Fn(&str, &str, &str, u32) -> bool) {
        match event {
            Event::RunResumed {
                manifest,
                policy_set,
                components,
                ..
            } => {
                self.manifest = manifest.sha256;
                self.policy_set = policy_set;
                self.components = components;
                self.ended = None;
            }
            Event::RunFinished {
                status,
                duration_ms,
            } => {
                self.ended = Some(status);
                self.duration_ms = Some(duration_ms);
            }
            Event::TaskStarted { task, attempt, .. } => {
                let t = self.tasks.entry(task).or_default();
                t.last_attempt = t.last_attempt.max(attempt);
                t.end = None;
            }
            Event::TaskFinished {
                task,
                attempt,
                outcome,
                detail,
                duration_ms,
                outputs,
                ..
            } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.last_attempt = t.last_attempt.max(attempt);
                t.duration = t
                    .duration
                    .saturating_add(Duration::from_millis(duration_ms));
                let status = if outcome == "success" {
                    Status::Succeeded
                } else {
                    t.failures = t.failures.saturating_add(1);
                    if retriable(&task, &outcome, &detail, t.failures) {
                        // Killed before the `retry` was recorded: retry.
                        t.end = None;
                        return;
                    }
                    Status::Failed(detail)
                };
                t.end = Some(TaskResult {
                    name: task,
                    status,
                    attempts: attempt,
                    duration: t.duration,
                    outputs,
                });
            }
            Event::Retry { task, .. } => {
                if let Some(t) = self.tasks.get_mut(&task) {
                    t.end = None;
                }
            }
            Event::TaskSkipped { task, reason } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.end = Some(TaskResult {
                    name: task,
                    status: Status::Skipped(reason),
                    attempts: 0,
                    duration: Duration::ZERO,
                    outputs: Vec::new(),
                });
            }
            Event::GateOpened {
                task,
                bound,
                deadline,
                on_timeout,
                required,
                ..
            } => {
                let gate = self.gates.entry(task).or_default();
                gate.bound = bound;
                gate.required = required;
                gate.on_timeout = on_timeout;
                if gate.deadline.is_none() {
                    gate.deadline = deadline;
                }
                gate.closed = false;
            }
            Event::Approval {
                task,
                verdict,
                approver,
                bound,
                counted: true,
                ..
            } => {
                if let Some(gate) = self.gates.get_mut(&task) {
                    gate.counted.push((approver, verdict, bound));
                }
            }
            Event::GateClosed { task, result, by } => {
                let on_timeout = match self.gates.get_mut(&task) {
                    Some(gate) => {
                        gate.closed = true;
                        gate.on_timeout.clone()
                    }
                    None => String::new(),
                };
                let status = gate_status(&result, &by, &on_timeout);
                let t = self.tasks.entry(task.clone()).or_default();
                t.end = Some(TaskResult {
                    name: task,
                    status,
                    attempts: 0,
                    duration: Duration::ZERO,
                    outputs: Vec::new(),
                });
            }
            Event::CacheHit { task, outputs, .. } => {
                let t = self.tasks.entry(task.clone()).or_default();
                t.end = Some(TaskResult {
                    name: task,
                    status: Status::Succeeded,
                    attempts: 0,
                    duration: Duration::ZERO,
                    outputs,
                });
            }
            _ => {}
        }
    }

    /// How the run stands, for people: `interrupted` when it never
    /// recorded an end, else the status it ended with.
    #[must_use]
    pub fn standing(&self) -> &str {
        self.ended.as_deref().unwrap_or("interrupted")
    }

    /// Whether `cairn resume` can go on with it: it was killed, cancelled,
    /// could not go on (`error`), or stopped at an approval gate
    /// (`waiting`).
    #[must_use]
    pub fn resumable(&self) -> bool {
        matches!(
            self.ended.as_deref(),
            None | Some("cancelled" | "error" | "waiting")
        )
    }

    /// The gate `task` if it is open now: the run stopped there, waiting
    /// (or is still running with it open).
    #[must_use]
    pub fn open_gate(&self, task: &str) -> Option<&GateHistory> {
        self.gates.get(task).filter(|g| !g.closed)
    }
}

/// A closed gate's result (`approved`, `rejected` by `by`, `timed-out`
/// with `on_timeout`) as a task's status.
#[must_use]
pub fn gate_status(result: &str, by: &[String], on_timeout: &str) -> Status {
    match (result, on_timeout) {
        ("approved", _) => Status::Succeeded,
        ("rejected", _) => Status::Failed(format!("rejected by {}", by.join(", "))),
        (_, "skip") => Status::Skipped("nobody decided before the approval timed out".to_owned()),
        _ => Status::Failed("nobody decided before the approval timed out".to_owned()),
    }
}

/// What a resumed run starts from.
#[derive(Debug, Clone, Default)]
pub struct Resumption {
    /// How the run had ended: `interrupted`, `cancelled` or `error`.
    pub after: String,
    /// What changed since it started (resuming anyway).
    pub changed: Vec<String>,
    /// The manifest's text, when it changed.
    pub source: Option<String>,
    /// Per task in the plan: where it stands.
    pub tasks: HashMap<String, Prior>,
    /// Approval gates that opened and did not close.
    pub gates: BTreeMap<String, GateHistory>,
    /// The run's records it was read from (see [`History::records`]): if
    /// the log has more by the time the run goes on, someone else resumed
    /// it meanwhile.
    pub records: usize,
}

/// Where one task stands when the run goes on.
#[derive(Debug, Clone)]
pub struct Prior {
    /// Its recorded end, with each output's path in the store.
    pub done: Option<(TaskResult, Vec<PathBuf>)>,
    /// The number of its next attempt.
    pub next_attempt: u32,
    /// Failed attempts so far (they count against its retries).
    pub failures: u32,
}

impl Resumption {
    /// Where each task of `plan` stands after `history`, each recorded
    /// output checked in the store under `state_dir`.
    ///
    /// # Errors
    ///
    /// A recorded output missing from the store, or not what was recorded.
    pub fn new(
        history: &History,
        plan: &Plan,
        state_dir: &Path,
        changed: Vec<String>,
        source: Option<String>,
    ) -> Result<Self, String> {
        let mut tasks = HashMap::new();
        // A fan-out over an output expands again when the run goes on (from
        // the same output: its task is kept), to the tasks it had before.
        let templates: Vec<String> = plan
            .tasks
            .iter()
            .filter(|t| t.fans_out_at_run_time().is_some())
            .map(|t| format!("{}[", t.task.name.value))
            .collect();
        let expanded = history.tasks.keys().filter(|name| {
            templates
                .iter()
                .any(|t| name.starts_with(t.as_str()) && name.ends_with(']'))
        });
        let names = plan
            .tasks
            .iter()
            .map(|t| t.task.name.value.as_str())
            .chain(expanded.map(String::as_str));
        for name in names {
            let Some(past) = history.tasks.get(name) else {
                continue;
            };
            let done = match &past.end {
                Some(result) => {
                    let paths = result
                        .outputs
                        .iter()
                        .map(|o| stored(state_dir, name, o))
                        .collect::<Result<Vec<_>, _>>()?;
                    Some((result.clone(), paths))
                }
                None => None,
            };
            tasks.insert(
                name.to_owned(),
                Prior {
                    done,
                    next_attempt: past.last_attempt.saturating_add(1),
                    failures: past.failures,
                },
            );
        }
        Ok(Self {
            after: history.standing().to_owned(),
            changed,
            source,
            tasks,
            gates: history
                .gates
                .iter()
                .filter(|(_, g)| !g.closed)
                .map(|(t, g)| (t.clone(), g.clone()))
                .collect(),
            records: history.records,
        })
    }

    /// How many tasks the run has as far as is known: `plan`'s, with a
    /// fan-out over an output that had expanded counted as the tasks of it
    /// the run recorded.
    #[must_use]
    pub fn total(&self, plan: &Plan) -> usize {
        let planned: std::collections::HashSet<&str> = plan
            .tasks
            .iter()
            .map(|t| t.task.name.value.as_str())
            .collect();
        let expanded: Vec<&String> = self
            .tasks
            .keys()
            .filter(|n| !planned.contains(n.as_str()))
            .collect();
        let templates = plan
            .tasks
            .iter()
            .filter(|t| {
                let prefix = format!("{}[", t.task.name.value);
                t.fans_out_at_run_time().is_some()
                    && expanded.iter().any(|n| n.starts_with(&prefix))
            })
            .count();
        plan.tasks.len() - templates + expanded.len()
    }

    /// The tasks recorded complete, in `plan` order (those a fan-out
    /// over an output expanded to after the tasks of the plan, by name).
    #[must_use]
    pub fn kept(&self, plan: &Plan) -> Vec<String> {
        let planned: std::collections::HashSet<&str> = plan
            .tasks
            .iter()
            .map(|t| t.task.name.value.as_str())
            .collect();
        let mut expanded: Vec<String> = self
            .tasks
            .iter()
            .filter(|(n, p)| p.done.is_some() && !planned.contains(n.as_str()))
            .map(|(n, _)| n.clone())
            .collect();
        expanded.sort();
        plan.tasks
            .iter()
            .map(|t| t.task.name.value.to_string())
            .filter(|n| self.tasks.get(n).is_some_and(|p| p.done.is_some()))
            .chain(expanded)
            .collect()
    }
}

/// The path of a recorded output in the store, checked against its digest.
fn stored(state_dir: &Path, task: &str, output: &Artifact) -> Result<PathBuf, String> {
    let Some(path) = Artifacts::new(vec![state_dir.join("artifacts")]).find(&output.sha256) else {
        return Err(format!(
            "output `{}` of task `{task}` ({}) is missing from the store `{}`",
            output.name,
            output.sha256,
            state_dir.join("artifacts").display()
        ));
    };
    match std::fs::read(&path) {
        Ok(bytes) if sha256_tag(&bytes) == output.sha256 => Ok(path),
        Ok(_) => Err(format!(
            "output `{}` of task `{task}` (`{}`) no longer has the digest the run recorded; the store was changed",
            output.name,
            path.display()
        )),
        Err(e) => Err(format!(
            "output `{}` of task `{task}` is missing from the store (`{}`: {e})",
            output.name,
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::FileDigest;

    fn line(seq: u64, run: &str, event: Event) -> Vec<u8> {
        let record = Record {
            v: 1,
            seq,
            time: "2026-11-22T00:00:00.000000Z".into(),
            run: run.into(),
            prev: "00".into(),
            event,
        };
        let mut bytes = record.encode().unwrap();
        bytes.push(b'\n');
        bytes
    }

    fn started(task: &str, attempt: u32) -> Event {
        Event::TaskStarted {
            task: task.into(),
            attempt,
            component: FileDigest {
                path: "t.wasm".into(),
                sha256: "sha256:00".into(),
            },
            inputs: Vec::new(),
            when: "success".into(),
            mounts: Vec::new(),
        }
    }

    fn finished(task: &str, attempt: u32, outcome: &str) -> Event {
        Event::TaskFinished {
            task: task.into(),
            attempt,
            outcome: outcome.into(),
            detail: outcome.into(),
            exit_status: None,
            duration_ms: 5,
            outputs: Vec::new(),
        }
    }

    #[test]
    fn ends_attempts_and_a_torn_tail_are_read_back() {
        let mut log = line(
            0,
            "r",
            Event::RunStarted {
                user: "alice".into(),
                workflow: "w".into(),
                manifest: FileDigest {
                    path: "workflow.toml".into(),
                    sha256: "sha256:11".into(),
                },
                source: String::new(),
                policy_set: "sha256:22".into(),
                parameters: BTreeMap::new(),
                components: BTreeMap::new(),
                cairn: "test".into(),
                trigger: None,
            },
        );
        for (seq, event) in [
            started("a", 1),
            finished("a", 1, "success"),
            started("b", 1),
            finished("b", 1, "trap"),
            started("c", 1),
            finished("c", 1, "trap"),
            started("d", 1),
        ]
        .into_iter()
        .enumerate()
        {
            log.extend(line(seq as u64 + 1, "r", event));
        }
        log.extend(line(9, "other", started("a", 1)));
        // A torn last line.
        log.extend_from_slice(br#"{"v":1,"seq":10,"ti"#);
        // `b` may be retried (its `retry` record was lost), `c` may not.
        let retriable = |task: &str, _: &str, _: &str, _: u32| task == "b";
        let h = History::read(&log, "r", &retriable).unwrap().unwrap();
        assert_eq!(h.user, "alice");
        assert_eq!(h.standing(), "interrupted");
        assert!(h.resumable());
        assert_eq!(h.records, 7);
        let a = &h.tasks["a"];
        assert_eq!(a.end.as_ref().unwrap().status, Status::Succeeded);
        let b = &h.tasks["b"];
        assert!(b.end.is_none());
        assert_eq!((b.last_attempt, b.failures), (1, 1));
        assert!(matches!(
            h.tasks["c"].end.as_ref().unwrap().status,
            Status::Failed(_)
        ));
        assert!(h.tasks["d"].end.is_none());
        assert!(History::read(&log, "nope", &retriable).unwrap().is_none());
        // A damaged record in the middle is an error, not skipped.
        let mut damaged = log.clone();
        damaged.splice(0..0, b"not json\n".iter().copied());
        assert!(History::read(&damaged, "r", &retriable).is_err());
    }
}
