//! What operators watch, checked with implementations that share none of
//! Cairn's code: `/metrics` after real runs, parsed by Python's
//! `prometheus_client`; the Grafana dashboard's every metric present;
//! `--log-format json` lines that parse; notifications verified by the
//! `standardwebhooks` package; spans decoded by an OTLP receiver built on
//! `opentelemetry-proto`; OpenLineage events rebuilt by the OpenLineage
//! project's own Python client.

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

/// The workflow `flaky` in `s`'s folder `flaky`.
fn flaky(s: &Scratch) {
    s.mkdir("flaky");
    s.write(
        "flaky/workflow.toml",
        &FLAKY.replace("COMPONENT", &format!("{:?}", cairn_tests::TASK)),
    );
}

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
    flaky(&s);
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

/// An OTLP receiver in Python, decoding with the OpenTelemetry project's
/// own protobuf bindings (`opentelemetry-proto`): HTTP/protobuf on one
/// port, gRPC (`grpcio`) on another; each request is appended to the file
/// `argv[1]` as `{"via", "request"}` (the request as protobuf's JSON).
const OTLP_RECEIVER: &str = r#"
import grpc, json, sys, threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb, trace_service_pb2_grpc as rpc
out = open(sys.argv[1], "a")
lock = threading.Lock()
def save(via, request):
    with lock:
        out.write(json.dumps({"via": via, "request": MessageToDict(request)}) + "\n")
        out.flush()
class Http(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = pb.ExportTraceServiceRequest()
        request.ParseFromString(body)
        right = self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
        save("http" if right else "http-elsewhere", request)
        answer = pb.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *args):
        pass
class Grpc(rpc.TraceServiceServicer):
    def Export(self, request, context):
        save("grpc", request)
        return pb.ExportTraceServiceResponse()
http = HTTPServer(("127.0.0.1", 0), Http)
server = grpc.server(futures.ThreadPoolExecutor(4))
rpc.add_TraceServiceServicer_to_server(Grpc(), server)
grpc_port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(http.server_port, grpc_port, flush=True)
http.serve_forever()
"#;

/// The spans received so far, each with its resource's attributes and
/// the way it came, from the receiver's file.
fn received_spans(file: &std::path::Path) -> Vec<(String, Value, Value)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut spans = Vec::new();
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        for rs in entry["request"]["resourceSpans"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(rs["schemaUrl"], "https://opentelemetry.io/schemas/1.44.0");
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                assert_eq!(ss["scope"]["name"], "cairn");
                for span in ss["spans"].as_array().into_iter().flatten() {
                    spans.push((
                        entry["via"].as_str().unwrap().to_owned(),
                        rs["resource"].clone(),
                        span.clone(),
                    ));
                }
            }
        }
    }
    spans
}

/// A W3C trace context, as a caller in a trace of its own sends it.
const CALLER_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Start a run of `workflow` through the API at `addr` as `token`'s
/// user, the request carrying `traceparent`; the run's id.
fn trigger_in_trace(addr: &str, workflow: &str, token: &str, traceparent: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/workflows/{workflow}/runs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\ntraceparent: {traceparent}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let started: Value = serde_json::from_str(body).unwrap();
    started["run"].as_str().unwrap().to_owned()
}

/// A span's attribute `key`, as a string.
fn attr<'a>(span: &'a Value, key: &str) -> &'a str {
    span["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"]["stringValue"].as_str())
        .unwrap_or("")
}

