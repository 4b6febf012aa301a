//! How long each phase of a run took, from its steps' attempts: what the run summary, `show`
//! and the REST run detail print.

use botarmy_protocol::{UnixMillis, Usage};
use serde::Serialize;

use crate::api::{AttemptRecord, StepRecord};

/// One phase of a run, as its attempts went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTime {
    /// The phase's name; empty for steps without a phase.
    pub phase: String,
    /// Indices of its steps, in plan order.
    pub steps: Vec<u32>,
    /// When its first attempt started.
    pub started_at: Option<UnixMillis>,
    /// When its last attempt ended, once none is running.
    pub finished_at: Option<UnixMillis>,
    /// Time some attempt of the phase was running: the union of the attempts' spans, so
    /// steps side by side count once and a wait at a gate between attempts not at all.
    pub busy_ms: u64,
    /// Attempts made, every step of the phase together.
    pub attempts: u32,
    /// Tokens and cost of its steps.
    pub usage: Usage,
}

/// The phases of `steps` in plan order, timed from `attempts`; an attempt still running
/// counts until `now`.
pub fn phase_times(
    steps: &[StepRecord],
    attempts: &[AttemptRecord],
    now: UnixMillis,
) -> Vec<PhaseTime> {
    let mut phases: Vec<PhaseTime> = Vec::new();
    let mut spans: Vec<Vec<(UnixMillis, UnixMillis)>> = Vec::new();
    let mut running: Vec<bool> = Vec::new();
    for step in steps {
        let name = step.phase.clone().unwrap_or_default();
        let i = match phases.iter().position(|p| p.phase == name) {
            Some(i) => i,
            None => {
                phases.push(PhaseTime {
                    phase: name,
                    steps: Vec::new(),
                    started_at: None,
                    finished_at: None,
                    busy_ms: 0,
                    attempts: 0,
                    usage: Usage::default(),
                });
                spans.push(Vec::new());
                running.push(false);
                phases.len() - 1
            }
        };
        let phase = &mut phases[i];
        phase.steps.push(step.step);
        phase.usage += step.usage;
        for a in attempts.iter().filter(|a| a.step == step.step) {
            phase.attempts += 1;
            phase.started_at = Some(
                phase
                    .started_at
                    .map_or(a.started_at, |s| s.min(a.started_at)),
            );
            let end = match a.finished_at {
                Some(end) => {
                    phase.finished_at = Some(phase.finished_at.map_or(end, |f| f.max(end)));
                    end
                }
                None => {
                    running[i] = true;
                    now
                }
            };
            spans[i].push((a.started_at, end.max(a.started_at)));
        }
    }
    for ((phase, mut spans), running) in phases.iter_mut().zip(spans).zip(running) {
        if running {
            phase.finished_at = None;
        }
        spans.sort_unstable();
        let mut busy = 0;
        let mut open: Option<(UnixMillis, UnixMillis)> = None;
        for (start, end) in spans {
            open = match open {
                Some((s, e)) if start <= e => Some((s, e.max(end))),
                Some((s, e)) => {
                    busy += e - s;
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some((s, e)) = open {
            busy += e - s;
        }
        phase.busy_ms = u64::try_from(busy).unwrap_or(0);
    }
    phases
}

#[cfg(test)]
mod tests {
    use super::*;
    use botarmy_protocol::StepStatus;

    fn step(i: u32, phase: &str, tokens: u64) -> StepRecord {
        StepRecord {
            step: i,
            key: format!("s{i}"),
            title: format!("step {i}"),
            phase: Some(phase.to_owned()),
            agent: "analyst".into(),
            status: StepStatus::Succeeded,
            attempt: 1,
            started_at: None,
            finished_at: None,
            usage: Usage {
                input_tokens: tokens,
                ..Usage::default()
            },
            error: None,
        }
    }

    fn attempt(step: u32, n: u32, from: i64, to: Option<i64>) -> AttemptRecord {
        AttemptRecord {
            step,
            attempt: n,
            status: if to.is_some() { "succeeded" } else { "running" }.into(),
            started_at: from,
            finished_at: to,
            usage: Usage::default(),
            error: None,
        }
    }

    #[test]
    fn steps_side_by_side_count_once_and_waits_between_attempts_not_at_all() {
        let steps = [
            step(0, "discovery", 10),
            step(1, "discovery", 5),
            step(2, "plan", 1),
        ];
        let attempts = [
            attempt(0, 1, 1_000, Some(3_000)),
            attempt(1, 1, 2_000, Some(4_000)),
            // Sent back at the gate an hour later, done again in 1 s.
            attempt(1, 2, 3_604_000, Some(3_605_000)),
            attempt(2, 1, 3_606_000, None),
        ];
        let phases = phase_times(&steps, &attempts, 3_610_000);
        assert_eq!(phases.len(), 2);
        let d = &phases[0];
        assert_eq!(
            (d.phase.as_str(), d.steps.clone()),
            ("discovery", vec![0, 1])
        );
        assert_eq!(
            (d.started_at, d.finished_at),
            (Some(1_000), Some(3_605_000))
        );
        assert_eq!(d.busy_ms, 3_000 + 1_000);
        assert_eq!((d.attempts, d.usage.input_tokens), (3, 15));
        let p = &phases[1];
        assert_eq!(
            (p.started_at, p.finished_at, p.busy_ms),
            (Some(3_606_000), None, 4_000)
        );
    }

    #[test]
    fn a_phase_not_started_has_no_times() {
        let phases = phase_times(&[step(0, "launch", 0)], &[], 5);
        assert_eq!(
            (
                phases[0].started_at,
                phases[0].finished_at,
                phases[0].busy_ms
            ),
            (None, None, 0)
        );
    }
}
