//! Traces, the pure part: spans per run, task and attempt, made from the
//! audit log's records and their recorded times, in the OpenTelemetry
//! CI/CD semantic conventions ([`SCHEMA_URL`]), and their OTLP protobuf
//! encoding (written here: the messages are few and small; a test decodes
//! them with the OpenTelemetry project's own Python bindings).
//!
//! Ids are derived, not drawn: the trace from the log's origin and the
//! run, each span from its run, task and attempt. A run that spans a
//! restart is one trace, whichever process exports which of its spans.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest as _, Sha256};

use crate::audit::record::{Event, Record};

/// The semantic conventions followed (CI/CD attributes as in 1.33 and
/// later; unchanged through 1.44).
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.44.0";

/// A span's kind (OTLP's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
}

/// One ended span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub kind: SpanKind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// Set for a failure or an error: the span's status is then ERROR
    /// with this message.
    pub error: Option<String>,
}

/// What a task's records said so far.
#[derive(Debug, Default)]
struct TaskSoFar {
    start_ns: Option<u64>,
    end_ns: Option<u64>,
    result: Option<&'static str>,
    /// Attempts under way: their start.
    attempts: BTreeMap<u32, u64>,
}

/// What a run's records said so far.
#[derive(Debug, Default)]
struct RunSoFar {
    workflow: String,
    start_ns: Option<u64>,
    tasks: BTreeMap<String, TaskSoFar>,
    /// The trace context its trigger came with: the run's trace is then
    /// that trace, its span a child of that span.
    remote: Option<TraceParent>,
}

/// Runs remembered as triggered with a trace context, not started yet, at
/// most.
const REMOTE_AT_MOST: usize = 100_000;

/// A W3C Trace Context `traceparent`: `00-<trace id>-<parent id>-<flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// Parse a `traceparent` header's value as W3C Trace Context level 1
    /// says a receiver should: version `00` exactly (a later version by its
    /// first four fields), lowercase hex, neither id all zeros. `None` for
    /// anything else (the header is then ignored, as the spec asks).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let version = text.get(..2)?;
        if !hex_lower(version) || version == "ff" || (version == "00" && text.len() != 55) {
            return None;
        }
        if text.len() < 55 || (text.len() > 55 && text.as_bytes().get(55) != Some(&b'-')) {
            return None;
        }
        let mut fields = text.get(3..55)?.split('-');
        let (trace, span, flags) = (fields.next()?, fields.next()?, fields.next()?);
        if text.as_bytes().get(2) != Some(&b'-')
            || trace.len() != 32
            || span.len() != 16
            || flags.len() != 2
            || ![trace, span, flags].into_iter().all(hex_lower)
        {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        unhex(trace, &mut trace_id)?;
        unhex(span, &mut span_id)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            crate::audit::log::hex(&self.trace_id),
            crate::audit::log::hex(&self.span_id),
            self.flags
        )
    }
}

