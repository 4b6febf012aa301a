use std::collections::BTreeMap;

use botarmy_protocol::{
    ArtifactRef, Assessment, ErrorInfo, ErrorKind, Event, EventRecord, HitlDecision, Plan,
    ProjectId, RunId, RunRequest, RunStatus, StepStatus, ToolCall, UnixMillis, Usage, WorktreeInfo,
};

use super::Action;
use super::gate::{GateRequest, GateState, GateVerdict};

/// Why an event cannot be folded into a run's state. A log that produces one was not
/// written by the engine's rules (or was damaged); the run must not continue from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Sequence numbers must go 1, 2, 3, ... without gaps.
    #[error("run {run_id}: event {found} follows event {last}; the log has a gap or a duplicate")]
    OutOfSequence {
        /// The run.
        run_id: RunId,
        /// Last sequence number folded.
        last: u64,
        /// Sequence number of the offending event.
        found: u64,
    },
    /// The event belongs to another run.
    #[error("event {seq} belongs to run {found}, not {expected}")]
    WrongRun {
        /// The run being folded.
        expected: RunId,
        /// The run named by the event.
        found: RunId,
        /// Its sequence number.
        seq: u64,
    },
    /// The event does not fit the state (wrong step, wrong attempt, after the end, ...).
    #[error("run {run_id}: event {seq} ({event}) is invalid here: {reason}")]
    Invalid {
        /// The run.
        run_id: RunId,
        /// Sequence number.
        seq: u64,
        /// Event name.
        event: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A completed LLM call of the current attempt, reused when the attempt is resumed.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    /// Call number within the attempt.
    pub call: u32,
    /// Digest of the request that produced it.
    pub request_hash: String,
    /// The response text.
    pub response: String,
    /// Provider that answered.
    pub provider: String,
    /// Model that answered.
    pub model: String,
    /// Usage of the call.
    pub usage: Usage,
    /// Tools the model asked to call.
    pub tool_calls: Vec<ToolCall>,
}

/// A completed tool call of the current attempt, reused (never made again) on resume.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedToolCall {
    /// Tool call number within the attempt.
    pub call: u32,
    /// The model's id for the call.
    pub id: String,
    /// The tool.
    pub tool: String,
    /// Whether the tool reported a failure.
    pub is_error: bool,
    /// What the model was shown.
    pub result: String,
}

/// Where the run's worktrees are.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum WorkspaceState {
    /// No step has needed one yet.
    #[default]
    Unprepared,
    /// Being made (or made in part before the process stopped); the worktrees made so far.
    Creating(Vec<WorktreeInfo>),
    /// Ready for steps.
    Ready(Vec<WorktreeInfo>),
    /// Removed; the branches stay.
    Cleaned(Vec<WorktreeInfo>),
}

impl WorkspaceState {
    /// The worktrees known, whatever the state.
    pub fn worktrees(&self) -> &[WorktreeInfo] {
        match self {
            Self::Unprepared => &[],
            Self::Creating(w) | Self::Ready(w) | Self::Cleaned(w) => w,
        }
    }
}

/// A decision the run waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequest {
    /// What is to be decided.
    pub kind: String,
    /// The question.
    pub question: String,
    /// The accepted answers.
    pub options: Vec<String>,
}

/// The engine's view of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepState {
    /// Current state.
    pub status: StepStatus,
    /// Latest attempt number (0: never started).
    pub attempt: u32,
    /// Completed LLM calls of the latest attempt, in call order.
    pub calls: Vec<RecordedCall>,
    /// Completed tool calls of the latest attempt, in call order.
    pub tool_calls: Vec<RecordedToolCall>,
    /// Totals over every attempt.
    pub usage: Usage,
    /// Artifact versions created by the step (all attempts).
    pub artifacts: Vec<ArtifactRef>,
    /// Last failure.
    pub error: Option<ErrorInfo>,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
    /// When the latest attempt started.
    pub started_at: Option<UnixMillis>,
    /// What the running attempt waits for (a shared slot), until its next event.
    pub queued: Option<String>,
    /// A question of the latest attempt waiting for a human's answer.
    pub clarification: Option<Clarification>,
    /// Answers to the latest attempt's questions, by the tool call that asked.
    pub answers: BTreeMap<u32, String>,
    /// The scores of the latest completed attempt's outputs.
    pub assessment: Option<Assessment>,
    /// Humans' feedback that restarted the step, oldest first.
    pub feedback: Vec<String>,
    /// The conflicts the latest attempt found, when the step is a conflict check.
    pub conflicts: Vec<ConflictState>,
}

/// A conflict of a run as clients see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConflictView {
    /// The conflict check's step.
    pub step: u32,
    /// Its key (`design/conflict-check`).
    pub step_key: String,
    /// The check's attempt that found it.
    pub attempt: u32,
    /// Its number within the check, from 0.
    pub conflict: u32,
    /// `mediating`, `escalated` (a person must decide) or `settled`.
    pub status: &'static str,
    /// Severity, description and positions.
    #[serde(flatten)]
    pub detail: botarmy_protocol::Conflict,
    /// The mediation rounds.
    pub rounds: Vec<botarmy_protocol::MediationRound>,
    /// What a person is asked, while the conflict waits for one.
    pub question: Option<String>,
    /// How it was settled.
    pub resolution: Option<botarmy_protocol::ConflictResolution>,
}

