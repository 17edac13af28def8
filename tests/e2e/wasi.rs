//! WASI programs run under Cairn as they do under `wasmtime run` with the
//! same grants: a directory preopened at `/` beside `/inputs` and
//! `/outputs`, relative paths, directories, seeking, symlinks (inside the
//! mount only), args, env and the exit status. The same program, in Rust
//! and in C, for wasip1 (a core module) and wasip2 (a component), runs
//! under `cairn exec` and under wasmtime's own WASI (the `wasmtime` Python
//! package, the C API of the same wasmtime), and both print the same lines
//! and end with the same status.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_tests::{CMD_WASI_CONFORMANCE, P1_WASI_CONFORMANCE};

use crate::support::{Scratch, exec_json, records, run_in};
use crate::toolchains;

/// What the program prints with Cairn's grants (see the program's doc).
const EXPECTED: &str = r#"args 7 x
env FOO=bar
read /hello.txt 12 "hello world\n"
read hello.txt "hello world\n"
read sub/../hello.txt ok
seek 6 -> 6 read "world" true
seek end-1 -> 11
seek cur-5 -> 6
ls / escape hello.txt link.txt sub
ls /sub a.txt
mkdir /made ok
write /made/f.txt ok
size /made/f.txt 3
append ok -> "abcdef"
rename ok
exists f false g true
remove ok
rmdir ok
readlink /link.txt "hello.txt"
read /link.txt "hello world\n"
is_symlink true
symlink /made-link ok
read /made-link "hello world\n"
remove /made-link ok
read /escape/etc/passwd err
read /../hello.txt err
read /inputs/data "input data"
write /inputs/x err
write /outputs/result ok
exit 7
"#;

/// A fresh root to mount at `/`, an input and an output directory.
struct Fixture {
    scratch: Scratch,
    root: PathBuf,
    inputs: PathBuf,
    outputs: PathBuf,
}

fn fixture() -> Fixture {
    let scratch = Scratch::new();
    let root = scratch.mkdir("root");
    std::fs::write(root.join("hello.txt"), "hello world\n").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/a.txt"), "a\n").unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("../..", root.join("escape")).unwrap();
    let inputs = scratch.mkdir("inputs");
    std::fs::write(inputs.join("data"), "input data").unwrap();
    let outputs = scratch.mkdir("outputs");
    Fixture {
        scratch,
        root,
        inputs,
        outputs,
    }
}

/// The root as the program left it: what it made, it removed.
fn assert_root_as_before(f: &Fixture) {
    let mut names: Vec<String> = std::fs::read_dir(&f.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["escape", "hello.txt", "link.txt", "sub"]);
    f.scratch.assert_outside_untouched();
}

/// `cairn exec` with the root at `/` (read-write), the input, FOO=bar and
/// args `CODE x`: (stdout, exit status, outputs collected).
fn under_cairn(program: &Path, code: &str) -> (String, Option<i64>, bool) {
    let f = fixture();
    let root = format!("{}:/:rw", f.root.display());
    let input = format!("data={}", f.inputs.join("data").display());
    let out = f.scratch.path().join("out");
    let (run, json) = exec_json(
        f.scratch.path(),
        program.to_str().unwrap(),
        &[
            "--mount",
            &root,
            "--input",
            &input,
            "--env",
            "FOO=bar",
            "--output-dir",
            out.to_str().unwrap(),
            "--",
            code,
            "x",
        ],
    );
    assert!(
        json["outcome"]["kind"] == "success" || json["outcome"]["kind"] == "guest-error",
        "{}{}",
        run.stdout,
        run.stderr
    );
    assert_root_as_before(&f);
    let collected = out.join("result").is_file();
    (
        json["stdout"].as_str().unwrap().to_owned(),
        json["exit_status"].as_i64(),
        collected,
    )
}

/// The same grants under wasmtime's own WASI.
fn under_wasmtime(python: &Path, program: &Path, code: &str) -> (String, i64) {
    let f = fixture();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/reference/wasmtime_run.py");
    let out = Command::new(python)
        .arg(script)
        .arg(program)
        .arg("--dir")
        .arg(format!("{}::/", f.root.display()))
        .arg("--dir")
        .arg(format!("{}::/inputs:ro", f.inputs.display()))
        .arg("--dir")
        .arg(format!("{}::/outputs", f.outputs.display()))
        .args(["--env", "FOO=bar", "--", code, "x"])
        .output()
        .unwrap();
    assert_root_as_before(&f);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        i64::from(out.status.code().unwrap_or(-1)),
    )
}

