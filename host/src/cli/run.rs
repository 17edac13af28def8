//! `cairn run`: authorize a workflow, run it, and sign its audit trail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::style::{self, Style};
use super::{CliError, Exit};
use crate::audit::log::AuditLog;
use crate::audit::note::{Signer, keygen};
use crate::audit::verify::sha256_tag;
use crate::launch::{
    LaunchError, Launcher, Prepared, Release, SecretProvider, StateDir, changes, declared_secrets,
};
use crate::name::Name;
use crate::policy::Policies;
use crate::recover::{Repairs, recover};
use crate::resume::{History, Resumption};
use crate::runner::{Progress, Start, Status, Summary, may_retry, new_run_id};
use crate::secrets::{SecretSource, SecretValue};
use crate::workflow::Workflow;

/// Run a workflow: authorize everything, run each task in its sandbox, and
/// record every event in the signed audit log.
///
/// First everything the workflow implies is authorized against its Cedar
/// policies (as `cairn plan` shows); any denial refuses the whole run (exit
/// 3, and the refusal is audited). Then each task runs, in its own sandbox,
/// as soon as everything upstream of it is done (up to `--jobs` at once);
/// outputs are kept in a content-addressed store and handed to the tasks
/// that take them as inputs. A failed task
/// skips what depends on it; `when = "failure"` tasks run then. The audit
/// log (`STATE/audit/log.jsonl`) gets every decision, task attempt, data
/// flow and secret read, and a checkpoint signed with the audit key at the
/// end: check it with `cairn audit verify`.
///
/// Secrets come from `--secret NAME=env:VAR|file:PATH`, or else from the
/// environment variable `CAIRN_SECRET_<NAME>` (upper case, `-` as `_`).
///
/// A task with `cache = true` whose component, inputs, args, env and
/// declared capabilities match an earlier successful attempt in this state
/// directory reuses its outputs instead of running (recorded as a
/// `cache-hit`).
///
/// Ctrl-C stops the tasks, records the run as cancelled and signs a
/// checkpoint (exit 130); `cairn resume RUN` goes on with it, as after a
/// crash.
///
/// A task with `approval` is a gate: the run stops there, recorded as
/// `waiting` (exit 4), and says who can do what next: `cairn approve RUN
/// TASK` (or `cairn reject`) by people whom policy allows, other than the
/// starter, then `cairn resume RUN`. Secrets of tasks after a gate are not
/// read until the run goes on past it.
///
/// Exits 0 when the run succeeded, 1 when a task failed, 2 for invalid
/// input, 3 when policy refused the run, 4 when it waits for approval.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn run --as alice
  cairn run examples/etl --build --as alice
  cairn run examples/hello --as alice --secret greeting=env:GREETING
  OPENLINEAGE__TRANSPORT__TYPE=file OPENLINEAGE__TRANSPORT__LOG_FILE_PATH=lineage.jsonl cairn run examples/etl --as alice
  cairn audit verify .cairn/audit/log.jsonl --key .cairn/keys/audit.pub

Traces (OTEL_EXPORTER_OTLP_ENDPOINT, ...) and OpenLineage events (OPENLINEAGE_URL, ...) are sent where the environment says, as for `cairn serve`.")]
pub(crate) struct RunArgs {
    /// The manifest, or a folder holding `workflow.toml`.
    #[arg(value_name = "PATH", default_value = ".")]
    path: PathBuf,

    /// Who starts the run (a `Cairn::User` of the entities file).
    #[arg(long = "as", value_name = "USER", env = "CAIRN_USER")]
    user: String,

    /// Where runs keep their audit log, artifacts and keys [default: `.cairn`
    /// beside the manifest].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Build the components first, as `cairn build` does; a failed build
    /// starts no run.
    #[arg(long)]
    build: bool,

    /// A run parameter: NAME=VALUE, for `${params.NAME}` in the tasks'
    /// `env` and `args` (repeatable; the rest take their defaults from
    /// `[params]`). Recorded in the audit log.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,

    #[command(flatten)]
    options: RunOptions,
}

