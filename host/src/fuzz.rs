//! Fuzz entry points: one function per parser of untrusted input.
//!
//! Each `NAME(data)` feeds arbitrary bytes to one parser the way the CLI
//! would, renders whatever diagnostics come back (so rendering is fuzzed
//! too) and returns. None may panic on any input: errors are the expected
//! outcome. The cargo-fuzz project in `tests/fuzz/` calls them, and the tests
//! below run each over its seed corpus, its saved crashers (so every input
//! that ever crashed stays a regression test) and fixed mutations of its
//! seeds. Never touches the file system.
//!
//! Text inputs that are not UTF-8 are skipped: the CLI refuses such files
//! before parsing (`read_to_string`, or the manifest's own UTF-8 check).
//! Inputs are bounded in size, which also keeps the fuzzers clear of a
//! known crash, [`MAX_TEXT`].

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use crate::audit::bundle;
use crate::audit::note::{Signer, Verifier, parse_checkpoint};
use crate::audit::record::Record;
use crate::audit::verify::{Artifacts, verify, verify_against};
use crate::diag::Diagnostics;
use crate::policy::cases::{Suite, SuiteError};
use crate::policy::{Policies, PolicyError};
use crate::sandbox::{EngineSettings, Sandbox};

/// The largest text input the targets take. Miette panics on a diagnostic
/// past column 65,535 (a known bug being fixed); no line of 32 KiB reaches
/// it, and bigger inputs only slow the fuzzer down.
pub const MAX_TEXT: usize = 32 * 1024;

/// The largest binary input (audit logs, proofs, wasm) the targets take.
pub const MAX_BINARY: usize = 1024 * 1024;

/// The seed of the key the fuzzed audit logs, checkpoints and proofs are
/// checked with. The seed corpus is signed with it, so fuzzing starts from
/// signatures that verify (`tests/fuzz/README.md` says how to make more).
pub const KEY_SEED: [u8; 32] = [0x42; 32];

/// The name of that key (the name in signature lines).
pub const KEY_NAME: &str = "audit";

/// The verifier of [`KEY_SEED`].
#[must_use]
pub fn key() -> Verifier {
    Signer::from_seed(KEY_NAME, &KEY_SEED).verifier()
}

/// A real log signed with [`key`], up to its first checkpoint, for checking
/// held checkpoints against (short: it is verified for every input).
const LOG: &[u8] = include_bytes!("../../tests/fuzz/corpus/audit_log/first-checkpoint.jsonl");

fn text(data: &[u8]) -> Option<&str> {
    if data.len() > MAX_TEXT {
        return None;
    }
    std::str::from_utf8(data).ok()
}

/// Render `diagnostics` both ways, as `cairn` prints them.
fn render(diagnostics: &Diagnostics, file: &str, source: &str) {
    let shown = diagnostics.render(file, source, false);
    let json = diagnostics.to_json(file, source);
    std::hint::black_box((shown, json));
}

fn render_policy_error(error: &PolicyError) {
    if let PolicyError::Invalid(files) = error {
        for file in files {
            render(
                &file.diagnostics,
                &file.path.display().to_string(),
                &file.source,
            );
        }
    }
    std::hint::black_box(error.to_string());
}

/// A workflow manifest, through the parser and the planner as `cairn
/// validate` takes it (without the checks of files on disk), and the plan
/// drawn as `cairn graph` does.
pub fn manifest(data: &[u8]) {
    let Some(source) = text(data) else {
        return;
    };
    let (manifest, mut problems) = crate::manifest::parse_partial(source);
    if let Some(manifest) = &manifest {
        match crate::plan::Plan::new(manifest) {
            Ok(plan) => {
                // As `cairn run` plans it: parameters at their defaults,
                // fan-outs expanded (within the run's limits).
                let plan = match plan.param_values(&[]) {
                    Ok(values) => plan.with_params(&values),
                    Err(_) => plan,
                };
                for format in [
                    crate::plan::GraphFormat::Dot,
                    crate::plan::GraphFormat::Mermaid,
                ] {
                    std::hint::black_box(crate::plan::render_graph(&plan, format));
                }
            }
            Err(d) => problems.0.extend(d.0),
        }
    }
    problems.0.sort_by_key(|d| d.span.as_ref().map(|s| s.start));
    render(&problems, "workflow.toml", source);
}

/// A `.cedar` file and an `.entities.json` file, split at the first NUL
/// byte (no NUL: policies only), as one policy set; the `.cedar` text also
/// laid out as `cairn policy fmt` does.
pub fn policies(data: &[u8]) {
    let Some(source) = text(data) else {
        return;
    };
    let mut sources = Vec::new();
    match source.split_once('\0') {
        Some((cedar, entities)) => {
            sources.push((PathBuf::from("fuzz.cedar"), cedar.to_owned()));
            sources.push((PathBuf::from("fuzz.entities.json"), entities.to_owned()));
        }
        None => sources.push((PathBuf::from("fuzz.cedar"), source.to_owned())),
    }
    // As `cairn policy fmt` lays the text out.
    if let Some((_, cedar)) = sources.first() {
        std::hint::black_box(crate::policy::format::format(cedar).ok());
    }
    if let Err(e) = Policies::from_sources(sources) {
        render_policy_error(&e);
    }
}

