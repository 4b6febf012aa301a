-- BotArmy schema v4 (SQLite): tenants and API tokens.
--
-- Every project belongs to a tenant (runs, their events and artifacts reach it through
-- their project); what existed before belongs to `default`. A project's name is unique
-- within its tenant, so the table is rebuilt (SQLite cannot drop a UNIQUE constraint);
-- foreign keys are off while migrations run and checked before the commit.
CREATE TABLE projects_v4 (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL DEFAULT 'default',
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active',
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant, name)
);
INSERT INTO projects_v4 (id, tenant, name, status, created_at)
    SELECT id, 'default', name, status, created_at FROM projects;
DROP TABLE projects;
ALTER TABLE projects_v4 RENAME TO projects;
CREATE INDEX projects_by_created_status ON projects (created_at, status);
CREATE INDEX projects_by_tenant ON projects (tenant, created_at);

-- API tokens: only a hash of the secret is kept.
CREATE TABLE api_tokens (
    id                 TEXT PRIMARY KEY,
    tenant             TEXT NOT NULL,
    name               TEXT NOT NULL,
    hash               TEXT NOT NULL UNIQUE,
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER,
    revoked_at         INTEGER,
    rate_requests      INTEGER,
    rate_per_secs      INTEGER
);
CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant, created_at);
