-- BotArmy schema v5 (PostgreSQL): client sessions.
--
-- A session keeps a client's tabs and UI state (JSON) across reconnects and server
-- restarts, and per run the last event the client acknowledged. Positions go with their
-- session and with their run.
CREATE TABLE client_sessions (
    id            UUID PRIMARY KEY,
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    ui_state      JSONB NOT NULL,
    tabs          JSONB NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_seen_at  BIGINT
);
CREATE INDEX client_sessions_by_tenant ON client_sessions (tenant, created_at);

CREATE TABLE session_cursors (
    session_id  UUID NOT NULL REFERENCES client_sessions (id) ON DELETE CASCADE,
    run_id      UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    acked_seq   BIGINT NOT NULL,
    acked_at    BIGINT NOT NULL,
    PRIMARY KEY (session_id, run_id)
);
CREATE INDEX session_cursors_by_run ON session_cursors (run_id);
