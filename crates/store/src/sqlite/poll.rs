//! Notices commits made by other processes: while anyone waits, a thread asks SQLite's
//! `PRAGMA data_version` (which changes when another connection commits) every poll interval,
//! and on a change publishes the watched runs' last sequence numbers.

use std::sync::Weak;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

use super::{Role, connect, read};
use crate::target::SqliteTarget;
use crate::watch::Watchers;

/// Starts the poller thread. It idles while nobody waits and ends with the store (when the
/// watchers, and with them the wake-up sender, are dropped).
pub(super) fn spawn(
    target: SqliteTarget,
    watchers: Weak<Watchers>,
    wake: Receiver<()>,
    interval: Duration,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sqlite-poll".into())
        .spawn(move || run(&target, &watchers, &wake, interval))
        .map(drop)
}

fn run(target: &SqliteTarget, watchers: &Weak<Watchers>, wake: &Receiver<()>, interval: Duration) {
    let mut conn: Option<Connection> = None;
    let mut version: Option<i64> = None;
    loop {
        let idle = match watchers.upgrade() {
            Some(w) => w.is_empty(),
            None => return,
        };
        let woke = if idle {
            wake.recv().map_err(|_| ())
        } else {
            match wake.recv_timeout(interval) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => Ok(()),
                Err(RecvTimeoutError::Disconnected) => Err(()),
            }
        };
        if woke.is_err() {
            return;
        }
        let Some(watchers) = watchers.upgrade() else {
            return;
        };
        if conn.is_none() {
            // Failing to connect here only delays cross-process wake-ups to the waiters' own
            // re-checks; try again next round.
            conn = connect(target, Role::Reader).ok();
        }
        let Some(c) = &conn else { continue };
        let now: Option<i64> = c.query_row("PRAGMA data_version", [], |r| r.get(0)).ok();
        if now.is_none() || now == version {
            continue;
        }
        version = now;
        for run in watchers.watched() {
            if let Ok(Some(last)) = read::last_seq(c, run) {
                watchers.publish(run, last);
            }
        }
    }
}
