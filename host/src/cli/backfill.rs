//! `cairn backfill` (here, over a state directory, or on a server) and
//! `cairn backfills` (a server's: list, show, cancel).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::client::{Remote, segment};
use super::style::Style;
use super::{CliError, Exit};
use crate::launch::{Launcher, StateDir};
use crate::name::Name;
use crate::policy::service::Asked;
use crate::secrets::SecretSource;
use crate::serve::backfill::{self, Backfills, Planned, Reprocess, Shown};
use crate::serve::catalog::{Catalog, Served};
use crate::serve::runs::Runs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReprocessArg {
    /// Only nominal times no run has.
    Missing,
    /// Also those whose latest run failed or was cancelled.
    Failed,
    /// Every one (never one whose run is still going).
    All,
}

impl From<ReprocessArg> for Reprocess {
    fn from(r: ReprocessArg) -> Self {
        match r {
            ReprocessArg::Missing => Self::Missing,
            ReprocessArg::Failed => Self::Failed,
            ReprocessArg::All => Self::All,
        }
    }
}

/// Run a schedule's past ticks now: one run per nominal time from --from
/// to --to that does not have one yet.
///
/// The nominal times are the ticks the schedule would have run between
/// the two (both included; its time zone and DST rules apply), at most
/// 10,000, none in the future. Each run gets the schedule's `params`, with
/// `${nominal}` and `${nominal:FORMAT}` filled in for its nominal time,
/// and is identified, as the schedule's own runs are, by (workflow,
/// schedule, nominal time): `--reprocess missing` (the default) starts
/// none for a nominal time that has a run, `failed` also reruns those
/// whose latest run failed, was cancelled or refused, `all` reruns every one; a
/// nominal time whose run is still going never gets a second. Runs start
/// as the user asking (never as the schedule's `as`), oldest first, at
/// most --max-active at once.
///
/// Policy decides first: the user must be permitted to `trigger` the
/// workflow with `context.via == "backfill"` and `context.trigger` the
/// schedule; each run's tasks are then authorized as for `cairn run`.
/// The backfill is recorded in the audit log (`backfill-started` with
/// every nominal time, a `trigger` or `backfill-skipped` for each,
/// `backfill-ended`), and `cairn audit verify` checks it.
///
/// Here (no --server), WORKFLOW is a manifest or a folder, and the
/// backfill runs in this process over --state-dir, holding its audit log
/// until it is done; Ctrl-C cancels it (runs under way are cancelled;
/// `cairn resume RUN` goes on with one). With --server (or CAIRN_SERVER),
/// WORKFLOW is a served workflow's name, the service runs it, and this
/// prints its id (`cairn backfills show|cancel`); --wait follows it.
///
/// --dry-run records nothing and runs nothing: for each nominal time,
/// whether it would run, be skipped (and for which runs) or be refused
/// (its parameters, or which policies deny which of its requests).
///
/// Exits 0 when every run it started succeeded, 1 when one failed, 2 for
/// a bad range or request (reversed, empty, in the future, too large), 3
/// when policy denies the backfill, 130 on Ctrl-C.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn build examples/etl
  cairn backfill examples/etl --schedule nightly --from 2026-11-01 --to 2026-11-07 --as alice --dry-run
  cairn backfill examples/etl --schedule nightly --from 2026-11-01 --to 2026-11-07 --as alice --max-active 2
  cairn backfill etl --schedule nightly --from 2026-11-01T00:00:00Z --to 2026-11-30 --reprocess failed --server http://127.0.0.1:8080 --wait")]
pub(crate) struct BackfillArgs {
    /// The workflow: a manifest or a folder holding `workflow.toml`; with
    /// --server, the served workflow's name.
    #[arg(value_name = "WORKFLOW")]
    workflow: String,

    /// The schedule whose ticks to run (`[schedules.NAME]`).
    #[arg(long, value_name = "NAME")]
    schedule: String,

    /// The first nominal time: an instant (2026-11-01T02:30:00Z) or a date
    /// or time on the schedule's clock (2026-11-01, 2026-11-01T02:30).
    #[arg(long, value_name = "TIME")]
    from: String,

