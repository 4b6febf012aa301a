//! The embedded model, for real: SmolLM2-135M-Instruct through llama.cpp. The model file's
//! path comes from `BOTARMY_TEST_MODEL`; without it these tests fail (they are never skipped).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use botarmy_llm::{
    CassetteWriter, ChatMessage, ChatRequest, ChatResponse, FinishReason, LlmError,
    LocalModelConfig, LocalProvider, Provider, RecordingProvider, ReplayProvider,
};

fn model_path() -> PathBuf {
    match std::env::var_os("BOTARMY_TEST_MODEL") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "BOTARMY_TEST_MODEL is not set. These tests need the embedded model: fetch it with \
             `cargo run -p botarmy-llm --example pull -- /tmp/botarmy-models` (or `botarmy model pull`) and run \
             `BOTARMY_TEST_MODEL=/tmp/botarmy-models/SmolLM2-135M-Instruct.Q4_1.gguf cargo test -p botarmy-llm`"
        ),
    }
}

/// One provider for the whole test binary: the model is loaded once, and generations take
/// turns (two at once would share the two cores and slow both down).
fn shared() -> &'static Arc<LocalProvider> {
    static LOCAL: OnceLock<Arc<LocalProvider>> = OnceLock::new();
    LOCAL.get_or_init(|| {
        Arc::new(LocalProvider::new(
            LocalModelConfig::new(model_path()).with_name("smollm2-135m-instruct"),
        ))
    })
}

fn local() -> &'static LocalProvider {
    shared()
}

fn ask(question: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        model: String::new(),
        messages: vec![
            ChatMessage::system("You are a concise assistant."),
            ChatMessage::user(question),
        ],
        max_tokens,
        temperature: 0.7,
        seed: 42,
        stop: vec![],
        grammar: None,
        tools: vec![],
    }
}

async fn chat(provider: &dyn Provider, request: &ChatRequest) -> (ChatResponse, Vec<String>) {
    let pieces = Mutex::new(Vec::new());
    let response = provider
        .chat(request, &|piece| {
            pieces.lock().unwrap().push(piece.to_owned())
        })
        .await
        .unwrap();
    (response, pieces.into_inner().unwrap())
}