/// A conflict a conflict check found, and how far it is settled.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictState {
    /// What contradicts what.
    pub conflict: botarmy_protocol::Conflict,
    /// The rounds of mediation so far.
    pub rounds: Vec<botarmy_protocol::MediationRound>,
    /// The question a human was asked, once mediation gave up.
    pub escalation: Option<String>,
    /// The person who answered the escalation.
    pub answered_by: Option<String>,
    /// How it was settled.
    pub resolution: Option<botarmy_protocol::ConflictResolution>,
}

/// What a run asks a human (see [`RunState::question`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Question<'a> {
    /// The step and tool call that ask (none: the run itself asks for a decision).
    pub asker: Option<Asker>,
    /// `clarification`, or the decision's kind (`worktree_setup`).
    pub kind: &'a str,
    /// The question.
    pub question: &'a str,
    /// The accepted answers (empty: any text).
    pub options: &'a [String],
    /// The gate that asks for approval (none: not an approval).
    pub gate: Option<u32>,
}

/// Where an agent's question comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asker {
    /// Step index.
    pub step: u32,
    /// The tool call that asked, within the step's attempt.
    pub call: u32,
}

/// A question an agent asked a human.
#[derive(Debug, Clone, PartialEq)]
pub struct Clarification {
    /// `clarification`, or `conflict` for a conflict that mediation did not settle (`call`
    /// is then the conflict's number).
    pub kind: &'static str,
    /// The tool call that asked.
    pub call: u32,
    /// The question.
    pub question: String,
    /// The accepted answers (empty: any text).
    pub options: Vec<String>,
}

impl StepState {
    fn new() -> Self {
        Self {
            status: StepStatus::Pending,
            attempt: 0,
            calls: Vec::new(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            artifacts: Vec::new(),
            error: None,
            skip_reason: None,
            started_at: None,
            queued: None,
            clarification: None,
            answers: BTreeMap::new(),
            assessment: None,
            feedback: Vec::new(),
            conflicts: Vec::new(),
        }
    }
}

/// A run as folded from its event log.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    /// The run.
    pub run_id: RunId,
    /// Its project.
    pub project_id: Option<ProjectId>,
    /// What was asked (from `PipelineCreated`).
    pub request: Option<RunRequest>,
    /// The resolved steps (from `PipelineCreated`).
    pub plan: Option<Plan>,
    /// Current state.
    pub status: RunStatus,
    /// One entry per plan step.
    pub steps: Vec<StepState>,
    /// Last sequence number folded.
    pub last_seq: u64,
    /// Totals of every LLM call.
    pub usage: Usage,
    /// Latest version of each artifact, by name.
    pub artifacts: BTreeMap<String, ArtifactRef>,
    /// When the run was created.
    pub created_at: Option<UnixMillis>,
    /// When execution first began.
    pub started_at: Option<UnixMillis>,
    /// When it reached a terminal state.
    pub finished_at: Option<UnixMillis>,
    /// Why it failed.
    pub error: Option<ErrorInfo>,
    /// Why it is paused or waiting.
    pub reason: Option<String>,
    /// The run's worktrees.
    pub workspace: WorkspaceState,
    /// The decision the run waits for, if any.
    pub needs_input: Option<InputRequest>,
    /// Decisions given, by kind.
    pub answers: BTreeMap<String, String>,
    /// One entry per plan gate.
    pub gates: Vec<GateState>,
}

impl RunState {
    /// The state of a run whose log is still empty.
    pub fn new(run_id: RunId) -> Self {
        Self {
            run_id,
            project_id: None,
            request: None,
            plan: None,
            status: RunStatus::Pending,
            steps: Vec::new(),
            last_seq: 0,
            usage: Usage::default(),
            artifacts: BTreeMap::new(),
            created_at: None,
            started_at: None,
            finished_at: None,
            error: None,
            reason: None,
            workspace: WorkspaceState::Unprepared,
            needs_input: None,
            answers: BTreeMap::new(),
            gates: Vec::new(),
        }
    }

