//! A real server on 127.0.0.1:0 over a fresh SQLite file or PostgreSQL database, a model
//! whose calls wait at a gate the test opens, and small HTTP and WebSocket clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use botarmy_llm::{ChatRequest, ChatResponse, FinishReason, LlmError, Provider, Router, TokenSink};
use botarmy_protocol::{RunId, Usage};
use botarmy_runtime::{Runtime, Settings};
use botarmy_server::{Server, ServerConfig};
use botarmy_store::Store;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait of a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Pieces of text streamed per LLM call.
pub const PIECES_PER_CALL: usize = 12;

/// A model whose every call waits for a permit; the test hands permits out.
pub struct Gated {
    gate: Semaphore,
    pub calls: AtomicU64,
    /// Bytes of filler each document answer adds, streamed in 8 KiB pieces.
    pub filler: AtomicUsize,
    /// The next conflict check reports a conflict that mediation cannot settle (once).
    pub conflict: std::sync::atomic::AtomicBool,
    /// The next document answer stops halfway through its text (once), says so on
    /// `halfway`, and goes on when `go_on` gets a permit.
    pub stop_halfway: std::sync::atomic::AtomicBool,
    pub halfway: tokio::sync::Notify,
    pub go_on: Semaphore,
}

impl Gated {
    /// Lets `n` more calls through.
    pub fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// Lets every call through from now on.
    pub fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

#[async_trait]
impl Provider for Gated {
    fn id(&self) -> &str {
        "gated"
    }

    fn default_model(&self) -> &str {
        "gated-1"
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        if let Ok(permit) = self.gate.acquire().await {
            permit.forget();
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let prompt: String = request
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        // Conflict checks, mediation and agreement have answers of their own.
        let conflicts = if prompt.contains("# Conflict check") {
            Some(if self.conflict.swap(false, Ordering::SeqCst) {
                "CONFLICT: high\nBETWEEN: project-plan.md | user-requirements.md\n\
                 ISSUE: The plan targets the web but the users need a terminal\n\
                 A: It is a web app\nB: It runs in a terminal\n"
            } else {
                "NO CONFLICTS"
            })
        } else if prompt.contains("# Mediation") {
            Some("Ship the terminal version first.")
        } else if prompt.contains("# Review a proposed resolution") {
            Some("AGREEMENT: 0.4 - not convinced")
        } else {
            None
        };
        let text = if let Some(answer) = conflicts {
            on_token(answer);
            answer.to_owned()
        // Conditions are asked with a yes/no grammar.
        } else if request.grammar.is_some() {
            on_token("yes");
            "yes".to_owned()
        } else {
            let mut text = String::from("## Overview\n\n");
            on_token(&text);
            for i in 0..PIECES_PER_CALL - 1 {
                if i == PIECES_PER_CALL / 2 && self.stop_halfway.swap(false, Ordering::SeqCst) {
                    self.halfway.notify_one();
                    if let Ok(permit) = self.go_on.acquire().await {
                        permit.forget();
                    }
                }
                let piece = format!("w{n}.{i} ");
                on_token(&piece);
                text.push_str(&piece);
            }
            let mut filler = self.filler.load(Ordering::SeqCst);
            while filler > 0 {
                let piece = "x".repeat(filler.min(8192));
                filler -= piece.len();
                on_token(&piece);
                text.push_str(&piece);
            }
            text
        };
        Ok(ChatResponse {
            text,
            usage: Usage {
                input_tokens: 50,
                output_tokens: 12,
                ..Usage::default()
            },
            provider: "gated".into(),
            model: request.model.clone(),
            finish: FinishReason::Stop,
            tool_calls: Vec::new(),
        })
    }
}

/// The database under a test.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL on this machine: trust auth, a `test` database to connect to.
const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A PostgreSQL database made for one test and dropped after it, also when it fails.
pub struct PgDatabase {
    name: String,
}

impl PgDatabase {
    async fn create() -> (Self, String) {
        let name = format!("botarmy_srv_{}", uuid_like());
        admin_execute(format!("CREATE DATABASE {name}")).await;
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        (Self { name }, url)
    }
}

fn uuid_like() -> String {
    RunId::new().0.simple().to_string()
}

async fn admin_execute(sql: String) {
    let (client, connection) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {PG_ADMIN} is not reachable: {e}"));
    tokio::spawn(connection);
    client.batch_execute(&sql).await.unwrap();
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // The test's runtime may be shutting down: drop on a thread with its own.
        let result = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(admin_execute(sql)))
        })
        .join();
        if !matches!(result, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// A running server and what a test needs around it.
pub struct TestServer {
    pub http: String,
    pub ws: String,
    pub store: Arc<dyn Store>,
    pub model: Arc<Gated>,
    pub client: reqwest::Client,
    url: String,
    config: ServerConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
    limits: botarmy_runtime::Limits,
}

pub async fn start(backend: Backend) -> TestServer {
    start_with(backend, ServerConfig::default()).await
}

/// A server whose runtime has these per-process limits.
pub async fn start_limited(backend: Backend, limits: botarmy_runtime::Limits) -> TestServer {
    start_full(backend, ServerConfig::default(), limits).await
}

pub async fn start_with(backend: Backend, config: ServerConfig) -> TestServer {
    start_full(backend, config, botarmy_runtime::Limits::default()).await
}

async fn start_full(
    backend: Backend,
    config: ServerConfig,
    limits: botarmy_runtime::Limits,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("botarmy.db").display()),
            None,
        ),
        Backend::Postgres => {
            let (db, url) = PgDatabase::create().await;
            (url, Some(db))
        }
    };
    let model = Arc::new(Gated {
        gate: Semaphore::new(0),
        calls: AtomicU64::new(0),
        filler: AtomicUsize::new(0),
        conflict: std::sync::atomic::AtomicBool::new(false),
        stop_halfway: std::sync::atomic::AtomicBool::new(false),
        halfway: tokio::sync::Notify::new(),
        go_on: Semaphore::new(0),
    });
    let mut server = TestServer {
        http: String::new(),
        ws: String::new(),
        store: botarmy_store::open(&url).await.unwrap(),
        model,
        client: reqwest::Client::new(),
        url,
        config,
        stop: None,
        served: None,
        _dir: dir,
        _pg: pg,
        limits,
    };
    server.launch().await;
    server
}

