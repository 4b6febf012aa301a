-- BotArmy schema v3 (SQLite): repositories registered with BotArmy (`botarmy repo add`),
-- which runs name to work in.
CREATE TABLE repositories (
    name      TEXT PRIMARY KEY,
    location  TEXT NOT NULL,
    path      TEXT NOT NULL,
    added_at  INTEGER NOT NULL
);
