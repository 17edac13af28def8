//! Approval gates through `cairn serve`: a run stops at its gate holding
//! nothing, decisions come through the API as the token's user, and the
//! run goes on by itself once the gate is decided — or times out — also
//! across a `kill -9` of the daemon while it waits.

use serde_json::{Value, json};

use crate::serve::{Daemon, assert_log_verifies, kinds, log, status, token, workflow};
use crate::support::{Scratch, assert_contains};

/// The `pair` workflow of the service tests with a gate between `a` and
/// `b`; Bob may approve (Alice, who starts the runs, may too by policy,
/// but never counts for her own runs).
fn gated(s: &Scratch, approval: &str) {
    workflow(s, 0, 0, "");
    let text = std::fs::read_to_string(s.path().join("workflow.toml")).unwrap();
    let text = text.replace(
        "[tasks.b]",
        &format!(
            "[tasks.gate]\napproval = {approval}\nneeds = [\"a\"]\n\n[tasks.b]\nneeds = [\"gate\"]"
        ),
    );
    s.write("workflow.toml", &text);
    s.write(
        "p/approvals.cedar",
        "@id(\"people-approve\") permit (principal, action == Cairn::Action::\"approve\", resource);\n",
    );
}

fn start(d: &Daemon, alice: &str) -> String {
    let (code, started) = d.call("POST", "/v1/workflows/pair/runs", Some(alice), None);
    assert_eq!(code, 201, "{started}\n{}", d.stderr());
    started["run"].as_str().unwrap().to_owned()
}

fn decide(d: &Daemon, run: &str, verdict: &str, who: &str, body: Value) -> (u16, Value) {
    d.call(
        "POST",
        &format!("/v1/runs/{run}/tasks/gate/{verdict}"),
        Some(who),
        Some(body),
    )
}

fn task_status(run: &Value, task: &str) -> String {
    run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == task)
        .map(|t| t["status"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[test]
fn the_service_runs_past_a_gate_once_someone_else_approves_it_through_the_api() {
    let s = Scratch::new();
    gated(&s, "{ required = 1 }");
    let (alice, bob) = (token(&s, "alice"), token(&s, "bob"));
    let d = Daemon::start(&s);
    let run = start(&d, &alice);
    d.until(&run, &alice, |r| status(r) == "waiting");

    // Alice started it: never counts (403). A stale bound: 409. Not a gate: 404.
    let (code, body) = decide(&d, &run, "approve", &alice, json!({}));
    assert_eq!(code, 403, "{body}");
    assert_contains(&body.to_string(), "cannot decide its approvals");
    let (code, body) = decide(&d, &run, "approve", &bob, json!({ "bound": "sha256:00" }));
    assert_eq!(code, 409, "{body}");
    let (code, body) = d.call(
        "POST",
        &format!("/v1/runs/{run}/tasks/b/approve"),
        Some(&bob),
        None,
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = decide(&d, &run, "approve", &bob, json!({ "comment": 7 }));
    assert_eq!(code, 400, "{body}");

    let (code, body) = decide(
        &d,
        &run,
        "approve",
        &bob,
        json!({ "comment": "looks right" }),
    );
    assert_eq!(code, 200, "{body}\n{}", d.stderr());
    assert_eq!(body["approvals"], json!(["bob"]));
    // The run goes on by itself.
    let done = d.until(&run, &alice, |r| status(r) == "succeeded");
    assert_eq!(task_status(&done, "b"), "succeeded");

    let records = log(&s);
    let approvals: Vec<String> = kinds(&records, &run, "approval")
        .iter()
        .map(|r| format!("{} {}", r["approver"].as_str().unwrap(), r["counted"]))
        .collect();
    assert_eq!(approvals, ["alice false", "bob false", "bob true"]);
    assert_eq!(
        kinds(&records, &run, "gate-closed")[0]["by"],
        json!(["bob"])
    );
    let _ = d.term();
    assert_log_verifies(&s);
}

#[test]
fn a_gate_waits_across_a_kill_9_of_the_daemon_and_an_approval_after_it_wakes_the_run() {
    let s = Scratch::new();
    gated(&s, "{ required = 1 }");
    let (alice, bob) = (token(&s, "alice"), token(&s, "bob"));
    let d = Daemon::start(&s);
    let run = start(&d, &alice);
    d.until(&run, &alice, |r| status(r) == "waiting");
    let _ = d.kill();

    // Back up: still waiting (nothing re-run), and an approval wakes it.
    let d = Daemon::start(&s);
    let shown = d.until(&run, &alice, |r| status(r) == "waiting");
    assert_eq!(task_status(&shown, "a"), "succeeded");
    let (code, body) = decide(&d, &run, "approve", &bob, json!({}));
    assert_eq!(code, 200, "{body}\n{}", d.stderr());
    d.until(&run, &alice, |r| status(r) == "succeeded");
    let records = log(&s);
    assert_eq!(
        kinds(&records, &run, "task-started")
            .iter()
            .filter(|r| r["task"] == "a")
            .count(),
        1
    );
    let _ = d.term();
    assert_log_verifies(&s);
}

#[test]
fn a_gate_nobody_decides_times_out_as_its_manifest_says_never_approved() {
    let s = Scratch::new();
    gated(
        &s,
        "{ required = 1, timeout = \"1s\", on_timeout = \"skip\" }",
    );
    let alice = token(&s, "alice");
    let d = Daemon::start(&s);
    let run = start(&d, &alice);
    // The service wakes the run at the deadline, by itself.
    let done = d.until(&run, &alice, |r| status(r) == "succeeded");
    assert_eq!(task_status(&done, "gate"), "skipped");
    assert_eq!(task_status(&done, "b"), "skipped");
    let records = log(&s);
    assert_eq!(
        kinds(&records, &run, "gate-closed")[0]["result"],
        "timed-out"
    );
    let _ = d.term();
    assert_log_verifies(&s);
}