fn hex_lower(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn unhex(text: &str, out: &mut [u8]) -> Option<()> {
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

/// Spans from records, for the log whose checkpoints name `origin`, the
/// service reached at `base_url`.
#[derive(Debug)]
pub struct Tracer {
    origin: String,
    base_url: String,
    runs: HashMap<String, RunSoFar>,
    /// Trace contexts of runs triggered, not started yet.
    remote: HashMap<String, TraceParent>,
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize().into()
}

fn first<const N: usize>(hash: &[u8; 32]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(hash.get(..N).unwrap_or(&[0; N]));
    out
}

/// The trace of run `run` of the log whose checkpoints name `origin`,
/// when the run came with no trace context.
#[must_use]
pub fn trace_of(origin: &str, run: &str) -> [u8; 16] {
    first(&digest(&["cairn trace", origin, run]))
}

/// The trace of run `run` of the log `origin`: the one its trigger's
/// trace context names (`remote`), or its own.
#[must_use]
pub fn run_trace(origin: &str, run: &str, remote: Option<&TraceParent>) -> [u8; 16] {
    remote.map_or_else(|| trace_of(origin, run), |r| r.trace_id)
}

/// The span of run `run` of the log `origin`; of its task, given one; of
/// an attempt of it, given that too.
#[must_use]
pub fn span_of(origin: &str, run: &str, task: Option<(&str, Option<u32>)>) -> [u8; 8] {
    let attempt = task.and_then(|(_, a)| a).map(|a| a.to_string());
    let parts: Vec<&str> = ["cairn span", origin, run]
        .into_iter()
        .chain(task.map(|(t, _)| t))
        .chain(attempt.as_deref())
        .collect();
    first(&digest(&parts))
}

/// The `traceparent` an attempt's HTTP requests carry: the run's trace
/// (`trace_id`) and the attempt's span, sampled.
#[must_use]
pub fn attempt_traceparent(
    origin: &str,
    trace_id: [u8; 16],
    run: &str,
    task: &str,
    attempt: u32,
) -> String {
    TraceParent {
        trace_id,
        span_id: span_of(origin, run, Some((task, Some(attempt)))),
        flags: 1,
    }
    .to_string()
}

/// Nanoseconds since the epoch of an RFC 3339 time.
fn nanos(time: &str) -> Option<u64> {
    let at: jiff::Timestamp = time.parse().ok()?;
    u64::try_from(at.as_nanosecond()).ok()
}

/// The CI/CD result of a task attempt's outcome.
fn task_result(outcome: &str) -> &'static str {
    match outcome {
        "success" => "success",
        "timeout" => "timeout",
        "cancelled" => "cancellation",
        _ => "failure",
    }
}

/// The CI/CD result of a run's end.
fn run_result(status: &str) -> &'static str {
    match status {
        "succeeded" => "success",
        "cancelled" => "cancellation",
        "error" => "error",
        _ => "failure",
    }
}

impl Tracer {
    /// A tracer that has seen nothing.
    #[must_use]
    pub fn new(origin: String, base_url: String) -> Self {
        Self {
            origin,
            base_url,
            runs: HashMap::new(),
            remote: HashMap::new(),
        }
    }

    /// The trace of run `run`: its trigger's, or its own.
    fn trace_of(&self, run: &str) -> [u8; 16] {
        let remote = self.runs.get(run).and_then(|r| r.remote.as_ref());
        run_trace(&self.origin, run, remote)
    }

    fn span_id(&self, run: &str, task: Option<(&str, Option<u32>)>) -> [u8; 8] {
        span_of(&self.origin, run, task)
    }

    /// Keep what record `record` (of a run of `workflow`) says, and
    /// return the spans it ends: an attempt's at its end; the run's and
    /// its tasks' when the run ends (not when it stops to wait for an
    /// approval: it goes on later, in the same spans).
    pub fn record(&mut self, record: &Record, workflow: &str) -> Vec<Span> {
        let run = &record.run;
        let Some(at) = nanos(&record.time) else {
            return Vec::new();
        };
        match &record.event {
            Event::Trigger {
                starts,
                traceparent: Some(traceparent),
                ..
            } => {
                if let Some(parent) = TraceParent::parse(traceparent)
                    && self.remote.len() < REMOTE_AT_MOST
                {
                    self.remote.insert(starts.clone(), parent);
                }
                Vec::new()
            }
            Event::RunStarted { workflow, .. } => {
                let remote = self.remote.remove(run);
                let so_far = self.runs.entry(run.clone()).or_default();
                so_far.workflow.clone_from(workflow);
                so_far.start_ns.get_or_insert(at);
                if remote.is_some() {
                    so_far.remote = remote;
                }
                Vec::new()
            }
            Event::TaskStarted { task, attempt, .. } => {
                let so_far = self.run(run, workflow);
                let t = so_far.tasks.entry(task.clone()).or_default();
                t.start_ns.get_or_insert(at);
                t.attempts.insert(*attempt, at);
                Vec::new()
            }
            Event::TaskFinished {
                task,
                attempt,
                outcome,
                detail,
                duration_ms,
                ..
            } => {
                let so_far = self.run(run, workflow);
                let workflow = so_far.workflow.clone();
                let t = so_far.tasks.entry(task.clone()).or_default();
                let start = t
                    .attempts
                    .remove(attempt)
                    .unwrap_or_else(|| at.saturating_sub(duration_ms.saturating_mul(1_000_000)));
                t.start_ns.get_or_insert(start);
                t.end_ns = Some(at);
                let result = task_result(outcome);
                t.result = Some(result);
                let span = Span {
                    trace_id: self.trace_of(run),
                    span_id: self.span_id(run, Some((task, Some(*attempt)))),
                    parent: Some(self.span_id(run, Some((task, None)))),
                    name: format!("{task} attempt {attempt}"),
                    kind: SpanKind::Internal,
                    start_ns: start,
                    end_ns: at,
                    attributes: vec![
                        ("cicd.pipeline.name", Value::Str(workflow)),
                        ("cicd.pipeline.run.id", Value::Str(run.clone())),
                        ("cicd.pipeline.task.name", Value::Str(task.clone())),
                        (
                            "cicd.pipeline.task.run.result",
                            Value::Str(result.to_owned()),
                        ),
                        ("cairn.task.attempt", Value::Int(i64::from(*attempt))),
                        ("cairn.task.outcome", Value::Str(outcome.clone())),
                    ],
                    error: (result != "success").then(|| format!("{outcome}: {detail}")),
                };
                vec![span]
            }
            Event::TaskSkipped { task, .. } | Event::CacheHit { task, .. } => {
                let result = if matches!(record.event, Event::CacheHit { .. }) {
                    "success"
                } else {
                    "skip"
                };
                let t = self
                    .run(run, workflow)
                    .tasks
                    .entry(task.clone())
                    .or_default();
                t.start_ns.get_or_insert(at);
                t.end_ns = Some(at);
                t.result = Some(result);
                Vec::new()
            }
            Event::RunFinished {
                status,
                duration_ms,
            } if status != "waiting" => {
                let Some(so_far) = self.runs.remove(run) else {
                    return Vec::new();
                };
                self.ended(run, so_far, status, at, *duration_ms)
            }
            _ => Vec::new(),
        }
    }