/// The policies every fuzzed policy test gets, whatever it names: the
/// baseline guardrails with their test people.
static TEST_POLICIES: LazyLock<Result<Policies, String>> = LazyLock::new(|| {
    let file = |name: &str, text: &str| (PathBuf::from(name), text.to_owned());
    Policies::from_sources(vec![
        file(
            "guardrails.cedar",
            include_str!("../../policies/baseline/guardrails.cedar"),
        ),
        file(
            "permit-everything.cedar",
            include_str!("../../policies/tests/permit-everything.cedar"),
        ),
        file(
            "people.entities.json",
            include_str!("../../policies/tests/people.entities.json"),
        ),
    ])
    .map_err(|e| e.to_string())
});

/// A `*.policytest.toml` file, loaded as `cairn policy test` does (with
/// [`TEST_POLICIES`] for whatever policies it names), and each case run.
pub fn policy_test(data: &[u8]) {
    let Some(source) = text(data) else {
        return;
    };
    let Ok(policies) = TEST_POLICIES.as_ref() else {
        return;
    };
    let path = Path::new("fuzz.policytest.toml");
    match Suite::from_source(path, source.to_owned(), |_| Ok(policies.clone())) {
        Ok(suite) => {
            for case in &suite.cases {
                std::hint::black_box(suite.run(case).map(|v| v.passed).ok());
            }
        }
        Err(SuiteError::Invalid {
            source_text,
            diagnostics,
            ..
        }) => render(&diagnostics, "fuzz.policytest.toml", &source_text),
        Err(SuiteError::Policies { source, .. }) => render_policy_error(&source),
        Err(e) => {
            std::hint::black_box(e.to_string());
        }
    }
}

/// An audit log, verified as `cairn audit verify` does with [`key`] and no
/// artifacts; each line decoded on its own; the proof of its first record
/// made as `cairn audit prove` does (against the first checkpoint after it,
/// and against the latest).
pub fn audit_log(data: &[u8]) {
    if data.len() > MAX_BINARY {
        return;
    }
    let report = verify(data, &key(), &Artifacts::default());
    std::hint::black_box((report.ok(), report.problems));
    for line in data.split(|b| *b == b'\n') {
        std::hint::black_box(Record::decode(line).ok());
    }
    for (seq, latest) in [(0, false), (0, true)] {
        std::hint::black_box(bundle::prove(data, seq, latest).ok());
    }
}

/// A signed checkpoint: opened and parsed, and held against a real log as
/// `cairn audit verify --checkpoint` does.
pub fn checkpoint(data: &[u8]) {
    let Some(note) = text(data) else {
        return;
    };
    let key = key();
    std::hint::black_box(key.open_note(note).and_then(parse_checkpoint).ok());
    std::hint::black_box(parse_checkpoint(note).ok());
    let report = verify_against(LOG, &key, &Artifacts::default(), Some(note));
    std::hint::black_box(report.problems);
}

/// The JSON of `cairn audit prove`, checked as `cairn audit check-proof`
/// does with [`key`].
pub fn proof(data: &[u8]) {
    if data.len() > MAX_BINARY {
        return;
    }
    let Ok(proof) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    std::hint::black_box(bundle::check_proof(&proof, &key()).ok());
}

/// One sandbox for every input: building one starts a thread and links
/// every host interface. No compile cache, so nothing is written.
static SANDBOX: LazyLock<Option<Sandbox>> =
    LazyLock::new(|| Sandbox::new(&EngineSettings::default(), None).ok());

/// A wasm file, loaded (compiled and linked) as `cairn run` does before
/// running it.
pub fn wasm(data: &[u8]) {
    if data.len() > MAX_BINARY {
        return;
    }
    let Some(sandbox) = SANDBOX.as_ref() else {
        return;
    };
    if let Err(e) = sandbox.load_bytes(Path::new("fuzz.wasm"), data, None) {
        std::hint::black_box(e.to_string());
    }
}

/// A fuzz target: takes any bytes, never panics.
pub type Target = fn(&[u8]);

