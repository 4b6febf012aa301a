//! Where tokens and money went: run breakdowns, project totals, agent/model statistics.

use std::sync::Arc;

use botarmy_protocol::{ErrorInfo, ErrorKind, Event, RunId, Usage};
use botarmy_store::{ModelStats, StatsFilter, Store, StoreError, UsageRow};

use crate::support::*;

/// A completed call of `provider`/`model` taking `latency_ms`.
fn ok_call(
    step: u32,
    call: u32,
    (provider, model): (&str, &str),
    usage: Usage,
    latency_ms: u64,
) -> Event {
    Event::LlmCallCompleted {
        step,
        attempt: 1,
        call,
        provider: provider.into(),
        model: model.into(),
        request_hash: format!("h{step}-{call}"),
        response: "ok".into(),
        tool_calls: Vec::new(),
        usage,
        latency_ms,
    }
}

fn failed_call(step: u32, call: u32, (provider, model): (&str, &str), latency_ms: u64) -> Event {
    Event::LlmCallFailed {
        step,
        attempt: 1,
        call,
        provider: provider.into(),
        model: model.into(),
        error: ErrorInfo::new(ErrorKind::Transient, "overloaded"),
        latency_ms,
    }
}

fn tokens(input: u64, output: u64, cached: u64, cost_usd: f64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_tokens: cached,
        cost_usd,
        calls: 1,
    }
}

const GPT: (&str, &str) = ("openai", "gpt-4o");
const CLAUDE: (&str, &str) = ("anthropic", "claude-sonnet-4-5");
const LOCAL: (&str, &str) = ("local", "smollm2");

/// Appends each batch at its time, in order, after the run's creation.
async fn play(store: &Arc<dyn Store>, run: RunId, batches: Vec<(i64, Vec<Event>)>) {
    let mut last = 1;
    for (at, events) in batches {
        let records = store.append(run, last, at, batch(events)).await.unwrap();
        last = records.last().unwrap().seq;
    }
}

/// A run of `plan(4)` (steps 0-1 in phase-0, 2-3 in phase-1; agents analyst, architect,
/// coder, analyst) whose calls are spread over providers, with failures.
async fn spread_run(store: &Arc<dyn Store>, project: &str, at: i64) -> RunId {
    let run = new_run_at(store, project, 4, RunId::new(), at).await;
    play(
        store,
        run,
        vec![
            (at + 1, vec![started(), step_started(0, 1, "analyst")]),
            (
                at + 2,
                vec![
                    failed_call(0, 0, GPT, 900),
                    ok_call(0, 1, GPT, tokens(1000, 200, 100, 0.004), 120),
                    ok_call(0, 2, CLAUDE, tokens(500, 100, 0, 0.003), 300),
                    step_completed(0, 1),
                ],
            ),
            (
                at + 3,
                vec![
                    step_started(1, 1, "architect"),
                    ok_call(1, 0, GPT, tokens(2000, 400, 0, 0.009), 200),
                    step_completed(1, 1),
                ],
            ),
            (
                at + 4,
                vec![
                    step_started(2, 1, "coder"),
                    ok_call(2, 0, LOCAL, tokens(300, 300, 0, 0.0), 50),
                    failed_call(2, 1, LOCAL, 10),
                    step_completed(2, 1),
                ],
            ),
            (
                at + 5,
                vec![
                    step_started(3, 1, "analyst"),
                    ok_call(3, 0, GPT, tokens(700, 70, 70, 0.002), 100),
                    step_completed(3, 1),
                ],
            ),
        ],
    )
    .await;
    run
}

fn total(rows: &[UsageRow]) -> Usage {
    let mut sum = Usage::default();
    for r in rows {
        sum += r.usage;
    }
    sum
}