    fn run(&mut self, run: &str, workflow: &str) -> &mut RunSoFar {
        let so_far = self.runs.entry(run.to_owned()).or_default();
        if so_far.workflow.is_empty() {
            workflow.clone_into(&mut so_far.workflow);
        }
        so_far
    }

    /// The spans of run `run`, ended `status` at `at`.
    fn ended(
        &self,
        run: &str,
        so_far: RunSoFar,
        status: &str,
        at: u64,
        duration_ms: u64,
    ) -> Vec<Span> {
        let trace_id = run_trace(&self.origin, run, so_far.remote.as_ref());
        let run_span = self.span_id(run, None);
        // `cairn run` has no pages to link to.
        let url = (!self.base_url.is_empty()).then(|| format!("{}/ui/runs/{run}", self.base_url));
        let workflow = so_far.workflow;
        let mut spans = Vec::new();
        for (task, t) in so_far.tasks {
            let result = t.result.unwrap_or("cancellation");
            let start = t.start_ns.unwrap_or(at);
            let mut attributes = vec![
                ("cicd.pipeline.name", Value::Str(workflow.clone())),
                ("cicd.pipeline.run.id", Value::Str(run.to_owned())),
                ("cicd.pipeline.task.name", Value::Str(task.clone())),
                (
                    "cicd.pipeline.task.run.id",
                    Value::Str(format!("{run}/{task}")),
                ),
                (
                    "cicd.pipeline.task.run.result",
                    Value::Str(result.to_owned()),
                ),
            ];
            if let Some(url) = &url {
                attributes.push((
                    "cicd.pipeline.task.run.url.full",
                    Value::Str(format!("{url}#task-{task}")),
                ));
            }
            spans.push(Span {
                trace_id,
                span_id: self.span_id(run, Some((&task, None))),
                parent: Some(run_span),
                name: task.clone(),
                kind: SpanKind::Internal,
                start_ns: start,
                end_ns: t.end_ns.unwrap_or(at).max(start),
                attributes,
                error: matches!(result, "failure" | "error")
                    .then(|| format!("task {task}: {result}")),
            });
        }
        let result = run_result(status);
        let mut attributes = vec![
            ("cicd.pipeline.name", Value::Str(workflow.clone())),
            ("cicd.pipeline.run.id", Value::Str(run.to_owned())),
            ("cicd.pipeline.action.name", Value::Str("RUN".to_owned())),
            ("cicd.pipeline.result", Value::Str(result.to_owned())),
        ];
        if let Some(url) = url {
            attributes.push(("cicd.pipeline.run.url.full", Value::Str(url)));
        }
        let failed = matches!(result, "failure" | "error");
        if failed {
            attributes.push(("error.type", Value::Str(status.to_owned())));
        }
        let start = so_far
            .start_ns
            .unwrap_or_else(|| at.saturating_sub(duration_ms.saturating_mul(1_000_000)));
        spans.push(Span {
            trace_id,
            span_id: run_span,
            // A child of the span its trigger came from, if any.
            parent: so_far.remote.map(|r| r.span_id),
            name: format!("RUN {workflow}"),
            kind: SpanKind::Server,
            start_ns: start,
            end_ns: at.max(start),
            attributes,
            error: failed.then(|| format!("run {status}")),
        });
        spans
    }
}

