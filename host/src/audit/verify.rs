//! Offline verification of an audit log with only the public key.
//!
//! Reads every record once, in order, and checks: each line is a v1 record;
//! sequence numbers run 0, 1, 2... and each `prev` is the hash of the line
//! before (so a changed, dropped, duplicated or moved record is named);
//! every checkpoint's signature, origin, size and Merkle root, and the
//! consistency of each checkpoint with the one before; that every record is
//! covered by a signed checkpoint; that every task start follows an allow
//! of its `run` and every secret read an allow of its `read_secret`; every
//! recorded digest against the artifacts that are present; and every
//! recorded Cedar decision, decided again against the run's recorded
//! policy set and entities; and, for the service, every request decision
//! against the policy set its `workflow-loaded` recorded, and that each
//! run the service started names a `trigger` allowed before it; and that
//! every task after an approval gate (as the run's recorded manifest says)
//! started only after the gate closed `approved`, with the required number
//! of counted approvals by distinct people other than the starter, each
//! allowed and of the gate's bound, the bound the digest of what the gate
//! covers, and the task started with the component and inputs covered.
//! Never writes anything.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest as _, Sha256};

use super::log::hex;
use super::merkle::{Hash, Stored, Tree, leaf_hash, verify_consistency};
use super::note::{Verifier, parse_checkpoint};
use super::record::{Artifact, Event, Record, VERSION};
use crate::policy::{Policies, reevaluate};

/// One thing found wrong, at a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The record's position in the log (0-based; equals its `seq` when
    /// the log is intact).
    pub record: u64,
    /// Which check: `format`, `integrity`, `sequence`, `chain`, `signature`, `root`,
    /// `consistency`, `coverage`, `truncation`, `authorization`, `decision`, `digest`,
    /// `policy-set`.
    pub check: &'static str,
    /// What is wrong.
    pub message: String,
}

/// What verification found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Records read.
    pub records: u64,
    /// Signed checkpoints that verified.
    pub checkpoints: u64,
    /// Successive checkpoint pairs shown consistent.
    pub consistent_pairs: u64,
    /// Runs seen.
    pub runs: u64,
    /// Decisions decided again, and how many agreed.
    pub decisions: u64,
    /// Task starts and secret reads matched to an allow.
    pub authorized: u64,
    /// Digests checked against artifacts present, and those absent.
    pub digests_checked: u64,
    /// Digests whose artifacts were not present (not an error).
    pub digests_absent: u64,
    /// Torn tails the log recorded (crashes mid-write; not an error).
    pub torn_tails: u64,
    /// Everything wrong, in log order.
    pub problems: Vec<Problem>,
    /// The log's origin (its `log-opened` record): the key name its
    /// checkpoints are signed under.
    pub origin: Option<String>,
}

impl Report {
    /// Whether everything checked out.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The first bad record.
    #[must_use]
    pub fn first(&self) -> Option<&Problem> {
        self.problems.first()
    }
}

/// Where artifacts may be found, by digest: `DIR/sha256/<hex>`.
#[derive(Debug, Clone, Default)]
pub struct Artifacts {
    dirs: Vec<PathBuf>,
}

impl Artifacts {
    /// Look in these content-addressed stores.
    #[must_use]
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// Where the artifact of `digest` (`sha256:<hex>`) is, if in a store;
    /// `None` for anything that is not such a digest.
    #[must_use]
    pub fn find(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.dirs
            .iter()
            .map(|d| d.join("sha256").join(hex))
            .find(|p| p.is_file())
    }
}

/// The digest form used in records.
#[must_use]
pub fn sha256_tag(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

struct Run {
    /// Who started it: never an approver of its gates.
    starter: String,
    /// Its parameters (fan-outs expand with them).
    params: std::collections::BTreeMap<String, String>,
    /// Per task, the approval gates it waits for, and per gate the
    /// approvals it requires, as the run's recorded manifest says.
    gated: HashMap<String, Vec<String>>,
    required: HashMap<String, u32>,
    /// The run's gates, as their records tell.
    gates: HashMap<String, GateCheck>,
    policy_set: String,
    policies: Option<Arc<(Policies, cedar_policy::Entities)>>,
    /// (task, action, resource id) allowed so far.
    allowed: HashSet<(String, String, String)>,
    /// Fan-outs over an output in the recorded manifest: template →
    /// `task.output`.
    fan_outs: HashMap<String, String>,
    /// The templates expanded since the run started or resumed.
    expanded: HashSet<String>,
    /// Each expanded task's template.
    fanned: HashMap<String, String>,
    /// `task.output` → digest, as the run's tasks recorded them.
    outputs: HashMap<String, String>,
}

/// An approval gate of a run, as its records tell.
#[derive(Default)]
struct GateCheck {
    bound: String,
    covers: serde_json::Value,
    deadline: bool,
    /// Distinct approvers whose approval of `bound` counted.
    approvers: Vec<String>,
    rejecter: Option<String>,
    /// How it closed, if it did.
    closed: Option<String>,
}

/// What verify needs of a recorded manifest's plan.
#[derive(Default)]
pub(crate) struct Gates {
    /// Per task, the gates it waits for.
    pub(crate) gated: HashMap<String, Vec<String>>,
    /// Per gate, the approvals it requires.
    pub(crate) required: HashMap<String, u32>,
    /// Per fan-out over an output, what it fans out over (`task.output`).
    pub(crate) fan_outs: HashMap<String, String>,
}

/// The gates of the manifest `source` in a run with parameters `params`
/// (fan-outs expanded): per task the gates it waits for, and per gate the
/// approvals it requires (empty if it does not plan). `Err` when its
/// fan-outs would expand past a run's limits (a run never had such a plan).
pub(crate) fn gates_of(
    source: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<Gates, String> {
    let mut gated: HashMap<String, Vec<String>> = HashMap::new();
    let mut required = HashMap::new();
    let mut fan_outs = HashMap::new();
    let Ok(plan) = crate::manifest::parse(source).and_then(|m| crate::plan::Plan::new(&m)) else {
        return Ok(Gates::default());
    };
    plan.check_expansion(params)?;
    let plan = plan.with_params(params);
    for (i, planned) in plan.tasks.iter().enumerate() {
        if let Some(approval) = &planned.task.approval {
            required.insert(planned.task.name.value.to_string(), approval.value.required);
        }
        if let Some((from, output)) = planned.fans_out_at_run_time() {
            fan_outs.insert(
                planned.task.name.value.to_string(),
                format!("{from}.{output}"),
            );
        }
        for gate in plan.gates_of(i) {
            if let Some(g) = plan.tasks.get(gate) {
                gated
                    .entry(planned.task.name.value.to_string())
                    .or_default()
                    .push(g.task.name.value.to_string());
            }
        }
    }
    Ok(Gates {
        gated,
        required,
        fan_outs,
    })
}

/// A recorded decision to decide again.
struct Pending {
    at: u64,
    set: Arc<(Policies, cedar_policy::Entities)>,
    action: String,
    principal: serde_json::Value,
    resource: serde_json::Value,
    context: serde_json::Value,
    decision: String,
    policies: Vec<String>,
    errors: usize,
}

impl Pending {
    fn check(&self) -> Option<Problem> {
        let (set, entities) = &*self.set;
        let message = match reevaluate(
            set,
            entities,
            &self.action,
            &self.principal,
            &self.resource,
            &self.context,
        ) {
            Ok(again) => {
                let allowed = self.decision == "allow";
                if again.allowed == allowed
                    && again.policies == self.policies
                    && again.errors.len() == self.errors
                {
                    return None;
                }
                let now = if again.allowed { "allow" } else { "deny" };
                format!(
                    "recorded {} by [{}], but the recorded policies decide {now} by [{}]",
                    self.decision,
                    self.policies.join(", "),
                    again.policies.join(", ")
                )
            }
            Err(e) => format!("cannot re-evaluate: {e}"),
        };
        Some(Problem {
            record: self.at,
            check: "decision",
            message,
        })
    }
}

/// How an HTTP request is named among a run's allowed steps.
fn http_key(method: &str, scheme: &str, endpoint: &str, path: &str) -> String {
    format!("{method} {scheme}://{endpoint}{path}")
}

/// Decide every pending decision again, on every core.
fn decide_again(pending: &[Pending]) -> Vec<Problem> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = pending.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = pending
            .chunks(chunk)
            .map(|part| {
                // Cedar recurses on policies: give it the stack the bounds
                // on recorded policies were sized for.
                std::thread::Builder::new()
                    .stack_size(crate::policy::bounds::STACK)
                    .spawn_scoped(scope, move || {
                        part.iter().filter_map(Pending::check).collect::<Vec<_>>()
                    })
                    .map(|w| (part, w))
                    .map_err(|e| (part, e))
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker {
                // A decision that could not be decided again is a problem,
                // never a pass.
                Ok((part, w)) => w.join().unwrap_or_else(|_| {
                    vec![Problem {
                        record: part.first().map_or(0, |p| p.at),
                        check: "decision",
                        message: "deciding these decisions again failed (an internal error)".into(),
                    }]
                }),
                // No thread: decide them here.
                Err((part, _)) => part.iter().filter_map(Pending::check).collect(),
            })
            .collect()
    })
}

