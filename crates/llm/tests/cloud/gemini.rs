//! Google Gemini (generateContent).

use botarmy_llm::{ChatMessage, CloudKind, FinishReason, LlmError, Provider, ToolCall};
use botarmy_testkit::{End, MockServer, Reply, events};
use serde_json::json;

use super::{answer, config, failure, provider, request, tool_request};

const TEXT: &str = include_str!("fixtures/gemini_text.sse");
const TOOLS: &str = include_str!("fixtures/gemini_tools.sse");

fn gemini(server: &MockServer) -> botarmy_llm::CloudProvider {
    provider(config(CloudKind::Gemini, &server.base, "gemini-2.5-flash"))
}

#[tokio::test]
async fn streams_text_with_usage_and_cached_tokens() {
    let server = MockServer::replies(vec![Reply::sse(TEXT)]).await;

    let (response, pieces) = answer(&gemini(&server), &request()).await;

    assert_eq!(pieces, ["Discovery, then", " design."]);
    assert_eq!(response.finish, FinishReason::Stop);
    assert_eq!(response.provider, "gemini");
    assert_eq!(response.usage.input_tokens, 812);
    assert_eq!(response.usage.output_tokens, 5);
    assert_eq!(response.usage.cached_tokens, 512);

    let sent = server.only_request();
    assert_eq!(sent.method, "POST");
    assert_eq!(
        sent.target,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("sk-test-key"));
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json();
    assert_eq!(
        body["systemInstruction"]["parts"][0]["text"],
        "You are the analyst."
    );
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "Which phases come first?"}]}])
    );
    let generation = &body["generationConfig"];
    assert_eq!(generation["maxOutputTokens"], 256);
    assert!((generation["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert_eq!(generation["stopSequences"], json!(["<END>"]));
    assert_eq!(generation["seed"], 7);
}

#[tokio::test]
async fn function_calls_become_tool_calls() {
    let server = MockServer::replies(vec![Reply::sse(TOOLS)]).await;

    let (response, pieces) = answer(&gemini(&server), &tool_request()).await;

    assert!(pieces.is_empty());
    // Gemini says STOP even when it calls functions.
    assert_eq!(response.finish, FinishReason::ToolCalls);
    let calls: Vec<(&str, &serde_json::Value)> = response
        .tool_calls
        .iter()
        .map(|c| (c.name.as_str(), &c.arguments))
        .collect();
    assert_eq!(
        calls,
        [
            ("file_read", &json!({"path": "docs/plan.md"})),
            ("shell", &json!({"command": "ls -la", "timeout_secs": 5})),
        ]
    );
    assert_ne!(response.tool_calls[0].id, response.tool_calls[1].id);
    assert_eq!(response.usage.input_tokens, 143);
    assert_eq!(response.usage.output_tokens, 31);

    let body = server.only_request().json();
    let declarations = body["tools"][0]["functionDeclarations"].as_array().unwrap();
    assert_eq!(declarations.len(), 2);
    assert_eq!(declarations[0]["name"], "file_read");
    assert_eq!(
        declarations[0]["description"],
        "Read a file of the worktree"
    );
    assert_eq!(declarations[1]["name"], "shell");
}

#[tokio::test]
async fn function_responses_carry_the_function_name() {
    let server = MockServer::replies(vec![Reply::sse(TEXT)]).await;
    let mut request = tool_request();
    request.messages.push(ChatMessage::assistant_tool_calls(
        "",
        vec![ToolCall {
            id: "read-1".to_owned(),
            name: "file_read".to_owned(),
            arguments: json!({"path": "docs/plan.md"}),
        }],
    ));
    request
        .messages
        .push(ChatMessage::tool_result("read-1", "# Plan"));

    answer(&gemini(&server), &request).await;

    let body = server.only_request().json();
    let contents = body["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3);
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(contents[1]["parts"][0]["functionCall"]["name"], "file_read");
    assert_eq!(
        contents[1]["parts"][0]["functionCall"]["args"],
        json!({"path": "docs/plan.md"})
    );
    assert_eq!(contents[2]["role"], "user");
    let response = &contents[2]["parts"][0]["functionResponse"];
    assert_eq!(response["name"], "file_read");
    assert!(response["response"].to_string().contains("# Plan"));
}

#[tokio::test]
async fn a_stream_without_finish_reason_is_cut_short() {
    let server = MockServer::replies(vec![Reply::Sse {
        events: events(TEXT)[..1].to_vec(),
        end: End::Close,
    }])
    .await;

    let error = failure(&gemini(&server), &request()).await;

    match &error {
        LlmError::Transient { message, .. } => {
            assert!(message.contains("finishReason"), "{message}")
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn quota_errors_carry_the_retry_info_delay() {
    let body = json!({"error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                 "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "46s"}
        ]
    }});
    let server = MockServer::replies(vec![Reply::json(429, &body.to_string())]).await;

    let error = failure(&gemini(&server), &request()).await;

    assert!(
        matches!(error, LlmError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 46),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_invalid_key_is_unauthorized_although_gemini_says_400() {
    let body = json!({"error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                     "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]
    }});
    let server = MockServer::replies(vec![Reply::json(400, &body.to_string())]).await;

    let error = failure(&gemini(&server), &request()).await;

    match &error {
        LlmError::Unauthorized {
            status, message, ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(
                message,
                "INVALID_ARGUMENT: API key not valid. Please pass a valid API key."
            );
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_model_is_http_404() {
    let body = json!({"error": {
        "code": 404,
        "message": "models/gemini-9-ultra is not found for API version v1beta, or is not supported for generateContent.",
        "status": "NOT_FOUND"
    }});
    let server = MockServer::replies(vec![Reply::json(404, &body.to_string())]).await;
    let mut request = request();
    request.model = "gemini-9-ultra".to_owned();

    let error = failure(&gemini(&server), &request).await;

    match &error {
        LlmError::Http {
            status, message, ..
        } => {
            assert_eq!(*status, 404);
            assert!(
                message.starts_with("NOT_FOUND: models/gemini-9-ultra is not found"),
                "{message}"
            );
        }
        other => panic!("expected HTTP 404, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert_eq!(
        server.only_request().target,
        "/v1beta/models/gemini-9-ultra:streamGenerateContent?alt=sse"
    );
}

#[tokio::test]
async fn ping_lists_the_models() {
    let models = json!({"models": [
        {"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash",
         "supportedGenerationMethods": ["generateContent", "countTokens"]},
        {"name": "models/gemini-2.5-pro", "displayName": "Gemini 2.5 Pro",
         "supportedGenerationMethods": ["generateContent", "countTokens"]}
    ], "nextPageToken": "Ch5tb2RlbHMvZ2VtaW5p"});
    let server = MockServer::replies(vec![Reply::json(200, &models.to_string())]).await;

    let said = gemini(&server).ping().await.unwrap();

    assert!(
        said.contains("2 models listed, including the default gemini-2.5-flash"),
        "{said}"
    );
    let sent = server.only_request();
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("GET", "/v1beta/models")
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("sk-test-key"));
}

#[tokio::test]
async fn a_key_without_permission_is_unauthorized() {
    let body = json!({"error": {
        "code": 403,
        "message": "Generative Language API has not been used in project 1234 before or it is disabled.",
        "status": "PERMISSION_DENIED"
    }});
    let server = MockServer::replies(vec![Reply::json(403, &body.to_string())]).await;

    let error = failure(&gemini(&server), &request()).await;

    assert!(
        matches!(&error, LlmError::Unauthorized { status: 403, message, .. } if message.starts_with("PERMISSION_DENIED: ")),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}