/// Protobuf, as much of it as OTLP's trace messages need.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    pub fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, (u64::from(field) << 3) | u64::from(wire));
    }

    pub fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
        key(out, field, 2);
        varint(out, data.len() as u64);
        out.extend_from_slice(data);
    }

    pub fn string(out: &mut Vec<u8>, field: u32, text: &str) {
        bytes(out, field, text.as_bytes());
    }

    pub fn uint(out: &mut Vec<u8>, field: u32, n: u64) {
        key(out, field, 0);
        varint(out, n);
    }

    pub fn fixed64(out: &mut Vec<u8>, field: u32, n: u64) {
        key(out, field, 1);
        out.extend_from_slice(&n.to_le_bytes());
    }

    /// A nested message built by `build`.
    pub fn message(out: &mut Vec<u8>, field: u32, build: impl FnOnce(&mut Vec<u8>)) {
        let mut inner = Vec::new();
        build(&mut inner);
        bytes(out, field, &inner);
    }
}

/// `KeyValue { key = 1, value = 2: AnyValue { string = 1 | int = 3 } }`.
fn attribute(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    pb::message(out, field, |kv| {
        pb::string(kv, 1, key);
        pb::message(kv, 2, |any| match value {
            Value::Str(s) => pb::string(any, 1, s),
            Value::Int(n) => pb::uint(any, 3, n.cast_unsigned()),
        });
    });
}

/// An `ExportTraceServiceRequest` of `spans`, with the resource
/// attributes `resource`, in protobuf.
#[must_use]
pub fn export_request(spans: &[Span], resource: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    // resource_spans = 1
    pb::message(&mut out, 1, |rs| {
        // resource = 1 { attributes = 1 }
        pb::message(rs, 1, |r| {
            for (k, v) in resource {
                attribute(r, 1, k, &Value::Str(v.clone()));
            }
        });
        // scope_spans = 2 { scope = 1, spans = 2, schema_url = 3 }
        pb::message(rs, 2, |ss| {
            pb::message(ss, 1, |scope| {
                pb::string(scope, 1, "cairn");
                pb::string(scope, 2, env!("CARGO_PKG_VERSION"));
            });
            for span in spans {
                pb::message(ss, 2, |s| encode_span(s, span));
            }
            pb::string(ss, 3, SCHEMA_URL);
        });
        pb::string(rs, 3, SCHEMA_URL);
    });
    out
}

