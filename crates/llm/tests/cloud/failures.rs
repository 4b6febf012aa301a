//! How failures on the wire reach the caller: statuses, `retry-after`, timeouts, streams that
//! stall, end early, carry bad JSON or break; and configurations that cannot work.

use std::time::Duration;

use botarmy_llm::{CloudConfig, CloudKind, CloudProvider, LlmError, VertexConfig};
use botarmy_testkit::{End, MockServer, Reply, closed_port, events};

use super::{chat, config, failure, provider, request, tool_request};

const TEXT: &str = include_str!("fixtures/openai_text.sse");
const TOOLS: &str = include_str!("fixtures/openai_tools.sse");

fn openai(server: &MockServer) -> CloudProvider {
    provider(config(
        CloudKind::OpenAi,
        &format!("{}/v1", server.base),
        "gpt-4o-mini",
    ))
}

const RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): Limit 500, Used 500, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;

#[tokio::test]
async fn rate_limited_with_retry_after_in_seconds() {
    let server = MockServer::replies(vec![
        Reply::json(429, RATE_LIMITED).with_header("retry-after", "7"),
    ])
    .await;

    let error = failure(&openai(&server), &request()).await;

    match &error {
        LlmError::RateLimited {
            provider,
            retry_after,
        } => {
            assert_eq!(provider, "openai");
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("expected rate limited, got {other:?}"),
    }
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(error.code(), "rate_limited");
    assert_eq!(server.requests().len(), 1, "one attempt only");
}

#[tokio::test]
async fn rate_limited_with_retry_after_as_a_date() {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date = at.format(format).unwrap();
    let server = MockServer::replies(vec![
        Reply::json(429, RATE_LIMITED).with_header("retry-after", &date),
    ])
    .await;

    let wait = failure(&openai(&server), &request())
        .await
        .retry_after()
        .expect("a wait");

    assert!(
        wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
        "{wait:?} for {date}"
    );
}

#[tokio::test]
async fn rate_limited_with_openai_reset_headers() {
    let server = MockServer::replies(vec![
        Reply::json(429, RATE_LIMITED)
            .with_header("x-ratelimit-limit-requests", "500")
            .with_header("x-ratelimit-remaining-requests", "0")
            .with_header("x-ratelimit-reset-requests", "1.5s")
            .with_header("x-ratelimit-remaining-tokens", "199000")
            .with_header("x-ratelimit-reset-tokens", "6m0s"),
    ])
    .await;

    let error = failure(&openai(&server), &request()).await;

    assert_eq!(
        error.retry_after(),
        Some(Duration::from_millis(1500)),
        "{error:?}"
    );
}

#[tokio::test]
async fn server_errors_keep_their_status_message_and_wait() {
    let server = MockServer::replies(vec![
        Reply::json(
            500,
            r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#,
        ),
        Reply::Body {
            status: 503,
            headers: vec![("retry-after".into(), "3".into())],
            body: String::new(),
        },
    ])
    .await;
    let openai = openai(&server);

    let error = failure(&openai, &request()).await;
    match &error {
        LlmError::Http {
            status,
            message,
            retry_after,
            ..
        } => {
            assert_eq!(*status, 500);
            assert_eq!(
                message,
                "server_error: The server had an error while processing your request. Sorry about that!"
            );
            assert_eq!(*retry_after, None);
        }
        other => panic!("expected HTTP 500, got {other:?}"),
    }
    assert!(error.is_retryable());
    assert_eq!(error.code(), "http_500");

    let error = failure(&openai, &request()).await;
    match &error {
        LlmError::Http {
            status,
            message,
            retry_after,
            ..
        } => {
            assert_eq!(*status, 503);
            assert_eq!(message, "Service Unavailable");
            assert_eq!(*retry_after, Some(Duration::from_secs(3)));
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_not_retryable() {
    let body = r#"{"error":{"message":"Incorrect API key provided: sk-test***-key. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    let server = MockServer::replies(vec![Reply::json(401, body)]).await;

    let error = failure(&openai(&server), &request()).await;

    match &error {
        LlmError::Unauthorized {
            status, message, ..
        } => {
            assert_eq!(*status, 401);
            assert!(message.starts_with("invalid_request_error: Incorrect API key provided"));
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert!(
        !error.to_string().contains("sk-test-key"),
        "the key never shows"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_unknown_model_is_http_404() {
    let body = r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
    let server = MockServer::replies(vec![Reply::json(404, body)]).await;
    let mut request = request();
    request.model = "gpt-9".to_owned();

    let error = failure(&openai(&server), &request).await;

    assert!(
        matches!(&error, LlmError::Http { status: 404, message, .. } if message.contains("`gpt-9` does not exist")),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_stalled_stream_times_out_between_chunks() {
    let server = MockServer::replies(vec![Reply::Sse {
        events: events(TEXT)[..3].to_vec(),
        end: End::Hold,
    }])
    .await;
    let mut config = config(
        CloudKind::OpenAi,
        &format!("{}/v1", server.base),
        "gpt-4o-mini",
    );
    config.chunk_timeout = Duration::from_millis(300);
    let openai = provider(config);

    let (result, pieces) = chat(&openai, &request()).await;

    assert_eq!(
        pieces,
        ["The plan", " has three"],
        "what came before the stall was streamed"
    );
    match result {
        Err(LlmError::Timeout { during, after, .. }) => {
            assert_eq!(during, "between stream chunks");
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_server_times_out_waiting_for_the_answer() {
    let server = MockServer::replies(vec![Reply::Silent]).await;
    let mut config = config(
        CloudKind::OpenAi,
        &format!("{}/v1", server.base),
        "gpt-4o-mini",
    );
    config.first_byte_timeout = Duration::from_millis(300);
    let openai = provider(config);

    let error = failure(&openai, &request()).await;

    match error {
        LlmError::Timeout { during, after, .. } => {
            assert_eq!(during, "waiting for the answer");
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn the_whole_call_has_a_deadline() {
    let server = MockServer::replies(vec![Reply::Sse {
        events: events(TEXT)[..2].to_vec(),
        end: End::Hold,
    }])
    .await;
    let mut config = config(
        CloudKind::OpenAi,
        &format!("{}/v1", server.base),
        "gpt-4o-mini",
    );
    config.request_timeout = Duration::from_millis(300);
    let openai = provider(config);

    let error = failure(&openai, &request()).await;

    assert!(
        matches!(
            error,
            LlmError::Timeout {
                during: "receiving the whole answer",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_stream_without_done_is_cut_short() {
    let stream = events(TEXT);
    let server = MockServer::replies(vec![Reply::Sse {
        events: stream[..stream.len() - 1].to_vec(),
        end: End::Close,
    }])
    .await;

    let (result, pieces) = chat(&openai(&server), &request()).await;

    assert_eq!(pieces.concat(), "The plan has three phases: é, ü.");
    match result {
        Err(error @ LlmError::Transient { .. }) => {
            assert!(error.to_string().contains("[DONE]"), "{error}");
            assert!(error.is_retryable());
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_json_in_a_chunk_is_transient() {
    let mut stream = events(TEXT);
    stream[2] = "data: {\"id\":\"chatcmpl-BA7x2q\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" has th\n\n".to_owned();
    let server = MockServer::replies(vec![Reply::Sse {
        events: stream,
        end: End::Close,
    }])
    .await;

    let error = failure(&openai(&server), &request()).await;

    match &error {
        LlmError::Transient { message, .. } => {
            assert!(message.contains("malformed JSON"), "{message}")
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_tool_arguments_are_transient() {
    let stream: Vec<String> = events(TOOLS)
        .into_iter()
        .map(|e| e.replace(r#"th\": \"src/main.rs\"}"#, r#"th\": \"src/ma"#))
        .collect();
    let server = MockServer::replies(vec![Reply::Sse {
        events: stream,
        end: End::Close,
    }])
    .await;

    let error = failure(&openai(&server), &tool_request()).await;

    match &error {
        LlmError::Transient { message, .. } => {
            assert!(message.contains("file_read"), "{message}");
            assert!(message.contains("malformed JSON"), "{message}");
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reset_connection_is_transient() {
    let server = MockServer::replies(vec![Reply::Sse {
        events: events(TEXT)[..2].to_vec(),
        end: End::Reset,
    }])
    .await;

    let error = failure(&openai(&server), &request()).await;

    assert!(matches!(error, LlmError::Transient { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let openai = provider(config(
        CloudKind::OpenAi,
        &format!("{}/v1", closed_port().await),
        "gpt-4o-mini",
    ));

    let error = failure(&openai, &request()).await;

    match &error {
        LlmError::Transient { message, .. } => {
            assert!(message.starts_with("could not connect"), "{message}")
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn configurations_that_cannot_work_are_refused_at_construction() {
    let fatal = |config: CloudConfig| match CloudProvider::new(config) {
        Err(LlmError::Fatal { message, .. }) => message,
        other => panic!("expected a fatal error, got {other:?}"),
    };

    let no_key = fatal(CloudConfig::new(CloudKind::OpenAi, "gpt-4o"));
    assert!(no_key.contains("no API key"), "{no_key}");
    let no_base = fatal(CloudConfig::new(CloudKind::OpenAiCompatible, "qwen"));
    assert!(no_base.contains("no base URL"), "{no_base}");
    let bad_base = fatal(CloudConfig {
        base_url: Some("localhost:8000".to_owned()),
        ..CloudConfig::new(CloudKind::Ollama, "llama3.2")
    });
    assert!(bad_base.contains("`localhost:8000`"), "{bad_base}");
    let no_model = fatal(CloudConfig {
        api_key: Some("k".to_owned()),
        ..CloudConfig::new(CloudKind::Anthropic, "")
    });
    assert!(no_model.contains("no default model"), "{no_model}");
    let no_vertex = fatal(CloudConfig::new(CloudKind::Vertex, "gemini-2.5-flash"));
    assert!(no_vertex.contains("project"), "{no_vertex}");
    let missing_key_file = fatal(CloudConfig {
        vertex: Some(VertexConfig {
            project: "p".to_owned(),
            region: "us-central1".to_owned(),
            credentials_path: "/nonexistent/sa.json".into(),
        }),
        ..CloudConfig::new(CloudKind::Vertex, "gemini-2.5-flash")
    });
    assert!(
        missing_key_file.contains("/nonexistent/sa.json"),
        "{missing_key_file}"
    );

    // Ollama needs neither key nor base URL.
    let ollama = CloudProvider::new(CloudConfig::new(CloudKind::Ollama, "llama3.2")).unwrap();
    assert_eq!(
        format!("{:?}", ollama.config().kind.default_base_url()),
        "Some(\"http://localhost:11434/v1\")"
    );
}

#[test]
fn kinds_parse_by_name_and_keys_stay_out_of_debug_output() {
    for kind in CloudKind::ALL {
        assert_eq!(kind.name().parse::<CloudKind>(), Ok(kind));
    }
    assert_eq!(
        "OpenAI_Compatible".parse::<CloudKind>(),
        Ok(CloudKind::OpenAiCompatible)
    );
    let unknown = "bard".parse::<CloudKind>().unwrap_err();
    assert!(unknown.to_string().contains("`bard`"));

    let config = CloudConfig {
        api_key: Some("sk-secret-123".to_owned()),
        headers: vec![("x-proxy-key".to_owned(), "proxy-secret".to_owned())],
        ..CloudConfig::new(CloudKind::OpenAi, "gpt-4o")
    };
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("sk-secret-123") && !shown.contains("proxy-secret"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_connection_that_is_never_accepted_times_out_connecting() {
    // A listener with a backlog of one, already filled: the kernel drops further SYNs, so a
    // connection attempt hangs as it would towards an unreachable host.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..2 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            queued.push(stream);
        }
    }
    let mut config = config(
        CloudKind::OpenAi,
        &format!("http://{addr}/v1"),
        "gpt-4o-mini",
    );
    config.connect_timeout = Duration::from_millis(300);
    let openai = provider(config);

    let error = failure(&openai, &request()).await;

    match error {
        LlmError::Timeout { during, after, .. } => {
            assert_eq!(during, "connecting");
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("expected a connect timeout, got {other:?}"),
    }
    drop(queued);
}
