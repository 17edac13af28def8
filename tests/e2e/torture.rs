//! Crash torture: a run of a 30-task workflow driven to completion through
//! many SIGKILLs of `cairn run` and `cairn resume` must end as an
//! uninterrupted run does: every task succeeded exactly once and never
//! started again after, every recorded output in the store with its
//! digest, the same outputs, a log that verifies, and run state that
//! agrees with the log, with no run left `running`.
//!
//! Kills land at random moments of a command's life (as long as it would
//! take uninterrupted, learnt as the test goes), early in a resume (while
//! it starts and reads the log back), twice in quick succession (the
//! second within a few milliseconds of spawn), and as soon as the run's
//! `run-finished` is in the log (the window before the checkpoint and the
//! run state's last commit).
//!
//! `CAIRN_TORTURE_SEED` repeats a plan of kills (what kind, how long after
//! spawn), not the machine's timing: a failure may take a few tries to
//! repeat. `CAIRN_TORTURE_KILLS` sets how many kills the long test makes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Rng, Scratch, cairn, records, run_in};

/// Tasks per layer: 30 in all.
const LAYERS: [usize; 8] = [1, 3, 5, 6, 6, 5, 3, 1];

/// How long an uninterrupted command may take before the test gives up:
/// a safety net, never a measurement.
const HUNG: Duration = Duration::from_secs(120);

/// How soon the second kill of a quick pair lands, at most.
const QUICK: Duration = Duration::from_millis(5);

/// Write the layered workflow into `s`: each task of a layer takes the
/// outputs of tasks of the layer above, every one of them taken by some
/// task, so each output names everything upstream of it and the last
/// names every task. Each sleeps 5–20 ms. Returns the task names.
fn layered(s: &Scratch) -> Vec<String> {
    s.policies();
    // A copy of its own: a build elsewhere that rewrites the guest while
    // the test runs would make every resume refuse a changed component.
    std::fs::copy(cairn_tests::TASK, s.path().join("task.wasm")).unwrap();
    let mut manifest = String::from("[workflow]\nname = \"torture\"\npolicies = [\"p\"]\n");
    let mut names = Vec::new();
    let mut above: Vec<String> = Vec::new();
    for (layer, &n) in LAYERS.iter().enumerate() {
        let mut this = Vec::new();
        for j in 0..n {
            let name = format!("l{layer}t{j}");
            let p = above.len();
            let from: BTreeSet<usize> = if p == 0 {
                BTreeSet::new()
            } else {
                (0..p)
                    .filter(|i| i % n == j)
                    .chain([j % p, (j + 1) % p])
                    .collect()
            };
            let inputs: Vec<String> = from
                .iter()
                .map(|&i| format!("{0} = \"{0}.echo\"", above[i]))
                .collect();
            let ms = 5 + (names.len() * 7) % 16;
            manifest += &format!(
                "\n[tasks.{name}]\ncomponent = \"task.wasm\"\nenv = {{ MODE = \"work\", SLEEP_MS = \"{ms}\", NAME = \"{name}\" }}\n\
                 inputs = {{ {} }}\noutputs = [\"echo\"]\n",
                inputs.join(", ")
            );
            names.push(name.clone());
            this.push(name);
        }
        above = this;
    }
    s.write("workflow.toml", &manifest);
    names
}

