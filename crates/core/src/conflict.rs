//! Conflicts between a run's documents: the prompts that find and mediate them, reading the
//! agents' answers, what a human is asked when mediation fails, what a human's answer
//! decides, and the report a conflict check leaves behind. Pure functions; the runtime
//! makes the calls.

use std::collections::BTreeSet;

use botarmy_protocol::{
    Conflict, ConflictPosition, ConflictResolution, MediationRound, PlanStep, SettledConflict,
    Severity,
};
use serde::Serialize;

use crate::method::Method;
use crate::prompt::{Prompt, PromptError};

/// A document a conflict check compares: its artifact name, the agent that wrote it, and
/// its text.
#[derive(Debug, Clone, Copy)]
pub struct Compared<'a> {
    /// Artifact name (`technical-architecture.md`).
    pub name: &'a str,
    /// The agent whose step produced it.
    pub agent: &'a str,
    /// Its text.
    pub text: &'a str,
}

/// The words that answer a check that found nothing.
pub const NO_CONFLICTS: &str = "NO CONFLICTS";

/// Conflicts a check may report in one answer.
pub const MAX_CONFLICTS: usize = 3;

#[derive(Serialize)]
struct PositionView<'a> {
    agent: &'a str,
    title: String,
    artifact: &'a str,
    claim: &'a str,
}

impl Method {
    /// The messages that ask `step`'s agent to compare `documents` (the phase's first, named
    /// in `new`) for contradictions, fitted into `context_tokens`.
    pub fn conflict_check_prompt(
        &self,
        step: &PlanStep,
        idea: &str,
        new: &[&str],
        documents: &[(&str, &str)],
        context_tokens: u32,
    ) -> Result<Prompt, PromptError> {
        self.prompt_over(
            step,
            idea,
            "conflict-check.j2",
            documents,
            context_tokens,
            serde_json::json!({
                "idea": idea.trim(),
                "phase": step.phase.as_deref().unwrap_or("current"),
                "new": new,
            }),
        )
    }

    /// The messages that ask `step`'s agent, as mediator, for a resolution of `conflict`,
    /// with the earlier `rounds`, the project's `settled` conflicts that look alike, and the
    /// documents involved fitted into `context_tokens`.
    #[allow(clippy::too_many_arguments)]
    pub fn mediation_prompt(
        &self,
        step: &PlanStep,
        idea: &str,
        conflict: &Conflict,
        rounds: &[MediationRound],
        settled: &[&SettledConflict],
        documents: &[(&str, &str)],
        context_tokens: u32,
    ) -> Result<Prompt, PromptError> {
        self.prompt_over(
            step,
            idea,
            "mediation.j2",
            documents,
            context_tokens,
            serde_json::json!({
                "idea": idea.trim(),
                "conflict": {
                    "severity": severity_name(conflict.severity),
                    "description": conflict.description,
                    "positions": self.positions(&conflict.positions),
                },
                "settled": settled.iter().map(|s| serde_json::json!({
                    "description": s.conflict.description,
                    "resolution": s.resolution.resolution,
                    "by": s.resolution.by,
                })).collect::<Vec<_>>(),
                "rounds": rounds.iter().enumerate().map(|(i, r)| serde_json::json!({
                    "round": i + 1,
                    "proposal": r.proposal,
                    "score": format!("{:.2}", r.score),
                    "reasons": r.reasons,
                })).collect::<Vec<_>>(),
            }),
        )
    }

    /// The messages that ask `agent`, one side of `conflict`, how far it accepts
    /// `proposal` (its own system prompt: it answers as itself).
    pub fn agreement_prompt(
        &self,
        step: &PlanStep,
        idea: &str,
        agent: &str,
        conflict: &Conflict,
        proposal: &str,
    ) -> Result<Prompt, PromptError> {
        let as_agent = PlanStep {
            agent: agent.to_owned(),
            ..step.clone()
        };
        let (project, system) = self.system_prompt(&as_agent, idea)?;
        let (own, others): (Vec<&ConflictPosition>, Vec<&ConflictPosition>) =
            conflict.positions.iter().partition(|p| p.agent == agent);
        // An agent on both sides (two of its own documents) speaks for the first.
        let (own, others) = match own.split_first() {
            Some((first, rest)) => (*first, [rest, &others].concat()),
            None => (conflict.positions.first().unwrap_or(&EMPTY), others),
        };
        let others: Vec<ConflictPosition> = others.into_iter().cloned().collect();
        let user = self.prompts().render(
            "agreement.j2",
            serde_json::json!({
                "project_name": project,
                "conflict": { "description": conflict.description },
                "own": { "artifact": own.artifact, "claim": own.claim },
                "others": self.positions(&others),
                "proposal": proposal.trim(),
            }),
        )?;
        Ok(Prompt {
            system,
            user,
            sections: Vec::new(),
            context: Vec::new(),
        })
    }

