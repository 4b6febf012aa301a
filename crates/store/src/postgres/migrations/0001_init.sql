-- BotArmy schema v1 (PostgreSQL). Times are Unix milliseconds (BIGINT) as in the SQLite
-- schema, so both backends map rows the same way.

CREATE TABLE projects (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL DEFAULT 'active',
    created_at  BIGINT NOT NULL
);
CREATE INDEX projects_by_created_status ON projects (created_at, status);

CREATE TABLE runs (
    id             UUID PRIMARY KEY,
    project_id     UUID NOT NULL REFERENCES projects (id),
    workflow       TEXT NOT NULL,
    idea           TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT,
    last_seq       BIGINT NOT NULL,
    input_tokens   BIGINT NOT NULL DEFAULT 0,
    output_tokens  BIGINT NOT NULL DEFAULT 0,
    cached_tokens  BIGINT NOT NULL DEFAULT 0,
    cost_usd       DOUBLE PRECISION NOT NULL DEFAULT 0,
    calls          BIGINT NOT NULL DEFAULT 0,
    error          TEXT
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_project ON runs (project_id, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);

-- A step's usage is the sum of its LLM calls (llm_calls), computed when read.
CREATE TABLE steps (
    run_id         UUID NOT NULL REFERENCES runs (id),
    step           BIGINT NOT NULL,
    project_id     UUID NOT NULL,
    key            TEXT NOT NULL,
    title          TEXT NOT NULL,
    phase          TEXT,
    agent          TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempt        BIGINT NOT NULL DEFAULT 0,
    started_at     BIGINT,
    finished_at    BIGINT,
    error          TEXT,
    PRIMARY KEY (run_id, step)
);
-- "tasks by project/agent/status"
CREATE INDEX steps_by_project_agent_status ON steps (project_id, agent, status);

-- Likewise an attempt's usage.
CREATE TABLE step_attempts (
    run_id         UUID NOT NULL,
    step           BIGINT NOT NULL,
    attempt        BIGINT NOT NULL,
    status         TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    finished_at    BIGINT,
    error          TEXT,
    PRIMARY KEY (run_id, step, attempt),
    FOREIGN KEY (run_id, step) REFERENCES steps (run_id, step)
);

CREATE TABLE artifacts (
    id          UUID PRIMARY KEY,
    run_id      UUID NOT NULL REFERENCES runs (id),
    project_id  UUID NOT NULL,
    step        BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    content     BYTEA NOT NULL,
    UNIQUE (run_id, name, version),
    FOREIGN KEY (run_id, step) REFERENCES steps (run_id, step)
);
-- "artifacts by project/type"
CREATE INDEX artifacts_by_project_kind ON artifacts (project_id, kind);

-- The per-run log: gap-free sequence numbers from 1, the source of truth.
CREATE TABLE events (
    run_id   UUID NOT NULL REFERENCES runs (id),
    seq      BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    type     TEXT NOT NULL,
    payload  JSONB NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- One row per LLM call event, keyed by that event's place in the run's log.
CREATE TABLE llm_calls (
    run_id         UUID NOT NULL REFERENCES runs (id),
    seq            BIGINT NOT NULL,
    step           BIGINT NOT NULL,
    attempt        BIGINT NOT NULL,
    call           BIGINT NOT NULL,
    agent          TEXT NOT NULL,
    provider       TEXT NOT NULL,
    model          TEXT NOT NULL,
    status         TEXT NOT NULL,
    input_tokens   BIGINT NOT NULL,
    output_tokens  BIGINT NOT NULL,
    cached_tokens  BIGINT NOT NULL,
    cost_usd       DOUBLE PRECISION NOT NULL,
    latency_ms     BIGINT NOT NULL,
    request_hash   TEXT,
    error          TEXT,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX llm_calls_by_model ON llm_calls (provider, model);
