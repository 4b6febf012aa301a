//! Execution of one attempt of one step: the LLM calls (reusing those the log already
//! holds), the document, and the code files it carries. Reports back to the run's driver.

use std::sync::Arc;
use std::time::Instant;

use botarmy_core::engine::{RecordedCall, RecordedToolCall};
use botarmy_llm::{Attempt, ChatMessage, ChatRequest, NextStep, Router, ToolCall};
use botarmy_protocol::{
    ArtifactKind, Assessment, ErrorInfo, ErrorKind, Event, GatePolicy, PlanStep, RunId, RunOptions,
};

use crate::agent_loop::{self, StepWorkspace};
use crate::limits::{Resource, Slots};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::method::MethodHandle;
use botarmy_core::assess::{
    combine, parse_checklist_answer, risk_cards, section_coverage, split_confidence,
};
use botarmy_core::budget::{Amount, Ledger};
use botarmy_core::document::{clarification_marker, extract_code_files, without_clarify_lines};
use botarmy_core::prompt::parse_condition_answer;
use botarmy_protocol::ChecklistItem;

/// A document or file a step produced.
#[derive(Debug, Clone)]
pub(crate) struct Produced {
    pub name: String,
    pub kind: ArtifactKind,
    pub content: String,
}

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum StepOutput {
    Produced(Vec<Produced>, Option<Assessment>),
    Skipped(String),
}

/// What an attempt tells its driver.
#[derive(Debug)]
pub(crate) enum StepMsg {
    /// An event to append now (LLM call records), in order.
    Record(Event),
    /// Making the run's worktrees ended (its events were sent as records before).
    Prepared(Result<crate::worktrees::Prepared, ErrorInfo>),
    /// The attempt ended. `records` are the LLM call records not sent yet: the last call's
    /// record travels with the outcome (nothing awaits between them), so both commit in
    /// one transaction.
    Done {
        step: u32,
        attempt: u32,
        records: Vec<Event>,
        outcome: Result<StepOutput, ErrorInfo>,
        duration_ms: u64,
    },
}

/// Everything one attempt needs; built by the driver from the run's state.
pub(crate) struct StepJob {
    pub run_id: RunId,
    pub step: u32,
    pub attempt: u32,
    pub plan_step: PlanStep,
    pub idea: String,
    pub method: MethodHandle,
    pub recorded: Vec<RecordedCall>,
    /// Tool calls the attempt completed before it was interrupted.
    pub recorded_tools: Vec<RecordedToolCall>,
    /// Humans' answers to the attempt's questions, by the tool call that asked.
    pub answers: std::collections::BTreeMap<u32, String>,
    /// Humans' feedback that sent the step back, oldest first.
    pub feedback: Vec<String>,
    /// The policy of the gate over the step (none: no gate), which decides what to measure.
    pub gate: Option<GatePolicy>,
    /// For a conflict check: what the log holds of its conflicts already (its events are
    /// not appended twice), the author of each document it compares, and the conflicts
    /// settled in the project's earlier runs.
    pub conflicts: crate::conflicts::Known,
    /// The run's worktree and the agent's tools there, for steps that work in it.
    pub workspace: Option<Arc<StepWorkspace>>,
    /// Whether the agent's model calls tools (otherwise files come in its answer).
    pub tool_calling: bool,
    /// Bound on tool-use turns.
    pub max_turns: u32,
    /// The process's shared slots (steps, LLM calls, tool processes).
    pub slots: Slots,
    /// Drop what an earlier attempt left uncommitted in the worktree before starting.
    pub discard_changes: bool,
    pub inputs: Vec<(String, String)>,
    pub options: RunOptions,
    /// Who answers: the agent's chain of providers, with retries and failover.
    pub models: Arc<Router>,
    /// The model asked first (for the request's digest; each route sends its own).
    pub model: String,
    /// The run's spending limits and what was spent.
    pub ledger: Arc<Ledger>,
    pub temperature: f32,
    /// The live bus and the calls streaming now.
    pub live: Arc<crate::streams::Live>,
    pub tx: mpsc::Sender<StepMsg>,
}

/// The artifact name a step's document is stored under.
pub(crate) fn document_name(step: &PlanStep) -> String {
    match &step.creates {
        Some(name) if name.rsplit('/').next().is_some_and(|n| n.contains('.')) => name.clone(),
        Some(name) => format!("{name}.md"),
        None => format!("{}.md", step.key.replace('/', "-")),
    }
}

