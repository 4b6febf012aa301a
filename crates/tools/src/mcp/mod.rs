//! MCP servers' tools as BotArmy tools, through the official SDK (`rmcp`).
//!
//! A server configured in `botarmy.toml` ([`McpServerConfig`]) is started (stdio) or
//! reached (streamable HTTP) once by [`McpServer::connect`], which initializes it and lists
//! its tools; each becomes a [`Tool`] named `<server>_<tool>` ([`exposed_name`]). Agents
//! pick them with `mcp:<server>` or `mcp:<server>/<tool>` entries ([`select_tools`]).
//! Whatever a tool answers, an error result included, goes to the model; a server that is
//! gone or too slow makes [`ToolError::Unavailable`](crate::ToolError::Unavailable).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop};
use rmcp::ServiceExt;
use rmcp::model::{ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{IntoTransport, StreamableHttpClientTransport, TokioChildProcess};

use crate::Tool;

mod call;
mod config;
mod naming;
mod select;
mod stderr;

use call::McpTool;
use config::Transport;
pub use config::{
    DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_TIMEOUT_SECS, KEPT_ENV, McpServerConfig, server_env,
};
pub use naming::{MAX_TOOL_NAME, exposed_name};
pub use select::{MCP_ENTRY_PREFIX, McpSelectError, select_tools};
use stderr::StderrTail;

/// How long [`McpServer::close`] waits for a server to finish before leaving it to be killed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a failed start waits for the rest of the server's stderr, to explain it.
const STDERR_GRACE: Duration = Duration::from_secs(2);

/// Why a server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// Its configuration is wrong; nothing was started.
    #[error("MCP server `{server}`: {message}")]
    Config {
        /// The server.
        server: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Its command could not be started.
    #[error("MCP server `{server}`: could not start `{command}`: {source}")]
    Spawn {
        /// The server.
        server: String,
        /// The program.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// It started (or was reached) but did not complete the MCP handshake.
    #[error("MCP server `{server}` did not initialize: {reason}{stderr}")]
    Initialize {
        /// The server.
        server: String,
        /// What went wrong, with its causes.
        reason: String,
        /// What the SDK saw.
        source: Box<ClientInitializeError>,
        /// The end of its stderr, introduced, or empty.
        stderr: String,
    },
    /// It initialized but would not list its tools.
    #[error("MCP server `{server}` did not list its tools: {reason}{stderr}")]
    ListTools {
        /// The server.
        server: String,
        /// What went wrong, with its causes.
        reason: String,
        /// What the SDK saw.
        source: Box<ServiceError>,
        /// The end of its stderr, introduced, or empty.
        stderr: String,
    },
    /// Starting, initializing and listing took longer than `connect_timeout_secs`.
    #[error("MCP server `{server}` was not ready within {seconds} s{stderr}")]
    Timeout {
        /// The server.
        server: String,
        /// The limit.
        seconds: u64,
        /// The end of its stderr, introduced, or empty.
        stderr: String,
    },
}

/// A connected MCP server and its tools. Dropping it stops the server (a stdio server's
/// process group is killed if it does not exit once its stdin is closed); its tools then
/// answer [`ToolError::Unavailable`](crate::ToolError::Unavailable).
pub struct McpServer {
    name: String,
    service: RunningService<RoleClient, ClientConfig>,
    /// The tools, each with its name on the server, in the server's order.
    tools: Vec<(String, Arc<McpTool>)>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.name)
            .field("tools", &self.tool_names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

enum Failure {
    Initialize(ClientInitializeError),
    ListTools(ServiceError),
}

impl McpServer {
    /// Starts (or reaches) the server, initializes the session and lists its tools (every
    /// page), within the configuration's `connect_timeout_secs`.
    ///
    /// A stdio server runs in its own process group with the environment of
    /// [`server_env`]: the [`KEPT_ENV`] variables of this process and its configured `env`,
    /// nothing else. A relative `cwd` is taken from this process's directory.
    pub async fn connect(config: McpServerConfig) -> Result<McpServer, McpError> {
        let name = config.name.clone();
        let limit = config.connect_timeout();
        let (started, stderr, reader) = match config.transport()? {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(&command);
                cmd.args(&args)
                    .env_clear()
                    .envs(server_env(std::env::vars_os(), &env));
                if let Some(cwd) = &cwd {
                    cmd.current_dir(cwd);
                }
                let mut wrapped = CommandWrap::from(cmd);
                wrapped.wrap(KillOnDrop);
                #[cfg(unix)]
                wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
                let (process, stderr) = TokioChildProcess::builder(wrapped)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|source| McpError::Spawn {
                        server: name.clone(),
                        command,
                        source,
                    })?;
                let (tail, reader) = match stderr {
                    Some(stderr) => {
                        let (tail, reader) = StderrTail::follow(stderr);
                        (tail, Some(reader))
                    }
                    None => (StderrTail::default(), None),
                };
                let started = tokio::time::timeout(limit, handshake(process)).await;
                (started, tail, reader)
            }
            Transport::Http { url, headers } => {
                let http = StreamableHttpClientTransportConfig::with_uri(url)
                    .custom_headers(headers.into_iter().collect());
                let transport = StreamableHttpClientTransport::from_config(http);
                let started = tokio::time::timeout(limit, handshake(transport)).await;
                (started, StderrTail::default(), None)
            }
        };
        let failure = match started {
            Ok(Ok((service, listed))) => {
                return Ok(McpServer::new(
                    name,
                    service,
                    &listed,
                    config.timeout(),
                    stderr,
                ));
            }
            Ok(Err(failure)) => Some(failure),
            Err(_) => None,
        };
        // The transport is dropped, so the process is going: let its last words in.
        if let Some(reader) = reader {
            let _ = tokio::time::timeout(STDERR_GRACE, reader).await;
        }
        let stderr = stderr.render();
        Err(match failure {
            None => McpError::Timeout {
                server: name,
                seconds: config.connect_timeout_secs,
                stderr,
            },
            Some(Failure::Initialize(source)) => McpError::Initialize {
                server: name,
                reason: explain_initialize(&source),
                source: Box::new(source),
                stderr,
            },
            Some(Failure::ListTools(source)) => McpError::ListTools {
                server: name,
                reason: explain_service(&source),
                source: Box::new(source),
                stderr,
            },
        })
    }

    fn new(
        name: String,
        service: RunningService<RoleClient, ClientConfig>,
        listed: &[rmcp::model::Tool],
        timeout: Duration,
        stderr: StderrTail,
    ) -> Self {
        let exposed = naming::exposed_names(&name, listed.iter().map(|t| t.name.as_ref()));
        let tools = listed
            .iter()
            .zip(exposed)
            .map(|(tool, exposed)| {
                let remote = tool.name.to_string();
                let tool = McpTool {
                    spec: McpTool::spec(exposed, tool),
                    server: name.clone(),
                    remote: remote.clone(),
                    peer: service.peer().clone(),
                    timeout,
                    stderr: stderr.clone(),
                };
                (remote, Arc::new(tool))
            })
            .collect();
        McpServer {
            name,
            service,
            tools,
        }
    }

    /// Connects every server at once; the first failure is returned (the servers already
    /// started are then stopped).
    pub async fn connect_all(
        configs: impl IntoIterator<Item = McpServerConfig>,
    ) -> Result<Vec<McpServer>, McpError> {
        futures_util::future::try_join_all(configs.into_iter().map(McpServer::connect)).await
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every tool, in the server's order.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        self.tools
            .iter()
            .map(|(_, tool)| tool.clone() as Arc<dyn Tool>)
            .collect()
    }

    /// The tool the server calls `name`.
    pub fn tool(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools
            .iter()
            .find(|(remote, _)| remote == name)
            .map(|(_, tool)| tool.clone() as Arc<dyn Tool>)
    }

    /// The tools' names on the server, in its order.
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|(remote, _)| remote.as_str())
    }

    /// Ends the session and stops the server: a stdio server's stdin is closed, then it is
    /// sent SIGTERM and finally killed if it does not exit. Waits at most 10 s; whatever is
    /// still running then is killed in the background.
    pub async fn close(mut self) {
        let _ = self.service.close_with_timeout(CLOSE_TIMEOUT).await;
    }
}

