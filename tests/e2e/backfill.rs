//! Backfills with the real binary: here (`cairn backfill PATH`) and in the
//! real daemon. Each nominal time runs once whatever is asked again; the
//! nominal time reaches the run as a parameter; a bad range is a usage
//! error that records nothing; policy decides who may; a cancel stops
//! submitting and stops the runs under way; a `kill -9` mid-backfill loses
//! nothing and runs nothing twice; the log verifies throughout.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::{Daemon, assert_log_verifies, kinds, log, token, workflow};
use crate::support::{Scratch, assert_contains, run_in};

/// `pair` (see [`workflow`]) with a daily schedule whose runs get their
/// day from the nominal time; `a` takes `a_ms`.
fn daily(s: &Scratch, a_ms: u64) {
    workflow(s, a_ms, 0, "");
    s.append(
        "workflow.toml",
        r#"
[schedules.daily]
cron = "30 2 * * *"
timezone = "Europe/Berlin"
as = "scheduler"
params = { day = "${nominal:%Y-%m-%d}" }
"#,
    );
}

/// The `trigger` records of backfills, each (nominal time, day parameter, run).
fn backfill_triggers(log: &[Value]) -> Vec<(String, String, String)> {
    log.iter()
        .filter(|r| r["kind"] == "trigger" && r["via"] == "backfill")
        .map(|r| {
            (
                r["nominal"].as_str().unwrap().to_owned(),
                r["parameters"]["day"].as_str().unwrap().to_owned(),
                r["starts"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `cairn backfill` here of schedule `daily` from `from` to 2026-11-03, as
/// Alice, with `--json` and `extra`.
fn local(s: &Scratch, from: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "backfill",
        ".",
        "--schedule",
        "daily",
        "--from",
        from,
        "--to",
        "2026-11-03",
        "--as",
        "alice",
        "--json",
    ];
    args.extend_from_slice(extra);
    run_in(s.path(), &args)
}

fn count(log: &[Value], kind: &str) -> usize {
    log.iter().filter(|r| r["kind"] == kind).count()
}

#[test]
fn a_local_backfill_runs_each_nominal_time_once_with_its_day() {
    let s = Scratch::new();
    daily(&s, 0);
    let backfill = |extra: &[&str]| local(&s, "2026-11-01", extra);

    // A dry run plans each nominal time and records nothing.
    let dry = backfill(&["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let planned = dry.json();
    assert_eq!(planned["allowed"], true);
    let nominal = planned["nominal"].as_array().unwrap();
    assert_eq!(nominal.len(), 3, "{planned:#}");
    // 02:30 in Berlin (CET, UTC+1) is 01:30 UTC.
    assert_eq!(nominal[0]["nominal"], "2026-11-01T01:30:00Z");
    assert_eq!(nominal[0]["action"], "run");
    assert_eq!(nominal[0]["params"]["day"], "2026-11-01");
    assert!(
        !s.path().join(".cairn/audit/log.jsonl").exists(),
        "a dry run records nothing"
    );

    let first = backfill(&["--max-active", "2"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let shown = first.json();
    assert_eq!(shown["status"], "done", "{shown:#}");
    assert_eq!(shown["succeeded"], 3);
    let all = log(&s);
    let triggers = backfill_triggers(&all);
    let days: Vec<&str> = triggers.iter().map(|(_, d, _)| d.as_str()).collect();
    assert_eq!(days, ["2026-11-01", "2026-11-02", "2026-11-03"]);
    for (_, _, run) in &triggers {
        assert_eq!(kinds(&all, run, "run-started").len(), 1);
    }
    let started: Vec<&Value> = all
        .iter()
        .filter(|r| r["kind"] == "backfill-started")
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["user"], "alice");
    assert_eq!(started[0]["nominal"].as_array().unwrap().len(), 3);
    assert_eq!(count(&all, "backfill-ended"), 1);

    // Again, over a wider range: only the new nominal times run.
    let again = local(&s, "2026-10-31", &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let shown = again.json();
    assert_eq!(shown["started"], 1, "{shown:#}");
    assert_eq!(shown["skipped"], 3);
    for skip in shown["skips"].as_array().unwrap() {
        assert_eq!(skip["why"], "exists");
    }
    let all = log(&s);
    let triggers = backfill_triggers(&all);
    assert_eq!(triggers.len(), 4);
    let distinct: HashSet<&str> = triggers.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(distinct.len(), 4, "no nominal time ran twice");
    // The dry run now shows the runs each has.
    let dry = backfill(&["--dry-run"]);
    let planned = dry.json();
    for p in planned["nominal"].as_array().unwrap() {
        assert_eq!(p["action"], "skip", "{p}");
        assert_eq!(p["runs"].as_array().unwrap().len(), 1);
    }

    // `all` reruns every one.
    let all_again = backfill(&["--reprocess", "all", "--max-active", "3"]);
    assert_eq!(all_again.code, 0, "{}", all_again.stderr);
    assert_eq!(all_again.json()["started"], 3);
    let verified = assert_log_verifies(&s);
    assert!(verified["authorized_steps"].as_u64().unwrap() > 0);

    // The audit trail shows it.
    let shown = run_in(s.path(), &["audit", "show"]);
    assert_contains(&shown.stdout, "alice backfills schedule daily of pair");
    assert_contains(&shown.stdout, "skips 2026-11-01T01:30:00Z: exists");
}

#[test]
fn a_bad_range_is_a_usage_error_and_records_nothing() {
    let s = Scratch::new();
    daily(&s, 0);
    s.append(
        "workflow.toml",
        "\n[schedules.every-second]\ncron = \"* * * * * *\"\nas = \"scheduler\"\n",
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--schedule",
                "daily",
                "--from",
                "2026-11-05",
                "--to",
                "2026-11-01",
            ],
            "is after --to",
        ),
        (
            &[
                "--schedule",
                "daily",
                "--from",
                "2026-11-01T03:00:00Z",
                "--to",
                "2026-11-01T04:00:00Z",
            ],
            "has no tick from",
        ),
        (
            &[
                "--schedule",
                "daily",
                "--from",
                "2026-11-01",
                "--to",
                "2999-01-01",
            ],
            "is in the future",
        ),
        (
            &[
                "--schedule",
                "every-second",
                "--from",
                "1990-01-01",
                "--to",
                "2026-01-01",
            ],
            "more than 10000 ticks",
        ),
        (
            &[
                "--schedule",
                "weekly",
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-03",
            ],
            "has no schedule `weekly`; it declares `daily`, `every-second`",
        ),
        (
            &[
                "--schedule",
                "daily",
                "--from",
                "last tuesday",
                "--to",
                "2026-11-03",
            ],
            "--from: `last tuesday` is not a time",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["backfill", ".", "--as", "alice"];
        all.extend_from_slice(args);
        let out = run_in(s.path(), &all);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_contains(&out.stderr, says);
    }
    assert!(
        !s.path().join(".cairn/audit/log.jsonl").exists(),
        "nothing was recorded"
    );

    // Someone policy does not permit: refused (exit 3), and recorded.
    let out = run_in(
        s.path(),
        &[
            "backfill",
            ".",
            "--schedule",
            "daily",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-02",
            "--as",
            "bob",
        ],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_contains(&out.stderr, "does not permit `bob`");
    let all = log(&s);
    assert!(all.iter().any(|r| r["kind"] == "access"
        && r["decision"] == "deny"
        && r["context"]["via"] == "backfill"));
    assert_eq!(count(&all, "backfill-started"), 0);
    assert_log_verifies(&s);
}

/// Backfill `body` of `pair` on `d` as `token`; the answer.
fn start(d: &Daemon, token: &str, body: Value) -> (u16, Value) {
    d.call(
        "POST",
        "/v1/workflows/pair/backfills",
        Some(token),
        Some(body),
    )
}

/// Poll backfill `id` until `done` says so.
fn until(d: &Daemon, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (code, shown) = d.get(&format!("/v1/workflows/pair/backfills/{id}"), token);
        if code == 200 && done(&shown) {
            return shown;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "backfill {id} did not get there: {code} {shown}\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_service_backfills_cancels_and_goes_on_after_kill_9() {
    let s = Scratch::new();
    daily(&s, 1500);
    let alice = token(&s, "alice");
    let bob = token(&s, "bob");
    let d = Daemon::start(&s);
    let range = json!({ "schedule": "daily", "from": "2026-11-01", "to": "2026-11-04" });

    // Bob may not; a bad body is a 400 saying why; a dry run records no backfill.
    let (code, _) = start(&d, &bob, range.clone());
    assert_eq!(code, 403);
    let (code, body) = start(
        &d,
        &alice,
        json!({ "schedule": "daily", "from": "2026-11-04", "to": "2026-11-01" }),
    );
    assert_eq!(code, 400, "{body}");
    assert_contains(&body["error"]["message"].to_string(), "is after --to");
    let mut dry = range.clone();
    dry["dry_run"] = json!(true);
    let (code, planned) = start(&d, &alice, dry);
    assert_eq!(code, 200, "{planned}");
    assert_eq!(planned["nominal"].as_array().unwrap().len(), 4);

    // Started, one at a time; cancelled while its first run goes.
    let (code, started) = start(&d, &alice, range.clone());
    assert_eq!(code, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(started["total"], 4);
    until(&d, &alice, &id, |b| b["active"] == 1);
    let (code, _) = d.call(
        "POST",
        &format!("/v1/workflows/pair/backfills/{id}/cancel"),
        Some(&bob),
        None,
    );
    assert_eq!(code, 403, "Bob may not cancel it");
    let (code, cancelled) = d.call(
        "POST",
        &format!("/v1/workflows/pair/backfills/{id}/cancel"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let shown = until(&d, &alice, &id, |b| b["active"] == 0);
    assert_eq!(shown["started"], 1, "no more were submitted: {shown:#}");
    assert_eq!(shown["failed"], 1, "its run was cancelled: {shown:#}");
    assert_eq!(shown["pending"], 3);
    let (code, _) = d.call(
        "POST",
        &format!("/v1/workflows/pair/backfills/{id}/cancel"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 409, "it has ended");

    // A second backfill: `failed` reruns the cancelled one and the rest;
    // killed while its runs go, it goes on when the service is back.
    let mut failed = range.clone();
    failed["reprocess"] = json!("failed");
    failed["max_active"] = json!(2);
    let (code, second) = start(&d, &alice, failed);
    assert_eq!(code, 201, "{second}");
    let second = second["id"].as_str().unwrap().to_owned();
    until(&d, &alice, &second, |b| b["started"].as_u64() >= Some(1));
    d.kill();
    let d = Daemon::start(&s);
    let shown = until(&d, &alice, &second, |b| b["status"] == "done");
    assert_eq!(shown["succeeded"], 4, "{shown:#}");
    assert_eq!(shown["skipped"], 0, "{shown:#}");
    let (code, listed) = d.get("/v1/workflows/pair/backfills", &alice);
    assert_eq!(code, 200);
    assert_eq!(listed["backfills"].as_array().unwrap().len(), 2);
    assert_contains(&d.stderr(), "goes on");
    d.term();

    let all = log(&s);
    // Each nominal time: one run of the second backfill, started once.
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (nominal, _, run) in backfill_triggers(&all) {
        runs.entry(nominal).or_default().push(run);
    }
    assert_eq!(runs.len(), 4, "{runs:?}");
    for (nominal, of) in &runs {
        let expected = if nominal == "2026-11-01T01:30:00Z" {
            2
        } else {
            1
        };
        assert_eq!(of.len(), expected, "{nominal}: {of:?}");
        for run in of {
            assert_eq!(kinds(&all, run, "run-started").len(), 1, "run {run}");
        }
    }
    assert_log_verifies(&s);
}

#[test]
fn ctrl_c_cancels_a_local_backfill_and_its_run_under_way() {
    let s = Scratch::new();
    daily(&s, 20_000);
    let child = crate::support::cairn()
        .current_dir(s.path())
        .args([
            "backfill",
            ".",
            "--schedule",
            "daily",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-03",
            "--as",
            "alice",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let path = s.path().join(".cairn/audit/log.jsonl");
    while !std::fs::read_to_string(&path)
        .unwrap_or_default()
        .contains("\"task-started\"")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no task started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = crate::support::Run::from(child.wait_with_output().unwrap());
    assert_eq!(out.code, 130, "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the run under way was cancelled, not waited for"
    );
    let shown = out.json();
    assert_eq!(shown["status"], "cancelled", "{shown:#}");
    assert_eq!(shown["started"], 1);
    assert_eq!(shown["pending"], 2);
    let all = log(&s);
    let ended: Vec<&Value> = all
        .iter()
        .filter(|r| r["kind"] == "backfill-ended")
        .collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["result"], "cancelled");
    assert_eq!(ended[0]["user"], "alice");
    let (_, _, run) = &backfill_triggers(&all)[0];
    let finished = kinds(&all, run, "run-finished");
    assert_eq!(finished.last().unwrap()["status"], "cancelled");
    assert_log_verifies(&s);
}

#[test]
fn the_api_refuses_a_bad_backfill_request_saying_why_and_records_no_backfill() {
    let s = Scratch::new();
    daily(&s, 0);
    let alice = token(&s, "alice");
    let d = Daemon::start(&s);
    let cases = [
        (
            json!({ "from": "2026-11-01", "to": "2026-11-02" }),
            400,
            "names no `schedule`",
        ),
        (
            json!({ "schedule": "weekly", "from": "2026-11-01", "to": "2026-11-02" }),
            403,
            "not allowed",
        ),
        (
            json!({ "schedule": "daily", "from": 20261101, "to": "2026-11-02" }),
            400,
            "`from` must be a time",
        ),
        (
            json!({ "schedule": "daily", "from": "2026-11-01", "to": "2026-11-02", "max_active": 0 }),
            400,
            "max_active must be 1 to 1000",
        ),
        (
            json!({ "schedule": "daily", "from": "2026-11-01", "to": "2026-11-02", "reprocess": "sometimes" }),
            400,
            "`reprocess` must be one of missing, failed, all",
        ),
        (
            json!({ "schedule": "daily", "from": "1000-01-01", "to": "2026-11-02" }),
            400,
            "more than 10000 ticks",
        ),
        (
            json!({ "schedule": "daily", "from": "2026-11-01", "to": "2999-11-02" }),
            400,
            "is in the future",
        ),
    ];
    for (body, status, says) in cases {
        let (code, answer) = start(&d, &alice, body.clone());
        assert_eq!(code, status, "{body}: {answer}");
        assert_contains(&answer["error"]["message"].to_string(), says);
    }
    let (code, answer) = d.call(
        "GET",
        "/v1/workflows/pair/backfills/backfill-nothing",
        Some(&alice),
        None,
    );
    assert_eq!(code, 403, "{answer}");
    d.term();
    assert_eq!(count(&log(&s), "backfill-started"), 0);
    assert_log_verifies(&s);
}
