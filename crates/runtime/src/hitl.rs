//! Humans' decisions at gates: approving what a gate waits for, rejecting it with
//! feedback (its steps restart with the feedback in their prompt, their dependants after
//! them), and feedback on any finished step. Each is a durable event appended to the run's
//! log; the caller continues the run afterwards, as after an answer.

use botarmy_core::engine::RunState;
use botarmy_protocol::{
    ArtifactId, ArtifactKind, ArtifactRef, ErrorInfo, ErrorKind, Event, HitlDecision, RunId,
    StepStatus, TimeoutAction,
};
use botarmy_store::{AppendBatch, ArtifactBody};
use sha2::{Digest, Sha256};

use crate::files::write_under;
use crate::{Runtime, RuntimeError};

/// Who approved a gate when the run was started with `--yes`.
pub(crate) const AUTO_APPROVER: &str = "auto-approve (--yes)";

impl Runtime {
    /// Approves the outputs a gate of the run waits for: the gate over `step` when given,
    /// else the first gate that waits.
    pub async fn approve(
        &self,
        run_id: RunId,
        step: Option<u32>,
        by: &str,
    ) -> Result<RunState, RuntimeError> {
        self.append_outside(
            run_id,
            "it has finished; nothing waits for approval",
            |state| {
                let gate = waiting_gate(state, run_id, step)?;
                Ok(Event::HitlResolved {
                    gate,
                    decision: HitlDecision::Approved,
                    feedback: None,
                    by: by.to_owned(),
                })
            },
        )
        .await
    }

    /// Sends outputs back with `feedback`. When a gate waits, it is rejected and its steps
    /// (only `step`, when given) restart with the feedback; otherwise `step` must be a
    /// finished step, which restarts with it. Either way the steps that depend on a
    /// restarted step run again after it, and every attempt stays in the log.
    pub async fn reject(
        &self,
        run_id: RunId,
        step: Option<u32>,
        feedback: &str,
        by: &str,
    ) -> Result<RunState, RuntimeError> {
        let problem = |problem: String| RuntimeError::Answer { run_id, problem };
        if feedback.trim().is_empty() {
            return Err(problem(
                "feedback is empty; say what should change (--feedback TEXT)".into(),
            ));
        }
        self.append_all_outside(run_id, "it has finished; start a new run", |state| {
            let plan = state
                .plan
                .as_ref()
                .ok_or_else(|| problem("the run has no plan".into()))?;
            let waiting = waiting_gate(state, run_id, step).ok();
            let mut events = Vec::new();
            let restart: Vec<u32> = match waiting {
                Some(gate) => {
                    events.push(Event::HitlResolved {
                        gate,
                        decision: HitlDecision::Rejected,
                        feedback: Some(feedback.to_owned()),
                        by: by.to_owned(),
                    });
                    let covered = &plan.gates[gate as usize].steps;
                    match step {
                        Some(s) => vec![s],
                        // The documents go back; a conflict check over them runs again
                        // after them, as their dependant.
                        None => covered
                            .iter()
                            .copied()
                            .filter(|i| {
                                state.steps[*i as usize].status == StepStatus::Succeeded
                                    && plan.steps[*i as usize].kind
                                        == botarmy_protocol::StepKind::Work
                            })
                            .collect(),
                    }
                }
                None => {
                    let Some(s) = step else {
                        return Err(problem(
                            "no gate waits for a decision; name the finished step to send back"
                                .into(),
                        ));
                    };
                    let status = state.steps.get(s as usize).map(|st| st.status);
                    if status != Some(StepStatus::Succeeded) {
                        return Err(problem(format!(
                            "step `{}` is {}; only a finished step can be sent back",
                            plan.steps.get(s as usize).map_or("?", |p| p.key.as_str()),
                            status.map_or("missing", |st| st.as_str())
                        )));
                    }
                    vec![s]
                }
            };
            for s in restart {
                events.push(Event::StepRestarted {
                    step: s,
                    reason: format!("sent back by {by} with feedback"),
                    feedback: Some(feedback.to_owned()),
                    by: Some(by.to_owned()),
                });
            }
            Ok(events)
        })
        .await
    }
}

