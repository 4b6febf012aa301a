use std::path::PathBuf;

use botarmy_core::engine::EngineError;
use botarmy_protocol::{RunId, RunStatus};
use botarmy_store::StoreError;

/// Errors of the runtime, by what the user can do about them.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The method definitions could not be loaded or do not fit together.
    #[error("method {source_name}: {message}")]
    Method {
        /// `builtin` or the folder.
        source_name: String,
        /// Every problem found, one per line (`file:line: field: message`).
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored log cannot be folded (damaged, or written by an incompatible binary).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The output folder cannot be used.
    #[error("output folder {}: {source}", path.display())]
    OutDir {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The run cannot be resumed in its current state.
    #[error("run {run_id} is {status}; {hint}")]
    NotResumable {
        /// The run.
        run_id: RunId,
        /// Its state.
        status: RunStatus,
        /// What can be done instead.
        hint: &'static str,
    },
    /// An answer to a waiting run does not fit what it asks.
    #[error("run {run_id}: {problem}")]
    Answer {
        /// The run.
        run_id: RunId,
        /// What is wrong.
        problem: String,
    },
    /// Another process is driving the run (its log moved under us).
    #[error(
        "run {run_id} is being driven by another process (its log moved on); let that one finish or stop it first"
    )]
    Contended {
        /// The run.
        run_id: RunId,
    },
}