    fn positions<'a>(&self, positions: &'a [ConflictPosition]) -> Vec<PositionView<'a>> {
        positions
            .iter()
            .map(|p| PositionView {
                agent: &p.agent,
                title: self
                    .agent(&p.agent)
                    .map_or_else(|| p.agent.clone(), |a| a.title.clone()),
                artifact: &p.artifact,
                claim: &p.claim,
            })
            .collect()
    }
}

static EMPTY: ConflictPosition = ConflictPosition {
    agent: String::new(),
    artifact: String::new(),
    claim: String::new(),
};

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

/// A grammar that lets a local model answer a conflict check only in the expected form,
/// naming only the compared documents.
pub fn check_grammar(documents: &[Compared<'_>]) -> String {
    let names: Vec<String> = documents.iter().map(|d| format!("{:?}", d.name)).collect();
    format!(
        "root ::= \"{NO_CONFLICTS}\" | conflict (\"\\n\" conflict)? (\"\\n\" conflict)?\n\
         conflict ::= \"CONFLICT: \" (\"high\" | \"medium\" | \"low\") \"\\nBETWEEN: \" doc \" | \" doc \
         \"\\nISSUE: \" line \"\\nA: \" line \"\\nB: \" line \"\\n\"\n\
         doc ::= {}\n\
         line ::= [^\\n]+",
        names.join(" | ")
    )
}

/// Reads a conflict check's answer: the conflicts in the expected form between two
/// different compared documents (up to [`MAX_CONFLICTS`]); anything else is ignored. The
/// agents are those of the documents.
pub fn parse_conflicts(answer: &str, documents: &[Compared<'_>]) -> Vec<Conflict> {
    let mut out = Vec::new();
    let mut lines = answer.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        let Some(severity) = field(line, "CONFLICT") else {
            continue;
        };
        let severity = match severity.to_ascii_lowercase().as_str() {
            "high" => Severity::High,
            "low" => Severity::Low,
            _ => Severity::Medium,
        };
        let mut between = None;
        let mut issue = None;
        let mut a = None;
        let mut b = None;
        while let Some(next) = lines.peek() {
            if field(next, "CONFLICT").is_some() {
                break;
            }
            let next = lines.next().unwrap_or_default();
            if let Some(v) = field(next, "BETWEEN") {
                between = v.split_once('|').map(|(x, y)| (x.trim(), y.trim()));
            } else if let Some(v) = field(next, "ISSUE") {
                issue = Some(v);
            } else if let Some(v) = field(next, "A") {
                a = Some(v);
            } else if let Some(v) = field(next, "B") {
                b = Some(v);
            }
        }
        let (Some((x, y)), Some(issue), Some(a), Some(b)) = (between, issue, a, b) else {
            continue;
        };
        let find = |name: &str| {
            let name = name.trim_matches(|c| c == '"' || c == '`');
            documents.iter().find(|d| d.name == name)
        };
        let (Some(dx), Some(dy)) = (find(x), find(y)) else {
            continue;
        };
        if dx.name == dy.name || issue.is_empty() || a.is_empty() || b.is_empty() {
            continue;
        }
        out.push(Conflict {
            severity,
            description: issue.to_owned(),
            positions: vec![
                ConflictPosition {
                    agent: dx.agent.to_owned(),
                    artifact: dx.name.to_owned(),
                    claim: a.to_owned(),
                },
                ConflictPosition {
                    agent: dy.agent.to_owned(),
                    artifact: dy.name.to_owned(),
                    claim: b.to_owned(),
                },
            ],
        });
        if out.len() == MAX_CONFLICTS {
            break;
        }
    }
    out
}

/// The value of a `KEY: value` line (key without case, markdown emphasis ignored).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let line = line.trim_start_matches(['*', '-', ' ', '#']);
    let (k, v) = line.split_once(':')?;
    k.trim_matches(['*', ' '])
        .eq_ignore_ascii_case(key)
        .then(|| v.trim().trim_matches('*').trim())
}

