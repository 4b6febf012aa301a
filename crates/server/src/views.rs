//! What the API answers with: JSON views of the store's records, described for the OpenAPI
//! document. The API's shapes are said here, so a change of the store's records does not
//! silently change the wire.

use botarmy_protocol::{ArtifactId, ProjectId, RunId, RunStatus, StepStatus, UnixMillis, Usage};
use botarmy_store::{
    ArtifactRecord, AttemptRecord, ProjectRecord, RunSummary, StepRecord, UsageRow,
};
use serde::Serialize;
use utoipa::ToSchema;

/// Tokens and money.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageView {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from a provider's cache.
    pub cached_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// LLM calls summed.
    pub calls: u64,
}

impl From<Usage> for UsageView {
    fn from(u: Usage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_tokens: u.cached_tokens,
            cost_usd: u.cost_usd,
            calls: u.calls,
        }
    }
}

/// A project; runs belong to one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectView {
    /// Id (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub id: ProjectId,
    /// Unique name.
    pub name: String,
    /// `active` or `archived`.
    pub status: String,
    /// Creation time, Unix milliseconds.
    pub created_at: UnixMillis,
}

impl From<ProjectRecord> for ProjectView {
    fn from(p: ProjectRecord) -> Self {
        Self {
            id: p.id,
            name: p.name,
            status: p.status,
            created_at: p.created_at,
        }
    }
}

/// A deleted project and the runs deleted with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedProjectView {
    /// The project as it was.
    pub project: ProjectView,
    /// Its runs, deleted with their events, steps, artifacts and LLM calls.
    #[schema(value_type = Vec<String>)]
    pub deleted_runs: Vec<RunId>,
}

/// A page of projects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectPage {
    /// Newest first.
    pub items: Vec<ProjectView>,
    /// The `offset` of the next page, if there is one.
    pub next_offset: Option<u64>,
}

/// One run, as lists show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    /// Id (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub id: RunId,
    /// The project.
    #[schema(value_type = String, format = Uuid)]
    pub project_id: ProjectId,
    /// Workflow id.
    pub workflow: String,
    /// The idea, as given.
    pub idea: String,
    /// `pending`, `running`, `paused`, `waiting`, `succeeded`, `failed` or `cancelled`.
    #[schema(value_type = String, example = "running")]
    pub status: RunStatus,
    /// Creation time, Unix milliseconds.
    pub created_at: UnixMillis,
    /// When execution began.
    pub started_at: Option<UnixMillis>,
    /// When it reached a final state.
    pub finished_at: Option<UnixMillis>,
    /// Sequence number of the last event of its log (subscribe with `since` up to this).
    pub last_seq: u64,
    /// Totals of its LLM calls.
    pub usage: UsageView,
    /// The failure, for failed and cancelled runs.
    pub error: Option<String>,
}

impl From<RunSummary> for RunView {
    fn from(r: RunSummary) -> Self {
        Self {
            id: r.id,
            project_id: r.project_id,
            workflow: r.workflow,
            idea: r.idea,
            status: r.status,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            last_seq: r.last_seq,
            usage: r.usage.into(),
            error: r.error,
        }
    }
}

/// A page of runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    /// Newest first.
    pub items: Vec<RunView>,
    /// The `offset` of the next page, if there may be one.
    pub next_offset: Option<u64>,
}

/// One attempt of a step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    /// Attempt number, from 1.
    pub attempt: u32,
    /// `running`, `succeeded`, `failed` or `interrupted`.
    pub status: String,
    /// Start, Unix milliseconds.
    pub started_at: UnixMillis,
    /// End.
    pub finished_at: Option<UnixMillis>,
    /// Tokens and cost.
    pub usage: UsageView,
    /// Failure message.
    pub error: Option<String>,
}

impl From<AttemptRecord> for AttemptView {
    fn from(a: AttemptRecord) -> Self {
        Self {
            attempt: a.attempt,
            status: a.status,
            started_at: a.started_at,
            finished_at: a.finished_at,
            usage: a.usage.into(),
            error: a.error,
        }
    }
}

/// One step of a run with its attempts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    /// Index in the plan.
    pub step: u32,
    /// Stable key within the plan.
    pub key: String,
    /// Title.
    pub title: String,
    /// Phase, if the workflow names phases.
    pub phase: Option<String>,
    /// Agent executing it.
    pub agent: String,
    /// `pending`, `running`, `interrupted`, `succeeded`, `failed` or `skipped`.
    #[schema(value_type = String, example = "succeeded")]
    pub status: StepStatus,
    /// Latest attempt number (0: never started).
    pub attempt: u32,
    /// Start of the latest attempt.
    pub started_at: Option<UnixMillis>,
    /// End of the latest attempt.
    pub finished_at: Option<UnixMillis>,
    /// Totals over all attempts.
    pub usage: UsageView,
    /// Last failure message.
    pub error: Option<String>,
    /// Every attempt, in order.
    pub attempts: Vec<AttemptView>,
    /// For a running step that waits for one of the process's shared slots: which
    /// (`step`, `llm_call` or `tool_process`).
    pub queued: Option<String>,
}