/// Initializes a session over `transport` and lists every tool.
async fn handshake<T, E, A>(
    transport: T,
) -> Result<
    (
        RunningService<RoleClient, ClientConfig>,
        Vec<rmcp::model::Tool>,
    ),
    Failure,
>
where
    T: IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let client = ClientConfig::new(
        Default::default(),
        Implementation::new("botarmy", env!("CARGO_PKG_VERSION")),
    )
    // The initialize handshake, which every server so far speaks; the server answers with
    // the version it will use.
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
    let service = client.serve(transport).await.map_err(Failure::Initialize)?;
    let tools = service
        .peer()
        .list_all_tools()
        .await
        .map_err(Failure::ListTools)?;
    Ok((service, tools))
}

/// What went wrong in a handshake, without the SDK's transport type names.
fn explain_initialize(error: &ClientInitializeError) -> String {
    match error {
        ClientInitializeError::TransportError { error, context } => {
            format!("{context}: {}", chain(error.error.as_ref()))
        }
        other => chain(other),
    }
}

/// What went wrong with a request, in words for people and models.
pub(crate) fn explain_service(error: &ServiceError) -> String {
    match error {
        ServiceError::TransportClosed => {
            "the connection is closed (the server exited or was stopped)".into()
        }
        ServiceError::TransportSend(error) => chain(error.error.as_ref()),
        other => chain(other),
    }
}

/// `error` and its causes, each once, joined by `: `.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
