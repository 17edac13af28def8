//! Hostile guests: each is contained with a precise reason, within its bound,
//! and leaves everything outside its mounts untouched.

use std::time::Duration;

use cairn_tests as g;
use serde_json::Value;

use crate::support::{Scratch, assert_contains, exec_json, outcome_kind};

/// Slack for a loaded 2-core CI machine: a limit must fire within its value
/// plus this.
const MARGIN: Duration = Duration::from_millis(1500);

fn duration(json: &Value) -> Duration {
    Duration::from_secs_f64(json["duration_ms"].as_f64().unwrap() / 1000.0)
}

/// Run a hostile guest; assert exit 1 and the outcome kind; return the JSON.
fn contained(s: &Scratch, wasm: &str, args: &[&str], kind: &str) -> Value {
    let mut all = vec!["--output-dir", "out"];
    all.extend_from_slice(args);
    let (run, json) = exec_json(s.path(), wasm, &all);
    assert_eq!(
        run.code, 1,
        "{wasm}: expected a failed task:\n{}",
        run.stderr
    );
    assert_eq!(outcome_kind(&json), kind, "{wasm}: {:#}", json["outcome"]);
    s.assert_outside_untouched();
    json
}

/// The lines a probing guest printed; panics if any reports an escape.
fn assert_no_escape(json: &Value, expected_refusals: usize) {
    let stdout = json["stdout"].as_str().unwrap();
    assert!(!stdout.contains("ESCAPED"), "a guest escaped:\n{stdout}");
    let refused = stdout.lines().filter(|l| l.starts_with("refused")).count();
    assert_eq!(refused, expected_refusals, "{stdout}");
}

#[test]
fn infinite_loop_hits_the_cpu_limit() {
    for wasm in [g::CMD_SPIN, g::P1_SPIN] {
        let s = Scratch::new();
        let json = contained(
            &s,
            wasm,
            &["--cpu-time", "500ms", "--timeout", "20s"],
            "timeout",
        );
        assert_eq!(json["outcome"]["clock"], "cpu");
        assert_eq!(json["outcome"]["limit_ms"], 500);
        assert!(
            duration(&json) < Duration::from_millis(500) + MARGIN,
            "{:?}",
            duration(&json)
        );
    }
}

#[test]
fn blocking_in_a_host_call_hits_the_wall_clock_limit() {
    let s = Scratch::new();
    let json = contained(&s, g::CMD_SLEEP, &["--timeout", "700ms"], "timeout");
    assert_eq!(json["outcome"]["clock"], "wall");
    let took = duration(&json);
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(700) + MARGIN,
        "{took:?}"
    );
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    for wasm in [g::CMD_MEMBOMB, g::P1_MEMBOMB] {
        let s = Scratch::new();
        let json = contained(&s, wasm, &["--memory", "32MiB"], "resource-limit");
        assert_eq!(json["outcome"]["resource"], "memory");
        assert_eq!(json["outcome"]["limit"], 32 << 20);
    }
}

#[test]
fn table_growth_bomb_hits_the_table_limit() {
    let s = Scratch::new();
    let json = contained(&s, g::WAT_TABLE_BOMB, &[], "resource-limit");
    assert_eq!(json["outcome"]["resource"], "table");
}

#[test]
fn deep_recursion_traps_on_the_stack_limit() {
    let s = Scratch::new();
    // Pure wasm recursion: stopped by the engine's wasm stack limit.
    let json = contained(&s, g::WAT_DEEP_RECURSION, &[], "trap");
    assert_eq!(json["outcome"]["reason"], "wasm trap: call stack exhausted");
    // Rust recursion overflows its shadow stack in linear memory first, which
    // wasm's bounds checks catch.
    for wasm in [g::CMD_RECURSE, g::P1_RECURSE] {
        let json = contained(&s, wasm, &[], "trap");
        let reason = json["outcome"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("out of bounds") || reason.contains("call stack exhausted"),
            "{reason}"
        );
    }
}

#[test]
fn stdout_flood_hits_the_output_limit() {
    for wasm in [g::CMD_FLOOD_STDOUT, g::P1_FLOOD_STDOUT] {
        let s = Scratch::new();
        let json = contained(&s, wasm, &["--max-stdout", "64KiB"], "output-limit");
        assert_eq!(json["outcome"]["stream"], "stdout");
        let kept = json["stdout"].as_str().unwrap().len();
        assert!(kept <= 64 * 1024, "captured {kept} bytes");
    }
}

