//! Tools as models see them: what a tool is called and takes, and a call a model asked for.

use serde::{Deserialize, Serialize};

/// A tool the model may call: its name, what it does, and its parameters as a JSON Schema
/// object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name the model uses (`file_read`).
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON Schema of the arguments (`{"type": "object", "properties": ...}`).
    pub parameters: serde_json::Value,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call, echoed back with its result.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments (a JSON object).
    pub arguments: serde_json::Value,
}

/// What a tool call did to a file of the worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeKind {
    /// The file is new.
    Created,
    /// The file existed and its content changed.
    Modified,
    /// The file was removed.
    Deleted,
}

impl FileChangeKind {
    /// The wire name (`created`, `modified`, `deleted`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Modified => "modified",
            Self::Deleted => "deleted",
        }
    }
}

/// The tools BotArmy itself provides, by the names agents list them under. Anything else an
/// agent lists is an MCP server's (`mcp:<server>` or `mcp:<server>/<tool>`).
pub const BUILTIN_TOOLS: &[&str] = &[
    "file_read",
    "file_write",
    "list_dir",
    "search",
    "bash",
    "git",
    "run_tests",
];

/// Whether `entry`, as an agent lists it, names a tool that can exist: a built-in one, or
/// an MCP server's (`mcp:<server>` or `mcp:<server>/<tool>`, the server named with
/// letters, digits, `_` and `-`).
pub fn is_tool_entry(entry: &str) -> bool {
    if BUILTIN_TOOLS.contains(&entry) {
        return true;
    }
    let Some(rest) = entry.strip_prefix("mcp:") else {
        return false;
    };
    let (server, tool) = match rest.split_once('/') {
        Some((server, tool)) => (server, Some(tool)),
        None => (rest, None),
    };
    !server.is_empty()
        && server
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && tool.is_none_or(|t| !t.trim().is_empty())
}
