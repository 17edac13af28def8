//! `cargo bench -p cairn-tests --bench audit`: what the audit log costs.
//!
//! - Append throughput: records per second, buffered; durable with one
//!   fdatasync per record; durable with group commit (one per 100).
//! - The observer's cost per append (metrics; metrics, spans and
//!   lineage), side by side with no tap.
//! - Verification of a 1,000,000-record log (a third of them Cedar
//!   decisions that are decided again, the rest task records, a signed
//!   checkpoint every 10,000): total time and records per second.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark fails loudly"
)]

use std::time::Instant;

use cairn::audit::log::AuditLog;
use cairn::audit::note::Signer;
use cairn::audit::record::{Artifact, Event, FileDigest, PolicyFile};
use cairn::audit::verify::{Artifacts, policy_set_digest, sha256_tag, verify};

const RULES: &str = r#"@id("anyone-runs") permit (principal, action == Cairn::Action::"run", resource);
@id("declared-secrets") permit (principal, action == Cairn::Action::"read_secret", resource);
@id("token-alice-only") forbid (principal, action == Cairn::Action::"read_secret", resource == Cairn::Secret::"token")
unless { context.run_by == Cairn::User::"alice" };
"#;

fn signer() -> Signer {
    Signer::from_seed("bench", &[5; 32])
}

fn task_records(i: u64) -> [Event; 2] {
    let digest = sha256_tag(&i.to_le_bytes());
    [
        Event::TaskStarted {
            task: format!("t{i}"),
            attempt: 1,
            component: FileDigest {
                path: "tasks/transform.wasm".into(),
                sha256: sha256_tag(b"component"),
            },
            inputs: vec![Artifact {
                name: "rows".into(),
                sha256: digest.clone(),
                bytes: 4096,
            }],
            when: "success".into(),
            mounts: Vec::new(),
        },
        Event::TaskFinished {
            task: format!("t{i}"),
            attempt: 1,
            outcome: "success".into(),
            detail: "succeeded".into(),
            exit_status: None,
            duration_ms: 3,
            outputs: vec![Artifact {
                name: "rows".into(),
                sha256: digest,
                bytes: 4096,
            }],
        },
    ]
}

fn decision(i: u64) -> Event {
    Event::Decision {
        phase: "preflight".into(),
        task: format!("t{i}"),
        action: "run".into(),
        principal: serde_json::json!({ "type": "Cairn::User", "id": "alice" }),
        resource: serde_json::json!({ "type": "Cairn::Task", "id": format!("t{i}") }),
        context: serde_json::json!({ "workflow": "big" }),
        decision: "allow".into(),
        policies: vec!["anyone-runs".into()],
        errors: vec![],
    }
}

fn appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(&dir.path().join("log.jsonl"), signer()).unwrap();
    let n = 200_000u64;
    let start = Instant::now();
    for i in 0..n {
        log.append("r", task_records(i)[1].clone()).unwrap();
    }
    log.sync().unwrap();
    let buffered = start.elapsed();

    let durable_n = 2_000u64;
    let start = Instant::now();
    for i in 0..durable_n {
        log.append("r", task_records(i)[1].clone()).unwrap();
        log.sync().unwrap();
    }
    let durable = start.elapsed();

    let start = Instant::now();
    for i in 0..n / 10 {
        log.append("r", task_records(i)[1].clone()).unwrap();
        if i % 100 == 99 {
            log.sync().unwrap();
        }
    }
    log.sync().unwrap();
    let grouped = start.elapsed();
    let start = Instant::now();
    let checkpoints = 200;
    for _ in 0..checkpoints {
        log.checkpoint("r").unwrap();
    }
    let signing = start.elapsed();
    let rate = |count: u64, d: std::time::Duration| count as f64 / d.as_secs_f64();
    println!(
        "append, buffered:                      {:>10.0} records/s ({:.2} µs each)",
        rate(n, buffered),
        buffered.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "append, fdatasync per record:          {:>10.0} records/s ({:.0} µs each)",
        rate(durable_n, durable),
        durable.as_secs_f64() * 1e6 / durable_n as f64
    );
    println!(
        "append, group commit of 100:           {:>10.0} records/s",
        rate(n / 10, grouped)
    );
    println!(
        "signed checkpoint (sign + append + fsync): {:.0} µs each",
        signing.as_secs_f64() * 1e6 / f64::from(checkpoints)
    );
}

