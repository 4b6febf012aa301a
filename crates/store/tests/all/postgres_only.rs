//! What only the PostgreSQL store has: server-side locks, concurrent migrations.

use botarmy_protocol::RunStatus;
use botarmy_store::StoreError;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_table_is_reported_and_left_intact() {
    let db = PgDb::create().await;
    // A short lock timeout, given the way PostgreSQL takes it: as a connection option.
    let url = format!("{}?options=-c%20lock_timeout%3D200", db.url);
    let store = botarmy_store::open(&url).await.unwrap();
    let run = new_run(&store, "demo", 1).await;

    let holder = pg_connect(&db.url).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let err = store
        .append(run, 1, 2, batch(vec![started()]))
        .await
        .unwrap_err();
    match &err {
        StoreError::Locked { location } => {
            assert!(
                location.starts_with("postgres://postgres@127.0.0.1:5432/botarmy_test_"),
                "{location}"
            )
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    holder.batch_execute("ROLLBACK").await.unwrap();

    store
        .append(run, 1, 3, batch(vec![started()]))
        .await
        .unwrap();
    let summary = store.get_run(run).await.unwrap();
    assert_eq!((summary.last_seq, summary.status), (2, RunStatus::Running));
    drop(store);
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_new_database_at_once_migrates_once() {
    let db = PgDb::create().await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { botarmy_store::open(&url).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let client = pg_connect(&db.url).await;
    // Every migration applied exactly once: versions 1..=n, each in one row.
    let row = client
        .query_one(
            "SELECT COUNT(*), COUNT(DISTINCT version), MIN(version), MAX(version) FROM schema_migrations",
            &[],
        )
        .await
        .unwrap();
    let (rows, distinct, min, max): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (rows, distinct, min),
        (max, max, 1),
        "{rows} rows for versions {min}..={max}"
    );
    assert!(max >= 2, "the usage indexes (v2) are applied");
}

#[tokio::test]
async fn a_missing_database_is_an_open_error() {
    let err = botarmy_store::open("postgres://postgres@127.0.0.1:5432/botarmy_no_such_db")
        .await
        .err()
        .unwrap();
    match &err {
        StoreError::Open { location, .. } => {
            assert_eq!(
                location,
                "postgres://postgres@127.0.0.1:5432/botarmy_no_such_db"
            )
        }
        other => panic!("expected Open, got {other:?}"),
    }
}
