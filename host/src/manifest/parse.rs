//! From TOML text to a [`Manifest`], collecting every problem on the way.
//!
//! Walks toml's spanned document tree by hand rather than through serde, so
//! that one mistake does not hide the next: each field is checked, each
//! problem recorded with its span, and parsing goes on.

use std::collections::BTreeMap;
use std::ops::Range;

use indexmap::IndexMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    Approval, At, Backoff, EACH, Edge, FORMAT, ForEach, Inject, MAX_APPROVALS, MAX_FAN_OUT,
    Manifest, MountDecl, Notification, OnTimeout, Output, Param, Retries, Schedule, Settings, Task,
    Webhook, When,
};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::digest::Digest;
use crate::name::Name;
use crate::sandbox::MountMode;
use crate::serve::schedule::{self, CatchUp, Gap, Overlap, Repeat};
use crate::serve::webhook;
use crate::units::{HumanDuration, Size};

/// Top-level keys.
pub const FIELDS_TOP: &[&str] = &[
    "workflow",
    "params",
    "defaults",
    "tasks",
    "schedules",
    "webhooks",
    "notifications",
];
/// Keys of `[notifications.NAME]`.
pub const FIELDS_NOTIFICATION: &[&str] = &["url", "secret", "events"];
/// Keys of `[webhooks.NAME]`.
pub const FIELDS_WEBHOOK: &[&str] = &["scheme", "secret", "as", "labels", "params", "tolerance"];
/// Keys of `[schedules.NAME]`.
pub const FIELDS_SCHEDULE: &[&str] = &[
    "cron",
    "timezone",
    "as",
    "params",
    "dst_gap",
    "dst_repeat",
    "catch_up",
    "catch_up_window",
    "overlap",
    "jitter",
    "paused",
];
/// Keys of `[workflow]`.
pub const FIELDS_WORKFLOW: &[&str] = &[
    "name",
    "format",
    "description",
    "policies",
    "max_active_runs",
];
/// Keys of `[defaults]`.
pub const FIELDS_DEFAULTS: &[&str] = &[
    "timeout",
    "cpu_time",
    "memory",
    "instances",
    "retries",
    "http_requests",
    "http_request_size",
    "http_response_size",
    "http_timeout",
];
/// Keys of `[tasks.NAME]`.
pub const FIELDS_TASK: &[&str] = &[
    "component",
    "approval",
    "for_each",
    "max_parallel",
    "sha256",
    "build",
    "args",
    "env",
    "mounts",
    "secrets",
    "network",
    "inject",
    "inputs",
    "outputs",
    "needs",
    "when",
    "cache",
    "timeout",
    "cpu_time",
    "memory",
    "instances",
    "retries",
    "http_requests",
    "http_request_size",
    "http_response_size",
    "http_timeout",
];
/// Keys of a task's `approval`.
pub const FIELDS_APPROVAL: &[&str] = &["required", "timeout", "on_timeout"];
/// What a gate (a task with `approval`) may say besides it.
const FIELDS_GATE: &[&str] = &["approval", "needs", "when"];
const FIELDS_RETRIES: &[&str] = &["max", "backoff", "initial", "max_delay", "jitter"];
const FIELDS_MOUNT: &[&str] = &["host", "guest", "mode"];
const FIELDS_OUTPUT: &[&str] = &["labels"];
const FIELDS_PARAM: &[&str] = &["default", "allowed", "description"];

/// Most retries a task may ask for.
const MAX_RETRIES: i64 = 100;

type Value<'i> = Spanned<DeValue<'i>>;

/// Parse manifest text. Returns the manifest only if it has no problems.
///
/// # Errors
///
/// Every problem found, each with its span.
pub fn parse(source: &str) -> Result<Manifest, Diagnostics> {
    match parse_partial(source) {
        (Some(manifest), d) if d.is_empty() => Ok(manifest),
        (_, d) => Err(d),
    }
}

/// Parse manifest text as far as it goes: the manifest (with what could be
/// read of it) whenever the TOML itself parses, and every problem found, so
/// that later checks can run on the rest and report their problems too.
#[must_use]
pub fn parse_partial(source: &str) -> (Option<Manifest>, Diagnostics) {
    let mut cx = Cx::default();
    let document =
        match DeTable::parse(source) {
            Ok(document) => document,
            Err(error) => {
                let span = error.span().unwrap_or(0..0);
                let message = error.message().trim_end_matches('\n').to_owned();
                cx.d.push(Diagnostic::at(span, format!("invalid TOML: {message}")).help(
                "fix the syntax here first; Cairn checks the rest of the file once it parses",
            ));
                return (None, cx.d);
            }
        };
    let manifest = cx.manifest(document.get_ref(), document.span());
    (Some(manifest), cx.d)
}

#[derive(Default)]
struct Cx {
    d: Diagnostics,
    /// `${params.NAME}` references in `env` and `args`: the name and where
    /// it is in the manifest, checked once every parameter is known.
    param_refs: Vec<(String, Range<usize>)>,
    /// Every schedule's and webhook's `params` (name, value), even one with
    /// other problems, checked once every parameter is known.
    trigger_params: Vec<(At<String>, At<String>)>,
}

fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl Cx {
    fn wrong_type(&mut self, value: &Value<'_>, what: &str, expected: &str) {
        let found = kind(value.get_ref());
        self.d.push(
            Diagnostic::at(
                value.span(),
                format!("{what} must be {expected}, not {found}"),
            )
            .label(found.to_string()),
        );
    }

    /// Report keys of `table` that are not in `known`, with suggestions.
    fn unknown_fields(&mut self, table: &DeTable<'_>, known: &[&str], context: &str) {
        for key in table.keys() {
            let name = key.get_ref().as_ref();
            if known.contains(&name) {
                continue;
            }
            let mut diagnostic =
                Diagnostic::at(key.span(), format!("unknown field `{name}` in {context}"))
                    .label("not a field Cairn knows");
            diagnostic = match did_you_mean(name, known.iter().copied()) {
                Some(suggestion) => diagnostic.help(format!("did you mean `{suggestion}`?")),
                None => {
                    diagnostic.help(format!("the fields of {context} are: {}", known.join(", ")))
                }
            };
            self.d.push(diagnostic);
        }
    }

    fn table<'a, 'i>(&mut self, value: &'a Value<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            _ => {
                self.wrong_type(value, what, "a table");
                None
            }
        }
    }

    fn string(&mut self, value: &Value<'_>, what: &str) -> Option<At<String>> {
        match value.get_ref() {
            DeValue::String(s) => Some(At::new(s.to_string(), value.span())),
            _ => {
                self.wrong_type(value, what, "a string");
                None
            }
        }
    }

    fn nonempty_string(&mut self, value: &Value<'_>, what: &str) -> Option<At<String>> {
        let s = self.string(value, what)?;
        if s.value.trim().is_empty() {
            self.d
                .push(Diagnostic::at(s.span, format!("{what} must not be empty")));
            return None;
        }
        Some(s)
    }

    fn name(&mut self, value: &Value<'_>, what: &str) -> Option<At<Name>> {
        let s = self.string(value, what)?;
        self.name_at(&s.value, s.span, what)
    }

    fn name_at(&mut self, text: &str, span: Range<usize>, what: &str) -> Option<At<Name>> {
        match Name::new(text) {
            Ok(name) => Some(At::new(name, span)),
            Err(_) => {
                self.d.push(
                    Diagnostic::at(span, format!("{what} `{text}` is not a valid name")).help(
                        "names are 1-64 ASCII letters, digits, `-` or `_`, starting with a letter",
                    ),
                );
                None
            }
        }
    }

    fn array<'a, 'i>(&mut self, value: &'a Value<'i>, what: &str) -> Option<&'a [Value<'i>]> {
        match value.get_ref() {
            DeValue::Array(array) => Some(array.as_ref()),
            _ => {
                self.wrong_type(value, what, "an array");
                None
            }
        }
    }

    fn strings(&mut self, value: &Value<'_>, what: &str) -> Vec<At<String>> {
        let items = self.array(value, what).unwrap_or_default();
        items
            .iter()
            .filter_map(|item| self.string(item, &format!("each item of {what}")))
            .collect()
    }

    /// A list of names with no duplicates.
    fn names(&mut self, value: &Value<'_>, what: &str, item: &str) -> Vec<At<Name>> {
        let items = self.array(value, what).unwrap_or_default();
        let mut names: Vec<At<Name>> = Vec::new();
        for entry in items {
            let Some(name) = self.name(entry, item) else {
                continue;
            };
            if let Some(first) = names.iter().find(|n| n.value == name.value) {
                let first = first.span.clone();
                self.d.push(
                    Diagnostic::at(
                        name.span,
                        format!("`{}` is listed twice in {what}", name.value),
                    )
                    .label("again here")
                    .related(first, "first here")
                    .help("remove one of them"),
                );
                continue;
            }
            names.push(name);
        }
        names
    }

    fn integer(&mut self, value: &Value<'_>, what: &str) -> Option<At<i64>> {
        match value.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(At::new(n, value.span())),
                Err(_) => {
                    self.d.push(Diagnostic::at(
                        value.span(),
                        format!("{what} is out of range"),
                    ));
                    None
                }
            },
            _ => {
                self.wrong_type(value, what, "an integer");
                None
            }
        }
    }

    fn boolean(&mut self, value: &Value<'_>, what: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(value, what, "`true` or `false`");
                None
            }
        }
    }

    fn duration(&mut self, value: &Value<'_>, what: &str) -> Option<At<HumanDuration>> {
        let s = self.string(value, what)?;
        match s.value.parse::<HumanDuration>() {
            Ok(d) => Some(At::new(d, s.span)),
            Err(e) => {
                self.d.push(Diagnostic::at(s.span, format!("{what}: {e}")));
                None
            }
        }
    }

    fn size(&mut self, value: &Value<'_>, what: &str) -> Option<At<Size>> {
        let s = self.string(value, what)?;
        match s.value.parse::<Size>() {
            Ok(size) if size.0 > 0 => Some(At::new(size, s.span)),
            Ok(_) => {
                self.d.push(Diagnostic::at(
                    s.span,
                    format!("{what} must be more than zero"),
                ));
                None
            }
            Err(e) => {
                self.d.push(Diagnostic::at(s.span, format!("{what}: {e}")));
                None
            }
        }
    }

    /// One of `choices`, as a string.
    fn choice(&mut self, value: &Value<'_>, what: &str, choices: &[&str]) -> Option<At<String>> {
        let s = self.string(value, what)?;
        if choices.contains(&s.value.as_str()) {
            return Some(s);
        }
        let listed = choices
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let help = match did_you_mean(&s.value, choices.iter().copied()) {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None => format!("use one of {listed}"),
        };
        self.d.push(
            Diagnostic::at(
                s.span.clone(),
                format!("{what} must be one of {listed}, not `{}`", s.value),
            )
            .help(help),
        );
        None
    }

    fn manifest(&mut self, top: &DeTable<'_>, span: Range<usize>) -> Manifest {
        self.unknown_fields(top, FIELDS_TOP, "the manifest");
        let mut name = None;
        let mut format = FORMAT;
        let mut description = None;
        let mut policies = Vec::new();
        let mut max_active_runs = None;
        let mut defaults = Settings::default();
        let mut params = IndexMap::new();
        // Every key of `[params]`, even one whose declaration has problems
        // (reported there, not again at each use).
        let mut declared = Vec::new();
        let mut tasks = IndexMap::new();
        let mut schedules = IndexMap::new();
        let mut webhooks = IndexMap::new();
        let mut notifications = IndexMap::new();
        let mut saw_workflow = false;
        for (key, value) in top {
            match key.get_ref().as_ref() {
                "workflow" => {
                    saw_workflow = true;
                    let Some(table) = self.table(value, "`[workflow]`") else {
                        continue;
                    };
                    self.unknown_fields(table, FIELDS_WORKFLOW, "`[workflow]`");
                    for (key, value) in table {
                        match key.get_ref().as_ref() {
                            "name" => name = self.name(value, "the workflow name"),
                            "format" => {
                                if let Some(n) = self.integer(value, "`format`") {
                                    if n.value != FORMAT {
                                        self.d.push(Diagnostic::at(
                                            n.span,
                                            format!("manifest format {} is not supported", n.value),
                                        ).help(format!(
                                            "this version of Cairn reads format {FORMAT}; upgrade Cairn or write format {FORMAT}"
                                        )));
                                    }
                                    format = n.value;
                                }
                            }
                            "description" => {
                                description = self.string(value, "the description").map(|s| s.value)
                            }
                            "policies" => policies = self.strings(value, "`policies`"),
                            "max_active_runs" => {
                                if let Some(n) = self.integer(value, "`max_active_runs`") {
                                    match u32::try_from(n.value) {
                                        Ok(most) if most >= 1 => {
                                            max_active_runs = Some(At::new(most, n.span));
                                        }
                                        _ => self.d.push(
                                            Diagnostic::at(
                                                n.span,
                                                "`max_active_runs` must be at least 1",
                                            )
                                            .help("leave it out for no limit of the workflow's own; `cairn serve --jobs` still limits tasks"),
                                        ),
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    if name.is_none() && !table.keys().any(|k| k.get_ref() == "name") {
                        self.d.push(
                            Diagnostic::at(key.span(), "`[workflow]` has no `name`")
                                .help("add `name = \"my-workflow\"` under `[workflow]`"),
                        );
                    }
                }
                "params" => {
                    if let Some(table) = self.table(value, "`[params]`") {
                        declared = table.keys().map(|k| k.get_ref().to_string()).collect();
                        params = self.params(table);
                    }
                }
                "defaults" => {
                    if let Some(table) = self.table(value, "`[defaults]`") {
                        self.unknown_fields(table, FIELDS_DEFAULTS, "`[defaults]`");
                        defaults = self.settings(table);
                    }
                }
                "tasks" => {
                    let Some(table) = self.table(value, "`[tasks]`") else {
                        continue;
                    };
                    for (key, value) in table {
                        let Some(task_name) =
                            self.name_at(key.get_ref(), key.span(), "the task name")
                        else {
                            continue;
                        };
                        if let Some(task) = self.task(task_name, value) {
                            tasks.insert(task.name.value.clone(), task);
                        }
                    }
                }
                "schedules" => {
                    if let Some(table) = self.table(value, "`[schedules]`") {
                        schedules = self.named(table, "a schedule", Self::schedule);
                    }
                }
                "webhooks" => {
                    if let Some(table) = self.table(value, "`[webhooks]`") {
                        webhooks = self.named(table, "a webhook", Self::webhook);
                    }
                }
                "notifications" => {
                    if let Some(table) = self.table(value, "`[notifications]`") {
                        notifications = self.named(table, "a notification", Self::notification);
                    }
                }
                _ => {}
            }
        }
        self.check_trigger_params(&params, &declared);
        if !saw_workflow {
            self.d.push(
                Diagnostic::at(
                    span.start..span.start,
                    "the manifest has no `[workflow]` table",
                )
                .help("start the file with `[workflow]` and a `name = \"...\"` line"),
            );
        }
        if saw_workflow && tasks.is_empty() && !top.keys().any(|k| k.get_ref() == "tasks") {
            self.d.push(
                Diagnostic::at(span.start..span.start, "the workflow has no tasks")
                    .help("add a task: `[tasks.hello]` with `component = \"hello.wasm\"`"),
            );
        }
        for (used, at) in std::mem::take(&mut self.param_refs) {
            if declared.contains(&used) {
                continue;
            }
            let help = match did_you_mean(&used, declared.iter().map(String::as_str)) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!("declare it: `[params]` with `{used} = \"default value\"`"),
            };
            self.d.push(
                Diagnostic::at(at, format!("unknown parameter `{used}`"))
                    .label("not in `[params]`")
                    .help(help),
            );
        }
        // Without a valid name, go on under a stand-in; its problem is reported.
        let name = name.unwrap_or_else(|| At::new(Name::stand_in(), span.start..span.start));
        Manifest {
            format,
            name,
            description,
            policies,
            max_active_runs,
            params,
            defaults,
            tasks,
            schedules,
            webhooks,
            notifications,
        }
    }

    /// `[KIND.NAME]` tables (`what` names one, e.g. "a webhook"), each
    /// read by `one` given its name and the span of its key.
    fn named<T>(
        &mut self,
        table: &DeTable<'_>,
        what: &str,
        mut one: impl FnMut(&mut Self, At<Name>, Range<usize>, &DeTable<'_>) -> Option<T>,
    ) -> IndexMap<Name, T> {
        let mut all = IndexMap::new();
        let kind = what.trim_start_matches("a ");
        for (key, value) in table {
            let Some(name) = self.name_at(key.get_ref(), key.span(), &format!("the {kind} name"))
            else {
                continue;
            };
            let Some(spec) = self.table(value, what) else {
                continue;
            };
            let id = name.value.clone();
            if let Some(item) = one(self, name, key.span(), spec) {
                all.insert(id, item);
            }
        }
        all
    }

    /// `as = "USER"` of a schedule or webhook (`whose`), its runs'
    /// principal.
    fn principal(&mut self, value: &Value<'_>, whose: &str, example: &str) -> Option<String> {
        let s = self.string(value, "`as`")?;
        if crate::serve::tokens::check_user(&s.value).is_ok() {
            return Some(s.value);
        }
        self.d.push(
            Diagnostic::at(
                s.span,
                "`as` must be a user name: 1 to 128 characters, no control characters",
            )
            .help(format!(
                "the user the {whose}'s runs start as, e.g. `as = \"{example}\"`"
            )),
        );
        None
    }

    /// `params = { NAME = "VALUE" }` of a schedule or webhook (`whose`),
    /// each checked against `[params]` once all are known.
    fn trigger_params(&mut self, value: &Value<'_>, whose: &str) -> BTreeMap<String, String> {
        let mut params = BTreeMap::new();
        let Some(t) = self.table(value, &format!("the {whose}'s `params`")) else {
            return params;
        };
        for (pk, pv) in t {
            if let Some(v) = self.string(pv, &format!("a {whose} parameter")) {
                if v.value.contains(schedule::NOMINAL) {
                    let filled = if whose == "schedule" {
                        schedule::fill_nominal(
                            &v.value,
                            jiff::Timestamp::UNIX_EPOCH,
                            &jiff::tz::TimeZone::UTC,
                        )
                        .err()
                    } else {
                        Some(format!(
                            "a {whose} has no nominal time: only a schedule's parameters take `${{nominal}}`"
                        ))
                    };
                    if let Some(why) = filled {
                        self.d.push(Diagnostic::at(v.span.clone(), why).help(
                            "`${nominal}` is the tick's instant (RFC 3339, UTC); `${nominal:%Y-%m-%d}` formats it on the schedule's clock (strftime)",
                        ));
                        continue;
                    }
                }
                let name = At::new(pk.get_ref().to_string(), pk.span());
                params.insert(name.value.clone(), v.value.clone());
                self.trigger_params.push((name, v));
            }
        }
        params
    }

    /// A problem for each of `required` (field, help) that `table` (the
    /// `whose` table at `key`) lacks.
    fn require(
        &mut self,
        table: &DeTable<'_>,
        key: &Range<usize>,
        whose: &str,
        required: &[(&str, &str)],
    ) {
        for (field, help) in required {
            if !table.keys().any(|k| k.get_ref() == *field) {
                self.d.push(
                    Diagnostic::at(key.clone(), format!("{whose} has no `{field}`")).help(*help),
                );
            }
        }
    }

    fn webhook(
        &mut self,
        name: At<Name>,
        key: Range<usize>,
        table: &DeTable<'_>,
    ) -> Option<Webhook> {
        self.unknown_fields(table, FIELDS_WEBHOOK, "a webhook");
        let problems = self.d.len();
        let mut scheme = None;
        let mut secret = None;
        let mut principal = None;
        let mut labels = None;
        let mut params = BTreeMap::new();
        let mut tolerance = std::time::Duration::from_secs(300);
        for (k, value) in table {
            match k.get_ref().as_ref() {
                "scheme" => {
                    scheme = self
                        .choice(value, "`scheme`", webhook::Scheme::NAMES)
                        .and_then(|c| webhook::Scheme::from_name(&c.value));
                }
                "secret" => secret = self.name(value, "the webhook's `secret`"),
                "as" => principal = self.principal(value, "webhook", "github"),
                "labels" => {
                    labels = Some(
                        self.names(value, "`labels`", "a label")
                            .into_iter()
                            .map(|l| l.value.to_string())
                            .collect::<std::collections::BTreeSet<_>>(),
                    );
                }
                "params" => params = self.trigger_params(value, "webhook"),
                "tolerance" => {
                    if let Some(d) = self.duration(value, "`tolerance`") {
                        tolerance = d.value.0;
                    }
                }
                _ => {}
            }
        }
        let whose = format!("webhook `{}`", name.value);
        self.require(
            table,
            &key,
            &whose,
            &[
                (
                    "scheme",
                    "how deliveries are signed: `scheme = \"github\"` (X-Hub-Signature-256) or `\"standard\"` (Standard Webhooks)",
                ),
                (
                    "secret",
                    "name the secret holding its key, e.g. `secret = \"GITHUB_WEBHOOK\"`; `cairn serve --secret GITHUB_WEBHOOK=env:...` gives its value",
                ),
                (
                    "as",
                    "name the user its runs start as, e.g. `as = \"github\"`; the workflow's policies must permit that user to `trigger` it",
                ),
            ],
        );
        if self.d.len() > problems {
            return None;
        }
        let spec = webhook::Spec {
            name: name.value.to_string(),
            scheme: scheme?,
            secret: secret?.value,
            principal: principal?,
            labels: labels.unwrap_or_else(|| std::iter::once("untrusted".to_owned()).collect()),
            params,
            tolerance,
        };
        Some(Webhook { name, spec })
    }

    fn notification(
        &mut self,
        name: At<Name>,
        key: Range<usize>,
        table: &DeTable<'_>,
    ) -> Option<Notification> {
        use crate::observe::notify;
        self.unknown_fields(table, FIELDS_NOTIFICATION, "a notification");
        let problems = self.d.len();
        let mut endpoint = None;
        let mut secret = None;
        let mut events = None;
        for (k, value) in table {
            match k.get_ref().as_ref() {
                "url" => {
                    if let Some(url) = self.string(value, "`url`") {
                        match notify::Endpoint::parse(&url.value) {
                            Ok(e) => endpoint = Some(e),
                            Err(why) => self.d.push(
                                Diagnostic::at(url.span, format!("`url` `{}`: {why}", url.value))
                                    .help("e.g. `url = \"https://hooks.example.com/cairn\"`"),
                            ),
                        }
                    }
                }
                "secret" => secret = self.name(value, "the notification's `secret`"),
                "events" => {
                    let items = self.array(value, "`events`").unwrap_or_default();
                    let mut kinds = std::collections::BTreeSet::new();
                    for item in items {
                        if let Some(c) = self.choice(item, "each of `events`", notify::Kind::NAMES)
                            && let Some(kind) = notify::Kind::from_name(&c.value)
                        {
                            kinds.insert(kind);
                        }
                    }
                    if kinds.is_empty() && self.d.len() == problems {
                        self.d.push(
                            Diagnostic::at(value.span(), "`events` is empty")
                                .help("list what to send, e.g. `events = [\"run.failed\"]`, or leave `events` out for all"),
                        );
                    }
                    events = Some(kinds);
                }
                _ => {}
            }
        }
        let whose = format!("notification `{}`", name.value);
        self.require(
            table,
            &key,
            &whose,
            &[
                (
                    "url",
                    "say where its events are POSTed, e.g. `url = \"https://hooks.example.com/cairn\"`",
                ),
                (
                    "secret",
                    "name the secret holding its Standard Webhooks key (`whsec_...`), e.g. `secret = \"OPS_NOTIFY_KEY\"`; `cairn serve --secret OPS_NOTIFY_KEY=env:...` gives its value",
                ),
            ],
        );
        if self.d.len() > problems {
            return None;
        }
        let spec = notify::Spec {
            name: name.value.to_string(),
            endpoint: endpoint?,
            secret: secret?.value,
            events: events.unwrap_or_else(|| notify::Kind::ALL.into_iter().collect()),
        };
        Some(Notification { name, spec })
    }

    fn schedule(
        &mut self,
        name: At<Name>,
        key: Range<usize>,
        table: &DeTable<'_>,
    ) -> Option<Schedule> {
        self.unknown_fields(table, FIELDS_SCHEDULE, "a schedule");
        let problems = self.d.len();
        let mut cron = None;
        let mut timezone = ("UTC".to_owned(), jiff::tz::TimeZone::UTC);
        let mut principal = None;
        let mut params = BTreeMap::new();
        let mut gap = Gap::Shift;
        let mut repeat = Repeat::First;
        let mut catch_up = CatchUp::Latest;
        let mut window = std::time::Duration::from_secs(86_400);
        let mut overlap = Overlap::Skip;
        let mut jitter = std::time::Duration::ZERO;
        let mut paused = false;
        for (k, value) in table {
            match k.get_ref().as_ref() {
                "cron" => {
                    let Some(s) = self.string(value, "`cron`") else {
                        continue;
                    };
                    match schedule::Cron::parse(&s.value) {
                        Ok(c) => cron = Some(c),
                        Err(e) => self.d.push(Diagnostic::at(s.span, e).help(
                            "e.g. `cron = \"0 2 * * *\"` (02:00 every day), `\"*/15 * * * *\"`, `\"0 30 9 * * 1-5\"` (seconds first) or `\"@daily\"`",
                        )),
                    }
                }
                "timezone" => {
                    let Some(s) = self.string(value, "`timezone`") else {
                        continue;
                    };
                    match schedule::zone(&s.value) {
                        Ok(zone) => timezone = (s.value, zone),
                        Err(e) => self.d.push(Diagnostic::at(s.span, e).help(
                            "an IANA time zone name from the tz database bundled with Cairn: `UTC`, `Europe/Berlin`, `America/New_York`",
                        )),
                    }
                }
                "as" => principal = self.principal(value, "schedule", "scheduler"),
                "params" => params = self.trigger_params(value, "schedule"),
                "dst_gap" => {
                    if let Some(c) = self.choice(value, "`dst_gap`", Gap::NAMES) {
                        gap = Gap::from_name(&c.value).unwrap_or(gap);
                    }
                }
                "dst_repeat" => {
                    if let Some(c) = self.choice(value, "`dst_repeat`", Repeat::NAMES) {
                        repeat = Repeat::from_name(&c.value).unwrap_or(repeat);
                    }
                }
                "catch_up" => {
                    if let Some(c) = self.choice(value, "`catch_up`", CatchUp::NAMES) {
                        catch_up = CatchUp::from_name(&c.value).unwrap_or(catch_up);
                    }
                }
                "overlap" => {
                    if let Some(c) = self.choice(value, "`overlap`", Overlap::NAMES) {
                        overlap = Overlap::from_name(&c.value).unwrap_or(overlap);
                    }
                }
                "catch_up_window" => {
                    if let Some(d) = self.duration(value, "`catch_up_window`") {
                        window = d.value.0;
                    }
                }
                "jitter" => {
                    if let Some(d) = self.duration(value, "`jitter`") {
                        jitter = d.value.0;
                    }
                }
                "paused" => {
                    if let Some(b) = self.boolean(value, "`paused`") {
                        paused = b;
                    }
                }
                _ => {}
            }
        }
        let whose = format!("schedule `{}`", name.value);
        self.require(
            table,
            &key,
            &whose,
            &[
                (
                    "cron",
                    "add when it runs, e.g. `cron = \"0 2 * * *\"` (02:00 every day, in `timezone`, UTC by default)",
                ),
                (
                    "as",
                    "name the user its runs start as, e.g. `as = \"scheduler\"`; the workflow's policies must permit that user to `trigger` it",
                ),
            ],
        );
        if self.d.len() > problems {
            return None;
        }
        let spec = schedule::Spec {
            name: name.value.to_string(),
            cron: cron?,
            timezone: timezone.0,
            zone: timezone.1,
            gap,
            repeat,
            catch_up,
            window,
            overlap,
            jitter,
            principal: principal?,
            params,
            paused,
        };
        Some(Schedule { name, spec })
    }

    /// Each schedule's `params` are declared parameters, with values they
    /// allow.
    fn check_trigger_params(&mut self, params: &IndexMap<Name, Param>, declared: &[String]) {
        for (name, value) in &std::mem::take(&mut self.trigger_params) {
            let Some(param) = params
                .iter()
                .find(|(n, _)| n.as_str() == name.value)
                .map(|(_, p)| p)
            else {
                if declared.contains(&name.value) {
                    continue;
                }
                let help = match did_you_mean(&name.value, declared.iter().map(String::as_str)) {
                    Some(suggestion) => format!("did you mean `{suggestion}`?"),
                    None => format!(
                        "declare it: `[params]` with `{} = \"default value\"`",
                        name.value
                    ),
                };
                self.d.push(
                    Diagnostic::at(
                        name.span.clone(),
                        format!("unknown parameter `{}`", name.value),
                    )
                    .label("not in `[params]`")
                    .help(help),
                );
                continue;
            };
            if value.value.contains(schedule::NOMINAL) {
                if !param.allowed.is_empty() {
                    self.d.push(
                        Diagnostic::at(
                            value.span.clone(),
                            format!(
                                "parameter `{}` has `allowed` values, so a nominal time cannot fill it",
                                name.value
                            ),
                        )
                        .help("drop its `allowed` list, or give the schedule one of its values"),
                    );
                }
                continue;
            }
            if !param.allowed.is_empty() && !param.allowed.iter().any(|a| a.value == value.value) {
                let allowed: Vec<String> = param
                    .allowed
                    .iter()
                    .map(|a| format!("`{}`", a.value))
                    .collect();
                self.d.push(
                    Diagnostic::at(
                        value.span.clone(),
                        format!(
                            "`{}` is not an allowed value of parameter `{}`",
                            value.value, name.value
                        ),
                    )
                    .help(format!("use one of {}", allowed.join(", "))),
                );
            }
        }
    }

    fn params(&mut self, table: &DeTable<'_>) -> IndexMap<Name, Param> {
        let mut params = IndexMap::new();
        for (key, value) in table {
            let Some(name) = self.name_at(key.get_ref(), key.span(), "the parameter name") else {
                continue;
            };
            let param = if let DeValue::Table(spec) = value.get_ref() {
                self.unknown_fields(spec, FIELDS_PARAM, "a parameter");
                let mut default = None;
                let mut allowed = Vec::new();
                let mut description = None;
                for (key, value) in spec {
                    match key.get_ref().as_ref() {
                        "default" => default = self.string(value, "the parameter's `default`"),
                        "allowed" => allowed = self.strings(value, "`allowed`"),
                        "description" => {
                            description = self.string(value, "`description`").map(|s| s.value);
                        }
                        _ => {}
                    }
                }
                let Some(default) = default else {
                    if !spec.keys().any(|k| k.get_ref() == "default") {
                        self.d.push(
                            Diagnostic::at(
                                key.span(),
                                format!("parameter `{}` has no `default`", name.value),
                            )
                            .help("every parameter has a default: `default = \"...\"`"),
                        );
                    }
                    continue;
                };
                if !allowed.is_empty() && !allowed.iter().any(|a| a.value == default.value) {
                    self.d.push(
                        Diagnostic::at(
                            default.span.clone(),
                            format!("the default `{}` is not one of `allowed`", default.value),
                        )
                        .help("add it to `allowed`, or pick an allowed default"),
                    );
                }
                Param {
                    name: name.clone(),
                    default,
                    allowed,
                    description,
                }
            } else {
                let what = format!("parameter `{}` (its default, or a table)", name.value);
                let Some(default) = self.string(value, &what) else {
                    continue;
                };
                Param {
                    name: name.clone(),
                    default,
                    allowed: Vec::new(),
                    description: None,
                }
            };
            params.insert(name.value, param);
        }
        params
    }

    /// Note the `${params.NAME}` references in `s` (a string of the manifest).
    fn note_param_refs(&mut self, s: &At<String>) {
        // The string's span includes its quotes; escapes are rare enough in
        // these values to point at the string's start when they shift.
        let quote = usize::from(s.span.len() > s.value.len());
        for (name, range) in crate::manifest::param_refs(&s.value) {
            let start = s.span.start + quote + range.start;
            let end = (s.span.start + quote + range.end).min(s.span.end);
            self.param_refs
                .push((name.to_owned(), start..end.max(start)));
        }
    }

    fn settings(&mut self, table: &DeTable<'_>) -> Settings {
        let mut settings = Settings::default();
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "timeout" => settings.timeout = self.duration(value, "`timeout`"),
                "cpu_time" => settings.cpu_time = self.duration(value, "`cpu_time`"),
                "memory" => settings.memory = self.size(value, "`memory`"),
                "instances" => {
                    settings.instances = self.integer(value, "`instances`").and_then(|n| {
                        let max = crate::sandbox::MAX_INSTANCES;
                        match u32::try_from(n.value) {
                            Ok(count) if count > 0 && count as usize <= max => {
                                Some(At::new(count, n.span))
                            }
                            _ => {
                                self.d.push(
                                    Diagnostic::at(
                                        n.span,
                                        format!("`instances` must be 1 to {max} core instances"),
                                    )
                                    .help(format!(
                                        "a component is several core instances (CPython in componentize-py 0.25 is 14); {max} is the most a task may have"
                                    )),
                                );
                                None
                            }
                        }
                    });
                }
                "retries" => settings.retries = self.retries(value),
                "http_requests" => {
                    settings.http_requests = self.integer(value, "`http_requests`").and_then(|n| {
                        match u32::try_from(n.value) {
                            Ok(count) if count > 0 => Some(At::new(count, n.span)),
                            _ => {
                                self.d.push(Diagnostic::at(
                                    n.span,
                                    "`http_requests` must be a positive number of requests",
                                ));
                                None
                            }
                        }
                    });
                }
                "http_request_size" => {
                    settings.http_request_size = self.size(value, "`http_request_size`");
                }
                "http_response_size" => {
                    settings.http_response_size = self.size(value, "`http_response_size`");
                }
                "http_timeout" => settings.http_timeout = self.duration(value, "`http_timeout`"),
                _ => {}
            }
        }
        settings
    }

    fn retries(&mut self, value: &Value<'_>) -> Option<At<Retries>> {
        let mut retries = Retries {
            max: 0,
            backoff: Backoff::Exponential,
            initial: HumanDuration(std::time::Duration::from_secs(1)),
            max_delay: HumanDuration(std::time::Duration::from_secs(60)),
            jitter: true,
        };
        let table = match value.get_ref() {
            // `retries = 3`: three retries with the default backoff.
            DeValue::Integer(_) => {
                retries.max = self.retry_count(value)?;
                return Some(At::new(retries, value.span()));
            }
            DeValue::Table(table) => table,
            _ => {
                self.wrong_type(
                    value,
                    "`retries`",
                    "a number or a table like `{ max = 3, backoff = \"exponential\" }`",
                );
                return None;
            }
        };
        self.unknown_fields(table, FIELDS_RETRIES, "`retries`");
        let mut ok = true;
        let mut delays_ok = true;
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "max" => match self.retry_count(value) {
                    Some(max) => retries.max = max,
                    None => ok = false,
                },
                "backoff" => match self.choice(value, "`backoff`", &["exponential", "fixed"]) {
                    Some(s) if s.value == "fixed" => retries.backoff = Backoff::Fixed,
                    Some(_) => retries.backoff = Backoff::Exponential,
                    None => ok = false,
                },
                "initial" => match self.duration(value, "`initial`") {
                    Some(d) => retries.initial = d.value,
                    None => delays_ok = false,
                },
                "max_delay" => match self.duration(value, "`max_delay`") {
                    Some(d) => retries.max_delay = d.value,
                    None => delays_ok = false,
                },
                "jitter" => match self.boolean(value, "`jitter`") {
                    Some(j) => retries.jitter = j,
                    None => ok = false,
                },
                _ => {}
            }
        }
        if delays_ok && retries.initial > retries.max_delay {
            self.d.push(
                Diagnostic::at(
                    value.span(),
                    format!(
                        "`initial` ({}) is longer than `max_delay` ({})",
                        retries.initial, retries.max_delay
                    ),
                )
                .help("make `max_delay` at least as long as `initial`"),
            );
            ok = false;
        }
        (ok && delays_ok).then(|| At::new(retries, value.span()))
    }

    fn retry_count(&mut self, value: &Value<'_>) -> Option<u32> {
        let n = self.integer(value, "the number of retries")?;
        match u32::try_from(n.value) {
            Ok(max) if n.value <= MAX_RETRIES => Some(max),
            _ => {
                self.d.push(Diagnostic::at(
                    n.span,
                    format!("the number of retries must be between 0 and {MAX_RETRIES}"),
                ));
                None
            }
        }
    }

    fn task(&mut self, name: At<Name>, value: &Value<'_>) -> Option<Task> {
        let what = format!("task `{}`", name.value);
        let table = self.table(value, &format!("`[tasks.{}]`", name.value))?;
        self.unknown_fields(table, FIELDS_TASK, &format!("`[tasks.{}]`", name.value));
        let mut task = Task {
            name: name.clone(),
            component: At::new(String::new(), name.span.clone()),
            sha256: None,
            build: None,
            args: Vec::new(),
            env: IndexMap::new(),
            mounts: Vec::new(),
            secrets: Vec::new(),
            network: Vec::new(),
            inject: IndexMap::new(),
            inputs: IndexMap::new(),
            outputs: IndexMap::new(),
            needs: Vec::new(),
            when: At::new(When::Success, name.span.clone()),
            cache: At::new(false, name.span.clone()),
            settings: self.settings(table),
            approval: None,
            for_each: None,
            max_parallel: None,
        };
        if let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref() == "approval") {
            task.approval = self.approval(value);
            for (other, _) in table {
                let field = other.get_ref().as_ref();
                if !FIELDS_GATE.contains(&field) && FIELDS_TASK.contains(&field) {
                    self.d.push(
                        Diagnostic::at(
                            other.span(),
                            format!("{what} is an approval gate and runs nothing: it takes no `{field}`"),
                        )
                        .related(key.span(), "a gate because of this")
                        .help("a gate has `approval`, `needs` and `when`; put the work in a task that needs the gate"),
                    );
                }
            }
            if task.needs.is_empty() {
                task.needs = self.names_of(table, "needs");
            }
            if let Some(when) = table.iter().find(|(k, _)| k.get_ref() == "when") {
                task.when = self.when(when.1).unwrap_or(task.when);
            }
            return Some(task);
        }
        let mut component = None;
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "component" => component = self.nonempty_string(value, "`component`"),
                "sha256" => {
                    let Some(s) = self.string(value, "`sha256`") else {
                        continue;
                    };
                    match s.value.parse::<Digest>() {
                        Ok(digest) => task.sha256 = Some(At::new(digest, s.span)),
                        Err(e) => {
                            self.d.push(
                                Diagnostic::at(s.span, e.to_string())
                                    .help("print a file's digest with `sha256sum FILE`"),
                            );
                        }
                    }
                }
                "build" => task.build = self.nonempty_string(value, "`build`"),
                "args" => {
                    let args = self.strings(value, "`args`");
                    for arg in &args {
                        self.note_param_refs(arg);
                    }
                    task.args = args.into_iter().map(|s| s.value).collect();
                }
                "env" => task.env = self.env(value),
                "mounts" => task.mounts = self.mounts(value),
                "secrets" => task.secrets = self.names(value, "`secrets`", "the secret name"),
                "network" => task.network = self.hosts(value),
                "inject" => task.inject = self.inject(value),
                "inputs" => task.inputs = self.inputs(value),
                "outputs" => task.outputs = self.outputs(value),
                "needs" => task.needs = self.names(value, "`needs`", "the task name"),
                "for_each" => task.for_each = self.for_each(value),
                "max_parallel" => {
                    if let Some(n) = self.integer(value, "`max_parallel`") {
                        match u32::try_from(n.value) {
                            Ok(most) if most >= 1 => {
                                task.max_parallel = Some(At::new(most, n.span));
                            }
                            _ => self.d.push(
                                Diagnostic::at(n.span, "`max_parallel` must be at least 1")
                                    .help("how many of the task's expanded tasks may run at once"),
                            ),
                        }
                    }
                }
                "cache" => {
                    if let Some(cache) = self.boolean(value, "`cache`") {
                        task.cache = At::new(cache, value.span());
                    }
                }
                "when" => {
                    if let Some(when) = self.when(value) {
                        task.when = when;
                    }
                }
                _ => {}
            }
        }
        match component {
            Some(component) => task.component = component,
            None if !table.keys().any(|k| k.get_ref() == "component") => {
                self.d.push(
                    Diagnostic::at(name.span.clone(), format!("{what} has no `component`"))
                        .help("add `component = \"path/to/task.wasm\"`, relative to this manifest"),
                );
            }
            None => {}
        }
        if let (Some(most), None) = (&task.max_parallel, &task.for_each) {
            self.d.push(
                Diagnostic::at(most.span.clone(), format!("{what} has `max_parallel` but no `for_each`"))
                    .help("`max_parallel` limits how many of a fan-out's tasks run at once; add `for_each = [..]` or remove it"),
            );
        }
        if task.for_each.is_none() {
            let uses_each = task.args.iter().any(|a| a.contains(EACH))
                || task.env.values().any(|v| v.contains(EACH));
            if uses_each {
                self.d.push(
                    Diagnostic::at(name.span.clone(), format!("{what} uses `${{each}}` but has no `for_each`"))
                        .help("`${each}` is the element of a fan-out: add `for_each = [\"a\", \"b\"]`, or remove it"),
                );
            }
        }
        for (secret, at) in &task.inject {
            if let Some(read) = task.secrets.iter().find(|s| &s.value == secret) {
                self.d.push(
                    Diagnostic::at(
                        at.span.clone(),
                        format!("{what} declares secret `{secret}` in both `secrets` and `inject`"),
                    )
                    .related(read.span.clone(), "also declared here")
                    .help("keep it in `inject` if the task only sends it (it never sees the value), in `secrets` if it must read it"),
                );
            }
            if task.network.is_empty() {
                self.d.push(
                    Diagnostic::at(
                        at.span.clone(),
                        format!("{what} injects secret `{secret}` but declares no `network`"),
                    )
                    .help("list the endpoints it sends requests to, e.g. `network = [\"api.example.com:443\"]`"),
                );
            }
        }
        if task.cache.value {
            let reason = if !task.mounts.is_empty() {
                Some("it mounts host folders, whose contents are not part of the cache key")
            } else if !task.network.is_empty() {
                Some("it reaches the network, and a cache hit would not make its requests")
            } else {
                None
            };
            if let Some(reason) = reason {
                self.d.push(
                    Diagnostic::at(task.cache.span.clone(), format!("{what} cannot be cached: {reason}"))
                        .help("remove `cache = true`, or pass the data in as an input from an upstream task"),
                );
            }
        }
        Some(task)
    }

    fn when(&mut self, value: &Value<'_>) -> Option<At<When>> {
        let s = self.choice(value, "`when`", &["success", "failure", "always"])?;
        let when = match s.value.as_str() {
            "failure" => When::Failure,
            "always" => When::Always,
            _ => When::Success,
        };
        Some(At::new(when, s.span))
    }

    /// The names under `key` in `table`, if it has one.
    fn names_of(&mut self, table: &DeTable<'_>, key: &str) -> Vec<At<Name>> {
        table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, value)| self.names(value, "`needs`", "the task name"))
            .unwrap_or_default()
    }

    fn for_each(&mut self, value: &Value<'_>) -> Option<At<ForEach>> {
        let help = "fan out over a list, `for_each = [\"eu\", \"us\"]`, a parameter holding a JSON array of strings, `for_each = \"${params.regions}\"`, or an upstream output holding a JSON array, `for_each = \"list.regions\"`";
        match value.get_ref() {
            DeValue::Array(items) => {
                if items.len() > MAX_FAN_OUT {
                    self.d.push(
                        Diagnostic::at(
                            value.span(),
                            format!(
                                "`for_each` has {} elements; a fan-out has at most {MAX_FAN_OUT}",
                                items.len()
                            ),
                        )
                        .help("split the work into fewer, larger tasks"),
                    );
                    return None;
                }
                let elements: Vec<String> = self
                    .strings(value, "`for_each`")
                    .into_iter()
                    .map(|s| s.value)
                    .collect();
                (elements.len() == items.len())
                    .then(|| At::new(ForEach::List(elements), value.span()))
            }
            DeValue::String(text) => {
                let refs = super::param_refs(text);
                // `task.output`, an upstream output.
                let output = (!text.contains('$'))
                    .then(|| text.split_once('.'))
                    .flatten()
                    .and_then(|(task, output)| {
                        Some((Name::new(task).ok()?, Name::new(output).ok()?))
                    });
                match refs.as_slice() {
                    [(name, range)] if range.start == 0 && range.end == text.len() => {
                        let name = self.name_at(name, value.span(), "the parameter name")?;
                        self.param_refs.push((name.value.to_string(), value.span()));
                        Some(At::new(ForEach::Param(name.value), value.span()))
                    }
                    _ if output.is_some() => output.map(|(task, output)| {
                        At::new(ForEach::Output { task, output }, value.span())
                    }),
                    _ => {
                        self.d.push(
                            Diagnostic::at(
                                value.span(),
                                format!("`for_each` cannot fan out over `{text}`"),
                            )
                            .help(help),
                        );
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(
                    value,
                    "`for_each`",
                    "a list of strings or \"${params.NAME}\"",
                );
                None
            }
        }
    }

    fn approval(&mut self, value: &Value<'_>) -> Option<At<Approval>> {
        let example = "a table like `{ required = 2, timeout = \"24h\", on_timeout = \"fail\" }`";
        let DeValue::Table(table) = value.get_ref() else {
            self.wrong_type(value, "`approval`", example);
            return None;
        };
        self.unknown_fields(table, FIELDS_APPROVAL, "`approval`");
        let mut approval = Approval {
            required: 1,
            timeout: None,
            on_timeout: OnTimeout::Fail,
        };
        let mut ok = true;
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "required" => match self.integer(value, "`required`") {
                    Some(n) => match u32::try_from(n.value) {
                        Ok(required) if (1..=MAX_APPROVALS).contains(&required) => {
                            approval.required = required;
                        }
                        _ => {
                            self.d.push(
                                Diagnostic::at(
                                    n.span,
                                    format!("`required` must be between 1 and {MAX_APPROVALS}"),
                                )
                                .help("the number of distinct people, other than the run's starter, who must approve"),
                            );
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                "timeout" => match self.duration(value, "`timeout`") {
                    Some(d) if d.value.0.is_zero() => {
                        self.d.push(
                            Diagnostic::at(d.span, "a gate's `timeout` must be longer than 0s")
                                .help("leave `timeout` out to wait until someone decides"),
                        );
                        ok = false;
                    }
                    Some(d) => approval.timeout = Some(d.value),
                    None => ok = false,
                },
                "on_timeout" => match self.choice(value, "`on_timeout`", &["fail", "skip"]) {
                    Some(s) if s.value == "skip" => approval.on_timeout = OnTimeout::Skip,
                    Some(_) => approval.on_timeout = OnTimeout::Fail,
                    None => ok = false,
                },
                _ => {}
            }
        }
        ok.then(|| At::new(approval, value.span()))
    }

    fn env(&mut self, value: &Value<'_>) -> IndexMap<String, String> {
        let mut env = IndexMap::new();
        let Some(table) = self.table(value, "`env`") else {
            return env;
        };
        for (key, value) in table {
            let var = key.get_ref().as_ref();
            if var.is_empty() || var.contains(['=', '\0']) {
                self.d.push(Diagnostic::at(
                    key.span(),
                    format!("`{var}` is not a valid environment variable name"),
                ));
                continue;
            }
            if let Some(s) = self.string(value, &format!("`env.{var}`")) {
                if s.value.contains('\0') {
                    self.d.push(Diagnostic::at(
                        s.span,
                        "environment values must not contain NUL bytes",
                    ));
                    continue;
                }
                self.note_param_refs(&s);
                env.insert(var.to_owned(), s.value);
            }
        }
        env
    }

    fn mounts(&mut self, value: &Value<'_>) -> Vec<MountDecl> {
        let mut mounts: Vec<MountDecl> = Vec::new();
        let items = self.array(value, "`mounts`").unwrap_or_default();
        for item in items {
            let Some(table) = self.table(item, "each mount") else {
                continue;
            };
            self.unknown_fields(table, FIELDS_MOUNT, "a mount");
            let (mut host, mut guest, mut mode) = (None, None, MountMode::Ro);
            for (key, value) in table {
                match key.get_ref().as_ref() {
                    "host" => host = self.nonempty_string(value, "the mount's `host`"),
                    "guest" => guest = self.nonempty_string(value, "the mount's `guest`"),
                    "mode" => {
                        if let Some(s) = self.choice(value, "the mount's `mode`", &["ro", "rw"]) {
                            mode = if s.value == "rw" {
                                MountMode::Rw
                            } else {
                                MountMode::Ro
                            };
                        }
                    }
                    _ => {}
                }
            }
            for (field, present) in [("host", &host), ("guest", &guest)] {
                if present.is_none() && !table.keys().any(|k| k.get_ref() == field) {
                    self.d.push(Diagnostic::at(item.span(), format!("this mount has no `{field}`")).help("write mounts as `{ host = \"data\", guest = \"/data\", mode = \"ro\" }`"));
                }
            }
            let (Some(host), Some(guest)) = (host, guest) else {
                continue;
            };
            if !self.host_path_ok(&host) || !self.guest_path_ok(&guest, &mounts) {
                continue;
            }
            mounts.push(MountDecl { host, guest, mode });
        }
        mounts
    }

    /// A mount's host directory must stay inside the project: relative, and
    /// never climbing above the manifest's folder.
    fn host_path_ok(&mut self, host: &At<String>) -> bool {
        let path = std::path::Path::new(&host.value);
        let mut depth: i64 = 0;
        let mut escapes = path.is_absolute();
        for part in path.components() {
            match part {
                std::path::Component::ParentDir => depth -= 1,
                std::path::Component::Normal(_) => depth += 1,
                _ => {}
            }
            escapes |= depth < 0;
        }
        if escapes {
            self.d.push(Diagnostic::at(host.span.clone(), format!("mount `{}` escapes the project", host.value)).help("mount folders inside the manifest's folder, with a relative path that does not climb out of it"));
        }
        !escapes
    }

    /// A guest path must be absolute, clean, not reserved, and not overlap
    /// another mount of the same task.
    fn guest_path_ok(&mut self, guest: &At<String>, earlier: &[MountDecl]) -> bool {
        if let Err(e) = crate::sandbox::check_guest_path(&guest.value) {
            self.d
                .push(Diagnostic::at(guest.span.clone(), e.to_string()).help(e.help()));
            return false;
        }
        for other in earlier {
            if crate::sandbox::guest_paths_overlap(&guest.value, &other.guest.value) {
                self.d.push(
                    Diagnostic::at(
                        guest.span.clone(),
                        format!(
                            "mount `{}` overlaps mount `{}`",
                            guest.value, other.guest.value
                        ),
                    )
                    .label("overlaps")
                    .related(other.guest.span.clone(), "this mount")
                    .help("give each mount its own guest path, neither inside the other"),
                );
                return false;
            }
        }
        true
    }

    /// Network endpoints as `host:port` (host lowercase), no duplicates.
    fn hosts(&mut self, value: &Value<'_>) -> Vec<At<String>> {
        let mut hosts: Vec<At<String>> = Vec::new();
        for host in self.strings(value, "`network`") {
            let parsed = host.value.parse::<crate::sandbox::Endpoint>();
            let Ok(endpoint) = parsed else {
                self.d.push(
                    Diagnostic::at(
                        host.span.clone(),
                        format!("`{}` is not a network endpoint", host.value),
                    )
                    .help("write `host:port`, e.g. `warehouse.internal:443`"),
                );
                continue;
            };
            let host = At::new(endpoint.to_string(), host.span);
            if hosts.iter().any(|h| h.value == host.value) {
                self.d.push(Diagnostic::at(
                    host.span.clone(),
                    format!("`{}` is listed twice in `network`", host.value),
                ));
            } else {
                hosts.push(host);
            }
        }
        hosts
    }

    /// `inject = { name = "headers" | "headers+body" }`.
    fn inject(&mut self, value: &Value<'_>) -> IndexMap<Name, At<Inject>> {
        let mut inject = IndexMap::new();
        let Some(table) = self.table(value, "`inject`") else {
            return inject;
        };
        for (key, value) in table {
            let Some(name) = self.name_at(key.get_ref(), key.span(), "the secret name") else {
                continue;
            };
            let Some(choice) = self.choice(value, "an injection", &["headers", "headers+body"])
            else {
                continue;
            };
            let how = if choice.value == "headers" {
                Inject::Headers
            } else {
                Inject::HeadersAndBody
            };
            inject.insert(name.value, At::new(how, choice.span));
        }
        inject
    }

    fn inputs(&mut self, value: &Value<'_>) -> IndexMap<Name, At<Edge>> {
        let mut inputs = IndexMap::new();
        let Some(table) = self.table(value, "`inputs`") else {
            return inputs;
        };
        for (key, value) in table {
            let Some(name) = self.name_at(key.get_ref(), key.span(), "the input name") else {
                continue;
            };
            let Some(edge) = self.string(value, &format!("input `{}`", name.value)) else {
                continue;
            };
            let parsed = edge.value.split_once('.').and_then(|(task, output)| {
                let (task, all) = match task.strip_suffix("[*]") {
                    Some(task) => (task, true),
                    None => (task, false),
                };
                Some(Edge {
                    task: Name::new(task).ok()?,
                    output: Name::new(output).ok()?,
                    all,
                })
            });
            match parsed {
                Some(parsed) => {
                    inputs.insert(name.value, At::new(parsed, edge.span));
                }
                None => {
                    self.d.push(Diagnostic::at(
                        edge.span,
                        format!(
                            "input `{}` must name an upstream output as `task.output`, not `{}`",
                            name.value, edge.value
                        ),
                    ).help("e.g. `orders = \"extract.orders\"`: the `orders` output of task `extract`"));
                }
            }
        }
        inputs
    }

    fn outputs(&mut self, value: &Value<'_>) -> IndexMap<Name, Output> {
        let mut outputs = IndexMap::new();
        match value.get_ref() {
            // `outputs = ["report"]`: outputs without labels.
            DeValue::Array(_) => {
                for name in self.names(value, "`outputs`", "the output name") {
                    outputs.insert(
                        name.value,
                        Output {
                            span: name.span,
                            labels: Vec::new(),
                        },
                    );
                }
            }
            DeValue::Table(table) => {
                for (key, value) in table {
                    let Some(name) = self.name_at(key.get_ref(), key.span(), "the output name")
                    else {
                        continue;
                    };
                    let Some(spec) = self.table(value, &format!("output `{}`", name.value)) else {
                        continue;
                    };
                    self.unknown_fields(spec, FIELDS_OUTPUT, &format!("output `{}`", name.value));
                    let labels = spec
                        .iter()
                        .find(|(k, _)| k.get_ref() == "labels")
                        .map(|(_, v)| self.names(v, "`labels`", "the label"))
                        .unwrap_or_default();
                    outputs.insert(
                        name.value,
                        Output {
                            span: key.span(),
                            labels,
                        },
                    );
                }
            }
            _ => self.wrong_type(
                value,
                "`outputs`",
                "a table like `{ orders = { labels = [\"pii\"] } }` or a list of names",
            ),
        }
        outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(source: &str) -> Vec<String> {
        match parse(source) {
            Ok(_) => Vec::new(),
            Err(d) => d.0.into_iter().map(|d| d.message).collect(),
        }
    }

    #[test]
    fn minimal_manifest_parses() {
        let m = parse("[workflow]\nname = \"w\"\n[tasks.a]\ncomponent = \"a.wasm\"\n");
        let m = m.map_err(|d| format!("{d:?}"));
        assert!(
            m.as_ref()
                .is_ok_and(|m| m.tasks.len() == 1 && m.format == FORMAT),
            "{m:?}"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let found = problems(
            "[workflow]\nname = \"w\"\n[tasks.a]\ncomponet = \"a.wasm\"\ntimeout = \"soon\"\nwhen = \"sometimes\"\n\
             [tasks.b]\ncomponent = 3\nmemory = \"0MiB\"\n",
        );
        assert_eq!(found.len(), 6, "{found:#?}");
        assert!(found.iter().any(|m| m.contains("unknown field `componet`")));
        assert!(
            found
                .iter()
                .any(|m| m.contains("task `a` has no `component`"))
        );
        assert!(found.iter().any(|m| m.contains("`soon` is not a duration")));
        assert!(found.iter().any(|m| m.contains("`when` must be one of")));
        assert!(
            found
                .iter()
                .any(|m| m.contains("`component` must be a string, not an integer"))
        );
        assert!(
            found
                .iter()
                .any(|m| m.contains("`memory` must be more than zero"))
        );
    }

    #[test]
    fn mounts_stay_in_the_project_and_apart() {
        let found = problems(
            "[workflow]\nname = \"w\"\n[tasks.a]\ncomponent = \"a.wasm\"\nmounts = [\
             { host = \"../up\", guest = \"/a\" }, { host = \"/etc\", guest = \"/b\" },\
             { host = \"d\", guest = \"/data\" }, { host = \"e\", guest = \"/data/sub\" },\
             { host = \"f\", guest = \"/outputs\" }, { host = \"x/../..\", guest = \"/c\" }]\n",
        );
        assert_eq!(found.len(), 5, "{found:#?}");
        assert_eq!(
            found
                .iter()
                .filter(|m| m.contains("escapes the project"))
                .count(),
            3
        );
        assert!(found.iter().any(|m| m.contains("overlaps")));
        assert!(found.iter().any(|m| m.contains("is reserved")));
    }
}
