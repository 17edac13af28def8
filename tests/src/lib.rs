//! Paths of the guest programs built by `build.rs`, for the end-to-end tests.
//!
//! `HELLO`, `CICD`, `ETL` and `POLYGLOT` are the examples' tasks, `TASK` the test Cairn task (its `mode` input
//! picks a behaviour), `CMD_*` the wasm32-wasip2 command programs, `P1_*` the
//! same programs as wasm32-wasip1 core modules, `WAT_*` hand-written fixtures.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

use std::path::Path;
use std::sync::Arc;

use cairn::audit::note::Signer;
use cairn::launch::{Launcher, SecretProvider, StateDir};
use cairn::name::Name;
use cairn::policy::Policies;
use cairn::runner::Setup;
use cairn::secrets::SecretValue;
use cairn::workflow::Workflow;

/// No secrets: a workflow that declares one cannot be launched by
/// [`runner_setup`].
struct NoSecrets;

impl SecretProvider for NoSecrets {
    fn secret(&self, name: &Name) -> Result<SecretValue, String> {
        Err(format!("no value for `{name}` in tests"))
    }
}

/// What `cairn run` sets up, done through the library (`cairn::launch`):
/// the workflow at `manifest` with its policies, preflight as `user`, every
/// component loaded (compiled code cached in `cache`) on an engine for
/// `jobs` tasks at a time, the audit log (signed with a fixed test key)
/// and run state under `state`. For tests and benchmarks that drive the
/// runner directly (on a paused clock, or timed).
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
    let mut workflow = cairn::workflow::load(manifest).unwrap();
    // As `cairn run` does: parameters at their defaults, fan-outs expanded.
    let params = workflow.plan.param_values(&[]).unwrap();
    workflow.plan = workflow.plan.with_params(&params);
    let policies = Policies::of_workflow(&workflow).unwrap();
    let launcher = Launcher::new(jobs, Some(cache)).unwrap();
    let prepared = launcher
        .prepare(
            &workflow,
            &policies,
            user,
            params,
            &NoSecrets,
            cairn::launch::Release::All,
        )
        .unwrap();
    let signer = Signer::from_seed("cairn-test", &[7; 32]);
    let (opened, _) = StateDir::open(state, signer).unwrap();
    let setup = launcher.setup(
        prepared,
        Arc::new(policies),
        &opened,
        Arc::new(|_| {}),
        jobs,
    );
    (Arc::new(workflow), setup)
}
