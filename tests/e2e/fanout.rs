//! Fan-out and fan-in: `for_each` over a list or a parameter expands to
//! one task per element when the run is planned — each preflighted, shown
//! by `cairn plan` and `cairn graph`, run at most `max_parallel` at once —
//! and a downstream task takes all their outputs (`fetch[*].echo`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Scratch, assert_contains, assert_verifies, cairn, records, run_in};

/// `regions`: the tasks `before` `fetch`, then `fetch` over `for_each`,
/// at most 2 at once, each sleeping `ms`; `merge` takes every
/// `fetch[*].echo`. `params` is the `[params]` table's body.
fn regions(s: &Scratch, params: &str, before: &str, for_each: &str, ms: u64) {
    s.policies();
    s.write(
        "workflow.toml",
        &format!(
            r#"[workflow]
name = "regions"
policies = ["p"]

[params]
{params}
{before}
[tasks.fetch]
component = {task:?}
for_each = "{for_each}"
max_parallel = 2
env = {{ MODE = "work", NAME = "fetch-${{each}}", SLEEP_MS = "{ms}" }}
outputs = ["echo"]

[tasks.merge]
component = {task:?}
env = {{ MODE = "work", NAME = "merge" }}
inputs = {{ pages = "fetch[*].echo" }}
outputs = ["echo"]
"#,
            task = cairn_tests::TASK
        ),
    );
}

/// `fetch` over `${params.regions}` (3 by default), at most 2 at once,
/// each sleeping `ms`; `merge` takes every `fetch[*].echo`.
fn workflow(s: &Scratch, ms: u64) {
    regions(
        s,
        r#"regions = { default = '["eu", "us", "ap"]', description = "Where to fetch from" }"#,
        "",
        "${params.regions}",
        ms,
    );
}

fn merged(s: &Scratch, run: &Value) -> String {
    let merge = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "merge")
        .unwrap();
    let path = merge["outputs"][0]["path"].as_str().unwrap();
    std::fs::read_to_string(s.path().join(path)).unwrap()
}

/// SIGKILL `child` once a line of the audit log in `s` holds for `test`
/// (within a minute).
fn kill_when(s: &Scratch, child: &mut std::process::Child, test: impl Fn(&str) -> bool) {
    let started = Instant::now();
    let log = s.path().join(".cairn/audit/log.jsonl");
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .any(&test)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the log never got there"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    let _ = child.wait();
}

/// `cairn resume` the one run in `s`: it succeeds, and `merge` has every
/// region's page. The run's id.
fn resume_every_region(s: &Scratch, case: &str) -> String {
    let runs = run_in(s.path(), &["runs", "list", "--json"]).json();
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    let resumed = run_in(s.path(), &["resume", &id, "--json"]);
    assert_eq!(resumed.code, 0, "{case}: {}", resumed.stderr);
    assert_eq!(
        merged(s, &resumed.json()),
        "merge(pages[ap]=fetch-ap(),pages[eu]=fetch-eu(),pages[us]=fetch-us())",
        "{case}"
    );
    id
}

/// Each of `tasks` succeeded exactly once in the run's records `log`.
fn succeeded_once(log: &[Value], tasks: &[&str], case: &str) {
    for task in tasks {
        let done = log
            .iter()
            .filter(|r| {
                r["kind"] == "task-finished" && r["task"] == *task && r["outcome"] == "success"
            })
            .count();
        assert_eq!(done, 1, "{case}: {task}");
    }
}

/// The most `fetch[..]` attempts out at once, from the log's records.
fn most_at_once(records: &[Value]) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for r in records {
        let fetch = r["task"].as_str().is_some_and(|t| t.starts_with("fetch["));
        match r["kind"].as_str() {
            Some("task-started") if fetch => {
                now += 1;
                most = most.max(now);
            }
            Some("task-finished") if fetch => now = now.saturating_sub(1),
            _ => {}
        }
    }
    most
}