/// Each task's output digests, from the (last) record of its success
/// among `records`.
fn outputs(records: &[Value]) -> BTreeMap<String, Vec<String>> {
    records
        .iter()
        .filter(|r| succeeded(r))
        .map(|r| {
            let digests = r["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["sha256"].as_str().unwrap().to_owned())
                .collect();
            (r["task"].as_str().unwrap().to_owned(), digests)
        })
        .collect()
}

/// Whether `record` says its task succeeded.
fn succeeded(record: &Value) -> bool {
    (record["kind"] == "task-finished" && record["outcome"] == "success")
        || record["kind"] == "cache-hit"
}

/// What an uninterrupted run of the workflow takes and makes.
struct Reference {
    /// From spawn to the first `task-started`.
    startup: Duration,
    /// From then to exit.
    work: Duration,
    outputs: BTreeMap<String, Vec<String>>,
}

impl Reference {
    fn new() -> Self {
        let s = Scratch::new();
        let tasks = layered(&s);
        // The first run compiles the component into the shared cache (if
        // no test did yet) and makes the keys: only the second is timed.
        let first = run_in(s.path(), &["run", "--as", "alice", "--jobs", "2", "--json"]);
        assert_eq!(first.code, 0, "the reference run: {}", first.stderr);
        let run = first.json()["run"].as_str().unwrap().to_owned();
        let outputs = outputs(&records(s.path(), &run));
        assert_eq!(outputs.len(), tasks.len(), "the reference run");

        let log = s.path().join(".cairn/audit/log.jsonl");
        let before = std::fs::read(&log).unwrap().len();
        let spawned = Instant::now();
        let mut child = cairn()
            .current_dir(s.path())
            .args(["run", "--as", "alice", "--jobs", "2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let began = || {
            std::fs::read(&log).is_ok_and(|l| {
                String::from_utf8_lossy(l.get(before..).unwrap_or_default())
                    .contains("\"task-started\"")
            })
        };
        while !began() && child.try_wait().unwrap().is_none() {
            assert!(spawned.elapsed() < HUNG, "the reference run hung");
            std::thread::sleep(Duration::from_millis(1));
        }
        let startup = spawned.elapsed();
        assert!(child.wait().unwrap().success(), "the reference run failed");
        Self {
            startup,
            work: spawned.elapsed() - startup,
            outputs,
        }
    }
}

/// When a command is killed (SIGKILL).
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after it was spawned.
    After(Duration),
    /// As soon as the run's `run-finished` is in the log.
    AtTheEnd,
}

/// How a command ended.
enum Ended {
    Killed,
    Exited {
        code: i32,
        stdout: String,
        stderr: String,
    },
}

/// The kinds of kill a run has had.
#[derive(Default)]
struct Seen {
    early: bool,
    pair: bool,
}

/// One state directory, its runs driven through kills.
struct Torture {
    scratch: Scratch,
    tasks: Vec<String>,
    reference: Reference,
    rng: Rng,
    seed: u64,
    /// How long `cairn run` and `cairn resume` take to start their first
    /// task, learnt as they run: the span of random kills.
    startup_run: Duration,
    startup_resume: Duration,
    kills: usize,
    /// One line per command, for failure messages.
    story: Vec<String>,
}

impl Torture {
    fn dir(&self) -> &Path {
        self.scratch.path()
    }

    fn log(&self) -> PathBuf {
        self.dir().join(".cairn/audit/log.jsonl")
    }

    /// Panic with `what`, the seed and what the last commands did.
    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        let from = self.story.len().saturating_sub(20);
        panic!(
            "{what}\n(CAIRN_TORTURE_SEED={}, {} kills so far; the last commands:)\n{}",
            self.seed,
            self.kills,
            self.story[from..].join("\n")
        );
    }

    /// Fail with what `what` says unless `ok`.
    #[track_caller]
    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.fail(&what());
        }
    }

    /// How long `cairn COMMAND` (`run` or `resume`) takes to start its
    /// first task, as far as the test has seen.
    fn startup(&mut self, command: &str) -> &mut Duration {
        if command == "run" {
            &mut self.startup_run
        } else {
            &mut self.startup_resume
        }
    }

    /// Learn from a `cairn COMMAND` that was `killed` as `kill` says: when
    /// its first task started, or, killed before one did, that it takes
    /// longer than that to start one.
    fn learn(&mut self, command: &str, kill: Option<Kill>, killed: bool, first: Option<Duration>) {
        let estimate = self.startup(command);
        let seen = match (first, kill) {
            (Some(at), _) => at,
            (None, Some(Kill::After(at))) if killed && at > *estimate => at,
            _ => return,
        };
        *estimate = (*estimate * 2 + seen) / 3;
    }

    /// A random moment in the life of a `cairn COMMAND` with `left` of the
    /// tasks still to run, were it not killed.
    fn moment(&mut self, command: &str, left: f64) -> Duration {
        let span = *self.startup(command) + self.reference.work.mul_f64(left);
        let micros = u64::try_from(span.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.below(micros))
    }

    /// A random moment up to `most` after spawn.
    fn within(&mut self, most: Duration) -> Duration {
        let micros = u64::try_from(most.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.below(micros.saturating_add(1)))
    }

    /// Run `cairn ARGS` in the state directory, killed as `kill` says (and
    /// `run` is the run whose end [`Kill::AtTheEnd`] waits for).
    fn command(&mut self, args: &[&str], kill: Option<Kill>, run: Option<&str>) -> Ended {
        let (out, err) = (self.dir().join("cmd.out"), self.dir().join("cmd.err"));
        let mut watch = Watch::new(self.log(), run);
        let mut child = cairn()
            .current_dir(self.dir())
            .args(args)
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let spawned = watch.spawned;
        let tick = Duration::from_millis(1);
        match kill {
            None => {}
            Some(Kill::After(delay)) => {
                while spawned.elapsed() < delay && self.alive(&mut child, spawned) {
                    watch.look();
                    std::thread::sleep(tick.min(delay.saturating_sub(spawned.elapsed())));
                }
            }
            Some(Kill::AtTheEnd) => {
                while !watch.finished && self.alive(&mut child, spawned) {
                    watch.look();
                    std::thread::sleep(tick);
                }
            }
        }
        if kill.is_some() {
            child.kill().unwrap(); // SIGKILL; nothing if it already exited
        }
        while self.alive(&mut child, spawned) {
            watch.look();
            std::thread::sleep(2 * tick);
        }
        watch.look();
        let status = child.wait().unwrap();
        let took = spawned.elapsed();
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        self.learn(args[0], kill, status.code().is_none(), watch.first_task);
        let ended = match status.code() {
            None => {
                self.kills += 1;
                Ended::Killed
            }
            Some(code) => Ended::Exited {
                code,
                stdout: std::fs::read_to_string(&out).unwrap_or_default(),
                stderr: stderr.clone(),
            },
        };
        let how = match (kill, &ended) {
            (_, Ended::Exited { code, .. }) => format!("exited {code} after {took:.0?}"),
            (Some(Kill::After(d)), Ended::Killed) => format!("killed {d:.1?} after spawn"),
            (_, Ended::Killed) => format!("killed at run-finished, {took:.0?} after spawn"),
        };
        let done = run.map_or_else(String::new, |run| {
            let done = records(self.dir(), run)
                .iter()
                .filter(|r| succeeded(r))
                .count();
            format!(", {done} of {} tasks done", self.tasks.len())
        });
        let line = format!(
            "{:>4}. cairn {}: {how}; the log ends {}{done}",
            self.story.len() + 1,
            args.join(" "),
            self.log_end()
        );
        self.story.push(line);
        self.check(!stderr.contains("panicked"), || {
            format!("cairn panicked:\n{stderr}")
        });
        ended
    }

    /// Whether `child` still runs; fails the test once it ran for [`HUNG`].
    fn alive(&self, child: &mut Child, spawned: Instant) -> bool {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if spawned.elapsed() > HUNG {
            let _ = child.kill();
            self.fail(&format!("a command ran for over {HUNG:?}"));
        }
        true
    }

    /// The kind and run of the log's last complete record, and whether a
    /// torn record follows it.
    fn log_end(&self) -> String {
        let Ok(mut file) = File::open(self.log()) else {
            return "(no log)".to_owned();
        };
        let len = file.metadata().unwrap().len();
        file.seek(SeekFrom::Start(len.saturating_sub(64 << 10)))
            .unwrap();
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).unwrap();
        let torn = !tail.is_empty() && !tail.ends_with(b"\n");
        let last = tail
            .split(|b| *b == b'\n')
            .rev()
            .skip(1)
            .find_map(|l| serde_json::from_slice::<Value>(l).ok());
        let mut end = last.map_or_else(
            || "with no record".to_owned(),
            |r| {
                format!(
                    "with {} of run `{}`",
                    r["kind"],
                    r["run"].as_str().unwrap_or("")
                )
            },
        );
        if torn {
            end += " and a torn record";
        }
        end
    }

    /// The runs with a `run-started` in the log.
    fn started_runs(&self) -> BTreeSet<String> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"kind\":\"run-started\""))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|r| r["run"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Start a run and drive it to completion through up to `budget`
    /// kills (fewer when it completes first); returns its id.
    fn drive(&mut self, budget: usize) -> String {
        let goal = self.kills + budget;
        // `cairn run`, killed at a random moment, until it records its
        // start (one killed before that is abandoned).
        let run = loop {
            let known = self.started_runs();
            let kill = (self.kills < goal).then(|| Kill::After(self.moment("run", 1.0)));
            let args = ["run", "--as", "alice", "--jobs", "2", "--json"];
            match self.command(&args, kill, None) {
                Ended::Killed => {
                    if let Some(run) = self.started_runs().difference(&known).next() {
                        break run.clone();
                    }
                }
                Ended::Exited {
                    code,
                    stdout,
                    stderr,
                } => {
                    let summary: Value = serde_json::from_str(&stdout).unwrap_or_default();
                    self.check(code == 0 && summary["status"] == "succeeded", || {
                        format!("`cairn run` exited {code}:\n{stdout}\n{stderr}")
                    });
                    return summary["run"].as_str().unwrap().to_owned();
                }
            }
        };
        let mut seen = Seen::default();
        loop {
            let records = records(self.dir(), &run);
            let ended = records.iter().any(|r| r["kind"] == "run-finished");
            let done = records.iter().filter(|r| succeeded(r)).count();
            let left_tasks = 1.0 - done as f64 / self.tasks.len() as f64;
            let left = goal.saturating_sub(self.kills);
            let completed = match left {
                0 => self.resume(&run, None),
                2 | 3 if !seen.pair => self.pair(&run, left_tasks, &mut seen),
                1 if !seen.early => self.early(&run, &mut seen),
                1 if !ended && self.rng.below(2) == 0 => self.resume(&run, Some(Kill::AtTheEnd)),
                _ => match self.rng.below(5) {
                    0 => self.early(&run, &mut seen),
                    1 if left >= 2 => self.pair(&run, left_tasks, &mut seen),
                    _ => {
                        let at = self.moment("resume", left_tasks);
                        self.resume(&run, Some(Kill::After(at)))
                    }
                },
            };
            if completed {
                return run;
            }
        }
    }

    /// A resume killed early, mostly before it opens the log for writing:
    /// while it starts, opens the run state and reads the log back (in the
    /// first 60% of its time to its first task).
    fn early(&mut self, run: &str, seen: &mut Seen) -> bool {
        seen.early = true;
        let at = *self.startup("resume");
        let at = self.within(at.mul_f64(0.6));
        self.resume(run, Some(Kill::After(at)))
    }

    /// A resume killed at a random moment, then at once another killed
    /// within a few milliseconds.
    fn pair(&mut self, run: &str, left_tasks: f64, seen: &mut Seen) -> bool {
        seen.pair = true;
        let first = self.moment("resume", left_tasks);
        let second = self.within(QUICK);
        self.resume(run, Some(Kill::After(first))) || self.resume(run, Some(Kill::After(second)))
    }

    /// `cairn resume RUN`, killed as `kill` says; whether it completed on
    /// its own: the run succeeded, or had already ended so.
    fn resume(&mut self, run: &str, kill: Option<Kill>) -> bool {
        match self.command(&["resume", run, "--jobs", "2", "--json"], kill, Some(run)) {
            Ended::Killed => false,
            Ended::Exited {
                code: 0, stdout, ..
            } => {
                let summary: Value = serde_json::from_str(&stdout).unwrap_or_default();
                self.check(summary["status"] == "succeeded", || {
                    format!("resume exited 0 but the run did not succeed:\n{stdout}")
                });
                true
            }
            Ended::Exited {
                code: 2, stderr, ..
            } if stderr.contains("already ended (succeeded)") => true,
            Ended::Exited { code, stderr, .. } => {
                self.fail(&format!("`cairn resume {run}` exited {code}:\n{stderr}"))
            }
        }
    }

    /// Check what completed run `run` left: log, store and run state.
    fn check_run(&self, run: &str) {
        let verified = run_in(
            self.dir(),
            &[
                "audit",
                "verify",
                "--key",
                ".cairn/keys/audit.pub",
                "--json",
            ],
        );
        self.check(verified.code == 0, || {
            format!(
                "run {run}: the audit log does not verify:\n{}{}",
                verified.stdout, verified.stderr
            )
        });

        let records = records(self.dir(), run);
        let mut done = BTreeSet::new();
        for r in &records {
            let task = r["task"].as_str().unwrap_or_default();
            let at = &r["seq"];
            if r["kind"] == "task-started" {
                self.check(!done.contains(task), || {
                    format!("run {run}: task {task} started again (record {at}) after it succeeded")
                });
            }
            if succeeded(r) {
                self.check(done.insert(task.to_owned()), || {
                    format!("run {run}: task {task} succeeded again (record {at})")
                });
            }
            for output in r["outputs"].as_array().into_iter().flatten() {
                self.check_stored(run, task, output);
            }
        }
        let all: BTreeSet<String> = self.tasks.iter().cloned().collect();
        self.check(done == all, || {
            format!(
                "run {run}: tasks that never succeeded: {:?}",
                all.difference(&done).collect::<Vec<_>>()
            )
        });
        let made = outputs(&records);
        self.check(made == self.reference.outputs, || {
            let differ: Vec<_> = self
                .tasks
                .iter()
                .filter(|t| made.get(*t) != self.reference.outputs.get(*t))
                .collect();
            format!("run {run}: the outputs of {differ:?} differ from the uninterrupted run's")
        });
        let finished = records.iter().rev().find(|r| r["kind"] == "run-finished");
        self.check(finished.is_some_and(|r| r["status"] == "succeeded"), || {
            format!("run {run}: the log's last run-finished is {finished:?}")
        });

        // The run state agrees with the log.
        let shown = run_in(self.dir(), &["runs", "show", run, "--json"]);
        self.check(shown.code == 0, || {
            format!("`cairn runs show {run}`: {}", shown.stderr)
        });
        let shown = shown.json();
        self.check(shown["run"]["status"] == "succeeded", || {
            format!(
                "run {run} is {} in `cairn runs show`",
                shown["run"]["status"]
            )
        });
        let rows: BTreeMap<String, (String, Vec<String>)> = shown["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let digests = t["outputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["sha256"].as_str().unwrap().to_owned())
                    .collect();
                let status = t["status"].as_str().unwrap().to_owned();
                (t["task"].as_str().unwrap().to_owned(), (status, digests))
            })
            .collect();
        let logged: BTreeMap<String, (String, Vec<String>)> = made
            .into_iter()
            .map(|(task, digests)| (task, ("succeeded".to_owned(), digests)))
            .collect();
        self.check(rows == logged, || {
            let missing: Vec<_> = logged.keys().filter(|t| !rows.contains_key(*t)).collect();
            format!(
                "run {run}: `cairn runs show` disagrees with the log ({} task rows, {} tasks in the log; without a row: {missing:?})",
                rows.len(),
                logged.len()
            )
        });
    }

    /// Panic unless the output `output` of `task` is in the store with
    /// its recorded digest and size.
    fn check_stored(&self, run: &str, task: &str, output: &Value) {
        let digest = output["sha256"].as_str().unwrap();
        let hex = digest.trim_start_matches("sha256:");
        let path = self.dir().join(".cairn/artifacts/sha256").join(hex);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            self.fail(&format!(
                "run {run}: output {output} of {task} is not in the store ({e})"
            ))
        });
        self.check(
            cairn::digest::Digest::of(&bytes).to_string() == hex && output["bytes"] == bytes.len(),
            || format!("run {run}: the stored output {output} of {task} is not what was recorded"),
        );
    }

    /// Check every run in the state: those driven to completion
    /// succeeded; the rest never recorded their start and are abandoned.
    fn check_runs(&self, completed: &[String]) {
        let list = run_in(self.dir(), &["runs", "list", "--json"]);
        self.check(list.code == 0, || list.stderr.clone());
        let started = self.started_runs();
        for row in list.json().as_array().unwrap() {
            let id = row["id"].as_str().unwrap();
            let want = if completed.iter().any(|c| c == id) {
                "succeeded"
            } else {
                self.check(!started.contains(id), || {
                    format!("run {id} started but was not driven to its end")
                });
                "abandoned"
            };
            self.check(row["status"] == want, || {
                format!("run {id} is listed {}, not \"{want}\"", row["status"])
            });
        }
    }
}

