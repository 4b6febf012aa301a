//! `/api/runs`: create and start runs, list and read them, pause, resume and cancel them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use botarmy_protocol::{
    Budget, Event, ProjectId, RunId, RunOptions, RunRequest, RunStatus, StepStatus,
};
use botarmy_store::RunFilter;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::drives::Start;
use crate::error::{ApiError, ErrorBody, ErrorCode, FieldError};
use crate::input::{JsonBody, OptionalJsonBody, PathIds, QueryParams, invalid_param};
use crate::views::{RunDetail, RunPage, RunView};

/// The method every run of the API uses for now: method folders are files on the server,
/// which a client must not choose.
const METHOD: &str = "builtin";

/// A run to create and start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// The idea, ticket text or task to work on (1 to 65,536 bytes).
    pub idea: String,
    /// Workflow id; default: the method's default workflow.
    #[serde(default)]
    pub workflow: Option<String>,
    /// The project by id (one of the caller's tenant); wins over `project`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    /// The project by name, in the caller's tenant, created if needed; default `default`.
    #[serde(default)]
    pub project: Option<String>,
    /// Where definitions come from; only `builtin` for now.
    #[serde(default)]
    pub method: Option<String>,
    /// Knobs of the run; each left out takes its default.
    #[serde(default)]
    pub options: RunOptionsBody,
}

/// The knobs of a run a client may set.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RunOptionsBody {
    /// Steps that may execute at the same time (1-32, default 4).
    pub max_parallel: Option<u32>,
    /// Token budget for the artifacts put into a step's prompt (256-1,000,000).
    pub context_tokens: Option<u32>,
    /// Cap on generated tokens per LLM call (16-200,000).
    pub max_output_tokens: Option<u32>,
    /// Attempts per step for retryable failures (1-10).
    pub max_attempts: Option<u32>,
    /// Accept every gate without asking.
    pub auto_approve: Option<bool>,
    /// Execute steps the workflow marks optional.
    pub run_optional: Option<bool>,
    /// Spending limits: `{usd, tokens, phases: {name: {usd, tokens}}, agents: {...}}`.
    #[schema(value_type = Option<Object>)]
    pub budget: Option<Budget>,
    /// Registered repositories (by name, see `/api/repositories`) the run's code work
    /// happens in; none: a fresh repository of the run's own.
    pub repositories: Option<Vec<String>>,
    /// The policy of every gate of the run: `auto`, `always`, or thresholds such as
    /// `confidence_below=0.8,quality_below=0.85` (default: the workflow's, else those
    /// thresholds).
    pub gate_policy: Option<String>,
}

/// What resuming may change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRun {
    /// New spending limits, replacing the old ones whole (to continue a run waiting on its
    /// budget).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub budget: Option<Budget>,
}

/// The answer to what a waiting run asks.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRun {
    /// The answer: one of the question's options when it offers some.
    pub answer: String,
    /// Who answers (recorded with the answer); default "api".
    #[serde(default)]
    pub by: Option<String>,
}

/// Why a run is cancelled.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRun {
    /// Shown in the run's log; default "cancelled through the API".
    #[serde(default)]
    pub reason: Option<String>,
}

fn within(
    problems: &mut Vec<FieldError>,
    path: &str,
    value: Option<u32>,
    min: u32,
    max: u32,
) -> Option<u32> {
    let v = value?;
    if (min..=max).contains(&v) {
        Some(v)
    } else {
        problems.push(FieldError {
            path: path.to_owned(),
            message: format!("{v} is out of range: expected {min} to {max}"),
        });
        None
    }
}

fn check_budget(problems: &mut Vec<FieldError>, path: &str, budget: &Budget) {
    let mut money = vec![(path.to_owned(), budget.usd)];
    for (name, limit) in &budget.phases {
        money.push((format!("{path}.phases.{name}.usd"), limit.usd));
    }
    for (name, limit) in &budget.agents {
        money.push((format!("{path}.agents.{name}.usd"), limit.usd));
    }
    for (field, usd) in money {
        if let Some(usd) = usd
            && !(usd.is_finite() && usd >= 0.0)
        {
            let field = if field == path {
                format!("{path}.usd")
            } else {
                field
            };
            problems.push(FieldError {
                path: field,
                message: format!("{usd} is not a non-negative amount of US dollars"),
            });
        }
    }
}

