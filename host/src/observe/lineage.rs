//! OpenLineage, the pure part: a RunEvent for each run and each task
//! (START, then COMPLETE, FAIL or ABORT), made from the audit log's
//! records, with datasets identified by their content digest and labels.
//!
//! Every event rests on one record, and is held until a signed checkpoint
//! covers that record: its `cairn_audit` facet names the record (sequence
//! number, hash) and the checkpoint (sequence number, size, root), so an
//! auditor can check any event a lineage store holds against the log
//! offline (`cairn audit verify`, then the record at `seq`). An event the
//! log does not back is never made.
//!
//! Run ids are derived, not drawn (UUIDv8 over the log's origin, the run
//! and the task), so a run that spans a restart keeps its ids.
//!
//! No user and no secret is in an event: who started a run is in the log,
//! not in lineage.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::audit::record::{Artifact, EntitiesJson, Event, Record};

/// The OpenLineage object model followed.
pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const PARENT: &str =
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
const NOMINAL: &str =
    "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet";
const ERROR: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const ENGINE: &str = "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";
const JOB_TYPE: &str =
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const TAGS: &str =
    "https://openlineage.io/spec/facets/1-0-0/TagsDatasetFacet.json#/$defs/TagsDatasetFacet";

/// Cairn's own facets: their JSON Schemas are `observe/facets/*.json`
/// (ids as here).
pub const AUDIT_FACET: &str = "https://cairn.dev/spec/facets/1-0-0/CairnAuditRunFacet.json";
pub const DECISIONS_FACET: &str = "https://cairn.dev/spec/facets/1-0-0/CairnDecisionsRunFacet.json";
pub const ARTIFACT_FACET: &str =
    "https://cairn.dev/spec/facets/1-0-0/CairnArtifactDatasetFacet.json";

/// The namespace of datasets: content-addressed artifacts, the same bytes
/// the same dataset whichever run made them.
pub const DATASETS: &str = "cairn";

/// Events held for a checkpoint, at most; more are dropped and counted.
const HELD_AT_MOST: usize = 100_000;
/// Decisions named in one event's `cairn_decisions`, at most (the rest
/// are counted).
const DECISIONS_AT_MOST: usize = 100;
/// Nominal times remembered for runs triggered but not started, at most.
const NOMINAL_AT_MOST: usize = 100_000;

/// What made the events.
const PRODUCER: &str = concat!("https://cairn.dev/cairn@", env!("CARGO_PKG_VERSION"));

/// A facet's `_producer` and `_schemaURL`, then `fields`.
fn facet(schema: &str, fields: Value) -> Value {
    let mut facet = json!({ "_producer": PRODUCER, "_schemaURL": schema });
    if let (Some(out), Value::Object(fields)) = (facet.as_object_mut(), fields) {
        out.extend(fields);
    }
    facet
}

/// Where an event's `cairn_audit` facet is (a JSON pointer).
const AUDIT_AT: &str = "/run/facets/cairn_audit";

/// Set `key` to `new` in the object at JSON pointer `at` of `value`
/// (nothing when there is no object there).
fn put(value: &mut Value, at: &str, key: &str, new: Value) {
    if let Some(Value::Object(object)) = value.pointer_mut(at) {
        object.insert(key.to_owned(), new);
    }
}

/// A UUID (version 8, RFC 9562: derived by the application) over `parts`.
fn uuid(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(hash.finalize().get(..16).unwrap_or(&[0; 16]));
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = crate::audit::log::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        hex.get(..8).unwrap_or_default(),
        hex.get(8..12).unwrap_or_default(),
        hex.get(12..16).unwrap_or_default(),
        hex.get(16..20).unwrap_or_default(),
        hex.get(20..).unwrap_or_default()
    )
}

/// The hash a record's line ends with (`"hash":"<hex>"}`).
fn hash_of(line: &[u8]) -> String {
    line.len()
        .checked_sub(66)
        .and_then(|at| line.get(at..line.len() - 2))
        .and_then(|hex| std::str::from_utf8(hex).ok())
        .unwrap_or_default()
        .to_owned()
}

/// One decision, as a facet names it.
#[derive(Debug, Clone)]
struct Decided {
    seq: u64,
    phase: String,
    action: String,
    decision: String,
    policies: Vec<String>,
}

impl Decided {
    fn json(&self) -> Value {
        json!({
            "seq": self.seq,
            "phase": self.phase,
            "action": self.action,
            "decision": self.decision,
            "policies": self.policies,
        })
    }
}

