//! Finishing what a killed `cairn` left behind, the next time the state is
//! opened for writing.
//!
//! A process can die between any two of its writes: after `run-finished`
//! but before the run's checkpoint, after the log but before the run state,
//! after the run state's first row but before the log says anything. The
//! audit log is the record of truth, so whoever next holds the log (its
//! exclusive lock: no writer is running then) repairs the rest from it —
//! [`recover`] signs a checkpoint over records none covers, and sets every
//! run the state still calls `running` to what the log says: its recorded
//! end, `interrupted` (started, never ended: `cairn resume` goes on), or
//! `abandoned` (killed before its first record), with the tasks the log
//! says ended. Nothing here changes the log's records or decides anything.

use std::collections::HashSet;

use crate::audit::log::{AuditError, AuditLog};
use crate::resume::{History, HistoryError};
use crate::runner::task_row;
use crate::state::{State, StateError};

/// What [`recover`] repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repairs {
    /// Whether it signed a checkpoint a killed process did not.
    pub signed: bool,
    /// Each run whose state it set, and the status it now has.
    pub runs: Vec<(String, String)>,
}

impl Repairs {
    /// Whether there was nothing to repair.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.signed && self.runs.is_empty()
    }
}

/// Why recovery failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("cannot read the audit log `{}`: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Repair the log (`log`, held) and the run state after a killed writer.
///
/// # Errors
///
/// The log or the state failing.
pub fn recover(log: &mut AuditLog, state: &mut State) -> Result<Repairs, RecoverError> {
    let signed = log.seal()?;
    let path = log.path().to_owned();
    let runs = reconcile(state, || {
        std::fs::read(&path).map_err(|source| RecoverError::Read {
            path: path.clone(),
            source,
        })
    })?;
    Ok(Repairs { signed, runs })
}

/// Set every run `state` calls `running` to what the log says (its bytes
/// from `read`, called only when there is such a run), with the tasks it
/// says ended. Only for a log no one is writing.
///
/// # Errors
///
/// The state or `read` failing, or a log line that is not a record.
pub fn reconcile(
    state: &mut State,
    read: impl FnOnce() -> Result<Vec<u8>, RecoverError>,
) -> Result<Vec<(String, String)>, RecoverError> {
    let stale: HashSet<String> = state.runs_with_status("running")?.into_iter().collect();
    if stale.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = read()?;
    // A failure the log does not follow with a `retry` is shown as it is:
    // `cairn resume` decides retries with the workflow in hand.
    let histories = History::read_runs(&bytes, &|id| stale.contains(id), &|_, _, _, _| false)?;
    let mut repaired = Vec::new();
    let mut ids: Vec<&String> = stale.iter().collect();
    ids.sort();
    for id in ids {
        let Some(history) = histories.get(id) else {
            state.settle_run(id, "abandoned", None)?;
            repaired.push((id.clone(), "abandoned".to_owned()));
            continue;
        };
        for task in history.tasks.values() {
            if let Some(end) = &task.end {
                state.finish_task(id, None, &task_row(end))?;
            }
        }
        let status = history.standing().to_owned();
        state.settle_run(id, &status, history.duration_ms)?;
        repaired.push((id.clone(), status));
    }
    state.commit()?;
    Ok(repaired)
}
