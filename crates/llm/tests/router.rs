//! The router: a default route, per-agent overrides, and wrapping every provider.

use std::sync::Arc;

use botarmy_llm::{
    CassetteWriter, LocalModelConfig, LocalProvider, Provider, RecordingProvider, ReplayProvider,
    Router,
};

fn replay(dir: &std::path::Path) -> Arc<dyn Provider> {
    let path = dir.join("empty.jsonl");
    std::fs::write(&path, "").unwrap();
    Arc::new(ReplayProvider::open(&path).unwrap())
}

#[test]
fn agents_without_an_override_get_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Provider> = Arc::new(LocalProvider::new(
        LocalModelConfig::new(dir.path().join("m.gguf")).with_name("smollm2-135m-instruct"),
    ));
    let router = Router::new(Arc::clone(&local)).with_agent("architect", replay(dir.path()), "");

    let (provider, model) = router.for_agent("analyst");
    assert_eq!(
        (provider.id(), model.as_str()),
        ("local", "smollm2-135m-instruct")
    );
    let (provider, model) = router.for_agent("architect");
    assert_eq!((provider.id(), model.as_str()), ("replay", "replay"));
}

#[test]
fn an_override_can_name_its_model() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(replay(dir.path()))
        .with_default_model("base")
        .with_agent("coder", replay(dir.path()), "big-model");
    assert_eq!(router.for_agent("coder").1, "big-model");
    assert_eq!(router.for_agent("tester").1, "base");
    assert_eq!(format!("{:?}", router.route("coder")), "replay/big-model");
}

#[test]
fn wrapping_providers_keeps_models_and_wraps_a_shared_provider_once() {
    let dir = tempfile::tempdir().unwrap();
    let shared = replay(dir.path());
    let router = Router::new(Arc::clone(&shared))
        .with_agent("coder", Arc::clone(&shared), "m1")
        .with_agent("tester", replay(dir.path()), "m2");
    let writer = Arc::new(CassetteWriter::open(dir.path().join("rec.jsonl")).unwrap());
    let mut wrapped = 0;
    let router = router.map_providers(|inner| {
        wrapped += 1;
        Arc::new(RecordingProvider::new(inner, Arc::clone(&writer)))
    });
    assert_eq!(wrapped, 2);
    assert!(Arc::ptr_eq(
        &router.for_agent("coder").0,
        &router.for_agent("analyst").0
    ));
    assert_eq!(router.for_agent("coder").1, "m1");
    assert_eq!(router.for_agent("tester").1, "m2");
    assert_eq!(router.for_agent("tester").0.id(), "replay");
}

// ---- Resilience: retries, failover, circuit breaker, rate limits ----

mod resilience {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use botarmy_llm::resilience::{BreakerConfig, RateLimits, RetryPolicy};
    use botarmy_llm::{
        Attempt, ChatMessage, ChatRequest, ChatResponse, FinishReason, LlmError, NextStep,
        Provider, ProviderPolicy, Route, Router, TokenSink,
    };
    use botarmy_protocol::Usage;
    use tokio::time::Instant;

    /// One scripted answer: a text, or the error made for the provider id.
    type Step = Result<&'static str, fn(&str) -> LlmError>;

    /// Answers from a script, one entry per call; `Ok` answers once the script is empty.
    struct Scripted {
        id: String,
        script: Mutex<VecDeque<Step>>,
        models: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(id: &str, script: Vec<Step>) -> Arc<Self> {
            Arc::new(Self {
                id: id.into(),
                script: Mutex::new(script.into()),
                models: Mutex::new(Vec::new()),
            })
        }
        fn calls(&self) -> usize {
            self.models.lock().unwrap().len()
        }
    }

