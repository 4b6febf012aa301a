use serde::{Deserialize, Serialize};

use crate::{ArtifactRef, Plan, ProjectId, RunId, RunRequest, UnixMillis, Usage};

/// A classification of failures that tells the engine and the user what can be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// May succeed if tried again (timeouts, rate limits, overloaded servers).
    Transient,
    /// Will fail again the same way (bad request, missing template variable).
    Fatal,
    /// Input given by a user or a definition file is wrong.
    InvalidInput,
    /// A configured limit (tokens, money, turns) would be exceeded.
    Budget,
    /// The run was interrupted or cancelled.
    Cancelled,
    /// The step waits for a human's answer (a clarification); it goes on once given.
    NeedsInput,
}

/// A failure as it is stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A message for humans; never contains secrets.
    pub message: String,
}

impl ErrorInfo {
    /// A new error description.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether trying the same thing again may succeed.
    pub fn retryable(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// One durable entry of a run's event log. The names are the ones clients subscribe to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The run exists, with its request and its resolved plan. Always sequence number 1.
    PipelineCreated {
        /// The project the run belongs to.
        project_id: ProjectId,
        /// What was asked.
        request: RunRequest,
        /// The steps it will take.
        plan: Plan,
    },
    /// Execution began.
    PipelineStarted {
        /// Lifecycle type of the workflow.
        cycle_type: String,
        /// Workflow id.
        workflow: String,
    },
    /// An attempt of a step began.
    StepStarted {
        /// Step index in the plan.
        step: u32,
        /// Attempt number, from 1.
        attempt: u32,
        /// The agent executing it.
        agent: String,
    },
    /// An LLM call finished; its result is recorded here and never requested again.
    LlmCallCompleted {
        /// Step index.
        step: u32,
        /// Attempt number.
        attempt: u32,
        /// Call number within the attempt, from 0.
        call: u32,
        /// Provider that answered.
        provider: String,
        /// Model that answered.
        model: String,
        /// Digest of the request, to detect a changed prompt on replay.
        request_hash: String,
        /// The full response text.
        response: String,
        /// Tools the model asked to call, in order (none: the response is final).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<crate::ToolCall>,
        /// Tokens and cost.
        usage: Usage,
        /// Wall time of the call.
        latency_ms: u64,
    },
    /// An LLM call failed.
    LlmCallFailed {
        /// Step index.
        step: u32,
        /// Attempt number.
        attempt: u32,
        /// Call number within the attempt.
        call: u32,
        /// Provider that was asked.
        provider: String,
        /// Model that was asked.
        model: String,
        /// Why it failed.
        error: ErrorInfo,
        /// Wall time until the failure.
        latency_ms: u64,
    },
    /// A running attempt waits for one of the process's shared slots (steps, LLM calls,
    /// tool processes) because others hold them all; it goes on when one frees up.
    StepQueued {
        /// Step index.
        step: u32,
        /// Attempt number.
        attempt: u32,
        /// What it waits for: `step`, `llm_call` or `tool_process`.
        resource: String,
    },
    /// An agent asked a human a question (`request_clarification`); the step pauses and the
    /// run waits for the answer.
    ClarificationRequested {
        /// Step index.
        step: u32,
        /// Attempt number.
        attempt: u32,
        /// The tool call that asked, within the attempt.
        call: u32,
        /// The question.
        question: String,
        /// The accepted answers (empty: any text).
        options: Vec<String>,
    },
    /// A human answered a clarification; the step continues with the answer.
    ClarificationAnswered {
        /// Step index.
        step: u32,
        /// The tool call that asked.
        call: u32,
        /// The answer.
        answer: String,
        /// Who answered.
        by: String,
    },
    /// A tool call of an attempt began.
    ToolCallStarted {
        /// Step index.
        step: u32,
        /// Attempt number.
        attempt: u32,
        /// Tool call number within the attempt, from 0.
        call: u32,
        /// The model's id for the call.
        id: String,
        /// The tool.
        tool: String,
        /// Its arguments.
        arguments: serde_json::Value,
    },
    /// A tool call finished; its result is recorded here and the call is never made again.
    ToolCallCompleted {
        /// Step index.
        step: u32,
        /// Attempt number.
        attempt: u32,
        /// Tool call number within the attempt.
        call: u32,
        /// The model's id for the call.
        id: String,
        /// The tool.
        tool: String,
        /// Whether the tool reported a failure (the model was shown it).
        is_error: bool,
        /// One line saying what happened.
        summary: String,
        /// What the model was shown.
        result: String,
        /// Wall time of the call.
        duration_ms: u64,
    },
    /// A tool call changed a file of the run's worktree.
    FileChanged {
        /// Step index.
        step: u32,
        /// The repository (worktree) the file belongs to.
        repository: String,
        /// Path relative to the worktree.
        path: String,
        /// What happened to it.
        change: crate::FileChangeKind,
    },
    /// The run's worktrees are being made.
    WorktreeSessionCreating {
        /// The repositories, by name.
        repositories: Vec<String>,
    },
    /// A worktree of one repository exists, on the run's branch.
    WorktreeRepoCreated {
        /// The worktree.
        worktree: WorktreeInfo,
    },
    /// A repository's setup command began (after a human confirmed it).
    WorktreeSetupStarted {
        /// The repository.
        repository: String,
        /// The command line.
        command: String,
    },
    /// A repository's setup command ended.
    WorktreeSetupCompleted {
        /// The repository.
        repository: String,
        /// The command line.
        command: String,
        /// Its exit code (none: killed or timed out).
        exit_code: Option<i32>,
        /// The end of its output.
        output: String,
    },
    /// Every worktree of the run is ready for its steps.
    WorktreeSessionReady {
        /// The worktrees.
        worktrees: Vec<WorktreeInfo>,
    },
    /// The run needs a human decision before it can go on; the run waits.
    PipelineNeedsInput {
        /// What is to be decided (`worktree_setup`, ...).
        kind: String,
        /// The question, for people.
        question: String,
        /// The accepted answers.
        options: Vec<String>,
    },
    /// A human gave the decision the run waited for.
    InputProvided {
        /// What was decided (as in `PipelineNeedsInput`).
        kind: String,
        /// The answer, one of the options.
        answer: String,
    },
    /// The run's worktrees were removed (their branches stay, with the run's commits).
    WorktreeSessionCleaned {
        /// Worktree folders removed.
        removed: Vec<String>,
    },
    /// A step stored a new artifact version.
    ArtifactCreated {
        /// Step index.
        step: u32,
        /// The stored version.
        artifact: ArtifactRef,
    },
    /// An attempt of a step finished with its outputs.
    StepCompleted {
        /// Step index.
        step: u32,
        /// Attempt number.
        attempt: u32,
        /// Tokens and cost of the attempt.
        usage: Usage,
        /// Wall time of the attempt.
        duration_ms: u64,
        /// The scores of its outputs (confidence, quality), which its gate reads.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assessment: Option<crate::Assessment>,
    },
    /// An attempt of a step failed.
    StepFailed {
        /// Step index.
        step: u32,
        /// Attempt number.
        attempt: u32,
        /// Why.
        error: ErrorInfo,
    },
    /// A step will not be executed.
    StepSkipped {
        /// Step index.
        step: u32,
        /// Why.
        reason: String,
    },
    /// A running attempt was cut off (the process stopped); it is executed again on resume
    /// and reuses the LLM calls it had already completed.
    StepInterrupted {
        /// Step index.
        step: u32,
        /// The attempt that was cut off.
        attempt: u32,
    },
    /// A finished step is executed again (feedback, manual restart); dependants are reset.
    StepRestarted {
        /// Step index.
        step: u32,
        /// Why.
        reason: String,
        /// A human's feedback, put into the prompt of the step's next attempt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feedback: Option<String>,
        /// Who asked for it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A gate tripped: a human must approve the outputs of its steps; the run waits.
    HitlRequested {
        /// The gate, by index in the plan's gates.
        gate: u32,
        /// What is asked (`approval`).
        kind: String,
        /// The gate's title.
        title: String,
        /// The steps whose outputs are to be approved.
        steps: Vec<u32>,
        /// Why the gate asks.
        reasons: Vec<String>,
        /// The lowest confidence among the steps, if every step gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confidence: Option<f64>,
        /// The lowest quality among the steps, if every step was measured.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quality: Option<f64>,
    },
    /// An approval waited longer than its gate allows; `action` says what follows (a
    /// reminder, an escalation, an approval in the human's stead, or the run failing).
    HitlTimedOut {
        /// The gate.
        gate: u32,
        /// What the gate's timeout policy does.
        action: crate::TimeoutAction,
        /// How long it had waited, in seconds.
        waited_secs: u64,
    },
    /// A human (or `--yes`) decided at a gate.
    HitlResolved {
        /// The gate.
        gate: u32,
        /// Approved or rejected.
        decision: crate::HitlDecision,
        /// The feedback given with a rejection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feedback: Option<String>,
        /// Who decided.
        by: String,
    },
    /// A conflict check found documents of the run that contradict each other.
    ConflictDetected {
        /// The conflict check's step.
        step: u32,
        /// Attempt number of the check.
        attempt: u32,
        /// Number of the conflict within the check, from 0.
        conflict: u32,
        /// The conflict.
        #[serde(flatten)]
        detail: crate::Conflict,
    },
    /// A round of mediation proposed a resolution and the agents involved scored it.
    ConflictMediated {
        /// The conflict check's step.
        step: u32,
        /// Number of the conflict within the check.
        conflict: u32,
        /// The round, from 1.
        round: u32,
        /// The proposal and its score.
        #[serde(flatten)]
        outcome: crate::MediationRound,
    },
    /// Mediation did not settle a conflict: a human must; the step pauses and the run waits.
    ConflictEscalated {
        /// The conflict check's step.
        step: u32,
        /// Number of the conflict within the check.
        conflict: u32,
        /// What the human is asked, with both positions and the best proposal.
        question: String,
    },
    /// A conflict is settled, by mediation or by a human.
    ConflictResolved {
        /// The conflict check's step.
        step: u32,
        /// Number of the conflict within the check.
        conflict: u32,
        /// How.
        #[serde(flatten)]
        resolution: crate::ConflictResolution,
    },
    /// A user paused the run.
    PipelinePaused {
        /// Why.
        reason: String,
    },
    /// The run continues after a pause, a wait or an interruption.
    PipelineResumed {},
    /// The run's spending limits were changed (raised to let a waiting run go on).
    BudgetChanged {
        /// The new limits, replacing the old ones whole.
        budget: crate::Budget,
    },
    /// The run waits for something outside.
    PipelineWaiting {
        /// What it waits for.
        reason: String,
    },
    /// Every required step finished.
    PipelineCompleted {
        /// Totals of the run.
        usage: Usage,
        /// Wall time from start to finish.
        duration_ms: u64,
    },
    /// The run failed.
    PipelineFailed {
        /// Why.
        error: ErrorInfo,
        /// The step that failed, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u32>,
    },
    /// A user cancelled the run.
    PipelineCancelled {
        /// Why.
        reason: String,
    },
}

impl Event {
    /// The wire name of the event (`step_started`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::PipelineCreated { .. } => "pipeline_created",
            Self::PipelineStarted { .. } => "pipeline_started",
            Self::StepStarted { .. } => "step_started",
            Self::LlmCallCompleted { .. } => "llm_call_completed",
            Self::LlmCallFailed { .. } => "llm_call_failed",
            Self::StepQueued { .. } => "step_queued",
            Self::ClarificationRequested { .. } => "clarification_requested",
            Self::ClarificationAnswered { .. } => "clarification_answered",
            Self::ToolCallStarted { .. } => "tool_call_started",
            Self::ToolCallCompleted { .. } => "tool_call_completed",
            Self::FileChanged { .. } => "file_changed",
            Self::WorktreeSessionCreating { .. } => "worktree_session_creating",
            Self::WorktreeRepoCreated { .. } => "worktree_repo_created",
            Self::WorktreeSetupStarted { .. } => "worktree_setup_started",
            Self::WorktreeSetupCompleted { .. } => "worktree_setup_completed",
            Self::WorktreeSessionReady { .. } => "worktree_session_ready",
            Self::PipelineNeedsInput { .. } => "pipeline_needs_input",
            Self::InputProvided { .. } => "input_provided",
            Self::WorktreeSessionCleaned { .. } => "worktree_session_cleaned",
            Self::ArtifactCreated { .. } => "artifact_created",
            Self::StepCompleted { .. } => "step_completed",
            Self::StepFailed { .. } => "step_failed",
            Self::StepSkipped { .. } => "step_skipped",
            Self::StepInterrupted { .. } => "step_interrupted",
            Self::StepRestarted { .. } => "step_restarted",
            Self::HitlRequested { .. } => "hitl_requested",
            Self::HitlResolved { .. } => "hitl_resolved",
            Self::HitlTimedOut { .. } => "hitl_timed_out",
            Self::ConflictDetected { .. } => "conflict_detected",
            Self::ConflictMediated { .. } => "conflict_mediated",
            Self::ConflictEscalated { .. } => "conflict_escalated",
            Self::ConflictResolved { .. } => "conflict_resolved",
            Self::PipelinePaused { .. } => "pipeline_paused",
            Self::PipelineResumed {} => "pipeline_resumed",
            Self::BudgetChanged { .. } => "budget_changed",
            Self::PipelineWaiting { .. } => "pipeline_waiting",
            Self::PipelineCompleted { .. } => "pipeline_completed",
            Self::PipelineFailed { .. } => "pipeline_failed",
            Self::PipelineCancelled { .. } => "pipeline_cancelled",
        }
    }

