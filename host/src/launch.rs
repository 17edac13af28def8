//! Launching runs: everything between a loaded workflow and
//! [`runner::run`], as a library, for `cairn run` and `cairn resume` today
//! and for a long-running service that launches many runs at once.
//!
//! Owns what a run needs before anything is recorded: the secrets (from a
//! [`SecretProvider`] the caller implements: flags and environment for the
//! CLI, a vault for a service), every component loaded — each distinct one
//! once per [`Launcher`], by digest, however many tasks and runs use it —
//! and the preflight; then the state directory opened and repaired
//! ([`StateDir::open`]) and the [`Setup`] the runner takes. It prints
//! nothing and parses no arguments: that is the CLI's part. It must never
//! record anything: the runner records a run's first event.
//!
//! [`runner::run`]: crate::runner::run

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::audit::log::{AuditError, AuditLog};
use crate::audit::note::Signer;
use crate::audit::verify::sha256_tag;
use crate::digest::Digest;
use crate::name::Name;
use crate::plan::Plan;
use crate::policy::{Policies, PolicyError, Preflight, preflight};
use crate::recover::{RecoverError, Repairs, recover};
use crate::resume::History;
use crate::runner::{Progress, Setup};
use crate::sandbox::{EngineSettings, LoadError, Program, Sandbox, SetupError};
use crate::secrets::SecretValue;
use crate::state::{State, StateError};
use crate::workflow::Workflow;

/// Where a run's secret values come from.
pub trait SecretProvider {
    /// The value of secret `name`, or what is wrong and what to do.
    ///
    /// # Errors
    ///
    /// The message shown to whoever launched the run.
    fn secret(&self, name: &Name) -> Result<SecretValue, String>;
}

/// Why a run could not be launched. Nothing was recorded.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("secret `{name}` (task `{task}`): {message}")]
    Secret {
        name: Name,
        task: String,
        message: String,
    },
    #[error("task `{task}`: {source}")]
    Load { task: String, source: LoadError },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Recover(#[from] RecoverError),
}

/// Components at least this large that are not in the compile cache yet
/// are announced before they are compiled ([`Launcher::on_compile`]):
/// a Python or JavaScript runtime (12 to 19 MB) takes seconds, a Rust task
/// (a few MB at most) milliseconds.
pub const ANNOUNCED_SIZE: u64 = 4 * 1024 * 1024;

/// A slow load, as it happens: see [`ANNOUNCED_SIZE`].
#[derive(Debug, Clone, Copy)]
pub enum Compiling<'a> {
    /// The component at `path`, `bytes` long, is being compiled.
    Started { path: &'a Path, bytes: u64 },
    /// It was compiled (or, if another process got there first, found in
    /// the cache after all) in `took`.
    Finished {
        path: &'a Path,
        took: std::time::Duration,
        cache_hit: bool,
    },
}

/// Told of each slow load.
pub type CompileProgress = Arc<dyn Fn(Compiling<'_>) + Send + Sync>;

/// One engine and everything loaded on it, shared by every run a process
/// launches.
pub struct Launcher {
    sandbox: Arc<Sandbox>,
    /// Loaded programs by the digest of their bytes and their name.
    programs: Mutex<HashMap<(Digest, String), Arc<Program>>>,
    on_compile: Option<CompileProgress>,
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launcher")
            .field("sandbox", &self.sandbox)
            .field("programs", &self.programs)
            .field("on_compile", &self.on_compile.is_some())
            .finish()
    }
}

impl Launcher {
    /// A launcher on an engine for `jobs` tasks at a time, caching
    /// compiled code in `cache_dir`. The engine pre-allocates a pool of
    /// instance slots; where the address space for one cannot be reserved
    /// (a `ulimit -v`, say), it allocates each instance on demand instead.
    ///
    /// # Errors
    ///
    /// When no engine can be set up, or the cache directory cannot be used.
    pub fn new(jobs: usize, cache_dir: Option<&Path>) -> Result<Self, LaunchError> {
        let sandbox = match Sandbox::new(&EngineSettings::for_runs(jobs), cache_dir) {
            Ok(sandbox) => sandbox,
            Err(SetupError::Engine(error)) => {
                tracing::warn!(%error, "no instance pool; allocating each instance on demand");
                Sandbox::new(&EngineSettings::default(), cache_dir)?
            }
            Err(other) => return Err(other.into()),
        };
        Ok(Self::on(sandbox))
    }

