//! A conflict check's attempt: the check's agent compares the documents, each conflict it
//! reports is mediated between the agents involved for up to [`MEDIATION_ROUNDS`] rounds,
//! and a conflict no proposal settles goes to a human (the step pauses until answered).
//!
//! Every LLM call is recorded and reused on resume like any step's, and the conflict
//! events the log already holds ([`Known`]) are not appended again: a resumed attempt
//! replays its calls and arrives where it stopped.

use std::sync::Arc;

use botarmy_core::conflict::{
    AGREEMENT_GRAMMAR, Compared, best_round, check_grammar, escalation_question, human_resolution,
    parse_agreement, parse_conflicts, report, similar,
};
use botarmy_core::engine::ConflictState;
use botarmy_protocol::{
    ArtifactKind, Conflict, ConflictResolution, ErrorInfo, ErrorKind, Event, MEDIATION_ROUNDS,
    MediationRound, RESOLUTION_SCORE, SettledConflict,
};

use crate::hitl::AUTO_APPROVER;
use crate::step::{Calls, Produced, StepJob, StepOutput, document_name};

/// Who settled a conflict whose proposal won enough agreement.
pub(crate) const MEDIATION: &str = "mediation";

/// Earlier settled conflicts shown to a mediator, at most.
const SIMILAR_SHOWN: usize = 3;

/// Output tokens of a check's answer (three conflicts in the asked form fit), at most.
const CHECK_TOKENS: u32 = 400;

/// Output tokens of a mediator's proposal (one short paragraph), at most.
const PROPOSAL_TOKENS: u32 = 200;

/// Output tokens of an agent's agreement line, at most.
const AGREEMENT_TOKENS: u32 = 64;

/// What a conflict check's job knows before it runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    /// The conflicts of the attempt the log holds (empty for a fresh attempt).
    pub found: Vec<ConflictState>,
    /// The agent whose step produced each compared document, by artifact name, and
    /// whether the step is of the check's own phase.
    pub authors: Vec<(String, String, bool)>,
    /// Conflicts settled in the project's earlier runs.
    pub settled: Arc<Vec<SettledConflict>>,
}

/// Runs the check; its document is the report of what was found and how it was settled.
pub(crate) async fn check(job: &StepJob, calls: &mut Calls) -> Result<StepOutput, ErrorInfo> {
    let known = &job.conflicts;
    let compared: Vec<Compared<'_>> = job
        .inputs
        .iter()
        .map(|(name, text)| Compared {
            name,
            agent: known
                .authors
                .iter()
                .find(|(n, ..)| n == name)
                .map_or(job.plan_step.agent.as_str(), |(_, a, _)| a.as_str()),
            text,
        })
        .collect();
    let names: Vec<&str> = compared.iter().map(|c| c.name).collect();
    let phase = job.plan_step.phase.as_deref().unwrap_or("current");
    let mut outcome = Vec::new();
    if compared.len() >= 2 {
        let new: Vec<&str> = compared
            .iter()
            .filter(|c| known.authors.iter().any(|(n, _, own)| n == c.name && *own))
            .map(|c| c.name)
            .collect();
        let docs: Vec<(&str, &str)> = compared.iter().map(|c| (c.name, c.text)).collect();
        let prompt = job
            .method
            .method()
            .conflict_check_prompt(
                &job.plan_step,
                &job.idea,
                &new,
                &docs,
                job.options.context_tokens,
            )
            .map_err(fatal)?;
        let request = job.request(
            crate::method::messages(prompt),
            CHECK_TOKENS.min(job.options.max_output_tokens),
            calls.next,
            Some(&check_grammar(&compared)),
        );
        let (answer, _) = calls.chat(job, request).await?;
        for (i, conflict) in parse_conflicts(&answer, &compared).into_iter().enumerate() {
            let i = i as u32;
            let seen = known.found.get(i as usize);
            if seen.is_none() {
                calls
                    .record(
                        job,
                        Event::ConflictDetected {
                            step: job.step,
                            attempt: job.attempt,
                            conflict: i,
                            detail: conflict.clone(),
                        },
                    )
                    .await?;
            }
            let (rounds, resolution) = settle(job, calls, i, &conflict, &compared, seen).await?;
            outcome.push((conflict, rounds, Some(resolution)));
        }
    }
    let document = report(phase, &names, &outcome);
    Ok(StepOutput::Produced(
        vec![Produced {
            name: document_name(&job.plan_step),
            kind: ArtifactKind::Document,
            content: document,
        }],
        None,
    ))
}

