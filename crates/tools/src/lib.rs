//! What agents can do besides writing text: tools a model calls by name with JSON
//! arguments. The built-in ones work inside one run's worktree (files, a sandboxed shell,
//! git, the project's tests); MCP servers configured by the user add theirs.
//!
//! The one idea: a tool is data for the model ([`ToolSpec`]) plus one async function from
//! arguments to a [`ToolOutput`]. Whatever goes wrong that the model could fix (a bad path,
//! a missing argument, a failing command) comes back as an output marked as an error, so the
//! model sees it and tries again; only what the model cannot fix is a [`ToolError`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
pub use botarmy_protocol::{ToolCall, ToolSpec};
use serde_json::Value;

mod args;
mod builtin;
mod mcp;
mod run_tests;

pub use args::Args;
pub use builtin::{WorktreeTools, worktree_tools};
pub use mcp::{
    DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_TIMEOUT_SECS, KEPT_ENV, MAX_TOOL_NAME, MCP_ENTRY_PREFIX,
    McpError, McpSelectError, McpServer, McpServerConfig, exposed_name, select_tools, server_env,
};
pub use run_tests::{
    Framework, Outcome, RunTests, RunTestsError, TestCommand, TestCounts, TestReport, TestRun,
    detect_tests, parse_report, run_tests_tool,
};

/// What a call produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolOutput {
    /// What the model is shown.
    pub content: String,
    /// One line for people (events, progress): what happened, not the whole content.
    pub summary: String,
    /// Files the call created, changed or deleted, relative to the worktree.
    pub changes: Vec<FileChanged>,
    /// Whether the call failed in a way the model should see and correct.
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(content: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            summary: summary.into(),
            ..Self::default()
        }
    }

    /// A failure the model is told about (its message is both content and summary).
    pub fn error(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            summary: first_line(&message),
            content: message,
            is_error: true,
            ..Self::default()
        }
    }
}

/// A file a tool call changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChanged {
    /// Path relative to the worktree, with `/` separators.
    pub path: String,
    /// What happened to it.
    pub change: botarmy_protocol::FileChangeKind,
}

/// A failure that is not the model's to fix: the tool itself is broken or gone.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The tool's process or server is unreachable or stopped answering.
    #[error("tool `{tool}` is unavailable: {message}")]
    Unavailable {
        /// The tool.
        tool: String,
        /// What went wrong.
        message: String,
    },
}

/// A tool an agent may call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// Its name, description and argument schema, as the model sees them.
    fn spec(&self) -> &ToolSpec;

    /// Runs one call. Invalid arguments and failures the model can act on are returned as
    /// [`ToolOutput::error`].
    async fn call(&self, arguments: &Value) -> Result<ToolOutput, ToolError>;
}

/// The tools of one agent in one run, by name.
#[derive(Clone, Default)]
pub struct Toolbox {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl Toolbox {
    /// An empty toolbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool (a later one with the same name replaces the earlier).
    pub fn insert(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name.clone(), tool);
    }

    /// Whether no tool is available.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// The specs to send to the model, sorted by name.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec().clone()).collect()
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// Runs a call the model asked for; an unknown tool is an error the model sees, with
    /// the names it may use.
    pub async fn call(&self, name: &str, arguments: &Value) -> Result<ToolOutput, ToolError> {
        match self.tools.get(name) {
            Some(tool) => tool.call(arguments).await,
            None => Ok(ToolOutput::error(format!(
                "there is no tool `{name}`; available tools: {}",
                self.tools.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// The first line of `text`, at most 200 characters.
pub fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}
