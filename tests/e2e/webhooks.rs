//! Webhooks in the real daemon: a signed delivery (GitHub's
//! `X-Hub-Signature-256`, Standard Webhooks' `webhook-signature`) starts
//! a run as the webhook's principal with the body as the `trigger.body`
//! input, labelled; a replay is acknowledged without a second run; a bad
//! or stale signature is 401, a principal policy does not permit 403,
//! each recorded; a `kill -9` between the delivery and its run starts
//! that run once, and the replay after it is still known.

use std::time::Duration;

use serde_json::Value;

use crate::serve::{Daemon, assert_log_verifies, kinds, log, raw_request, wait_for};
use crate::support::Scratch;
use cairn::serve::webhook::{Scheme, sign};

const GITHUB_SECRET: &str = "it's a secret to everybody";
const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD: &str = "whsec_c2VjcmV0LW9mLWxhc3QteWVhcg==";

const HOOK_RULES: &str = r#"
@id("hooks-trigger") permit (principal, action == Cairn::Action::"trigger", resource)
when { context.via == "webhook" && (principal == Cairn::User::"github" || principal == Cairn::User::"partner") };
"#;

fn workflow(s: &Scratch) {
    s.policies();
    s.write("p/hooks.cedar", HOOK_RULES);
    s.write(
        "workflow.toml",
        &format!(
            r#"[workflow]
name = "hooked"
policies = ["p"]

[tasks.read]
component = {:?}
env = {{ MODE = "work", NAME = "read" }}
inputs = {{ event = "trigger.body" }}
outputs = ["echo"]

[webhooks.github]
scheme = "github"
secret = "gh_hook"
as = "github"
labels = ["untrusted", "external"]

[webhooks.partner]
scheme = "standard"
secret = "std_hook"
as = "partner"
tolerance = "2m"

[webhooks.intruder]
scheme = "github"
secret = "gh_hook"
as = "mallory"
"#,
            cairn_tests::TASK
        ),
    );
}

fn start(s: &Scratch, crash: Option<&str>) -> Daemon {
    let both = format!("{KEY} {OLD}");
    let mut env = vec![
        ("CAIRN_SECRET_GH_HOOK", GITHUB_SECRET),
        ("CAIRN_SECRET_STD_HOOK", both.as_str()),
    ];
    if let Some(point) = crash {
        env.push(("CAIRN_CRASH_AT", point));
    }
    Daemon::start_with(s, &env)
}

/// POST `body` to webhook `hook` with `headers`: the status and the JSON
/// answer.
fn deliver(d: &Daemon, hook: &str, headers: &[(String, String)], body: &str) -> (u16, Value) {
    let mut request = format!(
        "POST /v1/hooks/hooked/{hook} HTTP/1.1\r\nHost: cairn\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let answer = raw_request(&d.addr, &request);
    let status: u16 = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn deliveries<'a>(log: &'a [Value], result: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|r| r["kind"] == "delivery" && r["result"] == result)
        .collect()
}

