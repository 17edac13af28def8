//! `cairn build`: run each task's `build` command.

use std::path::{Path, PathBuf};

use clap::Args;

use super::style::Style;
use super::{CliError, Exit};
use crate::build::{self, Step};
use crate::workflow::Components;

/// Build a workflow's components: run the `build` command each task declares.
///
/// Each distinct command runs once, with `sh -c` in the manifest's folder,
/// in the order the tasks run; its output is shown as it comes (on stderr).
/// A command succeeds when it exits 0 and every component of its tasks then
/// exists. Tasks without `build` use their component as it is. The first
/// failing command stops the build.
///
/// Build commands are not sandboxed: like `make`, they run with your
/// privileges. Read the `build` lines of a workflow you did not write
/// before you build it.
///
/// Each component built is then compiled into the compile cache that
/// `cairn run` and `cairn serve` load from, so a large one (a Python or
/// JavaScript task is 10–20 MB) is compiled once, here, with progress, and
/// not on its first run.
///
/// Exits 0 when every component is built, 1 when a command failed or left
/// a component missing, 2 for an invalid manifest.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn build examples/etl
  cairn build --json | jq '.steps[].components'
  cairn run examples/etl --build --as alice   # build, then run")]
pub(crate) struct BuildArgs {
    /// The manifest, or a folder holding `workflow.toml`.
    #[arg(value_name = "PATH", default_value = ".")]
    path: PathBuf,

    /// Print what was built as JSON on stdout (commands' own output still
    /// goes to stderr).
    #[arg(long)]
    json: bool,

