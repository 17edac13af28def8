//! Loading a workflow from disk: read, parse, plan, and check the files it
//! names.
//!
//! The I/O shell around the pure [`manifest`](crate::manifest) and
//! [`plan`](crate::plan) stages: it bounds what it reads, reports invalid
//! UTF-8 at its line and column, and checks what only the file system can
//! tell — component and policy files exist, mounted folders exist and do not
//! lead out of the project through symlinks. Relative paths resolve against
//! the manifest's folder.

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics, line_col};
use crate::manifest::Manifest;
use crate::plan::Plan;

/// The manifest file looked for when a folder is given.
pub const DEFAULT_FILE: &str = "workflow.toml";

/// The largest manifest Cairn reads.
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// A workflow loaded and checked.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// The manifest file.
    pub path: PathBuf,
    /// The folder relative paths resolve against.
    pub dir: PathBuf,
    /// The manifest's text.
    pub source: String,
    /// The validated plan.
    pub plan: Plan,
}

/// Why a workflow could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("cannot read `{}`: {source}; check the path (a folder is looked in for `{DEFAULT_FILE}`)", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is {size} bytes; manifests may be at most {MAX_MANIFEST_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("`{}`:{line}:{column}: the manifest is not valid UTF-8; save it as UTF-8", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("`{}` has {} problem{}", path.display(), diagnostics.len(), if diagnostics.len() == 1 { "" } else { "s" })]
    Invalid {
        path: PathBuf,
        source_text: String,
        diagnostics: Diagnostics,
    },
}

/// Where the manifest is: `path` itself, or `path/workflow.toml` for a folder.
#[must_use]
pub fn manifest_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(DEFAULT_FILE)
    } else {
        path.to_owned()
    }
}

/// Whether components must exist when a workflow is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Components {
    /// Every component file exists (to run, plan or validate).
    MustExist,
    /// A component some task's `build` command makes may be missing: it is
    /// about to be built (`cairn build`).
    MayBeBuilt,
}

/// Load and check the workflow at `path` (a manifest, or a folder holding
/// `workflow.toml`).
///
/// # Errors
///
/// A [`WorkflowError`]; `Invalid` carries every problem found.
pub fn load(path: &Path) -> Result<Workflow, WorkflowError> {
    load_with(path, Components::MustExist)
}

/// [`load`], with components that may not be built yet.
///
/// # Errors
///
/// A [`WorkflowError`]; `Invalid` carries every problem found.
pub fn load_with(path: &Path, components: Components) -> Result<Workflow, WorkflowError> {
    let path = manifest_path(path);
    let read_err = |source| WorkflowError::Read {
        path: path.clone(),
        source,
    };
    let size = std::fs::metadata(&path).map_err(read_err)?.len();
    if size > MAX_MANIFEST_BYTES {
        return Err(WorkflowError::TooLarge { path, size });
    }
    let bytes = std::fs::read(&path).map_err(read_err)?;
    let source = match String::from_utf8(bytes) {
        Ok(source) => source,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let prefix =
                String::from_utf8_lossy(e.as_bytes().get(..valid).unwrap_or_default()).into_owned();
            let (line, column) = line_col(&prefix, valid);
            return Err(WorkflowError::NotUtf8 { path, line, column });
        }
    };
    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    // Every stage runs on what the previous one could make sense of, so that
    // all problems are reported at once, top to bottom.
    let (manifest, mut problems) = crate::manifest::parse_partial(&source);
    let mut plan = None;
    if let Some(manifest) = &manifest {
        match Plan::new(manifest) {
            Ok(p) => plan = Some(p),
            Err(d) => problems.0.extend(d.0),
        }
        problems.0.extend(check_files(manifest, &dir, components).0);
    }
    problems.0.sort_by_key(|d| d.span.as_ref().map(|s| s.start));
    match plan {
        Some(plan) if problems.is_empty() => Ok(Workflow {
            path,
            dir,
            source,
            plan,
        }),
        _ => Err(WorkflowError::Invalid {
            path,
            source_text: source,
            diagnostics: problems,
        }),
    }
}

/// What only the file system can tell about a manifest.
#[must_use]
pub fn check_files(manifest: &Manifest, dir: &Path, components: Components) -> Diagnostics {
    let mut d = Diagnostics::default();
    let project = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    // Components some task's `build` command makes.
    let buildable: Vec<&str> = manifest
        .tasks
        .values()
        .filter(|t| t.build.is_some())
        .map(|t| t.component.value.as_str())
        .collect();
    for task in manifest.tasks.values() {
        let component = dir.join(&task.component.value);
        // An empty component was already reported as missing.
        let unbuilt_ok = components == Components::MayBeBuilt
            && buildable.contains(&task.component.value.as_str());
        if !task.component.value.is_empty() && !component.is_file() && !unbuilt_ok {
            let help = match &task.build {
                Some(build) => format!(
                    "build it first: `cairn build` runs `{}` (or `cairn run --build`); or fix the path",
                    build.value
                ),
                None => {
                    "paths are relative to the manifest's folder; build the task or fix the path"
                        .to_owned()
                }
            };
            d.push(
                Diagnostic::at(
                    task.component.span.clone(),
                    format!("component `{}` does not exist", task.component.value),
                )
                .label("no such file")
                .help(help),
            );
        }
        for mount in &task.mounts {
            let host = dir.join(&mount.host.value);
            match std::fs::canonicalize(&host) {
                Ok(real) if !real.is_dir() => d.push(Diagnostic::at(
                    mount.host.span.clone(),
                    format!("mount `{}` is not a folder", mount.host.value),
                )),
                Ok(real) if !real.starts_with(&project) => d.push(
                    Diagnostic::at(
                        mount.host.span.clone(),
                        format!("mount `{}` escapes the project", mount.host.value),
                    )
                    .label(format!("leads to {}", real.display()))
                    .help("a symlink leads out of the manifest's folder; mount a folder inside it"),
                ),
                Ok(_) => {}
                Err(_) => d.push(
                    Diagnostic::at(
                        mount.host.span.clone(),
                        format!("mount `{}` does not exist", mount.host.value),
                    )
                    .label("no such folder")
                    .help("create the folder or fix the path (relative to the manifest's folder)"),
                ),
            }
        }
    }
    for policy in &manifest.policies {
        if !dir.join(&policy.value).exists() {
            d.push(
                Diagnostic::at(
                    policy.span.clone(),
                    format!("policy path `{}` does not exist", policy.value),
                )
                .label("no such file or folder")
                .help("list Cedar files or folders, relative to the manifest's folder"),
            );
        }
    }
    d
}
