//! `/ws?run_id=ID&since=N`: one run's events as a WebSocket stream, every stored event
//! after `N` from the durable log and then the live ones, with no gap and no duplicate.
//!
//! How: the stream subscribes to the runtime's live bus *before* it reads the log, then
//! forwards bus events whose sequence number is the next one expected; one it has already
//! sent is dropped, and a jump (the bus lagged, or another process appended) is filled from
//! the log. A run this process does not drive is also watched through the store, which sees
//! appends of other processes.
//!
//! Messages (JSON text frames), server to client:
//! - `{"type":"subscribed","run_id":ID,"since":N,"last_seq":M}`, first.
//! - each event as stored: `{"run_id":ID,"seq":S,"at":MS,"type":"step_started",...}`, the
//!   `type` being the event's name; sequence numbers follow each other from `N + 1`.
//! - `{"type":"token","run_id":ID,"step":I,"agent":A,"text":T}`: text streamed by a model,
//!   gathered over a short interval so a fast model does not flood a slow client; not
//!   stored, so not replayed on reconnect.
//! - `{"type":"disconnect","reason":R,"message":M,"resume_since":S}`, last, when the server
//!   ends the stream: `slow_consumer` (the client's bounded queue stayed full),
//!   `server_shutdown`, `heartbeat_timeout` or `store_error`. Reconnecting with
//!   `since=S` continues exactly after the last event received.
//!
//! After a run's final event (`pipeline_completed`, `pipeline_failed`,
//! `pipeline_cancelled`) the server closes the socket with code 1000. It pings every
//! heartbeat interval; a client that sends nothing (not even a pong) for two is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use botarmy_protocol::{EventRecord, LiveEvent, RunId};
use botarmy_store::{RunSummary, StoreError};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::input::{QueryParams, invalid_param};

/// Names of the events after which a run's log never grows.
const FINAL_EVENTS: [&str; 3] = [
    "pipeline_completed",
    "pipeline_failed",
    "pipeline_cancelled",
];

/// Events read from the log per query while catching up.
const PAGE: u32 = 500;

/// Streamed text gathered beyond this many bytes is sent at once.
const TOKEN_BATCH_BYTES: usize = 16 * 1024;

/// How long a goodbye may take to send to a client that does not read.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

/// Upgrades to the WebSocket stream of one run, after checking the request.
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    mut query: QueryParams,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let run_id: RunId = match query.id("run_id")? {
        Some(id) => id,
        None => {
            return Err(invalid_param(
                "run_id",
                "is required: the run to stream".into(),
            ));
        }
    };
    let since = query.number("since", 0, 0, i64::MAX as u64)?;
    // The credential, for clients that cannot send headers; authentication read it.
    let _ = query.take("token");
    query.finish()?;
    let run = state.store.get_run_in(&caller.tenant, run_id).await?;
    let ws = ws.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("/ws speaks WebSocket only: {}", e.body_text()),
        )
    })?;
    // A client that sent its token as the subprotocols `bearer, <token>` gets `bearer`
    // back (never the token).
    Ok(ws
        .protocols(["bearer"])
        .on_upgrade(move |socket| stream(state, socket, run, since)))
}

