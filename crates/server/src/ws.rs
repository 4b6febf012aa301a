//! `/ws?run_id=ID&since=N`: one run's events as a WebSocket stream, every stored event
//! after `N` from the durable log and then the live ones, with no gap and no duplicate.
//!
//! `/ws?session_id=S` streams what a client session follows (see `session_stream`).
//!
//! `/ws?project_id=P` and `/ws?scope=all` stream many runs at once: a project's, or every
//! run of the caller's tenant. The runs active when the client connects are streamed from
//! their last event (or, for a run named in `since=RUN:N,RUN:N`, after `N`); a run created
//! while the stream is open is streamed whole, from its `pipeline_created`. Each run's
//! events keep the guarantees above, each under its own sequence numbers; a run's end does
//! not end the stream. The first message is
//! `{"type":"subscribed","scope":"project"|"all","project_id":P,"runs":[{run_id,since,last_seq}]}`
//! and a goodbye's `resume_since` is `RUN:N,RUN:N`, to pass back as `since`.
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use botarmy_protocol::{Event, EventRecord, IdParseError, LiveEvent, ProjectId, RunId, SessionId};
use botarmy_runtime::Streaming;
use botarmy_store::{RunSummary, StoreError};
use futures_util::SinkExt;
use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
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

/// Bytes a stream's socket buffers before flushing a write.
const SOCKET_BUFFER: usize = 8 * 1024;

/// Bytes a stream reads from its socket at once. Clients send little (pongs, acks), and the
/// WebSocket library zero-fills up to this much before each read it tries, which with a
/// thousand streams is done a thousand times per event.
const READ_BUFFER: usize = 1024;

/// How long a goodbye may take to send to a client that does not read.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

/// Upgrades to a WebSocket stream, after checking the request: one run (`run_id`, with
/// `since=N`), a project's runs (`project_id`) or every run of the caller's tenant
/// (`scope=all`), the last two with `since=RUN:N,RUN:N` for the runs to resume.
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    mut query: QueryParams,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let run_id: Option<RunId> = query.id("run_id")?;
    let project_id: Option<ProjectId> = query.id("project_id")?;
    let session_id: Option<SessionId> = query.id("session_id")?;
    let all = match query.take("scope").as_deref() {
        None => false,
        Some("all") => true,
        Some(other) => {
            return Err(invalid_param(
                "scope",
                format!("`{other}` is not a scope; `all` streams every run you may see"),
            ));
        }
    };
    let target = match (run_id, project_id, all) {
        (None, None, false) if let Some(id) = session_id => {
            // Missing ones are refused before the upgrade; the stream reads it again.
            state.store.get_session_in(&caller.tenant, id).await?;
            Target::Session(id)
        }
        _ if session_id.is_some() => {
            return Err(invalid_param(
                "session_id",
                "a session's stream follows its tabs: give `session_id` alone".into(),
            ));
        }
        (Some(run), None, false) => {
            let since = query.number("since", 0, 0, i64::MAX as u64)?;
            Target::Run(state.store.get_run_in(&caller.tenant, run).await?, since)
        }
        (None, Some(project), false) => {
            state.store.get_project_in(&caller.tenant, project).await?;
            let since = since_map(&state, &caller, query.take("since"), Some(project)).await?;
            Target::Many(Scope::Project(project), since)
        }
        (None, None, true) => {
            let since = since_map(&state, &caller, query.take("since"), None).await?;
            Target::Many(Scope::Tenant, since)
        }
        (None, None, false) => {
            return Err(invalid_param(
                "run_id",
                "is required: the run to stream (or `project_id`, `scope=all` or `session_id`)"
                    .into(),
            ));
        }
        _ => {
            return Err(invalid_param(
                "run_id",
                "give one of `run_id`, `project_id` and `scope=all`".into(),
            ));
        }
    };
    // The credential, for clients that cannot send headers; authentication read it.
    let _ = query.take("token");
    query.finish()?;
    let ws = ws.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("/ws speaks WebSocket only: {}", e.body_text()),
        )
    })?;
    let tenant = caller.tenant.clone();
    // A client that sent its token as the subprotocols `bearer, <token>` gets `bearer`
    // back (never the token).
    // Clients send little (pongs, a close); events go out as they come: small buffers keep
    // a thousand subscribers cheap.
    Ok(ws
        .protocols(["bearer"])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .on_upgrade(move |socket| async move {
            match target {
                Target::Run(run, since) => stream(state, socket, run, since).await,
                Target::Many(scope, since) => {
                    stream_many(state, socket, tenant, scope, since).await
                }
                Target::Session(id) => {
                    crate::session_stream::stream(state, socket, caller, id).await
                }
            }
        }))
}