impl Runtime {
    /// The document a waiting gate would have a human amend: the latest document of `step`
    /// (given, or the gate's only step with one), with its name and content.
    pub async fn amendable(
        &self,
        run_id: RunId,
        step: Option<u32>,
    ) -> Result<(u32, String, String), RuntimeError> {
        let state = self.load(run_id).await?;
        let gate = waiting_gate(&state, run_id, step)?;
        let (step, artifact) = amendable_document(&state, run_id, gate, step)?;
        let content = self
            .store()
            .artifact_content(artifact.id)
            .await
            .map_err(|e| RuntimeError::Answer {
                run_id,
                problem: format!("the document `{}` cannot be read: {e}", artifact.name),
            })?;
        Ok((
            step,
            artifact.name.clone(),
            String::from_utf8_lossy(&content).into_owned(),
        ))
    }

    /// Approves what a gate waits for with a human's edit of one of its documents: the edit
    /// is stored (and written to the run's folder) as the document's next version, and the
    /// decision (`amended`) is logged with who made it.
    pub async fn amend(
        &self,
        run_id: RunId,
        step: Option<u32>,
        content: &str,
        by: &str,
    ) -> Result<RunState, RuntimeError> {
        let problem = |problem: String| RuntimeError::Answer { run_id, problem };
        if content.trim().is_empty() {
            return Err(problem("the amended document is empty".into()));
        }
        let state = self.load(run_id).await?;
        let out_dir = self.out_dir(&state);
        self.append_batch_outside(
            run_id,
            "it has finished; nothing waits for approval",
            |state| {
                let gate = waiting_gate(state, run_id, step)?;
                let (step, latest) = amendable_document(state, run_id, gate, step)?;
                write_under(&out_dir, &latest.name, content.as_bytes()).map_err(|e| {
                    problem(format!(
                        "cannot write {}: {e}",
                        out_dir.join(&latest.name).display()
                    ))
                })?;
                let id = ArtifactId::new();
                let artifact = ArtifactRef {
                    id,
                    name: latest.name.clone(),
                    kind: ArtifactKind::Document,
                    version: latest.version + 1,
                    sha256: hex::encode(Sha256::digest(content.as_bytes())),
                    bytes: content.len() as u64,
                };
                Ok(AppendBatch {
                    events: vec![
                        Event::ArtifactCreated { step, artifact },
                        Event::HitlResolved {
                            gate,
                            decision: HitlDecision::Amended,
                            feedback: None,
                            by: by.to_owned(),
                        },
                    ],
                    artifacts: vec![ArtifactBody {
                        id,
                        content: content.as_bytes().to_vec(),
                    }],
                })
            },
        )
        .await
    }

    /// Runs a finished (or failed, or skipped) step again, and what depends on it, without
    /// feedback: a manual restart.
    pub async fn restart(
        &self,
        run_id: RunId,
        step: u32,
        by: &str,
    ) -> Result<RunState, RuntimeError> {
        self.append_outside(run_id, "it has finished; start a new run", |state| {
            let status = state.steps.get(step as usize).map(|s| s.status);
            match status {
                None => Err(RuntimeError::Answer {
                    run_id,
                    problem: format!("step {step} does not exist"),
                }),
                Some(StepStatus::Running) => Err(RuntimeError::Answer {
                    run_id,
                    problem: format!("step {step} is running; pause the run first"),
                }),
                Some(_) => Ok(Event::StepRestarted {
                    step,
                    reason: format!("restarted by {by}"),
                    feedback: None,
                    by: Some(by.to_owned()),
                }),
            }
        })
        .await
    }
}

/// The gate that waits for a decision: the one over `step` when given, else the first.
fn waiting_gate(state: &RunState, run_id: RunId, step: Option<u32>) -> Result<u32, RuntimeError> {
    let plan = state.plan.as_ref();
    let found = state.gates.iter().enumerate().find(|(g, gs)| {
        gs.request.is_some()
            && step.is_none_or(|s| {
                plan.and_then(|p| p.gates.get(*g))
                    .is_some_and(|pg| pg.steps.contains(&s))
            })
    });
    match found {
        Some((g, _)) => Ok(g as u32),
        None => Err(RuntimeError::Answer {
            run_id,
            problem: match step {
                Some(s) => format!(
                    "no approval waits for step `{}`",
                    plan.and_then(|p| p.steps.get(s as usize))
                        .map_or("?", |p| p.key.as_str())
                ),
                None => "nothing waits for approval".into(),
            },
        }),
    }
}