/// Go on with a run that was killed, crashed or stopped with Ctrl-C.
///
/// Reads what the run did from its audit log: tasks recorded complete
/// (succeeded, failed for good, skipped, or served from the cache) keep
/// their results and outputs and do not run again; a task whose attempt
/// was cut off runs again as its next attempt; everything downstream runs
/// as usual. The rest of the run is authorized again (preflight) and the
/// resumption is recorded in the audit log (`run-resumed`), which verifies
/// as one run.
///
/// A run whose manifest, policies or components changed since it started
/// is refused, naming each change, unless --allow-changes (the changes are
/// then recorded). Runs that succeeded, failed or were refused are over:
/// start a new one with `cairn run`. Secrets are given as for `cairn run`.
/// Exits as `cairn run` does.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn runs list
  cairn resume 20261122T101500Z-3f2a
  cairn resume 20261122T101500Z-3f2a --state-dir out/state --allow-changes")]
pub(crate) struct ResumeArgs {
    /// The run's id (`cairn runs list`).
    #[arg(value_name = "RUN")]
    run: String,

    /// The state directory the run keeps its audit log and state in.
    #[arg(long, value_name = "DIR", default_value = ".cairn")]
    state_dir: PathBuf,

    /// Resume even if the manifest, policies or components changed since
    /// the run started (the changes are recorded in the audit log).
    #[arg(long)]
    allow_changes: bool,

    #[command(flatten)]
    options: RunOptions,
}

/// What `cairn run` and `cairn resume` share.
#[derive(Debug, Args)]
pub(crate) struct RunOptions {
    /// A secret's value: NAME=env:VAR or NAME=file:PATH (repeatable).
    #[arg(long = "secret", value_name = "NAME=SOURCE", value_parser = super::exec::parse_secret)]
    secrets: Vec<(Name, SecretSource)>,

    /// The Ed25519 private key (PKCS#8 PEM) that signs audit checkpoints
    /// [default: STATE/keys/audit.key, created on first use].
    #[arg(long, value_name = "FILE", env = "CAIRN_AUDIT_KEY")]
    key: Option<PathBuf>,

    /// How many tasks may run at once [default: the machine's cores].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// Where compiled tasks are cached [default: the user cache folder,
    /// as for `cairn exec`].
    #[arg(long, value_name = "DIR", env = "CAIRN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Print the run's summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(super) fn parse_param(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    Ok((name.to_owned(), value.to_owned()))
}

/// The environment variable a secret defaults to.
fn secret_env(name: &Name) -> String {
    format!(
        "CAIRN_SECRET_{}",
        name.as_str().to_ascii_uppercase().replace('-', "_")
    )
}

fn signer(args: &RunOptions, state: &Path) -> Result<Signer, CliError> {
    signer_of(args.key.as_deref(), state)
}

/// The signer of state directory `state`: the key `key`, or
/// `STATE/keys/audit.key`, created (and said so) on first use.
pub(super) fn signer_of(key: Option<&Path>, state: &Path) -> Result<Signer, CliError> {
    signer_saying(key, state, |note| {
        eprintln!("{} {note}", Style::stderr().good("note"));
    })
}

/// [`signer_of`], telling `say` that a key was created.
pub(super) fn signer_saying(
    key: Option<&Path>,
    state: &Path,
    say: impl FnOnce(&str),
) -> Result<Signer, CliError> {
    if let Some(path) = key {
        return Signer::load(path).map_err(CliError::input);
    }
    let path = state.join("keys").join("audit.key");
    if !path.exists() {
        let verifier = keygen(&state.join("keys"), "audit").map_err(CliError::input)?;
        say(&format!(
            "created the audit signing key `{}` (keep it private; give auditors `{}`, key {})",
            path.display(),
            state.join("keys").join("audit.pub").display(),
            verifier.note_key()
        ));
    }
    Signer::load(&path).map_err(CliError::input)
}

