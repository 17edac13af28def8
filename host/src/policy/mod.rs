//! Policy as code: Cedar policies about workflows, loaded and validated.
//!
//! [`Policies::load`] reads the policy paths a workflow lists — `*.cedar`
//! policy files and `*.entities.json` files of users and groups — and
//! validates every policy against Cairn's schema (`policies/cairn.cedarschema`)
//! in strict mode. Any problem refuses the whole set, with Cedar's diagnostics
//! rendered at the file and line. Each policy is known by its `@id("...")`
//! annotation, or by `FILE#N`. Deciding is [`preflight`]'s job; laying out
//! policy files as `cedar format` does is [`format`](mod@format)'s.

pub mod bounds;
pub mod cases;
pub mod format;
mod gate;
mod preflight;
pub mod service;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cedar_policy::{
    ActionConstraint, Entities, EntityUid, Policy, PolicyId, PolicySet, ResourceConstraint, Schema,
    ValidationMode, Validator,
};

use crate::diag::{Diagnostic, Diagnostics};

pub use gate::{Recorder, RuntimeGate};
pub use preflight::{Decision, Preflight, preflight, reevaluate};

/// Cairn's Cedar schema.
pub const SCHEMA: &str = include_str!("../../../policies/cairn.cedarschema");

/// Cairn's actions (`policies/cairn.cedarschema`).
pub const ACTIONS: &[&str] = &[
    "run",
    "read_secret",
    "flow",
    "declassify",
    "mount",
    "connect",
    "inject_secret",
    "propagate_trace",
    "approve",
    "trigger",
    "read_workflow",
    "list_runs",
    "read_run",
    "read_audit",
    "cancel_run",
    "pause_schedule",
    "resume_schedule",
    "read_output",
    "notify",
];

/// Policies sliced by what their scope can match, so a request is evaluated
/// against the few policies that could apply to it rather than all. Exact: a
/// policy whose scope does not match a request can neither decide it nor
/// raise an error for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slices {
    by_action: HashMap<EntityUid, ActionSlice>,
}

#[derive(Debug, Clone, Default)]
struct ActionSlice {
    /// Policies of this action whose resource scope is not `resource == X`.
    general: PolicySet,
    /// For each `X` of a `resource == X` scope: those policies and `general`.
    by_resource: HashMap<EntityUid, PolicySet>,
}

impl Slices {
    fn new(set: &PolicySet) -> Result<Self, PolicyError> {
        let all: Vec<EntityUid> = ACTIONS
            .iter()
            .map(|a| preflight::uid("Action", a))
            .collect::<Result<_, _>>()?;
        let mut general: HashMap<EntityUid, Vec<Policy>> = HashMap::new();
        let mut specific: HashMap<EntityUid, HashMap<EntityUid, Vec<Policy>>> = HashMap::new();
        for policy in set.policies() {
            let actions = match policy.action_constraint() {
                ActionConstraint::Any => all.clone(),
                ActionConstraint::Eq(action) => vec![action],
                ActionConstraint::In(actions) => actions,
            };
            for action in actions {
                match policy.resource_constraint() {
                    ResourceConstraint::Eq(resource) => {
                        specific
                            .entry(action)
                            .or_default()
                            .entry(resource)
                            .or_default()
                            .push(policy.clone());
                    }
                    _ => general.entry(action).or_default().push(policy.clone()),
                }
            }
        }
        let to_set = |policies: Vec<Policy>| -> Result<PolicySet, PolicyError> {
            PolicySet::from_policies(policies).map_err(|e| PolicyError::Schema(e.to_string()))
        };
        let mut by_action = HashMap::new();
        for action in all {
            let shared = general.remove(&action).unwrap_or_default();
            let mut by_resource = HashMap::new();
            for (resource, mut own) in specific.remove(&action).unwrap_or_default() {
                own.extend(shared.iter().cloned());
                by_resource.insert(resource, to_set(own)?);
            }
            by_action.insert(
                action,
                ActionSlice {
                    general: to_set(shared)?,
                    by_resource,
                },
            );
        }
        Ok(Self { by_action })
    }

    /// The policies that could apply to `action` on `resource`.
    pub(crate) fn get(&self, action: &EntityUid, resource: &EntityUid) -> Option<&PolicySet> {
        let slice = self.by_action.get(action)?;
        Some(slice.by_resource.get(resource).unwrap_or(&slice.general))
    }
}

/// A validated policy set with the users and groups it talks about.
#[derive(Debug, Clone)]
pub struct Policies {
    pub(crate) set: PolicySet,
    pub(crate) slices: Slices,
    pub(crate) schema: Schema,
    pub(crate) people: Entities,
    files: Vec<PathBuf>,
    texts: Vec<String>,
}

