//! Changing and deleting projects and runs on PostgreSQL: one transaction each, with the
//! rows it decides on locked (`FOR UPDATE`) so an append or a new run cannot slip between
//! the check ("every run is finished") and the deletion.

use botarmy_protocol::{ProjectId, RunId, RunStatus};
use deadpool_postgres::{Object, Transaction};

use super::Fail;
use crate::projection::{bad_value, invalid};
use crate::{DeletedProject, PROJECT_STATUSES, ProjectChange, ProjectRecord, StoreError};

const PROJECT_COLUMNS: &str = "id, tenant, name, status, created_at";

/// The tenant's project, locked until the transaction ends.
async fn lock_project(
    tx: &Transaction<'_>,
    tenant: &str,
    id: ProjectId,
) -> Result<ProjectRecord, Fail> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE tenant = $1 AND id = $2 FOR UPDATE"
        ))
        .await?;
    let row = tx.query_opt(&stmt, &[&tenant, &id.0]).await?;
    row.map(|r| ProjectRecord {
        id: ProjectId(r.get(0)),
        tenant: r.get(1),
        name: r.get(2),
        status: r.get(3),
        created_at: r.get(4),
    })
    .ok_or_else(|| {
        Fail::Store(StoreError::NotFound {
            what: "project",
            id: id.to_string(),
        })
    })
}

pub(crate) async fn update_project(
    client: &mut Object,
    tenant: &str,
    id: ProjectId,
    change: &ProjectChange,
) -> Result<ProjectRecord, Fail> {
    if let Some(status) = &change.status
        && !PROJECT_STATUSES.contains(&status.as_str())
    {
        return Err(Fail::Store(invalid(format!(
            "project status `{status}` is not one of {}",
            PROJECT_STATUSES.join(", ")
        ))));
    }
    let tx = client.transaction().await?;
    let mut project = lock_project(&tx, tenant, id).await?;
    if let Some(status) = &change.status {
        project.status.clone_from(status);
    }
    if let Some(name) = &change.name
        && *name != project.name
    {
        let taken = tx
            .prepare_cached("SELECT 1 FROM projects WHERE tenant = $1 AND name = $2")
            .await?;
        if tx.query_opt(&taken, &[&tenant, name]).await?.is_some() {
            return Err(Fail::Store(StoreError::AlreadyExists {
                what: "project",
                id: name.clone(),
            }));
        }
        project.name.clone_from(name);
    }
    let update = tx
        .prepare_cached("UPDATE projects SET name = $1, status = $2 WHERE id = $3")
        .await?;
    match tx
        .execute(&update, &[&project.name, &project.status, &id.0])
        .await
    {
        Ok(_) => {}
        // Another transaction took the name between the check and the update.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            return Err(Fail::Store(StoreError::AlreadyExists {
                what: "project",
                id: project.name,
            }));
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(project)
}

fn status_of(text: &str) -> Result<RunStatus, Fail> {
    RunStatus::parse(text).ok_or_else(|| Fail::Store(bad_value("runs", "status", text)))
}

pub(crate) async fn delete_project(
    client: &mut Object,
    tenant: &str,
    id: ProjectId,
    with_finished_runs: bool,
) -> Result<DeletedProject, Fail> {
    let tx = client.transaction().await?;
    // Locking the project keeps new runs out of it (their foreign key waits for the lock).
    let project = lock_project(&tx, tenant, id).await?;
    let stmt = tx
        .prepare_cached(
            "SELECT id, status FROM runs WHERE project_id = $1 ORDER BY created_at, id FOR UPDATE",
        )
        .await?;
    let mut runs = Vec::new();
    for row in tx.query(&stmt, &[&id.0]).await? {
        let status: String = row.get(1);
        runs.push((RunId(row.get(0)), status_of(&status)?));
    }
    if let Some(refusal) = crate::removal::project_refusal(id, &runs, with_finished_runs) {
        return Err(Fail::Store(refusal));
    }
    let ids: Vec<uuid::Uuid> = runs.iter().map(|(run, _)| run.0).collect();
    delete_run_rows(&tx, &ids).await?;
    let stmt = tx
        .prepare_cached("DELETE FROM projects WHERE id = $1")
        .await?;
    tx.execute(&stmt, &[&id.0]).await?;
    tx.commit().await?;
    Ok(DeletedProject {
        project,
        runs: runs.into_iter().map(|(run, _)| run).collect(),
    })
}

pub(crate) async fn delete_run(
    client: &mut Object,
    tenant: &str,
    run_id: RunId,
) -> Result<(), Fail> {
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "SELECT r.status FROM runs r JOIN projects p ON p.id = r.project_id
             WHERE r.id = $1 AND p.tenant = $2 FOR UPDATE OF r",
        )
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&run_id.0, &tenant]).await? else {
        return Err(Fail::Store(StoreError::NotFound {
            what: "run",
            id: run_id.to_string(),
        }));
    };
    let status: String = row.get(0);
    if let Some(refusal) = crate::removal::run_refusal(run_id, status_of(&status)?) {
        return Err(Fail::Store(refusal));
    }
    delete_run_rows(&tx, &[run_id.0]).await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes every row of the runs, children before parents.
async fn delete_run_rows(tx: &Transaction<'_>, runs: &[uuid::Uuid]) -> Result<(), Fail> {
    if runs.is_empty() {
        return Ok(());
    }
    for table in crate::removal::RUN_TABLES {
        let column = if table == "runs" { "id" } else { "run_id" };
        let stmt = tx
            .prepare_cached(&format!("DELETE FROM {table} WHERE {column} = ANY($1)"))
            .await?;
        tx.execute(&stmt, &[&runs]).await?;
    }
    Ok(())
}
