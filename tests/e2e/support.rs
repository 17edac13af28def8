//! Running the real `cairn` binary from tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The `cairn` binary built by this same `cargo test` run.
pub fn cairn_bin() -> PathBuf {
    // This test binary is <target>/<profile>/deps/e2e-<hash>.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target layout");
    let bin = profile_dir.join(format!("cairn{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// A `cairn` command with a shared compile cache under the target directory
/// and a canary variable in its environment that no guest may ever see.
pub fn cairn() -> Command {
    let bin = cairn_bin();
    let cache = bin.parent().expect("profile dir").join("e2e-compile-cache");
    let mut cmd = Command::new(bin);
    cmd.env("CAIRN_CACHE_DIR", cache)
        .env("CAIRN_CANARY", "ambient-canary-value")
        .env_remove("NO_COLOR");
    cmd
}

/// What one run of `cairn` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Run `cairn` with `args` in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let out = cairn()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run cairn");
    let run = Run::from(out);
    assert!(
        !run.stderr.contains("panicked"),
        "cairn panicked:\n{}",
        run.stderr
    );
    run
}

/// `cairn exec WASM --json ARGS...` in `dir`; returns the run and its JSON.
pub fn exec_json(dir: &Path, wasm: &str, args: &[&str]) -> (Run, Value) {
    let mut all = vec!["exec", wasm, "--json"];
    all.extend_from_slice(args);
    let run = run_in(dir, &all);
    let json = run.json();
    (run, json)
}

/// A scratch directory with a file outside any mount, to prove it survives.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

/// Policies of the test workflows (`p/` of a scratch folder): anyone runs,
/// data flows, tasks read the secrets they declare, but `token` only in
/// runs Alice starts.
pub const RULES: &str = r#"
@id("anyone-runs") permit (principal, action == Cairn::Action::"run", resource);
@id("flows") permit (principal, action == Cairn::Action::"flow", resource);
@id("declared-secrets") permit (principal, action == Cairn::Action::"read_secret", resource);
@id("token-alice-only") forbid (principal, action == Cairn::Action::"read_secret", resource == Cairn::Secret::"token")
unless { context.run_by == Cairn::User::"alice" };
"#;

/// Alice and Bob.
pub const PEOPLE: &str = r#"[
  { "uid": { "type": "Cairn::User", "id": "alice" }, "attrs": {}, "parents": [] },
  { "uid": { "type": "Cairn::User", "id": "bob" }, "attrs": {}, "parents": [] }
]"#;

pub const OUTSIDE: &str = "outside.txt";
pub const OUTSIDE_TEXT: &str = "must never be read or changed by a guest\n";

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(OUTSIDE), OUTSIDE_TEXT).expect("write outside file");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn mkdir(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::create_dir_all(&path).expect("mkdir");
        path
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// Add `text` to the end of file `name`.
    pub fn append(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        let mut all = std::fs::read_to_string(&path).expect("read");
        all.push_str(text);
        std::fs::write(&path, all).expect("write");
    }

    /// Write [`RULES`] and [`PEOPLE`] into `p/`.
    pub fn policies(&self) {
        self.mkdir("p");
        self.write("p/rules.cedar", RULES);
        self.write("p/people.entities.json", PEOPLE);
    }

    /// Panic unless the file outside every mount is exactly as created.
    pub fn assert_outside_untouched(&self) {
        let text =
            std::fs::read_to_string(self.path().join(OUTSIDE)).expect("outside file still exists");
        assert_eq!(
            text, OUTSIDE_TEXT,
            "a guest changed a file outside its mounts"
        );
    }
}

/// The `kind` of a JSON outcome.
pub fn outcome_kind(json: &Value) -> &str {
    json["outcome"]["kind"].as_str().unwrap_or("<none>")
}

/// Panic, showing `haystack`, unless it contains `needle`.
#[track_caller]
pub fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "`{needle}` not found in:\n{haystack}"
    );
}

/// The audit records of run `run` in `dir`'s state, parsed, in log order.
pub fn records(dir: &Path, run: &str) -> Vec<Value> {
    // Records are canonical JSON: a line of this run names it just so.
    let tag = format!("\"run\":{}", Value::from(run));
    std::fs::read_to_string(dir.join(".cairn/audit/log.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&tag))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["run"] == run)
        .collect()
}

/// `cairn audit verify --json` of the log in `dir`'s state, with its key.
pub fn verify_json(dir: &Path) -> Run {
    run_in(
        dir,
        &[
            "audit",
            "verify",
            "--key",
            ".cairn/keys/audit.pub",
            "--json",
        ],
    )
}

/// Panic unless `cairn audit verify` accepts the log in `dir`'s state.
#[track_caller]
pub fn assert_verifies(dir: &Path) {
    let verified = verify_json(dir);
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
}

/// A small xorshift generator: the seed is printed, so a failure repeats.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the variable `var` if it holds a number, else from the
    /// clock; returns the seed too, to print.
    pub fn from_env(var: &str) -> (Self, u64) {
        let seed = std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        (Self(seed), seed)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Run `tool args` in `dir`; its stdout. Panics with its output if it
/// fails.
pub fn tool_in(dir: &Path, tool: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("start the tool");
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        tool.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
