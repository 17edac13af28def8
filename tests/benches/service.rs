//! `cargo build --release -p cairn && cargo bench -p cairn-tests --bench
//! service`: the service (`cairn serve`, release build) as a user meets it,
//! over HTTP on loopback.
//!
//! - trigger-to-first-task-start latency through the API: a client sends
//!   `POST /v1/workflows/{w}/runs` (one no-op wasip2 task), one request at
//!   a time; the latency is from just before the request is sent to the
//!   `time` of the run's `task-started` record (same host, same clock),
//!   p50 and p99 over `CAIRN_BENCH_TRIGGERS` (200) triggers;
//! - a webhook delivery (GitHub's signature) until its 202, which comes
//!   after the delivery, its decision and its trigger are synced and the
//!   run has started: p50 and p99 over as many deliveries;
//! - sustained runs per second: 8 concurrent clients trigger
//!   `CAIRN_BENCH_RUNS` (400) runs between them, timed until every one
//!   has ended;
//! - idle cost of schedules: the daemon's resident memory and CPU over 10 s
//!   of nothing due, with 10,000 schedules loaded, beside the same daemon
//!   with none.
//!
//! Every request is authenticated, decided by Cedar and its decision
//! synced to the audit log before it acts, as in production.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark fails loudly"
)]

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

const RULES: &str = r#"
@id("alice") permit (principal == Cairn::User::"alice", action, resource);
@id("runs") permit (principal, action == Cairn::Action::"run", resource);
"#;

const HOOK_SECRET: &str = "bench-webhook-secret";