    /// A launcher on `sandbox`.
    #[must_use]
    pub fn on(sandbox: Sandbox) -> Self {
        Self {
            sandbox: Arc::new(sandbox),
            programs: Mutex::new(HashMap::new()),
            on_compile: None,
        }
    }

    /// Tell `progress` about each slow load from now on: a component of at
    /// least [`ANNOUNCED_SIZE`] bytes not yet in the compile cache.
    #[must_use]
    pub fn on_compile(mut self, progress: CompileProgress) -> Self {
        self.on_compile = Some(progress);
        self
    }

    /// The sandbox runs execute on.
    #[must_use]
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Every task's program, by task name: each distinct component file is
    /// read once, its pin checked against those bytes for every task that
    /// pins it, and each distinct component (by digest) compiled or loaded
    /// from the cache once per launcher.
    ///
    /// # Errors
    ///
    /// The first task whose component cannot be read, matches no pin, or
    /// does not load.
    pub fn programs(
        &self,
        workflow: &Workflow,
    ) -> Result<HashMap<String, Arc<Program>>, LaunchError> {
        let mut read: HashMap<PathBuf, (Vec<u8>, Digest)> = HashMap::new();
        let mut programs = HashMap::with_capacity(workflow.plan.tasks.len());
        // A gate runs nothing: it has no program.
        for planned in workflow.plan.tasks.iter().filter(|t| !t.task.is_gate()) {
            let task = &planned.task;
            let failed = |source| LaunchError::Load {
                task: task.name.value.to_string(),
                source,
            };
            let path = workflow.dir.join(&task.component.value);
            let (bytes, digest) = match read.entry(path.clone()) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let bytes = std::fs::read(&path).map_err(|source| {
                        failed(LoadError::Read {
                            path: path.clone(),
                            source,
                        })
                    })?;
                    let digest = Digest::of(&bytes);
                    slot.insert((bytes, digest))
                }
            };
            if let Some(pin) = &task.sha256
                && pin.value != *digest
            {
                return Err(failed(LoadError::PinMismatch {
                    path,
                    expected: pin.value,
                    actual: *digest,
                }));
            }
            let name = Program::name_of(&path);
            let key = (*digest, name);
            let known = lock(&self.programs).get(&key).cloned();
            let program = match known {
                Some(program) => program,
                None => {
                    let size = bytes.len() as u64;
                    let announce = self
                        .on_compile
                        .as_ref()
                        .filter(|_| size >= ANNOUNCED_SIZE && !self.sandbox.is_cached(digest));
                    if let Some(progress) = announce {
                        progress(Compiling::Started {
                            path: &path,
                            bytes: size,
                        });
                    }
                    let program = Arc::new(
                        self.sandbox
                            .load_bytes(&path, bytes, None)
                            .map_err(failed)?,
                    );
                    if let Some(progress) = announce {
                        let stats = program.load_stats();
                        progress(Compiling::Finished {
                            path: &path,
                            took: stats.compile,
                            cache_hit: stats.cache_hit,
                        });
                    }
                    lock(&self.programs).insert(key, Arc::clone(&program));
                    program
                }
            };
            programs.insert(task.name.value.to_string(), program);
        }
        Ok(programs)
    }

    /// What run of `workflow` (its parameters already written into its
    /// plan) as `user` needs before anything is recorded: every declared
    /// secret's value (with [`Release::BeforeGates`], only those of tasks
    /// that no approval gate stands before), every component loaded, the
    /// preflight.
    ///
    /// # Errors
    ///
    /// A secret without a value, a component that does not load, or
    /// policies that cannot be evaluated.
    pub fn prepare(
        &self,
        workflow: &Workflow,
        policies: &Policies,
        user: &str,
        params: BTreeMap<String, String>,
        secrets: &dyn SecretProvider,
        release: Release,
    ) -> Result<Prepared, LaunchError> {
        let mut values = BTreeMap::new();
        let later = match release {
            Release::All => BTreeSet::new(),
            Release::BeforeGates => gated_secrets(&workflow.plan),
        };
        for (name, task) in declared_secrets(&workflow.plan) {
            if later.contains(&name) {
                continue;
            }
            let value = secrets
                .secret(&name)
                .map_err(|message| LaunchError::Secret {
                    name: name.clone(),
                    task,
                    message,
                })?;
            values.insert(name, value);
        }
        let programs = self.programs(workflow)?;
        let preflight = Arc::new(preflight(&workflow.plan, policies, user)?);
        Ok(Prepared {
            user: user.to_owned(),
            params,
            secrets: values,
            programs,
            preflight,
        })
    }

    /// The runner's [`Setup`] for a prepared run in `state`.
    #[must_use]
    pub fn setup(
        &self,
        prepared: Prepared,
        policies: Arc<Policies>,
        state: &StateDir,
        progress: Arc<dyn Fn(Progress<'_>) + Send + Sync>,
        jobs: usize,
    ) -> Setup {
        Setup {
            user: prepared.user,
            params: prepared.params,
            policies,
            preflight: prepared.preflight,
            sandbox: Arc::clone(&self.sandbox),
            programs: prepared.programs,
            log: Arc::clone(&state.log),
            secrets: prepared.secrets,
            state_dir: state.path.clone(),
            progress,
            jobs,
            state: Arc::clone(&state.state),
            trigger: None,
            given: None,
            slots: None,
            drain: None,
            trace: None,
        }
    }
}

