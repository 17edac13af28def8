//! Audit records, version 1: what each event says and how it is encoded.
//!
//! A record is one line of JSON (UTF-8, no newline inside, `\n` after),
//! its fields in a fixed order: `v` (1), `seq` (0, 1, 2... across the whole
//! log), `time` (RFC 3339, UTC, microseconds), `run` (the run's id, `""`
//! for records about the log itself), `prev` (hex SHA-256 of the previous
//! line's bytes, 64 zeros for the first), `kind`, then the kind's fields.
//! The bytes as written are what is hashed and signed; readers never
//! re-encode them. This is the only place records are encoded: never the
//! `Debug` form of an internal type. The README's "Audit log" documents it.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The record format version.
pub const VERSION: u32 = 1;

/// A file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// The path as the manifest names it.
    pub path: String,
    /// `sha256:<hex>`.
    pub sha256: String,
}

/// The entities of a policy set, in Cedar's JSON entities format: as
/// rendered for a new record (written as is, never built up as a JSON
/// tree: a run of 100,000 tasks has as many entities), or as read back.
#[derive(Debug, Clone)]
pub enum EntitiesJson {
    /// Rendered: one line of JSON text.
    Rendered(Box<serde_json::value::RawValue>),
    /// Read from a record.
    Parsed(serde_json::Value),
}

impl EntitiesJson {
    /// Render compact JSON text `json` (no newline outside strings).
    ///
    /// # Errors
    ///
    /// `json` is not JSON.
    pub fn rendered(json: String) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(json).map(Self::Rendered)
    }

    /// The entities as a JSON value.
    ///
    /// # Errors
    ///
    /// Never for entities that were rendered from JSON.
    pub fn value(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Self::Rendered(raw) => serde_json::from_str(raw.get()),
            Self::Parsed(value) => Ok(value.clone()),
        }
    }

    /// Indented JSON text, for people.
    #[must_use]
    pub fn pretty(&self) -> String {
        match self.value() {
            Ok(value) => format!("{value:#}"),
            Err(_) => self.to_string(),
        }
    }
}

impl std::fmt::Display for EntitiesJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rendered(raw) => f.write_str(raw.get()),
            Self::Parsed(value) => write!(f, "{value}"),
        }
    }
}

impl PartialEq for EntitiesJson {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Rendered(a), Self::Rendered(b)) => a.get() == b.get(),
            _ => self.value().ok() == other.value().ok(),
        }
    }
}

impl Serialize for EntitiesJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Rendered(raw) => raw.serialize(serializer),
            Self::Parsed(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for EntitiesJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(Self::Parsed)
    }
}

/// A policy file and its text, so decisions can be re-evaluated offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFile {
    /// The file name (policy IDs without `@id` are `NAME#N`).
    pub path: String,
    /// `sha256:<hex>` of the text.
    pub sha256: String,
    /// The text.
    pub text: String,
}

/// A task input or output: name, digest, size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// The input or output name.
    pub name: String,
    /// `sha256:<hex>`.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// A directory mounted into a task, as the attempt started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountDigest {
    /// The path in the guest.
    pub guest: String,
    /// The host directory as the manifest names it (relative to it).
    pub host: String,
    /// `ro` or `rw`.
    pub mode: String,
    /// The in-toto `dirHash` (lowercase hex) of the regular files it held
    /// (`crate::dirhash`).
    pub dir_hash: String,
    /// How many files, and their bytes.
    pub files: u64,
    pub bytes: u64,
}