/// A failed attempt that no retry followed (yet).
#[derive(Debug, Clone)]
struct Failed {
    seq: u64,
    hash: String,
    time: String,
    detail: String,
}

/// What a task's records said so far.
#[derive(Debug, Default)]
struct TaskSoFar {
    /// Its START was made.
    started: bool,
    /// It ended (COMPLETE).
    ended: bool,
    inputs: Vec<Artifact>,
    /// The last attempt failed, and no retry followed.
    failed: Option<Failed>,
    decisions: Vec<Decided>,
    /// Decisions left out of `decisions`.
    more: u64,
    allowed: u64,
    denied: u64,
}

/// What a run's records said so far.
#[derive(Debug, Default)]
struct RunSoFar {
    workflow: String,
    nominal: Option<String>,
    policy_set: String,
    /// `task.output` → labels, from the run's latest policy set.
    labels: HashMap<String, Vec<String>>,
    /// (task, input) → the output it reads (`task.output`).
    flows: HashMap<(String, String), String>,
    tasks: BTreeMap<String, TaskSoFar>,
    allowed: u64,
    denied: Vec<Decided>,
    denied_more: u64,
}

/// An event waiting for a checkpoint to cover its record.
#[derive(Debug)]
struct Held {
    seq: u64,
    event: Value,
}

/// RunEvents from records, for the log whose checkpoints name `origin`;
/// jobs in namespace `namespace`.
#[derive(Debug)]
pub struct Lineage {
    origin: String,
    namespace: String,
    runs: HashMap<String, RunSoFar>,
    /// Nominal times of runs triggered, not started yet.
    nominal: HashMap<String, String>,
    held: Vec<Held>,
    dropped: usize,
}

impl Lineage {
    /// Lineage that has seen nothing.
    #[must_use]
    pub fn new(origin: String, namespace: String) -> Self {
        Self {
            origin,
            namespace,
            runs: HashMap::new(),
            nominal: HashMap::new(),
            held: Vec::new(),
            dropped: 0,
        }
    }

    /// The OpenLineage run id of run `run`, or of its task `task`.
    #[must_use]
    pub fn run_id(&self, run: &str, task: Option<&str>) -> String {
        let mut parts = vec!["cairn lineage", self.origin.as_str(), run];
        parts.extend(task);
        uuid(&parts)
    }

    /// Events dropped since last asked (the held queue was full).
    pub fn take_dropped(&mut self) -> usize {
        std::mem::take(&mut self.dropped)
    }

