//! BotArmy's runtime: executes the actions the engine asks for (LLM calls, artifact writes),
//! appends their events to the store, and fans events out to live watchers.
//!
//! The one idea: one driver per run owns the run's state and is the only writer of its
//! log while it drives; it polls the attempts of its steps itself (they report back over a
//! bounded channel), commits what happened whenever it would otherwise wait, and checks
//! every event against the engine before it is stored.

mod agent_loop;
mod conflicts;
mod error;
pub mod files;
mod hitl;
mod limits;
mod method;
pub mod repositories;
mod run;
mod step;
mod streams;
pub mod worktree_gc;
mod worktrees;

pub use error::RuntimeError;
pub use limits::{Limits, QueueDepth, SlotUse};
pub use method::MethodHandle;
pub use run::{Runtime, Settings};
pub use streams::{KEPT_BYTES, Streaming};
pub use worktrees::WorkspaceSettings;
