//! BotArmy's HTTP service: a REST API under `/api` (projects, runs, artifacts, the event
//! log, usage), a WebSocket at `/ws` that streams a run's events, `/health` and `/ready`,
//! and the OpenAPI document at `/api/openapi.json` (rendered for people at `/api/docs`).
//!
//! The one idea: the server only translates. Every rule lives in the store (what is
//! stored) and the runtime (what a run does); a handler reads the request strictly, calls
//! them, and maps the outcome, success or error, to one JSON shape. A WebSocket stream is
//! the durable log first and the live bus second, joined by sequence number, so a client
//! that reconnects with `since=N` misses nothing and sees nothing twice.
//!
//! ```text
//! GET  /health                          process alive
//! GET  /ready                           store reachable, migrations applied
//! GET  /api/version
//! GET  /api/openapi.json
//! GET  /api/docs                        the OpenAPI document for people (works offline)
//! GET  /metrics                         Prometheus text format (see `metrics`)
//! GET  /api/definitions?method=builtin
//! GET  /api/projects          POST /api/projects          GET /api/projects/{id}
//! PATCH /api/projects/{id}    DELETE /api/projects/{id}?force=true
//! GET  /api/runs?project_id&status&limit&offset           POST /api/runs
//! GET  /api/runs/{id}         POST /api/runs/{id}/pause|resume|cancel   DELETE /api/runs/{id}
//! GET  /api/runs/{id}/events?since&limit                  GET /api/runs/{id}/usage
//! GET  /api/runs/{id}/artifacts[/{artifact_id}[/raw|/versions]]
//! GET  /api/repositories      POST /api/repositories
//! GET  /api/repositories/{name}                           DELETE /api/repositories/{name}
//! GET  /api/sessions          POST /api/sessions          GET|PATCH|DELETE /api/sessions/{id}
//! POST /api/sessions/{id}/tabs    PATCH|DELETE /api/sessions/{id}/tabs/{tab}
//! POST /api/sessions/{id}/ack     GET /api/sessions/{id}/restore
//! GET  /ws?run_id=ID&since=N | project_id=P | scope=all | session_id=S   WebSocket (see `ws`)
//! ```
//!
//! Authentication and tenants: see [`auth`]. Every project, run, event and artifact
//! belongs to a tenant, and a caller reaches only its own tenant's; the registered
//! repositories are server-wide (the operator's, like the server's folders they point at):
//! every caller may list them and name them in runs, only admin tenants may change them.

mod approvals;
mod artifacts;
pub mod auth;
mod browser;
mod conflicts;
mod definitions;
mod drives;
mod error;
mod events;
mod input;
mod meta;
mod metrics;
mod openapi;
mod projects;
mod relay;
mod repositories;
mod runs;
mod session_stream;
mod sessions;
mod views;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};
use botarmy_runtime::Runtime;
use botarmy_store::Store;
use tokio_util::sync::CancellationToken;

pub use auth::{AuthConfig, OidcConfig, ServeError, check_address};
pub use browser::{BrowserPolicy, Origin};
pub use error::{ApiError, ErrorBody, ErrorCode, FieldError};
pub use openapi::document as openapi_document;

/// Limits and timings of the server, decided once by the binary.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How often a WebSocket client is pinged; one that has not answered anything for two
    /// of these is disconnected.
    pub heartbeat: Duration,
    /// Messages a WebSocket client may have waiting to be sent before it is told it is too
    /// slow and disconnected.
    pub client_queue: usize,
    /// How long a live message may wait for room in a WebSocket client's queue before the
    /// client is declared too slow (zero: not at all). Catching up from the log waits
    /// instead: the log keeps what the client has not taken.
    pub slow_client: Duration,
    /// How long streamed tokens are gathered before they are sent as one message.
    pub token_batch: Duration,
    /// Where repositories registered by URL are cloned (`$BOTARMY_HOME/repos`); `None`:
    /// only checkouts on this machine can be registered.
    pub clones: Option<PathBuf>,
    /// Who may call, and how (default: no authentication, everyone is tenant `default`).
    pub auth: AuthConfig,
    /// Client sessions not seen for this long are deleted (looked for at start and hourly).
    pub session_ttl: Duration,
    /// What browsers' pages may do: the origins and host names besides the server's own
    /// (see the `browser` module).
    pub browser: BrowserPolicy,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            heartbeat: Duration::from_secs(20),
            client_queue: 1024,
            slow_client: Duration::from_secs(10),
            token_batch: Duration::from_millis(50),
            clones: None,
            auth: AuthConfig::default(),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            browser: BrowserPolicy::default(),
        }
    }
}

