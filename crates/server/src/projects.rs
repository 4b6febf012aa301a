//! `/api/projects`: create, list, get, update and delete projects.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use botarmy_protocol::ProjectId;
use botarmy_store::{PROJECT_STATUSES, ProjectChange, StoreError};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, ErrorCode, FieldError};
use crate::input::{JsonBody, PathIds, QueryParams};
use crate::views::{DeletedProjectView, ProjectPage, ProjectView};

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
    params(("id" = uuid::Uuid, Path, description = "project id (UUID)")),
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

/// What to change of a project; a field left out stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    /// A new name, unique within the caller's tenant (the rules of `CreateProject.name`).
    #[serde(default)]
    pub name: Option<String>,
    /// `active` or `archived`.
    #[serde(default)]
    pub status: Option<String>,
}

/// Renames a project and/or changes its status.
#[utoipa::path(patch, path = "/api/projects/{id}", tag = "projects", request_body = UpdateProject,
    params(("id" = uuid::Uuid, Path, description = "project id (UUID)")),
    responses(
        (status = 200, description = "the project as it is now", body = ProjectView),
        (status = 400, description = "malformed body (unknown field, wrong type) or not an id", body = ErrorBody),
        (status = 404, description = "no such project", body = ErrorBody),
        (status = 409, description = "the name is taken", body = ErrorBody),
        (status = 422, description = "a value is not acceptable, or nothing to change", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    JsonBody(body): JsonBody<UpdateProject>,
) -> Result<Json<ProjectView>, ApiError> {
    let id: ProjectId = path.get("id")?;
    let mut problems = Vec::new();
    if let Some(name) = &body.name
        && let Some(problem) = check_name(name, "name")
    {
        problems.push(problem);
    }
    if let Some(status) = &body.status
        && !PROJECT_STATUSES.contains(&status.as_str())
    {
        problems.push(FieldError {
            path: "status".into(),
            message: format!(
                "`{status}` is not a project status: expected {}",
                PROJECT_STATUSES.join(" or ")
            ),
        });
    }
    if body.name.is_none() && body.status.is_none() {
        problems.push(FieldError {
            path: String::new(),
            message: "nothing to change: give `name` and/or `status`".into(),
        });
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let change = ProjectChange {
        name: body.name,
        status: body.status,
    };
    match state
        .store
        .update_project_in(&caller.tenant, id, &change)
        .await
    {
        Ok(project) => Ok(Json(project.into())),
        Err(StoreError::AlreadyExists { id: name, .. }) => Err(ApiError::new(
            ErrorCode::Conflict,
            format!("a project named `{name}` exists"),
        )
        .field("name", "is taken")),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a project with its runs and everything of theirs (events, steps, artifacts,
/// LLM calls), in one transaction. Refused (409, naming them) while any of its runs is not
/// finished: cancel those first. A project with finished runs is deleted only with
/// `?force=true`, since their artifacts go with it; one without runs needs nothing.
#[utoipa::path(delete, path = "/api/projects/{id}", tag = "projects",
    params(
        ("id" = uuid::Uuid, Path, description = "project id (UUID)"),
        ("force" = Option<bool>, Query, description = "also delete its finished runs (default false)"),
    ),
    responses(
        (status = 200, description = "deleted; what was deleted", body = DeletedProjectView),
        (status = 400, description = "not an id, or a bad query", body = ErrorBody),
        (status = 404, description = "no such project", body = ErrorBody),
        (status = 409, description = "it has runs that are not finished, or finished runs and no `force=true`", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    mut query: QueryParams,
) -> Result<Json<DeletedProjectView>, ApiError> {
    let id: ProjectId = path.get("id")?;
    let force = query.flag("force")?;
    query.finish()?;
    let deleted = state
        .store
        .delete_project_in(&caller.tenant, id, force)
        .await?;
    Ok(Json(DeletedProjectView {
        project: deleted.project.into(),
        deleted_runs: deleted.runs,
    }))
}