#[test]
fn a_fan_out_over_a_parameter_is_planned_run_two_at_a_time_and_fanned_in() {
    let s = Scratch::new();
    workflow(&s, 100);
    let plan = run_in(s.path(), &["plan", "--as", "alice", "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let tasks: Vec<String> = plan.json()["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "run")
        .map(|d| d["task"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tasks, ["fetch[eu]", "fetch[us]", "fetch[ap]", "merge"]);
    let graph = run_in(
        s.path(),
        &[
            "graph",
            "--format",
            "mermaid",
            "--param",
            r#"regions=["x", "y"]"#,
        ],
    );
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    assert_contains(&graph.stdout, "fetch[x]");
    assert!(!graph.stdout.contains("fetch[eu]"), "{}", graph.stdout);

    let run = run_in(s.path(), &["run", "--as", "alice", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    assert_eq!(
        merged(&s, &json),
        "merge(pages[ap]=fetch-ap(),pages[eu]=fetch-eu(),pages[us]=fetch-us())"
    );
    let id = json["run"].as_str().unwrap().to_owned();
    let log = records(s.path(), &id);
    assert_eq!(most_at_once(&log), 2, "max_parallel = 2");
    // Each expanded task was authorized before it ran.
    let flows: Vec<&str> = log
        .iter()
        .filter(|r| r["kind"] == "data-flow")
        .map(|r| r["input"].as_str().unwrap())
        .collect();
    assert_eq!(flows, ["pages[eu]", "pages[us]", "pages[ap]"]);
    assert_verifies(s.path());

    // Another parameter, another expansion; one that is no array, refused.
    let run = run_in(
        s.path(),
        &[
            "run",
            "--as",
            "alice",
            "--json",
            "--param",
            r#"regions=["x"]"#,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(merged(&s, &run.json()), "merge(pages[x]=fetch-x())");
    let bad = run_in(
        s.path(),
        &["run", "--as", "alice", "--param", "regions=eu,us"],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_contains(
        &bad.stderr,
        "--param `regions`: task `fetch` fans out over it, so it must be a JSON array of strings",
    );
    let many = format!(
        "regions=[{}]",
        (0..10_001)
            .map(|i| format!("\"r{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let bad = run_in(s.path(), &["plan", "--as", "alice", "--param", &many]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_contains(
        &bad.stderr,
        "has 10001 elements; a fan-out has at most 10000",
    );
}

#[test]
fn a_run_killed_halfway_through_a_fan_out_finishes_the_rest_once() {
    let s = Scratch::new();
    workflow(&s, 400);
    let mut child = cairn()
        .current_dir(s.path())
        .args(["run", "--as", "alice"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL) once the first fetch has finished.
    kill_when(&s, &mut child, |l| l.contains("\"kind\":\"task-finished\""));
    let id = resume_every_region(&s, "");
    // Every expanded task succeeded exactly once.
    let log = records(s.path(), &id);
    succeeded_once(&log, &["fetch[eu]", "fetch[us]", "fetch[ap]", "merge"], "");
    assert_verifies(s.path());
}

#[test]
fn fan_out_mistakes_are_manifest_errors_at_their_line() {
    let s = Scratch::new();
    s.write(
        "workflow.toml",
        r#"[workflow]
name = "w"

[tasks.fetch]
component = "task.wasm"
for_each = ["a", "b"]
outputs = ["page"]

[tasks.one]
component = "task.wasm"
inputs = { page = "fetch.page" }

[tasks.two]
component = "task.wasm"
max_parallel = 2
env = { X = "${each}" }
inputs = { page = "one[*].page" }

[tasks.three]
component = "task.wasm"
for_each = "fetch.page"

[tasks.four]
component = "task.wasm"
for_each = "one.nothing"
"#,
    );
    s.write("task.wasm", "");
    let checked = run_in(s.path(), &["validate"]);
    assert_eq!(checked.code, 2, "{}", checked.stderr);
    for message in [
        "task `two` has `max_parallel` but no `for_each`",
        "task `two` uses `${each}` but has no `for_each`",
    ] {
        assert_contains(&checked.stderr, message);
    }
    // With those fixed, the edges are checked.
    let text = std::fs::read_to_string(s.path().join("workflow.toml")).unwrap();
    let text = text.replace("max_parallel = 2\nenv = { X = \"${each}\" }\n", "");
    s.write("workflow.toml", &text);
    let checked = run_in(s.path(), &["validate"]);
    assert_eq!(checked.code, 2, "{}", checked.stderr);
    assert_contains(
        &checked.stderr,
        "take every one of its outputs with `fetch[*].page`",
    );
    assert_contains(
        &checked.stderr,
        "`one` does not fan out: take its output as `one.page`",
    );
    for message in [
        "task `three` fans out over `fetch.page`, but `fetch` fans out itself",
        "task `one` declares no outputs; add `outputs = [\"nothing\"]` to it",
    ] {
        assert_contains(&checked.stderr, message);
    }
}

#[test]
fn policy_sees_each_expanded_task_in_its_template_with_its_key_and_index() {
    let s = Scratch::new();
    workflow(&s, 0);
    s.write(
        "p/fan.cedar",
        r#"@id("not-ap") forbid (principal, action == Cairn::Action::"run", resource in Cairn::Task::"fetch")
when { resource has fan && resource.fan.template == "fetch" && resource.fan.key == "ap" && resource.fan.index == 2 };
"#,
    );
    let plan = run_in(s.path(), &["plan", "--as", "alice", "--json"]);
    assert_eq!(plan.code, 3, "{}\n{}", plan.stdout, plan.stderr);
    let denied: Vec<(String, Value)> = plan.json()["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["decision"] == "deny")
        .map(|d| {
            (
                d["task"].as_str().unwrap().to_owned(),
                d["policies"].clone(),
            )
        })
        .collect();
    assert_eq!(
        denied,
        [("fetch[ap]".to_owned(), serde_json::json!(["not-ap"]))],
        "only the third element, by the policy that names it"
    );
    // Another list: nothing is `ap`, nothing is denied.
    let plan = run_in(
        s.path(),
        &[
            "plan",
            "--as",
            "alice",
            "--param",
            r#"regions=["eu", "us"]"#,
        ],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let run = run_in(s.path(), &["run", "--as", "alice"]);
    assert_eq!(run.code, 3, "refused before anything runs: {}", run.stderr);
    assert_verifies(s.path());
}

/// `list` writes `${params.list}`; `fetch` fans out over it when it
/// arrives, at most 2 at once, each sleeping `ms`; `merge` takes every
/// `fetch[*].echo`.
fn over_an_output(s: &Scratch, ms: u64) {
    regions(
        s,
        r#"list = { default = '["eu", "us", "ap"]', description = "What `list` writes" }
count = { default = "", description = "How many numbers `list` writes instead" }"#,
        &format!(
            r#"[tasks.list]
component = {:?}
env = {{ MODE = "emit", TEXT = "${{params.list}}", COUNT = "${{params.count}}" }}
outputs = ["echo"]
"#,
            cairn_tests::TASK
        ),
        "list.echo",
        ms,
    );
}

/// The position of the first record of `log` that `test` holds for.
fn first(log: &[Value], test: impl Fn(&Value) -> bool) -> usize {
    log.iter().position(test).unwrap_or(usize::MAX)
}

#[test]
fn a_fan_out_over_an_output_expands_when_it_arrives_each_task_authorized_before_it_starts() {
    let s = Scratch::new();
    over_an_output(&s, 100);
    let plan = run_in(s.path(), &["plan", "--as", "alice", "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let json = plan.json();
    let runs: Vec<&str> = json["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "run")
        .map(|d| d["task"].as_str().unwrap())
        .collect();
    assert_eq!(
        runs,
        ["list", "merge"],
        "fetch's tasks are decided when known"
    );
    assert_eq!(
        json["expands_at_run_time"],
        serde_json::json!([{ "task": "fetch", "over": "list.echo", "max_parallel": 2 }])
    );
    let graph = run_in(s.path(), &["graph", "--format", "mermaid"]);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    assert_contains(&graph.stdout, "fetch[*]: one per element of list.echo");
    assert_contains(&graph.stdout, "|\"each echo\"|");

    let run = run_in(s.path(), &["run", "--as", "alice", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_contains(&run.stderr, "fetch over list.echo: 3 tasks");
    let json = run.json();
    assert_eq!(
        merged(&s, &json),
        "merge(pages[ap]=fetch-ap(),pages[eu]=fetch-eu(),pages[us]=fetch-us())"
    );
    let id = json["run"].as_str().unwrap().to_owned();
    let log = records(s.path(), &id);
    assert_eq!(most_at_once(&log), 2, "max_parallel = 2");
    let listed = first(&log, |r| {
        r["kind"] == "task-finished" && r["task"] == "list"
    });
    let expansion = first(&log, |r| r["kind"] == "expansion");
    let decided = first(&log, |r| r["phase"] == "expansion");
    let started = first(&log, |r| {
        r["kind"] == "task-started" && r["task"].as_str().unwrap().starts_with("fetch[")
    });
    assert!(
        listed < decided && decided < expansion && expansion < started,
        "list ends {listed}, decisions {decided}, expansion {expansion}, first fetch {started}"
    );
    let record = &log[expansion];
    assert_eq!(record["task"], "fetch");
    assert_eq!(record["source"], "list.echo");
    assert_eq!(record["count"], 3);
    assert_eq!(record["keys"], serde_json::json!(["eu", "us", "ap"]));
    assert_eq!(record["sha256"], log[listed]["outputs"][0]["sha256"]);
    // Every expanded task's run, and each flow into the fan-in, decided then.
    let decisions: Vec<(String, String)> = log
        .iter()
        .filter(|r| r["phase"] == "expansion")
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["task"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for task in ["fetch[eu]", "fetch[us]", "fetch[ap]"] {
        assert!(
            decisions.contains(&("run".to_owned(), task.to_owned())),
            "{decisions:?}"
        );
    }
    let flows = decisions
        .iter()
        .filter(|(a, t)| a == "flow" && t == "merge")
        .count();
    assert_eq!(flows, 3, "{decisions:?}");
    assert_verifies(s.path());
    // Its bundle holds the policy set the expansion recorded, once.
    let export = run_in(s.path(), &["audit", "export", &id, "--out", "bundle"]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let sums = std::fs::read_to_string(s.path().join("bundle/SHA256SUMS")).unwrap();
    let lines: Vec<&str> = sums.lines().collect();
    let distinct: std::collections::BTreeSet<&str> = lines.iter().copied().collect();
    assert_eq!(lines.len(), distinct.len(), "{sums}");
    let entities = std::fs::read_to_string(s.path().join("bundle/entities.json")).unwrap();
    assert_contains(&entities, "fetch[ap]");
    let checked = run_in(
        s.path(),
        &[
            "audit",
            "verify",
            "bundle",
            "--key",
            ".cairn/keys/audit.pub",
        ],
    );
    assert_eq!(checked.code, 0, "{}", checked.stderr);

    // Elements other than keys are named by index, and given as JSON; an
    // empty array expands to nothing.
    let run = run_in(
        s.path(),
        &[
            "run",
            "--as",
            "alice",
            "--json",
            "--param",
            r#"list=[1, {"a": 2}, "x y"]"#,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        merged(&s, &run.json()),
        r#"merge(pages[0]=fetch-1(),pages[1]=fetch-{"a":2}(),pages[2]=fetch-x y())"#
    );
    let run = run_in(
        s.path(),
        &["run", "--as", "alice", "--json", "--param", "list=[]"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(merged(&s, &run.json()), "merge()");
    assert_verifies(s.path());
}

#[test]
fn a_fan_out_over_an_output_that_is_no_array_or_too_long_fails_with_the_reason() {
    let s = Scratch::new();
    over_an_output(&s, 0);
    for (param, why) in [
        (
            r#"list={"eu": 1}"#,
            "`list.echo` holds an object, not a JSON array",
        ),
        (
            "list=eu,us",
            "`list.echo` is not a JSON array: expected value",
        ),
        (
            "count=100001",
            "`list.echo` has 100001 elements; a fan-out over an output has at most 100000",
        ),
    ] {
        let run = run_in(
            s.path(),
            &["run", "--as", "alice", "--json", "--param", param],
        );
        assert_eq!(run.code, 1, "{param}: {}", run.stderr);
        assert_contains(&run.stderr, why);
        let json = run.json();
        let status = |task: &str| {
            json["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["task"] == task)
                .map(|t| t["status"].as_str().unwrap().to_owned())
        };
        assert_eq!(status("fetch").as_deref(), Some("failed"), "{json}");
        assert_eq!(status("merge").as_deref(), Some("skipped"), "{json}");
        let log = records(s.path(), json["run"].as_str().unwrap());
        let record = &log[first(&log, |r| r["kind"] == "expansion")];
        assert_contains(record["error"].as_str().unwrap(), why);
        assert!(
            !log.iter()
                .any(|r| r["kind"] == "task-started"
                    && r["task"].as_str().unwrap().starts_with("fetch")),
            "nothing of the fan-out started"
        );
    }
    assert_verifies(s.path());
}

#[test]
fn policy_refusing_one_task_an_output_expands_to_stops_them_all_before_any_starts() {
    let s = Scratch::new();
    over_an_output(&s, 0);
    s.write(
        "p/fan.cedar",
        r#"@id("not-us") forbid (principal, action == Cairn::Action::"run", resource in Cairn::Task::"fetch")
when { resource has fan && resource.fan.key == "us" };
"#,
    );
    let plan = run_in(s.path(), &["plan", "--as", "alice"]);
    assert_eq!(plan.code, 0, "not known before the run: {}", plan.stderr);
    let run = run_in(s.path(), &["run", "--as", "alice", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_contains(&run.stderr, "policy denies what it expands to: run");
    assert_contains(&run.stderr, "(fetch[us])");
    let log = records(s.path(), run.json()["run"].as_str().unwrap());
    let denied: Vec<(&str, &Value)> = log
        .iter()
        .filter(|r| r["phase"] == "expansion" && r["decision"] == "deny")
        .map(|r| (r["task"].as_str().unwrap(), &r["policies"]))
        .collect();
    assert_eq!(denied, [("fetch[us]", &serde_json::json!(["not-us"]))]);
    assert!(
        !log.iter().any(
            |r| r["kind"] == "task-started" && r["task"].as_str().unwrap().starts_with("fetch")
        ),
        "none of them started"
    );
    assert_verifies(s.path());
}

#[test]
fn a_run_killed_after_an_expansion_or_halfway_through_it_finishes_the_same_tasks_once() {
    for kill in ["after-expansion", "after-first-fetch"] {
        let s = Scratch::new();
        over_an_output(&s, 300);
        let mut command = cairn();
        command
            .current_dir(s.path())
            .args(["run", "--as", "alice"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if kill == "after-expansion" {
            command.env("CAIRN_CRASH_AT", kill);
        }
        let mut child = command.spawn().unwrap();
        if kill == "after-first-fetch" {
            kill_when(&s, &mut child, |l| {
                l.contains("\"kind\":\"task-finished\"") && l.contains("\"task\":\"fetch[")
            });
        }
        let _ = child.wait();
        let id = resume_every_region(&s, kill);
        let log = records(s.path(), &id);
        let tasks = ["list", "fetch[eu]", "fetch[us]", "fetch[ap]", "merge"];
        succeeded_once(&log, &tasks, kill);
        // Expanded again in the resumed run, from the same output.
        let expansions: Vec<&Value> = log
            .iter()
            .filter(|r| r["kind"] == "expansion")
            .map(|r| &r["sha256"])
            .collect();
        assert_eq!(expansions.len(), 2, "{kill}");
        assert_eq!(expansions[0], expansions[1], "{kill}");
        assert_verifies(s.path());
    }
}

#[test]
fn the_service_expands_a_gated_fan_out_over_an_output_and_finishes_it_after_a_kill_9() {
    use crate::serve::{Daemon, assert_log_verifies, kinds, log, status, token};
    let s = Scratch::new();
    crate::serve::workflow(&s, 0, 0, "");
    s.write(
        "p/approvals.cedar",
        "@id(\"people-approve\") permit (principal, action == Cairn::Action::\"approve\", resource);\n",
    );
    s.write(
        "workflow.toml",
        &format!(
            r#"[workflow]
name = "pair"
policies = ["p"]

[tasks.list]
component = {task:?}
env = {{ MODE = "emit", TEXT = '["eu", "us", "ap"]' }}
outputs = ["echo"]

[tasks.gate]
approval = {{ required = 1 }}
needs = ["list"]

[tasks.fetch]
component = {task:?}
needs = ["gate"]
for_each = "list.echo"
max_parallel = 1
env = {{ MODE = "work", NAME = "fetch-${{each}}", SLEEP_MS = "300" }}
outputs = ["echo"]

[tasks.merge]
component = {task:?}
env = {{ MODE = "work", NAME = "merge" }}
inputs = {{ pages = "fetch[*].echo" }}
outputs = ["echo"]
"#,
            task = cairn_tests::TASK
        ),
    );
    let (alice, bob) = (token(&s, "alice"), token(&s, "bob"));
    let d = Daemon::start(&s);
    let (code, started) = d.call("POST", "/v1/workflows/pair/runs", Some(&alice), None);
    assert_eq!(code, 201, "{started}\n{}", d.stderr());
    let run = started["run"].as_str().unwrap().to_owned();
    d.until(&run, &alice, |r| status(r) == "waiting");
    let (code, body) = d.call(
        "POST",
        &format!("/v1/runs/{run}/tasks/gate/approve"),
        Some(&bob),
        Some(serde_json::json!({ "comment": "these three" })),
    );
    assert_eq!(code, 200, "{body}\n{}", d.stderr());
    // Killed once the first of them has finished.
    crate::serve::wait_for(|| {
        kinds(&log(&s), &run, "task-finished")
            .iter()
            .any(|r| r["task"].as_str().unwrap().starts_with("fetch["))
    });
    let _ = d.kill();
    let d = Daemon::start(&s);
    let done = d.until(&run, &alice, |r| status(r) == "succeeded");
    let _ = d.term();
    let tasks: Vec<&str> = done["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"].as_str().unwrap())
        .collect();
    for task in ["fetch[eu]", "fetch[us]", "fetch[ap]", "merge"] {
        assert!(tasks.contains(&task), "{task} in {tasks:?}");
    }
    let records = log(&s);
    succeeded_once(
        &crate::support::records(s.path(), &run),
        &["fetch[eu]", "fetch[us]", "fetch[ap]", "merge"],
        "",
    );
    // The approval covered the list the fan-out expanded over.
    let opened = kinds(&records, &run, "gate-opened");
    let expansions = kinds(&records, &run, "expansion");
    assert!(!expansions.is_empty());
    for expansion in &expansions {
        assert_eq!(
            opened[0]["covers"]["tasks"]["fetch"]["for_each"],
            expansion["sha256"]
        );
    }
    assert_log_verifies(&s);
}