/// What a stream follows.
enum Target {
    /// One run, from a sequence number.
    Run(RunSummary, u64),
    /// The runs of a scope; those named resume after their sequence number.
    Many(Scope, BTreeMap<RunId, u64>),
    /// The runs a client session follows, after the events it acknowledged.
    Session(SessionId),
}

/// The runs a multi-run stream follows.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// A project's.
    Project(ProjectId),
    /// Every run of the caller's tenant.
    Tenant,
}

impl Scope {
    fn covers(self, run: &RunSummary) -> bool {
        match self {
            Self::Project(p) => run.project_id == p,
            Self::Tenant => true,
        }
    }
}

/// Reads `since=RUN:N,RUN:N`: each run must be the caller's and in the scope.
async fn since_map(
    state: &AppState,
    caller: &Caller,
    raw: Option<String>,
    project: Option<ProjectId>,
) -> Result<BTreeMap<RunId, u64>, ApiError> {
    let mut out = BTreeMap::new();
    for part in raw
        .iter()
        .flat_map(|r| r.split(','))
        .filter(|p| !p.trim().is_empty())
    {
        let bad = |why: String| invalid_param("since", format!("`{part}`: {why}"));
        let (run, seq) = part
            .trim()
            .split_once(':')
            .ok_or_else(|| bad("expected RUN_ID:SEQ".into()))?;
        let run: RunId = run.parse().map_err(|e: IdParseError| bad(e.to_string()))?;
        let seq: u64 = seq
            .parse()
            .map_err(|_| bad("the sequence number is not a whole number".into()))?;
        let summary = state.store.get_run_in(&caller.tenant, run).await?;
        if project.is_some_and(|p| p != summary.project_id) {
            return Err(bad("the run is not of this project".into()));
        }
        out.insert(run, seq);
    }
    Ok(out)
}