/// The latest document of `step` (or of the gate's only step with one) under `gate`.
fn amendable_document(
    state: &RunState,
    run_id: RunId,
    gate: u32,
    step: Option<u32>,
) -> Result<(u32, ArtifactRef), RuntimeError> {
    let problem = |problem: String| RuntimeError::Answer { run_id, problem };
    let plan = state
        .plan
        .as_ref()
        .ok_or_else(|| problem("the run has no plan".into()))?;
    let covered = &plan.gates[gate as usize].steps;
    let latest_doc = |i: u32| {
        let s = state.steps.get(i as usize)?;
        let name = &s
            .artifacts
            .iter()
            .rev()
            .find(|a| a.kind == ArtifactKind::Document)?
            .name;
        state.artifacts.get(name).cloned()
    };
    let candidates: Vec<(u32, ArtifactRef)> = covered
        .iter()
        .filter(|i| step.is_none_or(|s| s == **i))
        .filter_map(|i| Some((*i, latest_doc(*i)?)))
        .collect();
    match &candidates[..] {
        [one] => Ok(one.clone()),
        [] => Err(problem("no document of the gate's steps to amend".into())),
        many => Err(problem(format!(
            "the gate covers several documents; name the step to amend ({})",
            many.iter()
                .map(|(i, _)| plan.steps[*i as usize].key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

impl Runtime {
    /// Fires the gate timeouts of `run_id` that are due at `now`: each logs
    /// `hitl_timed_out`; `approve` then approves in the human's stead (by `timeout`) and
    /// `fail` fails the run. None when nothing was due.
    pub async fn apply_timeouts(
        &self,
        run_id: RunId,
        now: botarmy_protocol::UnixMillis,
    ) -> Result<Option<RunState>, RuntimeError> {
        let state = self.load(run_id).await?;
        if state.status.is_terminal() || state.due_timeouts(now).is_empty() {
            return Ok(None);
        }
        let state = self
            .append_all_outside(run_id, "it has finished", |state| {
                let mut events = Vec::new();
                for (gate, timeout, waited_secs) in state.due_timeouts(now) {
                    events.push(Event::HitlTimedOut {
                        gate,
                        action: timeout.then,
                        waited_secs,
                    });
                    let title = state
                        .plan
                        .as_ref()
                        .and_then(|p| p.gates.get(gate as usize))
                        .map_or("a gate", |g| g.title.as_str());
                    match timeout.then {
                        TimeoutAction::Approve => events.push(Event::HitlResolved {
                            gate,
                            decision: HitlDecision::Approved,
                            feedback: None,
                            by: TIMEOUT_APPROVER.into(),
                        }),
                        TimeoutAction::Fail => {
                            events.push(Event::PipelineFailed {
                                error: ErrorInfo::new(
                                    ErrorKind::Fatal,
                                    format!(
                                        "nobody approved {title} within {}s (its gate's timeout fails the run)",
                                        timeout.after
                                    ),
                                ),
                                step: None,
                            });
                            break;
                        }
                        TimeoutAction::Remind | TimeoutAction::Escalate => {}
                    }
                }
                Ok(events)
            })
            .await?;
        Ok(Some(state))
    }

    /// Watches the waiting runs' gate timeouts until `cancel`: fires each when due (by
    /// `clock`, the caller's time in milliseconds) and tells `fired` the run and its state
    /// afterwards (a run a timeout approved is `running`: the caller continues it). Sleeps
    /// until the next deadline, at most `poll` (new requests are picked up at the next
    /// poll).
    pub async fn watch_gate_timeouts(
        &self,
        clock: impl Fn() -> botarmy_protocol::UnixMillis,
        poll: std::time::Duration,
        cancel: tokio_util::sync::CancellationToken,
        mut fired: impl FnMut(RunId, &RunState),
    ) -> Result<(), RuntimeError> {
        loop {
            let now = clock();
            let waiting = self
                .store()
                .list_runs(&botarmy_store::RunFilter {
                    status: Some(botarmy_protocol::RunStatus::Waiting),
                    ..botarmy_store::RunFilter::default()
                })
                .await?;
            let mut next: Option<botarmy_protocol::UnixMillis> = None;
            for run in waiting {
                let state = match self.apply_timeouts(run.id, now).await? {
                    Some(after) => {
                        fired(run.id, &after);
                        after
                    }
                    None => self.load(run.id).await?,
                };
                if let Some(d) = state.next_deadline() {
                    next = Some(next.map_or(d, |n: i64| n.min(d)));
                }
            }
            let wait = next.map_or(poll, |d| {
                poll.min(std::time::Duration::from_millis((d - now).max(0) as u64))
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return Ok(()),
            }
        }
    }
}

/// Who approved a gate whose timeout approves.
pub(crate) const TIMEOUT_APPROVER: &str = "timeout";
