//! Tenants own projects (and through them runs); API tokens are stored hashed.

use botarmy_protocol::{ProjectId, RunId};
use botarmy_store::{ApiTokenRecord, DEFAULT_TENANT, RateLimit, RunFilter, StoreError};

use crate::support::{Ctx, created};

fn not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound { what: w, .. }) => assert_eq!(w, what),
        other => panic!("expected NotFound {what}, got {other:?}"),
    }
}

pub async fn tenants_own_projects_and_runs(ctx: &Ctx) {
    let s = &ctx.store;
    let a = s.ensure_project_in("acme", "web").await.unwrap();
    let b = s.ensure_project_in("globex", "web").await.unwrap();
    assert_ne!(a.id, b.id, "the same name in two tenants is two projects");
    assert_eq!((a.tenant.as_str(), b.tenant.as_str()), ("acme", "globex"));
    assert_eq!(s.ensure_project_in("acme", "web").await.unwrap(), a);
    let d = s.ensure_project("web").await.unwrap();
    assert_eq!(d.tenant, DEFAULT_TENANT);
    assert!(d.id != a.id && d.id != b.id);

    assert_eq!(s.list_projects_in("acme").await.unwrap(), vec![a.clone()]);
    assert_eq!(s.list_projects().await.unwrap().len(), 3);
    assert!(s.list_projects_in("nobody").await.unwrap().is_empty());
    assert_eq!(s.get_project_in("acme", a.id).await.unwrap(), a);
    not_found(s.get_project_in("globex", a.id).await, "project");
    not_found(s.get_project_in("acme", ProjectId::new()).await, "project");

    let (run_a, run_b) = (RunId::new(), RunId::new());
    s.create_run(run_a, created(a.id, "a", 1), 1_000)
        .await
        .unwrap();
    s.create_run(run_b, created(b.id, "b", 1), 2_000)
        .await
        .unwrap();
    assert_eq!(s.run_tenant(run_a).await.unwrap().as_deref(), Some("acme"));
    assert_eq!(s.run_tenant(RunId::new()).await.unwrap(), None);
    assert_eq!(s.get_run_in("acme", run_a).await.unwrap().id, run_a);
    not_found(s.get_run_in("acme", run_b).await, "run");
    not_found(s.get_run_in("acme", RunId::new()).await, "run");

    let of = |tenant: &str| RunFilter {
        tenant: Some(tenant.to_string()),
        ..RunFilter::default()
    };
    let ids =
        |runs: Vec<botarmy_store::RunSummary>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_runs(&of("acme")).await.unwrap()), vec![run_a]);
    assert_eq!(ids(s.list_runs(&of("globex")).await.unwrap()), vec![run_b]);
    assert!(s.list_runs(&of(DEFAULT_TENANT)).await.unwrap().is_empty());
    // A project filter of another tenant finds nothing.
    let crossed = RunFilter {
        project: Some(b.id),
        ..of("acme")
    };
    assert!(s.list_runs(&crossed).await.unwrap().is_empty());
    assert_eq!(s.list_runs(&RunFilter::default()).await.unwrap().len(), 2);

    match s.ensure_project_in("", "web").await {
        Err(StoreError::InvalidInput { detail }) => assert!(detail.contains("tenant"), "{detail}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

fn token(id: &str, tenant: &str, hash: &str, at: i64) -> ApiTokenRecord {
    ApiTokenRecord {
        id: id.to_string(),
        tenant: tenant.to_string(),
        name: format!("{id} for CI"),
        hash: hash.to_string(),
        created_at: at,
        last_used_at: None,
        revoked_at: None,
        rate_limit: None,
    }
}

pub async fn tokens_are_stored_found_touched_and_revoked(ctx: &Ctx) {
    let s = &ctx.store;
    let one = token("t1", "acme", &"a".repeat(64), 1_000);
    let two = ApiTokenRecord {
        rate_limit: Some(RateLimit {
            requests: 2,
            per_secs: 60,
        }),
        ..token("t2", "globex", &"b".repeat(64), 2_000)
    };
    s.create_token(one.clone()).await.unwrap();
    s.create_token(two.clone()).await.unwrap();
    // A hash is stored once.
    match s
        .create_token(token("t3", "acme", &"a".repeat(64), 3_000))
        .await
    {
        Err(StoreError::InvalidInput { .. }) => {}
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(
        s.list_tokens(None).await.unwrap(),
        vec![one.clone(), two.clone()]
    );
    assert_eq!(
        s.list_tokens(Some("globex")).await.unwrap(),
        vec![two.clone()]
    );
    assert_eq!(
        s.token_by_hash(&"b".repeat(64)).await.unwrap(),
        Some(two.clone())
    );
    assert_eq!(s.token_by_hash(&"c".repeat(64)).await.unwrap(), None);

    s.touch_token("t1", 5_000).await.unwrap();
    // An older time does not move it back.
    s.touch_token("t1", 4_000).await.unwrap();
    let touched = s.token_by_hash(&"a".repeat(64)).await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(5_000));

    let revoked = s.revoke_token("t1", 6_000).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(6_000));
    // Revoking again keeps the first time.
    assert_eq!(
        s.revoke_token("t1", 7_000).await.unwrap().revoked_at,
        Some(6_000)
    );
    not_found(s.revoke_token("nope", 7_000).await, "token");
    // Another store on the same database (another process) sees it revoked.
    let other = ctx.reopen().await;
    let seen = other.token_by_hash(&"a".repeat(64)).await.unwrap().unwrap();
    assert_eq!(seen.revoked_at, Some(6_000));
    assert_eq!(seen.rate_limit, None);
    assert_eq!(
        other.list_tokens(Some("globex")).await.unwrap()[0].rate_limit,
        two.rate_limit
    );
}

pub async fn rate_limits_read_and_print(_ctx: &Ctx) {
    for (text, requests, per_secs, shown) in [
        ("2/min", 2, 60, "2/min"),
        ("10/s", 10, 1, "10/s"),
        ("5/minute", 5, 60, "5/min"),
        ("100/h", 100, 3600, "100/h"),
        ("3/30s", 3, 30, "3/30s"),
    ] {
        let limit: RateLimit = text.parse().unwrap();
        assert_eq!(
            (limit.requests, limit.per_secs),
            (requests, per_secs),
            "{text}"
        );
        assert_eq!(limit.to_string(), shown);
    }
    for bad in ["", "2", "0/s", "x/s", "2/fortnight", "2/0s", "-1/s"] {
        let err = bad.parse::<RateLimit>().unwrap_err();
        assert!(err.contains("N/s"), "{bad}: {err}");
    }
}
