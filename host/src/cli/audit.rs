//! `cairn keygen` and `cairn audit verify|show`: the audit trail, for the
//! people who check it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::style::{self, Style};
use super::{CliError, Exit};
use crate::audit::bundle;
use crate::audit::note::{Signer, Verifier, keygen};
use crate::audit::record::{Event, Record};
use crate::audit::verify::{Artifacts, Report, verify_against};

/// Make an Ed25519 key pair for signing audit checkpoints.
///
/// Writes `DIR/NAME.key` (PKCS#8 PEM, readable only by you) and
/// `DIR/NAME.pub` (SPKI PEM, for auditors), like `openssl genpkey
/// -algorithm ed25519`; never overwrites. Prints the public key in the
/// signed-note form other transparency-log tools take. Use the key with
/// `cairn run --key DIR/NAME.key`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the pair.
    #[arg(long, value_name = "DIR", default_value = ".cairn/keys")]
    out: PathBuf,
    /// The key's name (file names and the name in signatures).
    #[arg(long, default_value = "audit")]
    name: String,
    /// Print the files and the public key as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Check and read the audit trail.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    Verify(VerifyArgs),
    Show(ShowArgs),
    Export(ExportArgs),
    Prove(ProveArgs),
    CheckProof(CheckProofArgs),
}

/// Write a self-contained bundle of one run for auditors.
///
/// The bundle (a new folder) holds the log up to the checkpoint that ends
/// the run, that checkpoint, the public key, the workflow manifest, the
/// policies and entities the run was decided with, the run's input and
/// output artifacts, SHA256SUMS, and SLSA provenance of the run (an in-toto
/// statement in a DSSE envelope signed with the audit key). Check it with
/// `cairn audit verify BUNDLE --key TRUSTED.pub`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn audit export 20261122T194330Z-1a2b --out audit-bundle
  cairn audit verify audit-bundle --key auditor-copy-of-audit.pub")]