/// What a command appends to the log, read as it goes.
struct Watch {
    path: PathBuf,
    /// How far the log has been read: always the end of a complete line.
    from: u64,
    /// `"run":"ID"`, as run `ID`'s records say it.
    tag: Option<String>,
    spawned: Instant,
    /// When the first `task-started` appeared.
    first_task: Option<Duration>,
    /// Whether run `ID`'s `run-finished` appeared.
    finished: bool,
}

impl Watch {
    /// Watch the log at `path` from now on, for run `run`'s end.
    fn new(path: PathBuf, run: Option<&str>) -> Self {
        // Start after the last complete line: a torn record after it is
        // moved aside by the command, which truncates the log to there.
        let mut from = 0;
        if let Ok(mut file) = File::open(&path) {
            let len = file.metadata().unwrap().len();
            let start = len.saturating_sub(64 << 10);
            file.seek(SeekFrom::Start(start)).unwrap();
            let mut tail = Vec::new();
            file.read_to_end(&mut tail).unwrap();
            from = tail
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(start, |end| start + end as u64 + 1);
        }
        Self {
            path,
            from,
            tag: run.map(|run| format!("\"run\":{}", Value::from(run))),
            spawned: Instant::now(),
            first_task: None,
            finished: false,
        }
    }

    /// Read the lines completed since the last look.
    fn look(&mut self) {
        let Ok(mut file) = File::open(&self.path) else {
            return;
        };
        let len = file.metadata().unwrap().len();
        self.from = self.from.min(len);
        file.seek(SeekFrom::Start(self.from)).unwrap();
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh).unwrap();
        let Some(end) = fresh.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        self.from += end as u64 + 1;
        for line in String::from_utf8_lossy(&fresh[..end]).lines() {
            if self.first_task.is_none() && line.contains("\"kind\":\"task-started\"") {
                self.first_task = Some(self.spawned.elapsed());
            }
            if self.tag.as_ref().is_some_and(|tag| line.contains(tag))
                && line.contains("\"kind\":\"run-finished\"")
            {
                self.finished = true;
            }
        }
    }
}

