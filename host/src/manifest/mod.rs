//! The workflow manifest as authored: one TOML file, with every value's span.
//!
//! [`parse`] turns the text of a manifest into a [`Manifest`] or the full list
//! of problems with it (unknown fields with suggestions, wrong types, bad
//! names, durations and sizes, malformed edges...). It checks each value on
//! its own; relations between tasks (unknown tasks, cycles) are the plan's
//! job. Pure: no I/O, paths stay as written.

mod parse;
mod schema;

use std::ops::Range;

use indexmap::IndexMap;

pub use parse::{
    FIELDS_DEFAULTS, FIELDS_NOTIFICATION, FIELDS_SCHEDULE, FIELDS_TASK, FIELDS_TOP, FIELDS_WEBHOOK,
    FIELDS_WORKFLOW, parse, parse_partial,
};
pub use schema::schema;

use crate::digest::Digest;
use crate::name::Name;
use crate::sandbox::MountMode;
use crate::units::{HumanDuration, Size};

/// The manifest format this version of Cairn reads.
pub const FORMAT: i64 = 1;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    /// The value.
    pub value: T,
    /// Its byte range in the manifest.
    pub span: Range<usize>,
}

impl<T> At<T> {
    /// `value` written at `span`.
    pub fn new(value: T, span: Range<usize>) -> Self {
        Self { value, span }
    }
}

/// A whole manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `[workflow] format`: the manifest format version.
    pub format: i64,
    /// `[workflow] name`.
    pub name: At<Name>,
    /// `[workflow] description`.
    pub description: Option<String>,
    /// `[workflow] policies`: Cedar files or folders, relative to the manifest.
    pub policies: Vec<At<String>>,
    /// `[workflow] max_active_runs`: how many runs of it the service runs
    /// at once (more wait their turn).
    pub max_active_runs: Option<At<u32>>,
    /// `[params]`: values a run is given (`cairn run --param NAME=VALUE`),
    /// used in tasks' `env` and `args` as `${params.NAME}`.
    pub params: IndexMap<Name, Param>,
    /// `[defaults]`: settings every task gets unless it says otherwise.
    pub defaults: Settings,
    /// `[tasks.NAME]`, in the author's order.
    pub tasks: IndexMap<Name, Task>,
    /// `[schedules.NAME]`: when `cairn serve` runs the workflow by itself.
    pub schedules: IndexMap<Name, Schedule>,
    /// `[webhooks.NAME]`: deliveries that start runs of it.
    pub webhooks: IndexMap<Name, Webhook>,
    /// `[notifications.NAME]`: where the service sends its runs' events.
    pub notifications: IndexMap<Name, Notification>,
}

/// `[notifications.NAME]`: an endpoint the service POSTs its runs'
/// events to (CloudEvents, signed as Standard Webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Its name (the table key).
    pub name: At<Name>,
    /// Where and what.
    pub spec: crate::observe::notify::Spec,
}

/// `[webhooks.NAME]`: an endpoint whose signed deliveries start runs, the
/// body given to them as `trigger.body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its name (the table key).
    pub name: At<Name>,
    /// What it does.
    pub spec: crate::serve::webhook::Spec,
}

/// `[schedules.NAME]`: a cron schedule, checked (its cron expression,
/// time zone and choices) into the spec the scheduler follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Its name (the table key).
    pub name: At<Name>,
    /// What it does.
    pub spec: crate::serve::schedule::Spec,
}

/// A run parameter: `target = "staging"`, or `target = { default =
/// "staging", allowed = ["staging", "production"], description = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Its name (the table key).
    pub name: At<Name>,
    /// The value when the run gives none.
    pub default: At<String>,
    /// The only values it may take (any when empty).
    pub allowed: Vec<At<String>>,
    /// What it is for.
    pub description: Option<String>,
}

/// The parameter names `${params.NAME}` references in `text`, with the
/// byte range of each reference in it.
#[must_use]
pub fn param_refs(text: &str) -> Vec<(&str, Range<usize>)> {
    const OPEN: &str = "${params.";
    let mut refs = Vec::new();
    let mut from = 0;
    while let Some(start) = text
        .get(from..)
        .and_then(|t| t.find(OPEN))
        .map(|i| i + from)
    {
        let name_start = start + OPEN.len();
        let Some(len) = text.get(name_start..).and_then(|t| t.find('}')) else {
            break;
        };
        let end = name_start + len + 1;
        if let Some(name) = text.get(name_start..name_start + len) {
            refs.push((name, start..end));
        }
        from = end;
    }
    refs
}

/// `text` with each `${params.NAME}` replaced by `values[NAME]`; names
/// without a value are left as written.
#[must_use]
pub fn substitute_params(
    text: &str,
    values: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (name, range) in param_refs(text) {
        if let Some(value) = values.get(name) {
            out.push_str(text.get(last..range.start).unwrap_or_default());
            out.push_str(value);
            last = range.end;
        }
    }
    out.push_str(text.get(last..).unwrap_or_default());
    out
}