fn encode_span(out: &mut Vec<u8>, span: &Span) {
    pb::bytes(out, 1, &span.trace_id);
    pb::bytes(out, 2, &span.span_id);
    if let Some(parent) = &span.parent {
        pb::bytes(out, 4, parent);
    }
    pb::string(out, 5, &span.name);
    pb::uint(out, 6, span.kind as u64);
    pb::fixed64(out, 7, span.start_ns);
    pb::fixed64(out, 8, span.end_ns);
    for (k, v) in &span.attributes {
        attribute(out, 9, k, v);
    }
    // status = 15 { message = 2, code = 3 (1 ok, 2 error) }; unset on success.
    if let Some(message) = &span.error {
        pb::message(out, 15, |st| {
            pb::string(st, 2, message);
            pb::uint(st, 3, 2);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, time: &str, event: Event) -> Record {
        Record {
            v: 1,
            seq,
            time: time.to_owned(),
            run: "r1".to_owned(),
            prev: String::new(),
            event,
        }
    }

    /// A run of `etl` starts, by trigger record `trigger`.
    fn run_started(trigger: Option<u64>) -> Event {
        Event::RunStarted {
            user: "alice".into(),
            workflow: "etl".into(),
            manifest: crate::audit::record::FileDigest {
                path: "w".into(),
                sha256: String::new(),
            },
            source: String::new(),
            policy_set: String::new(),
            parameters: BTreeMap::new(),
            components: BTreeMap::new(),
            cairn: String::new(),
            trigger,
        }
    }

    #[test]
    fn a_traceparent_is_taken_as_w3c_says_and_a_run_joins_its_trace() {
        let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::parse(given).unwrap();
        assert_eq!(parent.to_string(), given);
        assert_eq!(parent.flags, 1);
        // A later version is read by its first four fields.
        assert!(TraceParent::parse(&format!("01{}-extra", &given[2..])).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }

        let mut tracer = Tracer::new("o".into(), String::new());
        let trigger = Event::Trigger {
            via: "api".into(),
            workflow: "etl".into(),
            starts: "r9".into(),
            user: "alice".into(),
            token: "t".into(),
            parameters: BTreeMap::new(),
            access: 0,
            source: None,
            cause: None,
            body: None,
            nominal: None,
            traceparent: Some(given.into()),
        };
        tracer.record(&record(0, "2026-12-04T10:00:00Z", trigger), "");
        let mut started = record(1, "2026-12-04T10:00:01Z", run_started(Some(0)));
        started.run = "r9".into();
        tracer.record(&started, "etl");
        let mut end = record(
            2,
            "2026-12-04T10:00:02Z",
            Event::RunFinished {
                status: "succeeded".into(),
                duration_ms: 1000,
            },
        );
        end.run = "r9".into();
        let spans = tracer.record(&end, "etl");
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].trace_id, parent.trace_id, "the caller's trace");
        assert_eq!(
            spans[0].parent,
            Some(parent.span_id),
            "under the caller's span"
        );
        assert!(
            !spans[0]
                .attributes
                .iter()
                .any(|(k, _)| k.ends_with("url.full")),
            "no page to link to without a base URL"
        );
    }

    #[test]
    fn a_run_retried_makes_one_trace_with_attempts_under_their_task() {
        let mut tracer = Tracer::new("cairn.local/audit/x".into(), "http://h".into());
        let started = run_started(None);
        let task_started = |attempt| Event::TaskStarted {
            task: "load".into(),
            attempt,
            component: crate::audit::record::FileDigest {
                path: "c".into(),
                sha256: String::new(),
            },
            inputs: vec![],
            when: "success".into(),
            mounts: Vec::new(),
        };
        let finished = |attempt, outcome: &str| Event::TaskFinished {
            task: "load".into(),
            attempt,
            outcome: outcome.into(),
            detail: "d".into(),
            exit_status: None,
            duration_ms: 5,
            outputs: vec![],
        };
        assert!(
            tracer
                .record(&record(0, "2026-12-04T10:00:00Z", started), "etl")
                .is_empty()
        );
        tracer.record(&record(1, "2026-12-04T10:00:01Z", task_started(1)), "etl");
        let first = tracer.record(
            &record(2, "2026-12-04T10:00:02Z", finished(1, "failure")),
            "etl",
        );
        // A new tracer (a restart) goes on with the same ids.
        let mut again = Tracer::new("cairn.local/audit/x".into(), "http://h".into());
        again.record(&record(3, "2026-12-04T10:00:03Z", task_started(2)), "etl");
        let second = again.record(
            &record(4, "2026-12-04T10:00:04Z", finished(2, "success")),
            "etl",
        );
        let end = Event::RunFinished {
            status: "succeeded".into(),
            duration_ms: 5000,
        };
        let last = again.record(&record(5, "2026-12-04T10:00:05Z", end), "etl");
        assert_eq!(last.len(), 2, "the task's span and the run's");
        let run_span = last.iter().find(|s| s.parent.is_none()).unwrap();
        let task_span = last.iter().find(|s| s.parent.is_some()).unwrap();
        assert_eq!(run_span.name, "RUN etl");
        assert_eq!(task_span.parent, Some(run_span.span_id));
        assert_eq!(first[0].parent, Some(task_span.span_id));
        assert_eq!(second[0].parent, Some(task_span.span_id));
        assert_ne!(first[0].span_id, second[0].span_id);
        assert!(first[0].error.is_some() && second[0].error.is_none());
        for span in first.iter().chain(&second).chain(&last) {
            assert_eq!(span.trace_id, run_span.trace_id);
        }
        // The run's start is known from its duration after the restart.
        assert_eq!(run_span.end_ns - run_span.start_ns, 5_000_000_000);
        assert!(!export_request(&last, &[]).is_empty());
    }
}
