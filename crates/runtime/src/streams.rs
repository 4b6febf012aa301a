//! Text that models are streaming right now, per run and step: what a client that
//! (re)connects in the middle of a call has missed of it.
//!
//! A call's text is kept from its first token until the call ends (answered, failed,
//! cancelled: the entry goes with the call's guard), at most [`KEPT_BYTES`] of it (the
//! newest). Tokens are added and sent to the live bus under one lock, so a subscriber that
//! takes a snapshot with [`Streams::subscribe`] gets every token exactly once: in the
//! snapshot or on the bus.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use botarmy_protocol::{LiveEvent, RunId, UnixMillis};
use serde::Serialize;
use tokio::sync::broadcast;

/// Bytes of a call's streamed text kept; beyond, the oldest are dropped.
pub const KEPT_BYTES: usize = 256 * 1024;

/// The text streamed so far by one model call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Streaming {
    /// The run.
    pub run_id: RunId,
    /// Step index.
    pub step: u32,
    /// Attempt of the step.
    pub attempt: u32,
    /// The call within the attempt (from 0).
    pub call: u32,
    /// The agent answering.
    pub agent: String,
    /// When its first token came.
    pub started_at: UnixMillis,
    /// The text kept (the newest [`KEPT_BYTES`]).
    pub text: String,
    /// Bytes dropped from the start to keep within the bound.
    pub dropped_bytes: u64,
}

/// The live bus and the calls streaming now.
pub(crate) struct Live {
    bus: broadcast::Sender<Arc<LiveEvent>>,
    streams: Mutex<HashMap<(RunId, u32), Streaming>>,
}

impl Live {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        let (bus, _) = broadcast::channel(capacity);
        Arc::new(Self {
            bus,
            streams: Mutex::default(),
        })
    }

    pub(crate) fn bus(&self) -> &broadcast::Sender<Arc<LiveEvent>> {
        &self.bus
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<(RunId, u32), Streaming>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts keeping a call's text; it is dropped with the returned guard.
    pub(crate) fn begin(
        self: &Arc<Self>,
        run_id: RunId,
        step: u32,
        attempt: u32,
        call: u32,
        agent: &str,
    ) -> CallStream {
        self.streams().insert(
            (run_id, step),
            Streaming {
                run_id,
                step,
                attempt,
                call,
                agent: agent.to_owned(),
                started_at: botarmy_protocol::now_millis(),
                text: String::new(),
                dropped_bytes: 0,
            },
        );
        CallStream {
            live: Arc::clone(self),
            key: (run_id, step),
            call: (attempt, call),
            agent: agent.to_owned(),
        }
    }

    /// Every stream of the run now, and a receiver of what follows them (taken under the
    /// lock tokens are added under, so each token is in one of the two).
    pub(crate) fn subscribe(
        &self,
        run_id: RunId,
    ) -> (broadcast::Receiver<Arc<LiveEvent>>, Vec<Streaming>) {
        let streams = self.streams();
        (self.bus.subscribe(), of_run(&streams, run_id))
    }

    /// Every stream of the run now.
    pub(crate) fn streaming(&self, run_id: RunId) -> Vec<Streaming> {
        of_run(&self.streams(), run_id)
    }
}

/// The run's streams, by step.
fn of_run(streams: &HashMap<(RunId, u32), Streaming>, run_id: RunId) -> Vec<Streaming> {
    let mut now: Vec<Streaming> = streams
        .values()
        .filter(|s| s.run_id == run_id)
        .cloned()
        .collect();
    now.sort_by_key(|s| s.step);
    now
}

/// A call's stream, kept while this lives.
pub(crate) struct CallStream {
    live: Arc<Live>,
    key: (RunId, u32),
    call: (u32, u32),
    agent: String,
}

impl CallStream {
    /// Keeps the text and sends it to live subscribers.
    pub(crate) fn token(&self, text: &str) {
        let mut streams = self.live.streams();
        if let Some(s) = streams.get_mut(&self.key)
            && (s.attempt, s.call) == self.call
        {
            s.text.push_str(text);
            if s.text.len() > KEPT_BYTES {
                let mut cut = s.text.len() - KEPT_BYTES;
                while !s.text.is_char_boundary(cut) {
                    cut += 1;
                }
                s.text.drain(..cut);
                s.dropped_bytes += cut as u64;
            }
        }
        let _ = self.live.bus.send(Arc::new(LiveEvent::Token {
            run_id: self.key.0,
            step: self.key.1,
            agent: self.agent.clone(),
            text: text.to_owned(),
        }));
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        let mut streams = self.live.streams();
        if streams
            .get(&self.key)
            .is_some_and(|s| (s.attempt, s.call) == self.call)
        {
            streams.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_and_the_bus_hold_each_token_once() {
        let live = Live::new(16);
        let run = RunId::new();
        let call = live.begin(run, 2, 1, 0, "coder");
        call.token("fn ");
        call.token("main");
        let (mut rx, now) = live.subscribe(run);
        call.token("() {}");
        assert_eq!(now.len(), 1);
        assert_eq!((now[0].step, now[0].attempt, now[0].call), (2, 1, 0));
        assert_eq!(now[0].text, "fn main");
        match &*rx.try_recv().unwrap() {
            LiveEvent::Token { text, step, .. } => assert_eq!((text.as_str(), *step), ("() {}", 2)),
            other => panic!("{other:?}"),
        }
        assert!(rx.try_recv().is_err());
        // Other runs' streams are not in the snapshot; an ended call leaves none.
        assert!(live.subscribe(RunId::new()).1.is_empty());
        drop(call);
        assert!(live.subscribe(run).1.is_empty());
    }

    #[test]
    fn a_long_stream_keeps_its_newest_bytes() {
        let live = Live::new(4);
        let run = RunId::new();
        let call = live.begin(run, 0, 1, 0, "analyst");
        let chunk = "é".repeat(1000); // two bytes each
        for _ in 0..200 {
            call.token(&chunk);
        }
        let now = &live.subscribe(run).1[0];
        assert!(now.text.len() <= KEPT_BYTES && now.text.len() > KEPT_BYTES - 2);
        assert_eq!(now.dropped_bytes as usize + now.text.len(), 400_000);
    }

    #[test]
    fn a_new_call_of_the_step_replaces_the_old_and_outlives_its_guard() {
        let live = Live::new(4);
        let run = RunId::new();
        let first = live.begin(run, 0, 1, 0, "analyst");
        first.token("old");
        let second = live.begin(run, 0, 1, 1, "analyst");
        second.token("new");
        first.token("late");
        drop(first);
        let now = live.subscribe(run).1;
        assert_eq!((now[0].call, now[0].text.as_str()), (1, "new"));
        drop(second);
        assert!(live.subscribe(run).1.is_empty());
    }
}