struct Checker<'a> {
    key: &'a Verifier,
    artifacts: &'a Artifacts,
    report: Report,
    origin: Option<String>,
    runs: HashMap<String, Run>,
    last_checkpoint: Option<(u64, Hash)>,
    pending: Vec<Pending>,
    /// Where the last checkpoint record stands.
    covered: Option<u64>,
    /// The service's policy sets (`workflow-loaded`, then `policy-set`
    /// outside any run), by digest.
    service_sets: HashMap<String, Arc<(Policies, cedar_policy::Entities)>>,
    /// The policy set a `workflow-loaded` announced, until its `policy-set`.
    announced: Option<String>,
    /// Allowed `trigger` requests: record → (workflow, principal id).
    triggers_allowed: HashMap<u64, (String, String)>,
    /// `trigger` records: record → (run, workflow).
    triggers: HashMap<u64, (String, String)>,
    /// Allowed `pause_schedule` / `resume_schedule` requests: record →
    /// (workflow, principal id, action).
    pauses_allowed: HashMap<u64, (String, String, String)>,
    /// Allowed `notify` decisions: record → (workflow, notification).
    notifies_allowed: HashMap<u64, (String, String)>,
    /// `tick` and accepted `delivery` records, each the cause of a run.
    causes: HashMap<u64, Cause>,
    /// Every (via, workflow, schedule or webhook, nominal time or delivery
    /// id) that started a run.
    started_by: HashSet<(&'static str, String, String, String)>,
    /// Allowed `trigger` requests `via` `backfill`: record → (workflow,
    /// principal id, schedule).
    backfills_allowed: HashMap<u64, (String, String, String)>,
    /// Each `backfill-started`, by its record.
    backfills: HashMap<u64, Backfill>,
    /// Backfill id → its `backfill-started` record.
    backfill_ids: HashMap<String, u64>,
}

/// A backfill as its `backfill-started` recorded it, and what followed.
struct Backfill {
    id: String,
    workflow: String,
    schedule: String,
    user: String,
    /// Its nominal times, each with whether a trigger or skip handled it.
    nominal: HashMap<String, bool>,
    ended: bool,
}

/// A record that starts a run (a schedule's tick, a webhook's delivery):
/// what the `trigger` naming it must say.
struct Cause {
    /// `schedule` or `webhook`.
    via: &'static str,
    workflow: String,
    /// The schedule or webhook.
    source: String,
    run: String,
    /// The body it gives the run (a delivery's digest).
    body: Option<String>,
}

