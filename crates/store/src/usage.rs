//! Where the money and the tokens went: per-run breakdowns, per-project totals and per
//! agent/model statistics, read from the recorded LLM calls. The rows and the arithmetic
//! (percentiles) are said once here for both backends; each backend only runs its queries.

use botarmy_protocol::{ProjectId, RunStatus, StepStatus, UnixMillis, Usage};
use serde::{Deserialize, Serialize};

/// Tokens and cost of one run for one (phase, agent, provider, model), from
/// [`crate::Store::usage_breakdown`]. Summing `usage` over a run's rows gives the run's
/// [`crate::RunSummary::usage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The phase of the steps that made the calls (`None`: steps without a phase).
    pub phase: Option<String>,
    /// The agent.
    pub agent: String,
    /// The provider asked.
    pub provider: String,
    /// The model asked.
    pub model: String,
    /// Calls recorded, completed and failed.
    pub calls: u64,
    /// Of those, the failed ones.
    pub failed_calls: u64,
    /// Sums over the completed calls (`usage.calls` counts them).
    pub usage: Usage,
}

/// Totals of one project, from [`crate::Store::project_usage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectUsage {
    /// The project.
    pub project_id: ProjectId,
    /// Its name.
    pub name: String,
    /// Runs it has.
    pub runs: u64,
    /// Sums over the completed LLM calls of all its runs (`usage.calls` counts them).
    pub usage: Usage,
}

/// Counts and sums over everything stored, from [`crate::Store::totals`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreTotals {
    /// Runs per state; states without runs are left out.
    pub runs: Vec<(RunStatus, u64)>,
    /// Steps per state, over every run; states without steps are left out.
    pub steps: Vec<(StepStatus, u64)>,
    /// LLM calls per provider and model, ordered by them.
    pub llm: Vec<LlmTotals>,
}

/// The recorded LLM calls of one provider and model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmTotals {
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Calls recorded, completed and failed.
    pub calls: u64,
    /// Of those, the failed ones.
    pub failed_calls: u64,
    /// Sums over the completed calls (`usage.calls` counts them).
    pub usage: Usage,
}

/// Which calls [`crate::Store::model_stats`] looks at. The default: all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsFilter {
    /// Only calls of this project's runs.
    pub project: Option<ProjectId>,
    /// Only calls recorded at or after this time.
    pub since: Option<UnixMillis>,
    /// Only calls of this agent.
    pub agent: Option<String>,
}

/// How one agent fared on one provider/model, from [`crate::Store::model_stats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    /// The agent.
    pub agent: String,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Calls recorded, completed and failed.
    pub calls: u64,
    /// Of those, the completed ones.
    pub successes: u64,
    /// `successes / calls`, from 0 to 1.
    pub success_rate: f64,
    /// Median latency of the completed calls, in milliseconds (`None`: none completed).
    pub latency_p50_ms: Option<u64>,
    /// 90th percentile latency of the completed calls.
    pub latency_p90_ms: Option<u64>,
    /// 99th percentile latency of the completed calls.
    pub latency_p99_ms: Option<u64>,
    /// Sums over the completed calls (`usage.calls` counts them).
    pub usage: Usage,
}

/// One recorded call as [`model_stats`] needs it.
pub(crate) struct CallSample {
    pub(crate) agent: String,
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) ok: bool,
    pub(crate) latency_ms: u64,
    /// Zero for failed calls.
    pub(crate) usage: Usage,
}

/// Folds calls into one [`ModelStats`] per (agent, provider, model), in that order.
/// Percentiles are nearest-rank over the completed calls' latencies: the smallest latency
/// at or below which at least p% of them lie.
pub(crate) fn model_stats(samples: impl IntoIterator<Item = CallSample>) -> Vec<ModelStats> {
    use std::collections::BTreeMap;
    struct Acc {
        calls: u64,
        latencies: Vec<u64>,
        usage: Usage,
    }
    let mut groups: BTreeMap<(String, String, String), Acc> = BTreeMap::new();
    for s in samples {
        let acc = groups
            .entry((s.agent, s.provider, s.model))
            .or_insert_with(|| Acc {
                calls: 0,
                latencies: Vec::new(),
                usage: Usage::default(),
            });
        acc.calls += 1;
        if s.ok {
            acc.latencies.push(s.latency_ms);
            let mut usage = s.usage;
            usage.calls = 1;
            acc.usage += usage;
        }
    }
    groups
        .into_iter()
        .map(|((agent, provider, model), mut acc)| {
            acc.latencies.sort_unstable();
            let successes = acc.latencies.len() as u64;
            ModelStats {
                agent,
                provider,
                model,
                calls: acc.calls,
                successes,
                success_rate: successes as f64 / acc.calls as f64,
                latency_p50_ms: percentile(&acc.latencies, 50),
                latency_p90_ms: percentile(&acc.latencies, 90),
                latency_p99_ms: percentile(&acc.latencies, 99),
                usage: acc.usage,
            }
        })
        .collect()
}

/// Nearest-rank percentile of sorted values: the value at rank ⌈p·n/100⌉ (1-based).
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p * n).div_ceil(100).clamp(1, n);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&v, 99), Some(10));
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[], 50), None);
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 99), Some(99));
        assert_eq!(percentile(&hundred, 90), Some(90));
    }

    #[test]
    fn stats_group_by_agent_and_model_and_ignore_failed_latencies() {
        let call = |agent: &str, model: &str, ok: bool, latency_ms: u64| CallSample {
            agent: agent.into(),
            provider: "p".into(),
            model: model.into(),
            ok,
            latency_ms,
            usage: if ok {
                Usage {
                    input_tokens: 10,
                    output_tokens: 2,
                    cached_tokens: 1,
                    cost_usd: 0.5,
                    calls: 0,
                }
            } else {
                Usage::default()
            },
        };
        let stats = model_stats([
            call("coder", "m", true, 30),
            call("analyst", "m", false, 9000),
            call("coder", "m", true, 10),
            call("coder", "m", false, 5000),
            call("coder", "m", true, 20),
        ]);
        assert_eq!(stats.len(), 2);
        let analyst = &stats[0];
        assert_eq!(
            (analyst.agent.as_str(), analyst.calls, analyst.successes),
            ("analyst", 1, 0)
        );
        assert_eq!(analyst.success_rate, 0.0);
        assert_eq!(analyst.latency_p50_ms, None);
        assert_eq!(analyst.usage, Usage::default());
        let coder = &stats[1];
        assert_eq!((coder.calls, coder.successes), (4, 3));
        assert_eq!(coder.success_rate, 0.75);
        assert_eq!(
            (
                coder.latency_p50_ms,
                coder.latency_p90_ms,
                coder.latency_p99_ms
            ),
            (Some(20), Some(30), Some(30))
        );
        assert_eq!(coder.usage.input_tokens, 30);
        assert_eq!(coder.usage.calls, 3);
        assert!((coder.usage.cost_usd - 1.5).abs() < 1e-12);
    }
}