    /// Folds a whole log, in order.
    pub fn from_events<'a>(
        run_id: RunId,
        records: impl IntoIterator<Item = &'a EventRecord>,
    ) -> Result<Self, EngineError> {
        let mut state = Self::new(run_id);
        for record in records {
            state.apply(record)?;
        }
        Ok(state)
    }

    /// What the run asks a human now: a decision it waits for (`pipeline_needs_input`) or
    /// an agent's question (`clarification_requested`); none when it asks nothing.
    pub fn question(&self) -> Option<Question<'_>> {
        if let Some(r) = &self.needs_input {
            return Some(Question {
                asker: None,
                kind: &r.kind,
                question: &r.question,
                options: &r.options,
                gate: None,
            });
        }
        let clarification = self.steps.iter().enumerate().find_map(|(i, s)| {
            let c = s.clarification.as_ref()?;
            Some(Question {
                asker: Some(Asker {
                    step: i as u32,
                    call: c.call,
                }),
                kind: c.kind,
                question: &c.question,
                options: &c.options,
                gate: None,
            })
        });
        clarification.or_else(|| {
            self.gates.iter().enumerate().find_map(|(g, state)| {
                let r = state.request.as_ref()?;
                Some(Question {
                    asker: None,
                    kind: "approval",
                    question: &r.question,
                    options: &[],
                    gate: Some(g as u32),
                })
            })
        })
    }

    /// Whether a human is asked something now (a decision, a question, an approval).
    pub fn asks_human(&self) -> bool {
        self.needs_input.is_some()
            || self.steps.iter().any(|s| s.clarification.is_some())
            || self.gates.iter().any(|g| g.request.is_some())
    }

    /// A waiting run whose human questions are all answered runs again.
    fn human_answered(&mut self) {
        if self.status == RunStatus::Waiting && !self.asks_human() {
            self.status = RunStatus::Running;
            self.reason = None;
        }
    }

    /// The conflicts of every conflict check's latest attempt, as clients see them.
    pub fn conflict_views(&self) -> Vec<ConflictView> {
        let Some(plan) = &self.plan else {
            return Vec::new();
        };
        self.steps
            .iter()
            .zip(&plan.steps)
            .enumerate()
            .flat_map(|(i, (s, p))| {
                s.conflicts
                    .iter()
                    .enumerate()
                    .map(move |(n, c)| ConflictView {
                        step: i as u32,
                        step_key: p.key.clone(),
                        attempt: s.attempt,
                        conflict: n as u32,
                        status: match (&c.resolution, &c.escalation) {
                            (Some(_), _) => "settled",
                            (None, Some(_)) => "escalated",
                            (None, None) => "mediating",
                        },
                        detail: c.conflict.clone(),
                        rounds: c.rounds.clone(),
                        question: c.escalation.clone().filter(|_| c.resolution.is_none()),
                        resolution: c.resolution.clone(),
                    })
            })
            .collect()
    }

    /// The conflicts settled by the conflict checks that finished, in plan order.
    pub fn settled_conflicts(
        &self,
    ) -> Vec<(
        &botarmy_protocol::Conflict,
        &botarmy_protocol::ConflictResolution,
    )> {
        self.steps
            .iter()
            .filter(|s| s.status == StepStatus::Succeeded)
            .flat_map(|s| &s.conflicts)
            .filter_map(|c| Some((&c.conflict, c.resolution.as_ref()?)))
            .collect()
    }

    /// Conflict `conflict` of the running conflict check `step`, while it is not settled.
    fn open_conflict(&mut self, step: u32, conflict: u32) -> Result<&mut ConflictState, String> {
        let s = self.step_mut(step)?;
        if s.status != StepStatus::Running {
            return Err(format!("step {step} is {}, not running", s.status));
        }
        let c = s
            .conflicts
            .get_mut(conflict as usize)
            .ok_or_else(|| format!("step {step} found no conflict {conflict}"))?;
        if c.resolution.is_some() {
            return Err(format!(
                "conflict {conflict} of step {step} is settled already"
            ));
        }
        Ok(c)
    }

    /// The step a person names: its index, its key (`design/api-specification`), or the
    /// part of its key after the phase (`api-specification`) when only one step has it.
    pub fn find_step(&self, name: &str) -> Option<u32> {
        let plan = self.plan.as_ref()?;
        if let Ok(i) = name.parse::<u32>() {
            return ((i as usize) < plan.steps.len()).then_some(i);
        }
        if let Some(i) = plan.steps.iter().position(|s| s.key == name) {
            return Some(i as u32);
        }
        let mut tails = plan
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.key.rsplit('/').next() == Some(name));
        match (tails.next(), tails.next()) {
            (Some((i, _)), None) => Some(i as u32),
            _ => None,
        }
    }

    /// The agent of step `step`, from the plan.
    pub fn agent_of(&self, step: u32) -> Option<&str> {
        let plan = self.plan.as_ref()?;
        plan.steps.get(step as usize).map(|s| s.agent.as_str())
    }

    /// Steps that are executing now.
    pub fn running_steps(&self) -> impl Iterator<Item = u32> + '_ {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.status == StepStatus::Running)
            .map(|(i, _)| i as u32)
    }

    fn max_attempts(&self) -> u32 {
        self.request
            .as_ref()
            .map_or(1, |r| r.options.max_attempts.max(1))
    }

    /// Folds one stored event into the state. On error the state is unchanged.
    pub fn apply(&mut self, record: &EventRecord) -> Result<(), EngineError> {
        if record.run_id != self.run_id {
            return Err(EngineError::WrongRun {
                expected: self.run_id,
                found: record.run_id,
                seq: record.seq,
            });
        }
        if record.seq != self.last_seq + 1 {
            return Err(EngineError::OutOfSequence {
                run_id: self.run_id,
                last: self.last_seq,
                found: record.seq,
            });
        }
        self.fold_checked(record.seq, record.at, &record.event)
    }

    /// Folds `event` as the next event of the log (sequence number `last_seq + 1`), as
    /// [`RunState::apply`] does: a live driver checks what it is about to store with it.
    pub fn apply_event(&mut self, at: UnixMillis, event: &Event) -> Result<(), EngineError> {
        self.fold_checked(self.last_seq + 1, at, event)
    }

    /// `fold` checks everything before it changes anything, so a rejected event leaves the
    /// state as it was without a copy of it (the proptests hold it to that).
    fn fold_checked(&mut self, seq: u64, at: UnixMillis, event: &Event) -> Result<(), EngineError> {
        self.fold(seq, at, event)
            .map_err(|reason| EngineError::Invalid {
                run_id: self.run_id,
                seq,
                event: event.name(),
                reason,
            })?;
        self.last_seq = seq;
        Ok(())
    }

    fn step_mut(&mut self, step: u32) -> Result<&mut StepState, String> {
        let count = self.steps.len();
        self.steps
            .get_mut(step as usize)
            .ok_or_else(|| format!("step {step} does not exist (the plan has {count} steps)"))
    }

    fn running_attempt(&mut self, step: u32, attempt: u32) -> Result<&mut StepState, String> {
        let s = self.step_mut(step)?;
        if s.status != StepStatus::Running || s.attempt != attempt {
            return Err(format!("step {step} attempt {attempt} is not running"));
        }
        Ok(s)
    }

    fn require_active(&self) -> Result<(), String> {
        if self.plan.is_none() {
            return Err("the run has not been created yet".into());
        }
        if self.status.is_terminal() {
            return Err(format!("the run is already {}", self.status));
        }
        Ok(())
    }

    fn fold(&mut self, seq: u64, at: UnixMillis, event: &Event) -> Result<(), String> {
        self.fold_event(seq, at, event)?;
        // Any later event of a queued step means it got what it waited for.
        if let Some(step) = event.step()
            && !matches!(event, Event::StepQueued { .. })
            && let Some(s) = self.steps.get_mut(step as usize)
        {
            s.queued = None;
        }
        Ok(())
    }

    fn fold_event(&mut self, seq: u64, at: UnixMillis, event: &Event) -> Result<(), String> {
        match event {
            Event::PipelineCreated {
                project_id,
                request,
                plan,
            } => {
                if self.plan.is_some() || seq != 1 {
                    return Err("a run is created once, by its first event".into());
                }
                for gate in &plan.gates {
                    if let Some(i) = gate.steps.iter().find(|i| **i as usize >= plan.steps.len()) {
                        return Err(format!(
                            "gate `{}` covers step {i}, which does not exist",
                            gate.key
                        ));
                    }
                }
                for (i, step) in plan.steps.iter().enumerate() {
                    if let Some(dep) = step.depends_on.iter().find(|d| **d as usize >= i) {
                        return Err(format!(
                            "step {i} (`{}`) depends on step {dep}, which does not come before it",
                            step.key
                        ));
                    }
                }
                self.project_id = Some(*project_id);
                self.request = Some(request.clone());
                self.steps = plan.steps.iter().map(|_| StepState::new()).collect();
                self.gates = vec![GateState::default(); plan.gates.len()];
                self.plan = Some(plan.clone());
                self.created_at = Some(at);
            }
            Event::PipelineStarted { .. } => {
                self.require_active()?;
                if self.status != RunStatus::Pending {
                    return Err(format!("the run is {}, not pending", self.status));
                }
                self.status = RunStatus::Running;
                self.started_at = Some(at);
            }
            Event::StepStarted { step, attempt, .. } => {
                self.require_active()?;
                if self.status != RunStatus::Running {
                    return Err(format!(
                        "steps start only while the run is running, it is {}",
                        self.status
                    ));
                }
                let s = self.step_mut(*step)?;
                match s.status {
                    StepStatus::Pending if *attempt == s.attempt + 1 => {
                        s.calls.clear();
                        s.tool_calls.clear();
                        s.answers.clear();
                        s.clarification = None;
                        s.conflicts.clear();
                    }
                    StepStatus::Interrupted if *attempt == s.attempt => {}
                    other => {
                        return Err(format!(
                            "step {step} is {other} at attempt {}; attempt {attempt} cannot start",
                            s.attempt
                        ));
                    }
                }
                s.status = StepStatus::Running;
                s.attempt = *attempt;
                s.started_at = Some(at);
                s.error = None;
            }
            Event::LlmCallCompleted {
                step,
                attempt,
                call,
                provider,
                model,
                request_hash,
                response,
                usage,
                tool_calls,
                ..
            } => {
                self.require_active()?;
                let s = self.step_mut(*step)?;
                if s.status != StepStatus::Running || s.attempt != *attempt {
                    return Err(format!("step {step} attempt {attempt} is not running"));
                }
                if *call as usize != s.calls.len() {
                    return Err(format!(
                        "call {call} recorded but {} calls were completed before it",
                        s.calls.len()
                    ));
                }
                s.calls.push(RecordedCall {
                    call: *call,
                    request_hash: request_hash.clone(),
                    response: response.clone(),
                    provider: provider.clone(),
                    model: model.clone(),
                    usage: *usage,
                    tool_calls: tool_calls.clone(),
                });
                let mut counted = *usage;
                counted.calls = 1;
                s.usage += counted;
                self.usage += counted;
            }
            Event::LlmCallFailed { step, attempt, .. } => {
                self.require_active()?;
                let s = self.step_mut(*step)?;
                if s.status != StepStatus::Running || s.attempt != *attempt {
                    return Err(format!("step {step} attempt {attempt} is not running"));
                }
            }
            Event::ToolCallStarted {
                step,
                attempt,
                call,
                ..
            } => {
                self.require_active()?;
                let s = self.running_attempt(*step, *attempt)?;
                // A call started before an interruption starts again: the same number.
                if *call as usize != s.tool_calls.len() {
                    return Err(format!(
                        "tool call {call} started but {} tool calls were completed before it",
                        s.tool_calls.len()
                    ));
                }
            }
            Event::ToolCallCompleted {
                step,
                attempt,
                call,
                id,
                tool,
                is_error,
                result,
                ..
            } => {
                self.require_active()?;
                let s = self.running_attempt(*step, *attempt)?;
                if *call as usize != s.tool_calls.len() {
                    return Err(format!(
                        "tool call {call} completed but {} tool calls were completed before it",
                        s.tool_calls.len()
                    ));
                }
                s.tool_calls.push(RecordedToolCall {
                    call: *call,
                    id: id.clone(),
                    tool: tool.clone(),
                    is_error: *is_error,
                    result: result.clone(),
                });
            }
            Event::StepQueued {
                step,
                attempt,
                resource,
            } => {
                self.require_active()?;
                let s = self.running_attempt(*step, *attempt)?;
                s.queued = Some(resource.clone());
            }
            Event::ClarificationRequested {
                step,
                attempt,
                call,
                question,
                options,
            } => {
                self.require_active()?;
                if self.steps.iter().any(|s| s.clarification.is_some()) {
                    return Err("another question waits for its answer".into());
                }
                let s = self.running_attempt(*step, *attempt)?;
                if *call as usize != s.tool_calls.len() {
                    return Err(format!(
                        "question asked by tool call {call} but {} tool calls were completed before it",
                        s.tool_calls.len()
                    ));
                }
                s.clarification = Some(Clarification {
                    kind: "clarification",
                    call: *call,
                    question: question.clone(),
                    options: options.clone(),
                });
                self.status = RunStatus::Waiting;
                self.reason = Some(format!("question from step {step}: {question}"));
            }
            Event::ClarificationAnswered {
                step,
                call,
                answer,
                by,
            } => {
                self.require_active()?;
                let s = self.step_mut(*step)?;
                let Some(asked) = &s.clarification else {
                    return Err(format!("step {step} asked nothing"));
                };
                if asked.call != *call {
                    return Err(format!(
                        "step {step} asked with tool call {}, not {call}",
                        asked.call
                    ));
                }
                if let Some(problem) = check_answer(answer, &asked.options) {
                    return Err(problem);
                }
                if asked.kind == "conflict"
                    && let Some(c) = s.conflicts.get_mut(*call as usize)
                {
                    c.answered_by = Some(by.clone());
                }
                s.clarification = None;
                s.answers.insert(*call, answer.clone());
                self.human_answered();
            }
            Event::ConflictDetected {
                step,
                attempt,
                conflict,
                detail,
            } => {
                self.require_active()?;
                let s = self.running_attempt(*step, *attempt)?;
                if *conflict as usize != s.conflicts.len() {
                    return Err(format!(
                        "conflict {conflict} of step {step}, but {} were found before it",
                        s.conflicts.len()
                    ));
                }
                if detail.positions.len() < 2 {
                    return Err(format!(
                        "conflict {conflict} of step {step} has {} position(s); a conflict has two at least",
                        detail.positions.len()
                    ));
                }
                s.conflicts.push(ConflictState {
                    conflict: detail.clone(),
                    rounds: Vec::new(),
                    escalation: None,
                    answered_by: None,
                    resolution: None,
                });
            }
            Event::ConflictMediated {
                step,
                conflict,
                round,
                outcome,
            } => {
                self.require_active()?;
                let c = self.open_conflict(*step, *conflict)?;
                if *round as usize != c.rounds.len() + 1 {
                    return Err(format!(
                        "mediation round {round} of conflict {conflict}, but {} were held before it",
                        c.rounds.len()
                    ));
                }
                c.rounds.push(outcome.clone());
            }
            Event::ConflictEscalated {
                step,
                conflict,
                question,
            } => {
                self.require_active()?;
                if self.steps.iter().any(|s| s.clarification.is_some()) {
                    return Err("another question waits for its answer".into());
                }
                let c = self.open_conflict(*step, *conflict)?;
                if c.escalation.is_some() {
                    return Err(format!(
                        "conflict {conflict} of step {step} was escalated already"
                    ));
                }
                c.escalation = Some(question.clone());
                let s = self.step_mut(*step)?;
                s.clarification = Some(Clarification {
                    kind: "conflict",
                    call: *conflict,
                    question: question.clone(),
                    options: Vec::new(),
                });
                self.status = RunStatus::Waiting;
                self.reason = Some(format!("conflict from step {step} needs a decision"));
            }
            Event::ConflictResolved {
                step,
                conflict,
                resolution,
            } => {
                self.require_active()?;
                let c = self.open_conflict(*step, *conflict)?;
                c.resolution = Some(resolution.clone());
            }
            Event::FileChanged { step, .. } => {
                self.require_active()?;
                let s = self.step_mut(*step)?;
                if s.status != StepStatus::Running {
                    return Err(format!("step {step} is {}, not running", s.status));
                }
            }
            Event::WorktreeSessionCreating { .. } => {
                self.require_active()?;
                self.workspace = match &self.workspace {
                    WorkspaceState::Unprepared => WorkspaceState::Creating(Vec::new()),
                    WorkspaceState::Creating(w) | WorkspaceState::Cleaned(w) => {
                        WorkspaceState::Creating(w.clone())
                    }
                    WorkspaceState::Ready(_) => {
                        return Err("the run's worktrees are ready already".into());
                    }
                };
            }
            Event::WorktreeRepoCreated { worktree } => {
                self.require_active()?;
                let WorkspaceState::Creating(made) = &mut self.workspace else {
                    return Err("no worktree session is being created".into());
                };
                made.retain(|w| w.repository != worktree.repository);
                made.push(worktree.clone());
            }
            Event::WorktreeSetupStarted { repository, .. }
            | Event::WorktreeSetupCompleted { repository, .. } => {
                self.require_active()?;
                let WorkspaceState::Creating(made) = &self.workspace else {
                    return Err("no worktree session is being created".into());
                };
                if !made.iter().any(|w| &w.repository == repository) {
                    return Err(format!("repository `{repository}` has no worktree"));
                }
            }
            Event::WorktreeSessionReady { worktrees } => {
                self.require_active()?;
                if !matches!(self.workspace, WorkspaceState::Creating(_)) {
                    return Err("no worktree session is being created".into());
                }
                self.workspace = WorkspaceState::Ready(worktrees.clone());
            }
            Event::WorktreeSessionCleaned { .. } => {
                self.require_active()?;
                self.workspace = match &self.workspace {
                    WorkspaceState::Creating(w) | WorkspaceState::Ready(w) => {
                        WorkspaceState::Cleaned(w.clone())
                    }
                    other => {
                        return Err(format!("the run's worktrees are not there ({other:?})"));
                    }
                };
            }
            Event::PipelineNeedsInput {
                kind,
                question,
                options,
            } => {
                self.require_active()?;
                if self.status != RunStatus::Running {
                    return Err(format!(
                        "only a running run asks for input; this one is {}",
                        self.status
                    ));
                }
                if options.is_empty() {
                    return Err("a request for input needs at least one accepted answer".into());
                }
                self.needs_input = Some(InputRequest {
                    kind: kind.clone(),
                    question: question.clone(),
                    options: options.clone(),
                });
                self.status = RunStatus::Waiting;
                self.reason = Some(question.clone());
            }
            Event::InputProvided { kind, answer } => {
                self.require_active()?;
                let Some(request) = &self.needs_input else {
                    return Err("the run does not wait for input".into());
                };
                if &request.kind != kind {
                    return Err(format!(
                        "the run waits for `{}`, not `{kind}`",
                        request.kind
                    ));
                }
                if !request.options.contains(answer) {
                    return Err(format!(
                        "`{answer}` is not one of the accepted answers ({})",
                        request.options.join(", ")
                    ));
                }
                self.answers.insert(kind.clone(), answer.clone());
                self.needs_input = None;
                self.human_answered();
            }
            Event::ArtifactCreated { step, artifact } => {
                self.require_active()?;
                let latest = self.artifacts.get(&artifact.name).map_or(0, |a| a.version);
                if artifact.version != latest + 1 {
                    return Err(format!(
                        "artifact `{}` version {} follows version {latest}",
                        artifact.name, artifact.version
                    ));
                }
                // A finished step's output is amended by a human while its gate waits.
                let amending = self
                    .steps
                    .get(*step as usize)
                    .is_some_and(|s| s.status == StepStatus::Succeeded)
                    && self.plan.as_ref().is_some_and(|p| {
                        p.gates
                            .iter()
                            .zip(&self.gates)
                            .any(|(g, gs)| gs.request.is_some() && g.steps.contains(step))
                    });
                let s = self.step_mut(*step)?;
                if s.status != StepStatus::Running && !amending {
                    return Err(format!(
                        "step {step} is {}, not running (nor waiting for approval)",
                        s.status
                    ));
                }
                s.artifacts.push(artifact.clone());
                self.artifacts
                    .insert(artifact.name.clone(), artifact.clone());
            }
            Event::StepCompleted {
                step,
                attempt,
                assessment,
                ..
            } => {
                self.require_active()?;
                let s = self.step_mut(*step)?;
                if s.status != StepStatus::Running || s.attempt != *attempt {
                    return Err(format!("step {step} attempt {attempt} is not running"));
                }
                s.status = StepStatus::Succeeded;
                s.assessment = assessment.clone();
            }
            Event::StepFailed {
                step,
                attempt,
                error,
            } => {
                self.require_active()?;
                let max_attempts = self.max_attempts();
                let s = self.step_mut(*step)?;
                if s.status != StepStatus::Running || s.attempt != *attempt {
                    return Err(format!("step {step} attempt {attempt} is not running"));
                }
                s.error = Some(error.clone());
                s.status = if error.retryable() && *attempt < max_attempts {
                    StepStatus::Pending
                } else {
                    StepStatus::Failed
                };
            }
            Event::StepSkipped { step, reason } => {
                self.require_active()?;
                let s = self.step_mut(*step)?;
                if !matches!(s.status, StepStatus::Pending | StepStatus::Running) {
                    return Err(format!("step {step} is {} and cannot be skipped", s.status));
                }
                s.status = StepStatus::Skipped;
                s.skip_reason = Some(reason.clone());
            }
            Event::StepInterrupted { step, attempt } => {
                self.require_active()?;
                let s = self.step_mut(*step)?;
                if s.status != StepStatus::Running || s.attempt != *attempt {
                    return Err(format!("step {step} attempt {attempt} is not running"));
                }
                s.status = StepStatus::Interrupted;
            }
            Event::StepRestarted { step, feedback, .. } => {
                self.require_active()?;
                let index = *step as usize;
                if index >= self.steps.len() {
                    return Err(format!("step {step} does not exist"));
                }
                if self.steps[index].status == StepStatus::Running {
                    return Err(format!(
                        "step {step} is running; interrupt it before restarting"
                    ));
                }
                let dependants = self.dependants_of(index);
                if let Some(i) = dependants
                    .iter()
                    .find(|i| self.steps[**i].status == StepStatus::Running)
                {
                    return Err(format!("dependent step {i} is running"));
                }
                if let Some(text) = feedback {
                    self.steps[index].feedback.push(text.clone());
                }
                // Outputs that will change are no longer approved, nor asked about.
                if let Some(plan) = &self.plan {
                    for (g, gate) in plan.gates.iter().enumerate() {
                        if gate
                            .steps
                            .iter()
                            .any(|i| dependants.contains(&(*i as usize)))
                        {
                            self.gates[g].approved_by = None;
                            self.gates[g].request = None;
                        }
                    }
                }
                for i in dependants {
                    let s = &mut self.steps[i];
                    s.status = StepStatus::Pending;
                    s.skip_reason = None;
                }
                if self.status == RunStatus::Failed {
                    self.status = RunStatus::Running;
                }
                self.human_answered();
            }
            Event::HitlRequested {
                gate,
                steps,
                reasons,
                confidence,
                quality,
                title,
                ..
            } => {
                self.require_active()?;
                let g = *gate as usize;
                let Some(plan_gate) = self.plan.as_ref().and_then(|p| p.gates.get(g)) else {
                    return Err(format!("gate {gate} does not exist"));
                };
                if &plan_gate.steps != steps {
                    return Err(format!(
                        "gate {gate} covers steps {:?}, not {steps:?}",
                        plan_gate.steps
                    ));
                }
                if self.gate_verdict(g) == GateVerdict::NotReady {
                    return Err(format!("gate {gate}: its steps are not finished"));
                }
                if self.gates[g].request.is_some() {
                    return Err(format!("gate {gate} already waits for a decision"));
                }
                let question = format!("Approve {title}?");
                self.gates[g].request = Some(GateRequest {
                    question: question.clone(),
                    reasons: reasons.clone(),
                    confidence: *confidence,
                    quality: *quality,
                    requested_at: at,
                    timed_out: None,
                });
                self.status = RunStatus::Waiting;
                self.reason = Some(format!("approval of {title}"));
            }
            Event::HitlTimedOut { gate, action, .. } => {
                self.require_active()?;
                let request = self
                    .gates
                    .get_mut(*gate as usize)
                    .and_then(|g| g.request.as_mut())
                    .ok_or_else(|| format!("gate {gate} does not wait for a decision"))?;
                if let Some(done) = request.timed_out {
                    return Err(format!("gate {gate} timed out already ({done:?})"));
                }
                request.timed_out = Some(*action);
            }
            Event::HitlResolved {
                gate,
                decision,
                feedback,
                by,
            } => {
                self.require_active()?;
                let g = *gate as usize;
                let Some(state) = self.gates.get_mut(g) else {
                    return Err(format!("gate {gate} does not exist"));
                };
                if state.request.take().is_none() {
                    return Err(format!("gate {gate} does not wait for a decision"));
                }
                state.approved_by = match decision {
                    HitlDecision::Approved | HitlDecision::Amended => Some(by.clone()),
                    HitlDecision::Rejected => None,
                };
                state.last_decision = Some((*decision, by.clone(), feedback.clone()));
                self.human_answered();
            }
            Event::PipelinePaused { reason } => {
                self.require_active()?;
                self.status = RunStatus::Paused;
                self.reason = Some(reason.clone());
            }
            Event::BudgetChanged { budget } => {
                self.require_active()?;
                if let Some(request) = &mut self.request {
                    request.options.budget = budget.clone();
                }
            }
            Event::PipelineWaiting { reason } => {
                self.require_active()?;
                self.status = RunStatus::Waiting;
                self.reason = Some(reason.clone());
            }
            Event::PipelineResumed {} => {
                self.require_active()?;
                if self.status == RunStatus::Pending {
                    return Err("a run that never started is started, not resumed".into());
                }
                // A question still unanswered keeps the run waiting for it.
                if self.asks_human() {
                    self.status = RunStatus::Waiting;
                } else {
                    self.status = RunStatus::Running;
                    self.reason = None;
                }
            }
            Event::PipelineCompleted { .. } => {
                self.require_active()?;
                if let Some(i) = self
                    .steps
                    .iter()
                    .position(|s| !s.status.satisfies_dependants())
                {
                    return Err(format!(
                        "step {i} is {}, not finished",
                        self.steps[i].status
                    ));
                }
                self.status = RunStatus::Succeeded;
                self.finished_at = Some(at);
            }
            Event::PipelineFailed { error, .. } => {
                self.require_active()?;
                self.status = RunStatus::Failed;
                self.error = Some(error.clone());
                self.finished_at = Some(at);
            }
            Event::PipelineCancelled { reason } => {
                self.require_active()?;
                self.status = RunStatus::Cancelled;
                self.reason = Some(reason.clone());
                self.error = Some(ErrorInfo::new(ErrorKind::Cancelled, reason.clone()));
                self.finished_at = Some(at);
                for s in &mut self.steps {
                    if s.status == StepStatus::Running {
                        s.status = StepStatus::Interrupted;
                    }
                }
            }
        }
        Ok(())
    }

    /// The step itself and every step that depends on it, directly or not.
    pub fn dependants_of(&self, step: usize) -> Vec<usize> {
        let Some(plan) = &self.plan else {
            return Vec::new();
        };
        let mut hit = vec![false; plan.steps.len()];
        if step < hit.len() {
            hit[step] = true;
        }
        // depends_on always points backwards (checked on creation), so one forward pass
        // reaches every transitive dependant.
        for (i, s) in plan.steps.iter().enumerate().skip(step + 1) {
            if s.depends_on
                .iter()
                .any(|d| hit.get(*d as usize).copied().unwrap_or(false))
            {
                hit[i] = true;
            }
        }
        hit.iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .map(|(i, _)| i)
            .collect()
    }

    /// What should happen next, in plan order. Empty when the run is paused, waiting,
    /// finished, or has everything it can do under way.
    pub fn next_actions(&self) -> Vec<Action> {
        let (Some(plan), Some(request)) = (&self.plan, &self.request) else {
            return Vec::new();
        };
        match self.status {
            RunStatus::Pending => return vec![Action::StartRun],
            RunStatus::Running => {}
            _ => return Vec::new(),
        }
        let running = self.running_steps().count();
        if let Some((i, s)) = self
            .steps
            .iter()
            .enumerate()
            .find(|(_, s)| s.status == StepStatus::Failed)
        {
            if running > 0 {
                return Vec::new();
            }
            if let Some(clean) = self.clean_workspace() {
                return vec![clean];
            }
            let message = s
                .error
                .as_ref()
                .map_or_else(|| "the step failed".to_string(), |e| e.message.clone());
            let key = &plan.steps[i].key;
            return vec![Action::FailRun {
                error: ErrorInfo::new(
                    s.error.as_ref().map_or(ErrorKind::Fatal, |e| e.kind),
                    format!(
                        "step `{key}` failed after {} attempt(s): {message}",
                        s.attempt
                    ),
                ),
                step: Some(i as u32),
            }];
        }
        // Gates whose steps are done and whose outputs need a human ask for one.
        let mut approvals = Vec::new();
        let mut cleared = Vec::with_capacity(plan.gates.len());
        for (g, gate) in plan.gates.iter().enumerate() {
            let state = &self.gates[g];
            if state.approved_by.is_some() {
                cleared.push(true);
                continue;
            }
            let verdict = self.gate_verdict(g);
            cleared.push(verdict == GateVerdict::Pass);
            if let GateVerdict::Trip {
                reasons,
                confidence,
                quality,
            } = verdict
                && state.request.is_none()
            {
                approvals.push(Action::RequestApproval {
                    gate: g as u32,
                    title: gate.title.clone(),
                    steps: gate.steps.clone(),
                    reasons,
                    confidence,
                    quality,
                });
            }
        }
        if self.steps.iter().all(|s| s.status.satisfies_dependants()) {
            if !approvals.is_empty() || cleared.iter().any(|c| !c) {
                return approvals;
            }
            if let Some(clean) = self.clean_workspace() {
                return vec![clean];
            }
            return vec![Action::CompleteRun { usage: self.usage }];
        }
        let worktree_ready = matches!(self.workspace, WorkspaceState::Ready(_));
        let mut wants_worktree = false;
        // Steps that work in the worktree take turns: two agents editing one checkout at
        // once would see and commit each other's half-done work.
        let mut worktree_busy = self
            .running_steps()
            .any(|i| plan.steps[i as usize].needs_worktree());
        let mut actions = approvals;
        let mut slots = (request.options.max_parallel.max(1) as usize).saturating_sub(running);
        for (i, (s, p)) in self.steps.iter().zip(&plan.steps).enumerate() {
            // A dependency is met when it is done and every gate over it that does not
            // also cover this step has let its outputs pass.
            let deps_met =
                p.depends_on.iter().all(|d| {
                    self.steps
                        .get(*d as usize)
                        .is_some_and(|d| d.status.satisfies_dependants())
                        && plan.gates.iter().zip(&cleared).all(|(g, ok)| {
                            *ok || !g.steps.contains(d) || g.steps.contains(&(i as u32))
                        })
                });
            // A step that asked a question waits for its answer.
            if s.clarification.is_some() {
                continue;
            }
            let startable = matches!(s.status, StepStatus::Interrupted)
                || (s.status == StepStatus::Pending
                    && deps_met
                    && (!p.optional || request.options.run_optional));
            if startable && p.needs_worktree() {
                if !worktree_ready {
                    wants_worktree = true;
                    continue;
                }
                if worktree_busy || slots == 0 {
                    continue;
                }
                worktree_busy = true;
            }
            match s.status {
                StepStatus::Interrupted if slots > 0 => {
                    slots -= 1;
                    actions.push(Action::StartStep {
                        step: i as u32,
                        attempt: s.attempt,
                        resume: true,
                    });
                }
                StepStatus::Pending if deps_met && p.optional && !request.options.run_optional => {
                    actions.push(Action::SkipStep {
                        step: i as u32,
                        reason: "optional step; pass --run-optional to execute optional steps"
                            .into(),
                    });
                }
                StepStatus::Pending if deps_met && slots > 0 => {
                    slots -= 1;
                    actions.push(Action::StartStep {
                        step: i as u32,
                        attempt: s.attempt + 1,
                        resume: false,
                    });
                }
                _ => {}
            }
        }
        if wants_worktree {
            actions.push(Action::PrepareWorkspace {
                repositories: request.options.repositories.clone(),
                resume: !matches!(self.workspace, WorkspaceState::Unprepared),
            });
        }
        // Nothing runs, nothing can start and nobody is asked: the plan holds steps that
        // wait, through gates, for each other. Said plainly instead of stalling.
        if actions.is_empty() && running == 0 && !self.asks_human() {
            let stuck: Vec<&str> = self
                .steps
                .iter()
                .zip(&plan.steps)
                .filter(|(s, _)| s.status == StepStatus::Pending)
                .map(|(_, p)| p.key.as_str())
                .collect();
            return vec![Action::FailRun {
                error: ErrorInfo::new(
                    ErrorKind::Fatal,
                    format!(
                        "the run cannot go on: steps {} wait for gates that wait for them",
                        stuck.join(", ")
                    ),
                ),
                step: None,
            }];
        }
        actions
    }

    /// Removing the worktrees, if the run has some: the last thing before it ends.
    fn clean_workspace(&self) -> Option<Action> {
        match &self.workspace {
            WorkspaceState::Creating(w) | WorkspaceState::Ready(w) => {
                Some(Action::CleanWorkspace {
                    worktrees: w.clone(),
                })
            }
            WorkspaceState::Unprepared | WorkspaceState::Cleaned(_) => None,
        }
    }
}

/// Why `answer` does not fit the accepted `options` (any text fits none).
pub fn check_answer(answer: &str, options: &[String]) -> Option<String> {
    if answer.trim().is_empty() {
        return Some("the answer is empty".into());
    }
    if !options.is_empty() && !options.iter().any(|o| o == answer) {
        return Some(format!(
            "`{answer}` is not one of the accepted answers ({})",
            options.join(", ")
        ));
    }
    None
}
