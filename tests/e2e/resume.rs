//! `cairn resume` and caching: a run killed with SIGKILL at random moments
//! resumes to the same outputs with every task completed exactly once and
//! an audit log that verifies; resuming refuses changed inputs unless told;
//! `cache = true` tasks reuse earlier outputs, audited.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Rng, Scratch, assert_contains, assert_verifies, records, run_in};

/// Eight tasks, fan-out and fan-in: a → {b, c, f}; {b, c} → d → e;
/// {e, f} → g → h. Each sleeps `ms` and then names its inputs, so every
/// output depends on everything upstream of it.
fn diamond(s: &Scratch, ms: u32, extra: &str) {
    s.policies();
    let task = |name: &str, inputs: &[(&str, &str)]| {
        let inputs: Vec<String> = inputs
            .iter()
            .map(|(input, from)| format!("{input} = \"{from}.echo\""))
            .collect();
        format!(
            "[tasks.{name}]\ncomponent = {:?}\nenv = {{ MODE = \"work\", SLEEP_MS = \"{ms}\", NAME = \"{name}\" }}\n\
             inputs = {{ {} }}\noutputs = [\"echo\"]\n{extra}",
            cairn_tests::TASK,
            inputs.join(", ")
        )
    };
    let manifest = [
        "[workflow]\nname = \"diamond\"\npolicies = [\"p\"]\n".to_owned(),
        task("a", &[]),
        task("b", &[("x", "a")]),
        task("c", &[("x", "a")]),
        task("f", &[("x", "a")]),
        task("d", &[("l", "b"), ("r", "c")]),
        task("e", &[("x", "d")]),
        task("g", &[("l", "e"), ("r", "f")]),
        task("h", &[("x", "g")]),
    ]
    .concat();
    s.write("workflow.toml", &manifest);
}

const TASKS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