fn assert_same_usage(a: Usage, b: Usage) {
    assert_eq!(
        (a.input_tokens, a.output_tokens, a.cached_tokens, a.calls),
        (b.input_tokens, b.output_tokens, b.cached_tokens, b.calls)
    );
    assert!((a.cost_usd - b.cost_usd).abs() < 1e-12, "{a:?} vs {b:?}");
}

pub async fn usage_breakdown_splits_a_run_and_sums_to_it(ctx: &Ctx) {
    let s = &ctx.store;
    let run = spread_run(s, "demo", 1_000).await;
    let rows = s.usage_breakdown(run).await.unwrap();
    type Key<'a> = (Option<&'a str>, &'a str, &'a str, &'a str, u64, u64);
    let keys: Vec<Key<'_>> = rows
        .iter()
        .map(|r| {
            (
                r.phase.as_deref(),
                r.agent.as_str(),
                r.provider.as_str(),
                r.model.as_str(),
                r.calls,
                r.failed_calls,
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            (
                Some("phase-0"),
                "analyst",
                "anthropic",
                "claude-sonnet-4-5",
                1,
                0
            ),
            (Some("phase-0"), "analyst", "openai", "gpt-4o", 2, 1),
            (Some("phase-0"), "architect", "openai", "gpt-4o", 1, 0),
            (Some("phase-1"), "coder", "local", "smollm2", 2, 1),
            (Some("phase-1"), "analyst", "openai", "gpt-4o", 1, 0),
        ],
        "plan order of each group's first step, then agent, provider, model"
    );
    let analyst_gpt = &rows[1];
    assert_same_usage(analyst_gpt.usage, tokens(1000, 200, 100, 0.004));
    assert_eq!(rows[3].usage.calls, 1, "only completed calls are in usage");
    // The rows add up to the run's own totals.
    let summary = s.get_run(run).await.unwrap();
    assert_same_usage(total(&rows), summary.usage);
    assert_eq!(summary.usage.calls, 5);
    assert!((summary.usage.cost_usd - 0.018).abs() < 1e-12);

    // A run without calls has no rows; a run that does not exist is an error.
    let quiet = new_run(s, "demo", 1).await;
    assert!(s.usage_breakdown(quiet).await.unwrap().is_empty());
    assert!(matches!(
        s.usage_breakdown(RunId::new()).await,
        Err(StoreError::NotFound { what: "run", .. })
    ));
}

pub async fn project_usage_totals_each_project(ctx: &Ctx) {
    let s = &ctx.store;
    let a1 = spread_run(s, "alpha", 1_000).await;
    let a2 = spread_run(s, "alpha", 2_000).await;
    let b = spread_run(s, "beta", 3_000).await;
    let idle = s.ensure_project("idle").await.unwrap();
    let all = s.project_usage(None).await.unwrap();
    let names: Vec<(&str, u64)> = all.iter().map(|p| (p.name.as_str(), p.runs)).collect();
    assert_eq!(names, vec![("alpha", 2), ("beta", 1), ("idle", 0)]);

    let mut alpha_expected = s.get_run(a1).await.unwrap().usage;
    alpha_expected += s.get_run(a2).await.unwrap().usage;
    assert_same_usage(all[0].usage, alpha_expected);
    assert_same_usage(all[1].usage, s.get_run(b).await.unwrap().usage);
    assert_eq!(all[2].usage, Usage::default());
    assert_eq!(all[2].project_id, idle.id);

    let beta_id = s.get_run(b).await.unwrap().project_id;
    let only = s.project_usage(Some(beta_id)).await.unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!((only[0].name.as_str(), only[0].runs), ("beta", 1));
    assert_eq!(only[0].usage.calls, 5);
    assert!(matches!(
        s.project_usage(Some(botarmy_protocol::ProjectId::new()))
            .await,
        Err(StoreError::NotFound {
            what: "project",
            ..
        })
    ));
}

fn find<'a>(stats: &'a [ModelStats], agent: &str, provider: &str) -> &'a ModelStats {
    stats
        .iter()
        .find(|m| m.agent == agent && m.provider == provider)
        .unwrap_or_else(|| panic!("no {agent}/{provider} in {stats:?}"))
}

