//! Registered repositories: plain rows with a unique name.

use botarmy_store::{RepositoryRecord, StoreError};

use crate::support::Ctx;

fn repository(name: &str, at: i64) -> RepositoryRecord {
    RepositoryRecord {
        name: name.to_string(),
        location: format!("https://example.com/{name}.git"),
        path: format!("/home/u/.botarmy/repos/{name}"),
        added_at: at,
    }
}

pub async fn repositories_are_added_listed_read_and_removed(ctx: &Ctx) {
    let s = &ctx.store;
    assert!(s.list_repositories().await.unwrap().is_empty());
    let web = repository("web", 1_000);
    let api = RepositoryRecord {
        location: "/src/api".into(),
        path: "/src/api".into(),
        ..repository("api.v2_x-1", 2_000)
    };
    assert_eq!(s.add_repository(web.clone()).await.unwrap(), web);
    assert_eq!(s.add_repository(api.clone()).await.unwrap(), api);
    // By name.
    assert_eq!(
        s.list_repositories().await.unwrap(),
        vec![api.clone(), web.clone()]
    );
    assert_eq!(s.get_repository("web").await.unwrap(), web);

    // Another store on the same database (another process) sees them.
    let other = ctx.reopen().await;
    assert_eq!(other.get_repository("api.v2_x-1").await.unwrap(), api);

    assert_eq!(s.remove_repository("web").await.unwrap(), web);
    match s.get_repository("web").await {
        Err(StoreError::NotFound { what, id }) => {
            assert_eq!((what, id.as_str()), ("repository", "web"));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    match s.remove_repository("web").await {
        Err(StoreError::NotFound { what, id }) => {
            assert_eq!((what, id.as_str()), ("repository", "web"));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(other.list_repositories().await.unwrap(), vec![api]);
}

pub async fn a_taken_repository_name_is_refused(ctx: &Ctx) {
    let s = &ctx.store;
    let first = repository("web", 1_000);
    s.add_repository(first.clone()).await.unwrap();
    let second = RepositoryRecord {
        location: "/elsewhere/web".into(),
        path: "/elsewhere/web".into(),
        ..repository("web", 2_000)
    };
    match s.add_repository(second).await {
        Err(e @ StoreError::AlreadyExists { .. }) => {
            assert_eq!(e.to_string(), "repository `web` already exists");
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // The first registration is untouched.
    assert_eq!(s.list_repositories().await.unwrap(), vec![first]);

    // Of many stores adding the same name at once, exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            std::sync::Arc::clone(s)
        } else {
            ctx.reopen().await
        };
        tasks.push(tokio::spawn(async move {
            store.add_repository(repository("race", i)).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::AlreadyExists { id, .. }) => assert_eq!(id, "race"),
            Err(other) => panic!("expected AlreadyExists, got {other}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(s.list_repositories().await.unwrap().len(), 2);
}

pub async fn bad_repository_names_are_refused(ctx: &Ctx) {
    let s = &ctx.store;
    for (name, expected) in [
        ("", "must not be empty"),
        ("a/b", "not '/'"),
        ("..", "must not be `..`"),
        ("with space", "not ' '"),
        ("é", "not 'é'"),
    ] {
        match s.add_repository(repository(name, 1)).await {
            Err(StoreError::InvalidInput { detail }) => {
                assert!(detail.contains(expected), "{name:?}: {detail}");
                assert!(detail.contains(&format!("`{name}`")), "{name:?}: {detail}");
            }
            other => panic!("{name:?}: expected InvalidInput, got {other:?}"),
        }
    }
    let long = "a".repeat(101);
    assert!(matches!(
        s.add_repository(repository(&long, 1)).await,
        Err(StoreError::InvalidInput { .. })
    ));
    s.add_repository(repository(&"a".repeat(100), 1))
        .await
        .unwrap();
    assert_eq!(s.list_repositories().await.unwrap().len(), 1);
}