/// Runs the attempt and reports its end to the driver.
pub(crate) async fn execute(job: StepJob) {
    let started = Instant::now();
    let mut calls = Calls {
        next: 0,
        unsent: Vec::new(),
    };
    let outcome = match job.slots.take(Resource::Step, &job).await {
        Ok(slot) => {
            let ready = match (&job.workspace, job.discard_changes) {
                (Some(ws), true) => ws.discard_changes().await,
                _ => Ok(()),
            };
            let mut outcome = match ready {
                Ok(()) => attempt(&job, &mut calls).await,
                Err(error) => Err(error),
            };
            if let (Ok(StepOutput::Produced(produced, _)), Some(ws)) =
                (&mut outcome, &job.workspace)
            {
                // What the step did to the worktree becomes a commit on the run's branch,
                // and its files artifacts of the run. The records of the calls go to the
                // driver first: a run paused during the commit keeps them.
                match calls.send_unsent(&job).await {
                    Ok(()) => match ws.commit(&job.plan_step, job.step, job.attempt).await {
                        Ok(files) => produced.extend(files),
                        Err(error) => outcome = Err(error),
                    },
                    Err(error) => outcome = Err(error),
                }
            }
            drop(slot);
            outcome
        }
        Err(error) => Err(error),
    };
    let done = StepMsg::Done {
        step: job.step,
        attempt: job.attempt,
        records: calls.unsent,
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    // The driver only stops listening when the run is being torn down; nothing to do then.
    let _ = job.tx.send(done).await;
}

async fn attempt(job: &StepJob, calls: &mut Calls) -> Result<StepOutput, ErrorInfo> {
    if job.plan_step.kind == botarmy_protocol::StepKind::ConflictCheck {
        return crate::conflicts::check(job, calls).await;
    }
    if let Some(condition) = &job.plan_step.condition {
        let messages = job.method.condition_prompt(
            &job.plan_step,
            &job.idea,
            &job.inputs,
            condition,
            &job.options,
        )?;
        let request = job.request(messages, 4, calls.next, Some(YES_NO_GRAMMAR));
        let (answer, _) = calls.chat(job, request).await?;
        if parse_condition_answer(&answer) != Some(true) {
            return Ok(StepOutput::Skipped(format!(
                "condition `{condition}` does not hold (answered by {})",
                job.plan_step.agent
            )));
        }
    }
    let messages = job.method.step_prompt(
        &job.plan_step,
        &job.idea,
        &job.inputs,
        &job.options,
        &job.feedback,
    )?;
    let text = match &job.workspace {
        Some(ws) if job.tool_calling && !ws.tools.is_empty() => {
            agent_loop::run(job, calls, ws, messages).await?
        }
        _ => document_mode(job, calls, messages).await?,
    };
    let (text, confidence) = split_confidence(&text);
    let mut document = job.method.finish_document(&job.plan_step, &job.idea, &text);
    if let Some(latest) = job.feedback.last() {
        document = revision_note(&document, job.attempt, latest);
    }
    let mut produced = Vec::new();
    let builds = job
        .plan_step
        .phase
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("build"));
    match &job.workspace {
        // Document mode: the files in the answer are written into the worktree (and
        // become artifacts when the step's work is committed).
        Some(ws) if !job.tool_calling || ws.tools.is_empty() => {
            let changes = ws.apply_files(job.step, &extract_code_files(&document))?;
            calls.unsent.extend(changes);
        }
        Some(_) => {}
        None if builds => {
            for file in extract_code_files(&document) {
                produced.push(Produced {
                    name: format!("code/{}", file.path),
                    kind: ArtifactKind::Code,
                    content: file.content,
                });
            }
        }
        None => {}
    }
    let assessment = match job.gate {
        Some(policy) => Some(assess(job, calls, policy, confidence, &document, &produced).await?),
        None => None,
    };
    produced.insert(
        0,
        Produced {
            name: document_name(&job.plan_step),
            kind: ArtifactKind::Document,
            content: document,
        },
    );
    Ok(StepOutput::Produced(produced, assessment))
}

