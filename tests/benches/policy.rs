//! `cargo bench -p cairn-tests --bench policy`: what policy costs.
//!
//! - Preflight of a 10,000-task plan (10 wide × 1,000 deep, every task with
//!   a secret and a data edge from the layer before) against 500 policies.
//! - One runtime gate check (a secret read), median of many.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark fails loudly"
)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use cairn::policy::{Policies, preflight};
use cairn::sandbox::{Gate, GateRequest};

const WIDE: usize = 10;
const DEEP: usize = 1_000;
const POLICIES: usize = 500;

fn manifest() -> String {
    let mut text = String::from("[workflow]\nname = \"big\"\npolicies = [\"p\"]\n");
    for layer in 0..DEEP {
        for lane in 0..WIDE {
            let _ = write!(
                text,
                "[tasks.t{layer}-{lane}]\ncomponent = \"t.wasm\"\nsecrets = [\"s{lane}\"]\noutputs = [\"out\"]\n"
            );
            if layer > 0 {
                let _ = writeln!(text, "inputs = {{ data = \"t{}-{lane}.out\" }}", layer - 1);
            }
        }
    }
    text
}

fn policies() -> String {
    let mut text = String::from(
        "@id(\"ops-run\") permit (principal in Cairn::Group::\"ops\", action == Cairn::Action::\"run\", resource);\n\
         @id(\"flows\") permit (principal, action == Cairn::Action::\"flow\", resource);\n\
         @id(\"pii-offline\") forbid (principal, action == Cairn::Action::\"flow\", resource) when { principal.labels.contains(\"pii\") && resource.network };\n",
    );
    // One rule per secret, as an organisation with many secrets accumulates
    // them; the workflow's tasks use ten of these secrets.
    for i in 3..POLICIES {
        let _ = writeln!(
            text,
            "@id(\"secret-{i}\") permit (principal, action == Cairn::Action::\"read_secret\", resource == Cairn::Secret::\"s{}\") when {{ context.run_by in Cairn::Group::\"ops\" }};",
            i - 3
        );
    }
    text
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("p")).unwrap();
    std::fs::write(dir.path().join("p/rules.cedar"), policies()).unwrap();
    std::fs::write(
        dir.path().join("p/people.entities.json"),
        r#"[{ "uid": { "type": "Cairn::Group", "id": "ops" }, "attrs": {}, "parents": [] },
            { "uid": { "type": "Cairn::User", "id": "alice" }, "attrs": {}, "parents": [{ "type": "Cairn::Group", "id": "ops" }] }]"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("t.wasm"), b"").unwrap();
    std::fs::write(dir.path().join("workflow.toml"), manifest()).unwrap();

    let start = Instant::now();
    let workflow =
        cairn::workflow::load(&dir.path().join("workflow.toml")).expect("valid workflow");
    let load = start.elapsed();
    let start = Instant::now();
    let set = Arc::new(Policies::load(dir.path(), &["p".into()]).expect("valid policies"));
    let policy_load = start.elapsed();
    assert_eq!(set.len(), POLICIES);

    let mut runs = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let start = Instant::now();
        let checked = preflight(&workflow.plan, &set, "alice").unwrap();
        runs.push(start.elapsed());
        last = Some(checked);
    }
    runs.sort();
    let checked = last.unwrap();
    assert_eq!(checked.denied().count(), 0);
    let requests = checked.decisions.len();

    let gate = checked.gate(&workflow.plan, Arc::clone(&set), "t500-3", "alice");
    let request = GateRequest::ReadSecret("s3".into());
    let mut samples: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..200 {
                gate.check(&request).unwrap();
            }
            start.elapsed().as_secs_f64() * 1e6 / 200.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);

    println!(
        "policy benchmark ({WIDE} wide x {DEEP} deep = {} tasks; {POLICIES} policies: 3 general, {} per-secret rules)",
        WIDE * DEEP,
        POLICIES - 3
    );
    println!(
        "  load + validate the workflow             {:>8.1} ms",
        load.as_secs_f64() * 1e3
    );
    println!(
        "  load + validate the policies (strict)     {:>8.1} ms",
        policy_load.as_secs_f64() * 1e3
    );
    println!(
        "  preflight: {requests} requests                {:>8.1} ms   (median of 3; goal well under 1 s)",
        runs[1].as_secs_f64() * 1e3
    );
    println!(
        "  one runtime gate check (secret read)      {:>8.1} us",
        samples[samples.len() / 2]
    );
}
