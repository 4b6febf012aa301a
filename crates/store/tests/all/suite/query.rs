//! Finding runs and projects.

use std::collections::HashSet;
use std::sync::Arc;

use botarmy_protocol::{RunId, RunStatus};
use botarmy_store::{RunFilter, StoreError};

use crate::support::*;

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
        tenant: None,
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
