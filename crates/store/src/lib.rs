//! BotArmy's durable state: projects, runs, steps and attempts, versioned artifacts, LLM
//! calls and the per-run event log, behind one [`Store`] trait with SQLite and PostgreSQL
//! implementations.
//!
//! The one idea: the event log is the only write path. [`Store::append`] appends a batch of
//! events to a run's log with gap-free sequence numbers *and* updates the read tables
//! (projections) derived from those events in the same transaction, so a state change and its
//! event can never disagree, whatever process dies when.

mod api;

pub use api::*;
