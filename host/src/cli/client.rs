//! The client side of `cairn serve`: `cairn trigger`, `cairn schedules`,
//! and `cairn runs` against a server (`--server URL` or `CAIRN_SERVER`,
//! with the API token in `CAIRN_TOKEN`).

use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::style::{self, Style};
use super::{CliError, Exit};
use crate::serve::client::{self, Answer};

/// Where the service is and the token to show it.
#[derive(Debug, Clone, Args)]
pub(crate) struct Remote {
    /// The service, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL", env = "CAIRN_SERVER")]
    pub(crate) server: Option<String>,
    /// A file holding the API token [default: the environment variable
    /// CAIRN_TOKEN]. Never pass a token as an argument: other users of the
    /// machine can read those.
    #[arg(long, value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
}

impl Remote {
    fn server(&self) -> Result<&str, CliError> {
        self.server.as_deref().ok_or_else(|| {
            CliError::input(
                "no server: pass --server http://HOST:PORT or set CAIRN_SERVER (`cairn serve` prints its address)",
            )
        })
    }

    fn token(&self) -> Result<String, CliError> {
        let token = match &self.token_file {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                CliError::input(format!("cannot read the token file `{}`: {e}", path.display()))
            })?,
            None => std::env::var("CAIRN_TOKEN").map_err(|_| {
                CliError::input(
                    "no API token: set CAIRN_TOKEN (or pass --token-file FILE); `cairn token create --user NAME` on the server's state directory makes one",
                )
            })?,
        };
        Ok(token.trim().to_owned())
    }

    /// `method path` on the server; an error answer is a `CliError` with
    /// its message and an exit code by status.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let server = self.server()?;
        let token = self.token()?;
        let answer = client::request(method, server, path, Some(&token), body)
            .await
            .map_err(|e| CliError {
                exit: Exit::Failed,
                message: e.to_string(),
                details: None,
            })?;
        if (200..300).contains(&answer.status) {
            return Ok(answer.body);
        }
        Err(refused(&answer))
    }
}

/// An error answer as the CLI reports it: 403 exits 3 (policy), 401 and
/// other 4xx exit 2 (input), the rest 1.
fn refused(answer: &Answer) -> CliError {
    let exit = match answer.status {
        403 => Exit::Denied,
        400..=499 => Exit::Input,
        _ => Exit::Failed,
    };
    let hint = match answer.status {
        401 => "; check CAIRN_TOKEN",
        403 => "; `cairn plan` and the workflow's policies say who may do what",
        _ => "",
    };
    CliError {
        exit,
        message: format!(
            "the server answered {}: {}{hint}",
            answer.status,
            answer.message()
        ),
        details: None,
    }
}

/// Start a run of a workflow on a `cairn serve` service.
///
/// The service authorizes the request (`trigger`, as the token's user)
/// and records it in its audit log before the run starts; the run's
/// tasks are then authorized as for `cairn run`. Prints the run's id and
/// URL; with --wait, follows the run until it ends and exits as `cairn
/// run` would (0 succeeded, 1 failed, 3 refused by policy).
///
/// Exits 2 for a bad request or token, 3 when policy denies it, 1 when
/// the service cannot be reached.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  export CAIRN_SERVER=http://127.0.0.1:8080 CAIRN_TOKEN=cairn_...
  cairn trigger etl --param day=2026-12-01
  cairn trigger hello --wait --json")]
pub(crate) struct TriggerArgs {
    /// The workflow's name (`[workflow] name`).
    #[arg(value_name = "WORKFLOW")]
    workflow: String,

    /// A run parameter: NAME=VALUE (repeatable; the rest take their defaults).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::run::parse_param)]
    params: Vec<(String, String)>,

    /// Wait for the run to end, then exit by how it ended.
    #[arg(long)]
    wait: bool,

    /// Print the answer (with --wait, the run) as JSON on stdout.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    remote: Remote,
}