/// Limits and retry policy; in `[defaults]` or in a task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Wall-clock limit of one attempt.
    pub timeout: Option<At<HumanDuration>>,
    /// CPU-time limit of one attempt.
    pub cpu_time: Option<At<HumanDuration>>,
    /// Linear-memory limit.
    pub memory: Option<At<Size>>,
    /// Core instances per task, 1 to [`crate::sandbox::MAX_INSTANCES`].
    pub instances: Option<At<u32>>,
    /// Retries of retriable failures.
    pub retries: Option<At<Retries>>,
    /// Most HTTP requests per attempt.
    pub http_requests: Option<At<u32>>,
    /// Largest HTTP request body.
    pub http_request_size: Option<At<Size>>,
    /// Largest HTTP response body.
    pub http_response_size: Option<At<Size>>,
    /// Time limit of one HTTP request, response included.
    pub http_timeout: Option<At<HumanDuration>>,
}

/// Where the host writes an injected secret in place of its placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    /// Request headers only (`"headers"`).
    Headers,
    /// Request headers and bodies (`"headers+body"`).
    HeadersAndBody,
}

/// How a failed attempt is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retries {
    /// Attempts after the first (0 = no retry).
    pub max: u32,
    /// How the delay grows.
    pub backoff: Backoff,
    /// Delay before the first retry.
    pub initial: HumanDuration,
    /// Longest delay.
    pub max_delay: HumanDuration,
    /// Randomize each delay (full jitter) so retries do not synchronize.
    pub jitter: bool,
}

/// How the delay between retries grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// The same delay every time.
    Fixed,
    /// Doubling from `initial` up to `max_delay`.
    Exponential,
}

/// When a task runs, relative to its upstream tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum When {
    /// When all upstream tasks succeeded (the default).
    #[default]
    Success,
    /// When any upstream task failed: rollbacks, alerts.
    Failure,
    /// Whatever happened upstream: cleanup, notifications.
    Always,
}

impl When {
    /// `success`, `failure` or `always`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Always => "always",
        }
    }
}

/// A data edge: the output `output` of task `task`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The producing task.
    pub task: Name,
    /// Its output.
    pub output: Name,
    /// `task[*].output`: that output of every task `task` fans out to
    /// (fan-in).
    pub all: bool,
}

/// A host directory mounted in a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountDecl {
    /// Directory on the host, relative to the manifest.
    pub host: At<String>,
    /// Absolute path in the guest.
    pub guest: At<String>,
    /// Read-only (default) or read-write.
    pub mode: MountMode,
}

/// One `[tasks.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The task's name (its table key).
    pub name: At<Name>,
    /// The wasm file, relative to the manifest.
    pub component: At<String>,
    /// Refuse to run any other bytes.
    pub sha256: Option<At<Digest>>,
    /// Shell command that builds the component (`cairn build`).
    pub build: Option<At<String>>,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: IndexMap<String, String>,
    /// Mounted directories.
    pub mounts: Vec<MountDecl>,
    /// Secrets the task may read.
    pub secrets: Vec<At<Name>>,
    /// Network endpoints (`host:port`, host lowercase) the task may send
    /// HTTP requests to; each request is authorized as it is sent.
    pub network: Vec<At<String>>,
    /// Secrets the task gets as placeholders, which the host replaces in its
    /// requests (where policy allows): name → where.
    pub inject: IndexMap<Name, At<Inject>>,
    /// Inputs: local name → the upstream output it receives.
    pub inputs: IndexMap<Name, At<Edge>>,
    /// Outputs and their labels.
    pub outputs: IndexMap<Name, Output>,
    /// Tasks that must finish first, besides those feeding inputs.
    pub needs: Vec<At<Name>>,
    /// When the task runs.
    pub when: At<When>,
    /// Reuse the outputs of an earlier successful attempt with the same
    /// component, inputs, args, env and declared capabilities.
    pub cache: At<bool>,
    /// Limits and retries, over `[defaults]`.
    pub settings: Settings,
    /// `approval = { .. }`: the task is a gate, with no component; the
    /// tasks that need it start only once enough people approve.
    pub approval: Option<At<Approval>>,
    /// `for_each = [..]`: one task per element (`${each}` in its `args` and
    /// `env` is the element), expanded when the run is planned (a list or
    /// a parameter) or when the upstream output it names arrives.
    pub for_each: Option<At<ForEach>>,
    /// At most this many of its expanded tasks run at once.
    pub max_parallel: Option<At<u32>>,
}

/// Most elements a fan-out expands to when the run is planned.
pub const MAX_FAN_OUT: usize = 10_000;

/// What a task fans out over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForEach {
    /// The manifest's list.
    List(Vec<String>),
    /// A parameter holding a JSON array of strings (`"${params.NAME}"`).
    Param(Name),
    /// An upstream task's output holding a JSON array (`"TASK.OUTPUT"`),
    /// expanded when that output arrives.
    Output {
        /// The producing task.
        task: Name,
        /// Its output.
        output: Name,
    },
}