    /// The step the event is about, if any.
    pub fn step(&self) -> Option<u32> {
        match self {
            Self::StepStarted { step, .. }
            | Self::LlmCallCompleted { step, .. }
            | Self::LlmCallFailed { step, .. }
            | Self::StepQueued { step, .. }
            | Self::ClarificationRequested { step, .. }
            | Self::ClarificationAnswered { step, .. }
            | Self::ToolCallStarted { step, .. }
            | Self::ToolCallCompleted { step, .. }
            | Self::FileChanged { step, .. }
            | Self::ArtifactCreated { step, .. }
            | Self::StepCompleted { step, .. }
            | Self::StepFailed { step, .. }
            | Self::StepSkipped { step, .. }
            | Self::StepInterrupted { step, .. }
            | Self::StepRestarted { step, .. }
            | Self::ConflictDetected { step, .. }
            | Self::ConflictMediated { step, .. }
            | Self::ConflictEscalated { step, .. }
            | Self::ConflictResolved { step, .. } => Some(*step),
            Self::PipelineFailed { step, .. } => *step,
            _ => None,
        }
    }
}

/// A run's worktree of one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeInfo {
    /// The repository's name.
    pub repository: String,
    /// The repository's folder (its main checkout).
    pub repo_path: String,
    /// The worktree's folder.
    pub path: String,
    /// The run's branch.
    pub branch: String,
}

/// An [`Event`] as stored: with its run, its gap-free per-run sequence number (from 1)
/// and the time it was appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The run whose log holds the event.
    pub run_id: RunId,
    /// Position in the run's log, from 1, without gaps.
    pub seq: u64,
    /// When it was appended.
    pub at: UnixMillis,
    /// The event itself (flattened: its `type` tag sits beside `seq`).
    #[serde(flatten)]
    pub event: Event,
}

/// What live subscribers receive: durable events, and streamed tokens that are not stored
/// in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A durable event, just appended.
    Event(EventRecord),
    /// Text streamed by a model while a step runs.
    Token {
        /// The run.
        run_id: RunId,
        /// Step index.
        step: u32,
        /// Agent generating.
        agent: String,
        /// The new text.
        text: String,
    },
}