/// `RUN:N,RUN:N`, as `since` takes it.
pub(crate) fn since_text(delivered: &BTreeMap<RunId, u64>) -> String {
    delivered
        .iter()
        .map(|(run, seq)| format!("{run}:{seq}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Recent events, each encoded once and shared by every stream that sends it (a thousand
/// subscribers of one run would otherwise encode each event a thousand times).
#[derive(Default)]
pub(crate) struct Encoded {
    recent: std::sync::Mutex<EncodedRing>,
}

#[derive(Default)]
struct EncodedRing {
    by_key: std::collections::HashMap<(RunId, u64), Utf8Bytes>,
    order: std::collections::VecDeque<(RunId, u64)>,
}

/// Events kept encoded.
const ENCODED_KEPT: usize = 4096;

impl Encoded {
    fn get_or_encode(&self, record: &EventRecord) -> Result<Utf8Bytes, serde_json::Error> {
        let key = (record.run_id, record.seq);
        if let Some(text) = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_key
            .get(&key)
        {
            return Ok(text.clone());
        }
        let text = Utf8Bytes::from(serde_json::to_string(record)?);
        let mut ring = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ring.by_key.insert(key, text.clone()).is_none() {
            ring.order.push_back(key);
            if ring.order.len() > ENCODED_KEPT
                && let Some(old) = ring.order.pop_front()
            {
                ring.by_key.remove(&old);
            }
        }
        Ok(text)
    }
}

/// What the feeder hands the writer.
pub(crate) enum Out {
    /// A stored event of a run, serialized (shared by every stream that sends it).
    Event {
        run_id: RunId,
        seq: u64,
        text: Utf8Bytes,
    },
    /// Any other message (streamed tokens, a session's notices), serialized.
    Text(String),
    /// Several of the above, in order (what one drain of the bus gave).
    Many(Vec<Out>),
    /// The run's log is complete (a one-run stream closes normally).
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

pub(crate) struct Feeder {
    state: AppState,
    run_id: RunId,
    /// The last sequence number queued.
    last: u64,
    tx: mpsc::Sender<Out>,
    overflow: CancellationToken,
    /// Streamed text not yet sent: (step, agent, text), in arrival order.
    tokens: Vec<(u32, String, String)>,
    token_bytes: usize,
    /// For a session: the run's last event when the client connected, to say how many it
    /// missed (`offline_event`) before sending them.
    offline: Option<u64>,
    /// For a session: what models of the run were streaming when the client connected,
    /// sent (`token_catchup`) after the missed events, but for calls those events ended.
    catchup: Option<Vec<Streaming>>,
    /// While the bus is drained, live messages are held here and then handed to the
    /// writer at once: the events of one commit go out in one write, for one wake-up.
    holding: bool,
    held: Vec<Out>,
}

impl Feeder {
    /// Queues a message. One read from the log waits for room as long as it takes (nothing
    /// is lost meanwhile: the log keeps it); a live one waits at most the configured patience,
    /// after which the client is too slow.
    async fn push(&mut self, out: Out, from_log: bool) -> Result<(), Stop> {
        if self.holding && !from_log {
            self.held.push(out);
            return Ok(());
        }
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.send(Out::Many(held), false).await?;
        }
        self.send(out, from_log).await
    }

    /// Sends what was held back while the bus was drained, as one message.
    async fn release(&mut self) -> Result<(), Stop> {
        self.holding = false;
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        self.send(Out::Many(held), false).await
    }

    async fn send(&mut self, out: Out, from_log: bool) -> Result<(), Stop> {
        let patience = self.state.config.slow_client;
        // Room now is the rule; only a full queue needs waiting (and a timer).
        let out = match self.tx.try_send(out) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stop::Gone),
            Err(mpsc::error::TrySendError::Full(out)) => out,
        };
        let result = if from_log {
            self.tx.send(out).await.map_err(|_| Stop::Gone)
        } else if patience.is_zero() {
            Err(Stop::Full)
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

    /// Handles one message of the runtime's bus or the relay's; returns whether the run has
    /// ended.
    async fn live(&mut self, message: Result<Arc<LiveEvent>, RecvError>) -> Result<bool, Stop> {
        match message.as_deref() {
            Ok(LiveEvent::Event(record)) if record.run_id == self.run_id => {
                if record.seq <= self.last {
                    Ok(false)
                } else if record.seq == self.last + 1 {
                    self.event(record, false).await
                } else {
                    self.catch_up().await
                }
            }
            Ok(LiveEvent::Token {
                run_id,
                step,
                agent,
                text,
            }) if *run_id == self.run_id => self.token(*step, agent, text).await.map(|()| false),
            Ok(_) => Ok(false),
            Err(RecvError::Lagged(_)) => self.catch_up().await,
            // The runtime is gone: so is the server.
            Err(RecvError::Closed) => Err(Stop::Gone),
        }
    }

    /// Queues a stored event; returns whether it ends the run.
    async fn event(&mut self, record: &EventRecord, from_log: bool) -> Result<bool, Stop> {
        self.flush_tokens().await?;
        match self.state.encoded.get_or_encode(record) {
            Ok(text) => {
                self.push(
                    Out::Event {
                        run_id: record.run_id,
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
        if let Some(streams) = &mut self.catchup {
            streams.retain(|s| !ends_call(&record.event, s));
        }
        Ok(FINAL_EVENTS.contains(&record.event.name()))
    }

    async fn token(&mut self, step: u32, agent: &str, text: &str) -> Result<(), Stop> {
        self.token_bytes += text.len();
        match self.tokens.last_mut() {
            Some((s, a, t)) if *s == step && *a == agent => t.push_str(text),
            _ => self.tokens.push((step, agent.to_owned(), text.to_owned())),
        }
        if self.token_bytes >= TOKEN_BATCH_BYTES {
            self.flush_tokens().await?;
        }
        Ok(())
    }

    async fn flush_tokens(&mut self) -> Result<(), Stop> {
        self.token_bytes = 0;
        for (step, agent, text) in std::mem::take(&mut self.tokens) {
            // Written directly: every stream of the run encodes its own batches.
            let message = format!(
                r#"{{"type":"token","run_id":"{}","step":{step},"agent":{},"text":{}}}"#,
                self.run_id,
                json!(agent),
                json!(text),
            );
            self.push(Out::Text(message), false).await?;
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

/// Whether `event` ends the streaming call `s` (its text is then in the log).
fn ends_call(event: &Event, s: &Streaming) -> bool {
    match *event {
        Event::LlmCallCompleted {
            step,
            attempt,
            call,
            ..
        } => (step, attempt, call) == (s.step, s.attempt, s.call),
        Event::StepCompleted { step, attempt, .. }
        | Event::StepFailed { step, attempt, .. }
        | Event::StepInterrupted { step, attempt, .. } => (step, attempt) == (s.step, s.attempt),
        _ => false,
    }
}

/// Produces the stream's messages until the run ends, the writer goes, or the client
/// falls behind.
async fn feed(
    mut f: Feeder,
    (mut bus, mut relayed): (
        broadcast::Receiver<Arc<LiveEvent>>,
        broadcast::Receiver<Arc<LiveEvent>>,
    ),
    run: RunSummary,
    since: u64,
    stop: CancellationToken,
) {
    // What is appended from now on reaches one of the buses: this process's, or the
    // relay's, which reads the store for runs driven elsewhere.
    let _watching = if run.status.is_terminal() && since >= run.last_seq {
        None
    } else {
        match f.state.relay.watch(f.run_id).await {
            Ok(watching) => Some(watching),
            Err(error) => {
                f.store_failed(&error).await;
                return;
            }
        }
    };
    if let Some(last_seq) = f.offline.take()
        && last_seq > since
    {
        let missed = json!({
            "type": "offline_event",
            "run_id": f.run_id,
            "count": last_seq - since,
            "since": since,
            "last_seq": last_seq,
        });
        if f.push(Out::Text(missed.to_string()), true).await.is_err() {
            return;
        }
    }
    // The bus was subscribed before this reads the log: whatever is appended meanwhile is
    // on the bus.
    match f.catch_up().await {
        Ok(true) => return end(&mut f).await,
        Ok(false) => {}
        Err(_) => return,
    }
    // The rest of these calls' text comes on the bus.
    for s in f.catchup.take().unwrap_or_default() {
        let mut message = json!(crate::sessions::StreamingView::from(s));
        message["type"] = json!("token_catchup");
        if f.push(Out::Text(message.to_string()), true).await.is_err() {
            return;
        }
    }
    if run.status.is_terminal() && since >= run.last_seq {
        return end(&mut f).await;
    }
    let batch = f.state.config.token_batch;
    let flush_at = tokio::time::sleep(batch);
    tokio::pin!(flush_at);
    // Whether `flush_at` is set for the tokens gathered now.
    let mut armed = false;
    // Made once: a new one per event would register and unregister with the token's
    // waiters every time (a thousand streams of one run would contend for its lock).
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let step: Result<bool, Stop> = tokio::select! {
            biased;
            () = &mut stopped => return,
            message = bus.recv() => {
                // What else is on the bus now goes with it, in one message to the writer.
                f.holding = true;
                let mut result = f.live(message).await;
                while matches!(result, Ok(false)) {
                    let next = match bus.try_recv() {
                        Ok(next) => Ok(next),
                        Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                        Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                    };
                    result = f.live(next).await;
                }
                match f.release().await {
                    Ok(()) => result,
                    Err(stop) => Err(stop),
                }
            },
            // What the store has of a run this process does not drive (read once for all
            // streams).
            message = relayed.recv() => f.live(message).await,
            () = &mut flush_at, if !f.tokens.is_empty() => f.flush_tokens().await.map(|()| false),
        };
        if f.tokens.is_empty() {
            armed = false;
        } else if !armed {
            flush_at.as_mut().reset(Instant::now() + batch);
            armed = true;
        }
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

/// Writes one run's events to the socket, pings, and says goodbye.
async fn stream(state: AppState, mut socket: WebSocket, run: RunSummary, since: u64) {
    let config = Arc::clone(&state.config);
    let (tx, rx) = mpsc::channel(config.client_queue.max(1));
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
    let run_id = run.id;
    spawn_feeder(&state, run, since, (bus, None), &tx, &overflow, &stop);
    drop(tx);
    let mut delivered = BTreeMap::from([(run_id, since)]);
    let ending = write(
        &state,
        &mut socket,
        rx,
        &overflow,
        &mut delivered,
        true,
        None,
    )
    .await;
    stop.cancel();
    let resume = json!(delivered.get(&run_id).copied().unwrap_or(since));
    goodbye(&mut socket, ending, resume).await;
}

/// Writes the events of a scope's runs to the socket: those active when it connects (from
/// their last event, or after the one `since` names) and those created while it is open
/// (from their first event), found on this process's bus and, for runs driven elsewhere,
/// by watching the store.
async fn stream_many(
    state: AppState,
    mut socket: WebSocket,
    tenant: String,
    scope: Scope,
    since: BTreeMap<RunId, u64>,
) {
    let config = Arc::clone(&state.config);
    let (tx, rx) = mpsc::channel(config.client_queue.max(1));
    let overflow = CancellationToken::new();
    let stop = CancellationToken::new();
    let _stop_feeders = stop.clone().drop_guard();
    let opened = botarmy_protocol::now_millis();
    // Subscribed before the runs are listed: a run created meanwhile is found on the bus.
    let mut bus = state.runtime.subscribe();
    let mut starts: BTreeMap<RunId, (RunSummary, u64)> = BTreeMap::new();
    for (run, seq) in &since {
        if let Ok(summary) = state.store.get_run_in(&tenant, *run).await {
            starts.insert(*run, (summary, *seq));
        }
    }
    for summary in scope_runs(&state, &tenant, scope, 0).await {
        if !summary.status.is_terminal() && !starts.contains_key(&summary.id) {
            let last = summary.last_seq;
            starts.insert(summary.id, (summary, last));
        }
    }
    let hello = json!({
        "type": "subscribed",
        "scope": match scope { Scope::Project(_) => "project", Scope::Tenant => "all" },
        "project_id": match scope { Scope::Project(p) => Some(p), Scope::Tenant => None },
        "runs": starts.values().map(|(r, since)| json!({
            "run_id": r.id, "since": since, "last_seq": r.last_seq,
        })).collect::<Vec<_>>(),
    });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut delivered: BTreeMap<RunId, u64> = BTreeMap::new();
    let mut known: std::collections::HashSet<RunId> = std::collections::HashSet::new();
    for (id, (summary, from)) in starts {
        known.insert(id);
        delivered.insert(id, from);
        spawn_feeder(
            &state,
            summary,
            from,
            (state.runtime.subscribe(), None),
            &tx,
            &overflow,
            &stop,
        );
    }
    // Finds the runs that appear later and starts their feeders.
    let finder = {
        let (state, tx, overflow, stop) =
            (state.clone(), tx.clone(), overflow.clone(), stop.clone());
        tokio::spawn(async move {
            let mut foreign: std::collections::HashSet<RunId> = std::collections::HashSet::new();
            let mut look = tokio::time::interval(DISCOVERY_INTERVAL);
            look.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                let found: Vec<RunSummary> = tokio::select! {
                    () = stop.cancelled() => return,
                    message = bus.recv() => match message.as_deref() {
                        Ok(LiveEvent::Event(record))
                            if !known.contains(&record.run_id) && !foreign.contains(&record.run_id) =>
                        {
                            match state.store.get_run_in(&tenant, record.run_id).await {
                                Ok(r) if scope.covers(&r) => vec![r],
                                _ => {
                                    foreign.insert(record.run_id);
                                    Vec::new()
                                }
                            }
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => Vec::new(),
                        Err(RecvError::Closed) => return,
                    },
                    _ = look.tick() => scope_runs(&state, &tenant, scope, DISCOVERY_PAGE)
                        .await
                        .into_iter()
                        .filter(|r| r.created_at >= opened && !known.contains(&r.id))
                        .collect(),
                };
                for run in found {
                    if known.insert(run.id) {
                        // A run created since the stream opened is sent whole.
                        let from = if run.created_at >= opened {
                            0
                        } else {
                            run.last_seq
                        };
                        let bus = state.runtime.subscribe();
                        spawn_feeder(&state, run, from, (bus, None), &tx, &overflow, &stop);
                    }
                }
            }
        })
    };
    drop(tx);
    let ending = write(
        &state,
        &mut socket,
        rx,
        &overflow,
        &mut delivered,
        false,
        None,
    )
    .await;
    stop.cancel();
    let _ = finder.await;
    goodbye(&mut socket, ending, json!(since_text(&delivered))).await;
}

/// Runs between two looks for new runs of a multi-run stream (runs driven by this process
/// are found at once, on its bus).
pub(crate) const DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// The newest runs read per look.
const DISCOVERY_PAGE: u32 = 50;

/// The scope's runs, newest first (`limit` 0: all).
async fn scope_runs(state: &AppState, tenant: &str, scope: Scope, limit: u32) -> Vec<RunSummary> {
    let filter = botarmy_store::RunFilter {
        tenant: Some(tenant.to_owned()),
        project: match scope {
            Scope::Project(p) => Some(p),
            Scope::Tenant => None,
        },
        limit,
        ..botarmy_store::RunFilter::default()
    };
    state.store.list_runs(&filter).await.unwrap_or_default()
}

/// Starts the feeder of one run; with `streaming` (a session's), it says how many events
/// the client missed and sends the text of calls still streaming after them.
pub(crate) fn spawn_feeder(
    state: &AppState,
    run: RunSummary,
    since: u64,
    (bus, streaming): (broadcast::Receiver<Arc<LiveEvent>>, Option<Vec<Streaming>>),
    tx: &mpsc::Sender<Out>,
    overflow: &CancellationToken,
    stop: &CancellationToken,
) {
    let feeder = Feeder {
        state: state.clone(),
        run_id: run.id,
        last: since,
        tx: tx.clone(),
        overflow: overflow.clone(),
        tokens: Vec::new(),
        token_bytes: 0,
        offline: streaming.is_some().then_some(run.last_seq),
        catchup: streaming,
        holding: false,
        held: Vec::new(),
    };
    let relayed = state.relay.subscribe();
    tokio::spawn(feed(feeder, (bus, relayed), run, since, stop.clone()));
}

/// Why a stream ended, for the goodbye (none: it ended normally or the client left).
pub(crate) type Ending = Option<(&'static str, String, u16)>;

/// Writes what the feeders queue, pings, and watches the client, until the stream ends;
/// `delivered` follows the last event sent per run. `one_run`: the end of the run's log
/// closes the stream. A session's stream (`acks`) takes the client's acknowledgements.
pub(crate) async fn write(
    state: &AppState,
    socket: &mut WebSocket,
    mut rx: mpsc::Receiver<Out>,
    overflow: &CancellationToken,
    delivered: &mut BTreeMap<RunId, u64>,
    one_run: bool,
    mut acks: Option<&mut crate::session_stream::Acks>,
) -> Ending {
    let config = &state.config;
    let mut heartbeat =
        tokio::time::interval_at(Instant::now() + config.heartbeat, config.heartbeat);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    // Made once, not per message. A token of this stream's own, cancelled with the
    // server's: checking the server's one token a thousand times per event would contend
    // for its lock.
    let shutdown_token = state.shutdown.child_token();
    let shutdown = shutdown_token.cancelled();
    tokio::pin!(shutdown);
    let overflowed = overflow.cancelled();
    tokio::pin!(overflowed);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return Some(("server_shutdown", "the server is shutting down".to_owned(), 1001)),
            () = &mut overflowed => return Some((
                "slow_consumer",
                format!(
                    "the client does not read fast enough: its queue of {} messages stayed full",
                    config.client_queue
                ),
                1008,
            )),
            out = rx.recv() => {
                // A closed queue (every feeder gone) ends the stream quietly.
                let first = out?;
                // What else is queued goes out with it, in one write.
                let mut batch = Vec::new();
                add(&mut batch, first);
                while batch.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(next) => add(&mut batch, next),
                        Err(_) => break,
                    }
                }
                // A write is never cut short, so `delivered` is exact; one the client does
                // not take for this long means it is gone (it knows what it received). Most
                // writes fit the socket's buffer at once and need no timer.
                let written = {
                    let sending = send_batch(socket, batch, one_run);
                    tokio::pin!(sending);
                    match futures_util::FutureExt::now_or_never(&mut sending) {
                        Some(done) => Ok(done),
                        None => tokio::time::timeout(config.heartbeat * 2, sending).await,
                    }
                };
                let Ok(Ok((sent, then))) = written else {
                    return None;
                };
                for (run, seq) in sent {
                    delivered.insert(run, seq);
                }
                match then {
                    Then::GoOn => {}
                    Then::Close => {
                        let _ = close(socket, 1000, "run finished").await;
                        return None;
                    }
                    Then::Fail(reason, message) => return Some((reason, message, 1011)),
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(Message::Text(text))) => {
                    heard = Instant::now();
                    if let Some(acks) = acks.as_deref_mut() {
                        let reply = acks.receive(state, text.as_str()).await;
                        if socket.send(Message::Text(reply.into())).await.is_err() {
                            return None;
                        }
                    }
                }
                Some(Ok(_)) => heard = Instant::now(),
            },
            _ = heartbeat.tick() => {
                if heard.elapsed() > config.heartbeat * 2 {
                    return Some(("heartbeat_timeout", "the client answered nothing, not even pings".to_owned(), 1001));
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// Adds a queued message to a batch to write (the messages of an [`Out::Many`] one by one).
fn add(batch: &mut Vec<Out>, out: Out) {
    match out {
        Out::Many(many) => {
            for one in many {
                add(batch, one);
            }
        }
        one => batch.push(one),
    }
}

/// Messages written to a socket at once, at most.
const WRITE_BATCH: usize = 64;

/// What follows a written batch.
enum Then {
    GoOn,
    /// The one run streamed has ended.
    Close,
    /// A feeder failed.
    Fail(&'static str, String),
}

/// Writes queued messages and flushes once; returns the events written (run, sequence
/// number) and what follows.
async fn send_batch(
    socket: &mut WebSocket,
    batch: Vec<Out>,
    one_run: bool,
) -> Result<(Vec<(RunId, u64)>, Then), axum::Error> {
    let mut sent = Vec::with_capacity(batch.len());
    let mut then = Then::GoOn;
    for out in batch {
        match out {
            Out::Event { run_id, seq, text } => {
                socket.feed(Message::Text(text)).await?;
                sent.push((run_id, seq));
            }
            Out::Text(text) => socket.feed(Message::Text(text.into())).await?,
            // Flattened by `add`.
            Out::Many(_) => {}
            // One run of many has finished; the others go on.
            Out::End if !one_run => {}
            Out::End => {
                then = Then::Close;
                break;
            }
            Out::Failed { reason, message } => {
                then = Then::Fail(reason, message);
                break;
            }
        }
    }
    socket.flush().await?;
    Ok((sent, then))
}

/// Says why the stream ends and where to resume, then closes.
pub(crate) async fn goodbye(
    socket: &mut WebSocket,
    ending: Ending,
    resume_since: serde_json::Value,
) {
    let Some((reason, message, code)) = ending else {
        return;
    };
    let goodbye = json!({
        "type": "disconnect",
        "reason": reason,
        "message": message,
        "resume_since": resume_since,
    });
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        if socket
            .send(Message::Text(goodbye.to_string().into()))
            .await
            .is_ok()
        {
            let _ = close(socket, code, reason).await;
        }
    })
    .await;
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) -> Result<(), axum::Error> {
    socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        })))
        .await
}