    /// The last nominal time (included; a date covers that whole day).
    #[arg(long, value_name = "TIME")]
    to: String,

    /// How many of its runs may be active at once.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(backfill::MAX_ACTIVE)))]
    max_active: u32,

    /// Which nominal times that already have a run get another.
    #[arg(long, value_enum, default_value = "missing")]
    reprocess: ReprocessArg,

    /// Show what it would do for each nominal time; record and run
    /// nothing.
    #[arg(long)]
    dry_run: bool,

    /// Who asks (and whom the runs start as). Here only: a server takes
    /// the token's user.
    #[arg(long = "as", value_name = "USER", env = "CAIRN_USER")]
    user: Option<String>,

    /// The state directory [default: `.cairn` beside the manifest]. Here
    /// only.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// The Ed25519 private key (PKCS#8 PEM) that signs audit checkpoints
    /// [default: STATE/keys/audit.key, created on first use]. Here only.
    #[arg(long, value_name = "FILE", env = "CAIRN_AUDIT_KEY")]
    key: Option<PathBuf>,

    /// A secret's value for the runs: NAME=env:VAR or NAME=file:PATH
    /// (repeatable). Here only.
    #[arg(long = "secret", value_name = "NAME=SOURCE", value_parser = super::exec::parse_secret)]
    secrets: Vec<(Name, SecretSource)>,

    /// How many tasks may run at once, across its runs [default: the
    /// machine's cores]. Here only.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// Where compiled tasks are cached. Here only.
    #[arg(long, value_name = "DIR", env = "CAIRN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// With --server: follow the backfill until it ends, then exit by how
    /// its runs ended.
    #[arg(long)]
    wait: bool,

    /// Print the backfill (or the dry run) as JSON on stdout.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    remote: Remote,
}