pub async fn model_stats_per_agent_and_model_with_filters(ctx: &Ctx) {
    let s = &ctx.store;
    let early = spread_run(s, "alpha", 1_000).await;
    // A later run of another project: the analyst on GPT ten more times, two of them failing.
    let late = new_run_at(s, "beta", 1, RunId::new(), 50_000).await;
    let mut events = vec![started(), step_started(0, 1, "analyst")];
    for call in 0..10u32 {
        events.push(if call % 5 == 4 {
            failed_call(0, call, GPT, 5_000)
        } else {
            ok_call(
                0,
                call,
                GPT,
                tokens(100, 10, 0, 0.001),
                10 * u64::from(call + 1),
            )
        });
    }
    events.push(step_completed(0, 1));
    play(s, late, vec![(50_001, events)]).await;

    let all = s.model_stats(&StatsFilter::default()).await.unwrap();
    let keys: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|m| (m.agent.as_str(), m.provider.as_str(), m.model.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("analyst", "anthropic", "claude-sonnet-4-5"),
            ("analyst", "openai", "gpt-4o"),
            ("architect", "openai", "gpt-4o"),
            ("coder", "local", "smollm2"),
        ]
    );
    // analyst on GPT: early run 3 calls (1 failed; ok latencies 120, 100), late run 10
    // calls (2 failed; ok latencies 10, 20, 30, 40, 60, 70, 80, 90).
    let gpt = find(&all, "analyst", "openai");
    assert_eq!((gpt.calls, gpt.successes), (13, 10));
    assert!((gpt.success_rate - 10.0 / 13.0).abs() < 1e-12);
    // Sorted: 10 20 30 40 60 70 80 90 100 120 (failed calls' latencies are not counted).
    assert_eq!(
        (gpt.latency_p50_ms, gpt.latency_p90_ms, gpt.latency_p99_ms),
        (Some(60), Some(100), Some(120))
    );
    assert_eq!(gpt.usage.input_tokens, 1000 + 700 + 8 * 100);
    assert_eq!(gpt.usage.calls, 10);
    assert!((gpt.usage.cost_usd - (0.004 + 0.002 + 0.008)).abs() < 1e-12);
    let coder = find(&all, "coder", "local");
    assert_eq!(
        (coder.calls, coder.successes, coder.latency_p50_ms),
        (2, 1, Some(50))
    );
    assert_eq!(coder.success_rate, 0.5);

    // Since: only the late run's calls.
    let recent = s
        .model_stats(&StatsFilter {
            since: Some(50_000),
            ..StatsFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!((recent[0].calls, recent[0].successes), (10, 8));
    assert_eq!(
        (recent[0].latency_p50_ms, recent[0].latency_p90_ms),
        (Some(40), Some(90))
    );

    // Project: only the early run's calls.
    let alpha = s.get_run(early).await.unwrap().project_id;
    let in_alpha = s
        .model_stats(&StatsFilter {
            project: Some(alpha),
            ..StatsFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(in_alpha.len(), 4);
    assert_eq!(find(&in_alpha, "analyst", "openai").calls, 3);
    let mut summed = Usage::default();
    for m in &in_alpha {
        summed += m.usage;
    }
    assert_same_usage(summed, s.get_run(early).await.unwrap().usage);

    // Agent, combined with the others.
    let architect = s
        .model_stats(&StatsFilter {
            agent: Some("architect".into()),
            project: Some(alpha),
            since: Some(0),
        })
        .await
        .unwrap();
    assert_eq!(architect.len(), 1);
    assert_eq!(
        (architect[0].calls, architect[0].latency_p99_ms),
        (1, Some(200))
    );
    assert!(
        s.model_stats(&StatsFilter {
            agent: Some("nobody".into()),
            ..StatsFilter::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
}
