//! WAL checkpoints off the writer's path: the writer's WAL hook asks for one when the log
//! passes [`PAGES`] frames, and this thread copies the log back into the database
//! (`PASSIVE`: it never blocks the writer or readers) and pays for the `fsync`s.
//!
//! A background checkpoint races the writer, which keeps appending frames, so it may never
//! catch up with the end of the log, and the log is only rewound from its start once a
//! checkpoint has copied all of it. So when the log passes [`WRITER_PAGES`] the writer
//! finishes the job itself (cheaply: the background thread has copied most of it), which
//! bounds the WAL file.

use std::sync::mpsc::{Receiver, SyncSender};

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use super::{Role, connect};
use crate::StoreError;
use crate::target::SqliteTarget;

/// WAL size (in pages) that triggers a background checkpoint; SQLite's own default.
const PAGES: i32 = 1_000;
/// WAL size (in pages) at which the writer checkpoints.
const WRITER_PAGES: i32 = 4 * PAGES;

/// Installs the hook on the writer connection and starts the checkpointer thread, which ends
/// when the writer connection (holding the hook, and with it the sender) is closed.
pub(super) fn install(
    writer: &mut Connection,
    target: &SqliteTarget,
    location: &str,
) -> Result<(), StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let conn = connect(target, Role::Checkpointer).map_err(|e| e.into_store(location))?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || run(&conn, &rx))
        .map_err(|e| StoreError::Open {
            location: location.to_string(),
            source: Box::new(e),
        })?;
    // Replaces SQLite's automatic checkpoints, which would run on the writer.
    writer
        .wal_hook(Some(hook(tx)))
        .map_err(|e| super::sql_error(&e, location))
}

fn hook(tx: SyncSender<()>) -> impl FnMut(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()> {
    move |wal, pages| {
        if pages >= WRITER_PAGES {
            // Busy (the background checkpoint is running): next commit tries again.
            let _ = wal.checkpoint();
        } else if pages >= PAGES {
            // Full: a checkpoint is already asked for.
            let _ = tx.try_send(());
        }
        Ok(())
    }
}

fn run(conn: &Connection, rx: &Receiver<()>) {
    while rx.recv().is_ok() {
        // Busy or failed checkpoints are retried at the next request; the WAL stays valid.
        let _ = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
    }
}
