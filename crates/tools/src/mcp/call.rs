//! One MCP tool as a BotArmy [`Tool`]: its spec from the server's listing, and calls sent as
//! `tools/call` with a time limit, their content turned into text for the model.

use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock};
use rmcp::service::{Peer, RoleClient, ServiceError};
use serde_json::Value;

use super::stderr::StderrTail;
use crate::{Tool, ToolError, ToolOutput, ToolSpec, first_line};

/// A tool of a connected server.
pub(crate) struct McpTool {
    pub(crate) spec: ToolSpec,
    /// The server's name.
    pub(crate) server: String,
    /// The tool's name on the server.
    pub(crate) remote: String,
    pub(crate) peer: Peer<RoleClient>,
    pub(crate) timeout: Duration,
    pub(crate) stderr: StderrTail,
}

impl McpTool {
    /// The spec the model sees for `tool`, named `name`.
    pub(crate) fn spec(name: String, tool: &rmcp::model::Tool) -> ToolSpec {
        let description = tool
            .description
            .as_deref()
            .or(tool.title.as_deref())
            .unwrap_or_default()
            .to_string();
        let mut parameters = (*tool.input_schema).clone();
        // Models are only offered object schemas; a server that left out the type or the
        // properties of an argument-less tool still means one.
        parameters
            .entry("type")
            .or_insert_with(|| Value::String("object".into()));
        parameters
            .entry("properties")
            .or_insert_with(|| Value::Object(Default::default()));
        ToolSpec {
            name,
            description,
            parameters: Value::Object(parameters),
        }
    }

    fn unavailable(&self, message: String) -> ToolError {
        let stderr = self.stderr.render();
        ToolError::Unavailable {
            tool: self.spec.name.clone(),
            message: format!("MCP server `{}`: {message}{stderr}", self.server),
        }
    }
}

#[async_trait]
impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, arguments: &Value) -> Result<ToolOutput, ToolError> {
        let mut params = CallToolRequestParams::new(self.remote.clone());
        match arguments {
            Value::Object(map) => params = params.with_arguments(map.clone()),
            Value::Null => {}
            other => {
                return Ok(ToolOutput::error(format!(
                    "the arguments of `{}` must be a JSON object, not {other}",
                    self.spec.name
                )));
            }
        }
        // Dropping the request on timeout tells the server it is cancelled.
        let response = tokio::time::timeout(self.timeout, self.peer.call_tool_once(params)).await;
        match response {
            Err(_) => Err(self.unavailable(format!(
                "no answer to `{}` within {} s",
                self.remote,
                self.timeout.as_secs()
            ))),
            Ok(Ok(CallToolResponse::Complete(result))) => Ok(self.output(result)),
            Ok(Ok(_)) => Ok(self.failed(format!(
                "the server asked for more input or started a background task, which BotArmy \
                 does not support; `{}` did not run to completion",
                self.remote
            ))),
            Ok(Err(ServiceError::McpError(error))) => {
                let mut message = error.message.to_string();
                if let Some(data) = error.data {
                    message = format!("{message} ({data})");
                }
                Ok(self.failed(message))
            }
            Ok(Err(error)) => Err(self.unavailable(super::explain_service(&error))),
        }
    }
}

impl McpTool {
    fn failed(&self, message: String) -> ToolOutput {
        ToolOutput {
            summary: format!("{} failed: {}", self.spec.name, first_line(&message)),
            content: message,
            is_error: true,
            ..ToolOutput::default()
        }
    }

    fn output(&self, result: CallToolResult) -> ToolOutput {
        let content = render(&result);
        if result.is_error == Some(true) {
            return self.failed(content);
        }
        let summary = match first_line(&content) {
            line if line.is_empty() => format!("{}: no output", self.spec.name),
            line => format!("{}: {line}", self.spec.name),
        };
        ToolOutput::ok(content, summary)
    }
}

/// The result as text: text blocks as they are, other blocks described in one line, and
/// the structured content when there is nothing else.
fn render(result: &CallToolResult) -> String {
    let blocks: Vec<String> = result.content.iter().map(describe).collect();
    if blocks.is_empty() {
        return match &result.structured_content {
            Some(structured) => structured.to_string(),
            None => String::new(),
        };
    }
    blocks.join("\n")
}

fn describe(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Text(text) => text.text.clone(),
        ContentBlock::Image(image) => format!(
            "[image: {}, {} bytes]",
            image.mime_type,
            base64_len(&image.data)
        ),
        ContentBlock::Audio(audio) => format!(
            "[audio: {}, {} bytes]",
            audio.mime_type,
            base64_len(&audio.data)
        ),
        ContentBlock::Resource(embedded) => match &embedded.resource {
            rmcp::model::ResourceContents::TextResourceContents { uri, text, .. } => {
                format!("[resource {uri}]\n{text}")
            }
            rmcp::model::ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => format!(
                "[resource {uri}: {}, {} bytes]",
                mime_type.as_deref().unwrap_or("binary"),
                base64_len(blob)
            ),
            _ => "[resource]".into(),
        },
        ContentBlock::ResourceLink(link) => {
            format!("[resource link: {} ({})]", link.uri, link.name)
        }
        _ => "[content of a kind BotArmy does not show]".into(),
    }
}

/// The decoded size of base64 `data`.
fn base64_len(data: &str) -> usize {
    let digits = data.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    let padding = data
        .trim_end()
        .bytes()
        .rev()
        .take_while(|&b| b == b'=')
        .count();
    (digits * 3 / 4).saturating_sub(padding)
}
