//! An instant provider and a runtime over a fresh SQLite file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use botarmy_llm::{ChatRequest, ChatResponse, FinishReason, LlmError, Provider, Router, TokenSink};
use botarmy_protocol::{RunOptions, RunRequest, Usage};
use botarmy_runtime::{Runtime, Settings};

/// Answers every request at once with a short document, and counts the calls.
#[derive(Default)]
pub struct Instant {
    pub calls: AtomicU64,
}

#[async_trait]
impl Provider for Instant {
    fn id(&self) -> &str {
        "instant"
    }
    fn default_model(&self) -> &str {
        "instant-1"
    }
    async fn chat(
        &self,
        request: &ChatRequest,
        on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // Conditions are asked with a yes/no grammar.
        let text = if request.grammar.is_some() {
            "yes"
        } else {
            "## Overview\n\nA short answer.\n"
        };
        on_token(text);
        Ok(ChatResponse {
            text: text.into(),
            usage: Usage {
                input_tokens: 100,
                output_tokens: 10,
                ..Usage::default()
            },
            provider: "instant".into(),
            model: request.model.clone(),
            finish: FinishReason::Stop,
            tool_calls: Vec::new(),
        })
    }
}

pub struct Ctx {
    pub runtime: Runtime,
    pub provider: Arc<Instant>,
    pub dir: tempfile::TempDir,
}

pub async fn runtime() -> Ctx {
    runtime_with(|r| r).await
}

/// A runtime whose router is adjusted by `adjust` (pricing, policies).
pub async fn runtime_with(adjust: impl FnOnce(Router) -> Router) -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let store = botarmy_store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let provider = Arc::new(Instant::default());
    let router = adjust(Router::new(provider.clone()));
    let runtime = Runtime::new(
        store,
        Arc::new(router),
        Settings {
            out_root: dir.path().join("out"),
            ..Settings::default()
        },
    );
    Ctx {
        runtime,
        provider,
        dir,
    }
}

pub fn request(idea: &str) -> RunRequest {
    RunRequest {
        idea: idea.into(),
        workflow: "sdlc".into(),
        method: "builtin".into(),
        // These tests are about other things; gates have tests of their own.
        options: RunOptions {
            gate_policy: Some(botarmy_protocol::GatePolicy::Auto),
            ..RunOptions::default()
        },
    }
}
