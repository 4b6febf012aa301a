//! The server itself: health, readiness, version, the OpenAPI document, and the answers
//! for routes and methods that do not exist.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use botarmy_store::RunFilter;

use crate::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::views::{HealthView, VersionView};

/// The process is alive.
#[utoipa::path(get, path = "/health", tag = "server",
    responses((status = 200, description = "alive", body = HealthView)))]
pub async fn health() -> Json<HealthView> {
    Json(HealthView { status: "ok" })
}

/// The store answers (opening it applied the migrations, so answering means they are).
#[utoipa::path(get, path = "/ready", tag = "server",
    responses(
        (status = 200, description = "ready", body = HealthView),
        (status = 503, description = "the store cannot be reached", body = ErrorBody),
    ))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<HealthView>, ApiError> {
    let probe = RunFilter {
        limit: 1,
        ..RunFilter::default()
    };
    match state.store.list_runs(&probe).await {
        Ok(_) => Ok(Json(HealthView { status: "ready" })),
        Err(error) => {
            eprintln!("botarmy-server: not ready: {error}");
            Err(ApiError::new(
                ErrorCode::Unavailable,
                "the store cannot be reached",
            ))
        }
    }
}

/// The name and version of this botarmy.
#[utoipa::path(get, path = "/api/version", tag = "server",
    responses((status = 200, description = "version", body = VersionView)))]
pub async fn version() -> Json<VersionView> {
    Json(VersionView {
        name: "botarmy",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "server",
    responses((status = 200, description = "the OpenAPI document (JSON)")))]
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}

/// A page that renders the OpenAPI document for people, with a form to try each route.
/// Self-contained: it reads `/api/openapi.json`, its script and its style from this server
/// and nothing from elsewhere, so it works offline (and under a policy that runs no
/// inline script).
pub async fn docs() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../assets/api-docs.html"),
    )
}

/// The docs page's script.
pub async fn docs_script() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/api-docs.js"),
    )
}

/// The docs page's style.
pub async fn docs_style() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/api-docs.css"),
    )
}

pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route `{}`", uri.path()))
}

pub async fn wrong_method(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("`{}` does not take this method", uri.path()),
    )
}