    /// Keep what `record` (its bytes `line`) says; return the events a
    /// checkpoint releases, in order (written as JSON by the exporter, off
    /// the log's lock).
    pub fn record(&mut self, record: &Record, line: &[u8]) -> Vec<Value> {
        let run = record.run.as_str();
        match &record.event {
            Event::Trigger {
                starts,
                nominal: Some(nominal),
                ..
            } if self.nominal.len() < NOMINAL_AT_MOST => {
                self.nominal.insert(starts.clone(), nominal.clone());
            }
            Event::RunStarted { workflow, .. } => {
                let so_far = self.runs.entry(run.to_owned()).or_default();
                so_far.workflow.clone_from(workflow);
                so_far.nominal = self.nominal.remove(run);
                let event = self.run_event("START", record, line, None);
                self.hold(record.seq, event);
            }
            Event::RunResumed { .. } if self.runs.contains_key(run) => {
                let event = self.run_event("RUNNING", record, line, None);
                self.hold(record.seq, event);
            }
            Event::PolicySet {
                sha256, entities, ..
            } => {
                if let Some(so_far) = self.runs.get_mut(run) {
                    so_far.policy_set.clone_from(sha256);
                    so_far.labels = labels_of(entities);
                }
            }
            Event::Decision {
                phase,
                task,
                action,
                decision,
                policies,
                ..
            } => {
                if let Some(so_far) = self.runs.get_mut(run) {
                    let decided = Decided {
                        seq: record.seq,
                        phase: phase.clone(),
                        action: action.clone(),
                        decision: decision.clone(),
                        policies: policies.clone(),
                    };
                    if decision == "allow" {
                        so_far.allowed += 1;
                    } else if so_far.denied.len() < DECISIONS_AT_MOST {
                        so_far.denied.push(decided.clone());
                    } else {
                        so_far.denied_more += 1;
                    }
                    if !task.is_empty() {
                        let t = so_far.tasks.entry(task.clone()).or_default();
                        if decided.decision == "allow" {
                            t.allowed += 1;
                        } else {
                            t.denied += 1;
                        }
                        if t.decisions.len() < DECISIONS_AT_MOST {
                            t.decisions.push(decided);
                        } else {
                            t.more += 1;
                        }
                    }
                }
            }
            Event::DataFlow {
                from, task, input, ..
            } => {
                if let Some(so_far) = self.runs.get_mut(run) {
                    so_far
                        .flows
                        .insert((task.clone(), input.clone()), from.clone());
                }
            }
            Event::TaskStarted { task, inputs, .. } => {
                let Some(t) = self.task_mut(run, task) else {
                    return Vec::new();
                };
                t.inputs.clone_from(inputs);
                t.failed = None;
                if !std::mem::replace(&mut t.started, true) {
                    let event = self.task_event("START", record, line, task, &[], None);
                    self.hold(record.seq, event);
                }
            }
            Event::TaskFinished {
                task,
                outcome,
                detail,
                outputs,
                ..
            } => {
                let Some(t) = self.runs.get_mut(run).and_then(|r| r.tasks.get_mut(task)) else {
                    return Vec::new();
                };
                if outcome == "success" {
                    t.ended = true;
                    let event = self.task_event("COMPLETE", record, line, task, outputs, None);
                    self.hold(record.seq, event);
                } else {
                    t.failed = Some(Failed {
                        seq: record.seq,
                        hash: hash_of(line),
                        time: record.time.clone(),
                        detail: detail.clone(),
                    });
                }
            }
            Event::Retry { task, .. } => {
                if let Some(t) = self.runs.get_mut(run).and_then(|r| r.tasks.get_mut(task)) {
                    t.failed = None;
                }
            }
            Event::CacheHit { task, outputs, .. } => {
                let Some(t) = self.task_mut(run, task) else {
                    return Vec::new();
                };
                t.started = true;
                t.ended = true;
                let start = self.task_event("START", record, line, task, &[], None);
                let end = self.task_event("COMPLETE", record, line, task, outputs, None);
                self.hold(record.seq, start);
                self.hold(record.seq, end);
            }
            Event::RunFinished { status, .. } if status != "waiting" => {
                self.run_finished(record, line, status);
            }
            Event::Checkpoint { size, root, .. } => {
                return self.release(record.seq, *size, root);
            }
            _ => {}
        }
        Vec::new()
    }

    /// Task `task` of run `run` (made if new), when the run is known.
    fn task_mut(&mut self, run: &str, task: &str) -> Option<&mut TaskSoFar> {
        self.runs
            .get_mut(run)
            .map(|r| r.tasks.entry(task.to_owned()).or_default())
    }

    /// Run `record.run` ended `status`: its tasks that failed, or never
    /// ended, end now; then the run.
    fn run_finished(&mut self, record: &Record, line: &[u8], status: &str) {
        let run = record.run.as_str();
        let Some(so_far) = self.runs.get(run) else {
            return;
        };
        let mut ends = Vec::new();
        for (task, t) in &so_far.tasks {
            if !t.started || t.ended {
                continue;
            }
            ends.push((task.clone(), t.failed.clone()));
        }
        let mut failed = Vec::new();
        for (task, fail) in ends {
            let event = match &fail {
                Some(f) => {
                    failed.push(task.clone());
                    let backing = Record {
                        seq: f.seq,
                        time: f.time.clone(),
                        ..record.clone()
                    };
                    let mut event =
                        self.task_event("FAIL", &backing, &[], &task, &[], Some(&f.detail));
                    put(&mut event, AUDIT_AT, "hash", json!(f.hash));
                    put(&mut event, AUDIT_AT, "kind", json!("task-finished"));
                    (f.seq, event)
                }
                None => (
                    record.seq,
                    self.task_event("ABORT", record, line, &task, &[], None),
                ),
            };
            self.hold(event.0, event.1);
        }
        let (kind, error) = match status {
            "succeeded" => ("COMPLETE", None),
            "refused" => ("ABORT", Some("refused by policy".to_owned())),
            "cancelled" => ("ABORT", None),
            "error" => ("FAIL", Some("Cairn could not go on".to_owned())),
            _ => (
                "FAIL",
                Some(if failed.is_empty() {
                    format!("run {status}")
                } else {
                    format!("failed: {}", failed.join(", "))
                }),
            ),
        };
        let event = self.run_event(kind, record, line, error.as_deref());
        self.hold(record.seq, event);
        // A run that ends for good is forgotten; one cancelled or stopped
        // by an error may go on (`cairn resume`), in the same ids.
        if matches!(status, "succeeded" | "failed" | "refused") {
            self.runs.remove(run);
        } else if let Some(so_far) = self.runs.get_mut(run) {
            for t in so_far.tasks.values_mut() {
                if !t.ended {
                    t.started = false;
                }
            }
        }
    }

