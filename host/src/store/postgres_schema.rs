//! The PostgreSQL store's schema, as migrations: migration `i` takes a
//! database from version `i` to `i + 1`. They run in one transaction under
//! an advisory lock, so that workers starting together migrate once. A
//! migration is never edited once released; a change is a new entry.
//!
//! The tables mirror the SQLite store's (see `sqlite_schema.rs`). Queue rows
//! that are updated in place (`runs`) leave room on their pages
//! (`fillfactor`) so that updates stay on the page; the journal is insert-only.

/// Each migration takes the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_until_ms BIGINT NOT NULL,
    lease_epoch BIGINT NOT NULL,
    idle_claims INTEGER NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    parent_run_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_seq BIGINT GENERATED ALWAYS AS IDENTITY,
    output TEXT
) WITH (fillfactor = 70);
CREATE INDEX runs_by_seq ON runs (created_seq);
CREATE INDEX runs_by_status ON runs (status, created_seq);
CREATE INDEX runs_by_workflow ON runs (workflow, created_seq);
CREATE INDEX runs_runnable ON runs (created_seq) WHERE status IN ('pending', 'running');
CREATE TABLE run_specs (
    run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
    spec TEXT NOT NULL
);
CREATE TABLE journal (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    seq BIGINT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    step_id TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE dlq (
    run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
    workflow TEXT NOT NULL,
    step_id TEXT NOT NULL,
    error_type TEXT NOT NULL,
    message TEXT NOT NULL,
    at TEXT NOT NULL,
    replayed_as TEXT
);
CREATE TABLE breakers (
    component TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    failures BIGINT NOT NULL,
    since_ms BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE TABLE kv (
    scope TEXT COLLATE \"C\" NOT NULL,
    key TEXT COLLATE \"C\" NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE kv_usage (
    scope TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL
);
CREATE SEQUENCE memo_clock;
CREATE TABLE memo (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    used BIGINT NOT NULL,
    hits BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX memo_by_use ON memo (used);
CREATE TABLE signals (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    step_id TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    data TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL
);
",
    // 2: runs belong to a tenant (see the SQLite store's migration 8).
    "
ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
UPDATE runs r SET tenant = coalesce(s.spec::jsonb #>> '{input,metadata,tenant}', '') FROM run_specs s
    WHERE s.run_id = r.run_id AND jsonb_typeof(s.spec::jsonb #> '{input,metadata,tenant}') = 'string';
CREATE INDEX runs_by_tenant ON runs (tenant, created_seq);
CREATE INDEX runs_by_tenant_status ON runs (tenant, status, created_seq);
CREATE INDEX runs_by_tenant_workflow ON runs (tenant, workflow, created_seq);
",
    // 3: the tenants' usage counters (see the SQLite store's migration 9).
    "
CREATE TABLE usage (
    tenant TEXT COLLATE \"C\" NOT NULL,
    counter TEXT COLLATE \"C\" NOT NULL,
    amount BIGINT NOT NULL,
    PRIMARY KEY (tenant, counter)
);
",
];