/// Checks `addr` with [`check_address`] and binds it.
pub async fn bind(
    addr: SocketAddr,
    auth: &AuthConfig,
) -> Result<tokio::net::TcpListener, ServeError> {
    check_address(addr, auth)?;
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io { addr, source })
}

/// What every handler shares: one reference-counted value, so that a request or a stream
/// that takes its own copy costs one atomic increment (a thousand streams dropping at once
/// would otherwise contend for every field's count).
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub(crate) struct Shared {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) drives: Arc<drives::Drives>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) auth: auth::SharedAuth,
    /// What this process measures itself, for `/metrics`.
    pub(crate) metrics: Arc<metrics::Metrics>,
    /// Cancelled when the server shuts down: streams say goodbye and end.
    pub(crate) shutdown: CancellationToken,
    /// Recent events as streams send them, encoded once for every subscriber.
    pub(crate) encoded: Arc<ws::Encoded>,
    /// Client sessions connected here, and news of their changes.
    pub(crate) sessions: Arc<sessions::Sessions>,
    /// Events of runs this process does not drive, read from the store once for every
    /// stream.
    pub(crate) relay: Arc<relay::Relay>,
}

/// The HTTP service over one runtime.
pub struct Server {
    state: AppState,
}

impl Server {
    /// A server over this runtime (and its store).
    pub fn new(runtime: Arc<Runtime>, config: ServerConfig) -> Self {
        let store = Arc::clone(runtime.store());
        let drives = Arc::new(drives::Drives::new(Arc::clone(&runtime)));
        Self {
            state: AppState(Arc::new(Shared {
                relay: relay::Relay::new(Arc::clone(&runtime), Arc::clone(&drives)),
                drives,
                runtime,
                store,
                auth: Arc::new(auth::Auth::new(config.auth.clone())),
                config: Arc::new(config),
                metrics: Arc::default(),
                shutdown: CancellationToken::new(),
                encoded: Arc::default(),
                sessions: Arc::default(),
            })),
        }
    }

