//! BotArmy's durable state: projects, runs, steps and attempts, versioned artifacts, LLM
//! calls, the per-run event log and the registered repositories, behind one [`Store`] trait
//! with SQLite and PostgreSQL implementations.
//!
//! The one idea: the event log is the only write path. [`Store::append`] appends a batch of
//! events to a run's log with gap-free sequence numbers *and* updates the read tables
//! (projections) derived from those events in the same transaction, so a state change and its
//! event can never disagree, whatever process dies when.
//!
//! Open a store with [`open`] and a `DATABASE_URL`:
//!
//! | URL | store |
//! |---|---|
//! | `sqlite://PATH` (`sqlite:///abs/path.db`, `sqlite://rel.db`) | a SQLite file in WAL mode; parent folders are created |
//! | `sqlite://PATH?busy_timeout_ms=N` | the same, waiting at most N ms for another process's lock (default 5000) |
//! | `sqlite::memory:` | a private in-memory database (tests) |
//! | `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?options]` (`postgresql://` too) | PostgreSQL |
//!
//! PostgreSQL settings go in the URL as libpq options, for example a lock timeout
//! (`?options=-c%20lock_timeout%3D5000`, turning long lock waits into [`StoreError::Locked`])
//! or `synchronous_commit=off` (commits no longer wait for the server's `fsync`: they survive
//! any crash of a botarmy process, not a crash of the database server).
//!
//! How the backends keep their promises:
//! - SQLite: one writer thread group-commits concurrent appends into one transaction (a
//!   savepoint per append, so one failing append fails alone), WAL with
//!   `synchronous=NORMAL` (see the `sqlite` module for the durability trade-off),
//!   checkpoints mostly on a background thread with the WAL kept under ~32 MiB, reads on a
//!   small pool of reader connections.
//! - PostgreSQL: an append is one transaction sent as one pipeline, led by an
//!   `UPDATE runs … WHERE last_seq = expected` that serialises appenders of a run on its row
//!   and is the conflict check; `NOTIFY` on commit wakes waiters in every process.
//!
//! `cargo bench -p botarmy-store --bench append` prints append throughput and latency for
//! both backends (see `benches/append.rs`).

mod api;
mod phases;
mod postgres;
mod projection;
mod removal;
mod sessions;
mod sqlite;
mod target;
mod usage;
mod watch;

use std::sync::Arc;

pub use api::*;
pub use phases::{PhaseTime, phase_times};
pub use target::redact as redact_url;
pub use usage::{LlmTotals, ModelStats, ProjectUsage, StatsFilter, StoreTotals, UsageRow};

/// Opens the store at `url` (see the table above), applying migrations.
///
/// Fails with [`StoreError::BadUrl`] for a URL it does not understand, [`StoreError::Open`] if
/// the database cannot be reached, [`StoreError::Locked`] / [`StoreError::Corrupt`] for a
/// SQLite file held by another process or damaged, and [`StoreError::SchemaTooNew`] for a
/// database written by a newer botarmy. Messages never contain a password.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match target::parse(url)? {
        target::Target::Sqlite(t) => {
            let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(t))
                .await
                .map_err(|e| StoreError::Backend(Box::new(e)))??;
            Ok(Arc::new(store))
        }
        target::Target::Postgres { config, location } => {
            Ok(Arc::new(postgres::PgStore::open(config, location).await?))
        }
    }
}
