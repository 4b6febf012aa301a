//! Gates over REST: what waits for approval across runs, a run's gates, approving,
//! rejecting with feedback, and restarting a step. Each decision is appended to the run's
//! log with who took it, and the run continues on this server.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use botarmy_core::engine::RunState;
use botarmy_protocol::{RunId, RunStatus};
use botarmy_store::RunFilter;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::drives::Start;
use crate::error::{ApiError, ErrorBody, ErrorCode, FieldError};
use crate::input::{JsonBody, OptionalJsonBody, PathIds};
use crate::runs::detail;
use crate::views::RunDetail;

/// What waits for a human across runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    /// One per waiting gate, question, conflict or decision.
    pub items: Vec<PendingApproval>,
}

/// What waits for a human: a gate's approval, an agent's question, a conflict mediation
/// did not settle, or a decision of the run.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingApproval {
    /// The run.
    #[schema(value_type = String)]
    pub run_id: RunId,
    /// The run's idea.
    pub idea: String,
    /// `approval`, `clarification`, `conflict`, or the kind of decision
    /// (`worktree_setup`).
    pub kind: String,
    /// The question (a conflict's has both positions side by side and the best proposal).
    pub question: String,
    /// The accepted answers (empty: any text).
    pub options: Vec<String>,
    /// The step that asks, for a question or a conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// For an approval, the gate: key, title, steps, policy, verdict, what it waits for
    /// (question, reasons, confidence, quality), last decision. Answered with `approve`,
    /// `reject` or `amend`; the others with `answer`.
    #[schema(value_type = Object)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<serde_json::Value>,
}

/// A run's gates.
#[derive(Debug, Serialize, ToSchema)]
pub struct GateList {
    /// Every gate of the run's plan, in plan order.
    #[schema(value_type = Vec<Object>)]
    pub gates: Vec<serde_json::Value>,
}

/// Approving what a gate waits for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRun {
    /// The step whose gate to approve (index, key, or key without its phase); default: the
    /// gate that waits.
    #[serde(default)]
    pub step: Option<String>,
    /// Who approves (recorded); default "api".
    #[serde(default)]
    pub by: Option<String>,
}

/// Sending outputs back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRun {
    /// What should change; the restarted steps see it in their prompt.
    pub feedback: String,
    /// The step to send back; default: every step of the gate that waits. Without a
    /// waiting gate, a finished step to send back.
    #[serde(default)]
    pub step: Option<String>,
    /// Who rejects (recorded); default "api".
    #[serde(default)]
    pub by: Option<String>,
}

/// A human's edit of a document a gate waits on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendRun {
    /// The whole edited document; stored as its next version and approved.
    pub content: String,
    /// The step whose document it is; needed when the gate covers several.
    #[serde(default)]
    pub step: Option<String>,
    /// Who amends (recorded); default "api".
    #[serde(default)]
    pub by: Option<String>,
}

/// Restarting one step.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartStep {
    /// Feedback for the step's next attempt (optional).
    #[serde(default)]
    pub feedback: Option<String>,
    /// Who restarts it (recorded); default "api".
    #[serde(default)]
    pub by: Option<String>,
}

/// Lists what waits for a human across the caller's runs: gates' approvals, agents'
/// questions, conflicts mediation did not settle, decisions.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals",
    responses((status = 200, description = "what waits for a human", body = ApprovalList)))]
pub async fn pending(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ApprovalList>, ApiError> {
    let waiting = state
        .store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Waiting),
            tenant: Some(caller.tenant.clone()),
            ..RunFilter::default()
        })
        .await?;
    let mut items = Vec::new();
    for run in waiting {
        let run_state = state.runtime.load(run.id).await?;
        if let Some(q) = run_state.question().filter(|q| q.gate.is_none()) {
            items.push(PendingApproval {
                run_id: run.id,
                idea: run.idea.clone(),
                kind: q.kind.to_owned(),
                question: q.question.to_owned(),
                options: q.options.to_vec(),
                step: q.asker.map(|a| a.step),
                gate: None,
            });
        }
        for view in run_state.gate_views() {
            if let Some(waiting) = &view.waiting {
                items.push(PendingApproval {
                    run_id: run.id,
                    idea: run.idea.clone(),
                    kind: "approval".to_owned(),
                    question: waiting.question.clone(),
                    options: Vec::new(),
                    step: None,
                    gate: Some(serde_json::to_value(&view).unwrap_or_default()),
                });
            }
        }
    }
    Ok(Json(ApprovalList { items }))
}

