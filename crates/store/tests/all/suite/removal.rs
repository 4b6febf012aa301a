//! Projects are renamed and deleted, runs are deleted with everything of theirs, and
//! neither happens to something not finished; totals count what is stored.

use botarmy_protocol::{Event, ProjectId, RunId, RunStatus, StepStatus};
use botarmy_store::{AppendBatch, ProjectChange, StoreError};

use crate::support::*;

fn in_use<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) -> Vec<RunId> {
    match result {
        Err(e @ StoreError::InUse { .. }) => {
            let message = e.to_string();
            let StoreError::InUse { what: w, runs, .. } = e else {
                unreachable!()
            };
            assert_eq!(w, what);
            for run in &runs {
                assert!(message.contains(&run.to_string()), "{message} names {run}");
            }
            runs
        }
        other => panic!("expected InUse {what}, got {other:?}"),
    }
}

fn not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound { what: w, .. }) => assert_eq!(w, what),
        other => panic!("expected NotFound {what}, got {other:?}"),
    }
}

/// A run of `tenant`'s project `project`, with one LLM call and two versions of one
/// artifact, left waiting; returns the run and its last sequence number.
async fn busy_run(ctx: &Ctx, tenant: &str, project: &str) -> (RunId, ProjectId, u64) {
    let s = &ctx.store;
    let project = s.ensure_project_in(tenant, project).await.unwrap();
    let run = RunId::new();
    s.create_run(run, created(project.id, "idea", 2), 1_000)
        .await
        .unwrap();
    let (a1, b1) = artifact(0, "prd.md", 1, "# PRD");
    let (a2, b2) = artifact(0, "prd.md", 2, "# PRD, again");
    let records = s
        .append(
            run,
            1,
            1_100,
            AppendBatch {
                events: vec![
                    started(),
                    step_started(0, 1, "analyst"),
                    llm_ok(0, 1, 0, usage(100, 20, 0.5)),
                    a1,
                    a2,
                    step_completed(0, 1),
                    waiting("a question"),
                ],
                artifacts: vec![b1, b2],
            },
        )
        .await
        .unwrap();
    (run, project.id, records.last().unwrap().seq)
}

async fn finish(ctx: &Ctx, run: RunId, last: u64) {
    ctx.store
        .append(
            run,
            last,
            2_000,
            batch(vec![Event::PipelineCancelled {
                reason: "done with it".into(),
            }]),
        )
        .await
        .unwrap();
}

pub async fn runs_are_deleted_whole_once_finished(ctx: &Ctx) {
    let s = &ctx.store;
    let (run, project, last) = busy_run(ctx, "acme", "web").await;
    let (other, _, _) = busy_run(ctx, "acme", "web").await;
    assert_eq!(s.artifacts(run).await.unwrap().len(), 2, "two versions");

    // Not finished: refused, nothing deleted.
    assert_eq!(in_use(s.delete_run_in("acme", run).await, "run"), [run]);
    assert_eq!(s.get_run(run).await.unwrap().status, RunStatus::Waiting);
    // Another tenant's is missing, whatever its state.
    not_found(s.delete_run_in("globex", run).await, "run");
    not_found(s.delete_run_in("acme", RunId::new()).await, "run");

    finish(ctx, run, last).await;
    let content = s.artifacts(run).await.unwrap()[0].artifact.id;
    s.delete_run_in("acme", run).await.unwrap();
    not_found(s.get_run(run).await, "run");
    assert_eq!(s.run_tenant(run).await.unwrap(), None);
    assert!(s.read_events(run, 0, 0).await.unwrap().is_empty());
    assert!(s.steps(run).await.unwrap().is_empty());
    assert!(s.attempts(run).await.unwrap().is_empty());
    assert!(s.artifacts(run).await.unwrap().is_empty());
    assert!(s.llm_calls(run).await.unwrap().is_empty());
    not_found(s.artifact_content(content).await, "artifact");
    not_found(s.delete_run_in("acme", run).await, "run");

    // The other run of the project is untouched, and so is the project.
    assert_eq!(s.read_events(other, 0, 0).await.unwrap().len(), 8);
    assert_eq!(s.artifacts(other).await.unwrap().len(), 2);
    assert_eq!(s.get_project_in("acme", project).await.unwrap().name, "web");
    // A deleted run's id can be used again (nothing of it is left).
    s.create_run(run, created(project, "again", 1), 3_000)
        .await
        .unwrap();
}

