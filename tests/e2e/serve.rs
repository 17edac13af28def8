//! `cairn serve`: the real daemon on a free loopback port, talked to over
//! HTTP. Tokens decide who asks, policy decides what they may do, every
//! decision and trigger is in the log before it takes effect; `kill -9`
//! at any moment loses nothing and runs nothing twice.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Scratch, assert_contains, cairn, run_in, verify_json};

/// Who may do what through the service: Alice everything on `pair`, Bob
/// only to see it, `scheduler` to trigger it from a schedule; everyone
/// reads the runs they started.
const SERVICE_RULES: &str = r#"
@id("alice-triggers") permit (principal == Cairn::User::"alice", action in [Cairn::Action::"trigger", Cairn::Action::"list_runs", Cairn::Action::"read_workflow", Cairn::Action::"read_audit", Cairn::Action::"cancel_run", Cairn::Action::"pause_schedule", Cairn::Action::"resume_schedule"], resource);
@id("scheduler-triggers") permit (principal == Cairn::User::"scheduler", action == Cairn::Action::"trigger", resource) when { context.via == "schedule" };
@id("bob-sees") permit (principal == Cairn::User::"bob", action in [Cairn::Action::"read_workflow", Cairn::Action::"list_runs"], resource);
@id("own-runs") permit (principal, action == Cairn::Action::"read_run", resource) when { context.run_by == principal };
"#;

/// A workflow `pair`: `a` then `b` (taking `a`'s output), each sleeping
/// `SLEEP_MS` as given; `extra` is added to `[workflow]`.
pub(crate) fn workflow(s: &Scratch, a_ms: u64, b_ms: u64, extra: &str) {
    s.policies();
    s.write("p/service.cedar", SERVICE_RULES);
    let task = |name: &str, ms: u64, inputs: &str| {
        format!(
            "[tasks.{name}]\ncomponent = {:?}\nenv = {{ MODE = \"work\", NAME = \"{name}\", SLEEP_MS = \"{ms}\", DAY = \"${{params.day}}\" }}\ninputs = {{ {inputs} }}\noutputs = [\"echo\"]\ntimeout = \"60s\"\n",
            cairn_tests::TASK
        )
    };
    s.write(
        "workflow.toml",
        &format!(
            "[workflow]\nname = \"pair\"\npolicies = [\"p\"]\n{extra}\n[params]\nday = \"today\"\n\n{}{}",
            task("a", a_ms, ""),
            task("b", b_ms, "x = \"a.echo\"")
        ),
    );
}

