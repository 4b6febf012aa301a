//! The process's limits: with one step slot, a second run's step queues (and says so in its
//! log) until the first run's step lets go, then both finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use botarmy_llm::{ChatRequest, ChatResponse, FinishReason, LlmError, Provider, Router, TokenSink};
use botarmy_protocol::{Event, LiveEvent, RunStatus, Usage};
use botarmy_runtime::{Limits, Runtime, Settings};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::support::request;

/// Answers at once, except the very first call, which waits to be released.
struct Held {
    first: AtomicBool,
    release: Notify,
}

#[async_trait]
impl Provider for Held {
    fn id(&self) -> &str {
        "held"
    }
    fn default_model(&self) -> &str {
        "held-1"
    }
    async fn chat(
        &self,
        request: &ChatRequest,
        _: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        if self.first.swap(false, Ordering::SeqCst) {
            self.release.notified().await;
        }
        let text = if request.grammar.is_some() {
            "yes"
        } else {
            "## Overview\n\nDone.\n"
        };
        Ok(ChatResponse {
            text: text.into(),
            usage: Usage::default(),
            provider: "held".into(),
            model: "held-1".into(),
            finish: FinishReason::Stop,
            tool_calls: Vec::new(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_queues_for_the_only_step_slot_and_both_finish() {
    let dir = tempfile::tempdir().unwrap();
    let store = botarmy_store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let model = Arc::new(Held {
        first: AtomicBool::new(true),
        release: Notify::new(),
    });
    let runtime = Arc::new(Runtime::new(
        store,
        Arc::new(Router::new(model.clone())),
        Settings {
            out_root: dir.path().join("out"),
            limits: Limits {
                steps: 1,
                ..Limits::default()
            },
            ..Settings::default()
        },
    ));
    let mut live = runtime.subscribe();
    let start = |rt: Arc<Runtime>| {
        tokio::spawn(async move {
            rt.start_run("demo", request("an idea"), |_| {}, CancellationToken::new())
                .await
                .unwrap()
        })
    };
    let first = start(runtime.clone());
    let second = start(runtime.clone());
    // The first run's step holds the slot; the other run's first step must queue.
    let queued_run = loop {
        match &*live.recv().await.unwrap() {
            LiveEvent::Event(record) => {
                if let Event::StepQueued { resource, .. } = &record.event {
                    assert_eq!(resource, "step");
                    break record.run_id;
                }
            }
            LiveEvent::Token { .. } => {}
        }
    };
    let queued = runtime.load(queued_run).await.unwrap();
    let waiting: Vec<_> = queued
        .steps
        .iter()
        .filter_map(|s| s.queued.clone())
        .collect();
    // (Its discovery steps run in parallel: each of them queues.)
    assert!(
        !waiting.is_empty() && waiting.iter().all(|w| w == "step"),
        "queued steps show what they wait for: {waiting:?}"
    );
    model.release.notify_one();
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    for state in [a, b] {
        assert_eq!(state.status, RunStatus::Succeeded, "{:?}", state.error);
        assert!(state.steps.iter().all(|s| s.queued.is_none()));
    }
}
