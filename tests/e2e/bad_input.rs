//! Bad input: one clear line, exit 2, no panic, nothing written.

use cairn_tests::{CMD_SOCKETS, HELLO, WAT_EMPTY_COMPONENT, WAT_NO_START, WAT_UNKNOWN_IMPORT};

use crate::support::{Run, Scratch, assert_contains, run_in};

/// Exit 2, exactly one line on stderr saying `error: …` with `needle`, and
/// nothing on stdout.
fn assert_input_error(run: &Run, needle: &str) {
    assert_eq!(run.code, 2, "stderr:\n{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(
        lines[0].contains(needle),
        "`{needle}` missing from: {}",
        lines[0]
    );
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
}

#[test]
fn missing_file() {
    let s = Scratch::new();
    let run = run_in(s.path(), &["exec", "nope.wasm"]);
    assert_input_error(&run, "cannot read `nope.wasm`: No such file or directory");
    assert!(
        !s.path().join("out").exists(),
        "nothing created on bad input"
    );
}

#[test]
fn bytes_that_are_not_wasm() {
    let s = Scratch::new();
    s.write("script.wasm", "#!/bin/sh\necho hi\n");
    let run = run_in(s.path(), &["exec", "script.wasm"]);
    assert_input_error(
        &run,
        "`script.wasm` is not a WebAssembly file (it starts with `23 21 2f 62`)",
    );
    s.write("empty.wasm", "");
    let run = run_in(s.path(), &["exec", "empty.wasm"]);
    assert_input_error(&run, "it starts with no bytes at all");
}

#[test]
fn truncated_and_garbage_wasm() {
    let s = Scratch::new();
    let hello = std::fs::read(HELLO).unwrap();
    std::fs::write(s.path().join("half.wasm"), &hello[..hello.len() / 2]).unwrap();
    let run = run_in(s.path(), &["exec", "half.wasm"]);
    assert_input_error(&run, "`half.wasm` is not valid WebAssembly");
    std::fs::write(s.path().join("v2.wasm"), b"\0asm\x02\0\0\0").unwrap();
    let run = run_in(s.path(), &["exec", "v2.wasm"]);
    assert_input_error(&run, "unsupported version");
}

#[test]
fn core_module_that_is_not_a_command() {
    let run = run_in(Scratch::new().path(), &["exec", WAT_NO_START]);
    assert_input_error(&run, "is a core module without a `_start` function");
}

#[test]
fn component_that_is_neither_task_nor_command() {
    let run = run_in(Scratch::new().path(), &["exec", WAT_EMPTY_COMPONENT]);
    assert_input_error(
        &run,
        "exports neither `run` (a Cairn task) nor `wasi:cli/run`",
    );
}

#[test]
fn component_importing_what_the_host_does_not_provide() {
    let run = run_in(Scratch::new().path(), &["exec", WAT_UNKNOWN_IMPORT]);
    assert_input_error(
        &run,
        "needs `acme:db/query@1.0.0`, which Cairn does not provide",
    );
    assert!(
        run.stderr.contains("rebuild it without that import"),
        "{}",
        run.stderr
    );
}

#[test]
fn sockets_load_but_refuse_every_connection_listen_send_and_lookup() {
    // A real listener: if the guest got through, it would be accepted here.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind(listener.local_addr().unwrap()).unwrap();
    udp.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let run = run_in(Scratch::new().path(), &["exec", CMD_SOCKETS, "--", &target]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for attempt in ["tcp connect", "tcp listen", "udp bind", "lookup"] {
        assert!(
            run.stdout.contains(&format!("refused {attempt}")),
            "{attempt}: {}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("ESCAPED"), "{}", run.stdout);
    assert!(listener.accept().is_err(), "the guest connected");
    assert!(udp.recv(&mut [0; 16]).is_err(), "the guest sent a datagram");
}

#[test]
fn pin_mismatch_refuses_before_compiling() {
    let s = Scratch::new();
    let cache = s.mkdir("cache");
    let zeros = "0".repeat(64);
    let run = run_in(
        s.path(),
        &[
            "exec",
            HELLO,
            "--sha256",
            &zeros,
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert_input_error(&run, &format!("but the pin requires {zeros}"));
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        0,
        "nothing was compiled"
    );
}

#[test]
fn bad_flags_and_host_side_inputs() {
    let s = Scratch::new();
    let run = run_in(s.path(), &["exec", HELLO, "--input", "name=missing.txt"]);
    assert_input_error(&run, "input `name`: `missing.txt` is not a readable file");
    let run = run_in(
        s.path(),
        &[
            "exec",
            HELLO,
            "--secret",
            "token=env:CAIRN_TEST_SURELY_UNSET",
        ],
    );
    assert_input_error(
        &run,
        "environment variable `CAIRN_TEST_SURELY_UNSET` is not set",
    );
    let run = run_in(s.path(), &["exec", HELLO, "--mount", "nowhere:/data"]);
    assert_input_error(&run, "mount `/data`: `nowhere` is not a directory");
    let run = run_in(s.path(), &["exec", HELLO, "--timeout", "soon"]);
    assert_eq!(run.code, 2);
    assert_contains(&run.stderr, "`soon` is not a duration");
    let run = run_in(s.path(), &["exec", HELLO, "--input", "../etc=x"]);
    assert_eq!(run.code, 2);
    assert_contains(&run.stderr, "is not a valid name");
}

#[test]
fn verbose_adds_causes_not_panics() {
    let s = Scratch::new();
    let run = run_in(s.path(), &["-v", "exec", "nope.wasm"]);
    assert_eq!(run.code, 2);
    assert_contains(&run.stderr, "caused by: No such file or directory");
}
