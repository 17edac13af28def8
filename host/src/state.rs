//! Run state: runs, tasks and attempts in SQLite (`STATE/state.db`, WAL,
//! `synchronous = FULL`), for `cairn runs` and `cairn resume`, and the
//! cache of `cache = true` tasks' results.
//!
//! The audit log is the record of truth for auditors; this is the
//! operator's index of it, plus what the log never holds (captured output
//! and log lines). One writer: the runner, through a mutex.
//!
//! Group commit: a task's rows go into a transaction that stays open for
//! up to [`COMMIT_EVERY`], so a run of many short tasks syncs the database
//! a few times a second rather than once per task. A run's start and end
//! commit at once ([`State::commit`]); a crash loses at most the last
//! moment's rows, which `cairn resume` rewrites from the audit log.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension as _, params};

/// How long task rows may wait in an open transaction.
pub const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The schema version (`PRAGMA user_version`).
const VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    manifest TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    policy_set TEXT NOT NULL,
    user TEXT NOT NULL,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    duration_ms INTEGER
);
CREATE TABLE IF NOT EXISTS tasks (
    run TEXT NOT NULL REFERENCES runs(id),
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outputs TEXT NOT NULL,
    PRIMARY KEY (run, task)
);
CREATE TABLE IF NOT EXISTS attempts (
    run TEXT NOT NULL REFERENCES runs(id),
    task TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    stdout BLOB NOT NULL,
    stderr BLOB NOT NULL,
    logs TEXT NOT NULL,
    PRIMARY KEY (run, task, attempt)
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT,
    revoked TEXT
);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    run TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outputs TEXT NOT NULL
);
";

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("run state `{}`: {source}", path.display())]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("run state `{}` was written by a newer cairn (schema {found}, this one reads {VERSION})", path.display())]
    Newer { path: PathBuf, found: i64 },
}

/// A `runs` row, selected as `id, workflow, manifest, manifest_sha256,
/// policy_set, user, status, started, duration_ms`.
fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        workflow: r.get(1)?,
        manifest: r.get(2)?,
        manifest_sha256: r.get(3)?,
        policy_set: r.get(4)?,
        user: r.get(5)?,
        status: r.get(6)?,
        started: r.get(7)?,
        duration_ms: r.get(8)?,
    })
}

/// An API token as stored: never the secret, only its digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRow {
    /// The public part, named in records and `cairn token list`.
    pub id: String,
    /// The principal it authenticates.
    pub user: String,
    /// Hex SHA-256 of the secret part.
    #[serde(skip)]
    pub secret_sha256: String,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339, or never.
    pub expires: Option<String>,
    /// RFC 3339 of its revocation, if it was revoked.
    pub revoked: Option<String>,
}

/// A run as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    pub id: String,
    pub workflow: String,
    pub manifest: String,
    pub manifest_sha256: String,
    pub policy_set: String,
    pub user: String,
    pub status: String,
    pub started: String,
    pub duration_ms: Option<i64>,
}

/// A task of a run as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskRow {
    pub task: String,
    pub status: String,
    pub detail: String,
    pub attempts: i64,
    pub duration_ms: i64,
    /// JSON: `[{name, sha256, bytes}]`.
    pub outputs: serde_json::Value,
}

/// One attempt's captured output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub task: String,
    pub attempt: i64,
    pub outcome: String,
    pub detail: String,
    pub duration_ms: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// JSON: `[{level, message}]`.
    pub logs: serde_json::Value,
}

/// A cached result: the attempt that made it and its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheHit {
    pub run: String,
    pub attempt: u32,
    pub outputs: Vec<crate::audit::record::Artifact>,
}

/// The open state database.
#[derive(Debug)]
pub struct State {
    path: PathBuf,
    db: Connection,
    /// When the open transaction began, if one is open.
    open_since: Option<std::time::Instant>,
}

