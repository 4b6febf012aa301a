//! OpenAI Chat Completions, and the same wire format for Ollama and other compatible servers.

use botarmy_llm::{ChatMessage, CloudKind, FinishReason, Provider, ToolCall};
use botarmy_testkit::{MockServer, Reply};
use serde_json::json;

use super::{answer, config, provider, request, tool_request};

const TEXT: &str = include_str!("fixtures/openai_text.sse");
const TOOLS: &str = include_str!("fixtures/openai_tools.sse");
const WHOLE: &str = include_str!("fixtures/openai_whole.json");

#[tokio::test]
async fn streams_text_with_usage_and_cached_tokens() {
    let server = MockServer::replies(vec![Reply::sse(TEXT)]).await;
    let openai = provider(config(
        CloudKind::OpenAi,
        &format!("{}/v1", server.base),
        "gpt-4o-mini",
    ));

    let (response, pieces) = answer(&openai, &request()).await;

    assert_eq!(pieces, ["The plan", " has three", " phases: é, ü."]);
    assert_eq!(response.text, "The plan has three phases: é, ü.");
    assert_eq!(response.finish, FinishReason::Stop);
    assert_eq!(response.provider, "openai");
    assert_eq!(response.model, "gpt-4o-mini");
    assert!(response.tool_calls.is_empty());
    assert_eq!(response.usage.input_tokens, 1310);
    assert_eq!(response.usage.output_tokens, 9);
    assert_eq!(response.usage.cached_tokens, 1152);
    assert_eq!(response.usage.calls, 1);

    let sent = server.only_request();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.target, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-key"));
    assert!(
        sent.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body = sent.json();
    assert_eq!(
        body["model"], "gpt-4o-mini",
        "the default model fills an empty one"
    );
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are the analyst."},
            {"role": "user", "content": "Which phases come first?"}
        ])
    );
    assert_eq!(body["max_tokens"], 256);
    assert!((body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert_eq!(body["seed"], 7);
    assert_eq!(body["stop"], json!(["<END>"]));
    assert!(body.get("tools").is_none());
}

#[tokio::test]
async fn streamed_tool_call_deltas_are_assembled() {
    let server = MockServer::replies(vec![Reply::sse(TOOLS)]).await;
    let openai = provider(config(
        CloudKind::OpenAi,
        &format!("{}/v1", server.base),
        "gpt-4o-mini",
    ));
    let mut request = tool_request();
    request.model = "gpt-4o".to_owned();

    let (response, pieces) = answer(&openai, &request).await;

    assert!(pieces.is_empty());
    assert_eq!(response.model, "gpt-4o");
    assert_eq!(response.finish, FinishReason::ToolCalls);
    assert_eq!(
        response.tool_calls,
        [
            ToolCall {
                id: "call_R2mQ7xVb".to_owned(),
                name: "file_read".to_owned(),
                arguments: json!({"path": "src/main.rs"}),
            },
            ToolCall {
                id: "call_T9pLw3Ks".to_owned(),
                name: "shell".to_owned(),
                arguments: json!({"command": "cargo test", "timeout_secs": 60}),
            },
        ]
    );
    assert_eq!(response.usage.input_tokens, 214);
    assert_eq!(response.usage.output_tokens, 48);

    let body = server.only_request().json();
    assert_eq!(body["model"], "gpt-4o");
    let tools = body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0]["type"], "function");
    assert_eq!(tools[0]["function"]["name"], "file_read");
    assert_eq!(
        tools[0]["function"]["description"],
        "Read a file of the worktree"
    );
    assert_eq!(
        tools[0]["function"]["parameters"]["properties"]["path"]["type"],
        "string"
    );
    assert_eq!(tools[1]["function"]["name"], "shell");
}

