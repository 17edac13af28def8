//! The examples, run end to end as users run them: plan, run, audit verify.

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
                if !matches!(entry.file_name().to_str(), Some("tasks" | "deploy-api")) {
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

fn cicd(api: &Api, target: &str) -> Scratch {
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
            .replace("TARGET = \"staging\"", &format!("TARGET = \"{target}\""))
    })
}

fn run_as(s: &Scratch, user: &str) -> Run {
    let out = cairn()
        .current_dir(s.path())
        .env("CAIRN_SECRET_DEPLOY_TOKEN", DEPLOY_TOKEN)
        .args(["run", "--as", user, "--json"])
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
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
    let s = cicd(&api, "staging");
    let plan = run_in(s.path(), &["plan", "--as", "bob"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);

    let run = run_as(&s, "bob");
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
    let s = cicd(&api, "staging");
    let run = run_as(&s, "bob");
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
    let s = cicd(&api, "production");
    let run = run_as(&s, "bob");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_contains(&status(&run, "deploy"), "denied by the host");
    // Nothing reached the API: not the deploy, not the rollback.
    assert!(api.calls().is_empty(), "{:?}", api.calls());
    let audited = requests(&s);
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(audited[0].starts_with("deploy POST /v1/production/deployments null"));

    let run = run_as(&s, "alice");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(api.calls(), ["POST /v1/production/deployments -> 201"]);
}

#[test]
fn cicd_policies_pass_their_tests() {
    let tested = run_in(&repo(), &["policy", "test", "examples/cicd/policy-tests/"]);
    assert_eq!(tested.code, 0, "{}{}", tested.stdout, tested.stderr);
}