/// A grammar that lets a local model answer an agreement question only in the expected
/// form.
pub const AGREEMENT_GRAMMAR: &str =
    "root ::= \"AGREEMENT: \" (\"0.\" [0-9] | \"1.0\") \" - \" [^\\n]+";

/// Reads an agent's agreement with a proposal: the number (clamped to 0..1) and the
/// reason; none when the answer has no `AGREEMENT:` line with a number.
pub fn parse_agreement(answer: &str) -> Option<(f64, String)> {
    answer.lines().find_map(|line| {
        let rest = field(line, "AGREEMENT")?;
        let number: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let value: f64 = number.parse().ok()?;
        let reason = rest[number.len()..]
            .trim_start_matches([' ', '-', '–', ':', ','])
            .trim();
        Some((value.clamp(0.0, 1.0), reason.to_owned()))
    })
}

/// The question a human gets when mediation did not settle `conflict`: the positions side
/// by side, the best proposal, and the answers understood.
pub fn escalation_question(conflict: &Conflict, rounds: &[MediationRound]) -> String {
    let mut q = format!(
        "Conflict ({}): {}\n",
        severity_name(conflict.severity),
        conflict.description
    );
    for (i, p) in conflict.positions.iter().enumerate() {
        q.push_str(&format!(
            "  [{}] {} in {}: {}\n",
            i + 1,
            p.agent,
            p.artifact,
            p.claim
        ));
    }
    match best_round(rounds) {
        Some(best) => q.push_str(&format!(
            "Mediation tried {} time(s); the best proposal reached agreement {:.2} (needs {:.2}):\n  {}\n",
            rounds.len(),
            best.score,
            botarmy_protocol::RESOLUTION_SCORE,
            one_line(&best.proposal)
        )),
        None => q.push_str("Mediation produced no proposal.\n"),
    }
    q.push_str(
        "Answer with the number of the position that holds, `accept` for the best proposal, \
         or write the resolution yourself.",
    );
    q
}

/// The round whose proposal won the most agreement (the earliest among equals).
pub fn best_round(rounds: &[MediationRound]) -> Option<&MediationRound> {
    rounds
        .iter()
        .fold(None, |best: Option<&MediationRound>, r| match best {
            Some(b) if b.score >= r.score => Some(b),
            _ => Some(r),
        })
}

/// What a human's answer to [`escalation_question`] decides: a position's number (or its
/// agent or document) keeps that position, `accept` takes the best proposal, anything else
/// is the resolution in the human's own words.
pub fn human_resolution(answer: &str, conflict: &Conflict, rounds: &[MediationRound]) -> String {
    let a = answer.trim();
    let lower = a.trim_matches(['[', ']', '.']).to_ascii_lowercase();
    let chosen = lower
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| conflict.positions.get(i))
        .or_else(|| {
            conflict
                .positions
                .iter()
                .find(|p| p.artifact.eq_ignore_ascii_case(&lower))
        })
        .or_else(|| {
            // An agent's id names its position only when it holds just one.
            let mut of_agent = conflict
                .positions
                .iter()
                .filter(|p| p.agent.eq_ignore_ascii_case(&lower));
            match (of_agent.next(), of_agent.next()) {
                (Some(p), None) => Some(p),
                _ => None,
            }
        });
    if let Some(p) = chosen {
        let others: Vec<&str> = conflict
            .positions
            .iter()
            .filter(|o| o.artifact != p.artifact)
            .map(|o| o.artifact.as_str())
            .collect();
        return format!(
            "{} holds: {} ({} is to follow it.)",
            p.artifact,
            p.claim,
            others.join(", ")
        );
    }
    if matches!(lower.as_str(), "accept" | "a" | "yes" | "approve")
        && let Some(best) = best_round(rounds)
    {
        return best.proposal.trim().to_owned();
    }
    a.to_owned()
}

