//! WAL checkpoints, mostly off the writer's path.
//!
//! The log is copied back into the database by checkpoints, and it is rewound to its start
//! (so the WAL file stops growing) only at a write that finds it copied entirely. Copying
//! and its `fsync`s are the expensive part, so a background thread does it: when the log
//! passes [`PAGES`] frames the writer's WAL hook asks it for one `PASSIVE` checkpoint (which
//! never blocks the writer or readers). That one races the writer, which keeps appending, so
//! it cannot finish the job; at [`WRITER_PAGES`] the writer finishes it itself between two
//! transactions (cheaply: most pages are copied), unless the background checkpoint is still
//! running. At [`WRITER_WAITS`] (the disk cannot keep up) the writer waits for it to end
//! rather than let the log grow: the WAL file stays bounded.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, TryLockError};

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use super::{Role, connect};
use crate::StoreError;
use crate::target::SqliteTarget;
use crate::watch::lock;

/// WAL size (in pages: 8 MiB) that triggers a background checkpoint.
const PAGES: i32 = 2_000;
/// WAL size (in pages: 16 MiB) at which the writer checkpoints if the background one is done.
const WRITER_PAGES: i32 = 2 * PAGES;
/// WAL size (in pages: 32 MiB) at which the writer waits for the background checkpoint, then
/// checkpoints.
const WRITER_WAITS: i32 = 4 * PAGES;

/// Installs the hook on the writer connection and starts the checkpointer thread, which ends
/// when the writer connection (holding the hook, and with it the sender) is closed.
pub(super) fn install(
    writer: &mut Connection,
    target: &SqliteTarget,
    location: &str,
) -> Result<(), StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let conn = connect(target, Role::Checkpointer).map_err(|e| e.into_store(location))?;
    // Held by whoever checkpoints, so the writer can wait for the background thread.
    let running = Arc::new(Mutex::new(()));
    let background = Arc::clone(&running);
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || run(&conn, &rx, &background))
        .map_err(|e| StoreError::Open {
            location: location.to_string(),
            source: Box::new(e),
        })?;
    // Replaces SQLite's automatic checkpoints, which would run on the writer.
    writer
        .wal_hook(Some(hook(tx, running)))
        .map_err(|e| super::sql_error(&e, location))
}

fn hook(
    tx: SyncSender<()>,
    running: Arc<Mutex<()>>,
) -> impl FnMut(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()> {
    // Whether the background checkpoint may be asked for (once per pass through the log).
    let mut armed = true;
    move |wal, pages| {
        if pages < PAGES {
            armed = true;
        } else if armed {
            armed = false;
            let _ = tx.try_send(());
        }
        if pages >= WRITER_WAITS {
            let _done = lock(&running);
            // Failures (another process checkpointing, a reader on an old snapshot) are
            // retried at the next commit.
            let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
        } else if pages >= WRITER_PAGES {
            let free = match running.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if free.is_some() {
                let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
            }
        }
        Ok(())
    }
}

fn run(conn: &Connection, rx: &Receiver<()>, running: &Mutex<()>) {
    while rx.recv().is_ok() {
        let _running = lock(running);
        // A failed checkpoint leaves the WAL valid; the writer finishes the job.
        let _ = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
    }
}
