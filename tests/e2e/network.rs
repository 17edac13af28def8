//! Network egress: tasks reach declared endpoints over `wasi:http`, each
//! request authorized by Cedar as it is sent and recorded in the audit log;
//! injected secrets reach only the requests policy allows them in.
//!
//! A real HTTP server runs on 127.0.0.1 in the test; the real `cairn`
//! binary runs a workflow of the test task in its `http` mode.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deploy_api::{Handler, Request, Response};
use serde_json::Value;

use crate::support::{Scratch, assert_contains, run_in};

const TOKEN: &str = "tok-live-5f2c9d81e7";

/// A server on 127.0.0.1 that keeps every request it receives.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&seen);
        let handler: Handler = Arc::new(move |request: &Request| {
            kept.lock().unwrap().push(request.clone());
            route(request)
        });
        std::thread::spawn(move || deploy_api::serve(&listener, &handler));
        Self { port, seen }
    }

    fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect()
    }
}

fn route(request: &Request) -> Response {
    match request.path() {
        "/ok" => Response::new(200, "hello from 127.0.0.1"),
        // Answers with what it was sent: a server that reflects credentials.
        "/deploy" | "/echo" => Response::new(
            200,
            format!(
                "auth=[{}] body=[{}]",
                request.header("authorization").unwrap_or_default(),
                String::from_utf8_lossy(&request.body)
            ),
        ),
        // An OTLP collector that takes whatever it is sent.
        "/v1/traces" => Response::new(200, ""),
        "/redirect" => {
            Response::new(302, "").header("location", request.query("to").unwrap_or("/"))
        }
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            Response::new(200, "late")
        }
        _ => Response::new(404, "no such thing"),
    }
}

/// Policies: GETs of /ok, /echo and /redirect; `deploy` may POST /deploy;
/// nobody reaches /admin; the token goes only into deploy's POST /deploy.
fn rules(port: u16) -> String {
    format!(
        r#"
@id("anyone-runs") permit (principal, action == Cairn::Action::"run", resource);
@id("reads") permit (principal, action == Cairn::Action::"connect", resource == Cairn::Host::"127.0.0.1:{port}")
when {{ context.method == "GET" && ["/ok", "/echo", "/redirect", "/slow"].contains(context.path) }};
@id("deploy-posts") permit (principal == Cairn::Task::"deploy", action == Cairn::Action::"connect", resource)
when {{ context.method == "POST" && context.path == "/deploy" }};
@id("no-admin") forbid (principal, action == Cairn::Action::"connect", resource)
when {{ context.path like "/admin*" }};
@id("token-for-deploys") permit (principal == Cairn::Task::"deploy", action == Cairn::Action::"inject_secret", resource == Cairn::Secret::"api_token")
when {{ context.endpoint == "127.0.0.1:{port}" && context.method == "POST" && context.path == "/deploy" }};
"#
    )
}

/// A task of the test task in `http` mode.
fn task(name: &str, port: u16, env: &str, extra: &str) -> String {
    format!(
        "[tasks.{name}]\ncomponent = {task:?}\nnetwork = [\"127.0.0.1:{port}\"]\n\
         env = {{ MODE = \"http\", {env} }}\noutputs = [\"echo\"]\n{extra}\n",
        task = cairn_tests::TASK
    )
}

struct Outcome {
    scratch: Scratch,
    run: crate::support::Run,
}

