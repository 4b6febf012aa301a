//! Versioned, embedded migrations for SQLite, applied on open under `BEGIN IMMEDIATE` so two
//! processes opening the same file at once apply them once.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

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

/// The schema version this binary writes.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Brings the database to [`latest`]; [`StoreError::SchemaTooNew`] if it is beyond.
///
/// Foreign keys are off while migrations run (SQLite's way to rebuild a table that others
/// refer to; the setting cannot change inside a transaction) and every reference is checked
/// before the commit.
pub(crate) fn migrate(conn: &mut Connection, location: &str, now: i64) -> Result<(), Fail> {
    let enforced: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
    if enforced {
        conn.pragma_update(None, "foreign_keys", false)?;
    }
    let result = migrate_unchecked(conn, location, now);
    if enforced {
        conn.pragma_update(None, "foreign_keys", true)?;
    }
    result
}

fn migrate_unchecked(conn: &mut Connection, location: &str, now: i64) -> Result<(), Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has_table: bool = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if !has_table {
        let foreign: Option<String> = tx
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(table) = foreign {
            return Err(Fail::Store(StoreError::Corrupt {
                location: location.to_string(),
                detail: format!(
                    "it is not a BotArmy database (it has a table `{table}` but no schema_migrations)"
                ),
            }));
        }
        tx.execute_batch(
            "CREATE TABLE schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at INTEGER NOT NULL
            )",
        )?;
    }
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if current > latest() {
        return Err(Fail::Store(StoreError::SchemaTooNew {
            location: location.to_string(),
            found: current,
            supported: latest(),
        }));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, now],
        )?;
    }
    let broken: Option<String> = tx
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .optional()?;
    if let Some(table) = broken {
        return Err(Fail::Store(StoreError::Corrupt {
            location: location.to_string(),
            detail: format!("after migrating, table `{table}` refers to rows that do not exist"),
        }));
    }
    tx.commit()?;
    Ok(())
}
