//! The runs this server process drives: one task per run, each with a token that pauses
//! it, so a request can pause a run, know whether it is driven here, and shutdown can
//! pause them all and wait until their state is stored.
//!
//! What driving means (the engine's actions, the log, budgets) is the runtime's; this
//! only keeps the tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use botarmy_protocol::RunId;
use botarmy_runtime::{Runtime, RuntimeError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How a drive task begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A run that was just created.
    Fresh,
    /// A paused, waiting or interrupted run.
    Resume,
}

struct Active {
    /// Cancelled to pause the run.
    stop: CancellationToken,
    /// Cancelled by the task when it has ended (its last events are stored).
    ended: CancellationToken,
    /// Tells this drive apart from a later one of the same run.
    generation: u64,
}

/// The drive tasks of this process.
pub struct Drives {
    runtime: Arc<Runtime>,
    active: Mutex<(u64, HashMap<RunId, Active>)>,
    tasks: TaskTracker,
}

/// The run is already driven by this process.
#[derive(Debug)]
pub struct AlreadyDriven;

impl Drives {
    /// No drives yet.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self {
            runtime,
            active: Mutex::new((0, HashMap::new())),
            tasks: TaskTracker::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (u64, HashMap<RunId, Active>)> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this process drives the run now.
    pub fn is_driven(&self, run_id: RunId) -> bool {
        self.lock().1.contains_key(&run_id)
    }

    /// How many runs this process drives now.
    pub fn count(&self) -> usize {
        self.lock().1.len()
    }

    /// Starts driving the run on a task of its own.
    pub fn spawn(self: &Arc<Self>, run_id: RunId, start: Start) -> Result<(), AlreadyDriven> {
        let stop = CancellationToken::new();
        let ended = CancellationToken::new();
        let generation = {
            let mut guard = self.lock();
            let (counter, active) = &mut *guard;
            if active.contains_key(&run_id) {
                return Err(AlreadyDriven);
            }
            *counter += 1;
            active.insert(
                run_id,
                Active {
                    stop: stop.clone(),
                    ended: ended.clone(),
                    generation: *counter,
                },
            );
            *counter
        };
        let drives = Arc::clone(self);
        self.tasks.spawn(async move {
            let result = match start {
                Start::Fresh => drives.runtime.drive(run_id, stop).await,
                Start::Resume => drives.runtime.resume(run_id, stop).await,
            };
            if let Err(error) = result {
                report(run_id, &error);
            }
            {
                let mut guard = drives.lock();
                if guard.1.get(&run_id).map(|a| a.generation) == Some(generation) {
                    guard.1.remove(&run_id);
                }
            }
            ended.cancel();
        });
        Ok(())
    }

    /// Pauses the run if this process drives it, and waits until the pause is stored.
    /// Returns whether it was driven here.
    pub async fn pause(&self, run_id: RunId) -> bool {
        let Some((stop, ended)) = self
            .lock()
            .1
            .get(&run_id)
            .map(|a| (a.stop.clone(), a.ended.clone()))
        else {
            return false;
        };
        stop.cancel();
        ended.cancelled().await;
        true
    }

    /// Pauses every run driven here and waits for all of them to store their state.
    pub async fn shutdown(&self) {
        let stops: Vec<CancellationToken> =
            self.lock().1.values().map(|a| a.stop.clone()).collect();
        for stop in stops {
            stop.cancel();
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

fn report(run_id: RunId, error: &RuntimeError) {
    eprintln!("botarmy-server: run {run_id} stopped: {error}");
}
