//! Versioned, embedded migrations for PostgreSQL, applied on open inside one transaction
//! that first takes an advisory lock, so processes opening the database at once apply them
//! once.

use super::Fail;
use crate::StoreError;

/// Every migration, in order. Never edit a released one; add the next.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (
        2,
        "usage indexes",
        include_str!("migrations/0002_usage_indexes.sql"),
    ),
    (
        3,
        "repositories",
        include_str!("migrations/0003_repositories.sql"),
    ),
    (4, "tenants", include_str!("migrations/0004_tenants.sql")),
    (5, "sessions", include_str!("migrations/0005_sessions.sql")),
];

/// Key of the advisory lock held while migrating ("botarmy" in ASCII).
const LOCK_KEY: i64 = 0x0062_6f74_6172_6d79;

/// The schema version this binary writes.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Brings the database to [`latest`]; [`StoreError::SchemaTooNew`] if it is beyond.
pub(crate) async fn migrate(
    client: &mut deadpool_postgres::Object,
    location: &str,
    now: i64,
) -> Result<(), Fail> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    if current > latest() {
        return Err(Fail::Store(StoreError::SchemaTooNew {
            location: location.to_string(),
            found: current,
            supported: latest(),
        }));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[version, name, &now],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
