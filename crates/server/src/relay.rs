//! Events of runs this process does not drive, read from the store once per run however
//! many streams follow it, and published to them.
//!
//! A run driven by this process has every event on the runtime's bus. Any other run (one
//! waiting for a person, one driven by another process, one changed by another `botarmy`
//! command) grows only in the store. Streams used to watch the store each on their own:
//! a thousand streams of a run made a thousand queries per event. Now a stream asks the
//! relay to [`Relay::watch`] the run; one task per watched run waits on the store, reads
//! each new event once and publishes it on the relay's bus. While this process drives the
//! run the task only follows the runtime's bus (it carries everything), so nothing is read
//! twice.
//!
//! Streams join the two buses by sequence number: an event published on both is sent once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use botarmy_protocol::{LiveEvent, RunId};
use botarmy_runtime::Runtime;
use botarmy_store::{Store, StoreError};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::drives::Drives;

/// Events read from the log per query.
const PAGE: u32 = 500;

/// How often a watch looks whether the run is driven here (or has stopped being).
const LOOK: Duration = Duration::from_secs(1);

/// A wait for the store's log of a run to grow.
type Waiter = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>;

/// The runs watched in the store, and the bus their events are published on.
pub(crate) struct Relay {
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    drives: Arc<Drives>,
    bus: broadcast::Sender<Arc<LiveEvent>>,
    watched: Mutex<HashMap<RunId, Watched>>,
}

struct Watched {
    watchers: usize,
    stop: CancellationToken,
}

/// A stream's interest in a run: the run is watched while one lives.
pub(crate) struct Watching {
    relay: Arc<Relay>,
    run: RunId,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut watched = self.relay.lock();
        if let Some(w) = watched.get_mut(&self.run) {
            w.watchers -= 1;
            if w.watchers == 0 {
                w.stop.cancel();
                watched.remove(&self.run);
            }
        }
    }
}

impl Relay {
    pub(crate) fn new(runtime: Arc<Runtime>, drives: Arc<Drives>) -> Arc<Self> {
        Arc::new(Self {
            store: Arc::clone(runtime.store()),
            runtime,
            drives,
            bus: broadcast::channel(4_096).0,
            watched: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Watched>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Events the relay reads from the store; subscribe before reading the log.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.bus.subscribe()
    }

    /// Watches the run until the returned guard (and every other one of the run) drops:
    /// every event appended after this call is published.
    pub(crate) async fn watch(self: &Arc<Self>, run: RunId) -> Result<Watching, StoreError> {
        let watching = Watching {
            relay: Arc::clone(self),
            run,
        };
        if let Some(w) = self.lock().get_mut(&run) {
            w.watchers += 1;
            return Ok(watching);
        }
        // Read before the caller reads the log: what it does not find there comes after.
        let from = self.store.get_run(run).await?.last_seq;
        let mut watched = self.lock();
        if let Some(w) = watched.get_mut(&run) {
            w.watchers += 1;
        } else {
            let stop = CancellationToken::new();
            tokio::spawn(Arc::clone(self).follow(run, from, stop.clone()));
            watched.insert(run, Watched { watchers: 1, stop });
        }
        Ok(watching)
    }

    /// Publishes the run's new events until `stop`.
    async fn follow(self: Arc<Self>, run: RunId, mut last: u64, stop: CancellationToken) {
        let mut bus = self.runtime.subscribe();
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        let mut look = tokio::time::interval(LOOK);
        look.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut waiter: Option<Waiter> = None;
        loop {
            if self.drives.is_driven(run) {
                // Its events come on the runtime's bus.
                waiter = None;
            } else if waiter.is_none() {
                let store = Arc::clone(&self.store);
                let after = last;
                waiter = Some(Box::pin(async move {
                    store
                        .wait_for_events(run, after, Duration::from_secs(30))
                        .await
                }));
            }
            tokio::select! {
                biased;
                () = &mut stopped => return,
                message = bus.recv() => match message.as_deref() {
                    Ok(LiveEvent::Event(record)) if record.run_id == run && record.seq > last => {
                        last = record.seq;
                        waiter = None;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                woke = async {
                    match waiter.as_mut() {
                        Some(w) => w.await,
                        None => std::future::pending().await,
                    }
                } => {
                    waiter = None;
                    let failed = match woke {
                        Ok(true) => match self.publish(run, last).await {
                            Ok(now) => {
                                last = now;
                                None
                            }
                            Err(e) => Some(e),
                        },
                        Ok(false) => None,
                        Err(e) => Some(e),
                    };
                    match failed {
                        None => {}
                        // Deleted: nothing more will come.
                        Some(StoreError::NotFound { .. }) => return,
                        Some(e) => {
                            eprintln!("botarmy-server: the events of run {run} cannot be read now: {e}");
                            // Tried again at the next look.
                            tokio::select! {
                                () = &mut stopped => return,
                                _ = look.tick() => {}
                            }
                        }
                    }
                }
                _ = look.tick() => {}
            }
        }
    }

    /// Publishes every stored event after `last`; returns the last one published.
    async fn publish(&self, run: RunId, mut last: u64) -> Result<u64, StoreError> {
        loop {
            let page = self.store.read_events(run, last, PAGE).await?;
            for record in &page {
                last = record.seq;
                let _ = self.bus.send(Arc::new(LiveEvent::Event(record.clone())));
            }
            if page.len() < PAGE as usize {
                return Ok(last);
            }
        }
    }
}