impl CreateRun {
    /// The options, with every problem found.
    fn options(&self, problems: &mut Vec<FieldError>) -> RunOptions {
        let o = &self.options;
        let d = RunOptions::default();
        if let Some(budget) = &o.budget {
            check_budget(problems, "options.budget", budget);
        }
        RunOptions {
            max_parallel: within(problems, "options.max_parallel", o.max_parallel, 1, 32)
                .unwrap_or(d.max_parallel),
            context_tokens: within(
                problems,
                "options.context_tokens",
                o.context_tokens,
                256,
                1_000_000,
            )
            .unwrap_or(d.context_tokens),
            max_output_tokens: within(
                problems,
                "options.max_output_tokens",
                o.max_output_tokens,
                16,
                200_000,
            )
            .unwrap_or(d.max_output_tokens),
            max_attempts: within(problems, "options.max_attempts", o.max_attempts, 1, 10)
                .unwrap_or(d.max_attempts),
            auto_approve: o.auto_approve.unwrap_or(d.auto_approve),
            run_optional: o.run_optional.unwrap_or(d.run_optional),
            out_dir: None,
            budget: o.budget.clone().unwrap_or_default(),
            repositories: Vec::new(),
            gate_policy: o.gate_policy.as_deref().and_then(|text| {
                botarmy_protocol::GatePolicy::parse(text)
                    .map_err(|message| {
                        problems.push(FieldError {
                            path: "options.gate_policy".into(),
                            message,
                        });
                    })
                    .ok()
            }),
            default_gate: None,
            gate_timeout: None,
        }
    }
}