    /// The compile cache to compile components into [default: the user
    /// cache folder, as for `cairn run`].
    #[arg(long, value_name = "DIR", env = "CAIRN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

pub(crate) fn build(args: &BuildArgs) -> Result<Exit, CliError> {
    let cache_dir = args
        .cache_dir
        .clone()
        .or_else(super::exec::default_cache_dir);
    match build_workflow(&args.path, args.json, cache_dir.as_deref()) {
        Ok(()) => Ok(Exit::Success),
        Err(done) => done,
    }
}

/// Build the workflow at `path`, printing progress on stderr and, with
/// `json`, the result on stdout. `Err` holds what the command should return.
pub(crate) fn build_workflow(
    path: &Path,
    json: bool,
    cache_dir: Option<&Path>,
) -> Result<(), Result<Exit, CliError>> {
    let workflow = super::workflow::load_or_report_with(path, json, Components::MayBeBuilt)?;
    let (steps, prebuilt) = build::steps(&workflow);
    let style = Style::stderr();
    // The engine `cairn run` uses, so that its cache entries are these.
    let sandbox = cache_dir.and_then(|dir| {
        crate::launch::Launcher::new(1, Some(dir))
            .map_err(|e| eprintln!("{} not precompiling: {e}", style.dim("note")))
            .ok()
    });
    let mut results = Vec::new();
    let mut failure = None;
    for (n, step) in steps.iter().enumerate() {
        if failure.is_some() {
            results.push(step_json(step, "not run", None, &[]));
            continue;
        }
        eprintln!(
            "{} {}/{}  {}  {}",
            style.dim("build"),
            n + 1,
            steps.len(),
            step.command,
            style.dim(&format!("({})", step.tasks.join(", ")))
        );
        match build::run(&workflow, step) {
            Ok((built, took)) => {
                let mut components = Vec::new();
                for b in &built {
                    let path = shown(&b.path);
                    eprintln!(
                        "{} {path}  {} KiB  {}  in {:.1} s",
                        style.good("ok"),
                        b.bytes.div_ceil(1024),
                        b.sha256.short(),
                        took.as_secs_f64()
                    );
                    let compiled = sandbox
                        .as_ref()
                        .map(|l| precompile(l, &b.path, &path, &style));
                    components.push(serde_json::json!({
                        "path": path,
                        "bytes": b.bytes,
                        "sha256": b.sha256.to_string(),
                        "compile": compiled,
                    }));
                }
                results.push(step_json(step, "ok", Some(took), &components));
            }
            Err(e) => {
                results.push(step_json(step, "failed", None, &[]));
                failure = Some(e);
            }
        }
    }
    for task in &prebuilt {
        eprintln!(
            "{} task `{task}` has no `build` command; its component is used as it is",
            style.dim("note")
        );
    }
    if json {
        let value = serde_json::json!({
            "workflow": workflow.plan.name.as_str(),
            "file": workflow.path.display().to_string(),
            "ok": failure.is_none(),
            "steps": results,
            "prebuilt": prebuilt,
            "error": failure.as_ref().map(ToString::to_string),
        });
        outln!("{value:#}");
    }
    match failure {
        None => {
            let tasks: usize = steps.iter().map(|s| s.tasks.len()).sum();
            eprintln!(
                "{} {} build command{}, {tasks} task{} built",
                style.good("ok"),
                steps.len(),
                if steps.len() == 1 { "" } else { "s" },
                if tasks == 1 { "" } else { "s" }
            );
            Ok(())
        }
        Some(e) => Err(Err(CliError {
            exit: Exit::Failed,
            message: e.to_string(),
            details: None,
        })),
    }
}

/// Compile the component at `file` into the cache (or find it there),
/// saying so on stderr; its summary for `--json`.
fn precompile(
    launcher: &crate::launch::Launcher,
    file: &Path,
    shown: &str,
    style: &Style,
) -> serde_json::Value {
    say_compiling(style, shown, None);
    match launcher.sandbox().load(file, None) {
        Ok(program) => {
            let stats = program.load_stats();
            say_compiled(style, shown, stats.compile, stats.cache_hit);
            serde_json::json!({
                "cache_hit": stats.cache_hit,
                "compile_ms": stats.compile.as_millis(),
            })
        }
        Err(e) => {
            // The run will refuse it with the same message; the build
            // itself did what it was asked.
            eprintln!("{} {e}", style.warn("warning"));
            serde_json::json!({ "error": e.to_string() })
        }
    }
}

/// `compile PATH …` on stderr: compiling a component starts.
fn say_compiling(style: &Style, shown: &str, bytes: Option<u64>) {
    let size = bytes.map_or_else(String::new, |b| {
        format!(
            " ({} KiB, not in the compile cache yet; later runs load it from there)",
            b.div_ceil(1024)
        )
    });
    eprintln!("{} {shown}{size} …", style.dim("compile"));
}

/// `ok PATH  compiled in N s` on stderr: it is done.
fn say_compiled(style: &Style, shown: &str, took: std::time::Duration, cache_hit: bool) {
    let how = if cache_hit {
        "already in the cache".to_owned()
    } else {
        format!("compiled in {:.1} s", took.as_secs_f64())
    };
    eprintln!("{} {shown}  {how}", style.good("ok"));
}

/// What `cairn run` and `cairn resume` say about a slow load (a large
/// component not in the compile cache yet), in the words of `cairn build`.
pub(super) fn compile_progress() -> crate::launch::CompileProgress {
    std::sync::Arc::new(|event| {
        let style = Style::stderr();
        match event {
            crate::launch::Compiling::Started { path, bytes } => {
                say_compiling(&style, &shown(path), Some(bytes));
            }
            crate::launch::Compiling::Finished {
                path,
                took,
                cache_hit,
            } => say_compiled(&style, &shown(path), took, cache_hit),
        }
    })
}

fn step_json(
    step: &Step,
    status: &str,
    took: Option<std::time::Duration>,
    components: &[serde_json::Value],
) -> serde_json::Value {
    serde_json::json!({
        "command": step.command,
        "tasks": step.tasks,
        "status": status,
        "duration_ms": took.map(|t| t.as_millis()),
        "components": components,
    })
}

/// A path as the user is likely to recognise it: relative to the current
/// folder when it is under it.
fn shown(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_owned))
        .unwrap_or(path)
        .display()
        .to_string()
}