/// The check's document: what was compared, each conflict with its positions, its
/// mediation and how it was settled.
pub fn report(
    phase: &str,
    compared: &[&str],
    conflicts: &[(Conflict, Vec<MediationRound>, Option<ConflictResolution>)],
) -> String {
    let mut doc = format!("# Conflict check: the {phase} phase\n\n");
    doc.push_str(&format!("Documents compared: {}.\n\n", compared.join(", ")));
    if conflicts.is_empty() {
        doc.push_str("No contradictions were found between these documents.\n");
        return doc;
    }
    for (i, (c, rounds, resolution)) in conflicts.iter().enumerate() {
        doc.push_str(&format!(
            "## Conflict {}: {} ({} severity)\n\n",
            i + 1,
            c.description,
            severity_name(c.severity)
        ));
        for p in &c.positions {
            doc.push_str(&format!(
                "- **{}** in `{}`: {}\n",
                p.agent, p.artifact, p.claim
            ));
        }
        for (r, round) in rounds.iter().enumerate() {
            doc.push_str(&format!(
                "\n### Mediation round {} (agreement {:.2})\n\n{}\n",
                r + 1,
                round.score,
                round.proposal.trim()
            ));
            for reason in &round.reasons {
                doc.push_str(&format!("\n- {reason}"));
            }
            if !round.reasons.is_empty() {
                doc.push('\n');
            }
        }
        match resolution {
            Some(r) => {
                let how = match r.score {
                    Some(s) => format!("by {} (agreement {s:.2})", r.by),
                    None => format!("by {}", r.by),
                };
                doc.push_str(&format!(
                    "\n### Resolution, {how}\n\n{}\n\n",
                    r.resolution.trim()
                ));
            }
            None => doc.push_str("\n### Not settled\n\n"),
        }
    }
    doc
}

/// The conflicts settled so far, as a document for the steps that come after them.
pub fn settled_context(settled: &[(&Conflict, &ConflictResolution)]) -> String {
    let mut doc = String::from(
        "# Settled conflicts\n\nThese contradictions between earlier documents were settled; \
         where a document says otherwise, the resolution holds.\n",
    );
    for (c, r) in settled {
        let sides: Vec<String> = c
            .positions
            .iter()
            .map(|p| format!("{} ({})", p.artifact, p.agent))
            .collect();
        doc.push_str(&format!(
            "\n- {} [{}] Resolution: {}\n",
            c.description,
            sides.join(" vs "),
            one_line(&r.resolution)
        ));
    }
    doc
}

