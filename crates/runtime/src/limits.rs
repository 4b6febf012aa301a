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

/// The process's slots, shared by every run a runtime drives.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    steps: Arc<Semaphore>,
    llm_calls: Arc<Semaphore>,
    tool_processes: Arc<Semaphore>,
}

impl Slots {
    pub fn new(limits: Limits) -> Self {
        Self {
            steps: Arc::new(Semaphore::new(limits.steps.max(1))),
            llm_calls: Arc::new(Semaphore::new(limits.llm_calls.max(1))),
            tool_processes: Arc::new(Semaphore::new(limits.tool_processes.max(1))),
        }
    }

    /// A slot of `resource` for `job`'s attempt; when none is free, the attempt's run is
    /// told (`step_queued`) before it waits.
    pub async fn take(
        &self,
        resource: Resource,
        job: &StepJob,
    ) -> Result<OwnedSemaphorePermit, ErrorInfo> {
        let semaphore = match resource {
            Resource::Step => &self.steps,
            Resource::LlmCall => &self.llm_calls,
            Resource::ToolProcess => &self.tool_processes,
        };
        match Arc::clone(semaphore).try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(cancelled()),
            Err(TryAcquireError::NoPermits) => {}
        }
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