    fn hold(&mut self, seq: u64, event: Value) {
        if self.held.len() < HELD_AT_MOST {
            self.held.push(Held { seq, event });
        } else {
            self.dropped += 1;
        }
    }

    /// The events whose records checkpoint `seq` (of `size` records, root
    /// `root`) covers, with it named.
    fn release(&mut self, seq: u64, size: u64, root: &str) -> Vec<Value> {
        let (covered, rest): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.seq < size);
        self.held = rest;
        covered
            .into_iter()
            .map(|mut h| {
                put(
                    &mut h.event,
                    AUDIT_AT,
                    "checkpoint",
                    json!({ "seq": seq, "size": size, "root": root }),
                );
                h.event
            })
            .collect()
    }

    /// The `cairn_audit` facet of an event resting on `record`.
    fn audit(&self, record: &Record, line: &[u8]) -> Value {
        facet(
            AUDIT_FACET,
            json!({
                "log": self.origin,
                "run": record.run,
                "seq": record.seq,
                "kind": record.event.kind(),
                "hash": hash_of(line),
            }),
        )
    }

    fn job(&self, name: String, kind: &str) -> Value {
        json!({
            "namespace": self.namespace,
            "name": name,
            "facets": {
                "jobType": facet(JOB_TYPE, json!({
                    "processingType": "BATCH",
                    "integration": "CAIRN",
                    "jobType": kind,
                })),
            },
        })
    }

    fn envelope(kind: &str, time: &str, run: Value, job: Value) -> Value {
        json!({
            "eventType": kind,
            "eventTime": time,
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
            "run": run,
            "job": job,
            "inputs": [],
            "outputs": [],
        })
    }

    /// A run-level event of `record.run`.
    fn run_event(&self, kind: &str, record: &Record, line: &[u8], error: Option<&str>) -> Value {
        let run = record.run.as_str();
        let so_far = self.runs.get(run);
        let workflow = so_far.map(|r| r.workflow.clone()).unwrap_or_default();
        let mut facets = json!({
            "cairn_audit": self.audit(record, line),
            "processing_engine": facet(ENGINE, json!({
                "version": env!("CARGO_PKG_VERSION"),
                "name": "cairn",
            })),
        });
        if let Some(so_far) = so_far
            && !so_far.policy_set.is_empty()
        {
            let decisions = decisions_facet(
                &so_far.policy_set,
                so_far.allowed,
                so_far.denied.len() as u64 + so_far.denied_more,
                &so_far.denied,
                so_far.denied_more,
            );
            put(&mut facets, "", "cairn_decisions", decisions);
        }
        more_facets(&mut facets, so_far, error);
        Self::envelope(
            kind,
            &record.time,
            json!({ "runId": self.run_id(run, None), "facets": facets }),
            self.job(workflow, "DAG"),
        )
    }

    /// A task-level event of task `task` of `record.run`, with `outputs`.
    fn task_event(
        &self,
        kind: &str,
        record: &Record,
        line: &[u8],
        task: &str,
        outputs: &[Artifact],
        error: Option<&str>,
    ) -> Value {
        let run = record.run.as_str();
        let so_far = self.runs.get(run);
        let workflow = so_far.map(|r| r.workflow.clone()).unwrap_or_default();
        let parent_job = json!({ "namespace": self.namespace, "name": workflow });
        let parent_run = json!({ "runId": self.run_id(run, None) });
        let mut facets = json!({
            "cairn_audit": self.audit(record, line),
            "parent": facet(PARENT, json!({
                "run": parent_run,
                "job": parent_job,
                "root": { "run": parent_run, "job": parent_job },
            })),
        });
        let t = so_far.and_then(|r| r.tasks.get(task));
        if let (Some(so_far), Some(t)) = (so_far, t) {
            let decisions = decisions_facet(
                &so_far.policy_set,
                t.allowed,
                t.denied,
                &t.decisions,
                t.more,
            );
            put(&mut facets, "", "cairn_decisions", decisions);
        }
        more_facets(&mut facets, so_far, error);
        let mut event = Self::envelope(
            kind,
            &record.time,
            json!({ "runId": self.run_id(run, Some(task)), "facets": facets }),
            self.job(format!("{workflow}.{task}"), "TASK"),
        );
        if let (Some(so_far), Some(t)) = (so_far, t) {
            let inputs = t
                .inputs
                .iter()
                .map(|a| {
                    let from = so_far
                        .flows
                        .get(&(task.to_owned(), a.name.clone()))
                        .cloned()
                        .unwrap_or_else(|| a.name.clone());
                    dataset(a, &from, so_far.labels.get(&from))
                })
                .collect();
            let outputs = outputs
                .iter()
                .map(|a| {
                    let key = format!("{task}.{}", a.name);
                    dataset(a, &key, so_far.labels.get(&key))
                })
                .collect();
            put(&mut event, "", "inputs", inputs);
            put(&mut event, "", "outputs", outputs);
        }
        event
    }
}