/// A server's backfills (`--server` or CAIRN_SERVER, token in CAIRN_TOKEN).
#[derive(Debug, Subcommand)]
pub(crate) enum BackfillsCommand {
    /// List a workflow's backfills, newest first.
    List {
        /// The served workflow's name.
        #[arg(value_name = "WORKFLOW")]
        workflow: String,
        /// Print them as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one backfill: its progress, each run and each skip.
    Show(BackfillRef),
    /// Cancel a backfill: it submits no more runs, and its active runs
    /// are cancelled.
    Cancel(BackfillRef),
}

#[derive(Debug, Args)]
pub(crate) struct BackfillRef {
    /// The served workflow's name.
    #[arg(value_name = "WORKFLOW")]
    workflow: String,
    /// The backfill's id (`cairn backfills list WORKFLOW`).
    #[arg(value_name = "BACKFILL")]
    backfill: String,
    /// Print it as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) async fn backfill(args: &BackfillArgs) -> Result<Exit, CliError> {
    if args.remote.server.is_some() {
        return remote(args).await;
    }
    local(args).await
}

pub(crate) async fn backfills(command: &BackfillsCommand) -> Result<Exit, CliError> {
    match command {
        BackfillsCommand::List {
            workflow,
            json,
            remote,
        } => {
            let answer = remote
                .call(
                    "GET",
                    &format!("/v1/workflows/{}/backfills", segment(workflow)),
                    None,
                )
                .await?;
            if *json {
                outln!("{answer:#}");
                return Ok(Exit::Success);
            }
            let shown = answer
                .get("backfills")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if shown.is_empty() {
                eprintln!("{workflow} has no backfills (`cairn backfill` starts one)");
            }
            for b in &shown {
                outln!("{}", summary_line(b));
            }
            Ok(Exit::Success)
        }
        BackfillsCommand::Show(r) | BackfillsCommand::Cancel(r) => {
            let (method, path) = match command {
                BackfillsCommand::Cancel(_) => ("POST", "/cancel"),
                _ => ("GET", ""),
            };
            let answer = r
                .remote
                .call(
                    method,
                    &format!(
                        "/v1/workflows/{}/backfills/{}{path}",
                        segment(&r.workflow),
                        segment(&r.backfill)
                    ),
                    None,
                )
                .await?;
            if r.json {
                outln!("{answer:#}");
            } else {
                print_value(&answer);
            }
            Ok(Exit::Success)
        }
    }
}

/// One line of a backfill (as the API shows it).
fn summary_line(b: &Value) -> String {
    let n = |key: &str| b.get(key).and_then(Value::as_u64).unwrap_or(0);
    let s = |key: &str| b.get(key).and_then(Value::as_str).unwrap_or("");
    format!(
        "{}  {}  schedule {} {}..{}  {}/{} started ({} succeeded, {} failed, {} active), {} skipped, {} pending",
        s("id"),
        s("status"),
        s("schedule"),
        s("from"),
        s("to"),
        n("started"),
        n("total"),
        n("succeeded"),
        n("failed"),
        n("active"),
        n("skipped"),
        n("pending"),
    )
}

/// A backfill, for people: its summary, then each nominal time handled,
/// in order.
fn print_value(b: &Value) {
    outln!("{}", summary_line(b));
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let list = |key: &str| {
        b.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut lines: Vec<(String, String)> = Vec::new();
    for run in list("runs") {
        lines.push((
            text(&run, "nominal"),
            format!("run {}  {}", text(&run, "run"), text(&run, "standing")),
        ));
    }
    for skip in list("skips") {
        let detail = skip
            .get("detail")
            .and_then(Value::as_str)
            .map(|d| format!(" ({})", super::style::printable(d.as_bytes())))
            .unwrap_or_default();
        lines.push((
            text(&skip, "nominal"),
            format!("skipped: {}{detail}", text(&skip, "why")),
        ));
    }
    lines.sort();
    for (nominal, line) in lines {
        outln!("  {nominal}  {line}");
    }
}

/// How a finished backfill exits: 1 if a run of it failed.
fn exit_of(failed: u64) -> Exit {
    if failed > 0 {
        Exit::Failed
    } else {
        Exit::Success
    }
}

fn print_planned(planned: &[Planned], allowed: Option<bool>) {
    let style = Style::stderr();
    for p in planned {
        let runs = if p.runs.is_empty() {
            String::new()
        } else {
            format!(" (runs {})", p.runs.join(", "))
        };
        let why = p
            .why
            .as_deref()
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        let params: Vec<String> = p.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let params = if params.is_empty() {
            String::new()
        } else {
            format!("  [{}]", params.join(" "))
        };
        outln!("{}  {}{why}{runs}{params}", p.nominal, p.action);
        for r in &p.refused {
            let by = if r.policies.is_empty() {
                "no policy permits it".to_owned()
            } else {
                format!("denied by {}", r.policies.join(", "))
            };
            outln!("    {} {} {}: {by}", r.task, r.action, r.what);
        }
    }
    let count = |action: &str| planned.iter().filter(|p| p.action == action).count();
    eprintln!(
        "{} {} nominal time(s): {} would run, {} skipped, {} refused",
        style.dim("dry run"),
        planned.len(),
        count("run"),
        count("skip"),
        count("refused")
    );
    if allowed == Some(false) {
        eprintln!(
            "{}: policy does not permit this user to `trigger` the workflow via `backfill`; the backfill itself would be refused",
            style.error("denied")
        );
    }
}

/// On a server: start it (or dry-run it), then follow it with --wait.
async fn remote(args: &BackfillArgs) -> Result<Exit, CliError> {
    for (given, flag) in [
        (args.user.is_some(), "--as"),
        (args.state_dir.is_some(), "--state-dir"),
        (!args.secrets.is_empty(), "--secret"),
    ] {
        if given {
            return Err(CliError::input(format!(
                "{flag} is for a backfill here; a server's backfill runs as the token's user, with the service's state and secrets"
            )));
        }
    }
    let body = json!({
        "schedule": args.schedule,
        "from": args.from,
        "to": args.to,
        "max_active": args.max_active,
        "reprocess": Reprocess::from(args.reprocess).name(),
        "dry_run": args.dry_run,
    });
    let path = format!("/v1/workflows/{}/backfills", segment(&args.workflow));
    let answer = args.remote.call("POST", &path, Some(&body)).await?;
    if args.dry_run {
        if args.json {
            outln!("{answer:#}");
        } else {
            let planned: Vec<Planned> = answer
                .get("nominal")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| CliError::input(format!("the server's dry run is not one: {e}")))?
                .unwrap_or_default();
            print_planned(&planned, None);
        }
        return Ok(Exit::Success);
    }
    let id = answer
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let style = Style::stderr();
    if !args.wait {
        if args.json {
            outln!("{answer:#}");
        } else {
            outln!("{id}");
            eprintln!(
                "{} backfill {id}: {} nominal time(s); `cairn backfills show {} {id}` follows it",
                style.good("started"),
                answer.get("total").and_then(Value::as_u64).unwrap_or(0),
                args.workflow
            );
        }
        return Ok(Exit::Success);
    }
    let shown_path = format!("{path}/{}", segment(&id));
    let mut last = String::new();
    let answer = loop {
        let answer = args.remote.call("GET", &shown_path, None).await?;
        let line = summary_line(&answer);
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        let status = answer.get("status").and_then(Value::as_str).unwrap_or("");
        let active = answer.get("active").and_then(Value::as_u64).unwrap_or(0);
        if status != "running" && active == 0 {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if args.json {
        outln!("{answer:#}");
    } else {
        print_value(&answer);
    }
    Ok(exit_of(
        answer.get("failed").and_then(Value::as_u64).unwrap_or(0),
    ))
}

/// The audit log of state directory `state` (none yet is an empty one when
/// `missing_ok`): what runs each nominal time has is read from it, so an
/// unreadable log must stop a backfill, never look empty.
fn read_log(state: &std::path::Path, missing_ok: bool) -> Result<Vec<u8>, CliError> {
    let path = StateDir::log_path(state);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(CliError::input(format!(
            "cannot read the audit log `{}`: {e}",
            path.display()
        ))),
    }
}

/// Here: the same backfill engine as the service's, in this process, over
/// the state directory.
async fn local(args: &BackfillArgs) -> Result<Exit, CliError> {
    let user = args.user.clone().ok_or_else(|| {
        CliError::input(
            "who is asking? pass --as USER (or set CAIRN_USER); with --server, the token says",
        )
    })?;
    let path = PathBuf::from(&args.workflow);
    let loaded = Served::load(&path).map_err(|problems| {
        CliError::input(format!(
            "`{}` does not load:\n  {}",
            path.display(),
            problems.join("\n  ")
        ))
    })?;
    let request = backfill::request_of(
        &loaded,
        &args.schedule,
        &args.from,
        &args.to,
        args.max_active,
        args.reprocess.into(),
    )
    .map_err(CliError::input)?;
    let now = jiff::Timestamp::now();
    backfill::nominal_times(&loaded, &request, now).map_err(CliError::input)?;
    let state = args
        .state_dir
        .clone()
        .unwrap_or_else(|| loaded.workflow.dir.join(".cairn"));
    if args.dry_run {
        let bytes = read_log(&state, true)?;
        let identities = backfill::identities(&bytes);
        let standings = backfill::standings(&bytes);
        let existing = |identity: &crate::serve::runs::Identity| {
            identities
                .get(identity)
                .into_iter()
                .flatten()
                .map(|r| {
                    let standing = standings
                        .get(r)
                        .copied()
                        .unwrap_or(crate::serve::runs::Standing::Active);
                    (r.clone(), standing)
                })
                .collect()
        };
        let allowed = loaded
            .service
            .decide(
                &user,
                Asked::Trigger {
                    via: "backfill",
                    trigger: &args.schedule,
                },
            )
            .map_err(CliError::input)?
            .allowed;
        let planned =
            backfill::dry_run(&existing, &loaded, &user, &request, now).map_err(CliError::input)?;
        if args.json {
            let value = json!({
                "dry_run": true,
                "workflow": loaded.name,
                "schedule": args.schedule,
                "allowed": allowed,
                "nominal": planned,
            });
            outln!("{value:#}");
        } else {
            print_planned(&planned, Some(allowed));
        }
        return Ok(if allowed { Exit::Success } else { Exit::Denied });
    }

    let signer = super::run::signer_of(args.key.as_deref(), &state)?;
    let (opened, _repairs) =
        StateDir::open(&state, signer).map_err(|e| CliError::input_with_sources(&e))?;
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let launcher = Launcher::new(
        jobs,
        args.cache_dir
            .clone()
            .or_else(super::exec::default_cache_dir)
            .as_deref(),
    )
    .map_err(|e| CliError::input_with_sources(&e))?;
    let mut catalog = Catalog::new(std::slice::from_ref(&path));
    let refreshed = catalog
        .refresh(&opened.log)
        .map_err(|e| CliError::input_with_sources(&e))?;
    if let Some(problem) = refreshed.problems.first() {
        return Err(CliError::input(problem.problems.join("\n  ")));
    }
    let Some(served) = catalog.serving(&path) else {
        return Err(CliError::input(format!(
            "`{}` changed while it was read; try again",
            path.display()
        )));
    };
    let (access, allowed) = crate::serve::decide_recorded(
        &opened,
        &served,
        &user,
        "",
        Asked::Trigger {
            via: "backfill",
            trigger: &args.schedule,
        },
    )
    .map_err(CliError::input)?;
    let secrets: BTreeMap<Name, SecretSource> = args.secrets.iter().cloned().collect();
    let runs = Runs::new(
        launcher,
        opened,
        jobs,
        Box::new(super::run::CliSecrets(secrets)),
    );
    if !allowed {
        let _ = runs.shutdown(Duration::ZERO).await;
        return Err(CliError {
            exit: Exit::Denied,
            message: format!(
                "policy does not permit `{user}` to `trigger` {} via `backfill` of schedule `{}` (recorded at record {access}); `cairn backfill --dry-run` and the workflow's policies say who may",
                served.name, args.schedule
            ),
            details: None,
        });
    }
    let bytes = match read_log(runs.state().path(), false) {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = runs.shutdown(Duration::ZERO).await;
            return Err(e);
        }
    };
    runs.learn(&bytes);
    let catalog = Arc::new(Mutex::new(catalog));
    let backfills = Backfills::new(Arc::clone(&runs), catalog, &bytes);
    drop(bytes);
    let style = Style::stderr();
    for note in backfills.resume() {
        eprintln!("{} {note} (it was cut off)", style.dim("note"));
    }
    let started = match backfills.start(&served, &user, "", access, &request) {
        Ok(shown) => shown,
        Err(e) => {
            let _ = runs.shutdown(Duration::ZERO).await;
            return Err(CliError::input(e));
        }
    };
    let id = started.id.clone();
    eprintln!(
        "{} backfill {id}: {} nominal time(s) of schedule {}, {} at once",
        style.good("started"),
        started.total,
        args.schedule,
        args.max_active
    );
    // This one, and any an earlier `cairn backfill` left unfinished.
    let all = backfills.running();
    let waited = async {
        for id in &all {
            backfills.wait(id).await;
        }
    };
    let mut interrupted = false;
    tokio::select! {
        () = waited => {}
        _ = tokio::signal::ctrl_c() => {
            interrupted = true;
            // Those this access covers (backfills of this schedule); any
            // other stops here and goes on next time.
            let ours: Vec<&String> = all
                .iter()
                .filter(|id| backfills.show(id).is_some_and(|b| b.schedule == args.schedule))
                .collect();
            let mut stopping = Vec::new();
            for id in ours {
                eprintln!("{} cancelling backfill {id}", style.dim("Ctrl-C"));
                match backfills.cancel(id, &user, "", access).await {
                    Ok(_) => stopping.push(id),
                    Err(e) => eprintln!("warning: {e}"),
                }
            }
            for id in stopping {
                backfills.wait(id).await;
            }
        }
    }
    let shown: Option<Shown> = backfills.show(&id);
    backfills.stop().await;
    runs.shutdown(Duration::from_secs(30))
        .await
        .map_err(|e| CliError::input_with_sources(&e))?;
    let Some(shown) = shown else {
        return Ok(Exit::Failed);
    };
    if args.json {
        outln!("{:#}", json!(shown));
    } else {
        print_value(&json!(shown));
    }
    if interrupted {
        return Ok(Exit::Interrupted);
    }
    Ok(exit_of(shown.failed as u64))
}
