//! `cairn runs list|show|logs|cancel`: what ran, from the run state, or
//! from a `cairn serve` service (`--server` / `CAIRN_SERVER`).

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::client::Remote;
use super::style::{self, Style};
use super::{CliError, Exit};
use crate::state::State;

/// Look at past runs (from `STATE/state.db`, or a server's with --server).
#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// List runs, newest first.
    List {
        /// The state directory.
        #[arg(long, value_name = "DIR", default_value = ".cairn")]
        state_dir: PathBuf,
        /// Only this workflow's runs (with --server).
        #[arg(long, value_name = "WORKFLOW", requires = "server")]
        workflow: Option<String>,
        /// Print the runs as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one run: each task's status, attempts, duration and outputs.
    Show {
        /// The run's id (`cairn runs list`).
        #[arg(value_name = "RUN")]
        run: String,
        /// The state directory.
        #[arg(long, value_name = "DIR", default_value = ".cairn")]
        state_dir: PathBuf,
        /// Print the run as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print what a run's tasks logged and wrote to stdout and stderr.
    Logs {
        /// The run's id.
        #[arg(value_name = "RUN")]
        run: String,
        /// Only this task.
        #[arg(value_name = "TASK")]
        task: Option<String>,
        /// The state directory.
        #[arg(long, value_name = "DIR", default_value = ".cairn")]
        state_dir: PathBuf,
        /// Print the attempts as JSON on stdout: task, attempt, outcome,
        /// log lines, stdout and stderr.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel a queued or running run of a server (`--server`): it is
    /// stopped and recorded `cancelled` (a run of `cairn run` stops with
    /// Ctrl-C).
    Cancel {
        /// The run's id.
        #[arg(value_name = "RUN")]
        run: String,
        /// Print the answer as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

/// `cairn runs`: against the server if one is given, else the state directory.
pub(crate) async fn command(command: &RunsCommand) -> Result<Exit, CliError> {
    match command {
        RunsCommand::List {
            remote,
            workflow,
            json,
            ..
        } if remote.server.is_some() => {
            super::client::list(remote, workflow.as_deref(), *json).await
        }
        RunsCommand::Show {
            remote, run, json, ..
        } if remote.server.is_some() => super::client::show(remote, run, *json).await,
        RunsCommand::Logs {
            remote,
            run,
            task,
            json,
            ..
        } if remote.server.is_some() => {
            super::client::logs(remote, run, task.as_deref(), *json).await
        }
        RunsCommand::Cancel { remote, run, json } => {
            super::client::cancel(remote, run, *json).await
        }
        local => runs(local),
    }
}

/// The approval gates run `run` waits at, as its audit log says: gate,
/// approvals needed and counted so far (of the gate's bound), bound and
/// deadline. Empty when the log cannot be read.
fn open_gates(state_dir: &Path, run: &str) -> Vec<serde_json::Value> {
    let bytes = std::fs::read(state_dir.join("audit").join("log.jsonl")).unwrap_or_default();
    let Ok(Some(history)) = crate::resume::History::read(&bytes, run, &|_, _, _, _| false) else {
        return Vec::new();
    };
    if !history.resumable() {
        return Vec::new();
    }
    history
        .gates
        .iter()
        .filter(|(_, g)| !g.closed)
        .map(|(task, g)| {
            let (approvals, rejected) = g.standing(&g.bound);
            serde_json::json!({
                "gate": task,
                "required": g.required,
                "approvals": approvals,
                "rejected_by": rejected,
                "bound": g.bound,
                "deadline": g.deadline,
            })
        })
        .collect()
}

fn open(state_dir: &Path) -> Result<State, CliError> {
    if !state_dir.join("state.db").is_file() {
        return Err(CliError::input(format!(
            "no runs in `{}`: `cairn run` records them there (or pass --state-dir)",
            state_dir.display()
        )));
    }
    let mut state = State::open(state_dir).map_err(CliError::input)?;
    // A run still `running` while no one writes the log was cut off: show
    // it as the log tells it (see `recover`).
    let log = state_dir.join("audit").join("log.jsonl");
    if let Some(_held) = crate::audit::log::idle(&log) {
        let read = || {
            std::fs::read(&log).map_err(|source| crate::recover::RecoverError::Read {
                path: log.clone(),
                source,
            })
        };
        if let Err(e) = crate::recover::reconcile(&mut state, read) {
            tracing::warn!("cannot bring the run state up to date with the audit log: {e}");
        }
    }
    Ok(state)
}

fn known(state: &State, run: &str) -> Result<crate::state::RunRow, CliError> {
    state.run(run).map_err(CliError::input)?.ok_or_else(|| {
        CliError::input(format!(
            "no run `{run}`; `cairn runs list` shows the runs there are"
        ))
    })
}

pub(crate) fn runs(command: &RunsCommand) -> Result<Exit, CliError> {
    match command {
        RunsCommand::Cancel { .. } => Err(CliError::input(
            "cancelling is for a server's runs: pass --server URL or set CAIRN_SERVER (a `cairn run` stops with Ctrl-C)",
        )),
        RunsCommand::List {
            state_dir, json, ..
        } => {
            let state = open(state_dir)?;
            let runs = state.runs().map_err(CliError::input)?;
            if *json {
                outln!("{:#}", serde_json::json!(runs));
            } else {
                for r in &runs {
                    let took = r
                        .duration_ms
                        .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"));
                    outln!(
                        "{:<22}  {:<10}  {:<20}  by {:<12}  {took}",
                        r.id,
                        r.status,
                        r.workflow,
                        r.user
                    );
                }
                if runs.is_empty() {
                    eprintln!("no runs yet");
                }
            }
            Ok(Exit::Success)
        }
        RunsCommand::Show {
            run,
            state_dir,
            json,
            ..
        } => {
            let state = open(state_dir)?;
            let row = known(&state, run)?;
            let tasks = state.tasks(run).map_err(CliError::input)?;
            let gates = open_gates(state_dir, run);
            if *json {
                outln!(
                    "{:#}",
                    serde_json::json!({ "run": row, "tasks": tasks, "waiting": gates })
                );
            } else {
                outln!(
                    "run {}  {}  workflow {} ({}), by {}, started {}",
                    row.id,
                    row.status,
                    row.workflow,
                    row.manifest,
                    row.user,
                    row.started
                );
                for t in &tasks {
                    let detail = if t.detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", style::printable(t.detail.as_bytes()))
                    };
                    outln!(
                        "  {:<20} {}{detail}; {} attempt(s), {} ms",
                        t.task,
                        t.status,
                        t.attempts,
                        t.duration_ms
                    );
                    for o in t.outputs.as_array().into_iter().flatten() {
                        outln!(
                            "  {:<20}   {} {}",
                            "",
                            o.get("name").and_then(|v| v.as_str()).unwrap_or_default(),
                            o.get("sha256").and_then(|v| v.as_str()).unwrap_or_default()
                        );
                    }
                }
                for g in &gates {
                    outln!(
                        "  {:<20} waiting for approval: {} of {}{}; bound {}{}",
                        g["gate"].as_str().unwrap_or_default(),
                        g["approvals"].as_array().map_or(0, Vec::len),
                        g["required"],
                        g["approvals"]
                            .as_array()
                            .filter(|a| !a.is_empty())
                            .map(|a| format!(
                                " ({})",
                                a.iter()
                                    .filter_map(|v| v.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                            .unwrap_or_default(),
                        g["bound"].as_str().unwrap_or_default(),
                        g["deadline"]
                            .as_str()
                            .map(|d| format!(", until {d}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(Exit::Success)
        }
        RunsCommand::Logs {
            run,
            task,
            state_dir,
            json,
            ..
        } => {
            let state = open(state_dir)?;
            known(&state, run)?;
            let attempts = state
                .attempts(run, task.as_deref())
                .map_err(CliError::input)?;
            if *json {
                let attempts: Vec<serde_json::Value> = attempts
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "task": a.task,
                            "attempt": a.attempt,
                            "outcome": a.outcome,
                            "logs": a.logs,
                            "stdout": String::from_utf8_lossy(&a.stdout),
                            "stderr": String::from_utf8_lossy(&a.stderr),
                        })
                    })
                    .collect();
                outln!("{:#}", serde_json::Value::Array(attempts));
                return Ok(Exit::Success);
            }
            let style = Style::stdout();
            for a in &attempts {
                outln!(
                    "{}",
                    style.dim(&format!(
                        "== {} attempt {}: {}",
                        a.task, a.attempt, a.outcome
                    ))
                );
                for line in a.logs.as_array().into_iter().flatten() {
                    let level = line.get("level").and_then(|v| v.as_str()).unwrap_or("info");
                    let message = line.get("message").and_then(|v| v.as_str()).unwrap_or("");
                    outln!("{level}: {}", style::printable(message.as_bytes()));
                }
                for (stream, bytes) in [("stdout", &a.stdout), ("stderr", &a.stderr)] {
                    for line in String::from_utf8_lossy(bytes).lines() {
                        outln!("{stream}: {}", style::printable(line.as_bytes()));
                    }
                }
            }
            if attempts.is_empty() {
                eprintln!("no attempts recorded for that run or task");
            }
            Ok(Exit::Success)
        }
    }
}
