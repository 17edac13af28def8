//! The runtime gate: a host call is authorized again, with Cedar, at the
//! moment the guest makes it; a refusal is the typed `denied` error.

use std::path::Path;
use std::sync::Arc;

use cairn::name::Name;
use cairn::policy::{Policies, preflight};
use cairn::sandbox::{Capabilities, EngineSettings, Limits, Outcome, Sandbox, TaskSpec};
use cairn::secrets::SecretValue;

use crate::support::Scratch;

async fn run_as(user: &str) -> (cairn::sandbox::Attempt, Vec<cairn::policy::Decision>) {
    let s = Scratch::new();
    s.policies();
    s.write("mode", "secret");
    let manifest = format!(
        "[workflow]\nname = \"w\"\npolicies = [\"p\"]\n[tasks.m]\ncomponent = {task:?}\noutputs = [\"mode\"]\n\
         [tasks.t]\ncomponent = {task:?}\ninputs = {{ mode = \"m.mode\" }}\nsecrets = [\"token\"]\noutputs = [\"echo\"]\n",
        task = cairn_tests::TASK
    );
    let path = s.write("workflow.toml", &manifest);
    let workflow = cairn::workflow::load(&path).expect("valid workflow");
    let policies = Arc::new(Policies::load(&workflow.dir, &["p".into()]).expect("valid policies"));
    let checked = preflight(&workflow.plan, &policies, user).expect("preflight");
    let gate = Arc::new(checked.gate(&workflow.plan, Arc::clone(&policies), "t", user));

    let sandbox = Sandbox::new(&EngineSettings::default(), None).expect("sandbox");
    let program = sandbox
        .load(Path::new(cairn_tests::TASK), None)
        .expect("load");
    let mut caps = Capabilities::default();
    caps.inputs
        .insert(Name::new("mode").unwrap(), s.path().join("mode"));
    caps.secrets.insert(
        Name::new("token").unwrap(),
        SecretValue::new("tok-123-secret".into()),
    );
    let out = tempfile::tempdir().unwrap();
    let spec = TaskSpec {
        caps,
        limits: Limits::default(),
        outputs_dir: out.path().to_owned(),
        log_sink: None,
        exchange_sink: None,
        gate: Some(gate.clone()),
    };
    let attempt = sandbox.run(&program, &spec).await.expect("attempt");
    (attempt, gate.decisions())
}

#[tokio::test]
async fn a_secret_policy_forbids_at_run_time_is_a_typed_denial() {
    let (attempt, decisions) = run_as("bob").await;
    let why = "read of secret `token` denied by policy: forbidden by token-alice-only";
    assert_eq!(
        attempt.outcome,
        Outcome::GuestError {
            message: format!("denied: {why}"),
            transient: false
        },
        "the guest saw the typed `denied` error and failed with it"
    );
    assert_eq!(attempt.denials, [why]);
    // The input read was authorized (as a flow), the secret read refused.
    assert_eq!(decisions.len(), 2);
    assert!(
        decisions[0].allowed && decisions[0].action == "flow",
        "{:?}",
        decisions[0]
    );
    assert!(!decisions[1].allowed);
    assert_eq!(decisions[1].policies, ["token-alice-only"]);
}

#[tokio::test]
async fn the_same_request_is_allowed_for_the_rule_keeper() {
    let (attempt, decisions) = run_as("alice").await;
    assert_eq!(attempt.outcome, Outcome::Success);
    assert!(attempt.denials.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&attempt.stdout),
        "token is *** / ***\n"
    );
    assert_eq!(decisions.len(), 2);
    assert!(decisions.iter().all(|d| d.allowed));
    assert_eq!(decisions[1].policies, ["declared-secrets"]);
}
