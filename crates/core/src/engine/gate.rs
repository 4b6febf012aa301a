//! Gates: the engine's view of where a run waits for a human's approval, and what a gate
//! says about its steps' outputs (a pure function of their scores and its policy).

use botarmy_protocol::{Assessment, HitlDecision, Score, StepStatus};

use super::RunState;

/// The engine's view of one gate of the plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GateState {
    /// The approval asked for now (`hitl_requested` without its `hitl_resolved`).
    pub request: Option<GateRequest>,
    /// Who approved the current outputs of the gate's steps (reset when one restarts).
    pub approved_by: Option<String>,
    /// The last decision taken at the gate: what, by whom, with what feedback.
    pub last_decision: Option<(HitlDecision, String, Option<String>)>,
}

/// An approval a gate waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRequest {
    /// The question, for people.
    pub question: String,
    /// Why the gate asks.
    pub reasons: Vec<String>,
    /// The lowest confidence among its steps.
    pub confidence: Option<f64>,
    /// The lowest quality among its steps.
    pub quality: Option<f64>,
    /// When it was asked.
    pub requested_at: botarmy_protocol::UnixMillis,
    /// What its timeout did already, if it fired (it fires once).
    pub timed_out: Option<botarmy_protocol::TimeoutAction>,
}

/// What a gate says about the current outputs of its steps.
#[derive(Debug, Clone, PartialEq)]
pub enum GateVerdict {
    /// Some of its steps are not finished.
    NotReady,
    /// The outputs pass without a human.
    Pass,
    /// A human must approve them.
    Trip {
        /// Why.
        reasons: Vec<String>,
        /// The lowest confidence among its steps (none: one gave no score).
        confidence: Option<f64>,
        /// The lowest quality among its steps (none: one was not measured).
        quality: Option<f64>,
    },
}

impl RunState {
    /// How long gate `gate`'s approval may wait: the workflow's, else the run's default.
    pub fn gate_timeout(&self, gate: usize) -> Option<botarmy_protocol::GateTimeout> {
        let plan = self.plan.as_ref()?;
        plan.gates
            .get(gate)?
            .timeout
            .or(self.request.as_ref()?.options.gate_timeout)
    }

    /// Approvals whose wait has passed their gate's timeout at `now` (the runtime's clock):
    /// the gate, its timeout, and how long it has waited in seconds. Each fires once.
    pub fn due_timeouts(
        &self,
        now: botarmy_protocol::UnixMillis,
    ) -> Vec<(u32, botarmy_protocol::GateTimeout, u64)> {
        self.gates
            .iter()
            .enumerate()
            .filter_map(|(g, gs)| {
                let r = gs.request.as_ref().filter(|r| r.timed_out.is_none())?;
                let timeout = self.gate_timeout(g)?;
                let waited = (now - r.requested_at).max(0) as u64 / 1_000;
                (waited >= timeout.after).then_some((g as u32, timeout, waited))
            })
            .collect()
    }

    /// When the next timeout of a waiting approval falls due (none: no approval waits with
    /// a timeout that has not fired).
    pub fn next_deadline(&self) -> Option<botarmy_protocol::UnixMillis> {
        self.gates
            .iter()
            .enumerate()
            .filter_map(|(g, gs)| {
                let r = gs.request.as_ref().filter(|r| r.timed_out.is_none())?;
                Some(r.requested_at + self.gate_timeout(g)?.after as i64 * 1_000)
            })
            .min()
    }

    /// What gate `gate` says about its steps' current outputs.
    pub fn gate_verdict(&self, gate: usize) -> GateVerdict {
        let (Some(plan), Some(request)) = (&self.plan, &self.request) else {
            return GateVerdict::NotReady;
        };
        let Some(g) = plan.gates.get(gate) else {
            return GateVerdict::NotReady;
        };
        let mut done = Vec::new();
        for &i in &g.steps {
            let Some(s) = self.steps.get(i as usize) else {
                return GateVerdict::NotReady;
            };
            match s.status {
                // A conflict check is scored by its conflicts being settled, which it
                // waits for before it succeeds; its gate reads the documents' scores.
                StepStatus::Succeeded
                    if plan.steps[i as usize].kind == botarmy_protocol::StepKind::ConflictCheck => {
                }
                StepStatus::Succeeded => done.push((i, s)),
                StepStatus::Skipped => {}
                _ => return GateVerdict::NotReady,
            }
        }
        if done.is_empty() {
            return GateVerdict::Pass;
        }
        let policy = plan.gate_policy(gate, &request.options);
        // The weakest step speaks for the gate; its reasons are named after it.
        let lowest = |pick: fn(&Assessment) -> Option<&Score>| {
            let mut worst: Option<Score> = None;
            for (i, s) in &done {
                let score = s.assessment.as_ref().and_then(pick)?;
                if worst.as_ref().is_none_or(|w| score.value < w.value) {
                    let key = &plan.steps[*i as usize].key;
                    worst = Some(Score {
                        value: score.value,
                        reasons: score
                            .reasons
                            .iter()
                            .map(|r| format!("`{key}`: {r}"))
                            .collect(),
                    });
                }
            }
            worst
        };
        let confidence = lowest(|a| a.confidence.as_ref());
        let quality = lowest(|a| a.quality.as_ref());
        let mut reasons = policy.trips(confidence.as_ref(), quality.as_ref());
        // A high risk needs a person's acknowledgment, whatever the thresholds say (only
        // `auto` waives it).
        if policy != botarmy_protocol::GatePolicy::Auto {
            for (i, s) in &done {
                for risk in s.assessment.iter().flat_map(|a| &a.risks) {
                    if risk.severity == botarmy_protocol::Severity::High {
                        reasons.push(format!(
                            "high risk from `{}`: {} (mitigation: {})",
                            plan.steps[*i as usize].key,
                            risk.title,
                            if risk.mitigation.is_empty() {
                                "none given"
                            } else {
                                &risk.mitigation
                            }
                        ));
                    }
                }
            }
        }
        if reasons.is_empty() {
            GateVerdict::Pass
        } else {
            GateVerdict::Trip {
                reasons,
                confidence: confidence.map(|s| s.value),
                quality: quality.map(|s| s.value),
            }
        }
    }
}