/// What the feeder hands the writer.
enum Out {
    /// A stored event, serialized.
    Event { seq: u64, text: String },
    /// Streamed tokens, serialized.
    Token(String),
    /// The run's log is complete: close normally.
    End,
    /// The feeder cannot go on.
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// The feeder could not queue a message.
enum Stop {
    /// The writer is gone.
    Gone,
    /// The queue is full: the client is too slow.
    Full,
}

struct Feeder {
    state: AppState,
    run_id: RunId,
    /// The last sequence number queued.
    last: u64,
    tx: mpsc::Sender<Out>,
    overflow: CancellationToken,
    /// Streamed text not yet sent: (step, agent, text), in arrival order.
    tokens: Vec<(u32, String, String)>,
    token_bytes: usize,
}

impl Feeder {
    /// Queues a message. One read from the log waits for room as long as it takes (nothing
    /// is lost meanwhile: the log keeps it); a live one waits at most the configured patience,
    /// after which the client is too slow.
    async fn push(&mut self, out: Out, from_log: bool) -> Result<(), Stop> {
        let patience = self.state.config.slow_client;
        let result = if from_log {
            self.tx.send(out).await.map_err(|_| Stop::Gone)
        } else if patience.is_zero() {
            self.tx.try_send(out).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Stop::Full,
                mpsc::error::TrySendError::Closed(_) => Stop::Gone,
            })
        } else {
            self.tx
                .send_timeout(out, patience)
                .await
                .map_err(|e| match e {
                    mpsc::error::SendTimeoutError::Timeout(_) => Stop::Full,
                    mpsc::error::SendTimeoutError::Closed(_) => Stop::Gone,
                })
        };
        if matches!(result, Err(Stop::Full)) {
            self.overflow.cancel();
        }
        result
    }

    /// Queues a stored event; returns whether it ends the run.
    async fn event(&mut self, record: &EventRecord, from_log: bool) -> Result<bool, Stop> {
        self.flush_tokens().await?;
        match serde_json::to_string(record) {
            Ok(text) => {
                self.push(
                    Out::Event {
                        seq: record.seq,
                        text,
                    },
                    from_log,
                )
                .await?
            }
            Err(e) => {
                // Cannot happen for our own types; skipping it would leave a gap.
                let _ = self
                    .push(
                        Out::Failed {
                            reason: "store_error",
                            message: format!("event {} cannot be encoded: {e}", record.seq),
                        },
                        true,
                    )
                    .await;
                return Err(Stop::Gone);
            }
        }
        self.last = record.seq;
        Ok(FINAL_EVENTS.contains(&record.event.name()))
    }

    async fn token(&mut self, step: u32, agent: String, text: String) -> Result<(), Stop> {
        self.token_bytes += text.len();
        match self.tokens.last_mut() {
            Some((s, a, t)) if *s == step && *a == agent => t.push_str(&text),
            _ => self.tokens.push((step, agent, text)),
        }
        if self.token_bytes >= TOKEN_BATCH_BYTES {
            self.flush_tokens().await?;
        }
        Ok(())
    }

    async fn flush_tokens(&mut self) -> Result<(), Stop> {
        self.token_bytes = 0;
        for (step, agent, text) in std::mem::take(&mut self.tokens) {
            let message = json!({
                "type": "token",
                "run_id": self.run_id,
                "step": step,
                "agent": agent,
                "text": text,
            });
            self.push(Out::Token(message.to_string()), false).await?;
        }
        Ok(())
    }

    /// Queues every stored event after `last`; returns whether the run has ended.
    async fn catch_up(&mut self) -> Result<bool, Stop> {
        loop {
            let page = match self
                .state
                .store
                .read_events(self.run_id, self.last, PAGE)
                .await
            {
                Ok(page) => page,
                Err(error) => return Err(self.store_failed(&error).await),
            };
            for record in &page {
                if self.event(record, true).await? {
                    return Ok(true);
                }
            }
            if page.len() < PAGE as usize {
                return Ok(false);
            }
        }
    }

    async fn store_failed(&mut self, error: &StoreError) -> Stop {
        eprintln!(
            "botarmy-server: stream of run {} cannot read the log: {error}",
            self.run_id
        );
        let _ = self
            .push(
                Out::Failed {
                    reason: "store_error",
                    message: "the event log cannot be read now; reconnect with resume_since".into(),
                },
                true,
            )
            .await;
        Stop::Gone
    }
}

type Waiter = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>;

/// Produces the stream's messages until the run ends, the writer goes, or the client
/// falls behind.
async fn feed(
    mut f: Feeder,
    mut bus: broadcast::Receiver<LiveEvent>,
    run: RunSummary,
    since: u64,
    stop: CancellationToken,
) {
    // The bus was subscribed before this reads the log: whatever is appended meanwhile is
    // on the bus.
    match f.catch_up().await {
        Ok(true) => return end(&mut f).await,
        Ok(false) => {}
        Err(_) => return,
    }
    if run.status.is_terminal() && since >= run.last_seq {
        return end(&mut f).await;
    }
    let batch = f.state.config.token_batch;
    let flush_at = tokio::time::sleep(batch);
    tokio::pin!(flush_at);
    let mut waiter: Option<Waiter> = None;
    loop {
        // A run this process does not drive may be driven by another one: watch the store.
        if f.state.drives.is_driven(f.run_id) {
            waiter = None;
        } else if waiter.is_none() {
            let store = Arc::clone(&f.state.store);
            let (run_id, after) = (f.run_id, f.last);
            waiter = Some(Box::pin(async move {
                store
                    .wait_for_events(run_id, after, Duration::from_secs(30))
                    .await
            }));
        }
        let step: Result<bool, Stop> = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            message = bus.recv() => match message {
                Ok(LiveEvent::Event(record)) if record.run_id == f.run_id => {
                    if record.seq <= f.last {
                        Ok(false)
                    } else if record.seq == f.last + 1 {
                        f.event(&record, false).await
                    } else {
                        f.catch_up().await
                    }
                }
                Ok(LiveEvent::Token { run_id, step, agent, text }) if run_id == f.run_id => {
                    if f.tokens.is_empty() {
                        flush_at.as_mut().reset(Instant::now() + batch);
                    }
                    f.token(step, agent, text).await.map(|()| false)
                }
                Ok(_) => Ok(false),
                Err(RecvError::Lagged(_)) => f.catch_up().await,
                Err(RecvError::Closed) => return,
            },
            () = &mut flush_at, if !f.tokens.is_empty() => f.flush_tokens().await.map(|()| false),
            woke = async { match waiter.as_mut() { Some(w) => w.await, None => std::future::pending().await } } => {
                waiter = None;
                match woke {
                    Ok(_) => f.catch_up().await,
                    Err(error) => Err(f.store_failed(&error).await),
                }
            }
        };
        match step {
            Ok(false) => {}
            Ok(true) => return end(&mut f).await,
            Err(_) => return,
        }
    }
}

