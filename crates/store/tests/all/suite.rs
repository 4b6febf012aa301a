//! The store suite: every case runs against each backend (see the macro in `all.rs`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use botarmy_protocol::{Event, RunId, RunStatus, StepStatus};
use botarmy_store::{AppendBatch, RunFilter, Store, StoreError};

use crate::support::*;

async fn log(store: &Arc<dyn Store>, run: RunId) -> Vec<(u64, Event)> {
    store
        .read_events(run, 0, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.event))
        .collect()
}

pub async fn create_append_read(ctx: &Ctx) {
    let s = &ctx.store;
    let project = s.ensure_project("demo").await.unwrap();
    let run = RunId::new();
    let first = s
        .create_run(run, created(project.id, "a todo app", 2), 1_000)
        .await
        .unwrap();
    assert_eq!((first.seq, first.run_id, first.at), (1, run, 1_000));

    let recs = s
        .append(
            run,
            1,
            2_000,
            batch(vec![started(), step_started(0, 1, "analyst")]),
        )
        .await
        .unwrap();
    assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert!(recs.iter().all(|r| r.at == 2_000 && r.run_id == run));

    let all = s.read_events(run, 0, 0).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], first);
    assert_eq!(all[1..], recs[..]);
    let page = s.read_events(run, 1, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].seq, 2);
    assert!(s.read_events(run, 3, 0).await.unwrap().is_empty());

    let summary = s.get_run(run).await.unwrap();
    assert_eq!(summary.last_seq, 3);
    assert_eq!(summary.status, RunStatus::Running);
    assert_eq!(summary.project_id, project.id);
    assert_eq!(summary.workflow, "sdlc");
    assert_eq!(summary.idea, "a todo app");
    assert_eq!(
        (summary.created_at, summary.started_at),
        (1_000, Some(2_000))
    );

    let empty = s
        .append(run, 3, 2_500, AppendBatch::default())
        .await
        .unwrap();
    assert!(empty.is_empty());
    assert_eq!(s.get_run(run).await.unwrap().last_seq, 3);

    let missing = RunId::new();
    assert!(matches!(
        s.get_run(missing).await,
        Err(StoreError::NotFound { what: "run", .. })
    ));
    assert!(matches!(
        s.append(missing, 0, 1, batch(vec![started()])).await,
        Err(StoreError::NotFound { what: "run", .. })
    ));
    assert!(s.location().len() > 3);
}

