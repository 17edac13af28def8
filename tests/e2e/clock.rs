//! Time in the runner is tokio's clock: with it paused, backoff delays of
//! hours and a task's wall-clock timeout play out in virtual time, so the
//! schedules are tested exactly and without sleeping.

use std::path::Path;
use std::time::Duration;

use cairn::runner::{Start, Status, Summary};

use crate::support::Scratch;

/// Run the workflow `manifest` (in a scratch folder, under the test
/// policies) with the runner itself, on the test's (paused) clock.
async fn run(s: &Scratch, manifest: &str) -> Summary {
    s.policies();
    let path = s.write("workflow.toml", manifest);
    let (workflow, setup) =
        cairn_tests::runner_setup(&path, "alice", &s.path().join(".cairn"), &cache_dir(), 2);
    cairn::runner::run(workflow, setup, "r1", Start::New)
        .await
        .unwrap()
}

/// Where compiled tasks are cached between tests.
fn cache_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("clock-test-cache")
}

/// The `delay_ms` of each `retry` record.
fn retry_delays(s: &Scratch) -> Vec<u64> {
    std::fs::read_to_string(s.path().join(".cairn/audit/log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "retry")
        .map(|r| r["delay_ms"].as_u64().unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_waits_hours_in_virtual_time() {
    let s = Scratch::new();
    let real = std::time::Instant::now();
    let virtual_start = tokio::time::Instant::now();
    let summary = run(
        &s,
        &format!(
            "[workflow]\nname = \"flaky\"\npolicies = [\"p\"]\n[tasks.flaky]\ncomponent = {:?}\n\
             env = {{ MODE = \"transient\" }}\n\
             retries = {{ max = 3, backoff = \"exponential\", initial = \"1h\", max_delay = \"3h\", jitter = false }}\n",
            cairn_tests::TASK
        ),
    )
    .await;
    let waited = virtual_start.elapsed();
    // 1 h, 2 h, then capped at 3 h: six hours of backoff, four attempts.
    assert_eq!(retry_delays(&s), [3_600_000, 7_200_000, 10_800_000]);
    assert_eq!(summary.tasks[0].attempts, 4);
    assert!(matches!(summary.tasks[0].status, Status::Failed(_)));
    assert!(waited >= Duration::from_secs(6 * 3600), "{waited:?}");
    assert!(waited < Duration::from_secs(6 * 3600 + 60), "{waited:?}");
    assert!(real.elapsed() < Duration::from_secs(60), "slept for real");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_fires_in_virtual_time_and_is_retried() {
    let s = Scratch::new();
    let real = std::time::Instant::now();
    let virtual_start = tokio::time::Instant::now();
    // The task sleeps an hour; its timeout is ten minutes.
    let summary = run(
        &s,
        &format!(
            "[workflow]\nname = \"slow\"\npolicies = [\"p\"]\n[tasks.slow]\ncomponent = {:?}\n\
             env = {{ MODE = \"sleep\", SLEEP_MS = \"3600000\" }}\noutputs = [\"echo\"]\ntimeout = \"10m\"\n\
             retries = {{ max = 1, backoff = \"fixed\", initial = \"5m\", max_delay = \"5m\", jitter = false }}\n",
            cairn_tests::TASK
        ),
    )
    .await;
    let waited = virtual_start.elapsed();
    assert_eq!(summary.tasks[0].attempts, 2);
    let Status::Failed(why) = &summary.tasks[0].status else {
        panic!("{:?}", summary.tasks[0].status);
    };
    assert!(why.contains("timed out"), "{why}");
    assert_eq!(retry_delays(&s), [300_000]);
    // Two ten-minute attempts and a five-minute wait.
    assert!(waited >= Duration::from_secs(25 * 60), "{waited:?}");
    assert!(waited < Duration::from_secs(26 * 60), "{waited:?}");
    assert!(real.elapsed() < Duration::from_secs(60), "slept for real");
}
