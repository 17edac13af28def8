//! A workflow in a scratch folder, run through `cairn::runner::run` and timed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn::runner::Start;

/// A workflow (`workflow.toml` and `p/rules.cedar`) in a fresh folder, with
/// its state and compile cache beside it.
pub struct Bench {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Bench {
    pub fn new(rules: &str, manifest: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("p")).unwrap();
        std::fs::write(dir.path().join("p/rules.cedar"), rules).unwrap();
        let path = dir.path().join("workflow.toml");
        std::fs::write(&path, manifest).unwrap();
        Self { dir, path }
    }

    /// Run it once as run `id`; the run's wall time (setup excluded).
    pub fn run(&self, runtime: &tokio::runtime::Runtime, id: &str, jobs: usize) -> Duration {
        let (workflow, setup) = cairn_tests::runner_setup(
            &self.path,
            "alice",
            &self.dir.path().join(".cairn"),
            &self.dir.path().join("cache"),
            jobs,
        );
        let start = Instant::now();
        let summary = runtime
            .block_on(cairn::runner::run(workflow, setup, id, Start::New))
            .unwrap();
        let took = start.elapsed();
        assert_eq!(summary.status, "succeeded");
        took
    }
}
