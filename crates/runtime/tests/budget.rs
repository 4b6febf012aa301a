//! Budgets: a run never spends past a limit; it waits, and continues once the limit is
//! raised, without repeating a call.

use std::sync::atomic::Ordering;

use botarmy_llm::PriceTable;
use botarmy_protocol::{Budget, Limit, RunStatus, StepStatus};
use tokio_util::sync::CancellationToken;

use crate::support::{request, runtime_with};

fn priced() -> PriceTable {
    PriceTable::from_toml(
        r#"
        as_of = "2026-11-01"
        [providers.instant.models."instant-1"]
        input_per_mtok = 1000.0
        output_per_mtok = 2000.0
        "#,
        "test",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usd_budget_stops_the_run_before_it_overspends_and_raising_it_continues() {
    let ctx = runtime_with(|r| r.with_pricing(priced())).await;
    let mut req = request("a todo app");
    req.options.budget = Budget {
        usd: Some(3.5),
        ..Budget::default()
    };
    let id = ctx.runtime.create_run("demo", req).await.unwrap();
    let state = ctx
        .runtime
        .drive(id, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Waiting);
    let reason = state.reason.clone().unwrap();
    assert!(
        reason.contains("run budget of $3.50 would be exceeded"),
        "{reason}"
    );
    assert!(reason.contains(&format!("botarmy resume {id}")), "{reason}");
    // Spent, by the store's own account, stays within the limit; some work was done.
    let summary = ctx.runtime.store().get_run(id).await.unwrap();
    assert!(summary.usage.cost_usd <= 3.5, "{:?}", summary.usage);
    assert!(summary.usage.cost_usd > 0.0);
    assert!(
        state
            .steps
            .iter()
            .any(|s| s.status == StepStatus::Succeeded)
    );
    assert!(
        state
            .steps
            .iter()
            .any(|s| s.status == StepStatus::Interrupted)
    );
    assert_eq!(
        ctx.provider.calls.load(Ordering::Relaxed),
        summary.usage.calls
    );

    // Resuming with the same budget goes on only while the limit allows (steps that were
    // refused because others held reservations may fit now), and never past it; at the
    // end it waits without calling anything.
    let mut calls = ctx.provider.calls.load(Ordering::Relaxed);
    loop {
        let again = ctx
            .runtime
            .resume(id, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(again.status, RunStatus::Waiting);
        let summary = ctx.runtime.store().get_run(id).await.unwrap();
        assert!(summary.usage.cost_usd <= 3.5, "{:?}", summary.usage);
        let now = ctx.provider.calls.load(Ordering::Relaxed);
        assert_eq!(now, summary.usage.calls);
        if now == calls {
            break;
        }
        calls = now;
    }

    // Raised: the run finishes, and no call is made twice.
    ctx.runtime
        .set_budget(
            id,
            Budget {
                usd: Some(1_000.0),
                ..Budget::default()
            },
        )
        .await
        .unwrap();
    let done = ctx
        .runtime
        .resume(id, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let summary = ctx.runtime.store().get_run(id).await.unwrap();
    assert_eq!(
        ctx.provider.calls.load(Ordering::Relaxed),
        summary.usage.calls
    );
    assert_eq!(summary.usage.calls as usize, done.steps.len());
    let log = ctx.runtime.store().read_events(id, 0, 0).await.unwrap();
    assert!(log.iter().any(|r| r.event.name() == "budget_changed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_and_agent_token_limits_stop_only_their_scope() {
    let ctx = runtime_with(|r| r).await;
    let mut req = request("a todo app");
    // The Build phase (the coder's) may use no tokens at all: everything before it runs.
    req.options.budget = Budget {
        phases: [(
            "build".to_string(),
            Limit {
                usd: None,
                tokens: Some(1),
            },
        )]
        .into(),
        ..Budget::default()
    };
    let state = ctx
        .runtime
        .start_run("demo", req, |_| {}, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Waiting);
    assert!(
        state
            .reason
            .as_deref()
            .unwrap()
            .contains("phase `Build` budget of 1 tokens")
    );
    let plan = state.plan.as_ref().unwrap();
    for (step, s) in plan.steps.iter().zip(&state.steps) {
        match step.phase.as_deref() {
            Some("Build") => assert_ne!(s.status, StepStatus::Succeeded, "{}", step.key),
            Some("Validate" | "Launch") => assert_eq!(s.status, StepStatus::Pending),
            _ => assert_eq!(s.status, StepStatus::Succeeded, "{}", step.key),
        }
    }

    // An agent limit: the analyst may not call at all.
    let mut req = request("another");
    req.options.budget = Budget {
        agents: [(
            "analyst".to_string(),
            Limit {
                usd: None,
                tokens: Some(10),
            },
        )]
        .into(),
        ..Budget::default()
    };
    let state = ctx
        .runtime
        .start_run("demo", req, |_| {}, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(state.status, RunStatus::Waiting);
    assert!(
        state
            .reason
            .as_deref()
            .unwrap()
            .contains("agent `analyst` budget of 10 tokens")
    );
    assert_eq!(state.usage.calls, 0);
}