/// The run's log is complete.
async fn end(f: &mut Feeder) {
    let _ = f.push(Out::End, true).await;
}

/// Writes the feeder's messages to the socket, pings, and says goodbye.
async fn stream(state: AppState, mut socket: WebSocket, run: RunSummary, since: u64) {
    let config = Arc::clone(&state.config);
    let (tx, mut rx) = mpsc::channel(config.client_queue.max(1));
    let overflow = CancellationToken::new();
    let stop = CancellationToken::new();
    let _stop_feeder = stop.clone().drop_guard();
    // Subscribe before anything is read from the log (and before the client hears it is
    // subscribed), so nothing appended from now on is missed.
    let bus = state.runtime.subscribe();
    let hello = json!({
        "type": "subscribed",
        "run_id": run.id,
        "since": since,
        "last_seq": run.last_seq,
    });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let feeder = Feeder {
        state: state.clone(),
        run_id: run.id,
        last: since,
        tx,
        overflow: overflow.clone(),
        tokens: Vec::new(),
        token_bytes: 0,
    };
    tokio::spawn(feed(feeder, bus, run, since, stop.clone()));

    let mut delivered = since;
    let mut heartbeat =
        tokio::time::interval_at(Instant::now() + config.heartbeat, config.heartbeat);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    let ending = loop {
        tokio::select! {
            biased;
            () = state.shutdown.cancelled() => break Some(("server_shutdown", "the server is shutting down".to_owned(), 1001)),
            () = overflow.cancelled() => break Some((
                "slow_consumer",
                format!(
                    "the client does not read fast enough: its queue of {} messages stayed full",
                    config.client_queue
                ),
                1008,
            )),
            out = rx.recv() => {
                let (text, seq) = match out {
                    Some(Out::Event { seq, text }) => (text, Some(seq)),
                    Some(Out::Token(text)) => (text, None),
                    Some(Out::End) => {
                        let _ = close(&mut socket, 1000, "run finished").await;
                        break None;
                    }
                    Some(Out::Failed { reason, message }) => break Some((reason, message, 1011)),
                    None => break None,
                };
                // A send is never cut short, so `delivered` is exact; one the client does not
                // take for this long means it is gone (it knows what it received).
                match tokio::time::timeout(
                    config.heartbeat * 2,
                    socket.send(Message::Text(text.into())),
                )
                .await
                {
                    Ok(Ok(())) => {
                        if let Some(seq) = seq {
                            delivered = seq;
                        }
                    }
                    Ok(Err(_)) | Err(_) => break None,
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
                Some(Ok(_)) => heard = Instant::now(),
            },
            _ = heartbeat.tick() => {
                if heard.elapsed() > config.heartbeat * 2 {
                    break Some(("heartbeat_timeout", "the client answered nothing, not even pings".to_owned(), 1001));
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    stop.cancel();
    if let Some((reason, message, code)) = ending {
        let goodbye = json!({
            "type": "disconnect",
            "reason": reason,
            "message": message,
            "resume_since": delivered,
        });
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
            if socket
                .send(Message::Text(goodbye.to_string().into()))
                .await
                .is_ok()
            {
                let _ = close(&mut socket, code, reason).await;
            }
        })
        .await;
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) -> Result<(), axum::Error> {
    socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        })))
        .await
}
