//! `cairn plan` and `cairn policy validate`: what policy allows, before
//! anything runs; `cairn policy test`, its expected decisions; and `cairn
//! policy fmt`, the layout of policy files.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::style::{Style, printable};
use super::{CliError, Exit};
use crate::diag::Diagnostics;
use crate::name::Name;
use crate::policy::cases::{self, Suite, SuiteError};
use crate::policy::format::{self, Change};
use crate::policy::{Decision, Policies, PolicyError, preflight};
use crate::workflow::Workflow;

/// Show what a run would do, in order, with every authorization decision.
///
/// Builds every request the workflow implies — each task's run, each
/// declared secret, mount and network host, each data flow with the labels
/// that reach it — and authorizes them all against the workflow's Cedar
/// policies, as the run's user. Default deny. Exits 0 if all are allowed,
/// 3 if any is denied (the run would be refused), 2 for invalid input.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn plan --as alice
  cairn plan examples/release --as bob --json")]
pub(crate) struct PlanArgs {
    /// The manifest, or a folder holding `workflow.toml`.
    #[arg(value_name = "PATH", default_value = ".")]
    path: PathBuf,

    /// Who starts the run (a `Cairn::User` of the entities file).
    #[arg(long = "as", value_name = "USER", env = "CAIRN_USER")]
    user: String,

    /// A run parameter: NAME=VALUE (repeatable; the rest take their
    /// defaults). Fan-outs (`for_each`) are expanded with them, and every
    /// task they expand to is decided.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::run::parse_param)]
    params: Vec<(String, String)>,

