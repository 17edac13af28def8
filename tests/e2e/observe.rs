//! What operators watch, checked with implementations that share none of
//! Cairn's code: `/metrics` after real runs, parsed by Python's
//! `prometheus_client`; the Grafana dashboard's every metric present;
//! `--log-format json` lines that parse.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{Daemon, token, workflow};
use crate::support::Scratch;
use crate::toolchains;

/// A workflow whose one task fails every attempt (retried once).
const FLAKY: &str = r#"[workflow]
name = "flaky"
policies = ["../p"]

[tasks.fetch]
component = COMPONENT
env = { MODE = "transient" }
retries = { max = 1, backoff = "fixed", initial = "10ms", jitter = false }
timeout = "60s"
"#;

/// `GET /metrics` on `addr`: the status line, the content type, the body.
fn scrape(addr: &str) -> (String, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.lines().next().unwrap_or_default().to_owned();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// The families `text` parses into with `prometheus_client`'s parser:
/// `[{name, type, samples: [{name, labels, value}]}]`.
fn parse_with_prometheus_client(python: &std::path::Path, text: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, text).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = []
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    families.append({"name": f.name, "type": f.type, "samples": [
        {"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
print(json.dumps(families))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The sum of the samples named `name` whose labels include `labels`.
fn sum(families: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_f64().unwrap())
        .sum()
}

/// The `cairn_*` metric names the dashboard's queries use.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/observability/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .expect("the dashboard is JSON");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a Prometheus query");
            let mut rest = expr;
            while let Some(at) = rest.find("cairn_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(query) = variable["query"]["query"].as_str()
            && let Some(at) = query.find("cairn_")
        {
            names.insert(
                query[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    names
}

#[test]
fn metrics_after_real_runs_parse_with_prometheus_client_and_the_dashboard_finds_each_metric() {
    let test =
        "metrics_after_real_runs_parse_with_prometheus_client_and_the_dashboard_finds_each_metric";
    let Some(python) =
        toolchains::python_with(test, "prometheus_client", "prometheus-client==0.26.0")
    else {
        return;
    };
    let s = Scratch::new();
    workflow(
        &s,
        0,
        0,
        "\n[schedules.every]\ncron = \"* * * * * *\"\nas = \"scheduler\"\n\n[webhooks.partner]\nscheme = \"standard\"\nsecret = \"std_hook\"\nas = \"hookuser\"\n",
    );
    s.mkdir("flaky");
    s.write(
        "flaky/workflow.toml",
        &FLAKY.replace("COMPONENT", &format!("{:?}", cairn_tests::TASK)),
    );
    let alice = token(&s, "alice");
    let d = Daemon::launch(
        &s,
        &[".", "flaky"],
        &["--metrics-listen", "127.0.0.1:0", "--log-format", "json"],
        &[],
    );
    let metrics = d.metrics.clone().expect("the metrics address is printed");

    // A run that succeeds, one that fails after a retry, a webhook
    // delivery that is refused, and schedule ticks.
    let (status, pair) = d.call("POST", "/v1/workflows/pair/runs", Some(&alice), None);
    assert_eq!(status, 201, "{pair}");
    let (status, flaky) = d.call("POST", "/v1/workflows/flaky/runs", Some(&alice), None);
    assert_eq!(status, 201, "{flaky}");
    let pair_run = pair["run"].as_str().unwrap().to_owned();
    let flaky_run = flaky["run"].as_str().unwrap().to_owned();
    d.until(&pair_run, &alice, |r| r["status"] == "succeeded");
    d.until(&flaky_run, &alice, |r| r["status"] == "failed");
    let (status, _) = d.call("POST", "/v1/hooks/pair/partner", None, None);
    assert!(status >= 400, "an unsigned delivery is refused");

    let started = Instant::now();
    let families = loop {
        let (status, content_type, text) = scrape(&metrics);
        assert!(status.contains(" 200 "), "{status}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let families = parse_with_prometheus_client(&python, &text);
        if sum(
            &families,
            "cairn_schedule_ticks_total",
            &[("outcome", "started")],
        ) >= 1.0
            && sum(
                &families,
                "cairn_runs_finished_total",
                &[("workflow", "pair")],
            ) >= 2.0
        {
            // No run id, user, token or secret in any label.
            for forbidden in [
                pair_run.as_str(),
                flaky_run.as_str(),
                "alice",
                "scheduler",
                "hookuser",
                "std_hook",
            ] {
                for line in text.lines().filter(|l| !l.starts_with('#')) {
                    let labels = line.split_once('{').map_or("", |(_, l)| l);
                    assert!(
                        !labels.contains(forbidden),
                        "`{forbidden}` is in a label: {line}"
                    );
                }
            }
            break families;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no scheduled run finished:\n{text}\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let succeeded = [("workflow", "pair"), ("outcome", "succeeded")];
    assert!(sum(&families, "cairn_runs_finished_total", &succeeded) >= 2.0);
    assert_eq!(
        sum(
            &families,
            "cairn_runs_finished_total",
            &[("workflow", "flaky"), ("outcome", "failed")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &families,
            "cairn_runs_started_total",
            &[("workflow", "flaky"), ("via", "api")]
        ),
        1.0
    );
    assert!(
        sum(
            &families,
            "cairn_runs_started_total",
            &[("workflow", "pair"), ("via", "schedule")]
        ) >= 1.0
    );
    assert_eq!(
        sum(
            &families,
            "cairn_task_attempts_total",
            &[("workflow", "flaky")]
        ),
        2.0
    );
    assert_eq!(
        sum(
            &families,
            "cairn_task_retries_total",
            &[("workflow", "flaky")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &families,
            "cairn_task_duration_seconds_count",
            &[("workflow", "flaky")]
        ),
        2.0
    );
    assert!(sum(&families, "cairn_run_duration_seconds_count", &succeeded) >= 2.0);
    assert!(
        sum(
            &families,
            "cairn_trigger_to_start_seconds_count",
            &[("via", "api")]
        ) >= 2.0
    );
    assert!(
        sum(
            &families,
            "cairn_trigger_to_start_seconds_count",
            &[("via", "schedule")]
        ) >= 1.0
    );
    let allowed = [
        ("phase", "access"),
        ("action", "trigger"),
        ("decision", "allow"),
    ];
    assert!(sum(&families, "cairn_policy_decisions_total", &allowed) >= 2.0);
    assert!(
        sum(
            &families,
            "cairn_policy_decisions_total",
            &[("phase", "preflight")]
        ) >= 2.0
    );
    assert_eq!(
        sum(
            &families,
            "cairn_webhook_deliveries_total",
            &[("workflow", "pair"), ("webhook", "partner")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &families,
            "cairn_approvals_waiting",
            &[("workflow", "pair")]
        ),
        0.0
    );
    assert!(sum(&families, "cairn_audit_log_records", &[]) > 10.0);
    assert_eq!(
        sum(
            &families,
            "cairn_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    let types: Vec<(&str, &str)> = families
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    for (name, kind) in [
        ("cairn_runs_finished", "counter"),
        ("cairn_run_duration_seconds", "histogram"),
        ("cairn_task_duration_seconds", "histogram"),
        ("cairn_trigger_to_start_seconds", "histogram"),
        ("cairn_runs_active", "gauge"),
        ("cairn_audit_checkpoint_age_seconds", "gauge"),
    ] {
        assert!(
            types.contains(&(name, kind)),
            "{name} is a {kind}: {types:?}"
        );
    }

    // Every metric the dashboard uses is served.
    let served: BTreeSet<String> = families
        .iter()
        .flat_map(|f| {
            let mut names = vec![f["name"].as_str().unwrap().to_owned()];
            names.extend(
                f["samples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["name"].as_str().unwrap().to_owned()),
            );
            names
        })
        .collect();
    let used = dashboard_metrics();
    assert!(used.len() >= 10, "the dashboard uses {used:?}");
    let missing: Vec<&String> = used.iter().filter(|n| !served.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics not served: {missing:?}"
    );

    // The API's listener does not serve metrics.
    let (status, _, _) = scrape(&d.addr);
    assert!(!status.contains(" 200 "), "{status}");

    let (code, stderr) = d.term();
    assert_eq!(code, 0, "{stderr}");
    // `--log-format json`: every line is one JSON object with a time, a
    // level and a message.
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 3, "{stderr}");
    for line in lines {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(entry["timestamp"].is_string(), "{line}");
        assert!(entry["level"].is_string(), "{line}");
        assert!(entry["message"].is_string(), "{line}");
    }
    assert!(stderr.contains("\"level\":\"INFO\""), "{stderr}");
}

/// A Standard Webhooks key (`whsec_` and base64 of 24 bytes).
const NOTIFY_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What a receiver got: the path, the headers (lower-case names) and the
/// body of each request, in order.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<(String, String)>, Vec<u8>)>>>;

/// An HTTP receiver on a free loopback port that answers the first
/// `fail_first` requests 503 and the rest 204.
fn receiver(fail_first: usize) -> (u16, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = Received::default();
    let seen = std::sync::Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut reader, &mut line).is_err() {
                continue;
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if std::io::BufRead::read_line(&mut reader, &mut h).unwrap_or(0) == 0 {
                    break;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let length = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let n = {
                let mut all = seen.lock().unwrap();
                all.push((path, headers, body));
                all.len()
            };
            let status = if n <= fail_first {
                "503 Service Unavailable"
            } else {
                "204 No Content"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (port, got)
}

#[test]
fn notifications_are_cloudevents_signed_as_standard_webhooks_retried_and_recorded() {
    let test = "notifications_are_cloudevents_signed_as_standard_webhooks_retried_and_recorded";
    let Some(python) = toolchains::python_with(test, "standardwebhooks", "standardwebhooks==1.3.0")
    else {
        return;
    };
    let (port, got) = receiver(1);
    let s = Scratch::new();
    workflow(
        &s,
        0,
        0,
        &format!(
            "\n[notifications.ops]\nurl = \"http://127.0.0.1:{port}/hooks/cairn\"\nsecret = \"ops_key\"\nevents = [\"run.started\", \"run.succeeded\", \"run.failed\"]\n\n[notifications.elsewhere]\nurl = \"http://localhost:{port}/elsewhere\"\nsecret = \"ops_key\"\n"
        ),
    );
    // Policy lets the workflow notify 127.0.0.1 only.
    s.write(
        "p/notify.cedar",
        &format!(
            "@id(\"notify-ops\")\npermit (principal == Cairn::Workflow::\"pair\", action == Cairn::Action::\"notify\", resource == Cairn::Host::\"127.0.0.1:{port}\");\n"
        ),
    );
    let alice = token(&s, "alice");
    let d = Daemon::launch(&s, &["."], &[], &[("CAIRN_SECRET_OPS_KEY", NOTIFY_KEY)]);
    let (status, started) = d.call("POST", "/v1/workflows/pair/runs", Some(&alice), None);
    assert_eq!(status, 201, "{started}");
    let run = started["run"].as_str().unwrap().to_owned();
    d.until(&run, &alice, |r| r["status"] == "succeeded");

    // run.started: refused once (503), delivered on the retry; then
    // run.succeeded. Nothing went to the host policy does not allow.
    let waited = Instant::now();
    while got.lock().unwrap().len() < 3 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "deliveries: {:?}\n{}",
            got.lock().unwrap().iter().map(|r| &r.0).collect::<Vec<_>>(),
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let deliveries = got.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 3, "one retry, two events");
    assert!(deliveries.iter().all(|(path, _, _)| path == "/hooks/cairn"));

    // Each verifies with the `standardwebhooks` package, and a changed
    // body does not.
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Value> = deliveries
        .iter()
        .map(|(_, headers, body)| {
            serde_json::json!({
                "headers": headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "body": String::from_utf8(body.clone()).unwrap(),
            })
        })
        .collect();
    std::fs::write(
        dir.path().join("cases.json"),
        serde_json::to_vec(&cases).unwrap(),
    )
    .unwrap();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
wh = Webhook(sys.argv[1])
out = []
for case in json.load(open(sys.argv[2])):
    event = wh.verify(case["body"], case["headers"])
    try:
        wh.verify(case["body"].replace("pair", "pain"), case["headers"])
        tampered = "accepted"
    except Exception:
        tampered = "refused"
    out.append({"event": event, "tampered": tampered})
print(json.dumps(out))
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script, NOTIFY_KEY])
        .arg(dir.path().join("cases.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused a delivery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    // Deliveries are independent: the retry of run.started (after its
    // backoff) may come after run.succeeded.
    let mut types: Vec<&str> = verified
        .iter()
        .map(|v| v["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types[0], "dev.cairn.run.started",
        "the first is the first event"
    );
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "dev.cairn.run.started",
            "dev.cairn.run.started",
            "dev.cairn.run.succeeded"
        ]
    );
    for v in &verified {
        assert_eq!(v["tampered"], "refused");
        let event = &v["event"];
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["subject"], format!("runs/{run}"));
        assert_eq!(event["source"], format!("{}/v1/workflows/pair", d.server()));
        assert_eq!(event["data"]["run"], run.as_str());
        assert!(event["data"]["audit"]["seq"].is_u64(), "{event}");
        assert!(
            !event.to_string().contains("alice"),
            "no user in an event: {event}"
        );
    }
    // A retry is the same event (the same id), signed again.
    let started_ids: Vec<&Value> = verified
        .iter()
        .filter(|v| v["event"]["type"] == "dev.cairn.run.started")
        .map(|v| &v["event"]["id"])
        .collect();
    assert_eq!(started_ids[0], started_ids[1]);
    assert_eq!(
        deliveries[0]
            .1
            .iter()
            .find(|(k, _)| k == "content-type")
            .unwrap()
            .1,
        "application/cloudevents+json"
    );

    let (code, stderr) = d.term();
    assert_eq!(code, 0, "{stderr}");
    // Every attempt is recorded, each after the `notify` decision it rests on.
    let records = crate::serve::log(&s);
    let notes: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "notification")
        .collect();
    let results: Vec<(&str, &str)> = notes
        .iter()
        .map(|r| {
            (
                r["notification"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("ops", "failed"),
        ("ops", "delivered"),
        ("elsewhere", "denied"),
    ] {
        assert!(results.contains(&expected), "{results:?}");
    }
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == ("ops", "delivered"))
            .count(),
        2,
        "{results:?}"
    );
    for note in &notes {
        let access = &records[note["access"].as_u64().unwrap() as usize];
        assert_eq!(access["kind"], "access");
        assert_eq!(access["action"], "notify");
        let allowed = if note["result"] == "denied" {
            "deny"
        } else {
            "allow"
        };
        assert_eq!(access["decision"], allowed);
    }
    let report = crate::serve::assert_log_verifies(&s);
    assert!(report.to_string().contains("authorized"), "{report}");
}
