//! Registered repositories on PostgreSQL: plain rows, one statement per request.

use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::Fail;
use crate::{RepositoryRecord, StoreError};

const COLUMNS: &str = "name, location, path, added_at";

fn record(r: &Row) -> RepositoryRecord {
    RepositoryRecord {
        name: r.get(0),
        location: r.get(1),
        path: r.get(2),
        added_at: r.get(3),
    }
}

/// Inserts the row; [`StoreError::AlreadyExists`] if the name is taken.
pub(crate) async fn add(client: &Object, repository: &RepositoryRecord) -> Result<(), Fail> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO repositories (name, location, path, added_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
        )
        .await?;
    let inserted = client
        .execute(
            &stmt,
            &[
                &repository.name,
                &repository.location,
                &repository.path,
                &repository.added_at,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(Fail::Store(StoreError::AlreadyExists {
            what: "repository",
            id: repository.name.clone(),
        }));
    }
    Ok(())
}

/// Deletes the row and returns it; [`StoreError::NotFound`] if there is none.
pub(crate) async fn remove(client: &Object, name: &str) -> Result<RepositoryRecord, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "DELETE FROM repositories WHERE name = $1 RETURNING {COLUMNS}"
        ))
        .await?;
    client
        .query_opt(&stmt, &[&name])
        .await?
        .as_ref()
        .map(record)
        .ok_or_else(|| not_found(name))
}

pub(crate) async fn list(client: &Object) -> Result<Vec<RepositoryRecord>, Fail> {
    let stmt = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM repositories ORDER BY name"))
        .await?;
    Ok(client.query(&stmt, &[]).await?.iter().map(record).collect())
}

pub(crate) async fn get(client: &Object, name: &str) -> Result<RepositoryRecord, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM repositories WHERE name = $1"
        ))
        .await?;
    client
        .query_opt(&stmt, &[&name])
        .await?
        .as_ref()
        .map(record)
        .ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> Fail {
    Fail::Store(StoreError::NotFound {
        what: "repository",
        id: name.to_string(),
    })
}
