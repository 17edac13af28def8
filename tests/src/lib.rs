//! Paths of the guest programs built by `build.rs`, for the end-to-end tests.
//!
//! `HELLO`, `CICD`, `ETL` and `POLYGLOT` are the examples' tasks, `TASK` the test Cairn task (its `mode` input
//! picks a behaviour), `CMD_*` the wasm32-wasip2 command programs, `P1_*` the
//! same programs as wasm32-wasip1 core modules, `WAT_*` hand-written fixtures.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use cairn::audit::log::AuditLog;
use cairn::audit::note::Signer;
use cairn::policy::{Policies, preflight};
use cairn::runner::Setup;
use cairn::sandbox::{EngineSettings, Sandbox};
use cairn::state::State;
use cairn::workflow::Workflow;

/// What `cairn run` sets up, done through the library: the workflow at
/// `manifest` with its policies, preflight as `user`, every component
/// loaded (compiled code cached in `cache`), the audit log (signed with a
/// fixed test key) and run state under `state`. For tests and benchmarks
/// that drive the runner directly (on a paused clock, or timed).
///
/// # Panics
///
/// When any of it fails: a test or benchmark fails loudly.
#[must_use]
#[expect(clippy::unwrap_used, reason = "test support fails loudly")]
pub fn runner_setup(
    manifest: &Path,
    user: &str,
    state: &Path,
    cache: &Path,
    jobs: usize,
) -> (Arc<Workflow>, Setup) {
    let workflow = cairn::workflow::load(manifest).unwrap();
    let policies = Policies::of_workflow(&workflow).unwrap();
    let preflight = preflight(&workflow.plan, &policies, user).unwrap();
    let sandbox = Sandbox::new(&EngineSettings::default(), Some(cache)).unwrap();
    let mut loaded: HashMap<std::path::PathBuf, Arc<cairn::sandbox::Program>> = HashMap::new();
    let mut programs = HashMap::new();
    for planned in &workflow.plan.tasks {
        let path = workflow.dir.join(&planned.task.component.value);
        let program = loaded
            .entry(path.clone())
            .or_insert_with(|| Arc::new(sandbox.load(&path, None).unwrap()));
        programs.insert(planned.task.name.value.to_string(), Arc::clone(program));
    }
    let signer = Signer::from_seed("cairn-test", &[7; 32]);
    let log = AuditLog::open(&state.join("audit").join("log.jsonl"), signer).unwrap();
    let setup = Setup {
        params: BTreeMap::new(),
        user: user.to_owned(),
        policies: Arc::new(policies),
        preflight: Arc::new(preflight),
        sandbox: Arc::new(sandbox),
        programs,
        log: Arc::new(Mutex::new(log)),
        secrets: BTreeMap::new(),
        state_dir: state.to_owned(),
        progress: Arc::new(|_| {}),
        jobs,
        state: Arc::new(Mutex::new(State::open(state).unwrap())),
    };
    (Arc::new(workflow), setup)
}