/// One call for the document; when the model asks a human instead (a `CLARIFY:` line), the
/// question is recorded and the attempt stops; once answered, a second call gives the
/// document with the answer in the conversation.
async fn document_mode(
    job: &StepJob,
    calls: &mut Calls,
    messages: Vec<ChatMessage>,
) -> Result<String, ErrorInfo> {
    let request = job.request(
        messages.clone(),
        job.options.max_output_tokens,
        calls.next,
        None,
    );
    let text = calls.chat(job, request).await?.0;
    let Some((question, options)) = clarification_marker(&text) else {
        return Ok(without_clarify_lines(&text));
    };
    // Without tool calls, the attempt's one question is number 0.
    let Some(answer) = job.answers.get(&0) else {
        calls
            .record(
                job,
                Event::ClarificationRequested {
                    step: job.step,
                    attempt: job.attempt,
                    call: 0,
                    question: question.clone(),
                    options,
                },
            )
            .await?;
        return Err(ErrorInfo::new(
            ErrorKind::NeedsInput,
            format!("agent `{}` asked: {question}", job.plan_step.agent),
        ));
    };
    let mut follow = messages;
    follow.push(ChatMessage::assistant(text));
    follow.push(ChatMessage::user(format!(
        "The human answered: {answer}\n\nNow write the complete result, as asked above."
    )));
    let request = job.request(follow, job.options.max_output_tokens, calls.next, None);
    let text = calls.chat(job, request).await?.0;
    // A second question in the same attempt is not asked; what came is the result.
    Ok(without_clarify_lines(&text))
}

/// The document with a line under its title saying it was revised after `feedback`.
fn revision_note(document: &str, attempt: u32, feedback: &str) -> String {
    let one_line = feedback.split_whitespace().collect::<Vec<_>>().join(" ");
    let note = format!("> Revised in attempt {attempt} based on review feedback: {one_line}");
    match document.split_once('\n') {
        Some((title, rest)) if title.starts_with("# ") => {
            format!("{title}\n\n{note}\n{rest}")
        }
        _ => format!("{note}\n\n{document}"),
    }
}

/// Scores the attempt's output for its gate: the agent's confidence as it gave it, and
/// quality measured from the template's sections, the outputs, and (when the gate reads
/// quality and the agent has one) its checklist, executed by the agent in batches.
async fn assess(
    job: &StepJob,
    calls: &mut Calls,
    policy: GatePolicy,
    confidence: Option<botarmy_protocol::Score>,
    document: &str,
    produced: &[Produced],
) -> Result<Assessment, ErrorInfo> {
    let sections = section_coverage(
        document,
        &job.method.expected_sections(&job.plan_step, &job.idea),
    );
    let outputs = outputs_score(job, document, produced);
    let mut checklist = Vec::new();
    let mut checklist_score = None;
    if policy.uses_quality()
        && let Some((name, items)) = job.method.checklist_items(&job.plan_step)
    {
        let mut unanswered = 0;
        for batch in items.chunks(CHECKLIST_BATCH) {
            let messages = job.method.checklist_prompt(
                &job.plan_step,
                &job.idea,
                &name,
                batch,
                (&document_name(&job.plan_step), document),
                &job.options,
            )?;
            let max_tokens = (batch.len() as u32) * 8 + 16;
            let grammar = checklist_grammar(batch.len());
            let request = job.request(messages, max_tokens, calls.next, Some(&grammar));
            let (answer, _) = calls.chat(job, request).await?;
            for (item, verdict) in batch
                .iter()
                .zip(parse_checklist_answer(&answer, batch.len()))
            {
                match verdict {
                    Some(verdict) => checklist.push(ChecklistItem {
                        item: item.clone(),
                        verdict,
                    }),
                    None => unanswered += 1,
                }
            }
        }
        checklist_score = botarmy_core::assess::checklist_score(&name, &checklist, unanswered);
    }
    // A risk review's cards (other documents' severities, such as defects', are not risks).
    let reviews_risks = job.plan_step.agent == "risk"
        || job
            .plan_step
            .template
            .as_deref()
            .is_some_and(|t| t.contains("risk"));
    Ok(Assessment {
        confidence,
        quality: combine(&[sections, Some(outputs), checklist_score]),
        checklist,
        risks: if reviews_risks {
            risk_cards(document)
        } else {
            Vec::new()
        },
    })
}

/// Checklist items asked in one call.
const CHECKLIST_BATCH: usize = 40;

/// A grammar that lets a local model answer a batch of `n` items only in the expected form.
fn checklist_grammar(n: usize) -> String {
    let lines: Vec<String> = (1..=n)
        .map(|i| format!("\"{i}: \" verdict \"\\n\""))
        .collect();
    format!(
        "root ::= {}\nverdict ::= (\"pass\" | \"fail\" | \"partial\" | \"n/a\")",
        lines.join(" ")
    )
}

