//! Starting runs: `start_run` stores a run with its start in one go and ends where
//! `create_run` + `drive` ends.

use std::sync::atomic::Ordering;

use botarmy_core::engine::RunState;
use botarmy_protocol::{RunStatus, StepStatus};
use tokio_util::sync::CancellationToken;

use crate::support::{request, runtime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_run_stores_the_run_with_its_start_and_finishes_it() {
    let ctx = runtime().await;
    let mut announced = None;
    let state = ctx
        .runtime
        .start_run(
            "demo",
            request("a todo app"),
            |id| announced = Some(id),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(announced, Some(state.run_id));
    assert_eq!(state.status, RunStatus::Succeeded);
    assert!(state.steps.len() >= 6);
    assert!(
        state
            .steps
            .iter()
            .all(|s| matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped))
    );

    let store = ctx.runtime.store();
    let log = store.read_events(state.run_id, 0, 0).await.unwrap();
    let names: Vec<&str> = log.iter().map(|r| r.event.name()).collect();
    assert_eq!(
        names[..3],
        ["pipeline_created", "pipeline_started", "step_started"]
    );
    assert_eq!(names.last(), Some(&"pipeline_completed"));
    assert!(log.iter().zip(1..).all(|(r, seq)| r.seq == seq));
    // The log folds into exactly the state the driver ended with.
    assert_eq!(RunState::from_events(state.run_id, &log).unwrap(), state);
    // The projections agree.
    let summary = store.get_run(state.run_id).await.unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(summary.last_seq, log.len() as u64);
    assert_eq!(
        summary.usage.calls,
        ctx.provider.calls.load(Ordering::Relaxed)
    );
    // Every artifact is on disk with the stored content.
    let out = ctx.runtime.out_dir(&state);
    assert!(out.join("run.json").is_file());
    for artifact in state.artifacts.values() {
        let on_disk = std::fs::read(out.join(&artifact.name)).unwrap();
        assert_eq!(on_disk, store.artifact_content(artifact.id).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_run_and_create_then_drive_log_the_same_events() {
    let ctx = runtime().await;
    let started = ctx
        .runtime
        .start_run("demo", request("same"), |_| {}, CancellationToken::new())
        .await
        .unwrap();
    let id = ctx
        .runtime
        .create_run("demo", request("same"))
        .await
        .unwrap();
    let driven = ctx
        .runtime
        .drive(id, CancellationToken::new())
        .await
        .unwrap();
    let names = |log: Vec<botarmy_protocol::EventRecord>| {
        log.into_iter().map(|r| r.event.name()).collect::<Vec<_>>()
    };
    let store = ctx.runtime.store();
    let a = names(store.read_events(started.run_id, 0, 0).await.unwrap());
    let b = names(store.read_events(driven.run_id, 0, 0).await.unwrap());
    assert_eq!(a, b);
    // Both runs landed in the one project, created once.
    let projects = store.list_projects().await.unwrap();
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].name, "demo");
    assert_eq!(started.project_id, driven.project_id);
    assert!(ctx.dir.path().join("t.db").is_file());
}