pub(crate) struct ExportArgs {
    /// The run (`cairn audit show --kind run-started` lists them).
    #[arg(value_name = "RUN")]
    run: String,
    /// The new folder to write.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The state directory holding the log, artifacts and key.
    #[arg(long, value_name = "DIR", default_value = ".cairn")]
    state_dir: PathBuf,
    /// The private key that signs the provenance [default: STATE/keys/audit.key].
    #[arg(long, value_name = "FILE", env = "CAIRN_AUDIT_KEY")]
    key: Option<PathBuf>,
    /// Print the bundle's folder and files as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Print the proof that one record is in a signed checkpoint.
///
/// Shows a single event to an auditor without the whole log: the record,
/// its Merkle inclusion proof and the signed checkpoint, as JSON. Check it
/// with `cairn audit check-proof`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn audit prove 17 > record-17.proof.json
  cairn audit check-proof record-17.proof.json --key audit.pub")]
pub(crate) struct ProveArgs {
    /// The record's sequence number.
    #[arg(value_name = "RECORD")]
    seq: u64,
    /// The log, or a state directory holding `audit/log.jsonl`.
    #[arg(value_name = "LOG", default_value = ".cairn")]
    log: PathBuf,
    /// Prove it against the log's latest checkpoint, not the first after it.
    #[arg(long)]
    latest: bool,
}

/// Check a proof made by `cairn audit prove` with a public key.
#[derive(Debug, Args)]
pub(crate) struct CheckProofArgs {
    /// The proof (JSON).
    #[arg(value_name = "PROOF")]
    proof: PathBuf,
    /// The public key (SPKI PEM) the checkpoint must be signed with.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Print the result as JSON on stdout (`ok`, what was checked or why
    /// not, and the record).
    #[arg(long)]
    json: bool,
}

/// Verify an audit log offline, with only the public key.
///
/// Checks every checkpoint's Ed25519 signature; the Merkle root of the
/// records against each checkpoint and consistency between successive
/// checkpoints; that sequence numbers and the hash chain are unbroken and
/// every record is covered by a signed checkpoint; that every task start
/// and secret read follows an allow decision for it; every recorded digest
/// against the artifacts present; and it decides every recorded Cedar
/// decision again against the run's recorded policies and entities. Exits 0
/// when all hold, 1 naming the first bad record otherwise.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn audit verify .cairn/audit/log.jsonl --key .cairn/keys/audit.pub
  cairn audit verify .cairn --key auditor-copy-of-audit.pub --json")]
pub(crate) struct VerifyArgs {
    /// The log, or a state directory holding `audit/log.jsonl`.
    #[arg(value_name = "LOG", default_value = ".cairn")]
    log: PathBuf,
    /// The public key (SPKI PEM) checkpoints must be signed with.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Content-addressed stores to check digests against [default: the
    /// state directory's `artifacts`].
    #[arg(long = "artifacts", value_name = "DIR")]
    artifacts: Vec<PathBuf>,
    /// A signed checkpoint you hold (e.g. a copy of `STATE/audit/checkpoint`
    /// taken earlier, or published): the log must contain what it signs.
    /// Catches a log cut back to an older checkpoint. [default: a bundle's
    /// `checkpoint`, or the `checkpoint` file beside the log when there is
    /// one]
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Show the audit log as a timeline.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn audit show
  cairn audit show --run 20261122T194330Z-1a2b --kind decision --json")]
pub(crate) struct ShowArgs {
    /// The log, or a state directory holding `audit/log.jsonl`.
    #[arg(value_name = "LOG", default_value = ".cairn")]
    log: PathBuf,
    /// Only this run.
    #[arg(long, value_name = "RUN")]
    run: Option<String>,
    /// Only records about this task.
    #[arg(long, value_name = "TASK")]
    task: Option<String>,
    /// Only records of this kind (e.g. `decision`, `task-finished`).
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
    /// Print the records as JSON lines on stdout, exactly as logged.
    #[arg(long)]
    json: bool,
}

pub(crate) fn keygen_command(args: &KeygenArgs) -> Result<Exit, CliError> {
    let verifier = keygen(&args.out, &args.name).map_err(CliError::input)?;
    let private = args.out.join(format!("{}.key", args.name));
    let public = args.out.join(format!("{}.pub", args.name));
    if args.json {
        outln!(
            "{:#}",
            serde_json::json!({
                "private": private.display().to_string(),
                "public": public.display().to_string(),
                "note_key": verifier.note_key(),
            })
        );
    } else {
        outln!("{}", verifier.note_key());
    }
    eprintln!(
        "{} wrote `{}` (private, mode 0600) and `{}` (public: give it to auditors)",
        Style::stderr().good("ok"),
        private.display(),
        public.display()
    );
    Ok(Exit::Success)
}

/// The log file and default artifact store for a LOG argument.
fn locate(log: &Path) -> (PathBuf, Vec<PathBuf>) {
    if log.join("log.jsonl").is_file() {
        // A bundle.
        return (log.join("log.jsonl"), vec![log.join("artifacts")]);
    }
    if log.is_dir() || log.extension().is_none_or(|e| e != "jsonl") {
        let inner = log.join("audit").join("log.jsonl");
        return (inner, vec![log.join("artifacts")]);
    }
    // `STATE/audit/log.jsonl`: artifacts are in `STATE/artifacts`.
    let store = log
        .parent()
        .and_then(Path::parent)
        .map(|state| state.join("artifacts"))
        .into_iter()
        .collect();
    (log.to_owned(), store)
}

pub(crate) fn audit(command: &AuditCommand) -> Result<Exit, CliError> {
    match command {
        AuditCommand::Verify(args) => verify(args),
        AuditCommand::Show(args) => show(args),
        AuditCommand::Export(args) => export(args),
        AuditCommand::Prove(args) => prove(args),
        AuditCommand::CheckProof(args) => check_proof(args),
    }
}

fn verify(args: &VerifyArgs) -> Result<Exit, CliError> {
    let key = Verifier::load(&args.key).map_err(CliError::input)?;
    let (log, default_store) = locate(&args.log);
    let stores = if args.artifacts.is_empty() {
        default_store
    } else {
        args.artifacts.clone()
    };
    // A bundle brings the checkpoint that ends its run, and provenance.
    let bundle = args.log.join("log.jsonl").is_file();
    // Else the checkpoint a state directory keeps beside its log, the one
    // operators hand out: a forged or stale copy must not go unnoticed.
    let beside = log.with_file_name("checkpoint");
    let held_path = args
        .checkpoint
        .clone()
        .or_else(|| bundle.then(|| args.log.join("checkpoint")))
        .or_else(|| beside.is_file().then_some(beside));
    let held = match &held_path {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            CliError::input(format!(
                "cannot read the checkpoint `{}`: {e}",
                path.display()
            ))
        })?),
        None => None,
    };
    let bytes = read_log(&log)?;
    let mut report = verify_against(&bytes, &key, &Artifacts::new(stores), held.as_deref());
    let provenance = args.log.join("provenance.dsse.json");
    let mut subjects = None;
    if bundle && provenance.is_file() {
        let envelope = std::fs::read(&provenance).unwrap_or_default();
        match bundle::check_provenance(&bytes, &envelope, &key) {
            Ok(n) => subjects = Some(n),
            Err(why) => report.problems.push(crate::audit::verify::Problem {
                record: report.records.saturating_sub(1),
                check: "provenance",
                message: format!("`provenance.dsse.json`: {why}"),
            }),
        }
    }
    if args.json {
        let mut value = report_json(&report, &log, &key);
        if let Some(fields) = value.as_object_mut() {
            fields.insert("held_checkpoint".into(), serde_json::json!(held_path));
            fields.insert("provenance_subjects".into(), serde_json::json!(subjects));
        }
        outln!("{value:#}");
    } else {
        print_report(&report, &log, &key, subjects, held_path.as_deref());
    }
    Ok(if report.ok() {
        Exit::Success
    } else {
        Exit::Failed
    })
}