pub async fn create_run_checks_its_input(ctx: &Ctx) {
    let s = &ctx.store;
    let project = s.ensure_project("demo").await.unwrap();
    let run = RunId::new();
    assert!(matches!(
        s.create_run(run, started(), 1).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.create_run(run, created(botarmy_protocol::ProjectId::new(), "x", 1), 1)
            .await,
        Err(StoreError::NotFound {
            what: "project",
            ..
        })
    ));
    s.create_run(run, created(project.id, "x", 1), 1)
        .await
        .unwrap();
    s.append(run, 1, 2, batch(vec![started()])).await.unwrap();
    match s.create_run(run, created(project.id, "again", 1), 3).await {
        Err(StoreError::Conflict {
            expected: 0,
            actual: 2,
            run_id,
        }) => assert_eq!(run_id, run),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        s.append(run, 2, 3, batch(vec![created(project.id, "x", 1)]))
            .await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert_eq!(log(s, run).await.len(), 2);
    assert_eq!(s.get_run(run).await.unwrap().idea, "x");
}

pub async fn concurrent_appenders_get_a_gap_free_log(ctx: &Ctx) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let run = new_run(&ctx.store, "demo", 1).await;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&ctx.store);
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for i in 0..EACH {
                let mut expected = store.get_run(run).await.unwrap().last_seq;
                loop {
                    let ev = batch(vec![waiting(format!("{t}/{i}"))]);
                    match store.append(run, expected, 5, ev).await {
                        Ok(recs) => {
                            assert_eq!(recs[0].seq, expected + 1);
                            break;
                        }
                        Err(StoreError::Conflict {
                            actual,
                            expected: e,
                            ..
                        }) => {
                            assert_eq!(e, expected);
                            assert!(actual > expected);
                            expected = actual;
                            conflicts += 1;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for h in handles {
        conflicts += h.await.unwrap();
    }
    let events = log(&ctx.store, run).await;
    let seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=(TASKS * EACH + 1) as u64).collect::<Vec<_>>(),
        "gap or duplicate"
    );
    let reasons: HashSet<String> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::PipelineWaiting { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons.len(),
        TASKS * EACH,
        "an append was lost or written twice"
    );
    assert_eq!(
        ctx.store.get_run(run).await.unwrap().last_seq,
        (TASKS * EACH + 1) as u64
    );
    // Tasks raced for the same run, so most rounds somebody had to retry.
    assert!(
        conflicts > 0,
        "the appenders never raced; the test proves nothing"
    );
}

pub async fn conflict_writes_nothing(ctx: &Ctx) {
    let s = &ctx.store;
    let run = new_run(s, "demo", 2).await;
    s.append(run, 1, 10, batch(vec![started()])).await.unwrap();
    let before = s.get_run(run).await.unwrap();
    let (art, body) = artifact(0, "prd.md", 1, "# PRD");
    let stale = AppendBatch {
        events: vec![
            step_started(0, 1, "analyst"),
            llm_ok(0, 1, 0, usage(10, 5, 0.1)),
            art,
        ],
        artifacts: vec![body],
    };
    match s.append(run, 1, 20, stale).await {
        Err(StoreError::Conflict {
            expected: 1,
            actual: 2,
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(log(s, run).await.len(), 2);
    assert_eq!(s.get_run(run).await.unwrap(), before);
    assert!(s.artifacts(run).await.unwrap().is_empty());
    assert!(s.llm_calls(run).await.unwrap().is_empty());
    assert!(s.attempts(run).await.unwrap().is_empty());
    assert_eq!(s.steps(run).await.unwrap()[0].status, StepStatus::Pending);
}

/// Many requests at once (on SQLite they share group commits): the bad ones fail alone.
pub async fn failures_in_a_group_are_isolated(ctx: &Ctx) {
    let mut runs = Vec::new();
    for _ in 0..16 {
        runs.push(new_run(&ctx.store, "demo", 1).await);
    }
    let mut handles = Vec::new();
    for (i, run) in runs.iter().copied().enumerate() {
        let store = Arc::clone(&ctx.store);
        handles.push(tokio::spawn(async move {
            let events = match i % 4 {
                0 => batch(vec![started()]),
                1 => return (i, store.append(run, 7, 1, batch(vec![started()])).await), // stale
                2 => batch(vec![started(), step_started(5, 1, "nobody")]), // no such step
                _ => {
                    let (art, _) = artifact(0, "prd.md", 1, "body");
                    batch(vec![started(), art]) // body missing
                }
            };
            (i, store.append(run, 1, 1, events).await)
        }));
    }
    for h in handles {
        let (i, result) = h.await.unwrap();
        let run = runs[i];
        match (i % 4, result) {
            (0, Ok(recs)) => assert_eq!(recs.len(), 1),
            (1, Err(StoreError::Conflict { .. })) => {}
            (2 | 3, Err(StoreError::InvalidInput { .. })) => {}
            (k, other) => panic!("request kind {k}: unexpected {other:?}"),
        }
        let expected_len = if i % 4 == 0 { 2 } else { 1 };
        assert_eq!(log(&ctx.store, run).await.len(), expected_len, "run {i}");
        let status = ctx.store.get_run(run).await.unwrap().status;
        let expected = if i % 4 == 0 {
            RunStatus::Running
        } else {
            RunStatus::Pending
        };
        assert_eq!(status, expected, "run {i}");
    }
}

pub async fn projections_follow_a_realistic_run(ctx: &Ctx) {
    let s = &ctx.store;
    let run = new_run(s, "demo", 4).await;
    let mut last = 1;
    let mut at = 1_000;
    let mut push = async |events: Vec<Event>, bodies: Vec<botarmy_store::ArtifactBody>| {
        at += 100;
        let recs = s
            .append(
                run,
                last,
                at,
                AppendBatch {
                    events,
                    artifacts: bodies,
                },
            )
            .await
            .unwrap();
        last = recs.last().unwrap().seq;
    };

    push(vec![started()], vec![]).await; // at 1100
    // Step 0: one call, one artifact, done.
    let (a1, b1) = artifact(0, "prd.md", 1, "# PRD v1");
    push(
        vec![
            step_started(0, 1, "analyst"),
            llm_ok(0, 1, 0, usage(100, 50, 0.25)),
        ],
        vec![],
    )
    .await;
    push(vec![a1, step_completed(0, 1)], vec![b1]).await;
    // Pause and resume: started_at stays.
    push(
        vec![Event::PipelinePaused {
            reason: "user".into(),
        }],
        vec![],
    )
    .await;
    assert_eq!(s.get_run(run).await.unwrap().status, RunStatus::Paused);
    push(vec![Event::PipelineResumed {}], vec![]).await;
    // Step 1: attempt 1 fails after a failed call; attempt 2 succeeds with two artifacts,
    // one a new version of step 0's document.
    push(
        vec![
            step_started(1, 1, "architect"),
            llm_failed(1, 1, 0),
            step_failed(1, 1, "boom"),
        ],
        vec![],
    )
    .await;
    let st = s.steps(run).await.unwrap();
    assert_eq!(
        (st[1].status, st[1].error.as_deref()),
        (StepStatus::Failed, Some("boom"))
    );
    let (a2, b2) = artifact(1, "arch.md", 1, "# Architecture");
    let (a3, b3) = artifact(1, "prd.md", 2, "# PRD v2, longer");
    push(
        vec![
            step_started(1, 2, "architect"),
            llm_ok(1, 2, 0, usage(200, 80, 0.5)),
            llm_ok(1, 2, 1, usage(20, 8, 0.05)),
            a2,
            a3,
            step_completed(1, 2),
        ],
        vec![b3, b2],
    )
    .await;
    // Step 2 is interrupted, then restarted; step 3 skipped.
    push(
        vec![
            step_started(2, 1, "coder"),
            Event::StepInterrupted {
                step: 2,
                attempt: 1,
            },
        ],
        vec![],
    )
    .await;
    assert_eq!(
        s.steps(run).await.unwrap()[2].status,
        StepStatus::Interrupted
    );
    push(
        vec![Event::StepRestarted {
            step: 2,
            reason: "feedback".into(),
        }],
        vec![],
    )
    .await;
    push(
        vec![Event::StepSkipped {
            step: 3,
            reason: "optional".into(),
        }],
        vec![],
    )
    .await;
    push(
        vec![Event::PipelineWaiting {
            reason: "approval".into(),
        }],
        vec![],
    )
    .await;
    assert_eq!(s.get_run(run).await.unwrap().status, RunStatus::Waiting);
    push(
        vec![Event::PipelineCompleted {
            usage: usage(999, 999, 9.0),
            duration_ms: 1,
        }],
        vec![],
    )
    .await;

    let summary = s.get_run(run).await.unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(summary.started_at, Some(1_100), "started_at is set once");
    assert_eq!(summary.finished_at, Some(at));
    assert_eq!(summary.last_seq, last);
    assert_eq!(summary.error, None);
    // Run usage is the sum of the completed calls.
    assert_eq!(summary.usage.input_tokens, 320);
    assert_eq!(summary.usage.output_tokens, 138);
    assert_eq!(summary.usage.cached_tokens, 10 + 20 + 2);
    assert_eq!(summary.usage.calls, 3);
    assert!((summary.usage.cost_usd - 0.8).abs() < 1e-9);

    let steps = s.steps(run).await.unwrap();
    assert_eq!(steps.len(), 4);
    let st: Vec<_> = steps
        .iter()
        .map(|x| (x.step, x.status, x.attempt))
        .collect();
    assert_eq!(
        st,
        vec![
            (0, StepStatus::Succeeded, 1),
            (1, StepStatus::Succeeded, 2),
            (2, StepStatus::Pending, 1),
            (3, StepStatus::Skipped, 0),
        ]
    );
    assert_eq!(steps[0].key, "phase/step-0");
    assert_eq!(steps[0].title, "Step 0");
    assert_eq!(steps[0].phase.as_deref(), Some("phase-0"));
    assert_eq!(steps[1].agent, "architect");
    assert_eq!(steps[1].error, None, "a later success clears the error");
    assert_eq!(steps[1].usage.input_tokens, 220);
    assert_eq!(steps[1].usage.calls, 2);
    assert_eq!(steps[0].usage.input_tokens, 100);
    assert!(steps[0].started_at.is_some() && steps[0].finished_at.is_some());
    assert_eq!(steps[2].finished_at, None, "restarted");

    let attempts = s.attempts(run).await.unwrap();
    let at_: Vec<_> = attempts
        .iter()
        .map(|a| (a.step, a.attempt, a.status.as_str()))
        .collect();
    assert_eq!(
        at_,
        vec![
            (0, 1, "succeeded"),
            (1, 1, "failed"),
            (1, 2, "succeeded"),
            (2, 1, "interrupted")
        ]
    );
    assert_eq!(attempts[1].error.as_deref(), Some("boom"));
    assert_eq!(attempts[1].usage.calls, 0);
    assert_eq!(attempts[2].usage.input_tokens, 220);
    assert!(attempts[3].finished_at.is_some());

    let calls = s.llm_calls(run).await.unwrap();
    let c: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c.step,
                c.attempt,
                c.call,
                c.agent.as_str(),
                c.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        c,
        vec![
            (0, 1, 0, "analyst", "ok"),
            (1, 1, 0, "architect", "error"),
            (1, 2, 0, "architect", "ok"),
            (1, 2, 1, "architect", "ok"),
        ]
    );
    assert_eq!(calls[1].error.as_deref(), Some("rate limited"));
    assert_eq!(
        (calls[1].provider.as_str(), calls[1].model.as_str()),
        ("openai", "gpt-x")
    );
    assert_eq!(calls[0].usage.output_tokens, 50);
    assert_eq!(calls[0].latency_ms, 40);

    let arts = s.artifacts(run).await.unwrap();
    let a: Vec<_> = arts
        .iter()
        .map(|a| (a.step, a.artifact.name.as_str(), a.artifact.version))
        .collect();
    assert_eq!(
        a,
        vec![(0, "prd.md", 1), (1, "arch.md", 1), (1, "prd.md", 2)]
    );
    assert_eq!(
        s.artifact_content(arts[0].artifact.id).await.unwrap(),
        b"# PRD v1"
    );
    assert_eq!(
        s.artifact_content(arts[2].artifact.id).await.unwrap(),
        b"# PRD v2, longer"
    );
    assert_eq!(arts[2].artifact.bytes, 16);
    assert_eq!(arts[0].project_id, summary.project_id);
    assert!(matches!(
        s.artifact_content(botarmy_protocol::ArtifactId::new())
            .await,
        Err(StoreError::NotFound {
            what: "artifact",
            ..
        })
    ));

    // A failed run keeps its error.
    let run2 = new_run(s, "demo", 1).await;
    let failed = Event::PipelineFailed {
        error: botarmy_protocol::ErrorInfo::new(botarmy_protocol::ErrorKind::Fatal, "no model"),
        step: Some(0),
    };
    s.append(run2, 1, 5, batch(vec![started(), failed]))
        .await
        .unwrap();
    let r2 = s.get_run(run2).await.unwrap();
    assert_eq!(
        (r2.status, r2.error.as_deref(), r2.finished_at),
        (RunStatus::Failed, Some("no model"), Some(5))
    );
    let run3 = new_run(s, "demo", 1).await;
    s.append(
        run3,
        1,
        6,
        batch(vec![Event::PipelineCancelled {
            reason: "user".into(),
        }]),
    )
    .await
    .unwrap();
    assert_eq!(s.get_run(run3).await.unwrap().status, RunStatus::Cancelled);
}

pub async fn artifact_without_body_writes_nothing(ctx: &Ctx) {
    let s = &ctx.store;
    let run = new_run(s, "demo", 1).await;
    let (art, body) = artifact(0, "prd.md", 1, "content");
    let no_body = AppendBatch {
        events: vec![started(), art.clone()],
        artifacts: vec![],
    };
    let err = s.append(run, 1, 1, no_body).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("prd.md"), "{err}");

    let orphan = AppendBatch {
        events: vec![started()],
        artifacts: vec![body.clone()],
    };
    assert!(matches!(
        s.append(run, 1, 1, orphan).await,
        Err(StoreError::InvalidInput { .. })
    ));

    let mut short = body.clone();
    short.content.truncate(3);
    let wrong = AppendBatch {
        events: vec![art.clone()],
        artifacts: vec![short],
    };
    assert!(matches!(
        s.append(run, 1, 1, wrong).await,
        Err(StoreError::InvalidInput { .. })
    ));

    assert_eq!(log(s, run).await.len(), 1);
    assert!(s.artifacts(run).await.unwrap().is_empty());
    assert_eq!(s.get_run(run).await.unwrap().status, RunStatus::Pending);

    // The same version twice breaks the (run, name, version) key: refused, nothing written.
    let ok = AppendBatch {
        events: vec![art],
        artifacts: vec![body],
    };
    s.append(run, 1, 1, ok).await.unwrap();
    let (again, again_body) = artifact(0, "prd.md", 1, "other");
    let dup = AppendBatch {
        events: vec![started(), again],
        artifacts: vec![again_body],
    };
    assert!(matches!(
        s.append(run, 2, 1, dup).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert_eq!(log(s, run).await.len(), 2);
    assert_eq!(s.artifacts(run).await.unwrap().len(), 1);
    assert_eq!(s.get_run(run).await.unwrap().status, RunStatus::Pending);
}

pub async fn event_for_unknown_step_writes_nothing(ctx: &Ctx) {
    let s = &ctx.store;
    let run = new_run(s, "demo", 2).await;
    for bad in [
        step_started(2, 1, "coder"),
        llm_ok(7, 1, 0, usage(1, 1, 0.0)),
        step_completed(9, 1),
    ] {
        let err = s
            .append(run, 1, 1, batch(vec![started(), bad]))
            .await
            .unwrap_err();
        match &err {
            StoreError::InvalidInput { detail } => assert!(detail.contains("event 3"), "{detail}"),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }
    assert_eq!(log(s, run).await.len(), 1);
    assert_eq!(s.get_run(run).await.unwrap().status, RunStatus::Pending);
    assert!(s.llm_calls(run).await.unwrap().is_empty());
}

pub async fn resolve_run_by_prefix(ctx: &Ctx) {
    let s = &ctx.store;
    let id = |t: &str| RunId(t.parse().unwrap());
    let a = id("abcd1111-0000-7000-8000-000000000001");
    let b = id("abcd2222-0000-7000-8000-000000000002");
    let c = id("0123ffff-ffff-7fff-bfff-ffffffffffff");
    for (i, run) in [a, b, c].into_iter().enumerate() {
        new_run_at(s, "demo", 1, run, i as i64).await;
    }
    assert_eq!(s.resolve_run("abcd1").await.unwrap(), a);
    assert_eq!(s.resolve_run("ABCD2").await.unwrap(), b);
    assert_eq!(s.resolve_run(&a.to_string()).await.unwrap(), a);
    assert_eq!(s.resolve_run(&a.0.simple().to_string()).await.unwrap(), a);
    assert_eq!(
        s.resolve_run("0123ffff-ffff-7").await.unwrap(),
        c,
        "dashes are ignored"
    );
    assert_eq!(
        s.resolve_run("0123ffffffff7fffbfffffffffffffff")
            .await
            .unwrap(),
        c
    );
    match s.resolve_run("abcd").await {
        Err(StoreError::Ambiguous { count: 2, prefix }) => assert_eq!(prefix, "abcd"),
        other => panic!("expected ambiguous, got {other:?}"),
    }
    assert!(matches!(
        s.resolve_run("ffff").await,
        Err(StoreError::NotFound { what: "run", .. })
    ));
    assert!(matches!(
        s.resolve_run("abc").await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.resolve_run("abcz").await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.resolve_run("").await,
        Err(StoreError::InvalidInput { .. })
    ));
}

pub async fn list_runs_filters_and_pages(ctx: &Ctx) {
    let s = &ctx.store;
    let mut alpha = Vec::new();
    for i in 0..5 {
        alpha.push(new_run_at(s, "alpha", 1, RunId::new(), 100 + i).await);
    }
    let beta = new_run_at(s, "beta", 1, RunId::new(), 50).await;
    s.append(alpha[1], 1, 200, batch(vec![started()]))
        .await
        .unwrap();
    s.append(alpha[3], 1, 200, batch(vec![started()]))
        .await
        .unwrap();
    let alpha_project = s.get_run(alpha[0]).await.unwrap().project_id;

    let ids =
        |runs: Vec<botarmy_store::RunSummary>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = ids(s.list_runs(&RunFilter::default()).await.unwrap());
    assert_eq!(
        all,
        vec![alpha[4], alpha[3], alpha[2], alpha[1], alpha[0], beta],
        "newest first"
    );
    let only_alpha = RunFilter {
        project: Some(alpha_project),
        ..RunFilter::default()
    };
    assert_eq!(ids(s.list_runs(&only_alpha).await.unwrap()).len(), 5);
    let running = RunFilter {
        status: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(s.list_runs(&running).await.unwrap()),
        vec![alpha[3], alpha[1]]
    );
    let both = RunFilter {
        project: Some(alpha_project),
        status: Some(RunStatus::Pending),
        limit: 2,
        offset: 1,
    };
    assert_eq!(
        ids(s.list_runs(&both).await.unwrap()),
        vec![alpha[2], alpha[0]]
    );
    let page = RunFilter {
        limit: 2,
        offset: 4,
        ..RunFilter::default()
    };
    assert_eq!(ids(s.list_runs(&page).await.unwrap()), vec![alpha[0], beta]);
    let past = RunFilter {
        limit: 0,
        offset: 10,
        ..RunFilter::default()
    };
    assert!(s.list_runs(&past).await.unwrap().is_empty());
}

pub async fn projects_are_created_once(ctx: &Ctx) {
    let s = &ctx.store;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(s);
        handles.push(tokio::spawn(async move {
            store.ensure_project("shared").await.unwrap()
        }));
    }
    let mut ids = HashSet::new();
    for h in handles {
        ids.insert(h.await.unwrap().id);
    }
    assert_eq!(ids.len(), 1, "one project for one name");
    let other = s.ensure_project("other").await.unwrap();
    assert_eq!(other.status, "active");
    let names: Vec<_> = s
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"shared".to_string()) && names.contains(&"other".to_string()));
}

/// Waits in one task for an append made in another. The waiter announces itself just before
/// it waits, so the append almost always lands while it waits; either way it must see it.
async fn woken_by(waiter_store: Arc<dyn Store>, appender: Arc<dyn Store>, run: RunId) {
    let last = appender.get_run(run).await.unwrap().last_seq;
    assert!(
        !waiter_store
            .wait_for_events(run, last, Duration::from_millis(30))
            .await
            .unwrap()
    );

    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn(async move {
        let t = Instant::now();
        ready_tx.send(()).unwrap();
        let woke = waiter_store
            .wait_for_events(run, last, Duration::from_secs(30))
            .await
            .unwrap();
        (woke, t.elapsed())
    });
    ready_rx.await.unwrap();
    appender
        .append(run, last, 9, batch(vec![waiting("wake up")]))
        .await
        .unwrap();
    let (woke, took) = waiter.await.unwrap();
    assert!(woke);
    // Well before the stores' fallback re-check (2 s): the wake-up came from the append.
    assert!(
        took < Duration::from_millis(1_500),
        "woken only after {took:?}"
    );
}

pub async fn wait_for_events_is_woken_by_another_task(ctx: &Ctx) {
    let run = new_run(&ctx.store, "demo", 1).await;
    woken_by(Arc::clone(&ctx.store), Arc::clone(&ctx.store), run).await;
    assert!(matches!(
        ctx.store
            .wait_for_events(RunId::new(), 0, Duration::from_millis(10))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // Already there: answers at once.
    assert!(
        ctx.store
            .wait_for_events(run, 1, Duration::from_secs(30))
            .await
            .unwrap()
    );
}

pub async fn wait_for_events_is_woken_by_another_store(ctx: &Ctx) {
    let run = new_run(&ctx.store, "demo", 1).await;
    let other = ctx.reopen().await;
    woken_by(Arc::clone(&ctx.store), Arc::clone(&other), run).await;
    woken_by(other, Arc::clone(&ctx.store), run).await;
}

pub async fn reopen_finds_everything(ctx: &Ctx) {
    let run = new_run(&ctx.store, "demo", 1).await;
    let (art, body) = artifact(0, "prd.md", 1, "kept");
    let events = vec![
        started(),
        step_started(0, 1, "analyst"),
        llm_ok(0, 1, 0, usage(3, 4, 0.0)),
        art,
    ];
    ctx.store
        .append(
            run,
            1,
            7,
            AppendBatch {
                events,
                artifacts: vec![body],
            },
        )
        .await
        .unwrap();
    let before = (
        ctx.store.get_run(run).await.unwrap(),
        log(&ctx.store, run).await,
    );

    let reopened = ctx.reopen().await;
    assert_eq!(reopened.get_run(run).await.unwrap(), before.0);
    assert_eq!(log(&reopened, run).await, before.1);
    let arts = reopened.artifacts(run).await.unwrap();
    assert_eq!(
        reopened
            .artifact_content(arts[0].artifact.id)
            .await
            .unwrap(),
        b"kept"
    );
    assert_eq!(reopened.llm_calls(run).await.unwrap().len(), 1);
    // And it keeps working after the reopen.
    reopened
        .append(run, 5, 8, batch(vec![step_completed(0, 1)]))
        .await
        .unwrap();
    assert_eq!(ctx.store.get_run(run).await.unwrap().last_seq, 6);
}

pub async fn schema_too_new_is_refused(ctx: &Ctx) {
    ctx.raw_execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
    )
    .await;
    match botarmy_store::open(&ctx.url).await {
        Err(StoreError::SchemaTooNew {
            found: 999,
            supported,
            location,
        }) => {
            assert!(supported >= 1);
            assert!(!location.is_empty());
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("expected SchemaTooNew, got a store"),
    }
}
