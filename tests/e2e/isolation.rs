//! A hostile task harms nothing but itself: a well-behaved task running beside
//! it, in the same process and the same engine, succeeds.

use std::path::Path;
use std::time::Duration;

use cairn::sandbox::{Capabilities, EngineSettings, Limits, Outcome, Sandbox, TaskSpec};
use cairn_tests as g;

fn spec(outputs: &Path, limits: Limits) -> TaskSpec {
    TaskSpec {
        caps: Capabilities::default(),
        limits,
        outputs_dir: outputs.to_owned(),
        log_sink: None,
        exchange_sink: None,
        gate: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_do_not_disturb_a_neighbour() {
    // The pooling allocator, as the scheduler will use it.
    let settings = EngineSettings {
        pool: Some(16),
        ..EngineSettings::default()
    };
    let sandbox = Sandbox::new(&settings, None).expect("sandbox");
    let hello = sandbox.load(Path::new(g::HELLO), None).expect("load hello");
    let limits = Limits {
        cpu_time: Duration::from_millis(300),
        timeout: Duration::from_secs(2),
        memory: 32 << 20,
        stdout: 64 << 10,
        output: 2 << 20,
        ..Limits::default()
    };
    for (wasm, expected) in [
        (g::CMD_SPIN, "timeout"),
        (g::CMD_SLEEP, "timeout"),
        (g::CMD_MEMBOMB, "resource-limit"),
        (g::CMD_FLOOD_STDOUT, "output-limit"),
        (g::WAT_DEEP_RECURSION, "trap"),
        (g::WAT_TABLE_BOMB, "resource-limit"),
        (g::CMD_FLOOD_OUTPUT, "output-limit"),
        (g::CMD_SNOOP, "success"),
        (g::CMD_PANIC, "trap"),
        (g::P1_MEMBOMB, "resource-limit"),
        (g::P1_SPIN, "timeout"),
    ] {
        let hostile = sandbox.load(Path::new(wasm), None).expect("load hostile");
        let bad_out = tempfile::tempdir().unwrap();
        let good_out = tempfile::tempdir().unwrap();
        let bad_spec = spec(bad_out.path(), limits.clone());
        let good_spec = spec(good_out.path(), Limits::default());
        let bad = sandbox.run(&hostile, &bad_spec);
        // Start the neighbour while the hostile guest is already running.
        let good = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            sandbox.run(&hello, &good_spec).await
        };
        let (bad, good) = tokio::join!(bad, good);
        let (bad, good) = (
            bad.expect("hostile attempt"),
            good.expect("neighbour attempt"),
        );
        assert_eq!(bad.outcome.kind(), expected, "{wasm}: {}", bad.outcome);
        assert_eq!(good.outcome, Outcome::Success, "neighbour of {wasm}");
        let greeting = std::fs::read_to_string(good_out.path().join("greeting")).unwrap();
        assert_eq!(greeting, "Hello, world!\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_instances_of_one_program_are_independent() {
    let settings = EngineSettings {
        pool: Some(8),
        ..EngineSettings::default()
    };
    let sandbox = Sandbox::new(&settings, None).expect("sandbox");
    let task = sandbox.load(Path::new(g::TASK), None).expect("load");
    let dirs: Vec<_> = (0..24).map(|_| tempfile::tempdir().unwrap()).collect();
    let inputs = tempfile::tempdir().unwrap();
    let mut specs = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let text = inputs.path().join(format!("text-{i}"));
        std::fs::write(&text, format!("task number {i}")).unwrap();
        let mut caps = Capabilities::default();
        caps.inputs
            .insert(cairn::name::Name::new("text").unwrap(), text);
        specs.push(TaskSpec {
            caps,
            limits: Limits::default(),
            outputs_dir: dir.path().to_owned(),
            log_sink: None,
            exchange_sink: None,
            gate: None,
        });
    }
    // More concurrent attempts than pool slots' worth of one batch: run in
    // waves of 8 so the pool is reused.
    for wave in specs.chunks(8) {
        let runs = wave.iter().map(|spec| sandbox.run(&task, spec));
        for attempt in futures_join_all(runs).await {
            assert_eq!(attempt.expect("attempt").outcome, Outcome::Success);
        }
    }
    for (i, dir) in dirs.iter().enumerate() {
        assert_eq!(
            std::fs::read_to_string(dir.path().join("echo")).unwrap(),
            format!("task number {i}")
        );
    }
}

/// Await all futures concurrently on this task (no extra dependency).
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, slot) in pinned.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results
        .into_iter()
        .map(|r| r.expect("every future completed"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_may_write_no_outputs_cannot_write_to_outputs() {
    let sandbox = Sandbox::new(&EngineSettings::for_runs(2), None).expect("sandbox");
    let echo = sandbox
        .load(Path::new(g::CMD_ECHO), None)
        .expect("load echo");
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("note.txt");
    std::fs::write(&input, "hello").unwrap();
    let outputs = scratch.path().join("outputs");
    std::fs::create_dir(&outputs).unwrap();
    let mut caps = Capabilities::default();
    caps.inputs
        .insert(cairn::name::Name::new("note").unwrap(), input);
    // Declared: no outputs at all (how the runner gives a task that declares none).
    caps.outputs = Some(Vec::new());
    let given = TaskSpec {
        caps: caps.clone(),
        ..spec(&outputs, Limits::default())
    };
    let attempt = sandbox.run(&echo, &given).await.expect("attempt");
    // echo copies each input to /outputs and fails if it cannot.
    assert_eq!(attempt.outcome.kind(), "trap", "{}", attempt.outcome);
    assert!(String::from_utf8_lossy(&attempt.stderr).contains("write output"));
    assert_eq!(std::fs::read_dir(&outputs).unwrap().count(), 0);
    // Allowed to write what it likes (`cairn exec`), the same copy succeeds.
    caps.outputs = None;
    let given = TaskSpec {
        caps,
        ..spec(&outputs, Limits::default())
    };
    let attempt = sandbox.run(&echo, &given).await.expect("attempt");
    assert_eq!(attempt.outcome, Outcome::Success, "{}", attempt.outcome);
    assert_eq!(
        std::fs::read_to_string(outputs.join("note")).unwrap(),
        "HELLO"
    );
}
