//! Building a workflow's components from source: the `build` commands its
//! tasks declare (`cairn build`, `cairn run --build`).
//!
//! Each distinct command runs once, in the manifest's folder, through
//! `sh -c`, in the order the tasks run; tasks that share a component
//! usually share its command. A command is done when it exits 0 *and* every
//! component of its tasks exists; the first that is not stops the build.

use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::digest::Digest;
use crate::workflow::Workflow;

/// One build command and the tasks whose components it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The shell command, as written in the manifest.
    pub command: String,
    /// The tasks whose components it makes, in run order.
    pub tasks: Vec<String>,
    /// The components it must produce (resolved against the manifest's
    /// folder), one per distinct path.
    pub components: Vec<PathBuf>,
}

/// The build steps of `workflow`, and the tasks whose components no step
/// builds (used as they are). A task without `build` whose component some
/// step builds counts as built by that step.
#[must_use]
pub fn steps(workflow: &Workflow) -> (Vec<Step>, Vec<String>) {
    let mut steps: Vec<Step> = Vec::new();
    let tasks = workflow.plan.tasks.iter().map(|planned| &planned.task);
    for task in tasks.clone() {
        let Some(build) = &task.build else { continue };
        let component = workflow.dir.join(&task.component.value);
        match steps.iter_mut().find(|s| s.command == build.value) {
            Some(step) if step.components.contains(&component) => {}
            Some(step) => step.components.push(component),
            None => steps.push(Step {
                command: build.value.clone(),
                tasks: Vec::new(),
                components: vec![component],
            }),
        }
    }
    let mut prebuilt = Vec::new();
    // A gate has no component to build.
    for task in tasks.filter(|t| !t.is_gate()) {
        let name = task.name.value.to_string();
        let component = workflow.dir.join(&task.component.value);
        let by = match &task.build {
            Some(build) => steps.iter_mut().find(|s| s.command == build.value),
            None => steps.iter_mut().find(|s| s.components.contains(&component)),
        };
        match by {
            Some(step) => step.tasks.push(name),
            None => prebuilt.push(name),
        }
    }
    (steps, prebuilt)
}

/// A component a step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its digest.
    pub sha256: Digest,
}

/// Why a build step failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot start `sh -c {command:?}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}); its output is above")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
    },
    #[error(
        "`{command}` succeeded but `{}` does not exist: fix the task's `component` path or its `build` command",
        path.display()
    )]
    Missing { command: String, path: PathBuf },
    #[error("cannot read `{}` after the build: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Run `step` in `workflow`'s folder. The command's stdout and stderr both
/// go to this process's stderr, so that a caller's stdout stays its own
/// (`--json`). Returns the components it produced and how long it took.
///
/// # Errors
///
/// A [`BuildError`] if the command cannot start, exits non-zero, or leaves
/// a component missing.
pub fn run(workflow: &Workflow, step: &Step) -> Result<(Vec<Built>, Duration), BuildError> {
    let started = Instant::now();
    // A duplicate of our stderr as the child's stdout.
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::inherit(), Stdio::from);
    let status = Command::new("sh")
        .arg("-c")
        .arg(&step.command)
        .current_dir(&workflow.dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .status()
        .map_err(|source| BuildError::Spawn {
            command: step.command.clone(),
            source,
        })?;
    if !status.success() {
        return Err(BuildError::Failed {
            command: step.command.clone(),
            status,
        });
    }
    let mut built = Vec::new();
    for path in &step.components {
        if !path.is_file() {
            return Err(BuildError::Missing {
                command: step.command.clone(),
                path: path.clone(),
            });
        }
        let read = |source| BuildError::Read {
            path: path.clone(),
            source,
        };
        let (sha256, bytes) =
            Digest::of_reader(std::fs::File::open(path).map_err(read)?).map_err(read)?;
        built.push(Built {
            path: path.clone(),
            bytes,
            sha256,
        });
    }
    Ok((built, started.elapsed()))
}