impl StepView {
    fn new(s: StepRecord, attempts: Vec<AttemptView>) -> Self {
        Self {
            step: s.step,
            key: s.key,
            title: s.title,
            phase: s.phase,
            agent: s.agent,
            status: s.status,
            attempt: s.attempt,
            started_at: s.started_at,
            finished_at: s.finished_at,
            usage: s.usage.into(),
            error: s.error,
            attempts,
            queued: None,
        }
    }
}

/// A phase of the lifecycle and the steps in it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PhaseView {
    /// The phase's name (`discovery`, `plan`, ...); empty for steps without a phase.
    pub name: String,
    /// Indices of its steps, in plan order.
    pub steps: Vec<u32>,
    /// When its first attempt started (Unix milliseconds).
    pub started_at: Option<i64>,
    /// When its last attempt ended, once none is running.
    pub finished_at: Option<i64>,
    /// Milliseconds some attempt of the phase was running (steps side by side count once,
    /// waits at a gate not at all).
    pub busy_ms: u64,
    /// Attempts made by its steps.
    pub attempts: u32,
    /// Tokens and cost of its steps.
    pub usage: UsageView,
}

/// A run with its phases, steps and attempts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: RunView,
    /// Whether this server process drives it now (it can be paused here).
    pub driven_here: bool,
    /// Phases in plan order.
    pub phases: Vec<PhaseView>,
    /// Steps in plan order.
    pub steps: Vec<StepView>,
}

impl RunDetail {
    /// Puts a run's records together.
    pub fn new(
        run: RunSummary,
        steps: Vec<StepRecord>,
        attempts: Vec<AttemptRecord>,
        driven_here: bool,
    ) -> Self {
        let phases = botarmy_store::phase_times(&steps, &attempts, botarmy_protocol::now_millis())
            .into_iter()
            .map(|p| PhaseView {
                name: p.phase,
                steps: p.steps,
                started_at: p.started_at,
                finished_at: p.finished_at,
                busy_ms: p.busy_ms,
                attempts: p.attempts,
                usage: p.usage.into(),
            })
            .collect();
        let mut views = Vec::with_capacity(steps.len());
        for step in steps {
            let mut own: Vec<AttemptView> = attempts
                .iter()
                .filter(|a| a.step == step.step)
                .cloned()
                .map(AttemptView::from)
                .collect();
            own.sort_by_key(|a| a.attempt);
            views.push(StepView::new(step, own));
        }
        Self {
            run: run.into(),
            driven_here,
            phases,
            steps: views,
        }
    }
}

/// A stored artifact version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArtifactView {
    /// Id of this version (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub id: ArtifactId,
    /// Logical name (`prd.md`, `code/src/main.rs`); versions share it.
    pub name: String,
    /// `document` or `code`.
    pub kind: String,
    /// Version, from 1.
    pub version: u32,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Length in bytes.
    pub bytes: u64,
    /// The run.
    #[schema(value_type = String, format = Uuid)]
    pub run_id: RunId,
    /// The step that made it.
    pub step: u32,
    /// When stored, Unix milliseconds.
    pub created_at: UnixMillis,
}

impl From<ArtifactRecord> for ArtifactView {
    fn from(a: ArtifactRecord) -> Self {
        Self {
            id: a.artifact.id,
            name: a.artifact.name,
            kind: a.artifact.kind.as_str().to_owned(),
            version: a.artifact.version,
            sha256: a.artifact.sha256,
            bytes: a.artifact.bytes,
            run_id: a.run_id,
            step: a.step,
            created_at: a.created_at,
        }
    }
}

/// A run's artifacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactList {
    /// Every version, in creation order.
    pub items: Vec<ArtifactView>,
}

/// A page of a run's event log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Events after `since`, in order. Each has `run_id`, `seq`, `at`, and its `type`
    /// (`pipeline_created`, `step_started`, ...) beside the event's own fields.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<botarmy_protocol::EventRecord>,
    /// The `since` that reads the next page.
    pub next_since: u64,
    /// The last sequence number of the log when it was read.
    pub last_seq: u64,
    /// Whether the log holds events after this page.
    pub has_more: bool,
}

/// Tokens and cost of one (phase, agent, provider, model).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageRowView {
    /// Phase, if any.
    pub phase: Option<String>,
    /// Agent.
    pub agent: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Calls recorded, completed and failed.
    pub calls: u64,
    /// Of those, the failed ones.
    pub failed_calls: u64,
    /// Sums over the completed calls.
    pub usage: UsageView,
}

impl From<UsageRow> for UsageRowView {
    fn from(r: UsageRow) -> Self {
        Self {
            phase: r.phase,
            agent: r.agent,
            provider: r.provider,
            model: r.model,
            calls: r.calls,
            failed_calls: r.failed_calls,
            usage: r.usage.into(),
        }
    }
}

/// Where a run's tokens and money went.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunUsage {
    /// The run.
    #[schema(value_type = String, format = Uuid)]
    pub run_id: RunId,
    /// The run's totals.
    pub total: UsageView,
    /// Per (phase, agent, provider, model), in plan order.
    pub rows: Vec<UsageRowView>,
}

/// The server's name and version.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// `botarmy`.
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
}

/// A health or readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `ok` or `ready`.
    pub status: &'static str,
}
