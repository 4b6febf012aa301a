//! `/ws?session_id=S`: the stream of a client session. It follows the runs the session's
//! tabs show (and the runs of the projects they show), each after the last event the
//! session acknowledged, and takes the client's acknowledgements.
//!
//! Messages, server to client, in this order:
//! - `{"type":"session_restored","session":{...},"runs":[{"run":{...},"acked":A,"missed":M,"streaming":[]}]}`:
//!   the session (tabs, UI state, read positions) and the full state of every run it
//!   follows (phases, steps, attempts), as `GET /api/sessions/{id}/restore` gives them.
//! - per run with events after its acknowledged one:
//!   `{"type":"offline_event","run_id":R,"count":M,"since":A,"last_seq":L}`, then those
//!   events themselves, as stored.
//! - per model call of a run still streaming:
//!   `{"type":"token_catchup","run_id":R,"step":I,"attempt":T,"call":C,"agent":G,"started_at":MS,"text":X,"dropped_bytes":D}`,
//!   the call's text so far; what follows of it comes as `token` messages.
//! - live events and tokens of those runs, and of runs that start to be followed while
//!   the stream is open (a tab opened, a run started in a followed project): from their
//!   acknowledged event, or whole.
//! - `{"type":"acked","acked":{RUN:N}}` after each acknowledgement, or
//!   `{"type":"error","code":C,"message":M,"details":[...]}` for one that is refused.
//!
//! Client to server: `{"type":"ack","run_id":R,"seq":N}` or
//! `{"type":"ack","acks":[{"run_id":R,"seq":N}]}`. Positions never move back; the next
//! connection of the session starts after them. A run's end does not end the stream; the
//! session's deletion does (`disconnect` with reason `session_deleted`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use botarmy_protocol::{LiveEvent, RunId, SessionId};
use botarmy_store::{RunSummary, StoreError};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::sessions::{AckInput, SessionView, followed, followed_run, record_acks};
use crate::ws::{DISCOVERY_INTERVAL, Out, goodbye, since_text, spawn_feeder, write};

/// Streams a session's runs until the client leaves, the server stops or the session is
/// deleted.
pub(crate) async fn stream(state: AppState, mut socket: WebSocket, caller: Caller, id: SessionId) {
    let _connected = state.sessions.connect(id);
    // Subscribed before anything is read: no change of the session and no event of its
    // runs is missed.
    let changes = state.sessions.watch();
    let bus = state.runtime.subscribe();
    let session = match state.store.get_session_in(&caller.tenant, id).await {
        Ok(session) => session,
        Err(e) => return refuse(&mut socket, e).await,
    };
    touch(&state, id).await;
    let runs = match followed(&state, &caller.tenant, &session, 0).await {
        Ok(runs) => runs,
        Err(e) => return refuse(&mut socket, e).await,
    };
    let mut started = Vec::with_capacity(runs.len());
    let mut restored = Vec::with_capacity(runs.len());
    for mut run in runs {
        let live = state.runtime.subscribe_streaming(run.id);
        match followed_run(&state, &caller, &session, run.id, Vec::new()).await {
            Ok(view) => {
                // What the client is told it missed is what the restored state shows.
                run.last_seq = view.run.run.last_seq;
                restored.push(view);
            }
            // Deleted meanwhile: not followed any more.
            Err(_) => continue,
        }
        started.push((run, live));
    }
    let hello = json!({
        "type": "session_restored",
        "session": SessionView::new(session.clone(), &state),
        "runs": restored,
    });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let config = Arc::clone(&state.config);
    let (tx, rx) = mpsc::channel(config.client_queue.max(1));
    let overflow = CancellationToken::new();
    let stop = CancellationToken::new();
    let _stop_feeders = stop.clone().drop_guard();
    let mut delivered = BTreeMap::new();
    let mut known = HashSet::new();
    for (run, (bus, streaming)) in started {
        let since = session.acked.get(&run.id).copied().unwrap_or(0);
        known.insert(run.id);
        delivered.insert(run.id, since);
        spawn_feeder(
            &state,
            run,
            since,
            (bus, Some(streaming)),
            &tx,
            &overflow,
            &stop,
        );
    }
    let finder = Finder {
        state: state.clone(),
        caller: caller.clone(),
        id,
        known,
        foreign: HashSet::new(),
        tx: tx.clone(),
        overflow: overflow.clone(),
        stop: stop.clone(),
    };
    let finder = tokio::spawn(finder.run(changes, bus));
    drop(tx);
    let mut acks = Acks {
        tenant: caller.tenant.clone(),
        id,
    };
    let ending = write(
        &state,
        &mut socket,
        rx,
        &overflow,
        &mut delivered,
        false,
        Some(&mut acks),
    )
    .await;
    stop.cancel();
    let _ = finder.await;
    touch(&state, id).await;
    goodbye(&mut socket, ending, json!(since_text(&delivered))).await;
}

async fn touch(state: &AppState, id: SessionId) {
    if let Err(e) = state
        .store
        .touch_session(id, botarmy_protocol::now_millis())
        .await
    {
        eprintln!("botarmy-server: session {id}: cannot record that it was seen: {e}");
    }
}