fn report_json(report: &Report, log: &Path, key: &Verifier) -> serde_json::Value {
    serde_json::json!({
        "log": log,
        "key": key.note_key(),
        "origin": report.origin,
        "checkpoint_key": report.origin.as_deref().map(|o| key.note_key_as(o)),
        "ok": report.ok(),
        "records": report.records,
        "checkpoints": report.checkpoints,
        "consistent_pairs": report.consistent_pairs,
        "runs": report.runs,
        "decisions_reevaluated": report.decisions,
        "authorized_steps": report.authorized,
        "digests_checked": report.digests_checked,
        "digests_absent": report.digests_absent,
        "torn_tails": report.torn_tails,
        "first_bad_record": report.first().map(|p| p.record),
        "problems": report.problems.iter().map(|p| serde_json::json!({
            "record": p.record, "check": p.check, "message": p.message,
        })).collect::<Vec<_>>(),
    })
}

fn print_report(
    report: &Report,
    log: &Path,
    key: &Verifier,
    subjects: Option<usize>,
    held: Option<&Path>,
) {
    let style = Style::stdout();
    outln!("audit log `{}`, key {}", log.display(), key.note_key());
    if let Some(origin) = &report.origin {
        // What C2SP tools are given to check the checkpoints by themselves.
        outln!(
            "  origin {origin}: checkpoints signed as {}",
            key.note_key_as(origin)
        );
    }
    let failed = |check: &str| report.problems.iter().any(|p| p.check == check);
    let line = |bad: bool, what: &str, detail: String| {
        let mark = if bad {
            style.error("FAIL")
        } else {
            style.good("ok  ")
        };
        outln!("  {mark}  {what:<26} {detail}");
    };
    line(
        failed("format") || failed("integrity") || failed("sequence") || failed("chain"),
        "records and hash chain",
        format!("{} records", report.records),
    );
    line(
        failed("signature"),
        "checkpoint signatures",
        format!("{} verified", report.checkpoints),
    );
    line(
        failed("root"),
        "merkle roots",
        format!("{} match", report.checkpoints),
    );
    line(
        failed("consistency"),
        "consistency",
        format!("{} successive pairs", report.consistent_pairs),
    );
    line(
        failed("coverage"),
        "coverage",
        "every record under a signed checkpoint".into(),
    );
    line(
        failed("authorization"),
        "authorized steps",
        format!(
            "{} task starts, secret reads and HTTP requests follow an allow",
            report.authorized
        ),
    );
    line(
        failed("decision") || failed("policy-set"),
        "decisions re-evaluated",
        format!("{} against the recorded policies", report.decisions),
    );
    line(
        failed("digest"),
        "digests",
        format!(
            "{} checked against artifacts, {} not present",
            report.digests_checked, report.digests_absent
        ),
    );
    if let Some(held) = held {
        line(
            failed("truncation"),
            "held checkpoint",
            format!("`{}` signs records the log holds", held.display()),
        );
    }
    if let Some(n) = subjects {
        line(
            false,
            "provenance",
            format!("DSSE envelope signed, {n} subjects match the run"),
        );
    } else if failed("provenance") {
        line(true, "provenance", "see below".into());
    }
    if report.torn_tails > 0 {
        outln!(
            "  note  {} torn tail(s) from crashes mid-write were recorded (see `cairn audit show --kind torn-tail`)",
            report.torn_tails
        );
    }
    let status = Style::stderr();
    match report.first() {
        None => eprintln!("{} the audit log verifies", status.good("ok")),
        Some(first) => {
            for p in report.problems.iter().take(10) {
                outln!(
                    "  record {} ({}): {}",
                    p.record,
                    p.check,
                    style::printable(p.message.as_bytes())
                );
            }
            if report.problems.len() > 10 {
                outln!("  ... and {} more", report.problems.len() - 10);
            }
            eprintln!(
                "{}: the audit log does not verify; the first bad record is {} ({}: {})",
                status.error("failed"),
                first.record,
                first.check,
                style::printable(first.message.as_bytes())
            );
        }
    }
}