/// A token for `user` in `s`'s state directory.
pub(crate) fn token(s: &Scratch, user: &str) -> String {
    let made = run_in(s.path(), &["token", "create", "--user", user]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    made.stdout.trim().to_owned()
}

/// The daemon, as a child process.
pub(crate) struct Daemon {
    child: Child,
    pub(crate) addr: String,
    /// Where it serves `/metrics`, when started with `--metrics-listen`.
    pub(crate) metrics: Option<String>,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    pub(crate) fn start(s: &Scratch) -> Self {
        Self::start_with(s, &[])
    }

    pub(crate) fn start_with(s: &Scratch, env: &[(&str, &str)]) -> Self {
        Self::serving(s, &["."], env)
    }

    /// The daemon serving `workflows` (paths in `s`).
    pub(crate) fn serving(s: &Scratch, workflows: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(s, workflows, &[], env)
    }

    /// The daemon serving `workflows` (paths in `s`), with more `args`.
    pub(crate) fn launch(
        s: &Scratch,
        workflows: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = cairn();
        command
            .current_dir(s.path())
            .arg("serve")
            .args(workflows)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--jobs",
                "2",
                "--reload",
                "200ms",
                "--grace",
                "20s",
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start cairn serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        let seen = Arc::clone(&stderr);
        let metrics = Arc::new(Mutex::new(None));
        let metrics_seen = Arc::clone(&metrics);
        std::thread::spawn(move || {
            let after = |line: &str, text: &str| {
                line.find(text).map(|at| {
                    line[at + text.len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '/')
                        .collect::<String>()
                })
            };
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = after(&line, "metrics for Prometheus at http://") {
                    *metrics_seen.lock().unwrap() = Some(addr);
                }
                if let Some(addr) = after(&line, "listening on http://") {
                    let _ = tx.send(addr);
                }
                let mut all = seen.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "cairn serve did not start listening:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        // The metrics line follows the listening one.
        let waited = Instant::now();
        while args.contains(&"--metrics-listen")
            && metrics.lock().unwrap().is_none()
            && waited.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let metrics = metrics.lock().unwrap().clone();
        Self {
            child,
            addr,
            metrics,
            stderr,
        }
    }

    pub(crate) fn server(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let answer = runtime
            .block_on(cairn::serve::client::request(
                method,
                &self.server(),
                path,
                token,
                body.as_ref(),
            ))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.stderr()));
        (answer.status, answer.body)
    }

    pub(crate) fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, Some(token), None)
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Poll run `run` until `done` says so (or a minute passes).
    pub(crate) fn until(&self, run: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let (status, shown) = self.get(&format!("/v1/runs/{run}"), token);
            if status == 200 && done(&shown) {
                return shown;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "run {run} did not get there: {status} {shown}\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and the exit code.
    pub(crate) fn term(mut self) -> (i32, String) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (status.code().unwrap_or(-1), self.stderr())
    }

    /// Wait (up to `within`) for the daemon to exit by itself: its exit
    /// code (`None` for a signal), and its stderr.
    pub(crate) fn exited(mut self, within: Duration) -> (Option<i32>, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.stderr());
            }
            assert!(
                started.elapsed() < within,
                "the daemon did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`.
    pub(crate) fn kill(mut self) -> String {
        self.child.kill().unwrap();
        let _ = self.child.wait();
        self.stderr()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn status(run: &Value) -> &str {
    run["status"].as_str().unwrap_or("")
}

pub(crate) fn log(s: &Scratch) -> Vec<Value> {
    std::fs::read_to_string(s.path().join(".cairn/audit/log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn kinds<'a>(log: &'a [Value], run: &str, kind: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|r| r["run"] == run && r["kind"] == kind)
        .collect()
}

#[track_caller]
pub(crate) fn assert_log_verifies(s: &Scratch) -> Value {
    let verified = verify_json(s.path());
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
    verified.json()
}

#[test]
fn the_service_runs_what_policy_allows_and_records_who_asked_first() {
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    let alice = token(&s, "alice");
    let bob = token(&s, "bob");
    let d = Daemon::start(&s);

    let (code, health) = d.call("GET", "/v1/health", None, None);
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")));
    // No token, a bad one, a forged one: 401, whatever the endpoint.
    let (code, body) = d.call("POST", "/v1/workflows/pair/runs", None, None);
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (code, _) = d.call("GET", "/v1/runs", Some("not-a-token"), None);
    assert_eq!(code, 401);
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    let (code, body) = d.call("GET", "/v1/runs", Some(&forged), None);
    assert_eq!(code, 401, "{body}");

    // Bob may see the workflow but not start it; a workflow that does not
    // exist looks the same as one he may not start.
    let (code, listed) = d.get("/v1/workflows", &bob);
    assert_eq!(code, 200);
    assert_eq!(listed["workflows"][0]["name"], "pair");
    let (code, denied) = d.call("POST", "/v1/workflows/pair/runs", Some(&bob), None);
    assert_eq!(code, 403, "{denied}");
    let (code, missing) = d.call("POST", "/v1/workflows/nope/runs", Some(&bob), None);
    assert_eq!((code, &missing), (403, &denied));

    // Bad bodies from Alice: what is wrong, never a run.
    let (code, body) = d.call(
        "POST",
        "/v1/workflows/pair/runs",
        Some(&alice),
        Some(json!({ "params": { "nope": "x" } })),
    );
    assert_eq!(code, 400, "{body}");
    assert_contains(body["error"]["message"].as_str().unwrap(), "nope");
    let (code, body) = d.call(
        "POST",
        "/v1/workflows/pair/runs",
        Some(&alice),
        Some(json!({ "params": { "day": 3 } })),
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = d.call(
        "POST",
        "/v1/workflows/pair/runs",
        Some(&alice),
        Some(json!("x".repeat(2 << 20))),
    );
    assert_eq!(code, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
    let raw = raw_request(
        &d.addr,
        &format!(
            "POST /v1/workflows/pair/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{{\"params\""
        ),
    );
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert_contains(&raw, "not JSON");

    // Alice starts one, with a parameter.
    let (code, started) = d.call(
        "POST",
        "/v1/workflows/pair/runs",
        Some(&alice),
        Some(json!({ "params": { "day": "2026-12-01" } })),
    );
    assert_eq!(code, 201, "{started}\n{}", d.stderr());
    let run = started["run"].as_str().unwrap().to_owned();
    assert_eq!(started["url"], format!("{}/v1/runs/{run}", d.server()));
    let shown = d.until(&run, &alice, |r| status(r) == "succeeded");
    assert_eq!(shown["user"], "alice");
    assert_eq!(shown["tasks"].as_array().unwrap().len(), 2, "{shown}");
    let (code, logs) = d.get(&format!("/v1/runs/{run}/logs?task=b"), &alice);
    assert_eq!(code, 200);
    assert_eq!(logs["attempts"][0]["outcome"], "success", "{logs}");
    // Bob may not read Alice's run: the same 403 as a run that is not there.
    let (code, body) = d.get(&format!("/v1/runs/{run}"), &bob);
    assert_eq!((code, &body), (403, &denied));
    let (code, body) = d.get("/v1/runs/19990101T000000Z-0000", &alice);
    assert_eq!((code, &body), (403, &denied));
    // Bob lists runs (allowed) but sees only what list_runs allows: all of pair.
    let (code, listed) = d.get("/v1/runs", &bob);
    assert_eq!(code, 200);
    assert_eq!(listed["runs"][0]["id"], run.as_str());

    // The run's audit records: its trigger first, then the run naming it.
    let (code, audit) = d.get(&format!("/v1/runs/{run}/audit"), &alice);
    assert_eq!(code, 200, "{audit}");
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records[0]["kind"], "trigger", "{audit}");
    assert_eq!(records[0]["user"], "alice");
    assert_eq!(records[0]["parameters"]["day"], "2026-12-01");
    assert_eq!(records[1]["kind"], "run-started");
    assert_eq!(records[1]["trigger"], records[0]["seq"]);
    let cancelled = d.call(
        "POST",
        &format!("/v1/runs/{run}/cancel"),
        Some(&alice),
        None,
    );
    assert_eq!(cancelled.0, 409, "{}", cancelled.1);

    let (code, said) = d.term();
    assert_eq!(code, 0, "{said}");
    assert_contains(&said, "stopped");

    // Every decision is recorded with the token's id, and never the token.
    let all = log(&s);
    let text = std::fs::read_to_string(s.path().join(".cairn/audit/log.jsonl")).unwrap();
    for secret in [&alice, &bob] {
        // `cairn_<id>_<secret>`: the secret is URL-safe base64, which may
        // hold `_` itself.
        let secret = secret
            .strip_prefix("cairn_")
            .and_then(|t| t.split_once('_'))
            .map(|(_, s)| s)
            .unwrap();
        assert!(secret.len() >= 40, "{secret}");
        assert!(!text.contains(secret), "a token's secret is in the log");
    }
    let access: Vec<&Value> = all.iter().filter(|r| r["kind"] == "access").collect();
    let trigger_access = all
        .iter()
        .find(|r| r["seq"] == records[0]["access"])
        .unwrap();
    assert_eq!(trigger_access["kind"], "access");
    assert_eq!(trigger_access["action"], "trigger");
    assert_eq!(trigger_access["decision"], "allow");
    let alice_id = &alice["cairn_".len().."cairn_".len() + 12];
    assert_eq!(trigger_access["token"], alice_id);
    assert!(
        access.iter().any(|r| r["action"] == "trigger"
            && r["decision"] == "deny"
            && r["principal"]["id"] == "bob"),
        "Bob's denial is recorded"
    );
    let report = assert_log_verifies(&s);
    assert!(
        report["decisions_reevaluated"].as_u64().unwrap() >= access.len() as u64,
        "{report}"
    );
}

/// Send `request` as is on a new connection; everything the server says.
pub(crate) fn raw_request(addr: &str, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

#[test]
fn a_kill_9_mid_run_resumes_on_restart_without_running_a_finished_task_again() {
    let s = Scratch::new();
    workflow(&s, 0, 3000, "");
    let alice = token(&s, "alice");
    let d = Daemon::start(&s);
    let (code, started) = d.call("POST", "/v1/workflows/pair/runs", Some(&alice), None);
    assert_eq!(code, 201, "{started}");
    let run = started["run"].as_str().unwrap().to_owned();
    // `a` done, `b` under way: kill it.
    d.until(&run, &alice, |r| {
        r["tasks"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["task"] == "a" && t["status"] == "succeeded")
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    d.kill();

    let d = Daemon::start(&s);
    assert_contains(&d.stderr(), &format!("run {run} of pair goes on"));
    let shown = d.until(&run, &alice, |r| status(r) == "succeeded");
    assert_eq!(shown["tasks"].as_array().unwrap().len(), 2, "{shown}");
    let (code, _) = d.term();
    assert_eq!(code, 0);
    let all = log(&s);
    let started_a = kinds(&all, &run, "task-started")
        .into_iter()
        .filter(|r| r["task"] == "a")
        .count();
    assert_eq!(started_a, 1, "a finished task ran again");
    assert_eq!(kinds(&all, &run, "run-resumed").len(), 1);
    assert_eq!(kinds(&all, &run, "run-finished").len(), 1);
    assert_log_verifies(&s);
}

#[test]
fn a_kill_9_between_the_trigger_and_the_run_starts_that_run_once_on_restart() {
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    let alice = token(&s, "alice");
    let d = Daemon::start_with(&s, &[("CAIRN_CRASH_AT", "after-trigger")]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(cairn::serve::client::request(
        "POST",
        &d.server(),
        "/v1/workflows/pair/runs",
        Some(&alice),
        None,
    ));
    assert!(
        answer.is_err(),
        "the daemon answered instead of dying: {answer:?}"
    );
    d.kill();
    let all = log(&s);
    let trigger = all
        .iter()
        .find(|r| r["kind"] == "trigger")
        .expect("the trigger is recorded");
    let run = trigger["starts"].as_str().unwrap().to_owned();
    assert!(kinds(&all, &run, "run-started").is_empty());

    for _ in 0..2 {
        let d = Daemon::start(&s);
        let shown = d.until(&run, &alice, |r| status(r) == "succeeded");
        assert_eq!(shown["tasks"].as_array().unwrap().len(), 2);
        let (code, _) = d.term();
        assert_eq!(code, 0);
    }
    let all = log(&s);
    assert_eq!(
        kinds(&all, &run, "run-started").len(),
        1,
        "started exactly once"
    );
    assert_eq!(all.iter().filter(|r| r["kind"] == "run-started").count(), 1);
    assert_log_verifies(&s);
}

#[test]
fn sigterm_lets_the_task_under_way_finish_and_the_rest_runs_after_restart() {
    let s = Scratch::new();
    workflow(&s, 1500, 0, "");
    let alice = token(&s, "alice");
    let d = Daemon::start(&s);
    let (code, started) = d.call("POST", "/v1/workflows/pair/runs", Some(&alice), None);
    assert_eq!(code, 201, "{started}");
    let run = started["run"].as_str().unwrap().to_owned();
    // `a` is sleeping when the service is told to stop.
    let mut waited = 0;
    while !log(&s)
        .iter()
        .any(|r| r["run"] == run.as_str() && r["kind"] == "task-started")
    {
        std::thread::sleep(Duration::from_millis(20));
        waited += 1;
        assert!(waited < 3000, "a never started");
    }
    let (code, said) = d.term();
    assert_eq!(code, 0, "{said}");
    let all = log(&s);
    let finished: Vec<&Value> = kinds(&all, &run, "task-finished");
    assert_eq!(finished.len(), 1, "a finished within the grace period");
    assert_eq!(finished[0]["task"], "a");
    assert_eq!(finished[0]["outcome"], "success");
    assert!(
        kinds(&all, &run, "run-finished").is_empty(),
        "the run is not over"
    );
    assert_log_verifies(&s);

    let d = Daemon::start(&s);
    d.until(&run, &alice, |r| status(r) == "succeeded");
    let (code, _) = d.term();
    assert_eq!(code, 0);
    let all = log(&s);
    let a_started = kinds(&all, &run, "task-started")
        .into_iter()
        .filter(|r| r["task"] == "a")
        .count();
    assert_eq!(a_started, 1);
    assert_log_verifies(&s);
}

#[test]
fn max_active_runs_queues_and_a_cancel_stops_a_run_and_is_recorded() {
    let s = Scratch::new();
    workflow(&s, 30_000, 0, "max_active_runs = 1");
    let alice = token(&s, "alice");
    let d = Daemon::start(&s);
    let trigger = || {
        let (code, started) = d.call("POST", "/v1/workflows/pair/runs", Some(&alice), None);
        assert_eq!(code, 201, "{started}");
        started["run"].as_str().unwrap().to_owned()
    };
    let first = trigger();
    let second = trigger();
    d.until(&first, &alice, |r| status(r) == "running");
    let (_, queued) = d.get(&format!("/v1/runs/{second}"), &alice);
    assert_eq!(status(&queued), "queued", "{queued}");

    // Cancel the queued one, then the running one.
    let (code, body) = d.call(
        "POST",
        &format!("/v1/runs/{second}/cancel"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 202, "{body}");
    d.until(&second, &alice, |r| status(r) == "cancelled");
    let (code, body) = d.call(
        "POST",
        &format!("/v1/runs/{first}/cancel"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 202, "{body}");
    let shown = d.until(&first, &alice, |r| status(r) == "cancelled");
    assert!(shown["duration_ms"].as_i64().unwrap() < 30_000, "{shown}");
    let (code, _) = d.call(
        "POST",
        &format!("/v1/runs/{first}/cancel"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 409);
    let (code, _) = d.term();
    assert_eq!(code, 0);
    let all = log(&s);
    for run in [&first, &second] {
        let ended = kinds(&all, run, "run-finished");
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0]["status"], "cancelled");
    }
    assert!(
        all.iter().any(|r| r["kind"] == "access"
            && r["action"] == "cancel_run"
            && r["decision"] == "allow")
    );
    assert_log_verifies(&s);
}

#[test]
fn a_broken_edit_keeps_the_last_good_version_served_and_a_fix_is_picked_up() {
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    let alice = token(&s, "alice");
    let d = Daemon::start(&s);
    let digest = |d: &Daemon| {
        let (code, shown) = d.get("/v1/workflows/pair", &alice);
        assert_eq!(code, 200, "{shown}");
        shown["manifest_sha256"].as_str().unwrap().to_owned()
    };
    let before = digest(&d);
    let good = std::fs::read_to_string(s.path().join("workflow.toml")).unwrap();
    s.write(
        "workflow.toml",
        &good.replace("[params]", "max_active_runs = 0\n[params]"),
    );
    // The warning and its diagnostic are written one after the other:
    // wait for the diagnostic, not just the warning's first line.
    wait_for(|| d.stderr().contains("must be at least 1"));
    assert_contains(&d.stderr(), "does not load");
    assert_contains(
        &d.stderr(),
        "workflow.toml:5:19: `max_active_runs` must be at least 1",
    );
    assert_eq!(digest(&d), before, "the last good version is still served");
    let (code, started) = d.call("POST", "/v1/workflows/pair/runs", Some(&alice), None);
    assert_eq!(code, 201, "{started}");

    s.write("workflow.toml", &format!("{good}# changed\n"));
    wait_for(|| digest(&d) != before);
    let (code, _) = d.term();
    assert_eq!(code, 0);
    let loaded = log(&s)
        .into_iter()
        .filter(|r| r["kind"] == "workflow-loaded")
        .count();
    assert_eq!(loaded, 2, "the first version and the fix");
    assert_log_verifies(&s);
}

pub(crate) fn wait_for(done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_openapi_document_matches_the_routes_and_their_answers() {
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    s.append(
        "workflow.toml",
        "\n[schedules.yearly]\ncron = \"@yearly\"\nas = \"scheduler\"\n",
    );
    let alice = token(&s, "alice");
    let d = Daemon::start(&s);
    let (code, doc) = d.call("GET", "/v1/openapi.json", None, None);
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = cairn::serve::api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes, "the document and the router differ");

    let (_, started) = d.call("POST", "/v1/workflows/pair/runs", Some(&alice), None);
    let run = started["run"].as_str().unwrap().to_owned();
    d.until(&run, &alice, |r| status(r) == "succeeded");
    // Every operation, asked as Alice: an answer the document lists, and
    // for a success the fields its schema requires.
    for (method, path) in &documented {
        let concrete = path
            .replace("{workflow}", "pair")
            .replace("{run}", &run)
            .replace("{schedule}", "yearly");
        let (code, body) = d.call(method, &concrete, Some(&alice), None);
        let responses = &doc["paths"][path][method.to_lowercase()]["responses"];
        assert!(
            responses.get(code.to_string()).is_some(),
            "{method} {path} answered {code}, which the document does not list: {body}"
        );
        if let Some(schema) =
            responses[code.to_string()]["content"]["application/json"]["schema"].as_object()
        {
            let schema = resolve(&doc, &Value::Object(schema.clone()));
            for field in schema["required"].as_array().into_iter().flatten() {
                assert!(
                    body.get(field.as_str().unwrap()).is_some(),
                    "{method} {path}: `{field}` missing from {body}"
                );
            }
        }
        // Without a token: 401, listed too (but for the open two).
        let (code, _) = d.call(method, &concrete, None, None);
        // Webhooks authenticate by signature, not token (tests/e2e/webhooks.rs).
        let open =
            path == "/v1/health" || path == "/v1/openapi.json" || path.starts_with("/v1/hooks/");
        assert_eq!(
            code == 401,
            !open,
            "{method} {path} without a token: {code}"
        );
        if !open {
            assert!(
                responses.get("401").is_some(),
                "{method} {path} does not list 401"
            );
        }
    }
    let (code, body) = d.call("GET", "/v1/nothing", Some(&alice), None);
    assert_eq!(code, 404, "{body}");
}

/// `schema`, with a top-level `$ref` resolved.
fn resolve(doc: &Value, schema: &Value) -> Value {
    match schema["$ref"].as_str() {
        Some(at) => doc
            .pointer(at.trim_start_matches('#'))
            .cloned()
            .unwrap_or(Value::Null),
        None => schema.clone(),
    }
}

#[test]
fn a_stalled_client_is_cut_off_and_the_cli_client_triggers_and_waits() {
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    let alice = token(&s, "alice");
    let bob = token(&s, "bob");
    let d = Daemon::start(&s);
    // Half a request line, then nothing: cut off within the header timeout,
    // while others are served.
    let mut stalled = std::net::TcpStream::connect(&d.addr).unwrap();
    stalled.write_all(b"GET /v1/health HTTP/1.1\r\nHo").unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (code, _) = d.call("GET", "/v1/health", None, None);
    assert_eq!(code, 200);
    let cut = Instant::now();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(cut.elapsed() < Duration::from_secs(25), "not cut off");

    // `cairn trigger --wait` and `cairn runs --server`.
    let client = |token: &str, args: &[&str]| {
        let out = cairn()
            .current_dir(s.path())
            .env("CAIRN_SERVER", d.server())
            .env("CAIRN_TOKEN", token)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = client(
        &alice,
        &[
            "trigger",
            "pair",
            "--param",
            "day=2026-12-02",
            "--wait",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let run: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status(&run), "succeeded");
    let (code, _, stderr) = client(&bob, &["trigger", "pair"]);
    assert_eq!(code, 3, "{stderr}");
    assert_contains(&stderr, "403");
    let (code, _, stderr) = client("cairn_nope", &["runs", "list"]);
    assert_eq!(code, 2, "{stderr}");
    assert_contains(&stderr, "401");
    let (code, stdout, stderr) = client(&alice, &["runs", "list", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed[0]["id"], run["id"]);
    let id = run["id"].as_str().unwrap();
    let (code, stdout, _) = client(&alice, &["runs", "show", id]);
    assert_eq!(code, 0);
    assert_contains(&stdout, "succeeded");
    let (code, stdout, _) = client(&alice, &["runs", "logs", id, "b"]);
    assert_eq!(code, 0);
    assert_contains(&stdout, "== b attempt 1: success");
    let (code, _) = d.term();
    assert_eq!(code, 0);
    assert_log_verifies(&s);
}

#[test]
fn the_runs_list_comes_a_page_at_a_time_filtered_by_status() {
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    let alice = token(&s, "alice");
    let d = Daemon::start(&s);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (code, started) = d.call("POST", "/v1/workflows/pair/runs", Some(&alice), None);
        assert_eq!(code, 201, "{started}\n{}", d.stderr());
        let run = started["run"].as_str().unwrap().to_owned();
        d.until(&run, &alice, |r| status(r) == "succeeded");
        ids.push(run);
    }
    let listed = |page: &Value| -> Vec<String> {
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Two, then the rest by the `next` link; newest first.
    let (code, first) = d.get("/v1/runs?limit=2&status=succeeded", &alice);
    assert_eq!(code, 200, "{first}");
    let next = first["next"].as_str().unwrap().to_owned();
    let path = next.strip_prefix(&d.server()).unwrap();
    assert_contains(path, "status=succeeded");
    let (code, second) = d.get(path, &alice);
    assert_eq!(code, 200, "{second}");
    assert_eq!(second["next"], Value::Null, "the last page");
    let mut all = listed(&first);
    all.extend(listed(&second));
    ids.reverse();
    assert_eq!(all, ids);
    let (_, failed) = d.get("/v1/runs?status=failed", &alice);
    assert_eq!(listed(&failed), Vec::<String>::new());

    let (code, body) = d.get("/v1/runs?status=done", &alice);
    assert_eq!(code, 400, "{body}");
    assert_contains(
        &body.to_string(),
        "no run is `done`; it is one of queued, running",
    );
    let (code, body) = d.get("/v1/runs?after=nope", &alice);
    assert_eq!(code, 400, "{body}");
    assert_contains(&body.to_string(), "no run `nope` in this listing");
    let _ = d.term();
}
