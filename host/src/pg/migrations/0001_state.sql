-- The run state as SQLite holds it (host/src/state.rs), for PostgreSQL:
-- the operator's index of runs, tasks, attempts, API tokens and the cache
-- of `cache = true` results. The audit log stays the record of truth.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    manifest TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    policy_set TEXT NOT NULL,
    run_as TEXT NOT NULL,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    duration_ms BIGINT
);
CREATE TABLE tasks (
    run TEXT NOT NULL REFERENCES runs(id),
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    duration_ms BIGINT NOT NULL,
    outputs TEXT NOT NULL,
    PRIMARY KEY (run, task)
);
CREATE TABLE attempts (
    run TEXT NOT NULL REFERENCES runs(id),
    task TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    stdout BYTEA NOT NULL,
    stderr BYTEA NOT NULL,
    logs TEXT NOT NULL,
    PRIMARY KEY (run, task, attempt)
);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    run_as TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT,
    revoked TEXT
);
CREATE TABLE cache (
    key TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    run TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outputs TEXT NOT NULL
);