    /// The routes, as served on `bound` (the `Host` of every request must name it, see
    /// the `browser` module).
    pub fn router(&self, bound: SocketAddr) -> Router {
        let api = Router::new()
            .route("/version", get(meta::version))
            .route("/openapi.json", get(meta::openapi))
            .route("/docs", get(meta::docs))
            .route("/docs.js", get(meta::docs_script))
            .route("/docs.css", get(meta::docs_style))
            .route("/projects", get(projects::list).post(projects::create))
            .route("/definitions", get(definitions::list))
            .route(
                "/projects/{id}",
                get(projects::get)
                    .patch(projects::update)
                    .delete(projects::delete),
            )
            .route(
                "/repositories",
                get(repositories::list).post(repositories::add),
            )
            .route(
                "/repositories/{name}",
                get(repositories::get).delete(repositories::remove),
            )
            .route("/runs", get(runs::list).post(runs::create))
            .route("/runs/{id}", get(runs::get).delete(runs::delete))
            .route("/runs/{id}/pause", post(runs::pause))
            .route("/runs/{id}/resume", post(runs::resume))
            .route("/runs/{id}/cancel", post(runs::cancel))
            .route("/runs/{id}/answer", post(runs::answer))
            .route("/runs/{id}/gates", get(approvals::gates))
            .route("/runs/{id}/conflicts", get(conflicts::of_run))
            .route("/projects/{id}/conflicts", get(conflicts::of_project))
            .route("/runs/{id}/approve", post(approvals::approve))
            .route("/runs/{id}/reject", post(approvals::reject))
            .route("/runs/{id}/amend", post(approvals::amend))
            .route("/runs/{id}/steps/{step}/restart", post(approvals::restart))
            .route("/approvals", get(approvals::pending))
            .route("/sessions", get(sessions::list).post(sessions::create))
            .route(
                "/sessions/{id}",
                get(sessions::get)
                    .patch(sessions::update)
                    .delete(sessions::delete),
            )
            .route("/sessions/{id}/tabs", post(sessions::add_tab))
            .route(
                "/sessions/{id}/tabs/{tab}",
                patch(sessions::update_tab).delete(sessions::remove_tab),
            )
            .route("/sessions/{id}/ack", post(sessions::ack))
            .route("/sessions/{id}/restore", get(sessions::restore))
            .route("/runs/{id}/events", get(events::page))
            .route("/runs/{id}/usage", get(events::usage))
            .route("/runs/{id}/artifacts", get(artifacts::list))
            .route("/runs/{id}/artifacts/{artifact_id}", get(artifacts::get))
            .route(
                "/runs/{id}/artifacts/{artifact_id}/raw",
                get(artifacts::raw),
            )
            .route(
                "/runs/{id}/artifacts/{artifact_id}/versions",
                get(artifacts::versions),
            );
        Router::new()
            .route("/health", get(meta::health))
            .route("/ready", get(meta::ready))
            .route("/ws", get(ws::upgrade))
            .route("/metrics", get(metrics::scrape))
            .nest("/api", api)
            .fallback(meta::no_route)
            .method_not_allowed_fallback(meta::wrong_method)
            .layer(axum::middleware::from_fn_with_state(
                self.state.clone(),
                auth::require,
            ))
            .layer(DefaultBodyLimit::max(self.state.config.max_body_bytes))
            // Before authentication: what no browser page may do is refused unread.
            .layer(axum::middleware::from_fn_with_state(
                browser::Guard::new(self.state.config.browser.clone(), bound),
                browser::guard,
            ))
            // Outermost: the time of everything, authentication included.
            .layer(axum::middleware::from_fn_with_state(
                self.state.clone(),
                metrics::track,
            ))
            .with_state(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` completes; then stops accepting, tells
    /// WebSocket clients goodbye (they resume with `since`), pauses the runs it drives and
    /// waits until their state is stored.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = listener.local_addr().map_err(|source| ServeError::Io {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let token = self.state.shutdown.clone();
        let app = self.router(addr);
        // Approvals that wait past their gate's timeout: remind, escalate, approve (the run
        // then continues here) or fail, while the server is up.
        let timer = {
            let (runtime, drives) = (
                Arc::clone(&self.state.runtime),
                Arc::clone(&self.state.drives),
            );
            let stop = self.state.shutdown.clone();
            tokio::spawn(async move {
                let watched = runtime
                    .watch_gate_timeouts(
                        botarmy_protocol::now_millis,
                        std::time::Duration::from_secs(30),
                        stop,
                        |id, state| {
                            if state.status == botarmy_protocol::RunStatus::Running {
                                let _ = drives.spawn(id, drives::Start::Resume);
                            }
                        },
                    )
                    .await;
                if let Err(error) = watched {
                    eprintln!("botarmy-server: gate timeouts are not watched any more: {error}");
                }
            })
        };
        let sweeper = tokio::spawn(sweep_sessions(
            Arc::clone(&self.state.store),
            self.state.config.session_ttl,
            self.state.shutdown.clone(),
        ));
        // Events and answers are small writes that must leave at once: without TCP_NODELAY
        // one written while the client has not yet acknowledged the previous waits for
        // that acknowledgement (up to 40 ms of delayed ACK).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                eprintln!("botarmy-server: TCP_NODELAY cannot be set on a connection: {e}");
            }
        });
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                token.cancel();
            })
            .await;
        self.state.shutdown.cancel();
        let _ = timer.await;
        let _ = sweeper.await;
        self.state.drives.shutdown().await;
        result.map_err(|source| ServeError::Io { addr, source })
    }
}

/// Deletes client sessions not seen for `ttl`, now and every hour, until `stop`.
async fn sweep_sessions(store: Arc<dyn Store>, ttl: Duration, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let before = botarmy_protocol::now_millis()
            .saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        match store.expire_sessions(before).await {
            Ok(0) => {}
            Ok(n) => eprintln!(
                "botarmy-server: deleted {n} client session(s) not seen for {} days",
                ttl.as_secs() / 86_400
            ),
            Err(e) => {
                eprintln!("botarmy-server: expired client sessions cannot be deleted now: {e}")
            }
        }
    }
}