impl Checker<'_> {
    /// A `tick` or `delivery` (`what`, for messages) that starts run
    /// `starts`: it must follow an allowed `trigger` by `user` of
    /// `workflow`, and no other started a run for the same `identity`.
    #[allow(clippy::too_many_arguments)]
    fn cause(
        &mut self,
        at: u64,
        cause: Cause,
        identity: &str,
        user: &str,
        access: Option<u64>,
        what: &str,
    ) {
        let allowed = access
            .and_then(|a| self.triggers_allowed.get(&a))
            .is_some_and(|(of, who)| *of == cause.workflow && who == user);
        if !allowed {
            self.problem(
                at,
                "authorization",
                format!("{what} starts a run without an allowed `trigger` by `{user}` before it"),
            );
            return;
        }
        let key = (
            cause.via,
            cause.workflow.clone(),
            cause.source.clone(),
            identity.to_owned(),
        );
        if !self.started_by.insert(key) {
            self.problem(
                at,
                "authorization",
                format!(
                    "{what} starts a second run ({}); it starts one at most",
                    cause.run
                ),
            );
            return;
        }
        self.causes.insert(at, cause);
    }

    /// A `trigger` `via` `backfill` (record `at`, of run `run` by `user`):
    /// it names a `backfill-started` of its workflow and schedule, by the
    /// same user, covering its nominal time, not yet handled, before the
    /// backfill ended. `false` (with a problem) if not.
    #[allow(clippy::too_many_arguments)]
    fn backfill_trigger(
        &mut self,
        at: u64,
        run: &str,
        cause: Option<&u64>,
        source: Option<&String>,
        nominal: Option<&String>,
        workflow: &str,
        user: &str,
    ) -> bool {
        let problem = match cause.and_then(|c| self.backfills.get_mut(c)) {
            None => Some("names no `backfill-started` as its cause".to_owned()),
            Some(b) if b.workflow != workflow || Some(&b.schedule) != source => Some(format!(
                "names backfill `{}`, which is of schedule `{}` of `{}`",
                b.id, b.schedule, b.workflow
            )),
            Some(b) if b.user != user => Some(format!(
                "runs as `{user}`, but backfill `{}` is `{}`'s",
                b.id, b.user
            )),
            Some(b) if b.ended => Some(format!("comes after backfill `{}` ended", b.id)),
            Some(b) => match nominal.and_then(|n| b.nominal.get_mut(n)) {
                None => Some(format!(
                    "is for a nominal time backfill `{}` does not cover",
                    b.id
                )),
                Some(handled) if *handled => Some(format!(
                    "is for a nominal time backfill `{}` already handled",
                    b.id
                )),
                Some(handled) => {
                    *handled = true;
                    None
                }
            },
        };
        match problem {
            Some(problem) => {
                self.problem(
                    at,
                    "authorization",
                    format!("the backfill trigger of run `{run}` {problem}"),
                );
                false
            }
            None => true,
        }
    }

    fn problem(&mut self, record: u64, check: &'static str, message: impl Into<String>) {
        self.report.problems.push(Problem {
            record,
            check,
            message: message.into(),
        });
    }

    /// Count a step that an earlier allow of (task, action, resource id) in
    /// the same run authorized, or report it.
    fn authorized(
        &mut self,
        at: u64,
        run_id: &str,
        (task, action, resource): (&str, &str, &str),
        why: impl FnOnce() -> String,
    ) {
        let key = (task.to_owned(), action.to_owned(), resource.to_owned());
        if self
            .runs
            .get(run_id)
            .is_some_and(|r| r.allowed.contains(&key))
        {
            self.report.authorized += 1;
        } else {
            self.problem(at, "authorization", why());
        }
    }

    fn artifact(&mut self, at: u64, what: &str, artifact: &Artifact) {
        let Some(path) = self.artifacts.find(&artifact.sha256) else {
            self.report.digests_absent += 1;
            return;
        };
        match std::fs::read(&path) {
            Ok(bytes) if sha256_tag(&bytes) == artifact.sha256 => {
                self.report.digests_checked += 1;
            }
            Ok(bytes) => self.problem(
                at,
                "digest",
                format!(
                    "{what} `{}`: the artifact `{}` hashes to {}, the record says {}",
                    artifact.name,
                    path.display(),
                    sha256_tag(&bytes),
                    artifact.sha256
                ),
            ),
            Err(e) => self.problem(
                at,
                "digest",
                format!("cannot read `{}`: {e}", path.display()),
            ),
        }
    }

    fn checkpoint(
        &mut self,
        at: u64,
        size: u64,
        root: &str,
        note: &str,
        tree: &Tree,
        leaves: &Stored,
    ) {
        // Whether it verifies or not (that is reported), it ends what a
        // missing checkpoint would leave uncovered.
        self.covered = Some(at);
        let text = match self.key.open_note(note) {
            Ok(text) => text,
            Err(why) => {
                self.problem(at, "signature", format!("checkpoint: {why}"));
                return;
            }
        };
        let (origin, signed_size, signed_root) = match parse_checkpoint(text) {
            Ok(parsed) => parsed,
            Err(why) => {
                self.problem(at, "signature", format!("checkpoint: {why}"));
                return;
            }
        };
        if let Some(expected) = &self.origin
            && origin != expected
        {
            let message = format!(
                "checkpoint is for log `{origin}`, this log is `{expected}` (a checkpoint from another log)"
            );
            self.problem(at, "signature", message);
            return;
        }
        if signed_size != at
            || size != at
            || B64.decode(root).ok().as_deref() != Some(&signed_root[..])
        {
            let message = format!(
                "checkpoint signs {signed_size} records but stands at position {at} (records were added or removed before it)"
            );
            self.problem(at, "root", message);
            return;
        }
        if tree.root() != signed_root {
            self.problem(
                at,
                "root",
                format!(
                    "the signed root does not match records 0..{at}: a record before it was changed"
                ),
            );
            return;
        }
        self.report.checkpoints += 1;
        if let Some((old_size, old_root)) = self.last_checkpoint
            && old_size > 0
        {
            let ok = leaves.consistency_proof(old_size, at).is_some_and(|proof| {
                verify_consistency(old_size, at, &old_root, &signed_root, &proof)
            });
            if ok {
                self.report.consistent_pairs += 1;
            } else {
                self.problem(
                    at,
                    "consistency",
                    format!("not consistent with the checkpoint of size {old_size}"),
                );
            }
        }
        self.last_checkpoint = Some((at, signed_root));
    }

    fn event(&mut self, at: u64, run_id: &str, event: &Event) {
        match event {
            Event::LogOpened { origin, .. } => {
                if at == 0 {
                    self.origin = Some(origin.clone());
                } else {
                    self.problem(at, "format", "`log-opened` is only the first record");
                }
            }
            Event::TornTail { .. } => self.report.torn_tails += 1,
            Event::RunStarted {
                policy_set,
                manifest,
                source,
                workflow,
                trigger,
                user,
                parameters,
                ..
            } => {
                self.report.runs += 1;
                if let Some(trigger) = trigger {
                    match self.triggers.get(trigger) {
                        Some((run, of)) if run == run_id && of == workflow => {
                            self.report.authorized += 1;
                        }
                        _ => self.problem(
                            at,
                            "authorization",
                            format!(
                                "run `{run_id}` names record {trigger} as its trigger, which is not a trigger of this run of `{workflow}`"
                            ),
                        ),
                    }
                }
                if sha256_tag(source.as_bytes()) != manifest.sha256 {
                    self.problem(
                        at,
                        "digest",
                        "the recorded manifest does not match its digest",
                    );
                }
                let plan = gates_of(source, parameters).unwrap_or_else(|why| {
                    self.problem(at, "format", format!("the recorded manifest: {why}"));
                    Gates::default()
                });
                let run = Run {
                    starter: user.clone(),
                    params: parameters.clone(),
                    gated: plan.gated,
                    required: plan.required,
                    gates: HashMap::new(),
                    policy_set: policy_set.clone(),
                    policies: None,
                    allowed: HashSet::new(),
                    fan_outs: plan.fan_outs,
                    expanded: HashSet::new(),
                    fanned: HashMap::new(),
                    outputs: HashMap::new(),
                };
                if self.runs.insert(run_id.to_owned(), run).is_some() {
                    self.problem(at, "format", format!("run `{run_id}` started twice"));
                }
            }
            Event::RunResumed {
                policy_set,
                manifest,
                source,
                ..
            } => {
                if let Some(source) = source
                    && sha256_tag(source.as_bytes()) != manifest.sha256
                {
                    self.problem(
                        at,
                        "digest",
                        "the recorded manifest does not match its digest",
                    );
                }
                // What follows is authorized by the decisions recorded
                // after this, with the policy set recorded after this.
                let Some(run) = self.runs.get_mut(run_id) else {
                    self.problem(
                        at,
                        "format",
                        format!("run `{run_id}` resumed but never started"),
                    );
                    return;
                };
                run.policy_set.clone_from(policy_set);
                run.policies = None;
                run.allowed.clear();
                // Each fan-out over an output expands again, from the same
                // output (its task kept), in the resumed run.
                run.expanded.clear();
                // A changed manifest may gate other tasks.
                if let Some(source) = source {
                    match gates_of(source, &run.params) {
                        Ok(plan) => {
                            (run.gated, run.required, run.fan_outs) =
                                (plan.gated, plan.required, plan.fan_outs);
                        }
                        Err(why) => {
                            let message = format!("the recorded manifest: {why}");
                            self.problem(at, "format", message);
                        }
                    }
                }
            }
            Event::GateOpened { .. } | Event::Approval { .. } | Event::GateClosed { .. } => {
                self.gate_event(at, run_id, event);
            }
            Event::Expansion { .. } => self.expansion(at, run_id, event),
            Event::PolicySet {
                sha256,
                files,
                entities,
            } => self.policy_set(at, run_id, sha256, files, entities),
            Event::Decision {
                task,
                action,
                principal,
                resource,
                context,
                decision,
                policies,
                errors,
                ..
            } => {
                let Some(run) = self.runs.get_mut(run_id) else {
                    self.problem(
                        at,
                        "format",
                        format!("decision outside a started run `{run_id}`"),
                    );
                    return;
                };
                let Some(set) = &run.policies else {
                    self.problem(
                        at,
                        "decision",
                        "no policy set was recorded before this decision",
                    );
                    return;
                };
                let allowed = decision == "allow";
                if allowed {
                    let id = resource
                        .get("id")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default();
                    // An HTTP request is authorized for its method and path.
                    let text = |key: &str| {
                        context
                            .get(key)
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                    };
                    let request = || {
                        http_key(
                            text("method"),
                            text("scheme"),
                            text("endpoint"),
                            text("path"),
                        )
                    };
                    let id = match action.as_str() {
                        "connect" => request(),
                        "inject_secret" => format!("{id} {}", request()),
                        _ => id.to_owned(),
                    };
                    run.allowed.insert((task.clone(), action.clone(), id));
                }
                self.report.decisions += 1;
                // Decided again later, in parallel (see `decide_again`).
                self.pending.push(Pending {
                    at,
                    set: Arc::clone(set),
                    action: action.clone(),
                    principal: principal.clone(),
                    resource: resource.clone(),
                    context: context.clone(),
                    decision: decision.clone(),
                    policies: policies.clone(),
                    errors: errors.len(),
                });
            }
            Event::TaskStarted {
                task,
                inputs,
                component,
                ..
            } => {
                self.authorized(at, run_id, (task, "run", task), || {
                    format!("task `{task}` started without an allow of its `run` before it")
                });
                self.past_gates(at, run_id, task, Some((&component.sha256, inputs)));
                for input in inputs {
                    self.artifact(at, "input", input);
                }
            }
            Event::SecretRead { task, name, .. } => {
                self.authorized(at, run_id, (task, "read_secret", name), || {
                    format!("task `{task}` read secret `{name}` without an allow before it")
                });
            }
            Event::HttpRequest {
                task,
                method,
                scheme,
                host,
                port,
                path,
                allowed: true,
                injected,
                ..
            } => {
                let path = path.split_once('?').map_or(path.as_str(), |(p, _)| p);
                let key = http_key(method, scheme, &format!("{host}:{port}"), path);
                self.authorized(at, run_id, (task, "connect", &key), || {
                    format!("task `{task}` sent {key} without an allow of its `connect` before it")
                });
                for name in injected {
                    let id = format!("{name} {key}");
                    self.authorized(at, run_id, (task, "inject_secret", &id), || {
                        format!(
                            "secret `{name}` was injected into {key} without an allow before it"
                        )
                    });
                }
            }
            Event::TaskFinished { task, outputs, .. } => {
                self.produced(run_id, task, outputs);
                for output in outputs {
                    self.artifact(at, "output", output);
                }
            }
            Event::CacheHit { task, outputs, .. } => {
                self.authorized(at, run_id, (task, "run", task), || {
                    format!("task `{task}` reused cached outputs without an allow of its `run` before it")
                });
                self.past_gates(at, run_id, task, None);
                self.produced(run_id, task, outputs);
                for output in outputs {
                    self.artifact(at, "output", output);
                }
            }
            Event::WorkflowLoaded {
                manifest,
                source,
                policy_set,
                ..
            } => {
                if sha256_tag(source.as_bytes()) != manifest.sha256 {
                    self.problem(
                        at,
                        "digest",
                        "the recorded manifest does not match its digest",
                    );
                }
                self.announced = Some(policy_set.clone());
            }
            Event::Access {
                workflow,
                action,
                principal,
                resource,
                context,
                decision,
                policies,
                errors,
                policy_set,
                ..
            } => {
                let Some(set) = self.service_sets.get(policy_set).cloned() else {
                    self.problem(
                        at,
                        "decision",
                        format!("no policy set {policy_set} was recorded before this decision"),
                    );
                    return;
                };
                let who = principal
                    .get("id")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                if action == "trigger" && decision == "allow" {
                    self.triggers_allowed
                        .insert(at, (workflow.clone(), who.to_owned()));
                    if context.get("via").and_then(|v| v.as_str()) == Some("backfill") {
                        let schedule = context
                            .get("trigger")
                            .and_then(|v| v.as_str())
                            .unwrap_or_default();
                        self.backfills_allowed
                            .insert(at, (workflow.clone(), who.to_owned(), schedule.to_owned()));
                    }
                }
                if action == "notify" && decision == "allow" {
                    let notification = context
                        .get("notification")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default();
                    self.notifies_allowed
                        .insert(at, (workflow.clone(), notification.to_owned()));
                }
                if (action == "pause_schedule" || action == "resume_schedule")
                    && decision == "allow"
                {
                    self.pauses_allowed
                        .insert(at, (workflow.clone(), who.to_owned(), action.clone()));
                }
                self.report.decisions += 1;
                self.pending.push(Pending {
                    at,
                    set,
                    action: action.clone(),
                    principal: principal.clone(),
                    resource: resource.clone(),
                    context: context.clone(),
                    decision: decision.clone(),
                    policies: policies.clone(),
                    errors: errors.len(),
                });
            }
            Event::Trigger {
                via,
                workflow,
                starts: run,
                user,
                access,
                source,
                cause,
                body,
                nominal,
                ..
            } => {
                if via == "backfill"
                    && !self.backfill_trigger(
                        at,
                        run,
                        cause.as_ref(),
                        source.as_ref(),
                        nominal.as_ref(),
                        workflow,
                        user,
                    )
                {
                    return;
                }
                if via == "schedule" || via == "webhook" {
                    let fits = cause.and_then(|c| self.causes.get(&c)).is_some_and(|c| {
                        c.via == via
                            && c.workflow == *workflow
                            && Some(&c.source) == source.as_ref()
                            && c.run == *run
                            && c.body.as_deref() == body.as_ref().map(|b| b.sha256.as_str())
                    });
                    if !fits {
                        let cause = if via == "schedule" {
                            "a tick"
                        } else {
                            "an accepted delivery"
                        };
                        self.problem(
                            at,
                            "authorization",
                            format!(
                                "the trigger of run `{run}` is a {via}'s, but names no {cause} of `{workflow}` that starts it (with what it gives it)"
                            ),
                        );
                        return;
                    }
                }
                match self.triggers_allowed.get(access) {
                    Some((of, who)) if of == workflow && who == user => {
                        self.report.authorized += 1;
                        self.triggers.insert(at, (run.clone(), workflow.clone()));
                    }
                    _ => self.problem(
                        at,
                        "authorization",
                        format!(
                            "the trigger of run `{run}` names record {access}, which is not an allowed `trigger` of `{workflow}` by `{user}`"
                        ),
                    ),
                }
            }
            Event::Tick {
                workflow,
                schedule,
                user,
                nominal,
                decision,
                access,
                starts,
                ..
            } => {
                if decision != "run" {
                    return;
                }
                let cause = Cause {
                    via: "schedule",
                    workflow: workflow.clone(),
                    source: schedule.clone(),
                    run: starts.clone().unwrap_or_default(),
                    body: None,
                };
                let what = format!("tick {nominal} of schedule `{schedule}` of `{workflow}`");
                self.cause(
                    at,
                    cause,
                    nominal,
                    user,
                    access.filter(|_| starts.is_some()),
                    &what,
                );
            }
            Event::Delivery {
                workflow,
                webhook,
                id,
                user,
                result,
                sha256,
                access,
                starts,
                ..
            } => {
                if result != "accepted" {
                    return;
                }
                let cause = Cause {
                    via: "webhook",
                    workflow: workflow.clone(),
                    source: webhook.clone(),
                    run: starts.clone().unwrap_or_default(),
                    body: Some(sha256.clone()),
                };
                let what = format!("delivery {id} to webhook `{webhook}` of `{workflow}`");
                self.cause(
                    at,
                    cause,
                    id,
                    user,
                    access.filter(|_| starts.is_some()),
                    &what,
                );
            }
            Event::BackfillStarted {
                backfill,
                workflow,
                schedule,
                user,
                access,
                nominal,
                ..
            } => {
                match self.backfills_allowed.get(access) {
                    Some((of, who, what)) if of == workflow && who == user && what == schedule => {
                        self.report.authorized += 1;
                    }
                    _ => self.problem(
                        at,
                        "authorization",
                        format!(
                            "backfill `{backfill}` of schedule `{schedule}` of `{workflow}` cites record {access}, which is not an allowed `trigger` via `backfill` of that schedule by `{user}`"
                        ),
                    ),
                }
                if self.backfill_ids.insert(backfill.clone(), at).is_some() {
                    self.problem(
                        at,
                        "authorization",
                        format!("backfill `{backfill}` starts a second time"),
                    );
                }
                self.backfills.insert(
                    at,
                    Backfill {
                        id: backfill.clone(),
                        workflow: workflow.clone(),
                        schedule: schedule.clone(),
                        user: user.clone(),
                        nominal: nominal.iter().map(|n| (n.clone(), false)).collect(),
                        ended: false,
                    },
                );
            }
            Event::BackfillSkipped {
                backfill, nominal, ..
            } => {
                let entry = self
                    .backfill_ids
                    .get(backfill)
                    .and_then(|seq| self.backfills.get_mut(seq));
                let problem = match entry {
                    None => Some(format!(
                        "skips for backfill `{backfill}`, which never started"
                    )),
                    Some(b) if b.ended => Some(format!(
                        "skips {nominal} for backfill `{backfill}` after it ended"
                    )),
                    Some(b) => match b.nominal.get_mut(nominal) {
                        None => Some(format!(
                            "skips {nominal}, which backfill `{backfill}` does not cover"
                        )),
                        Some(handled) if *handled => Some(format!(
                            "handles {nominal} of backfill `{backfill}` a second time"
                        )),
                        Some(handled) => {
                            *handled = true;
                            None
                        }
                    },
                };
                if let Some(problem) = problem {
                    self.problem(at, "authorization", problem);
                }
            }
            Event::BackfillEnded {
                backfill,
                result,
                user,
                access,
                ..
            } => {
                let Some(seq) = self.backfill_ids.get(backfill).copied() else {
                    self.problem(
                        at,
                        "authorization",
                        format!("backfill `{backfill}` ends, but never started"),
                    );
                    return;
                };
                let cancelled_ok = match (result.as_str(), user, access) {
                    ("cancelled", Some(user), Some(access)) => {
                        self.backfills.get(&seq).is_some_and(|b| {
                            self.backfills_allowed
                                .get(access)
                                .is_some_and(|(of, who, what)| {
                                    *of == b.workflow && who == user && *what == b.schedule
                                })
                        })
                    }
                    ("done", None, None) => self
                        .backfills
                        .get(&seq)
                        .is_some_and(|b| b.nominal.values().all(|handled| *handled)),
                    _ => false,
                };
                if !cancelled_ok {
                    self.problem(
                        at,
                        "authorization",
                        format!(
                            "backfill `{backfill}` ends `{result}` {}",
                            if result == "done" {
                                "before every nominal time it covers has a trigger or a skip"
                            } else {
                                "without an allowed `trigger` via `backfill` of its schedule by who cancelled it"
                            }
                        ),
                    );
                }
                match self.backfills.get_mut(&seq) {
                    Some(b) if b.ended => self.problem(
                        at,
                        "authorization",
                        format!("backfill `{backfill}` ends a second time"),
                    ),
                    Some(b) => b.ended = true,
                    None => {}
                }
            }
            Event::Pause {
                workflow,
                schedule,
                paused,
                user,
                access,
                ..
            } => {
                let action = if *paused {
                    "pause_schedule"
                } else {
                    "resume_schedule"
                };
                match self.pauses_allowed.get(access) {
                    Some((of, who, did)) if of == workflow && who == user && did == action => {
                        self.report.authorized += 1;
                    }
                    _ => self.problem(
                        at,
                        "authorization",
                        format!(
                            "schedule `{schedule}` of `{workflow}` is {} by `{user}` citing record {access}, which is not an allowed `{action}`",
                            if *paused { "paused" } else { "resumed" }
                        ),
                    ),
                }
            }
            Event::Notification {
                workflow,
                notification,
                result,
                access,
                ..
            } => {
                // A denial sent nothing; anything else went out (or was
                // about to) and must rest on an allowed `notify`.
                if result == "denied" {
                    return;
                }
                match self.notifies_allowed.get(access) {
                    Some((of, name)) if of == workflow && name == notification => {
                        self.report.authorized += 1;
                    }
                    _ => self.problem(
                        at,
                        "authorization",
                        format!(
                            "notification `{notification}` of `{workflow}` ({result}) cites record {access}, which is not an allowed `notify` of it"
                        ),
                    ),
                }
            }
            Event::DataFlow { .. }
            | Event::HttpRequest { allowed: false, .. }
            | Event::Retry { .. }
            | Event::TaskSkipped { .. }
            | Event::RunFinished { .. }
            | Event::Checkpoint { .. } => {}
        }
    }

    /// Task `task` of run `run_id` starts (with its component digest and
    /// inputs, unless it reuses cached outputs): every gate it waits for
    /// closed approved, covering what it starts with.
    fn past_gates(
        &mut self,
        at: u64,
        run_id: &str,
        task: &str,
        started: Option<(&str, &[Artifact])>,
    ) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        let mut problems = Vec::new();
        for gate in run.gated.get(task).into_iter().flatten() {
            let Some(g) = run
                .gates
                .get(gate)
                .filter(|g| g.closed.as_deref() == Some("approved"))
            else {
                problems.push(format!(
                    "task `{task}` started before its approval gate `{gate}` was approved"
                ));
                continue;
            };
            self.report.authorized += 1;
            let Some((component, inputs)) = started else {
                continue;
            };
            // An expanded task was approved as its template.
            let covered = g.covers.get("tasks").and_then(|t| {
                t.get(task)
                    .or_else(|| run.fanned.get(task).and_then(|template| t.get(template)))
            });
            let field = |key: &str| covered.and_then(|c| c.get(key));
            if field("component").and_then(|c| c.as_str()) != Some(component) {
                problems.push(format!(
                    "task `{task}` started with component {component}, not the one `{gate}` was approved for"
                ));
            }
            if let Some(expected) = field("inputs").and_then(|i| i.as_object()) {
                for (input, digest) in expected {
                    let got = inputs
                        .iter()
                        .find(|a| a.name == *input)
                        .map(|a| a.sha256.as_str());
                    if got != digest.as_str() {
                        problems.push(format!(
                            "task `{task}` got input `{input}` {}, not what `{gate}` was approved for",
                            got.unwrap_or("(none)")
                        ));
                    }
                }
            }
        }
        for message in problems {
            self.problem(at, "authorization", message);
        }
    }

    /// Task `task` of run `run_id` recorded `outputs`.
    fn produced(&mut self, run_id: &str, task: &str, outputs: &[Artifact]) {
        if let Some(run) = self.runs.get_mut(run_id) {
            for output in outputs {
                run.outputs
                    .insert(format!("{task}.{}", output.name), output.sha256.clone());
            }
        }
    }

    /// An `expansion`: of a fan-out over an output of the recorded
    /// manifest, once since the run started or resumed, from the output
    /// its upstream task recorded (and, behind a gate, the one approved).
    /// The tasks it made then wait for the template's gates.
    fn expansion(&mut self, at: u64, run_id: &str, event: &Event) {
        let Event::Expansion {
            task,
            source,
            sha256,
            count,
            keys,
            error,
        } = event
        else {
            return;
        };
        let Some(run) = self.runs.get_mut(run_id) else {
            self.problem(
                at,
                "format",
                format!("expansion outside a started run `{run_id}`"),
            );
            return;
        };
        let mut problems = Vec::new();
        if run.fan_outs.get(task) != Some(source) {
            problems.push(format!(
                "`{task}` is not a fan-out over `{source}` in the run's recorded manifest"
            ));
        }
        if let Some(sha256) = sha256
            && run.outputs.get(source) != Some(sha256)
        {
            problems.push(format!(
                "`{task}` expanded over {sha256}, which is not what `{source}` recorded"
            ));
        }
        if error.is_none() {
            if sha256.is_none() {
                problems.push(format!("`{task}` expanded over no recorded output"));
            }
            if !run.expanded.insert(task.clone()) {
                problems.push(format!("`{task}` expanded twice"));
            }
            if keys.as_ref().is_some_and(|k| k.len() != *count) {
                problems.push(format!("`{task}` lists other than its {count} keys"));
            }
            let gates = run.gated.get(task).cloned().unwrap_or_default();
            for gate in &gates {
                let approved = run
                    .gates
                    .get(gate)
                    .and_then(|g| g.covers.get("tasks")?.get(task)?.get("for_each")?.as_str());
                if let Some(approved) = approved
                    && sha256.as_deref() != Some(approved)
                {
                    problems.push(format!(
                        "`{task}` expanded over other data than `{gate}` was approved for"
                    ));
                }
            }
            // A forged count must not make verify build that many names.
            let names: Vec<String> = match keys {
                Some(keys) => keys.clone(),
                None if *count > crate::plan::MAX_EXPANDED_TASKS => {
                    problems.push(format!(
                        "`{task}` expanded to {count} tasks; a run has at most {}",
                        crate::plan::MAX_EXPANDED_TASKS
                    ));
                    Vec::new()
                }
                None => (0..*count).map(|i| i.to_string()).collect(),
            };
            for key in names {
                let child = format!("{task}[{key}]");
                if !gates.is_empty() {
                    run.gated.insert(child.clone(), gates.clone());
                }
                run.fanned.insert(child, task.clone());
            }
        }
        for message in problems {
            self.problem(at, "expansion", message);
        }
    }

    /// A gate's record: opened, decided, closed.
    fn gate_event(&mut self, at: u64, run_id: &str, event: &Event) {
        let Some(run) = self.runs.get_mut(run_id) else {
            self.problem(
                at,
                "format",
                format!("gate record outside a started run `{run_id}`"),
            );
            return;
        };
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        match event {
            Event::GateOpened {
                task,
                required,
                bound,
                covers,
                deadline,
                ..
            } => {
                if run.required.get(task) != Some(required) {
                    problems.push((
                        "authorization",
                        format!(
                            "gate `{task}` opened requiring {required} approval(s); the run's manifest says {}",
                            run.required
                                .get(task)
                                .map_or_else(|| "it is no gate".to_owned(), ToString::to_string)
                        ),
                    ));
                }
                if crate::runner::approval::bound_of(covers) != *bound {
                    problems.push((
                        "digest",
                        format!("gate `{task}`: its bound is not the digest of what it covers"),
                    ));
                }
                let g = run.gates.entry(task.clone()).or_default();
                if g.bound != *bound {
                    g.approvers.clear();
                    g.rejecter = None;
                }
                g.bound.clone_from(bound);
                g.covers = covers.clone();
                g.deadline = deadline.is_some();
                g.closed = None;
            }
            Event::Approval {
                task,
                verdict,
                approver,
                bound,
                principal,
                resource,
                context,
                decision,
                policies,
                errors,
                counted,
                ..
            } => {
                match &run.policies {
                    Some(set) => {
                        self.report.decisions += 1;
                        self.pending.push(Pending {
                            at,
                            set: Arc::clone(set),
                            action: "approve".to_owned(),
                            principal: principal.clone(),
                            resource: resource.clone(),
                            context: context.clone(),
                            decision: decision.clone(),
                            policies: policies.clone(),
                            errors: errors.len(),
                        });
                    }
                    None => problems.push((
                        "decision",
                        "no policy set was recorded before this approval".to_owned(),
                    )),
                }
                if *counted {
                    let gate = run.gates.get_mut(task).filter(|g| g.closed.is_none());
                    let why = match &gate {
                        None => Some(format!("gate `{task}` is not open")),
                        Some(g) if g.bound != *bound => {
                            Some(format!("it approves {bound}, the gate binds {}", g.bound))
                        }
                        Some(_) if *approver == run.starter => {
                            Some(format!("{approver} started the run"))
                        }
                        Some(_)
                            if principal.get("id").and_then(|v| v.as_str())
                                != Some(approver.as_str()) =>
                        {
                            Some("its request names someone else".to_owned())
                        }
                        Some(_) if decision != "allow" => Some("policy denied it".to_owned()),
                        Some(_)
                            if context
                                .pointer("/starter/__entity/id")
                                .and_then(|v| v.as_str())
                                != Some(run.starter.as_str()) =>
                        {
                            Some("its request names someone else as the starter".to_owned())
                        }
                        Some(g) if verdict == "approve" && g.approvers.contains(approver) => {
                            Some(format!("{approver} already counted"))
                        }
                        Some(_) => None,
                    };
                    match (why, gate) {
                        (Some(why), _) => problems.push((
                            "authorization",
                            format!(
                                "a counted {verdict} of gate `{task}` by {approver}, but {why}"
                            ),
                        )),
                        (None, Some(g)) if verdict == "reject" => {
                            g.rejecter.get_or_insert_with(|| approver.clone());
                        }
                        (None, Some(g)) => g.approvers.push(approver.clone()),
                        (None, None) => {}
                    }
                }
            }
            Event::GateClosed { task, result, by } => {
                let required = run.required.get(task).copied().unwrap_or(u32::MAX);
                match run.gates.get_mut(task).filter(|g| g.closed.is_none()) {
                    None => problems.push((
                        "authorization",
                        format!("gate `{task}` closed but was not open"),
                    )),
                    Some(g) => {
                        let ok = match result.as_str() {
                            "approved" => {
                                usize::try_from(required).is_ok_and(|r| g.approvers.len() >= r)
                                    && by.iter().all(|b| g.approvers.contains(b))
                                    && g.rejecter.is_none()
                            }
                            "rejected" => g.rejecter.is_some(),
                            "timed-out" => g.deadline,
                            _ => false,
                        };
                        if !ok {
                            problems.push((
                        "authorization",
                        format!(
                            "gate `{task}` closed {result}, but its records show {} counted approval(s) of {required}{}",
                            g.approvers.len(),
                            match (&g.rejecter, g.deadline) {
                                (Some(who), _) => format!(", rejected by {who}"),
                                (None, false) => ", and no deadline".to_owned(),
                                (None, true) => String::new(),
                            }
                        ),
                    ));
                        }
                        g.closed = Some(result.clone());
                    }
                }
            }
            _ => {}
        }
        for (check, message) in problems {
            self.problem(at, check, message);
        }
    }

    fn policy_set(
        &mut self,
        at: u64,
        run_id: &str,
        sha256: &str,
        files: &[super::record::PolicyFile],
        entities: &super::record::EntitiesJson,
    ) {
        for file in files {
            if sha256_tag(file.text.as_bytes()) != file.sha256 {
                self.problem(
                    at,
                    "policy-set",
                    format!("the text of `{}` does not match its digest", file.path),
                );
            }
        }
        if policy_set_digest(files) != sha256 {
            self.problem(at, "policy-set", "the policy set does not match its digest");
        }
        if run_id.is_empty() {
            // The service's: announced by the `workflow-loaded` before it.
            if self.announced.take().as_deref() != Some(sha256) {
                self.problem(
                    at,
                    "policy-set",
                    "a policy set outside a run follows no `workflow-loaded` that names it",
                );
            }
            match load_set(files, entities) {
                Ok(pair) => {
                    self.service_sets.insert(sha256.to_owned(), Arc::new(pair));
                }
                Err(e) => self.problem(
                    at,
                    "policy-set",
                    format!("the recorded policies do not load: {e}"),
                ),
            }
            return;
        }
        let Some(run) = self.runs.get(run_id) else {
            self.problem(
                at,
                "format",
                format!("policy set outside a started run `{run_id}`"),
            );
            return;
        };
        if run.policy_set != sha256 {
            self.problem(
                at,
                "policy-set",
                "the policy set is not the one the run started with",
            );
        }
        match load_set(files, entities) {
            Ok(pair) => {
                if let Some(run) = self.runs.get_mut(run_id) {
                    run.policies = Some(Arc::new(pair));
                }
            }
            Err(e) => self.problem(
                at,
                "policy-set",
                format!("the recorded policies do not load: {e}"),
            ),
        }
    }
}