#[tokio::test]
async fn tool_results_go_back_with_their_call_ids() {
    let server = MockServer::replies(vec![Reply::sse(TEXT)]).await;
    let openai = provider(config(
        CloudKind::OpenAi,
        &format!("{}/v1", server.base),
        "gpt-4o",
    ));
    let mut request = tool_request();
    request.messages.push(ChatMessage::assistant_tool_calls(
        "",
        vec![ToolCall {
            id: "call_R2mQ7xVb".to_owned(),
            name: "file_read".to_owned(),
            arguments: json!({"path": "src/main.rs"}),
        }],
    ));
    request
        .messages
        .push(ChatMessage::tool_result("call_R2mQ7xVb", "fn main() {}"));

    answer(&openai, &request).await;

    let body = server.only_request().json();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    let call = &messages[2];
    assert_eq!(call["role"], "assistant");
    assert_eq!(call["tool_calls"][0]["id"], "call_R2mQ7xVb");
    assert_eq!(call["tool_calls"][0]["type"], "function");
    assert_eq!(call["tool_calls"][0]["function"]["name"], "file_read");
    let arguments: serde_json::Value = serde_json::from_str(
        call["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(arguments, json!({"path": "src/main.rs"}));
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_R2mQ7xVb", "content": "fn main() {}"})
    );
}

#[tokio::test]
async fn ollama_without_key_answers_whole_with_usage() {
    let server = MockServer::replies(vec![Reply::json(200, WHOLE)]).await;
    // Ollama's address as people usually write it (`OLLAMA_BASE_URL=http://host:11434`).
    let mut config = config(CloudKind::Ollama, &server.base, "llama3.2:3b");
    config.api_key = None;
    config.stream = false;
    config.headers = vec![("X-Team".to_owned(), "platform".to_owned())];
    let ollama = provider(config);

    let (response, pieces) = answer(&ollama, &request()).await;

    assert_eq!(pieces, ["Build, then validate."]);
    assert_eq!(response.provider, "ollama");
    assert_eq!(response.finish, FinishReason::Length);
    assert_eq!(response.usage.input_tokens, 37);
    assert_eq!(response.usage.output_tokens, 5);
    assert_eq!(response.usage.cached_tokens, 0);

    let sent = server.only_request();
    assert_eq!(sent.target, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("x-team"), Some("platform"));
    let body = sent.json();
    assert_eq!(body["model"], "llama3.2:3b");
    assert_eq!(body["stream"], false);
}

#[tokio::test]
async fn compatible_server_with_a_key_streams() {
    let server = MockServer::replies(vec![Reply::sse(TEXT)]).await;
    let mut config = config(
        CloudKind::OpenAiCompatible,
        &format!("{}/api/v1/", server.base),
        "qwen2.5-coder",
    );
    config.id = "vllm".to_owned();
    let vllm = provider(config);

    let (response, _) = answer(&vllm, &request()).await;

    assert_eq!(response.provider, "vllm");
    let sent = server.only_request();
    assert_eq!(sent.target, "/api/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-key"));
}

#[tokio::test]
async fn ping_lists_the_models() {
    let models = json!({"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
        {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"}
    ]});
    let server = MockServer::replies(vec![Reply::json(200, &models.to_string())]).await;
    let openai = provider(config(
        CloudKind::OpenAi,
        &format!("{}/v1", server.base),
        "gpt-4o-mini",
    ));

    let said = openai.ping().await.unwrap();

    assert!(said.contains("/v1/models"), "{said}");
    assert!(said.contains("key accepted"), "{said}");
    assert!(
        said.contains("2 models listed, including the default gpt-4o-mini"),
        "{said}"
    );
    let sent = server.only_request();
    assert_eq!(sent.method, "GET");
    assert_eq!(sent.target, "/v1/models");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-key"));
}

#[tokio::test]
async fn ping_with_a_wrong_key_is_unauthorized() {
    let body = r#"{"error":{"message":"Incorrect API key provided: sk-test***-key.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    let server = MockServer::replies(vec![Reply::json(401, body)]).await;
    let openai = provider(config(
        CloudKind::OpenAi,
        &format!("{}/v1", server.base),
        "gpt-4o-mini",
    ));

    let error = openai.ping().await.unwrap_err();

    assert!(
        matches!(
            &error,
            botarmy_llm::LlmError::Unauthorized { status: 401, .. }
        ),
        "{error:?}"
    );
}