/// Build the C program for `target` (`p1`: a core module, `p2`: a
/// component through the Rust toolchain's wasm-component-ld).
fn build_c(dir: &Path, target: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/c/wasi_conformance.c");
    let out = dir.join(format!("c_{target}.wasm"));
    let mut cc = Command::new("clang");
    cc.args([
        "--target=wasm32-wasi",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-o",
    ])
    .arg(&out)
    .arg(source);
    if target == "p2" {
        let sysroot = String::from_utf8(
            Command::new("rustc")
                .args(["--print", "sysroot"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let host = String::from_utf8(Command::new("rustc").arg("-vV").output().unwrap().stdout)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
            .unwrap();
        cc.arg(format!(
            "-fuse-ld={}/lib/rustlib/{host}/bin/wasm-component-ld",
            sysroot.trim()
        ));
    }
    let built = cc.output().unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

/// Every program: Rust for both targets, and C for both when clang is here.
fn programs(test: &str, dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut all = vec![
        ("rust-p1", PathBuf::from(P1_WASI_CONFORMANCE)),
        ("rust-p2", PathBuf::from(CMD_WASI_CONFORMANCE)),
    ];
    if toolchains::clang_for_wasm(test) {
        all.push(("c-p1", build_c(dir, "p1")));
        all.push(("c-p2", build_c(dir, "p2")));
    }
    all
}

#[test]
fn wasi_programs_see_a_root_preopen_beside_inputs_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    for (name, program) in programs(
        "wasi_programs_see_a_root_preopen_beside_inputs_and_outputs (C part)",
        dir.path(),
    ) {
        let (stdout, status, collected) = under_cairn(&program, "7");
        assert_eq!(stdout, EXPECTED, "{name}");
        // Preview 1's `proc_exit(7)` is 7. Preview 2's `exit` says only
        // ok or err, and today's Rust std and wasi-libc call it (not
        // `exit-with-code`, which Cairn links too): failure is 1.
        let expected = if name.ends_with("p2") { 1 } else { 7 };
        assert_eq!(status, Some(expected), "{name}");
        assert!(!collected, "{name}: a failed run's outputs are not moved");
        let (stdout, status, collected) = under_cairn(&program, "0");
        assert_eq!(stdout, EXPECTED.replace("7", "0"), "{name}");
        assert_eq!(status, Some(0), "{name}");
        assert!(collected, "{name}: /outputs/result is an output");
    }
}

#[test]
fn wasi_programs_run_as_under_wasmtime() {
    let test = "wasi_programs_run_as_under_wasmtime";
    let Some(python) = toolchains::reference_python(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, program) in programs(test, dir.path()) {
        for code in ["7", "0"] {
            let (ours, status, _) = under_cairn(&program, code);
            let (theirs, their_status) = under_wasmtime(&python, &program, code);
            assert_eq!(ours, theirs, "{name} exit {code}");
            assert_eq!(status, Some(their_status), "{name} exit {code}");
        }
    }
}

#[test]
fn a_workflow_command_task_mounts_the_root_and_records_its_exit_status() {
    let s = Scratch::new();
    s.policies();
    s.write(
        "p/mounts.cedar",
        r#"@id("mounts") permit (principal, action == Cairn::Action::"mount", resource);"#,
    );
    let root = s.mkdir("root");
    std::fs::write(root.join("hello.txt"), "hello world\n").unwrap();
    s.write(
        "workflow.toml",
        &format!(
            r#"[workflow]
name = "statuses"
policies = ["p"]
[tasks.fails]
component = {exit:?}
args = ["5"]
mounts = [{{ host = "root", guest = "/" }}, {{ host = "root", guest = "/data" }}]
outputs = []
"#,
            exit = cairn_tests::P1_EXIT_CODE
        ),
    );
    let ran = run_in(s.path(), &["run", "--as", "alice", "--json"]);
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    let run = ran.json()["run"].as_str().unwrap().to_owned();
    let finished: Vec<_> = records(s.path(), &run)
        .into_iter()
        .filter(|r| r["kind"] == "task-finished")
        .collect();
    assert_eq!(finished.len(), 1, "{finished:#?}");
    assert_eq!(finished[0]["outcome"], "guest-error");
    assert_eq!(finished[0]["exit_status"], 5);
    crate::support::assert_verifies(s.path());
}
