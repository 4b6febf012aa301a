//! Which MCP tools an agent gets: its tool list names `mcp:<server>` for all of a server's
//! tools, or `mcp:<server>/<tool>` for one (the tool's name on the server).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::McpServer;
use crate::Tool;

/// What starts an entry of an agent's tool list that names MCP tools.
pub const MCP_ENTRY_PREFIX: &str = "mcp:";

/// An entry of an agent's tool list that names no connected server or tool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpSelectError {
    /// No server has that name.
    #[error(
        "tool entry `{entry}`: there is no MCP server `{server}`; configured servers: {}",
        list(known)
    )]
    UnknownServer {
        /// The entry as written.
        entry: String,
        /// The server it names.
        server: String,
        /// The servers there are.
        known: Vec<String>,
    },
    /// The server has no tool of that name.
    #[error(
        "tool entry `{entry}`: MCP server `{server}` has no tool `{tool}`; its tools: {}",
        list(known)
    )]
    UnknownTool {
        /// The entry as written.
        entry: String,
        /// The server.
        server: String,
        /// The tool it names.
        tool: String,
        /// The server's tools.
        known: Vec<String>,
    },
    /// Tools of two servers end up with the same name for the model (`a_b` + `c` and `a` +
    /// `b_c` both make `a_b_c`); one of the servers needs another name.
    #[error(
        "tools `{first}` and `{second}` would both be called `{name}`; rename one of the servers"
    )]
    NameClash {
        /// The name the model would see.
        name: String,
        /// The first tool, as `server/tool`.
        first: String,
        /// The second tool, as `server/tool`.
        second: String,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The MCP tools that an agent's tool list `entries` names, each once, in the order of the
/// entries and then of the servers' listings. Entries without the `mcp:` prefix (built-in
/// tools) are left alone.
pub fn select_tools(
    servers: &[McpServer],
    entries: &[impl AsRef<str>],
) -> Result<Vec<Arc<dyn Tool>>, McpSelectError> {
    let mut selected: Vec<Arc<dyn Tool>> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for entry in entries {
        let entry = entry.as_ref();
        let Some(rest) = entry.strip_prefix(MCP_ENTRY_PREFIX) else {
            continue;
        };
        let (server_name, tool_name) = match rest.split_once('/') {
            Some((server, tool)) => (server, Some(tool)),
            None => (rest, None),
        };
        let Some(server) = servers.iter().find(|s| s.name() == server_name) else {
            return Err(McpSelectError::UnknownServer {
                entry: entry.into(),
                server: server_name.into(),
                known: servers.iter().map(|s| s.name().to_string()).collect(),
            });
        };
        let tools: Vec<(&str, Arc<dyn Tool>)> = match tool_name {
            None => server.tool_names().zip(server.tools()).collect(),
            Some(tool_name) => match server.tool(tool_name) {
                Some(tool) => vec![(tool_name, tool)],
                None => {
                    return Err(McpSelectError::UnknownTool {
                        entry: entry.into(),
                        server: server_name.into(),
                        tool: tool_name.into(),
                        known: server.tool_names().map(String::from).collect(),
                    });
                }
            },
        };
        for (remote, tool) in tools {
            let qualified = format!("{server_name}/{remote}");
            match seen.get(&tool.spec().name) {
                Some(first) if *first == qualified => {}
                Some(first) => {
                    return Err(McpSelectError::NameClash {
                        name: tool.spec().name.clone(),
                        first: first.clone(),
                        second: qualified,
                    });
                }
                None => {
                    seen.insert(tool.spec().name.clone(), qualified);
                    selected.push(tool);
                }
            }
        }
    }
    Ok(selected)
}