/// The `cairn_decisions` facet: `decisions` named of `allowed` and
/// `denied`, `omitted` more not named.
fn decisions_facet(
    policy_set: &str,
    allowed: u64,
    denied: u64,
    decisions: &[Decided],
    omitted: u64,
) -> Value {
    facet(
        DECISIONS_FACET,
        json!({
            "policySet": policy_set,
            "allowed": allowed,
            "denied": denied,
            "decisions": decisions.iter().map(Decided::json).collect::<Vec<_>>(),
            "omitted": omitted,
        }),
    )
}

/// A run's nominal time, and `error` (a failure's message), into `facets`.
fn more_facets(facets: &mut Value, so_far: Option<&RunSoFar>, error: Option<&str>) {
    if let Some(nominal) = so_far.and_then(|r| r.nominal.as_ref()) {
        put(
            facets,
            "",
            "nominalTime",
            facet(NOMINAL, json!({ "nominalStartTime": nominal })),
        );
    }
    if let Some(message) = error {
        put(
            facets,
            "",
            "errorMessage",
            facet(
                ERROR,
                json!({ "message": message, "programmingLanguage": "WebAssembly" }),
            ),
        );
    }
}

/// A dataset: artifact `a`, made as output `output`, labelled `labels`.
fn dataset(a: &Artifact, output: &str, labels: Option<&Vec<String>>) -> Value {
    let tags: Vec<Value> = labels
        .into_iter()
        .flatten()
        .map(|l| json!({ "key": l, "value": "true", "source": "CAIRN" }))
        .collect();
    let mut facets = json!({
        "cairn_artifact": facet(ARTIFACT_FACET, json!({
            "output": output,
            "bytes": a.bytes,
            "labels": labels.cloned().unwrap_or_default(),
        })),
    });
    if !tags.is_empty() {
        put(
            &mut facets,
            "",
            "tags",
            facet(TAGS, json!({ "tags": tags })),
        );
    }
    json!({ "namespace": DATASETS, "name": a.sha256, "facets": facets })
}

