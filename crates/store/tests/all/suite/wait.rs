//! Waiting for a run's log to grow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use botarmy_protocol::RunId;
use botarmy_store::{Store, StoreError};

use crate::support::*;

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