/// Most elements a fan-out over an upstream output expands to, when the
/// output arrives.
pub const MAX_RUN_TIME_FAN_OUT: usize = 100_000;

/// Most bytes of an upstream output a fan-out reads.
pub const MAX_FAN_OUT_BYTES: u64 = 64 << 20;

/// The elements of an upstream output `bytes` a task fans out over: a JSON
/// array of at most [`MAX_RUN_TIME_FAN_OUT`] values, each a string (as it
/// is) or any other JSON value (as its compact JSON text).
///
/// # Errors
///
/// A message saying what is wrong with it.
pub fn run_time_elements(bytes: &[u8]) -> Result<Vec<String>, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        format!("is not a JSON array: {e} (a fan-out needs one, like [\"eu\", \"us\"])")
    })?;
    let serde_json::Value::Array(items) = value else {
        let kind = match value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            _ => "an object",
        };
        return Err(format!(
            "holds {kind}, not a JSON array (a fan-out needs one, like [\"eu\", \"us\"])"
        ));
    };
    if items.len() > MAX_RUN_TIME_FAN_OUT {
        return Err(format!(
            "has {} elements; a fan-out over an output has at most {MAX_RUN_TIME_FAN_OUT}",
            items.len()
        ));
    }
    Ok(items
        .into_iter()
        .map(|item| match item {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
        .collect())
}

/// The elements of a fan-out parameter's value `text`: a JSON array of
/// strings, at most [`MAX_FAN_OUT`] of them.
///
/// # Errors
///
/// A message saying what is wrong with it.
pub fn fan_out_elements(text: &str) -> Result<Vec<String>, String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("must be a JSON array of strings, like [\"eu\", \"us\"] ({e})"))?;
    let Some(items) = value.as_array() else {
        return Err("must be a JSON array of strings, like [\"eu\", \"us\"]".to_owned());
    };
    if items.len() > MAX_FAN_OUT {
        return Err(format!(
            "has {} elements; a fan-out has at most {MAX_FAN_OUT}",
            items.len()
        ));
    }
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("must hold only strings, not {item}"))
        })
        .collect()
}

/// Each element's key: the elements themselves when each is a distinct
/// [`crate::name::is_key`] key, else their indices.
#[must_use]
pub fn fan_out_keys(elements: &[String]) -> Vec<String> {
    let distinct: std::collections::HashSet<&str> = elements.iter().map(String::as_str).collect();
    if distinct.len() == elements.len() && elements.iter().all(|e| crate::name::is_key(e)) {
        elements.to_vec()
    } else {
        (0..elements.len()).map(|i| i.to_string()).collect()
    }
}

/// `text` with each `${each}` replaced by `element`.
#[must_use]
pub fn substitute_each(text: &str, element: &str) -> String {
    text.replace(EACH, element)
}

/// What stands for a fan-out's element in `args` and `env`.
pub const EACH: &str = "${each}";

impl Task {
    /// Whether the task is an approval gate (runs nothing).
    #[must_use]
    pub fn is_gate(&self) -> bool {
        self.approval.is_some()
    }
}

/// Most approvals a gate may require.
pub const MAX_APPROVALS: u32 = 100;

/// `approval = { required = 2, timeout = "24h", on_timeout = "fail" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Distinct allowed approvers needed, 1 to [`MAX_APPROVALS`].
    pub required: u32,
    /// How long the gate waits from when it opens; `None` waits until
    /// someone decides.
    pub timeout: Option<HumanDuration>,
    /// What a timeout means.
    pub on_timeout: OnTimeout,
}

/// How a gate that timed out ends: never as approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// The gate fails (the default): the run fails, `when = "failure"`
    /// tasks after it run.
    #[default]
    Fail,
    /// The gate is skipped, and so is what needs it; the run does not
    /// fail for it.
    Skip,
}

impl OnTimeout {
    /// `fail` or `skip`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Skip => "skip",
        }
    }
}

/// A declared output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Where it was declared.
    pub span: Range<usize>,
    /// Labels the data carries (e.g. `pii`).
    pub labels: Vec<At<Name>>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{param_refs, substitute_params};

    #[test]
    fn parameters_are_found_and_substituted_and_nothing_else_is() {
        let text = "${params.a}-${HOME}-${params.b}${params.a}-${params.unclosed";
        let refs: Vec<_> = param_refs(text)
            .into_iter()
            .map(|(n, r)| (n, r.start))
            .collect();
        assert_eq!(refs, [("a", 0), ("b", 20), ("a", 31)]);
        let values = BTreeMap::from([("a".to_owned(), "x}${params.b".to_owned())]);
        // A value is written as it is: never expanded again.
        assert_eq!(
            substitute_params(text, &values),
            "x}${params.b-${HOME}-${params.b}x}${params.b-${params.unclosed"
        );
        assert_eq!(substitute_params("plain", &values), "plain");
    }
}