/// A gate of a run as clients see it: its plan entry, the policy that applies, what it
/// says now, the approval it waits for and the last decision taken.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateView {
    /// Index in the plan's gates.
    pub gate: u32,
    /// `phase:<id>` or a step key.
    pub key: String,
    /// For people.
    pub title: String,
    /// The steps it covers.
    pub steps: Vec<u32>,
    /// The policy that applies in this run.
    pub policy: botarmy_protocol::GatePolicy,
    /// `not_ready`, `pass` or `trip`.
    pub verdict: &'static str,
    /// The approval it waits for.
    pub waiting: Option<WaitingView>,
    /// Who approved the current outputs.
    pub approved_by: Option<String>,
    /// The last decision: `approved` or `rejected`, by whom, with what feedback.
    pub last_decision: Option<DecisionView>,
}

/// What a waiting gate asks.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WaitingView {
    /// The question.
    pub question: String,
    /// Why it asks.
    pub reasons: Vec<String>,
    /// The lowest confidence among its steps.
    pub confidence: Option<f64>,
    /// The lowest quality among its steps.
    pub quality: Option<f64>,
    /// When it was asked.
    pub requested_at: botarmy_protocol::UnixMillis,
    /// When its timeout falls due, if it has one that has not fired.
    pub due_at: Option<botarmy_protocol::UnixMillis>,
    /// What its timeout did (`remind`, `escalate`), if it fired.
    pub timed_out: Option<botarmy_protocol::TimeoutAction>,
}

/// A decision taken at a gate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DecisionView {
    /// `approved` or `rejected`.
    pub decision: HitlDecision,
    /// Who.
    pub by: String,
    /// The feedback of a rejection.
    pub feedback: Option<String>,
}

impl RunState {
    /// Gate `gate` as clients see it (none: no such gate).
    pub fn gate_view(&self, gate: u32) -> Option<GateView> {
        let plan = self.plan.as_ref()?;
        let request = self.request.as_ref()?;
        let pg = plan.gates.get(gate as usize)?;
        let gs = self.gates.get(gate as usize)?;
        Some(GateView {
            gate,
            key: pg.key.clone(),
            title: pg.title.clone(),
            steps: pg.steps.clone(),
            policy: plan.gate_policy(gate as usize, &request.options),
            verdict: match self.gate_verdict(gate as usize) {
                GateVerdict::NotReady => "not_ready",
                GateVerdict::Pass => "pass",
                GateVerdict::Trip { .. } => "trip",
            },
            waiting: gs.request.as_ref().map(|r| WaitingView {
                question: r.question.clone(),
                reasons: r.reasons.clone(),
                confidence: r.confidence,
                quality: r.quality,
                requested_at: r.requested_at,
                due_at: match (r.timed_out, self.gate_timeout(gate as usize)) {
                    (None, Some(t)) => Some(r.requested_at + t.after as i64 * 1_000),
                    _ => None,
                },
                timed_out: r.timed_out,
            }),
            approved_by: gs.approved_by.clone(),
            last_decision: gs
                .last_decision
                .as_ref()
                .map(|(decision, by, feedback)| DecisionView {
                    decision: *decision,
                    by: by.clone(),
                    feedback: feedback.clone(),
                }),
        })
    }

    /// Every gate of the run as clients see it.
    pub fn gate_views(&self) -> Vec<GateView> {
        (0..self.gates.len() as u32)
            .filter_map(|g| self.gate_view(g))
            .collect()
    }
}