/// Every target by name, for the tests.
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("policies", policies),
    ("policy_test", policy_test),
    ("audit_log", audit_log),
    ("checkpoint", checkpoint),
    ("proof", proof),
    ("wasm", wasm),
];

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::TARGETS;

    /// Run `target` on `data` as `cairn` runs Cedar: on a thread with
    /// `policy::bounds::STACK` of stack (a test thread has 2 MiB).
    fn run(target: fn(&[u8]), data: &[u8]) {
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .stack_size(crate::policy::bounds::STACK)
                .spawn_scoped(scope, || target(data))
                .unwrap();
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        });
    }

    /// The files of `tests/fuzz/FOLDER/NAME/`, sorted.
    fn inputs(folder: &str, name: &str) -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fuzz")
            .join(folder)
            .join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.file_name().is_some_and(|n| n != ".gitkeep"))
            .collect();
        paths.sort();
        paths
    }

    /// Every seed and every saved crasher of every target, run once. An
    /// input that crashed a target stays in `tests/fuzz/regressions/NAME/`.
    #[test]
    fn every_target_takes_its_corpus_and_regressions() {
        for (name, target) in TARGETS {
            let seeds = inputs("corpus", name);
            assert!(!seeds.is_empty(), "no seeds for `{name}`");
            for path in seeds.iter().chain(&inputs("regressions", name)) {
                let data = std::fs::read(path).unwrap_or_default();
                // Shown when the target panics, with the test's output.
                eprintln!("{name}: {}", path.display());
                run(*target, &data);
            }
        }
    }

    /// The signed seeds are signed with the fuzz key, so the fuzzers start
    /// past the signature checks.
    #[test]
    fn signed_seeds_verify_with_the_fuzz_key() {
        let key = super::key();
        for path in inputs("corpus", "audit_log") {
            let log = std::fs::read(&path).unwrap_or_default();
            let report = super::verify(&log, &key, &super::Artifacts::default());
            assert!(report.ok(), "{}: {:?}", path.display(), report.first());
        }
        for path in inputs("corpus", "checkpoint") {
            let note = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(key.open_note(&note).is_ok(), "{}", path.display());
        }
        for path in inputs("corpus", "proof") {
            let proof = std::fs::read(&path).unwrap_or_default();
            let proof = serde_json::from_slice(&proof).unwrap_or_default();
            let checked = super::bundle::check_proof(&proof, &key);
            assert!(checked.is_ok(), "{}: {checked:?}", path.display());
        }
    }

    /// A small deterministic PRNG (xorshift64*), so mutations repeat.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A number below `n` (0 when `n` is 0).
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
        }
    }

    /// Bytes that matter to the formats fuzzed: TOML, JSON, Cedar, notes.
    const INTERESTING: &[u8] = b"\0\n\\\"'[]{}()=,.:;#-+|&!$\xff\x7f0129";

    /// `seed` changed in one to four places: a byte flipped or replaced, a
    /// range deleted, repeated or spliced in from `other`.
    fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
        let mut data = seed.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(data.len());
            let len = 1 + rng.below(16.min(data.len().saturating_sub(at)));
            let end = (at + len).min(data.len());
            match rng.below(6) {
                0 => {
                    if let Some(b) = data.get_mut(at) {
                        *b ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    let byte = INTERESTING.get(rng.below(INTERESTING.len())).copied();
                    if let (Some(b), Some(new)) = (data.get_mut(at), byte) {
                        *b = new;
                    }
                }
                2 => {
                    data.drain(at..end);
                }
                3 => {
                    let piece: Vec<u8> = data.get(at..end).unwrap_or_default().to_vec();
                    data.splice(at..at, piece);
                }
                4 => {
                    let from = rng.below(other.len());
                    let piece = other.get(from..(from + len).min(other.len()));
                    data.splice(at..at, piece.unwrap_or_default().iter().copied());
                }
                _ => data.truncate(at),
            }
        }
        data
    }

    /// What coverage-guided fuzzing does in CI's stead (it takes too long
    /// to build there): each target over fixed mutations of its seeds.
    #[test]
    fn every_target_takes_mutated_seeds() {
        for (name, target) in TARGETS {
            let seeds: Vec<Vec<u8>> = inputs("corpus", name)
                .iter()
                .map(|p| std::fs::read(p).unwrap_or_default())
                .collect();
            // Compiling wasm costs far more than parsing text.
            let rounds = if *name == "wasm" { 24 } else { 160 };
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            for (i, seed) in seeds.iter().enumerate() {
                let other = seeds
                    .get((i + 1) % seeds.len())
                    .map_or(&[][..], Vec::as_slice);
                for round in 0..rounds {
                    let data = mutate(&mut rng, seed, other);
                    let run = std::panic::AssertUnwindSafe(|| run(*target, &data));
                    if let Err(panic) = std::panic::catch_unwind(run) {
                        let saved = std::env::temp_dir().join(format!("cairn-fuzz-{name}"));
                        let _ = std::fs::write(&saved, &data);
                        eprintln!(
                            "{name}: mutation {round} of seed {i} panics; input saved as `{}`: \
                             minimize it, then add it to tests/fuzz/regressions/{name}/",
                            saved.display()
                        );
                        std::panic::resume_unwind(panic);
                    }
                }
            }
        }
    }
}