pub(crate) async fn run(args: &RunArgs) -> Result<Exit, CliError> {
    if args.build
        && let Err(done) = super::build::build_workflow(
            &args.path,
            false,
            args.options
                .cache_dir
                .clone()
                .or_else(super::exec::default_cache_dir)
                .as_deref(),
        )
    {
        return done;
    }
    let (mut workflow, policies) = match super::policy::load_policies(&args.path) {
        Ok(loaded) => loaded,
        Err(done) => return done,
    };
    let params = workflow
        .plan
        .param_values(&args.params)
        .map_err(CliError::input)?;
    workflow.plan = workflow.plan.with_params(&params);
    let state = args
        .state_dir
        .clone()
        .unwrap_or_else(|| workflow.dir.join(".cairn"));
    let ready = ready(
        &workflow,
        &policies,
        &args.user,
        params,
        &args.options,
        Release::BeforeGates,
    )?;
    execute(
        workflow,
        policies,
        ready,
        &state,
        &args.options,
        new_run_id(),
        (Start::New, None),
    )
    .await
}

pub(crate) async fn resume(args: &ResumeArgs) -> Result<Exit, CliError> {
    let state = &args.state_dir;
    if !state.join("state.db").is_file() {
        return Err(CliError::input(format!(
            "no runs in `{}`: pass the state directory of the run with --state-dir",
            state.display()
        )));
    }
    let row = crate::state::State::open(state)
        .and_then(|db| db.run(&args.run))
        .map_err(CliError::input)?
        .ok_or_else(|| {
            CliError::input(format!(
                "no run `{}` in `{}`; `cairn runs list --state-dir {}` shows the runs there",
                args.run,
                state.display(),
                state.display()
            ))
        })?;
    let (mut workflow, policies) = match super::policy::load_policies(Path::new(&row.manifest)) {
        Ok(loaded) => loaded,
        Err(done) => return done,
    };
    let log_path = state.join("audit").join("log.jsonl");
    let bytes = match std::fs::read(&log_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(CliError::input(format!(
                "cannot read the audit log `{}`: {e}",
                log_path.display()
            )));
        }
    };
    let plan = &workflow.plan;
    let history = read_history(&bytes, &args.run, plan)?;
    if let Some(history) = history.as_ref().filter(|h| !h.resumable()) {
        // A process killed after the run's end may have left its state
        // and checkpoint behind: finish that first.
        let mut log =
            AuditLog::open(&log_path, signer(&args.options, state)?).map_err(CliError::input)?;
        let mut db = crate::state::State::open(state).map_err(CliError::input)?;
        let repairs = recover(&mut log, &mut db).map_err(|e| CliError::input_with_sources(&e))?;
        report_repairs(&repairs);
        return Err(CliError::input(format!(
            "run {} already ended ({}); there is nothing to resume. Start a new run with `cairn run`",
            args.run,
            history.standing()
        )));
    }
    // The run goes on with the parameters it started with.
    let params = match &history {
        Some(history) => history.params.clone(),
        None if !workflow.plan.params.is_empty() => {
            return Err(CliError::input(format!(
                "run {} was stopped before it recorded its parameters, so it cannot go on as it was started; start it again with `cairn run` (and its --param values)",
                args.run
            )));
        }
        None => BTreeMap::new(),
    };
    workflow.plan = workflow.plan.with_params(&params);
    let ready = ready(
        &workflow,
        &policies,
        &row.user,
        params,
        &args.options,
        Release::All,
    )?;
    let start = match history {
        Some(history) => Start::Resume(resumption(args, &history, &workflow, &policies, &ready)?),
        None => {
            // Killed before its first record: nothing ran, so it starts over.
            eprintln!(
                "{} run {} was stopped before it recorded anything; running it from the start",
                Style::stderr().warn("note"),
                args.run
            );
            Start::New
        }
    };
    // A run a webhook started goes on with the body it was given.
    let given = crate::launch::given_of(&bytes, &args.run, state);
    execute(
        workflow,
        policies,
        ready,
        state,
        &args.options,
        args.run.clone(),
        (start, given),
    )
    .await
}