/// What happened. Field order is the encoding's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// The first record of a log: its id and the checkpoint origin.
    LogOpened { log: String, origin: String },
    /// On opening, the log ended in a partial record (a crash mid-write).
    /// Its bytes were moved to `saved_as` beside the log, not dropped.
    TornTail {
        offset: u64,
        bytes: u64,
        sha256: String,
        saved_as: String,
    },
    /// A run began.
    RunStarted {
        user: String,
        workflow: String,
        manifest: FileDigest,
        /// The manifest's text, so the log alone says what ran.
        source: String,
        /// `sha256:` of the policy set (see [`Event::PolicySet`]).
        policy_set: String,
        /// The run parameters' values (`cairn run --param`, or defaults).
        parameters: BTreeMap<String, String>,
        /// Each task's component digest (`sha256:<hex>`), by task name.
        components: BTreeMap<String, String>,
        cairn: String,
        /// The `trigger` record that started it (runs the service starts;
        /// absent for `cairn run`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<u64>,
    },
    /// An interrupted run (killed, cancelled, or ended in `error`) goes on
    /// (`cairn resume`). A `policy-set` and the preflight decisions the
    /// rest of the run is authorized by follow; tasks in `kept` were
    /// recorded complete before and do not run again.
    RunResumed {
        /// How the run had ended: `interrupted` (no `run-finished`:
        /// killed or crashed), `cancelled` or `error`.
        after: String,
        manifest: FileDigest,
        /// The manifest's text, when it changed since the run started.
        source: Option<String>,
        policy_set: String,
        components: BTreeMap<String, String>,
        /// What changed since the run started (resumed anyway, as told).
        changed: Vec<String>,
        /// Tasks recorded complete, not run again.
        kept: Vec<String>,
        cairn: String,
    },
    /// The policies and entities the run's decisions were made with.
    PolicySet {
        sha256: String,
        files: Vec<PolicyFile>,
        /// Cedar's JSON entities format.
        entities: EntitiesJson,
    },
    /// One authorization request and its decision.
    Decision {
        /// `preflight` or `runtime`.
        phase: String,
        task: String,
        action: String,
        principal: serde_json::Value,
        resource: serde_json::Value,
        context: serde_json::Value,
        /// `allow` or `deny`.
        decision: String,
        policies: Vec<String>,
        errors: Vec<String>,
    },
    /// The service (`cairn serve`) serves a workflow, newly or as changed:
    /// its manifest, and the policy set its requests are decided by (the
    /// `policy-set` record after this one, also outside any run).
    WorkflowLoaded {
        workflow: String,
        manifest: FileDigest,
        source: String,
        policy_set: String,
    },
    /// One request to the service and its decision, before it takes
    /// effect: who (from the token), the action, on what, decided by the
    /// recorded `policy_set`. `token` is the API token's id (never the
    /// token), `""` for the service's own requests (a schedule's tick).
    Access {
        token: String,
        workflow: String,
        action: String,
        principal: serde_json::Value,
        resource: serde_json::Value,
        context: serde_json::Value,
        /// `allow` or `deny`.
        decision: String,
        policies: Vec<String>,
        errors: Vec<String>,
        policy_set: String,
    },
    /// Something starts run `starts` of `workflow` as `user`: an API call
    /// (`via` `api`, with its token's id), allowed by the `access` record
    /// `access`. The run's `run-started` names this record.
    /// A schedule's (`via` `schedule`) or webhook's (`via` `webhook`)
    /// names it as `source` and its `tick` or `delivery` record as
    /// `cause`; a webhook's gives the run the delivery's `body` (in the
    /// artifact store, by digest).
    Trigger {
        via: String,
        workflow: String,
        starts: String,
        user: String,
        token: String,
        parameters: BTreeMap<String, String>,
        access: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Artifact>,
        /// A scheduled or backfilled run's nominal time (UTC).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nominal: Option<String>,
        /// The W3C trace context (`traceparent`) the request that started
        /// it came with: the run's trace joins that trace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traceparent: Option<String>,
    },
    /// Backfill `backfill` of schedule `schedule` of `workflow` begins, by
    /// `user` (token `token`), allowed by record `access` (a `trigger`
    /// with `via` `backfill`): its range (`from`, `to`, UTC), `reprocess`
    /// (`missing`, `failed`, `all`), `max_active`, and the nominal times
    /// it covers, in order. Each gets a `trigger` (`via` `backfill`,
    /// `cause` this record) or a `backfill-skipped`.
    BackfillStarted {
        backfill: String,
        workflow: String,
        schedule: String,
        user: String,
        token: String,
        access: u64,
        from: String,
        to: String,
        reprocess: String,
        max_active: u32,
        nominal: Vec<String>,
    },
    /// Nominal time `nominal` of backfill `backfill` starts no run: `why`
    /// `exists` (a run of it exists: `runs`, as `reprocess` counts them),
    /// `active` (one is still going), `not-started` (`detail` says why:
    /// a parameter, a component, a policy).
    BackfillSkipped {
        backfill: String,
        nominal: String,
        why: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        runs: Vec<String>,
    },
    /// Backfill `backfill` ends: `result` `done` (every nominal time has
    /// its trigger or skip) or `cancelled` (by `user`, token `token`,
    /// allowed by record `access`; the nominal times not reached start
    /// nothing, its active runs are cancelled).
    BackfillEnded {
        backfill: String,
        result: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<u64>,
    },
    /// A delivery to webhook `webhook` of `workflow`, `id` as the sender
    /// gave it, signed by `scheme`: `result` `accepted` (it starts run
    /// `starts` as `user`, allowed by record `access`), `duplicate` (a
    /// delivery already accepted: `starts` is its run; nothing new
    /// starts), or why it was refused (`malformed`, `stale`,
    /// `bad-signature`, `no-key`, `denied`), with `detail`. `key` is the
    /// id of the key that signed it; `sha256` and `bytes` its body's.
    Delivery {
        workflow: String,
        webhook: String,
        id: String,
        scheme: String,
        user: String,
        result: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        sha256: String,
        bytes: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starts: Option<String>,
    },
    /// Delivery `attempt` (1, 2, ...) of the notification
    /// `[notifications.NAME]` (`notification`) of `workflow` about event
    /// `event` (the CloudEvent's id; `event_type` its type) to `endpoint`
    /// (`host:port`), allowed by record `access` (a `notify` decision),
    /// its body's digest `sha256`: `result` `delivered` (a 2xx answer,
    /// `status`), `failed` (no answer or a 408, 429 or 5xx: tried again
    /// after a backoff, unless `detail` says it gave up), `refused` (any
    /// other answer: not tried again), `denied` (by policy: nothing sent;
    /// `access` is the denial) or `no-key` (its secret is missing or not a
    /// Standard Webhooks key: nothing sent).
    Notification {
        workflow: String,
        notification: String,
        event: String,
        event_type: String,
        endpoint: String,
        attempt: u32,
        result: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        access: u64,
        sha256: String,
    },
    /// A tick of schedule `schedule` of `workflow`: the instant it stands
    /// for (`nominal`, UTC), that instant on the schedule's wall clock
    /// (`local`, with offset and zone), when it was handled (`actual`),
    /// the tz database version (`tzdb`). `decision` `run`: it starts run
    /// `starts` as `user`, allowed by record `access`. `skip`: no run,
    /// `why` (`paused`, `overlap`, `outside-catch-up-window`,
    /// `catch-up-none`, `superseded`, `dst-gap`, `denied` (then `access`
    /// is the denial), `not-started`, `exists` (a backfill ran, or is
    /// starting, its nominal time)) and `detail`; a skip may stand for
    /// every tick up to `through` (`count` of them, when counted).
    /// `dst_gap` names the wall times of a DST gap the tick stands for.
    Tick {
        workflow: String,
        schedule: String,
        user: String,
        nominal: String,
        local: String,
        actual: String,
        tzdb: String,
        decision: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        through: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dst_gap: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starts: Option<String>,
    },
    /// Schedule `schedule` of `workflow` paused (`paused` true) or
    /// resumed by `user` (token `token`), allowed by record `access`.
    Pause {
        workflow: String,
        schedule: String,
        paused: bool,
        user: String,
        token: String,
        access: u64,
    },
    /// A data edge: an upstream output handed to a task's input.
    DataFlow {
        from: String,
        task: String,
        input: String,
        sha256: String,
        labels: Vec<String>,
    },
    /// A task attempt began.
    TaskStarted {
        task: String,
        attempt: u32,
        component: FileDigest,
        inputs: Vec<Artifact>,
        /// `success`, `failure` or `always`: why it ran.
        when: String,
        /// What its mounts held as it started (absent in logs from before
        /// Cairn recorded it, and for tasks without mounts).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mounts: Vec<MountDigest>,
    },
    /// A secret was released to a task (its name; never its value).
    SecretRead {
        task: String,
        attempt: u32,
        name: String,
    },
    /// An HTTP request a task made, allowed or denied, once it ended. Never
    /// headers or bodies; secrets the task read are masked in `path`. A sent
    /// request follows the runtime `connect` decision that allowed it.
    HttpRequest {
        task: String,
        attempt: u32,
        method: String,
        scheme: String,
        host: String,
        port: u16,
        /// Path and query.
        path: String,
        /// Whether it was sent.
        allowed: bool,
        /// Why it was denied, or why it failed after it was sent.
        reason: Option<String>,
        /// The response status, if one arrived.
        status: Option<u16>,
        /// Body bytes sent and received.
        sent_bytes: u64,
        received_bytes: u64,
        /// Secrets the host wrote into the request (names).
        injected: Vec<String>,
        /// Secrets whose placeholder went out as is (policy did not allow them).
        withheld: Vec<String>,
        duration_ms: u64,
    },
    /// A task attempt ended.
    TaskFinished {
        task: String,
        attempt: u32,
        /// `Outcome::kind`: `success`, `trap`, `timeout`...
        outcome: String,
        detail: String,
        /// A command's exit status (0 for success) when its own exit
        /// decided the outcome; absent for Cairn tasks and for commands
        /// stopped by a trap or a limit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_status: Option<i32>,
        duration_ms: u64,
        outputs: Vec<Artifact>,
    },
    /// An attempt failed in a way worth retrying; the next follows `delay_ms`.
    Retry {
        task: String,
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    /// A task did not run.
    TaskSkipped { task: String, reason: String },
    /// A `cache = true` task did not run: an earlier successful attempt
    /// with the same cache key (component, inputs, args, env and declared
    /// capabilities) made these outputs, which it reuses.
    CacheHit {
        task: String,
        /// `sha256:` of the key's canonical JSON.
        key: String,
        /// The run and attempt that made the outputs.
        from_run: String,
        from_attempt: u32,
        outputs: Vec<Artifact>,
    },
    /// An approval gate opened: the tasks in `gated` start only once
    /// `required` distinct people (never the run's starter) whom policy
    /// allows approve what `bound` names. A resumed run whose gate would
    /// bind something else opens it again, with the new `bound`: approvals
    /// of the old one no longer count.
    GateOpened {
        task: String,
        required: u32,
        /// The tasks the gate lets through.
        gated: Vec<String>,
        /// `sha256:` over what the approval covers: the manifest, the
        /// policy set, the gated tasks' component digests, the run's
        /// parameters and the digests of the gated tasks' inputs.
        bound: String,
        /// What `bound` is the digest of (its canonical JSON).
        covers: serde_json::Value,
        /// When the gate times out (RFC 3339), if it does; a reopened gate
        /// keeps the first deadline.
        deadline: Option<String>,
        /// What a timeout means: `fail` or `skip`.
        on_timeout: String,
    },
    /// Someone approved or rejected a gate (`cairn approve`, `cairn
    /// reject`, or the service's API): the `approve` request as decided,
    /// and whether it counts. One that does not count (`refused` says
    /// why) changes nothing.
    Approval {
        task: String,
        /// `approve` or `reject`.
        verdict: String,
        approver: String,
        /// `sha256:` of the comment's text (the text is not kept here).
        comment_sha256: Option<String>,
        /// The `bound` the approver approved.
        bound: String,
        /// The `approve` request, as Cedar decided it.
        principal: serde_json::Value,
        resource: serde_json::Value,
        context: serde_json::Value,
        decision: String,
        policies: Vec<String>,
        errors: Vec<String>,
        /// Whether it counts towards (or, for a rejection, ends) the gate.
        counted: bool,
        /// Why it does not count.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<String>,
    },
    /// A gate closed: `approved` (with who counted), `rejected` (by
    /// `by`), or `timed-out` (ending as `on_timeout` says).
    GateClosed {
        task: String,
        result: String,
        /// The approvers who counted, or the rejecter.
        by: Vec<String>,
    },
    /// A fan-out over an upstream output (`for_each = "list.regions"`)
    /// read that output: the tasks it expanded to, in order, or why it
    /// could not expand (the template then fails; nothing of it runs).
    /// When it expanded, the `policy-set` with the expanded tasks'
    /// entities and their decisions (phase `expansion`) come before it.
    Expansion {
        /// The template task.
        task: String,
        /// What it fans out over: `task.output`.
        source: String,
        /// The digest of that output, as the run recorded it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        /// How many tasks it expanded to.
        count: usize,
        /// Their keys (`task[KEY]`), when not their indices `0..count`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keys: Option<Vec<String>>,
        /// Why it did not expand.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A run ended: `succeeded`, `failed`, `refused` (by policy),
    /// `cancelled` (Ctrl-C), `error` (Cairn could not go on) or `waiting`
    /// (stopped at an approval gate, to go on with `cairn resume`).
    RunFinished { status: String, duration_ms: u64 },
    /// A signed checkpoint of every record before this one.
    Checkpoint {
        size: u64,
        /// Base64 root hash.
        root: String,
        /// The C2SP signed note.
        note: String,
    },
}

impl Event {
    /// The `kind` tag.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LogOpened { .. } => "log-opened",
            Self::TornTail { .. } => "torn-tail",
            Self::RunStarted { .. } => "run-started",
            Self::RunResumed { .. } => "run-resumed",
            Self::PolicySet { .. } => "policy-set",
            Self::Decision { .. } => "decision",
            Self::WorkflowLoaded { .. } => "workflow-loaded",
            Self::Access { .. } => "access",
            Self::Trigger { .. } => "trigger",
            Self::Tick { .. } => "tick",
            Self::Delivery { .. } => "delivery",
            Self::Notification { .. } => "notification",
            Self::Pause { .. } => "pause",
            Self::BackfillStarted { .. } => "backfill-started",
            Self::BackfillSkipped { .. } => "backfill-skipped",
            Self::BackfillEnded { .. } => "backfill-ended",
            Self::DataFlow { .. } => "data-flow",
            Self::TaskStarted { .. } => "task-started",
            Self::SecretRead { .. } => "secret-read",
            Self::HttpRequest { .. } => "http-request",
            Self::TaskFinished { .. } => "task-finished",
            Self::Retry { .. } => "retry",
            Self::TaskSkipped { .. } => "task-skipped",
            Self::CacheHit { .. } => "cache-hit",
            Self::GateOpened { .. } => "gate-opened",
            Self::Approval { .. } => "approval",
            Self::GateClosed { .. } => "gate-closed",
            Self::Expansion { .. } => "expansion",
            Self::RunFinished { .. } => "run-finished",
            Self::Checkpoint { .. } => "checkpoint",
        }
    }
}

