-- BotArmy schema v4 (PostgreSQL): tenants and API tokens.
--
-- Every project belongs to a tenant (runs, their events and artifacts reach it through
-- their project); what existed before belongs to `default`. A project's name is unique
-- within its tenant.
ALTER TABLE projects ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE projects DROP CONSTRAINT projects_name_key;
ALTER TABLE projects ADD CONSTRAINT projects_tenant_name_key UNIQUE (tenant, name);
CREATE INDEX projects_by_tenant ON projects (tenant, created_at);

-- API tokens: only a hash of the secret is kept.
CREATE TABLE api_tokens (
    id                 TEXT PRIMARY KEY,
    tenant             TEXT NOT NULL,
    name               TEXT NOT NULL,
    hash               TEXT NOT NULL UNIQUE,
    created_at         BIGINT NOT NULL,
    last_used_at       BIGINT,
    revoked_at         BIGINT,
    rate_requests      INTEGER,
    rate_per_secs      INTEGER
);
CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant, created_at);
