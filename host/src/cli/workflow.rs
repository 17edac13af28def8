//! `cairn validate`, `cairn graph` and `cairn schema`: working on manifests.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::style::Style;
use super::{CliError, Exit};
use crate::plan::{GraphFormat, render_graph};
use crate::workflow::{Components, Workflow, WorkflowError, load_with};

/// Check a workflow manifest and everything it names; report every problem.
///
/// Checks the TOML, every field, names, durations and sizes, the task graph
/// (unknown tasks and outputs, cycles), and that component files, policy
/// paths and mounted folders exist inside the project. Exits 0 when valid,
/// 2 when not.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn validate                      # ./workflow.toml
  cairn validate examples/hello       # a folder holding workflow.toml
  cairn validate nightly.toml --json  # diagnostics for editors and CI")]
pub(crate) struct ValidateArgs {
    /// The manifest, or a folder holding `workflow.toml`.
    #[arg(value_name = "PATH", default_value = ".")]
    path: PathBuf,

    /// Print the result as JSON on stdout: validity, diagnostics with
    /// line and column, and the task order.
    #[arg(long)]
    json: bool,
}

/// Draw a workflow's task graph, for Graphviz or Mermaid.
///
/// Data edges are labelled with the output's name and labels; `needs` edges
/// are dashed; tasks that run on failure or always say so.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn graph | dot -Tsvg > workflow.svg
  cairn graph examples/hello --format mermaid")]
pub(crate) struct GraphArgs {
    /// The manifest, or a folder holding `workflow.toml`.
    #[arg(value_name = "PATH", default_value = ".")]
    path: PathBuf,

    /// The graph language.
    #[arg(long, value_enum, default_value = "dot")]
    format: Format,

    /// A run parameter: NAME=VALUE (repeatable), for fan-outs over a
    /// parameter; the rest take their defaults. Fan-outs are drawn
    /// expanded, one node per task.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = super::run::parse_param)]
    params: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// The workflow at `path`, or its problems printed and the result to return.
pub(crate) fn load_or_report(
    path: &std::path::Path,
    json: bool,
) -> Result<Workflow, Result<Exit, CliError>> {
    load_or_report_with(path, json, Components::MustExist)
}

/// [`load_or_report`], with components that may be about to be built.
pub(crate) fn load_or_report_with(
    path: &std::path::Path,
    json: bool,
    components: Components,
) -> Result<Workflow, Result<Exit, CliError>> {
    match load_with(path, components) {
        Ok(workflow) => Ok(workflow),
        Err(WorkflowError::Invalid {
            path,
            source_text,
            diagnostics,
        }) => {
            let file = path.display().to_string();
            if json {
                let value = serde_json::json!({
                    "file": file,
                    "valid": false,
                    "diagnostics": diagnostics.to_json(&file, &source_text),
                });
                outln!("{value:#}");
            } else {
                let style = Style::stderr();
                eprint!("{}", diagnostics.render(&file, &source_text, style.color()));
                let n = diagnostics.len();
                eprintln!(
                    "{}: `{file}` has {n} problem{}",
                    style.error("error"),
                    if n == 1 { "" } else { "s" }
                );
            }
            Err(Ok(Exit::Input))
        }
        Err(other) => {
            if json {
                let value = serde_json::json!({
                    "file": path.display().to_string(),
                    "valid": false,
                    "diagnostics": [{ "message": other.to_string() }],
                });
                outln!("{value:#}");
                return Err(Ok(Exit::Input));
            }
            Err(Err(CliError::input(other)))
        }
    }
}

pub(crate) fn validate(args: &ValidateArgs) -> Result<Exit, CliError> {
    let workflow = match load_or_report(&args.path, args.json) {
        Ok(workflow) => workflow,
        Err(done) => return done,
    };
    let order: Vec<&str> = workflow
        .plan
        .tasks
        .iter()
        .map(|t| t.task.name.value.as_str())
        .collect();
    let file = workflow.path.display().to_string();
    if args.json {
        let value = serde_json::json!({
            "file": file,
            "valid": true,
            "workflow": workflow.plan.name.as_str(),
            "diagnostics": [],
            "order": order,
        });
        outln!("{value:#}");
    } else {
        let shown: Vec<&str> = order.iter().take(12).copied().collect();
        let more = if order.len() > shown.len() {
            format!(" … ({} more)", order.len() - shown.len())
        } else {
            String::new()
        };
        let style = Style::stderr();
        eprintln!(
            "{} `{file}`: workflow `{}` is valid, {} task{}: {}{more}",
            style.good("ok"),
            workflow.plan.name,
            order.len(),
            if order.len() == 1 { "" } else { "s" },
            shown.join(" → ")
        );
    }
    Ok(Exit::Success)
}

pub(crate) fn graph(args: &GraphArgs) -> Result<Exit, CliError> {
    let workflow = match load_or_report(&args.path, false) {
        Ok(workflow) => workflow,
        Err(done) => return done,
    };
    let format = match args.format {
        Format::Dot => GraphFormat::Dot,
        Format::Mermaid => GraphFormat::Mermaid,
    };
    let values = workflow
        .plan
        .param_values(&args.params)
        .map_err(CliError::input)?;
    let plan = workflow.plan.with_params(&values);
    out!("{}", render_graph(&plan, format));
    Ok(Exit::Success)
}

pub(crate) fn schema() -> Exit {
    outln!("{:#}", crate::manifest::schema());
    Exit::Success
}