/// Say what recovery repaired, if anything.
fn report_repairs(repairs: &Repairs) {
    if repairs.is_empty() {
        return;
    }
    let mut done = Vec::new();
    if repairs.signed {
        done.push("signed the checkpoint it did not".to_owned());
    }
    for (run, status) in &repairs.runs {
        done.push(format!("run {run} is `{status}` as its audit log says"));
    }
    eprintln!(
        "{} an earlier cairn was stopped before it finished; repaired from the audit log: {}",
        Style::stderr().warn("note"),
        done.join("; ")
    );
}

/// Run `run`'s records in the log `bytes`, read back.
fn read_history(
    bytes: &[u8],
    run: &str,
    plan: &crate::plan::Plan,
) -> Result<Option<History>, CliError> {
    History::read(bytes, run, &|task, kind, detail, failures| {
        may_retry(plan, task, kind, detail, failures)
    })
    .map_err(CliError::input)
}

/// Where the run of `history` goes on from, or why it cannot.
fn resumption(
    args: &ResumeArgs,
    history: &History,
    workflow: &Workflow,
    policies: &Policies,
    ready: &Ready,
) -> Result<Resumption, CliError> {
    let plan = &workflow.plan;
    let changed = changes(history, workflow, policies, &ready.prepared);
    if !changed.is_empty() && !args.allow_changes {
        return Err(CliError::input(format!(
            "run {} changed since it started: {}. Resume anyway with --allow-changes (the changes are recorded in the audit log), or start a new run with `cairn run`",
            args.run,
            changed.join("; ")
        )));
    }
    let manifest_changed = sha256_tag(workflow.source.as_bytes()) != history.manifest;
    let source = manifest_changed.then(|| workflow.source.clone());
    let resumption = Resumption::new(history, plan, &args.state_dir, changed, source)
        .map_err(|e| CliError::input(format!("run {} cannot resume: {e}", args.run)))?;
    let kept = resumption.kept(plan);
    eprintln!(
        "{} run {} ({}): {} of {} task(s) recorded complete{}",
        Style::stderr().good("resuming"),
        args.run,
        resumption.after,
        kept.len(),
        resumption.total(plan),
        if kept.is_empty() {
            String::new()
        } else {
            format!(" and kept ({})", kept.join(", "))
        }
    );
    Ok(resumption)
}

/// Secrets from `--secret NAME=SOURCE`, else `CAIRN_SECRET_<NAME>`.
pub(super) struct CliSecrets(pub(super) BTreeMap<Name, SecretSource>);

impl SecretProvider for CliSecrets {
    fn secret(&self, name: &Name) -> Result<SecretValue, String> {
        let source = self
            .0
            .get(name)
            .cloned()
            .unwrap_or_else(|| SecretSource::Env(secret_env(name)));
        source.resolve().map_err(|e| {
            format!(
                "{e}; pass --secret {name}=env:VAR or set {}",
                secret_env(name)
            )
        })
    }
}

