//! The crash windows between a run's last writes: a process that dies
//! before the run's first record, right after `run-finished`, or after the
//! checkpoint but before the run state is written. The next command that
//! holds the state repairs it from the audit log (`cairn runs` shows the
//! truth even before that), and the log verifies, checkpoint file included.

use serde_json::Value;

use crate::support::{Scratch, assert_contains, cairn, run_in, verify_json};

/// Two tasks, the second taking the first's output.
fn workflow(s: &Scratch) {
    s.policies();
    let task = |name: &str, inputs: &str| {
        format!(
            "[tasks.{name}]\ncomponent = {:?}\nenv = {{ MODE = \"work\", NAME = \"{name}\" }}\ninputs = {{ {inputs} }}\noutputs = [\"echo\"]\n",
            cairn_tests::TASK
        )
    };
    s.write(
        "workflow.toml",
        &format!(
            "[workflow]\nname = \"pair\"\npolicies = [\"p\"]\n\n{}{}",
            task("a", ""),
            task("b", "x = \"a.echo\"")
        ),
    );
}

/// `cairn run` in `s`, dying at `point`; returns the run's id.
fn run_dying_at(s: &Scratch, point: &str) -> String {
    let out = cairn()
        .current_dir(s.path())
        .env("CAIRN_CRASH_AT", point)
        .args(["run", "--as", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "it did not die at {point}");
    let runs = run_in(s.path(), &["runs", "list", "--json"]).json();
    runs[0]["id"].as_str().unwrap().to_owned()
}

fn verify(s: &Scratch) -> (i32, Value) {
    let v = verify_json(s.path());
    (v.code, v.json())
}

fn show(s: &Scratch, run: &str) -> Value {
    let shown = run_in(s.path(), &["runs", "show", run, "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    shown.json()
}

#[test]
fn a_run_killed_right_after_it_ended_is_repaired_and_its_log_signed() {
    let s = Scratch::new();
    workflow(&s);
    let run = run_dying_at(&s, "after-run-finished");

    // Unsigned: the log ends in `run-finished`.
    let (code, report) = verify(&s);
    assert_eq!(code, 1, "{report}");
    // `cairn runs` already tells the truth, with the tasks the log records.
    let shown = show(&s, &run);
    assert_eq!(shown["run"]["status"], "succeeded", "{shown}");
    assert_eq!(shown["tasks"].as_array().unwrap().len(), 2, "{shown}");

    // Resuming repairs what can be repaired, and says the run is over.
    let resumed = run_in(s.path(), &["resume", &run]);
    assert_eq!(resumed.code, 2, "{}", resumed.stderr);
    assert_contains(&resumed.stderr, "signed the checkpoint it did not");
    assert_contains(&resumed.stderr, "already ended (succeeded)");
    let (code, report) = verify(&s);
    assert_eq!(code, 0, "{report}");
    assert!(report["held_checkpoint"].is_string(), "{report}");
}

#[test]
fn a_run_killed_before_its_state_caught_up_is_shown_as_the_log_says() {
    let s = Scratch::new();
    workflow(&s);
    let run = run_dying_at(&s, "after-checkpoint");
    let (code, report) = verify(&s);
    assert_eq!(code, 0, "{report}");
    let shown = show(&s, &run);
    assert_eq!(shown["run"]["status"], "succeeded", "{shown}");
    let tasks: Vec<&str> = shown["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["succeeded", "succeeded"], "{shown}");
    // The next run finds nothing left to repair.
    let next = run_in(s.path(), &["run", "--as", "alice"]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    assert!(!next.stderr.contains("repaired"), "{}", next.stderr);
}

#[test]
fn a_run_killed_before_it_began_is_abandoned_and_can_start_over() {
    let s = Scratch::new();
    workflow(&s);
    let run = run_dying_at(&s, "before-run-started");
    let listed = run_in(s.path(), &["runs", "list"]);
    assert_contains(&listed.stdout, "abandoned");
    assert_eq!(show(&s, &run)["run"]["status"], "abandoned");
    let resumed = run_in(s.path(), &["resume", &run, "--json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.json()["status"], "succeeded");
    assert_eq!(show(&s, &run)["run"]["status"], "succeeded");
    let (code, report) = verify(&s);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn a_run_killed_midway_is_interrupted_until_resumed() {
    let s = Scratch::new();
    workflow(&s);
    let out = cairn()
        .current_dir(s.path())
        .env("CAIRN_CRASH_AT", "after-run-finished")
        .args(["run", "--as", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None);
    // Make it a run cut off midway, as a kill while `b` ran leaves it:
    // nothing after `a` finished.
    let log = s.path().join(".cairn/audit/log.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let cut = text
        .find("\"kind\":\"task-started\",\"task\":\"b\"")
        .unwrap();
    let end = text[..cut].rfind('\n').unwrap() + 1;
    std::fs::write(&log, &text[..end]).unwrap();
    let run = run_in(s.path(), &["runs", "list", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(show(&s, &run)["run"]["status"], "interrupted");
    let resumed = run_in(s.path(), &["resume", &run, "--json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(show(&s, &run)["run"]["status"], "succeeded");
}

#[test]
fn a_forged_checkpoint_file_beside_the_log_fails_verification() {
    let s = Scratch::new();
    workflow(&s);
    let first = run_in(s.path(), &["run", "--as", "alice"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let file = s.path().join(".cairn/audit/checkpoint");
    let note = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = note.lines().map(str::to_owned).collect();
    // Claim more records than the log has.
    lines[1] = (lines[1].parse::<u64>().unwrap() + 5).to_string();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (code, report) = verify(&s);
    assert_eq!(code, 1, "{report}");
    assert_contains(
        &report["problems"].to_string(),
        "the checkpoint you hold does not verify",
    );
}
