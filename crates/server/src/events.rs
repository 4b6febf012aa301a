//! `/api/runs/{id}/events` (the durable log, paged) and `/api/runs/{id}/usage`.

use axum::Json;
use axum::extract::State;
use botarmy_protocol::RunId;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::input::{PathIds, QueryParams};
use crate::views::{EventPage, RunUsage, UsageRowView};

/// Events of a run's log after `since`, in order.
#[utoipa::path(get, path = "/api/runs/{id}/events", tag = "runs",
    params(
        ("id" = uuid::Uuid, Path, description = "run id (UUID)"),
        ("since" = Option<u64>, Query, description = "only events with a greater sequence number (default 0)"),
        ("limit" = Option<u64>, Query, description = "at most this many (1-1000, default 100)"),
    ),
    responses(
        (status = 200, description = "a page of the log", body = EventPage),
        (status = 400, description = "bad id or query", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
    ))]
pub async fn page(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    mut query: QueryParams,
) -> Result<Json<EventPage>, ApiError> {
    let id: RunId = path.get("id")?;
    let since = query.number("since", 0, 0, i64::MAX as u64)?;
    let limit = query.number("limit", 100, 1, 1_000)?;
    query.finish()?;
    // The run first: its last_seq is a lower bound of what the read below can see.
    let run = state.store.get_run_in(&caller.tenant, id).await?;
    let events = state.store.read_events(id, since, limit as u32).await?;
    let next_since = events.last().map_or(since, |e| e.seq);
    let last_seq = run.last_seq.max(next_since);
    Ok(Json(EventPage {
        has_more: next_since < last_seq,
        events,
        next_since,
        last_seq,
    }))
}

/// Tokens and cost of a run, in total and per (phase, agent, provider, model).
#[utoipa::path(get, path = "/api/runs/{id}/usage", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    responses(
        (status = 200, description = "the run's usage", body = RunUsage),
        (status = 404, description = "no such run", body = ErrorBody),
    ))]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<RunUsage>, ApiError> {
    let id: RunId = path.get("id")?;
    let run = state.store.get_run_in(&caller.tenant, id).await?;
    let rows = state.store.usage_breakdown(id).await?;
    Ok(Json(RunUsage {
        run_id: id,
        total: run.usage.into(),
        rows: rows.into_iter().map(UsageRowView::from).collect(),
    }))
}
