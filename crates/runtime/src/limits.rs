//! Per-process limits on what runs do at once: attempts of steps, LLM calls and tool
//! processes. A burst of runs queues for the slots instead of overloading the machine (or
//! the providers); an attempt that has to wait says so in its run's log (`step_queued`), so
//! `botarmy show` and the API can tell a queued step from a slow one.

use std::sync::Arc;

use botarmy_protocol::{ErrorInfo, Event};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::step::{StepJob, StepMsg, cancelled};

/// How many of each may happen at once in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Attempts of steps executing at once, over every run.
    pub steps: usize,
    /// LLM calls in flight at once.
    pub llm_calls: usize,
    /// Tool calls that run a process (`bash`, `git`, `run_tests`) at once.
    pub tool_processes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            steps: 32,
            llm_calls: 16,
            tool_processes: 4,
        }
    }
}

/// What an attempt waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Step,
    LlmCall,
    ToolProcess,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Self::Step => "step",
            Self::LlmCall => "llm_call",
            Self::ToolProcess => "tool_process",
        }
    }
}

/// How full one kind of slot is now: in use, free, and attempts waiting for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotUse {
    /// Taken.
    pub in_use: usize,
    /// The limit.
    pub limit: usize,
    /// Attempts queued for one.
    pub waiting: usize,
}

/// [`SlotUse`] of every kind: the process's queue depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Attempts of steps.
    pub steps: SlotUse,
    /// LLM calls.
    pub llm_calls: SlotUse,
    /// Tool processes.
    pub tool_processes: SlotUse,
}

/// One kind of slot and the attempts waiting for it.
#[derive(Debug)]
struct Pool {
    semaphore: Arc<Semaphore>,
    limit: usize,
    waiting: std::sync::atomic::AtomicUsize,
}

impl Pool {
    fn new(limit: usize) -> Arc<Self> {
        let limit = limit.max(1);
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
            waiting: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn usage(&self) -> SlotUse {
        SlotUse {
            in_use: self.limit - self.semaphore.available_permits().min(self.limit),
            limit: self.limit,
            waiting: self.waiting.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Counts an attempt as waiting while it lives (also when the wait is dropped).
struct Waiting<'a>(&'a Pool);

impl<'a> Waiting<'a> {
    fn new(pool: &'a Pool) -> Self {
        pool.waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(pool)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The process's slots, shared by every run a runtime drives.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    steps: Arc<Pool>,
    llm_calls: Arc<Pool>,
    tool_processes: Arc<Pool>,
}

impl Slots {
    pub fn new(limits: Limits) -> Self {
        Self {
            steps: Pool::new(limits.steps),
            llm_calls: Pool::new(limits.llm_calls),
            tool_processes: Pool::new(limits.tool_processes),
        }
    }

    /// How full the slots are now.
    pub fn depth(&self) -> QueueDepth {
        QueueDepth {
            steps: self.steps.usage(),
            llm_calls: self.llm_calls.usage(),
            tool_processes: self.tool_processes.usage(),
        }
    }

    /// A slot of `resource` for `job`'s attempt; when none is free, the attempt's run is
    /// told (`step_queued`) before it waits.
    pub async fn take(
        &self,
        resource: Resource,
        job: &StepJob,
    ) -> Result<OwnedSemaphorePermit, ErrorInfo> {
        let pool = match resource {
            Resource::Step => &self.steps,
            Resource::LlmCall => &self.llm_calls,
            Resource::ToolProcess => &self.tool_processes,
        };
        let semaphore = &pool.semaphore;
        match Arc::clone(semaphore).try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(cancelled()),
            Err(TryAcquireError::NoPermits) => {}
        }
        // Counted before its run is told, so whoever reads the log sees it counted.
        let _waiting = Waiting::new(pool);
        job.tx
            .send(StepMsg::Record(Event::StepQueued {
                step: job.step,
                attempt: job.attempt,
                resource: resource.name().into(),
            }))
            .await
            .map_err(|_| cancelled())?;
        Arc::clone(semaphore)
            .acquire_owned()
            .await
            .map_err(|_| cancelled())
    }
}