/// Problems in one policy or entities file.
#[derive(Debug, Clone)]
pub struct FileProblems {
    /// The file.
    pub path: PathBuf,
    /// Its text.
    pub source: String,
    /// What is wrong in it.
    pub diagnostics: Diagnostics,
}

/// Why a policy set was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the policies are invalid ({} file{} with problems)", .0.len(), if .0.len() == 1 { "" } else { "s" })]
    Invalid(Vec<FileProblems>),
    #[error("Cairn's own Cedar schema does not load: {0}")]
    Schema(String),
    #[error("the entities do not load: {0}")]
    Entities(String),
}

/// Turn any of Cedar's miette diagnostics into ours.
/// `path` if it is a file, else every file whose name ends in `suffix`
/// under it (hidden folders and `target/` skipped), sorted.
fn files_under(path: &Path, suffix: &str) -> std::io::Result<Vec<PathBuf>> {
    if std::fs::metadata(path)?.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut found = Vec::new();
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push(entry.path());
                }
            } else if name.ends_with(suffix) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

fn from_cedar(error: &dyn miette::Diagnostic) -> Diagnostic {
    let first = error.labels().and_then(|mut labels| labels.next());
    let mut diagnostic = match &first {
        Some(label) => {
            let start = label.offset();
            let d = Diagnostic::at(start..start + label.len(), error.to_string());
            match label.label() {
                Some(text) => d.label(text),
                None => d,
            }
        }
        None => Diagnostic::whole_file(error.to_string()),
    };
    if let Some(help) = error.help() {
        diagnostic = diagnostic.help(help.to_string());
    }
    diagnostic
}

impl Policies {
    /// Cairn's schema.
    ///
    /// # Errors
    ///
    /// Only if the built-in schema is broken (a bug in Cairn).
    pub fn schema() -> Result<Schema, PolicyError> {
        // Parsed once: parsing costs more than loading a small policy set.
        static PARSED: std::sync::LazyLock<Result<Schema, String>> =
            std::sync::LazyLock::new(|| {
                Schema::from_cedarschema_str(SCHEMA)
                    .map(|(schema, _warnings)| schema)
                    .map_err(|e| e.to_string())
            });
        PARSED.clone().map_err(PolicyError::Schema)
    }

    /// Load the policies `workflow` names (`[workflow] policies`).
    ///
    /// # Errors
    ///
    /// As [`Policies::load`].
    pub fn of_workflow(workflow: &crate::workflow::Workflow) -> Result<Self, PolicyError> {
        let paths: Vec<String> = workflow
            .plan
            .policies
            .iter()
            .map(|p| p.value.clone())
            .collect();
        Self::load(&workflow.dir, &paths)
    }

    /// Load the policy paths `paths` (files or folders), relative to `dir`.
    ///
    /// # Errors
    ///
    /// Unreadable files, or every problem in every file.
    pub fn load(dir: &Path, paths: &[String]) -> Result<Self, PolicyError> {
        let mut files = Vec::new();
        for path in paths {
            collect(&dir.join(path), &mut files).map_err(|source| PolicyError::Read {
                path: dir.join(path),
                source,
            })?;
        }
        files.sort();
        files.dedup();
        let mut sources = Vec::with_capacity(files.len());
        for path in files {
            let text = read_bounded(&path).map_err(|e| PolicyError::Read {
                path: path.clone(),
                source: e,
            })?;
            sources.push((path, text));
        }
        Self::from_sources(sources)
    }