/// Whether the step produced what it should: a document with more than its title, and for
/// a step whose template asks for source files, at least one file.
fn outputs_score(job: &StepJob, document: &str, produced: &[Produced]) -> botarmy_protocol::Score {
    let body = document
        .lines()
        .skip_while(|l| l.starts_with("# ") || l.trim().is_empty())
        .any(|l| !l.trim().is_empty());
    let mut reasons = Vec::new();
    if !body {
        reasons.push("the document has nothing but its title".to_owned());
    }
    let wants_files = job.method.wants_code_files(&job.plan_step);
    if wants_files
        && !produced.iter().any(|p| p.kind == ArtifactKind::Code)
        && extract_code_files(document).is_empty()
    {
        reasons.push("no source files were produced".to_owned());
    }
    let parts = 1 + usize::from(wants_files);
    botarmy_protocol::Score {
        value: (parts - reasons.len()) as f64 / parts as f64,
        reasons,
    }
}

const YES_NO_GRAMMAR: &str = "root ::= (\"yes\" | \"no\")";

impl StepJob {
    /// Tells the driver to append `event` now.
    pub(crate) async fn report(&self, event: Event) -> Result<(), ErrorInfo> {
        self.tx
            .send(StepMsg::Record(event))
            .await
            .map_err(|_| cancelled())
    }

    pub(crate) fn request(
        &self,
        messages: Vec<ChatMessage>,
        max_tokens: u32,
        call: u32,
        grammar: Option<&str>,
    ) -> ChatRequest {
        ChatRequest {
            model: self.model.clone(),
            messages,
            max_tokens,
            temperature: self.temperature,
            seed: seed_for(&self.plan_step.key, self.attempt, call),
            stop: Vec::new(),
            grammar: grammar.map(str::to_string),
            tools: Vec::new(),
        }
    }
}