/// A recorded policy set, loaded to decide its decisions again.
pub(crate) fn load_set(
    files: &[super::record::PolicyFile],
    entities: &super::record::EntitiesJson,
) -> Result<(Policies, cedar_policy::Entities), String> {
    let sources = files
        .iter()
        .map(|f| (PathBuf::from(&f.path), f.text.clone()))
        .collect();
    Policies::from_sources(sources)
        .map_err(|e| match &e {
            // Name the first problem: the auditor needs to know which.
            crate::policy::PolicyError::Invalid(files) => files
                .first()
                .and_then(|f| {
                    let d = f.diagnostics.0.first()?;
                    Some(format!("`{}`: {}", f.path.display(), d.message))
                })
                .unwrap_or_else(|| e.to_string()),
            _ => e.to_string(),
        })
        .and_then(|p| {
            let json = entities.value().map_err(|e| e.to_string())?;
            let e = p.entities_from_json(json).map_err(|e| e.to_string())?;
            Ok((p, e))
        })
}

/// The digest of a policy set: SHA-256 over `path\0sha256\n` of each file,
/// in the recorded order.
#[must_use]
pub fn policy_set_digest(files: &[super::record::PolicyFile]) -> String {
    let mut h = Sha256::new();
    for file in files {
        h.update(file.path.as_bytes());
        h.update([0]);
        h.update(file.sha256.as_bytes());
        h.update(b"\n");
    }
    format!("sha256:{}", hex(&h.finalize()))
}

