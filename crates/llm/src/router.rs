//! Which provider and model answer for each agent, and how a call survives failures.
//!
//! Every agent has a *chain* of routes: its provider/model first, then its failover list.
//! [`Router::chat`] walks the chain: each route is tried with retries and backoff (honouring
//! `retry-after`) under its provider's rate limits; a provider whose circuit breaker is open
//! is skipped; after the retries are spent, or on an error retrying cannot fix (a wrong key,
//! a bad request), the next route is tried. Every attempt is reported to the caller, who
//! records it. Limits and breakers belong to the provider, so every run in the process
//! shares them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::resilience::{BreakerConfig, CircuitBreaker, RateLimiter, RateLimits, RetryPolicy};
use crate::{ChatRequest, ChatResponse, LlmError, PriceTable, Provider, TokenSink};

/// A provider and the model to ask it for.
#[derive(Clone)]
pub struct Route {
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// The model name sent in requests.
    pub model: String,
}

impl Route {
    /// `provider` with `model` (empty: the provider's default model).
    pub fn new(provider: Arc<dyn Provider>, model: impl Into<String>) -> Self {
        let mut model = model.into();
        if model.is_empty() {
            model = provider.default_model().to_owned();
        }
        Self { provider, model }
    }

    /// `provider` with its default model.
    pub fn default_for(provider: Arc<dyn Provider>) -> Self {
        Self::new(provider, "")
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider.id(), self.model)
    }
}

/// How calls to one provider are paced and retried.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProviderPolicy {
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// Requests and tokens per minute.
    pub limits: RateLimits,
    /// When the provider is considered down.
    pub breaker: BreakerConfig,
}

/// What happens after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// The attempt succeeded; the call is over.
    Done,
    /// The same route is tried again after this wait.
    Retry(Duration),
    /// The next route of the chain is tried.
    Failover,
    /// Nothing is left to try; the call fails with this attempt's error.
    GiveUp,
}

/// One attempt of a call, as reported to the caller.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// Provider asked.
    pub provider: &'a str,
    /// Model asked.
    pub model: &'a str,
    /// Wall time of the attempt (zero when the provider was skipped).
    pub latency: Duration,
    /// The answer, or why there is none.
    pub result: Result<&'a ChatResponse, &'a LlmError>,
    /// What the router does next.
    pub next: NextStep,
}