/// The records of the log bytes `bytes` that parse, in order. A line that
/// does not (a torn tail) is passed over: what must account for every
/// line is `audit::verify`'s.
pub fn records(bytes: &[u8]) -> impl Iterator<Item = Record> + '_ {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
}

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    pub seq: u64,
    pub time: String,
    pub run: String,
    pub prev: String,
    #[serde(flatten)]
    pub event: Event,
}

impl Record {
    /// The record's line, without the newline: the fields, then `hash`,
    /// the hex SHA-256 of the line as it would be without `hash`.
    ///
    /// # Errors
    ///
    /// Never in practice (every field is plain data).
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut line = serde_json::to_vec(self)?;
        let digest = Sha256::digest(&line);
        line.pop();
        line.extend_from_slice(HASH_FIELD);
        line.extend_from_slice(super::log::hex(&digest).as_bytes());
        line.extend_from_slice(b"\"}");
        Ok(line)
    }

    /// Parse one line, and tell whether its bytes match its own `hash`.
    ///
    /// # Errors
    ///
    /// Not JSON, or not a record of a known kind.
    pub fn decode(line: &[u8]) -> Result<(Self, bool), serde_json::Error> {
        let record = serde_json::from_slice(line)?;
        Ok((record, self_hash_matches(line)))
    }
}

