//! `cairn build` and `cairn run --build`: the manifest's build commands.

use serde_json::Value;

use crate::support::{Scratch, assert_contains, run_in};

/// A workflow of two tasks sharing one component, built by copying the
/// test task into place (and counting how often the command ran), plus a
/// task built by `other`.
fn workflow(s: &Scratch, other: &str) {
    s.policies();
    let task = cairn_tests::TASK;
    s.write(
        "workflow.toml",
        &format!(
            r#"[workflow]
name = "built"
policies = ["p/"]

[tasks.first]
component = "out/task.wasm"
build = "echo building >> runs.txt; mkdir -p out; cp '{task}' out/task.wasm; echo 'to stdout'"
outputs = ["echo"]

[tasks.second]
component = "out/task.wasm"
inputs = {{ echo = "first.echo" }}
outputs = ["echo"]

[tasks.third]
component = "out/third.wasm"
build = "{other}"
outputs = ["echo"]
"#
        ),
    );
}

#[test]
fn build_runs_each_command_once_and_reports_what_it_built() {
    let s = Scratch::new();
    workflow(&s, &format!("cp '{}' out/third.wasm", cairn_tests::TASK));
    // Components that a build makes may be missing before it; validate
    // still says so.
    assert_eq!(run_in(s.path(), &["validate"]).code, 2);

    let built = run_in(s.path(), &["build", "--json", "--cache-dir", "cache"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    // The commands' own stdout goes to stderr: stdout is the JSON alone.
    let json: Value = serde_json::from_str(&built.stdout).unwrap();
    assert_contains(&built.stderr, "to stdout");
    assert_eq!(json["ok"], true);
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["tasks"], serde_json::json!(["first", "second"]));
    assert_eq!(steps[1]["tasks"], serde_json::json!(["third"]));
    let digest = steps[0]["components"][0]["sha256"].as_str().unwrap();
    let wasm = std::fs::read(cairn_tests::TASK).unwrap();
    assert_eq!(digest, cairn::digest::Digest::of(&wasm).to_string());
    assert_eq!(
        std::fs::read_to_string(s.path().join("runs.txt")).unwrap(),
        "building\n",
        "a command shared by two tasks runs once"
    );
    assert_eq!(run_in(s.path(), &["validate"]).code, 0);

    // Each component was compiled into the cache the build was given, and
    // a run (here `exec`) loads it from there.
    let compiled = &steps[0]["components"][0]["compile"];
    assert_eq!(compiled["cache_hit"], false, "{json:#}");
    assert_contains(&built.stderr, "compiled in");
    let (_, ran) = crate::support::exec_json(
        s.path(),
        cairn_tests::TASK,
        &["--cache-dir", "cache", "--output-dir", "o"],
    );
    assert_eq!(ran["cache_hit"], true, "{ran:#}");
    let again = run_in(s.path(), &["build", "--cache-dir", "cache"]);
    assert_contains(&again.stderr, "already in the cache");
}

#[test]
fn a_failing_build_stops_at_its_command_and_starts_no_run() {
    let s = Scratch::new();
    workflow(&s, "echo 'cc: syntax error' >&2; exit 7");
    let built = run_in(s.path(), &["build", "--json"]);
    assert_eq!(built.code, 1, "{}", built.stderr);
    assert_contains(&built.stderr, "cc: syntax error");
    assert_contains(
        &built.stderr,
        "failed (exit status: 7); its output is above",
    );
    let json: Value = serde_json::from_str(&built.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["steps"][0]["status"], "ok");
    assert_eq!(json["steps"][1]["status"], "failed");

    let run = run_in(s.path(), &["run", "--build", "--as", "alice"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        !s.path().join(".cairn/audit/log.jsonl").exists(),
        "a failed build must not start a run"
    );
}

#[test]
fn a_build_that_makes_no_component_is_an_error() {
    let s = Scratch::new();
    workflow(&s, "echo 'built somewhere else'");
    let built = run_in(s.path(), &["build"]);
    assert_eq!(built.code, 1, "{}", built.stderr);
    assert_contains(
        &built.stderr,
        "`echo 'built somewhere else'` succeeded but `./out/third.wasm` does not exist",
    );
}

#[test]
fn run_build_goes_from_source_to_result() {
    let s = Scratch::new();
    workflow(&s, &format!("cp '{}' out/third.wasm", cairn_tests::TASK));
    let run = run_in(s.path(), &["run", "--build", "--as", "alice", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["status"], "succeeded");
    assert_contains(&run.stderr, "build 1/2");
}

#[test]
fn build_of_an_invalid_manifest_is_an_input_error() {
    let s = Scratch::new();
    s.write(
        "workflow.toml",
        "[workflow]\nname = \"x\"\n[tasks.a]\nbuild = 3\n",
    );
    let built = run_in(s.path(), &["build"]);
    assert_eq!(built.code, 2, "{}", built.stderr);
    assert_contains(&built.stderr, "workflow.toml:4:");
}
