use botarmy_protocol::{ErrorInfo, Usage, WorktreeInfo};

/// What the engine asks the runtime to do next. Each action, once performed, is reported
/// back as one or more events; the engine never returns an action that its state shows as
/// already under way.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Begin executing the run: append `PipelineStarted`.
    StartRun,
    /// Execute an attempt of a step: append `StepStarted { step, attempt }`, then run it.
    /// When `resume` is set the attempt was interrupted before; the LLM calls it had
    /// completed (in [`crate::engine::StepState::calls`]) must be reused, not made again.
    StartStep {
        /// Step index.
        step: u32,
        /// Attempt number to start.
        attempt: u32,
        /// Whether this continues an interrupted attempt.
        resume: bool,
    },
    /// The step will not be executed: append `StepSkipped`.
    SkipStep {
        /// Step index.
        step: u32,
        /// Why.
        reason: String,
    },
    /// Every step is done: append `PipelineCompleted` with these totals.
    CompleteRun {
        /// Totals of the run.
        usage: Usage,
    },
    /// A step failed for good and nothing else is running: append `PipelineFailed`.
    FailRun {
        /// Why.
        error: ErrorInfo,
        /// The step that failed.
        step: Option<u32>,
    },
    /// Steps need the run's worktrees and they are not ready: make them (append
    /// `WorktreeSessionCreating`, a `WorktreeRepoCreated` per repository, and
    /// `WorktreeSessionReady`, or `PipelineNeedsInput` when a human must confirm the setup).
    /// Returned again while under way; the runtime performs one at a time.
    PrepareWorkspace {
        /// Repositories to check out (none: a fresh repository of the run's own).
        repositories: Vec<String>,
        /// Whether worktrees were (partly) made before: reuse what exists.
        resume: bool,
    },
    /// A gate's steps are done and their outputs need a human's approval: append
    /// `HitlRequested` (with `--yes`, `HitlResolved` approving it as well).
    RequestApproval {
        /// The gate, by index in the plan's gates.
        gate: u32,
        /// Its title.
        title: String,
        /// The steps it covers.
        steps: Vec<u32>,
        /// Why it asks.
        reasons: Vec<String>,
        /// The lowest confidence among the steps.
        confidence: Option<f64>,
        /// The lowest quality among the steps.
        quality: Option<f64>,
    },
    /// The run is about to end: commit what is left in its worktrees to the run's branch,
    /// remove them, and append `WorktreeSessionCleaned`.
    CleanWorkspace {
        /// The worktrees.
        worktrees: Vec<WorktreeInfo>,
    },
}