/// Creates a run and starts it on this server; follow it on `/ws?run_id=...`.
#[utoipa::path(post, path = "/api/runs", tag = "runs", request_body = CreateRun,
    responses(
        (status = 201, description = "created and started", body = RunDetail),
        (status = 400, description = "malformed body (unknown field, wrong type)", body = ErrorBody),
        (status = 422, description = "a value is not acceptable", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateRun>,
) -> Result<impl IntoResponse, ApiError> {
    let mut problems = Vec::new();
    if body.idea.trim().is_empty() {
        problems.push(FieldError {
            path: "idea".into(),
            message: "must not be empty".into(),
        });
    } else if body.idea.len() > 65_536 {
        problems.push(FieldError {
            path: "idea".into(),
            message: format!("is {} bytes; at most 65,536 are accepted", body.idea.len()),
        });
    }
    if let Some(method) = &body.method
        && method != METHOD
    {
        problems.push(FieldError {
            path: "method".into(),
            message: format!(
                "`{method}` cannot be chosen through the API; only `{METHOD}` is available"
            ),
        });
    }
    if let Some(name) = &body.project
        && let Some(problem) = crate::projects::check_name(name, "project")
    {
        problems.push(problem);
    }
    let mut options = body.options(&mut problems);
    // Only registered repositories: folders on the server are not a client's to name.
    for (i, name) in body.options.repositories.iter().flatten().enumerate() {
        match state.store.get_repository(name).await {
            Ok(repository) => options.repositories.push(repository.path),
            Err(botarmy_store::StoreError::NotFound { .. }) => problems.push(FieldError {
                path: format!("options.repositories[{i}]"),
                message: format!("no repository `{name}` is registered"),
            }),
            Err(e) => return Err(e.into()),
        }
    }
    let method = state.runtime.method(METHOD)?;
    let workflow = match &body.workflow {
        Some(w) => Some(w.clone()),
        None => method.method().default_workflow().map(|w| w.id.clone()),
    };
    match &workflow {
        Some(w) => {
            if let Err(e) = method.plan(w) {
                problems.push(FieldError {
                    path: "workflow".into(),
                    message: e.to_string(),
                });
            }
        }
        None => problems.push(FieldError {
            path: "workflow".into(),
            message: "the method has no default workflow; name one".into(),
        }),
    }
    let project = match body.project_id {
        Some(id) => match state.store.get_project_in(&caller.tenant, id).await {
            Ok(p) => Some(Ok(p)),
            Err(botarmy_store::StoreError::NotFound { .. }) => {
                problems.push(FieldError {
                    path: "project_id".into(),
                    message: format!("no project has the id {id}"),
                });
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => Some(Err(body
            .project
            .clone()
            .unwrap_or_else(|| "default".into()))),
    };
    let (Some(project), Some(workflow), true) = (project, workflow, problems.is_empty()) else {
        return Err(ApiError::validation(problems));
    };
    // A project named, not found by id, is made only once the request is known to be good.
    let project = match project {
        Ok(found) => found,
        Err(name) => state.store.ensure_project_in(&caller.tenant, &name).await?,
    };
    let request = RunRequest {
        idea: body.idea,
        workflow,
        method: METHOD.into(),
        options,
    };
    let run_id = state
        .runtime
        .create_run_in_project(&project, request)
        .await?;
    // A run created a moment ago is driven by no one.
    let _ = state.drives.spawn(run_id, Start::Fresh);
    let detail = detail(&state, &caller, run_id).await?;
    Ok((
        StatusCode::CREATED,
        [(LOCATION, format!("/api/runs/{run_id}"))],
        Json(detail),
    ))
}

/// Lists the caller's runs, newest first.
#[utoipa::path(get, path = "/api/runs", tag = "runs",
    params(
        ("project_id" = Option<String>, Query, description = "only runs of this project"),
        ("status" = Option<String>, Query, description = "only runs in this state: pending, running, paused, waiting, succeeded, failed, cancelled"),
        ("limit" = Option<u64>, Query, description = "at most this many (1-500, default 50)"),
        ("offset" = Option<u64>, Query, description = "skip this many"),
    ),
    responses(
        (status = 200, description = "a page of runs", body = RunPage),
        (status = 400, description = "bad query", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    mut query: QueryParams,
) -> Result<Json<RunPage>, ApiError> {
    let project = query.id::<ProjectId>("project_id")?;
    let status = match query.take("status") {
        None => None,
        Some(raw) => Some(RunStatus::parse(&raw).ok_or_else(|| {
            invalid_param(
                "status",
                format!(
                    "`{raw}` is not a run state (pending, running, paused, waiting, succeeded, failed, cancelled)"
                ),
            )
        })?),
    };
    let limit = query.number("limit", 50, 1, 500)?;
    let offset = query.number("offset", 0, 0, u64::from(u32::MAX))?;
    query.finish()?;
    let filter = RunFilter {
        tenant: Some(caller.tenant),
        project,
        status,
        limit: limit as u32,
        offset: offset as u32,
    };
    let items: Vec<RunView> = state
        .store
        .list_runs(&filter)
        .await?
        .into_iter()
        .map(RunView::from)
        .collect();
    let next_offset = (items.len() as u64 == limit).then_some(offset + limit);
    Ok(Json(RunPage { items, next_offset }))
}

/// A run with its phases, steps and attempts.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    responses(
        (status = 200, description = "the run", body = RunDetail),
        (status = 400, description = "not an id", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<RunDetail>, ApiError> {
    let id: RunId = path.get("id")?;
    detail(&state, &caller, id).await.map(Json)
}

/// Reads a run of the caller's tenant into its detail view.
pub async fn detail(state: &AppState, caller: &Caller, id: RunId) -> Result<RunDetail, ApiError> {
    // Asked before the store is read: a run not driven here then has its final records
    // below (the drive stores everything before it ends), so `driven_here: false` never
    // comes with a status its drive already left.
    let driven_here = state.drives.is_driven(id);
    let run = state.store.get_run_in(&caller.tenant, id).await?;
    let last_seq = run.last_seq;
    let steps = state.store.steps(id).await?;
    let attempts = state.store.attempts(id).await?;
    let mut detail = RunDetail::new(run, steps, attempts, driven_here);
    if detail.steps.iter().any(|s| s.status == StepStatus::Running) {
        // Whether a running step waits for a slot is its latest event; the tail of the log
        // holds it (a queued step has nothing newer).
        let from = last_seq.saturating_sub(QUEUE_TAIL);
        let mut latest: std::collections::HashMap<u32, Option<String>> =
            std::collections::HashMap::new();
        for record in state.store.read_events(id, from, QUEUE_TAIL as u32).await? {
            if let Some(step) = record.event.step() {
                let queued = match record.event {
                    Event::StepQueued { resource, .. } => Some(resource),
                    _ => None,
                };
                latest.insert(step, queued);
            }
        }
        for s in detail
            .steps
            .iter_mut()
            .filter(|s| s.status == StepStatus::Running)
        {
            s.queued = latest.remove(&s.step).flatten();
        }
    }
    Ok(detail)
}

/// How far back in a run's log `detail` looks for steps waiting on a slot.
const QUEUE_TAIL: u64 = 256;

/// Pauses a run this server drives; its running steps are interrupted (their finished LLM
/// calls are kept) and `resume` continues it.
#[utoipa::path(post, path = "/api/runs/{id}/pause", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    responses(
        (status = 200, description = "paused", body = RunDetail),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "not running on this server", body = ErrorBody),
    ))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<RunDetail>, ApiError> {
    let id: RunId = path.get("id")?;
    // 404 before anything changes.
    let run = state.store.get_run_in(&caller.tenant, id).await?;
    if !state.drives.pause(id).await {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "run {id} is {} and is not being driven by this server; nothing to pause",
                run.status
            ),
        ));
    }
    detail(&state, &caller, id).await.map(Json)
}

