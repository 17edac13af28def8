//! A JSON Schema of the manifest, for editors (Taplo, Even Better TOML) to
//! validate and complete manifests as people type. It says every rule of
//! the parser and the plan that draft-07 can say about one value or one
//! table: names, durations and sizes (non-zero where they must be), integer
//! ranges, ports, environment variable names, reserved guest paths, the
//! fields a gate may have. A test keeps its field lists equal to the
//! parser's, and `tests/e2e/schema.rs` checks it against `cairn validate` on
//! a corpus of good and bad manifests (`tests/manifests/schema/`).
//!
//! What JSON Schema cannot say stays the validator's alone: relations
//! (unknown tasks, outputs and parameters, cycles, a default outside its
//! `allowed`, overlapping mounts), files on disk, cron fields and time
//! zones, numbers too large for their unit, and a float written where an
//! integer belongs (`1.0` is the integer 1 to JSON Schema).

use serde_json::{Value, json};

const NAME: &str = "^[A-Za-z][A-Za-z0-9_-]{0,63}$";
/// [`NAME`] without its anchors, for patterns made of names (see [`named`]).
const NAME_PART: &str = "[A-Za-z][A-Za-z0-9_-]{0,63}";
const DURATION: &str = "^([0-9]+(ms|s|m|h|d))+$";
/// The durations of nothing (`0s`, `0m0s`), for where one is refused.
const ZERO_DURATION: &str = "^(0+(ms|s|m|h|d))+$";
/// A size of at least one byte.
const SIZE: &str = "^0*[1-9][0-9]* ?(B|KiB|MiB|GiB|KB|kB|MB|GB)?$";
/// A TCP port, 1 to 65535 (leading zeros allowed, as the parser allows them).
const PORT: &str =
    "0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
/// `${each}`, a fan-out's element.
const EACH: &str = "\\$\\{each\\}";
/// A control character (Unicode `Cc`), which a user name may not hold.
const CONTROL: &str = "[\\u0000-\\u001f\\u007f-\\u009f]";

/// `pattern` with each `NAME` in it replaced by a name's pattern.
fn named(pattern: &str) -> String {
    pattern.replace("NAME", NAME_PART)
}

/// A cron expression's shape: a nickname (any case), or 5 or 6 fields. The
/// fields themselves are croner's to check.
fn cron() -> String {
    let nicknames: Vec<String> = [
        "yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly",
    ]
    .iter()
    .map(|word| {
        word.chars()
            .map(|c| format!("[{c}{}]", c.to_ascii_uppercase()))
            .collect()
    })
    .collect();
    format!(
        "^\\s*(@({})|[^@\\s]\\S*(\\s+\\S+){{4,5}})\\s*$",
        nicknames.join("|")
    )
}

/// A notification's URL: `http` or `https` (any case), a host name or a
/// bracketed IPv6 address, a port of 1 to 65535 if any, a path and query;
/// no user name or password, no fragment, no spaces. The rest of the URL
/// grammar is the `http` crate's to check.
fn url() -> String {
    format!(
        "^[hH][tT][tT][pP][sS]?://([^/?#@\\s:\\[\\]]+|\\[[^/?#@\\s\\]]+\\])(:({PORT})?)?([/?][^#\\s]*)?$"
    )
}

/// `as`: the user a schedule's or webhook's runs start as.
fn user() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "not": { "pattern": CONTROL },
        "description": "The user its runs start as (1 to 128 characters, no control characters); policy must permit it to `trigger` the workflow."
    })
}