/// Every secret the plan's tasks declare (read or injected), each with the
/// first task that declares it.
#[must_use]
pub fn declared_secrets(plan: &Plan) -> BTreeMap<Name, String> {
    let mut declared = BTreeMap::new();
    for planned in &plan.tasks {
        let task = &planned.task;
        for name in task
            .secrets
            .iter()
            .map(|s| &s.value)
            .chain(task.inject.keys())
        {
            declared
                .entry(name.clone())
                .or_insert_with(|| task.name.value.to_string());
        }
    }
    declared
}

/// Which secrets a run reads before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Every declared secret.
    All,
    /// Only those of tasks no approval gate stands before: a run starting
    /// afresh cannot get past a gate (approvals come while it waits), so
    /// the secrets behind one are read when it goes on (`cairn resume`).
    BeforeGates,
}

/// The secrets only tasks after an approval gate (directly or not) declare.
#[must_use]
pub fn gated_secrets(plan: &Plan) -> BTreeSet<Name> {
    // Tasks come after their upstream: one sweep marks what follows a gate.
    let mut behind = vec![false; plan.tasks.len()];
    for (i, planned) in plan.tasks.iter().enumerate() {
        let after = planned.upstream.iter().any(|u| {
            behind.get(u.from) == Some(&true)
                || plan.tasks.get(u.from).is_some_and(|t| t.task.is_gate())
        });
        if let Some(slot) = behind.get_mut(i) {
            *slot = after;
        }
    }
    let declared = |t: &crate::plan::PlannedTask| -> Vec<Name> {
        t.task
            .secrets
            .iter()
            .map(|s| s.value.clone())
            .chain(t.task.inject.keys().cloned())
            .collect()
    };
    let before: BTreeSet<Name> = plan
        .tasks
        .iter()
        .zip(&behind)
        .filter(|(_, b)| !**b)
        .flat_map(|(t, _)| declared(t))
        .collect();
    plan.tasks
        .iter()
        .zip(&behind)
        .filter(|(_, b)| **b)
        .flat_map(|(t, _)| declared(t))
        .filter(|n| !before.contains(n))
        .collect()
}

