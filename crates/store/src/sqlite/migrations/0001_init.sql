-- BotArmy schema v1 (SQLite). Ids are lowercase hyphenated UUID text, times are Unix
-- milliseconds, usage is kept as separate columns so it can be summed in SQL.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL DEFAULT 'active',
    created_at  INTEGER NOT NULL
);
CREATE INDEX projects_by_created_status ON projects (created_at, status);

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects (id),
    workflow       TEXT NOT NULL,
    idea           TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    last_seq       INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL DEFAULT 0,
    output_tokens  INTEGER NOT NULL DEFAULT 0,
    cached_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd       REAL NOT NULL DEFAULT 0,
    calls          INTEGER NOT NULL DEFAULT 0,
    error          TEXT
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_project ON runs (project_id, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);

-- A step's usage is the sum of its LLM calls (llm_calls), computed when read.
CREATE TABLE steps (
    run_id         TEXT NOT NULL REFERENCES runs (id),
    step           INTEGER NOT NULL,
    project_id     TEXT NOT NULL,
    key            TEXT NOT NULL,
    title          TEXT NOT NULL,
    phase          TEXT,
    agent          TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 0,
    started_at     INTEGER,
    finished_at    INTEGER,
    error          TEXT,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
-- "tasks by project/agent/status"
CREATE INDEX steps_by_project_agent_status ON steps (project_id, agent, status);

-- Likewise an attempt's usage.
CREATE TABLE step_attempts (
    run_id         TEXT NOT NULL,
    step           INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    status         TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    error          TEXT,
    PRIMARY KEY (run_id, step, attempt),
    FOREIGN KEY (run_id, step) REFERENCES steps (run_id, step)
) WITHOUT ROWID;

CREATE TABLE artifacts (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    project_id  TEXT NOT NULL,
    step        INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    content     BLOB NOT NULL,
    UNIQUE (run_id, name, version),
    FOREIGN KEY (run_id, step) REFERENCES steps (run_id, step)
);
-- "artifacts by project/type"
CREATE INDEX artifacts_by_project_kind ON artifacts (project_id, kind);

-- The per-run log: gap-free sequence numbers from 1, the source of truth.
CREATE TABLE events (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    type     TEXT NOT NULL,
    payload  TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- One row per LLM call event, keyed by that event's place in the run's log.
CREATE TABLE llm_calls (
    run_id         TEXT NOT NULL REFERENCES runs (id),
    seq            INTEGER NOT NULL,
    step           INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    call           INTEGER NOT NULL,
    agent          TEXT NOT NULL,
    provider       TEXT NOT NULL,
    model          TEXT NOT NULL,
    status         TEXT NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cached_tokens  INTEGER NOT NULL,
    cost_usd       REAL NOT NULL,
    latency_ms     INTEGER NOT NULL,
    request_hash   TEXT,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE INDEX llm_calls_by_model ON llm_calls (provider, model);