/// Tells the client why its session cannot be streamed, and closes.
async fn refuse(socket: &mut WebSocket, error: impl Into<ApiError>) {
    let error: ApiError = error.into();
    let ending = Some(("session_unavailable", error.body().message.clone(), 1011));
    goodbye(socket, ending, json!("")).await;
}

/// Runs of each followed project looked at when the session is read again.
const NEWEST: u32 = 50;

/// Starts the feeders of runs the session comes to follow while its stream is open.
struct Finder {
    state: AppState,
    caller: Caller,
    id: SessionId,
    /// Runs with a feeder.
    known: HashSet<RunId>,
    /// Runs seen on the bus that the session does not follow (looked up once).
    foreign: HashSet<RunId>,
    tx: mpsc::Sender<Out>,
    overflow: CancellationToken,
    stop: CancellationToken,
}

impl Finder {
    async fn run(
        mut self,
        mut changes: tokio::sync::broadcast::Receiver<SessionId>,
        mut bus: tokio::sync::broadcast::Receiver<Arc<LiveEvent>>,
    ) {
        // Changes made through another server process, and runs driven by another one,
        // are found by looking again now and then.
        let mut look = tokio::time::interval(DISCOVERY_INTERVAL);
        look.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let again = tokio::select! {
                () = self.stop.cancelled() => return,
                change = changes.recv() => match change {
                    Ok(changed) => changed == self.id,
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return,
                },
                message = bus.recv() => match message.as_deref() {
                    Ok(LiveEvent::Event(record)) => {
                        !self.known.contains(&record.run_id) && self.foreign.insert(record.run_id)
                    }
                    Ok(LiveEvent::Token { .. }) => false,
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return,
                },
                _ = look.tick() => true,
            };
            if again && !self.refresh().await {
                return;
            }
        }
    }

    /// Reads the session again and starts feeders for the runs it follows now; false when
    /// the stream is to end.
    async fn refresh(&mut self) -> bool {
        let session = match self
            .state
            .store
            .get_session_in(&self.caller.tenant, self.id)
            .await
        {
            Ok(session) => session,
            Err(StoreError::NotFound { .. }) => {
                let _ = self
                    .tx
                    .send(Out::Failed {
                        reason: "session_deleted",
                        message: format!("session {} was deleted", self.id),
                    })
                    .await;
                return false;
            }
            // Tried again at the next look.
            Err(_) => return true,
        };
        // A run that starts to be followed now is new, or of a tab just opened: the newest
        // runs of each project are enough.
        let runs: Vec<RunSummary> =
            match followed(&self.state, &self.caller.tenant, &session, NEWEST).await {
                Ok(runs) => runs,
                Err(_) => return true,
            };
        for run in runs {
            if self.known.insert(run.id) {
                self.foreign.remove(&run.id);
                let since = session.acked.get(&run.id).copied().unwrap_or(0);
                let live = self.state.runtime.subscribe_streaming(run.id);
                spawn_feeder(
                    &self.state,
                    run,
                    since,
                    (live.0, Some(live.1)),
                    &self.tx,
                    &self.overflow,
                    &self.stop,
                );
            }
        }
        true
    }
}

/// What a client sends on a session's stream.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    /// Read positions: one (`run_id`, `seq`) or many (`acks`).
    Ack {
        #[serde(default)]
        run_id: Option<RunId>,
        #[serde(default)]
        seq: Option<u64>,
        #[serde(default)]
        acks: Vec<AckInput>,
    },
}

/// Takes a session's acknowledgements from its stream.
pub(crate) struct Acks {
    tenant: String,
    id: SessionId,
}

impl Acks {
    /// Handles one message of the client; returns the reply.
    pub(crate) async fn receive(&mut self, state: &AppState, text: &str) -> String {
        let result = match serde_json::from_str::<ClientMessage>(text) {
            Err(e) => Err(ApiError::new(
                crate::error::ErrorCode::InvalidRequest,
                format!(
                    "not a message this stream takes ({e}); send {{\"type\":\"ack\",\"run_id\":R,\"seq\":N}}"
                ),
            )),
            Ok(ClientMessage::Ack { run_id, seq, acks }) => {
                let mut all: Vec<(RunId, u64)> = acks.iter().map(|a| (a.run_id, a.seq)).collect();
                match (run_id, seq) {
                    (Some(run), Some(seq)) => all.push((run, seq)),
                    (None, None) if !all.is_empty() => {}
                    _ => {
                        return error_reply(&ApiError::new(
                            crate::error::ErrorCode::InvalidRequest,
                            "an ack names `run_id` and `seq`, or lists `acks`",
                        ));
                    }
                }
                record_acks(state, &self.tenant, self.id, all).await
            }
        };
        match result {
            Ok(acked) => json!({"type": "acked", "acked": acked}).to_string(),
            Err(e) => error_reply(&e),
        }
    }
}

fn error_reply(error: &ApiError) -> String {
    let mut body = json!(error.body());
    body["type"] = json!("error");
    body.to_string()
}