/// A run's gates: policies, verdicts, what they wait for, decisions.
#[utoipa::path(get, path = "/api/runs/{id}/gates", tag = "approvals",
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    responses(
        (status = 200, description = "the run's gates", body = GateList),
        (status = 404, description = "no such run", body = ErrorBody),
    ))]
pub async fn gates(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
) -> Result<Json<GateList>, ApiError> {
    let id: RunId = path.get("id")?;
    state.store.get_run_in(&caller.tenant, id).await?;
    let run = state.runtime.load(id).await?;
    Ok(Json(GateList {
        gates: run
            .gate_views()
            .iter()
            .map(|g| serde_json::to_value(g).unwrap_or_default())
            .collect(),
    }))
}

/// The step a body names, or a 422 naming the field.
fn step_of(run: &RunState, name: Option<&str>, field: &str) -> Result<Option<u32>, ApiError> {
    let Some(name) = name else { return Ok(None) };
    run.find_step(name).map(Some).ok_or_else(|| {
        let keys: Vec<&str> = run
            .plan
            .iter()
            .flat_map(|p| p.steps.iter().map(|s| s.key.as_str()))
            .collect();
        ApiError::validation(vec![FieldError {
            path: field.into(),
            message: format!("no step `{name}`; the run's steps: {}", keys.join(", ")),
        }])
    })
}

/// Refuses a run this server drives now (it would be written by two writers).
fn not_driven(state: &AppState, id: RunId) -> Result<(), ApiError> {
    if state.drives.is_driven(id) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("run {id} is running on this server; it is not waiting for a decision"),
        ));
    }
    Ok(())
}

/// The step a body names, of a run (already found to be the caller's) that this server
/// does not drive now.
async fn decidable(
    state: &AppState,
    id: RunId,
    step: Option<&str>,
) -> Result<Option<u32>, ApiError> {
    not_driven(state, id)?;
    let run = state.runtime.load(id).await?;
    step_of(&run, step, "step")
}

/// Continues the run on this server after a decision.
async fn continue_run(
    state: &AppState,
    caller: &Caller,
    id: RunId,
) -> Result<impl IntoResponse + use<>, ApiError> {
    if state.drives.spawn(id, Start::Resume).is_err() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("run {id} is already running on this server"),
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(detail(state, caller, id).await?)))
}

/// Approves what a gate of the run waits for, and continues the run.
#[utoipa::path(post, path = "/api/runs/{id}/approve", tag = "approvals",
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    request_body(content = Option<ApproveRun>, description = "optional"),
    responses(
        (status = 202, description = "approved; the run goes on", body = RunDetail),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "finished, or running on this server", body = ErrorBody),
        (status = 422, description = "nothing waits for approval, or no such step", body = ErrorBody),
    ))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    OptionalJsonBody(body): OptionalJsonBody<ApproveRun>,
) -> Result<impl IntoResponse, ApiError> {
    let id: RunId = path.get("id")?;
    state.store.get_run_in(&caller.tenant, id).await?;
    let step = decidable(&state, id, body.step.as_deref()).await?;
    let by = body.by.as_deref().unwrap_or("api");
    state.runtime.approve(id, step, by).await?;
    continue_run(&state, &caller, id).await
}

