//! Tasks in Python and JavaScript: each SDK's conformance task, built by
//! the real toolchain (componentize-py, componentize-js) with no special
//! flags, runs under `cairn exec` with the same isolation and limits as a
//! Rust task; and each SDK's own unit tests pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Scratch, exec_json, outcome_kind};
use crate::toolchains;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Run `tool args` in `dir`, panicking with its output if it fails.
fn build(tool: &Path, dir: &Path, args: &[&str]) {
    crate::support::tool_in(dir, tool, args);
}

/// `cairn exec TASK --env STEP=step ARGS` in a fresh scratch folder.
fn step(task: &Path, step: &str, args: &[&str]) -> (Scratch, Value) {
    let s = Scratch::new();
    s.write("a", "hello");
    s.write("b", "world");
    let env = format!("STEP={step}");
    let mut all = vec!["--env", &env, "--output-dir", "out"];
    all.extend_from_slice(args);
    let (_, json) = exec_json(s.path(), task.to_str().unwrap(), &all);
    (s, json)
}

fn read(s: &Scratch, output: &str) -> String {
    std::fs::read_to_string(s.path().join("out").join(output)).unwrap_or_default()
}

fn logs(json: &Value) -> String {
    json["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {}\n",
                l["level"].as_str().unwrap(),
                l["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// The scenarios both SDKs share: inputs and outputs, logs, secrets kept
/// out of everything captured, refusals as typed errors, failures.
fn shared_scenarios(task: &Path, lang: &str) {
    let (s, json) = step(task, "echo", &["--input", "a=a", "--input", "b=b"]);
    assert_eq!(outcome_kind(&json), "success", "{json:#}");
    assert_eq!(
        (read(&s, "a"), read(&s, "b")),
        ("HELLO".into(), "WORLD".into())
    );
    assert!(
        logs(&json).contains(&format!("info {lang} echo 2 inputs")),
        "{json:#}"
    );

    let secret = "tok-123-secret";
    let file = std::env::temp_dir().join(format!("cairn-{lang}-{}", std::process::id()));
    std::fs::write(&file, secret).unwrap();
    let given = format!("token=file:{}", file.display());
    let (s, json) = step(task, "secret", &["--secret", &given]);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(outcome_kind(&json), "success", "{json:#}");
    assert_eq!(read(&s, "len"), secret.len().to_string());
    assert!(logs(&json).contains("Secret(<redacted>)"), "{json:#}");
    assert!(
        !json.to_string().contains(secret),
        "the secret leaked: {json:#}"
    );

    let (s, json) = step(task, "denied", &["--output", "caught"]);
    assert_eq!(outcome_kind(&json), "success", "{json:#}");
    assert_eq!(read(&s, "caught"), "denied");
    assert!(!s.path().join("out/nope").exists());

    let (s, json) = step(task, "missing", &[]);
    assert_eq!(outcome_kind(&json), "success", "{json:#}");
    assert_eq!(read(&s, "value"), "dflt");

    let (_, json) = step(task, "transient", &[]);
    assert_eq!(
        json["outcome"]["message"], "failed (transient): try later",
        "{json:#}"
    );
    assert_eq!(json["outcome"]["retriable"], true);
    let (_, json) = step(task, "permanent", &[]);
    assert_eq!(json["outcome"]["message"], "failed: bad data", "{json:#}");
    assert_eq!(json["outcome"]["retriable"], false);
}

#[test]
fn a_python_task_built_by_componentize_py_runs_in_the_sandbox() {
    let test = "a_python_task_built_by_componentize_py_runs_in_the_sandbox";
    let Some(tool) = toolchains::componentize_py(test) else {
        return;
    };
    let root = workspace();
    let out = tempfile::tempdir().unwrap();
    let task = out.path().join("conformance.wasm");
    build(
        &tool,
        &root,
        &[
            "-d",
            "wit",
            "-d",
            "guest-sdk/python/wit",
            "-w",
            "cairn:python/task",
            "componentize",
            "-p",
            "guest-sdk/python",
            "-p",
            "guest-sdk/python/tests/task",
            "app",
            "-o",
            task.to_str().unwrap(),
        ],
    );
    shared_scenarios(&task, "python");

    let (_, json) = step(&task, "crash", &[]);
    assert_eq!(
        json["outcome"]["message"], "failed: ValueError: boom",
        "{json:#}"
    );
    assert!(logs(&json).contains("Traceback"), "{json:#}");

    // CPython imports wasi:sockets; every way out is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = format!("PORT={}", listener.local_addr().unwrap().port());
    let (s, json) = step(&task, "socket", &["--env", &port]);
    assert_eq!(outcome_kind(&json), "success", "{json:#}");
    let caught = read(&s, "caught");
    assert!(
        !caught.contains("ESCAPED") && !caught.is_empty(),
        "{caught}"
    );
    assert!(listener.accept().is_err(), "the task connected");
}

#[test]
fn a_javascript_task_built_by_componentize_js_runs_in_the_sandbox() {
    let test = "a_javascript_task_built_by_componentize_js_runs_in_the_sandbox";
    let Some(tool) = toolchains::componentize_js(test) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let task = out.path().join("conformance.wasm");
    build(
        &tool,
        &workspace().join("guest-sdk/js"),
        &[
            "conformance/app.js",
            "-w",
            "conformance/wit",
            "-n",
            "task",
            "-o",
            task.to_str().unwrap(),
        ],
    );
    shared_scenarios(&task, "js");
    let (_, json) = step(&task, "crash", &[]);
    assert_eq!(
        json["outcome"]["message"], "failed: TypeError: boom",
        "{json:#}"
    );
}

#[test]
fn the_python_and_javascript_sdks_pass_their_unit_tests() {
    let root = workspace();
    let python = Command::new("python3")
        .current_dir(&root)
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "guest-sdk/python/tests",
            "-t",
            "guest-sdk/python",
        ])
        .output();
    match python {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => toolchains::skip("the Python SDK's unit tests", "python3", &e.to_string()),
    }
    let node = Command::new("node")
        .current_dir(&root)
        .args(["--test", "guest-sdk/js/test/"])
        .output();
    match node {
        Ok(out) => assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => toolchains::skip("the JavaScript SDK's unit tests", "node", &e.to_string()),
    }
}