pub(crate) async fn trigger(args: &TriggerArgs) -> Result<Exit, CliError> {
    let params: serde_json::Map<String, Value> = args
        .params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let body = json!({ "params": params });
    let path = format!("/v1/workflows/{}/runs", segment(&args.workflow));
    let started = args.remote.call("POST", &path, Some(&body)).await?;
    let run = started
        .get("run")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !args.wait {
        if args.json {
            outln!("{started:#}");
        } else {
            outln!("{run}");
            eprintln!(
                "{} run {run} of {} started: {}",
                Style::stderr().good("ok"),
                args.workflow,
                started
                    .get("url")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            );
        }
        return Ok(Exit::Success);
    }
    let shown = wait_for(&args.remote, &run).await?;
    let status = shown.get("status").and_then(Value::as_str).unwrap_or("");
    if args.json {
        outln!("{shown:#}");
    } else {
        print_run(&shown);
    }
    Ok(match status {
        "succeeded" => Exit::Success,
        "refused" => Exit::Denied,
        _ => Exit::Failed,
    })
}

/// Poll run `run` until it ends.
async fn wait_for(remote: &Remote, run: &str) -> Result<Value, CliError> {
    let path = format!("/v1/runs/{}", segment(run));
    let mut delay = Duration::from_millis(50);
    loop {
        let shown = remote.call("GET", &path, None).await?;
        let status = shown.get("status").and_then(Value::as_str).unwrap_or("");
        if !matches!(status, "queued" | "running" | "interrupted") {
            return Ok(shown);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// A path segment, percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn print_run(run: &Value) {
    outln!(
        "run {}  {}  workflow {}, by {}, started {}",
        text(run, "id"),
        text(run, "status"),
        text(run, "workflow"),
        text(run, "user"),
        text(run, "started")
    );
    for t in run
        .get("tasks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let detail = text(t, "detail");
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {}", style::printable(detail.as_bytes()))
        };
        outln!(
            "  {:<20} {}{detail}; {} attempt(s), {} ms",
            text(t, "task"),
            text(t, "status"),
            t.get("attempts").and_then(Value::as_i64).unwrap_or(0),
            t.get("duration_ms").and_then(Value::as_i64).unwrap_or(0)
        );
    }
}

/// `cairn runs list --server`.
pub(crate) async fn list(
    remote: &Remote,
    workflow: Option<&str>,
    json: bool,
) -> Result<Exit, CliError> {
    let path = match workflow {
        Some(w) => format!("/v1/runs?workflow={}", segment(w)),
        None => "/v1/runs".to_owned(),
    };
    let listed = remote.call("GET", &path, None).await?;
    let runs = listed
        .get("runs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if json {
        outln!("{:#}", Value::Array(runs));
        return Ok(Exit::Success);
    }
    for r in &runs {
        let took = r
            .get("duration_ms")
            .and_then(Value::as_i64)
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"));
        outln!(
            "{:<22}  {:<10}  {:<20}  by {:<12}  {took}",
            text(r, "id"),
            text(r, "status"),
            text(r, "workflow"),
            text(r, "user")
        );
    }
    if runs.is_empty() {
        eprintln!("no runs you may see");
    }
    Ok(Exit::Success)
}

/// `cairn runs show --server`.
pub(crate) async fn show(remote: &Remote, run: &str, json: bool) -> Result<Exit, CliError> {
    let shown = remote
        .call("GET", &format!("/v1/runs/{}", segment(run)), None)
        .await?;
    if json {
        outln!("{shown:#}");
    } else {
        print_run(&shown);
    }
    Ok(Exit::Success)
}

/// `cairn runs logs --server`.
pub(crate) async fn logs(
    remote: &Remote,
    run: &str,
    task: Option<&str>,
    json: bool,
) -> Result<Exit, CliError> {
    let mut path = format!("/v1/runs/{}/logs", segment(run));
    if let Some(task) = task {
        path.push_str(&format!("?task={}", segment(task)));
    }
    let answer = remote.call("GET", &path, None).await?;
    let attempts = answer
        .get("attempts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if json {
        outln!("{:#}", Value::Array(attempts));
        return Ok(Exit::Success);
    }
    let style = Style::stdout();
    for a in &attempts {
        outln!(
            "{}",
            style.dim(&format!(
                "== {} attempt {}: {}",
                text(a, "task"),
                a.get("attempt").and_then(Value::as_i64).unwrap_or(0),
                text(a, "outcome")
            ))
        );
        for line in a
            .get("logs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let level = line.get("level").and_then(Value::as_str).unwrap_or("info");
            outln!(
                "{level}: {}",
                style::printable(text(line, "message").as_bytes())
            );
        }
        for stream in ["stdout", "stderr"] {
            for line in text(a, stream).lines() {
                outln!("{stream}: {}", style::printable(line.as_bytes()));
            }
        }
    }
    if attempts.is_empty() {
        eprintln!("no attempts recorded for that run or task");
    }
    Ok(Exit::Success)
}

/// `cairn runs cancel` (a server's runs only).
pub(crate) async fn cancel(remote: &Remote, run: &str, json: bool) -> Result<Exit, CliError> {
    let answer = remote
        .call("POST", &format!("/v1/runs/{}/cancel", segment(run)), None)
        .await?;
    if json {
        outln!("{answer:#}");
    } else {
        eprintln!(
            "{} run {run} is being cancelled; `cairn runs show {run}` shows when it stopped",
            Style::stderr().good("ok")
        );
    }
    Ok(Exit::Success)
}

/// A server's schedules: list them, pause or resume one.
///
/// Listing is `read_workflow` on the workflow; pausing and resuming are
/// `pause_schedule` and `resume_schedule`, decided by its policies and
/// recorded in the service's audit log before they take effect. A paused
/// schedule's ticks are still recorded (`why: "paused"`), and start no run.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum SchedulesCommand {
    /// A workflow's schedules, with each one's next tick and last one.
    #[command(after_help = "Example:\n  cairn schedules list etl --server http://127.0.0.1:8080")]
    List {
        /// The workflow's name.
        #[arg(value_name = "WORKFLOW")]
        workflow: String,
        /// Print them as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Pause a schedule: its ticks start no run until it is resumed.
    Pause(ScheduleArgs),
    /// Resume a paused schedule.
    Resume(ScheduleArgs),
}

/// One schedule of a server's workflow.
#[derive(Debug, clap::Args)]
pub(crate) struct ScheduleArgs {
    #[arg(value_name = "WORKFLOW")]
    workflow: String,
    /// The schedule (`[schedules.NAME]`).
    #[arg(value_name = "SCHEDULE")]
    schedule: String,
    /// Print the answer as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) async fn schedules(command: &SchedulesCommand) -> Result<Exit, CliError> {
    let (remote, workflow, json, set) = match command {
        SchedulesCommand::List {
            workflow,
            json,
            remote,
        } => (remote, workflow, *json, None),
        SchedulesCommand::Pause(a) => {
            (&a.remote, &a.workflow, a.json, Some((&a.schedule, "pause")))
        }
        SchedulesCommand::Resume(a) => (
            &a.remote,
            &a.workflow,
            a.json,
            Some((&a.schedule, "resume")),
        ),
    };
    let Some((schedule, verb)) = set else {
        let answer = remote
            .call(
                "GET",
                &format!("/v1/workflows/{}/schedules", segment(workflow)),
                None,
            )
            .await?;
        if json {
            outln!("{answer:#}");
            return Ok(Exit::Success);
        }
        let shown = answer
            .get("schedules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if shown.is_empty() {
            eprintln!("{workflow} has no schedules (`[schedules.NAME]` in its manifest)");
        }
        for s in &shown {
            let last = match s["last"].as_object() {
                Some(last) => format!(
                    "last {} {}{}",
                    text(&s["last"], "nominal"),
                    text(&s["last"], "decision"),
                    last.get("why")
                        .and_then(Value::as_str)
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default()
                ),
                None => "no tick yet".to_owned(),
            };
            outln!(
                "{:<20} {:<16} {:<18} as {:<12} {}  next {}  {last}",
                text(s, "name"),
                text(s, "cron"),
                text(s, "timezone"),
                text(s, "as"),
                if s["paused"] == true {
                    "paused "
                } else {
                    "active "
                },
                s["next_local"].as_str().unwrap_or("never"),
            );
        }
        return Ok(Exit::Success);
    };
    let answer = remote
        .call(
            "POST",
            &format!(
                "/v1/workflows/{}/schedules/{}/{verb}",
                segment(workflow),
                segment(schedule)
            ),
            None,
        )
        .await?;
    if json {
        outln!("{answer:#}");
    } else {
        eprintln!(
            "{} schedule {schedule} of {workflow} {}",
            Style::stderr().good("ok"),
            if verb == "pause" {
                "is paused; its ticks are recorded and start no run"
            } else {
                "is resumed"
            }
        );
    }
    Ok(Exit::Success)
}