impl State {
    /// Open (or create) `STATE/state.db`.
    ///
    /// # Errors
    ///
    /// A database that cannot be opened, or one from a newer cairn.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        let path = state_dir.join("state.db");
        let err = |source| StateError::Db {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(|source| StateError::Io {
            path: state_dir.to_owned(),
            source,
        })?;
        let db = Connection::open(&path).map_err(err)?;
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        db.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        let found: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if found > VERSION {
            return Err(StateError::Newer { path, found });
        }
        db.execute_batch(SCHEMA).map_err(err)?;
        db.pragma_update(None, "user_version", VERSION)
            .map_err(err)?;
        Ok(Self {
            path,
            db,
            open_since: None,
        })
    }

    /// Commit the open transaction, if any (a sync, as `synchronous =
    /// FULL` says).
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn commit(&mut self) -> Result<(), StateError> {
        if self.open_since.take().is_some() {
            self.db.execute_batch("COMMIT").map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Commit the open transaction if it has been open for
    /// [`COMMIT_EVERY`]: for a process whose readers should not wait for
    /// its next write (the service).
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn commit_if_due(&mut self) -> Result<(), StateError> {
        if self.open_since.is_some_and(|t| t.elapsed() >= COMMIT_EVERY) {
            self.commit()?;
        }
        Ok(())
    }

    /// Run `write` inside the group transaction; commit when it has been
    /// open long enough.
    fn grouped(
        &mut self,
        write: impl FnOnce(&Self) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        if self.open_since.is_none() {
            self.db.execute_batch("BEGIN").map_err(|e| self.err(e))?;
            self.open_since = Some(std::time::Instant::now());
        }
        write(self)?;
        if self.open_since.is_some_and(|t| t.elapsed() >= COMMIT_EVERY) {
            self.commit()?;
        }
        Ok(())
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// Record a run's start (or, for a resumed run, that it runs again).
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn start_run(&mut self, run: &RunRow) -> Result<(), StateError> {
        self.commit()?;
        self.db
            .execute(
                "INSERT INTO runs (id, workflow, manifest, manifest_sha256, policy_set, user, status, started)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET manifest = ?3, manifest_sha256 = ?4,
                     policy_set = ?5, status = ?7, duration_ms = NULL",
                params![
                    run.id,
                    run.workflow,
                    run.manifest,
                    run.manifest_sha256,
                    run.policy_set,
                    run.user,
                    run.status,
                    run.started
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Record how a run ended.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn finish_run(
        &mut self,
        run: &str,
        status: &str,
        duration_ms: u64,
    ) -> Result<(), StateError> {
        self.commit()?;
        self.db
            .execute(
                "UPDATE runs SET status = ?2, duration_ms = ?3 WHERE id = ?1",
                params![run, status, i64::try_from(duration_ms).unwrap_or(i64::MAX)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Set a run's status (and duration, when known) without the rest of
    /// [`State::finish_run`]: for runs repaired from the audit log.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn settle_run(
        &mut self,
        run: &str,
        status: &str,
        duration_ms: Option<u64>,
    ) -> Result<(), StateError> {
        self.commit()?;
        self.db
            .execute(
                "UPDATE runs SET status = ?2, duration_ms = ?3 WHERE id = ?1",
                params![
                    run,
                    status,
                    duration_ms.map(|d| i64::try_from(d).unwrap_or(i64::MAX))
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The ids of the runs with status `status`.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn runs_with_status(&self, status: &str) -> Result<Vec<String>, StateError> {
        let mut query = self
            .db
            .prepare("SELECT id FROM runs WHERE status = ?1")
            .map_err(|e| self.err(e))?;
        let rows = query
            .query_map([status], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Record one attempt.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn attempt(&self, run: &str, row: &AttemptRow) -> Result<(), StateError> {
        self.db
            .prepare_cached(
                "INSERT OR REPLACE INTO attempts (run, task, attempt, outcome, detail, duration_ms, stdout, stderr, logs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
            .and_then(|mut statement| {
                statement.execute(params![
                    run,
                    row.task,
                    row.attempt,
                    row.outcome,
                    row.detail,
                    row.duration_ms,
                    row.stdout,
                    row.stderr,
                    row.logs.to_string()
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Record a task's last attempt (if it ran) and how it ended, in the
    /// group transaction.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn finish_task(
        &mut self,
        run: &str,
        last: Option<&AttemptRow>,
        task: &TaskRow,
    ) -> Result<(), StateError> {
        self.grouped(|state| {
            if let Some(attempt) = last {
                state.attempt(run, attempt)?;
            }
            state.task(run, task)
        })
    }

    /// Record how a task ended.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn task(&self, run: &str, row: &TaskRow) -> Result<(), StateError> {
        self.db
            .prepare_cached(
                "INSERT OR REPLACE INTO tasks (run, task, status, detail, attempts, duration_ms, outputs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .and_then(|mut statement| {
                statement.execute(params![
                    run,
                    row.task,
                    row.status,
                    row.detail,
                    row.attempts,
                    row.duration_ms,
                    row.outputs.to_string()
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every run, newest first.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn runs(&self) -> Result<Vec<RunRow>, StateError> {
        let mut query = self
            .db
            .prepare(
                "SELECT id, workflow, manifest, manifest_sha256, policy_set, user, status, started, duration_ms
                 FROM runs ORDER BY started DESC, id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = query.query_map([], run_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// One run, if recorded.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn run(&self, id: &str) -> Result<Option<RunRow>, StateError> {
        let mut query = self
            .db
            .prepare_cached(
                "SELECT id, workflow, manifest, manifest_sha256, policy_set, user, status, started, duration_ms
                 FROM runs WHERE id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = query.query_map([id], run_row).map_err(|e| self.err(e))?;
        rows.next().transpose().map_err(|e| self.err(e))
    }

    /// A run's tasks, in the order they ended.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn tasks(&self, run: &str) -> Result<Vec<TaskRow>, StateError> {
        let mut query = self
            .db
            .prepare(
                "SELECT task, status, detail, attempts, duration_ms, outputs FROM tasks
                 WHERE run = ?1 ORDER BY rowid",
            )
            .map_err(|e| self.err(e))?;
        let rows = query
            .query_map([run], |r| {
                let outputs: String = r.get(5)?;
                Ok(TaskRow {
                    task: r.get(0)?,
                    status: r.get(1)?,
                    detail: r.get(2)?,
                    attempts: r.get(3)?,
                    duration_ms: r.get(4)?,
                    outputs: serde_json::from_str(&outputs).unwrap_or_default(),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// A run's attempts (of one task, or all), in order.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn attempts(&self, run: &str, task: Option<&str>) -> Result<Vec<AttemptRow>, StateError> {
        let mut query = self
            .db
            .prepare(
                "SELECT task, attempt, outcome, detail, duration_ms, stdout, stderr, logs FROM attempts
                 WHERE run = ?1 AND (?2 IS NULL OR task = ?2) ORDER BY rowid",
            )
            .map_err(|e| self.err(e))?;
        let rows = query
            .query_map(params![run, task], |r| {
                let logs: String = r.get(7)?;
                Ok(AttemptRow {
                    task: r.get(0)?,
                    attempt: r.get(1)?,
                    outcome: r.get(2)?,
                    detail: r.get(3)?,
                    duration_ms: r.get(4)?,
                    stdout: r.get(5)?,
                    stderr: r.get(6)?,
                    logs: serde_json::from_str(&logs).unwrap_or_default(),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Store a new token (committed at once).
    ///
    /// # Errors
    ///
    /// Database errors (an id already taken among them).
    pub fn add_token(&mut self, token: &TokenRow) -> Result<(), StateError> {
        self.commit()?;
        self.db
            .execute(
                "INSERT INTO tokens (id, user, secret_sha256, created, expires, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                params![
                    token.id,
                    token.user,
                    token.secret_sha256,
                    token.created,
                    token.expires
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every token, oldest first.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, StateError> {
        self.token_rows("SELECT id, user, secret_sha256, created, expires, revoked FROM tokens ORDER BY created, id", None)
    }

    /// The token with public part `id`.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn token(&self, id: &str) -> Result<Option<TokenRow>, StateError> {
        self.token_rows(
            "SELECT id, user, secret_sha256, created, expires, revoked FROM tokens WHERE id = ?1",
            Some(id),
        )
        .map(|rows| rows.into_iter().next())
    }

    fn token_rows(&self, sql: &str, id: Option<&str>) -> Result<Vec<TokenRow>, StateError> {
        let mut query = self.db.prepare_cached(sql).map_err(|e| self.err(e))?;
        let row = |r: &rusqlite::Row<'_>| {
            Ok(TokenRow {
                id: r.get(0)?,
                user: r.get(1)?,
                secret_sha256: r.get(2)?,
                created: r.get(3)?,
                expires: r.get(4)?,
                revoked: r.get(5)?,
            })
        };
        let rows = match id {
            Some(id) => query.query_map(params![id], row),
            None => query.query_map([], row),
        }
        .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Revoke token `id` at `when` (committed at once); whether a token
    /// that was not yet revoked was.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn revoke_token(&mut self, id: &str, when: &str) -> Result<bool, StateError> {
        self.commit()?;
        let changed = self
            .db
            .execute(
                "UPDATE tokens SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
                params![id, when],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    /// Remember that attempt `attempt` of `task` in `run` succeeded with
    /// `outputs` for cache key `key`.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn remember(
        &self,
        key: &str,
        task: &str,
        run: &str,
        attempt: u32,
        outputs: &[crate::audit::record::Artifact],
    ) -> Result<(), StateError> {
        let outputs = serde_json::to_string(outputs).unwrap_or_default();
        self.db
            .execute(
                "INSERT OR REPLACE INTO cache (key, task, run, attempt, outputs) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key, task, run, attempt, outputs],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The result cached for `key`, if any.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn cached(&self, key: &str) -> Result<Option<CacheHit>, StateError> {
        let row: Option<(String, u32, String)> = self
            .db
            .query_row(
                "SELECT run, attempt, outputs FROM cache WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.and_then(|(run, attempt, outputs)| {
            Some(CacheHit {
                run,
                attempt,
                outputs: serde_json::from_str(&outputs).ok()?,
            })
        }))
    }

    /// Whether the database has a run of this id.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub fn has_run(&self, id: &str) -> Result<bool, StateError> {
        self.db
            .query_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| self.err(e))
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // Rows still in the group transaction are kept, not rolled back.
        let _ = self.commit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_tasks_and_attempts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let run = RunRow {
            id: "r1".into(),
            workflow: "w".into(),
            manifest: "workflow.toml".into(),
            manifest_sha256: "sha256:00".into(),
            policy_set: "sha256:11".into(),
            user: "alice".into(),
            status: "running".into(),
            started: "2026-11-22T00:00:00.000000Z".into(),
            duration_ms: None,
        };
        state.start_run(&run).unwrap();
        state
            .attempt(
                "r1",
                &AttemptRow {
                    task: "a".into(),
                    attempt: 1,
                    outcome: "success".into(),
                    detail: "succeeded".into(),
                    duration_ms: 3,
                    stdout: b"out".to_vec(),
                    stderr: Vec::new(),
                    logs: serde_json::json!([{ "level": "info", "message": "hi" }]),
                },
            )
            .unwrap();
        state
            .task(
                "r1",
                &TaskRow {
                    task: "a".into(),
                    status: "succeeded".into(),
                    detail: String::new(),
                    attempts: 1,
                    duration_ms: 3,
                    outputs: serde_json::json!([]),
                },
            )
            .unwrap();
        state.finish_run("r1", "succeeded", 9).unwrap();
        drop(state);
        let state = State::open(dir.path()).unwrap();
        let runs = state.runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, "succeeded");
        assert_eq!(runs[0].duration_ms, Some(9));
        assert_eq!(state.tasks("r1").unwrap()[0].attempts, 1);
        assert_eq!(state.attempts("r1", Some("a")).unwrap()[0].stdout, b"out");
        assert!(state.attempts("r1", Some("b")).unwrap().is_empty());
        assert!(state.has_run("r1").unwrap());
    }
}