#[test]
fn spans_of_runs_with_a_retry_and_a_failure_reach_an_otlp_receiver_over_http_and_grpc() {
    let test = "spans_of_runs_with_a_retry_and_a_failure_reach_an_otlp_receiver_over_http_and_grpc";
    let Some(python) = toolchains::python_with(
        test,
        "grpc, opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc",
        "opentelemetry-proto==1.45.2 grpcio==1.76.0",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("received.jsonl");
    let (_receiver, ports) = receive(&python, OTLP_RECEIVER, &file);
    let ports: Vec<&str> = ports.split_whitespace().collect();
    let (http_port, grpc_port) = (ports[0].to_owned(), ports[1].to_owned());

    for (protocol, endpoint) in [
        ("http/protobuf", format!("http://127.0.0.1:{http_port}")),
        ("grpc", format!("http://127.0.0.1:{grpc_port}")),
    ] {
        let s = Scratch::new();
        workflow(&s, 0, 0, "");
        flaky(&s);
        let alice = token(&s, "alice");
        let d = Daemon::launch(
            &s,
            &[".", "flaky"],
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_SERVICE_NAME", "cairn-test"),
                ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci"),
            ],
        );
        let mut runs = Vec::new();
        for workflow in ["pair", "flaky"] {
            let (status, started) = d.call(
                "POST",
                &format!("/v1/workflows/{workflow}/runs"),
                Some(&alice),
                None,
            );
            assert_eq!(status, 201, "{started}");
            runs.push(started["run"].as_str().unwrap().to_owned());
        }
        // A caller in a trace of its own: the run joins it.
        let joined = trigger_in_trace(&d.addr, "pair", &alice, CALLER_TRACEPARENT);
        d.until(&runs[0], &alice, |r| r["status"] == "succeeded");
        d.until(&runs[1], &alice, |r| r["status"] == "failed");
        d.until(&joined, &alice, |r| r["status"] == "succeeded");

        let via = if protocol == "grpc" { "grpc" } else { "http" };
        let waited = Instant::now();
        let spans = loop {
            let spans: Vec<(String, Value, Value)> = received_spans(&file)
                .into_iter()
                .filter(|(_, _, span)| runs.iter().any(|r| attr(span, "cicd.pipeline.run.id") == r))
                .collect();
            // pair: a run, 2 tasks, 2 attempts; flaky: a run, a task, 2 attempts.
            if spans.len() >= 9
                && received_spans(&file).iter().any(|(_, _, span)| {
                    attr(span, "cicd.pipeline.run.id") == joined && span["name"] == "RUN pair"
                })
            {
                break spans;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "{protocol}: {} span(s) came: {spans:?}\n{}",
                spans.len(),
                d.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(spans.len(), 9, "{protocol}: {spans:?}");
        for (came, resource, _) in &spans {
            assert_eq!(
                came, via,
                "{protocol}: to the right place, with the right content type"
            );
            let attrs = resource["attributes"].to_string();
            assert!(
                attrs.contains("\"cairn-test\"") && attrs.contains("\"ci\""),
                "{attrs}"
            );
        }
        let flaky: Vec<&Value> = spans
            .iter()
            .map(|(_, _, span)| span)
            .filter(|span| attr(span, "cicd.pipeline.run.id") == runs[1])
            .collect();
        let by_name = |name: &str| -> &Value {
            flaky
                .iter()
                .find(|s| s["name"] == name)
                .unwrap_or_else(|| panic!("no span {name}: {flaky:?}"))
        };
        let run = by_name("RUN flaky");
        assert_eq!(run["kind"], "SPAN_KIND_SERVER");
        assert!(
            run.get("parentSpanId").is_none(),
            "the run's span is the root"
        );
        assert_eq!(attr(run, "cicd.pipeline.name"), "flaky");
        assert_eq!(attr(run, "cicd.pipeline.result"), "failure");
        assert_eq!(attr(run, "cicd.pipeline.action.name"), "RUN");
        assert_eq!(attr(run, "error.type"), "failed");
        assert_eq!(run["status"]["code"], "STATUS_CODE_ERROR");
        let task = by_name("fetch");
        assert_eq!(task["kind"], "SPAN_KIND_INTERNAL");
        assert_eq!(task["parentSpanId"], run["spanId"]);
        assert_eq!(attr(task, "cicd.pipeline.task.name"), "fetch");
        assert_eq!(attr(task, "cicd.pipeline.task.run.result"), "failure");
        assert_eq!(
            attr(task, "cicd.pipeline.task.run.id"),
            format!("{}/fetch", runs[1])
        );
        for n in [1, 2] {
            let attempt = by_name(&format!("fetch attempt {n}"));
            assert_eq!(attempt["parentSpanId"], task["spanId"]);
            assert_eq!(attempt["traceId"], run["traceId"]);
            assert_eq!(attr(attempt, "cicd.pipeline.task.run.result"), "failure");
            let start: u64 = attempt["startTimeUnixNano"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let end: u64 = attempt["endTimeUnixNano"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let (run_start, run_end): (u64, u64) = (
                run["startTimeUnixNano"].as_str().unwrap().parse().unwrap(),
                run["endTimeUnixNano"].as_str().unwrap().parse().unwrap(),
            );
            assert!(
                run_start <= start && start <= end && end <= run_end,
                "{attempt} within {run}"
            );
        }
        let pair_run = spans
            .iter()
            .map(|(_, _, span)| span)
            .find(|s| s["name"] == "RUN pair")
            .unwrap();
        assert_eq!(attr(pair_run, "cicd.pipeline.result"), "success");
        assert!(
            pair_run
                .get("status")
                .is_none_or(|s| s.get("code").is_none()),
            "{pair_run}"
        );
        assert_ne!(pair_run["traceId"], run["traceId"], "a trace per run");
        let joined_run = received_spans(&file)
            .into_iter()
            .map(|(_, _, span)| span)
            .find(|s| s["name"] == "RUN pair" && attr(s, "cicd.pipeline.run.id") == joined)
            .unwrap_or_else(|| panic!("no span of run {joined}"));
        // protobuf's JSON writes ids in base64: these are the caller's
        // trace 4bf92f35...4736 and span 00f067aa0ba902b7.
        assert_eq!(
            joined_run["traceId"], "S/kvNXezTaajzpKdDg5HNg==",
            "{joined_run}"
        );
        assert_eq!(joined_run["parentSpanId"], "APBnqgupArc=", "{joined_run}");
        let (code, stderr) = d.term();
        assert_eq!(code, 0, "{stderr}");
    }
}

/// Start the receiver `script` (Python) keeping what it receives in
/// `file`; it, and the first line it prints (its ports).
fn receive(python: &std::path::Path, script: &str, file: &std::path::Path) -> (Stopped, String) {
    let mut receiver = Stopped(
        std::process::Command::new(python)
            .args(["-c", script])
            .arg(file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(receiver.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (receiver, line)
}

/// A child process, killed and waited for when dropped (a failing test
/// included).
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Checks each OpenLineage event (a line of the file `argv[1]`) with the
/// OpenLineage project's own Python client (`openlineage-python`, its
/// models generated from the official JSON Schema): the envelope, run, job
/// and datasets are rebuilt as its classes (their validators run: the
/// run id a UUID, ...), every standard facet as its facet class, whose
/// `_schemaURL` must be the one Cairn wrote and whose fields, serialized
/// by the client's `Serde`, must be exactly the ones Cairn wrote (so a
/// misnamed or extra field fails). Times must parse as ISO 8601, URIs
/// have a scheme. Cairn's own facets are validated with `jsonschema`
/// against their schemas (`argv[2]`, a folder). Prints one summary per
/// event as JSON; exits 1 naming the first problem.
const LINEAGE_CHECK: &str = r#"
import datetime, json, os, sys, urllib.parse, uuid
import jsonschema
from openlineage.client.event_v2 import RunEvent, Run, Job, InputDataset, OutputDataset, RunState
from openlineage.client.generated import (error_message_run, job_type_job, nominal_time_run,
    parent_run, processing_engine_run, tags_dataset)
from openlineage.client.serde import Serde

schemas = {}
for name in os.listdir(sys.argv[2]):
    schema = json.load(open(os.path.join(sys.argv[2], name)))
    jsonschema.Draft202012Validator.check_schema(schema)
    schemas[schema["$id"]] = jsonschema.Draft202012Validator(schema)

def fields(d):
    return {k: v for k, v in d.items() if not k.startswith("_")}

def pruned(v):
    # The client's defaults (empty facets) are not what Cairn wrote.
    if isinstance(v, dict):
        return {k: pruned(x) for k, x in v.items() if x not in ({}, None)}
    if isinstance(v, list):
        return [pruned(x) for x in v]
    return v

def uri(text, what):
    assert urllib.parse.urlparse(text).scheme in ("http", "https"), f"{what}: {text!r} is not a URI"

def standard(facet, made):
    assert facet["_schemaURL"] == made._get_schema(), (facet["_schemaURL"], made._get_schema())
    uri(facet["_producer"], "_producer")
    again = pruned(fields(Serde.to_dict(made)))
    assert again == pruned(fields(facet)), f"{again} != {fields(facet)}"
    return made

def custom(name, facet):
    assert name.startswith("cairn_"), f"unknown facet {name}"
    validator = schemas.get(facet.get("_schemaURL"))
    assert validator is not None, f"{name}: no schema {facet.get('_schemaURL')}"
    validator.validate(facet)
    return facet

def run_facet(name, f):
    if name == "parent":
        return standard(f, parent_run.ParentRunFacet(
            run=parent_run.Run(runId=f["run"]["runId"]),
            job=parent_run.Job(namespace=f["job"]["namespace"], name=f["job"]["name"]),
            root=parent_run.Root(run=parent_run.RootRun(runId=f["root"]["run"]["runId"]),
                job=parent_run.RootJob(namespace=f["root"]["job"]["namespace"], name=f["root"]["job"]["name"]))))
    if name == "nominalTime":
        datetime.datetime.fromisoformat(f["nominalStartTime"])
        return standard(f, nominal_time_run.NominalTimeRunFacet(**fields(f)))
    if name == "errorMessage":
        return standard(f, error_message_run.ErrorMessageRunFacet(**fields(f)))
    if name == "processing_engine":
        return standard(f, processing_engine_run.ProcessingEngineRunFacet(**fields(f)))
    return custom(name, f)

def dataset_facet(name, f):
    if name == "tags":
        return standard(f, tags_dataset.TagsDatasetFacet(
            tags=[tags_dataset.TagsDatasetFacetFields(**t) for t in f["tags"]]))
    return custom(name, f)

def job_facet(name, f):
    if name == "jobType":
        return standard(f, job_type_job.JobTypeJobFacet(**fields(f)))
    return custom(name, f)

def dataset(cls, d):
    assert set(d) == {"namespace", "name", "facets"}, d
    return cls(namespace=d["namespace"], name=d["name"],
        facets={k: dataset_facet(k, v) for k, v in d["facets"].items()})

summaries = []
for n, line in enumerate(open(sys.argv[1]), 1):
    try:
        e = json.loads(line)
        assert set(e) == {"eventType", "eventTime", "producer", "schemaURL", "run", "job", "inputs", "outputs"}, sorted(e)
        assert e["schemaURL"] == RunEvent._get_schema(), e["schemaURL"]
        uri(e["producer"], "producer")
        when = datetime.datetime.fromisoformat(e["eventTime"])
        assert when.tzinfo is not None, "eventTime has no offset"
        uuid.UUID(e["run"]["runId"])
        event = RunEvent(
            eventType=RunState[e["eventType"]],
            eventTime=e["eventTime"],
            run=Run(runId=e["run"]["runId"], facets={k: run_facet(k, v) for k, v in e["run"]["facets"].items()}),
            job=Job(namespace=e["job"]["namespace"], name=e["job"]["name"],
                facets={k: job_facet(k, v) for k, v in e["job"]["facets"].items()}),
            inputs=[dataset(InputDataset, d) for d in e["inputs"]],
            outputs=[dataset(OutputDataset, d) for d in e["outputs"]],
            producer=e["producer"],
        )
        assert event.schemaURL == e["schemaURL"], (event.schemaURL, e["schemaURL"])
        again = Serde.to_dict(event)
        for key in ("eventType", "eventTime", "producer", "schemaURL"):
            assert again[key] == e[key], (key, again[key], e[key])
        assert again["run"]["runId"] == e["run"]["runId"]
    except Exception as problem:
        print(f"event {n}: {type(problem).__name__}: {problem}\n{line}", file=sys.stderr)
        sys.exit(1)
    facets = e["run"]["facets"]
    summaries.append({
        "type": e["eventType"], "job": e["job"]["name"], "runId": e["run"]["runId"],
        "parent": facets.get("parent", {}).get("run", {}).get("runId"),
        "audit": facets["cairn_audit"], "decisions": facets.get("cairn_decisions"),
        "error": facets.get("errorMessage", {}).get("message"),
        "inputs": [[d["name"], d["facets"].get("cairn_artifact", {}).get("labels")] for d in e["inputs"]],
        "outputs": [[d["name"], d["facets"].get("cairn_artifact", {}).get("labels")] for d in e["outputs"]],
    })
print(json.dumps(summaries))
"#;

/// An OpenLineage HTTP endpoint in Python: each `POST` (path, the
/// `Authorization` header and the body) appended to the file `argv[1]`
/// as a line `{"path", "auth", "event"}`; answers 201 as Marquez does.
const LINEAGE_RECEIVER: &str = r#"
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[1], "a")
lock = threading.Lock()
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with lock:
            out.write(json.dumps({"path": self.path, "auth": self.headers.get("Authorization"),
                "type": self.headers.get("Content-Type"), "event": json.loads(body)}) + "\n")
            out.flush()
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"#;

/// A workflow whose first task's output is labelled `internal`; the
/// second reads it (so its output carries the label on).
const LABELLED: &str = r#"[workflow]
name = "labelled"
policies = ["../p"]

[tasks.a]
component = COMPONENT
env = { MODE = "work", NAME = "a" }
outputs = { echo = { labels = ["internal"] } }

[tasks.b]
component = COMPONENT
env = { MODE = "work", NAME = "b" }
inputs = { x = "a.echo" }
outputs = ["echo"]
"#;

/// The summaries `LINEAGE_CHECK` prints for the events in `file`.
fn checked_lineage(python: &std::path::Path, file: &std::path::Path) -> Vec<Value> {
    let facets =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/observe/facets");
    let args = [
        "-c",
        LINEAGE_CHECK,
        file.to_str().unwrap(),
        facets.to_str().unwrap(),
    ];
    // A failure is the OpenLineage client refusing an event.
    let out = crate::support::tool_in(std::path::Path::new("."), python, &args);
    serde_json::from_slice(&out).unwrap()
}

/// Check the summaries of one run's events: a START first and one end
/// (`end`) last for the run and for each of `tasks` (each a child of the
/// run), every event resting on a record of the run that a later signed
/// checkpoint covers, with the hash that record has in `log`.
fn assert_run_lineage<'a>(
    events: &'a [Value],
    log: &[Value],
    run: &str,
    workflow: &str,
    end: &str,
    tasks: &[(&str, &str)],
) -> Vec<&'a Value> {
    let mine: Vec<&Value> = events.iter().filter(|e| e["audit"]["run"] == run).collect();
    let of = |job: &str| -> Vec<&str> {
        mine.iter()
            .filter(|e| e["job"] == job)
            .map(|e| e["type"].as_str().unwrap())
            .collect()
    };
    assert_eq!(of(workflow), ["START", end], "{mine:#?}");
    let run_id = mine.iter().find(|e| e["job"] == workflow).unwrap()["runId"].clone();
    for (task, task_end) in tasks {
        let job = format!("{workflow}.{task}");
        assert_eq!(of(&job), ["START", *task_end], "{job}: {mine:#?}");
        for e in mine.iter().filter(|e| e["job"] == job) {
            assert_eq!(e["parent"], run_id, "{e}");
            assert_ne!(e["runId"], run_id);
        }
    }
    for e in &mine {
        let audit = &e["audit"];
        let seq = audit["seq"].as_u64().unwrap() as usize;
        let record = &log[seq];
        assert_eq!(record["run"], run);
        assert_eq!(record["kind"], audit["kind"], "{e}");
        assert_eq!(record["hash"], audit["hash"], "{e}");
        let at = audit["checkpoint"]["seq"].as_u64().unwrap() as usize;
        let checkpoint = &log[at];
        assert_eq!(checkpoint["kind"], "checkpoint");
        assert_eq!(checkpoint["size"], audit["checkpoint"]["size"]);
        assert_eq!(checkpoint["root"], audit["checkpoint"]["root"]);
        assert!((seq as u64) < checkpoint["size"].as_u64().unwrap());
    }
    mine
}

/// The audit log of `s`, a record a line.
fn log_records(s: &Scratch) -> Vec<Value> {
    std::fs::read_to_string(s.path().join(".cairn/audit/log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn openlineage_events_pass_the_openlineage_client_and_rest_on_checkpointed_records() {
    let test = "openlineage_events_pass_the_openlineage_client_and_rest_on_checkpointed_records";
    let Some(python) = toolchains::python_with(
        test,
        "openlineage.client, jsonschema",
        "openlineage-python==1.54.0 jsonschema==4.26.0",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let received = dir.path().join("received.jsonl");
    let (_receiver, port) = receive(&python, LINEAGE_RECEIVER, &received);
    let url = format!("http://127.0.0.1:{}", port.trim());

    // The service, over HTTP: a run that passes labelled data along, and
    // one whose task fails after a retry.
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    flaky(&s);
    s.mkdir("labelled");
    s.write(
        "labelled/workflow.toml",
        &LABELLED.replace("COMPONENT", &format!("{:?}", cairn_tests::TASK)),
    );
    let alice = token(&s, "alice");
    let d = Daemon::launch(
        &s,
        &["labelled", "flaky"],
        &[],
        &[
            ("OPENLINEAGE_URL", url.as_str()),
            ("OPENLINEAGE_API_KEY", "lineage-key"),
            ("OPENLINEAGE_NAMESPACE", "ci"),
        ],
    );
    let mut runs = Vec::new();
    for workflow in ["labelled", "flaky"] {
        let (status, started) = d.call(
            "POST",
            &format!("/v1/workflows/{workflow}/runs"),
            Some(&alice),
            None,
        );
        assert_eq!(status, 201, "{started}");
        runs.push(started["run"].as_str().unwrap().to_owned());
    }
    d.until(&runs[0], &alice, |r| r["status"] == "succeeded");
    d.until(&runs[1], &alice, |r| r["status"] == "failed");
    // labelled: 2 + 2 × 2; flaky: 2 + 2.
    let waited = Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(&received).unwrap_or_default();
        if text.lines().count() >= 10 {
            break text;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "{} event(s) came:\n{text}\n{}",
            text.lines().count(),
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (code, stderr) = d.term();
    assert_eq!(code, 0, "{stderr}");
    let events = dir.path().join("events.jsonl");
    let mut only = String::new();
    for line in lines.lines() {
        let posted: Value = serde_json::from_str(line).unwrap();
        assert_eq!(posted["path"], "/api/v1/lineage");
        assert_eq!(posted["auth"], "Bearer lineage-key");
        assert_eq!(posted["type"], "application/json");
        assert_eq!(posted["event"]["job"]["namespace"], "ci");
        only.push_str(&posted["event"].to_string());
        only.push('\n');
    }
    assert!(!only.contains("alice"), "no user in lineage: {only}");
    std::fs::write(&events, &only).unwrap();
    let summaries = checked_lineage(&python, &events);
    assert_eq!(summaries.len(), 10, "{summaries:#?}");
    let log = log_records(&s);
    let labelled = assert_run_lineage(
        &summaries,
        &log,
        &runs[0],
        "labelled",
        "COMPLETE",
        &[("a", "COMPLETE"), ("b", "COMPLETE")],
    );
    let job = |name: &str, kind: &str| -> &Value {
        labelled
            .iter()
            .find(|e| e["job"] == name && e["type"] == kind)
            .unwrap()
    };
    let made = &job("labelled.a", "COMPLETE")["outputs"][0];
    assert!(made[0].as_str().unwrap().starts_with("sha256:"), "{made}");
    assert_eq!(made[1], serde_json::json!(["internal"]));
    let read = &job("labelled.b", "START")["inputs"][0];
    assert_eq!(read, made, "b reads the very dataset a made, by digest");
    assert_eq!(
        job("labelled.b", "COMPLETE")["outputs"][0][1],
        serde_json::json!(["internal"]),
        "the label flows on"
    );
    let decisions = &job("labelled.a", "START")["decisions"];
    assert!(decisions["allowed"].as_u64().unwrap() >= 1, "{decisions}");
    assert!(
        decisions["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["action"] == "run" && d["decision"] == "allow"),
        "{decisions}"
    );
    let flaky = assert_run_lineage(
        &summaries,
        &log,
        &runs[1],
        "flaky",
        "FAIL",
        &[("fetch", "FAIL")],
    );
    let failed = flaky
        .iter()
        .find(|e| e["job"] == "flaky.fetch" && e["type"] == "FAIL")
        .unwrap();
    assert!(
        failed["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{failed}"
    );
    assert_eq!(
        log[failed["audit"]["seq"].as_u64().unwrap() as usize]["attempt"],
        2,
        "the task fails at its last attempt, not at the one retried"
    );

    // `cairn run`, to a file: the same checks.
    let file = dir.path().join("run-lineage.jsonl");
    let out = crate::support::cairn()
        .current_dir(s.path())
        // The service's state: its log, with its runs, goes on.
        .args(["run", "labelled", "--as", "alice", "--state-dir", ".cairn"])
        .env("OPENLINEAGE__TRANSPORT__TYPE", "file")
        .env("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", &file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summaries = checked_lineage(&python, &file);
    assert_eq!(summaries.len(), 6, "{summaries:#?}");
    let run = summaries[0]["audit"]["run"].as_str().unwrap().to_owned();
    assert_run_lineage(
        &summaries,
        &log_records(&s),
        &run,
        "labelled",
        "COMPLETE",
        &[("a", "COMPLETE"), ("b", "COMPLETE")],
    );
}
