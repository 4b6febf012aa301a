//! What each event changes in the read tables, said once for both backends.
//!
//! This is persistence mapping, not workflow logic: the engine decides what happens; this
//! module only says which rows record it. Usage totals (run, step, attempt) are sums of the
//! recorded LLM calls; the usage figures inside `StepCompleted` and `PipelineCompleted` stay in
//! the log (a resumed attempt reuses calls already counted, so adding them would count twice).

use std::collections::HashMap;

use botarmy_protocol::{
    ArtifactId, ArtifactRef, Event, EventRecord, RunId, RunStatus, StepStatus, UnixMillis, Usage,
};

use crate::{AppendBatch, StoreError};

/// An event ready to be written: encoded once, with its artifact body if it has one.
pub(crate) struct PreparedEvent {
    /// The event.
    pub(crate) event: Event,
    /// Its JSON encoding (the whole tagged event).
    pub(crate) payload: String,
    /// For `ArtifactCreated`: the content.
    pub(crate) body: Option<Vec<u8>>,
}

/// Checks and encodes a batch for [`crate::Store::append`] before any database work: every
/// `ArtifactCreated` has its body, every body has its event, no `PipelineCreated`.
pub(crate) fn prepare_batch(
    run_id: RunId,
    batch: AppendBatch,
) -> Result<Vec<PreparedEvent>, StoreError> {
    let mut bodies: HashMap<ArtifactId, Vec<u8>> = HashMap::with_capacity(batch.artifacts.len());
    for body in batch.artifacts {
        if bodies.insert(body.id, body.content).is_some() {
            return Err(invalid(format!(
                "run {run_id}: artifact body {} given twice",
                body.id
            )));
        }
    }
    let mut out = Vec::with_capacity(batch.events.len());
    for event in batch.events {
        let body = match &event {
            Event::PipelineCreated { .. } => {
                return Err(invalid(format!(
                    "run {run_id}: pipeline_created can only start a run (use create_run)"
                )));
            }
            Event::ArtifactCreated { artifact, .. } => {
                let Some(content) = bodies.remove(&artifact.id) else {
                    return Err(invalid(format!(
                        "run {run_id}: artifact_created for `{}` v{} (id {}) has no body in the batch",
                        artifact.name, artifact.version, artifact.id
                    )));
                };
                if content.len() as u64 != artifact.bytes {
                    return Err(invalid(format!(
                        "run {run_id}: artifact `{}` v{} says {} bytes but its body has {}",
                        artifact.name,
                        artifact.version,
                        artifact.bytes,
                        content.len()
                    )));
                }
                Some(content)
            }
            _ => None,
        };
        out.push(PreparedEvent {
            payload: encode(&event)?,
            event,
            body,
        });
    }
    if let Some(id) = bodies.keys().next() {
        return Err(invalid(format!(
            "run {run_id}: artifact body {id} has no artifact_created event in the batch"
        )));
    }
    Ok(out)
}

/// Encodes an event as stored in the log.
pub(crate) fn encode(event: &Event) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|e| StoreError::Backend(Box::new(e)))
}

/// Decodes a stored event.
pub(crate) fn decode(
    run_id: RunId,
    seq: u64,
    at: UnixMillis,
    payload: &str,
) -> Result<EventRecord, StoreError> {
    let event = serde_json::from_str(payload).map_err(|e| StoreError::Decode {
        run_id,
        seq,
        detail: e.to_string(),
    })?;
    Ok(EventRecord {
        run_id,
        seq,
        at,
        event,
    })
}

/// Builds the records returned by a successful append.
pub(crate) fn records(
    run_id: RunId,
    first_seq: u64,
    at: UnixMillis,
    events: Vec<PreparedEvent>,
) -> Vec<EventRecord> {
    events
        .into_iter()
        .zip(first_seq..)
        .map(|(p, seq)| EventRecord {
            run_id,
            seq,
            at,
            event: p.event,
        })
        .collect()
}

/// A change of the runs row.
pub(crate) enum RunChange<'a> {
    /// Running again: `started_at` set the first time, `finished_at` and `error` cleared.
    Start,
    /// Only the status changes.
    Status(RunStatus),
    /// A terminal state, with `finished_at` and the error (if any).
    Finish(RunStatus, Option<&'a str>),
}

