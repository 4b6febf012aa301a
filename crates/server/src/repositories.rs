//! `/api/repositories`: register (a folder on the server's machine, or a URL it clones),
//! list, read and forget the repositories runs work in. The rules are the runtime's
//! (`botarmy_runtime::repositories`), shared with `botarmy repo`.
//!
//! Repositories are server-wide: they point at folders of the server's machine, which are
//! the operator's. With authentication on, every caller may list and read them and name
//! them in runs; registering and forgetting take a caller of an admin tenant
//! (`[server.auth] admin_tenants`), or the operator's `botarmy repo` on the machine.

use axum::Json;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use botarmy_runtime::repositories::{
    Location, RepositoryError, add_repository, is_clone, remove_repository,
};
use botarmy_store::RepositoryRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::input::{JsonBody, QueryParams, invalid_param};

/// A repository to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddRepository {
    /// An absolute folder of a git checkout on the server's machine (used where it is), or
    /// a URL (`https://`, `http://`, `ssh://`, `git://`, `file://`, `user@host:path`) that
    /// is cloned into the server's folder for clones.
    pub location: String,
    /// Unique name, 1 to 100 of `A-Z a-z 0-9 . _ -` (default: the last part of the location
    /// without `.git`).
    #[serde(default)]
    pub name: Option<String>,
}

/// A registered repository.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepositoryView {
    /// Unique name; runs name it in `options.repositories`.
    pub name: String,
    /// Where it came from, as registered: a URL or a folder.
    pub location: String,
    /// The checkout runs work in, on the server's machine.
    pub path: String,
    /// Whether BotArmy cloned it (and may delete the clone when asked).
    pub cloned: bool,
    /// When it was registered, Unix milliseconds.
    pub added_at: i64,
}

/// Every registered repository.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryList {
    /// By name.
    pub items: Vec<RepositoryView>,
}

impl RepositoryView {
    fn of(state: &AppState, r: RepositoryRecord) -> Self {
        let cloned = state
            .config
            .clones
            .as_deref()
            .is_some_and(|clones| is_clone(&r, clones));
        Self {
            cloned,
            name: r.name,
            location: r.location,
            path: r.path,
            added_at: r.added_at,
        }
    }
}

impl From<RepositoryError> for ApiError {
    fn from(error: RepositoryError) -> Self {
        let message = error.to_string();
        match error {
            RepositoryError::BadName { problem, .. } => {
                Self::new(ErrorCode::ValidationFailed, message).field("name", problem)
            }
            RepositoryError::NoName { .. } => Self::new(ErrorCode::ValidationFailed, message)
                .field("name", "cannot be taken from the location; give one"),
            RepositoryError::BadLocation { problem, .. } => {
                Self::new(ErrorCode::ValidationFailed, message).field("location", problem)
            }
            RepositoryError::NotACheckout { .. } | RepositoryError::CloneFailed { .. } => {
                Self::new(ErrorCode::ValidationFailed, message.clone()).field("location", message)
            }
            RepositoryError::NameTaken { .. } => {
                Self::new(ErrorCode::Conflict, message).field("name", "is taken")
            }
            RepositoryError::CloneFolderExists { .. }
            | RepositoryError::NotAClone { .. }
            | RepositoryError::Missing { .. } => Self::new(ErrorCode::Conflict, message),
            RepositoryError::Unknown { given, .. } => Self::not_found("repository", given),
            RepositoryError::Store(e) => e.into(),
            // Io, Git and whatever comes later: the server's own failure.
            other => Self::internal(&other),
        }
    }
}

/// Refuses a caller that is not of an admin tenant.
fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.admin {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            "registering and forgetting repositories takes a caller of an admin tenant \
             ([server.auth] admin_tenants), or `botarmy repo` on the server's machine",
        ))
    }
}

/// The `{name}` segment of the path.
fn name_of(path: Result<RawPathParams, RawPathParamsRejection>) -> Result<String, ApiError> {
    let path = path.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the path cannot be read: {}", e.body_text()),
        )
    })?;
    Ok(path
        .iter()
        .find(|(k, _)| *k == "name")
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default())
}

