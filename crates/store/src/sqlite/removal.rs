//! Changing and deleting projects and runs on SQLite: done by the writer thread, inside
//! its transaction, so a check ("every run is finished") and the deletion it allows see
//! the same database.

use botarmy_protocol::{ProjectId, RunId, RunStatus};
use rusqlite::{Connection, OptionalExtension, params};

use super::Fail;
use super::read::{project_by_name, project_in};
use crate::projection::{bad_value, invalid};
use crate::{DeletedProject, PROJECT_STATUSES, ProjectChange, ProjectRecord, StoreError};

pub(crate) fn update_project(
    conn: &Connection,
    tenant: &str,
    id: ProjectId,
    change: &ProjectChange,
) -> Result<ProjectRecord, Fail> {
    let mut project = project_in(conn, tenant, id)?;
    if let Some(status) = &change.status {
        if !PROJECT_STATUSES.contains(&status.as_str()) {
            return Err(Fail::Store(invalid(format!(
                "project status `{status}` is not one of {}",
                PROJECT_STATUSES.join(", ")
            ))));
        }
        project.status.clone_from(status);
    }
    if let Some(name) = &change.name
        && *name != project.name
    {
        if project_by_name(conn, tenant, name)?.is_some() {
            return Err(Fail::Store(StoreError::AlreadyExists {
                what: "project",
                id: name.clone(),
            }));
        }
        project.name.clone_from(name);
    }
    conn.prepare_cached("UPDATE projects SET name = ?1, status = ?2 WHERE id = ?3")?
        .execute(params![project.name, project.status, id.0.to_string()])?;
    Ok(project)
}

/// The project's runs with their states, oldest first.
fn runs_of(conn: &Connection, project: ProjectId) -> Result<Vec<(RunId, RunStatus)>, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, status FROM runs WHERE project_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = stmt
        .query_map([project.0.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(id, status)| {
            let run = uuid::Uuid::parse_str(&id)
                .map(RunId)
                .map_err(|_| Fail::Store(bad_value("runs", "id", &id)))?;
            let status = RunStatus::parse(&status)
                .ok_or_else(|| bad_value("runs", "status", &status))
                .map_err(Fail::Store)?;
            Ok((run, status))
        })
        .collect()
}

pub(crate) fn delete_project(
    conn: &Connection,
    tenant: &str,
    id: ProjectId,
    with_finished_runs: bool,
) -> Result<DeletedProject, Fail> {
    let project = project_in(conn, tenant, id)?;
    let runs = runs_of(conn, id)?;
    if let Some(refusal) = crate::removal::project_refusal(id, &runs, with_finished_runs) {
        return Err(Fail::Store(refusal));
    }
    for (run, _) in &runs {
        delete_run_rows(conn, *run)?;
    }
    conn.prepare_cached("DELETE FROM projects WHERE id = ?1")?
        .execute([id.0.to_string()])?;
    Ok(DeletedProject {
        project,
        runs: runs.into_iter().map(|(run, _)| run).collect(),
    })
}

pub(crate) fn delete_run(conn: &Connection, tenant: &str, run_id: RunId) -> Result<(), Fail> {
    let status: Option<String> = conn
        .prepare_cached(
            "SELECT r.status FROM runs r JOIN projects p ON p.id = r.project_id
             WHERE r.id = ?1 AND p.tenant = ?2",
        )?
        .query_row(params![run_id.0.to_string(), tenant], |r| r.get(0))
        .optional()?;
    let Some(status) = status else {
        return Err(Fail::Store(StoreError::NotFound {
            what: "run",
            id: run_id.to_string(),
        }));
    };
    let status = RunStatus::parse(&status)
        .ok_or_else(|| bad_value("runs", "status", &status))
        .map_err(Fail::Store)?;
    if let Some(refusal) = crate::removal::run_refusal(run_id, status) {
        return Err(Fail::Store(refusal));
    }
    delete_run_rows(conn, run_id)
}

/// Deletes every row of the run, children before parents.
fn delete_run_rows(conn: &Connection, run_id: RunId) -> Result<(), Fail> {
    let id = run_id.0.to_string();
    for table in crate::removal::RUN_TABLES {
        let column = if table == "runs" { "id" } else { "run_id" };
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE {column} = ?1"))?
            .execute([&id])?;
    }
    Ok(())
}