/// Up to `n` of a project's settled conflicts most like `conflict`: ranked by the words
/// their descriptions and positions share (documents in common count extra); those with
/// nothing in common are left out.
pub fn similar<'a>(
    settled: &'a [SettledConflict],
    conflict: &Conflict,
    n: usize,
) -> Vec<&'a SettledConflict> {
    let words = |c: &Conflict| -> BTreeSet<String> {
        let mut text = c.description.clone();
        for p in &c.positions {
            text.push(' ');
            text.push_str(&p.claim);
        }
        text.split(|ch: char| !ch.is_alphanumeric())
            .filter(|w| w.len() > 3)
            .map(str::to_lowercase)
            .collect()
    };
    let docs = |c: &Conflict| -> BTreeSet<String> {
        c.positions.iter().map(|p| p.artifact.clone()).collect()
    };
    let mine = words(conflict);
    let my_docs = docs(conflict);
    let mut scored: Vec<(f64, usize)> = settled
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let theirs = words(&s.conflict);
            let shared = mine.intersection(&theirs).count();
            let union = mine.union(&theirs).count().max(1);
            let same_docs = my_docs.intersection(&docs(&s.conflict)).count();
            let score = shared as f64 / union as f64 + 0.1 * same_docs as f64;
            (shared > 0).then_some((score, i))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(n)
        .map(|(_, i)| &settled[i])
        .collect()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs() -> Vec<Compared<'static>> {
        vec![
            Compared {
                name: "user-requirements.md",
                agent: "analyst",
                text: "",
            },
            Compared {
                name: "technical-architecture.md",
                agent: "architect",
                text: "",
            },
        ]
    }

    fn conflict() -> Conflict {
        Conflict {
            severity: Severity::High,
            description: "Storage engine differs".into(),
            positions: vec![
                ConflictPosition {
                    agent: "analyst".into(),
                    artifact: "user-requirements.md".into(),
                    claim: "Data is kept in PostgreSQL".into(),
                },
                ConflictPosition {
                    agent: "architect".into(),
                    artifact: "technical-architecture.md".into(),
                    claim: "Data is kept in one SQLite file".into(),
                },
            ],
        }
    }

    #[test]
    fn conflicts_are_read_in_the_asked_form_and_tied_to_their_agents() {
        let answer = "CONFLICT: high\nBETWEEN: user-requirements.md | technical-architecture.md\n\
                      ISSUE: Storage engine differs\nA: Data is kept in PostgreSQL\n\
                      B: Data is kept in one SQLite file\n";
        assert_eq!(parse_conflicts(answer, &docs()), vec![conflict()]);
        assert!(parse_conflicts("NO CONFLICTS", &docs()).is_empty());
    }

    #[test]
    fn incomplete_or_unknown_conflicts_are_dropped() {
        // Unknown document, same document on both sides, a missing side, cut off.
        let answer = "CONFLICT: low\nBETWEEN: other.md | technical-architecture.md\nISSUE: x\nA: a\nB: b\n\
                      CONFLICT: low\nBETWEEN: user-requirements.md | user-requirements.md\nISSUE: x\nA: a\nB: b\n\
                      CONFLICT: medium\nBETWEEN: user-requirements.md | technical-architecture.md\nISSUE: x\nA: a\n\
                      CONFLICT: medium\nBETWEEN: user-requirements.md | technical-architecture.md\nISSUE: y\nA: a\nB: b";
        let found = parse_conflicts(answer, &docs());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].description, "y");
        assert_eq!(found[0].severity, Severity::Medium);
    }

    #[test]
    fn agreement_lines_give_a_clamped_number_and_a_reason() {
        assert_eq!(
            parse_agreement("AGREEMENT: 0.9 - fits the design"),
            Some((0.9, "fits the design".into()))
        );
        assert_eq!(
            parse_agreement("**Agreement:** 1.5 – too strong").map(|a| a.0),
            Some(1.0)
        );
        assert_eq!(parse_agreement("I agree"), None);
    }

    #[test]
    fn a_human_answer_picks_a_position_the_best_proposal_or_says_it_all() {
        let c = conflict();
        let rounds = vec![
            MediationRound {
                proposal: "Use SQLite now, PostgreSQL later".into(),
                score: 0.7,
                reasons: vec![],
            },
            MediationRound {
                proposal: "Use PostgreSQL".into(),
                score: 0.6,
                reasons: vec![],
            },
        ];
        assert!(human_resolution("2", &c, &rounds).starts_with("technical-architecture.md holds"));
        assert!(human_resolution("analyst", &c, &rounds).starts_with("user-requirements.md holds"));
        assert_eq!(
            human_resolution("accept", &c, &rounds),
            "Use SQLite now, PostgreSQL later"
        );
        assert_eq!(human_resolution("Use both", &c, &rounds), "Use both");
        let q = escalation_question(&c, &rounds);
        assert!(q.contains("[1] analyst in user-requirements.md: Data is kept in PostgreSQL"));
        assert!(q.contains("[2] architect in technical-architecture.md"));
        assert!(q.contains("agreement 0.70"));
    }

    #[test]
    fn similar_settled_conflicts_rank_by_shared_words() {
        let settled = |description: &str| SettledConflict {
            run_id: botarmy_protocol::RunId::new(),
            conflict: Conflict {
                description: description.into(),
                positions: Vec::new(),
                ..conflict()
            },
            resolution: ConflictResolution {
                resolution: "r".into(),
                by: "mediation".into(),
                score: Some(0.9),
            },
            resolved_at: 0,
        };
        let mut c = conflict();
        c.positions.clear();
        c.description = "Which storage engine keeps the todos".into();
        let past = vec![
            settled("Colour of the logo"),
            settled("Storage engine differs"),
            settled("Storage engine for todos differs"),
        ];
        let found: Vec<&str> = similar(&past, &c, 3)
            .iter()
            .map(|s| s.conflict.description.as_str())
            .collect();
        assert_eq!(
            found,
            ["Storage engine for todos differs", "Storage engine differs"]
        );
    }

    #[test]
    fn the_report_lists_positions_rounds_and_resolutions() {
        let doc = report(
            "Design",
            &["a.md", "b.md"],
            &[(
                conflict(),
                vec![MediationRound {
                    proposal: "Use SQLite".into(),
                    score: 0.9,
                    reasons: vec!["analyst: 0.9 - fine".into()],
                }],
                Some(ConflictResolution {
                    resolution: "Use SQLite".into(),
                    by: "mediation".into(),
                    score: Some(0.9),
                }),
            )],
        );
        assert!(doc.contains("## Conflict 1: Storage engine differs (high severity)"));
        assert!(doc.contains("### Mediation round 1 (agreement 0.90)"));
        assert!(doc.contains("### Resolution, by mediation (agreement 0.90)"));
        assert!(report("Plan", &["a.md"], &[]).contains("No contradictions"));
    }
}