/// Verify the log `bytes` with `key`, looking for artifacts in `artifacts`.
#[must_use]
pub fn verify(bytes: &[u8], key: &Verifier, artifacts: &Artifacts) -> Report {
    verify_against(bytes, key, artifacts, None)
}

/// [`verify`], and also check the log against `held`, a signed checkpoint
/// the auditor got earlier or elsewhere (a bundle, a witness, the last
/// `STATE/audit/checkpoint`): the log must contain the tree it signs. This
/// is what catches a log cut back to an older checkpoint, which on its own
/// is a valid, shorter log.
#[must_use]
pub fn verify_against(
    bytes: &[u8],
    key: &Verifier,
    artifacts: &Artifacts,
    held: Option<&str>,
) -> Report {
    let (mut report, leaves, origin) = scan(bytes, key, artifacts);
    if let Some(note) = held {
        let end = leaves.size().saturating_sub(1);
        let mut problem = |message: String| {
            report.problems.push(Problem {
                record: end,
                check: "truncation",
                message,
            });
        };
        match key.open_note(note).and_then(parse_checkpoint) {
            Err(why) => problem(format!("the checkpoint you hold does not verify: {why}")),
            Ok((their_origin, size, root)) => {
                if origin.as_deref().is_some_and(|o| o != their_origin) {
                    problem(format!(
                        "the checkpoint you hold is of log `{their_origin}`, not this one"
                    ));
                } else if size > leaves.size() {
                    problem(format!(
                        "the checkpoint you hold signs {size} records, the log has {}: it was cut short",
                        leaves.size()
                    ));
                } else if leaves.root(size) != root {
                    problem(format!(
                        "the checkpoint you hold does not match the log's first {size} records: they were changed"
                    ));
                }
            }
        }
        report.problems.sort_by_key(|p| p.record);
    }
    report
}

