//! What only the SQLite store has: files, file locks, damaged files, in-memory databases.

use std::time::Duration;

use botarmy_protocol::{RunId, RunStatus};
use botarmy_store::StoreError;

use crate::support::*;

#[tokio::test]
async fn a_corrupt_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
    let err = botarmy_store::open(&format!("sqlite://{}", path.display()))
        .await
        .err()
        .unwrap();
    match &err {
        StoreError::Corrupt { location, .. } => assert_eq!(location, &path.display().to_string()),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![0x5a_u8; 8192],
        "the file is left alone"
    );
}

#[tokio::test]
async fn another_programs_database_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');")
        .unwrap();
    drop(conn);
    let err = botarmy_store::open(&format!("sqlite://{}", path.display()))
        .await
        .err()
        .unwrap();
    match &err {
        StoreError::Corrupt { detail, .. } => {
            assert!(detail.contains("not a BotArmy database"), "{detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let body: String = conn
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(body, "keep me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_reported_and_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("botarmy.db");
    let url = format!("sqlite://{}?busy_timeout_ms=100", path.display());
    let store = botarmy_store::open(&url).await.unwrap();
    let run = new_run(&store, "demo", 1).await;

    // Another process takes the write lock and keeps it.
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let err = store
        .append(run, 1, 2, batch(vec![started()]))
        .await
        .unwrap_err();
    match &err {
        StoreError::Locked { location } => assert_eq!(location, &path.display().to_string()),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(err.to_string().contains("locked"), "{err}");
    match botarmy_store::open(&url).await {
        Err(StoreError::Locked { .. }) => {}
        Err(other) => panic!("expected Locked, got {other:?}"),
        Ok(_) => panic!("opened a locked database"),
    }
    // Readers still read (WAL), and nothing was damaged.
    assert_eq!(store.get_run(run).await.unwrap().last_seq, 1);

    holder.execute_batch("COMMIT").unwrap();
    store
        .append(run, 1, 3, batch(vec![started()]))
        .await
        .unwrap();
    let summary = store.get_run(run).await.unwrap();
    assert_eq!((summary.last_seq, summary.status), (2, RunStatus::Running));
}

#[tokio::test]
async fn an_in_memory_store_works() {
    let store = botarmy_store::open("sqlite::memory:").await.unwrap();
    let run = new_run(&store, "demo", 2).await;
    store
        .append(
            run,
            1,
            2,
            batch(vec![started(), step_started(0, 1, "analyst")]),
        )
        .await
        .unwrap();
    assert_eq!(store.read_events(run, 0, 0).await.unwrap().len(), 3);
    assert_eq!(store.steps(run).await.unwrap()[0].attempt, 1);
    assert!(
        store
            .wait_for_events(run, 2, Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert_eq!(store.location(), ":memory:");
    // Each in-memory store is its own database.
    let other = botarmy_store::open("sqlite::memory:").await.unwrap();
    assert!(matches!(
        other.get_run(run).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn bad_urls_are_explained_without_secrets() {
    for url in [
        "mysql://bob:hunter2@db/x",
        "sqlite://",
        "sqlite://a.db?cache=shared",
        "hunter2",
    ] {
        let err = botarmy_store::open(url).await.err().unwrap();
        assert!(matches!(err, StoreError::BadUrl { .. }), "{url}: {err:?}");
        let text = err.to_string();
        assert!(!text.contains("hunter2") || url == "hunter2", "{text}");
    }
    let err = botarmy_store::open("postgres://bob:hunter2@127.0.0.1:1/x")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("postgres://bob@127.0.0.1:1/x"), "{text}");
}

#[tokio::test]
async fn an_unusable_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let path = file.join("sub").join("botarmy.db");
    let err = botarmy_store::open(&format!("sqlite://{}", path.display()))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_the_same_new_file_at_once_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("botarmy.db");
    let url = format!("sqlite://{}", path.display());
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { botarmy_store::open(&url).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    // Every migration applied exactly once: versions 1..=n, each in one row.
    let (rows, distinct, min, max): (i64, i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT version), MIN(version), MAX(version) FROM schema_migrations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (rows, distinct, min),
        (max, max, 1),
        "{rows} rows for versions {min}..={max}"
    );
    assert!(max >= 2, "the usage indexes (v2) are applied");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Checkpoints run (the log's pages reach the database file) and the WAL is rewound instead of
/// growing with everything ever written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_and_stays_bounded() {
    const APPENDS: u64 = 1_000;
    const BODY: usize = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("botarmy.db");
    let store = botarmy_store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let run = new_run(&store, "demo", 1).await;
    let content = "x".repeat(BODY);
    for i in 0..APPENDS {
        let (art, body) = artifact(0, &format!("doc-{i}.md"), 1, &content);
        let batch = botarmy_store::AppendBatch {
            events: vec![art],
            artifacts: vec![body],
        };
        store.append(run, i + 1, 1, batch).await.unwrap();
    }
    let written = APPENDS * BODY as u64;
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let db = size(&path);
    let wal = size(&path.with_file_name("botarmy.db-wal"));
    assert!(
        db > written / 4,
        "the database file has {db} bytes after {written} written: no checkpoint ran"
    );
    // The writer lets the WAL reach about 8,000 pages (32 MiB), then waits for checkpoints.
    assert!(
        wal < 40 << 20,
        "the WAL has {wal} bytes after {written} written: it is not bounded"
    );
    // And the data is all there.
    assert_eq!(store.artifacts(run).await.unwrap().len(), APPENDS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_before_tenants_is_migrated_to_the_default_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("botarmy.db");
    let project = uuid::Uuid::now_v7().to_string();
    let run = RunId::new();
    {
        // Schema v3 as an older botarmy left it, with a project and a run.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
             applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        for (version, sql) in [
            (1, include_str!("../../src/sqlite/migrations/0001_init.sql")),
            (
                2,
                include_str!("../../src/sqlite/migrations/0002_usage_indexes.sql"),
            ),
            (
                3,
                include_str!("../../src/sqlite/migrations/0003_repositories.sql"),
            ),
        ] {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, 'old', 0)",
                [version],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO projects (id, name, status, created_at) VALUES (?1, 'demo', 'active', 5)",
            [&project],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO runs (id, project_id, workflow, idea, status, created_at, last_seq)
             VALUES (?1, ?2, 'sdlc', 'old idea', 'succeeded', 6, 0)",
            [run.0.to_string(), project.clone()],
        )
        .unwrap();
    }
    let store = botarmy_store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let demo = store.ensure_project("demo").await.unwrap();
    assert_eq!(
        demo.id.0.to_string(),
        project,
        "the old project, not a new one"
    );
    assert_eq!((demo.tenant.as_str(), demo.created_at), ("default", 5));
    assert_eq!(
        store.run_tenant(run).await.unwrap().as_deref(),
        Some("default")
    );
    assert_eq!(
        store.get_run_in("default", run).await.unwrap().idea,
        "old idea"
    );
    // The runs table still refers to the (rebuilt) projects table, and a tenant may reuse
    // the name.
    let new_run = new_run(&store, "demo", 1).await;
    assert_eq!(store.get_run(new_run).await.unwrap().project_id, demo.id);
    let other = store.ensure_project_in("acme", "demo").await.unwrap();
    assert_ne!(other.id, demo.id);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let refs: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'runs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(refs.contains("REFERENCES projects"), "{refs}");
    let broken: Option<String> = conn
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .ok();
    assert_eq!(broken, None);
}