    /// Print the decisions as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Work with a workflow's Cedar policies.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Check the workflow's policies and entities against Cairn's schema.
    Validate {
        /// The manifest, or a folder holding `workflow.toml`.
        #[arg(value_name = "PATH", default_value = ".")]
        path: PathBuf,

        /// Print the result as JSON on stdout: validity, the policy files,
        /// and each problem with its file, line and column.
        #[arg(long)]
        json: bool,
    },
    /// Run policy tests: requests and the decisions they should get.
    ///
    /// Each `*.policytest.toml` file names the policies it tests, the
    /// entities its requests talk about, and `[[case]]`s: principal, action,
    /// resource, context, and the expected decision ("allow" or "deny"),
    /// optionally with the IDs of the policies expected to decide it. Cases
    /// are decided exactly as `cairn plan` and a run decide them. Exits 0
    /// when all pass, 1 when any fails, 2 for invalid test files or
    /// policies. The format is in the README ("Policy tests").
    #[command(after_help = "Examples:
  cairn policy test policies/
  cairn policy test release.policytest.toml --json")]
    Test {
        /// Test files, or folders searched for `*.policytest.toml`.
        #[arg(value_name = "PATH", default_value = ".")]
        paths: Vec<PathBuf>,

        /// Print the results as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Lay out policy files as Cedar's formatter does (`cedar format`).
    ///
    /// Formats each `*.cedar` file with Cedar's own formatter and its
    /// defaults (lines of 80 columns, indents of two spaces): only
    /// whitespace and line breaks change, comments are kept. Rewrites each
    /// file that changes (a temporary file beside it, then renamed) and
    /// lists them on stdout. With `--check` nothing is written: it lists
    /// each file that would change with the first lines that differ, and
    /// exits 1 if any would (0 if none). A file that does not parse is
    /// shown at its line and column and the others are still formatted;
    /// the exit code is then 2.
    #[command(after_help = "Examples:
  cairn policy fmt
  cairn policy fmt policies/ examples/etl/policies/etl.cedar
  cairn policy fmt --check policies/ examples/ tests/policies/
  cairn policy fmt --check --json")]
    Fmt {
        /// Policy files, or folders searched for `*.cedar` (skipping
        /// `target/` and hidden folders).
        #[arg(value_name = "PATH", default_value = ".")]
        paths: Vec<PathBuf>,

        /// Change nothing: list the files that are not formatted, and exit
        /// 1 if there are any.
        #[arg(long)]
        check: bool,

        /// Print the result as JSON on stdout: each file with whether it
        /// changed (`would_change` with --check) and any error, at its line
        /// and column.
        #[arg(long)]
        json: bool,
    },
    /// Print Cairn's Cedar schema (entities and actions policies can use).
    Schema,
}

/// Print the problems of a policy set that does not load.
fn report_invalid(files: &[crate::policy::FileProblems]) -> CliError {
    let color = Style::stderr().color();
    for file in files {
        eprint!(
            "{}",
            file.diagnostics
                .render(&file.path.display().to_string(), &file.source, color)
        );
    }
    CliError::input(format!(
        "the policies have problems in {} file(s); fix them and try again",
        files.len()
    ))
}

/// The workflow at `path` and its policies, or their problems printed and
/// the result to return.
pub(crate) fn load_policies(path: &Path) -> Result<(Workflow, Policies), Result<Exit, CliError>> {
    let workflow = super::workflow::load_or_report(path, false)?;
    match Policies::of_workflow(&workflow) {
        Ok(policies) => Ok((workflow, policies)),
        Err(PolicyError::Invalid(files)) => Err(Err(report_invalid(&files))),
        Err(other) => Err(Err(CliError::input(other))),
    }
}

/// The tasks whose requests are decided only at run time (`connect`,
/// `inject_secret`): their endpoints and injected secrets.
fn at_run_time(plan: &crate::plan::Plan) -> Vec<serde_json::Value> {
    plan.tasks
        .iter()
        .filter(|t| !t.task.network.is_empty())
        .map(|t| {
            serde_json::json!({
                "task": t.task.name.value.as_str(),
                "network": t.task.network.iter().map(|h| h.value.as_str()).collect::<Vec<_>>(),
                "inject": t.task.inject.keys().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect()
}

pub(crate) fn plan(args: &PlanArgs) -> Result<Exit, CliError> {
    let (mut workflow, policies) = match load_policies(&args.path) {
        Ok(loaded) => loaded,
        Err(done) => return done,
    };
    let values = workflow
        .plan
        .param_values(&args.params)
        .map_err(CliError::input)?;
    workflow.plan = workflow.plan.with_params(&values);
    let result = preflight(&workflow.plan, &policies, &args.user).map_err(CliError::input)?;
    let denied = result.denied().count();
    if args.json {
        let decisions: Vec<serde_json::Value> =
            result.decisions.iter().map(decision_json).collect();
        let value = serde_json::json!({
            "workflow": workflow.plan.name.as_str(),
            "user": args.user,
            "policies": policies.len(),
            "allowed": denied == 0,
            "order": workflow.plan.tasks.iter().map(|t| t.task.name.value.as_str()).collect::<Vec<_>>(),
            "decisions": decisions,
            "at_run_time": at_run_time(&workflow.plan),
            "expands_at_run_time": workflow.plan.tasks.iter().filter_map(|t| {
                let (from, output) = t.fans_out_at_run_time()?;
                Some(serde_json::json!({
                    "task": t.task.name.value.as_str(),
                    "over": format!("{from}.{output}"),
                    "max_parallel": t.task.max_parallel.as_ref().map(|m| m.value),
                }))
            }).collect::<Vec<_>>(),
        });
        outln!("{value:#}");
    } else {
        print_table(
            &workflow.plan.name.to_string(),
            &args.user,
            &result.decisions,
            policies.len(),
        );
        let style = Style::stderr();
        for planned in workflow
            .plan
            .tasks
            .iter()
            .filter(|t| !t.task.network.is_empty())
        {
            let task = &planned.task;
            let hosts: Vec<&str> = task.network.iter().map(|h| h.value.as_str()).collect();
            let inject: Vec<&str> = task.inject.keys().map(Name::as_str).collect();
            eprintln!(
                "{} {}: HTTP to {}{}: each request is authorized when it is sent",
                style.dim("note"),
                task.name.value,
                hosts.join(", "),
                if inject.is_empty() {
                    String::new()
                } else {
                    format!(", injecting {}", inject.join(", "))
                }
            );
        }
        for planned in &workflow.plan.tasks {
            if let Some((from, output)) = planned.fans_out_at_run_time() {
                eprintln!(
                    "{} {}: one task per element of {from}.{output}, expanded when it arrives; each is authorized then, before it starts",
                    style.dim("note"),
                    planned.task.name.value,
                );
            }
        }
        if denied == 0 {
            eprintln!(
                "{} all {} requests allowed",
                style.good("ok"),
                result.decisions.len()
            );
        } else {
            eprintln!(
                "{}: {denied} of {} requests denied; the run would be refused",
                style.error("denied"),
                result
                    .decisions
                    .iter()
                    .filter(|d| d.action != "declassify")
                    .count()
            );
            if policies.is_empty() {
                eprintln!("  no policies: list Cedar files under `[workflow] policies`");
            }
        }
    }
    Ok(if denied == 0 {
        Exit::Success
    } else {
        Exit::Denied
    })
}

fn decided_by(d: &Decision) -> String {
    if !d.errors.is_empty() {
        return format!("evaluation error: {}", d.errors.join("; "));
    }
    match (d.allowed, d.policies.is_empty()) {
        (false, true) => "no policy permits".to_owned(),
        _ => d.policies.join(", "),
    }
}

pub(crate) fn decision_json(d: &Decision) -> serde_json::Value {
    serde_json::json!({
        "task": d.task,
        "action": d.action,
        "what": d.what,
        "request": d.request,
        "decision": if d.allowed { "allow" } else { "deny" },
        "policies": d.policies,
        "errors": d.errors,
    })
}

pub(crate) fn print_table(workflow: &str, user: &str, decisions: &[Decision], policies: usize) {
    outln!("plan of workflow `{workflow}`, started by `{user}`, against {policies} policies\n");
    let width = decisions
        .iter()
        .map(|d| d.task.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let what_width = decisions
        .iter()
        .map(|d| d.what.chars().count())
        .max()
        .unwrap_or(7)
        .clamp(7, 60);
    outln!(
        "{:width$}  {:what_width$}  {:8}  decided by",
        "task",
        "request",
        "decision"
    );
    // Preflight decides label drops before anything else; show each with
    // its task, after the task's other requests.
    let mut first = std::collections::HashMap::new();
    for (i, d) in decisions.iter().enumerate() {
        if d.action != "declassify" {
            first.entry(d.task.as_str()).or_insert(i);
        }
    }
    let mut ordered: Vec<&Decision> = decisions.iter().collect();
    ordered.sort_by_key(|d| {
        (
            first.get(d.task.as_str()).copied().unwrap_or(usize::MAX),
            d.action == "declassify",
        )
    });
    for d in ordered {
        let decision = match (d.allowed, d.action) {
            (true, _) => "allow",
            (false, "declassify") => "kept",
            (false, _) => "DENY",
        };
        outln!(
            "{:width$}  {:what_width$}  {:8}  {}",
            d.task,
            d.what,
            decision,
            decided_by(d)
        );
    }
    outln!();
}

pub(crate) fn policy(command: &PolicyCommand) -> Result<Exit, CliError> {
    match command {
        PolicyCommand::Validate { path, json } => validate(path, *json),
        PolicyCommand::Test { paths, json } => test(paths, *json),
        PolicyCommand::Fmt { paths, check, json } => fmt(paths, *check, *json),
        PolicyCommand::Schema => {
            out!("{}", crate::policy::SCHEMA);
            Ok(Exit::Success)
        }
    }
}

fn validate(path: &Path, json: bool) -> Result<Exit, CliError> {
    let workflow = match super::workflow::load_or_report(path, json) {
        Ok(workflow) => workflow,
        Err(done) => return done,
    };
    let policies = match Policies::of_workflow(&workflow) {
        Ok(policies) => policies,
        Err(PolicyError::Invalid(files)) if json => {
            let problems: Vec<serde_json::Value> = files
                .iter()
                .map(|f| {
                    let file = f.path.display().to_string();
                    serde_json::json!({
                        "file": file,
                        "diagnostics": f.diagnostics.to_json(&file, &f.source),
                    })
                })
                .collect();
            outln!(
                "{:#}",
                serde_json::json!({ "valid": false, "files": problems })
            );
            return Ok(Exit::Input);
        }
        Err(PolicyError::Invalid(files)) => return Err(report_invalid(&files)),
        Err(other) => return Err(CliError::input(other)),
    };
    if json {
        let files: Vec<String> = policies
            .files()
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        outln!(
            "{:#}",
            serde_json::json!({ "valid": true, "policies": policies.len(), "files": files })
        );
    } else {
        eprintln!(
            "{} {} policies in {} file(s) are valid against Cairn's schema",
            Style::stderr().good("ok"),
            policies.len(),
            policies.files().len()
        );
    }
    Ok(Exit::Success)
}

/// The files `find` lists at each of `paths`, in order; a path with none
/// is an error saying `none(path)`.
fn files_at(
    paths: &[PathBuf],
    find: fn(&Path) -> std::io::Result<Vec<PathBuf>>,
    none: impl Fn(&Path) -> String,
) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for path in paths {
        let found = find(path)
            .map_err(|e| CliError::input(format!("cannot read `{}`: {e}", path.display())))?;
        if found.is_empty() {
            return Err(CliError::input(none(path)));
        }
        files.extend(found);
    }
    Ok(files)
}

fn test(paths: &[PathBuf], json: bool) -> Result<Exit, CliError> {
    let files = files_at(paths, cases::find, |path| {
        format!(
            "no `*{}` files under `{}`; see the README's \"Policy tests\" for the format",
            cases::SUFFIX,
            path.display()
        )
    })?;
    let mut suites = Vec::new();
    for file in &files {
        match Suite::load(file) {
            Ok(suite) => suites.push(suite),
            Err(SuiteError::Invalid {
                path,
                source_text,
                diagnostics,
            }) => {
                let shown = path.display().to_string();
                eprint!(
                    "{}",
                    diagnostics.render(&shown, &source_text, Style::stderr().color())
                );
                return Err(CliError::input(format!(
                    "`{shown}` has {} problem(s); fix them and try again",
                    diagnostics.len()
                )));
            }
            Err(SuiteError::Policies {
                source: PolicyError::Invalid(problems),
                ..
            }) => return Err(report_invalid(&problems)),
            Err(other) => return Err(CliError::input(other)),
        }
    }

    let style = Style::stdout();
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut results = Vec::new();
    for suite in &suites {
        if !json {
            outln!("{}", suite.path.display());
        }
        for case in &suite.cases {
            let verdict = suite.run(case).map_err(|e| {
                CliError::input(format!(
                    "{}: case `{}`: {e}",
                    suite.path.display(),
                    case.name
                ))
            })?;
            let expected = if case.expect_allow { "allow" } else { "deny" };
            let got = if verdict.decision.allowed {
                "allow"
            } else {
                "deny"
            };
            if verdict.passed {
                passed += 1;
            } else {
                failed += 1;
            }
            if json {
                results.push(serde_json::json!({
                    "file": suite.path.display().to_string(),
                    "case": case.name,
                    "passed": verdict.passed,
                    "request": verdict.decision.request,
                    "context": case.context_json,
                    "expected": { "decision": expected, "decided_by": case.decided_by },
                    "got": decision_json(&verdict.decision),
                }));
                continue;
            }
            if verdict.passed {
                outln!("  {}  {}", style.good("ok  "), case.name);
                continue;
            }
            outln!("  {}  {}", style.error("FAIL"), case.name);
            outln!("        request:  {}", verdict.decision.request);
            outln!("        context:  {}", case.context_json);
            let expected_by = case
                .decided_by
                .as_ref()
                .map(|ids| {
                    format!(
                        " (decided by {})",
                        if ids.is_empty() {
                            "no policy".to_owned()
                        } else {
                            ids.join(", ")
                        }
                    )
                })
                .unwrap_or_default();
            outln!("        expected: {expected}{expected_by}");
            let how = decided_by(&verdict.decision);
            let how = if verdict.decision.policies.is_empty() || !verdict.decision.errors.is_empty()
            {
                how
            } else {
                format!("decided by {how}")
            };
            outln!("        got:      {got} ({how})");
        }
    }
    if json {
        let value = serde_json::json!({
            "passed": passed,
            "failed": failed,
            "results": results,
        });
        outln!("{value:#}");
    } else {
        let status = Style::stderr();
        if failed == 0 {
            eprintln!("{} {passed} cases passed", status.good("ok"));
        } else {
            eprintln!(
                "{}: {failed} of {} cases failed",
                status.error("failed"),
                passed + failed
            );
        }
    }
    Ok(if failed == 0 {
        Exit::Success
    } else {
        Exit::Failed
    })
}

/// What `cairn policy fmt` found in one file.
enum Formatted {
    /// Already laid out as Cedar's formatter lays it out.
    Same,
    /// Laid out differently; rewritten unless checking.
    Changed(Change),
    /// Cedar's problems with the text, drawn at their places in it.
    Invalid {
        source: String,
        problems: Diagnostics,
    },
    /// The file could not be read or written.
    Failed(String),
}

fn fmt(paths: &[PathBuf], check: bool, json: bool) -> Result<Exit, CliError> {
    let found = files_at(paths, format::find, |path| {
        format!("no `*{}` files under `{}`", format::SUFFIX, path.display())
    })?;
    // `./policies/x.cedar` is shown as `policies/x.cedar`.
    let mut files: Vec<PathBuf> = found
        .into_iter()
        .map(|f| f.strip_prefix(".").map(Path::to_path_buf).unwrap_or(f))
        .collect();
    files.sort();
    files.dedup();

    let (mut changed, mut broken) = (0usize, 0usize);
    let mut results = Vec::new();
    for file in &files {
        let shown = file.display().to_string();
        let formatted = fmt_file(file, check);
        let mut result = serde_json::Map::new();
        result.insert("path".into(), shown.clone().into());
        result.insert(
            if check { "would_change" } else { "changed" }.into(),
            matches!(formatted, Formatted::Changed(_)).into(),
        );
        match &formatted {
            Formatted::Same => {}
            Formatted::Changed(change) => {
                changed += 1;
                result.insert("line".into(), change.line.into());
                match (json, check) {
                    (true, _) => {}
                    (false, true) => print_change(&shown, change),
                    (false, false) => outln!("{shown}"),
                }
            }
            Formatted::Invalid { source, problems } => {
                broken += 1;
                let first = problems.0.first().map(|d| d.message.clone());
                result.insert("error".into(), first.unwrap_or_default().into());
                result.insert("diagnostics".into(), problems.to_json(&shown, source));
                if !json {
                    eprint!(
                        "{}",
                        problems.render(&shown, source, Style::stderr().color())
                    );
                }
            }
            Formatted::Failed(error) => {
                broken += 1;
                result.insert("error".into(), error.clone().into());
                if !json {
                    eprintln!("{}: {shown}: {error}", Style::stderr().error("error"));
                }
            }
        }
        results.push(serde_json::Value::Object(result));
    }

    if json {
        outln!("{:#}", serde_json::json!({ "files": results }));
    } else {
        let status = Style::stderr();
        let total = policy_files(files.len());
        if check && changed > 0 {
            eprintln!(
                "{}: {changed} of {total} not formatted; `cairn policy fmt` formats them",
                status.error("failed")
            );
        } else if changed > 0 {
            eprintln!("{} formatted {changed} of {total}", status.good("ok"));
        } else if broken < files.len() {
            eprintln!(
                "{} {} already formatted",
                status.good("ok"),
                policy_files(files.len() - broken)
            );
        }
    }
    if broken > 0 {
        let error = format!(
            "{broken} of {} could not be formatted; fix them and try again",
            policy_files(files.len())
        );
        return if json {
            Ok(Exit::Input)
        } else {
            Err(CliError::input(error))
        };
    }
    Ok(if check && changed > 0 {
        Exit::Failed
    } else {
        Exit::Success
    })
}

/// "1 policy file", "2 policy files".
fn policy_files(n: usize) -> String {
    format!("{n} policy file{}", if n == 1 { "" } else { "s" })
}

/// Print where a file would change: its first differing line, and a few
/// lines before (`-`) and after (`+`) formatting.
fn print_change(shown: &str, change: &Change) {
    let style = Style::stdout();
    outln!("{shown}:{}: would change", change.line);
    for line in &change.old {
        outln!(
            "  {}",
            style.error(&format!("- {}", printable(line.as_bytes())))
        );
    }
    for line in &change.new {
        outln!(
            "  {}",
            style.good(&format!("+ {}", printable(line.as_bytes())))
        );
    }
    if change.more {
        outln!("  {}", style.dim("…"));
    }
}

/// Format one file: read it, lay it out, and (unless `check`) write it back
/// if that changed it.
fn fmt_file(file: &Path, check: bool) -> Formatted {
    let source = match std::fs::read_to_string(file) {
        Ok(source) => source,
        Err(e) => return Formatted::Failed(format!("cannot read it: {e}")),
    };
    let formatted = match format::format(&source) {
        Ok(formatted) => formatted,
        Err(problems) => return Formatted::Invalid { source, problems },
    };
    let Some(change) = Change::between(&source, &formatted) else {
        return Formatted::Same;
    };
    if !check && let Err(e) = write_atomically(file, &formatted) {
        return Formatted::Failed(format!("cannot write it: {e}"));
    }
    Formatted::Changed(change)
}

/// Replace the file at `path` (the file a link points to, if it is one)
/// with `text`: written to a temporary file in the same folder, synced,
/// given the file's permissions, then renamed over it, so a reader sees
/// the old text or the new, never part of either.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let target = std::fs::canonicalize(path)?;
    let permissions = std::fs::metadata(&target)?.permissions();
    let folder = target.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".cairn-fmt-")
        .tempfile_in(folder)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().set_permissions(permissions)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}
