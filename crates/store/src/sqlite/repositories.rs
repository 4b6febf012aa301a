//! Registered repositories on SQLite: plain rows, written by the writer thread and read on
//! a reader connection.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::Fail;
use crate::{RepositoryRecord, StoreError};

const COLUMNS: &str = "name, location, path, added_at";

fn record(r: &Row<'_>) -> rusqlite::Result<RepositoryRecord> {
    Ok(RepositoryRecord {
        name: r.get(0)?,
        location: r.get(1)?,
        path: r.get(2)?,
        added_at: r.get(3)?,
    })
}

/// Inserts the row; [`StoreError::AlreadyExists`] if the name is taken.
pub(crate) fn add(conn: &Connection, repository: &RepositoryRecord) -> Result<(), Fail> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO repositories (name, location, path, added_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![
            repository.name,
            repository.location,
            repository.path,
            repository.added_at
        ])?;
    if inserted == 0 {
        return Err(Fail::Store(StoreError::AlreadyExists {
            what: "repository",
            id: repository.name.clone(),
        }));
    }
    Ok(())
}

/// Deletes the row and returns it; [`StoreError::NotFound`] if there is none.
pub(crate) fn remove(conn: &Connection, name: &str) -> Result<RepositoryRecord, Fail> {
    conn.prepare_cached(&format!(
        "DELETE FROM repositories WHERE name = ?1 RETURNING {COLUMNS}"
    ))?
    .query_row([name], record)
    .optional()?
    .ok_or_else(|| not_found(name))
}

pub(crate) fn list(conn: &Connection) -> Result<Vec<RepositoryRecord>, Fail> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM repositories ORDER BY name"))?;
    let rows = stmt
        .query_map([], record)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn get(conn: &Connection, name: &str) -> Result<RepositoryRecord, Fail> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM repositories WHERE name = ?1"
    ))?
    .query_row([name], record)
    .optional()?
    .ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> Fail {
    Fail::Store(StoreError::NotFound {
        what: "repository",
        id: name.to_string(),
    })
}
