//! `/api/projects`: create, list and get projects.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use botarmy_protocol::ProjectId;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, ErrorCode, FieldError};
use crate::input::{JsonBody, PathIds, QueryParams};
use crate::views::{ProjectPage, ProjectView};

/// A new project.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Name, unique within the caller's tenant: 1 to 100 characters, no control
    /// characters, not only spaces.
    pub name: String,
}

/// Checks a project name; `path` names the field for the error.
pub fn check_name(name: &str, path: &str) -> Option<FieldError> {
    let problem = if name.trim().is_empty() {
        "must not be empty"
    } else if name.chars().count() > 100 {
        "must be at most 100 characters"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return None;
    };
    Some(FieldError {
        path: path.to_owned(),
        message: problem.to_owned(),
    })
}

/// Creates a project.
#[utoipa::path(post, path = "/api/projects", tag = "projects", request_body = CreateProject,
    responses(
        (status = 201, description = "created", body = ProjectView),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 409, description = "the name is taken", body = ErrorBody),
        (status = 422, description = "the name is not acceptable", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateProject>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(problem) = check_name(&body.name, "name") {
        return Err(ApiError::validation(vec![problem]));
    }
    let existing = state.store.list_projects_in(&caller.tenant).await?;
    if existing.iter().any(|p| p.name == body.name) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("a project named `{}` exists", body.name),
        )
        .field("name", "is taken"));
    }
    let project = ProjectView::from(
        state
            .store
            .ensure_project_in(&caller.tenant, &body.name)
            .await?,
    );
    Ok((
        StatusCode::CREATED,
        [(LOCATION, format!("/api/projects/{}", project.id))],
        Json(project),
    ))
}

/// Lists the caller's projects, newest first.
#[utoipa::path(get, path = "/api/projects", tag = "projects",
    params(
        ("limit" = Option<u64>, Query, description = "at most this many (1-500, default 50)"),
        ("offset" = Option<u64>, Query, description = "skip this many"),
    ),
    responses(
        (status = 200, description = "a page of projects", body = ProjectPage),
        (status = 400, description = "bad query", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    mut query: QueryParams,
) -> Result<Json<ProjectPage>, ApiError> {
    let limit = query.number("limit", 50, 1, 500)?;
    let offset = query.number("offset", 0, 0, u64::from(u32::MAX))?;
    query.finish()?;
    let all = state.store.list_projects_in(&caller.tenant).await?;
    let total = all.len() as u64;
    let items: Vec<ProjectView> = all
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(ProjectView::from)
        .collect();
    let end = offset + items.len() as u64;
    Ok(Json(ProjectPage {
        items,
        next_offset: (end < total).then_some(end),
    }))
}

/// One project.
#[utoipa::path(get, path = "/api/projects/{id}", tag = "projects",
    params(("id" = String, Path, description = "project id (UUID)")),
    responses(
        (status = 200, description = "the project", body = ProjectView),
        (status = 400, description = "not an id", body = ErrorBody),
        (status = 404, description = "no such project", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<ProjectView>, ApiError> {
    let id: ProjectId = path.get("id")?;
    let project = state.store.get_project_in(&caller.tenant, id).await?;
    Ok(Json(project.into()))
}