    /// The policy set made of these files' texts (`*.cedar` policies and
    /// `*.entities.json` people, told apart by name), validated as
    /// [`Policies::load`] does. The audit log records sets this way.
    ///
    /// # Errors
    ///
    /// Every problem in every file.
    pub fn from_sources(sources: Vec<(PathBuf, String)>) -> Result<Self, PolicyError> {
        let schema = Self::schema()?;
        let (files, sources): (Vec<PathBuf>, Vec<String>) = sources.into_iter().unzip();
        let mut set = PolicySet::new();
        let mut problems = Vec::new();
        let mut origin: HashMap<PolicyId, usize> = HashMap::new();
        let mut people_json = Vec::new();
        for (index, (path, source)) in files.iter().zip(&sources).enumerate() {
            let source = source.clone();
            let mut d = Diagnostics::default();
            if is_entities(path) {
                match bounds::check_entities_text(&source) {
                    Ok(()) => people_json.push((index, source.clone())),
                    Err(problem) => d.push(problem),
                }
            } else if let Err(problem) = bounds::check_policy_text(&source) {
                d.push(problem);
            } else {
                match parse_file(&source, path) {
                    Ok(policies) => {
                        for policy in policies {
                            origin.insert(policy.id().clone(), index);
                            if let Err(e) = set.add(policy) {
                                d.push(
                                    Diagnostic::whole_file(e.to_string())
                                        .help("give each policy a unique `@id(\"...\")`"),
                                );
                            }
                        }
                    }
                    Err(errors) => {
                        for error in errors.iter() {
                            d.push(from_cedar(error));
                        }
                    }
                }
            }
            problems.push(d);
        }

        let validation = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        for error in validation.validation_errors() {
            let file = origin.get(error.policy_id()).copied().unwrap_or(0);
            if let Some(d) = problems.get_mut(file) {
                d.push(from_cedar(error));
            }
        }

        let mut people = Entities::empty();
        for (index, json) in people_json {
            match Entities::from_json_str(&json, Some(&schema)) {
                Ok(found) => {
                    let foreign: Vec<String> = found
                        .iter()
                        .map(|e| e.uid().type_name().to_string())
                        // Cedar adds the schema's actions itself.
                        .filter(|t| {
                            !matches!(t.as_str(), "Cairn::User" | "Cairn::Group" | "Cairn::Action")
                        })
                        .collect();
                    if let (Some(kind), Some(d)) = (foreign.first(), problems.get_mut(index)) {
                        d.push(Diagnostic::whole_file(format!("entities files may only hold users and groups, not `{kind}`"))
                            .help("Cairn makes workflow, task, secret and data entities from the manifest"));
                        continue;
                    }
                    match people.clone().add_entities(found, Some(&schema)) {
                        Ok(all) => people = all,
                        Err(e) => {
                            if let Some(d) = problems.get_mut(index) {
                                d.push(from_cedar(&e));
                            }
                        }
                    }
                }
                Err(e) => {
                    if let Some(d) = problems.get_mut(index) {
                        d.push(from_cedar(&e));
                    }
                }
            }
        }

        let problems: Vec<FileProblems> = files
            .iter()
            .zip(sources.iter().cloned())
            .zip(problems)
            .filter(|(_, d)| !d.is_empty())
            .map(|((path, source), diagnostics)| FileProblems {
                path: path.clone(),
                source,
                diagnostics,
            })
            .collect();
        if !problems.is_empty() {
            return Err(PolicyError::Invalid(problems));
        }
        let slices = Slices::new(&set)?;
        Ok(Self {
            set,
            slices,
            schema,
            people,
            files,
            texts: sources,
        })
    }

    /// Each file the set came from, with its text.
    pub fn sources(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.files
            .iter()
            .map(PathBuf::as_path)
            .zip(self.texts.iter().map(String::as_str))
    }

    /// The files the policies and people came from.
    #[must_use]
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// How many policies.
    #[must_use]
    pub fn len(&self) -> usize {
        self.set.policies().count()
    }

    /// Whether there are no policies (everything is denied).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A policy or entities file's text, read no further than a little past
/// the larger of their limits (the checks in [`bounds`] say what is too
/// large).
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let limit = bounds::MAX_POLICY_BYTES.max(bounds::MAX_ENTITIES_BYTES) as u64 + 1;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_end(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

fn is_entities(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".entities.json"))
}

/// The `*.cedar` and `*.entities.json` files at `path` (a file, or a folder
/// searched recursively).
fn collect(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        files.push(path.to_owned());
        return Ok(());
    }
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let child = entry.path();
        if entry.file_type()?.is_dir() {
            collect(&child, files)?;
        } else if child.extension().is_some_and(|e| e == "cedar") || is_entities(&child) {
            files.push(child);
        }
    }
    Ok(())
}

/// Parse one file's policies, naming each by its `@id` or `FILE#N`.
fn parse_file(source: &str, path: &Path) -> Result<Vec<Policy>, Box<cedar_policy::ParseErrors>> {
    let parsed: PolicySet = source.parse().map_err(Box::new)?;
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut policies: Vec<Policy> = parsed.policies().cloned().collect();
    // Cedar numbers policies `policy0`, `policy1`... in source order.
    policies.sort_by_key(|p| {
        p.id()
            .to_string()
            .trim_start_matches("policy")
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    Ok(policies
        .into_iter()
        .enumerate()
        .map(|(n, policy)| {
            let id = policy
                .annotation("id")
                .map_or_else(|| format!("{name}#{n}"), str::to_owned);
            policy.new_id(PolicyId::new(id))
        })
        .collect())
}

#[cfg(test)]
mod tests;
