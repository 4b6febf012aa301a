//! Cassettes: recording, replaying, and what happens when a request is not recorded.

use std::sync::{Arc, Mutex};

use botarmy_llm::{
    CassetteWriter, ChatMessage, ChatRequest, ChatResponse, Exchange, FinishReason, LlmError,
    Provider, RecordingProvider, ReplayProvider, read_cassette,
};
use botarmy_protocol::Usage;

fn request(question: &str) -> ChatRequest {
    ChatRequest {
        model: String::new(),
        messages: vec![
            ChatMessage::system("You answer briefly."),
            ChatMessage::user(question),
        ],
        max_tokens: 64,
        temperature: 0.7,
        seed: 7,
        stop: vec![],
        grammar: None,
        tools: vec![],
    }
}

fn response(text: &str) -> ChatResponse {
    ChatResponse {
        text: text.to_owned(),
        usage: Usage {
            input_tokens: 20,
            output_tokens: 5,
            calls: 1,
            ..Usage::default()
        },
        provider: "local".to_owned(),
        model: "smollm2-135m-instruct".to_owned(),
        finish: FinishReason::Stop,
        tool_calls: vec![],
    }
}

/// Writes a cassette the way a person would: one JSON object per line.
fn hand_written(
    dir: &std::path::Path,
    exchanges: &[(ChatRequest, ChatResponse)],
) -> std::path::PathBuf {
    let path = dir.join("hand.jsonl");
    let mut text = String::new();
    for (request, response) in exchanges {
        let line = serde_json::json!({
            "digest": request.digest(),
            "request": request,
            "response": response,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

async fn chat_collect(
    provider: &dyn Provider,
    request: &ChatRequest,
) -> (Result<ChatResponse, LlmError>, String) {
    let streamed = Mutex::new(String::new());
    let result = provider
        .chat(request, &|piece| streamed.lock().unwrap().push_str(piece))
        .await;
    (result, streamed.into_inner().unwrap())
}

#[tokio::test]
async fn replay_streams_the_recorded_answer() {
    let dir = tempfile::tempdir().unwrap();
    let answer = "Rust is a systems programming language — fast, safe, and fün to write.";
    let cassette = hand_written(dir.path(), &[(request("What is Rust?"), response(answer))]);
    let replay = ReplayProvider::open(&cassette).unwrap();
    assert_eq!(replay.id(), "replay");

    let (result, streamed) = chat_collect(&replay, &request("What is Rust?")).await;
    let got = result.unwrap();
    assert_eq!(got, response(answer));
    assert_eq!(streamed, answer);
}

#[tokio::test]
async fn the_model_name_does_not_change_the_match() {
    let dir = tempfile::tempdir().unwrap();
    let cassette = hand_written(dir.path(), &[(request("Q"), response("A"))]);
    let replay = ReplayProvider::open(&cassette).unwrap();
    let mut renamed = request("Q");
    renamed.model = "another-model".to_owned();
    assert_eq!(replay.chat(&renamed, &|_| {}).await.unwrap().text, "A");
}

#[tokio::test]
async fn repeated_identical_requests_get_their_answers_in_recorded_order() {
    let dir = tempfile::tempdir().unwrap();
    let cassette = hand_written(
        dir.path(),
        &[
            (request("Roll a die"), response("4")),
            (request("Other"), response("x")),
            (request("Roll a die"), response("2")),
        ],
    );
    let replay = ReplayProvider::open(&cassette).unwrap();
    assert_eq!(
        replay
            .chat(&request("Roll a die"), &|_| {})
            .await
            .unwrap()
            .text,
        "4"
    );
    assert_eq!(
        replay
            .chat(&request("Roll a die"), &|_| {})
            .await
            .unwrap()
            .text,
        "2"
    );
    match replay.chat(&request("Roll a die"), &|_| {}).await {
        Err(LlmError::NotInCassette { call, digest, .. }) => {
            assert_eq!(call, 2);
            assert_eq!(digest, request("Roll a die").digest());
        }
        other => panic!("expected NotInCassette, got {other:?}"),
    }
}

#[tokio::test]
async fn a_request_not_in_the_cassette_fails_naming_cassette_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let cassette = hand_written(dir.path(), &[(request("Q"), response("A"))]);
    let replay = ReplayProvider::open(&cassette).unwrap();
    let mut other = request("Q");
    other.seed = 8;
    let err = replay.chat(&other, &|_| {}).await.unwrap_err();
    assert!(
        matches!(err, LlmError::NotInCassette { call: 0, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&cassette.display().to_string()),
        "{message}"
    );
    assert!(message.contains(&other.digest()), "{message}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn recording_a_replay_gives_a_cassette_that_replays_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let original = hand_written(
        dir.path(),
        &[
            (request("one"), response("first answer")),
            (request("two"), response("second answer")),
        ],
    );
    let recorded_path = dir.path().join("recorded.jsonl");
    let writer = Arc::new(CassetteWriter::open(&recorded_path).unwrap());
    let recorder =
        RecordingProvider::new(Arc::new(ReplayProvider::open(&original).unwrap()), writer);
    assert_eq!(recorder.id(), "replay");

    let (first, streamed) = chat_collect(&recorder, &request("one")).await;
    assert_eq!(first.unwrap().text, "first answer");
    assert_eq!(streamed, "first answer");
    // Each exchange is on disk as soon as its call returns.
    assert_eq!(read_cassette(&recorded_path).unwrap().len(), 1);
    // A failed call is not recorded.
    assert!(recorder.chat(&request("three"), &|_| {}).await.is_err());
    recorder.chat(&request("two"), &|_| {}).await.unwrap();

    let lines = read_cassette(&recorded_path).unwrap();
    assert_eq!(
        lines,
        vec![
            Exchange {
                digest: request("one").digest(),
                request: request("one"),
                response: response("first answer")
            },
            Exchange {
                digest: request("two").digest(),
                request: request("two"),
                response: response("second answer")
            },
        ]
    );
    let replay = ReplayProvider::open(&recorded_path).unwrap();
    assert_eq!(
        replay.chat(&request("two"), &|_| {}).await.unwrap().text,
        "second answer"
    );
    assert_eq!(
        replay.chat(&request("one"), &|_| {}).await.unwrap().text,
        "first answer"
    );
}

#[tokio::test]
async fn a_second_recorder_appends_to_an_existing_cassette() {
    let dir = tempfile::tempdir().unwrap();
    let original = hand_written(
        dir.path(),
        &[
            (request("one"), response("1")),
            (request("two"), response("2")),
        ],
    );
    let path = dir.path().join("rec.jsonl");
    for question in ["one", "two"] {
        let writer = Arc::new(CassetteWriter::open(&path).unwrap());
        let recorder =
            RecordingProvider::new(Arc::new(ReplayProvider::open(&original).unwrap()), writer);
        recorder.chat(&request(question), &|_| {}).await.unwrap();
    }
    assert_eq!(read_cassette(&path).unwrap().len(), 2);
}

#[test]
fn a_malformed_line_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = hand_written(dir.path(), &[(request("Q"), response("A"))]);
    let mut text = std::fs::read_to_string(&good).unwrap();
    text.push('\n');
    text.push_str("{\"digest\": \"abc\", \"request\": 3}\n");
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, text).unwrap();
    let err = ReplayProvider::open(&path).unwrap_err().to_string();
    assert!(err.contains(&format!("{}:3:", path.display())), "{err}");
    assert!(err.contains("expected a JSON object"), "{err}");
}

#[test]
fn an_edited_request_no_longer_matching_its_digest_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = hand_written(dir.path(), &[(request("Q"), response("A"))]);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"Q\"", "\"Q edited\"");
    std::fs::write(&path, text).unwrap();
    let err = ReplayProvider::open(&path).unwrap_err().to_string();
    assert!(
        err.contains(":1:") && err.contains("does not match its request"),
        "{err}"
    );
}

#[test]
fn a_missing_cassette_is_reported_with_its_path() {
    let err = ReplayProvider::open("/nonexistent/cassette.jsonl")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/cassette.jsonl"), "{err}");
}