pub async fn projects_are_renamed_and_archived(ctx: &Ctx) {
    let s = &ctx.store;
    let web = s.ensure_project_in("acme", "web").await.unwrap();
    let api = s.ensure_project_in("acme", "api").await.unwrap();
    let theirs = s.ensure_project_in("globex", "site").await.unwrap();

    let renamed = s
        .update_project_in(
            "acme",
            web.id,
            &ProjectChange {
                name: Some("website".into()),
                status: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.status.as_str()),
        ("website", "active")
    );
    assert_eq!(s.get_project_in("acme", web.id).await.unwrap(), renamed);
    // The old name is free again; the new one is taken.
    assert_ne!(s.ensure_project_in("acme", "web").await.unwrap().id, web.id);
    match s
        .update_project_in(
            "acme",
            api.id,
            &ProjectChange {
                name: Some("website".into()),
                status: Some("archived".into()),
            },
        )
        .await
    {
        Err(StoreError::AlreadyExists { what, id }) => {
            assert_eq!((what, id.as_str()), ("project", "website"));
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        s.get_project_in("acme", api.id).await.unwrap(),
        api,
        "nothing changed"
    );
    // Another tenant's name does not count; its project cannot be reached.
    let archived = s
        .update_project_in(
            "acme",
            api.id,
            &ProjectChange {
                name: Some("site".into()),
                status: Some("archived".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (archived.name.as_str(), archived.status.as_str()),
        ("site", "archived")
    );
    // Keeping its own name is no conflict.
    let same = ProjectChange {
        name: Some("site".into()),
        status: Some("active".into()),
    };
    assert_eq!(
        s.update_project_in("acme", api.id, &same)
            .await
            .unwrap()
            .status,
        "active"
    );
    not_found(
        s.update_project_in("acme", theirs.id, &same).await,
        "project",
    );
    assert_eq!(s.get_project_in("globex", theirs.id).await.unwrap(), theirs);
    let bad = ProjectChange {
        name: None,
        status: Some("gone".into()),
    };
    assert!(matches!(
        s.update_project_in("acme", api.id, &bad).await,
        Err(StoreError::InvalidInput { .. })
    ));
}

pub async fn projects_are_deleted_with_their_finished_runs(ctx: &Ctx) {
    let s = &ctx.store;
    let (first, project, last_first) = busy_run(ctx, "acme", "web").await;
    let (second, _, last_second) = busy_run(ctx, "acme", "web").await;
    let (kept, kept_project, _) = busy_run(ctx, "acme", "other").await;
    not_found(
        s.delete_project_in("globex", project, true).await,
        "project",
    );

    // Runs not finished: refused even when asked to delete finished ones.
    finish(ctx, first, last_first).await;
    assert_eq!(
        in_use(s.delete_project_in("acme", project, true).await, "project"),
        [second]
    );
    finish(ctx, second, last_second).await;
    // Finished runs go with it only when asked.
    let mut named = in_use(s.delete_project_in("acme", project, false).await, "project");
    named.sort();
    let mut both = vec![first, second];
    both.sort();
    assert_eq!(named, both);
    assert_eq!(s.get_run(first).await.unwrap().status, RunStatus::Cancelled);

    let deleted = s.delete_project_in("acme", project, true).await.unwrap();
    assert_eq!(deleted.project.name, "web");
    let mut gone = deleted.runs.clone();
    gone.sort();
    assert_eq!(gone, both);
    not_found(s.get_project_in("acme", project).await, "project");
    for run in both {
        not_found(s.get_run(run).await, "run");
        assert!(s.read_events(run, 0, 0).await.unwrap().is_empty());
        assert!(s.artifacts(run).await.unwrap().is_empty());
        assert!(s.llm_calls(run).await.unwrap().is_empty());
    }
    // The other project and its run are untouched.
    assert_eq!(s.get_run(kept).await.unwrap().project_id, kept_project);
    assert_eq!(s.artifacts(kept).await.unwrap().len(), 2);

    // A project without runs goes without asking; its name can be used again.
    let empty = s.ensure_project_in("acme", "empty").await.unwrap();
    let deleted = s.delete_project_in("acme", empty.id, false).await.unwrap();
    assert!(deleted.runs.is_empty());
    assert_ne!(
        s.ensure_project_in("acme", "empty").await.unwrap().id,
        empty.id
    );
}

pub async fn totals_count_runs_steps_and_calls(ctx: &Ctx) {
    let s = &ctx.store;
    assert_eq!(
        s.totals().await.unwrap(),
        botarmy_store::StoreTotals::default()
    );
    let (run, _, last) = busy_run(ctx, "acme", "web").await;
    busy_run(ctx, "globex", "web").await;
    finish(ctx, run, last).await;
    let totals = s.totals().await.unwrap();
    let mut runs = totals.runs.clone();
    runs.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(runs, [(RunStatus::Cancelled, 1), (RunStatus::Waiting, 1)]);
    let mut steps = totals.steps.clone();
    steps.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(
        steps,
        [(StepStatus::Pending, 2), (StepStatus::Succeeded, 2)]
    );
    assert_eq!(totals.llm.len(), 1);
    let llm = &totals.llm[0];
    assert_eq!(
        (llm.provider.as_str(), llm.model.as_str()),
        ("local", "smollm2")
    );
    assert_eq!((llm.calls, llm.failed_calls), (2, 0));
    assert_eq!((llm.usage.input_tokens, llm.usage.output_tokens), (200, 40));
    assert!((llm.usage.cost_usd - 1.0).abs() < 1e-9);
}