/// Rules between the fields of one task.
fn task_rules() -> Value {
    json!([
        {
            "description": "A gate runs nothing: beside `approval` it has only `needs` and `when`.",
            "if": { "required": ["approval"] },
            "then": { "propertyNames": { "enum": ["approval", "needs", "when"] } }
        },
        {
            "description": "`${each}` in `args` or `env` is a fan-out's element: it needs `for_each`.",
            "if": {
                "anyOf": [
                    { "required": ["args"], "properties": { "args": { "type": "array", "contains": { "type": "string", "pattern": EACH } } } },
                    { "required": ["env"], "properties": { "env": { "type": "object", "not": { "additionalProperties": { "not": { "type": "string", "pattern": EACH } } } } } }
                ]
            },
            "then": { "required": ["for_each"] }
        },
        {
            "description": "An injected secret is only sent: the task needs `network`.",
            "if": { "required": ["inject"], "properties": { "inject": { "type": "object", "minProperties": 1 } } },
            "then": { "required": ["network"], "properties": { "network": { "minItems": 1 } } }
        },
        {
            "description": "A cached task has no mounts and no network: neither is part of the cache key.",
            "if": { "required": ["cache"], "properties": { "cache": { "const": true } } },
            "then": { "properties": { "mounts": { "maxItems": 0 }, "network": { "maxItems": 0 } } }
        },
        {
            "description": "A task that runs on failure has an upstream task.",
            "if": { "required": ["when"], "properties": { "when": { "const": "failure" } } },
            "then": {
                "anyOf": [
                    { "required": ["needs"], "properties": { "needs": { "minItems": 1 } } },
                    { "required": ["inputs"], "properties": { "inputs": { "minProperties": 1 } } }
                ]
            }
        }
    ])
}

fn settings() -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert(
        "timeout".into(),
        json!({ "type": "string", "pattern": DURATION, "description": "Wall-clock limit of one attempt, e.g. \"30s\", \"1m30s\"." }),
    );
    map.insert(
        "cpu_time".into(),
        json!({ "type": "string", "pattern": DURATION, "description": "Limit on time spent running wasm code." }),
    );
    map.insert(
        "memory".into(),
        json!({ "type": "string", "pattern": SIZE, "description": "Linear-memory limit, e.g. \"64MiB\"; more than zero." }),
    );
    map.insert(
        "instances".into(),
        json!({ "type": "integer", "minimum": 1, "maximum": crate::sandbox::MAX_INSTANCES, "default": crate::sandbox::MAX_INSTANCES, "description": "Most core instances per task: a component is several (its modules, libc adapters, a language runtime's shared libraries)." }),
    );
    map.insert(
        "retries".into(),
        json!({
            "description": "Retries of retriable failures (traps, timeouts, transient errors): a count, or a table.",
            "oneOf": [
                { "type": "integer", "minimum": 0, "maximum": 100 },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "max": { "type": "integer", "minimum": 0, "maximum": 100, "description": "Attempts after the first." },
                        "backoff": { "enum": ["exponential", "fixed"], "default": "exponential" },
                        "initial": { "type": "string", "pattern": DURATION, "default": "1s" },
                        "max_delay": { "type": "string", "pattern": DURATION, "default": "1m" },
                        "jitter": { "type": "boolean", "default": true }
                    }
                }
            ]
        }),
    );
    map.insert(
        "http_requests".into(),
        json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX, "default": 100, "description": "Most HTTP requests per attempt (denied ones count too)." }),
    );
    map.insert(
        "http_request_size".into(),
        json!({ "type": "string", "pattern": SIZE, "default": "10MiB", "description": "Largest HTTP request body." }),
    );
    map.insert(
        "http_response_size".into(),
        json!({ "type": "string", "pattern": SIZE, "default": "10MiB", "description": "Largest HTTP response body." }),
    );
    map.insert(
        "http_timeout".into(),
        json!({ "type": "string", "pattern": DURATION, "default": "30s", "description": "Time limit of one HTTP request, from sending to the response's last byte." }),
    );
    map
}