/// POST a signed delivery `id` to the bench workflow's webhook: the time
/// until its answer (202).
fn delivery(server: &str, id: &str) -> Duration {
    use std::io::{Read as _, Write as _};
    let body = format!(r#"{{"delivery":"{id}"}}"#);
    let mut request = format!(
        "POST /v1/hooks/bench/hook HTTP/1.1\r\nHost: cairn\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in cairn::serve::webhook::sign(
        cairn::serve::webhook::Scheme::GitHub,
        HOOK_SECRET,
        id,
        0,
        body.as_bytes(),
    ) {
        let _ = write!(request, "{k}: {v}\r\n");
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let addr = server.trim_start_matches("http://");
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    took
}

fn deliveries(server: &str, n: usize) {
    let mut took: Vec<Duration> = (0..n)
        .map(|i| delivery(server, &format!("d-{i}")))
        .collect();
    took.sort();
    let at = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "  webhook delivery to its 202, durable ({n}, one at a time)       p50 {:>6.2} ms   p99 {:>6.2} ms",
        at(0.5),
        at(0.99)
    );
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A folder with a one-task workflow `bench` and `schedules` yearly
/// schedules (none due while the benchmark runs).
fn workflow(schedules: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("p")).unwrap();
    std::fs::write(dir.path().join("p/rules.cedar"), RULES).unwrap();
    let mut text = format!(
        "[workflow]\nname = \"bench\"\npolicies = [\"p\"]\n\n[tasks.noop]\ncomponent = {:?}\n\n[webhooks.hook]\nscheme = \"github\"\nsecret = \"bench_hook\"\nas = \"alice\"\n",
        cairn_tests::CMD_NOOP
    );
    for i in 0..schedules {
        // Spread over the year's days and hours: none at the benchmark's time.
        let _ = write!(
            text,
            "\n[schedules.s{i}]\ncron = \"{} {} {} {} *\"\ntimezone = \"Europe/Berlin\"\nas = \"scheduler\"\n",
            i % 60,
            i % 24,
            1 + i % 28,
            1 + (i / 28) % 12
        );
    }
    std::fs::write(dir.path().join("workflow.toml"), text).unwrap();
    dir
}

struct Daemon {
    child: Child,
    server: String,
    _state: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cairn serve` of `dir` on a free port with a fresh state directory, and
/// a token for alice.
fn serve(cairn: &Path, dir: &Path, cache: &Path) -> (Daemon, String) {
    let state = tempfile::tempdir().unwrap();
    let token = Command::new(cairn)
        .args(["token", "create", "--user", "alice", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let mut child = Command::new(cairn)
        .arg("serve")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--jobs", "2", "--state-dir"])
        .arg(state.path())
        .arg("--cache-dir")
        .arg(cache)
        .env("CAIRN_SECRET_BENCH_HOOK", HOOK_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let server = loop {
        let line = lines.next().expect("cairn serve exited").unwrap();
        if let Some(at) = line.find("listening on ") {
            let rest = &line[at + "listening on ".len()..];
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining its stderr (a run's progress lines).
    std::thread::spawn(move || for _ in lines {});
    (
        Daemon {
            child,
            server,
            _state: state,
        },
        token,
    )
}

fn call(
    runtime: &tokio::runtime::Runtime,
    server: &str,
    method: &str,
    path: &str,
    token: &str,
) -> Value {
    let answer = runtime
        .block_on(cairn::serve::client::request(
            method,
            server,
            path,
            Some(token),
            None,
        ))
        .unwrap();
    assert!(answer.status < 300, "{method} {path}: {}", answer.body);
    answer.body
}

/// Wait until run `run` has ended.
fn ended(runtime: &tokio::runtime::Runtime, server: &str, token: &str, run: &str) {
    let started = Instant::now();
    loop {
        let shown = call(runtime, server, "GET", &format!("/v1/runs/{run}"), token);
        if ["succeeded", "failed"].contains(&shown["status"].as_str().unwrap_or("")) {
            assert_eq!(shown["status"], "succeeded", "{shown}");
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{shown}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn seconds_of(rfc3339: &str) -> f64 {
    let t: jiff::Timestamp = rfc3339.parse().unwrap();
    t.as_microsecond() as f64 / 1e6
}

fn latency(runtime: &tokio::runtime::Runtime, server: &str, token: &str, n: usize) {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = call(runtime, server, "POST", "/v1/workflows/bench/runs", token);
        let run = started["run"].as_str().unwrap().to_owned();
        ended(runtime, server, token, &run);
        let records = call(
            runtime,
            server,
            "GET",
            &format!("/v1/runs/{run}/audit"),
            token,
        );
        let first = records["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "task-started")
            .expect("a task-started record");
        took.push(seconds_of(first["time"].as_str().unwrap()) - sent);
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize] * 1e3;
    println!(
        "  trigger to first task start ({n} triggers, one at a time)   p50 {:>6.2} ms   p99 {:>6.2} ms",
        at(0.5),
        at(0.99)
    );
}

fn throughput(server: &str, token: &str, runs: usize, clients: usize) {
    let started = Instant::now();
    let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for c in 0..clients {
            let ids = Arc::clone(&ids);
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                for _ in (c..runs).step_by(clients) {
                    let started = call(&runtime, server, "POST", "/v1/workflows/bench/runs", token);
                    ids.lock()
                        .unwrap()
                        .push(started["run"].as_str().unwrap().to_owned());
                }
            });
        }
    });
    let accepted = started.elapsed();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for run in ids.lock().unwrap().iter() {
        ended(&runtime, server, token, run);
    }
    let all = started.elapsed();
    println!(
        "  {runs} runs from {clients} concurrent clients                 {:>6.1} runs/s (all ended in {:.2} s; triggers answered at {:.1}/s)",
        runs as f64 / all.as_secs_f64(),
        all.as_secs_f64(),
        runs as f64 / accepted.as_secs_f64()
    );
}

/// `pid`'s resident memory (bytes) and CPU time so far (seconds).
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the whole line, in clock ticks.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code, reason = "sysconf reads the clock tick rate")]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (rss, ticks / hz)
}

fn idle(cairn: &Path, cache: &Path, schedules: usize) {
    let dir = workflow(schedules);
    let loading = Instant::now();
    let (daemon, _) = serve(cairn, dir.path(), cache);
    let loaded = loading.elapsed();
    // Let start-up settle, then watch.
    std::thread::sleep(Duration::from_secs(2));
    let pid = daemon.child.id();
    let (_, before) = usage(pid);
    let watch = Duration::from_secs(10);
    std::thread::sleep(watch);
    let (rss, after) = usage(pid);
    println!(
        "  idle with {schedules:>6} schedules loaded: {:>7.1} MiB resident, CPU {:>5.2}% of a core over {} s (up in {:.2} s)",
        rss as f64 / f64::from(1 << 20),
        (after - before) / watch.as_secs_f64() * 100.0,
        watch.as_secs(),
        loaded.as_secs_f64()
    );
}

fn main() {
    let cairn: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/cairn");
    if !cairn.is_file() {
        println!("service benchmark: build it first with `cargo build --release -p cairn`");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    println!(
        "service benchmark: `cairn serve` (release), --jobs 2, loopback HTTP, a one-task workflow (no-op wasip2 command)"
    );
    let dir = workflow(0);
    let (daemon, token) = serve(&cairn, dir.path(), cache.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Warm up: the compile cache, the first connections.
    latency(&runtime, &daemon.server, &token, 5);
    latency(
        &runtime,
        &daemon.server,
        &token,
        env_usize("CAIRN_BENCH_TRIGGERS", 200),
    );
    deliveries(&daemon.server, env_usize("CAIRN_BENCH_TRIGGERS", 200));
    throughput(
        &daemon.server,
        &token,
        env_usize("CAIRN_BENCH_RUNS", 400),
        8,
    );
    drop(daemon);
    idle(&cairn, cache.path(), 0);
    idle(&cairn, cache.path(), 10_000);
}