/// Everything a batch does to its run's row, folded so it is written with one `UPDATE`
/// (every event of a batch has the same time).
#[derive(Default)]
pub(crate) struct RunDelta<'a> {
    /// The state after the batch, if it changed.
    pub(crate) status: Option<RunStatus>,
    /// Set `started_at` if it is not set.
    pub(crate) start: bool,
    /// What happens to `finished_at` and `error`.
    pub(crate) finish: Finish,
    /// The error to store when [`Finish::Set`].
    pub(crate) error: Option<&'a str>,
    /// Usage of the completed LLM calls of the batch (`calls` counts them).
    pub(crate) usage: Usage,
}

/// See [`RunDelta::finish`].
#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Unchanged.
    #[default]
    Keep,
    /// Running again: both cleared.
    Clear,
    /// Finished now, with this error (if any).
    Set,
}

impl<'a> RunDelta<'a> {
    /// Folds in one event's change.
    pub(crate) fn add(&mut self, change: &Change<'a>) {
        match change {
            Change::Run(RunChange::Start) => {
                self.status = Some(RunStatus::Running);
                self.start = true;
                self.finish = Finish::Clear;
                self.error = None;
            }
            Change::Run(RunChange::Status(status)) => self.status = Some(*status),
            Change::Run(RunChange::Finish(status, e)) => {
                self.status = Some(*status);
                self.finish = Finish::Set;
                self.error = *e;
            }
            Change::LlmCall(call) if call.status == "ok" => {
                let mut usage = call.usage;
                usage.calls = 1;
                self.usage += usage;
            }
            _ => {}
        }
    }

    /// The code stored for [`RunDelta::finish`] in the runs `UPDATE` (0 keep, 1 clear, 2 set).
    pub(crate) fn finish_code(&self) -> i64 {
        match self.finish {
            Finish::Keep => 0,
            Finish::Clear => 1,
            Finish::Set => 2,
        }
    }
}

/// A change of a step's row, and of one attempt's row.
pub(crate) struct StepEnd<'a> {
    /// Step index.
    pub(crate) step: u32,
    /// New state.
    pub(crate) status: StepStatus,
    /// Set `finished_at` to the event time (else clear it).
    pub(crate) finished: bool,
    /// The error message to keep (else cleared).
    pub(crate) error: Option<&'a str>,
    /// The attempt row to close, with its new status.
    pub(crate) attempt: Option<(u32, &'static str)>,
}

/// An LLM call to record.
pub(crate) struct LlmCall<'a> {
    pub(crate) step: u32,
    pub(crate) attempt: u32,
    pub(crate) call: u32,
    pub(crate) provider: &'a str,
    pub(crate) model: &'a str,
    /// `ok` or `error`.
    pub(crate) status: &'static str,
    /// Zero for failed calls.
    pub(crate) usage: Usage,
    pub(crate) latency_ms: u64,
    pub(crate) request_hash: Option<&'a str>,
    pub(crate) error: Option<&'a str>,
}

