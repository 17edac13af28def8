//! `cairn exec` on well-behaved tasks: the task author's loop.

use cairn_tests::{CMD_ECHO, HELLO, P1_ECHO, TASK};

use crate::support::{Scratch, assert_contains, exec_json, outcome_kind, run_in};

#[test]
fn hello_greets_its_input_and_writes_the_output() {
    let s = Scratch::new();
    s.write("name.txt", "Ada\n");
    let run = run_in(
        s.path(),
        &[
            "exec",
            HELLO,
            "--input",
            "name=name.txt",
            "--output-dir",
            "out",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(s.path().join("out/greeting")).unwrap(),
        "Hello, Ada!\n"
    );
    assert!(
        run.stderr.contains("[hello] info: greeting Ada"),
        "log line shown live:\n{}",
        run.stderr
    );
    assert_contains(&run.stderr, "ok hello succeeded");
    let leftovers: Vec<_> = std::fs::read_dir(s.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["greeting"], "no staging directory left behind");
}

#[test]
fn json_result_has_outputs_digests_and_logs() {
    let s = Scratch::new();
    let (run, json) = exec_json(s.path(), HELLO, &["--output-dir", "out"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(outcome_kind(&json), "success");
    assert_eq!(json["kind"], "cairn-task");
    assert_eq!(json["outputs"][0]["name"], "greeting");
    // sha256("Hello, world!\n")
    assert_eq!(
        json["outputs"][0]["sha256"],
        "d9014c4624844aa5bac314773d6b689ad467fa4e1d1a50a1b8a99d5a95f72ff5"
    );
    assert_eq!(json["logs"][0]["message"], "greeting world");
    assert_eq!(json["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn second_run_uses_the_compile_cache() {
    let s = Scratch::new();
    let cache = s.mkdir("cache");
    let cache = cache.to_str().unwrap();
    let (_, first) = exec_json(
        s.path(),
        HELLO,
        &["--output-dir", "a", "--cache-dir", cache],
    );
    let (_, second) = exec_json(
        s.path(),
        HELLO,
        &["--output-dir", "b", "--cache-dir", cache],
    );
    assert_eq!(first["cache_hit"], false);
    assert_eq!(second["cache_hit"], true);
    let (_, uncached) = exec_json(s.path(), HELLO, &["--output-dir", "c", "--no-cache"]);
    assert_eq!(uncached["cache_hit"], false);
}

#[test]
fn a_corrupted_cache_entry_is_recompiled_not_loaded() {
    let s = Scratch::new();
    let cache = s.mkdir("cache");
    let (_, _) = exec_json(
        s.path(),
        HELLO,
        &["--output-dir", "a", "--cache-dir", cache.to_str().unwrap()],
    );
    for entry in std::fs::read_dir(&cache).unwrap().flatten() {
        let mut bytes = std::fs::read(entry.path()).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(entry.path(), bytes).unwrap();
    }
    let (run, json) = exec_json(
        s.path(),
        HELLO,
        &["--output-dir", "b", "--cache-dir", cache.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        json["cache_hit"], false,
        "corrupt entry must not count as a hit"
    );
}

#[test]
fn pin_accepts_the_right_digest() {
    let s = Scratch::new();
    let (_, json) = exec_json(s.path(), HELLO, &["--output-dir", "a"]);
    let digest = json["sha256"].as_str().unwrap().to_owned();
    let pinned = format!("sha256:{digest}");
    let (run, _) = exec_json(s.path(), HELLO, &["--output-dir", "b", "--sha256", &pinned]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn command_tasks_see_inputs_args_env_and_stdin_as_declared() {
    for (wasm, kind) in [(CMD_ECHO, "command"), (P1_ECHO, "core-command")] {
        let s = Scratch::new();
        s.write("orders.csv", "id,name\n1,ada\n");
        s.write("in.txt", "from stdin");
        let (run, json) = exec_json(
            s.path(),
            wasm,
            &[
                "--input",
                "orders=orders.csv",
                "--env",
                "REGION=eu",
                "--stdin",
                "in.txt",
                "--output-dir",
                "out",
                "--",
                "--day",
                "2026-11-22",
            ],
        );
        assert_eq!(run.code, 0, "{kind}: {}", run.stderr);
        assert_eq!(json["kind"], kind);
        let stdout = json["stdout"].as_str().unwrap();
        assert!(
            stdout.contains(r#"args=["echo", "--day", "2026-11-22"]"#),
            "{kind}: {stdout}"
        );
        assert!(
            stdout.contains(r#"env=[("REGION", "eu")]"#),
            "{kind}: {stdout}"
        );
        assert!(stdout.contains(r#"stdin="from stdin""#), "{kind}: {stdout}");
        assert_eq!(
            std::fs::read_to_string(s.path().join("out/orders")).unwrap(),
            "ID,NAME\n1,ADA\n"
        );
        assert_eq!(json["outputs"][0]["name"], "orders");
        assert_eq!(json["stderr"], "echo done\n");
    }
}

#[test]
fn exit_status_of_a_command_is_a_guest_error() {
    let s = Scratch::new();
    let (run, json) = exec_json(
        s.path(),
        cairn_tests::P1_EXIT_CODE,
        &["--output-dir", "out", "--", "5"],
    );
    assert_eq!(run.code, 1);
    assert_eq!(outcome_kind(&json), "guest-error");
    assert_eq!(json["outcome"]["message"], "failed: exited with status 5");
    assert_eq!(json["exit_status"], 5, "the status as a number");
    // A command that ends well says 0; a trap and a Cairn task say none.
    let (_, ok) = exec_json(s.path(), CMD_ECHO, &["--output-dir", "out"]);
    assert_eq!(ok["exit_status"], 0, "{ok:#}");
    let (_, trapped) = exec_json(s.path(), cairn_tests::P1_TRAP, &["--output-dir", "out"]);
    assert_eq!(outcome_kind(&trapped), "trap");
    assert!(trapped["exit_status"].is_null(), "{trapped:#}");
    let (_, task) = exec_json(s.path(), HELLO, &["--output-dir", "out"]);
    assert!(task["exit_status"].is_null(), "{task:#}");
}

#[test]
fn task_failures_say_whether_a_retry_may_help() {
    let s = Scratch::new();
    s.write("transient", "transient");
    s.write("permanent", "permanent");
    let (run, json) = exec_json(
        s.path(),
        TASK,
        &["--input", "mode=transient", "--output-dir", "out"],
    );
    assert_eq!(run.code, 1);
    assert_eq!(json["outcome"]["kind"], "guest-error");
    assert_eq!(json["outcome"]["transient"], true);
    assert_eq!(json["outcome"]["retriable"], true);
    assert_eq!(
        json["outcome"]["message"],
        "failed (transient): upstream unavailable"
    );
    let (_, json) = exec_json(
        s.path(),
        TASK,
        &["--input", "mode=permanent", "--output-dir", "out"],
    );
    assert_eq!(json["outcome"]["retriable"], false);
    assert_eq!(json["outcome"]["message"], "failed: bad data in row 7");
}

#[test]
fn failed_task_leaves_the_output_directory_as_it_was() {
    let s = Scratch::new();
    let out = s.mkdir("out");
    std::fs::write(out.join("echo"), "previous result").unwrap();
    s.write("mode", "write-twice");
    let (run, _) = exec_json(
        s.path(),
        TASK,
        &["--input", "mode=mode", "--output-dir", "out"],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        std::fs::read_to_string(out.join("echo")).unwrap(),
        "previous result"
    );
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        1,
        "no staging left behind"
    );
}

#[test]
fn help_teaches_with_examples() {
    let s = Scratch::new();
    let run = run_in(s.path(), &["exec", "--help"]);
    assert_eq!(run.code, 0);
    assert_contains(&run.stdout, "Examples:");
    assert_contains(&run.stdout, "--secret <NAME=SOURCE>");
    let run = run_in(s.path(), &["--help"]);
    assert_contains(&run.stdout, "Exit codes");
}