fn show(args: &ShowArgs) -> Result<Exit, CliError> {
    let (log, _) = locate(&args.log);
    let bytes = read_log(&log)?;
    let mut shown = 0usize;
    let mut out = std::io::stdout().lock();
    for (at, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let Ok((record, _)) = Record::decode(line) else {
            eprintln!(
                "{}: record {at} is not a valid record; run `cairn audit verify`",
                Style::stderr().warn("warning")
            );
            continue;
        };
        if args.run.as_ref().is_some_and(|r| *r != record.run)
            || args.kind.as_ref().is_some_and(|k| k != record.event.kind())
            || args
                .task
                .as_ref()
                .is_some_and(|t| task_of(&record.event) != Some(t.as_str()))
        {
            continue;
        }
        shown += 1;
        // A reader that stops early (`| head`) ends the listing, quietly.
        let written = if args.json {
            writeln!(out, "{}", String::from_utf8_lossy(line))
        } else {
            writeln!(
                out,
                "{:>6}  {}  {:<22}  {:<13}  {}",
                record.seq,
                record.time.get(..23).unwrap_or(&record.time),
                record.run,
                record.event.kind(),
                style::printable(describe(&record.event).as_bytes())
            )
        };
        if written.is_err() {
            std::process::exit(141);
        }
    }
    if shown == 0 && !args.json {
        eprintln!("no records match");
    }
    Ok(Exit::Success)
}