/// One pass over the log: the report, the leaf hashes, the log's origin.
fn scan(bytes: &[u8], key: &Verifier, artifacts: &Artifacts) -> (Report, Stored, Option<String>) {
    let mut checker = Checker {
        key,
        artifacts,
        report: Report::default(),
        origin: None,
        runs: HashMap::new(),
        last_checkpoint: None,
        pending: Vec::new(),
        covered: None,
        service_sets: HashMap::new(),
        announced: None,
        triggers_allowed: HashMap::new(),
        triggers: HashMap::new(),
        pauses_allowed: HashMap::new(),
        notifies_allowed: HashMap::new(),
        causes: HashMap::new(),
        started_by: HashSet::new(),
        backfills_allowed: HashMap::new(),
        backfills: HashMap::new(),
        backfill_ids: HashMap::new(),
    };
    let mut tree = Tree::new();
    let mut leaves = Stored::new();
    let mut prev = [0u8; 32];
    let mut previous_intact = true;
    let mut at = 0u64;
    for piece in bytes.split_inclusive(|b| *b == b'\n') {
        let Some(line) = piece.strip_suffix(b"\n") else {
            checker.problem(
                at,
                "format",
                format!("record {at} is incomplete: the log ends in the middle of it (truncated)"),
            );
            at += 1;
            break;
        };
        let mut intact = false;
        match Record::decode(line) {
            Err(e) => checker.problem(at, "format", format!("not a v{VERSION} audit record: {e}")),
            Ok((record, self_ok)) => {
                intact = self_ok;
                if !self_ok {
                    checker.problem(
                        at,
                        "integrity",
                        "the record's bytes do not match its own `hash`: it was changed",
                    );
                }
                if record.v != VERSION {
                    checker.problem(
                        at,
                        "format",
                        format!("record version {} (this cairn reads v{VERSION})", record.v),
                    );
                }
                if record.seq != at {
                    checker.problem(
                        at,
                        "sequence",
                        format!("expected seq {at}, found {} (a record was removed, duplicated or moved)", record.seq),
                    );
                }
                // A broken link after a changed record is that record's
                // problem, already reported.
                if record.prev != hex(&prev) && previous_intact {
                    let message = if at == 0 {
                        "the first record's `prev` is not zero".to_owned()
                    } else {
                        format!(
                            "`prev` is not the hash of record {}: a record was inserted, removed or replaced here",
                            at - 1
                        )
                    };
                    checker.problem(at, "chain", message);
                }
                if let Event::Checkpoint { size, root, note } = &record.event {
                    checker.checkpoint(at, *size, root, note, &tree, &leaves);
                } else {
                    checker.event(at, &record.run, &record.event);
                }
            }
        }
        previous_intact = intact;
        let leaf = leaf_hash(line);
        tree.push(leaf);
        leaves.push(leaf);
        prev = Sha256::digest(line).into();
        at += 1;
    }
    checker.report.records = at;
    if at == 0 {
        checker.problem(0, "format", "the log is empty");
    } else if checker.covered.is_none_or(|c| c + 1 < at) {
        let from = checker.covered.map_or(0, |c| c + 1);
        // Named at the end of the log: that is where something is missing.
        checker.problem(
            at - 1,
            "coverage",
            format!(
                "the log ends without a signed checkpoint: records {from}..{} are not covered (the log was cut short, or a run is still going or crashed)",
                at - 1
            ),
        );
    }
    let problems = decide_again(&checker.pending);
    checker.report.problems.extend(problems);
    checker.report.problems.sort_by_key(|p| p.record);
    checker.report.origin.clone_from(&checker.origin);
    (checker.report, leaves, checker.origin)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::audit::log::AuditLog;
    use crate::audit::note::Signer;
    use crate::audit::record::{EntitiesJson, FileDigest, PolicyFile};

    const MANIFEST: &str = r#"
[workflow]
name = "w"
[tasks.build]
component = "x.wasm"
outputs = ["out"]
[tasks.gate]
approval = { required = 2 }
needs = ["build"]
[tasks.deploy]
component = "x.wasm"
needs = ["gate"]
inputs = { out = "build.out" }
"#;

    const POLICY: &str = "@id(\"all\")\npermit (principal, action, resource);\n\
        @id(\"self\")\nforbid (principal, action == Cairn::Action::\"approve\", resource) when { principal == context.starter };\n";

    fn signer() -> Signer {
        Signer::from_seed("test", &[5; 32])
    }

    /// The one policy file of the tests' logs, and its set's digest.
    fn policy_files() -> (Vec<PolicyFile>, String) {
        let files = vec![PolicyFile {
            path: "p.cedar".into(),
            sha256: sha256_tag(POLICY.as_bytes()),
            text: POLICY.into(),
        }];
        let set = policy_set_digest(&files);
        (files, set)
    }

    /// What verify finds in the log at `path`.
    fn found(path: &std::path::Path) -> Vec<String> {
        let report = verify(
            &std::fs::read(path).unwrap(),
            &signer().verifier(),
            &Artifacts::default(),
        );
        report.problems.into_iter().map(|p| p.message).collect()
    }

    fn approval(who: &str, bound: &str, counted: bool) -> Event {
        Event::Approval {
            task: "gate".into(),
            verdict: "approve".into(),
            approver: who.into(),
            comment_sha256: None,
            bound: bound.into(),
            principal: serde_json::json!({ "type": "Cairn::User", "id": who }),
            resource: serde_json::json!({ "type": "Cairn::Task", "id": "gate" }),
            context: serde_json::json!({
                "starter": { "__entity": { "type": "Cairn::User", "id": "alice" } },
                "workflow": "w", "bound": bound, "verdict": "approve",
            }),
            decision: if who == "alice" { "deny" } else { "allow" }.into(),
            policies: vec![if who == "alice" { "self" } else { "all" }.into()],
            errors: Vec::new(),
            counted,
            refused: None,
        }
    }

    /// A signed log of run `r`: started by alice, `build` done, then
    /// `gate_events`, then `deploy` started with `component` and input
    /// digest `input`. The problems verify finds.
    /// Alice starts run `r` of manifest `source` with policy set `set`.
    fn started(source: &str, set: &str) -> Event {
        Event::RunStarted {
            user: "alice".into(),
            workflow: "w".into(),
            manifest: FileDigest {
                path: "workflow.toml".into(),
                sha256: sha256_tag(source.as_bytes()),
            },
            source: source.into(),
            policy_set: set.into(),
            parameters: BTreeMap::new(),
            components: BTreeMap::new(),
            cairn: "test".into(),
            trigger: None,
        }
    }

    fn problems(gate_events: &[Event], component: &str, input: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut log = AuditLog::open(&path, signer()).unwrap();
        let (files, set) = policy_files();
        let mut events = vec![
            started(MANIFEST, &set),
            Event::PolicySet {
                sha256: set,
                files,
                entities: EntitiesJson::rendered("[]".into()).unwrap(),
            },
            Event::Decision {
                phase: "preflight".into(),
                task: "deploy".into(),
                action: "run".into(),
                principal: serde_json::json!({ "type": "Cairn::User", "id": "alice" }),
                resource: serde_json::json!({ "type": "Cairn::Task", "id": "deploy" }),
                context: serde_json::json!({ "workflow": "w" }),
                decision: "allow".into(),
                policies: vec!["all".into()],
                errors: Vec::new(),
            },
        ];
        events.extend_from_slice(gate_events);
        events.push(Event::TaskStarted {
            task: "deploy".into(),
            attempt: 1,
            component: FileDigest {
                path: "x.wasm".into(),
                sha256: component.into(),
            },
            inputs: vec![Artifact {
                name: "out".into(),
                sha256: input.into(),
                bytes: 1,
            }],
            when: "success".into(),
            mounts: Vec::new(),
        });
        for event in events {
            log.append("r", event).unwrap();
        }
        log.checkpoint("r").unwrap();
        found(&path)
    }

    fn covers() -> serde_json::Value {
        serde_json::json!({
            "tasks": { "deploy": { "component": "sha256:c0", "inputs": { "out": "sha256:d0" } } }
        })
    }

    fn opened() -> (Event, String) {
        let covers = covers();
        let bound = crate::runner::approval::bound_of(&covers);
        let event = Event::GateOpened {
            task: "gate".into(),
            required: 2,
            gated: vec!["deploy".into()],
            bound: bound.clone(),
            covers,
            deadline: None,
            on_timeout: "fail".into(),
        };
        (event, bound)
    }

    #[track_caller]
    fn has(found: &[String], message: &str) {
        assert!(
            found.iter().any(|p| p.contains(message)),
            "`{message}` not in {found:?}"
        );
    }

    fn closed(by: &[&str]) -> Event {
        Event::GateClosed {
            task: "gate".into(),
            result: "approved".into(),
            by: by.iter().map(|b| (*b).to_owned()).collect(),
        }
    }

    /// The problems verify finds in a run of a manifest where `fetch` fans
    /// out over `list.items`, `list` having recorded `["a","b"]`, followed
    /// by `expansions` (given that output's digest).
    fn expansion_problems(expansions: impl FnOnce(&str) -> Vec<Event>) -> Vec<String> {
        const FANS: &str = r#"
[workflow]
name = "w"
[tasks.list]
component = "x.wasm"
outputs = ["items"]
[tasks.fetch]
component = "x.wasm"
for_each = "list.items"
"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut log = AuditLog::open(&path, signer()).unwrap();
        let (files, set) = policy_files();
        let items = sha256_tag(b"[\"a\",\"b\"]");
        let mut events = vec![
            started(FANS, &set),
            Event::PolicySet {
                sha256: set,
                files,
                entities: EntitiesJson::rendered("[]".into()).unwrap(),
            },
            Event::TaskFinished {
                task: "list".into(),
                attempt: 1,
                outcome: "success".into(),
                detail: String::new(),
                exit_status: None,
                duration_ms: 1,
                outputs: vec![Artifact {
                    name: "items".into(),
                    sha256: items.clone(),
                    bytes: 9,
                }],
            },
        ];
        events.extend(expansions(&items));
        for event in events {
            log.append("r", event).unwrap();
        }
        log.checkpoint("r").unwrap();
        found(&path)
    }

    fn expansion(task: &str, sha256: &str, count: usize, keys: Option<Vec<String>>) -> Event {
        Event::Expansion {
            task: task.into(),
            source: "list.items".into(),
            sha256: Some(sha256.into()),
            count,
            keys,
            error: None,
        }
    }

    #[test]
    fn an_expansion_follows_its_fan_out_once_over_the_output_recorded() {
        let found = expansion_problems(|items| {
            vec![
                expansion("fetch", items, 2, Some(vec!["a".into(), "b".into()])),
                expansion("fetch", items, 2, None),
                expansion("list", items, 2, None),
                expansion("fetch", &sha256_tag(b"[]"), 2, Some(vec!["a".into()])),
            ]
        });
        for message in [
            "`fetch` expanded twice",
            "`list` is not a fan-out over `list.items` in the run's recorded manifest",
            "which is not what `list.items` recorded",
            "`fetch` lists other than its 2 keys",
        ] {
            has(&found, message);
        }
        assert_eq!(found.len(), 5, "the first expansion is sound: {found:?}");
    }

    #[test]
    fn a_forged_expansion_count_is_a_problem_not_a_billion_names() {
        let found = expansion_problems(|items| vec![expansion("fetch", items, usize::MAX, None)]);
        has(&found, "a run has at most 100000");
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn a_gated_task_starts_only_after_enough_approvals_of_what_it_gets() {
        let (open, bound) = opened();
        let good = [
            open.clone(),
            approval("bob", &bound, true),
            approval("carol", &bound, true),
            closed(&["bob", "carol"]),
        ];
        assert_eq!(
            problems(&good, "sha256:c0", "sha256:d0"),
            Vec::<String>::new()
        );

        // No gate at all: the task ran past it.
        let skipped = problems(&[], "sha256:c0", "sha256:d0");
        has(
            &skipped,
            "started before its approval gate `gate` was approved",
        );

        // Closed approved with one approval, the other by the starter.
        let short = [
            open.clone(),
            approval("bob", &bound, true),
            approval("alice", &bound, true),
            closed(&["bob", "alice"]),
        ];
        let found = problems(&short, "sha256:c0", "sha256:d0");
        has(&found, "alice started the run");
        has(&found, "1 counted approval(s) of 2");

        // One person counted twice; an approval of another bound.
        let twice = [
            open,
            approval("bob", &bound, true),
            approval("bob", &bound, true),
            approval("carol", "sha256:other", true),
            closed(&["bob"]),
        ];
        let found = problems(&twice, "sha256:c0", "sha256:d0");
        has(&found, "bob already counted");
        has(&found, "the gate binds");

        // Approved, but the task got other data than the gate covered.
        let found = problems(&good, "sha256:c0", "sha256:d1");
        has(
            &found,
            "got input `out` sha256:d1, not what `gate` was approved for",
        );
        let found = problems(&good, "sha256:c1", "sha256:d0");
        has(&found, "started with component sha256:c1");

        // A bound that is not the digest of what the gate covers.
        let forged = Event::GateOpened {
            task: "gate".into(),
            required: 1,
            gated: vec!["deploy".into()],
            bound: "sha256:forged".into(),
            covers: covers(),
            deadline: None,
            on_timeout: "fail".into(),
        };
        let found = problems(&[forged], "sha256:c0", "sha256:d0");
        has(&found, "its bound is not the digest");
        has(&found, "requiring 1 approval(s); the run's manifest says 2");
    }

    /// A signed service log: `w` loaded, alice allowed to `trigger` it via
    /// `via` (record `access`), her backfill `b` of schedule `daily` over
    /// N1 and N2 (record `started`), then what `rest` makes of those two
    /// records. The problems verify finds.
    fn backfill_problems(via: &str, rest: impl FnOnce(u64, u64) -> Vec<Event>) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut log = AuditLog::open(&path, signer()).unwrap();
        let (files, set) = policy_files();
        let alice = serde_json::json!({ "type": "Cairn::User", "id": "alice" });
        log.append(
            "",
            Event::WorkflowLoaded {
                workflow: "w".into(),
                manifest: FileDigest {
                    path: "workflow.toml".into(),
                    sha256: sha256_tag(MANIFEST.as_bytes()),
                },
                source: MANIFEST.into(),
                policy_set: set.clone(),
            },
        )
        .unwrap();
        log.append(
            "",
            Event::PolicySet {
                sha256: set.clone(),
                files,
                entities: EntitiesJson::rendered("[]".into()).unwrap(),
            },
        )
        .unwrap();
        let access = log
            .append(
                "",
                Event::Access {
                    token: String::new(),
                    workflow: "w".into(),
                    action: "trigger".into(),
                    principal: alice,
                    resource: serde_json::json!({ "type": "Cairn::Workflow", "id": "w" }),
                    context: serde_json::json!({ "via": via, "trigger": "daily" }),
                    decision: "allow".into(),
                    policies: vec!["all".into()],
                    errors: Vec::new(),
                    policy_set: set,
                },
            )
            .unwrap();
        let started = log
            .append(
                "",
                Event::BackfillStarted {
                    backfill: "b".into(),
                    workflow: "w".into(),
                    schedule: "daily".into(),
                    user: "alice".into(),
                    token: String::new(),
                    access,
                    from: "N1".into(),
                    to: "N2".into(),
                    reprocess: "missing".into(),
                    max_active: 1,
                    nominal: vec!["N1".into(), "N2".into()],
                },
            )
            .unwrap();
        for event in rest(access, started) {
            log.append("", event).unwrap();
        }
        log.checkpoint("").unwrap();
        found(&path)
    }

    fn backfilled(run: &str, user: &str, nominal: &str, access: u64, cause: u64) -> Event {
        Event::Trigger {
            via: "backfill".into(),
            workflow: "w".into(),
            starts: run.into(),
            user: user.into(),
            token: String::new(),
            parameters: BTreeMap::new(),
            access,
            source: Some("daily".into()),
            cause: Some(cause),
            body: None,
            nominal: Some(nominal.into()),
            traceparent: None,
        }
    }

    fn skipped(nominal: &str) -> Event {
        Event::BackfillSkipped {
            backfill: "b".into(),
            nominal: nominal.into(),
            why: "exists".into(),
            detail: None,
            runs: vec!["r0".into()],
        }
    }

    fn ended(result: &str, by: Option<u64>) -> Event {
        Event::BackfillEnded {
            backfill: "b".into(),
            result: result.into(),
            user: by.map(|_| "alice".into()),
            token: by.map(|_| String::new()),
            access: by,
        }
    }

    #[test]
    fn a_backfilled_run_follows_its_backfill_once_for_a_nominal_time_it_covers() {
        let good = backfill_problems("backfill", |a, b| {
            vec![
                backfilled("r1", "alice", "N1", a, b),
                skipped("N2"),
                ended("done", None),
            ]
        });
        assert_eq!(good, Vec::<String>::new());
        let cancelled = backfill_problems("backfill", |a, b| {
            vec![
                backfilled("r1", "alice", "N1", a, b),
                ended("cancelled", Some(a)),
            ]
        });
        assert_eq!(cancelled, Vec::<String>::new());

        let found = backfill_problems("backfill", |a, b| {
            vec![
                backfilled("r1", "alice", "N1", a, b),
                backfilled("r2", "alice", "N1", a, b),
                backfilled("r3", "alice", "N3", a, b),
                ended("done", None),
                backfilled("r4", "alice", "N2", a, b),
            ]
        });
        has(
            &found,
            "run `r2` is for a nominal time backfill `b` already handled",
        );
        has(
            &found,
            "run `r3` is for a nominal time backfill `b` does not cover",
        );
        has(&found, "backfill `b` ends `done` before every nominal time");
        has(&found, "run `r4` comes after backfill `b` ended");

        let found = backfill_problems("backfill", |a, b| {
            vec![backfilled("r1", "bob", "N1", a, b), skipped("N3")]
        });
        has(&found, "runs as `bob`, but backfill `b` is `alice`'s");
        has(&found, "skips N3, which backfill `b` does not cover");

        // A backfill on an access for something else (an API trigger).
        let found = backfill_problems("api", |a, b| {
            vec![
                backfilled("r1", "alice", "N1", a, b),
                ended("cancelled", Some(a)),
            ]
        });
        has(&found, "which is not an allowed `trigger` via `backfill`");
        has(&found, "without an allowed `trigger` via `backfill`");
        // A trigger that names no backfill.
        let found = backfill_problems("backfill", |a, _| {
            vec![backfilled("r1", "alice", "N1", a, a)]
        });
        has(&found, "names no `backfill-started` as its cause");
    }
}