/// Receives every attempt of a call, in order.
pub type AttemptSink<'a> = &'a (dyn Fn(&Attempt<'_>) + Send + Sync);

/// Limits and breaker of one provider, shared by every call to it.
#[derive(Debug)]
struct Guard {
    policy: ProviderPolicy,
    limiter: RateLimiter,
    breaker: CircuitBreaker,
}

impl Guard {
    fn new(policy: ProviderPolicy) -> Self {
        Self {
            policy,
            limiter: RateLimiter::new(policy.limits, Instant::now()),
            breaker: CircuitBreaker::new(policy.breaker),
        }
    }
}

/// Maps agent ids to route chains and makes calls along them.
pub struct Router {
    default: Vec<Route>,
    agents: HashMap<String, Vec<Route>>,
    policies: HashMap<String, ProviderPolicy>,
    guards: Mutex<HashMap<String, Arc<Guard>>>,
    pricing: Option<Arc<PriceTable>>,
    on_warning: Option<WarningSink>,
}

/// Where the router's warnings go.
type WarningSink = Arc<dyn Fn(&str) + Send + Sync>;

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("default", &self.default)
            .field("agents", &self.agents)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl Clone for Router {
    /// The routes and policies; limits and breakers start afresh.
    fn clone(&self) -> Self {
        Self {
            default: self.default.clone(),
            agents: self.agents.clone(),
            policies: self.policies.clone(),
            guards: Mutex::default(),
            pricing: self.pricing.clone(),
            on_warning: self.on_warning.clone(),
        }
    }
}

impl Router {
    /// Every agent uses `provider` with its default model.
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        Self {
            default: vec![Route::default_for(provider)],
            agents: HashMap::new(),
            policies: HashMap::new(),
            guards: Mutex::default(),
            pricing: None,
            on_warning: None,
        }
    }

    /// Answers are priced with `table` (their `usage.cost_usd`); without a table every call
    /// costs zero.
    pub fn with_pricing(mut self, table: PriceTable) -> Self {
        self.pricing = Some(Arc::new(table));
        self
    }

    /// Where warnings go (a model without a price, once per model).
    pub fn with_warnings(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_warning = Some(Arc::new(sink));
        self
    }

    /// What a call of `agent` may use at most: its prompt (estimated) plus its whole output
    /// cap, in tokens, and in dollars on the dearest route of the agent's chain (failover may
    /// land there). Unpriced routes count as free.
    pub fn estimate(&self, agent: &str, request: &ChatRequest) -> (u64, f64) {
        let tokens = estimate_tokens(request);
        let output = u64::from(request.max_tokens);
        let usage = botarmy_protocol::Usage {
            input_tokens: tokens.saturating_sub(output),
            output_tokens: output,
            ..botarmy_protocol::Usage::default()
        };
        let usd = match &self.pricing {
            None => 0.0,
            Some(table) => self
                .chain(agent)
                .iter()
                .map(|r| match table.lookup(r.provider.id(), &r.model) {
                    crate::PriceLookup::Priced(price) => price.cost(&usage),
                    _ => 0.0,
                })
                .fold(0.0, f64::max),
        };
        (tokens, usd)
    }

    /// The cost of `usage` on `provider`/`model` (zero without a price).
    pub fn price(&self, provider: &str, model: &str, usage: &botarmy_protocol::Usage) -> f64 {
        let Some(table) = &self.pricing else {
            return 0.0;
        };
        let (cost, warning) = table.cost_or_warn(provider, model, usage);
        if let (Some(w), Some(sink)) = (warning, &self.on_warning) {
            sink(&w);
        }
        cost
    }

    /// The default route is its provider with `model`.
    pub fn with_default_model(mut self, model: impl Into<String>) -> Self {
        if let Some(first) = self.default.first_mut() {
            first.model = model.into();
        }
        self
    }

    /// Agents without their own chain use `chain` (first route first). An empty chain is
    /// ignored.
    pub fn with_default_chain(mut self, chain: Vec<Route>) -> Self {
        if !chain.is_empty() {
            self.default = chain;
        }
        self
    }

    /// Agent `agent` uses `provider` with `model` (empty: the provider's default model).
    pub fn with_agent(
        self,
        agent: impl Into<String>,
        provider: Arc<dyn Provider>,
        model: impl Into<String>,
    ) -> Self {
        self.with_agent_chain(agent, vec![Route::new(provider, model)])
    }

    /// Agent `agent` uses `chain`: its route, then its failovers in order. An empty chain
    /// is ignored.
    pub fn with_agent_chain(mut self, agent: impl Into<String>, chain: Vec<Route>) -> Self {
        if !chain.is_empty() {
            self.agents.insert(agent.into(), chain);
        }
        self
    }

    /// Calls to the provider `provider_id` follow `policy` (default:
    /// [`ProviderPolicy::default`]).
    pub fn with_policy(mut self, provider_id: impl Into<String>, policy: ProviderPolicy) -> Self {
        self.policies.insert(provider_id.into(), policy);
        self
    }

    /// The chain for `agent`: its own, else the default.
    pub fn chain(&self, agent: &str) -> &[Route] {
        self.agents.get(agent).unwrap_or(&self.default)
    }

    /// The first route for `agent`.
    pub fn route(&self, agent: &str) -> &Route {
        // Chains are never empty (see the constructors).
        &self.chain(agent)[0]
    }

    /// Whether the provider that answers first for `agent` calls tools.
    pub fn supports_tools(&self, agent: &str) -> bool {
        self.route(agent).provider.supports_tools()
    }

    /// The provider and model that answer first for `agent`.
    pub fn for_agent(&self, agent: &str) -> (Arc<dyn Provider>, String) {
        let route = self.route(agent);
        (Arc::clone(&route.provider), route.model.clone())
    }

    /// The default route.
    pub fn default_route(&self) -> &Route {
        &self.default[0]
    }

    /// The policy of `provider_id`.
    pub fn policy(&self, provider_id: &str) -> ProviderPolicy {
        self.policies.get(provider_id).copied().unwrap_or_default()
    }

    /// How long `provider_id` is still skipped by its open circuit breaker, if it is.
    pub fn circuit_open_for(&self, provider_id: &str) -> Option<Duration> {
        self.guard(provider_id).breaker.open_for(Instant::now())
    }

    fn guard(&self, provider_id: &str) -> Arc<Guard> {
        let mut guards = self
            .guards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(g) = guards.get(provider_id) {
            return Arc::clone(g);
        }
        let g = Arc::new(Guard::new(self.policy(provider_id)));
        guards.insert(provider_id.to_owned(), Arc::clone(&g));
        g
    }

    /// Every provider wrapped by `wrap` (for example in a
    /// [`RecordingProvider`](crate::RecordingProvider)); models and policies are kept. A
    /// provider shared by several routes is wrapped once.
    pub fn map_providers(
        self,
        mut wrap: impl FnMut(Arc<dyn Provider>) -> Arc<dyn Provider>,
    ) -> Self {
        let mut wrapped: Vec<(Arc<dyn Provider>, Arc<dyn Provider>)> = Vec::new();
        let mut map_chain = |chain: Vec<Route>| -> Vec<Route> {
            chain
                .into_iter()
                .map(|route| {
                    let provider = match wrapped
                        .iter()
                        .find(|(orig, _)| Arc::ptr_eq(orig, &route.provider))
                    {
                        Some((_, done)) => Arc::clone(done),
                        None => {
                            let done = wrap(Arc::clone(&route.provider));
                            wrapped.push((route.provider, Arc::clone(&done)));
                            done
                        }
                    };
                    Route {
                        provider,
                        model: route.model,
                    }
                })
                .collect()
        };
        let default = map_chain(self.default);
        let agents = self
            .agents
            .into_iter()
            .map(|(agent, chain)| (agent, map_chain(chain)))
            .collect();
        Self {
            default,
            agents,
            policies: self.policies,
            guards: Mutex::default(),
            pricing: self.pricing,
            on_warning: self.on_warning,
        }
    }

    /// Answers `request` for `agent` along its chain (the request's `model` is replaced by
    /// each route's), streaming to `on_token` and reporting every attempt to `on_attempt`.
    /// Tokens streamed by an attempt that then failed were already passed on; the returned
    /// response (and its usage) is the successful attempt's alone.
    pub async fn chat(
        &self,
        agent: &str,
        request: &ChatRequest,
        on_token: TokenSink<'_>,
        on_attempt: AttemptSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let chain = self.chain(agent);
        let mut last_error = None;
        for (index, route) in chain.iter().enumerate() {
            let has_next = index + 1 < chain.len();
            let provider_id = route.provider.id();
            let guard = self.guard(provider_id);
            if !guard.breaker.allow(Instant::now()) {
                let open_for = guard.breaker.open_for(Instant::now()).unwrap_or_default();
                let error = LlmError::Transient {
                    provider: provider_id.to_owned(),
                    message: format!(
                        "skipped: its circuit breaker is open for another {}s after repeated failures",
                        open_for.as_secs()
                    ),
                };
                on_attempt(&Attempt {
                    provider: provider_id,
                    model: &route.model,
                    latency: Duration::ZERO,
                    result: Err(&error),
                    next: if has_next {
                        NextStep::Failover
                    } else {
                        NextStep::GiveUp
                    },
                });
                last_error = Some(error);
                continue;
            }
            let mut attempt_request = request.clone();
            attempt_request.model.clone_from(&route.model);
            let estimate = estimate_tokens(&attempt_request);
            let policy = guard.policy.retry;
            let mut retry = 0;
            loop {
                guard.limiter.acquire(estimate).await;
                let started = Instant::now();
                let result = route.provider.chat(&attempt_request, on_token).await;
                let latency = started.elapsed();
                match result {
                    Ok(mut response) => {
                        response.usage.cost_usd =
                            self.price(&response.provider, &response.model, &response.usage);
                        guard.breaker.record_success();
                        guard
                            .limiter
                            .refund(estimate.saturating_sub(response.usage.total_tokens()));
                        on_attempt(&Attempt {
                            provider: provider_id,
                            model: &route.model,
                            latency,
                            result: Ok(&response),
                            next: NextStep::Done,
                        });
                        return Ok(response);
                    }
                    Err(LlmError::Cancelled) => return Err(LlmError::Cancelled),
                    Err(error) => {
                        let opened = if is_health_failure(&error) {
                            guard.breaker.record_failure(Instant::now())
                        } else {
                            guard.breaker.record_success();
                            false
                        };
                        let next = if error.is_retryable() && !opened && retry < policy.max_retries
                        {
                            match policy.delay(retry, error.retry_after()) {
                                Some(wait) => NextStep::Retry(wait),
                                None if has_next => NextStep::Failover,
                                None => NextStep::GiveUp,
                            }
                        } else if has_next {
                            NextStep::Failover
                        } else {
                            NextStep::GiveUp
                        };
                        on_attempt(&Attempt {
                            provider: provider_id,
                            model: &route.model,
                            latency,
                            result: Err(&error),
                            next,
                        });
                        last_error = Some(error);
                        match next {
                            NextStep::Retry(wait) => {
                                tokio::time::sleep(wait).await;
                                retry += 1;
                            }
                            _ => break,
                        }
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| LlmError::Fatal {
            provider: "router".into(),
            message: format!("agent `{agent}` has no provider to call"),
        }))
    }
}

/// Failures that say the provider is unwell (as opposed to the request or the key being
/// wrong, or the provider pacing us).
fn is_health_failure(error: &LlmError) -> bool {
    match error {
        LlmError::Transient { .. } | LlmError::Timeout { .. } => true,
        LlmError::Http { status, .. } => *status >= 500,
        _ => false,
    }
}

/// Tokens a request may use: its prompt (about four characters a token) and its whole
/// output cap. What rate limits and budgets reserve before a call.
pub fn estimate_tokens(request: &ChatRequest) -> u64 {
    let chars: usize = request
        .messages
        .iter()
        .map(|m| m.content.len() + 8)
        .sum::<usize>()
        + request
            .tools
            .iter()
            .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
            .sum::<usize>();
    (chars as u64).div_ceil(4) + u64::from(request.max_tokens)
}