fn finished(s: &Scratch, run: &str) -> bool {
    let text = std::fs::read_to_string(s.path().join(".cairn/audit/log.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|r| r["run"] == run && r["kind"] == "run-finished")
}

/// What task `read` of run `run` wrote to its `echo` output.
fn echoed(s: &Scratch, all: &[Value], run: &str) -> String {
    let done = kinds(all, run, "task-finished");
    let echo = done[0]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "echo")
        .unwrap_or_else(|| panic!("no echo output: {}", done[0]));
    let hex = echo["sha256"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    std::fs::read_to_string(s.path().join(".cairn/artifacts/sha256").join(hex)).unwrap()
}

#[test]
fn a_signed_delivery_runs_with_its_body_as_a_labelled_input_and_a_replay_starts_nothing() {
    let s = Scratch::new();
    workflow(&s);
    let d = start(&s, None);
    let body = r#"{"ref":"refs/heads/main","after":"5f3c"}"#;

    // GitHub: accepted, run started as `github`.
    let signed = sign(Scheme::GitHub, GITHUB_SECRET, "d-1", 0, body.as_bytes());
    let (code, answer) = deliver(&d, "github", &signed, body);
    assert_eq!(code, 202, "{answer}\n{}", d.stderr());
    assert_eq!(answer["duplicate"], false);
    let run = answer["run"].as_str().unwrap().to_owned();
    wait_for(|| finished(&s, &run));
    // The replay: the same run, nothing new.
    let (code, again) = deliver(&d, "github", &signed, body);
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["run"], run.as_str());
    // One byte changed: 401.
    let (code, answer) = deliver(&d, "github", &signed, &body.replace("5f3c", "5f3d"));
    assert_eq!(code, 401, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{answer}"
    );
    // No signature at all: 401.
    let (code, _) = deliver(
        &d,
        "github",
        &[("X-GitHub-Delivery".into(), "d-2".into())],
        body,
    );
    assert_eq!(code, 401);

    // Standard Webhooks, signed with the old key of two: accepted.
    let signed = sign(Scheme::Standard, OLD, "msg-1", now(), body.as_bytes());
    let (code, answer) = deliver(&d, "partner", &signed, body);
    assert_eq!(code, 202, "{answer}");
    let partner_run = answer["run"].as_str().unwrap().to_owned();
    // Ten minutes old: stale, 401.
    let stale = sign(Scheme::Standard, KEY, "msg-2", now() - 600, body.as_bytes());
    let (code, answer) = deliver(&d, "partner", &stale, body);
    assert_eq!(code, 401);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tolerance"),
        "{answer}"
    );
    // A principal no policy permits: 403, though the signature is good.
    let signed = sign(Scheme::GitHub, GITHUB_SECRET, "d-3", 0, body.as_bytes());
    let (code, _) = deliver(&d, "intruder", &signed, body);
    assert_eq!(code, 403);
    // No such webhook: 404.
    let (code, _) = deliver(&d, "nope", &signed, body);
    assert_eq!(code, 404);
    wait_for(|| finished(&s, &partner_run));
    let (code, _) = d.term();
    assert_eq!(code, 0);

    let all = log(&s);
    // The body reached the task as its input, labelled.
    assert_eq!(echoed(&s, &all, &run), format!("read(event={body})"));
    let flow = kinds(&all, &run, "data-flow");
    assert_eq!(flow[0]["from"], "trigger.body");
    assert_eq!(
        flow[0]["labels"],
        serde_json::json!(["external", "untrusted"])
    );
    // Accepted: after an allowed trigger, the key and body named; the
    // trigger names the delivery and gives the body; one run each.
    let accepted = deliveries(&all, "accepted");
    assert_eq!(accepted.len(), 2);
    for delivery in &accepted {
        let access = &all[delivery["access"].as_u64().unwrap() as usize];
        assert_eq!(access["decision"], "allow");
        assert_eq!(access["context"]["via"], "webhook");
        assert_eq!(access["principal"]["id"], delivery["user"]);
        let started = delivery["starts"].as_str().unwrap();
        let trigger = all
            .iter()
            .find(|r| r["kind"] == "trigger" && r["starts"] == started)
            .unwrap();
        assert_eq!(trigger["cause"], delivery["seq"]);
        assert_eq!(trigger["via"], "webhook");
        assert_eq!(trigger["body"]["sha256"], delivery["sha256"]);
        assert_eq!(kinds(&all, started, "run-started").len(), 1);
    }
    assert_eq!(accepted[0]["scheme"], "github");
    assert_eq!(
        accepted[0]["sha256"],
        cairn::audit::verify::sha256_tag(body.as_bytes())
    );
    // Rotation: the old key signed, and the record names it by its id.
    assert_eq!(accepted[1]["scheme"], "standard");
    assert_eq!(accepted[1]["key"].as_str().unwrap().len(), 12);
    // Refusals, each recorded with why.
    assert_eq!(deliveries(&all, "duplicate").len(), 1);
    assert_eq!(deliveries(&all, "duplicate")[0]["starts"], run.as_str());
    assert_eq!(deliveries(&all, "bad-signature").len(), 1);
    assert_eq!(deliveries(&all, "malformed").len(), 1);
    assert_eq!(deliveries(&all, "stale").len(), 1);
    let denied = deliveries(&all, "denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(
        all[denied[0]["access"].as_u64().unwrap() as usize]["decision"],
        "deny"
    );
    assert_eq!(all.iter().filter(|r| r["kind"] == "run-started").count(), 2);
    assert_log_verifies(&s);
}

#[test]
fn a_kill_9_between_a_delivery_and_its_run_starts_that_run_once_and_still_knows_the_replay() {
    let s = Scratch::new();
    workflow(&s);
    let body = r#"{"ref":"refs/heads/main"}"#;
    let signed = sign(Scheme::GitHub, GITHUB_SECRET, "d-9", 0, body.as_bytes());
    let d = start(&s, Some("after-delivery"));
    let (code, _) = deliver(&d, "github", &signed, body);
    assert_eq!(
        code, 0,
        "no answer: the daemon died after recording the delivery"
    );
    let _ = d.exited(Duration::from_secs(30));
    let all = log(&s);
    let accepted = deliveries(&all, "accepted");
    assert_eq!(accepted.len(), 1);
    let run = accepted[0]["starts"].as_str().unwrap().to_owned();
    assert!(kinds(&all, &run, "run-started").is_empty());

    let d = start(&s, None);
    wait_for(|| finished(&s, &run));
    let (code, again) = deliver(&d, "github", &signed, body);
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["run"], run.as_str());
    let (code, _) = d.term();
    assert_eq!(code, 0);
    let all = log(&s);
    assert_eq!(kinds(&all, &run, "run-started").len(), 1);
    assert_eq!(echoed(&s, &all, &run), format!("read(event={body})"));
    assert_log_verifies(&s);
}