impl TestServer {
    /// Starts a server process's worth of parts (store, runtime, server) on the database.
    async fn launch(&mut self) {
        let store = botarmy_store::open(&self.url).await.unwrap();
        self.store = Arc::clone(&store);
        let runtime = Arc::new(self.runtime_on(store));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = Server::new(runtime, self.config.clone());
        self.served = Some(tokio::spawn(async move {
            server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        }));
        self.stop = Some(stop);
        self.http = format!("http://{addr}");
        self.ws = format!("ws://{addr}");
    }

    /// A runtime over `store` answering with this test's model.
    pub fn runtime_on(&self, store: Arc<dyn Store>) -> Runtime {
        Runtime::new(
            store,
            Arc::new(Router::new(self.model.clone())),
            Settings {
                out_root: self._dir.path().join("out"),
                limits: self.limits,
                ..Settings::default()
            },
        )
    }

    /// Another store on the same database, as another process would open it.
    pub async fn another_store(&self) -> Arc<dyn Store> {
        botarmy_store::open(&self.url).await.unwrap()
    }

    /// Stops the server, then starts a new one (new store, runtime and port) on the same
    /// database, as a restarted process would.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        self.launch().await;
    }
}

/// An HTTP answer: status and JSON body (`Value::Null` if the body is not JSON).
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Answer {
    /// Asserts the error shape and code; returns the details' paths.
    pub fn error(&self, status: u16, code: &str) -> Vec<String> {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()));
        let details = self.body["details"].as_array().expect("details is a list");
        let mut keys: Vec<&String> = self.body.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["code", "details", "message"], "one error shape");
        details
            .iter()
            .map(|d| d["path"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl TestServer {
    pub async fn answer(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = tokio::time::timeout(PATIENCE, request.send())
            .await
            .expect("the server answers in time")
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap().to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            headers,
            bytes,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.answer(self.client.get(format!("{}{path}", self.http)))
            .await
    }

    /// A GET with `Authorization: Bearer <token>`.
    pub async fn get_as(&self, token: &str, path: &str) -> Answer {
        self.answer(
            self.client
                .get(format!("{}{path}", self.http))
                .bearer_auth(token),
        )
        .await
    }

    /// A POST of JSON (`Value::Null`: no body) with `Authorization: Bearer <token>`.
    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.http))
            .bearer_auth(token)
            .header("content-type", "application/json");
        if !body.is_null() {
            request = request.body(body.to_string());
        }
        self.answer(request).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_raw(path, "application/json", body.to_string())
            .await
    }

    pub async fn answer_delete(&self, path: &str) -> Answer {
        self.answer(self.client.delete(format!("{}{path}", self.http)))
            .await
    }

    /// A POST without a body, declared as JSON as every POST must be.
    pub async fn post_empty(&self, path: &str) -> Answer {
        self.answer(
            self.client
                .post(format!("{}{path}", self.http))
                .header("content-type", "application/json"),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: String) -> Answer {
        self.answer(
            self.client
                .post(format!("{}{path}", self.http))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    /// Creates a run of the built-in lifecycle; returns its id.
    pub async fn create_run(&self, idea: &str) -> RunId {
        let answer = self
            // Gates have a test of their own; here runs go through them.
            .post(
                "/api/runs",
                &serde_json::json!({ "idea": idea, "options": {"gate_policy": "auto"} }),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Waits (on the store's own notification) until the run's log holds more than `seq`
    /// events.
    pub async fn wait_past(&self, run: RunId, seq: u64) {
        let grew = self
            .store
            .wait_for_events(run, seq, PATIENCE)
            .await
            .unwrap();
        if !grew {
            let tail: Vec<String> = self
                .store
                .read_events(run, 0, 0)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    let text = serde_json::to_string(&r.event).unwrap_or_default();
                    text.chars().take(160).collect()
                })
                .collect();
            panic!("run {run} did not get past event {seq}; its last events: {tail:#?}");
        }
    }

    /// Waits until the run's log holds an event named `name`; returns its sequence number.
    pub async fn wait_for_event(&self, run: RunId, name: &str) -> u64 {
        let mut seen = 0;
        loop {
            for record in self.store.read_events(run, seen, 0).await.unwrap() {
                if record.event.name() == name {
                    return record.seq;
                }
                seen = record.seq;
            }
            self.wait_past(run, seen).await;
        }
    }

    /// The whole stored log as JSON values.
    pub async fn stored_log(&self, run: RunId) -> Vec<Value> {
        self.store
            .read_events(run, 0, 0)
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect()
    }

    /// Stops the server and waits until it has paused its runs.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            tokio::time::timeout(PATIENCE, served)
                .await
                .expect("the server stops in time")
                .unwrap();
        }
    }

    /// Opens `/ws` with this request (headers of the caller's choosing); `Err(status)` when
    /// the server refuses the upgrade.
    pub async fn connect_request(
        &self,
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
        since: u64,
    ) -> Result<Ws, u16> {
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Ws::hello(socket, since).await),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(other) => panic!("the WebSocket handshake failed: {other}"),
        }
    }

    pub async fn connect(&self, run: RunId, since: u64) -> Ws {
        let url = format!("{}/ws?run_id={run}&since={since}", self.ws);
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Ws::hello(socket, since).await
    }

    /// A client whose socket takes in at most a few KiB at a time.
    pub async fn connect_narrow(&self, run: RunId, since: u64) -> Ws {
        let url = format!("{}/ws?run_id={run}&since={since}", self.ws);
        let addr = self.http.trim_start_matches("http://").parse().unwrap();
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.set_recv_buffer_size(4096).unwrap();
        let stream = tcp.connect(addr).await.unwrap();
        let (socket, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
        Ws::hello(socket, since).await
    }
}