#[tokio::test]
async fn a_chat_streams_its_text_with_exact_usage() {
    let request = ask("Name three colours of the rainbow.", 48);
    let (response, pieces) = chat(local(), &request).await;
    assert!(!response.text.trim().is_empty(), "{response:?}");
    assert!(pieces.len() > 3, "{pieces:?}");
    assert_eq!(pieces.concat(), response.text);
    assert_eq!(
        (response.provider.as_str(), response.model.as_str()),
        ("local", "smollm2-135m-instruct")
    );
    assert_eq!(response.usage.calls, 1);
    assert!(response.usage.output_tokens >= 1 && response.usage.output_tokens <= 48);

    // The prompt is the model's ChatML template, and usage counts exactly its tokens.
    let prompt = local().render_prompt(&request.messages).await.unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a concise assistant.<|im_end|>\n<|im_start|>user\nName three colours of the rainbow.<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        response.usage.input_tokens,
        local().count_tokens(&prompt).await.unwrap()
    );
    // <|im_start|> and <|im_end|> are single special tokens, not spelled out.
    assert_eq!(
        local()
            .count_tokens("<|im_start|><|im_end|>")
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn the_models_own_template_adds_its_default_system_prompt() {
    let prompt = local()
        .render_prompt(&[ChatMessage::user("Hi")])
        .await
        .unwrap();
    assert!(
        prompt.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"),
        "{prompt}"
    );
    assert!(
        prompt.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        "{prompt}"
    );
}

#[tokio::test]
async fn max_tokens_is_honoured() {
    let mut request = ask("Write a long story about a dragon who learns to code.", 7);
    request.temperature = 0.0;
    let (response, _) = chat(local(), &request).await;
    assert_eq!(response.finish, FinishReason::Length);
    assert_eq!(response.usage.output_tokens, 7);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_answer() {
    let mut request = ask("Tell me something about the sea.", 24);
    request.temperature = 1.0;
    let first = chat(local(), &request).await.0.text;
    let second = chat(local(), &request).await.0.text;
    assert_eq!(first, second);
    let mut differ = false;
    for seed in [1, 2, 3] {
        request.seed = seed;
        differ |= chat(local(), &request).await.0.text != first;
    }
    assert!(differ, "three other seeds all gave {first:?}");
}

#[tokio::test]
async fn a_yes_no_grammar_constrains_the_answer() {
    for seed in 0..4 {
        let mut request = ask("Is the sky green? Answer yes or no.", 8);
        request.grammar = Some("root ::= \"yes\" | \"no\"".to_owned());
        request.temperature = 1.0;
        request.seed = seed;
        let (response, pieces) = chat(local(), &request).await;
        assert!(
            response.text == "yes" || response.text == "no",
            "{response:?}"
        );
        assert_eq!(pieces.concat(), response.text);
        assert_eq!(response.finish, FinishReason::Stop);
    }
}

#[tokio::test]
async fn a_json_grammar_keeps_structured_output_parseable() {
    let grammar = r#"
root   ::= "{" ws "\"title\"" ws ":" ws string ws "," ws "\"done\"" ws ":" ws ("true" | "false") ws "}"
string ::= "\"" [a-zA-Z0-9 ,.]{1,40} "\""
ws     ::= [ \n]{0,2}
"#;
    for seed in 0..3 {
        let mut request = ask(
            "Describe one task as JSON with a title and whether it is done.",
            80,
        );
        request.grammar = Some(grammar.to_owned());
        request.seed = seed;
        let (response, _) = chat(local(), &request).await;
        let value: serde_json::Value = serde_json::from_str(&response.text)
            .unwrap_or_else(|e| panic!("{e}: {:?}", response.text));
        assert!(
            value["title"].is_string() && value["done"].is_boolean(),
            "{value}"
        );
    }
}

#[tokio::test]
async fn an_invalid_grammar_is_a_clear_error() {
    let mut request = ask("Hi", 4);
    request.grammar = Some("this is not gbnf".to_owned());
    let err = local().chat(&request, &|_| {}).await.unwrap_err();
    assert!(err.to_string().contains("GBNF grammar is invalid"), "{err}");
}

#[tokio::test]
async fn a_stop_string_ends_the_answer_before_it() {
    // Greedy decoding makes the same tokens up to the stop string, so the stopped answer is
    // the free answer cut where the stop string first appears.
    let mut request = ask("Explain what a compiler does.", 48);
    request.temperature = 0.0;
    let (free, _) = chat(local(), &request).await;
    let Some(word) = free.text.split(' ').skip(3).find(|w| !w.is_empty()) else {
        panic!("too short: {:?}", free.text)
    };
    let stop = format!(" {word}");
    let cut = free.text.find(&stop).unwrap();
    request.stop = vec!["never appears \u{1f980}".to_owned(), stop];
    let (stopped, pieces) = chat(local(), &request).await;
    assert_eq!(stopped.text, free.text[..cut]);
    assert_eq!(pieces.concat(), stopped.text);
    assert_eq!(stopped.finish, FinishReason::Stop);
}

#[tokio::test]
async fn a_prompt_longer_than_the_context_is_refused() {
    let small = LocalProvider::new(LocalModelConfig {
        context_cap: 64,
        ..LocalModelConfig::new(model_path())
    });
    let request = ask(&"word ".repeat(100), 8);
    match small.chat(&request, &|_| {}).await {
        Err(LlmError::ContextTooLong {
            prompt_tokens,
            context,
            ..
        }) => {
            assert_eq!(context, 64);
            assert!(prompt_tokens > 100, "{prompt_tokens}");
        }
        other => panic!("expected ContextTooLong, got {other:?}"),
    }
}

#[tokio::test]
async fn another_model_name_is_refused() {
    let mut request = ask("Hi", 4);
    request.model = "gpt-4o".to_owned();
    let err = local()
        .chat(&request, &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gpt-4o") && err.contains("smollm2-135m-instruct"),
        "{err}"
    );
}

#[tokio::test]
async fn dropping_a_chat_stops_its_generation() {
    // A long generation is abandoned after its first piece; the next chat must not wait for
    // it to run to its 4000 tokens (which would take over a minute here).
    let mut long = ask(
        "Write a very long essay about the history of computing.",
        4000,
    );
    long.temperature = 1.0;
    let pieces = Arc::new(AtomicUsize::new(0));
    let (first_piece, got_first) = tokio::sync::oneshot::channel::<()>();
    let first_piece = Mutex::new(Some(first_piece));
    let counter = Arc::clone(&pieces);
    let task = tokio::spawn(async move {
        local()
            .chat(&long, &|_| {
                counter.fetch_add(1, Ordering::Relaxed);
                if let Some(tx) = first_piece.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            })
            .await
    });
    got_first.await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    let next = tokio::time::timeout(Duration::from_secs(30), chat(local(), &ask("Say hi.", 4)))
        .await
        .expect("the abandoned generation kept the model busy");
    assert!(next.0.usage.output_tokens <= 4);
    assert!(pieces.load(Ordering::Relaxed) < 4000);
}

#[tokio::test]
async fn a_recorded_local_run_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let writer = Arc::new(CassetteWriter::open(&path).unwrap());
    let local_arc: Arc<dyn Provider> = shared().clone();
    let recorder = RecordingProvider::new(local_arc, writer);
    let requests = [
        ask("What is a unit test?", 24),
        ask("What is a deployment?", 24),
    ];
    let mut live = Vec::new();
    for request in &requests {
        live.push(chat(&recorder, request).await.0);
    }
    let replay = ReplayProvider::open(&path).unwrap();
    for (request, expected) in requests.iter().zip(&live) {
        let (replayed, pieces) = chat(&replay, request).await;
        assert_eq!(&replayed, expected);
        assert_eq!(pieces.concat(), expected.text);
    }
}