/// Each task's output digest from a `--json` summary.
fn outputs(summary: &Value) -> BTreeMap<String, String> {
    summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["task"].as_str().unwrap().to_owned(),
                t["outputs"][0]["sha256"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The ids of the runs recorded in the scratch's state (newest first).
fn runs(dir: &Path) -> Vec<String> {
    if !dir.join(".cairn/state.db").exists() {
        return Vec::new();
    }
    let list = run_in(dir, &["runs", "list", "--json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    list.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_run_killed_at_random_moments_resumes_to_the_same_result() {
    // The uninterrupted run: what every resumed run must end with.
    let reference = Scratch::new();
    diamond(&reference, 40, "");
    let started = Instant::now();
    let whole = run_in(
        reference.path(),
        &["run", "--as", "alice", "--jobs", "2", "--json"],
    );
    let whole_time = started.elapsed();
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    let expected = outputs(&whole.json());
    assert_eq!(expected.len(), 8);

    let iterations: u64 = std::env::var("CAIRN_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let (mut rng, seed) = Rng::from_env("CAIRN_CRASH_SEED");
    eprintln!("crash test: {iterations} kills, CAIRN_CRASH_SEED={seed}");
    let window = u64::try_from(whole_time.as_millis()).unwrap() + 50;
    let (mut midway, mut before, mut after) = (0, 0, 0);
    for i in 0..iterations {
        let s = Scratch::new();
        diamond(&s, 40, "");
        let mut child = crate::support::cairn()
            .current_dir(s.path())
            .args(["run", "--as", "alice", "--jobs", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = rng.below(window);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let context = format!("iteration {i} (seed {seed}), killed after {delay} ms");

        let ids = runs(s.path());
        let Some(run) = ids.first() else {
            // Killed before the run was recorded at all: nothing to resume,
            // and nothing half-written either.
            before += 1;
            let log = std::fs::read_to_string(s.path().join(".cairn/audit/log.jsonl"));
            assert!(
                !log.unwrap_or_default().contains("run-started"),
                "{context}: a run started but was not recorded"
            );
            continue;
        };
        let ended = records(s.path(), run)
            .iter()
            .any(|r| r["kind"] == "run-finished");
        let resumed = run_in(s.path(), &["resume", run, "--json"]);
        assert!(
            ended || !status.success(),
            "{context}: exit 0 without an end"
        );
        if ended {
            // It ended before the kill: there is nothing to resume.
            after += 1;
            assert_eq!(resumed.code, 2, "{context}: {}", resumed.stderr);
            assert_contains(&resumed.stderr, "already ended (succeeded)");
            assert_verifies(s.path());
            continue;
        }
        assert_eq!(resumed.code, 0, "{context}: {}", resumed.stderr);
        let summary = resumed.json();
        assert_eq!(summary["status"], "succeeded", "{context}");
        assert_eq!(outputs(&summary), expected, "{context}: different outputs");
        assert_verifies(s.path());

        // Every task completed exactly once, as the log records it.
        let records = records(s.path(), run);
        for task in TASKS {
            let completions = records
                .iter()
                .filter(|r| {
                    r["kind"] == "task-finished" && r["task"] == task && r["outcome"] == "success"
                })
                .count();
            assert_eq!(
                completions, 1,
                "{context}: task {task} completed {completions} times"
            );
        }
        if let Some(resumption) = records.iter().find(|r| r["kind"] == "run-resumed") {
            let kept = resumption["kept"].as_array().unwrap().len();
            if (1..8).contains(&kept) {
                midway += 1;
            }
        }
    }
    eprintln!(
        "crash test: {midway} resumed midway, {before} killed before the run was recorded, {after} after it ended"
    );
    // Most kills land while tasks run (the window is the run's length).
    assert!(
        midway * 3 >= iterations,
        "only {midway} of {iterations} kills landed midway (seed {seed})"
    );
}

/// Start a run of `diamond` with slow tasks and kill it once `a` has
/// finished; returns the run's id.
fn killed_midway(s: &Scratch) -> String {
    diamond(s, 300, "");
    kill_after_first_task(s, &["--jobs", "1"])
}

/// Start `cairn run --as alice ARGS` in `s`, kill it (SIGKILL) once a task
/// has finished; returns the run's id.
fn kill_after_first_task(s: &Scratch, args: &[&str]) -> String {
    let mut child = crate::support::cairn()
        .current_dir(s.path())
        .args(["run", "--as", "alice"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = s.path().join(".cairn/audit/log.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("task-finished")) {
        assert!(Instant::now() < deadline, "no task finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    runs(s.path()).remove(0)
}

#[test]
fn resume_refuses_a_changed_run_unless_told_and_records_the_changes() {
    let s = Scratch::new();
    let run = killed_midway(&s);
    let log = s.path().join(".cairn/audit/log.jsonl");

    // Changed policies and manifest: refused, naming each, log untouched.
    let rules = std::fs::read_to_string(s.path().join("p/rules.cedar")).unwrap();
    s.write("p/rules.cedar", &format!("{rules}\n// reviewed\n"));
    let manifest = std::fs::read_to_string(s.path().join("workflow.toml")).unwrap();
    s.write("workflow.toml", &format!("{manifest}\n# touched\n"));
    let before = std::fs::read(&log).unwrap();
    let refused = run_in(s.path(), &["resume", &run]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_contains(&refused.stderr, "changed since it started");
    assert_contains(&refused.stderr, "the manifest");
    assert_contains(&refused.stderr, "the policies or entities");
    assert_contains(&refused.stderr, "--allow-changes");
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "a refused resume wrote to the log"
    );

    // Told to: it goes on, keeps what was done, and records what changed.
    let resumed = run_in(s.path(), &["resume", &run, "--allow-changes", "--json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_contains(&resumed.stderr, "recorded complete");
    let records = records(s.path(), &run);
    let resumption = records.iter().find(|r| r["kind"] == "run-resumed").unwrap();
    assert_eq!(resumption["after"], "interrupted");
    assert_eq!(resumption["changed"].as_array().unwrap().len(), 2);
    assert!(
        resumption["source"]
            .as_str()
            .unwrap()
            .ends_with("# touched\n")
    );
    assert!(!resumption["kept"].as_array().unwrap().is_empty());
    assert_verifies(s.path());

    // A finished run, and an unknown one, are not resumed.
    let again = run_in(s.path(), &["resume", &run]);
    assert_eq!(again.code, 2);
    assert_contains(&again.stderr, "already ended (succeeded)");
    let unknown = run_in(s.path(), &["resume", "nope"]);
    assert_eq!(unknown.code, 2);
    assert_contains(&unknown.stderr, "cairn runs list");
}

#[test]
fn a_missing_artifact_stops_a_resume_before_it_records_anything() {
    let s = Scratch::new();
    let run = killed_midway(&s);
    let store = s.path().join(".cairn/artifacts/sha256");
    for entry in std::fs::read_dir(&store).unwrap() {
        let path = entry.unwrap().path();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[expect(
            clippy::permissions_set_readonly_false,
            reason = "a test removing the file"
        )]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        std::fs::remove_file(path).unwrap();
    }
    let log = s.path().join(".cairn/audit/log.jsonl");
    let before = std::fs::read(&log).unwrap();
    let refused = run_in(s.path(), &["resume", &run]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_contains(&refused.stderr, "is missing from the store");
    assert_eq!(std::fs::read(&log).unwrap(), before);
}

#[test]
fn cached_tasks_reuse_earlier_outputs_and_the_hit_is_audited() {
    let s = Scratch::new();
    diamond(&s, 0, "cache = true\n");
    let first = run_in(s.path(), &["run", "--as", "alice", "--json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let expected = outputs(&first.json());

    let second = run_in(s.path(), &["run", "--as", "alice", "--json"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let summary = second.json();
    assert_eq!(outputs(&summary), expected);
    for task in summary["tasks"].as_array().unwrap() {
        assert_eq!(task["attempts"], 0, "{task} ran again");
    }
    let run = summary["run"].as_str().unwrap();
    let records = records(s.path(), run);
    assert_eq!(
        records.iter().filter(|r| r["kind"] == "cache-hit").count(),
        8
    );
    assert!(!records.iter().any(|r| r["kind"] == "task-started"));
    assert_verifies(s.path());

    // A changed env is another key: `b` runs again; its output changes, so
    // everything downstream of it does too; the rest still hits.
    let manifest = std::fs::read_to_string(s.path().join("workflow.toml")).unwrap();
    s.write(
        "workflow.toml",
        &manifest.replacen("NAME = \"b\"", "NAME = \"b2\"", 1),
    );
    let third = run_in(s.path(), &["run", "--as", "alice", "--json"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    let attempts: BTreeMap<String, u64> = third.json()["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["task"].as_str().unwrap().to_owned(),
                t["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    for (task, ran) in [
        ("a", 0),
        ("b", 1),
        ("c", 0),
        ("f", 0),
        ("d", 1),
        ("e", 1),
        ("g", 1),
        ("h", 1),
    ] {
        assert_eq!(attempts[task], ran, "task {task}: {attempts:?}");
    }
    assert_verifies(s.path());
}

#[test]
fn a_cached_task_with_mounts_or_network_is_refused_at_its_line() {
    let s = Scratch::new();
    s.mkdir("data");
    s.write(
        "workflow.toml",
        &format!(
            "[workflow]\nname = \"w\"\n[tasks.a]\ncomponent = {:?}\nmounts = [{{ host = \"data\", guest = \"/data\" }}]\ncache = true\n",
            cairn_tests::TASK
        ),
    );
    let checked = run_in(s.path(), &["validate"]);
    assert_eq!(checked.code, 2, "{}", checked.stderr);
    assert_contains(
        &checked.stderr,
        "task `a` cannot be cached: it mounts host folders",
    );
    assert_contains(&checked.stderr, "workflow.toml:6:9");
}

#[test]
fn a_resumed_run_keeps_the_parameters_it_started_with() {
    let s = Scratch::new();
    s.policies();
    let task = cairn_tests::TASK;
    s.write(
        "workflow.toml",
        &format!(
            r#"[workflow]
name = "tagged"
policies = ["p"]

[params]
tag = "default"

[tasks.a]
component = {task:?}
env = {{ MODE = "work", SLEEP_MS = "300", NAME = "a-${{params.tag}}" }}
outputs = ["echo"]

[tasks.b]
component = {task:?}
env = {{ MODE = "work", SLEEP_MS = "300", NAME = "b-${{params.tag}}" }}
inputs = {{ x = "a.echo" }}
outputs = ["echo"]
"#
        ),
    );
    let run = kill_after_first_task(&s, &["--param", "tag=given"]);

    let resumed = run_in(s.path(), &["resume", &run, "--json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let summary: Value = serde_json::from_str(&resumed.stdout).unwrap();
    let b = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "b")
        .unwrap();
    let path = s.path().join(b["outputs"][0]["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        "b-given(x=a-given())"
    );
    assert_verifies(s.path());
}
