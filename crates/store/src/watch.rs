//! Waiting for a run's log to grow: one `tokio::sync::watch` per watched run, fed by this
//! process's own commits and by whatever notices other processes' commits (a poller for
//! SQLite, LISTEN/NOTIFY for PostgreSQL).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use botarmy_protocol::RunId;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::StoreError;

/// Locks a mutex, ignoring poisoning (the data under our locks stays consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The last sequence number known per watched run.
#[derive(Default)]
pub(crate) struct Watchers {
    runs: Mutex<HashMap<RunId, watch::Sender<u64>>>,
    /// Told when the first run becomes watched (wakes an idle poller).
    on_first: Option<std::sync::mpsc::SyncSender<()>>,
}

impl Watchers {
    /// Watchers that tell `on_first` when someone starts waiting while nobody was.
    pub(crate) fn with_wake(on_first: std::sync::mpsc::SyncSender<()>) -> Self {
        Self {
            runs: Mutex::default(),
            on_first: Some(on_first),
        }
    }

    /// Records that the run's log now ends at `seq` (or later), waking its waiters.
    pub(crate) fn publish(&self, run: RunId, seq: u64) {
        if let Some(tx) = lock(&self.runs).get(&run) {
            tx.send_if_modified(|last| {
                let newer = seq > *last;
                if newer {
                    *last = seq;
                }
                newer
            });
        }
    }

    /// The runs someone waits for.
    pub(crate) fn watched(&self) -> Vec<RunId> {
        lock(&self.runs).keys().copied().collect()
    }

    /// Whether nobody waits.
    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.runs).is_empty()
    }

    fn subscribe(self: &Arc<Self>, run: RunId) -> Subscription {
        let mut runs = lock(&self.runs);
        let was_empty = runs.is_empty();
        let rx = runs
            .entry(run)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        drop(runs);
        if was_empty && let Some(wake) = &self.on_first {
            // A full channel means a wake-up is already pending.
            let _ = wake.try_send(());
        }
        Subscription {
            watchers: Arc::clone(self),
            run,
            rx: Some(rx),
        }
    }
}

/// One waiter's interest in a run; removes the run's entry when the last waiter leaves.
struct Subscription {
    watchers: Arc<Watchers>,
    run: RunId,
    rx: Option<watch::Receiver<u64>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut runs = lock(&self.watchers.runs);
        drop(self.rx.take());
        if runs
            .get(&self.run)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            runs.remove(&self.run);
        }
    }
}

/// Waits until `last_seq()` exceeds `after` or `timeout` passes. The database is asked first
/// (after subscribing, so no append can slip between), then whenever `recheck` passes without
/// a notification, and once more at the deadline.
pub(crate) async fn wait_for<F, Fut>(
    watchers: &Arc<Watchers>,
    run: RunId,
    after: u64,
    timeout: Duration,
    recheck: Duration,
    last_seq: F,
) -> Result<bool, StoreError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut sub = watchers.subscribe(run);
    let now = Instant::now();
    let deadline = now
        .checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(86_400 * 365));
    loop {
        let last = last_seq().await?;
        if last > after {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        let until = deadline.min(now + recheck);
        let Some(rx) = sub.rx.as_mut() else {
            return Ok(false);
        };
        // On a timeout (or a closed channel, which cannot happen while the map holds the
        // sender) the loop asks the database again.
        if let Ok(Ok(_)) = tokio::time::timeout_at(until, rx.wait_for(|seq| *seq > after)).await {
            return Ok(true);
        }
    }
}