/// A run ready to be recorded and run.
#[derive(Debug)]
pub struct Prepared {
    /// Who starts it.
    pub user: String,
    /// Its parameters.
    pub params: BTreeMap<String, String>,
    /// Every declared secret's value.
    pub secrets: BTreeMap<Name, SecretValue>,
    /// Each task's program.
    pub programs: HashMap<String, Arc<Program>>,
    /// What policy decided for every request the run makes.
    pub preflight: Arc<Preflight>,
}

impl Prepared {
    /// The components as a run records them: task → `sha256:…`.
    #[must_use]
    pub fn components(&self) -> BTreeMap<&str, String> {
        self.programs
            .iter()
            .map(|(task, p)| (task.as_str(), format!("sha256:{}", p.digest())))
            .collect()
    }
}

/// A state directory, opened: its audit log (locked for this process) and
/// run state, repaired from whatever a killed writer left.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    /// The audit log.
    pub log: Arc<Mutex<AuditLog>>,
    /// The run state.
    pub state: Arc<Mutex<State>>,
}

impl StateDir {
    /// Open `path` (its audit log signed by `signer`), waiting for the log's
    /// lock, and finish what a killed writer left ([`recover`]).
    ///
    /// # Errors
    ///
    /// When the log or the state cannot be opened or repaired.
    pub fn open(path: &Path, signer: Signer) -> Result<(Self, Repairs), LaunchError> {
        let mut log = AuditLog::open(&Self::log_path(path), signer)?;
        let mut state = State::open(path)?;
        let repairs = recover(&mut log, &mut state)?;
        Ok((
            Self {
                path: path.to_owned(),
                log: Arc::new(Mutex::new(log)),
                state: Arc::new(Mutex::new(state)),
            },
            repairs,
        ))
    }