impl Outcome {
    /// The `http-request` records of task `name`.
    fn requests(&self, name: &str) -> Vec<Value> {
        let shown = run_in(
            self.scratch.path(),
            &["audit", "show", "--kind", "http-request", "--json"],
        );
        shown
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["task"] == name)
            .collect()
    }

    /// Task `name` in the run's JSON summary.
    fn task(&self, name: &str) -> Value {
        let json: Value = serde_json::from_str(&self.run.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}\n{}", self.run.stdout, self.run.stderr);
        });
        json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task"] == name)
            .unwrap_or_else(|| panic!("no task {name} in {json}"))
            .clone()
    }

    /// Task `name`'s output (it succeeded).
    fn output(&self, name: &str) -> String {
        let task = self.task(name);
        let path = task["outputs"][0]["path"].as_str().unwrap_or_default();
        std::fs::read_to_string(self.scratch.path().join(path))
            .unwrap_or_else(|e| panic!("output of {name} ({task}): {e}"))
    }

    /// Why task `name` failed.
    fn failure(&self, name: &str) -> String {
        self.task(name)["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn run_workflow(server: &Server, tasks: &str) -> Outcome {
    let s = Scratch::new();
    s.mkdir("p");
    s.write("p/rules.cedar", &rules(server.port));
    let manifest = format!("[workflow]\nname = \"net\"\npolicies = [\"p\"]\n{tasks}");
    s.write("workflow.toml", &manifest);
    let out = crate::support::cairn()
        .current_dir(s.path())
        .env("CAIRN_SECRET_API_TOKEN", TOKEN)
        .args(["run", "--as", "ci", "--json"])
        .output()
        .unwrap();
    let run = crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let verified = run_in(
        s.path(),
        &["audit", "verify", "--key", ".cairn/keys/audit.pub"],
    );
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let log = std::fs::read_to_string(s.path().join(".cairn/audit/log.jsonl")).unwrap();
    assert!(!log.contains(TOKEN), "the audit log holds the secret");
    Outcome { scratch: s, run }
}

fn reason(record: &Value) -> &str {
    record["reason"].as_str().unwrap_or_default()
}

#[test]
fn requests_are_checked_one_by_one_as_they_are_sent() {
    let server = Server::start();
    let other = Server::start();
    let (p, q) = (server.port, other.port);
    let tasks = [
        task(
            "allowed",
            p,
            &format!("URLS = \"http://127.0.0.1:{p}/ok\""),
            "",
        ),
        task(
            "undeclared",
            p,
            &format!("URLS = \"http://localhost:{p}/ok,http://127.0.0.1:{q}/ok\""),
            "",
        ),
        task(
            "bad_path",
            p,
            &format!("URLS = \"http://127.0.0.1:{p}/admin/users\""),
            "",
        ),
        task(
            "dotted",
            p,
            &format!("URLS = \"http://127.0.0.1:{p}/ok/../admin/users,http://127.0.0.1:{p}/%2E%2E/admin\""),
            "",
        ),
        task(
            "bad_method",
            p,
            &format!("URLS = \"http://127.0.0.1:{p}/ok\", METHOD = \"DELETE\""),
            "",
        ),
        task(
            "redirected",
            p,
            &format!(
                "URLS = \"http://127.0.0.1:{p}/redirect?to=http://127.0.0.1:{q}/ok,\
                 http://127.0.0.1:{p}/redirect?to=/admin/keys\""
            ),
            "",
        ),
    ]
    .concat();
    let outcome = run_workflow(&server, &tasks);
    assert_eq!(outcome.run.code, 1, "{}", outcome.run.stderr);

    // Allowed: sent, answered, recorded with status and sizes.
    assert_contains(&outcome.output("allowed"), "-> 200 hello from 127.0.0.1");
    let allowed = outcome.requests("allowed");
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["allowed"], true);
    assert_eq!(allowed[0]["status"], 200);
    assert_eq!(allowed[0]["method"], "GET");
    assert_eq!(allowed[0]["path"], "/ok");
    assert_eq!(allowed[0]["received_bytes"], 20);

    // An undeclared host, and the declared host on another port.
    let undeclared = outcome.requests("undeclared");
    assert_eq!(undeclared.len(), 2);
    assert!(undeclared.iter().all(|r| r["allowed"] == false));
    assert_contains(
        reason(&undeclared[0]),
        &format!("`localhost:{p}` is not declared in the task's `network`"),
    );
    assert_contains(
        reason(&undeclared[1]),
        &format!("`127.0.0.1:{q}` is not declared in the task's `network`"),
    );

    // A declared host, but a path or a method policy does not allow.
    let bad_path = outcome.requests("bad_path");
    assert_eq!(bad_path[0]["allowed"], false);
    assert_eq!(
        reason(&bad_path[0]),
        "denied by policy: forbidden by no-admin"
    );
    // Paths a server could resolve elsewhere are refused before policy.
    let dotted = outcome.requests("dotted");
    assert_eq!(dotted.len(), 2);
    for record in &dotted {
        assert_eq!(record["allowed"], false);
        assert_contains(reason(record), "has dot segments");
    }
    let bad_method = outcome.requests("bad_method");
    assert_eq!(bad_method[0]["method"], "DELETE");
    assert_eq!(
        reason(&bad_method[0]),
        "denied by policy: no policy permits it"
    );

    // Redirects: the first hop is allowed; where it points is a new
    // request, denied like any other.
    let redirected = outcome.requests("redirected");
    let summary: Vec<(bool, String)> = redirected
        .iter()
        .map(|r| (r["allowed"] == true, reason(r).to_owned()))
        .collect();
    assert_eq!(redirected.len(), 4, "{summary:?}");
    assert_eq!(redirected[0]["status"], 302);
    assert_contains(&summary[1].1, &format!("`127.0.0.1:{q}` is not declared"));
    assert_eq!(redirected[2]["status"], 302);
    assert_eq!(redirected[3]["path"], "/admin/keys");
    assert_eq!(summary[3].1, "denied by policy: forbidden by no-admin");
    assert_contains(&outcome.failure("redirected"), "denied by the host");

    // Nothing denied reached a server.
    assert!(other.seen().is_empty(), "{:?}", other.paths());
    let reached = server.paths();
    assert!(
        server
            .seen()
            .iter()
            .all(|r| !r.path().starts_with("/admin") && r.method != "DELETE"),
        "{reached:?}"
    );
    assert_eq!(reached.len(), 3, "{reached:?}");

    // Every decision is in the log, re-evaluated by verify.
    let shown = run_in(
        outcome.scratch.path(),
        &["audit", "show", "--kind", "decision", "--json"],
    );
    let connects = shown
        .stdout
        .lines()
        .filter(|l| l.contains(r#""action":"connect""#))
        .count();
    // 1 allowed + 2 policy denials + 2 hops allowed + 1 hop denied by policy
    // (undeclared endpoints never reach policy).
    assert_eq!(connects, 6, "{}", shown.stdout);
}

#[test]
fn a_placeholder_becomes_the_secret_only_where_policy_allows() {
    let server = Server::start();
    let p = server.port;
    let inject = "inject = { api_token = \"headers+body\" }";
    let tasks = [
        task(
            "deploy",
            p,
            &format!(
                "URLS = \"http://127.0.0.1:{p}/deploy\", METHOD = \"POST\", \
                 AUTH_SECRET = \"api_token\", BODY = \"token={{secret}}\", BODY_SECRET = \"api_token\""
            ),
            inject,
        ),
        // Declared and allowed to GET /echo, but the token is not for it.
        task(
            "leaky",
            p,
            &format!(
                "URLS = \"http://127.0.0.1:{p}/echo\", AUTH_SECRET = \"api_token\""
            ),
            inject,
        ),
    ]
    .concat();
    let outcome = run_workflow(&server, &tasks);
    assert_eq!(outcome.run.code, 0, "{}", outcome.run.stderr);

    let seen = server.seen();
    let deploy = seen.iter().find(|r| r.path() == "/deploy").unwrap();
    assert_eq!(
        deploy.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(deploy.body, format!("token={TOKEN}").as_bytes());
    let echo = seen.iter().find(|r| r.path() == "/echo").unwrap();
    let sent = echo.header("authorization").unwrap();
    assert!(sent.starts_with("Bearer cairn-secret-api_token-"), "{sent}");
    assert!(!sent.contains(TOKEN));

    // The guest never sees the value, not even reflected back by the server.
    let deployed = outcome.output("deploy");
    assert_contains(&deployed, "auth=[Bearer ***] body=[token=***]");
    assert!(!outcome.run.stdout.contains(TOKEN) && !outcome.run.stderr.contains(TOKEN));

    let records = outcome.requests("deploy");
    assert_eq!(records[0]["injected"], serde_json::json!(["api_token"]));
    let records = outcome.requests("leaky");
    assert_eq!(records[0]["allowed"], true);
    assert_eq!(records[0]["injected"], serde_json::json!([]));
    assert_eq!(records[0]["withheld"], serde_json::json!(["api_token"]));
}

#[test]
fn request_count_sizes_and_time_are_limited() {
    let server = Server::start();
    let p = server.port;
    let ok = format!("http://127.0.0.1:{p}/ok");
    let tasks = [
        task(
            "counted",
            p,
            &format!("URLS = \"{ok},{ok},{ok}\""),
            "http_requests = 2",
        ),
        task(
            "small_responses",
            p,
            &format!("URLS = \"{ok}\""),
            "http_response_size = \"8B\"",
        ),
        task(
            "small_requests",
            p,
            &format!(
                "URLS = \"http://127.0.0.1:{p}/deploy\", METHOD = \"POST\", BODY = \"0123456789\""
            ),
            "http_request_size = \"4B\"",
        ),
        task(
            "impatient",
            p,
            &format!("URLS = \"http://127.0.0.1:{p}/slow\""),
            "http_timeout = \"300ms\"",
        ),
    ]
    .concat();
    let outcome = run_workflow(&server, &tasks);
    assert_eq!(outcome.run.code, 1);

    let counted = outcome.requests("counted");
    assert_eq!(counted.len(), 3);
    assert_eq!(counted[1]["allowed"], true);
    assert_eq!(counted[2]["allowed"], false);
    assert_eq!(
        reason(&counted[2]),
        "the task may make at most 2 requests per attempt"
    );
    assert_contains(
        reason(&outcome.requests("small_responses")[0]),
        "the body is larger than 8 bytes",
    );
    // Not allowed for this task by policy before its size matters.
    assert_contains(
        reason(&outcome.requests("small_requests")[0]),
        "denied by policy",
    );
    let impatient = &outcome.requests("impatient")[0];
    assert_eq!(impatient["allowed"], true);
    assert_contains(reason(impatient), "no complete response within 300ms");
    assert!(impatient["duration_ms"].as_u64().unwrap() < 2500);
}

#[test]
fn a_secret_in_a_failure_message_is_masked_with_its_encodings() {
    let s = Scratch::new();
    s.write("mode", "secret-fail");
    s.write("token.txt", "tok-3f9a-very-secret\n");
    let (run, json) = crate::support::exec_json(
        s.path(),
        cairn_tests::TASK,
        &["--input", "mode=mode", "--secret", "token=file:token.txt"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        json["outcome"]["message"],
        "failed: rejected token *** (base64 ***)"
    );
    let everything = format!("{}{}", run.stdout, run.stderr);
    assert!(!everything.contains("tok-3f9a-very-secret"), "{everything}");
}

#[test]
fn exec_reaches_only_the_endpoints_given_with_net() {
    let server = Server::start();
    let p = server.port;
    let s = Scratch::new();
    let (run, json) = crate::support::exec_json(
        s.path(),
        cairn_tests::TASK,
        &[
            "--net",
            &format!("127.0.0.1:{p}"),
            "--env",
            "MODE=http",
            "--env",
            &format!("URLS=http://127.0.0.1:{p}/ok,http://127.0.0.1:1/ok"),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(json["requests"][0]["status"], 200);
    assert_eq!(json["requests"][1]["allowed"], false);
    assert_contains(
        json["denials"][0].as_str().unwrap(),
        "`127.0.0.1:1` is not declared",
    );
    assert_eq!(server.paths(), ["GET /ok"]);
}

#[test]
fn a_traced_run_passes_its_trace_context_only_to_requests_policy_allows() {
    let server = Server::start();
    let collector = Server::start();
    let p = server.port;
    let s = Scratch::new();
    s.mkdir("p");
    s.write(
        "p/rules.cedar",
        &format!(
            "{}\n@id(\"trace-to-traced\") permit (principal == Cairn::Task::\"traced\", action == Cairn::Action::\"propagate_trace\", resource == Cairn::Host::\"127.0.0.1:{p}\");\n",
            rules(p)
        ),
    );
    let urls = format!("URLS = \"http://127.0.0.1:{p}/echo,http://127.0.0.1:{p}/ok\"");
    s.write(
        "workflow.toml",
        &format!(
            "[workflow]\nname = \"net\"\npolicies = [\"p\"]\n{}{}",
            task("traced", p, &urls, ""),
            task("untraced", p, &urls, "")
        ),
    );
    let run = |traced: bool| {
        let mut command = crate::support::cairn();
        command
            .current_dir(s.path())
            .args(["run", "--as", "ci", "--json"]);
        if traced {
            command.env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{}", collector.port),
            );
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let traceparents = |path: &str| -> Vec<Option<String>> {
        server
            .seen()
            .iter()
            .filter(|r| r.path() == path)
            .map(|r| r.header("traceparent").map(str::to_owned))
            .collect()
    };

    // Not traced: no task's request carries a trace context.
    run(false);
    assert_eq!(traceparents("/echo"), [None, None]);

    // Traced: the task policy allows it for carries its attempt's.
    run(true);
    let seen = server.seen();
    let carried: Vec<(&str, String)> = seen
        .iter()
        .skip(4)
        .filter_map(|r| Some((r.path(), r.header("traceparent")?.to_owned())))
        .collect();
    assert_eq!(
        carried.len(),
        2,
        "the traced task's two requests: {carried:?}"
    );
    let (_, first) = &carried[0];
    assert_eq!(carried[1].1, *first, "one attempt, one context");
    let fields: Vec<&str> = first.split('-').collect();
    assert_eq!(fields.len(), 4, "{first}");
    assert_eq!((fields[0], fields[3]), ("00", "01"), "{first}");
    assert!(
        fields[1].len() == 32 && fields[2].len() == 16,
        "W3C ids: {first}"
    );
    assert!(
        fields[1..3].iter().all(|f| f
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())),
        "{first}"
    );
    assert_eq!(
        seen.iter()
            .skip(4)
            .filter(|r| r.header("traceparent").is_none())
            .count(),
        2,
        "the untraced task's two requests go without"
    );
    assert!(
        !collector.seen().is_empty(),
        "the spans reached the collector"
    );
    // Each offer is a recorded decision: allowed for one task, denied
    // (by default) for the other, and the log verifies.
    let shown = run_in(s.path(), &["audit", "show", "--kind", "decision", "--json"]);
    let decided: Vec<(String, String)> = shown
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["action"] == "propagate_trace")
        .map(|r| {
            (
                r["task"].as_str().unwrap().to_owned(),
                r["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let count = |task: &str, decision: &str| {
        decided
            .iter()
            .filter(|(t, d)| t == task && d == decision)
            .count()
    };
    assert_eq!(
        (count("traced", "allow"), count("untraced", "deny")),
        (2, 2),
        "{decided:?}"
    );
    let verified = run_in(
        s.path(),
        &["audit", "verify", "--key", ".cairn/keys/audit.pub"],
    );
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}
