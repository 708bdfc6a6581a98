//! The SQLite store's schema, as the migrations that build it: migration
//! `i` takes a database from `user_version` `i` to `i + 1`, in one
//! transaction. A migration is never edited once released; a change of
//! schema is a new entry at the end (and `SCHEMA_VERSION` in `sqlite.rs`
//! goes up with it).

/// Each migration takes the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_until_ms INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_seq INTEGER NOT NULL,
    output TEXT
);
CREATE INDEX runs_by_status ON runs(status, created_seq);
CREATE INDEX runs_by_workflow ON runs(workflow, created_seq);
CREATE TABLE journal (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    step_id TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE dlq (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
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
    failures INTEGER NOT NULL,
    since_ms INTEGER NOT NULL,
    version INTEGER NOT NULL
);
",
    // 2: the spec (workflow text, pins, input: up to megabytes) moves out of
    // `runs`, whose row every commit and heartbeat updates: SQLite rewrites a
    // whole row, overflow pages included, so a big spec made every step's
    // commit cost its size (a 10,000-step chain took 22 s instead of 1.5).
    "
CREATE TABLE run_specs (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
    spec TEXT NOT NULL
);
INSERT INTO run_specs (run_id, spec) SELECT run_id, spec FROM runs;
ALTER TABLE runs DROP COLUMN spec;
CREATE INDEX runs_by_seq ON runs(created_seq);
",
    // 3: key-value state of effect steps, one scope per workflow (and tenant).
    "
CREATE TABLE kv (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
",
    // 4: the bytes each key-value scope is charged, kept with every write
    // (a quota check reads one row instead of summing the scope). A
    // development build briefly made this table in migration 3, hence
    // IF NOT EXISTS; the charge is recomputed from the rows either way (64 is
    // `contract::KV_ROW_OVERHEAD`).
    "
CREATE TABLE IF NOT EXISTS kv_usage (
    scope TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR REPLACE INTO kv_usage (scope, bytes)
    SELECT scope, SUM(length(CAST(key AS BLOB)) + length(value) + 64) FROM kv GROUP BY scope;
",
    // 5: the memo cache of compute steps, evicted least recently used first
    // (`used` is a counter: every use takes the next number).
    "
CREATE TABLE memo (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    used INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX memo_by_use ON memo(used);
",
    // 6: approval gates: the signals delivered to them (one per gate), and
    // whether a run waits only on gates (`paused`, shown by `weft runs list`).
    "
ALTER TABLE runs ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
CREATE TABLE signals (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    step_id TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    data TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;
",
    // 7: leases with a fencing epoch (bumped by every claim), claims without
    // progress (poison runs), the parent of a child run (workers leave it to
    // its parent), submitted runs waiting for a worker, and components
    // stored by digest.
    "
ALTER TABLE runs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN idle_claims INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
UPDATE runs SET parent_run_id =
    (SELECT json_extract(s.spec, '$.parent.run_id') FROM run_specs s WHERE s.run_id = runs.run_id);
CREATE INDEX runs_runnable ON runs(status, created_seq) WHERE status IN ('pending', 'running');
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    bytes BLOB NOT NULL
);
",
    // 8: runs belong to a tenant (the service's; '' on a single-tenant
    // host), taken from the input's `metadata.tenant`, so that lists and
    // claims can be scoped and shared fairly.
    "
ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
UPDATE runs SET tenant = coalesce((SELECT CASE WHEN json_type(s.spec, '$.input.metadata.tenant') = 'text'
    THEN json_extract(s.spec, '$.input.metadata.tenant') END FROM run_specs s WHERE s.run_id = runs.run_id), '');
CREATE INDEX runs_by_tenant ON runs(tenant, created_seq);
CREATE INDEX runs_by_tenant_status ON runs(tenant, status, created_seq);
CREATE INDEX runs_by_tenant_workflow ON runs(tenant, workflow, created_seq);
",
    // 9: the tenants' usage counters (fuel per hour, stored bytes), which
    // every process adds to atomically.
    "
CREATE TABLE usage (
    tenant TEXT NOT NULL,
    counter TEXT NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (tenant, counter)
) WITHOUT ROWID;
",
];
