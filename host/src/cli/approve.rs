//! `cairn approve` and `cairn reject`: decide a run's approval gate.

use std::path::PathBuf;

use clap::Args;

use super::style::Style;
use super::{CliError, Exit};
use crate::audit::log::{AuditLog, idle};
use crate::runner::approval::{Ask, Verdict, decide};

/// Approve a run's approval gate, so the tasks after it can run.
///
/// A gate (a task with `approval = { required = N, .. }`) counts distinct
/// people whom policy allows (the `approve` action, with the run's
/// starter, the workflow, the gate's `bound` and the verdict in context),
/// never the run's starter, each once. Every decision is recorded in the
/// audit log with the comment's digest and the policies that decided,
/// whether it counts or not (exit 3 when it does not, saying why). An
/// approval is of what the gate covers (`bound`: the manifest, policies,
/// components, parameters and the digests of the gated tasks' inputs);
/// pass --bound to approve only what you looked at. Once enough approve,
/// `cairn resume RUN` goes on.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn approve 20261203T101500Z-3f2a deploy-approval --as carol --comment \"change CHG-1234\"
  cairn approve 20261203T101500Z-3f2a deploy-approval --as dave --bound sha256:9f2c...
  cairn resume 20261203T101500Z-3f2a")]
pub(crate) struct ApproveArgs {
    #[command(flatten)]
    gate: GateArgs,
}

/// Reject a run's approval gate: it fails, and the tasks after it do not
/// run (`when = "failure"` tasks do).
///
/// Decided by policy and recorded as `cairn approve` is; one rejection by
/// someone whom policy allows ends the gate. `cairn resume RUN` then
/// finishes the run.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn reject 20261203T101500Z-3f2a deploy-approval --as carol --comment \"not during the freeze\"")]
pub(crate) struct RejectArgs {
    #[command(flatten)]
    gate: GateArgs,
}

#[derive(Debug, Args)]
struct GateArgs {
    /// The run's id (`cairn runs list`).
    #[arg(value_name = "RUN")]
    run: String,

    /// The gate: the task with `approval`.
    #[arg(value_name = "TASK")]
    task: String,

    /// Who decides (a `Cairn::User` of the entities file).
    #[arg(long = "as", value_name = "USER", env = "CAIRN_USER")]
    user: String,

    /// Why (its SHA-256 is recorded, not the text).
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,

    /// The gate's `bound` you reviewed (as `cairn run` and `cairn runs
    /// show` print it); refused if the gate now covers anything else.
    #[arg(long, value_name = "SHA256")]
    bound: Option<String>,

    /// The state directory the run keeps its audit log in.
    #[arg(long, value_name = "DIR", default_value = ".cairn")]
    state_dir: PathBuf,

    /// The Ed25519 private key that signs audit checkpoints [default:
    /// STATE/keys/audit.key].
    #[arg(long, value_name = "FILE", env = "CAIRN_AUDIT_KEY")]
    key: Option<PathBuf>,

    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn approve(args: &ApproveArgs) -> Result<Exit, CliError> {
    gate(&args.gate, Verdict::Approve)
}

pub(crate) fn reject(args: &RejectArgs) -> Result<Exit, CliError> {
    gate(&args.gate, Verdict::Reject)
}

fn gate(args: &GateArgs, verdict: Verdict) -> Result<Exit, CliError> {
    let state = &args.state_dir;
    let path = state.join("audit").join("log.jsonl");
    if !path.is_file() {
        return Err(CliError::input(format!(
            "no audit log in `{}`: pass the run's state directory with --state-dir",
            state.display()
        )));
    }
    // A run that is going on, or `cairn serve`, holds the log: the gate's
    // decisions are theirs to take then.
    let Some(probe) = idle(&path) else {
        return Err(CliError::input(format!(
            "another cairn process is writing `{}`: a run still going (decide once it waits at the gate) or `cairn serve` (decide through its API: POST /v1/runs/{}/tasks/{}/{})",
            path.display(),
            args.run,
            args.task,
            verdict.as_str()
        )));
    };
    drop(probe);
    let signer = super::run::signer_of(args.key.as_deref(), state)?;
    let mut log = AuditLog::open(&path, signer).map_err(|e| CliError::input_with_sources(&e))?;
    // Read under the lock: nothing changes between deciding and recording.
    let bytes = std::fs::read(&path)
        .map_err(|e| CliError::input(format!("cannot read `{}`: {e}", path.display())))?;
    let ask = Ask {
        run: &args.run,
        gate: &args.task,
        approver: &args.user,
        verdict,
        comment: args.comment.as_deref(),
        bound: args.bound.as_deref(),
    };
    let decided = decide(&bytes, &ask).map_err(CliError::input)?;
    let at = log
        .append(&args.run, decided.event.clone())
        .map_err(|e| CliError::input_with_sources(&e))?;
    let checkpoint = log
        .checkpoint(&args.run)
        .map_err(|e| CliError::input_with_sources(&e))?;
    let style = Style::stderr();
    if args.json {
        outln!(
            "{:#}",
            serde_json::json!({
                "run": args.run,
                "gate": args.task,
                "verdict": verdict.as_str(),
                "approver": args.user,
                "counted": decided.refused.is_none(),
                "refused": decided.refused,
                "decision": if decided.allowed { "allow" } else { "deny" },
                "policies": decided.policies,
                "approvals": decided.approvals,
                "required": decided.required,
                "bound": decided.bound,
                "audit": { "record": at, "checkpoint": checkpoint },
            })
        );
    }
    if let Some(why) = &decided.refused {
        eprintln!(
            "{}: {why}. Recorded, not counted (record {at}); the gate is unchanged.",
            style.error("refused")
        );
        return Ok(Exit::Denied);
    }
    let by = if decided.policies.is_empty() {
        String::new()
    } else {
        format!(" (allowed by {})", decided.policies.join(", "))
    };
    let resume = format!("cairn resume {} --state-dir {}", args.run, state.display());
    if args.json {
        return Ok(Exit::Success);
    }
    match verdict {
        Verdict::Reject => eprintln!(
            "{} {} rejected `{}` of run {}{by}; record {at}. `{resume}` finishes the run without what the gate holds back.",
            style.warn("rejected"),
            args.user,
            args.task,
            args.run
        ),
        Verdict::Approve => {
            let have = decided.approvals.len();
            let need = usize::try_from(decided.required).unwrap_or(usize::MAX);
            let next = if have >= need {
                format!("the gate has its approvals: go on with `{resume}`")
            } else {
                format!(
                    "{} more needed from people other than the starter",
                    need - have
                )
            };
            eprintln!(
                "{} {} approved `{}` of run {}{by}: {have} of {need}; {next}. Record {at}.",
                style.good("approved"),
                args.user,
                args.task,
                args.run
            );
        }
    }
    Ok(Exit::Success)
}
