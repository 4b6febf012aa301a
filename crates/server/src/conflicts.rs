//! Conflicts over REST: those of a run (found, mediated, escalated, settled) and those a
//! project's runs settled. A conflict that waits for a person is answered like any question
//! of the run (`POST /api/runs/{id}/answer`).

use axum::Json;
use axum::extract::State;
use botarmy_protocol::{ProjectId, RunId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::input::PathIds;

/// A run's conflicts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictList {
    /// One per conflict its checks found (the latest attempt of each check), in plan order:
    /// step, step_key, attempt, conflict, status (`mediating`, `escalated`, `settled`),
    /// severity, description, positions (agent, artifact, claim), rounds (proposal, score,
    /// reasons), question (while a person must decide), resolution (resolution, by, score).
    #[schema(value_type = Vec<Object>)]
    pub conflicts: Vec<serde_json::Value>,
}

/// Conflicts settled in a project's runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettledConflictList {
    /// Oldest run first: run_id, conflict (severity, description, positions), resolution
    /// (resolution, by, score), resolved_at.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
}

/// A run's conflicts and how far each is settled.
#[utoipa::path(get, path = "/api/runs/{id}/conflicts", tag = "approvals",
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    responses(
        (status = 200, description = "the run's conflicts", body = ConflictList),
        (status = 404, description = "no such run", body = ErrorBody),
    ))]
pub async fn of_run(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<ConflictList>, ApiError> {
    let id: RunId = path.get("id")?;
    state.store.get_run_in(&caller.tenant, id).await?;
    let run = state.runtime.load(id).await?;
    Ok(Json(ConflictList {
        conflicts: run
            .conflict_views()
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or_default())
            .collect(),
    }))
}

/// The conflicts a project's runs settled: what later mediation in the project is shown.
#[utoipa::path(get, path = "/api/projects/{id}/conflicts", tag = "projects",
    params(("id" = uuid::Uuid, Path, description = "project id (UUID)")),
    responses(
        (status = 200, description = "settled conflicts, oldest run first", body = SettledConflictList),
        (status = 404, description = "no such project", body = ErrorBody),
    ))]
pub async fn of_project(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<SettledConflictList>, ApiError> {
    let id: ProjectId = path.get("id")?;
    state.store.get_project_in(&caller.tenant, id).await?;
    let settled = state.store.settled_conflicts(id).await?;
    Ok(Json(SettledConflictList {
        items: settled
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or_default())
            .collect(),
    }))
}
