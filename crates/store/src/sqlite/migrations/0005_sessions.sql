-- BotArmy schema v5 (SQLite): client sessions.
--
-- A session keeps a client's tabs and UI state (JSON text) across reconnects and server
-- restarts, and per run the last event the client acknowledged. Positions go with their
-- session and with their run.
CREATE TABLE client_sessions (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    ui_state      TEXT NOT NULL,
    tabs          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_seen_at  INTEGER
);
CREATE INDEX client_sessions_by_tenant ON client_sessions (tenant, created_at);

CREATE TABLE session_cursors (
    session_id  TEXT NOT NULL REFERENCES client_sessions (id) ON DELETE CASCADE,
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    acked_seq   INTEGER NOT NULL,
    acked_at    INTEGER NOT NULL,
    PRIMARY KEY (session_id, run_id)
);
CREATE INDEX session_cursors_by_run ON session_cursors (run_id);
