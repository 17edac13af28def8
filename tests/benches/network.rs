//! `cargo bench -p cairn-tests --bench network`: what Cairn adds to each
//! HTTP request a task makes.
//!
//! One task (the test task's `http` mode) sends N sequential GETs to a
//! server on 127.0.0.1, three ways:
//! - from the host itself, a plain HTTP/1.1 request per connection (the
//!   floor: the server and the loopback);
//! - from a task in the sandbox, without policy (`cairn exec --net`): the
//!   wasi:http path, the endpoint check, bounded buffering;
//! - from a task in a workflow run: the same plus a Cedar `connect` decision
//!   per request, recorded and synced to the audit log before the request
//!   goes out, and an `http-request` record after it.
//!
//! Prints per-request times.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark fails loudly"
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::sandbox::{Capabilities, EngineSettings, Limits, Sandbox, TaskSpec};
use deploy_api::{Handler, Request, Response};
use workflow::Bench;

#[path = "support/workflow.rs"]
mod workflow;

fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler: Handler = Arc::new(|_: &Request| Response::new(200, "ok"));
    std::thread::spawn(move || deploy_api::serve(&listener, &handler));
    port
}

fn urls(port: u16, n: usize) -> String {
    vec![format!("http://127.0.0.1:{port}/ok"); n].join(",")
}

fn from_the_host(port: u16, n: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(b"GET /ok HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"));
    }
    start.elapsed()
}

fn in_the_sandbox(runtime: &tokio::runtime::Runtime, port: u16, n: usize) -> Duration {
    let sandbox = Sandbox::new(&EngineSettings::default(), None).unwrap();
    let program = sandbox.load(Path::new(cairn_tests::TASK), None).unwrap();
    let out = tempfile::tempdir().unwrap();
    let caps = Capabilities {
        network: vec![format!("127.0.0.1:{port}").parse().unwrap()],
        env: vec![
            ("MODE".into(), "http".into()),
            ("URLS".into(), urls(port, n)),
        ],
        ..Capabilities::default()
    };
    let mut limits = Limits::default();
    limits.http.requests = u32::try_from(n).unwrap();
    let spec = TaskSpec {
        caps,
        limits,
        outputs_dir: out.path().to_owned(),
        log_sink: None,
        exchange_sink: None,
        gate: None,
    };
    // Once to compile and warm up, then timed.
    runtime.block_on(sandbox.run(&program, &spec)).unwrap();
    let out2 = tempfile::tempdir().unwrap();
    let spec = TaskSpec {
        outputs_dir: out2.path().to_owned(),
        ..spec
    };
    let start = Instant::now();
    let attempt = runtime.block_on(sandbox.run(&program, &spec)).unwrap();
    let took = start.elapsed();
    assert!(attempt.outcome.is_success(), "{:?}", attempt.outcome);
    assert_eq!(attempt.requests.len(), n);
    took
}

fn in_a_run(runtime: &tokio::runtime::Runtime, port: u16, n: usize) -> Duration {
    let rules = r#"@id("anyone-runs") permit (principal, action == Cairn::Action::"run", resource);
@id("gets") permit (principal, action == Cairn::Action::"connect", resource) when { context.method == "GET" && context.path == "/ok" };"#;
    let manifest = format!(
        "[workflow]\nname = \"bench\"\npolicies = [\"p\"]\n[tasks.fetch]\ncomponent = {:?}\n\
         network = [\"127.0.0.1:{port}\"]\nenv = {{ MODE = \"http\", URLS = \"{}\" }}\n\
         outputs = [\"echo\"]\nhttp_requests = {n}\n",
        cairn_tests::TASK,
        urls(port, n)
    );
    let bench = Bench::new(rules, &manifest);
    // Once to fill the compile cache, then timed.
    bench.run(runtime, "warm", 2);
    bench.run(runtime, "bench", 2)
}

fn main() {
    let n: usize = std::env::var("CAIRN_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = serve();
    let host = from_the_host(port, n);
    let sandbox = in_the_sandbox(&runtime, port, n);
    let run = in_a_run(&runtime, port, n);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!("network benchmark: {n} sequential GETs to 127.0.0.1, one task");
    println!(
        "  from the host (plain HTTP/1.1)              {:>8.1} us/request",
        per(host)
    );
    println!(
        "  task in the sandbox, no policy (exec --net) {:>8.1} us/request",
        per(sandbox)
    );
    println!(
        "  task in a run: Cedar per request, audited   {:>8.1} us/request  (+{:.1} us over the sandbox)",
        per(run),
        per(run) - per(sandbox)
    );
}