/// What one event changes besides the log itself.
pub(crate) enum Change<'a> {
    /// Nothing.
    None,
    /// The run's state.
    Run(RunChange<'a>),
    /// A new attempt of a step.
    StepStarted {
        step: u32,
        attempt: u32,
        agent: &'a str,
    },
    /// A step's state (and maybe an attempt's).
    Step(StepEnd<'a>),
    /// A new LLM call row, and usage added to the run, the step and the attempt.
    LlmCall(LlmCall<'a>),
    /// A new artifact version.
    Artifact {
        step: u32,
        artifact: &'a ArtifactRef,
    },
}

/// The change an event (other than `PipelineCreated`) makes.
pub(crate) fn change(event: &Event) -> Change<'_> {
    match event {
        // The budget lives in the log only (the run's state folds it).
        Event::PipelineCreated { .. } | Event::BudgetChanged { .. } => Change::None,
        // Tool calls, file changes and the worktree session live in the log only.
        Event::StepQueued { .. }
        | Event::ToolCallStarted { .. }
        | Event::ToolCallCompleted { .. }
        | Event::FileChanged { .. }
        | Event::WorktreeSessionCreating { .. }
        | Event::WorktreeRepoCreated { .. }
        | Event::WorktreeSetupStarted { .. }
        | Event::WorktreeSetupCompleted { .. }
        | Event::WorktreeSessionReady { .. }
        | Event::WorktreeSessionCleaned { .. }
        | Event::HitlTimedOut { .. }
        | Event::ConflictDetected { .. }
        | Event::ConflictMediated { .. }
        | Event::ConflictResolved { .. } => Change::None,
        Event::PipelineNeedsInput { .. }
        | Event::ClarificationRequested { .. }
        | Event::HitlRequested { .. }
        | Event::ConflictEscalated { .. } => Change::Run(RunChange::Status(RunStatus::Waiting)),
        // The answer lets the run go on (as the engine folds it).
        Event::ClarificationAnswered { .. } => Change::Run(RunChange::Start),
        // The answer lets a waiting run go on (as the engine folds it).
        Event::InputProvided { .. } | Event::HitlResolved { .. } => Change::Run(RunChange::Start),
        Event::PipelineStarted { .. } | Event::PipelineResumed {} => Change::Run(RunChange::Start),
        Event::PipelinePaused { .. } => Change::Run(RunChange::Status(RunStatus::Paused)),
        Event::PipelineWaiting { .. } => Change::Run(RunChange::Status(RunStatus::Waiting)),
        Event::PipelineCompleted { .. } => {
            Change::Run(RunChange::Finish(RunStatus::Succeeded, None))
        }
        Event::PipelineFailed { error, .. } => {
            Change::Run(RunChange::Finish(RunStatus::Failed, Some(&error.message)))
        }
        Event::PipelineCancelled { .. } => {
            Change::Run(RunChange::Finish(RunStatus::Cancelled, None))
        }
        Event::StepStarted {
            step,
            attempt,
            agent,
        } => Change::StepStarted {
            step: *step,
            attempt: *attempt,
            agent,
        },
        Event::StepCompleted { step, attempt, .. } => Change::Step(StepEnd {
            step: *step,
            status: StepStatus::Succeeded,
            finished: true,
            error: None,
            attempt: Some((*attempt, "succeeded")),
        }),
        Event::StepFailed {
            step,
            attempt,
            error,
        } => Change::Step(StepEnd {
            step: *step,
            status: StepStatus::Failed,
            finished: true,
            error: Some(&error.message),
            attempt: Some((*attempt, "failed")),
        }),
        Event::StepSkipped { step, .. } => Change::Step(StepEnd {
            step: *step,
            status: StepStatus::Skipped,
            finished: true,
            error: None,
            attempt: None,
        }),
        Event::StepInterrupted { step, attempt } => Change::Step(StepEnd {
            step: *step,
            status: StepStatus::Interrupted,
            finished: true,
            error: None,
            attempt: Some((*attempt, "interrupted")),
        }),
        Event::StepRestarted { step, .. } => Change::Step(StepEnd {
            step: *step,
            status: StepStatus::Pending,
            finished: false,
            error: None,
            attempt: None,
        }),
        Event::LlmCallCompleted {
            step,
            attempt,
            call,
            provider,
            model,
            request_hash,
            usage,
            latency_ms,
            ..
        } => Change::LlmCall(LlmCall {
            step: *step,
            attempt: *attempt,
            call: *call,
            provider,
            model,
            status: "ok",
            usage: *usage,
            latency_ms: *latency_ms,
            request_hash: Some(request_hash),
            error: None,
        }),
        Event::LlmCallFailed {
            step,
            attempt,
            call,
            provider,
            model,
            error,
            latency_ms,
        } => Change::LlmCall(LlmCall {
            step: *step,
            attempt: *attempt,
            call: *call,
            provider,
            model,
            status: "error",
            usage: Usage::default(),
            latency_ms: *latency_ms,
            request_hash: None,
            error: Some(&error.message),
        }),
        Event::ArtifactCreated { step, artifact } => Change::Artifact {
            step: *step,
            artifact,
        },
    }
}

/// The conflict events of a project's runs (each run's in log order) folded into the
/// conflicts they settled: a `conflict_resolved` completes the latest `conflict_detected`
/// of its run, step and number.
pub(crate) fn settled_conflicts(
    records: impl IntoIterator<Item = EventRecord>,
) -> Vec<botarmy_protocol::SettledConflict> {
    let mut found: HashMap<(RunId, u32, u32), botarmy_protocol::Conflict> = HashMap::new();
    let mut out = Vec::new();
    for r in records {
        match r.event {
            Event::ConflictDetected {
                step,
                conflict,
                detail,
                ..
            } => {
                found.insert((r.run_id, step, conflict), detail);
            }
            Event::ConflictResolved {
                step,
                conflict,
                resolution,
            } => {
                if let Some(c) = found.get(&(r.run_id, step, conflict)) {
                    out.push(botarmy_protocol::SettledConflict {
                        run_id: r.run_id,
                        conflict: c.clone(),
                        resolution,
                        resolved_at: r.at,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The error for an event about a step the run's plan does not have.
pub(crate) fn unknown_step(run_id: RunId, seq: u64, event: &Event, step: u32) -> StoreError {
    invalid(format!(
        "run {run_id} event {seq} ({}): step {step} is not in the run's plan",
        event.name()
    ))
}

/// A [`StoreError::InvalidInput`].
pub(crate) fn invalid(detail: String) -> StoreError {
    StoreError::InvalidInput { detail }
}

/// Parses a stored step status.
pub(crate) fn parse_step_status(s: &str) -> Option<StepStatus> {
    Some(match s {
        "pending" => StepStatus::Pending,
        "running" => StepStatus::Running,
        "interrupted" => StepStatus::Interrupted,
        "succeeded" => StepStatus::Succeeded,
        "failed" => StepStatus::Failed,
        "skipped" => StepStatus::Skipped,
        _ => return None,
    })
}

/// Parses a stored artifact kind.
pub(crate) fn parse_artifact_kind(s: &str) -> Option<botarmy_protocol::ArtifactKind> {
    Some(match s {
        "document" => botarmy_protocol::ArtifactKind::Document,
        "code" => botarmy_protocol::ArtifactKind::Code,
        _ => return None,
    })
}

/// A row value the binary does not understand (written by a newer version or by hand).
pub(crate) fn bad_value(table: &str, column: &str, value: &str) -> StoreError {
    StoreError::Backend(
        format!("{table}.{column} holds `{value}`, which this botarmy does not know").into(),
    )
}

/// Saturating conversions between the unsigned wire integers and SQL's signed ones.
pub(crate) fn sql_int(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// See [`sql_int`].
pub(crate) fn wire_int(x: i64) -> u64 {
    u64::try_from(x).unwrap_or(0)
}

/// See [`sql_int`].
pub(crate) fn wire_u32(x: i64) -> u32 {
    u32::try_from(x).unwrap_or(0)
}

/// The range of run ids a prefix denotes, for [`crate::Store::resolve_run`].
pub(crate) struct IdRange {
    /// Smallest id with the prefix.
    pub(crate) lo: uuid::Uuid,
    /// Largest id with the prefix.
    pub(crate) hi: uuid::Uuid,
}

/// Parses a run id or a prefix of one: hex digits, dashes ignored, at least 4.
pub(crate) fn id_range(input: &str) -> Result<IdRange, StoreError> {
    let hex: String = input
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_lowercase();
    if hex.len() < 4 || hex.len() > 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid(format!(
            "`{input}` is not a run id: expected a UUID or at least 4 of its hex digits"
        )));
    }
    let pad = |fill: char| -> Result<uuid::Uuid, StoreError> {
        let mut full = hex.clone();
        while full.len() < 32 {
            full.push(fill);
        }
        uuid::Uuid::parse_str(&full).map_err(|e| invalid(format!("`{input}`: {e}")))
    };
    Ok(IdRange {
        lo: pad('0')?,
        hi: pad('f')?,
    })
}
