//! Cloud providers against local servers that speak each provider's wire format (fixtures in
//! `fixtures/`, written after the providers' documented payloads).

mod anthropic;
mod failures;
mod gemini;
mod openai;
mod responder;
mod vertex;

use std::sync::Mutex;
use std::time::Duration;

use botarmy_llm::{
    ChatMessage, ChatRequest, ChatResponse, CloudConfig, CloudKind, CloudProvider, LlmError,
    Provider, ToolSpec,
};
use serde_json::json;

/// A configuration for a local server, with limits short enough for tests about them.
fn config(kind: CloudKind, base: &str, model: &str) -> CloudConfig {
    CloudConfig {
        base_url: Some(base.to_owned()),
        api_key: Some("sk-test-key".to_owned()),
        connect_timeout: Duration::from_secs(5),
        first_byte_timeout: Duration::from_secs(5),
        chunk_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        ..CloudConfig::new(kind, model)
    }
}

fn provider(config: CloudConfig) -> CloudProvider {
    CloudProvider::new(config).expect("valid configuration")
}

/// A system prompt and a question.
fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::system("You are the analyst."),
            ChatMessage::user("Which phases come first?"),
        ],
        max_tokens: 256,
        temperature: 0.2,
        seed: 7,
        stop: vec!["<END>".to_owned()],
        ..ChatRequest::default()
    }
}

/// A request that offers two tools.
fn tool_request() -> ChatRequest {
    ChatRequest {
        tools: vec![
            ToolSpec {
                name: "file_read".to_owned(),
                description: "Read a file of the worktree".to_owned(),
                parameters: json!({
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"]
                }),
            },
            ToolSpec {
                name: "shell".to_owned(),
                description: "Run a shell command".to_owned(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "command": {"type": "string"},
                        "timeout_secs": {"type": "integer"}
                    },
                    "required": ["command"]
                }),
            },
        ],
        ..request()
    }
}

/// Runs one chat, returning its result and the pieces streamed to the sink.
async fn chat(
    provider: &CloudProvider,
    request: &ChatRequest,
) -> (Result<ChatResponse, LlmError>, Vec<String>) {
    let pieces = Mutex::new(Vec::new());
    let sink = |piece: &str| pieces.lock().unwrap().push(piece.to_owned());
    let result = provider.chat(request, &sink).await;
    (result, pieces.into_inner().unwrap())
}

/// Runs one chat that must succeed; checks that the text is exactly what was streamed.
async fn answer(provider: &CloudProvider, request: &ChatRequest) -> (ChatResponse, Vec<String>) {
    let (result, pieces) = chat(provider, request).await;
    let response = result.expect("the call succeeds");
    assert_eq!(
        response.text,
        pieces.concat(),
        "text equals the streamed pieces"
    );
    (response, pieces)
}

/// Runs one chat that must fail.
async fn failure(provider: &CloudProvider, request: &ChatRequest) -> LlmError {
    match chat(provider, request).await.0 {
        Ok(response) => panic!("expected a failure, got {response:#?}"),
        Err(e) => e,
    }
}