/// How many tasks may run at once: `--jobs`, or the machine's cores.
pub(super) fn jobs(args: &RunOptions) -> usize {
    args.jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

/// What a run needs, ready before anything is recorded: secrets, every
/// component loaded, the preflight (`launch`).
struct Ready {
    launcher: Launcher,
    prepared: Prepared,
}

fn ready(
    workflow: &Workflow,
    policies: &Policies,
    user: &str,
    params: BTreeMap<String, String>,
    args: &RunOptions,
    release: Release,
) -> Result<Ready, CliError> {
    let sources: BTreeMap<Name, SecretSource> = args.secrets.iter().cloned().collect();
    let declared = declared_secrets(&workflow.plan);
    if let Some(unused) = sources.keys().find(|name| !declared.contains_key(*name)) {
        return Err(CliError::input(format!(
            "--secret `{unused}`: no task declares this secret"
        )));
    }
    let cache_dir = args
        .cache_dir
        .clone()
        .or_else(super::exec::default_cache_dir);
    let launcher = Launcher::new(jobs(args), cache_dir.as_deref())
        .map_err(|e| CliError::input_with_sources(&e))?
        .on_compile(super::build::compile_progress());
    let prepared = launcher
        .prepare(
            workflow,
            policies,
            user,
            params,
            &CliSecrets(sources),
            release,
        )
        .map_err(|e| match e {
            LaunchError::Setup(_) => CliError::input_with_sources(&e),
            other => CliError::input(other),
        })?;
    Ok(Ready { launcher, prepared })
}

/// How long a run's last spans and lineage events are given to be sent.
const EXPORT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Export this run's traces and lineage where the environment asks for
/// them (`OTEL_*`, `OPENLINEAGE_*`, as for `cairn serve`): the observer
/// taps `opened`'s log, after learning what it leaves open (a resumed
/// run's spans and events go on in the same ids). With the exporters, the
/// log's origin when traces are exported (runs' traces derive from it).
fn exporting(
    observer: &Arc<crate::observe::Observer>,
    opened: &StateDir,
) -> Result<(crate::observe::Exporting, Option<String>), CliError> {
    let var = |name: &str| std::env::var(name).ok();
    let otlp = crate::observe::otlp::Config::from_env(var).map_err(CliError::input)?;
    let lineage = crate::observe::transport::Config::from_env(var).map_err(CliError::input)?;
    if otlp.is_none() && lineage.is_none() {
        return Ok((crate::observe::Exporting::default(), None));
    }
    let mut log = opened
        .log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let traced = otlp.is_some().then(|| log.origin().to_owned());
    let exporting = observer.start_exporting(log.origin(), "", otlp, lineage);
    let bytes = std::fs::read(log.path()).map_err(|e| {
        CliError::input(format!(
            "cannot read the audit log `{}`: {e}",
            log.path().display()
        ))
    })?;
    observer.learn(&bytes);
    log.tap(Arc::clone(observer) as Arc<dyn crate::audit::log::Tap>);
    Ok((exporting, traced))
}

/// Open the audit log and run state under `state` and run `workflow` as
/// run `run_id`, from `start`; print the summary.
async fn execute(
    workflow: Workflow,
    policies: Policies,
    ready: Ready,
    state: &Path,
    args: &RunOptions,
    run_id: String,
    (start, given): (Start, Option<(crate::audit::record::Artifact, PathBuf)>),
) -> Result<Exit, CliError> {
    let Ready { launcher, prepared } = ready;
    let user = prepared.user.clone();
    let result = Arc::clone(&prepared.preflight);
    let state = state.to_owned();
    let signer = signer(args, &state)?;
    let log_path = StateDir::log_path(&state);
    let (opened, repairs) =
        StateDir::open(&state, signer).map_err(|e| CliError::input_with_sources(&e))?;
    report_repairs(&repairs);
    let observer = Arc::new(crate::observe::Observer::new());
    let (exporting, traced) = exporting(&observer, &opened)?;
    if let Start::Resume(resumption) = &start {
        // Another `cairn resume` of this run may have held the log.
        let bytes = std::fs::read(&log_path).unwrap_or_default();
        let now = read_history(&bytes, &run_id, &workflow.plan)?;
        if now.is_none_or(|h| h.records != resumption.records) {
            return Err(CliError::input(format!(
                "run {run_id} went on while this resume waited for the audit log; see `cairn runs show {run_id}`"
            )));
        }
    }

    let style = Style::stderr();
    let progress: Arc<dyn Fn(Progress<'_>) + Send + Sync> = Arc::new(move |p| {
        let line = match p {
            Progress::Started { task, attempt } => {
                let again = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                format!("{} {task}{again}\n", style.dim("start"))
            }
            Progress::Line { task, text } => {
                format!("[{task}] {}\n", style::printable(text.as_bytes()))
            }
            Progress::Retrying {
                task,
                outcome,
                delay,
            } => format!(
                "{} {task} {}; retrying in {:.1}s\n",
                style.warn("retry"),
                style::printable(outcome.as_bytes()),
                delay.as_secs_f64()
            ),
            Progress::Finished(result) => match &result.status {
                Status::Succeeded => format!(
                    "{} {} in {:.1} ms\n",
                    style.good("ok"),
                    result.name,
                    result.duration.as_secs_f64() * 1000.0
                ),
                Status::Failed(why) => format!(
                    "{} {} {}\n",
                    style.error("failed"),
                    result.name,
                    style::printable(why.as_bytes())
                ),
                Status::Skipped(why) => {
                    format!("{} {} ({why})\n", style.warn("skipped"), result.name)
                }
            },
            Progress::Expanded {
                task,
                source,
                count,
            } => format!(
                "{} {task} over {source}: {count} task{}\n",
                style.dim("expand"),
                if count == 1 { "" } else { "s" }
            ),
            Progress::Waiting(gate) => format!(
                "{} {} for approval: {} of {}{}\n",
                style.warn("waiting"),
                gate.task,
                gate.approvals.len(),
                gate.required,
                gate.deadline
                    .as_ref()
                    .map(|d| format!(", until {d}"))
                    .unwrap_or_default()
            ),
        };
        // One write per line: stderr is unbuffered, and a line written in
        // pieces costs a system call per piece (and interleaves with others).
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    });
    let started = std::time::Instant::now();
    let policy_count = policies.len();
    let mut setup = launcher.setup(prepared, Arc::new(policies), &opened, progress, jobs(args));
    setup.given = given;
    setup.trace = traced.map(|origin| crate::observe::trace::trace_of(&origin, &run_id));
    let (log, state_db) = (&opened.log, &opened.state);
    let workflow = Arc::new(workflow);
    let mut running = crate::runner::start(Arc::clone(&workflow), setup, &run_id, start);
    let summary = tokio::select! {
        summary = running.finish() => {
            let summary = summary.map_err(|e| CliError::input_with_sources(&e));
            exporting.finish(&observer, EXPORT_GRACE).await;
            summary?
        }
        _ = tokio::signal::ctrl_c() => {
            // Stop the run and its tasks (what they did is recorded), then
            // record the end after all of it.
            running.stop().await;
            let checkpoint = crate::runner::cancelled(log, state_db, &run_id, started.elapsed())
                .map_err(|e| CliError::input_with_sources(&e))?;
            exporting.finish(&observer, EXPORT_GRACE).await;
            eprintln!(
                "{}: run {run_id} stopped by Ctrl-C; what it did is in the audit log, signed at record {checkpoint}. Go on with `cairn resume {run_id} --state-dir {}`",
                style.warn("cancelled"),
                state.display()
            );
            return Ok(Exit::Interrupted);
        }
    };

    if summary.status == "refused" && args.json {
        let decisions: Vec<serde_json::Value> = result
            .decisions
            .iter()
            .map(super::policy::decision_json)
            .collect();
        outln!(
            "{:#}",
            serde_json::json!({
                "run": summary.run,
                "status": "refused",
                "decisions": decisions,
                "audit": { "log": summary.log, "checkpoint": summary.checkpoint },
            })
        );
        return Ok(Exit::Denied);
    }
    if summary.status == "refused" {
        super::policy::print_table(
            &workflow.plan.name.to_string(),
            &user,
            &result.decisions,
            policy_count,
        );
        eprintln!(
            "{}: policy refused the run ({} request(s) denied); see `cairn plan`. The refusal is in the audit log.",
            style.error("denied"),
            result.denied().count()
        );
        return Ok(Exit::Denied);
    }
    if args.json {
        outln!("{:#}", summary_json(&summary, &state));
        if summary.status == "waiting" {
            say_waiting(&summary, &state, style);
        }
    } else {
        print_summary(
            &summary,
            &state,
            &verify_hint(args, &state, &summary.log),
            style,
        );
    }
    Ok(match summary.status {
        "succeeded" => Exit::Success,
        "waiting" => Exit::Waiting,
        _ => Exit::Failed,
    })
}