/// A seed that depends on what the call is, never on the run id or the clock, so the same
/// step of two runs asks the same question (replayable from a cassette).
fn seed_for(key: &str, attempt: u32, call: u32) -> u64 {
    let digest = Sha256::digest(format!("{key}\u{0}{attempt}\u{0}{call}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// Numbers the calls of an attempt and serves recorded ones instead of calling again.
pub(crate) struct Calls {
    pub next: u32,
    /// Records of completed calls not yet sent to the driver. A record is sent before
    /// anything else is awaited (the next call), or together with the attempt's outcome.
    pub unsent: Vec<Event>,
}

impl Calls {
    pub(crate) async fn send_unsent(&mut self, job: &StepJob) -> Result<(), ErrorInfo> {
        // One at a time, each removed once sent: dropped while waiting on a full channel,
        // the attempt keeps what it has not sent (and loses nothing it took out).
        while let Some(event) = self.unsent.first().cloned() {
            job.report(event).await?;
            self.unsent.remove(0);
        }
        Ok(())
    }

    /// Appends `event` after the records of the calls before it.
    pub(crate) async fn record(&mut self, job: &StepJob, event: Event) -> Result<(), ErrorInfo> {
        self.send_unsent(job).await?;
        job.report(event).await
    }

    /// Makes (or reuses) the attempt's next LLM call: the answer's text and the tool calls
    /// it asks for.
    pub(crate) async fn chat(
        &mut self,
        job: &StepJob,
        request: ChatRequest,
    ) -> Result<(String, Vec<ToolCall>), ErrorInfo> {
        self.chat_as(job, &job.plan_step.agent, request).await
    }

    /// [`Calls::chat`] answered by `agent` (its providers, its budget), for a step that
    /// asks other agents too (a conflict's sides in mediation).
    pub(crate) async fn chat_as(
        &mut self,
        job: &StepJob,
        agent_id: &str,
        request: ChatRequest,
    ) -> Result<(String, Vec<ToolCall>), ErrorInfo> {
        let call = self.next;
        self.next += 1;
        if let Some(recorded) = job.recorded.get(call as usize) {
            // Completed calls are never made again, even if the prompt would now differ.
            return Ok((recorded.response.clone(), recorded.tool_calls.clone()));
        }
        self.send_unsent(job).await?;
        let reservation = if job.ledger.is_limited() {
            let (tokens, usd) = job.models.estimate(agent_id, &request);
            let phase = job.plan_step.phase.as_deref().unwrap_or("");
            match job.ledger.reserve(phase, agent_id, Amount { usd, tokens }) {
                Ok(r) => Some(r),
                Err(exceeded) => {
                    return Err(ErrorInfo::new(ErrorKind::Budget, exceeded.message));
                }
            }
        } else {
            None
        };
        // Held until the call ends (streamed, retried or failed over).
        let _slot = job.slots.take(Resource::LlmCall, job).await?;
        let request_hash = request.digest();
        let started = Instant::now();
        // Its text is kept for clients that connect mid-call until the call ends.
        let stream = job
            .live
            .begin(job.run_id, job.step, job.attempt, call, agent_id);
        let on_token = |text: &str| stream.token(text);
        // Failed attempts are passed to the driver as they happen (in order: once one
        // cannot be sent at once, the rest wait with it for the end of the call).
        let overflow: std::sync::Mutex<Vec<Event>> = std::sync::Mutex::default();
        let on_attempt = |a: &Attempt<'_>| {
            let Err(error) = a.result else { return };
            let event = Event::LlmCallFailed {
                step: job.step,
                attempt: job.attempt,
                call,
                provider: a.provider.to_string(),
                model: a.model.to_string(),
                error: ErrorInfo::new(kind_of(error), describe(error, a.next)),
                latency_ms: a.latency.as_millis() as u64,
            };
            let mut waiting = overflow
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !waiting.is_empty() {
                waiting.push(event);
            } else if let Err(mpsc::error::TrySendError::Full(StepMsg::Record(event))) =
                job.tx.try_send(StepMsg::Record(event))
            {
                // (A closed channel means the driver is gone; the record has nowhere to go.)
                waiting.push(event);
            }
        };
        let result = job
            .models
            .chat(agent_id, &request, &on_token, &on_attempt)
            .await;
        let latency_ms = started.elapsed().as_millis() as u64;
        self.unsent.extend(
            overflow
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if let Some(reservation) = reservation {
            reservation.settle(match &result {
                Ok(response) => Amount {
                    usd: response.usage.cost_usd,
                    tokens: response.usage.total_tokens(),
                },
                Err(_) => Amount::default(),
            });
        }
        match result {
            Ok(response) => {
                let event = Event::LlmCallCompleted {
                    step: job.step,
                    attempt: job.attempt,
                    call,
                    provider: response.provider.clone(),
                    model: response.model.clone(),
                    request_hash,
                    response: response.text.clone(),
                    tool_calls: response.tool_calls.clone(),
                    usage: response.usage,
                    latency_ms,
                };
                self.unsent.push(event);
                Ok((response.text, response.tool_calls))
            }
            Err(error) => Err(ErrorInfo::new(kind_of(&error), error.to_string())),
        }
    }
}

fn kind_of(error: &botarmy_llm::LlmError) -> ErrorKind {
    match error {
        botarmy_llm::LlmError::Cancelled => ErrorKind::Cancelled,
        e if e.is_retryable() => ErrorKind::Transient,
        _ => ErrorKind::Fatal,
    }
}

/// The error of a failed attempt and what the router does about it.
fn describe(error: &botarmy_llm::LlmError, next: NextStep) -> String {
    match next {
        NextStep::Retry(wait) => format!("{error}; retrying in {:.1}s", wait.as_secs_f64()),
        NextStep::Failover => format!("{error}; trying the next provider"),
        NextStep::GiveUp | NextStep::Done => error.to_string(),
    }
}

pub(crate) fn cancelled() -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::Cancelled,
        "the run stopped while the step was running",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_stable_and_distinct() {
        assert_eq!(seed_for("a", 1, 0), seed_for("a", 1, 0));
        assert_ne!(seed_for("a", 1, 0), seed_for("a", 1, 1));
        assert_ne!(seed_for("a", 1, 0), seed_for("a", 2, 0));
    }

    #[test]
    fn document_names_follow_what_the_step_creates() {
        let mut step = PlanStep {
            key: "design/api".into(),
            title: "API".into(),
            phase: None,
            agent: "architect".into(),
            creates: Some("api-specification.md".into()),
            template: None,
            requires: vec![],
            depends_on: vec![],
            optional: false,
            condition: None,
            instruction: None,
            notes: None,
            tools: vec![],
            max_turns: None,
            kind: Default::default(),
        };
        assert_eq!(document_name(&step), "api-specification.md");
        step.creates = Some("sharded_docs".into());
        assert_eq!(document_name(&step), "sharded_docs.md");
        step.creates = None;
        assert_eq!(document_name(&step), "design-api.md");
    }
}
