//! The workflows the service serves, and the last version of each that
//! validated.
//!
//! Each source is a manifest (or a folder holding `workflow.toml`) given
//! to `cairn serve`. [`Catalog::refresh`] loads each one again: a version
//! whose manifest or policies changed and that validates replaces the one
//! served, and is recorded (`workflow-loaded`, then the `policy-set` its
//! requests are decided by) before anything is decided with it; a version
//! that does not validate leaves the last good one served and its problems
//! reported. Never starts a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::audit::log::{AuditError, AuditLog};
use crate::audit::record::{Event, FileDigest};
use crate::audit::verify::sha256_tag;
use crate::policy::service::ServicePolicies;
use crate::policy::{Policies, PolicyError};
use crate::workflow::{Workflow, WorkflowError};

/// A workflow as served.
#[derive(Debug)]
pub struct Served {
    /// Its name (`[workflow] name`).
    pub name: String,
    /// Loaded and validated.
    pub workflow: Arc<Workflow>,
    /// Its policies.
    pub policies: Arc<Policies>,
    /// Its policies, for the service's requests.
    pub service: ServicePolicies,
    /// `sha256:` of its policy set, as runs record it.
    pub policy_set: String,
    /// `sha256:` of its manifest.
    pub manifest_sha256: String,
    /// The entities its requests are decided on, as recorded.
    entities: crate::audit::record::EntitiesJson,
}

impl Served {
    /// The workflow at `path` (a manifest, or a folder holding
    /// `workflow.toml`) and its policies, as the service would serve it,
    /// or what is wrong (`file:line:column: message`, one line each).
    /// Records nothing.
    ///
    /// # Errors
    ///
    /// The manifest or its policies do not load.
    pub fn load(path: &Path) -> Result<Self, Vec<String>> {
        load(&crate::workflow::manifest_path(path))
    }
}

/// A problem with a source: what is wrong, one line each, `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The manifest.
    pub source: PathBuf,
    /// What is wrong.
    pub problems: Vec<String>,
}

#[derive(Debug)]
struct Source {
    path: PathBuf,
    /// What was last loaded from it: (manifest, policy set) digests.
    seen: Option<(String, String)>,
    /// The workflow name it serves.
    serves: Option<String>,
    problem: Option<Vec<String>>,
    /// The digest of its files' bytes when last loaded: unchanged, it is
    /// not loaded (parsed, checked, its policies compiled) again.
    fingerprint: Option<String>,
}

impl Source {
    /// Its latest version has `problems`: reported in `done` unless they
    /// are the ones already reported.
    fn report(&mut self, problems: Vec<String>, done: &mut Refreshed) {
        if self.problem.as_ref() != Some(&problems) {
            done.problems.push(Problem {
                source: self.path.clone(),
                problems: problems.clone(),
            });
        }
        self.problem = Some(problems);
    }
}

/// What one refresh did.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Workflows newly served or changed.
    pub loaded: Vec<String>,
    /// Sources whose new version has problems (the last good one stays).
    pub problems: Vec<Problem>,
}

/// Every workflow served.
#[derive(Debug)]
pub struct Catalog {
    sources: Vec<Source>,
    served: BTreeMap<String, Arc<Served>>,
}

impl Catalog {
    /// A catalog of the manifests (or folders) `paths`, nothing loaded yet.
    #[must_use]
    pub fn new(paths: &[PathBuf]) -> Self {
        Self {
            sources: paths
                .iter()
                .map(|p| Source {
                    path: crate::workflow::manifest_path(p),
                    seen: None,
                    serves: None,
                    problem: None,
                    fingerprint: None,
                })
                .collect(),
            served: BTreeMap::new(),
        }
    }