/// Registers a repository.
#[utoipa::path(post, path = "/api/repositories", tag = "repositories", request_body = AddRepository,
    responses(
        (status = 201, description = "registered (a URL is cloned first)", body = RepositoryView),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 403, description = "the caller is not of an admin tenant", body = ErrorBody),
        (status = 409, description = "the name is taken, or the clone's folder exists", body = ErrorBody),
        (status = 422, description = "bad name or location: not a git checkout, a URL that is not cloned, a clone that failed (git's message)", body = ErrorBody),
    ))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<AddRepository>,
) -> Result<impl IntoResponse, ApiError> {
    admin_only(&caller)?;
    let clones = match (&state.config.clones, Location::parse(&body.location)?) {
        (Some(clones), _) => clones.clone(),
        (None, Location::Path(_)) => std::path::PathBuf::new(),
        (None, Location::Url(_)) => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "this server has no folder for clones, so it registers only checkouts on its machine",
            )
            .field("location", "a URL; expected an absolute folder of a git checkout"));
        }
    };
    let added = add_repository(
        state.store.as_ref(),
        &clones,
        &body.location,
        body.name.as_deref(),
    )
    .await?;
    let view = RepositoryView::of(&state, added);
    Ok((
        StatusCode::CREATED,
        [(LOCATION, format!("/api/repositories/{}", view.name))],
        Json(view),
    ))
}

/// Lists the registered repositories, by name.
#[utoipa::path(get, path = "/api/repositories", tag = "repositories",
    responses(
        (status = 200, description = "every registered repository", body = RepositoryList),
        (status = 400, description = "bad query", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    query: QueryParams,
) -> Result<Json<RepositoryList>, ApiError> {
    query.finish()?;
    let items = state
        .store
        .list_repositories()
        .await?
        .into_iter()
        .map(|r| RepositoryView::of(&state, r))
        .collect();
    Ok(Json(RepositoryList { items }))
}

/// One registered repository.
#[utoipa::path(get, path = "/api/repositories/{name}", tag = "repositories",
    params(("name" = String, Path, description = "the repository's name")),
    responses(
        (status = 200, description = "the repository", body = RepositoryView),
        (status = 404, description = "no such repository", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    path: Result<RawPathParams, RawPathParamsRejection>,
) -> Result<Json<RepositoryView>, ApiError> {
    let name = name_of(path)?;
    let found = state.store.get_repository(&name).await?;
    Ok(Json(RepositoryView::of(&state, found)))
}

/// Forgets a repository. Its folder stays, unless `delete_clone=true` and BotArmy cloned
/// it; a checkout that is not a clone is never deleted (409, nothing is removed).
#[utoipa::path(delete, path = "/api/repositories/{name}", tag = "repositories",
    params(
        ("name" = String, Path, description = "the repository's name"),
        ("delete_clone" = Option<bool>, Query, description = "also delete the clone BotArmy made (default false)"),
    ),
    responses(
        (status = 200, description = "forgotten; what was registered", body = RepositoryView),
        (status = 400, description = "bad query", body = ErrorBody),
        (status = 403, description = "the caller is not of an admin tenant", body = ErrorBody),
        (status = 404, description = "no such repository", body = ErrorBody),
        (status = 409, description = "delete_clone for a repository BotArmy did not clone", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<RawPathParams, RawPathParamsRejection>,
    mut query: QueryParams,
) -> Result<Json<RepositoryView>, ApiError> {
    admin_only(&caller)?;
    let name = name_of(path)?;
    let delete_clone = match query.take("delete_clone").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid_param(
                "delete_clone",
                format!("expected true or false, found {other:?}"),
            ));
        }
    };
    query.finish()?;
    let clones = match (&state.config.clones, delete_clone) {
        (Some(clones), _) => clones.clone(),
        (None, false) => std::path::PathBuf::new(),
        (None, true) => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "this server has no folder for clones, so it deletes none",
            ));
        }
    };
    let removed = remove_repository(state.store.as_ref(), &clones, &name, delete_clone).await?;
    Ok(Json(RepositoryView::of(&state, removed.repository)))
}