/// Drive `runs` runs of the workflow, one after another in one state
/// directory (more if they complete before `kills` kills), through SIGKILLs, and
/// check each and the state they leave.
fn torture(kills: usize, runs: usize) {
    let started = Instant::now();
    let reference = Reference::new();
    let (rng, seed) = Rng::from_env("CAIRN_TORTURE_SEED");
    eprintln!(
        "torture: {kills} kills over {runs} run(s), CAIRN_TORTURE_SEED={seed}; an uninterrupted run starts its first task after {:.0?} and ends {:.0?} later",
        reference.startup, reference.work
    );
    let scratch = Scratch::new();
    let tasks = layered(&scratch);
    let mut t = Torture {
        scratch,
        tasks,
        startup_run: reference.startup,
        startup_resume: reference.startup,
        reference,
        rng,
        seed,
        kills: 0,
        story: Vec::new(),
    };
    let mut completed = Vec::new();
    while t.kills < kills || completed.len() < runs {
        assert!(completed.len() <= runs + kills, "kills do not land");
        let runs_left = runs.saturating_sub(completed.len()).max(1);
        let budget = kills.saturating_sub(t.kills).div_ceil(runs_left);
        let (kills_before, commands_before) = (t.kills, t.story.len());
        let run = t.drive(budget);
        t.check_run(&run);
        eprintln!(
            "torture: run {run} completed after {} kills in {} commands",
            t.kills - kills_before,
            t.story.len() - commands_before
        );
        completed.push(run);
    }
    t.check_runs(&completed);
    eprintln!("torture: the commands\n{}", t.story.join("\n"));
    eprintln!(
        "torture: {} kills, {} commands, {} run(s) in {:.1?} (seed {seed}); `cairn run` started its first task after about {:.0?}, `cairn resume` after {:.0?}",
        t.kills,
        t.story.len(),
        completed.len(),
        started.elapsed(),
        t.startup_run,
        t.startup_resume
    );
}

#[test]
fn a_run_killed_over_and_over_completes_as_if_never_killed() {
    torture(13, 1);
}

#[test]
#[ignore = "long: over 100 kills (CAIRN_TORTURE_KILLS), several runs"]
fn many_runs_killed_over_and_over_in_one_state_directory() {
    let kills = std::env::var("CAIRN_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    torture(kills, 5);
}