    /// Load every source again, recording each workflow newly served or
    /// changed in `log` (synced) before it is served.
    ///
    /// # Errors
    ///
    /// Only the audit log failing; a source with problems is reported in
    /// the result.
    pub fn refresh(&mut self, log: &Mutex<AuditLog>) -> Result<Refreshed, AuditError> {
        let mut done = Refreshed::default();
        for source in &mut self.sources {
            let policies: Vec<PathBuf> = source
                .serves
                .as_ref()
                .and_then(|name| self.served.get(name))
                .map(|served| {
                    let plan = &served.workflow.plan;
                    plan.policies
                        .iter()
                        .map(|p| served.workflow.dir.join(&p.value))
                        .collect()
                })
                .unwrap_or_default();
            let fingerprint = fingerprint(&source.path, &policies);
            // Unchanged since it loaded: nothing to do. (One that did not
            // load is tried again: what it lacked may be there now.)
            if fingerprint.is_some()
                && source.fingerprint == fingerprint
                && source.problem.is_none()
            {
                continue;
            }
            source.fingerprint = fingerprint;
            let loaded = match load(&source.path) {
                Ok(loaded) => loaded,
                Err(problems) => {
                    source.report(problems, &mut done);
                    continue;
                }
            };
            source.problem = None;
            let seen = (loaded.manifest_sha256.clone(), loaded.policy_set.clone());
            if source.seen.as_ref() == Some(&seen) {
                continue;
            }
            if let Some(other) = self
                .served
                .get(&loaded.name)
                .filter(|_| source.serves.as_deref() != Some(&loaded.name))
            {
                let problems = vec![format!(
                    "`{}`: another manifest, `{}`, already serves a workflow named `{}`; rename one",
                    source.path.display(),
                    other.workflow.path.display(),
                    loaded.name
                )];
                source.report(problems, &mut done);
                continue;
            }
            record(log, &loaded)?;
            if let Some(old) = source.serves.take().filter(|old| *old != loaded.name) {
                self.served.remove(&old);
            }
            source.seen = Some(seen);
            source.serves = Some(loaded.name.clone());
            done.loaded.push(loaded.name.clone());
            self.served.insert(loaded.name.clone(), Arc::new(loaded));
        }
        Ok(done)
    }

    /// The workflow named `name`, if served.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<Served>> {
        self.served.get(name).cloned()
    }

    /// Every workflow served, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Served>> {
        self.served.values()
    }

    /// The problems of every source whose latest version does not load.
    #[must_use]
    pub fn problems(&self) -> Vec<Problem> {
        self.sources
            .iter()
            .filter_map(|s| {
                Some(Problem {
                    source: s.path.clone(),
                    problems: s.problem.clone()?,
                })
            })
            .collect()
    }

    /// The workflow source `path` serves, if any.
    #[must_use]
    pub fn serving(&self, path: &Path) -> Option<Arc<Served>> {
        let path = crate::workflow::manifest_path(path);
        self.sources
            .iter()
            .find(|s| s.path == path)
            .and_then(|s| self.get(s.serves.as_deref()?))
    }
}

/// `workflow-loaded` and its `policy-set`, outside any run, synced.
fn record(log: &Mutex<AuditLog>, served: &Served) -> Result<(), AuditError> {
    let workflow = &served.workflow;
    let files = crate::runner::policy_files(&served.policies, &workflow.dir);
    let entities = served.entities.clone();
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    log.append(
        "",
        Event::WorkflowLoaded {
            workflow: served.name.clone(),
            manifest: FileDigest {
                path: workflow
                    .path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                sha256: served.manifest_sha256.clone(),
            },
            source: workflow.source.clone(),
            policy_set: served.policy_set.clone(),
        },
    )?;
    log.append(
        "",
        Event::PolicySet {
            sha256: served.policy_set.clone(),
            files,
            entities,
        },
    )?;
    log.sync()
}

/// Load the workflow at `path` and its policies, or say what is wrong.
/// A digest of the bytes of manifest `manifest` and of every file at or
/// under `policies`, or `None` if the manifest cannot be read.
fn fingerprint(manifest: &Path, policies: &[PathBuf]) -> Option<String> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(std::fs::read(manifest).ok()?);
    let mut files = Vec::new();
    for path in policies {
        walk(path, 0, &mut files);
    }
    files.sort();
    for file in files {
        h.update(file.as_os_str().as_encoded_bytes());
        h.update([0]);
        match std::fs::read(&file) {
            Ok(bytes) => {
                h.update((bytes.len() as u64).to_be_bytes());
                h.update(bytes);
            }
            Err(_) => h.update([1]),
        }
    }
    Some(crate::audit::log::hex(&h.finalize()))
}

/// The files at or under `path` (folders 8 deep at most).
fn walk(path: &Path, depth: usize, files: &mut Vec<PathBuf>) {
    if path.is_file() {
        files.push(path.to_owned());
        return;
    }
    if depth >= 8 {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            walk(&entry.path(), depth + 1, files);
        }
    }
}

