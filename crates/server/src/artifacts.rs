//! `/api/runs/{id}/artifacts`: a run's artifact versions, one of them, its raw content,
//! every version of its name.

use axum::Json;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use botarmy_protocol::{ArtifactId, ArtifactKind, RunId};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::input::PathIds;
use crate::views::{ArtifactList, ArtifactView};

/// Every artifact version of a run, in creation order.
#[utoipa::path(get, path = "/api/runs/{id}/artifacts", tag = "artifacts",
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    responses(
        (status = 200, description = "the run's artifacts", body = ArtifactList),
        (status = 404, description = "no such run", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<ArtifactList>, ApiError> {
    let id: RunId = path.get("id")?;
    state.store.get_run_in(&caller.tenant, id).await?;
    let items = state.store.artifacts(id).await?;
    Ok(Json(ArtifactList {
        items: items.into_iter().map(ArtifactView::from).collect(),
    }))
}

async fn find(
    state: &AppState,
    caller: &Caller,
    path: &PathIds,
) -> Result<botarmy_store::ArtifactRecord, ApiError> {
    let run: RunId = path.get("id")?;
    let artifact: ArtifactId = path.get("artifact_id")?;
    state.store.get_run_in(&caller.tenant, run).await?;
    state
        .store
        .artifacts(run)
        .await?
        .into_iter()
        .find(|a| a.artifact.id == artifact)
        .ok_or_else(|| ApiError::not_found("artifact", artifact))
}

/// One artifact version's metadata.
#[utoipa::path(get, path = "/api/runs/{id}/artifacts/{artifact_id}", tag = "artifacts",
    params(
        ("id" = uuid::Uuid, Path, description = "run id (UUID)"),
        ("artifact_id" = uuid::Uuid, Path, description = "artifact version id (UUID)"),
    ),
    responses(
        (status = 200, description = "the artifact", body = ArtifactView),
        (status = 404, description = "no such run or artifact", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<ArtifactView>, ApiError> {
    find(&state, &caller, &path).await.map(|a| Json(a.into()))
}

/// One artifact version's content, as stored.
#[utoipa::path(get, path = "/api/runs/{id}/artifacts/{artifact_id}/raw", tag = "artifacts",
    params(
        ("id" = uuid::Uuid, Path, description = "run id (UUID)"),
        ("artifact_id" = uuid::Uuid, Path, description = "artifact version id (UUID)"),
    ),
    responses(
        (status = 200, description = "the content as stored: text/markdown for documents, application/octet-stream for code"),
        (status = 404, description = "no such run or artifact", body = ErrorBody),
    ))]
pub async fn raw(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Response, ApiError> {
    let record = find(&state, &caller, &path).await?;
    let content = state.store.artifact_content(record.artifact.id).await?;
    let content_type = match record.artifact.kind {
        ArtifactKind::Document => "text/markdown; charset=utf-8",
        _ => "application/octet-stream",
    };
    let file_name: String = record
        .artifact
        .name
        .rsplit('/')
        .next()
        .unwrap_or("artifact")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_DISPOSITION, disposition),
        ],
        content,
    )
        .into_response())
}

/// Every stored version of the artifact's name in the run (this one and the others), by
/// version: a step that runs again (a restart, feedback at a gate) stores a new version.
#[utoipa::path(get, path = "/api/runs/{id}/artifacts/{artifact_id}/versions", tag = "artifacts",
    params(
        ("id" = uuid::Uuid, Path, description = "run id (UUID)"),
        ("artifact_id" = uuid::Uuid, Path, description = "id of any version of the artifact (UUID)"),
    ),
    responses(
        (status = 200, description = "every version of the artifact's name, oldest first", body = ArtifactList),
        (status = 404, description = "no such run or artifact", body = ErrorBody),
    ))]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<ArtifactList>, ApiError> {
    let run: RunId = path.get("id")?;
    let artifact: ArtifactId = path.get("artifact_id")?;
    state.store.get_run_in(&caller.tenant, run).await?;
    let all = state.store.artifacts(run).await?;
    let name = all
        .iter()
        .find(|a| a.artifact.id == artifact)
        .map(|a| a.artifact.name.clone())
        .ok_or_else(|| ApiError::not_found("artifact", artifact))?;
    let mut items: Vec<ArtifactView> = all
        .into_iter()
        .filter(|a| a.artifact.name == name)
        .map(ArtifactView::from)
        .collect();
    items.sort_by_key(|a| a.version);
    Ok(Json(ArtifactList { items }))
}
