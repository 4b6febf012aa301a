//! Spending limits (the runtime shares one [`Ledger`] per run among its steps), checked before every LLM call: what a run has spent (from its log), what
//! calls under way may still spend (reserved at their worst case: the whole prompt and the
//! whole output cap), and the next call's estimate, against the limits of the run, of the
//! step's phase and of its agent. A call that would pass one is not made.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::engine::RunState;
use botarmy_protocol::{Budget, Limit, Usage};

/// Money and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Amount {
    /// US dollars.
    pub usd: f64,
    /// Tokens.
    pub tokens: u64,
}

impl Amount {
    fn of(usage: &Usage) -> Self {
        Self {
            usd: usage.cost_usd,
            tokens: usage.total_tokens(),
        }
    }

    fn add(&mut self, other: Amount) {
        self.usd += other.usd;
        self.tokens += other.tokens;
    }

    fn sub(&mut self, other: Amount) {
        self.usd = (self.usd - other.usd).max(0.0);
        self.tokens = self.tokens.saturating_sub(other.tokens);
    }
}

/// Spent and reserved amounts per scope of one run.
#[derive(Debug)]
pub struct Ledger {
    budget: Budget,
    state: Mutex<Totals>,
}

#[derive(Debug, Default)]
struct Totals {
    run: Amount,
    phases: HashMap<String, Amount>,
    agents: HashMap<String, Amount>,
}

impl Totals {
    fn apply(&mut self, phase: &str, agent: &str, amount: Amount, add: bool) {
        let scopes = [
            &mut self.run,
            self.phases.entry(phase.to_ascii_lowercase()).or_default(),
            self.agents.entry(agent.to_owned()).or_default(),
        ];
        for scope in scopes {
            if add {
                scope.add(amount);
            } else {
                scope.sub(amount);
            }
        }
    }
}

/// Dollars with cents, or with as many decimals as a sum under a cent needs to show.
fn dollars(v: f64) -> String {
    if v == 0.0 || v.abs() >= 0.01 {
        format!("${v:.2}")
    } else {
        format!("${v:.6}")
    }
}

/// Why a call was not made.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    /// Which limit, what was spent and what the call could cost.
    pub message: String,
}

/// An estimate held against the limits while its call runs.
#[derive(Debug)]
pub struct Reservation<'a> {
    ledger: &'a Ledger,
    phase: String,
    agent: String,
    estimate: Amount,
    settled: bool,
}

impl Reservation<'_> {
    /// The call finished having spent `actual` (nothing for a failed call).
    pub fn settle(mut self, actual: Amount) {
        let mut t = self.ledger.lock();
        t.apply(&self.phase, &self.agent, self.estimate, false);
        t.apply(&self.phase, &self.agent, actual, true);
        self.settled = true;
    }
}

impl Drop for Reservation<'_> {
    /// A call abandoned (cancelled) gives its reservation back.
    fn drop(&mut self) {
        if !self.settled {
            self.ledger
                .lock()
                .apply(&self.phase, &self.agent, self.estimate, false);
        }
    }
}

