//! The router's own cost per call: failover chain lookup, circuit breaker, rate limiter,
//! retry bookkeeping, the attempt report and pricing, measured around a provider that
//! answers at once (so no network and no model is in the figure). Each call is timed
//! through the router and straight at the provider; the overhead is the difference of the
//! medians.
//!
//! `cargo bench -p botarmy-llm --bench router [-- CALLS]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use botarmy_llm::resilience::RateLimits;
use botarmy_llm::{
    Attempt, ChatMessage, ChatRequest, ChatResponse, FinishReason, LlmError, PriceTable, Provider,
    ProviderPolicy, Route, Router, TokenSink,
};
use botarmy_protocol::Usage;

struct Instant0 {
    id: &'static str,
}

#[async_trait]
impl Provider for Instant0 {
    fn id(&self) -> &str {
        self.id
    }
    fn default_model(&self) -> &str {
        "gpt-4.1-mini"
    }
    async fn chat(
        &self,
        r: &ChatRequest,
        on_token: TokenSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        on_token("ok");
        Ok(ChatResponse {
            text: "ok".into(),
            usage: Usage {
                input_tokens: 1_200,
                output_tokens: 300,
                cached_tokens: 200,
                ..Usage::default()
            },
            provider: self.id.into(),
            model: r.model.clone(),
            finish: FinishReason::Stop,
            tool_calls: Vec::new(),
        })
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let calls: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let primary: Arc<dyn Provider> = Arc::new(Instant0 { id: "openai" });
    let backup: Arc<dyn Provider> = Arc::new(Instant0 { id: "anthropic" });
    let generous = ProviderPolicy {
        limits: RateLimits {
            requests_per_minute: Some(u32::MAX),
            tokens_per_minute: Some(u32::MAX),
        },
        ..ProviderPolicy::default()
    };
    let router = Router::new(Arc::clone(&primary))
        .with_agent_chain(
            "coder",
            vec![
                Route::new(Arc::clone(&primary), "gpt-4.1-mini"),
                Route::new(backup, "claude-sonnet-4-5"),
            ],
        )
        .with_policy("openai", generous)
        .with_policy("anthropic", generous)
        .with_pricing(PriceTable::builtin());
    let request = ChatRequest {
        model: "gpt-4.1-mini".into(),
        messages: vec![
            ChatMessage::system("You are the coder."),
            ChatMessage::user("x".repeat(4_000)),
        ],
        max_tokens: 768,
        ..ChatRequest::default()
    };
    let attempts = AtomicU64::new(0);
    let on_attempt = |_: &Attempt<'_>| {
        attempts.fetch_add(1, Ordering::Relaxed);
    };
    rt.block_on(async {
        // Warm up.
        for _ in 0..1_000 {
            router.chat("coder", &request, &|_| {}, &on_attempt).await.unwrap();
            primary.chat(&request, &|_| {}).await.unwrap();
        }
        let mut through = Vec::with_capacity(calls);
        let mut direct = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            let r = router.chat("coder", &request, &|_| {}, &on_attempt).await.unwrap();
            through.push(t.elapsed());
            assert!(r.usage.cost_usd > 0.0);
            let t = Instant::now();
            primary.chat(&request, &|_| {}).await.unwrap();
            direct.push(t.elapsed());
        }
        let (t, d) = (median(through), median(direct));
        println!(
            "router: {calls} calls; median {:.2} µs through the router, {:.2} µs straight to the provider: overhead {:.2} µs per call",
            t.as_secs_f64() * 1e6,
            d.as_secs_f64() * 1e6,
            (t.saturating_sub(d)).as_secs_f64() * 1e6
        );
    });
    assert!(attempts.load(Ordering::Relaxed) as usize >= calls);
}
