//! The read tables kept from the events, and batches refused whole.

use botarmy_protocol::{Event, RunStatus, StepStatus};
use botarmy_store::{AppendBatch, StoreError};

use super::log;
use crate::support::*;

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
            feedback: Some("more detail".into()),
            by: Some("ada".into()),
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
