//! The examples, run end to end as users run them: plan, run, audit verify.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use deploy_api::{DeployApi, Handler, Request};
use serde_json::Value;

use crate::support::{Run, Scratch, assert_contains, cairn, run_in};

const DEPLOY_TOKEN: &str = "dpl-7Hq2-rLx9-live";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Copy `examples/NAME` into a scratch folder, with `rewrite` applied to
/// every text file (so it can point at a free port, the built component
/// and the repository's baseline policies).
fn copy_example(name: &str, rewrite: &dyn Fn(String) -> String) -> Scratch {
    fn copy(from: &Path, to: &Path, rewrite: &dyn Fn(String) -> String) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                // Source crates are not part of a run.
                if !matches!(
                    entry.file_name().to_str(),
                    Some("tasks" | "deploy-api" | "report")
                ) {
                    copy(&entry.path(), &target, rewrite);
                }
            } else {
                let bytes = std::fs::read(entry.path()).unwrap();
                match String::from_utf8(bytes) {
                    Ok(text) => std::fs::write(&target, rewrite(text)).unwrap(),
                    Err(e) => std::fs::write(&target, e.into_bytes()).unwrap(),
                }
            }
        }
    }
    let s = Scratch::new();
    copy(&repo().join("examples").join(name), s.path(), rewrite);
    s
}

/// The deployment API of the CI/CD example on a free port, keeping every
/// request it receives.
struct Api {
    port: u16,
    seen: Arc<Mutex<Vec<(Request, u16)>>>,
}

impl Api {
    fn start(fail: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let api = DeployApi::new(DEPLOY_TOKEN.to_owned(), fail);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&seen);
        let handler: Handler = Arc::new(move |request: &Request| {
            let response = api.handle(request);
            kept.lock()
                .unwrap()
                .push((request.clone(), response.status));
            response
        });
        std::thread::spawn(move || deploy_api::serve(&listener, &handler));
        Self { port, seen }
    }

    /// `METHOD PATH -> STATUS` of each request.
    fn calls(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(r, status)| format!("{} {} -> {status}", r.method, r.target))
            .collect()
    }
}

fn cicd(api: &Api) -> Scratch {
    let port = api.port;
    let component = cairn_tests::CICD;
    let baseline = repo().join("policies/baseline/");
    copy_example("cicd", &move |text| {
        text.replace("127.0.0.1:8787", &format!("127.0.0.1:{port}"))
            .replace(
                "../../target/wasm32-wasip2/release/cicd_tasks.wasm",
                component,
            )
            .replace("../../policies/baseline/", &baseline.display().to_string())
    })
}

/// `cairn run` of the CI/CD example in `s` as `user`, with `args`.
fn run_as(s: &Scratch, user: &str, args: &[&str]) -> Run {
    let out = cairn()
        .current_dir(s.path())
        .env("CAIRN_SECRET_DEPLOY_TOKEN", DEPLOY_TOKEN)
        .args(["run", "--as", user, "--json"])
        .args(args)
        .output()
        .unwrap();
    let run = Run::from(out);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(
        !run.stdout.contains(DEPLOY_TOKEN) && !run.stderr.contains(DEPLOY_TOKEN),
        "cairn printed the deploy token"
    );
    let verified = run_in(
        s.path(),
        &["audit", "verify", "--key", ".cairn/keys/audit.pub"],
    );
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let log = std::fs::read_to_string(s.path().join(".cairn/audit/log.jsonl")).unwrap();
    assert!(!log.contains(DEPLOY_TOKEN), "the audit log holds the token");
    run
}

fn status(run: &Run, task: &str) -> String {
    let json: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == task)
        .map(|t| format!("{} {}", t["status"].as_str().unwrap(), t["detail"]))
        .unwrap()
}

/// The audit log's `http-request` records, as `task METHOD path status injected`.
fn requests(s: &Scratch) -> Vec<String> {
    let shown = run_in(
        s.path(),
        &["audit", "show", "--kind", "http-request", "--json"],
    );
    shown
        .stdout
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {} {} {} {}",
                r["task"].as_str().unwrap(),
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap(),
                r["status"],
                r["injected"]
            )
        })
        .collect()
}