fn task_of(event: &Event) -> Option<&str> {
    match event {
        Event::Decision { task, .. }
        | Event::DataFlow { task, .. }
        | Event::TaskStarted { task, .. }
        | Event::SecretRead { task, .. }
        | Event::HttpRequest { task, .. }
        | Event::TaskFinished { task, .. }
        | Event::Retry { task, .. }
        | Event::TaskSkipped { task, .. }
        | Event::GateOpened { task, .. }
        | Event::Approval { task, .. }
        | Event::GateClosed { task, .. }
        | Event::Expansion { task, .. } => Some(task),
        _ => None,
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::LogOpened { origin, .. } => format!("log {origin}"),
        Event::TornTail {
            offset,
            bytes,
            saved_as,
            ..
        } => {
            format!("{bytes} bytes of a partial record at offset {offset}, saved as {saved_as}")
        }
        Event::RunStarted {
            user,
            workflow,
            manifest,
            policy_set,
            parameters,
            ..
        } => format!(
            "{workflow} by {user} (manifest {}, policies {}){}",
            short(&manifest.sha256),
            short(policy_set),
            if parameters.is_empty() {
                String::new()
            } else {
                let shown: Vec<String> =
                    parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(" with {}", shown.join(" "))
            }
        ),
        Event::RunResumed {
            after,
            policy_set,
            changed,
            kept,
            ..
        } => format!(
            "after {after}, policies {}, {} task(s) kept{}",
            short(policy_set),
            kept.len(),
            if changed.is_empty() {
                String::new()
            } else {
                format!(", changed: {}", changed.join("; "))
            }
        ),
        Event::PolicySet { files, .. } => format!("{} policy file(s)", files.len()),
        Event::WorkflowLoaded {
            workflow,
            manifest,
            policy_set,
            ..
        } => format!(
            "serving {workflow} (manifest {}, policies {})",
            short(&manifest.sha256),
            short(policy_set)
        ),
        Event::Access {
            token,
            workflow,
            action,
            principal,
            resource,
            decision,
            policies,
            ..
        } => format!(
            "{decision} {} {action} {} of {workflow} [{}] (token {})",
            principal
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or_default(),
            resource
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or_default(),
            if policies.is_empty() {
                "no policy permits".to_owned()
            } else {
                policies.join(", ")
            },
            if token.is_empty() { "none" } else { token }
        ),
        Event::Trigger {
            via,
            workflow,
            starts: run,
            user,
            access,
            nominal,
            traceparent,
            ..
        } => format!(
            "{via} starts run {run} of {workflow} as {user}{} (allowed at record {access}){}",
            nominal
                .as_ref()
                .map(|n| format!(" for {n}"))
                .unwrap_or_default(),
            traceparent
                .as_ref()
                .map(|t| format!(", in trace {t}"))
                .unwrap_or_default()
        ),
        Event::BackfillStarted {
            backfill,
            workflow,
            schedule,
            user,
            from,
            to,
            reprocess,
            max_active,
            nominal,
            access,
            ..
        } => format!(
            "{user} backfills schedule {schedule} of {workflow} from {from} to {to}: backfill {backfill}, {} nominal time(s), reprocess {reprocess}, {max_active} at once (allowed at record {access})",
            nominal.len()
        ),
        Event::BackfillSkipped {
            backfill,
            nominal,
            why,
            detail,
            ..
        } => format!(
            "backfill {backfill} skips {nominal}: {why}{}",
            detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
        Event::BackfillEnded {
            backfill,
            result,
            user,
            ..
        } => match user {
            Some(user) => format!("backfill {backfill} {result} by {user}"),
            None => format!("backfill {backfill} {result}"),
        },
        Event::Tick {
            workflow,
            schedule,
            nominal,
            local,
            decision,
            why,
            through,
            count,
            starts,
            ..
        } => {
            let range = match (through, count) {
                (Some(t), Some(n)) => format!(" and {n} tick(s) through {t}"),
                (Some(t), None) => format!(" and every tick through {t}"),
                _ => String::new(),
            };
            match (decision.as_str(), starts) {
                ("run", Some(run)) => {
                    format!(
                        "schedule {schedule} of {workflow} ticks {nominal} ({local}): starts run {run}"
                    )
                }
                _ => format!(
                    "schedule {schedule} of {workflow} ticks {nominal} ({local}){range}: no run ({})",
                    why.as_deref().unwrap_or("?")
                ),
            }
        }
        Event::Delivery {
            workflow,
            webhook,
            id,
            result,
            starts,
            ..
        } => match starts {
            Some(run) => {
                format!("webhook {webhook} of {workflow}: delivery {id} {result}, run {run}")
            }
            None => format!("webhook {webhook} of {workflow}: delivery {id} {result}"),
        },
        Event::Notification {
            workflow,
            notification,
            event_type,
            endpoint,
            attempt,
            result,
            status,
            ..
        } => format!(
            "notification {notification} of {workflow}: {event_type} to {endpoint}, attempt {attempt}: {result}{}",
            status.map_or_else(String::new, |s| format!(" (HTTP {s})"))
        ),
        Event::Pause {
            workflow,
            schedule,
            paused,
            user,
            ..
        } => format!(
            "{user} {} schedule {schedule} of {workflow}",
            if *paused { "pauses" } else { "resumes" }
        ),
        Event::Decision {
            phase,
            task,
            action,
            resource,
            decision,
            policies,
            ..
        } => format!(
            "{decision} {task} {action} {} [{}] ({phase})",
            resource
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or_default(),
            if policies.is_empty() {
                "no policy permits".to_owned()
            } else {
                policies.join(", ")
            }
        ),
        Event::DataFlow {
            from,
            task,
            input,
            sha256,
            labels,
        } => {
            format!("{from} -> {task}.{input} {} {labels:?}", short(sha256))
        }
        Event::TaskStarted {
            task,
            attempt,
            component,
            ..
        } => {
            format!("{task} attempt {attempt} ({})", short(&component.sha256))
        }
        Event::SecretRead { task, name, .. } => format!("{task} read secret {name}"),
        Event::HttpRequest {
            task,
            method,
            scheme,
            host,
            port,
            path,
            allowed,
            reason,
            status,
            received_bytes,
            injected,
            ..
        } => {
            let target = format!("{method} {scheme}://{host}:{port}{path}");
            let result = match (allowed, status) {
                (true, Some(status)) => format!("-> {status}, {received_bytes} bytes"),
                (true, None) => format!("failed: {}", reason.as_deref().unwrap_or_default()),
                (false, _) => format!("DENIED: {}", reason.as_deref().unwrap_or_default()),
            };
            let injected = if injected.is_empty() {
                String::new()
            } else {
                format!(" [injected {}]", injected.join(", "))
            };
            format!("{task} {target} {result}{injected}")
        }
        Event::TaskFinished {
            task,
            attempt,
            outcome,
            exit_status,
            duration_ms,
            outputs,
            ..
        } => {
            let status = exit_status.map_or_else(String::new, |s| format!(" (exit status {s})"));
            format!(
                "{task} attempt {attempt}: {outcome}{status} in {duration_ms} ms, {} output(s)",
                outputs.len()
            )
        }
        Event::Retry {
            task,
            attempt,
            delay_ms,
            reason,
        } => {
            format!("{task} after attempt {attempt} in {delay_ms} ms: {reason}")
        }
        Event::TaskSkipped { task, reason } => format!("{task}: {reason}"),
        Event::CacheHit {
            task,
            from_run,
            from_attempt,
            outputs,
            ..
        } => format!(
            "{task}: reused {} output(s) of run {from_run} attempt {from_attempt}",
            outputs.len()
        ),
        Event::GateOpened {
            task,
            required,
            gated,
            bound,
            deadline,
            ..
        } => format!(
            "{task}: waits for {required} approval(s) before {}, bound {}{}",
            gated.join(", "),
            short(bound),
            deadline
                .as_ref()
                .map(|d| format!(", until {d}"))
                .unwrap_or_default()
        ),
        Event::Approval {
            task,
            verdict,
            approver,
            decision,
            policies,
            refused,
            ..
        } => {
            let counted = match refused {
                Some(why) => format!("NOT COUNTED: {why}"),
                None => "counted".to_owned(),
            };
            format!(
                "{task}: {verdict} by {approver}, {decision} [{}], {counted}",
                policies.join(", ")
            )
        }
        Event::GateClosed { task, result, by } => {
            if by.is_empty() {
                format!("{task}: {result}")
            } else {
                format!("{task}: {result} by {}", by.join(", "))
            }
        }
        Event::Expansion {
            task,
            source,
            count,
            error,
            ..
        } => match error {
            Some(why) => format!("{task}: not expanded over {source}: {why}"),
            None => format!("{task}: expanded over {source} to {count} tasks"),
        },
        Event::RunFinished {
            status,
            duration_ms,
        } => format!("{status} in {duration_ms} ms"),
        Event::Checkpoint { size, root, .. } => format!("signed {size} records, root {root}"),
    }
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

fn read_log(log: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(log).map_err(|e| {
        CliError::input(format!(
            "cannot read the audit log `{}`: {e}",
            log.display()
        ))
    })
}

fn export(args: &ExportArgs) -> Result<Exit, CliError> {
    let (log, _) = locate(&args.state_dir);
    let bytes = read_log(&log)?;
    let key = args
        .key
        .clone()
        .unwrap_or_else(|| args.state_dir.join("keys").join("audit.key"));
    let signer = Signer::load(&key).map_err(CliError::input)?;
    let files = bundle::export(
        &bytes,
        &args.run,
        &args.state_dir.join("artifacts"),
        &signer,
        &args.out,
    )
    .map_err(CliError::input)?;
    if args.json {
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        outln!(
            "{:#}",
            serde_json::json!({ "run": args.run, "bundle": args.out.display().to_string(), "files": files })
        );
    }
    eprintln!(
        "{} wrote {} files to `{}`; check it with `cairn audit verify {} --key TRUSTED.pub`",
        Style::stderr().good("ok"),
        files.len(),
        args.out.display(),
        args.out.display()
    );
    Ok(Exit::Success)
}

fn prove(args: &ProveArgs) -> Result<Exit, CliError> {
    let (log, _) = locate(&args.log);
    let bytes = read_log(&log)?;
    let proof = bundle::prove(&bytes, args.seq, args.latest).map_err(CliError::input)?;
    outln!("{proof:#}");
    Ok(Exit::Success)
}

fn check_proof(args: &CheckProofArgs) -> Result<Exit, CliError> {
    let key = Verifier::load(&args.key).map_err(CliError::input)?;
    let text = std::fs::read(&args.proof)
        .map_err(|e| CliError::input(format!("cannot read `{}`: {e}", args.proof.display())))?;
    let proof: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| CliError::input(format!("`{}` is not a proof: {e}", args.proof.display())))?;
    let record = proof
        .pointer("/record")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let checked = bundle::check_proof(&proof, &key);
    if args.json {
        let (ok, detail) = match &checked {
            Ok(what) => (true, what.to_string()),
            Err(why) => (false, why.to_string()),
        };
        outln!(
            "{:#}",
            serde_json::json!({
                "ok": ok,
                if ok { "checked" } else { "error" }: detail,
                "record": ok.then_some(record),
            })
        );
    }
    match checked {
        Ok(what) => {
            eprintln!("{} {what}", Style::stderr().good("ok"));
            if !args.json {
                outln!("{record}");
            }
            Ok(Exit::Success)
        }
        Err(why) => {
            eprintln!("{}: {why}", Style::stderr().error("failed"));
            Ok(Exit::Failed)
        }
    }
}