    /// Where the audit log of state directory `path` lives.
    #[must_use]
    pub fn log_path(path: &Path) -> PathBuf {
        path.join("audit").join("log.jsonl")
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What changed since `history`'s run started (or last resumed): the
/// manifest, the policy set, each task's component; one line each.
#[must_use]
pub fn changes(
    history: &History,
    workflow: &Workflow,
    policies: &Policies,
    prepared: &Prepared,
) -> Vec<String> {
    let mut changed = Vec::new();
    let short = |d: &str| d.get(..19).unwrap_or(d).to_owned();
    let manifest = sha256_tag(workflow.source.as_bytes());
    if manifest != history.manifest {
        changed.push(format!(
            "the manifest `{}` ({} is now {})",
            workflow.path.display(),
            short(&history.manifest),
            short(&manifest)
        ));
    }
    let policy_set = crate::runner::policy_set_of(policies, &workflow.dir);
    if policy_set != history.policy_set {
        changed.push(format!(
            "the policies or entities ({} are now {})",
            short(&history.policy_set),
            short(&policy_set)
        ));
    }
    let now = prepared.components();
    for (task, digest) in &now {
        match history.components.get(*task) {
            Some(was) if was == digest => {}
            Some(was) => changed.push(format!(
                "the component of task `{task}` ({} is now {})",
                short(was),
                short(digest)
            )),
            None => changed.push(format!("task `{task}` is new")),
        }
    }
    let gone: BTreeSet<&String> = history
        .components
        .keys()
        .filter(|task| !now.contains_key(task.as_str()))
        .collect();
    for task in gone {
        changed.push(format!("task `{task}` was removed"));
    }
    changed
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the trigger of run `run` gave it, as the audit log `log` (its
/// bytes) records: a webhook delivery's body, where the artifact store of
/// state directory `state` keeps it.
#[must_use]
pub fn given_of(
    log: &[u8],
    run: &str,
    state: &Path,
) -> Option<(crate::audit::record::Artifact, PathBuf)> {
    log.split(|b| *b == b'\n').find_map(|line| {
        let record: crate::audit::record::Record = serde_json::from_slice(line).ok()?;
        match record.event {
            crate::audit::record::Event::Trigger {
                starts,
                body: Some(body),
                ..
            } if starts == run => {
                let path = stored_path(state, &body);
                Some((body, path))
            }
            _ => None,
        }
    })
}

/// Where the artifact store of state directory `state` keeps `artifact`.
#[must_use]
pub fn stored_path(state: &Path, artifact: &crate::audit::record::Artifact) -> PathBuf {
    let hex = artifact
        .sha256
        .strip_prefix("sha256:")
        .unwrap_or(&artifact.sha256);
    state.join("artifacts").join("sha256").join(hex)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn each_distinct_component_is_loaded_once_however_many_tasks_and_runs_use_it() {
        let dir = tempfile::tempdir().unwrap();
        let trivial =
            wat::parse_str(include_str!("../../tests/guests/wat/trivial_task.wat")).unwrap();
        std::fs::write(dir.path().join("a.wasm"), &trivial).unwrap();
        // The same bytes under another name: another program (its name is argv[0]).
        std::fs::write(dir.path().join("b.wasm"), &trivial).unwrap();
        let mut manifest = String::from("[workflow]\nname = \"w\"\n");
        for i in 0..50 {
            manifest.push_str(&format!("[tasks.t{i}]\ncomponent = \"a.wasm\"\n"));
        }
        manifest.push_str("[tasks.other]\ncomponent = \"b.wasm\"\n");
        let path = dir.path().join("workflow.toml");
        std::fs::write(&path, manifest).unwrap();
        let workflow = crate::workflow::load(&path).unwrap();
        let launcher = Launcher::new(2, None).unwrap();
        let first = launcher.programs(&workflow).unwrap();
        let again = launcher.programs(&workflow).unwrap();
        let t0 = first.get("t0").unwrap();
        for i in 0..50 {
            assert!(Arc::ptr_eq(t0, first.get(&format!("t{i}")).unwrap()));
        }
        assert!(
            Arc::ptr_eq(t0, again.get("t0").unwrap()),
            "a second run reuses it"
        );
        let other = first.get("other").unwrap();
        assert!(!Arc::ptr_eq(t0, other));
        assert_eq!(t0.digest(), other.digest());
        assert_eq!(lock(&launcher.programs).len(), 2);
    }

    #[test]
    fn a_large_component_not_in_the_cache_is_announced_before_it_is_compiled() {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        // A WASI command as large as a language runtime, mostly data.
        let data = "a".repeat(usize::try_from(ANNOUNCED_SIZE).unwrap());
        let big = wat::parse_str(format!(
            "(module (memory (export \"memory\") 80) (func (export \"_start\")) (data (i32.const 0) \"{data}\"))"
        ))
        .unwrap();
        std::fs::write(dir.path().join("big.wasm"), &big).unwrap();
        let trivial =
            wat::parse_str(include_str!("../../tests/guests/wat/trivial_task.wat")).unwrap();
        std::fs::write(dir.path().join("small.wasm"), &trivial).unwrap();
        let path = dir.path().join("workflow.toml");
        std::fs::write(
            &path,
            "[workflow]\nname = \"w\"\n[tasks.big]\ncomponent = \"big.wasm\"\n[tasks.small]\ncomponent = \"small.wasm\"\n",
        )
        .unwrap();
        let workflow = crate::workflow::load(&path).unwrap();
        let loads = |expected: usize| {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let kept = Arc::clone(&seen);
            let launcher = Launcher::new(1, Some(cache.path()))
                .unwrap()
                .on_compile(Arc::new(move |event| {
                    lock(&kept).push(match event {
                        Compiling::Started { path, bytes } => (path.to_owned(), Some(bytes), None),
                        Compiling::Finished {
                            path, cache_hit, ..
                        } => (path.to_owned(), None, Some(cache_hit)),
                    });
                }));
            launcher.programs(&workflow).unwrap();
            let seen = lock(&seen).clone();
            assert_eq!(seen.len(), expected, "{seen:?}");
            seen
        };
        let first = loads(2);
        let big_path = dir.path().join("big.wasm");
        assert_eq!(first[0], (big_path.clone(), Some(big.len() as u64), None));
        assert_eq!(first[1], (big_path, None, Some(false)));
        // Compiled into the cache: the next process says nothing.
        loads(0);
    }
}
