//! The event log: appends, sequence numbers, conflicts, durability, migrations.

use std::collections::HashSet;
use std::sync::Arc;

use botarmy_protocol::{Event, RunId, RunStatus, StepStatus};
use botarmy_store::{AppendBatch, StoreError};

use super::log;
use crate::support::*;

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

pub async fn create_run_with_its_first_events(ctx: &Ctx) {
    let s = &ctx.store;
    let project = s.ensure_project("demo").await.unwrap();
    let run = RunId::new();
    let recs = s
        .create_run_with(
            run,
            created(project.id, "a todo app", 2),
            batch(vec![started(), step_started(0, 1, "analyst")]),
            5_000,
        )
        .await
        .unwrap();
    assert_eq!(
        recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(recs[0].event.name(), "pipeline_created");
    assert_eq!(s.read_events(run, 0, 0).await.unwrap(), recs);
    let summary = s.get_run(run).await.unwrap();
    assert_eq!((summary.last_seq, summary.status), (3, RunStatus::Running));
    assert_eq!(summary.started_at, Some(5_000));
    let steps = s.steps(run).await.unwrap();
    assert_eq!(steps[0].status, StepStatus::Running);
    assert_eq!(steps[1].status, StepStatus::Pending);
    s.append(run, 3, 6_000, batch(vec![step_completed(0, 1)]))
        .await
        .unwrap();

    // A bad first batch (an event about a step the plan does not have) creates nothing.
    let bad = RunId::new();
    assert!(matches!(
        s.create_run_with(
            bad,
            created(project.id, "bad", 1),
            batch(vec![started(), step_started(7, 1, "analyst")]),
            5_000,
        )
        .await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.get_run(bad).await,
        Err(StoreError::NotFound { what: "run", .. })
    ));
    assert!(log(s, bad).await.is_empty());
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