#[test]
fn cicd_deploys_with_a_token_the_task_never_sees() {
    let api = Api::start(false);
    let s = cicd(&api);
    let plan = run_in(s.path(), &["plan", "--as", "bob"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);

    let run = run_as(&s, "bob", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(status(&run, "deploy"), "succeeded null");
    assert_contains(&status(&run, "rollback"), "skipped");
    // The API accepted the token (it answers 401 to anything else).
    assert_eq!(api.calls(), ["POST /v1/staging/deployments -> 201"]);
    let seen = api.seen.lock().unwrap();
    assert_eq!(
        seen[0].0.header("authorization"),
        Some(format!("Bearer {DEPLOY_TOKEN}").as_str())
    );
    drop(seen);
    // The deploy task printed its "token" (a placeholder) in its log: the
    // audit log shows the call, and the token was injected by the host.
    assert_eq!(
        requests(&s),
        [r#"deploy POST /v1/staging/deployments 201 ["deploy_token"]"#]
    );
}

#[test]
fn cicd_rolls_back_when_the_deploy_fails() {
    let api = Api::start(true);
    let s = cicd(&api);
    let run = run_as(&s, "bob", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_contains(&status(&run, "deploy"), "failed");
    assert_contains(&status(&run, "deploy"), "failed its health check");
    assert_eq!(status(&run, "rollback"), "succeeded null");
    assert_eq!(
        api.calls(),
        [
            "POST /v1/staging/deployments -> 500",
            "POST /v1/staging/rollbacks -> 200"
        ]
    );
    assert_eq!(
        requests(&s),
        [
            r#"deploy POST /v1/staging/deployments 500 ["deploy_token"]"#,
            r#"rollback POST /v1/staging/rollbacks 200 ["deploy_token"]"#
        ]
    );
}

#[test]
fn cicd_deploys_to_production_only_for_release_managers() {
    let api = Api::start(false);
    let s = cicd(&api);
    let production = ["--param", "target=production"];
    let run = run_as(&s, "bob", &production);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_contains(&status(&run, "deploy"), "denied by the host");
    // Nothing reached the API: not the deploy, not the rollback.
    assert!(api.calls().is_empty(), "{:?}", api.calls());
    let audited = requests(&s);
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(audited[0].starts_with("deploy POST /v1/production/deployments null"));

    let run = run_as(&s, "alice", &production);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(api.calls(), ["POST /v1/production/deployments -> 201"]);

    // The parameter is in the audit log, with who started the run.
    let started = run_in(
        s.path(),
        &["audit", "show", "--kind", "run-started", "--json"],
    );
    let last: Value = serde_json::from_str(started.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["user"], "alice");
    assert_eq!(
        last["parameters"],
        serde_json::json!({ "target": "production" })
    );
}

#[test]
fn cicd_refuses_parameters_it_does_not_declare_or_allow() {
    let api = Api::start(false);
    let s = cicd(&api);
    for (param, message) in [
        (
            "target=prod",
            "--param `target=prod`: `target` must be one of `staging`, `production`",
        ),
        (
            "tagret=staging",
            "--param `tagret`: the workflow has no such parameter; it declares `target`",
        ),
        ("target", "`target` is not NAME=VALUE"),
    ] {
        let run = run_in(s.path(), &["run", "--as", "alice", "--param", param]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert_contains(&run.stderr, message);
    }
    assert!(api.calls().is_empty());
    assert!(
        !s.path().join(".cairn/audit/log.jsonl").exists(),
        "a refused parameter starts nothing"
    );
}

#[test]
fn cicd_policies_pass_their_tests() {
    let tested = run_in(&repo(), &["policy", "test", "examples/cicd/policy-tests/"]);
    assert_eq!(tested.code, 0, "{}{}", tested.stdout, tested.stderr);
}

/// The target directory the test build compiled the examples' tasks into
/// (`<target>/wasm-guests`), which `cairn build` of a copied example reuses.
fn guests_target() -> PathBuf {
    Path::new(cairn_tests::ETL)
        .ancestors()
        .nth(3)
        .unwrap()
        .to_owned()
}

/// `text` of an example's file, rewritten so that the copy builds: cargo
/// builds the repository's crates into the tests' guest target, other
/// build outputs land in the copy's `out/`, and the baseline policies are
/// the repository's.
fn buildable(text: String) -> String {
    let target = guests_target();
    let baseline = repo().join("policies/baseline/");
    text.replace("../../target/wasm32-wasip2/c/", "out/")
        .replace("../../target/", &format!("{}/", target.display()))
        .replace(
            "cargo build --release",
            &format!(
                "cargo build --manifest-path '{}' --target-dir '{}' --release",
                repo().join("Cargo.toml").display(),
                target.display()
            ),
        )
        .replace("../../policies/baseline/", &baseline.display().to_string())
}

/// `cairn build --json` in `s`, which must succeed; returns the JSON.
fn build(s: &Scratch) -> Value {
    let built = run_in(s.path(), &["build", "--json"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    let json: Value = serde_json::from_str(&built.stdout).unwrap();
    assert_eq!(json["ok"], true);
    json
}

/// `cairn run --json` in `s` as `user`, which must succeed and verify;
/// returns the JSON.
fn run_verified(s: &Scratch, user: &str) -> Value {
    let run = run_in(s.path(), &["run", "--as", user, "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let verified = run_in(
        s.path(),
        &["audit", "verify", "--key", ".cairn/keys/audit.pub"],
    );
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

/// `task`'s output `name` in the JSON summary of a run.
fn output_of<'a>(run: &'a Value, task: &str, name: &str) -> &'a Value {
    let task = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == task)
        .unwrap();
    task["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap()
}

/// The content of `task`'s output `name` in the JSON summary of a run in `s`.
fn output(s: &Scratch, run: &Value, task: &str, name: &str) -> String {
    let out = output_of(run, task, name);
    std::fs::read_to_string(s.path().join(out["path"].as_str().unwrap())).unwrap()
}

/// The `data-flow` records of the audit log in `s`.
fn data_flows(s: &Scratch) -> Vec<Value> {
    let flows = run_in(
        s.path(),
        &["audit", "show", "--kind", "data-flow", "--json"],
    );
    assert_eq!(flows.code, 0, "{}", flows.stderr);
    flows
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn etl_builds_plans_runs_and_verifies_without_leaking_pii() {
    let s = copy_example("etl", &buildable);
    let built = build(&s);
    assert_eq!(built["steps"].as_array().unwrap().len(), 1, "{built:#}");
    assert_eq!(
        built["steps"][0]["tasks"],
        serde_json::json!(["extract", "validate", "anonymize", "aggregate", "report"])
    );

    let plan = run_in(s.path(), &["plan", "--as", "alice", "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let declassified = plan["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["action"] == "declassify")
        .unwrap();
    assert_eq!(declassified["task"], "anonymize");
    assert_eq!(declassified["decision"], "allow");
    assert_eq!(
        declassified["policies"],
        serde_json::json!(["anonymizer-declassifies-pii"])
    );

    // The table shows each label drop with its task, after its inputs.
    let table = run_in(s.path(), &["plan", "--as", "alice"]).stdout;
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("anonymize"))
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert_contains(rows[1], "data extract.customers [pii]");
    assert_contains(rows[2], "drop label `pii` from anonymize.segments");

    // The nights its schedule missed: planned, then run, as the data
    // team; marketing may not.
    let backfill = |who: &str, extra: &[&str]| {
        let mut args = vec![
            "backfill",
            ".",
            "--schedule",
            "nightly",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-02",
            "--as",
            who,
            "--json",
            "--state-dir",
            "nights",
        ];
        args.extend_from_slice(extra);
        run_in(s.path(), &args)
    };
    let dry = backfill("alice", &["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let planned = dry.json();
    let actions: Vec<&str> = planned["nominal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["run", "run"], "{planned:#}");
    assert_eq!(backfill("mallory", &["--dry-run"]).code, 3);
    let filled = backfill("alice", &["--max-active", "2"]);
    assert_eq!(filled.code, 0, "{}", filled.stderr);
    assert_eq!(filled.json()["succeeded"], 2);
    let verified = run_in(
        s.path(),
        &[
            "audit",
            "verify",
            "nights/audit/log.jsonl",
            "--key",
            "nights/keys/audit.pub",
        ],
    );
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);

    let run = run_verified(&s, "alice");
    assert_eq!(run["status"], "succeeded");
    // The figures, counted here independently from the shipped CSV.
    let csv = std::fs::read_to_string(repo().join("examples/etl/data/orders.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let valid: Vec<&Vec<&str>> = rows
        .iter()
        .filter(|r| {
            let month: u32 = r[1].get(5..7).unwrap().parse().unwrap();
            (1..=12).contains(&month)
                && !r[11].is_empty()
                && r[12].parse::<i64>().unwrap() > 0
                && ["EUR", "SEK"].contains(&r[14])
        })
        .collect();
    let customers: BTreeSet<&str> = valid.iter().map(|r| r[2]).collect();
    let report = output(&s, &run, "report", "report");
    assert_contains(
        &report,
        &format!(
            "{} valid orders from {} customers",
            valid.len(),
            customers.len()
        ),
    );
    assert_contains(
        &report,
        &format!("## Rejected orders ({})", rows.len() - valid.len()),
    );
    // Nothing downstream of the anonymizer holds a name, email or phone.
    for (task, name) in [
        ("anonymize", "segments"),
        ("aggregate", "totals"),
        ("report", "report"),
    ] {
        let data = output(&s, &run, task, name);
        for row in rows.iter().take(50) {
            for personal in [row[3], row[4], row[5], row[6]] {
                assert!(!data.contains(personal), "{task}.{name} holds `{personal}`");
            }
        }
    }
    // The audit trail records the labelled flow into the anonymizer.
    let into_anonymize: Vec<Value> = data_flows(&s)
        .into_iter()
        .filter(|r| r["task"] == "anonymize")
        .collect();
    assert_eq!(into_anonymize.len(), 1, "{into_anonymize:#?}");
    assert_eq!(into_anonymize[0]["from"], "extract.customers");
    assert_eq!(into_anonymize[0]["labels"], serde_json::json!(["pii"]));

    etl_provenance_says_what_an_auditor_needs(&s, &run);
}

/// The SLSA provenance of an ETL run: the report as its one subject, the
/// component by digest under a content URI, the mounted source data by the
/// `dirHash` the shell computes, intermediate outputs as byproducts; and a
/// strict parse by the in-toto project's own Python bindings.
fn etl_provenance_says_what_an_auditor_needs(s: &Scratch, run: &Value) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let id = run["run"].as_str().unwrap();
    let exported = run_in(s.path(), &["audit", "export", id, "--out", "bundle"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let envelope: Value = serde_json::from_slice(
        &std::fs::read(s.path().join("bundle/provenance.dsse.json")).unwrap(),
    )
    .unwrap();
    let payload = b64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    let digest_of = |task: &str, name: &str| {
        let out = output_of(run, task, name)["sha256"].as_str().unwrap();
        out.trim_start_matches("sha256:").to_owned()
    };
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // Final outputs are the subjects; what the run made and used itself
    // is a byproduct, never a dependency.
    assert_eq!(names(&statement["subject"]), ["report.report"]);
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest_of("report", "report")
    );
    let details = &statement["predicate"]["runDetails"];
    assert_eq!(
        names(&details["byproducts"]),
        [
            "aggregate.totals",
            "anonymize.segments",
            "extract.customers",
            "extract.orders",
            "validate.rejects",
            "validate.valid",
            "status"
        ]
    );
    let definition = &statement["predicate"]["buildDefinition"];
    assert_eq!(definition["buildType"], "https://cairn.dev/workflow-run/v1");
    assert_eq!(definition["externalParameters"]["workflow"], "etl");
    assert_eq!(definition["externalParameters"]["user"], "alice");
    assert!(definition["externalParameters"]["parameters"].is_object());
    let dependencies = definition["resolvedDependencies"].as_array().unwrap();
    assert_eq!(dependencies.len(), 2, "{dependencies:#?}");
    let component = &dependencies[0];
    assert_eq!(component["name"], "etl_tasks.wasm");
    let wasm = std::fs::read(guests_target().join("wasm32-wasip2/release/etl_tasks.wasm")).unwrap();
    let hex = cairn::digest::Digest::of(&wasm).to_string();
    assert_eq!(component["digest"]["sha256"], hex);
    // RFC 6920: ni:///sha-256;<base64url of the digest, unpadded>.
    let raw = cairn::digest::Digest::of(&wasm);
    assert_eq!(
        component["uri"],
        format!(
            "ni:///sha-256;{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_bytes())
        )
    );
    assert_eq!(
        component["annotations"]["tasks"].as_array().unwrap().len(),
        5
    );
    let mount = &dependencies[1];
    assert_eq!(mount["name"], "extract:/data");
    assert_eq!(mount["annotations"]["mode"], "ro");
    // in-toto's definition of dirHash, as a shell computes it.
    let shell = std::process::Command::new("sh")
        .arg("-c")
        .arg("find . -type f | cut -c3- | LC_ALL=C sort | xargs -r sha256sum | sha256sum | cut -f1 -d' '")
        .current_dir(s.path().join("data"))
        .output()
        .unwrap();
    assert!(shell.status.success());
    assert_eq!(
        mount["digest"]["dirHash"],
        String::from_utf8(shell.stdout).unwrap().trim()
    );

    let test = "etl_builds_plans_runs_and_verifies_without_leaking_pii";
    let Some(python) =
        crate::toolchains::python_with(test, "in_toto_attestation", "in-toto-attestation==0.9.3")
    else {
        return;
    };
    std::fs::write(s.path().join("statement.json"), &payload).unwrap();
    let strict = crate::support::tool_in(s.path(), &python, &["-c", STRICT_PROVENANCE]);
    assert_eq!(
        String::from_utf8_lossy(&strict).trim(),
        "ok 1 subjects, 2 dependencies, 7 byproducts"
    );
}

/// A strict parse of `statement.json` with the in-toto project's Python
/// bindings: unknown fields anywhere are errors, every resource
/// descriptor is validated, and the predicate is SLSA Provenance v1.
const STRICT_PROVENANCE: &str = r#"
import json
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
text = open("statement.json").read()
statement = json_format.Parse(text, statement_pb2.Statement())
Statement.copy_from_pb(statement).validate()
assert statement.predicate_type == "https://slsa.dev/provenance/v1"
provenance = json_format.ParseDict(json.loads(text)["predicate"], provenance_pb2.Provenance())
definition, details = provenance.build_definition, provenance.run_details
assert definition.build_type and details.builder.id
for rd in list(definition.resolved_dependencies) + list(details.byproducts):
    ResourceDescriptor.copy_from_pb(rd).validate()
print(f"ok {len(statement.subject)} subjects, {len(definition.resolved_dependencies)} dependencies, {len(details.byproducts)} byproducts")
"#;

#[test]
fn etl_variant_sending_pii_to_the_report_is_refused_naming_the_rule() {
    let s = copy_example("etl", &buildable);
    build(&s);
    let plan = run_in(s.path(), &["plan", "leaky-report.toml", "--as", "alice"]);
    assert_eq!(plan.code, 3, "{}{}", plan.stdout, plan.stderr);
    let denied: Vec<&str> = plan.stdout.lines().filter(|l| l.contains("DENY")).collect();
    assert_eq!(denied.len(), 1, "{}", plan.stdout);
    assert_contains(denied[0], "report");
    assert_contains(denied[0], "extract.customers [pii]");
    assert_contains(denied[0], "pii-only-into-the-anonymizer");

    // `cairn run` refuses it before any task starts, and records why.
    let run = run_in(s.path(), &["run", "leaky-report.toml", "--as", "alice"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_contains(&run.stdout, "pii-only-into-the-anonymizer");
    assert!(!run.stderr.contains("start extract"), "{}", run.stderr);
    let verified = run_in(
        s.path(),
        &["audit", "verify", "--key", ".cairn/keys/audit.pub"],
    );
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);

    // Someone outside the data team cannot run even the clean pipeline.
    let plan = run_in(s.path(), &["plan", "--as", "mallory"]);
    assert_eq!(plan.code, 3, "{}{}", plan.stdout, plan.stderr);
}

#[test]
fn etl_policies_pass_their_tests() {
    let tested = run_in(&repo(), &["policy", "test", "examples/etl/policy-tests/"]);
    assert_eq!(tested.code, 0, "{}{}", tested.stdout, tested.stderr);
}

#[test]
fn polyglot_runs_a_c_task_between_rust_tasks() {
    if !crate::toolchains::clang_for_wasm("polyglot_runs_a_c_task_between_rust_tasks") {
        return;
    }
    let s = copy_example("polyglot", &buildable);
    let built = build(&s);
    let steps = built["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{built:#}");
    assert_eq!(steps[1]["tasks"], serde_json::json!(["count"]));
    // The C task is a real component (not a core module).
    let c = std::fs::read(s.path().join("out/count.wasm")).unwrap();
    assert_eq!(&c[..8], b"\0asm\x0d\0\x01\0", "not a component");

    let plan = run_in(s.path(), &["plan", "--as", "alice"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    let run = run_verified(&s, "alice");

    // The C task's counts, checked against counting here.
    let mut counts = BTreeMap::<String, u64>::new();
    for entry in std::fs::read_dir(repo().join("examples/polyglot/texts")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for word in text
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .map(|w| w.trim_matches('\''))
            .filter(|w| !w.is_empty())
        {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
    }
    let total: u64 = counts.values().sum();
    let (top, n) = counts
        .iter()
        .max_by_key(|(w, n)| (**n, std::cmp::Reverse(*w)))
        .unwrap();
    let c_counts = output(&s, &run, "count", "counts");
    assert_eq!(
        c_counts.lines().next().unwrap(),
        format!("#total\t{total}\tdistinct\t{}", counts.len())
    );
    assert_eq!(c_counts.lines().nth(1).unwrap(), format!("{n}\t{top}"));
    assert_eq!(c_counts.lines().count(), 16, "--top 15 and the total line");
    let summary = output(&s, &run, "summarize", "summary");
    assert_contains(&summary, &format!("| {top} | {n} |"));
    // What the C program printed is in the run's logs.
    let run_id = run["run"].as_str().unwrap();
    let logs = run_in(s.path(), &["runs", "logs", run_id]);
    assert_contains(&logs.stdout, &format!("counted {total} words"));
}

/// One feeder of the languages example's readings: its meters and each
/// hour's total kWh.
#[derive(Default)]
struct Feeder {
    meters: BTreeSet<String>,
    hours: BTreeMap<String, f64>,
}

/// The languages example's readings as its tasks should read them, worked
/// out here from the shipped CSV: each feeder's, and how many rows must be
/// kept and refused.
fn meter_readings() -> (BTreeMap<String, Feeder>, usize, usize) {
    let dir = repo().join("examples/languages/data");
    let feeders: BTreeSet<String> = std::fs::read_to_string(dir.join("feeders.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    let mut seen = BTreeSet::new();
    let mut by_feeder = BTreeMap::<String, Feeder>::new();
    let (mut kept, mut refused) = (0, 0);
    for line in std::fs::read_to_string(dir.join("readings.csv"))
        .unwrap()
        .lines()
        .skip(1)
    {
        let [meter, feeder, time, kwh] = line.split(',').collect::<Vec<_>>()[..] else {
            panic!("{line}");
        };
        let hour: u32 = time[11..13].parse().unwrap();
        let ok = feeders.contains(feeder)
            && hour < 24
            && &time[14..] == "00:00Z"
            && kwh.parse::<f64>().is_ok_and(|k| k >= 0.0)
            && seen.insert((meter, time));
        if !ok {
            refused += 1;
            continue;
        }
        kept += 1;
        let f = by_feeder.entry(feeder.to_owned()).or_default();
        f.meters.insert(meter.to_owned());
        *f.hours.entry(time.to_owned()).or_default() += kwh.parse::<f64>().unwrap();
    }
    (by_feeder, kept, refused)
}

#[test]
fn languages_runs_python_javascript_and_rust_tasks_on_labelled_data() {
    const TEST: &str = "languages_runs_python_javascript_and_rust_tasks_on_labelled_data";
    if crate::toolchains::componentize_py(TEST).is_none()
        || crate::toolchains::componentize_js(TEST).is_none()
    {
        return;
    }
    // The build scripts run from the repository (componentize-py and -js
    // read the SDKs and `wit/` there); their outputs go to the guest target.
    let here = repo().join("examples/languages");
    let s = copy_example("languages", &|text| {
        buildable(text).replace("sh build.sh", &format!("sh {}/build.sh", here.display()))
    });
    let built = build(&s);
    let steps = built["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{built:#}");
    for (step, task) in steps.iter().zip(["ingest", "profile", "report"]) {
        assert_eq!(step["tasks"], serde_json::json!([task]), "{built:#}");
        let path = step["components"][0]["path"].as_str().unwrap();
        let wasm = std::fs::read(s.path().join(path)).unwrap();
        assert_eq!(&wasm[..8], b"\0asm\x0d\0\x01\0", "{task}: not a component");
    }

    let plan = run_in(s.path(), &["plan", "--as", "alice", "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let declassified: Vec<&Value> = plan["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "declassify")
        .collect();
    assert_eq!(declassified.len(), 1, "{plan:#}");
    assert_eq!(declassified[0]["task"], "profile");
    assert_eq!(
        declassified[0]["policies"],
        serde_json::json!(["profile-declassifies-readings"])
    );

    let run = run_verified(&s, "alice");
    assert_eq!(run["status"], "succeeded");

    // What the JavaScript task computed from what the Python task parsed,
    // checked against the CSV worked out here.
    let (feeders, kept, refused) = meter_readings();
    let rejects: Value = serde_json::from_str(&output(&s, &run, "ingest", "rejects")).unwrap();
    assert_eq!(rejects.as_array().unwrap().len(), refused, "{rejects:#}");
    let load: Value = serde_json::from_str(&output(&s, &run, "profile", "load")).unwrap();
    let report = output(&s, &run, "report", "report");
    assert_contains(&report, &format!("## Rows refused ({refused})"));
    let mut shown = 0;
    for (feeder, Feeder { meters, hours }) in &feeders {
        let f = &load[feeder];
        if meters.len() < 3 {
            assert_eq!(f["suppressed"], true, "{feeder}: {f:#}");
            assert!(
                f.get("hours").is_none(),
                "{feeder} suppressed but its hours are there"
            );
            assert_contains(&report, &format!("| {feeder} | — | suppressed"));
            continue;
        }
        shown += 1;
        assert_eq!(f["meters"], meters.len(), "{feeder}");
        let (peak_time, peak) = hours.iter().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        assert_eq!(f["peak"]["time"], peak_time.as_str(), "{feeder}");
        assert!(
            (f["peak"]["kw"].as_f64().unwrap() - peak).abs() < 1e-3,
            "{feeder}: {f:#}"
        );
        let capacity = f["capacity_kw"].as_f64().unwrap();
        let over: Vec<&str> = hours
            .iter()
            .filter(|(_, kw)| **kw > capacity)
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(f["over_capacity"], serde_json::json!(over), "{feeder}");
        let shown_peak = f["peak"]["kw"].as_f64().unwrap();
        assert_contains(
            &report,
            &format!("| {feeder} | {} | {shown_peak:.2} |", meters.len()),
        );
    }
    assert!(
        shown >= 2 && shown < feeders.len(),
        "the data should show and suppress feeders"
    );
    // No meter id leaves the task that may see them.
    for (task, name) in [
        ("profile", "load"),
        ("report", "report"),
        ("ingest", "rejects"),
    ] {
        let data = output(&s, &run, task, name);
        assert!(!data.contains("M-"), "{task}.{name} names a meter");
    }

    // The audit trail records the labelled flow into the JavaScript task;
    // each language's log line is in the run's logs.
    let labelled: Vec<Value> = data_flows(&s)
        .into_iter()
        .filter(|r| r["labels"] == serde_json::json!(["pii"]))
        .collect();
    assert_eq!(labelled.len(), 1, "{labelled:#?}");
    assert_eq!(labelled[0]["task"], "profile");
    assert_eq!(labelled[0]["from"], "ingest.readings");
    let logs = run_in(s.path(), &["runs", "logs", run["run"].as_str().unwrap()]);
    for line in [
        format!("python: {kept} readings"),
        format!("javascript: {shown} feeders profiled"),
        format!("rust: reported {} feeders", feeders.len()),
    ] {
        assert_contains(&logs.stdout, &line);
    }

    // Whoever is outside the team cannot run it; the policy tests pass.
    let plan = run_in(s.path(), &["plan", "--as", "mallory"]);
    assert_eq!(plan.code, 3, "{}{}", plan.stdout, plan.stderr);
    let tested = run_in(
        &repo(),
        &["policy", "test", "examples/languages/policy-tests/"],
    );
    assert_eq!(tested.code, 0, "{}{}", tested.stdout, tested.stderr);
}

#[test]
fn hello_builds_plans_runs_and_verifies() {
    let s = copy_example("hello", &buildable);
    let built = build(&s);
    assert_eq!(built["steps"][0]["tasks"], serde_json::json!(["greet"]));
    let plan = run_in(s.path(), &["plan", "--as", "demo"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    let run = run_verified(&s, "demo");
    let name = std::fs::read_to_string(s.path().join("name.txt")).unwrap();
    assert_eq!(
        output(&s, &run, "greet", "greeting"),
        format!("Hello, {}!\n", name.trim())
    );
}

/// `cairn approve|reject RUN approve-release --as USER ARGS...` in `s`.
fn decide(s: &Scratch, verdict: &str, run: &str, user: &str, args: &[&str]) -> Run {
    let mut all = vec![verdict, run, "approve-release", "--as", user];
    all.extend_from_slice(args);
    run_in(s.path(), &all)
}

/// `cairn resume RUN --json` in `s`, with the deploy token when `token`.
fn resume(s: &Scratch, run: &str, token: bool) -> Run {
    let mut cmd = cairn();
    cmd.current_dir(s.path()).args(["resume", run, "--json"]);
    if token {
        cmd.env("CAIRN_SECRET_DEPLOY_TOKEN", DEPLOY_TOKEN);
    }
    let out = cmd.output().unwrap();
    let run = Run::from(out);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

/// Start the release (`release.toml`) as alice, without the deploy token:
/// the run stops at the gate (exit 4); returns the run id and the gate's bound.
fn start_release(s: &Scratch, env: &[(&str, &str)]) -> (Run, String, String) {
    let out = cairn()
        .current_dir(s.path())
        .envs(env.iter().copied())
        .args(["run", "release.toml", "--as", "alice", "--json"])
        .output()
        .unwrap();
    let run = Run::from(out);
    if !env.is_empty() {
        return (run, String::new(), String::new());
    }
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(json["status"], "waiting");
    let gate = &json["waiting"][0];
    assert_eq!(gate["gate"], "approve-release");
    assert_eq!(gate["required"], 2);
    assert_eq!(gate["gated"], serde_json::json!(["deploy"]));
    assert_contains(&run.stderr, "cairn approve ");
    let id = json["run"].as_str().unwrap().to_owned();
    let bound = gate["bound"].as_str().unwrap().to_owned();
    (run, id, bound)
}

#[test]
fn a_release_waits_for_two_release_managers_and_deploys_what_they_approved() {
    let api = Api::start(false);
    let s = cicd(&api);
    // No deploy token yet: what is behind the gate is not read to start.
    let (_, run, bound) = start_release(&s, &[]);
    assert!(api.calls().is_empty());
    crate::support::assert_verifies(s.path());

    // Refused, recorded, not counted (exit 3), each saying why.
    for (user, args, why) in [
        ("alice", &[][..], "alice started run"),
        ("bob", &[][..], "policy does not allow bob to approve"),
        (
            "carol",
            &["--bound", "sha256:0000"][..],
            "the gate now binds",
        ),
    ] {
        let refused = decide(&s, "approve", &run, user, args);
        assert_eq!(refused.code, 3, "{user}: {}", refused.stderr);
        assert_contains(&refused.stderr, why);
        assert_contains(&refused.stderr, "not counted");
    }
    let carol = decide(&s, "approve", &run, "carol", &["--comment", "CHG-1234"]);
    assert_eq!(carol.code, 0, "{}", carol.stderr);
    assert_contains(&carol.stderr, "1 of 2");
    let twice = decide(&s, "approve", &run, "carol", &[]);
    assert_eq!(twice.code, 3, "{}", twice.stderr);
    assert_contains(&twice.stderr, "one person counts once");

    // `cairn runs show` says what the run waits for.
    let shown = run_in(s.path(), &["runs", "show", &run, "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let waiting = &shown.json()["waiting"][0];
    assert_eq!(waiting["gate"], "approve-release");
    assert_eq!(waiting["approvals"], serde_json::json!(["carol"]));
    assert_eq!(waiting["bound"], bound.as_str());
    let shown = run_in(s.path(), &["runs", "show", &run]);
    assert_contains(&shown.stdout, "waiting for approval: 1 of 2 (carol)");

    // One approval is not enough: the run waits on.
    let early = resume(&s, &run, true);
    assert_eq!(early.code, 4, "{}", early.stderr);
    assert!(api.calls().is_empty());

    let dave = decide(&s, "approve", &run, "dave", &["--bound", &bound, "--json"]);
    assert_eq!(dave.code, 0, "{}", dave.stderr);
    assert_eq!(
        dave.json()["approvals"],
        serde_json::json!(["carol", "dave"])
    );
    let done = resume(&s, &run, true);
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(api.calls(), ["POST /v1/production/deployments -> 201"]);
    crate::support::assert_verifies(s.path());

    // The log tells who decided what, and whether it counted.
    let records = crate::support::records(s.path(), &run);
    let approvals: Vec<String> = records
        .iter()
        .filter(|r| r["kind"] == "approval")
        .map(|r| {
            format!(
                "{} {} {}",
                r["approver"].as_str().unwrap(),
                r["decision"].as_str().unwrap(),
                r["counted"]
            )
        })
        .collect();
    assert_eq!(
        approvals,
        [
            "alice deny false",
            "bob deny false",
            "carol allow false",
            "carol allow true",
            "carol allow false",
            "dave allow true"
        ]
    );
    let commented = records
        .iter()
        .find(|r| r["kind"] == "approval" && r["counted"] == true)
        .unwrap();
    assert_eq!(
        commented["comment_sha256"],
        cairn::audit::verify::sha256_tag(b"CHG-1234")
    );
    let closed: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "gate-closed")
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["result"], "approved");
    assert_eq!(closed[0]["by"], serde_json::json!(["carol", "dave"]));
    let gate_closed = records
        .iter()
        .position(|r| r["kind"] == "gate-closed")
        .unwrap();
    let deploy_started = records
        .iter()
        .position(|r| r["kind"] == "task-started" && r["task"] == "deploy")
        .unwrap();
    assert!(gate_closed < deploy_started);
}

#[test]
fn a_rejected_release_does_not_deploy_and_the_gate_is_closed_for_good() {
    let api = Api::start(false);
    let s = cicd(&api);
    let (_, run, _) = start_release(&s, &[]);
    let carol = decide(&s, "approve", &run, "carol", &[]);
    assert_eq!(carol.code, 0, "{}", carol.stderr);
    let dave = decide(
        &s,
        "reject",
        &run,
        "dave",
        &["--comment", "not in the freeze"],
    );
    assert_eq!(dave.code, 0, "{}", dave.stderr);
    assert_contains(&dave.stderr, "rejected");
    let done = resume(&s, &run, true);
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert_contains(&status(&done, "approve-release"), "rejected by dave");
    assert_contains(
        &status(&done, "deploy"),
        "upstream `approve-release` failed",
    );
    assert!(api.calls().is_empty());
    // Over: no more decisions count.
    let late = decide(&s, "approve", &run, "carol", &[]);
    assert_eq!(late.code, 3, "{}", late.stderr);
    assert_contains(&late.stderr, "is not waiting at `approve-release`");
    crate::support::assert_verifies(s.path());
}

#[test]
fn a_release_killed_at_its_gate_waits_there_after_and_goes_on_once_approved() {
    let api = Api::start(false);
    let s = cicd(&api);
    // Killed (as by kill -9) right after the gate opened.
    let (killed, _, _) = start_release(&s, &[("CAIRN_CRASH_AT", "after-gate-opened")]);
    assert_ne!(killed.code, 0);
    assert_ne!(killed.code, 4);
    let started = run_in(
        s.path(),
        &["audit", "show", "--kind", "gate-opened", "--json"],
    );
    let opened: Value = serde_json::from_str(started.stdout.lines().next().unwrap()).unwrap();
    let run = opened["run"].as_str().unwrap().to_owned();
    for user in ["carol", "dave"] {
        let approved = decide(&s, "approve", &run, user, &[]);
        assert_eq!(approved.code, 0, "{user}: {}", approved.stderr);
    }
    let done = resume(&s, &run, true);
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(api.calls(), ["POST /v1/production/deployments -> 201"]);
    // The gate opened once: the resumed run found it open, covering the same.
    let records = crate::support::records(s.path(), &run);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["kind"] == "gate-opened")
            .count(),
        1
    );
    crate::support::assert_verifies(s.path());
}