/// What a run waiting at approval gates needs next, for people.
fn say_waiting(summary: &Summary, state: &Path, style: Style) {
    for gate in &summary.waiting {
        let until = gate
            .deadline
            .as_ref()
            .map(|d| format!("; it times out at {d}"))
            .unwrap_or_default();
        let so_far = if gate.approvals.is_empty() {
            String::new()
        } else {
            format!(" (so far: {})", gate.approvals.join(", "))
        };
        eprintln!(
            "{}: run {} waits at approval gate `{}` before {}: {} of {} approval(s){so_far}{until}.",
            style.warn("waiting"),
            summary.run,
            gate.task,
            gate.gated
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", "),
            gate.approvals.len(),
            gate.required,
        );
        eprintln!(
            "  it covers {} (the manifest, policies, components, parameters and the gated tasks' inputs)",
            gate.bound
        );
        eprintln!(
            "  approve (someone other than the starter, whom policy allows): cairn approve {} {} --as USER --state-dir {} [--bound {}] [--comment TEXT]",
            summary.run,
            gate.task,
            state.display(),
            gate.bound
        );
    }
    eprintln!(
        "  then go on: cairn resume {} --state-dir {}",
        summary.run,
        state.display()
    );
}

fn summary_json(summary: &Summary, state: &Path) -> serde_json::Value {
    let tasks: Vec<_> = summary
        .tasks
        .iter()
        .map(|t| {
            let (status, detail) = match &t.status {
                Status::Succeeded => ("succeeded", None),
                Status::Failed(why) => ("failed", Some(why.clone())),
                Status::Skipped(why) => ("skipped", Some(why.clone())),
            };
            serde_json::json!({
                "task": t.name,
                "status": status,
                "detail": detail,
                "attempts": t.attempts,
                "duration_ms": t.duration.as_secs_f64() * 1000.0,
                "outputs": t.outputs.iter().map(|o| serde_json::json!({
                    "name": o.name, "sha256": o.sha256, "bytes": o.bytes,
                    "path": state.join("artifacts/sha256").join(o.sha256.trim_start_matches("sha256:")),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "run": summary.run,
        "status": summary.status,
        "duration_ms": summary.duration.as_secs_f64() * 1000.0,
        "tasks": tasks,
        "waiting": summary.waiting.iter().map(|g| serde_json::json!({
            "gate": g.task,
            "required": g.required,
            "approvals": g.approvals,
            "bound": g.bound,
            "deadline": g.deadline,
            "gated": g.gated,
        })).collect::<Vec<_>>(),
        "audit": { "log": summary.log, "checkpoint": summary.checkpoint },
    })
}

/// How to verify the log: with the public key beside the private one
/// (`cairn keygen` writes `NAME.pub` next to `NAME.key`).
fn verify_hint(args: &RunOptions, state: &Path, log: &Path) -> String {
    let command = |public: &Path| {
        format!(
            "`cairn audit verify {} --key {}`",
            log.display(),
            public.display()
        )
    };
    match &args.key {
        None => command(&state.join("keys").join("audit.pub")),
        Some(key) if key.with_extension("pub").is_file() => command(&key.with_extension("pub")),
        Some(key) => format!(
            "{} with the public key of `{}` (`cairn keygen` wrote it beside the key, as NAME.pub)",
            command(Path::new("PUBLIC-KEY")),
            key.display()
        ),
    }
}

fn print_summary(summary: &Summary, state: &Path, verify: &str, style: Style) {
    outln!("run {}  {}", summary.run, summary.status);
    let width = summary
        .tasks
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    for t in &summary.tasks {
        let status = match &t.status {
            Status::Succeeded => "ok".to_owned(),
            Status::Failed(why) => format!("failed: {}", style::printable(why.as_bytes())),
            Status::Skipped(why) => format!("skipped: {why}"),
        };
        outln!(
            "  {:width$}  {:>9.1} ms  {} attempt(s)  {status}",
            t.name,
            t.duration.as_secs_f64() * 1000.0,
            t.attempts
        );
        for o in &t.outputs {
            outln!(
                "  {:width$}    {} -> {}",
                "",
                o.name,
                state
                    .join("artifacts/sha256")
                    .join(o.sha256.trim_start_matches("sha256:"))
                    .display()
            );
        }
    }
    eprintln!(
        "{} audit log `{}` signed at record {}; check it with {verify}",
        match summary.status {
            "succeeded" => style.good("ok"),
            "waiting" => style.warn("waiting"),
            _ => style.error("failed"),
        },
        summary.log.display(),
        summary.checkpoint,
    );
    if summary.status == "waiting" {
        say_waiting(summary, state, style);
    }
}
