//! The testkit's responders (used by the end-to-end tests of the binary) against the
//! providers: every wire format, streamed and whole, any number of answers, the usage where
//! each format puts it; and its outage and wrong-key answers.

use std::sync::Arc;

use botarmy_llm::{CloudConfig, CloudKind, CloudProvider, LlmError, VertexConfig};
use botarmy_testkit::google::{ServiceAccount, vertex_server};
use botarmy_testkit::{Responder, Wire, failing};

use super::{answer, config, failure, provider, request};

/// Two calls on `provider` answered by `responder`; checks text and usage against what the
/// responder says it sent.
async fn two_answers(provider: &CloudProvider, responder: &Responder, streamed: bool) {
    for n in 1..=2 {
        let (response, _) = answer(provider, &request()).await;
        let sent = responder.answered();
        assert_eq!(sent.len(), n);
        let last = &sent[n - 1];
        if streamed {
            assert_eq!(response.text, last.text);
        } else {
            // (genai drops the whitespace that ends a whole Chat Completions answer.)
            assert_eq!(response.text.trim_end(), last.text.trim_end());
        }
        assert!(
            response.text.contains(&format!("answer {n}")),
            "{response:?}"
        );
        assert_eq!(last.streamed, streamed);
        assert_eq!(response.usage.input_tokens, last.tokens.input);
        assert_eq!(response.usage.cached_tokens, last.tokens.cached);
        assert_eq!(response.usage.output_tokens, last.tokens.output);
        assert!(last.tokens.cached > 0 && last.tokens.output > 0, "{last:?}");
    }
}

#[tokio::test]
async fn every_format_answers_again_and_again_streamed_or_whole() {
    let cases = [
        (
            Wire::ChatCompletions,
            CloudKind::OpenAi,
            "/v1",
            "gpt-4.1-mini",
        ),
        (Wire::ChatCompletions, CloudKind::Ollama, "", "llama3.2"),
        (
            Wire::Messages,
            CloudKind::Anthropic,
            "",
            "claude-sonnet-4-5",
        ),
        (
            Wire::GenerateContent,
            CloudKind::Gemini,
            "",
            "gemini-2.5-flash",
        ),
    ];
    for (wire, kind, suffix, model) in cases {
        for stream in [true, false] {
            let responder = Responder::new(wire, "mock");
            let server = responder.serve().await;
            let provider = provider(CloudConfig {
                stream,
                ..config(kind, &format!("{}{suffix}", server.base), model)
            });
            two_answers(&provider, &responder, stream).await;
            assert!(
                responder.answered().iter().all(|a| a.model == model),
                "{kind:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_wrong_key_is_refused_in_the_format_of_the_provider() {
    let responder = Responder::new(Wire::Messages, "mock").requiring("x-api-key", "sk-right");
    let server = responder.serve().await;
    let anthropic = provider(config(
        CloudKind::Anthropic,
        &server.base,
        "claude-sonnet-4-5",
    ));

    let error = failure(&anthropic, &request()).await;

    assert!(
        matches!(&error, LlmError::Unauthorized { status: 401, message, .. }
            if message.contains("authentication_error")),
        "{error:?}"
    );
    assert!(responder.answered().is_empty());
}

#[tokio::test]
async fn an_outage_answers_every_request_with_a_retryable_error() {
    for wire in [Wire::ChatCompletions, Wire::Messages, Wire::GenerateContent] {
        let server = failing(wire, 503, "The service is temporarily unavailable.").await;
        let (kind, base) = match wire {
            Wire::ChatCompletions => (CloudKind::OpenAi, format!("{}/v1", server.base)),
            Wire::Messages => (CloudKind::Anthropic, server.base.clone()),
            Wire::GenerateContent => (CloudKind::Gemini, server.base.clone()),
        };
        let provider = provider(config(kind, &base, "some-model"));
        for _ in 0..2 {
            let error = failure(&provider, &request()).await;
            assert!(error.is_retryable(), "{wire:?}: {error:?}");
            assert!(
                error.to_string().contains("temporarily unavailable"),
                "{wire:?}: {error}"
            );
        }
        assert_eq!(server.requests().len(), 2);
    }
}

#[tokio::test]
async fn vertex_answers_only_with_a_token_of_its_endpoint() {
    let account = Arc::new(ServiceAccount::generate());
    let responder = Responder::new(Wire::GenerateContent, "vertex-mock");
    let (server, token) = vertex_server(account.clone(), responder.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = account
        .write_key_file(dir.path(), token.token_uri())
        .unwrap();
    let vertex = provider(CloudConfig {
        base_url: Some(server.base.clone()),
        vertex: Some(VertexConfig {
            project: "acme-dev".to_owned(),
            region: "europe-west4".to_owned(),
            credentials_path: key_path,
        }),
        ..CloudConfig::new(CloudKind::Vertex, "gemini-2.5-pro")
    });

    two_answers(&vertex, &responder, true).await;

    assert_eq!(token.checks(), [Ok(())]);
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "one token exchange, two calls");
    assert_eq!(
        requests[1].target,
        "/v1/projects/acme-dev/locations/europe-west4/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        requests[1].header("authorization"),
        Some("Bearer ya29.token-1")
    );
}