/// What the observer (the log's tap) adds to each append: the same
/// run-shaped records (a decision, a task's start and end; a checkpoint
/// every 1,000 records) appended with no tap, with the observer counting
/// metrics, and with it also making spans and OpenLineage events (their
/// queues drained by a thread, as the exporters would). Measured in the
/// appending thread's CPU time (what the tap adds under the log's lock;
/// a busy machine does not blur it, and the drains' work is the
/// exporters', off that path). Rounds alternate; the best of three each.
fn tapped() {
    use cairn::observe::{Observer, lineage::Lineage, trace::Tracer};
    use std::sync::Arc;
    #[derive(Clone, Copy, PartialEq)]
    enum Tap {
        None,
        Metrics,
        Everything,
    }
    let n = 30_000u64;
    let round = |tap: Tap| -> f64 {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(&dir.path().join("log.jsonl"), signer()).unwrap();
        let mut drains = Vec::new();
        if tap != Tap::None {
            let observer = Arc::new(Observer::new());
            if tap == Tap::Everything {
                let (spans, mut spans_rx) = tokio::sync::mpsc::channel(1_000_000);
                let (events, mut events_rx) =
                    tokio::sync::mpsc::channel::<Vec<serde_json::Value>>(1_000_000);
                observer.trace(Tracer::new(log.origin().to_owned(), String::new()), spans);
                observer.lineage(
                    Lineage::new(log.origin().to_owned(), "bench".into()),
                    events,
                );
                drains.push(std::thread::spawn(move || {
                    while spans_rx.blocking_recv().is_some() {}
                }));
                drains.push(std::thread::spawn(move || {
                    while events_rx.blocking_recv().is_some() {}
                }));
            }
            log.tap(observer);
        }
        let start = thread_cpu();
        log.append(
            "r",
            Event::RunStarted {
                user: "alice".into(),
                workflow: "big".into(),
                manifest: FileDigest {
                    path: "workflow.toml".into(),
                    sha256: sha256_tag(b"m"),
                },
                source: String::new(),
                policy_set: sha256_tag(b"p"),
                parameters: std::collections::BTreeMap::new(),
                components: std::collections::BTreeMap::new(),
                cairn: "bench".into(),
                trigger: None,
            },
        )
        .unwrap();
        let mut i = 0u64;
        while log.size() < n {
            log.append("r", decision(i)).unwrap();
            for event in task_records(i) {
                log.append("r", event).unwrap();
            }
            if i % 333 == 332 {
                log.checkpoint("r").unwrap();
            }
            i += 1;
        }
        log.checkpoint("r").unwrap();
        let took = (thread_cpu() - start) * 1e6 / log.size() as f64;
        drop(log);
        for drain in drains {
            drain.join().unwrap();
        }
        took
    };
    let mut best = [f64::MAX; 3];
    for _ in 0..3 {
        for (at, tap) in [Tap::None, Tap::Metrics, Tap::Everything]
            .into_iter()
            .enumerate()
        {
            best[at] = best[at].min(round(tap));
        }
    }
    println!(
        "append with the tap (CPU time of the appending thread): none {:.2} µs/record; metrics {:.2} µs (+{:.0}%); metrics, spans and lineage {:.2} µs (+{:.0}%)",
        best[0],
        best[1],
        (best[1] / best[0] - 1.0) * 100.0,
        best[2],
        (best[2] / best[0] - 1.0) * 100.0
    );
}

/// This thread's CPU time, in seconds.
#[allow(unsafe_code, reason = "clock_gettime: the thread's CPU time")]
fn thread_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn verification() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    let total = 1_000_000u64;
    let start = Instant::now();
    {
        let mut log = AuditLog::open(&path, signer()).unwrap();
        let files = vec![PolicyFile {
            path: "rules.cedar".into(),
            sha256: sha256_tag(RULES.as_bytes()),
            text: RULES.into(),
        }];
        let source = "[workflow]\nname = \"big\"\n".to_owned();
        log.append(
            "r",
            Event::RunStarted {
                user: "alice".into(),
                workflow: "big".into(),
                manifest: FileDigest {
                    path: "workflow.toml".into(),
                    sha256: sha256_tag(source.as_bytes()),
                },
                source,
                policy_set: policy_set_digest(&files),
                parameters: std::collections::BTreeMap::new(),
                components: std::collections::BTreeMap::new(),
                cairn: "bench".into(),
                trigger: None,
            },
        )
        .unwrap();
        log.append(
            "r",
            Event::PolicySet {
                sha256: policy_set_digest(&files),
                files,
                entities: cairn::audit::record::EntitiesJson::Parsed(serde_json::json!([])),
            },
        )
        .unwrap();
        let mut i = 0u64;
        while log.size() < total - 1 {
            log.append("r", decision(i)).unwrap();
            for event in task_records(i) {
                log.append("r", event).unwrap();
            }
            if log.size() % 10_000 < 3 {
                log.checkpoint("r").unwrap();
            }
            i += 1;
        }
        log.checkpoint("r").unwrap();
    }
    let written = start.elapsed();
    let bytes = std::fs::read(&path).unwrap();
    let start = Instant::now();
    let mut parsed = 0usize;
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        parsed += usize::from(cairn::audit::record::Record::decode(line).is_ok());
    }
    println!(
        "decoding the records alone: {:.2} s ({parsed})",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let report = verify(&bytes, &signer().verifier(), &Artifacts::default());
    let took = start.elapsed();
    assert!(report.ok(), "{:?}", report.problems.first());
    println!(
        "wrote a {}-record log ({} MB) in {:.1} s",
        report.records,
        bytes.len() / 1_000_000,
        written.as_secs_f64()
    );
    println!(
        "verified it in {:.2} s: {:.0} records/s; {} checkpoints, {} decisions decided again, {} task starts authorized",
        took.as_secs_f64(),
        report.records as f64 / took.as_secs_f64(),
        report.checkpoints,
        report.decisions,
        report.authorized
    );
}

fn main() {
    // `CAIRN_BENCH=tap` runs only the observer's figures.
    if std::env::var("CAIRN_BENCH").as_deref() == Ok("tap") {
        tapped();
        return;
    }
    appends();
    tapped();
    verification();
}