/// Continues a paused, waiting or interrupted run on this server, with new spending
/// limits if given.
#[utoipa::path(post, path = "/api/runs/{id}/resume", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    request_body(content = Option<ResumeRun>, description = "optional"),
    responses(
        (status = 202, description = "resuming", body = RunDetail),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "finished, or already running here", body = ErrorBody),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    OptionalJsonBody(body): OptionalJsonBody<ResumeRun>,
) -> Result<impl IntoResponse, ApiError> {
    let id: RunId = path.get("id")?;
    if let Some(budget) = &body.budget {
        let mut problems = Vec::new();
        check_budget(&mut problems, "budget", budget);
        if !problems.is_empty() {
            return Err(ApiError::validation(problems));
        }
    }
    let run = state.store.get_run_in(&caller.tenant, id).await?;
    if state.drives.is_driven(id) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("run {id} is already running on this server"),
        ));
    }
    if run.status.is_terminal() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("run {id} is {}; it cannot be resumed", run.status),
        ));
    }
    if let Some(budget) = body.budget {
        state.runtime.set_budget(id, budget).await?;
    }
    if state.drives.spawn(id, Start::Resume).is_err() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("run {id} is already running on this server"),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(detail(&state, &caller, id).await?),
    ))
}

/// Answers what a waiting run asks (an agent's question, or a decision such as running a
/// repository's setup) and continues the run on this server.
#[utoipa::path(post, path = "/api/runs/{id}/answer", tag = "runs", request_body = AnswerRun,
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    responses(
        (status = 202, description = "answered; the run goes on", body = RunDetail),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "finished, or already running here", body = ErrorBody),
        (status = 422, description = "it asks nothing, or the answer is not one of the options", body = ErrorBody),
    ))]
pub async fn answer(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    JsonBody(body): JsonBody<AnswerRun>,
) -> Result<impl IntoResponse, ApiError> {
    let id: RunId = path.get("id")?;
    state.store.get_run_in(&caller.tenant, id).await?;
    if state.drives.is_driven(id) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("run {id} is already running on this server"),
        ));
    }
    let by = body.by.as_deref().unwrap_or("api");
    state.runtime.answer(id, body.answer.trim(), by).await?;
    if state.drives.spawn(id, Start::Resume).is_err() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("run {id} is already running on this server"),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(detail(&state, &caller, id).await?),
    ))
}

/// Cancels a run for good (pausing it first if this server drives it).
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    request_body(content = Option<CancelRun>, description = "optional"),
    responses(
        (status = 200, description = "cancelled", body = RunDetail),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "already finished, or driven elsewhere", body = ErrorBody),
        (status = 422, description = "a value is not acceptable", body = ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    OptionalJsonBody(body): OptionalJsonBody<CancelRun>,
) -> Result<Json<RunDetail>, ApiError> {
    let id: RunId = path.get("id")?;
    let reason = body
        .reason
        .unwrap_or_else(|| "cancelled through the API".into());
    if reason.len() > 4_096 {
        return Err(ApiError::validation(vec![FieldError {
            path: "reason".into(),
            message: "must be at most 4,096 bytes".into(),
        }]));
    }
    // 404 before anything changes.
    state.store.get_run_in(&caller.tenant, id).await?;
    state.drives.pause(id).await;
    state.runtime.cancel(id, &reason).await?;
    detail(&state, &caller, id).await.map(Json)
}

/// Deletes a finished run with everything of it (events, steps, attempts, artifacts, LLM
/// calls), in one transaction. A run that is not finished (pending, running, paused,
/// waiting) is refused: cancel it first.
#[utoipa::path(delete, path = "/api/runs/{id}", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    responses(
        (status = 200, description = "deleted; the run as it was", body = RunView),
        (status = 400, description = "not an id", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "the run is not finished; cancel it first", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<RunView>, ApiError> {
    let id: RunId = path.get("id")?;
    let run = state.store.get_run_in(&caller.tenant, id).await?;
    if state.drives.is_driven(id) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "run {id} is driven by this server; cancel it first, or wait until it has stopped"
            ),
        ));
    }
    state.store.delete_run_in(&caller.tenant, id).await?;
    Ok(Json(run.into()))
}