/// Per output (`task.output`), its labels, from a policy set's `Data`
/// entities. Only the fields wanted are decoded.
fn labels_of(entities: &EntitiesJson) -> HashMap<String, Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Uid {
        #[serde(rename = "type")]
        kind: String,
        id: String,
    }
    #[derive(serde::Deserialize, Default)]
    struct Attrs {
        #[serde(default)]
        labels: Option<Vec<String>>,
    }
    #[derive(serde::Deserialize)]
    struct Entity {
        uid: Uid,
        #[serde(default)]
        attrs: Attrs,
    }
    let parsed: Result<Vec<Entity>, _> = match entities {
        EntitiesJson::Rendered(raw) => serde_json::from_str(raw.get()),
        EntitiesJson::Parsed(value) => Vec::<Entity>::deserialize(value),
    };
    parsed
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.uid.kind.ends_with("Data"))
        .filter_map(|e| Some((e.uid.id, e.attrs.labels?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, run: &str, event: Event) -> (Record, Vec<u8>) {
        let record = Record {
            v: 1,
            seq,
            time: format!("2026-12-07T10:00:{:02}Z", seq % 60),
            run: run.into(),
            prev: String::new(),
            event,
        };
        let line = record.encode().unwrap();
        (record, line)
    }

    fn artifact(name: &str, sha: &str) -> Artifact {
        Artifact {
            name: name.into(),
            sha256: format!("sha256:{sha}"),
            bytes: 3,
        }
    }

    #[test]
    fn a_run_makes_events_only_once_a_checkpoint_covers_them() {
        let mut lineage = Lineage::new("cairn.local/audit/x".into(), "prod".into());
        let entities = EntitiesJson::rendered(
            r#"[{"uid":{"type":"Cairn::Data","id":"a.out"},"attrs":{"labels":["pii"]},"parents":[]}]"#
                .into(),
        )
        .unwrap();
        let mut seq = 0;
        let mut feed = |lineage: &mut Lineage, event: Event| {
            let (r, line) = record(seq, "r1", event);
            seq += 1;
            lineage.record(&r, &line)
        };
        let started = Event::RunStarted {
            user: "alice".into(),
            workflow: "etl".into(),
            manifest: crate::audit::record::FileDigest {
                path: "w.toml".into(),
                sha256: "sha256:00".into(),
            },
            source: String::new(),
            policy_set: "sha256:ps".into(),
            parameters: BTreeMap::new(),
            components: BTreeMap::new(),
            cairn: "t".into(),
            trigger: None,
        };
        let trigger = Event::Trigger {
            via: "schedule".into(),
            workflow: "etl".into(),
            starts: "r1".into(),
            user: "etl-scheduler".into(),
            token: String::new(),
            parameters: BTreeMap::new(),
            access: 0,
            source: Some("nightly".into()),
            cause: None,
            body: None,
            nominal: Some("2026-12-07T01:00:00Z".into()),
            traceparent: None,
        };
        let (r, line) = record(99, "", trigger);
        assert!(lineage.record(&r, &line).is_empty());
        assert!(feed(&mut lineage, started).is_empty());
        feed(
            &mut lineage,
            Event::PolicySet {
                sha256: "sha256:ps".into(),
                files: vec![],
                entities,
            },
        );
        for task in ["a", "b"] {
            feed(
                &mut lineage,
                Event::TaskStarted {
                    task: task.into(),
                    attempt: 1,
                    component: crate::audit::record::FileDigest {
                        path: "c.wasm".into(),
                        sha256: "sha256:c".into(),
                    },
                    inputs: vec![],
                    when: "success".into(),
                    mounts: Vec::new(),
                },
            );
        }
        feed(
            &mut lineage,
            Event::TaskFinished {
                task: "a".into(),
                attempt: 1,
                outcome: "success".into(),
                detail: String::new(),
                exit_status: None,
                duration_ms: 1,
                outputs: vec![artifact("out", "aa")],
            },
        );
        feed(
            &mut lineage,
            Event::TaskFinished {
                task: "b".into(),
                attempt: 1,
                outcome: "trap".into(),
                detail: "boom".into(),
                exit_status: None,
                duration_ms: 1,
                outputs: vec![],
            },
        );
        feed(
            &mut lineage,
            Event::RunFinished {
                status: "failed".into(),
                duration_ms: 5,
            },
        );
        let released = feed(
            &mut lineage,
            Event::Checkpoint {
                size: 7,
                root: "cm9vdA==".into(),
                note: String::new(),
            },
        );
        let events = released;
        let kinds: Vec<(String, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["job"]["name"].as_str().unwrap().to_owned(),
                    e["eventType"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("etl".into(), "START"),
                ("etl.a".into(), "START"),
                ("etl.b".into(), "START"),
                ("etl.a".into(), "COMPLETE"),
                ("etl.b".into(), "FAIL"),
                ("etl".into(), "FAIL"),
            ]
        );
        let run_id = lineage.run_id("r1", None);
        for e in &events {
            let audit = &e["run"]["facets"]["cairn_audit"];
            assert_eq!(audit["checkpoint"]["seq"], 7);
            assert_eq!(audit["hash"].as_str().unwrap().len(), 64, "{e}");
            assert!(!e.to_string().contains("alice"));
        }
        assert_eq!(events[1]["run"]["facets"]["parent"]["run"]["runId"], run_id);
        for e in [&events[0], &events[1], &events[5]] {
            assert_eq!(
                e["run"]["facets"]["nominalTime"]["nominalStartTime"], "2026-12-07T01:00:00Z",
                "a scheduled run and its tasks carry its nominal time"
            );
        }
        let output = &events[3]["outputs"][0];
        assert_eq!(output["name"], "sha256:aa");
        assert_eq!(output["facets"]["tags"]["tags"][0]["key"], "pii");
        assert_eq!(
            events[4]["run"]["facets"]["errorMessage"]["message"],
            "boom"
        );
        // The run's version nibble says derived (8), and ids are stable.
        assert_eq!(run_id.get(14..15), Some("8"));
        assert_eq!(
            run_id,
            Lineage::new("cairn.local/audit/x".into(), "o".into()).run_id("r1", None)
        );
    }
}