impl Ws {
    /// A client on an open socket, nothing read yet.
    pub fn raw(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Ws { socket }
    }

    async fn hello(socket: WebSocketStream<MaybeTlsStream<TcpStream>>, since: u64) -> Self {
        let mut ws = Ws { socket };
        let hello = ws.next().await.expect("a subscribed message");
        assert_eq!(hello["type"], "subscribed");
        assert_eq!(hello["since"], since);
        ws
    }
}

/// A WebSocket client.
pub struct Ws {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a stream delivered until it ended.
#[derive(Default)]
pub struct Received {
    pub events: Vec<Value>,
    pub tokens: Vec<Value>,
    /// A session's other messages (`offline_event`, `token_catchup`, `acked`, `error`).
    pub notices: Vec<Value>,
    pub goodbye: Option<Value>,
    pub close_code: Option<u16>,
}

impl Received {
    pub fn seqs(&self) -> Vec<u64> {
        self.events
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    }
}

impl Ws {
    /// The next JSON message; `None` when the server closed. Pings are answered by the
    /// client library as it reads.
    pub async fn next(&mut self) -> Option<Value> {
        self.next_frame().await.ok()
    }

    /// The next JSON message, or the close code.
    async fn next_frame(&mut self) -> Result<Value, Option<u16>> {
        // Pings do not count: a stream that sends nothing else fails the test in time.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a message in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(text.as_str()).unwrap());
                }
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// Reads until an event satisfies `stop` (included) or the stream ends.
    pub async fn read_until(&mut self, into: &mut Received, stop: impl Fn(&Value) -> bool) {
        loop {
            match self.next_frame().await {
                Ok(message) => {
                    let done = sort(into, message.clone()) && stop(&message);
                    if done {
                        return;
                    }
                }
                Err(code) => {
                    into.close_code = code;
                    return;
                }
            }
        }
    }

    /// Reads until the server closes the stream.
    pub async fn read_to_end(&mut self) -> Received {
        let mut received = Received::default();
        self.read_until(&mut received, |_| false).await;
        received
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, message: &Value) {
        use futures_util::SinkExt;
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// Drops the connection without a close handshake.
    pub fn drop_abruptly(self) {
        drop(self.socket);
    }
}

/// Files a message; returns whether it was an event.
fn sort(into: &mut Received, message: Value) -> bool {
    match message["type"].as_str() {
        Some("token") => {
            into.tokens.push(message);
            false
        }
        Some("disconnect") => {
            into.goodbye = Some(message);
            false
        }
        Some("offline_event" | "token_catchup" | "acked" | "error" | "session_restored") => {
            into.notices.push(message);
            false
        }
        _ => {
            assert!(message["seq"].is_u64(), "an event: {message}");
            into.events.push(message);
            true
        }
    }
}

/// Asserts that `events` are exactly the stored events after `since`.
pub fn assert_log_after(events: &[Value], log: &[Value], since: u64) {
    let expected: Vec<&Value> = log.iter().skip(since as usize).collect();
    let got: Vec<&Value> = events.iter().collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "events after {since}: got seqs {:?}",
        events.iter().map(|e| &e["seq"]).collect::<Vec<_>>()
    );
    assert_eq!(got, expected);
}
