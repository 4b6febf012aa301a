//! Anthropic Messages.

use botarmy_llm::{ChatMessage, CloudKind, FinishReason, LlmError, Provider, ToolCall};
use botarmy_testkit::{End, MockServer, Reply, events};
use serde_json::json;

use super::{answer, config, failure, provider, request, tool_request};

const TEXT: &str = include_str!("fixtures/anthropic_text.sse");
const TOOLS: &str = include_str!("fixtures/anthropic_tools.sse");

fn anthropic(server: &MockServer) -> botarmy_llm::CloudProvider {
    provider(config(
        CloudKind::Anthropic,
        &server.base,
        "claude-sonnet-4-5",
    ))
}

#[tokio::test]
async fn streams_text_with_cache_reads_in_usage() {
    let server = MockServer::replies(vec![Reply::sse(TEXT)]).await;

    let (response, pieces) = answer(&anthropic(&server), &request()).await;

    assert_eq!(pieces, ["Risks: scope", " creep and", " vendor lock-in."]);
    assert_eq!(response.finish, FinishReason::Stop);
    assert_eq!(response.provider, "anthropic");
    assert_eq!(response.model, "claude-sonnet-4-5");
    // Anthropic counts cache reads apart from `input_tokens`; BotArmy's input includes them.
    assert_eq!(response.usage.input_tokens, 25 + 2048);
    assert_eq!(response.usage.cached_tokens, 2048);
    assert_eq!(response.usage.output_tokens, 11);

    let sent = server.only_request();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.target, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-test-key"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 256);
    let system = &body["system"];
    let system_text = system
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| system[0]["text"].as_str().unwrap().to_owned());
    assert_eq!(system_text, "You are the analyst.");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "the system prompt is not a message");
    assert_eq!(messages[0]["role"], "user");
    let content = &messages[0]["content"];
    let question = content
        .as_str()
        .or_else(|| content[0]["text"].as_str())
        .unwrap();
    assert_eq!(question, "Which phases come first?");
    assert_eq!(body["stop_sequences"], json!(["<END>"]));
    assert!(body.get("seed").is_none());
}

#[tokio::test]
async fn tool_use_blocks_become_tool_calls() {
    let server = MockServer::replies(vec![Reply::sse(TOOLS)]).await;

    let (response, pieces) = answer(&anthropic(&server), &tool_request()).await;

    assert_eq!(pieces, ["I'll read the file first."]);
    assert_eq!(response.finish, FinishReason::ToolCalls);
    assert_eq!(
        response.tool_calls,
        [ToolCall {
            id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_owned(),
            name: "file_read".to_owned(),
            arguments: json!({"path": "README.md"}),
        }]
    );
    assert_eq!(response.usage.input_tokens, 472);
    assert_eq!(response.usage.output_tokens, 89);

    let body = server.only_request().json();
    let tools = body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0]["name"], "file_read");
    assert_eq!(tools[0]["description"], "Read a file of the worktree");
    assert_eq!(tools[0]["input_schema"]["required"], json!(["path"]));
}

#[tokio::test]
async fn tool_results_go_back_as_tool_result_blocks() {
    let server = MockServer::replies(vec![Reply::sse(TEXT)]).await;
    let mut request = tool_request();
    request.messages.push(ChatMessage::assistant_tool_calls(
        "I'll read the file first.",
        vec![ToolCall {
            id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_owned(),
            name: "file_read".to_owned(),
            arguments: json!({"path": "README.md"}),
        }],
    ));
    request.messages.push(ChatMessage::tool_result(
        "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "# BotArmy",
    ));

    answer(&anthropic(&server), &request).await;

    let body = server.only_request().json();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["role"], "assistant");
    let blocks = messages[1]["content"].as_array().unwrap();
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "text" && b["text"] == "I'll read the file first.")
    );
    let tool_use = blocks.iter().find(|b| b["type"] == "tool_use").unwrap();
    assert_eq!(tool_use["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(tool_use["name"], "file_read");
    assert_eq!(tool_use["input"], json!({"path": "README.md"}));
    assert_eq!(messages[2]["role"], "user");
    let result = &messages[2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert!(result["content"].to_string().contains("# BotArmy"));
}

#[tokio::test]
async fn an_error_event_mid_stream_is_reported_as_overloaded() {
    let mut stream = events(TEXT)[..4].to_vec();
    stream.push(
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
            .to_owned(),
    );
    let server = MockServer::replies(vec![Reply::Sse {
        events: stream,
        end: End::Close,
    }])
    .await;

    let error = failure(&anthropic(&server), &request()).await;

    match &error {
        LlmError::Http {
            status, message, ..
        } => {
            assert_eq!(*status, 529);
            assert!(message.contains("Overloaded"), "{message}");
        }
        other => panic!("expected HTTP 529, got {other:?}"),
    }
    assert!(error.is_retryable());
}

#[tokio::test]
async fn overloaded_and_rate_limited_statuses() {
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let limited = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
    let server = MockServer::replies(vec![
        Reply::json(529, overloaded),
        Reply::json(429, limited).with_header("retry-after", "12"),
    ])
    .await;
    let anthropic = anthropic(&server);

    match failure(&anthropic, &request()).await {
        LlmError::Http {
            status: 529,
            message,
            retry_after: None,
            ..
        } => assert_eq!(message, "overloaded_error: Overloaded"),
        other => panic!("expected HTTP 529, got {other:?}"),
    }
    let limited = failure(&anthropic, &request()).await;
    assert!(
        matches!(limited, LlmError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 12),
        "{limited:?}"
    );
}

#[tokio::test]
async fn a_stream_without_message_stop_is_cut_short() {
    let stream = events(TEXT);
    let server = MockServer::replies(vec![Reply::Sse {
        events: stream[..stream.len() - 1].to_vec(),
        end: End::Close,
    }])
    .await;

    let error = failure(&anthropic(&server), &request()).await;

    match &error {
        LlmError::Transient { message, .. } => {
            assert!(message.contains("message_stop"), "{message}")
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized() {
    let body =
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
    let server = MockServer::replies(vec![Reply::json(401, body)]).await;

    let error = failure(&anthropic(&server), &request()).await;

    match &error {
        LlmError::Unauthorized {
            status, message, ..
        } => {
            assert_eq!(*status, 401);
            assert_eq!(message, "authentication_error: invalid x-api-key");
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert_eq!(server.requests().len(), 1, "one attempt only");
}

#[tokio::test]
async fn ping_lists_the_models() {
    let models = json!({"data": [
        {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"}
    ], "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-sonnet-4-5"});
    let server = MockServer::replies(vec![Reply::json(200, &models.to_string())]).await;

    let said = anthropic(&server).ping().await.unwrap();

    assert!(
        said.contains("1 models listed, including the default claude-sonnet-4-5"),
        "{said}"
    );
    let sent = server.only_request();
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(sent.header("x-api-key"), Some("sk-test-key"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
}