impl Ledger {
    /// The limits of `state`'s run and what its log says was spent.
    pub fn new(state: &RunState) -> Self {
        let budget = state
            .request
            .as_ref()
            .map(|r| r.options.budget.clone())
            .unwrap_or_default();
        let mut totals = Totals::default();
        if let Some(plan) = &state.plan {
            for (step, s) in plan.steps.iter().zip(&state.steps) {
                totals.apply(
                    step.phase.as_deref().unwrap_or(""),
                    &step.agent,
                    Amount::of(&s.usage),
                    true,
                );
            }
        }
        Self {
            budget,
            state: Mutex::new(totals),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether there are limits at all.
    pub fn is_limited(&self) -> bool {
        !self.budget.is_empty()
    }

    /// Reserves `estimate` for a call of `agent` in `phase`, or says which limit it would
    /// pass.
    pub fn reserve(
        &self,
        phase: &str,
        agent: &str,
        estimate: Amount,
    ) -> Result<Reservation<'_>, Exceeded> {
        let mut t = self.lock();
        let phase_key = phase.to_ascii_lowercase();
        let checks: [(String, Option<Limit>, Amount); 3] = [
            ("run".into(), Some(self.budget.run_limit()), t.run),
            (
                format!("phase `{phase}`"),
                self.budget.phase_limit(phase).copied(),
                t.phases.get(&phase_key).copied().unwrap_or_default(),
            ),
            (
                format!("agent `{agent}`"),
                self.budget.agents.get(agent).copied(),
                t.agents.get(agent).copied().unwrap_or_default(),
            ),
        ];
        for (scope, limit, used) in checks {
            let Some(limit) = limit else { continue };
            if let Some(max) = limit.usd
                && used.usd + estimate.usd > max
            {
                return Err(Exceeded {
                    message: format!(
                        "the {scope} budget of {} would be exceeded: {} spent or reserved, the next {agent} call may cost up to {}",
                        dollars(max),
                        dollars(used.usd),
                        dollars(estimate.usd)
                    ),
                });
            }
            if let Some(max) = limit.tokens
                && used.tokens + estimate.tokens > max
            {
                return Err(Exceeded {
                    message: format!(
                        "the {scope} budget of {max} tokens would be exceeded: {} spent or reserved, the next {agent} call may use up to {}",
                        used.tokens, estimate.tokens
                    ),
                });
            }
        }
        t.apply(phase, agent, estimate, true);
        Ok(Reservation {
            ledger: self,
            phase: phase.to_owned(),
            agent: agent.to_owned(),
            estimate,
            settled: false,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use botarmy_protocol::RunId;

    use super::*;

    fn ledger(budget: Budget) -> Ledger {
        let mut state = RunState::new(RunId::new());
        state.request = Some(botarmy_protocol::RunRequest {
            idea: "x".into(),
            workflow: "w".into(),
            method: "m".into(),
            options: botarmy_protocol::RunOptions {
                budget,
                ..botarmy_protocol::RunOptions::default()
            },
        });
        Ledger::new(&state)
    }

    fn usd(v: f64) -> Amount {
        Amount { usd: v, tokens: 0 }
    }

    #[test]
    fn reservations_count_until_settled_and_are_returned_when_dropped() {
        let l = ledger(Budget {
            usd: Some(1.0),
            ..Budget::default()
        });
        assert!(l.is_limited());
        let a = l.reserve("Build", "coder", usd(0.6)).unwrap();
        // Held: a second call of the same size does not fit.
        let refused = l.reserve("Build", "coder", usd(0.6)).unwrap_err();
        assert!(
            refused.message.contains("run budget of $1.00"),
            "{}",
            refused.message
        );
        // Settled at its real (smaller) cost: room again.
        a.settle(usd(0.1));
        let b = l.reserve("Build", "coder", usd(0.6)).unwrap();
        drop(b);
        l.reserve("Plan", "analyst", usd(0.9))
            .unwrap()
            .settle(usd(0.9));
        assert!(l.reserve("Plan", "analyst", usd(0.01)).is_err());
    }

    #[test]
    fn phase_and_agent_limits_apply_to_their_scope_only() {
        let l = ledger(Budget {
            phases: [(
                "build".to_string(),
                Limit {
                    usd: None,
                    tokens: Some(100),
                },
            )]
            .into(),
            agents: [(
                "tester".to_string(),
                Limit {
                    usd: Some(0.5),
                    tokens: None,
                },
            )]
            .into(),
            ..Budget::default()
        });
        let tokens = |t| Amount {
            usd: 0.0,
            tokens: t,
        };
        // Phase names compare without case.
        let e = l.reserve("Build", "coder", tokens(101)).unwrap_err();
        assert!(
            e.message.contains("phase `Build` budget of 100 tokens"),
            "{}",
            e.message
        );
        l.reserve("Design", "coder", tokens(10_000))
            .unwrap()
            .settle(tokens(10_000));
        l.reserve("BUILD", "coder", tokens(100))
            .unwrap()
            .settle(tokens(100));
        assert!(l.reserve("build", "coder", tokens(1)).is_err());
        let e = l.reserve("Validate", "tester", usd(0.6)).unwrap_err();
        assert!(
            e.message.contains("agent `tester` budget of $0.50"),
            "{}",
            e.message
        );
        l.reserve("Validate", "deployer", usd(0.6)).unwrap();
    }

    #[test]
    fn no_budget_means_no_limit() {
        let l = ledger(Budget::default());
        assert!(!l.is_limited());
        l.reserve("x", "y", usd(1e12)).unwrap();
    }
}