/// Mediates conflict `i` until a proposal wins enough agreement; otherwise the best one is
/// taken under `--yes`, or a human decides (the attempt stops until one has).
async fn settle(
    job: &StepJob,
    calls: &mut Calls,
    i: u32,
    conflict: &Conflict,
    compared: &[Compared<'_>],
    seen: Option<&ConflictState>,
) -> Result<(Vec<MediationRound>, ConflictResolution), ErrorInfo> {
    let settled = similar(&job.conflicts.settled, conflict, SIMILAR_SHOWN);
    let involved: Vec<(&str, &str)> = compared
        .iter()
        .filter(|c| conflict.positions.iter().any(|p| p.artifact == c.name))
        .map(|c| (c.name, c.text))
        .collect();
    let mut rounds: Vec<MediationRound> = Vec::new();
    let mut resolution = None;
    for round in 1..=MEDIATION_ROUNDS {
        let prompt = job
            .method
            .method()
            .mediation_prompt(
                &job.plan_step,
                &job.idea,
                conflict,
                &rounds,
                &settled,
                &involved,
                job.options.context_tokens,
            )
            .map_err(fatal)?;
        let request = job.request(
            crate::method::messages(prompt),
            PROPOSAL_TOKENS.min(job.options.max_output_tokens),
            calls.next,
            None,
        );
        let (proposal, _) = calls.chat(job, request).await?;
        let proposal = proposal.trim().to_owned();
        let mut score = if proposal.is_empty() { 0.0 } else { 1.0 };
        let mut reasons = Vec::new();
        for agent in conflict.agents() {
            let prompt = job
                .method
                .method()
                .agreement_prompt(&job.plan_step, &job.idea, &agent, conflict, &proposal)
                .map_err(fatal)?;
            let mut request = job.request(
                crate::method::messages(prompt),
                AGREEMENT_TOKENS.min(job.options.max_output_tokens),
                calls.next,
                Some(AGREEMENT_GRAMMAR),
            );
            request.model = job.models.route(&agent).model.clone();
            let (answer, _) = calls.chat_as(job, &agent, request).await?;
            let (value, why) = parse_agreement(&answer)
                .unwrap_or((0.0, "gave no agreement in the asked form".to_owned()));
            score = f64::min(score, value);
            reasons.push(format!("{agent}: {value:.2} - {why}"));
        }
        let outcome = MediationRound {
            proposal,
            score,
            reasons,
        };
        if seen.is_none_or(|s| s.rounds.len() < round as usize) {
            calls
                .record(
                    job,
                    Event::ConflictMediated {
                        step: job.step,
                        conflict: i,
                        round,
                        outcome: outcome.clone(),
                    },
                )
                .await?;
        }
        rounds.push(outcome);
        if score >= RESOLUTION_SCORE {
            resolution = Some(ConflictResolution {
                resolution: rounds[rounds.len() - 1].proposal.clone(),
                by: MEDIATION.to_owned(),
                score: Some(score),
            });
            break;
        }
    }
    let resolution = match resolution {
        Some(r) => r,
        None if job.options.auto_approve => {
            let best = best_round(&rounds);
            ConflictResolution {
                resolution: best.map(|b| b.proposal.clone()).unwrap_or_default(),
                by: AUTO_APPROVER.to_owned(),
                score: best.map(|b| b.score),
            }
        }
        None => match job.answers.get(&i) {
            Some(answer) => ConflictResolution {
                resolution: human_resolution(answer, conflict, &rounds),
                by: seen
                    .and_then(|s| s.answered_by.clone())
                    .unwrap_or_else(|| "a person".to_owned()),
                score: None,
            },
            None => {
                let question = escalation_question(conflict, &rounds);
                if seen.is_none_or(|s| s.escalation.is_none()) {
                    calls
                        .record(
                            job,
                            Event::ConflictEscalated {
                                step: job.step,
                                conflict: i,
                                question,
                            },
                        )
                        .await?;
                }
                return Err(ErrorInfo::new(
                    ErrorKind::NeedsInput,
                    format!(
                        "conflict `{}` needs a person's decision after {} round(s) of mediation",
                        conflict.description,
                        rounds.len()
                    ),
                ));
            }
        },
    };
    if seen.is_none_or(|s| s.resolution.is_none()) {
        calls
            .record(
                job,
                Event::ConflictResolved {
                    step: job.step,
                    conflict: i,
                    resolution: resolution.clone(),
                },
            )
            .await?;
    }
    Ok((rounds, resolution))
}

fn fatal(e: botarmy_core::prompt::PromptError) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::Fatal, e.to_string())
}