/// The field every record ends with.
const HASH_FIELD: &[u8] = b",\"hash\":\"";

/// Whether `line` ends with the `hash` of the rest of it.
fn self_hash_matches(line: &[u8]) -> bool {
    let Some(body) = line.strip_suffix(b"\"}") else {
        return false;
    };
    let Some(split) = body.len().checked_sub(64 + HASH_FIELD.len()) else {
        return false;
    };
    let (head, tail) = body.split_at(split);
    let Some(claimed) = tail.strip_prefix(HASH_FIELD) else {
        return false;
    };
    let mut unhashed = head.to_vec();
    unhashed.push(b'}');
    super::log::hex(&Sha256::digest(&unhashed)).as_bytes() == claimed
}

/// `time` as RFC 3339 in UTC with microseconds: `2026-11-22T19:43:30.123456Z`.
#[must_use]
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days.cast_signed() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_are_rfc_3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::new(1_795_376_610, 123_456_789);
        assert_eq!(rfc3339(t), "2026-11-22T19:43:30.123456Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn the_encoding_is_fixed_and_round_trips() {
        let record = Record {
            v: VERSION,
            seq: 7,
            time: "2026-11-22T19:43:30.123456Z".into(),
            run: "r1".into(),
            prev: "00".into(),
            event: Event::SecretRead {
                task: "deploy".into(),
                attempt: 1,
                name: "token".into(),
            },
        };
        let line = record.encode().unwrap();
        let body = r#"{"v":1,"seq":7,"time":"2026-11-22T19:43:30.123456Z","run":"r1","prev":"00","kind":"secret-read","task":"deploy","attempt":1,"name":"token"}"#;
        let hash = super::super::log::hex(&Sha256::digest(body.as_bytes()));
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1])
        );
        assert_eq!(Record::decode(&line).unwrap(), (record, true));
        let mut changed = line.clone();
        changed[40] ^= 1;
        assert!(!Record::decode(&changed).map_or(true, |(_, ok)| ok));
        assert!(Record::decode(br#"{"v":1,"kind":"nonsense"}"#).is_err());
    }
}