    #[async_trait]
    impl Provider for Scripted {
        fn id(&self) -> &str {
            &self.id
        }
        fn default_model(&self) -> &str {
            "m0"
        }
        async fn chat(
            &self,
            request: &ChatRequest,
            on_token: TokenSink<'_>,
        ) -> Result<ChatResponse, LlmError> {
            self.models.lock().unwrap().push(request.model.clone());
            let next = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok("fine"));
            let text = next.map_err(|make| make(&self.id))?;
            on_token(text);
            Ok(ChatResponse {
                text: text.into(),
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 2,
                    ..Usage::default()
                },
                provider: self.id.clone(),
                model: request.model.clone(),
                finish: FinishReason::Stop,
                tool_calls: Vec::new(),
            })
        }
    }

    fn unavailable(p: &str) -> LlmError {
        LlmError::Http {
            provider: p.into(),
            status: 503,
            message: "overloaded".into(),
            retry_after: None,
        }
    }
    fn server_error(p: &str) -> LlmError {
        LlmError::Http {
            provider: p.into(),
            status: 500,
            message: "boom".into(),
            retry_after: None,
        }
    }
    fn rate_limited(p: &str) -> LlmError {
        LlmError::RateLimited {
            provider: p.into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    }
    fn bad_key(p: &str) -> LlmError {
        LlmError::Unauthorized {
            provider: p.into(),
            status: 401,
            message: "invalid x-api-key".into(),
        }
    }

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::user("hello")],
            max_tokens: 100,
            ..ChatRequest::default()
        }
    }

    fn policy(max_retries: u32) -> ProviderPolicy {
        ProviderPolicy {
            retry: RetryPolicy {
                max_retries,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
                max_retry_after: Duration::from_secs(60),
            },
            ..ProviderPolicy::default()
        }
    }

    /// (provider, model, ok, next) of every attempt.
    type Log = Mutex<Vec<(String, String, bool, NextStep)>>;

    async fn call(router: &Router, agent: &str, log: &Log) -> Result<ChatResponse, LlmError> {
        let on_attempt = |a: &Attempt<'_>| {
            log.lock().unwrap().push((
                a.provider.to_string(),
                a.model.to_string(),
                a.result.is_ok(),
                a.next,
            ))
        };
        router.chat(agent, &request(), &|_| {}, &on_attempt).await
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_with_backoff() {
        let a = Scripted::new("a", vec![Err(unavailable), Err(server_error)]);
        let router = Router::new(a.clone()).with_policy("a", policy(3));
        let log = Log::default();
        let t0 = Instant::now();
        let answer = call(&router, "coder", &log).await.unwrap();
        assert_eq!(answer.text, "fine");
        let log = log.into_inner().unwrap();
        assert_eq!(log.len(), 3);
        assert!(
            matches!(log[0].3, NextStep::Retry(d) if d >= Duration::from_millis(50) && d <= Duration::from_millis(100))
        );
        assert!(
            matches!(log[1].3, NextStep::Retry(d) if d >= Duration::from_millis(100) && d <= Duration::from_millis(200))
        );
        assert_eq!(log[2].3, NextStep::Done);
        assert!(t0.elapsed() >= Duration::from_millis(150));
        assert_eq!(a.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let a = Scripted::new("a", vec![Err(rate_limited)]);
        let router = Router::new(a.clone()).with_policy("a", policy(2));
        let log = Log::default();
        let t0 = Instant::now();
        call(&router, "coder", &log).await.unwrap();
        assert!(t0.elapsed() >= Duration::from_secs(7), "{:?}", t0.elapsed());
        assert!(
            matches!(log.lock().unwrap()[0].3, NextStep::Retry(d) if d >= Duration::from_secs(7))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wrong_key_is_not_retried_but_failed_over() {
        let a = Scripted::new("a", vec![Err(bad_key), Err(bad_key)]);
        let b = Scripted::new("b", vec![]);
        let router = Router::new(a.clone())
            .with_agent_chain(
                "architect",
                vec![Route::new(a.clone(), "big"), Route::new(b.clone(), "other")],
            )
            .with_policy("a", policy(5));
        let log = Log::default();
        let answer = call(&router, "architect", &log).await.unwrap();
        assert_eq!(
            (answer.provider.as_str(), answer.model.as_str()),
            ("b", "other")
        );
        assert_eq!(
            log.into_inner().unwrap(),
            vec![
                ("a".into(), "big".into(), false, NextStep::Failover),
                ("b".into(), "other".into(), true, NextStep::Done),
            ]
        );
        assert_eq!(a.calls(), 1, "401 is never retried");
        // The model sent is each route's own.
        assert_eq!(*a.models.lock().unwrap(), vec!["big".to_string()]);
        // An agent without a chain of its own fails with the last error.
        let log = Log::default();
        let err = call(&router, "coder", &log).await.unwrap_err();
        assert!(
            matches!(err, LlmError::Unauthorized { status: 401, .. }),
            "{err}"
        );
        assert_eq!(log.lock().unwrap()[0].3, NextStep::GiveUp);
    }

    #[tokio::test(start_paused = true)]
    async fn spent_retries_fail_over_and_an_open_circuit_is_skipped() {
        let a = Scripted::new("a", vec![Err(server_error); 10]);
        let b = Scripted::new("b", vec![]);
        let router = Router::new(a.clone())
            .with_default_chain(vec![Route::new(a.clone(), ""), Route::new(b.clone(), "")])
            .with_policy(
                "a",
                ProviderPolicy {
                    breaker: BreakerConfig {
                        failures: 3,
                        cooldown_secs: 60,
                    },
                    ..policy(5)
                },
            );
        let log = Log::default();
        let answer = call(&router, "tester", &log).await.unwrap();
        assert_eq!(answer.provider, "b");
        // Three failures open the breaker: no more retries on a.
        assert_eq!(a.calls(), 3);
        assert_eq!(log.lock().unwrap()[2].3, NextStep::Failover);
        assert!(router.circuit_open_for("a").is_some());

        // While open, a is skipped without being called.
        let log = Log::default();
        call(&router, "tester", &log).await.unwrap();
        assert_eq!(a.calls(), 3);
        let first = log.lock().unwrap()[0].clone();
        assert_eq!(
            (first.0.as_str(), first.2, first.3),
            ("a", false, NextStep::Failover)
        );

        // After the cool-down one trial goes to a; it fails again and re-opens at once.
        tokio::time::advance(Duration::from_secs(61)).await;
        let log = Log::default();
        call(&router, "tester", &log).await.unwrap();
        assert_eq!(a.calls(), 4);
        assert_eq!(log.lock().unwrap()[0].3, NextStep::Failover);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_are_shared_by_every_caller() {
        let a = Scripted::new("a", vec![]);
        let router = Arc::new(Router::new(a.clone()).with_policy(
            "a",
            ProviderPolicy {
                limits: RateLimits {
                    requests_per_minute: Some(2),
                    tokens_per_minute: None,
                },
                ..policy(0)
            },
        ));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for agent in ["analyst", "coder", "tester"] {
            let router = router.clone();
            tasks.push(tokio::spawn(async move {
                let log = Log::default();
                call(&router, agent, &log).await.unwrap();
                Instant::now()
            }));
        }
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.unwrap() - t0);
        }
        done.sort();
        assert!(done[1] < Duration::from_secs(1), "{done:?}");
        // The third request waits for the bucket: 2 per minute is one every 30 s.
        assert!(done[2] >= Duration::from_secs(30), "{done:?}");
        assert_eq!(a.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_asking_for_too_long_a_wait_is_failed_over() {
        fn slow_down(p: &str) -> LlmError {
            LlmError::RateLimited {
                provider: p.into(),
                retry_after: Some(Duration::from_secs(3_600)),
            }
        }
        let a = Scripted::new("a", vec![Err(slow_down)]);
        let b = Scripted::new("b", vec![]);
        let router = Router::new(a.clone())
            .with_default_chain(vec![Route::new(a.clone(), ""), Route::new(b.clone(), "")])
            .with_policy("a", policy(3));
        let log = Log::default();
        let t0 = Instant::now();
        assert_eq!(call(&router, "x", &log).await.unwrap().provider, "b");
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
}