/// The schema, draft-07.
#[must_use]
pub fn schema() -> Value {
    let mut task = settings();
    let task_fields = json!({
        "component": { "type": "string", "pattern": "\\S", "description": "The task's .wasm file, relative to this manifest." },
        "for_each": {
            "description": "One task per element, named TASK[KEY] (the element when all are distinct keys of letters, digits, -, _ or ., else its index); `${each}` in args and env is the element. A list or a parameter holding a JSON array of strings (expanded when the run is planned, at most 10,000), or an upstream output `TASK.OUTPUT` holding a JSON array (expanded when it arrives, at most 100,000).",
            "oneOf": [
                { "type": "array", "items": { "type": "string" }, "maxItems": super::MAX_FAN_OUT },
                { "type": "string", "pattern": named("^\\$\\{params\\.NAME\\}$") },
                { "type": "string", "pattern": named("^NAME\\.NAME$") }
            ]
        },
        "max_parallel": { "type": "integer", "minimum": 1, "maximum": u32::MAX, "description": "At most this many of a fan-out's tasks run at once (only with `for_each`)." },
        "approval": {
            "type": "object",
            "additionalProperties": false,
            "description": "Makes the task an approval gate (no component; only `needs` and `when` beside it): the tasks that need it start once enough people approve.",
            "properties": {
                "required": { "type": "integer", "minimum": 1, "maximum": super::MAX_APPROVALS, "default": 1, "description": "Distinct people, other than the run's starter, whom policy allows to approve." },
                "timeout": { "type": "string", "pattern": DURATION, "not": { "pattern": ZERO_DURATION }, "description": "How long the gate waits once open (longer than 0s); without it, until someone decides." },
                "on_timeout": { "enum": ["fail", "skip"], "default": "fail", "description": "A timed-out gate fails (the run fails) or is skipped (with what needs it); never approved." }
            }
        },
        "sha256": { "type": "string", "pattern": "^(sha256:)?[0-9a-fA-F]{64}$", "description": "Refuse to run any other bytes." },
        "build": { "type": "string", "pattern": "\\S", "description": "Shell command that builds the component." },
        "args": { "type": "array", "items": { "type": "string" } },
        "env": {
            "type": "object",
            "propertyNames": { "minLength": 1, "not": { "pattern": "[=\\u0000]" } },
            "additionalProperties": { "type": "string", "not": { "pattern": "\\u0000" } },
            "description": "Environment variables: names without `=` or NUL, values without NUL."
        },
        "mounts": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["host", "guest"],
                "properties": {
                    "host": {
                        "type": "string",
                        "pattern": "\\S",
                        "not": { "anyOf": [{ "pattern": "^/" }, { "pattern": "^(\\./+)*\\.\\.(/|$)" }] },
                        "description": "A folder inside the project, relative to this manifest."
                    },
                    "guest": {
                        "type": "string",
                        "pattern": "^/",
                        "not": { "anyOf": [{ "pattern": "/\\.\\.?(/|$)" }, { "pattern": "//" }, { "pattern": "^/(inputs|outputs)(/|$)" }] },
                        "description": "Absolute path in the task, without `.`, `..` or empty segments; not `/inputs` or `/outputs` (Cairn's own) nor inside them."
                    },
                    "mode": { "enum": ["ro", "rw"], "default": "ro" }
                }
            }
        },
        "secrets": { "type": "array", "items": { "type": "string", "pattern": NAME }, "uniqueItems": true },
        "network": { "type": "array", "items": { "type": "string", "pattern": format!("^[A-Za-z0-9.-]{{1,253}}:{PORT}$") }, "uniqueItems": true, "description": "Endpoints the task may send HTTP requests to, host:port; each request is authorized by policy (`connect`) as it is sent." },
        "inject": {
            "type": "object",
            "propertyNames": { "pattern": NAME },
            "additionalProperties": { "enum": ["headers", "headers+body"] },
            "description": "Secrets the task gets only as placeholders; the host replaces a placeholder in request headers (and bodies, with \"headers+body\") for requests policy allows (`inject_secret`)."
        },
        "inputs": {
            "type": "object",
            "propertyNames": { "pattern": NAME },
            "additionalProperties": { "type": "string", "pattern": named("^NAME(\\[\\*\\])?\\.NAME$"), "description": "An upstream output: \"task.output\", or \"task[*].output\" for every one of a fan-out's." }
        },
        "outputs": {
            "oneOf": [
                { "type": "array", "items": { "type": "string", "pattern": NAME }, "uniqueItems": true },
                {
                    "type": "object",
                    "propertyNames": { "pattern": NAME },
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": false,
                        "properties": { "labels": { "type": "array", "items": { "type": "string", "pattern": NAME }, "uniqueItems": true } }
                    }
                }
            ]
        },
        "needs": { "type": "array", "items": { "type": "string", "pattern": NAME }, "uniqueItems": true },
        "when": { "enum": ["success", "failure", "always"], "default": "success" },
        "cache": { "type": "boolean", "default": false, "description": "Reuse the outputs of an earlier successful attempt with the same component, inputs, args, env and declared capabilities. Not for tasks with mounts or network." }
    });
    if let Value::Object(fields) = task_fields {
        task.extend(fields);
    }
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Cairn workflow manifest",
        "type": "object",
        "additionalProperties": false,
        "required": ["workflow", "tasks"],
        "properties": {
            "workflow": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name"],
                "properties": {
                    "name": { "type": "string", "pattern": NAME },
                    "format": { "type": "integer", "const": super::FORMAT, "description": "Manifest format version." },
                    "description": { "type": "string" },
                    "policies": { "type": "array", "items": { "type": "string" }, "description": "Cedar files or folders." },
                    "max_active_runs": { "type": "integer", "minimum": 1, "maximum": u32::MAX, "description": "How many runs of this workflow `cairn serve` runs at once; more wait their turn." }
                }
            },
            "params": {
                "type": "object",
                "description": "Run parameters (`cairn run --param NAME=VALUE`), used in tasks' `env` and `args` as `${params.NAME}`.",
                "propertyNames": { "pattern": NAME },
                "additionalProperties": {
                    "oneOf": [
                        { "type": "string", "description": "The default value." },
                        {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["default"],
                            "properties": {
                                "default": { "type": "string" },
                                "allowed": { "type": "array", "items": { "type": "string" }, "description": "The only values it may take." },
                                "description": { "type": "string" }
                            }
                        }
                    ]
                }
            },
            "defaults": { "type": "object", "additionalProperties": false, "properties": settings() },
            "tasks": {
                "type": "object",
                "propertyNames": { "pattern": NAME, "not": { "const": "trigger" } },
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "anyOf": [{ "required": ["component"] }, { "required": ["approval"] }],
                    "dependencies": { "max_parallel": ["for_each"] },
                    "allOf": task_rules(),
                    "properties": task
                }
            },
            "schedules": {
                "type": "object",
                "description": "When `cairn serve` runs the workflow by itself.",
                "propertyNames": { "pattern": NAME },
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["cron", "as"],
                    "properties": {
                        "cron": { "type": "string", "pattern": cron(), "description": "5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or @yearly, @monthly, @weekly, @daily, @hourly." },
                        "timezone": { "type": "string", "default": "UTC", "description": "IANA time zone the cron's wall clock times are in." },
                        "as": user(),
                        "params": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "string",
                                "not": { "anyOf": [{ "pattern": "\\$\\{nominal([^:}]|$)" }, { "pattern": "\\$\\{nominal:[^}]*$" }] }
                            },
                            "description": "Run parameters its runs get; `${nominal}` or `${nominal:FORMAT}` in a value is the tick's time."
                        },
                        "dst_gap": { "enum": ["skip", "shift"], "default": "shift", "description": "A wall time the clock skips: not run, or run when the gap ends." },
                        "dst_repeat": { "enum": ["first", "second", "both"], "default": "first", "description": "A wall time the clock repeats: run at its first instant, its second, or both." },
                        "catch_up": { "enum": ["none", "latest", "all"], "default": "latest", "description": "Ticks missed while the service was down: none run, the latest runs, or all run (within catch_up_window)." },
                        "catch_up_window": { "type": "string", "pattern": DURATION, "default": "1d", "description": "How far back missed ticks are caught up." },
                        "overlap": { "enum": ["skip", "buffer_one", "allow", "cancel_previous"], "default": "skip", "description": "A tick while the schedule's previous run is still going." },
                        "jitter": { "type": "string", "pattern": DURATION, "default": "0s", "description": "Each tick starts up to this much after its nominal time (fixed per tick)." },
                        "paused": { "type": "boolean", "default": false }
                    }
                }
            },
            "webhooks": {
                "type": "object",
                "description": "Endpoints (`POST /v1/hooks/WORKFLOW/NAME` on `cairn serve`) whose signed deliveries start runs; a task takes the body as `inputs = { x = \"trigger.body\" }`.",
                "propertyNames": { "pattern": NAME },
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["scheme", "secret", "as"],
                    "properties": {
                        "scheme": { "enum": ["standard", "github"], "description": "Standard Webhooks (webhook-signature v1) or GitHub (X-Hub-Signature-256)." },
                        "secret": { "type": "string", "pattern": NAME, "description": "The secret holding the key(s): several for rotation (standard: space-separated whsec_ keys; github: one per line)." },
                        "as": user(),
                        "labels": { "type": "array", "items": { "type": "string", "pattern": NAME }, "uniqueItems": true, "default": ["untrusted"], "description": "Labels the body carries into the run." },
                        "params": {
                            "type": "object",
                            "additionalProperties": { "type": "string", "not": { "pattern": "\\$\\{nominal" } },
                            "description": "Run parameters its runs get (a webhook has no nominal time: no `${nominal}`)."
                        },
                        "tolerance": { "type": "string", "pattern": DURATION, "default": "5m", "description": "How far a standard delivery's timestamp may be from now." }
                    }
                }
            },
            "notifications": {
                "type": "object",
                "description": "Where `cairn serve` POSTs its runs' events: CloudEvents 1.0 (structured JSON), signed as Standard Webhooks, retried with backoff; each delivery is in the audit log, and each is decided by policy (`notify`) first.",
                "propertyNames": { "pattern": NAME },
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["url", "secret"],
                    "properties": {
                        "url": { "type": "string", "pattern": url(), "description": "The endpoint: https:// (or http://), host, port (1 to 65535), path; no user name or password, no fragment." },
                        "secret": { "type": "string", "pattern": NAME, "description": "The secret holding its Standard Webhooks key (whsec_ and base64)." },
                        "events": { "type": "array", "minItems": 1, "items": { "enum": ["run.started", "run.succeeded", "run.failed", "approval.requested"] }, "description": "What to send; all of them unless listed." }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::{
        FIELDS_DEFAULTS, FIELDS_NOTIFICATION, FIELDS_SCHEDULE, FIELDS_TASK, FIELDS_TOP,
        FIELDS_WEBHOOK, FIELDS_WORKFLOW,
    };
    use super::*;

    fn keys(value: &Value) -> Vec<String> {
        let mut keys: Vec<String> = value
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    fn sorted(fields: &[&str]) -> Vec<String> {
        let mut fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        fields.sort();
        fields
    }

    #[test]
    fn schema_fields_match_the_parser() {
        let s = schema();
        let props = &s["properties"];
        assert_eq!(keys(props), sorted(FIELDS_TOP));
        assert_eq!(
            keys(&props["workflow"]["properties"]),
            sorted(FIELDS_WORKFLOW)
        );
        assert_eq!(
            keys(&props["defaults"]["properties"]),
            sorted(FIELDS_DEFAULTS)
        );
        assert_eq!(
            keys(&props["tasks"]["additionalProperties"]["properties"]),
            sorted(FIELDS_TASK)
        );
        assert_eq!(
            keys(&props["schedules"]["additionalProperties"]["properties"]),
            sorted(FIELDS_SCHEDULE)
        );
        assert_eq!(
            keys(&props["webhooks"]["additionalProperties"]["properties"]),
            sorted(FIELDS_WEBHOOK)
        );
        assert_eq!(
            keys(&props["notifications"]["additionalProperties"]["properties"]),
            sorted(FIELDS_NOTIFICATION)
        );
    }
}