/// Approves what a gate waits for with an edited document: the edit becomes the
/// document's next version (`artifact_created`), the decision `amended`; the run continues.
#[utoipa::path(post, path = "/api/runs/{id}/amend", tag = "approvals", request_body = AmendRun,
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    responses(
        (status = 202, description = "amended and approved; the run goes on", body = RunDetail),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "finished, or running on this server", body = ErrorBody),
        (status = 422, description = "empty content, nothing waits, or the step is ambiguous", body = ErrorBody),
    ))]
pub async fn amend(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    JsonBody(body): JsonBody<AmendRun>,
) -> Result<impl IntoResponse, ApiError> {
    let id: RunId = path.get("id")?;
    state.store.get_run_in(&caller.tenant, id).await?;
    if body.content.trim().is_empty() {
        return Err(ApiError::validation(vec![FieldError {
            path: "content".into(),
            message: "the amended document is empty".into(),
        }]));
    }
    let step = decidable(&state, id, body.step.as_deref()).await?;
    let by = body.by.as_deref().unwrap_or("api");
    state.runtime.amend(id, step, &body.content, by).await?;
    continue_run(&state, &caller, id).await
}

/// Sends a gate's outputs (or a finished step) back with feedback: the steps restart with
/// it in their prompt, their dependants after them; the run continues.
#[utoipa::path(post, path = "/api/runs/{id}/reject", tag = "approvals", request_body = RejectRun,
    params(("id" = uuid::Uuid, Path, description = "run id (UUID)")),
    responses(
        (status = 202, description = "sent back; the run goes on", body = RunDetail),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "finished, or running on this server", body = ErrorBody),
        (status = 422, description = "empty feedback, nothing to send back, or no such step", body = ErrorBody),
    ))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    JsonBody(body): JsonBody<RejectRun>,
) -> Result<impl IntoResponse, ApiError> {
    let id: RunId = path.get("id")?;
    state.store.get_run_in(&caller.tenant, id).await?;
    if body.feedback.trim().is_empty() {
        return Err(ApiError::validation(vec![FieldError {
            path: "feedback".into(),
            message: "must say what should change".into(),
        }]));
    }
    let step = decidable(&state, id, body.step.as_deref()).await?;
    let by = body.by.as_deref().unwrap_or("api");
    state
        .runtime
        .reject(id, step, body.feedback.trim(), by)
        .await?;
    continue_run(&state, &caller, id).await
}

/// Runs one step again (with feedback, if given), and the steps that depend on it.
#[utoipa::path(post, path = "/api/runs/{id}/steps/{step}/restart", tag = "approvals",
    params(
        ("id" = uuid::Uuid, Path, description = "run id (UUID)"),
        ("step" = String, Path, description = "step index, key, or key without its phase"),
    ),
    request_body(content = Option<RestartStep>, description = "optional"),
    responses(
        (status = 202, description = "restarted; the run goes on", body = RunDetail),
        (status = 404, description = "no such run or step", body = ErrorBody),
        (status = 409, description = "finished, or running on this server", body = ErrorBody),
        (status = 422, description = "the step cannot restart now", body = ErrorBody),
    ))]
pub async fn restart(
    State(state): State<AppState>,
    caller: Caller,
    path: PathIds,
    OptionalJsonBody(body): OptionalJsonBody<RestartStep>,
) -> Result<impl IntoResponse, ApiError> {
    let id: RunId = path.get("id")?;
    let name = path.text("step").to_owned();
    state.store.get_run_in(&caller.tenant, id).await?;
    not_driven(&state, id)?;
    let run = state.runtime.load(id).await?;
    let Some(step) = run.find_step(&name) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("run {id} has no step `{name}`"),
        ));
    };
    let by = body.by.as_deref().unwrap_or("api");
    match body.feedback.as_deref().map(str::trim) {
        Some(feedback) if !feedback.is_empty() => {
            state.runtime.reject(id, Some(step), feedback, by).await?;
        }
        _ => {
            state.runtime.restart(id, step, by).await?;
        }
    }
    continue_run(&state, &caller, id).await
}