#[test]
fn output_file_flood_is_stopped_and_discarded() {
    let s = Scratch::new();
    let json = contained(
        &s,
        g::CMD_FLOOD_OUTPUT,
        &["--max-output", "4MiB", "--timeout", "20s"],
        "output-limit",
    );
    assert_eq!(json["outcome"]["stream"], "output `huge`");
    assert!(
        duration(&json) < Duration::from_secs(10),
        "stopped promptly: {:?}",
        duration(&json)
    );
    let out: Vec<_> = std::fs::read_dir(s.path().join("out")).unwrap().collect();
    assert!(out.is_empty(), "a failed task leaves no outputs behind");
}

#[test]
fn path_traversal_is_refused() {
    for wasm in [g::CMD_TRAVERSE, g::P1_TRAVERSE] {
        let s = Scratch::new();
        s.mkdir("data");
        s.write("data/in.txt", "inside");
        let (run, json) = exec_json(
            s.path(),
            wasm,
            &["--mount", "data:/data:rw", "--output-dir", "out"],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_no_escape(&json, 17);
        assert!(!s.path().join("escaped.txt").exists());
        s.assert_outside_untouched();
    }
}

#[test]
fn symlinks_planted_in_a_mount_lead_nowhere() {
    for wasm in [g::CMD_SYMLINK_ESCAPE, g::P1_SYMLINK_ESCAPE] {
        let s = Scratch::new();
        s.mkdir("data");
        // The guest also leaves a symlink in /outputs: the host must refuse it
        // rather than follow it and publish the file it points to.
        let json = contained(&s, wasm, &["--mount", "data:/data:rw"], "invalid-output");
        assert_eq!(json["outcome"]["name"], "leak");
        let stdout = json["stdout"].as_str().unwrap();
        assert!(!stdout.contains("ESCAPED"), "{stdout}");
        assert!(
            stdout.contains("made symlink /data/rel-link"),
            "the attempt really happened: {stdout}"
        );
        assert!(!s.path().join("out/leak").exists());
    }
}

#[test]
fn read_only_mounts_cannot_be_changed_by_any_means() {
    for wasm in [g::CMD_RO_MOUNT, g::P1_RO_MOUNT] {
        let s = Scratch::new();
        s.mkdir("ro");
        s.mkdir("rw");
        s.write("ro/keep.txt", "keep\n");
        let (run, json) = exec_json(
            s.path(),
            wasm,
            &[
                "--mount",
                "ro:/ro:ro",
                "--mount",
                "rw:/rw:rw",
                "--output-dir",
                "out",
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_no_escape(&json, 12);
        let names: Vec<_> = std::fs::read_dir(s.path().join("ro"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["keep.txt"]);
        assert_eq!(
            std::fs::read_to_string(s.path().join("ro/keep.txt")).unwrap(),
            "keep\n"
        );
        s.assert_outside_untouched();
    }
}

#[test]
fn nothing_ambient_env_args_cwd_or_proc() {
    for wasm in [g::CMD_SNOOP, g::P1_SNOOP] {
        let s = Scratch::new();
        let (run, json) = exec_json(s.path(), wasm, &["--output-dir", "out"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let stdout = json["stdout"].as_str().unwrap();
        assert!(stdout.contains(r#"args=["snoop"]"#), "{stdout}");
        assert!(stdout.contains("env=[]"), "{stdout}");
        assert!(!stdout.contains("ambient-canary-value"), "{stdout}");
        assert_no_escape(&json, 8);
    }
}

#[test]
fn undeclared_secret_is_a_typed_denial() {
    let s = Scratch::new();
    s.write("mode", "undeclared-secret");
    let json = contained(&s, g::TASK, &["--input", "mode=mode"], "guest-error");
    assert_eq!(
        json["outcome"]["message"],
        "failed: no secret `db-password` for me"
    );
    assert_eq!(
        json["denials"],
        serde_json::json!(["read of undeclared secret `db-password`"])
    );
}

#[test]
fn declared_secret_is_masked_in_everything_printed() {
    let s = Scratch::new();
    s.write("mode", "secret");
    s.write("token.txt", "tok-3f9a-very-secret\n");
    let (run, json) = exec_json(
        s.path(),
        g::TASK,
        &[
            "--input",
            "mode=mode",
            "--secret",
            "token=file:token.txt",
            "--output-dir",
            "out",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let everything = format!("{}{}", run.stdout, run.stderr);
    assert!(!everything.contains("tok-3f9a-very-secret"), "{everything}");
    // base64 of the value, as the guest printed it
    assert!(
        !everything.contains("dG9rLTNmOWEtdmVyeS1zZWNyZXQ"),
        "{everything}"
    );
    assert_eq!(json["stdout"], "token is *** / ***\n");
    assert_eq!(json["logs"][0]["message"], "logged token ***");
}

#[test]
fn guest_panic_and_trap_are_traps_with_the_message_kept() {
    let s = Scratch::new();
    let json = contained(&s, g::CMD_PANIC, &[], "trap");
    assert_eq!(
        json["outcome"]["reason"],
        "wasm trap: wasm `unreachable` instruction executed"
    );
    assert!(
        json["stderr"]
            .as_str()
            .unwrap()
            .contains("index out of bounds"),
        "{}",
        json["stderr"]
    );
    let json = contained(&s, g::CMD_TRAP, &[], "trap");
    assert!(
        json["outcome"]["backtrace"]
            .as_str()
            .is_some_and(|bt| !bt.is_empty())
    );
    s.write("mode", "panic");
    let json = contained(&s, g::TASK, &["--input", "mode=mode"], "trap");
    assert!(
        json["stderr"]
            .as_str()
            .unwrap()
            .contains("task panicked on purpose")
    );
}

#[test]
fn handle_hoarding_hits_the_handle_limit() {
    let s = Scratch::new();
    s.mkdir("data");
    s.write("data/file.txt", "x");
    let json = contained(
        &s,
        g::CMD_HANDLES,
        &["--mount", "data:/data"],
        "resource-limit",
    );
    assert_eq!(json["outcome"]["resource"], "handles");
}

#[test]
fn host_interface_misuse_gets_typed_errors() {
    let s = Scratch::new();
    s.write("bad-names", "bad-names");
    let (run, json) = exec_json(
        s.path(),
        g::TASK,
        &["--input", "mode=bad-names", "--output-dir", "out"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_no_escape(&json, 10);

    s.write("twice", "write-twice");
    let json = contained(&s, g::TASK, &["--input", "mode=twice"], "guest-error");
    assert_eq!(
        json["outcome"]["message"],
        "failed: output `echo` was already written"
    );

    s.write("undeclared", "undeclared-output");
    let json = contained(
        &s,
        g::TASK,
        &["--input", "mode=undeclared", "--output", "echo"],
        "guest-error",
    );
    assert_eq!(
        json["denials"],
        serde_json::json!(["write of undeclared output `sneaky`"])
    );

    s.write("large", "too-large");
    let json = contained(
        &s,
        g::TASK,
        &["--input", "mode=large", "--max-output", "1MiB"],
        "guest-error",
    );
    assert!(
        json["outcome"]["message"]
            .as_str()
            .unwrap()
            .contains("1048576"),
        "{}",
        json["outcome"]
    );

    s.write("flood", "log-flood");
    let json = contained(&s, g::TASK, &["--input", "mode=flood"], "output-limit");
    assert_eq!(json["outcome"]["stream"], "logs");
}

#[test]
fn terminal_escape_sequences_from_a_guest_are_defused() {
    let s = Scratch::new();
    s.write("mode", "escape");
    let run = crate::support::run_in(
        s.path(),
        &[
            "exec",
            g::TASK,
            "--input",
            "mode=mode",
            "--output-dir",
            "out",
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        !run.stderr.contains('\x1b'),
        "raw escape reached the terminal: {:?}",
        run.stderr
    );
    assert_contains(&run.stderr, "clearing your screen\\u{1b}[2J");
    assert_contains(&run.stderr, "failed: ok hello succeeded\\u{1b}[1A");
}

#[test]
fn a_component_with_more_core_instances_than_allowed_does_not_start() {
    // The Rust test task is a few core instances (its module, the WASI
    // adapter, shims): one is too few, the default is plenty.
    let s = Scratch::new();
    let json = contained(&s, g::TASK, &["--instances", "1"], "instantiation");
    let message = json["outcome"]["message"].as_str().unwrap();
    assert_contains(message, "instance");
    assert_contains(message, "instance count too high");
    let run = crate::support::run_in(s.path(), &["exec", g::TASK, "--instances", "1"]);
    assert_contains(&run.stderr, "raise the limit with --instances");
    let run = crate::support::run_in(s.path(), &["exec", g::TASK, "--instances", "65"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_contains(&run.stderr, "1..=64");

    // The same limit from a manifest.
    s.write(
        "workflow.toml",
        &format!(
            "[workflow]\nname = \"w\"\npolicies = [\"p\"]\n\n[tasks.a]\ncomponent = {:?}\ninstances = 1\n",
            g::TASK
        ),
    );
    s.mkdir("p");
    s.write(
        "p/all.cedar",
        "@id(\"anyone-runs\") permit (principal, action == Cairn::Action::\"run\", resource);\n",
    );
    let run = crate::support::run_in(s.path(), &["run", "--as", "alice"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_contains(&run.stderr, "could not start");
}