fn load(path: &Path) -> Result<Served, Vec<String>> {
    let workflow = crate::workflow::load(path).map_err(|e| workflow_problems(&e))?;
    let policies = Arc::new(Policies::of_workflow(&workflow).map_err(|e| policy_problems(&e))?);
    let name = workflow.plan.name.to_string();
    let internal = |e: PolicyError| vec![format!("`{}`: {e}", path.display())];
    let service = ServicePolicies::new(Arc::clone(&policies), &name).map_err(internal)?;
    let entities = service.entities_json().map_err(internal)?;
    Ok(Served {
        policy_set: crate::runner::policy_set_of(&policies, &workflow.dir),
        manifest_sha256: sha256_tag(workflow.source.as_bytes()),
        name,
        workflow: Arc::new(workflow),
        policies,
        service,
        entities,
    })
}

fn workflow_problems(e: &WorkflowError) -> Vec<String> {
    match e {
        WorkflowError::Invalid {
            path,
            source_text,
            diagnostics,
        } => lines(path, source_text, &diagnostics.0),
        other => vec![other.to_string()],
    }
}

fn policy_problems(e: &PolicyError) -> Vec<String> {
    match e {
        PolicyError::Invalid(files) => files
            .iter()
            .flat_map(|f| lines(&f.path, &f.source, &f.diagnostics.0))
            .collect(),
        other => vec![other.to_string()],
    }
}

/// `file:line:column: message; help`, one per problem.
fn lines(path: &Path, source: &str, diagnostics: &[crate::diag::Diagnostic]) -> Vec<String> {
    diagnostics
        .iter()
        .map(|d| {
            let at = d.span.as_ref().map_or_else(String::new, |span| {
                let (line, column) = crate::diag::line_col(source, span.start);
                format!(":{line}:{column}")
            });
            let help = d
                .help
                .as_ref()
                .map_or_else(String::new, |h| format!("; {h}"));
            format!("{}{at}: {}{help}", path.display(), d.message)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use crate::audit::note::Signer;

    const POLICY: &str = r#"permit (principal, action == Cairn::Action::"trigger", resource);"#;

    fn manifest(name: &str) -> String {
        format!(
            "[workflow]\nname = \"{name}\"\npolicies = [\"p.cedar\"]\n[tasks.t]\ncomponent = \"t.wasm\"\n"
        )
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_version_and_a_fix_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let wf = dir.path().join("w");
        std::fs::create_dir(&wf).unwrap();
        std::fs::write(wf.join("t.wasm"), b"\0asm").unwrap();
        std::fs::write(wf.join("p.cedar"), POLICY).unwrap();
        std::fs::write(wf.join("workflow.toml"), manifest("etl")).unwrap();
        let key = dir.path().join("keys");
        crate::audit::note::keygen(&key, "audit").unwrap();
        let signer = Signer::load(&key.join("audit.key")).unwrap();
        let log = Mutex::new(AuditLog::open(&dir.path().join("log.jsonl"), signer).unwrap());
        let mut catalog = Catalog::new(std::slice::from_ref(&wf));

        let first = catalog.refresh(&log).unwrap();
        assert_eq!(first.loaded, vec!["etl".to_owned()]);
        let digest = catalog.get("etl").unwrap().manifest_sha256.clone();
        assert!(
            catalog.refresh(&log).unwrap().loaded.is_empty(),
            "unchanged"
        );

        std::fs::write(wf.join("workflow.toml"), "[workflow]\nname = 3\n").unwrap();
        let broken = catalog.refresh(&log).unwrap();
        assert!(broken.loaded.is_empty());
        assert_eq!(broken.problems.len(), 1);
        let problem = &broken.problems.first().unwrap().problems;
        assert!(
            problem.iter().any(|p| p.contains("workflow.toml:2:")),
            "{problem:?}"
        );
        assert_eq!(catalog.get("etl").unwrap().manifest_sha256, digest);
        assert!(
            catalog.refresh(&log).unwrap().problems.is_empty(),
            "reported once"
        );
        assert_eq!(catalog.problems().len(), 1, "but still known");

        std::fs::write(wf.join("workflow.toml"), manifest("etl") + "# v2\n").unwrap();
        assert_eq!(
            catalog.refresh(&log).unwrap().loaded,
            vec!["etl".to_owned()]
        );
        assert_ne!(catalog.get("etl").unwrap().manifest_sha256, digest);
        assert!(catalog.problems().is_empty());

        let text = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
        assert_eq!(text.matches("\"kind\":\"workflow-loaded\"").count(), 2);
        assert_eq!(text.matches("\"kind\":\"policy-set\"").count(), 2);
    }
}
